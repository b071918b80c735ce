//! Builtin tasks (`noop`, `fail`, `sleep`, `echo`): no process, no context or outputs files.

use std::time::Duration;

use serde_json::{Map, Value};
use tokio::sync::mpsc;

use super::{Control, ExecMsg, ExecReport, ExecRequest, ExecResult};
use crate::logs::LogStore;
use crate::model::{AttemptOutcome, LogStream};
use crate::spec::Builtin;

pub const FAIL_MESSAGE: &str = "builtin fail: this task fails on purpose";

/// The result of a builtin that needs no time (`noop`, `fail`, `echo`), computed on the spot so
/// the engine can finish huge numbers of them without spawning anything. The second value is a
/// stdout log line the caller should push (redacted) to the attempt's log: `echo`'s text.
/// `None` for `sleep`, which must go through `spawn`.
pub fn run_instant(b: &Builtin) -> Option<(ExecResult, Option<String>)> {
    match b {
        Builtin::Noop => Some((ExecResult::succeeded(None, Map::new()), None)),
        Builtin::Fail => Some((
            ExecResult::failed(AttemptOutcome::Failed, None, FAIL_MESSAGE.to_string()),
            None,
        )),
        Builtin::Echo(text) => {
            let mut outputs = Map::new();
            outputs.insert("text".to_string(), Value::String(text.clone()));
            Some((ExecResult::succeeded(None, outputs), Some(text.clone())))
        }
        Builtin::Sleep(_) => None,
    }
}

/// Runs a builtin attempt as a task of its own, reporting like a process would.
pub(super) async fn run(
    req: ExecRequest,
    b: Builtin,
    mut control: mpsc::UnboundedReceiver<Control>,
    reports: mpsc::UnboundedSender<ExecMsg>,
    logs: LogStore,
) {
    let key = req.key.clone();
    let send = |r| super::report(&reports, &key, r);
    send(ExecReport::Started { pid: None });
    let result = match run_instant(&b) {
        Some((result, line)) => {
            if let Some(line) = line {
                logs.push(
                    &key,
                    LogStream::Stdout,
                    req.redactor.redact(&line).into_owned(),
                );
            }
            result
        }
        None => {
            let wait = match b {
                Builtin::Sleep(d) => d,
                _ => Duration::ZERO,
            };
            sleep(wait, req.timeout, &mut control, &reports).await
        }
    };
    logs.finish(&key);
    send(ExecReport::Finished(result));
}

async fn sleep(
    wait: Duration,
    timeout: Option<Duration>,
    control: &mut mpsc::UnboundedReceiver<Control>,
    reports: &mpsc::UnboundedSender<ExecMsg>,
) -> ExecResult {
    let done = tokio::time::sleep(wait);
    let timed_out = super::deadline(timeout);
    tokio::pin!(done, timed_out);
    let mut control_open = true;
    loop {
        tokio::select! {
            _ = &mut done => return ExecResult::succeeded(None, Map::new()),
            _ = &mut timed_out => {
                return ExecResult::timed_out(None, timeout.unwrap_or_default());
            }
            c = control.recv(), if control_open => match c {
                Some(Control::Cancel) => return ExecResult::cancelled(None),
                // Nothing runs, so there is nothing to stop.
                Some(Control::Pause | Control::Resume) => {}
                None => control_open = false,
            },
            _ = reports.closed() => return ExecResult::cancelled(None),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn instant_builtins() {
        let (r, line) = run_instant(&Builtin::Noop).unwrap();
        assert_eq!((r.outcome, line), (AttemptOutcome::Succeeded, None));
        let (r, _) = run_instant(&Builtin::Fail).unwrap();
        assert_eq!(r.outcome, AttemptOutcome::Failed);
        assert_eq!(r.error, FAIL_MESSAGE);
        let (r, line) = run_instant(&Builtin::Echo("hi".into())).unwrap();
        assert_eq!(line.as_deref(), Some("hi"));
        assert_eq!(Value::Object(r.outputs), serde_json::json!({"text": "hi"}));
        assert!(run_instant(&Builtin::Sleep(Duration::from_secs(1))).is_none());
    }
}
