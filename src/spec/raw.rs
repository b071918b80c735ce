//! The document tree -> typed, unresolved workflow parts (top level, secrets, agents, gates;
//! tasks in `task.rs`). Names are not resolved here; `validate` does that with the whole file.

use indexmap::IndexMap;
use serde_json::{Map, Value};

use super::decode::Dec;
use super::node::{Entry, Node, Span, Val};
use super::task::{self, RawTask};
use super::template_ref::TemplateRef;
use super::{
    AgentKind, AgentSpec, CheckKind, CheckSpec, GateLevel, OnFail, SecretSource, TaskSpec,
};

const TOP_KEYS: &[&str] = &[
    "name",
    "description",
    "max_parallel",
    "context",
    "secrets",
    "agents",
    "tasks",
    "gates",
];
const AGENT_KEYS: &[&str] = &[
    "kind",
    "capabilities",
    "slots",
    "command",
    "url",
    "endpoint",
    "model",
    "api_key",
    "system",
    "temperature",
    "max_tokens",
    "env",
    "heartbeat_timeout",
    "health_url",
    "fallback",
];
const GATE_KEYS: &[&str] = &["after", "level", "checks", "on_fail"];
const CHECK_KEYS: &[&str] = &["name", "run", "expr"];

#[derive(Debug)]
pub struct RawWorkflow<'n> {
    pub name: Option<String>,
    pub description: Option<String>,
    pub max_parallel: Option<u32>,
    pub context: Map<String, Value>,
    pub secrets: IndexMap<String, SecretSource>,
    pub agents: Vec<RawAgent<'n>>,
    /// Decoded task specs, parallel to `tasks`.
    pub specs: Vec<TaskSpec>,
    pub tasks: Vec<RawTask<'n>>,
    /// The `needs` entries of all tasks, in file order (each task has a range of them).
    pub needs: Vec<(&'n str, Span)>,
    pub gates: Vec<RawGate<'n>>,
    /// Set when the file has no `tasks` table at all.
    pub no_tasks_at: Option<Span>,
}

#[derive(Debug)]
pub struct RawAgent<'n> {
    pub name: &'n str,
    /// `None` when `kind` is missing or wrong.
    pub spec: Option<AgentSpec>,
    pub templates: Vec<TemplateRef<'n>>,
    /// Where `fallback` names its agent (checked once every agent is known).
    pub fallback_span: Option<Span>,
}

#[derive(Debug)]
pub struct RawGate<'n> {
    pub id: &'n str,
    pub id_span: Span,
    pub after: Vec<(&'n str, Span)>,
    pub level: GateLevel,
    pub checks: Vec<CheckSpec>,
    /// CEL sources of `expr` checks, with their spans.
    pub exprs: Vec<(&'n str, Span)>,
    pub templates: Vec<TemplateRef<'n>>,
    pub on_fail: OnFail,
}

pub fn decode<'n>(dec: &mut Dec<'_>, root: Node<'n>) -> RawWorkflow<'n> {
    let mut w = RawWorkflow {
        name: None,
        description: None,
        max_parallel: None,
        context: Map::new(),
        secrets: IndexMap::new(),
        agents: Vec::new(),
        specs: Vec::new(),
        tasks: Vec::new(),
        needs: Vec::new(),
        gates: Vec::new(),
        no_tasks_at: None,
    };
    let Val::Table(entries) = root.val() else {
        dec.push(
            root.span(),
            format!(
                "a workflow must be a table of settings, found {}",
                root.type_name()
            ),
            "start from { \"tasks\": { \"hello\": { \"builtin\": \"echo hi\" } } }",
        );
        return w;
    };
    let mut saw_tasks = false;
    for e in entries.iter() {
        let v = e.value;
        if v.is_null() {
            continue;
        }
        match e.key {
            "name" => {
                w.name = dec.str(v, "name", "a string").map(str::to_string);
                if w.name.as_deref().is_some_and(|n| n.trim().is_empty()) {
                    dec.push(
                        v.span(),
                        "`name` is empty",
                        "give the workflow a name, or remove `name` to use the file name",
                    );
                }
            }
            "description" => {
                w.description = dec.str(v, "description", "a string").map(str::to_string)
            }
            "max_parallel" => {
                w.max_parallel = dec.int_in(v, "max_parallel", 1, i64::from(u32::MAX))
            }
            "context" => {
                if let Some(t) = dec.table(v, "context", "a table of values") {
                    w.context = t
                        .iter()
                        .map(|e| (e.key.to_string(), e.value.to_json()))
                        .collect();
                }
            }
            "secrets" => w.secrets = secrets(dec, v),
            "agents" => {
                if let Some(t) = dec.table(v, "agents", "a table of agents ([agents.NAME])") {
                    w.agents = t.iter().map(|e| agent(dec, &e)).collect();
                }
            }
            "tasks" => {
                saw_tasks = true;
                if let Some(t) = dec.table(v, "tasks", "a table of tasks ([tasks.ID])") {
                    w.tasks.reserve(t.len());
                    w.specs.reserve(t.len());
                    for e in t.iter() {
                        w.specs.push(task::new_spec(e.key));
                        if let Some(spec) = w.specs.last_mut() {
                            w.tasks.push(task::decode(dec, &e, spec, &mut w.needs));
                        }
                    }
                }
            }
            "gates" => {
                if let Some(t) = dec.table(v, "gates", "a table of gates ([gates.ID])") {
                    w.gates = t.iter().map(|e| gate(dec, &e)).collect();
                }
            }
            _ => dec.unknown_key(&e, TOP_KEYS, "the workflow"),
        }
    }
    if !saw_tasks {
        w.no_tasks_at = Some(root.span().start..root.span().start + 1);
    }
    w
}

/// `NAME = { env = "VAR" }`.
fn secrets(dec: &mut Dec<'_>, v: Node<'_>) -> IndexMap<String, SecretSource> {
    let mut out = IndexMap::new();
    let Some(t) = dec.table(v, "secrets", "a table of secrets") else {
        return out;
    };
    for e in t.iter() {
        let field = format!("secrets.{}", e.key);
        let Some(fields) = dec.table(e.value, &field, "a table like { env = \"VAR\" }") else {
            continue;
        };
        let mut source = None;
        for f in fields.iter() {
            match f.key {
                "env" => {
                    if let Some(var) = dec.str(
                        f.value,
                        &format!("{field}.env"),
                        "an environment variable name",
                    ) {
                        if var.is_empty() || var.contains(['=', '\0']) {
                            dec.push(
                                f.value.span(),
                                format!("invalid environment variable name `{var}`"),
                                "use a name like OPENAI_API_KEY",
                            );
                        } else {
                            source = Some(SecretSource::Env(var.to_string()));
                        }
                    }
                }
                _ => dec.unknown_key(&f, &["env"], "a secret"),
            }
        }
        match source {
            Some(s) => {
                out.insert(e.key.to_string(), s);
            }
            None if fields.iter().all(|f| f.key != "env") => dec.push(
                e.key_span.clone(),
                format!("secret `{}` does not say where its value comes from", e.key),
                format!("write {} = {{ env = \"VARIABLE\" }}", e.key),
            ),
            None => {}
        }
    }
    out
}

fn agent<'n>(dec: &mut Dec<'_>, e: &Entry<'n>) -> RawAgent<'n> {
    let name: &'n str = e.key;
    let mut a = RawAgent {
        name,
        spec: None,
        templates: Vec::new(),
        fallback_span: None,
    };
    check_name(dec, name, &e.key_span, "agent");
    let Some(fields) = dec.table(e.value, &format!("agents.{name}"), "a table") else {
        return a;
    };
    let mut spec = AgentSpec::default_local(1);
    let mut kind: Option<AgentKind> = None;
    let mut kind_ok = true;
    // Which kind-specific keys were given, to say which do not apply.
    let mut given: Vec<(&str, Span)> = Vec::new();
    for f in fields.iter() {
        let v = f.value;
        if v.is_null() {
            continue;
        }
        let key: &str = f.key;
        match key {
            "kind" => match dec.str(v, key, "\"local\", \"command\", \"http\" or \"llm\"") {
                Some("local") => kind = Some(AgentKind::Local),
                Some("command") => kind = Some(AgentKind::Command),
                Some("http") => kind = Some(AgentKind::Http),
                Some("llm") => kind = Some(AgentKind::Llm),
                Some(other) => {
                    kind_ok = false;
                    let hint =
                        super::suggest::did_you_mean(other, ["local", "command", "http", "llm"])
                            .unwrap_or_else(|| "use local, command, http or llm".into());
                    dec.push(v.span(), format!("unknown agent kind `{other}`"), hint);
                }
                None => kind_ok = false,
            },
            "capabilities" => {
                spec.capabilities = dec
                    .str_list(v, key, "capability")
                    .into_iter()
                    .map(|(s, _)| s.to_string())
                    .collect()
            }
            "slots" => spec.slots = dec.int_in(v, key, 1, i64::from(u32::MAX)).unwrap_or(1),
            "command" | "api_key" => {
                if let Some(s) = dec.str(v, key, "a template string") {
                    TemplateRef::queue(&mut a.templates, key, s, v.span());
                    if key == "command" {
                        spec.command = Some(s.to_string());
                    } else {
                        spec.api_key = Some(s.to_string());
                    }
                }
                given.push((key, f.key_span.clone()));
            }
            "url" | "endpoint" | "health_url" => {
                if let Some(s) = dec.str(v, key, "a URL (a string)") {
                    if !(s.starts_with("http://") || s.starts_with("https://")) {
                        dec.push(
                            v.span(),
                            format!("`{key}` `{s}` is not an http(s) URL"),
                            "write a URL starting with http:// or https://",
                        );
                    }
                    if key == "url" {
                        spec.url = Some(s.to_string());
                    } else if key == "health_url" {
                        spec.health_url = Some(s.to_string());
                    } else {
                        spec.endpoint = Some(s.to_string());
                    }
                }
                given.push((key, f.key_span.clone()));
            }
            "model" | "system" => {
                if let Some(s) = dec.str(v, key, "a string") {
                    if key == "model" {
                        spec.model = Some(s.to_string());
                    } else {
                        spec.system = Some(s.to_string());
                    }
                }
                given.push((key, f.key_span.clone()));
            }
            "temperature" => {
                spec.temperature = dec.number(v, key);
                if spec.temperature.is_some_and(|t| !(0.0..=2.0).contains(&t)) {
                    dec.push(
                        v.span(),
                        "`temperature` must be from 0 to 2",
                        "use e.g. 0.2 for focused or 1.0 for varied answers",
                    );
                }
                given.push((key, f.key_span.clone()));
            }
            "max_tokens" => {
                spec.max_tokens = dec.int_in(v, key, 1, i64::from(u32::MAX));
                given.push((key, f.key_span.clone()));
            }
            "env" => spec.env = dec.str_map(v, key, None),
            "heartbeat_timeout" => {
                spec.heartbeat_timeout = task::duration(dec, v, key);
                if spec.heartbeat_timeout == Some(std::time::Duration::ZERO) {
                    dec.push(
                        v.span(),
                        "`heartbeat_timeout` is zero, so every accepted attempt would be lost at once",
                        "give a positive duration such as \"30s\"",
                    );
                }
                given.push((key, f.key_span.clone()));
            }
            "fallback" => {
                if let Some(s) = dec.str(v, key, "an agent name") {
                    spec.fallback = Some(s.to_string());
                    a.fallback_span = Some(v.span());
                }
            }
            _ => dec.unknown_key(&f, AGENT_KEYS, "an agent"),
        }
    }
    let Some(kind) = kind else {
        if kind_ok {
            dec.push(
                e.key_span.clone(),
                format!("agent `{name}` has no `kind`"),
                "add kind = \"local\", \"command\", \"http\" or \"llm\"",
            );
        }
        return a;
    };
    spec.kind = kind;
    let applies = |key: &str| match key {
        "command" => kind == AgentKind::Command,
        "url" | "heartbeat_timeout" | "health_url" => kind == AgentKind::Http,
        "api_key" => matches!(kind, AgentKind::Http | AgentKind::Llm),
        _ => kind == AgentKind::Llm,
    };
    for (key, span) in &given {
        if !applies(key) {
            let owner = match *key {
                "command" => "command agents",
                "url" | "heartbeat_timeout" | "health_url" => "http agents",
                "api_key" => "http and llm agents",
                _ => "llm agents",
            };
            dec.push(
                span.clone(),
                format!("`{key}` does not apply to a {} agent", kind.as_str()),
                format!("`{key}` is for {owner}: remove it or change `kind`"),
            );
        }
    }
    let mut require = |missing: bool, key: &str, example: &str| {
        if missing {
            dec.push(
                e.key_span.clone(),
                format!("{} agent `{name}` needs `{key}`", kind.as_str()),
                format!("add {key} = {example}"),
            );
        }
    };
    match kind {
        AgentKind::Command => require(
            spec.command.is_none(),
            "command",
            "\"my-cli -p {{ task.prompt | shquote }}\"",
        ),
        AgentKind::Http => require(spec.url.is_none(), "url", "\"http://127.0.0.1:9000/tasks\""),
        AgentKind::Llm => {
            require(
                spec.endpoint.is_none(),
                "endpoint",
                "\"http://127.0.0.1:8080/v1\"",
            );
            require(spec.model.is_none(), "model", "\"qwen2.5\"");
        }
        AgentKind::Local => {}
    }
    a.spec = Some(spec);
    a
}

fn gate<'n>(dec: &mut Dec<'_>, e: &Entry<'n>) -> RawGate<'n> {
    let id: &'n str = e.key;
    let mut g = RawGate {
        id,
        id_span: e.key_span.clone(),
        after: Vec::new(),
        level: GateLevel::Output,
        checks: Vec::new(),
        exprs: Vec::new(),
        templates: Vec::new(),
        on_fail: OnFail::Fail,
    };
    check_name(dec, id, &e.key_span, "gate");
    let Some(fields) = dec.table(e.value, &format!("gates.{id}"), "a table") else {
        return g;
    };
    let (mut saw_after, mut saw_checks) = (false, false);
    for f in fields.iter() {
        let v = f.value;
        let key: &str = f.key;
        match key {
            "after" => {
                saw_after = true;
                g.after = dec.str_list(v, key, "task id");
                if g.after.is_empty() && matches!(v.val(), Val::Array(a) if a.is_empty()) {
                    dec.push(
                        v.span(),
                        format!("gate `{id}` is after no task"),
                        "list the tasks it checks, e.g. after = [\"build\"]",
                    );
                }
            }
            "level" => match dec.str(v, key, "input, process, output or integration") {
                Some("input") => g.level = GateLevel::Input,
                Some("process") => g.level = GateLevel::Process,
                Some("output") => g.level = GateLevel::Output,
                Some("integration") => g.level = GateLevel::Integration,
                Some(other) => dec.push(
                    v.span(),
                    format!("unknown gate level `{other}`"),
                    "use input, process, output or integration",
                ),
                None => {}
            },
            "on_fail" => match dec.str(v, key, "fail, pause, retry or warn") {
                Some("fail") => g.on_fail = OnFail::Fail,
                Some("pause") => g.on_fail = OnFail::Pause,
                Some("retry") => g.on_fail = OnFail::Retry,
                Some("warn") => g.on_fail = OnFail::Warn,
                Some(other) => dec.push(
                    v.span(),
                    format!("unknown on_fail `{other}`"),
                    "use fail, pause, retry or warn",
                ),
                None => {}
            },
            "checks" => {
                saw_checks = true;
                checks(dec, &mut g, v);
            }
            _ => dec.unknown_key(&f, GATE_KEYS, "a gate"),
        }
    }
    if !saw_after {
        dec.push(
            g.id_span.clone(),
            format!("gate `{id}` has no `after`"),
            "add after = [\"TASK\"] naming the tasks it checks",
        );
    }
    if !saw_checks {
        dec.push(
            g.id_span.clone(),
            format!("gate `{id}` has no `checks`"),
            "add checks = [{ name = \"tests\", run = \"cargo test\" }]",
        );
    }
    g
}

fn checks<'n>(dec: &mut Dec<'_>, g: &mut RawGate<'n>, v: Node<'n>) {
    let Val::Array(items) = v.val() else {
        dec.wrong_type(
            v,
            "checks",
            "a list of checks",
            "write checks = [{ name = \"tests\", run = \"cargo test\" }]",
        );
        return;
    };
    if items.is_empty() {
        dec.push(v.span(), format!("gate `{}` has no checks", g.id), "add at least one { name = \"...\", run = \"...\" } or { name = \"...\", expr = \"...\" }");
    }
    for item in items.iter() {
        let Some(fields) = dec.table(
            item,
            "checks",
            "a list of tables like { name = \"...\", run = \"...\" }",
        ) else {
            continue;
        };
        let mut name = None;
        let mut kind: Option<CheckKind> = None;
        let mut dup_kind = false;
        for f in fields.iter() {
            let key: &str = f.key;
            match key {
                "name" => name = dec.str(f.value, "name", "a string"),
                "run" | "expr" => {
                    if kind.is_some() {
                        dup_kind = true;
                        dec.push(
                            f.key_span.clone(),
                            "a check has both `run` and `expr`",
                            "give each check either a command (`run`) or a CEL expression (`expr`)",
                        );
                        continue;
                    }
                    let Some(s) = dec.str(f.value, key, "a string") else {
                        continue;
                    };
                    if key == "run" {
                        TemplateRef::queue(&mut g.templates, "checks.run", s, f.value.span());
                        kind = Some(CheckKind::Run(s.to_string()));
                    } else {
                        g.exprs.push((s, f.value.span()));
                        kind = Some(CheckKind::Expr(s.to_string()));
                    }
                }
                _ => dec.unknown_key(&f, CHECK_KEYS, "a check"),
            }
        }
        if name.is_none() && fields.iter().all(|f| f.key != "name") {
            dec.push(
                item.span(),
                "a check has no `name`",
                "add name = \"...\": it is shown when the check fails",
            );
        }
        if kind.is_none() && !dup_kind && fields.iter().all(|f| f.key != "run" && f.key != "expr") {
            dec.push(
                item.span(),
                "a check has neither `run` nor `expr`",
                "add run = \"command\" or expr = \"CEL expression\"",
            );
        }
        if let (Some(name), Some(kind)) = (name, kind) {
            g.checks.push(CheckSpec {
                name: name.to_string(),
                kind,
            });
        }
    }
}

fn check_name(dec: &mut Dec<'_>, name: &str, span: &Span, what: &str) {
    if !super::scalars::is_valid_id(name) {
        dec.push(
            span.clone(),
            format!("invalid {what} name `{name}`"),
            format!(
                "names start with a letter or `_` and contain only letters, digits, `_` and `-`; e.g. `{}`",
                super::scalars::fix_id(name)
            ),
        );
    }
}
