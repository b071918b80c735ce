//! Executors: carry out one task attempt (a process or a builtin) and report back.
//! The engine renders templates and builds the context first; executors only run things.

mod builtin;
mod cmdline;
mod command;
#[cfg(target_os = "linux")]
mod fork;
mod group;
pub mod guardian;
pub mod http;
mod lines;
mod llm;
mod outputs;
pub mod probe;

pub use builtin::{FAIL_MESSAGE, run_instant};
pub use cmdline::{CmdlineError, Invocation, needs_shell, plan};
pub use command::{CONTEXT_SUFFIX, OUTPUT_SUFFIX};
pub use lines::MAX_LINE_BYTES;
pub use llm::{LlmCall, parse_json as parse_json_reply};
pub use outputs::{OutputsError, parse as parse_outputs};

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::sync::mpsc;

use crate::model::{AttemptOutcome, RunId, TaskIdx};
use crate::spec::Builtin;

/// What to run, fully rendered.
#[derive(Debug, Clone, PartialEq)]
pub enum Work {
    /// A command line: exec'd directly when it has no shell metacharacters, else `sh -c`.
    Command(String),
    Builtin(Builtin),
    /// A chat completion for an `llm` agent.
    Llm(Box<LlmCall>),
    /// A task assignment POSTed to an `http` agent.
    Http(Box<http::HttpCall>),
}

/// Which attempt a report or log line belongs to. Gate checks and compensations use their own
/// `task` numbering space via `Purpose`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AttemptKey {
    pub run: RunId,
    pub task: TaskIdx,
    pub attempt: u32,
    pub purpose: Purpose,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    Task,
    /// Check `check` of gate `gate`.
    GateCheck {
        gate: u32,
        check: u32,
    },
    Compensation,
    /// Branch `branch` of a multi-agent task attempt (its log lines join the attempt's log,
    /// prefixed with the agent's name).
    Branch {
        branch: u32,
    },
}

#[derive(Debug, Clone)]
pub struct ExecRequest {
    pub key: AttemptKey,
    /// The task's id (for `TASKDECK_TASK_ID`).
    pub task_id: String,
    pub work: Work,
    /// Extra environment (agent env, then task env), already rendered.
    pub env: Vec<(String, String)>,
    pub cwd: Option<PathBuf>,
    pub timeout: Option<Duration>,
    /// Time between TERM and KILL.
    pub kill_grace: Duration,
    /// Exactly what the task may read, as the JSON text written to the file named by
    /// `TASKDECK_CONTEXT`.
    pub context: Vec<u8>,
    /// A private directory (mode 0700, created when first needed) shared by the run's
    /// attempts; this attempt's context and outputs files are named by `scratch_name` in it, so
    /// an attempt costs no directory of its own.
    pub scratch_dir: PathBuf,
    /// Stem of this attempt's scratch files (`task-4.2`), unique within `scratch_dir`.
    pub scratch_name: String,
    pub redactor: Arc<Redactor>,
    pub max_output_bytes: usize,
}

impl ExecRequest {
    /// The file named by `TASKDECK_CONTEXT`.
    pub fn context_path(&self) -> PathBuf {
        self.scratch_file(CONTEXT_SUFFIX)
    }

    /// The file named by `TASKDECK_OUTPUT`.
    pub fn output_path(&self) -> PathBuf {
        self.scratch_file(OUTPUT_SUFFIX)
    }

    fn scratch_file(&self, suffix: &str) -> PathBuf {
        let mut name = String::with_capacity(self.scratch_name.len() + suffix.len());
        name.push_str(&self.scratch_name);
        name.push_str(suffix);
        self.scratch_dir.join(name)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ExecResult {
    pub outcome: AttemptOutcome,
    pub exit_code: Option<i32>,
    pub outputs: Map<String, Value>,
    /// Why it failed, for people (empty on success).
    pub error: String,
    /// How long the other side asked us to wait before trying again (HTTP `Retry-After`).
    pub retry_after: Option<Duration>,
}

impl ExecResult {
    pub fn succeeded(exit_code: Option<i32>, outputs: Map<String, Value>) -> Self {
        ExecResult {
            outcome: AttemptOutcome::Succeeded,
            exit_code,
            outputs,
            error: String::new(),
            retry_after: None,
        }
    }

    /// Any outcome but success; outputs are dropped.
    pub fn failed(outcome: AttemptOutcome, exit_code: Option<i32>, error: String) -> Self {
        ExecResult {
            outcome,
            exit_code,
            outputs: Map::new(),
            error,
            retry_after: None,
        }
    }

    pub fn timed_out(exit_code: Option<i32>, after: Duration) -> Self {
        Self::failed(
            AttemptOutcome::TimedOut,
            exit_code,
            format!("timed out after {}", human(after)),
        )
    }

    pub fn cancelled(exit_code: Option<i32>) -> Self {
        Self::failed(
            AttemptOutcome::Cancelled,
            exit_code,
            "cancelled".to_string(),
        )
    }
}

/// `5s`, `200ms`, `1m 30s`.
pub(crate) fn human(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// Sleeps until `timeout` has passed, or forever without one.
pub(crate) async fn deadline(timeout: Option<Duration>) {
    match timeout {
        Some(t) => tokio::time::sleep(t).await,
        None => std::future::pending().await,
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ExecReport {
    Started { pid: Option<u32> },
    Finished(ExecResult),
}

#[derive(Debug)]
pub struct ExecMsg {
    pub key: AttemptKey,
    pub report: ExecReport,
}

/// Sends one attempt's reports to the engine. A closed channel means the engine is gone; the
/// attempt still cleans up after itself, so the error is not interesting.
pub(crate) fn report(
    reports: &mpsc::UnboundedSender<ExecMsg>,
    key: &AttemptKey,
    report: ExecReport,
) {
    let _ = reports.send(ExecMsg {
        key: key.clone(),
        report,
    });
}

/// Operator control of a running attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Cancel,
    Pause,
    Resume,
}

/// Handle to a running attempt; dropping it does not stop the attempt.
#[derive(Debug, Clone)]
pub struct ExecHandle {
    pub control: mpsc::UnboundedSender<Control>,
}

impl ExecHandle {
    pub fn send(&self, c: Control) {
        // The attempt may have finished already; then there is nothing to control.
        let _ = self.control.send(c);
    }
}

/// Masks secret values (`***`) in anything shown or stored.
#[derive(Debug, Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Self {
        let mut secrets: Vec<String> = secrets.into_iter().filter(|s| !s.is_empty()).collect();
        // Longest first, so a secret containing another is masked whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Redactor { secrets }
    }

    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        if !self.secrets.iter().any(|s| text.contains(s.as_str())) {
            return Cow::Borrowed(text);
        }
        let mut out = text.to_string();
        for s in &self.secrets {
            out = out.replace(s.as_str(), "***");
        }
        Cow::Owned(out)
    }

    /// Masks secrets in every string inside a JSON value.
    pub fn redact_json(&self, v: &mut Value) {
        if self.secrets.is_empty() {
            return;
        }
        match v {
            Value::String(s) => {
                if let Cow::Owned(r) = self.redact(s) {
                    *s = r;
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|x| self.redact_json(x)),
            Value::Object(o) => o.values_mut().for_each(|x| self.redact_json(x)),
            _ => {}
        }
    }

    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }
}

/// Starts an attempt. Reports (`Started`, then exactly one `Finished`) go to `reports`;
/// output lines go to `logs`. `Started` is sent even when the process cannot start (with no pid),
/// so every attempt reports the same two steps.
///
/// A command's process is started right here, on the caller's thread, and `Started` is queued
/// before this returns: the engine finds it on its next look at the channel instead of being
/// woken for it by another thread. Supervision then goes on in a task of its own.
///
/// Call it from async code on the runtime (not from `spawn_blocking`): without the guardian the
/// child dies with the thread that forked it (`PR_SET_PDEATHSIG`), so that must be a long-lived
/// worker thread.
pub fn spawn(
    req: ExecRequest,
    reports: mpsc::UnboundedSender<ExecMsg>,
    logs: crate::logs::LogStore,
) -> ExecHandle {
    let (control, rx) = mpsc::unbounded_channel();
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        // No runtime to run on: fail the attempt rather than panic.
        let key = req.key;
        let _ = reports.send(ExecMsg {
            key: key.clone(),
            report: ExecReport::Started { pid: None },
        });
        let _ = reports.send(ExecMsg {
            key,
            report: ExecReport::Finished(ExecResult::failed(
                AttemptOutcome::Failed,
                None,
                "internal error: executor started outside the async runtime".to_string(),
            )),
        });
        return ExecHandle { control };
    };
    match req.work.clone() {
        Work::Command(line) => {
            let child = command::start_reported(&req, &line, &reports, &logs);
            rt.spawn(command::run(req, child, rx, reports, logs))
        }
        Work::Builtin(b) => rt.spawn(builtin::run(req, b, rx, reports, logs)),
        Work::Llm(call) => rt.spawn(llm::run(req, *call, rx, reports, logs)),
        Work::Http(call) => rt.spawn(http::run(req, *call, rx, reports, logs)),
    };
    ExecHandle { control }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redactor_masks_every_secret_longest_first() {
        let r = Redactor::new(["abc".to_string(), "abcdef".to_string(), String::new()]);
        assert_eq!(r.redact("x abcdef y abc"), "x *** y ***");
        assert!(matches!(r.redact("nothing"), Cow::Borrowed(_)));
        let mut v = serde_json::json!({"a": ["abc", 1], "b": "zabc"});
        r.redact_json(&mut v);
        assert_eq!(v, serde_json::json!({"a": ["***", 1], "b": "z***"}));
    }
}
