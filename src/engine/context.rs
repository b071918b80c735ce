//! The context engine: what a task may see. Layers, later ones winning: global (config) ->
//! workflow (`[context]`, run metadata) -> task (upstream outputs) -> agent-local (memory the
//! agent kept from its earlier tasks in this run). A task gets only what it `reads`
//! (default: every context key and its direct upstreams' outputs); secrets only when read.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::state::Run;
use crate::model::TaskIdx;

/// Secret values of one run, resolved from the environment at submit.
pub type Secrets = HashMap<String, Result<String, String>>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContextError {
    #[error("{0}")]
    Secret(String),
    #[error(
        "the context for this task is {size} bytes, over the limit of {limit} (defaults.max_context_bytes); narrow its `reads`"
    )]
    TooLarge { size: usize, limit: usize },
}

/// The merged context layers (config, then workflow).
pub fn merged_context(global: &Map<String, Value>, run: &Run) -> Map<String, Value> {
    let mut m = global.clone();
    for (k, v) in &run.workflow.context {
        m.insert(k.clone(), v.clone());
    }
    m
}

fn task_entry(run: &Run, t: TaskIdx) -> Value {
    json!({
        "outputs": run.tasks[t as usize].outputs,
        "state": run.tasks[t as usize].state.as_str(),
    })
}

/// Inserts `value` at a dotted `path` inside `target`, creating objects on the way.
fn insert_path(target: &mut Map<String, Value>, path: &[&str], value: Value) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    if rest.is_empty() {
        target.insert(first.to_string(), value);
        return;
    }
    let entry = target
        .entry(first.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    if !entry.is_object() {
        *entry = Value::Object(Map::new());
    }
    if let Value::Object(m) = entry {
        insert_path(m, rest, value);
    }
}

fn lookup<'a>(mut v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    for p in path {
        v = v.get(p)?;
    }
    Some(v)
}

/// Task ids a `reads` pattern `tasks.ID...` names: the id itself, or every instance of a matrix base.
fn tasks_named(run: &Run, id: &str) -> Vec<TaskIdx> {
    if let Some(t) = run.index.by_id.get(id) {
        return vec![*t];
    }
    run.workflow
        .tasks
        .iter()
        .enumerate()
        .filter(|(_, t)| t.base == id)
        .map(|(i, _)| i as TaskIdx)
        .collect()
}

/// Splits `tasks.ID.outputs.KEY` into (ID, Some(KEY)); ids may contain dots only inside `[...]`.
fn split_task_pattern(rest: &str) -> (&str, Option<&str>) {
    let mut depth = 0;
    let mut end = rest.len();
    for (i, c) in rest.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            '.' if depth == 0 => {
                end = i;
                break;
            }
            _ => {}
        }
    }
    let id = &rest[..end];
    let tail = rest[end..].trim_start_matches('.');
    let key = tail
        .strip_prefix("outputs")
        .map(|k| k.trim_start_matches('.'))
        .filter(|k| !k.is_empty() && *k != "*");
    (id, key)
}

/// Builds what task `t` may read, as the JSON object given to templates and to the process
/// (`TASKDECK_CONTEXT`). `task.prompt` is filled in by the caller after rendering the prompt.
#[allow(clippy::too_many_arguments)]
pub fn task_context(
    global: &Map<String, Value>,
    run: &Run,
    t: TaskIdx,
    agent: &str,
    attempt: u32,
    secrets: &Secrets,
    max_bytes: usize,
) -> Result<Value, ContextError> {
    let spec = &run.workflow.tasks[t as usize];
    let all_context = merged_context(global, run);
    let memory = run.agent_memory.get(agent).cloned().unwrap_or_default();

    let mut context = Map::new();
    let mut tasks = Map::new();
    let mut secret_values = Map::new();
    let mut agent_memory = Map::new();
    match &spec.reads {
        None => {
            context = all_context;
            for n in &spec.needs {
                tasks.insert(run.task_id(*n).to_string(), task_entry(run, *n));
            }
            agent_memory = memory;
        }
        Some(reads) => {
            let ctx_value = Value::Object(all_context);
            for pattern in reads {
                if let Some(rest) = pattern.strip_prefix("tasks.") {
                    let (id, key) = split_task_pattern(rest);
                    for x in tasks_named(run, id) {
                        let entry = tasks
                            .entry(run.task_id(x).to_string())
                            .or_insert_with(|| json!({"outputs": {}, "state": run.tasks[x as usize].state.as_str()}));
                        let outputs = &run.tasks[x as usize].outputs;
                        if let Some(Value::Object(o)) = entry.get_mut("outputs") {
                            match key {
                                None => o.extend(outputs.clone()),
                                Some(k) => {
                                    if let Some(v) = outputs.get(k) {
                                        o.insert(k.to_string(), v.clone());
                                    }
                                }
                            }
                        }
                    }
                } else if let Some(name) = pattern.strip_prefix("secrets.") {
                    match secrets.get(name) {
                        Some(Ok(v)) => {
                            secret_values.insert(name.to_string(), Value::String(v.clone()));
                        }
                        Some(Err(e)) => return Err(ContextError::Secret(e.clone())),
                        None => {
                            return Err(ContextError::Secret(format!(
                                "secret `{name}` is not declared in [secrets]"
                            )));
                        }
                    }
                } else if let Some(rest) = pattern.strip_prefix("agent.memory") {
                    let key = rest.trim_start_matches('.');
                    if key.is_empty() || key == "*" {
                        agent_memory.extend(memory.clone());
                    } else if let Some(v) = memory.get(key) {
                        agent_memory.insert(key.to_string(), v.clone());
                    }
                } else {
                    let path = pattern.strip_prefix("context.").unwrap_or(pattern);
                    let path = path.trim_end_matches(".*");
                    let parts: Vec<&str> = path.split('.').collect();
                    if let Some(v) = lookup(&ctx_value, &parts) {
                        insert_path(&mut context, &parts, v.clone());
                    }
                }
            }
        }
    }
    let value = json!({
        "context": context,
        "tasks": tasks,
        "secrets": secret_values,
        "matrix": spec.matrix,
        "task": {
            "id": spec.id,
            "base": spec.base,
            "attempt": attempt,
        },
        "run": {"id": run.id.as_str(), "name": run.workflow.name},
        "agent": {"name": agent, "memory": agent_memory},
    });
    let size = serde_json::to_vec(&value).map(|v| v.len()).unwrap_or(0);
    if size > max_bytes {
        return Err(ContextError::TooLarge {
            size,
            limit: max_bytes,
        });
    }
    Ok(value)
}

/// Variables for `when` conditions and gate expressions: the merged context, the run, and the
/// tasks the expression names (`tasks.ID` or `tasks["ID"]`), so evaluation stays cheap on huge runs.
pub fn expression_vars(global: &Map<String, Value>, run: &Run, expr: &str) -> Value {
    let mut tasks = Map::new();
    for (i, _) in expr.match_indices("tasks") {
        let rest = &expr[i + 5..];
        let id: String = if let Some(r) = rest.strip_prefix('.') {
            r.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
                .collect()
        } else if let Some(r) = rest.strip_prefix("[\"").or_else(|| rest.strip_prefix("['")) {
            r.chars().take_while(|c| *c != '"' && *c != '\'').collect()
        } else {
            continue;
        };
        for x in tasks_named(run, &id) {
            tasks.insert(run.task_id(x).to_string(), task_entry(run, x));
        }
    }
    json!({
        "context": merged_context(global, run),
        "tasks": tasks,
        "run": {"id": run.id.as_str(), "name": run.workflow.name},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_patterns_split_on_the_first_dot_outside_brackets() {
        assert_eq!(split_task_pattern("build.outputs.*"), ("build", None));
        assert_eq!(
            split_task_pattern("build.outputs.size"),
            ("build", Some("size"))
        );
        assert_eq!(split_task_pattern("build"), ("build", None));
        assert_eq!(
            split_task_pattern("test[v=1.2].outputs.ok"),
            ("test[v=1.2]", Some("ok"))
        );
    }

    #[test]
    fn insert_path_builds_nested_objects() {
        let mut m = Map::new();
        insert_path(&mut m, &["a", "b"], json!(1));
        insert_path(&mut m, &["a", "c"], json!(2));
        assert_eq!(Value::Object(m), json!({"a": {"b": 1, "c": 2}}));
    }
}
