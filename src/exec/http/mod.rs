//! `http` agents: each attempt POSTs the task assignment message (JSON) to the agent's URL.
//! The agent answers with the result at once (`200` and a result body) or accepts the work
//! (`202`) and later calls back with heartbeats, log lines and the result (see `listener`).
//! An accepted attempt with no heartbeat or result within the agent's `heartbeat_timeout` is
//! lost; cancel and timeout tell the agent through the `cancel_url` it may have given.

mod hub;
mod listener;
mod reply;

pub use hub::{Callback, CallbackHub, Registration, Undeliverable};
pub use listener::callback_router;
pub use reply::{AgentReply, parse_result};

use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::llm::{client, error_chain, error_message, retry_after, snippet};
use super::{AttemptKey, Control, ExecMsg, ExecReport, ExecRequest, ExecResult, human};
use crate::logs::LogStore;
use crate::model::{AttemptOutcome, LogStream};

/// One assignment, fully rendered; the callback channels are added per attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpCall {
    pub url: String,
    pub api_key: Option<String>,
    /// The task assignment message (see `engine::http`).
    pub message: Value,
    pub heartbeat_timeout: Duration,
    pub hub: CallbackHub,
}

pub(crate) async fn run(
    req: ExecRequest,
    call: HttpCall,
    mut control: mpsc::UnboundedReceiver<Control>,
    reports: mpsc::UnboundedSender<ExecMsg>,
    logs: LogStore,
) {
    let key = req.key.clone();
    super::report(&reports, &key, ExecReport::Started { pid: None });
    let sink = Sink {
        key: &key,
        logs: &logs,
        redactor: &req.redactor,
    };
    let cancel_at: OnceLock<String> = OnceLock::new();
    let result = {
        let work = attempt(&call, &sink, &cancel_at);
        let timed_out = super::deadline(req.timeout);
        tokio::pin!(work, timed_out);
        let mut control_open = true;
        loop {
            tokio::select! {
                r = &mut work => break r,
                _ = &mut timed_out => {
                    tell_cancel(&cancel_at, &call, &sink, "timed out");
                    break ExecResult::timed_out(None, req.timeout.unwrap_or_default());
                }
                c = control.recv(), if control_open => match c {
                    // Dropping the attempt closes the request and ends the token.
                    Some(Control::Cancel) => {
                        tell_cancel(&cancel_at, &call, &sink, "cancelled");
                        break ExecResult::cancelled(None);
                    }
                    // Work on another machine cannot be paused from here; it goes on.
                    Some(Control::Pause | Control::Resume) => {}
                    None => control_open = false,
                },
                _ = reports.closed() => break ExecResult::cancelled(None),
            }
        }
    };
    logs.finish(&key);
    super::report(&reports, &key, ExecReport::Finished(result));
}

/// Sends the assignment and waits for the result, synchronous or called back.
async fn attempt(call: &HttpCall, sink: &Sink<'_>, cancel_at: &OnceLock<String>) -> ExecResult {
    let http = match client() {
        Ok(c) => c,
        Err(e) => return failed(e),
    };
    let mut reg = match call.hub.register() {
        Ok(r) => r,
        Err(e) => return failed(e),
    };
    let base = match call.hub.base_url().await {
        Ok(b) => b,
        Err(e) => return failed(e),
    };
    let mut message = call.message.clone();
    let result_url = format!("{base}/{}", reg.token);
    message["communication_channels"] = json!({
        "result": result_url,
        "heartbeat": format!("{result_url}/heartbeat"),
        "log": format!("{result_url}/log"),
        "token": reg.token,
        "heartbeat_timeout": call.heartbeat_timeout.as_secs_f64(),
    });
    let mut rb = http.post(&call.url).json(&message);
    if let Some(k) = call.api_key.as_deref().filter(|k| !k.is_empty()) {
        rb = rb.bearer_auth(k);
    }
    let url = &call.url;
    let resp = match rb.send().await {
        Ok(r) => r,
        Err(e) => return failed(format!("cannot reach agent at {url}: {}", error_chain(&e))),
    };
    let status = resp.status();
    let retry = retry_after(resp.headers());
    let text = match resp.text().await {
        Ok(t) => t,
        Err(e) => {
            return failed(format!(
                "cannot read the agent's answer from {url}: {}",
                error_chain(&e)
            ));
        }
    };
    if status == reqwest::StatusCode::ACCEPTED {
        if let Some(u) = reply::cancel_url(&text) {
            let _ = cancel_at.set(u);
        }
        sink.system(format!(
            "accepted by {url}; waiting for its callback (heartbeat at least every {})",
            human(call.heartbeat_timeout)
        ));
        return wait_for_callback(call, &mut reg, sink).await;
    }
    if !status.is_success() {
        let mut r = failed(format!(
            "agent at {url} answered {status}: {}",
            snippet(&error_message(&text))
        ));
        if status.as_u16() == 429 || status.is_server_error() {
            r.retry_after = retry;
        }
        return r;
    }
    let parsed = serde_json::from_str::<Value>(&text)
        .map_err(|e| format!("its reply is not JSON ({e}): {}", snippet(&text)))
        .and_then(|v| parse_result(&v));
    match parsed {
        Ok(r) => finish(r, sink),
        Err(e) => failed(format!("agent at {url} sent a bad result: {e}")),
    }
}

async fn wait_for_callback(call: &HttpCall, reg: &mut Registration, sink: &Sink<'_>) -> ExecResult {
    loop {
        match tokio::time::timeout(call.heartbeat_timeout, reg.rx.recv()).await {
            Err(_) => {
                return failed(format!(
                    "agent lost: no heartbeat or result from {} for {}",
                    call.url,
                    human(call.heartbeat_timeout)
                ));
            }
            Ok(None) => return failed("the callback channel closed".into()),
            Ok(Some(Callback::Heartbeat)) => {}
            Ok(Some(Callback::Log(lines))) => sink.lines(&lines),
            Ok(Some(Callback::Result(r))) => return finish(r, sink),
        }
    }
}

fn finish(r: AgentReply, sink: &Sink<'_>) -> ExecResult {
    sink.lines(&r.log);
    if r.succeeded {
        ExecResult::succeeded(r.exit_code, r.outputs)
    } else {
        let error = if r.error.is_empty() {
            "the agent reported failure".to_string()
        } else {
            r.error
        };
        ExecResult::failed(AttemptOutcome::Failed, r.exit_code, error)
    }
}

/// Tells the agent to stop, when it gave a `cancel_url`; nobody waits for the answer.
fn tell_cancel(cancel_at: &OnceLock<String>, call: &HttpCall, sink: &Sink<'_>, why: &str) {
    let Some(u) = cancel_at.get().cloned() else {
        return;
    };
    let Ok(http) = client() else {
        return;
    };
    sink.system(format!("{why}: telling the agent at {u}"));
    let mut rb = http
        .post(&u)
        .timeout(Duration::from_secs(10))
        .json(&json!({"reason": why}));
    if let Some(k) = call.api_key.as_deref().filter(|k| !k.is_empty()) {
        rb = rb.bearer_auth(k);
    }
    tokio::spawn(async move {
        if let Err(e) = rb.send().await {
            tracing::debug!("cannot tell the agent to cancel at {u}: {e}");
        }
    });
}

fn failed(error: String) -> ExecResult {
    ExecResult::failed(AttemptOutcome::Failed, None, error)
}

/// Writes the agent's log lines (secrets masked) to the attempt's log.
struct Sink<'a> {
    key: &'a AttemptKey,
    logs: &'a LogStore,
    redactor: &'a super::Redactor,
}

impl Sink<'_> {
    fn lines(&self, lines: &[String]) {
        for l in lines {
            let l = self.redactor.redact(l).into_owned();
            self.logs.push(self.key, LogStream::Stdout, l);
        }
    }

    fn system(&self, line: String) {
        self.logs.push(self.key, LogStream::System, line);
    }
}
