//! The shared vocabulary: ids, states, events and commands. The engine emits `Event`s, the store
//! journals them, the server streams them and every client folds them (see `engine::state`).

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use crate::spec::TaskIdx;
use crate::spec::Workflow;

/// Milliseconds since the Unix epoch.
pub type Millis = u64;

pub fn now_millis() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or(0)
}

/// A run's id: sortable by creation time, readable, unique enough for one store.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RunId(pub Arc<str>);

impl RunId {
    pub fn generate() -> Self {
        let now = now_millis();
        let secs = (now / 1000) as i64;
        let (y, mo, d, h, mi, s) = civil_from_unix(secs);
        RunId(
            format!(
                "{y:04}{mo:02}{d:02}-{h:02}{mi:02}{s:02}-{:04x}",
                fastrand::u16(..)
            )
            .into(),
        )
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for RunId {
    fn from(s: &str) -> Self {
        RunId(s.into())
    }
}

/// Unix seconds -> (year, month, day, hour, minute, second), UTC. (Howard Hinnant's algorithm.)
pub fn civil_from_unix(secs: i64) -> (i64, u32, u32, u32, u32, u32) {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = if m <= 2 { y + 1 } else { y };
    (
        y,
        m,
        d,
        (rem / 3600) as u32,
        (rem % 3600 / 60) as u32,
        (rem % 60) as u32,
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    Pending,
    Ready,
    Assigned,
    Running,
    Validating,
    Succeeded,
    Failed,
    Skipped,
    Cancelled,
    Paused,
    WaitingApproval,
    RetryWait,
    Blocked,
}

impl TaskState {
    pub const ALL: [TaskState; 13] = [
        TaskState::Pending,
        TaskState::Ready,
        TaskState::Assigned,
        TaskState::Running,
        TaskState::Validating,
        TaskState::Succeeded,
        TaskState::Failed,
        TaskState::Skipped,
        TaskState::Cancelled,
        TaskState::Paused,
        TaskState::WaitingApproval,
        TaskState::RetryWait,
        TaskState::Blocked,
    ];

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskState::Succeeded
                | TaskState::Failed
                | TaskState::Skipped
                | TaskState::Cancelled
                | TaskState::Blocked
        )
    }

    /// Holding an agent slot (or about to).
    pub fn is_active(self) -> bool {
        matches!(self, TaskState::Assigned | TaskState::Running)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Pending => "pending",
            TaskState::Ready => "ready",
            TaskState::Assigned => "assigned",
            TaskState::Running => "running",
            TaskState::Validating => "validating",
            TaskState::Succeeded => "succeeded",
            TaskState::Failed => "failed",
            TaskState::Skipped => "skipped",
            TaskState::Cancelled => "cancelled",
            TaskState::Paused => "paused",
            TaskState::WaitingApproval => "waiting_approval",
            TaskState::RetryWait => "retry_wait",
            TaskState::Blocked => "blocked",
        }
    }

    pub fn parse(s: &str) -> Option<TaskState> {
        TaskState::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Pending,
    Running,
    Paused,
    Succeeded,
    Failed,
    Cancelled,
}

impl RunState {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunState::Succeeded | RunState::Failed | RunState::Cancelled
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Pending => "pending",
            RunState::Running => "running",
            RunState::Paused => "paused",
            RunState::Succeeded => "succeeded",
            RunState::Failed => "failed",
            RunState::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for RunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    Succeeded,
    Failed,
    TimedOut,
    Cancelled,
    /// The process running it died (recovery marks it so).
    Interrupted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateState {
    Pending,
    Checking,
    Passed,
    Failed,
    Warned,
    /// A gated task failed or was skipped, so the gate never ran.
    Skipped,
}

impl GateState {
    pub fn as_str(self) -> &'static str {
        match self {
            GateState::Pending => "pending",
            GateState::Checking => "checking",
            GateState::Passed => "passed",
            GateState::Failed => "failed",
            GateState::Warned => "warned",
            GateState::Skipped => "skipped",
        }
    }
}

/// One journaled state change. `seq` is global and gap-free within one engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub seq: u64,
    pub ts: Millis,
    pub run: RunId,
    #[serde(flatten)]
    pub kind: EventKind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// A run was created from this workflow (secrets are names only, never values).
    RunSubmitted {
        workflow: Arc<Workflow>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        source: Option<String>,
    },
    RunPaused,
    RunResumed,
    RunCancelRequested,
    RunFinished {
        state: RunState,
    },
    TaskAssigned {
        task: TaskIdx,
        agent: Arc<str>,
        attempt: u32,
    },
    TaskStarted {
        task: TaskIdx,
        attempt: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pid: Option<u32>,
    },
    /// The task's own work finished well; gates may still hold it in `validating`.
    TaskSucceeded {
        task: TaskIdx,
        attempt: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit_code: Option<i32>,
        #[serde(default, skip_serializing_if = "Map::is_empty")]
        outputs: Map<String, Value>,
    },
    TaskFailed {
        task: TaskIdx,
        attempt: u32,
        outcome: AttemptOutcome,
        error: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit_code: Option<i32>,
        /// Set when another attempt will follow at this time.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_at: Option<Millis>,
    },
    /// A retry timer expired: the task is ready again.
    TaskRetryDue {
        task: TaskIdx,
    },
    /// The task's `when` condition held (and any approval was given): it joins the ready queue.
    TaskConditionPassed {
        task: TaskIdx,
    },
    /// The task is ready but waits for an operator's approval.
    TaskAwaitingApproval {
        task: TaskIdx,
    },
    TaskSkipped {
        task: TaskIdx,
        reason: String,
    },
    TaskCancelled {
        task: TaskIdx,
    },
    TaskPaused {
        task: TaskIdx,
    },
    TaskResumed {
        task: TaskIdx,
    },
    TaskApproved {
        task: TaskIdx,
    },
    /// Operator retry of a failed/cancelled/blocked task: it becomes pending again with a fresh
    /// attempt budget; its blocked dependents become pending too.
    TaskRetried {
        task: TaskIdx,
    },
    /// Operator re-run from a task: it and everything downstream start over.
    TaskRerun {
        task: TaskIdx,
    },
    GateStarted {
        gate: u32,
    },
    GateCheck {
        gate: u32,
        check: u32,
        passed: bool,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        message: String,
    },
    GateFinished {
        gate: u32,
        state: GateState,
    },
    CompensationStarted {
        task: TaskIdx,
    },
    /// The engine that ran this attempt died; recovery ends the attempt as `interrupted` and
    /// the task is ready for a new one (it does not count against the retry budget).
    TaskInterrupted {
        task: TaskIdx,
        attempt: u32,
    },
    /// The engine died while this gate's checks ran; recovery checks it again.
    GateInterrupted {
        gate: u32,
    },
    CompensationFinished {
        task: TaskIdx,
        ok: bool,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        error: String,
    },
    /// A multi-agent attempt gave one branch (or its judge) to an agent: it holds a slot there.
    BranchAssigned {
        task: TaskIdx,
        attempt: u32,
        branch: u32,
        agent: Arc<str>,
        #[serde(default, skip_serializing_if = "is_false")]
        judge: bool,
    },
    /// A branch ended; its slot is free again.
    BranchFinished {
        task: TaskIdx,
        attempt: u32,
        branch: u32,
        outcome: AttemptOutcome,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit_code: Option<i32>,
        #[serde(default, skip_serializing_if = "Map::is_empty")]
        outputs: Map<String, Value>,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        error: String,
    },
    /// How a multi-agent attempt's branches were resolved (the task's success or failure
    /// follows).
    TaskResolved {
        task: TaskIdx,
        attempt: u32,
        resolution: Resolution,
    },
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// One agent's run within a multi-agent attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Branch {
    pub agent: Arc<str>,
    /// The judge that resolves the other branches (it runs once they are done).
    #[serde(default, skip_serializing_if = "is_false")]
    pub judge: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Millis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<AttemptOutcome>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub outputs: Map<String, Value>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
}

/// How a multi-agent attempt's outputs were decided.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resolution {
    /// first | merge | majority | judge
    pub strategy: String,
    /// Whether the task got outputs from it (a failed vote does not).
    pub ok: bool,
    /// The agent whose outputs became the task's (none for a merge of several).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub winner: Option<Arc<str>>,
    /// One line for people: what was decided and why.
    pub summary: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<Conflict>,
}

/// Agents that disagreed on one output (or vote).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conflict {
    /// The output key, or the field voted on.
    pub field: String,
    /// What each agent said, in branch order (`null` when it gave no value).
    pub values: Vec<AgentValue>,
    /// The agent whose value was kept; none when nothing was (a failed vote).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept: Option<Arc<str>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentValue {
    pub agent: Arc<str>,
    pub value: Value,
}

impl EventKind {
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::RunSubmitted { .. } => "run_submitted",
            EventKind::RunPaused => "run_paused",
            EventKind::RunResumed => "run_resumed",
            EventKind::RunCancelRequested => "run_cancel_requested",
            EventKind::RunFinished { .. } => "run_finished",
            EventKind::TaskAssigned { .. } => "task_assigned",
            EventKind::TaskStarted { .. } => "task_started",
            EventKind::TaskSucceeded { .. } => "task_succeeded",
            EventKind::TaskFailed { .. } => "task_failed",
            EventKind::TaskRetryDue { .. } => "task_retry_due",
            EventKind::TaskConditionPassed { .. } => "task_condition_passed",
            EventKind::TaskAwaitingApproval { .. } => "task_awaiting_approval",
            EventKind::TaskSkipped { .. } => "task_skipped",
            EventKind::TaskCancelled { .. } => "task_cancelled",
            EventKind::TaskPaused { .. } => "task_paused",
            EventKind::TaskResumed { .. } => "task_resumed",
            EventKind::TaskApproved { .. } => "task_approved",
            EventKind::TaskRetried { .. } => "task_retried",
            EventKind::TaskRerun { .. } => "task_rerun",
            EventKind::GateStarted { .. } => "gate_started",
            EventKind::GateCheck { .. } => "gate_check",
            EventKind::GateFinished { .. } => "gate_finished",
            EventKind::CompensationStarted { .. } => "compensation_started",
            EventKind::TaskInterrupted { .. } => "task_interrupted",
            EventKind::GateInterrupted { .. } => "gate_interrupted",
            EventKind::CompensationFinished { .. } => "compensation_finished",
            EventKind::BranchAssigned { .. } => "branch_assigned",
            EventKind::BranchFinished { .. } => "branch_finished",
            EventKind::TaskResolved { .. } => "task_resolved",
        }
    }

    /// The task this event is about, if any.
    pub fn task(&self) -> Option<TaskIdx> {
        match self {
            EventKind::TaskAssigned { task, .. }
            | EventKind::TaskStarted { task, .. }
            | EventKind::TaskSucceeded { task, .. }
            | EventKind::TaskFailed { task, .. }
            | EventKind::TaskRetryDue { task }
            | EventKind::TaskConditionPassed { task }
            | EventKind::TaskAwaitingApproval { task }
            | EventKind::TaskSkipped { task, .. }
            | EventKind::TaskCancelled { task }
            | EventKind::TaskPaused { task }
            | EventKind::TaskResumed { task }
            | EventKind::TaskApproved { task }
            | EventKind::TaskRetried { task }
            | EventKind::TaskRerun { task }
            | EventKind::CompensationStarted { task }
            | EventKind::TaskInterrupted { task, .. }
            | EventKind::CompensationFinished { task, .. }
            | EventKind::BranchAssigned { task, .. }
            | EventKind::BranchFinished { task, .. }
            | EventKind::TaskResolved { task, .. } => Some(*task),
            _ => None,
        }
    }
}

/// What operators (TUI, API, CLI) ask of the engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Command {
    PauseRun { run: RunId },
    ResumeRun { run: RunId },
    CancelRun { run: RunId },
    PauseTask { run: RunId, task: String },
    ResumeTask { run: RunId, task: String },
    CancelTask { run: RunId, task: String },
    RetryTask { run: RunId, task: String },
    RerunFrom { run: RunId, task: String },
    Approve { run: RunId, task: String },
}

impl Command {
    pub fn run(&self) -> &RunId {
        match self {
            Command::PauseRun { run }
            | Command::ResumeRun { run }
            | Command::CancelRun { run }
            | Command::PauseTask { run, .. }
            | Command::ResumeTask { run, .. }
            | Command::CancelTask { run, .. }
            | Command::RetryTask { run, .. }
            | Command::RerunFrom { run, .. }
            | Command::Approve { run, .. } => run,
        }
    }
}

/// One line of a task attempt's output (or of the engine's own log when `task` is `None`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    pub run: RunId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<TaskIdx>,
    pub attempt: u32,
    pub ts: Millis,
    pub stream: LogStream,
    pub line: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogStream {
    Stdout,
    Stderr,
    /// Written by taskdeck itself (start, exit, gate results).
    System,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_unix(0), (1970, 1, 1, 0, 0, 0));
        assert_eq!(civil_from_unix(951_782_400), (2000, 2, 29, 0, 0, 0));
        assert_eq!(civil_from_unix(1_795_445_999), (2026, 11, 23, 14, 59, 59));
    }

    #[test]
    fn task_state_round_trips_through_its_name() {
        for s in TaskState::ALL {
            assert_eq!(TaskState::parse(s.as_str()), Some(s));
        }
    }

    #[test]
    fn event_json_is_flat_and_tagged() {
        let ev = Event {
            seq: 7,
            ts: 1,
            run: RunId::from("r1"),
            kind: EventKind::TaskStarted {
                task: 3,
                attempt: 1,
                pid: None,
            },
        };
        let json = serde_json::to_value(&ev).unwrap();
        assert_eq!(json["type"], "task_started");
        assert_eq!(json["seq"], 7);
        let back: Event = serde_json::from_value(json).unwrap();
        assert_eq!(back, ev);
    }
}
