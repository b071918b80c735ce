//! `llm` agents against a real local OpenAI-compatible server started here: streamed and plain
//! replies, JSON replies, 429 then success, 5xx, malformed bodies and streams, timeouts and
//! cancel; and a workflow through the real binary whose downstream task reads the reply.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Response, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};
use taskdeck::exec::{
    AttemptKey, Control, ExecMsg, ExecReport, ExecRequest, ExecResult, LlmCall, Purpose, Redactor,
    Work, spawn,
};
use taskdeck::logs::LogStore;
use taskdeck::model::{AttemptOutcome, LogStream, RunId};
use taskdeck::spec::ReplyFormat;
use tokio::sync::mpsc;

// ----- the fake server -----

#[derive(Default)]
struct Seen {
    /// Requests per model name (the model picks the scenario).
    hits: Mutex<HashMap<String, usize>>,
    bodies: Mutex<Vec<Value>>,
    auth: Mutex<Vec<Option<String>>>,
    total: AtomicUsize,
}

struct Server {
    addr: SocketAddr,
    seen: Arc<Seen>,
}

impl Server {
    /// Serves on 127.0.0.1 from a thread of its own, so sync and async tests can both use it.
    fn start() -> Server {
        let seen = Arc::new(Seen::default());
        let state = seen.clone();
        let addr = common::serve_on_thread(move |_| {
            Router::new()
                .route("/v1/chat/completions", post(chat))
                .with_state(state)
        });
        Server { addr, seen }
    }

    fn endpoint(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    fn hits(&self, model: &str) -> usize {
        self.seen
            .hits
            .lock()
            .unwrap()
            .get(model)
            .copied()
            .unwrap_or(0)
    }
}

fn sse(events: &[Value], done: bool) -> Response<Body> {
    let mut body = String::new();
    for e in events {
        body.push_str(&format!("data: {e}\n\n"));
    }
    if done {
        body.push_str("data: [DONE]\n\n");
    }
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from(body))
        .unwrap()
}

fn delta(text: &str) -> Value {
    json!({"model": "served-model", "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": null}]})
}

fn plain(content: &str) -> Response<Body> {
    let v = json!({
        "model": "served-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14},
    });
    Response::builder()
        .header("content-type", "application/json")
        .body(Body::from(v.to_string()))
        .unwrap()
}

fn status(code: u16, headers: &[(&str, &str)], body: &str) -> Response<Body> {
    let mut b = Response::builder().status(StatusCode::from_u16(code).unwrap());
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Body::from(body.to_string())).unwrap()
}

/// A streamed "Hello\nworld" split mid-line across events, then usage and `[DONE]`.
fn hello_stream() -> Response<Body> {
    sse(
        &[
            delta("Hel"),
            delta("lo\nwor"),
            delta("ld"),
            json!({"model": "served-model", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
            json!({"model": "served-model", "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}}),
        ],
        true,
    )
}

/// A stream whose network pieces cut events, JSON and lines anywhere, sent one by one.
fn chunky() -> Response<Body> {
    let mut text = String::new();
    for piece in ["first li", "ne\nsecond ", "line\nthird"] {
        text.push_str(&format!("data: {}\n\n", delta(piece)));
    }
    text.push_str("data: [DONE]\n\n");
    let bytes = text.into_bytes();
    let pieces: Vec<Vec<u8>> = bytes.chunks(7).map(<[u8]>::to_vec).collect();
    let stream = futures_util::stream::unfold(pieces.into_iter(), |mut it| async move {
        let next = it.next()?;
        // Let each piece leave as its own write.
        tokio::time::sleep(Duration::from_millis(1)).await;
        Some((Ok::<_, std::io::Error>(next), it))
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(stream))
        .unwrap()
}

async fn chat(State(seen): State<Arc<Seen>>, headers: HeaderMap, body: String) -> Response<Body> {
    seen.total.fetch_add(1, Ordering::SeqCst);
    let Ok(body) = serde_json::from_str::<Value>(&body) else {
        return status(400, &[], "request is not JSON");
    };
    let model = body["model"].as_str().unwrap_or("").to_string();
    let n = {
        let mut hits = seen.hits.lock().unwrap();
        let n = hits.entry(model.clone()).or_default();
        *n += 1;
        *n
    };
    seen.bodies.lock().unwrap().push(body.clone());
    seen.auth.lock().unwrap().push(
        headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    );
    match model.as_str() {
        "stream" => hello_stream(),
        "plain" => plain("Hello\nworld"),
        "verdict" => plain("```json\n{\"verdict\": \"ship\", \"score\": 9}\n```"),
        "chatty" => plain("I think we should ship it."),
        "flaky" if n == 1 => status(
            429,
            &[("retry-after", "0")],
            r#"{"error": {"message": "rate limited, slow down"}}"#,
        ),
        "flaky" => sse(&[delta("{\"verdict\": "), delta("\"ship\"}")], true),
        "down" => status(503, &[], r#"{"error": {"message": "model is loading"}}"#),
        "unauthorized" => status(401, &[], r#"{"error": {"message": "bad key"}}"#),
        "badjson" => Response::builder()
            .header("content-type", "application/json")
            .body(Body::from("{\"choices\": [ oops"))
            .unwrap(),
        "nocontent" => Response::builder()
            .header("content-type", "application/json")
            .body(Body::from("{\"choices\": []}"))
            .unwrap(),
        "badsse" => Response::builder()
            .header("content-type", "text/event-stream")
            .body(Body::from("data: {\"choices\": [\n\n"))
            .unwrap(),
        "cut" => sse(&[delta("half a rep")], false),
        "chunky" => chunky(),
        "slow" => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            plain("too late")
        }
        _ => status(404, &[], r#"{"error": {"message": "no such model"}}"#),
    }
}

// ----- the executor directly -----

struct Rig {
    _dir: tempfile::TempDir,
    logs: LogStore,
    dir: PathBuf,
}

impl Rig {
    fn new() -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let logs = LogStore::new(dir.path().join("logs"), 1000, 1 << 20);
        Rig {
            dir: dir.path().to_path_buf(),
            _dir: dir,
            logs,
        }
    }

    fn req(&self, call: LlmCall, redactor: Redactor) -> ExecRequest {
        ExecRequest {
            key: key(),
            task_id: "ask".into(),
            work: Work::Llm(Box::new(call)),
            env: Vec::new(),
            cwd: None,
            timeout: None,
            kill_grace: Duration::from_millis(200),
            context: b"{}".to_vec(),
            scratch_dir: self.dir.join("scratch"),
            scratch_name: "task-1.1".into(),
            redactor: Arc::new(redactor),
            max_output_bytes: 1 << 20,
        }
    }

    fn lines(&self, stream: LogStream) -> Vec<String> {
        self.logs
            .lines(&key(), 0)
            .into_iter()
            .filter(|l| l.stream == stream)
            .map(|l| l.line)
            .collect()
    }

    /// Runs one attempt to its end; `control` is sent right after `Started`.
    async fn run_with(&self, req: ExecRequest, control: Option<Control>) -> ExecResult {
        let (tx, mut rx) = mpsc::unbounded_channel::<ExecMsg>();
        let handle = spawn(req, tx, self.logs.clone());
        let first = rx.recv().await.unwrap();
        assert_eq!(first.report, ExecReport::Started { pid: None });
        if let Some(c) = control {
            handle.send(c);
        }
        match rx.recv().await.unwrap().report {
            ExecReport::Finished(r) => r,
            other => panic!("expected Finished, got {other:?}"),
        }
    }

    async fn run(&self, req: ExecRequest) -> ExecResult {
        self.run_with(req, None).await
    }
}

fn key() -> AttemptKey {
    AttemptKey {
        run: RunId::from("run-1"),
        task: 1,
        attempt: 1,
        purpose: Purpose::Task,
    }
}

fn call(server: &Server, model: &str) -> LlmCall {
    LlmCall {
        endpoint: server.endpoint(),
        model: model.into(),
        api_key: None,
        system: None,
        prompt: "Say hello".into(),
        temperature: None,
        max_tokens: None,
        format: ReplyFormat::Text,
        schema: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_reply_goes_to_the_log_line_by_line_and_into_outputs() {
    let server = Server::start();
    let rig = Rig::new();
    let mut c = call(&server, "stream");
    c.api_key = Some("sk-secret-123".into());
    c.system = Some("Be brief.".into());
    c.temperature = Some(0.2);
    c.max_tokens = Some(64);
    let r = rig
        .run(rig.req(c, Redactor::new(["sk-secret-123".to_string()])))
        .await;
    assert_eq!(r.outcome, AttemptOutcome::Succeeded, "{}", r.error);
    assert_eq!(r.outputs["text"], "Hello\nworld");
    assert_eq!(
        r.outputs["usage"],
        json!({"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13})
    );
    assert_eq!(r.outputs["model"], "served-model");
    assert_eq!(r.outputs["finish_reason"], "stop");
    assert!(r.outputs["latency_ms"].is_u64());
    assert!(!r.outputs.contains_key("json"));
    // A line split across events is logged whole, once.
    assert_eq!(rig.lines(LogStream::Stdout), ["Hello", "world"]);
    let system = rig.lines(LogStream::System).join("\n");
    assert!(
        system.contains("9 prompt + 4 completion tokens"),
        "{system}"
    );
    // What the server got: the agent's settings and the key as a bearer token.
    let body = server.seen.bodies.lock().unwrap()[0].clone();
    assert_eq!(body["stream"], true);
    assert_eq!(body["temperature"], json!(0.2));
    assert_eq!(body["max_tokens"], 64);
    assert_eq!(
        body["messages"],
        json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}])
    );
    assert_eq!(
        server.seen.auth.lock().unwrap()[0].as_deref(),
        Some("Bearer sk-secret-123")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_split_across_network_reads_are_reassembled() {
    let server = Server::start();
    let rig = Rig::new();
    let r = rig
        .run(rig.req(call(&server, "chunky"), Redactor::default()))
        .await;
    assert_eq!(r.outcome, AttemptOutcome::Succeeded, "{}", r.error);
    assert_eq!(r.outputs["text"], "first line\nsecond line\nthird");
    assert_eq!(
        rig.lines(LogStream::Stdout),
        ["first line", "second line", "third"]
    );
    // No usage in this stream: the counts are unknown, not zero.
    assert_eq!(r.outputs["usage"]["prompt_tokens"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_json_answer_is_read_too() {
    let server = Server::start();
    let rig = Rig::new();
    let r = rig
        .run(rig.req(call(&server, "plain"), Redactor::default()))
        .await;
    assert_eq!(r.outcome, AttemptOutcome::Succeeded, "{}", r.error);
    assert_eq!(r.outputs["text"], "Hello\nworld");
    assert_eq!(r.outputs["usage"]["total_tokens"], 14);
    assert_eq!(rig.lines(LogStream::Stdout), ["Hello", "world"]);
    assert_eq!(server.seen.auth.lock().unwrap()[0], None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_format_parses_the_reply_or_fails_clearly() {
    let server = Server::start();
    let rig = Rig::new();
    let mut c = call(&server, "verdict");
    c.format = ReplyFormat::Json;
    let r = rig.run(rig.req(c, Redactor::default())).await;
    assert_eq!(r.outcome, AttemptOutcome::Succeeded, "{}", r.error);
    assert_eq!(r.outputs["json"], json!({"verdict": "ship", "score": 9}));
    assert_eq!(
        server.seen.bodies.lock().unwrap()[0]["response_format"],
        json!({"type": "json_object"})
    );

    let mut c = call(&server, "chatty");
    c.format = ReplyFormat::Json;
    let r = rig.run(rig.req(c, Redactor::default())).await;
    assert_eq!(r.outcome, AttemptOutcome::Failed);
    assert!(
        r.error.contains("not the JSON the task asks for") && r.error.contains("I think"),
        "{}",
        r.error
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_reply_is_checked_against_the_task_schema() {
    let server = Server::start();
    let rig = Rig::new();
    let mut c = call(&server, "verdict");
    c.format = ReplyFormat::Json;
    c.schema = Some(json!({
        "type": "object",
        "required": ["verdict", "score"],
        "properties": {"verdict": {"enum": ["ship", "hold"]}, "score": {"type": "integer"}},
    }));
    let r = rig.run(rig.req(c.clone(), Redactor::default())).await;
    assert_eq!(r.outcome, AttemptOutcome::Succeeded, "{}", r.error);
    assert_eq!(r.outputs["json"]["score"], 9);

    c.schema = Some(json!({"properties": {"score": {"maximum": 5}}}));
    let r = rig.run(rig.req(c, Redactor::default())).await;
    assert_eq!(r.outcome, AttemptOutcome::Failed);
    assert!(
        r.error.contains("does not match the task's schema") && r.error.contains("/score"),
        "{}",
        r.error
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_and_server_errors_are_retryable_with_their_wait() {
    let server = Server::start();
    let rig = Rig::new();
    let r = rig
        .run(rig.req(call(&server, "flaky"), Redactor::default()))
        .await;
    assert_eq!(r.outcome, AttemptOutcome::Failed);
    assert!(
        r.error.contains("429") && r.error.contains("rate limited, slow down"),
        "{}",
        r.error
    );
    assert_eq!(r.retry_after, Some(Duration::ZERO));

    let r = rig
        .run(rig.req(call(&server, "down"), Redactor::default()))
        .await;
    assert_eq!(r.outcome, AttemptOutcome::Failed);
    assert!(
        r.error.contains("503") && r.error.contains("model is loading"),
        "{}",
        r.error
    );

    // A client error is the workflow's fault: it carries no wait.
    let r = rig
        .run(rig.req(call(&server, "unauthorized"), Redactor::default()))
        .await;
    assert!(
        r.error.contains("401") && r.error.contains("bad key"),
        "{}",
        r.error
    );
    assert_eq!(r.retry_after, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_replies_fail_with_what_was_wrong() {
    let server = Server::start();
    let rig = Rig::new();
    for (model, says) in [
        ("badjson", "the reply is not JSON"),
        ("nocontent", "no choices[0].message.content"),
        ("badsse", "malformed stream event"),
        ("cut", "ended before `data: [DONE]`"),
    ] {
        let r = rig
            .run(rig.req(call(&server, model), Redactor::default()))
            .await;
        assert_eq!(r.outcome, AttemptOutcome::Failed, "{model}");
        assert!(r.error.contains(says), "{model}: {}", r.error);
        assert!(r.outputs.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_endpoints_timeouts_and_cancel() {
    let server = Server::start();
    let rig = Rig::new();
    // A port nobody listens on: bind one, then free it.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    let mut c = call(&server, "plain");
    c.endpoint = format!("http://127.0.0.1:{port}/v1");
    let r = rig.run(rig.req(c, Redactor::default())).await;
    assert_eq!(r.outcome, AttemptOutcome::Failed);
    assert!(r.error.contains("cannot reach"), "{}", r.error);

    let mut req = rig.req(call(&server, "slow"), Redactor::default());
    req.timeout = Some(Duration::from_millis(300));
    let r = rig.run(req).await;
    assert_eq!(r.outcome, AttemptOutcome::TimedOut, "{}", r.error);

    let req = rig.req(call(&server, "slow"), Redactor::default());
    let r = rig.run_with(req, Some(Control::Cancel)).await;
    assert_eq!(r.outcome, AttemptOutcome::Cancelled, "{}", r.error);
}

// ----- through the real binary -----

const FLOW: &str = r#"
name = "llm-flow"

[secrets]
LLM_KEY = { env = "TEST_LLM_KEY" }

[agents.writer]
kind = "llm"
endpoint = "ENDPOINT"
model = "MODEL"
api_key = "{{ secrets.LLM_KEY }}"
system = "You answer in JSON."
temperature = 0.1

[tasks.ask]
prompt = "Should we ship {{ context.release }}?"
format = "json"
retry = { attempts = 3, delay = "10ms" }

[tasks.decide]
needs = ["ask"]
run = "echo verdict={{ tasks.ask.outputs.json.verdict }} > $TASKDECK_OUTPUT"

[context]
release = "v1.2"
"#;

fn taskdeck(home: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_taskdeck"))
        .args(args)
        .env("TASKDECK_HOME", home)
        .env_remove("TASKDECK_CONFIG")
        .env_remove("TASKDECK_STORE")
        .env("TEST_LLM_KEY", "sk-live-abcdef")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn run_flow(server: &Server, model: &str) -> (std::process::Output, Value, tempfile::TempDir) {
    let home = tempfile::tempdir().unwrap();
    let flow = home.path().join("flow.toml");
    let text = FLOW
        .replace("ENDPOINT", &server.endpoint())
        .replace("MODEL", model);
    std::fs::write(&flow, text).unwrap();
    let report = home.path().join("report.json");
    let out = taskdeck(
        home.path(),
        &[
            "run",
            "--headless",
            flow.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ],
    );
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    (out, r, home)
}

fn task<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .unwrap_or_else(|| panic!("no task {id}\n{report:#}"))
}

#[test]
fn binary_runs_an_llm_task_and_a_downstream_task_reads_its_json() {
    let server = Server::start();
    let (out, r, home) = run_flow(&server, "verdict");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}\n{r:#}");
    let ask = task(&r, "ask");
    assert_eq!(ask["state"], "succeeded", "{ask:#}");
    assert_eq!(ask["outputs"]["json"]["verdict"], "ship");
    assert_eq!(ask["outputs"]["usage"]["prompt_tokens"], 11);
    assert_eq!(task(&r, "decide")["outputs"]["verdict"], "ship");
    // The prompt was rendered from the context; the key arrived but is shown nowhere.
    let body = server.seen.bodies.lock().unwrap()[0].clone();
    assert_eq!(body["messages"][1]["content"], "Should we ship v1.2?");
    assert_eq!(
        server.seen.auth.lock().unwrap()[0].as_deref(),
        Some("Bearer sk-live-abcdef")
    );
    // Tokens and latency reach the engine log; the attempt log has the reply.
    let logs = log_files(home.path());
    let engine = &logs["engine.log"];
    assert!(
        engine.contains("`ask` attempt 1: 11 prompt + 3 completion tokens in"),
        "{engine}"
    );
    assert!(
        logs["task-0.1.log"].contains("\"verdict\": \"ship\""),
        "{logs:#?}"
    );
    let all = format!("{stdout}{stderr}{r}{logs:?}");
    assert!(!all.contains("sk-live-abcdef"), "{all}");
}

/// Every log file of the (one) run under `home`, by file name.
fn log_files(home: &std::path::Path) -> HashMap<String, String> {
    let mut files = HashMap::new();
    for run in std::fs::read_dir(home.join("state/logs")).unwrap() {
        for f in std::fs::read_dir(run.unwrap().path()).unwrap() {
            let p = f.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            files.insert(name, std::fs::read_to_string(&p).unwrap());
        }
    }
    files
}

#[test]
fn binary_retries_a_rate_limited_call_and_then_succeeds() {
    let server = Server::start();
    // `flaky` answers 429 first, then a streamed JSON verdict.
    let (out, r, _home) = run_flow(&server, "flaky");
    assert!(out.status.success(), "{r:#}");
    assert_eq!(server.hits("flaky"), 2, "{r:#}");
    let ask = task(&r, "ask");
    let attempts = ask["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{ask:#}");
    assert!(
        attempts[0]["error"].as_str().unwrap().contains("429"),
        "{ask:#}"
    );
    assert_eq!(ask["outputs"]["json"]["verdict"], "ship");
    assert_eq!(task(&r, "decide")["outputs"]["verdict"], "ship");
}

#[test]
fn binary_gives_up_on_a_server_that_keeps_failing() {
    let server = Server::start();
    let (out, r, _home) = run_flow(&server, "down");
    assert!(!out.status.success());
    assert_eq!(server.hits("down"), 3, "{r:#}");
    let ask = task(&r, "ask");
    assert_eq!(ask["state"], "failed", "{ask:#}");
    assert_eq!(task(&r, "decide")["state"], "blocked", "{r:#}");
}
