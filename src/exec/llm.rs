//! `llm` agents: one OpenAI-compatible chat completion per attempt. The reply is streamed (SSE)
//! into the task log line by line; a server that answers with one JSON body instead is read the
//! same way. Outputs: `text`, `json` (when the task asks for JSON), `usage`, `latency_ms`.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use super::{AttemptKey, Control, ExecMsg, ExecReport, ExecRequest, ExecResult, MAX_LINE_BYTES};
use crate::logs::LogStore;
use crate::model::{AttemptOutcome, LogStream};
use crate::spec::ReplyFormat;

/// One chat completion, fully rendered.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmCall {
    /// Base URL (`http://127.0.0.1:8080/v1`); `/chat/completions` is appended.
    pub endpoint: String,
    pub model: String,
    pub api_key: Option<String>,
    pub system: Option<String>,
    pub prompt: String,
    pub temperature: Option<f64>,
    pub max_tokens: Option<u32>,
    pub format: ReplyFormat,
    /// JSON Schema the parsed reply must match.
    pub schema: Option<Value>,
}

/// How much of an error body goes into a message.
const BODY_SNIPPET: usize = 300;

/// Shared by every attempt: connection reuse, and rustls set up once.
pub(super) fn client() -> Result<&'static reqwest::Client, String> {
    static CLIENT: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .user_agent(concat!("taskdeck/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| format!("cannot set up the HTTP client: {e}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

pub(crate) async fn run(
    req: ExecRequest,
    call: LlmCall,
    mut control: mpsc::UnboundedReceiver<Control>,
    reports: mpsc::UnboundedSender<ExecMsg>,
    logs: LogStore,
) {
    let key = req.key.clone();
    super::report(&reports, &key, ExecReport::Started { pid: None });
    let mut sink = LineSink::new(&req, &logs);
    let result = {
        let call_fut = complete(&call, &mut sink);
        let timed_out = super::deadline(req.timeout);
        tokio::pin!(call_fut, timed_out);
        let mut control_open = true;
        loop {
            tokio::select! {
                r = &mut call_fut => break r,
                _ = &mut timed_out => {
                    break ExecResult::timed_out(None, req.timeout.unwrap_or_default());
                }
                c = control.recv(), if control_open => match c {
                    // Dropping the request future closes the connection: the server stops.
                    Some(Control::Cancel) => break ExecResult::cancelled(None),
                    // A request in flight cannot be paused; it goes on.
                    Some(Control::Pause | Control::Resume) => {}
                    None => control_open = false,
                },
                _ = reports.closed() => break ExecResult::cancelled(None),
            }
        }
    };
    sink.flush();
    logs.finish(&key);
    super::report(&reports, &key, ExecReport::Finished(result));
}

/// Sends the request and reads the reply, streamed or not.
async fn complete(call: &LlmCall, sink: &mut LineSink<'_>) -> ExecResult {
    let http = match client() {
        Ok(c) => c,
        Err(e) => return failed(e),
    };
    let url = format!("{}/chat/completions", call.endpoint.trim_end_matches('/'));
    let started = Instant::now();
    let mut rb = http.post(&url).json(&body(call));
    if let Some(k) = call.api_key.as_deref().filter(|k| !k.is_empty()) {
        rb = rb.bearer_auth(k);
    }
    let resp = match rb.send().await {
        Ok(r) => r,
        // reqwest's message names the URL but never the headers, so the key stays out.
        Err(e) => return failed(format!("cannot reach {url}: {}", error_chain(&e))),
    };
    let status = resp.status();
    if !status.is_success() {
        let retry_after = retry_after(resp.headers());
        let text = resp.text().await.unwrap_or_default();
        let mut r = failed(format!(
            "{url} answered {status}: {}",
            snippet(&error_message(&text))
        ));
        if status.as_u16() == 429 || status.is_server_error() {
            r.retry_after = retry_after;
        }
        return r;
    }
    let streamed = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let reply = if streamed {
        read_stream(resp, sink).await
    } else {
        read_whole(resp, sink).await
    };
    match reply {
        Ok(reply) => finish(call, reply, started.elapsed(), sink),
        Err(e) => failed(e),
    }
}

fn body(call: &LlmCall) -> Value {
    let mut messages = Vec::new();
    if let Some(s) = call.system.as_deref().filter(|s| !s.is_empty()) {
        messages.push(json!({"role": "system", "content": s}));
    }
    messages.push(json!({"role": "user", "content": call.prompt}));
    let mut b = json!({
        "model": call.model,
        "messages": messages,
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    if let Some(t) = call.temperature {
        b["temperature"] = json!(t);
    }
    if let Some(m) = call.max_tokens {
        b["max_tokens"] = json!(m);
    }
    if call.format == ReplyFormat::Json {
        b["response_format"] = json!({"type": "json_object"});
    }
    b
}

/// What came back, before it becomes outputs.
#[derive(Debug, Default)]
struct Reply {
    text: String,
    model: Option<String>,
    finish_reason: Option<String>,
    usage: Option<Value>,
}

/// Reads `data:` events until `[DONE]`; each delta goes to the log as it arrives.
async fn read_stream(
    mut resp: reqwest::Response,
    sink: &mut LineSink<'_>,
) -> Result<Reply, String> {
    let mut reply = Reply::default();
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let chunk = resp
            .chunk()
            .await
            .map_err(|e| format!("the reply stream broke: {}", error_chain(&e)))?;
        let Some(chunk) = chunk else {
            return Err("the reply stream ended before `data: [DONE]`".into());
        };
        buf.extend_from_slice(&chunk);
        if buf.len() > 4 * MAX_LINE_BYTES && !buf.contains(&b'\n') {
            return Err("the reply stream sent an over-long line".into());
        }
        while let Some(nl) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=nl).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\n', '\r']);
            let Some(data) = line.strip_prefix("data:") else {
                continue; // blank separators, `event:`, `id:` and `:` comments
            };
            let data = data.trim();
            if data == "[DONE]" {
                return Ok(reply);
            }
            let v: Value = serde_json::from_str(data)
                .map_err(|e| format!("malformed stream event ({e}): {}", snippet(data)))?;
            if let Some(err) = v.get("error") {
                return Err(format!(
                    "the server reported an error: {}",
                    snippet(&err.to_string())
                ));
            }
            take_meta(&mut reply, &v);
            let choice = v.pointer("/choices/0");
            if let Some(d) = choice
                .and_then(|c| c.pointer("/delta/content"))
                .and_then(Value::as_str)
            {
                reply.text.push_str(d);
                sink.push(d);
            }
            if let Some(f) = choice
                .and_then(|c| c.get("finish_reason"))
                .and_then(Value::as_str)
            {
                reply.finish_reason = Some(f.to_string());
            }
        }
    }
}

/// A server that ignores `stream: true` answers one JSON body.
async fn read_whole(resp: reqwest::Response, sink: &mut LineSink<'_>) -> Result<Reply, String> {
    let text = resp
        .text()
        .await
        .map_err(|e| format!("cannot read the reply: {}", error_chain(&e)))?;
    let v: Value = serde_json::from_str(&text)
        .map_err(|e| format!("the reply is not JSON ({e}): {}", snippet(&text)))?;
    let content = v
        .pointer("/choices/0/message/content")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            format!(
                "the reply has no choices[0].message.content: {}",
                snippet(&text)
            )
        })?;
    let mut reply = Reply {
        text: content.to_string(),
        finish_reason: v
            .pointer("/choices/0/finish_reason")
            .and_then(Value::as_str)
            .map(str::to_string),
        ..Reply::default()
    };
    take_meta(&mut reply, &v);
    sink.push(content);
    Ok(reply)
}

fn take_meta(reply: &mut Reply, v: &Value) {
    if let Some(m) = v.get("model").and_then(Value::as_str) {
        reply.model = Some(m.to_string());
    }
    if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
        reply.usage = Some(u.clone());
    }
}

/// The reply as outputs, and a summary line (tokens, latency) in the log.
fn finish(call: &LlmCall, reply: Reply, latency: Duration, sink: &mut LineSink<'_>) -> ExecResult {
    sink.flush();
    let mut out = Map::new();
    let latency_ms = latency.as_millis() as u64;
    let tokens = |k: &str| {
        reply
            .usage
            .as_ref()
            .and_then(|u| u.get(k))
            .and_then(Value::as_u64)
    };
    let (prompt, completion) = (tokens("prompt_tokens"), tokens("completion_tokens"));
    let shown = |n: Option<u64>| n.map_or("?".to_string(), |n| n.to_string());
    sink.system(format!(
        "llm {}: {} prompt + {} completion tokens in {latency_ms} ms{}",
        reply.model.as_deref().unwrap_or(&call.model),
        shown(prompt),
        shown(completion),
        reply
            .finish_reason
            .as_deref()
            .map(|f| format!(", finish_reason {f}"))
            .unwrap_or_default(),
    ));
    if call.format == ReplyFormat::Json {
        match parse_json(&reply.text) {
            Ok(v) => {
                if let Some(schema) = &call.schema
                    && let Err(e) = check_schema(schema, &v)
                {
                    return failed(format!(
                        "the JSON reply does not match the task's schema: {e}; reply: {}",
                        snippet(&reply.text)
                    ));
                }
                out.insert("json".into(), v);
            }
            Err(e) => {
                return failed(format!(
                    "the reply is not the JSON the task asks for ({e}): {}",
                    snippet(&reply.text)
                ));
            }
        }
    }
    out.insert("text".into(), Value::String(reply.text));
    out.insert(
        "usage".into(),
        json!({
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": tokens("total_tokens")
                .or_else(|| Some(prompt? + completion?)),
        }),
    );
    out.insert("latency_ms".into(), json!(latency_ms));
    out.insert(
        "model".into(),
        Value::String(reply.model.unwrap_or_else(|| call.model.clone())),
    );
    if let Some(f) = reply.finish_reason {
        out.insert("finish_reason".into(), Value::String(f));
    }
    ExecResult::succeeded(None, out)
}

/// Parses a JSON reply; models often wrap it in a Markdown fence, which is taken off first.
pub fn parse_json(text: &str) -> Result<Value, serde_json::Error> {
    let t = text.trim();
    let inner = t
        .strip_prefix("```json")
        .or_else(|| t.strip_prefix("```"))
        .and_then(|r| r.trim_end().strip_suffix("```"))
        .unwrap_or(t);
    serde_json::from_str(inner.trim())
}

/// The first few ways `v` breaks `schema`, each with where (a JSON pointer).
pub fn check_schema(schema: &Value, v: &Value) -> Result<(), String> {
    let validator =
        jsonschema::validator_for(schema).map_err(|e| format!("the schema is invalid: {e}"))?;
    let problems: Vec<String> = validator
        .iter_errors(v)
        .take(3)
        .map(|e| {
            let at = e.instance_path().to_string();
            if at.is_empty() {
                e.to_string()
            } else {
                format!("at {at}: {e}")
            }
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// `Retry-After`: seconds, or an HTTP date (a date already past means now).
pub(super) fn retry_after(h: &reqwest::header::HeaderMap) -> Option<Duration> {
    retry_after_at(h, std::time::SystemTime::now())
}

fn retry_after_at(h: &reqwest::header::HeaderMap, now: std::time::SystemTime) -> Option<Duration> {
    let s = h.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = s.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0)
            .then(|| Duration::from_secs_f64(secs.min(86_400.0)));
    }
    let at = httpdate::parse_http_date(s).ok()?;
    Some(
        at.duration_since(now)
            .unwrap_or(Duration::ZERO)
            .min(Duration::from_secs(86_400)),
    )
}

/// The `error.message` of an OpenAI-style error body, else the body itself.
pub(super) fn error_message(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| {
            v.pointer("/error/message")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_else(|| body.trim().to_string())
}

pub(super) fn snippet(s: &str) -> String {
    if s.len() <= BODY_SNIPPET {
        return s.to_string();
    }
    let mut end = BODY_SNIPPET;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// reqwest's top error says little ("error sending request"); its sources say why.
pub(super) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

fn failed(error: String) -> ExecResult {
    ExecResult::failed(AttemptOutcome::Failed, None, error)
}

/// Turns streamed text into whole log lines: a partial line waits for its newline (or the end).
struct LineSink<'a> {
    key: AttemptKey,
    logs: &'a LogStore,
    redactor: &'a super::Redactor,
    partial: String,
}

impl<'a> LineSink<'a> {
    fn new(req: &'a ExecRequest, logs: &'a LogStore) -> Self {
        LineSink {
            key: req.key.clone(),
            logs,
            redactor: &req.redactor,
            partial: String::new(),
        }
    }

    fn push(&mut self, text: &str) {
        for (i, piece) in text.split('\n').enumerate() {
            if i > 0 {
                let line = std::mem::take(&mut self.partial);
                self.emit(line);
            }
            self.partial.push_str(piece);
            if self.partial.len() >= MAX_LINE_BYTES {
                let line = std::mem::take(&mut self.partial);
                self.emit(line);
            }
        }
    }

    fn flush(&mut self) {
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            self.emit(line);
        }
    }

    fn emit(&self, line: String) {
        let line = self.redactor.redact(&line).into_owned();
        self.logs.push(&self.key, LogStream::Stdout, line);
    }

    fn system(&self, line: String) {
        self.logs.push(&self.key, LogStream::System, line);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn json_replies_may_come_fenced() {
        assert_eq!(parse_json(" {\"a\": 1} ").unwrap(), json!({"a": 1}));
        assert_eq!(
            parse_json("```json\n{\"a\": [1]}\n```\n").unwrap(),
            json!({"a": [1]})
        );
        assert_eq!(parse_json("```\n[2]\n```").unwrap(), json!([2]));
        assert!(parse_json("sure! {\"a\": 1}").is_err());
    }

    #[test]
    fn schema_problems_say_where() {
        let schema = json!({"type": "object", "required": ["score"],
            "properties": {"score": {"type": "integer"}}});
        assert_eq!(check_schema(&schema, &json!({"score": 3})), Ok(()));
        let e = check_schema(&schema, &json!({"score": "high"})).unwrap_err();
        assert!(e.contains("/score") && e.contains("integer"), "{e}");
        let e = check_schema(&schema, &json!({})).unwrap_err();
        assert!(e.contains("score"), "{e}");
    }

    #[test]
    fn retry_after_in_seconds_or_as_an_http_date() {
        let mut h = reqwest::header::HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(reqwest::header::RETRY_AFTER, "2".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        let date = "Wed, 21 Oct 2015 07:28:00 GMT";
        h.insert(reqwest::header::RETRY_AFTER, date.parse().unwrap());
        let at = httpdate::parse_http_date(date).unwrap();
        let before = at - Duration::from_secs(30);
        assert_eq!(retry_after_at(&h, before), Some(Duration::from_secs(30)));
        // A date already past: retry now.
        let after = at + Duration::from_secs(5);
        assert_eq!(retry_after_at(&h, after), Some(Duration::ZERO));
        h.insert(reqwest::header::RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn error_bodies_are_short_and_prefer_the_message() {
        assert_eq!(
            error_message(r#"{"error": {"message": "slow down", "type": "rate"}}"#),
            "slow down"
        );
        assert_eq!(error_message(" oops \n"), "oops");
        let long = "é".repeat(400);
        assert!(snippet(&long).chars().count() <= BODY_SNIPPET / 2 + 1);
    }

    #[test]
    fn request_body_carries_the_agent_settings() {
        let call = LlmCall {
            endpoint: "http://x/v1".into(),
            model: "m".into(),
            api_key: None,
            system: Some("be brief".into()),
            prompt: "hi".into(),
            temperature: Some(0.5),
            max_tokens: Some(7),
            format: ReplyFormat::Json,
            schema: None,
        };
        let b = body(&call);
        assert_eq!(
            b["messages"][0],
            json!({"role": "system", "content": "be brief"})
        );
        assert_eq!(b["messages"][1], json!({"role": "user", "content": "hi"}));
        assert_eq!(b["temperature"], json!(0.5));
        assert_eq!(b["max_tokens"], json!(7));
        assert_eq!(b["stream"], json!(true));
        assert_eq!(b["response_format"], json!({"type": "json_object"}));
    }
}
