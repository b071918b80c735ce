//! `taskdeck serve` from the real binary, driven over HTTP on an ephemeral loopback port with a
//! temporary TASKDECK_HOME and store: every route, errors, auth, event streams (SSE resume,
//! websocket, back-pressure), logs, metrics, TLS, graceful shutdown, and the CLI clients.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};

const ADMIN: &str = "admin-token-0123456789";
const OPERATOR: &str = "operator-token-0123456789";
const VIEWER: &str = "viewer-token-0123456789";

struct Server {
    child: Option<Child>,
    url: String,
    home: tempfile::TempDir,
    dir: tempfile::TempDir,
}

impl Server {
    fn start(extra: &[&str]) -> Server {
        let home = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        Server::start_in(home, dir, extra)
    }

    /// Starts a server on a given home (a restart keeps the store).
    fn start_in(home: tempfile::TempDir, dir: tempfile::TempDir, extra: &[&str]) -> Server {
        let err = std::fs::File::create(dir.path().join("stderr")).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_taskdeck"));
        cmd.arg("serve");
        if !extra.contains(&"--bind") {
            cmd.args(["--bind", "127.0.0.1:0"]);
        }
        let mut child = cmd
            .args(extra)
            .env("TASKDECK_HOME", home.path())
            .env_remove("TASKDECK_STORE")
            .env_remove("TASKDECK_TOKEN")
            .current_dir(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http"))
            .unwrap_or_else(|| {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "no address in {line:?}: {}",
                    std::fs::read_to_string(dir.path().join("stderr")).unwrap_or_default()
                )
            })
            .to_string();
        Server {
            child: Some(child),
            url,
            home,
            dir,
        }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default()
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn http(&self) -> reqwest::Client {
        reqwest::Client::new()
    }

    fn api(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.url)
    }

    /// A CLI client command against this server.
    fn cli(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_taskdeck"))
            .args(args)
            .args(["--to", &self.url])
            .env("TASKDECK_HOME", self.home.path())
            .env_remove("TASKDECK_TOKEN")
            .env_remove("TASKDECK_URL")
            .current_dir(self.dir.path())
            .output()
            .unwrap()
    }

    /// SIGTERM, then the exit status and everything it wrote to stderr.
    fn terminate(&mut self) -> (std::process::ExitStatus, String) {
        let mut child = self.child.take().unwrap();
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let status = child.wait().unwrap();
        (status, self.stderr())
    }

    /// Stops and gives back the home and work folders (to start again on the same store).
    fn into_dirs(mut self) -> (tempfile::TempDir, tempfile::TempDir) {
        if self.child.is_some() {
            self.terminate();
        }
        let home = std::mem::replace(&mut self.home, tempfile::tempdir().unwrap());
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        (home, dir)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

async fn submit(s: &Server, token: Option<&str>, body: &str, ctype: &str) -> reqwest::Response {
    let mut req = s
        .http()
        .post(s.api("/runs"))
        .header("content-type", ctype)
        .body(body.to_string());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

async fn submit_ok(s: &Server, body: &str) -> String {
    let resp = submit(s, Some(ADMIN), body, "application/toml").await;
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    let v: Value = resp.json().await.unwrap();
    v["id"].as_str().unwrap().to_string()
}

async fn get(s: &Server, path: &str) -> (u16, Value) {
    let resp = s
        .http()
        .get(s.api(path))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn post(s: &Server, path: &str, token: &str) -> (u16, Value) {
    let resp = s
        .http()
        .post(s.api(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Polls a run until `done` holds for its snapshot (the guard only stops a hung test).
async fn wait_run(s: &Server, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, snap) = get(s, &format!("/runs/{id}")).await;
        assert_eq!(status, 200, "{snap}");
        if done(&snap) {
            return snap;
        }
        assert!(Instant::now() < deadline, "run never got there: {snap}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn state(snap: &Value) -> &str {
    snap["run"]["state"].as_str().unwrap_or("")
}

fn task_state<'a>(snap: &'a Value, task: &str) -> &'a str {
    let i = snap["run"]["workflow"]["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .position(|t| t["id"] == task)
        .unwrap();
    snap["run"]["tasks"][i]["state"].as_str().unwrap()
}

fn tokens_args(s: &tempfile::TempDir) -> Vec<String> {
    let path = s.path().join("tokens");
    std::fs::write(
        &path,
        format!("# roles\nviewer {VIEWER}\noperator {OPERATOR}\nadmin {ADMIN}\n"),
    )
    .unwrap();
    vec!["--tokens".into(), path.display().to_string()]
}

const APPROVAL_FLOW: &str = r#"
name = "gated"
[tasks.build]
builtin = "echo built"
[tasks.flaky]
run = "exit 3"
[tasks.release]
needs = ["build"]
approval = true
builtin = "echo released"
"#;

#[tokio::test]
async fn runs_snapshot_commands_and_errors() {
    let s = Server::start(&["--max-body", "4000"]);
    let (status, health) = get(&s, "/health").await;
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")));
    let id = submit_ok(&s, APPROVAL_FLOW).await;

    // JSON works too, with or without a content type.
    let wf = json!({"name": "from-json", "tasks": {"a": {"builtin": "noop"}}}).to_string();
    let resp = submit(&s, None, &wf, "application/json").await;
    assert_eq!(resp.status(), 201);
    let resp = s
        .http()
        .post(s.api("/runs"))
        .body(wf.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);

    let snap = wait_run(&s, &id, |v| {
        task_state(v, "release") == "waiting_approval" && task_state(v, "flaky") == "failed"
    })
    .await;
    assert!(snap["seq"].as_u64().unwrap() > 0);
    assert_eq!(snap["live"], true);
    assert_eq!(task_state(&snap, "flaky"), "failed");

    let (status, list) = get(&s, "/runs").await;
    assert_eq!(status, 200);
    let names: Vec<&str> = list["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["workflow"].as_str().unwrap())
        .collect();
    assert_eq!(names.iter().filter(|n| **n == "from-json").count(), 2);
    assert!(names.contains(&"gated"));

    // Commands: approve finishes the gated branch; the failed task cannot be approved.
    let (status, body) = post(&s, &format!("/runs/{id}/tasks/release/approve"), ADMIN).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["action"], "approve");
    let snap = wait_run(&s, &id, |v| task_state(v, "release") == "succeeded").await;
    assert_eq!(task_state(&snap, "build"), "succeeded");
    let snap = wait_run(&s, &id, |v| state(v) == "failed").await;
    assert!(snap["run"]["finished_at"].is_u64());
    let (status, body) = post(&s, &format!("/runs/{id}/pause"), ADMIN).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("refused")),
        "{body}"
    );
    let (status, body) = post(&s, &format!("/runs/{id}/tasks/nope/retry"), ADMIN).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );
    let (status, body) = post(&s, &format!("/runs/{id}/explode"), ADMIN).await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("pause, resume or cancel")
    );
    let (status, body) = post(&s, &format!("/runs/{id}/tasks/flaky/retry"), ADMIN).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = get(&s, "/runs/20990101-000000-0000").await;
    assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));

    // Malformed bodies: every problem, with line and column.
    let resp = submit(
        &s,
        None,
        "name = \"x\"\n[tasks.a\nrun = 1",
        "application/toml",
    )
    .await;
    assert_eq!(resp.status(), 422);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "invalid_workflow");
    assert!(
        body["problems"][0]
            .as_str()
            .unwrap()
            .starts_with("request.toml:2:"),
        "{body}"
    );
    let resp = submit(
        &s,
        None,
        "{\"name\": \"x\", \"tasks\": {",
        "application/json",
    )
    .await;
    assert_eq!(resp.status(), 422);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["problems"][0]
            .as_str()
            .unwrap()
            .starts_with("request.json:1:"),
        "{body}"
    );
    let resp = submit(&s, None, "", "application/toml").await;
    assert_eq!(resp.status(), 422);
    let resp = submit(&s, None, "<flow/>", "application/xml").await;
    assert_eq!(resp.status(), 415);
    let big = format!(
        "name = \"big\"\n# {}\n[tasks.a]\nbuiltin = \"noop\"\n",
        "x".repeat(5000)
    );
    let resp = submit(&s, None, &big, "application/toml").await;
    assert_eq!(resp.status(), 413);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "too_large");

    // Unknown paths and methods, and bad query strings, answer JSON too.
    let (status, body) = get(&s, "/events?since=yesterday").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("bad_request")),
        "{body}"
    );
    assert!(body["detail"].as_str().unwrap().contains("since"), "{body}");
    let (status, body) = get(&s, "/nothing/here").await;
    assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));
    let resp = s.http().delete(s.api("/runs")).send().await.unwrap();
    assert_eq!(resp.status(), 405);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "method_not_allowed");

    // Agents, stats, the whole snapshot, readiness, the engine log.
    let (status, agents) = get(&s, "/agents").await;
    assert_eq!(status, 200);
    assert!(
        agents
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["name"] == "local")
    );
    let (_, stats) = get(&s, "/stats").await;
    assert!(stats["last_seq"].as_u64().unwrap() > 0);
    assert!(
        stats["runs"]
            .as_object()
            .unwrap()
            .values()
            .map(|n| n.as_u64().unwrap())
            .sum::<u64>()
            >= 3
    );
    let (_, whole) = get(&s, "/snapshot").await;
    assert!(whole["runs"].get(&id).is_some());
    assert!(whole["last_seq"].as_u64().unwrap() >= stats["last_seq"].as_u64().unwrap());
    let resp = s
        .http()
        .get(format!("{}/ready", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (status, log) = get(&s, &format!("/runs/{id}/logs")).await;
    assert_eq!(status, 200);
    assert!(
        log["lines"][0]["line"]
            .as_str()
            .unwrap()
            .contains("started"),
        "{log}"
    );

    // The OpenAPI document is generated from the handlers and lists every route.
    let (status, doc) = get(&s, "/openapi.json").await;
    assert_eq!(status, 200);
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/api/v1/runs",
        "/api/v1/runs/{id}",
        "/api/v1/runs/{id}/{action}",
        "/api/v1/runs/{id}/tasks/{task}/{action}",
        "/api/v1/runs/{id}/tasks/{task}/logs",
        "/api/v1/agents",
        "/api/v1/stats",
        "/api/v1/events",
        "/api/v1/ws/runs/{id}",
        "/health",
        "/ready",
        "/metrics",
    ] {
        assert!(
            paths.contains_key(p),
            "{p} missing from the OpenAPI document"
        );
    }

    // An admin can stop the server over the API.
    let (status, _) = post(&s, "/shutdown", ADMIN).await;
    assert_eq!(status, 202);
    let mut s = s;
    let status = s.child.take().unwrap().wait().unwrap();
    assert!(status.success());
}

/// Reads SSE blocks from a response: (event name, id, data) until `stop` says so or it ends.
async fn read_sse(
    resp: reqwest::Response,
    mut stop: impl FnMut(&Option<String>, &Value) -> bool,
) -> Vec<(Option<String>, Option<u64>, Value)> {
    let mut body = resp.bytes_stream();
    let mut buf = String::new();
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        buf.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let (mut name, mut id, mut data) = (None, None, String::new());
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event: ") {
                    name = Some(v.to_string());
                } else if let Some(v) = line.strip_prefix("id: ") {
                    id = v.parse().ok();
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data.push_str(v);
                }
            }
            if data.is_empty() {
                continue;
            }
            let v: Value = serde_json::from_str(&data).unwrap();
            let done = stop(&name, &v);
            out.push((name, id, v));
            if done {
                return out;
            }
        }
    }
    out
}

const SLOW_CHAIN: &str = r#"
name = "chain"
[tasks.a]
builtin = "sleep 100ms"
[tasks.b]
needs = ["a"]
builtin = "sleep 100ms"
[tasks.c]
needs = ["b"]
builtin = "sleep 100ms"
[tasks.d]
needs = ["c"]
builtin = "sleep 100ms"
"#;

#[tokio::test]
async fn sse_resumes_with_no_gap_and_no_duplicate() {
    let s = Server::start(&["--heartbeat", "200ms"]);
    // An idle stream gets heartbeats (SSE comments).
    let resp = s.http().get(s.api("/events")).send().await.unwrap();
    let mut body = resp.bytes_stream();
    let chunk = body.next().await.unwrap().unwrap();
    assert!(chunk.starts_with(b":"), "{chunk:?}");
    drop(body);
    let id = submit_ok(&s, SLOW_CHAIN).await;
    // First connection: a few events, then the client drops it.
    let resp = s.http().get(s.api("/events?since=0")).send().await.unwrap();
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut n = 0;
    let first = read_sse(resp, |_, _| {
        n += 1;
        n == 5
    })
    .await;
    let last_id = first.last().unwrap().1.unwrap();
    // Reconnect as EventSource does, with Last-Event-ID (it wins over ?since=).
    let resp = s
        .http()
        .get(s.api("/events?since=0"))
        .header("Last-Event-ID", last_id.to_string())
        .send()
        .await
        .unwrap();
    let second = read_sse(resp, |_, v| v["type"] == "run_finished").await;
    let seqs: Vec<u64> = first.iter().chain(&second).map(|e| e.1.unwrap()).collect();
    let expected: Vec<u64> = (1..=*seqs.last().unwrap()).collect();
    assert_eq!(seqs, expected, "every event exactly once, in order");
    for (_, id_field, v) in first.iter().chain(&second) {
        assert_eq!(
            v["seq"].as_u64(),
            *id_field,
            "the SSE id is the event's seq"
        );
        assert_eq!(v["run"], id.as_str());
    }
    // ?since= resumes the same way, and the run filter keeps other runs out.
    let other = submit_ok(&s, "name = \"other\"\n[tasks.x]\nbuiltin = \"noop\"\n").await;
    let resp = s
        .http()
        .get(s.api(&format!("/events?since={last_id}&run={other}")))
        .send()
        .await
        .unwrap();
    let third = read_sse(resp, |_, v| v["type"] == "run_finished").await;
    assert!(third.iter().all(|e| e.2["run"] == other.as_str()));
    assert_eq!(third[0].2["type"], "run_submitted");
    // A sequence number this server never issued: told to re-read the snapshot.
    let resp = s
        .http()
        .get(s.api("/events?since=999999"))
        .send()
        .await
        .unwrap();
    let notice = read_sse(resp, |_, _| true).await;
    assert_eq!(notice[0].0.as_deref(), Some("reset"));
    assert_eq!(notice[0].2["type"], "reset");
}

#[tokio::test]
async fn slow_event_client_is_told_it_fell_behind_and_the_engine_goes_on() {
    let s = Server::start(&["--event-buffer", "16"]);
    // A client that asks for events and then reads nothing, with a tiny receive buffer.
    let addr = s.url.trim_start_matches("http://").to_string();
    let mut sock = std::net::TcpStream::connect(&addr).unwrap();
    unsafe {
        use std::os::fd::AsRawFd;
        let size: libc::c_int = 4096;
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &size as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    write!(
        sock,
        "GET /api/v1/events?since=0 HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let tasks: serde_json::Map<String, Value> = (0..20_000)
        .map(|i| (format!("t{i}"), json!({"builtin": "noop"})))
        .collect();
    let wf = json!({"name": "flood", "tasks": tasks}).to_string();
    let resp = submit(&s, None, &wf, "application/json").await;
    assert_eq!(resp.status(), 201);
    let id = resp.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    // The engine finishes the run although the client never read a byte.
    wait_run(&s, &id, |v| state(v) == "succeeded").await;
    let (_, metrics) = (
        0,
        s.http()
            .get(format!("{}/metrics", s.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );
    assert!(
        metrics.contains("taskdeck_event_streams_lagged_total 1"),
        "{metrics}"
    );
    // What the client gets when it reads at last: events, then the lagged notice, then the end.
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut all = Vec::new();
    sock.read_to_end(&mut all).unwrap();
    let body = text(&all);
    assert!(
        body.contains("event: lagged"),
        "no lagged notice in {} bytes",
        body.len()
    );
    assert!(body.contains("read the snapshot again"));
}

#[tokio::test]
async fn websocket_streams_the_events_of_one_run() {
    let s = Server::start(&[]);
    let other = submit_ok(&s, "name = \"other\"\n[tasks.x]\nbuiltin = \"noop\"\n").await;
    let id = submit_ok(&s, SLOW_CHAIN).await;
    let ws_url = format!(
        "{}/ws/runs/{id}?since=0",
        s.api("").replacen("http", "ws", 1)
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url).await.unwrap();
    let mut seqs = Vec::new();
    let mut kinds = Vec::new();
    while let Some(msg) = ws.next().await {
        let msg = msg.unwrap();
        if let tokio_tungstenite::tungstenite::Message::Text(t) = msg {
            let v: Value = serde_json::from_str(&t).unwrap();
            assert_eq!(v["run"], id.as_str(), "only this run's events");
            assert_ne!(v["run"], other.as_str());
            seqs.push(v["seq"].as_u64().unwrap());
            kinds.push(v["type"].as_str().unwrap().to_string());
            if v["type"] == "run_finished" {
                break;
            }
        }
    }
    assert_eq!(kinds.first().map(String::as_str), Some("run_submitted"));
    assert_eq!(kinds.iter().filter(|k| *k == "task_succeeded").count(), 4);
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    // A run that does not exist is refused before the upgrade.
    let resp = s.http().get(s.api("/ws/runs/nope")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn task_logs_from_an_offset_and_followed() {
    let s = Server::start(&[]);
    let flow = r#"
name = "talk"
[tasks.first]
builtin = "sleep 300ms"
[tasks.talk]
needs = ["first"]
run = "for i in 1 2 3 4 5; do echo line $i; sleep 0.2; done"
"#;
    let id = submit_ok(&s, flow).await;
    // Followed from before its first attempt starts.
    let resp = s
        .http()
        .get(s.api(&format!("/runs/{id}/tasks/talk/logs?follow=true")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "application/x-ndjson");
    // The answer ends by itself once the attempt is over.
    let body = resp.text().await.unwrap();
    let lines: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let said: Vec<&str> = lines
        .iter()
        .filter(|l| l["stream"] == "stdout")
        .map(|l| l["line"].as_str().unwrap())
        .collect();
    assert_eq!(said, ["line 1", "line 2", "line 3", "line 4", "line 5"]);
    assert!(
        lines.last().unwrap()["line"]
            .as_str()
            .unwrap()
            .contains("exited with code 0")
    );
    // From an offset: the lines after it, and where to go on from.
    let (status, page) = get(&s, &format!("/runs/{id}/tasks/talk/logs?attempt=1&since=3")).await;
    assert_eq!(status, 200);
    assert_eq!(page["lines"].as_array().unwrap().len(), lines.len() - 3);
    assert_eq!(page["lines"][0], lines[3]);
    assert_eq!(page["next"].as_u64(), Some(lines.len() as u64));
    assert_eq!(page["finished"], true);
    let (status, _) = get(&s, &format!("/runs/{id}/tasks/talk/logs?attempt=7")).await;
    assert_eq!(status, 404);
    let (status, _) = get(&s, &format!("/runs/{id}/tasks/nobody/logs")).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn tokens_and_roles() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let args = tokens_args(&dir);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let s = Server::start_in(home, dir, &args);
    let http = s.http();
    // /health is open; everything else needs a token.
    assert_eq!(
        http.get(format!("{}/health", s.url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let resp = http.get(s.api("/runs")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["www-authenticate"], "Bearer");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized");
    for path in [
        "/metrics",
        "/ready",
        "/api/v1/events",
        "/api/v1/openapi.json",
    ] {
        let resp = http.get(format!("{}{path}", s.url)).send().await.unwrap();
        assert_eq!(resp.status(), 401, "{path}");
    }
    let resp = http
        .get(s.api("/runs"))
        .bearer_auth("wrong-token-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    // Roles: viewer reads, operator acts, admin submits.
    let resp = http
        .get(s.api("/runs"))
        .bearer_auth(VIEWER)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = submit(&s, Some(OPERATOR), APPROVAL_FLOW, "application/toml").await;
    assert_eq!(resp.status(), 403);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("role is operator"),
        "{body}"
    );
    let id = submit_ok(&s, APPROVAL_FLOW).await;
    wait_run(&s, &id, |v| {
        task_state(v, "release") == "waiting_approval" && task_state(v, "flaky") == "failed"
    })
    .await;
    let (status, body) = post(&s, &format!("/runs/{id}/tasks/release/approve"), VIEWER).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("forbidden")));
    let (status, _) = post(&s, &format!("/runs/{id}/tasks/release/approve"), OPERATOR).await;
    assert_eq!(status, 200);
    let (status, _) = post(&s, "/shutdown", OPERATOR).await;
    assert_eq!(status, 403);
    // The CLI clients: a clear message and exit code 3 without a token, fine with one.
    let out = s.cli(&["status", &id]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("--token TOKEN or TASKDECK_TOKEN"));
    let out = s.cli(&["status", &id, "--token", VIEWER]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = s.cli(&["retry", &id, "flaky", "--token", VIEWER]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr).contains("role is viewer"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn refuses_to_listen_beyond_loopback_without_tokens() {
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_taskdeck"))
        .args(["serve", "--bind", "0.0.0.0:0", "--store", "memory"])
        .env("TASKDECK_HOME", home.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("refusing to listen on 0.0.0.0:0 without tokens"));
    let bad = home.path().join("tokens");
    std::fs::write(&bad, "admin short\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_taskdeck"))
        .args(["serve", "--store", "memory", "--tokens"])
        .arg(&bad)
        .env("TASKDECK_HOME", home.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains(":1: the token is too short"),
        "{}",
        text(&out.stderr)
    );
    // --insecure lets it listen everywhere.
    let s = Server::start(&["--insecure", "--bind", "0.0.0.0:0"]);
    assert!(s.url.starts_with("http://0.0.0.0:"));
}

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tls")
        .join(name)
        .display()
        .to_string()
}

#[tokio::test]
async fn tls_through_rustls() {
    let (cert, key) = (fixture("cert.pem"), fixture("key.pem"));
    let s = Server::start(&["--tls-cert", &cert, "--tls-key", &key]);
    assert!(s.url.starts_with("https://127.0.0.1:"), "{}", s.url);
    let client = taskdeck::client::Client::new(&s.url, None, Some(Path::new(&cert))).unwrap();
    assert_eq!(client.health().await.unwrap().status, "ok");
    let out = s.cli(&["status", "nope", "--cacert", &cert]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("no run `nope`"));
    // Without trusting the certificate the client refuses to talk.
    let out = s.cli(&["status", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("cannot reach the taskdeck server"),
        "{}",
        text(&out.stderr)
    );
    // Plain HTTP to the TLS port gets nowhere.
    let plain = s.url.replace("https://", "http://");
    assert!(reqwest::get(format!("{plain}/health")).await.is_err());
}

#[tokio::test]
async fn metrics_in_prometheus_text() {
    let s = Server::start(&[]);
    let id = submit_ok(&s, SLOW_CHAIN).await;
    wait_run(&s, &id, |v| state(v) == "succeeded").await;
    let resp = s
        .http()
        .get(format!("{}/metrics", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let m = resp.text().await.unwrap();
    for needle in [
        "taskdeck_runs{state=\"succeeded\"} 1",
        "taskdeck_tasks{state=\"succeeded\"} 4",
        "taskdeck_task_duration_seconds_count{outcome=\"succeeded\"} 4",
        "taskdeck_queue_depth 0",
        "taskdeck_agent_utilisation_ratio{agent=\"local\"} 0.0",
        "taskdeck_runs_submitted_total 1",
        "taskdeck_http_request_duration_seconds_bucket{",
        "route=\"/api/v1/runs/{id}\"",
        "# EOF",
    ] {
        assert!(m.contains(needle), "{needle} missing from\n{m}");
    }
    let events: u64 = m
        .lines()
        .find_map(|l| l.strip_prefix("taskdeck_events_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(events >= 10, "{events}");
}

#[tokio::test]
async fn graceful_shutdown_hands_runs_back_and_the_next_server_continues() {
    let mut s = Server::start(&[]);
    let flow = r#"
name = "long"
[tasks.quick]
builtin = "echo done"
[tasks.slow]
needs = ["quick"]
run = "sleep 30"
[tasks.after]
needs = ["slow"]
builtin = "echo after"
"#;
    let id = submit_ok(&s, flow).await;
    wait_run(&s, &id, |v| task_state(v, "slow") == "running").await;
    let events = s.http().get(s.api("/events")).send().await.unwrap();
    let (status, stderr) = s.terminate();
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains("1 unfinished run handed back to the store"),
        "{stderr}"
    );
    // Open event streams end with a notice.
    let got = read_sse(events, |_, _| false).await;
    assert_eq!(got.last().unwrap().0.as_deref(), Some("closing"));
    // The next server on the same store takes the run over; the finished task does not run again.
    let (home, dir) = s.into_dirs();
    let s = Server::start_in(home, dir, &[]);
    let snap = wait_run(&s, &id, |v| task_state(v, "slow") == "running").await;
    assert_eq!(task_state(&snap, "quick"), "succeeded");
    assert!(
        s.stderr().contains(&format!("resumed run {id}")),
        "{}",
        s.stderr()
    );
    let attempts = snap["run"]["tasks"][1]["attempts"].as_array().unwrap();
    assert_eq!(attempts[0]["outcome"], "interrupted");
    let (status, _) = post(&s, &format!("/runs/{id}/cancel"), ADMIN).await;
    assert_eq!(status, 200);
    wait_run(&s, &id, |v| state(v) == "cancelled").await;
}

#[tokio::test]
async fn cli_clients_against_the_real_server() {
    let s = Server::start(&[]);
    let good = s.write("good.toml", APPROVAL_FLOW);
    let out = s.cli(&["submit", good.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let id = text(&out.stdout).trim().to_string();
    assert!(text(&out.stderr).contains(&format!("run {id} of `gated` (3 tasks)")));
    wait_run(&s, &id, |v| {
        task_state(v, "release") == "waiting_approval" && task_state(v, "flaky") == "failed"
    })
    .await;
    let out = s.cli(&["status", &id]);
    assert_eq!(out.status.code(), Some(0));
    let status = text(&out.stdout);
    assert!(
        status.starts_with(&format!("run {id} of `gated`: running")),
        "{status}"
    );
    assert!(status.contains("waiting approval  release"), "{status}");
    assert!(
        status.contains("failed            flaky (attempt 1: exited with code 3"),
        "{status}"
    );
    let out = s.cli(&["status", &id, "--json"]);
    let v: Value = serde_json::from_str(&text(&out.stdout)).unwrap();
    assert_eq!(v["run"]["id"], id.as_str());
    for args in [
        vec!["pause", &id],
        vec!["resume", &id],
        vec!["retry", &id, "flaky"],
        vec!["approve", &id, "release"],
    ] {
        let out = s.cli(&args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    let snap = wait_run(&s, &id, |v| state(v) == "failed").await;
    assert_eq!(task_state(&snap, "release"), "succeeded");
    let out = s.cli(&["cancel", &id]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let long = s.write(
        "long.toml",
        "name = \"long\"\n[tasks.a]\nrun = \"sleep 30\"\n",
    );
    let out = s.cli(&["submit", long.to_str().unwrap()]);
    let long_id = text(&out.stdout).trim().to_string();
    let out = s.cli(&["cancel", &long_id, "a"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    wait_run(&s, &long_id, |v| task_state(v, "a") == "cancelled").await;
    // Refusals: exit 1 with the server's words.
    let out = s.cli(&["retry", &id, "nobody"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("has no task `nobody`"));
    let out = s.cli(&["pause", "20990101-000000-0000"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no run `20990101-000000-0000`"));
    let bad = s.write(
        "bad.toml",
        "name = \"bad\"\n[tasks.a]\nneeds = [\"zz\"]\nbuiltin = \"noop\"\n",
    );
    let out = s.cli(&["submit", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("request.toml:3:10: error: task `a` needs unknown task `zz`"),
        "{}",
        text(&out.stderr)
    );
    // --wait: the run's result is the exit code.
    let ok = s.write(
        "ok.json",
        r#"{"name": "ok", "tasks": {"a": {"builtin": "sleep 100ms"}}}"#,
    );
    let out = s.cli(&["submit", ok.to_str().unwrap(), "--wait"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("succeeded"));
    let fails = s.write(
        "fails.toml",
        "name = \"fails\"\n[tasks.a]\nbuiltin = \"fail\"\n",
    );
    let out = s.cli(&["submit", fails.to_str().unwrap(), "--wait"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    // Nobody listening: exit 2 and a hint.
    let out = Command::new(env!("CARGO_BIN_EXE_taskdeck"))
        .args(["status", "x", "--to", "http://127.0.0.1:9"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("cannot reach the taskdeck server at http://127.0.0.1:9"),
        "{err}"
    );
    assert!(err.contains("Connection refused"), "{err}");
}
