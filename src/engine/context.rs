//! The context engine: what a task may see. Layers, later ones winning: global (config) ->
//! workflow (`[context]`, run metadata) -> task (upstream outputs) -> agent-local (memory the
//! agent kept from its earlier tasks in this run). A task gets only what it `reads`
//! (default: every context key and its direct upstreams' outputs); secrets only when read.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::{Map, Value, json};

use super::state::Run;
use crate::model::TaskIdx;
use crate::spec::TaskSpec;

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

/// What task `t` may read: the JSON object given to templates and to the process
/// (`TASKDECK_CONTEXT`). It borrows from the run where it can, so the common case (a command
/// with no template) is written straight to the context file without building a JSON tree per
/// task; [`TaskContext::to_value`] builds one for templates and agents.
pub struct TaskContext<'a> {
    context: Layer<'a>,
    tasks: Tasks<'a>,
    secrets: Map<String, Value>,
    memory: Memory<'a>,
    spec: &'a TaskSpec,
    attempt: u32,
    run: &'a Run,
    agent: &'a str,
}

/// The `context` key: every key of the merged layers (the default), or the ones `reads` names.
enum Layer<'a> {
    Merged(&'a Map<String, Value>, &'a Map<String, Value>),
    Picked(Map<String, Value>),
}

/// The `tasks` key: the direct upstreams (the default), or what `reads` names.
enum Tasks<'a> {
    Upstream(&'a Run, Cow<'a, [TaskIdx]>),
    Picked(Map<String, Value>),
}

/// The `agent.memory` key: all of it (the default), or what `reads` names.
enum Memory<'a> {
    All(Option<&'a Map<String, Value>>),
    Picked(Map<String, Value>),
}

impl TaskContext<'_> {
    /// The JSON text for the context file; an error when it is over `max_bytes`.
    pub fn to_json(&self, max_bytes: usize) -> Result<Vec<u8>, ContextError> {
        let json = serde_json::to_vec(self).unwrap_or_default();
        if json.len() > max_bytes {
            return Err(ContextError::TooLarge {
                size: json.len(),
                limit: max_bytes,
            });
        }
        Ok(json)
    }

    /// The same object as a JSON value, for templates and agents.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

impl Serialize for TaskContext<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let spec = self.spec;
        let mut m = s.serialize_map(Some(7))?;
        m.serialize_entry("context", &self.context)?;
        m.serialize_entry("tasks", &self.tasks)?;
        m.serialize_entry("secrets", &self.secrets)?;
        m.serialize_entry("matrix", &spec.matrix)?;
        let task = TaskInfo {
            id: &spec.id,
            base: &spec.base,
            attempt: self.attempt,
        };
        m.serialize_entry("task", &task)?;
        let run = RunInfo {
            id: self.run.id.as_str(),
            name: &self.run.workflow.name,
        };
        m.serialize_entry("run", &run)?;
        let agent = AgentInfo {
            name: self.agent,
            memory: &self.memory,
        };
        m.serialize_entry("agent", &agent)?;
        m.end()
    }
}

#[derive(Serialize)]
struct TaskInfo<'a> {
    id: &'a str,
    base: &'a str,
    attempt: u32,
}

#[derive(Serialize)]
struct RunInfo<'a> {
    id: &'a str,
    name: &'a str,
}

#[derive(Serialize)]
struct AgentInfo<'a> {
    name: &'a str,
    memory: &'a Memory<'a>,
}

#[derive(Serialize)]
struct TaskEntry<'a> {
    outputs: &'a Map<String, Value>,
    state: &'static str,
}

impl Serialize for Layer<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            // The config's keys in order, each with the workflow's value if it has one, then
            // the workflow's own keys: what inserting the workflow's keys into a copy gives.
            Layer::Merged(global, workflow) => {
                let mut m = s.serialize_map(None)?;
                for (k, v) in global.iter() {
                    m.serialize_entry(k, workflow.get(k).unwrap_or(v))?;
                }
                for (k, v) in workflow.iter().filter(|(k, _)| !global.contains_key(*k)) {
                    m.serialize_entry(k, v)?;
                }
                m.end()
            }
            Layer::Picked(map) => map.serialize(s),
        }
    }
}

impl Serialize for Tasks<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Tasks::Upstream(run, needs) => {
                let mut m = s.serialize_map(Some(needs.len()))?;
                for &n in needs.iter() {
                    let task = &run.tasks[n as usize];
                    let entry = TaskEntry {
                        outputs: &task.outputs,
                        state: task.state.as_str(),
                    };
                    m.serialize_entry(run.task_id(n), &entry)?;
                }
                m.end()
            }
            Tasks::Picked(map) => map.serialize(s),
        }
    }
}

impl Serialize for Memory<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Memory::All(Some(map)) => map.serialize(s),
            Memory::All(None) => s.serialize_map(Some(0))?.end(),
            Memory::Picked(map) => map.serialize(s),
        }
    }
}

/// Gathers what task `t` may read (see [`TaskContext`]); `task.prompt` is added by the caller
/// after rendering the prompt.
pub fn task_context<'a>(
    global: &'a Map<String, Value>,
    run: &'a Run,
    t: TaskIdx,
    agent: &'a str,
    attempt: u32,
    secrets: &Secrets,
) -> Result<TaskContext<'a>, ContextError> {
    let spec = &run.workflow.tasks[t as usize];
    let memory = run.agent_memory.get(agent);
    let mut doc = TaskContext {
        context: Layer::Merged(global, &run.workflow.context),
        tasks: Tasks::Upstream(run, Cow::Borrowed(&[])),
        secrets: Map::new(),
        memory: Memory::All(memory),
        spec,
        attempt,
        run,
        agent,
    };
    let Some(reads) = &spec.reads else {
        doc.tasks = Tasks::Upstream(run, unique(&spec.needs));
        return Ok(doc);
    };
    let all_context = merged_context(global, run);
    let memory = memory.cloned().unwrap_or_default();
    let mut context = Map::new();
    let mut tasks = Map::new();
    let mut agent_memory = Map::new();
    let ctx_value = Value::Object(all_context);
    for pattern in reads {
        if let Some(rest) = pattern.strip_prefix("tasks.") {
            let (id, key) = split_task_pattern(rest);
            for x in tasks_named(run, id) {
                let entry = tasks.entry(run.task_id(x).to_string()).or_insert_with(
                    || json!({"outputs": {}, "state": run.tasks[x as usize].state.as_str()}),
                );
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
                    doc.secrets
                        .insert(name.to_string(), Value::String(v.clone()));
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
    doc.context = Layer::Picked(context);
    doc.tasks = Tasks::Picked(tasks);
    doc.memory = Memory::Picked(agent_memory);
    Ok(doc)
}

/// `needs` without repeats (a task named both by id and by its matrix base), in order.
fn unique(needs: &[TaskIdx]) -> Cow<'_, [TaskIdx]> {
    let repeats = if needs.len() <= 32 {
        needs
            .iter()
            .enumerate()
            .any(|(i, n)| needs[..i].contains(n))
    } else {
        let mut seen = HashSet::with_capacity(needs.len());
        !needs.iter().all(|n| seen.insert(*n))
    };
    if !repeats {
        return Cow::Borrowed(needs);
    }
    let mut seen = HashSet::with_capacity(needs.len());
    Cow::Owned(needs.iter().copied().filter(|n| seen.insert(*n)).collect())
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
    fn merged_layers_read_like_the_config_overlaid_by_the_workflow() {
        let global = json!({"a": 1, "b": 2, "c": 3}).as_object().unwrap().clone();
        let workflow = json!({"d": 4, "b": 20}).as_object().unwrap().clone();
        let text = serde_json::to_string(&Layer::Merged(&global, &workflow)).unwrap();
        assert_eq!(text, r#"{"a":1,"b":20,"c":3,"d":4}"#);
    }

    #[test]
    fn a_task_needed_twice_is_listed_once_where_first_named() {
        assert_eq!(&*unique(&[3, 1, 3, 2, 1]), &[3, 1, 2]);
        assert!(matches!(unique(&[1, 2]), Cow::Borrowed(_)));
        let many: Vec<TaskIdx> = (0..40).chain([5, 39]).collect();
        assert_eq!(*unique(&many), *(0..40).collect::<Vec<_>>());
    }

    #[test]
    fn insert_path_builds_nested_objects() {
        let mut m = Map::new();
        insert_path(&mut m, &["a", "b"], json!(1));
        insert_path(&mut m, &["a", "c"], json!(2));
        assert_eq!(Value::Object(m), json!({"a": {"b": 1, "c": 2}}));
    }
}
