//! `agents` and `resolve` of a task: decoded here with their spans; names are checked against
//! the roster in `validate`.

use super::decode::Dec;
use super::node::{Node, Span, Val};
use super::{FanoutAgents, Resolve};

const RESOLVE_HINT: &str =
    "use resolve = \"first\", \"merge\", { majority = \"FIELD\" } or { judge = \"AGENT\" }";
const RESOLVE_KEYS: &[&str] = &["majority", "judge", "prompt"];

/// What a task said about running on several agents, with positions for later checks.
#[derive(Debug, Clone, Default)]
pub struct RawFanout<'n> {
    pub agents: Option<(FanoutAgents, Span)>,
    /// `agents = [...]`: each name with its span.
    pub names: Vec<(&'n str, Span)>,
    pub resolve: Option<(Resolve, Span)>,
    pub judge_span: Option<Span>,
    /// Whether the keys were there at all (an invalid value is reported once, by its decoder).
    pub agents_given: bool,
    pub resolve_given: bool,
}

impl RawFanout<'_> {
    pub fn is_empty(&self) -> bool {
        !self.agents_given && !self.resolve_given
    }
}

/// `agents = N` (N >= 2) or `agents = ["a", "b"]` (two or more distinct names).
pub fn agents<'n>(dec: &mut Dec<'_>, v: Node<'n>, raw: &mut RawFanout<'n>) {
    raw.agents_given = true;
    match v.val() {
        Val::Int(_) => {
            if let Some(n) = dec.int_in::<u32>(v, "agents", 1, 64) {
                if n < 2 {
                    dec.push(
                        v.span(),
                        "`agents = 1` runs the task on one agent, as without `agents`",
                        "use agents = 2 or more, or pin one agent with agent = \"NAME\"",
                    );
                } else {
                    raw.agents = Some((FanoutAgents::Count(n), v.span()));
                }
            }
        }
        Val::Array(_) => {
            let names = dec.str_list(v, "agents", "agent name");
            let mut kept: Vec<(&'n str, Span)> = Vec::with_capacity(names.len());
            for (name, span) in names {
                if kept.iter().any(|(k, _)| *k == name) {
                    dec.push(
                        span,
                        format!("`agents` lists `{name}` twice"),
                        "name each agent once: every agent runs the task one time",
                    );
                } else {
                    kept.push((name, span));
                }
            }
            if kept.len() < 2 {
                dec.push(
                    v.span(),
                    "`agents` must name at least two agents",
                    "list two or more agents, or pin one with agent = \"NAME\"",
                );
                return;
            }
            raw.agents = Some((
                FanoutAgents::Named(kept.iter().map(|(n, _)| n.to_string()).collect()),
                v.span(),
            ));
            raw.names = kept;
        }
        _ => dec.wrong_type(
            v,
            "agents",
            "a number of agents or a list of agent names",
            "write agents = 3, or agents = [\"claude\", \"codex\"]",
        ),
    }
}

/// `resolve = "first" | "merge" | { majority = "FIELD" } | { judge = "AGENT", prompt = "..." }`.
pub fn resolve(dec: &mut Dec<'_>, v: Node<'_>, raw: &mut RawFanout<'_>) {
    raw.resolve_given = true;
    let resolved = match v.val() {
        Val::Str("first") => Some(Resolve::First),
        Val::Str("merge") => Some(Resolve::Merge),
        Val::Str("majority") => {
            dec.push(
                v.span(),
                "`majority` needs the output field to vote on",
                "write resolve = { majority = \"verdict\" } (a dotted path such as \"json.verdict\" reads into JSON outputs)",
            );
            None
        }
        Val::Str("judge") => {
            dec.push(
                v.span(),
                "`judge` needs the agent that judges",
                "write resolve = { judge = \"AGENT\" } naming a command or llm agent",
            );
            None
        }
        Val::Str(other) => {
            let hint = super::suggest::did_you_mean(other, ["first", "merge", "majority", "judge"])
                .unwrap_or_else(|| RESOLVE_HINT.into());
            dec.push(
                v.span(),
                format!("unknown resolve strategy `{other}`"),
                hint,
            );
            None
        }
        Val::Table(fields) => table(dec, v, fields, raw),
        _ => {
            dec.wrong_type(v, "resolve", "a strategy name or a table", RESOLVE_HINT);
            None
        }
    };
    if let Some(r) = resolved {
        raw.resolve = Some((r, v.span()));
    }
}

fn table(
    dec: &mut Dec<'_>,
    v: Node<'_>,
    fields: super::node::Table<'_>,
    raw: &mut RawFanout<'_>,
) -> Option<Resolve> {
    let (mut majority, mut judge, mut prompt) = (None, None, None);
    for f in fields.iter() {
        match f.key {
            "majority" => {
                if let Some(s) = dec.str(f.value, "resolve.majority", "an output field (a string)")
                {
                    if s.trim().is_empty() {
                        dec.push(
                            f.value.span(),
                            "`resolve.majority` is empty",
                            "name the output field to vote on, e.g. majority = \"verdict\"",
                        );
                    } else {
                        majority = Some(s.to_string());
                    }
                }
            }
            "judge" => {
                if let Some(s) = dec.str(f.value, "resolve.judge", "an agent name (a string)") {
                    judge = Some(s.to_string());
                    raw.judge_span = Some(f.value.span());
                }
            }
            "prompt" => {
                if let Some(s) = dec.str(f.value, "resolve.prompt", "a prompt template (a string)")
                {
                    match crate::template::check(s) {
                        Ok(()) => prompt = Some((s.to_string(), f.value.span())),
                        Err(e) => dec.push(
                            f.value.span(),
                            format!("`resolve.prompt` is not a valid template: {e}"),
                            "fix the template syntax ({{ ... }} and {% ... %})",
                        ),
                    }
                }
            }
            _ => dec.unknown_key(&f, RESOLVE_KEYS, "`resolve`"),
        }
    }
    match (majority, judge) {
        (Some(_), Some(_)) => {
            dec.push(
                v.span(),
                "`resolve` has both `majority` and `judge`",
                "choose one strategy: a vote on a field, or a judge agent",
            );
            None
        }
        (Some(field), None) => {
            if let Some((_, span)) = prompt {
                dec.push(
                    span,
                    "`resolve.prompt` is for a judge",
                    "remove `prompt`, or use resolve = { judge = \"AGENT\", prompt = \"...\" }",
                );
            }
            Some(Resolve::Majority { field })
        }
        (None, Some(agent)) => Some(Resolve::Judge {
            agent,
            prompt: prompt.map(|(p, _)| p),
        }),
        (None, None) => {
            if fields
                .iter()
                .all(|f| f.key != "majority" && f.key != "judge")
            {
                dec.push(
                    v.span(),
                    "`resolve` names no strategy",
                    "write resolve = { majority = \"FIELD\" } or resolve = { judge = \"AGENT\" }",
                );
            }
            None
        }
    }
}
