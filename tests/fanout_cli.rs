//! Multi-agent tasks through the real binary: the example run headless with `--report`, whose
//! `conflicts` say where the agents disagreed, and `validate` pointing at mistakes.

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn taskdeck(home: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_taskdeck"));
    c.current_dir(root())
        .env("TASKDECK_HOME", home)
        .env_remove("TASKDECK_CONFIG")
        .env("MOCK_AGENT_DELAY", "0.05")
        .stdin(Stdio::null());
    c
}

fn task<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .unwrap_or_else(|| panic!("no task {id}"))
}

#[test]
fn the_example_reports_its_conflicts() {
    let home = tempfile::tempdir().unwrap();
    let report_path = home.path().join("report.json");
    let out = taskdeck(home.path())
        .args([
            "run",
            "assets/examples/multi-agent.toml",
            "--headless",
            "--report",
        ])
        .arg(&report_path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(
            "conflict on verdict: claude=\"approve\", codex=\"reject\", qwen=\"approve\""
        ),
        "{stdout}"
    );
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
    assert_eq!(report["state"], "succeeded");

    // The vote: codex disagreed, the majority's value was kept.
    let conflicts = report["conflicts"].as_array().unwrap();
    let vote = conflicts
        .iter()
        .find(|c| c["task"] == "review")
        .expect("the review's conflict");
    assert_eq!(vote["strategy"], "majority");
    assert_eq!(vote["field"], "verdict");
    assert_eq!(vote["resolved"], true);
    assert_eq!(
        vote["values"],
        json!([
            {"agent": "claude", "value": "approve"},
            {"agent": "codex", "value": "reject"},
            {"agent": "qwen", "value": "approve"}
        ])
    );

    // The merge kept the first agent's score and says so.
    let score = conflicts
        .iter()
        .find(|c| c["task"] == "score" && c["field"] == "score")
        .expect("the score's conflict");
    assert_eq!(score["kept"], "claude");
    assert_eq!(task(&report, "score")["outputs"]["score"], 8);

    // The judge picked qwen's note; every branch is in the attempt.
    let note = task(&report, "note");
    assert_eq!(note["outputs"]["note"], "qwen says approve");
    let attempt = &note["attempts"][0];
    assert_eq!(attempt["resolution"]["winner"], "qwen");
    let agents: Vec<&str> = attempt["branches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["agent"].as_str().unwrap())
        .collect();
    assert_eq!(agents, ["claude", "qwen", "referee"]);
    assert_eq!(attempt["branches"][2]["judge"], true);

    // `first`: one answer won, the other branch was cancelled.
    let summary = &task(&report, "summary")["attempts"][0];
    let outcomes: Vec<&str> = summary["branches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["outcome"].as_str().unwrap())
        .collect();
    assert!(outcomes.contains(&"succeeded"), "{outcomes:?}");
    assert_eq!(task(&report, "release")["state"], "succeeded");
}

#[test]
fn validate_points_at_each_mistake() {
    let home = tempfile::tempdir().unwrap();
    let flow = home.path().join("bad.toml");
    std::fs::write(
        &flow,
        r#"[agents.a]
kind = "command"
command = "echo a"

[tasks.t]
prompt = "p"
agents = ["a", "zed"]
resolve = "majority"

[tasks.u]
prompt = "p"
agents = 5
resolve = { judge = "nobody" }
"#,
    )
    .unwrap();
    let out = taskdeck(home.path())
        .arg("validate")
        .arg(&flow)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let f = flow.display();
    for line in [
        format!("{f}:7:16: error: task `t` names unknown agent `zed` in `agents`"),
        format!("{f}:8:11: error: `majority` needs the output field to vote on"),
        format!(
            "{f}:12:10: error: task `u` asks for 5 agents, but only 1 can (`a`) run a `prompt` task"
        ),
        format!("{f}:13:21: error: task `u` is judged by unknown agent `nobody`"),
    ] {
        assert!(text.contains(&line), "missing {line:?} in\n{text}");
    }
}
