//! `reads` patterns: what part of the context a task asks for. Parsing is pure; whether the
//! named key, task or secret exists is checked in `validate`.

use super::scalars::Bad;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read<'s> {
    /// `KEY`, `context.KEY[.more]`, or `context.*` / `context` (`"*"`).
    Context(&'s str),
    /// `tasks.ID.outputs[.*|.KEY]`; `id` is `*` for any upstream task.
    Outputs { id: &'s str },
    /// `secrets.NAME`.
    Secret(&'s str),
    /// `agent.memory[.*|.KEY]`.
    AgentMemory,
}

const FORMS: &str = "use KEY or context.KEY (a [context] key), tasks.ID.outputs.* or tasks.ID.outputs.KEY \
                     (an upstream task), secrets.NAME, or agent.memory.*";

fn bad(message: String) -> Bad {
    Bad {
        message,
        hint: FORMS.to_string(),
    }
}

pub fn parse(pattern: &str) -> Result<Read<'_>, Bad> {
    let p = pattern.trim();
    if p.is_empty() {
        return Err(bad("empty `reads` pattern".into()));
    }
    let (root, rest) = match p.split_once('.') {
        Some((r, rest)) => (r, Some(rest)),
        None => (p, None),
    };
    match (root, rest) {
        ("context", None) | ("context", Some("*")) | ("*", None) => Ok(Read::Context("*")),
        ("context", Some(rest)) => {
            let key = rest.split('.').next().unwrap_or(rest);
            if key.is_empty() {
                Err(bad(format!("`reads` pattern `{p}` names no context key")))
            } else {
                Ok(Read::Context(key))
            }
        }
        ("tasks", Some(rest)) => outputs(p, rest),
        ("tasks", None) => Err(bad(format!("`reads` pattern `{p}` names no task"))),
        ("secrets", Some(name)) if !name.is_empty() && !name.contains('.') => {
            Ok(Read::Secret(name))
        }
        ("secrets", _) => Err(bad(format!("`reads` pattern `{p}` must name one secret"))),
        ("agent", Some(rest)) if rest == "memory" || rest.starts_with("memory.") => {
            Ok(Read::AgentMemory)
        }
        ("agent", _) => Err(bad(format!(
            "`reads` pattern `{p}`: an agent only offers `agent.memory`"
        ))),
        ("", _) => Err(bad(format!("`reads` pattern `{p}` starts with a dot"))),
        (key, _) => Ok(Read::Context(key)),
    }
}

/// `ID.outputs[...]` where ID may be a matrix instance id with brackets (whose values may
/// contain dots).
fn outputs<'s>(p: &str, rest: &'s str) -> Result<Read<'s>, Bad> {
    let id_end = match rest.find('[') {
        Some(open) if !rest[..open].contains('.') => match rest[open..].find(']') {
            Some(close) => open + close + 1,
            None => return Err(bad(format!("`reads` pattern `{p}` has an unclosed `[`"))),
        },
        _ => rest.find('.').unwrap_or(rest.len()),
    };
    let (id, after) = rest.split_at(id_end);
    let after = after.strip_prefix('.').unwrap_or(after);
    let ok = after == "outputs"
        || after
            .strip_prefix("outputs.")
            .is_some_and(|k| !k.is_empty());
    if id.is_empty() || !ok {
        let shown = if id.is_empty() { "ID" } else { id };
        return Err(Bad {
            message: format!("`reads` pattern `{p}` must read a task's outputs"),
            hint: format!(
                "write tasks.{shown}.outputs.* (all outputs) or tasks.{shown}.outputs.KEY"
            ),
        });
    }
    Ok(Read::Outputs { id })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_forms() {
        assert_eq!(parse("project_path"), Ok(Read::Context("project_path")));
        assert_eq!(
            parse("context.project_path"),
            Ok(Read::Context("project_path"))
        );
        assert_eq!(parse("context.db.host"), Ok(Read::Context("db")));
        assert_eq!(parse("context.*"), Ok(Read::Context("*")));
        assert_eq!(parse("context"), Ok(Read::Context("*")));
        assert_eq!(parse("db.host"), Ok(Read::Context("db")));
        assert!(parse("context.").is_err());
        assert!(parse("").is_err());
        assert!(parse(".x").is_err());
    }

    #[test]
    fn task_output_forms() {
        assert_eq!(
            parse("tasks.build.outputs.*"),
            Ok(Read::Outputs { id: "build" })
        );
        assert_eq!(
            parse("tasks.build.outputs.size"),
            Ok(Read::Outputs { id: "build" })
        );
        assert_eq!(
            parse("tasks.build.outputs"),
            Ok(Read::Outputs { id: "build" })
        );
        assert_eq!(
            parse("tasks.test[v=1.2].outputs.*"),
            Ok(Read::Outputs { id: "test[v=1.2]" })
        );
        assert_eq!(parse("tasks.*.outputs.*"), Ok(Read::Outputs { id: "*" }));
        let e = parse("tasks.build").unwrap_err();
        assert!(e.hint.contains("tasks.build.outputs.*"), "{e:?}");
        assert!(parse("tasks.build.logs").is_err());
        assert!(parse("tasks.build.outputs.").is_err());
        assert!(parse("tasks").is_err());
        assert!(parse("tasks.t[a=1.outputs").is_err());
    }

    #[test]
    fn secrets_and_agent_memory() {
        assert_eq!(parse("secrets.openai"), Ok(Read::Secret("openai")));
        assert!(parse("secrets").is_err());
        assert!(parse("secrets.a.b").is_err());
        assert_eq!(parse("agent.memory.*"), Ok(Read::AgentMemory));
        assert_eq!(parse("agent.memory.notes"), Ok(Read::AgentMemory));
        assert!(parse("agent.name").is_err());
    }
}
