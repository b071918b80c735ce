//! What the MCP tools answer, as JSON shaped for an assistant to read: pure functions of a
//! run's state, no I/O. Long values are cut so one answer stays small enough for a model's
//! context; the full text is always one more call away (`task_log`, `taskdeck report`).

use serde_json::{Map, Value, json};

use crate::engine::state::{Run, Task};
use crate::history::HistoryEntry;
use crate::model::{LogLine, LogStream, TaskState};

/// Longest string value shown in an outputs summary, in characters.
pub const MAX_VALUE_CHARS: usize = 200;
/// Longest log line shown, in characters (a minified file printed on one line).
pub const MAX_LINE_CHARS: usize = 2_000;

/// A run at a glance: its state, task counts per state, and the tasks that need someone
/// (failed, waiting for approval) or are under way.
pub fn run_status(run: &Run, live: bool) -> Value {
    let mut counts: Map<String, Value> = Map::new();
    for state in TaskState::ALL {
        let n = run.tasks.iter().filter(|t| t.state == state).count();
        if n > 0 {
            counts.insert(state.as_str().into(), n.into());
        }
    }
    let pick = |wanted: &[TaskState]| -> Vec<Value> {
        run.tasks
            .iter()
            .enumerate()
            .filter(|(_, t)| wanted.contains(&t.state))
            .map(|(i, t)| attention(run, i, t))
            .collect()
    };
    let mut out = json!({
        "run": run.id.as_str(),
        "workflow": run.workflow.name,
        "state": run.state.as_str(),
        "finished": run.state.is_terminal(),
        "live": live,
        "submitted_at_ms": run.submitted_at,
        "tasks": run.tasks.len(),
        "counts": counts,
    });
    if let Some(end) = run.finished_at {
        out["finished_at_ms"] = end.into();
        out["duration_ms"] = end.saturating_sub(run.submitted_at).into();
    }
    let failed = pick(&[TaskState::Failed]);
    if !failed.is_empty() {
        out["failed"] = failed.into();
    }
    let waiting = pick(&[TaskState::WaitingApproval]);
    if !waiting.is_empty() {
        out["waiting_approval"] = waiting.into();
    }
    let active = pick(&[
        TaskState::Assigned,
        TaskState::Running,
        TaskState::Validating,
        TaskState::RetryWait,
        TaskState::Paused,
    ]);
    if !active.is_empty() {
        out["active"] = active.into();
    }
    if !live && !run.state.is_terminal() {
        out["note"] =
            "nobody executes this run now (it was interrupted): `resume` takes it over".into();
    }
    out
}

/// One line about a task worth a look: id, state, its last attempt's agent and error.
fn attention(run: &Run, idx: usize, task: &Task) -> Value {
    let mut v = json!({ "task": run.workflow.tasks[idx].id, "state": task.state.as_str() });
    let last = task.attempts.last();
    if let Some(a) = last {
        v["attempt"] = a.number.into();
        v["agent"] = a.agent.as_ref().into();
        if !a.error.is_empty() {
            v["error"] = a.error.clone().into();
        }
    }
    if let Some(r) = &task.reason
        && last.is_none_or(|a| a.error != *r)
    {
        v["reason"] = r.clone().into();
    }
    v
}

/// Every task of a run (only those in `state`, when given): state, needs, attempts with agent,
/// outcome, exit code and error, and a summary of its outputs.
pub fn task_rows(run: &Run, state: Option<TaskState>) -> Vec<Value> {
    run.tasks
        .iter()
        .enumerate()
        .filter(|(_, t)| state.is_none_or(|s| t.state == s))
        .map(|(i, t)| task_row(run, i, t))
        .collect()
}

fn task_row(run: &Run, idx: usize, task: &Task) -> Value {
    let spec = &run.workflow.tasks[idx];
    let needs: Vec<&str> = spec
        .needs
        .iter()
        .map(|&n| run.workflow.tasks[n as usize].id.as_str())
        .collect();
    let attempts: Vec<Value> = task
        .attempts
        .iter()
        .map(|a| {
            let mut v = json!({ "number": a.number, "agent": a.agent.as_ref() });
            if let Some(o) = a.outcome {
                v["outcome"] = serde_json::to_value(o).unwrap_or(Value::Null);
            }
            if let Some(c) = a.exit_code {
                v["exit_code"] = c.into();
            }
            if let (Some(s), Some(e)) = (a.started_at, a.finished_at) {
                v["duration_ms"] = e.saturating_sub(s).into();
            }
            if !a.error.is_empty() {
                v["error"] = a.error.clone().into();
            }
            v
        })
        .collect();
    let mut v = json!({
        "task": spec.id,
        "state": task.state.as_str(),
        "needs": needs,
        "attempts": attempts,
    });
    if let Some(a) = task.attempts.last() {
        v["agent"] = a.agent.as_ref().into();
    } else if let Some(agent) = &spec.agent {
        v["agent"] = agent.clone().into();
    }
    if spec.approval {
        v["approval"] = json!({ "required": true, "approved": task.approved });
    }
    if let Some(r) = &task.reason
        && task.attempts.last().is_none_or(|a| a.error != *r)
    {
        v["reason"] = r.clone().into();
    }
    if !task.outputs.is_empty() {
        v["outputs"] = summarize_outputs(&task.outputs, MAX_VALUE_CHARS);
    }
    v
}

/// Outputs with long strings cut to `max` characters (marked with how much was left out) and
/// big arrays and objects replaced by their size: enough to decide what to read next.
pub fn summarize_outputs(outputs: &Map<String, Value>, max: usize) -> Value {
    Value::Object(
        outputs
            .iter()
            .map(|(k, v)| (k.clone(), summarize(v, max)))
            .collect(),
    )
}

fn summarize(v: &Value, max: usize) -> Value {
    match v {
        Value::String(s) => Value::String(cut(s, max)),
        Value::Array(a) if v.to_string().len() > max => {
            format!("[array of {} items]", a.len()).into()
        }
        Value::Object(o) if v.to_string().len() > max => {
            let keys: Vec<&str> = o.keys().map(String::as_str).take(10).collect();
            format!("{{object with {} keys: {}}}", o.len(), keys.join(", ")).into()
        }
        other => other.clone(),
    }
}

/// `s` cut to `max` characters, saying how many were left out.
fn cut(s: &str, max: usize) -> String {
    let total = s.chars().count();
    if total <= max {
        return s.to_string();
    }
    let head: String = s.chars().take(max).collect();
    format!("{head}… ({} more characters)", total - max)
}

/// A store's run list entry.
pub fn history_row(e: &HistoryEntry) -> Value {
    let mut v = json!({
        "run": e.id.as_str(),
        "workflow": e.workflow,
        "version": e.version_no,
        "state": e.state,
        "submitted_at_ms": e.submitted_at,
        "tasks": e.tasks,
        "counts": e.counts,
    });
    if let Some(end) = e.finished_at {
        v["duration_ms"] = end.saturating_sub(e.submitted_at).into();
    }
    v
}

/// The last `tail` lines of a log (all of them when `tail` is 0), each prefixed by its stream
/// when it is not stdout, and a header that says what was left out.
pub fn log_text(task: &str, attempt: u32, lines: &[LogLine], tail: usize) -> String {
    let skip = if tail == 0 {
        0
    } else {
        lines.len().saturating_sub(tail)
    };
    let mut out = if lines.is_empty() {
        format!("task `{task}` attempt {attempt}: no output")
    } else if skip > 0 {
        format!(
            "task `{task}` attempt {attempt}: last {} of {} lines",
            lines.len() - skip,
            lines.len()
        )
    } else {
        format!("task `{task}` attempt {attempt}: {} lines", lines.len())
    };
    for l in &lines[skip..] {
        out.push('\n');
        match l.stream {
            LogStream::Stdout => {}
            LogStream::Stderr => out.push_str("[stderr] "),
            LogStream::System => out.push_str("[taskdeck] "),
        }
        out.push_str(&cut(&l.line, MAX_LINE_CHARS));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RunId;

    fn line(text: &str, stream: LogStream) -> LogLine {
        LogLine {
            run: RunId::from("r"),
            task: Some(0),
            attempt: 1,
            ts: 0,
            stream,
            line: text.into(),
        }
    }

    #[test]
    fn log_tail_keeps_the_last_lines_and_says_so() {
        let lines = vec![
            line("one", LogStream::Stdout),
            line("two", LogStream::Stderr),
            line("exit 0", LogStream::System),
        ];
        assert_eq!(
            log_text("build", 1, &lines, 2),
            "task `build` attempt 1: last 2 of 3 lines\n[stderr] two\n[taskdeck] exit 0"
        );
        assert_eq!(
            log_text("build", 1, &lines, 0),
            "task `build` attempt 1: 3 lines\none\n[stderr] two\n[taskdeck] exit 0"
        );
        assert_eq!(
            log_text("build", 2, &[], 10),
            "task `build` attempt 2: no output"
        );
    }

    #[test]
    fn outputs_summary_cuts_long_values() {
        let mut outputs = Map::new();
        outputs.insert("short".into(), "ok".into());
        outputs.insert("long".into(), "é".repeat(12).into());
        outputs.insert("n".into(), 3.into());
        outputs.insert("list".into(), json!([1, 2, 3, 4, 5, 6, 7, 8]));
        outputs.insert("obj".into(), json!({"a": "xxxxxxxx", "b": 2}));
        let v = summarize_outputs(&outputs, 10);
        assert_eq!(v["short"], "ok");
        assert_eq!(
            v["long"],
            format!("{}… (2 more characters)", "é".repeat(10))
        );
        assert_eq!(v["n"], 3);
        assert_eq!(v["list"], "[array of 8 items]");
        assert_eq!(v["obj"], "{object with 2 keys: a, b}");
    }
}
