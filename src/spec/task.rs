//! `[tasks.ID]` tables -> `RawTask`: every field typed and checked on its own; cross-references
//! (needs, agents, reads, templates) are resolved later in `validate`.

use std::ops::Range;
use std::time::Duration;

use serde_json::Value;

use super::decode::Dec;
use super::fanout::{self, RawFanout};
use super::node::{Entry, Node, Span, Val};
use super::scalars;
use super::template_ref::TemplateRef;
use super::{Action, Backoff, Builtin, ReplyFormat, Resources, RetryPolicy, TaskSpec};

pub const TASK_KEYS: &[&str] = &[
    "run",
    "builtin",
    "prompt",
    "needs",
    "requires",
    "agent",
    "priority",
    "timeout",
    "retry",
    "resources",
    "locks",
    "when",
    "approval",
    "reads",
    "env",
    "cwd",
    "continue_on_failure",
    "matrix",
    "compensate",
    "format",
    "schema",
    "agents",
    "resolve",
];

const RETRY_KEYS: &[&str] = &["attempts", "backoff", "delay", "max_delay", "jitter"];
const RESOURCE_KEYS: &[&str] = &["cpu", "memory_mb", "gpu"];

/// One matrix axis: its key and values (each with its span).
#[derive(Debug, Clone)]
pub struct Axis<'n> {
    pub key: &'n str,
    pub values: Vec<(Value, Span)>,
}

/// Where a decoded task's parts are in the file and what is left to resolve. Its `TaskSpec`
/// is decoded into a parallel vector that becomes `Workflow::tasks` as is (no copy of 100,000
/// large structs); rare parts live in `extra`, boxed only when used.
#[derive(Debug, Clone)]
pub struct RawTask<'n> {
    pub id: &'n str,
    pub id_span: Span,
    /// False when the action is missing or invalid (then the spec's action is a placeholder).
    pub has_action: bool,
    /// This task's entries of `RawWorkflow::needs`.
    pub needs: Range<usize>,
    pub extra: Option<Box<TaskExtra<'n>>>,
}

#[derive(Debug, Clone, Default)]
pub struct TaskExtra<'n> {
    pub agent_span: Option<Span>,
    pub when: Option<(&'n str, Span)>,
    pub reads: Vec<(&'n str, Span)>,
    pub resources_span: Option<Span>,
    /// `Some` with `matrix` (axes may be empty after errors).
    pub matrix: Option<(Vec<Axis<'n>>, Span)>,
    pub templates: Vec<TemplateRef<'n>>,
    /// `agents` and `resolve` (multi-agent tasks).
    pub fanout: RawFanout<'n>,
}

/// A task spec with defaults; `base`, `needs` and `matrix` are filled in by `validate`.
pub fn new_spec(id: &str) -> TaskSpec {
    let mut spec = TaskSpec::new(id, Action::Builtin(Builtin::Noop));
    spec.base = String::new();
    spec
}

impl<'n> RawTask<'n> {
    pub fn extra_mut(&mut self) -> &mut TaskExtra<'n> {
        self.extra.get_or_insert_with(Box::default)
    }
}

/// Decodes one task table (`entry` is `ID = { ... }`) into `spec` (from [`new_spec`]); its
/// `needs` entries are appended to `needs`.
pub fn decode<'n>(
    dec: &mut Dec<'_>,
    entry: &Entry<'n>,
    spec: &mut TaskSpec,
    needs: &mut Vec<(&'n str, Span)>,
) -> RawTask<'n> {
    let mut t = RawTask {
        id: entry.key,
        id_span: entry.key_span.clone(),
        has_action: false,
        needs: needs.len()..needs.len(),
        extra: None,
    };
    let Val::Table(fields) = entry.value.val() else {
        dec.wrong_type(entry.value, &format!("tasks.{}", entry.key), "a table", "");
        return t;
    };
    let mut action_key: Option<&str> = None;
    let mut format_span: Option<Span> = None;
    let mut schema_span: Option<Span> = None;
    for e in fields.iter() {
        let v = e.value;
        if v.is_null() {
            continue;
        }
        let key: &str = e.key;
        match key {
            "run" | "builtin" | "prompt" => {
                if let Some(first) = action_key {
                    dec.push(
                        e.key_span.clone(),
                        format!("task `{}` has both `{first}` and `{key}`", t.id),
                        format!("a task does exactly one thing: keep `{first}` or `{key}`, or split it into two tasks"),
                    );
                    continue;
                }
                action_key = Some(key);
                decode_action(dec, &mut t, spec, key, v);
            }
            "needs" => {
                // A repeated `needs` (JSON) replaces the earlier one.
                needs.truncate(t.needs.start);
                dec.str_list_into(v, key, "task id", needs);
                t.needs = t.needs.start..needs.len();
            }
            "requires" => spec.requires = owned(dec.str_list(v, key, "capability")),
            "agent" => {
                if let Some(s) = dec.str(v, key, "an agent name") {
                    spec.agent = Some(s.to_string());
                    t.extra_mut().agent_span = Some(v.span());
                }
            }
            "priority" => {
                let p = match v.val() {
                    Val::Str(s) => scalars::priority_name(s),
                    Val::Int(i) => scalars::priority_number(i),
                    _ => {
                        dec.wrong_type(v, key, "a priority name or an integer from 1 to 10", "");
                        continue;
                    }
                };
                match p {
                    Ok(p) => spec.priority = p,
                    Err(b) => dec.push(v.span(), b.message, b.hint),
                }
            }
            "timeout" => {
                spec.timeout = duration(dec, v, key);
                if spec.timeout == Some(Duration::ZERO) {
                    dec.push(
                        v.span(),
                        "`timeout` is zero, so every attempt would time out at once",
                        "give a positive duration, or remove `timeout` for none",
                    );
                }
            }
            "retry" => {
                if let Some(r) = retry(dec, v) {
                    spec.retry = r;
                }
            }
            "resources" => {
                if let Some(r) = resources(dec, v) {
                    spec.resources = r;
                    t.extra_mut().resources_span = Some(v.span());
                }
            }
            "locks" => spec.locks = owned(dec.str_list(v, key, "lock name")),
            "when" => {
                if let Some(s) = dec.str(v, key, "a CEL expression (a string)") {
                    spec.when = Some(s.to_string());
                    t.extra_mut().when = Some((s, v.span()));
                }
            }
            "approval" => spec.approval = dec.bool(v, key).unwrap_or(false),
            "reads" => {
                let reads = dec.str_list(v, key, "context pattern");
                spec.reads = Some(owned(reads.clone()));
                t.extra_mut().reads = reads;
            }
            "env" => {
                let mut templates = Vec::new();
                spec.env = dec.str_map(v, key, Some(&mut templates));
                if !templates.is_empty() {
                    t.extra_mut().templates.extend(templates);
                }
            }
            "cwd" => {
                if let Some(s) = dec.str(v, key, "a directory (a string)") {
                    t.template(key, s, v.span());
                    spec.cwd = Some(s.to_string());
                }
            }
            "continue_on_failure" => spec.continue_on_failure = dec.bool(v, key).unwrap_or(false),
            "matrix" => t.extra_mut().matrix = Some((matrix(dec, v), v.span())),
            "compensate" => {
                if let Some(s) = dec.str(v, key, "a command line (a string)") {
                    t.template(key, s, v.span());
                    spec.compensate = Some(s.to_string());
                }
            }
            "format" => match dec.str(v, key, "\"text\" or \"json\"") {
                Some("text") => spec.format = ReplyFormat::Text,
                Some("json") => {
                    spec.format = ReplyFormat::Json;
                    format_span = Some(v.span());
                }
                Some(other) => dec.push(
                    v.span(),
                    format!("unknown reply format `{other}`"),
                    "use format = \"text\" or format = \"json\"",
                ),
                None => {}
            },
            "schema" => {
                schema_span = Some(v.span());
                if !matches!(v.val(), Val::Table(_)) {
                    dec.wrong_type(v, key, "a JSON Schema (a table)", "");
                    continue;
                }
                let schema = v.to_json();
                match jsonschema::validator_for(&schema) {
                    Ok(_) => spec.schema = Some(schema),
                    Err(err) => dec.push(
                        v.span(),
                        format!("`schema` is not a valid JSON Schema: {err}"),
                        "write a JSON Schema, e.g. schema = { type = \"object\", required = [\"score\"] }",
                    ),
                }
            }
            "agents" => fanout::agents(dec, v, &mut t.extra_mut().fanout),
            "resolve" => fanout::resolve(dec, v, &mut t.extra_mut().fanout),
            _ => dec.unknown_key(&e, TASK_KEYS, "a task"),
        }
    }
    finish_fanout(dec, &mut t, spec);
    if let Some(span) = schema_span
        && spec.format != ReplyFormat::Json
    {
        dec.push(
            span,
            format!("task `{}` has a `schema` but no format = \"json\"", t.id),
            "add format = \"json\": the schema checks the parsed JSON reply",
        );
    }
    // Only a prompt has a reply to parse; a command writes its outputs itself.
    if let Some(span) = format_span
        && action_key.is_some_and(|k| k != "prompt")
    {
        dec.push(
            span,
            format!("task `{}` sets format = \"json\" but is not a `prompt` task", t.id),
            "`format` is for prompt replies; a `run` task writes JSON outputs to $TASKDECK_OUTPUT itself",
        );
    }
    if action_key.is_none() {
        dec.push(
            t.id_span.clone(),
            format!("task `{}` has nothing to do", t.id),
            "add one of `run = \"command\"`, `builtin = \"noop\"` or `prompt = \"...\"`",
        );
    }
    t
}

/// `agents` and `resolve` go together, and a task on several agents is not pinned to one.
fn finish_fanout(dec: &mut Dec<'_>, t: &mut RawTask<'_>, spec: &mut TaskSpec) {
    let Some(raw) = t
        .extra
        .as_ref()
        .map(|x| &x.fanout)
        .filter(|f| !f.is_empty())
    else {
        return;
    };
    match (&raw.agents, &raw.resolve) {
        (Some((agents, span)), Some((resolve, _))) => {
            if let Some(pin) = t.extra.as_ref().and_then(|x| x.agent_span.clone()) {
                dec.push(
                    pin,
                    format!("task `{}` has both `agent` and `agents`", t.id),
                    "pin one agent with `agent`, or run on several with `agents`, not both",
                );
                let _ = span;
                return;
            }
            spec.fanout = Some(super::Fanout {
                agents: agents.clone(),
                resolve: resolve.clone(),
            });
        }
        (Some((_, span)), None) if !raw.resolve_given => dec.push(
            span.clone(),
            format!(
                "task `{}` runs on several agents but does not say how to resolve their outputs",
                t.id
            ),
            "add resolve = \"first\", \"merge\", { majority = \"FIELD\" } or { judge = \"AGENT\" }",
        ),
        (None, Some((_, span))) if !raw.agents_given => dec.push(
            span.clone(),
            format!("task `{}` has `resolve` but runs on one agent", t.id),
            "add agents = N (or a list of agent names), or remove `resolve`",
        ),
        _ => {}
    }
}

fn owned(list: Vec<(&str, Span)>) -> Vec<String> {
    list.into_iter().map(|(s, _)| s.to_string()).collect()
}

fn decode_action<'n>(
    dec: &mut Dec<'_>,
    t: &mut RawTask<'n>,
    spec: &mut TaskSpec,
    key: &str,
    v: Node<'n>,
) {
    let expected = match key {
        "run" => "a command line (a string)",
        "prompt" => "a prompt (a string)",
        _ => "a builtin (a string)",
    };
    let Some(s) = dec.str(v, key, expected) else {
        return;
    };
    if s.trim().is_empty() {
        dec.push(
            v.span(),
            format!("`{key}` is empty"),
            format!("give `{key}` something to do, e.g. builtin = \"noop\""),
        );
        return;
    }
    let action = match key {
        "run" => {
            t.template(key, s, v.span());
            Some(Action::Run(s.to_string()))
        }
        "prompt" => {
            t.template(key, s, v.span());
            Some(Action::Prompt(s.to_string()))
        }
        _ => match scalars::builtin(s) {
            Ok(b) => {
                if matches!(b, Builtin::Echo(_)) {
                    t.template(key, s, v.span());
                }
                Some(Action::Builtin(b))
            }
            Err(b) => {
                dec.push(v.span(), b.message, b.hint);
                None
            }
        },
    };
    if let Some(a) = action {
        spec.action = a;
        t.has_action = true;
    }
}

impl<'n> RawTask<'n> {
    /// Queues `src` for template checks if it has template syntax.
    fn template(&mut self, field: &str, src: &'n str, span: Span) {
        if crate::template::is_template(src) {
            TemplateRef::queue(&mut self.extra_mut().templates, field, src, span);
        }
    }
}

fn duration(dec: &mut Dec<'_>, v: Node<'_>, field: &str) -> Option<Duration> {
    let s = dec.str(v, field, "a duration (a string like \"5m\")")?;
    match scalars::duration(s) {
        Ok(d) => Some(d),
        Err(b) => {
            dec.push(v.span(), b.message, b.hint);
            None
        }
    }
}

/// `retry = 3` or `retry = { attempts, backoff, delay, max_delay, jitter }`.
fn retry(dec: &mut Dec<'_>, v: Node<'_>) -> Option<RetryPolicy> {
    let mut r = RetryPolicy::default();
    let fields = match v.val() {
        Val::Int(_) => {
            r.attempts = dec.int_in(v, "retry", 1, i64::from(u32::MAX))?;
            return Some(r);
        }
        Val::Table(fields) => fields,
        _ => {
            dec.wrong_type(
                v,
                "retry",
                "a number of attempts or a table",
                "write retry = 3, or retry = { attempts = 3, backoff = \"exponential\", delay = \"2s\" }",
            );
            return None;
        }
    };
    let mut delay_span = None;
    for e in fields.iter() {
        let f = e.value;
        match e.key {
            "attempts" => {
                r.attempts = dec
                    .int_in(f, "retry.attempts", 1, i64::from(u32::MAX))
                    .unwrap_or(1)
            }
            "backoff" => match dec.str(f, "retry.backoff", "\"fixed\" or \"exponential\"") {
                Some("fixed") => r.backoff = Backoff::Fixed,
                Some("exponential") => r.backoff = Backoff::Exponential,
                Some(other) => dec.push(
                    f.span(),
                    format!("unknown backoff `{other}`"),
                    "use \"fixed\" or \"exponential\"",
                ),
                None => {}
            },
            "delay" => {
                if let Some(d) = duration(dec, f, "retry.delay") {
                    r.delay = d;
                    delay_span = Some(f.span());
                }
            }
            "max_delay" => {
                if let Some(d) = duration(dec, f, "retry.max_delay") {
                    r.max_delay = d;
                }
            }
            "jitter" => r.jitter = dec.bool(f, "retry.jitter").unwrap_or(false),
            _ => dec.unknown_key(&e, RETRY_KEYS, "`retry`"),
        }
    }
    if r.delay > r.max_delay {
        dec.push(
            delay_span.unwrap_or_else(|| v.span()),
            format!(
                "retry delay {} is longer than max_delay {}",
                humantime::format_duration(r.delay),
                humantime::format_duration(r.max_delay)
            ),
            "make `delay` at most `max_delay` (default max_delay is 1m)",
        );
    }
    Some(r)
}

fn resources(dec: &mut Dec<'_>, v: Node<'_>) -> Option<Resources> {
    let fields = dec.table(v, "resources", "a table like { cpu = 2, memory_mb = 4096 }")?;
    let mut r = Resources::default();
    for e in fields.iter() {
        let f = e.value;
        match e.key {
            "cpu" => {
                if let Some(c) = dec.number(f, "resources.cpu") {
                    if c.is_finite() && c >= 0.0 {
                        r.cpu = c;
                    } else {
                        dec.push(
                            f.span(),
                            format!("`resources.cpu` must not be negative, found {c}"),
                            "use a number of cores >= 0, e.g. 0.5 or 2",
                        );
                    }
                }
            }
            "memory_mb" => {
                r.memory_mb = dec
                    .int_in(f, "resources.memory_mb", 0, i64::MAX)
                    .unwrap_or(0)
            }
            "gpu" => {
                r.gpu = dec
                    .int_in(f, "resources.gpu", 0, i64::from(u32::MAX))
                    .unwrap_or(0)
            }
            _ => dec.unknown_key(&e, RESOURCE_KEYS, "`resources`"),
        }
    }
    Some(r)
}

/// `matrix = { os = ["linux", "mac"], arch = ["x86"] }`: non-empty lists of scalars.
fn matrix<'n>(dec: &mut Dec<'_>, v: Node<'n>) -> Vec<Axis<'n>> {
    let mut axes = Vec::new();
    let Some(fields) = dec.table(
        v,
        "matrix",
        "a table of lists, like { os = [\"linux\", \"mac\"] }",
    ) else {
        return axes;
    };
    if fields.is_empty() {
        dec.push(
            v.span(),
            "`matrix` is empty",
            "add at least one key with a list of values, or remove `matrix`",
        );
    }
    for e in fields.iter() {
        let field = format!("matrix.{}", e.key);
        if !scalars::is_valid_id(e.key) {
            dec.push(
                e.key_span.clone(),
                format!("invalid matrix key `{}`", e.key),
                format!(
                    "use letters, digits, `_` and `-`, e.g. `{}`",
                    scalars::fix_id(e.key)
                ),
            );
            continue;
        }
        let Val::Array(items) = e.value.val() else {
            dec.wrong_type(
                e.value,
                &field,
                "a list of values",
                "write e.g. os = [\"linux\", \"mac\"]",
            );
            continue;
        };
        if items.is_empty() {
            dec.push(
                e.value.span(),
                format!("`{field}` has no values"),
                "give it at least one value, or remove the key",
            );
            continue;
        }
        let mut values: Vec<(Value, Span)> = Vec::with_capacity(items.len());
        for n in items.iter() {
            match n.val() {
                Val::Str(_) | Val::Int(_) | Val::Float(_) | Val::Bool(_) => {
                    let j = n.to_json();
                    if values.iter().any(|(seen, _)| *seen == j) {
                        dec.push(
                            n.span(),
                            format!("`{field}` lists {j} twice"),
                            "remove the repeated value: it would make two tasks with the same id",
                        );
                    } else {
                        values.push((j, n.span()));
                    }
                }
                _ => dec.push(
                    n.span(),
                    format!("matrix values must be strings, numbers or booleans, found {}", n.type_name()),
                    "use simple values; put structured settings in [context] and select them by a matrix key",
                ),
            }
        }
        axes.push(Axis { key: e.key, values });
    }
    axes
}
