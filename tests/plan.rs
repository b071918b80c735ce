//! `taskdeck plan` through the real binary: templates into files that run, bad requests, and
//! the llm planner against a real local OpenAI-compatible server that first answers with a
//! graph that does not validate.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use serde_json::{Value, json};

fn taskdeck(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_taskdeck"))
        .args(args)
        .current_dir(dir)
        .env("TASKDECK_HOME", dir.join("home"))
        .env_remove("TASKDECK_CONFIG")
        .env_remove("TASKDECK_STORE")
        .output()
        .expect("run taskdeck")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn a_template_plan_is_written_validated_and_runs() {
    let dir = tempfile::tempdir().unwrap();
    let out = taskdeck(
        dir.path(),
        &[
            "plan",
            "--type",
            "bug_investigation",
            "--title",
            "Login answers 500",
            "--require",
            "users can log in again",
            "--gate",
            "true",
            "-o",
            "fix.toml",
        ],
    );
    // Not a terminal: no review, just the file.
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(said.contains("wrote fix.toml: 6 tasks, 1 gate"), "{said}");
    assert!(said.contains("taskdeck run fix.toml"), "{said}");
    let v = taskdeck(dir.path(), &["validate", "fix.toml"]);
    assert_eq!(v.status.code(), Some(0), "{}", text(&v.stderr));
    let run = taskdeck(
        dir.path(),
        &[
            "run",
            "fix.toml",
            "--headless",
            "--store",
            "memory",
            "--report",
            "r.json",
        ],
    );
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stdout));
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("r.json")).unwrap()).unwrap();
    let tasks = report["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 6);
    assert!(tasks.iter().all(|t| t["state"] == "succeeded"), "{report}");

    // The file is not replaced without --force.
    let again = taskdeck(
        dir.path(),
        &[
            "plan",
            "--type",
            "system_analysis",
            "--title",
            "x",
            "-o",
            "fix.toml",
        ],
    );
    assert_eq!(again.status.code(), Some(2));
    assert!(
        text(&again.stderr).contains("--force"),
        "{}",
        text(&again.stderr)
    );
}

#[test]
fn a_request_file_in_the_seeds_shape_with_flags_over_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("req.json"),
        json!({
            "request_type": "release_management",
            "title": "Release 2.4",
            "priority": "high",
            "complexity_level": 4,
            "context": {"version": "2.4.0"},
            "requirements": {"functional": ["ship the new search"], "constraints": ["no downtime"]},
            "preferences": {"execution_strategy": "fast"}
        })
        .to_string(),
    )
    .unwrap();
    let out = taskdeck(
        dir.path(),
        &[
            "plan",
            "req.json",
            "--strategy",
            "thorough",
            "-o",
            "release.toml",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let wf = std::fs::read_to_string(dir.path().join("release.toml")).unwrap();
    assert!(wf.contains("version = \"2.4.0\""), "{wf}");
    assert!(wf.contains("priority = \"high\""), "{wf}");
    // Thorough (the flag wins over the file): the release waits for an operator.
    assert!(wf.contains("approval = true"), "{wf}");
    assert!(wf.contains("[tasks.staging]"), "{wf}");
}

#[test]
fn bad_requests_say_what_to_fix() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.toml"),
        "request_type = \"haircut\"\ntitle = \"x\"\n",
    )
    .unwrap();
    let out = taskdeck(dir.path(), &["plan", "bad.toml"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("bad.toml") && err.contains("bug_investigation"),
        "{err}"
    );

    let out = taskdeck(dir.path(), &["plan", "missing.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("cannot read missing.toml"));

    let out = taskdeck(dir.path(), &["plan", "--type", "bug_investigation"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--title"),
        "{}",
        text(&out.stderr)
    );

    let out = taskdeck(
        dir.path(),
        &[
            "plan",
            "--type",
            "bug_investigation",
            "--title",
            "x",
            "--complexity",
            "12",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("1 to 10"));

    let out = taskdeck(
        dir.path(),
        &[
            "plan",
            "--type",
            "bug_investigation",
            "--title",
            "x",
            "--planner",
            "nobody",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no agent `nobody`"),
        "{}",
        text(&out.stderr)
    );
}

// ----- the llm planner -----

/// Answers each chat completion with the next reply in line, and keeps the prompts.
#[derive(Default)]
struct Planner {
    replies: Mutex<Vec<Value>>,
    prompts: Mutex<Vec<String>>,
}

async fn chat(State(p): State<Arc<Planner>>, body: axum::Json<Value>) -> axum::Json<Value> {
    let prompt = body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_string();
    p.prompts.lock().unwrap().push(prompt);
    let reply = {
        let mut r = p.replies.lock().unwrap();
        if r.len() > 1 {
            r.remove(0)
        } else {
            r[0].clone()
        }
    };
    axum::Json(json!({
        "model": "planner-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": reply.to_string()}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150},
    }))
}

fn start_planner(replies: Vec<Value>) -> (SocketAddr, Arc<Planner>) {
    let state = Arc::new(Planner {
        replies: Mutex::new(replies),
        ..Planner::default()
    });
    let s = state.clone();
    let addr = common::serve_on_thread(move |_| {
        Router::new()
            .route("/v1/chat/completions", post(chat))
            .with_state(s)
    });
    (addr, state)
}

fn planner_config(dir: &Path, addr: SocketAddr) {
    std::fs::write(
        dir.join("config.toml"),
        format!(
            "[agents.planner]\nkind = \"llm\"\nendpoint = \"http://{addr}/v1\"\nmodel = \"planner-model\"\ncapabilities = [\"plan\"]\n"
        ),
    )
    .unwrap();
}

#[test]
fn the_llm_planner_is_shown_its_problems_and_its_corrected_graph_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let cyclic = json!({
        "name": "login-500",
        "tasks": {
            "reproduce": {"prompt": "Reproduce it", "requires": ["test"], "needs": ["fix"]},
            "fix": {"prompt": "Fix it", "requires": ["backend"], "needs": ["reproduce"]}
        }
    });
    let good = json!({
        "name": "login-500",
        "tasks": {
            "reproduce": {"prompt": "Reproduce it", "requires": ["test"]},
            "fix": {"prompt": "Fix it", "requires": ["backend"], "needs": ["reproduce"]},
            "check": {"run": "true", "needs": ["fix"]}
        }
    });
    let (addr, planner) = start_planner(vec![cyclic, good]);
    planner_config(dir.path(), addr);
    let out = taskdeck(
        dir.path(),
        &[
            "--config",
            "config.toml",
            "plan",
            "--type",
            "bug_investigation",
            "--title",
            "Login answers 500",
            "--planner",
            "planner",
            "-o",
            "fix.toml",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("planned by the llm planner"));
    let prompts = planner.prompts.lock().unwrap().clone();
    assert_eq!(prompts.len(), 2, "asked again after the invalid graph");
    assert!(prompts[0].contains("Login answers 500"), "{}", prompts[0]);
    assert!(
        prompts[1].contains("cycle"),
        "the problems go back: {}",
        prompts[1]
    );
    let wf = std::fs::read_to_string(dir.path().join("fix.toml")).unwrap();
    assert!(wf.contains("[agents.testing-specialist]"), "{wf}");
    let run = taskdeck(
        dir.path(),
        &[
            "--config",
            "config.toml",
            "run",
            "fix.toml",
            "--headless",
            "--store",
            "memory",
        ],
    );
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stdout));
}

#[test]
fn a_planner_that_never_validates_gives_up_with_the_problems() {
    let dir = tempfile::tempdir().unwrap();
    let unknown = json!({"tasks": {"a": {"prompt": "x", "requires": ["astrology"]}}});
    let (addr, planner) = start_planner(vec![unknown]);
    planner_config(dir.path(), addr);
    let out = taskdeck(
        dir.path(),
        &[
            "--config",
            "config.toml",
            "plan",
            "--type",
            "system_analysis",
            "--title",
            "x",
            "--planner",
            "planner",
            "--planner-attempts",
            "2",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("did not pass validate in 2 answers"), "{err}");
    assert!(err.contains("astrology"), "{err}");
    assert_eq!(planner.prompts.lock().unwrap().len(), 2);
    assert!(!dir.path().join("x.toml").exists(), "nothing is written");
}
