//! `http` agents against a real agent server started here (axum): a synchronous result, 202 and
//! callbacks with heartbeats and log lines, a lost agent (no heartbeat) failing then retried, a
//! bad JSON reply, a 503 retried, cancel telling the agent, stale callback tokens; through the
//! engine, and a workflow through the real binary (`taskdeck run --headless`).

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Response, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};
use taskdeck::config::Config;
use taskdeck::engine::{EngineHandle, EngineOptions};
use taskdeck::exec::{AttemptKey, Purpose};
use taskdeck::model::{Command as Cmd, LogStream, RunId, RunState, TaskState};
use taskdeck::spec::{Format, parse_str};

// ----- the agent server -----

#[derive(Default)]
struct Seen {
    /// Assignments per scenario, in arrival order.
    assignments: Mutex<HashMap<String, Vec<Value>>>,
    auth: Mutex<Vec<Option<String>>>,
    cancels: Mutex<Vec<Value>>,
}

#[derive(Clone)]
struct Agent {
    addr: SocketAddr,
    seen: Arc<Seen>,
}

impl Agent {
    /// Serves on 127.0.0.1 from a thread of its own, so sync and async tests can both use it.
    fn start() -> Agent {
        let seen = Arc::new(Seen::default());
        let shared = seen.clone();
        let addr = common::serve_on_thread(move |addr| {
            Router::new()
                .route("/work/{scenario}", post(work))
                .route("/cancel", post(cancel))
                .with_state(Agent { addr, seen: shared })
        });
        Agent { addr, seen }
    }

    fn url(&self, scenario: &str) -> String {
        format!("http://{}/work/{scenario}", self.addr)
    }

    fn assignments(&self, scenario: &str) -> Vec<Value> {
        self.seen
            .assignments
            .lock()
            .unwrap()
            .get(scenario)
            .cloned()
            .unwrap_or_default()
    }

    fn cancels(&self) -> Vec<Value> {
        self.seen.cancels.lock().unwrap().clone()
    }
}

fn reply(code: u16, body: Value) -> Response<Body> {
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap())
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

async fn post_json(url: &str, body: Value) -> u16 {
    reqwest::Client::new()
        .post(url)
        .json(&body)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

async fn work(
    State(agent): State<Agent>,
    Path(scenario): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response<Body> {
    let msg: Value = serde_json::from_str(&body).unwrap();
    agent.seen.auth.lock().unwrap().push(
        headers
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_string()),
    );
    let n = {
        let mut all = agent.seen.assignments.lock().unwrap();
        let list = all.entry(scenario.clone()).or_default();
        list.push(msg.clone());
        list.len()
    };
    let channels = msg["communication_channels"].clone();
    let what = msg["task_details"]["command"]
        .as_str()
        .or(msg["task_details"]["prompt"].as_str())
        .unwrap_or_default()
        .to_string();
    let cancel_url = format!("http://{}/cancel", agent.addr);
    match scenario.as_str() {
        "sync" => reply(
            200,
            json!({"status": "succeeded", "outputs": {"echo": what, "attempt": msg["attempt"]},
                   "log": "working\ndone"}),
        ),
        "sync-fail" => reply(
            200,
            json!({"status": "failed", "error": "the agent refused"}),
        ),
        "bad-json" => reply(200, json!("not a result")).map(|_| Body::from("<html>oops")),
        "flaky" if n == 1 => Response::builder()
            .status(503)
            .header("retry-after", "0")
            .body(Body::from("busy"))
            .unwrap(),
        "flaky" => reply(200, json!({"status": "succeeded", "outputs": {"try": n}})),
        "async" => {
            tokio::spawn(async move {
                let url = channels["result"].as_str().unwrap().to_string();
                for i in 0..3 {
                    post_json(&format!("{url}/heartbeat"), json!({})).await;
                    post_json(&format!("{url}/log"), json!({"log": [format!("step {i}")]})).await;
                }
                post_json(
                    &url,
                    json!({"status": "succeeded", "outputs": {"verdict": "approve", "echo": what}}),
                )
                .await;
            });
            reply(202, json!({"cancel_url": cancel_url}))
        }
        // The first attempt is accepted and never heard of again; the second answers at once.
        "lost-once" if n == 1 => reply(202, json!({})),
        "lost-once" => reply(200, json!({"status": "succeeded", "outputs": {"try": n}})),
        // Accepted, then heartbeats until cancelled.
        "hang" => {
            let seen = agent.seen.clone();
            tokio::spawn(async move {
                let url = channels["heartbeat"].as_str().unwrap().to_string();
                while seen.cancels.lock().unwrap().is_empty() {
                    if post_json(&url, json!({})).await != 200 {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            });
            reply(202, json!({"cancel_url": cancel_url}))
        }
        _ => reply(404, json!({"error": "no such scenario"})),
    }
}

async fn cancel(State(agent): State<Agent>, body: String) -> StatusCode {
    agent
        .seen
        .cancels
        .lock()
        .unwrap()
        .push(serde_json::from_str(&body).unwrap_or(Value::Null));
    StatusCode::OK
}

// ----- the engine -----

struct Rig {
    _dir: tempfile::TempDir,
    engine: EngineHandle,
    config: Config,
}

impl Rig {
    fn new() -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::default();
        let engine = EngineHandle::start(EngineOptions {
            config: Arc::new(config.clone()),
            log_dir: dir.path().join("logs"),
            work_dir: dir.path().join("work"),
            auto_approve: false,
            journal: None,
            callbacks: Default::default(),
        });
        Rig {
            _dir: dir,
            engine,
            config,
        }
    }

    async fn submit(&self, text: &str) -> RunId {
        let wf = parse_str(text, "flow.toml", Format::Toml, &self.config)
            .unwrap_or_else(|e| panic!("{e:?}"));
        self.engine
            .submit(wf, Some(text.to_string()))
            .await
            .unwrap()
    }

    async fn finish(&self, text: &str) -> (RunId, RunState) {
        let run = self.submit(text).await;
        let state = self.engine.wait_finished(&run).await.unwrap();
        (run, state)
    }

    async fn task(&self, run: &RunId, id: &str) -> taskdeck::engine::state::Task {
        let snap = self.engine.snapshot().await.unwrap();
        let r = snap.runs.get(run).unwrap();
        let t = r.index.by_id[id];
        r.tasks[t as usize].clone()
    }

    fn log(&self, run: &RunId, task: u32, attempt: u32) -> Vec<(LogStream, String)> {
        let key = AttemptKey {
            run: run.clone(),
            task,
            attempt,
            purpose: Purpose::Task,
        };
        self.engine
            .logs()
            .lines(&key, 0)
            .into_iter()
            .map(|l| (l.stream, l.line))
            .collect()
    }
}

/// The stdout lines of an attempt's log.
fn stdout(log: &[(LogStream, String)]) -> Vec<&str> {
    log.iter()
        .filter(|(s, _)| *s == LogStream::Stdout)
        .map(|(_, l)| l.as_str())
        .collect()
}

/// A workflow with one agent `worker` at `url` and one task sent to it.
fn flow(url: &str, agent_extra: &str, task: &str) -> String {
    format!(
        r#"
name = "http"
[secrets]
key = {{ env = "HTTP_AGENT_TEST_KEY" }}
[agents.worker]
kind = "http"
url = "{url}"
api_key = "{{{{ secrets.key }}}}"
capabilities = ["remote"]
{agent_extra}
[tasks.job]
requires = ["remote"]
{task}
"#
    )
}

fn set_key() {
    // SAFETY: every test sets the same value; nothing reads it concurrently with a change.
    unsafe { std::env::set_var("HTTP_AGENT_TEST_KEY", "sekret-123") };
}

#[tokio::test]
async fn a_synchronous_result_becomes_outputs_and_log() {
    set_key();
    let agent = Agent::start();
    let rig = Rig::new();
    let text = flow(
        &agent.url("sync"),
        "",
        "run = \"make {{ context.target }}\"\nretry = { attempts = 1 }",
    )
    .replace(
        "name = \"http\"",
        "name = \"http\"\n[context]\ntarget = \"all\"",
    );
    let (run, state) = rig.finish(&text).await;
    assert_eq!(state, RunState::Succeeded);
    let t = rig.task(&run, "job").await;
    assert_eq!(t.outputs["echo"], "make all");
    assert_eq!(t.outputs["attempt"], 1);
    let log = rig.log(&run, 0, 1);
    let out = stdout(&log);
    assert_eq!(out, ["working", "done"]);
    // The assignment message: shaped after the seeds' task_assignment.
    let msg = &agent.assignments("sync")[0];
    assert_eq!(msg["message_type"], "task_assignment");
    assert_eq!(msg["run_id"], run.as_str());
    assert_eq!(msg["task_id"], "job");
    assert_eq!(msg["attempt"], 1);
    assert_eq!(msg["assigned_agent"], "worker");
    assert_eq!(msg["task_details"]["kind"], "run");
    assert_eq!(msg["context"]["context"]["target"], "all");
    let token = msg["communication_channels"]["token"].as_str().unwrap();
    assert!(token.len() >= 32, "{token}");
    assert_eq!(
        agent.seen.auth.lock().unwrap()[0].as_deref(),
        Some("Bearer sekret-123")
    );
}

#[tokio::test]
async fn accepted_work_reports_by_callback_and_stale_tokens_are_gone() {
    set_key();
    let agent = Agent::start();
    let rig = Rig::new();
    let text = flow(
        &agent.url("async"),
        "heartbeat_timeout = \"20s\"",
        "prompt = \"review it\"",
    );
    let (run, state) = rig.finish(&text).await;
    assert_eq!(state, RunState::Succeeded);
    let t = rig.task(&run, "job").await;
    assert_eq!(t.outputs["verdict"], "approve");
    assert_eq!(t.outputs["echo"], "review it");
    let log = rig.log(&run, 0, 1);
    let out = stdout(&log);
    assert_eq!(out, ["step 0", "step 1", "step 2"]);
    assert!(
        log.iter()
            .any(|(s, l)| *s == LogStream::System && l.contains("accepted by")),
        "{log:?}"
    );
    // The attempt is over: its token is refused with 410 and a JSON error; a made-up one 404.
    let ch = &agent.assignments("async")[0]["communication_channels"];
    let url = ch["result"].as_str().unwrap();
    let r = reqwest::Client::new()
        .post(format!("{url}/heartbeat"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 410);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "gone");
    let base = url.rsplit_once('/').unwrap().0;
    assert_eq!(
        post_json(&format!("{base}/0123abcd"), json!({"status": "succeeded"})).await,
        404
    );
}

#[tokio::test]
async fn a_lost_agent_fails_the_attempt_and_the_retry_succeeds() {
    set_key();
    let agent = Agent::start();
    let rig = Rig::new();
    let text = flow(
        &agent.url("lost-once"),
        "heartbeat_timeout = \"300ms\"",
        "run = \"x\"\nretry = { attempts = 2, delay = \"10ms\" }",
    );
    let (run, state) = rig.finish(&text).await;
    assert_eq!(state, RunState::Succeeded);
    let t = rig.task(&run, "job").await;
    assert_eq!(t.attempts.len(), 2);
    assert!(
        t.attempts[0]
            .error
            .contains("agent lost: no heartbeat or result"),
        "{}",
        t.attempts[0].error
    );
    assert_eq!(t.outputs["try"], 2);
}

#[tokio::test]
async fn bad_replies_and_refusals_fail_with_what_was_wrong() {
    set_key();
    let agent = Agent::start();
    let rig = Rig::new();
    let (run, state) = rig
        .finish(&flow(&agent.url("bad-json"), "", "run = \"x\""))
        .await;
    assert_eq!(state, RunState::Failed);
    let t = rig.task(&run, "job").await;
    assert_eq!(t.state, TaskState::Failed);
    let e = &t.attempts[0].error;
    assert!(
        e.contains("sent a bad result") && e.contains("not JSON"),
        "{e}"
    );
    assert!(e.contains("<html>oops"), "{e}");

    let (run, state) = rig
        .finish(&flow(&agent.url("sync-fail"), "", "run = \"x\""))
        .await;
    assert_eq!(state, RunState::Failed);
    assert_eq!(
        rig.task(&run, "job").await.attempts[0].error,
        "the agent refused"
    );

    let (run, _) = rig
        .finish(&flow(&agent.url("nope"), "", "run = \"x\""))
        .await;
    let e = rig.task(&run, "job").await.attempts[0].error.clone();
    assert!(
        e.contains("answered 404") && e.contains("no such scenario"),
        "{e}"
    );
}

#[tokio::test]
async fn a_busy_agent_is_retried_like_a_rate_limited_endpoint() {
    set_key();
    let agent = Agent::start();
    let rig = Rig::new();
    let (run, state) = rig
        .finish(&flow(
            &agent.url("flaky"),
            "",
            "run = \"x\"\nretry = { attempts = 3, delay = \"10ms\" }",
        ))
        .await;
    assert_eq!(state, RunState::Succeeded);
    let t = rig.task(&run, "job").await;
    assert!(
        t.attempts[0].error.contains("503"),
        "{}",
        t.attempts[0].error
    );
    assert_eq!(t.outputs["try"], 2);
}

#[tokio::test]
async fn cancel_tells_the_agent_and_ends_the_attempt() {
    set_key();
    let agent = Agent::start();
    let rig = Rig::new();
    let run = rig
        .submit(&flow(
            &agent.url("hang"),
            "heartbeat_timeout = \"20s\"",
            "run = \"x\"",
        ))
        .await;
    // Wait for the agent to have the work (it then heartbeats until told to stop).
    while agent.assignments("hang").is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    rig.engine
        .command(Cmd::CancelRun { run: run.clone() })
        .await
        .unwrap();
    let state = rig.engine.wait_finished(&run).await.unwrap();
    assert_eq!(state, RunState::Cancelled);
    assert_eq!(rig.task(&run, "job").await.state, TaskState::Cancelled);
    while agent.cancels().is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(agent.cancels()[0]["reason"], "cancelled");
}

// ----- the binary -----

#[test]
fn binary_runs_an_http_agent_with_callbacks_and_a_downstream_task_reads_its_outputs() {
    let agent = Agent::start();
    let home = tempfile::tempdir().unwrap();
    let flow = home.path().join("flow.toml");
    let text = format!(
        r#"
name = "remote-review"
[agents.worker]
kind = "http"
url = "{}"
capabilities = ["review"]
heartbeat_timeout = "20s"

[tasks.review]
requires = ["review"]
prompt = "review the change"

[tasks.publish]
needs = ["review"]
when = "tasks.review.outputs.verdict == 'approve'"
run = "echo verdict={{{{ tasks.review.outputs.verdict }}}}"
"#,
        agent.url("async")
    );
    std::fs::write(&flow, text).unwrap();
    let report = home.path().join("report.json");
    let out = Command::new(env!("CARGO_BIN_EXE_taskdeck"))
        .args(["run", "--headless", flow.to_str().unwrap(), "--report"])
        .arg(&report)
        .env("TASKDECK_HOME", home.path())
        .env_remove("TASKDECK_CONFIG")
        .env_remove("TASKDECK_STORE")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let task = |id: &str| {
        r["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(task("review")["outputs"]["verdict"], "approve");
    assert_eq!(task("publish")["state"], "succeeded");
    // The callback URL the binary gave is its own listener on loopback.
    let ch = &agent.assignments("async")[0]["communication_channels"];
    assert!(
        ch["result"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:"),
        "{ch}"
    );
}

#[tokio::test]
async fn under_serve_agents_call_back_to_the_api_without_an_api_token() {
    use std::io::{BufRead, BufReader};
    let agent = Agent::start();
    let home = tempfile::tempdir().unwrap();
    let tokens = home.path().join("tokens");
    std::fs::write(&tokens, "admin adm1n-token-0123456789\n").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_taskdeck"))
        .args([
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--store",
            "memory",
            "--tokens",
        ])
        .arg(&tokens)
        .env("TASKDECK_HOME", home.path())
        .env_remove("TASKDECK_STORE")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http"))
        .unwrap_or_else(|| panic!("{line}"))
        .to_string();
    let http = reqwest::Client::new();
    let flow = format!(
        "name = \"served\"\n[agents.worker]\nkind = \"http\"\nurl = \"{}\"\n[tasks.job]\nagent = \"worker\"\nprompt = \"go\"\n",
        agent.url("async")
    );
    let created: Value = http
        .post(format!("{url}/api/v1/runs"))
        .bearer_auth("adm1n-token-0123456789")
        .header("content-type", "application/toml")
        .body(flow)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_string();
    let snap = loop {
        let snap: Value = http
            .get(format!("{url}/api/v1/runs/{id}"))
            .bearer_auth("adm1n-token-0123456789")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if snap["run"]["state"] != "running" {
            break snap;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(snap["run"]["state"], "succeeded", "{snap}");
    assert_eq!(snap["run"]["tasks"][0]["outputs"]["verdict"], "approve");
    let ch = &agent.assignments("async")[0]["communication_channels"];
    assert!(
        ch["result"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{url}/api/v1/callbacks/")),
        "{ch} vs {url}"
    );
    // The roster shows the agent's health.
    let agents: Value = http
        .get(format!("{url}/api/v1/agents"))
        .bearer_auth("adm1n-token-0123456789")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let worker = agents
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "worker")
        .unwrap();
    assert_eq!(worker["health"]["state"], "up", "{worker}");
    let _ = child.kill();
    let _ = child.wait();
}
