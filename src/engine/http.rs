//! What an `http` agent is sent for a task: the task assignment message, shaped after the seeds'
//! agent protocol (`message_type = "task_assignment"`), plus the rendered API key.

use serde_json::{Value, json};

use super::context::Secrets;
use super::state::Run;
use crate::exec::http::{CallbackHub, HttpCall};
use crate::model::TaskIdx;
use crate::spec::{AgentSpec, CheckKind, DEFAULT_HEARTBEAT_TIMEOUT, ReplyFormat};

/// The work itself: a `run` command line or a `prompt`, both rendered.
pub enum Assigned {
    Command(String),
    Prompt(String),
}

pub struct Assignment<'a> {
    pub run: &'a Run,
    pub task: TaskIdx,
    pub agent: &'a str,
    pub attempt: u32,
    pub work: Assigned,
    /// Exactly what the task may read.
    pub context: &'a Value,
}

/// The call for one attempt.
pub fn call(
    a: Assignment<'_>,
    spec: &AgentSpec,
    secrets: &Secrets,
    hub: &CallbackHub,
) -> Result<HttpCall, String> {
    let url = spec
        .url
        .clone()
        .ok_or_else(|| format!("agent `{}` has no `url`", a.agent))?;
    let api_key = match &spec.api_key {
        Some(t) => Some(super::llm::render_api_key(a.agent, t, secrets, a.context)?),
        None => None,
    };
    Ok(HttpCall {
        url,
        api_key,
        message: message(&a),
        heartbeat_timeout: spec.heartbeat_timeout.unwrap_or(DEFAULT_HEARTBEAT_TIMEOUT),
        hub: hub.clone(),
    })
}

/// The assignment message (without the per-attempt `communication_channels`).
pub fn message(a: &Assignment<'_>) -> Value {
    let run = a.run;
    let spec = &run.workflow.tasks[a.task as usize];
    let mut details = json!({
        "priority": spec.priority,
        "timeout": spec.timeout.map(|t| t.as_secs_f64()),
        "retry_policy": spec.retry,
    });
    match &a.work {
        Assigned::Command(c) => {
            details["kind"] = json!("run");
            details["command"] = json!(c);
        }
        Assigned::Prompt(p) => {
            details["kind"] = json!("prompt");
            details["prompt"] = json!(p);
        }
    }
    // The checks of the gates after this task are what its work will be judged by.
    let tests: Vec<Value> = run
        .workflow
        .gates
        .iter()
        .filter(|g| g.after.contains(&a.task))
        .flat_map(|g| {
            g.checks.iter().map(|c| match &c.kind {
                CheckKind::Expr(e) => json!({"gate": g.id, "name": c.name, "expr": e}),
                CheckKind::Run(r) => json!({"gate": g.id, "name": c.name, "run": r}),
            })
        })
        .collect();
    let mut output = json!({
        "format": if spec.format == ReplyFormat::Json { "json" } else { "text" },
    });
    if let Some(s) = &spec.schema {
        output["schema"] = s.clone();
    }
    json!({
        "message_type": "task_assignment",
        "message_id": format!("{}/{}/{}", run.id, spec.id, a.attempt),
        "timestamp": crate::model::now_millis(),
        "workflow_id": run.id,
        "workflow": run.workflow.name,
        "run_id": run.id,
        "task_id": spec.id,
        "attempt": a.attempt,
        "assigned_agent": a.agent,
        "task_details": details,
        "context": a.context,
        "success_criteria": {
            "acceptance_tests": tests,
            "output_requirements": output,
        },
    })
}
