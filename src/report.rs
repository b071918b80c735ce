//! The JSON report of a run: its state, every task (state, attempts, outputs, durations,
//! agent) and every gate with its checks. Secrets never appear: outputs and errors are
//! redacted before they become events.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::engine::state::{Attempt, Run};
use crate::model::{
    AgentValue, AttemptOutcome, Branch, GateState, Millis, Resolution, RunState, TaskState,
};
use crate::spec::{GateLevel, OnFail};

#[derive(Debug, Serialize)]
pub struct Report {
    pub run: String,
    pub workflow: String,
    pub state: RunState,
    pub submitted_at: Millis,
    pub finished_at: Option<Millis>,
    pub duration_ms: Option<u64>,
    pub counts: Map<String, Value>,
    pub tasks: Vec<TaskReport>,
    pub gates: Vec<GateReport>,
    /// Where the agents of multi-agent tasks disagreed, every attempt's, in task order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<ConflictReport>,
}

#[derive(Debug, Serialize)]
pub struct ConflictReport {
    pub task: String,
    pub attempt: u32,
    pub strategy: String,
    /// The disputed output key, or the field voted on.
    pub field: String,
    pub values: Vec<AgentValue>,
    /// The agent whose value the task kept; none when nothing was (a failed vote).
    pub kept: Option<String>,
    /// Whether the attempt got its outputs despite the conflict.
    pub resolved: bool,
}

#[derive(Debug, Serialize)]
pub struct TaskReport {
    pub id: String,
    pub state: TaskState,
    pub agent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// From the first attempt's start to the end of the last one.
    pub duration_ms: Option<u64>,
    pub attempts: Vec<AttemptReport>,
    pub outputs: Map<String, Value>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub compensated: bool,
}

#[derive(Debug, Serialize)]
pub struct AttemptReport {
    pub number: u32,
    pub agent: String,
    pub started_at: Option<Millis>,
    pub finished_at: Option<Millis>,
    pub duration_ms: Option<u64>,
    pub outcome: Option<AttemptOutcome>,
    pub exit_code: Option<i32>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub error: String,
    /// Multi-agent attempts: each agent's branch (agent, outcome, outputs, error).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub branches: Vec<Branch>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolution: Option<Resolution>,
}

#[derive(Debug, Serialize)]
pub struct GateReport {
    pub id: String,
    pub level: GateLevel,
    pub on_fail: OnFail,
    pub state: GateState,
    pub after: Vec<String>,
    pub checks: Vec<CheckReport>,
}

#[derive(Debug, Serialize)]
pub struct CheckReport {
    pub name: String,
    /// `None` when the check never ran.
    pub passed: Option<bool>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
}

fn attempt_report(a: &Attempt) -> AttemptReport {
    let start = a.started_at.unwrap_or(a.assigned_at);
    AttemptReport {
        number: a.number,
        agent: a.agent.to_string(),
        started_at: a.started_at,
        finished_at: a.finished_at,
        duration_ms: a.finished_at.map(|f| f.saturating_sub(start)),
        outcome: a.outcome,
        exit_code: a.exit_code,
        error: a.error.clone(),
        branches: a.branches.clone(),
        resolution: a.resolution.clone(),
    }
}

fn conflicts_of(run: &Run) -> Vec<ConflictReport> {
    let mut out = Vec::new();
    for (t, spec) in run.tasks.iter().zip(&run.workflow.tasks) {
        for a in &t.attempts {
            let Some(r) = &a.resolution else { continue };
            for c in &r.conflicts {
                out.push(ConflictReport {
                    task: spec.id.clone(),
                    attempt: a.number,
                    strategy: r.strategy.clone(),
                    field: c.field.clone(),
                    values: c.values.clone(),
                    kept: c.kept.as_ref().map(|k| k.to_string()),
                    resolved: r.ok,
                });
            }
        }
    }
    out
}

impl Report {
    pub fn of(run: &Run) -> Report {
        let wf = &run.workflow;
        let mut counts = Map::new();
        for s in TaskState::ALL {
            let n = run.count(s);
            if n > 0 {
                counts.insert(s.as_str().into(), n.into());
            }
        }
        let tasks = run
            .tasks
            .iter()
            .zip(&wf.tasks)
            .map(|(t, spec)| {
                let first = t
                    .attempts
                    .first()
                    .map(|a| a.started_at.unwrap_or(a.assigned_at));
                let last = t.attempts.last().and_then(|a| a.finished_at);
                TaskReport {
                    id: spec.id.clone(),
                    state: t.state,
                    agent: t.last_agent().map(|a| a.to_string()),
                    reason: t.reason.clone(),
                    duration_ms: first.zip(last).map(|(f, l)| l.saturating_sub(f)),
                    attempts: t.attempts.iter().map(attempt_report).collect(),
                    outputs: t.outputs.clone(),
                    compensated: t.compensated,
                }
            })
            .collect();
        let gates = run
            .gates
            .iter()
            .zip(&wf.gates)
            .map(|(g, spec)| GateReport {
                id: spec.id.clone(),
                level: spec.level,
                on_fail: spec.on_fail,
                state: g.state,
                after: spec
                    .after
                    .iter()
                    .map(|t| run.task_id(*t).to_string())
                    .collect(),
                checks: spec
                    .checks
                    .iter()
                    .enumerate()
                    .map(|(i, c)| {
                        let r = g.results.get(i).and_then(|r| r.as_ref());
                        CheckReport {
                            name: c.name.clone(),
                            passed: r.map(|r| r.passed),
                            message: r.map(|r| r.message.clone()).unwrap_or_default(),
                        }
                    })
                    .collect(),
            })
            .collect();
        Report {
            run: run.id.to_string(),
            workflow: wf.name.clone(),
            state: run.state,
            submitted_at: run.submitted_at,
            finished_at: run.finished_at,
            duration_ms: run.finished_at.map(|f| f.saturating_sub(run.submitted_at)),
            counts,
            tasks,
            gates,
            conflicts: conflicts_of(run),
        }
    }
}
