//! `taskdeck mcp` from the real binary, driven by rmcp's MCP client over the child's stdio: the
//! handshake, the tool list, submitting workflows and following them to the end, logs, a
//! failing task retried, an approval, bad input answered with tool errors, what happens when
//! the assistant goes away (stdin closes), and the same tools against a real `taskdeck serve`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;

use rmcp::model::CallToolRequestParams;
use rmcp::service::{RoleClient, RunningService, ServiceExt};
use serde_json::{Value, json};

/// One MCP session with a `taskdeck mcp` child.
struct Session {
    client: RunningService<RoleClient, ()>,
    child: tokio::process::Child,
    stderr: std::path::PathBuf,
}

impl Session {
    async fn start(args: &[&str], home: &Path, dir: &Path) -> Session {
        let stderr = dir.join(format!("mcp-stderr-{}", fastrand::u32(..)));
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_taskdeck"))
            .arg("mcp")
            .args(args)
            .env("TASKDECK_HOME", home)
            .env_remove("TASKDECK_STORE")
            .env_remove("TASKDECK_TOKEN")
            .env_remove("TASKDECK_LOG")
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let transport = (child.stdout.take().unwrap(), child.stdin.take().unwrap());
        let client = ().serve(transport).await.unwrap_or_else(|e| {
            panic!(
                "no MCP handshake: {e}; stderr: {}",
                std::fs::read_to_string(&stderr).unwrap_or_default()
            )
        });
        Session {
            client,
            child,
            stderr,
        }
    }

    /// Calls a tool: whether it was a tool error, and its text.
    async fn call(&self, tool: &'static str, args: Value) -> (bool, String) {
        let Value::Object(map) = args else {
            panic!("arguments must be an object")
        };
        let result = self
            .client
            .call_tool(CallToolRequestParams::new(tool).with_arguments(map))
            .await
            .unwrap_or_else(|e| panic!("{tool}: {e}"));
        let text: Vec<String> = result
            .content
            .iter()
            .filter_map(|c| c.as_text().map(|t| t.text.clone()))
            .collect();
        (result.is_error == Some(true), text.join("\n"))
    }

    async fn ok(&self, tool: &'static str, args: Value) -> String {
        let (error, text) = self.call(tool, args).await;
        assert!(!error, "{tool} failed: {text}");
        text
    }

    async fn json(&self, tool: &'static str, args: Value) -> Value {
        let text = self.ok(tool, args).await;
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{tool}: not JSON ({e}): {text}"))
    }

    async fn err(&self, tool: &'static str, args: Value) -> String {
        let (error, text) = self.call(tool, args).await;
        assert!(error, "{tool} should have failed, answered: {text}");
        text
    }

    /// Submits workflow text and answers the new run's id.
    async fn submit(&self, workflow: &str) -> String {
        let v = self
            .json("submit_workflow", json!({ "workflow": workflow }))
            .await;
        v["run"].as_str().unwrap().to_string()
    }

    /// `run_status` until the run finished or a task waits for approval.
    async fn settle(&self, run: &str) -> Value {
        for _ in 0..20 {
            let st = self
                .json("run_status", json!({ "run": run, "wait_seconds": 30 }))
                .await;
            if st["finished"] == true || st.get("waiting_approval").is_some() {
                return st;
            }
        }
        panic!("run {run} did not settle");
    }

    async fn task(&self, run: &str, id: &str) -> Value {
        let v = self.json("list_tasks", json!({ "run": run })).await;
        v["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["task"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("no task {id} in {v}"))
    }

    /// Closes stdin (the assistant went away) and waits for the process: its exit code and
    /// everything it wrote to stderr.
    async fn close(mut self) -> (Option<i32>, String) {
        let _ = self.client.cancel().await;
        let status = self.child.wait().await.unwrap();
        (
            status.code(),
            std::fs::read_to_string(&self.stderr).unwrap_or_default(),
        )
    }
}

fn store(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("runs.db").display())
}

const DEMO: &str = r#"
name = "demo"

[tasks.hello]
builtin = "echo hello from taskdeck"

[tasks.measure]
needs = ["hello"]
run = "sh -c 'echo measuring; echo size=42 >> $TASKDECK_OUTPUT'"
"#;

#[tokio::test]
async fn a_local_session_submits_follows_and_reads_logs() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let s = Session::start(&["--store", &store(dir.path())], home.path(), dir.path()).await;

    let info = s.client.peer_info().expect("the server introduced itself");
    assert_eq!(info.server_info.as_ref().unwrap().name, "taskdeck");
    assert!(info.capabilities.tools.is_some());
    assert!(
        info.instructions
            .as_deref()
            .unwrap_or("")
            .contains("submit_workflow")
    );

    let tools = s.client.list_all_tools().await.unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    for wanted in [
        "submit_workflow",
        "run_status",
        "list_runs",
        "list_tasks",
        "task_log",
        "retry_task",
        "rerun_task",
        "approve_task",
        "cancel",
        "pause",
        "resume",
    ] {
        assert!(names.contains(&wanted), "{wanted} missing from {names:?}");
    }
    for t in &tools {
        assert!(
            t.description.as_deref().is_some_and(|d| d.len() > 30),
            "{} has no real description",
            t.name
        );
    }
    let log_tool = tools.iter().find(|t| t.name == "task_log").unwrap();
    let schema = serde_json::to_value(&*log_tool.input_schema).unwrap();
    assert_eq!(schema["required"], json!(["run", "task"]));
    assert!(
        schema["properties"]["tail"]["description"]
            .as_str()
            .unwrap()
            .contains("last N lines")
    );

    let run = s.submit(DEMO).await;
    let st = s.settle(&run).await;
    assert_eq!(st["state"], "succeeded", "{st}");
    assert_eq!(st["counts"]["succeeded"], 2);
    assert_eq!(st["workflow"], "demo");

    let measure = s.task(&run, "measure").await;
    assert_eq!(measure["state"], "succeeded");
    assert_eq!(measure["agent"], "local");
    assert_eq!(measure["needs"], json!(["hello"]));
    assert_eq!(measure["outputs"]["size"], 42);
    assert_eq!(measure["attempts"][0]["exit_code"], 0);

    let log = s
        .ok("task_log", json!({ "run": run, "task": "measure" }))
        .await;
    assert!(log.contains("attempt 1"), "{log}");
    assert!(log.contains("measuring"), "{log}");
    let hello = s
        .ok(
            "task_log",
            json!({ "run": run, "task": "hello", "tail": 1 }),
        )
        .await;
    assert_eq!(hello.lines().count(), 2, "a header and one line: {hello}");

    // A prefix of the id is enough; the run is in the store's list.
    let prefix = &run[..run.len() - 2];
    let by_prefix = s.json("run_status", json!({ "run": prefix })).await;
    assert_eq!(by_prefix["run"], run.as_str());
    let runs = s.json("list_runs", json!({})).await;
    assert_eq!(runs[0]["run"], run.as_str());
    assert_eq!(runs[0]["state"], "succeeded");

    // A workflow file by path (JSON, told by its extension).
    std::fs::write(
        dir.path().join("flow.json"),
        r#"{"name": "from-file", "tasks": {"only": {"builtin": "echo from a file"}}}"#,
    )
    .unwrap();
    let v = s
        .json("submit_workflow", json!({ "path": "flow.json" }))
        .await;
    assert_eq!(v["workflow"], "from-file");
    let st = s.settle(v["run"].as_str().unwrap()).await;
    assert_eq!(st["state"], "succeeded");

    // Bad input: clear tool errors, and the session goes on.
    let e = s.err("run_status", json!({ "run": "no-such-run" })).await;
    assert!(e.contains("no run `no-such-run`"), "{e}");
    let e = s
        .err(
            "submit_workflow",
            json!({ "workflow": "name = \"bad\"\n[tasks.a]\nneeds = [\"ghost\"]\nrun = \"true\"\n" }),
        )
        .await;
    assert!(e.contains("not valid"), "{e}");
    assert!(e.contains("workflow:3:"), "the line is named: {e}");
    assert!(e.contains("ghost"), "{e}");
    let e = s
        .err(
            "submit_workflow",
            json!({ "workflow": "this is [not toml" }),
        )
        .await;
    assert!(e.contains("not valid"), "{e}");
    let e = s.err("submit_workflow", json!({})).await;
    assert!(e.contains("`workflow`"), "{e}");
    let e = s
        .err("submit_workflow", json!({ "path": "missing.toml" }))
        .await;
    assert!(e.contains("cannot read missing.toml"), "{e}");
    let e = s
        .err("task_log", json!({ "run": run, "task": "nope" }))
        .await;
    assert!(
        e.contains("no task `nope`") && e.contains("hello, measure"),
        "{e}"
    );
    let e = s
        .err(
            "task_log",
            json!({ "run": run, "task": "hello", "attempt": 7 }),
        )
        .await;
    assert!(e.contains("no attempt 7"), "{e}");
    let e = s
        .err("list_tasks", json!({ "run": run, "state": "sleepy" }))
        .await;
    assert!(e.contains("unknown task state `sleepy`"), "{e}");

    let (code, stderr) = s.close().await;
    assert_eq!(code, Some(0), "{stderr}");
}

#[tokio::test]
async fn a_failed_task_is_retried_and_an_approval_given() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let s = Session::start(&["--store", &store(dir.path())], home.path(), dir.path()).await;
    let run = s
        .submit(
            r#"
name = "release"

[tasks.check]
run = "sh -c 'echo checking; test -f ready || { echo not ready >&2; exit 3; }'"

[tasks.ship]
needs = ["check"]
approval = true
builtin = "echo shipped"
"#,
        )
        .await;
    let st = s.settle(&run).await;
    assert_eq!(st["state"], "failed", "{st}");
    assert_eq!(st["failed"][0]["task"], "check");
    let check = s.task(&run, "check").await;
    assert_eq!(check["attempts"][0]["exit_code"], 3);
    let log = s
        .ok("task_log", json!({ "run": run, "task": "check" }))
        .await;
    assert!(log.contains("[stderr] not ready"), "{log}");
    let e = s
        .err("approve_task", json!({ "run": run, "task": "ship" }))
        .await;
    assert!(!e.is_empty());

    std::fs::write(dir.path().join("ready"), "").unwrap();
    let said = s
        .ok("retry_task", json!({ "run": run, "task": "check" }))
        .await;
    assert!(said.contains("retry"), "{said}");
    let st = s.settle(&run).await;
    assert_eq!(st["waiting_approval"][0]["task"], "ship", "{st}");
    let ship = s.task(&run, "ship").await;
    assert_eq!(
        ship["approval"],
        json!({ "required": true, "approved": false })
    );

    s.ok("approve_task", json!({ "run": run, "task": "ship" }))
        .await;
    let st = s.settle(&run).await;
    assert_eq!(st["state"], "succeeded", "{st}");
    let check = s.task(&run, "check").await;
    assert_eq!(check["attempts"].as_array().unwrap().len(), 2);
    let first = s
        .ok(
            "task_log",
            json!({ "run": run, "task": "check", "attempt": 1 }),
        )
        .await;
    assert!(first.contains("[stderr] not ready"), "{first}");
    let second = s
        .ok("task_log", json!({ "run": run, "task": "check" }))
        .await;
    assert!(
        second.contains("attempt 2") && !second.contains("[stderr] not ready"),
        "{second}"
    );
    s.close().await;
}

#[tokio::test]
async fn closing_stdin_hands_unfinished_runs_back_and_the_next_session_resumes_them() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let args = ["--store".to_string(), store(dir.path())];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let s = Session::start(&args, home.path(), dir.path()).await;
    let run = s
        .submit(
            r#"
name = "long"
[tasks.first]
builtin = "echo done early"
[tasks.slow]
needs = ["first"]
builtin = "sleep 10m"
"#,
        )
        .await;
    // Wait until `slow` runs, so the session ends with work in flight.
    for _ in 0..100 {
        if s.task(&run, "slow").await["state"] == "running" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(s.task(&run, "slow").await["state"], "running");
    let (code, stderr) = s.close().await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("1 unfinished run handed back"), "{stderr}");

    let s = Session::start(&args, home.path(), dir.path()).await;
    let st = s.json("run_status", json!({ "run": run })).await;
    assert_eq!(st["live"], false);
    assert!(st["note"].as_str().unwrap().contains("resume"), "{st}");
    let e = s.err("cancel", json!({ "run": run })).await;
    assert!(e.contains("interrupted"), "{e}");
    let v = s.json("resume", json!({ "run": run })).await;
    assert_eq!(v["resumed"], true);
    assert_eq!(v["finished_tasks"], 1);
    let st = s.json("run_status", json!({ "run": run })).await;
    assert_eq!(st["live"], true);
    s.ok("cancel", json!({ "run": run })).await;
    let st = s.settle(&run).await;
    assert_eq!(st["state"], "cancelled", "{st}");
    assert_eq!(
        s.task(&run, "first").await["attempts"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    s.close().await;
}

#[tokio::test]
async fn a_run_is_paused_resumed_and_a_task_cancelled() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let s = Session::start(&["--store", "memory"], home.path(), dir.path()).await;
    let run = s
        .submit(
            r#"
name = "pausable"
[tasks.slow]
builtin = "sleep 10m"
[tasks.after]
needs = ["slow"]
builtin = "echo never"
"#,
        )
        .await;
    s.ok("pause", json!({ "run": run })).await;
    assert_eq!(
        s.json("run_status", json!({ "run": run })).await["state"],
        "paused"
    );
    s.ok("resume", json!({ "run": run })).await;
    assert_eq!(
        s.json("run_status", json!({ "run": run })).await["state"],
        "running"
    );
    let said = s.ok("cancel", json!({ "run": run, "task": "slow" })).await;
    assert!(said.contains("cancel: task `slow`"), "{said}");
    let st = s.settle(&run).await;
    assert_eq!(st["finished"], true, "{st}");
    assert_eq!(s.task(&run, "slow").await["state"], "cancelled");
    assert_eq!(s.task(&run, "after").await["state"], "blocked");
    // With --store memory there is no history: the engine's runs are listed.
    let runs = s.json("list_runs", json!({})).await;
    assert_eq!(runs[0]["run"], run.as_str());
    let (code, stderr) = s.close().await;
    assert_eq!(code, Some(0), "{stderr}");
}

/// A `taskdeck serve` on an ephemeral port with its own home and store.
struct Serve {
    child: std::process::Child,
    url: String,
}

impl Serve {
    fn start(home: &Path, dir: &Path, extra: &[&str]) -> Serve {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_taskdeck"))
            .args(["serve", "--bind", "127.0.0.1:0", "--store"])
            .arg(format!("sqlite://{}", dir.join("server.db").display()))
            .args(extra)
            .env("TASKDECK_HOME", home)
            .env_remove("TASKDECK_TOKEN")
            .current_dir(dir)
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
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_string();
        Serve { child, url }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn the_tools_drive_a_server_with_to() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = Serve::start(home.path(), dir.path(), &[]);
    let s = Session::start(&["--to", &server.url], home.path(), dir.path()).await;
    assert!(
        s.client
            .peer_info()
            .and_then(|i| i.instructions.clone())
            .unwrap_or_default()
            .contains("remote engine")
    );

    let run = s.submit(DEMO).await;
    let st = s.settle(&run).await;
    assert_eq!(st["state"], "succeeded", "{st}");
    let measure = s.task(&run, "measure").await;
    assert_eq!(measure["outputs"]["size"], 42);
    let log = s
        .ok("task_log", json!({ "run": run, "task": "measure" }))
        .await;
    assert!(log.contains("measuring"), "{log}");
    let runs = s.json("list_runs", json!({})).await;
    assert_eq!(runs[0]["run"], run.as_str());

    // The server checks the workflow and every problem comes back.
    let e = s
        .err(
            "submit_workflow",
            json!({ "workflow": "name = \"bad\"\n[tasks.a]\nneeds = [\"ghost\"]\nrun = \"true\"\n" }),
        )
        .await;
    assert!(e.contains("ghost"), "{e}");
    let e = s.err("cancel", json!({ "run": "no-such-run" })).await;
    assert!(e.contains("no run `no-such-run`"), "{e}");

    let (code, stderr) = s.close().await;
    assert_eq!(code, Some(0), "{stderr}");
    // The server's runs are the server's: closing the session leaves it serving.
    let again = Session::start(&["--to", &server.url], home.path(), dir.path()).await;
    let st = again.json("run_status", json!({ "run": run })).await;
    assert_eq!(st["state"], "succeeded");
    again.close().await;
}

#[tokio::test]
async fn a_viewer_token_looks_but_cannot_act_and_a_wrong_one_stops_at_once() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(
        &tokens,
        "viewer viewer-token-0123456789\nadmin admin-token-0123456789\n",
    )
    .unwrap();
    let server = Serve::start(
        home.path(),
        dir.path(),
        &["--tokens", tokens.to_str().unwrap()],
    );
    let admin = Session::start(
        &["--to", &server.url, "--token", "admin-token-0123456789"],
        home.path(),
        dir.path(),
    )
    .await;
    let run = admin
        .submit("name = \"held\"\n[tasks.gate]\napproval = true\nbuiltin = \"noop\"\n")
        .await;
    admin.settle(&run).await;
    admin.close().await;

    let viewer = Session::start(
        &["--to", &server.url, "--token", "viewer-token-0123456789"],
        home.path(),
        dir.path(),
    )
    .await;
    let st = viewer.json("run_status", json!({ "run": run })).await;
    assert_eq!(st["waiting_approval"][0]["task"], "gate");
    let e = viewer
        .err("approve_task", json!({ "run": run, "task": "gate" }))
        .await;
    assert!(e.contains("needs an operator token"), "{e}");
    viewer.close().await;

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_taskdeck"))
        .args(["mcp", "--to", &server.url, "--token", "wrong"])
        .env("TASKDECK_HOME", home.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(out.stdout.is_empty());
}

#[tokio::test]
async fn a_server_that_is_not_there_is_said_at_once() {
    let home = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_taskdeck"))
        .args(["mcp", "--to", "http://127.0.0.1:9"])
        .env("TASKDECK_HOME", home.path())
        .env_remove("TASKDECK_TOKEN")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty(), "nothing but protocol on stdout");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is `taskdeck serve` running there?"), "{err}");
}
