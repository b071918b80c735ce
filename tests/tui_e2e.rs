//! End to end: the real binary in tmux on the demo workflow. Waits for the graph, retries the
//! failing `staging-db` from the command palette, finds `release` with the filter, approves it,
//! quits with the run's exit code; `--exit-on-finish` closes the console by itself.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

struct Tmux {
    name: String,
}

impl Tmux {
    fn available() -> bool {
        Command::new("tmux")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success())
    }

    fn start(tag: &str, cmd: &str, w: u16, h: u16) -> Tmux {
        let name = format!("taskdeck-e2e-{}-{tag}", std::process::id());
        let ok = Command::new("tmux")
            .args([
                "new-session",
                "-d",
                "-s",
                &name,
                "-x",
                &w.to_string(),
                "-y",
                &h.to_string(),
                cmd,
            ])
            .status()
            .expect("tmux runs");
        assert!(ok.success(), "tmux new-session failed");
        Tmux { name }
    }

    fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &self.name])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        for k in keys {
            Command::new("tmux")
                .args(["send-keys", "-t", &self.name, k])
                .status()
                .expect("send-keys");
        }
    }

    fn type_text(&self, text: &str) {
        Command::new("tmux")
            .args(["send-keys", "-t", &self.name, "-l", text])
            .status()
            .expect("send-keys");
    }

    /// Polls the screen until `pred` holds; panics with the last screen after `secs`.
    fn wait_for(&self, what: &str, secs: u64, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let s = self.screen();
            if pred(&s) {
                return s;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}; screen:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(150));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.name])
            .status();
    }
}

#[test]
fn demo_retry_pause_resume_approve_and_exit_with_the_runs_code() {
    if !Tmux::available() {
        eprintln!("SKIPPED: tmux is not installed, so the console cannot be driven end to end");
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    let bin = env!("CARGO_BIN_EXE_taskdeck");
    let demo = Path::new(root).join("assets/examples/demo.toml");
    let cmd = format!(
        "cd {root} && TASKDECK_HOME={} {bin} run {}; echo EXIT=$?; sleep 60",
        home.path().display(),
        demo.display()
    );
    let t = Tmux::start("demo", &cmd, 120, 40);

    let s = t.wait_for("the graph", 30, |s| {
        s.contains("Graph") && s.contains("checkout")
    });
    assert!(s.contains("Runs (1)"), "{s}");
    assert!(s.contains("LOCAL"), "{s}");

    // staging-db fails on its first attempt and the run ends failed.
    let s = t.wait_for("staging-db to fail", 60, |s| {
        s.contains("✗ staging-db") && s.contains("failed")
    });
    assert!(
        s.contains("⊗ package") || s.contains("⊗"),
        "blocked tasks are shown: {s}"
    );

    // Retry it from the palette.
    t.type_text(":retry staging-db");
    t.keys(&["Enter"]);
    t.wait_for("the retry to land", 30, |s| s.contains("✓ staging-db"));

    // Find release with the filter; it waits for approval once package is done.
    t.type_text("/release");
    t.keys(&["Enter"]);
    let s = t.wait_for("release to wait for approval", 60, |s| {
        s.contains("Task release") && s.contains("waiting_approval")
    });
    assert!(s.contains("filter: release"), "{s}");

    // Pause it with `p`, then resume it with `p`: it goes back to waiting for approval.
    t.keys(&["p"]);
    t.wait_for("release to be paused", 30, |s| {
        s.contains("Task release") && s.contains("release  paused")
    });
    t.keys(&["p"]);
    t.wait_for("release to wait for approval again", 30, |s| {
        s.contains("release  waiting_approval")
    });
    t.keys(&["a"]);

    // The run succeeds; the console stays on the final state until q, then exits 0.
    t.wait_for("the run to succeed", 60, |s| s.contains("✓ succeeded"));
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !t.screen().contains("EXIT="),
        "the console must stay open after the run"
    );
    t.keys(&["q"]);
    let s = t.wait_for("the console to exit", 30, |s| s.contains("EXIT="));
    assert!(s.contains("EXIT=0"), "{s}");
}

#[test]
fn exit_on_finish_closes_with_the_runs_exit_code() {
    if !Tmux::available() {
        eprintln!("SKIPPED: tmux is not installed, so the console cannot be driven end to end");
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    let bin = env!("CARGO_BIN_EXE_taskdeck");
    let cmd = format!(
        "cd {root} && TASKDECK_HOME={} {bin} run assets/examples/demo.toml --exit-on-finish; echo EXIT=$?; sleep 60",
        home.path().display(),
    );
    let t = Tmux::start("exit", &cmd, 100, 30);
    // The demo fails at staging-db when nobody retries it.
    let s = t.wait_for("the console to exit", 60, |s| s.contains("EXIT="));
    assert!(s.contains("EXIT=1"), "{s}");
    assert!(!s.contains("Graph"), "the terminal was restored: {s}");
}

#[test]
fn narrow_terminal_shows_every_pane_name_and_quits_cleanly() {
    if !Tmux::available() {
        eprintln!("SKIPPED: tmux is not installed, so the console cannot be driven end to end");
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    let bin = env!("CARGO_BIN_EXE_taskdeck");
    let cmd = format!(
        "cd {root} && TASKDECK_HOME={} {bin} run assets/examples/demo.toml; echo EXIT=$?; sleep 60",
        home.path().display(),
    );
    let t = Tmux::start("narrow", &cmd, 80, 24);
    let s = t.wait_for("the run to end", 60, |s| s.contains("✗ failed"));
    for name in ["Runs", "Graph", "Task", "Logs", "Agents", "Gates"] {
        assert!(s.contains(name), "{name} missing at 80x24:\n{s}");
    }
    // Zoom out to one-line boxes and back; the title says which.
    t.keys(&["-"]);
    t.wait_for("the compact graph", 10, |s| s.contains("· compact ·"));
    t.keys(&["+"]);
    t.wait_for("the boxes again", 10, |s| !s.contains("· compact ·"));
    t.keys(&["?"]);
    t.wait_for("help", 10, |s| s.contains("Keys"));
    t.keys(&["Escape"]);
    t.keys(&["q"]);
    let s = t.wait_for("exit", 20, |s| s.contains("EXIT="));
    assert!(s.contains("EXIT=1"), "a failed run exits 1: {s}");
}

/// Polls until `path` exists; panics after `secs`.
fn wait_for_file(path: &Path, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_killed_run_is_offered_in_the_console_and_resumed_with_r() {
    if !Tmux::available() {
        eprintln!("SKIPPED: tmux is not installed, so the console cannot be driven end to end");
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_taskdeck");
    let d = dir.path().display();
    // `hold` waits for a file the test creates, so the kill lands mid-run without timing.
    std::fs::write(
        dir.path().join("quick.toml"),
        "name = \"quick\"\n[tasks.hello]\nrun = \"echo hello from quick\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("held.toml"),
        format!(
            r#"name = "held"
[tasks.prepare]
run = "echo preparing"
[tasks.hold]
needs = ["prepare"]
run = 'sh -c "touch {d}/started.$TASKDECK_ATTEMPT; while [ ! -f {d}/go ]; do sleep 0.05; done; echo released"'
[tasks.finish]
needs = ["hold"]
run = "echo all done"
"#
        ),
    )
    .unwrap();
    let run = |file: &str| {
        let mut c = Command::new(bin);
        c.args(["run", file, "--headless", "-q"])
            .current_dir(dir.path())
            .env("TASKDECK_HOME", home.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        c
    };
    assert!(run("quick.toml").status().unwrap().success());
    let mut child = run("held.toml").spawn().unwrap();
    wait_for_file(&dir.path().join("started.1"), 30);
    child.kill().unwrap();
    child.wait().unwrap();

    let cmd = format!(
        "cd {d} && TASKDECK_HOME={} {bin} console; echo EXIT=$?; sleep 60",
        home.path().display()
    );
    let t = Tmux::start("resume", &cmd, 120, 40);
    // The notice names the interrupted run; the cursor waits on it.
    let s = t.wait_for("the interrupted run", 30, |s| {
        s.contains("R resumes interrupted run") && s.contains("(held)")
    });
    assert!(
        s.contains("⚠ interrupted") && s.contains("✓ succeeded"),
        "{s}"
    );
    assert!(s.contains("Runs (0) · history 2 · 1 interrupted"), "{s}");

    // The finished run opens read-only, with its task's log read back from the file.
    t.keys(&["j", "Enter"]);
    let s = t.wait_for("the past run", 30, |s| {
        s.contains("read-only") && s.contains("hello from quick")
    });
    assert!(s.contains("✓ hello"), "{s}");
    t.keys(&["r"]);
    t.wait_for("the refusal", 10, |s| {
        s.contains("this run is history, read-only")
    });

    // Back to the interrupted run: R asks, y resumes it here.
    t.keys(&["Escape", "k", "R"]);
    t.wait_for("the confirm", 10, |s| {
        s.contains("Resume run") && s.contains("(held)?")
    });
    t.keys(&["y"]);
    let s = t.wait_for("the resumed run", 30, |s| {
        s.contains("Runs (1) · history 1") && s.contains("▶ running")
    });
    assert!(!s.contains("interrupted run"), "{s}");
    wait_for_file(&dir.path().join("started.2"), 30);
    std::fs::write(dir.path().join("go"), "").unwrap();
    t.wait_for("the run to succeed", 60, |s| {
        s.contains("run held succeeded")
    });
    t.keys(&["q"]);
    let s = t.wait_for("the console to exit", 30, |s| s.contains("EXIT="));
    assert!(s.contains("EXIT=0"), "{s}");
}

/// `taskdeck serve` on an ephemeral port, killed when dropped.
struct Server {
    child: std::process::Child,
    url: String,
}

impl Server {
    fn start(home: &Path, tokens: &Path) -> Server {
        use std::io::BufRead;
        let mut child = Command::new(env!("CARGO_BIN_EXE_taskdeck"))
            .args(["serve", "--bind", "127.0.0.1:0", "--tokens"])
            .arg(tokens)
            .env("TASKDECK_HOME", home)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("taskdeck serve starts");
        let out = child.stdout.take().expect("stdout");
        let mut line = String::new();
        std::io::BufReader::new(out)
            .read_line(&mut line)
            .expect("serve prints where it listens");
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_string();
        Server { child, url }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const ADMIN: &str = "admin-e2e-0123456789abcdef";
const OPERATOR: &str = "operator-e2e-0123456789abc";
const VIEWER: &str = "viewer-e2e-0123456789abcde";

#[test]
fn attach_retries_a_failed_task_on_the_server_and_refuses_a_viewer_politely() {
    if !Tmux::available() {
        eprintln!("SKIPPED: tmux is not installed, so the console cannot be driven end to end");
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let tokens = home.path().join("tokens");
    std::fs::write(
        &tokens,
        format!("admin {ADMIN}\noperator {OPERATOR}\nviewer {VIEWER}\n"),
    )
    .unwrap();
    // `flaky` fails until a marker exists, and leaves the marker: a retry succeeds.
    let marker = home.path().join("fixed");
    let flow = home.path().join("flaky.toml");
    std::fs::write(
        &flow,
        format!(
            "name = \"flaky\"\n\n[tasks.prep]\nbuiltin = \"noop\"\n\n[tasks.flaky]\nneeds = [\"prep\"]\nrun = 'sh -c \"if [ -f {m} ]; then echo fixed; else touch {m}; echo broken; exit 1; fi\"'\n\n[tasks.after]\nneeds = [\"flaky\"]\nbuiltin = \"echo done\"\n",
            m = marker.display()
        ),
    )
    .unwrap();
    let server = Server::start(home.path(), &tokens);
    let bin = env!("CARGO_BIN_EXE_taskdeck");
    let submitted = Command::new(bin)
        .arg("submit")
        .arg(&flow)
        .args(["--to", &server.url, "--token", ADMIN])
        .env("TASKDECK_HOME", home.path())
        .output()
        .unwrap();
    assert!(submitted.status.success(), "{submitted:?}");

    let attach = |token: &str, tag: &str| {
        let cmd = format!(
            "TASKDECK_HOME={} {bin} attach {} --token {token}; echo EXIT=$?; sleep 60",
            home.path().display(),
            server.url
        );
        Tmux::start(tag, &cmd, 120, 40)
    };
    let port = server.url.rsplit(':').next().unwrap().to_string();

    // The viewer sees the failed run and is refused when it presses `r`.
    let v = attach(VIEWER, "viewer");
    let s = v.wait_for("the failed run", 30, |s| {
        s.contains("✗ flaky") && s.contains("failed")
    });
    assert!(s.contains(&format!("REMOTE 127.0.0.1:{port}")), "{s}");
    v.wait_for("the link", 30, |s| s.contains("ms · connected"));
    v.keys(&["l"]);
    v.wait_for("flaky selected", 10, |s| s.contains("Task flaky"));
    v.keys(&["r"]);
    let s = v.wait_for("the refusal", 30, |s| s.contains("needs an operator token"));
    assert!(s.contains("✗ flaky"), "nothing changed: {s}");
    v.keys(&["q"]);
    v.wait_for("the viewer to leave", 10, |s| s.contains("EXIT=0"));

    // The operator retries it, sees it succeed and the run finish.
    let o = attach(OPERATOR, "operator");
    o.wait_for("the failed run", 30, |s| s.contains("✗ flaky"));
    o.keys(&["l"]);
    o.wait_for("flaky selected", 10, |s| s.contains("Task flaky"));
    o.keys(&["r"]);
    o.wait_for("the retry to succeed", 60, |s| {
        s.contains("✓ flaky") && s.contains("✓ after") && s.contains("✓ succeeded")
    });
    // The new attempt's log comes too.
    o.wait_for("the second attempt's log", 30, |s| {
        s.contains("flaky #2") && s.contains("fixed")
    });
    o.keys(&["q"]);
    o.wait_for("the console to close", 10, |s| s.contains("EXIT=0"));
}

#[test]
fn attach_says_why_before_taking_the_screen() {
    let home = tempfile::tempdir().unwrap();
    let tokens = home.path().join("tokens");
    std::fs::write(&tokens, format!("viewer {VIEWER}\n")).unwrap();
    let server = Server::start(home.path(), &tokens);
    let bin = env!("CARGO_BIN_EXE_taskdeck");
    let run = |args: &[&str]| {
        let out = Command::new(bin)
            .arg("attach")
            .args(args)
            .env("TASKDECK_HOME", home.path())
            .env_remove("TASKDECK_TOKEN")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(&[&server.url, "--token", "not-a-valid-token-at-all"]);
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("the token is not valid"), "{err}");
    let (code, err) = run(&[&server.url]);
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("--token"), "{err}");
    let (code, err) = run(&["http://127.0.0.1:1", "--token", VIEWER]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("cannot reach"), "{err}");
    let (code, err) = run(&["ftp://x", "--token", VIEWER]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("http://HOST:PORT"), "{err}");
}

#[test]
fn a_plan_opens_held_for_review_and_p_starts_it() {
    if !Tmux::available() {
        eprintln!("SKIPPED: tmux is not installed, so the console cannot be driven end to end");
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_taskdeck");
    let cmd = format!(
        "cd {dir} && TASKDECK_HOME={dir} {bin} plan --type system_analysis --title 'Why is CI slow' --strategy fast -o plan.toml; echo EXIT=$?; sleep 60",
        dir = home.path().display(),
    );
    let t = Tmux::start("plan", &cmd, 80, 24);
    let s = t.wait_for("the plan under review", 30, |s| {
        s.contains("held for review") && s.contains("Graph")
    });
    assert!(s.contains("paused"), "the run is held: {s}");
    assert!(s.contains("0/4"), "nothing has run: {s}");
    assert!(
        home.path().join("plan.toml").exists(),
        "the file is written first"
    );
    t.keys(&["p"]);
    let s = t.wait_for("the plan to run", 30, |s| s.contains("4/4"));
    assert!(!s.contains("paused"), "{s}");
    t.keys(&["q"]);
    let s = t.wait_for("exit", 20, |s| s.contains("EXIT="));
    assert!(s.contains("EXIT=0"), "the plan's run succeeded: {s}");
}
