//! Crash recovery, the way it happens to users: a real run of a few hundred tasks is killed
//! with SIGKILL at random moments and resumed each time. At the end every task succeeded exactly
//! once in the journal, each task's side effects are accounted for by journaled attempts (an
//! attempt is journaled before its process starts), and attempts a kill cut short say
//! `interrupted`.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const TASKS: usize = 240;

fn taskdeck(home: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_taskdeck"));
    c.env("TASKDECK_HOME", home)
        .env_remove("TASKDECK_STORE")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

/// Layers of 20 tasks; each needs two tasks of the layer before and appends its id to
/// `effects` (the side effect we count), then works a little.
fn workflow(effects: &Path) -> String {
    let mut s = String::from("name = \"crash\"\nmax_parallel = 4\n");
    for i in 0..TASKS {
        s.push_str(&format!("[tasks.t{i}]\n"));
        s.push_str(&format!(
            "run = \"sh -c 'echo t{i} >> {}; sleep 0.0{}'\"\n",
            effects.display(),
            2 + i % 5
        ));
        if i >= 20 {
            let layer = i / 20;
            let a = (layer - 1) * 20 + i % 20;
            let b = (layer - 1) * 20 + (i * 7) % 20;
            if a == b {
                s.push_str(&format!("needs = [\"t{a}\"]\n"));
            } else {
                s.push_str(&format!("needs = [\"t{a}\", \"t{b}\"]\n"));
            }
        }
    }
    s
}

fn wait_exit(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

fn run_id(home: &Path) -> Option<String> {
    let out = taskdeck(home)
        .args(["runs", "--json"])
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text.lines().next()?;
    let v: Value = serde_json::from_str(first).ok()?;
    Some(v["id"].as_str()?.to_string())
}

#[test]
fn killed_runs_resume_without_losing_or_repeating_finished_work() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let effects = dir.path().join("effects");
    let flow = dir.path().join("crash.toml");
    std::fs::write(&flow, workflow(&effects)).unwrap();
    let seed = fastrand::u64(..);
    let mut rng = fastrand::Rng::with_seed(seed);
    eprintln!("seed {seed}");

    let mut kills = 0;
    let mut id: Option<String> = None;
    let mut finished = false;
    for round in 0..40 {
        let mut cmd = taskdeck(home.path());
        match &id {
            None => cmd.args(["run", "--headless", "-q"]).arg(&flow),
            Some(id) => cmd.args(["resume", "--headless", "-q", id.as_str()]),
        };
        let mut child = cmd.spawn().unwrap();
        // Ten kills at random moments, then let it finish.
        let limit = if kills < 10 {
            Duration::from_millis(rng.u64(80..700))
        } else {
            Duration::from_secs(120)
        };
        match wait_exit(&mut child, limit) {
            Some(status) => {
                let err = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
                // A kill that lands after the run's last commit (in the instant before the
                // process exits) leaves a finished run: `resume` says so, and that is right.
                let done_before = err.contains("has already succeeded");
                assert!(
                    status.success() || done_before,
                    "round {round} (seed {seed}) ended with {status}: {err}"
                );
                finished = true;
                break;
            }
            None => {
                child.kill().unwrap();
                child.wait().unwrap();
                kills += 1;
            }
        }
        if id.is_none() {
            id = run_id(home.path());
        }
    }
    assert!(finished, "the run never finished (seed {seed})");
    assert!(
        kills >= 5,
        "too few kills landed to test anything ({kills})"
    );
    let id = id.expect("a run id");

    let out = taskdeck(home.path())
        .args(["report", &id])
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["state"], "succeeded", "seed {seed}");

    let text = std::fs::read_to_string(&effects).unwrap();
    let mut done: HashMap<&str, usize> = HashMap::new();
    for line in text.lines() {
        *done.entry(line).or_default() += 1;
    }
    let tasks = report["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), TASKS);
    let mut interrupted = 0;
    for t in tasks {
        let name = t["id"].as_str().unwrap();
        assert_eq!(t["state"], "succeeded", "{name} (seed {seed})");
        let attempts = t["attempts"].as_array().unwrap();
        let succeeded = attempts
            .iter()
            .filter(|a| a["outcome"] == "succeeded")
            .count();
        assert_eq!(
            succeeded, 1,
            "{name} succeeded once in the journal (seed {seed})"
        );
        let (last, earlier) = attempts.split_last().unwrap();
        assert_eq!(last["outcome"], "succeeded", "{name}: {attempts:?}");
        for a in earlier {
            assert_eq!(
                a["outcome"], "interrupted",
                "{name}: only a kill ends an attempt early here: {attempts:?}"
            );
        }
        interrupted += earlier.len();
        // Each process that ran was a journaled attempt; a kill may land before an attempt
        // wrote its effect, never after it was journaled as succeeded.
        let effects = done.get(name).copied().unwrap_or(0);
        assert!(
            (1..=attempts.len()).contains(&effects),
            "{name}: {effects} side effects for {} attempts (seed {seed})",
            attempts.len()
        );
    }
    assert!(
        interrupted > 0,
        "{kills} kills and no interrupted attempt (seed {seed})"
    );
    eprintln!("{kills} kills, {interrupted} interrupted attempts");
}
