//! `taskdeck run` through the real binary, as a user runs it: the examples end to end, exit
//! codes, what is printed, the JSON report, signals, the config file, secrets.
//!
//! Every test gets its own `TASKDECK_HOME` (config, data and state dirs) in a temp dir, and
//! runs from the repository root like the examples say. Nothing here asserts on speed: waits
//! poll against generous deadlines and only fail a test that would otherwise hang.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long any one `taskdeck run` may take before the test gives up on it.
const DEADLINE: Duration = Duration::from_secs(120);

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn example(name: &str) -> PathBuf {
    root().join("assets/examples").join(name)
}

fn fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures").join(name)
}

/// A user's environment: a private home for taskdeck's files and a scratch dir for workflows.
struct Env {
    home: tempfile::TempDir,
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        Env {
            home: tempfile::tempdir().unwrap(),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_taskdeck"));
        c.current_dir(root())
            .env("TASKDECK_HOME", self.home.path())
            .env_remove("TASKDECK_CONFIG")
            .env("MOCK_AGENT_DELAY", "0.05")
            .stdin(Stdio::null());
        c
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `text` to a file in the scratch dir and returns its path.
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// `taskdeck ARGS...` to its end.
    fn run(&self, args: &[&dyn AsRef<std::ffi::OsStr>]) -> Out {
        let mut c = self.cmd();
        for a in args {
            c.arg(a);
        }
        Running::spawn(c).wait()
    }
}

/// What a finished `taskdeck` printed and how it exited.
#[derive(Debug)]
struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Out {
    fn show(&self) -> String {
        format!(
            "exit {:?}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }

    #[track_caller]
    fn expect_code(&self, code: i32) -> &Out {
        assert_eq!(self.code, Some(code), "{}", self.show());
        assert!(!self.stderr.contains("panicked"), "{}", self.show());
        self
    }

    #[track_caller]
    fn has(&self, needle: &str) -> &Out {
        assert!(
            self.stdout.contains(needle),
            "stdout lacks {needle:?}\n{}",
            self.show()
        );
        self
    }

    #[track_caller]
    fn lacks(&self, needle: &str) -> &Out {
        assert!(
            !self.stdout.contains(needle),
            "stdout has {needle:?}\n{}",
            self.show()
        );
        self
    }

    /// The progress lines (`HH:MM:SS ...`), without their timestamps.
    fn progress(&self) -> Vec<&str> {
        self.stdout
            .lines()
            .filter(|l| is_clock(l))
            .map(|l| &l[9..])
            .collect()
    }

    /// Index of the first progress line containing `needle`.
    #[track_caller]
    fn line_of(&self, needle: &str) -> usize {
        self.progress()
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no progress line with {needle:?}\n{}", self.show()))
    }
}

fn is_clock(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() > 9
        && b[2] == b':'
        && b[5] == b':'
        && b[8] == b' '
        && [0, 1, 3, 4, 6, 7].iter().all(|i| b[*i].is_ascii_digit())
}

/// A `taskdeck` process whose output is collected as it comes.
struct Running {
    child: Child,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Running {
    fn spawn(mut c: Command) -> Running {
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = c.spawn().expect("cannot start taskdeck");
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        let pipes: [(Box<dyn Read + Send>, _); 2] = [
            (Box::new(child.stdout.take().unwrap()), stdout.clone()),
            (Box::new(child.stderr.take().unwrap()), stderr.clone()),
        ];
        for (mut pipe, buf) in pipes {
            readers.push(std::thread::spawn(move || {
                let mut chunk = [0u8; 4096];
                while let Ok(n) = pipe.read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    buf.lock().unwrap().extend_from_slice(&chunk[..n]);
                }
            }));
        }
        Running {
            child,
            stdout,
            stderr,
            readers,
        }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn stdout_now(&self) -> String {
        String::from_utf8_lossy(&self.stdout.lock().unwrap()).into_owned()
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) with the pid of our own, not yet reaped, child.
        assert_eq!(unsafe { libc::kill(self.pid(), sig) }, 0);
    }

    /// Waits for the end (killing it past the deadline, which fails the test).
    fn wait(mut self) -> Out {
        let start = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break Some(s);
            }
            if start.elapsed() > DEADLINE {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        let out = Out {
            code: status.and_then(|s| s.code()),
            stdout: String::from_utf8_lossy(&self.stdout.lock().unwrap()).into_owned(),
            stderr: String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned(),
        };
        assert!(
            status.is_some(),
            "taskdeck did not finish within {DEADLINE:?}\n{}",
            out.show()
        );
        out
    }
}

/// Polls `f` until it returns `Some`, failing the test past a generous deadline.
#[track_caller]
fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < DEADLINE, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A pid written by a task into `path`, once it is there.
fn pid_in(path: &Path) -> i32 {
    eventually(&format!("a pid in {}", path.display()), || {
        let s = std::fs::read_to_string(path).ok()?;
        if !s.ends_with('\n') {
            return None;
        }
        s.trim().parse().ok()
    })
}

/// True while `pid` is a live (not zombie) process.
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X')),
        Err(_) => false,
    }
}

#[track_caller]
fn gone_soon(pid: i32, what: &str) {
    eventually(&format!("{what} (pid {pid}) to be gone"), || {
        (!alive(pid)).then_some(())
    });
}

fn report(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("no report at {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("report is not JSON: {e}\n{text}"))
}

#[track_caller]
fn task<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .unwrap_or_else(|| panic!("no task {id} in the report\n{report:#}"))
}

/// Checks what every task entry of a report carries, and its attempts' consistency.
#[track_caller]
fn check_task_shape(t: &Value) {
    let id = &t["id"];
    let state = t["state"].as_str().unwrap();
    let attempts = t["attempts"].as_array().unwrap();
    assert!(t["outputs"].is_object(), "{t:#}");
    for (i, a) in attempts.iter().enumerate() {
        assert_eq!(a["number"], i as u64 + 1, "{id}: {t:#}");
        assert!(a["agent"].is_string(), "{id}: {t:#}");
        let (s, f) = (a["started_at"].as_u64(), a["finished_at"].as_u64());
        if let (Some(s), Some(f)) = (s, f) {
            assert!(f >= s, "{id}: {t:#}");
            assert_eq!(a["duration_ms"].as_u64(), Some(f - s), "{id}: {t:#}");
        }
    }
    match state {
        "succeeded" | "failed" => {
            assert!(!attempts.is_empty(), "{id}: {t:#}");
            assert!(t["duration_ms"].is_u64(), "{id}: {t:#}");
            assert_eq!(
                t["agent"],
                attempts.last().unwrap()["agent"],
                "{id}: the task's agent is its last attempt's\n{t:#}"
            );
            assert_eq!(attempts.last().unwrap()["outcome"], state, "{id}: {t:#}");
        }
        "blocked" | "skipped" => {
            assert!(attempts.is_empty(), "{id}: {t:#}");
            assert!(t["agent"].is_null(), "{id}: {t:#}");
            assert!(t["reason"].is_string(), "{id}: {t:#}");
        }
        _ => {}
    }
}

// ----- the examples -----

#[test]
fn demo_fails_at_staging_db_and_blocks_what_follows() {
    let env = Env::new();
    let report_path = env.path("demo.json");
    let out = env.run(&[&"run", &example("demo.toml"), &"--report", &report_path]);
    out.expect_code(1);

    // Progress: the retry that works, the gate, the failure, the end.
    let first = out.line_of("run ");
    assert!(
        out.progress()[first].contains("of `demo`: 11 tasks"),
        "{}",
        out.show()
    );
    let retry = out.line_of(
        "↻ fetch-assets attempt 1 failed: exited with code 1: mirror timed out; retrying in",
    );
    let started_again = out.line_of("▶ fetch-assets started on");
    assert!(
        out.progress()[first..]
            .iter()
            .any(|l| l.contains("fetch-assets started on") && l.contains("(attempt 2/3)")),
        "{}",
        out.show()
    );
    assert!(retry > started_again, "{}", out.show());
    let fetched = out.line_of("✓ fetch-assets succeeded in");
    assert!(fetched > retry);
    let build = out.line_of("✓ build done in");
    assert!(
        out.progress()[build].ends_with("waiting for its quality gate"),
        "{}",
        out.show()
    );
    let gate = out.line_of("✓ gate quality passed (2/2 checks passed)");
    assert!(gate > build);
    out.has("✗ staging-db failed: exited with code 1: database container not ready");
    let end = out.line_of("run failed");
    assert_eq!(end, out.progress().len() - 1, "{}", out.show());
    out.lacks("waiting for approval");
    out.lacks("package started")
        .lacks("release started")
        .lacks("announce started");

    // The summary, after the progress lines.
    let summary = out
        .stdout
        .lines()
        .position(|l| l.starts_with("run ") && l.contains(" (demo) failed in "))
        .unwrap_or_else(|| panic!("no summary\n{}", out.show()));
    let tail: Vec<&str> = out.stdout.lines().skip(summary).collect();
    assert!(
        tail[0].ends_with(": 7 succeeded, 1 failed, 3 blocked"),
        "{}",
        out.show()
    );
    for line in [
        "  retried fetch-assets: succeeded on attempt 2 (attempt 1: exited with code 1: mirror timed out)",
        "  failed staging-db: exited with code 1: database container not ready",
        "  blocked package: upstream `staging-db` did not succeed",
        "  blocked release: upstream `staging-db` did not succeed",
        "  blocked announce: upstream `staging-db` did not succeed",
        "  gate quality: passed (2/2 checks passed)",
    ] {
        assert!(
            tail.contains(&line),
            "summary lacks {line:?}\n{}",
            out.show()
        );
    }
    assert_eq!(
        tail.last().copied(),
        Some(format!("report written to {}", report_path.display()).as_str())
    );

    // The report.
    let r = report(&report_path);
    assert_eq!(r["workflow"], "demo");
    assert_eq!(r["state"], "failed");
    assert!(r["run"].is_string());
    assert!(r["finished_at"].as_u64() >= r["submitted_at"].as_u64());
    assert!(r["duration_ms"].is_u64());
    assert_eq!(
        r["counts"],
        serde_json::json!({"succeeded": 7, "failed": 1, "blocked": 3})
    );
    let tasks = r["tasks"].as_array().unwrap();
    let ids: Vec<&str> = tasks.iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [
            "checkout",
            "deps",
            "lint",
            "fetch-assets",
            "build",
            "test[suite=unit]",
            "test[suite=integration]",
            "staging-db",
            "package",
            "release",
            "announce"
        ]
    );
    for t in tasks {
        check_task_shape(t);
    }
    for id in [
        "checkout",
        "deps",
        "lint",
        "build",
        "test[suite=unit]",
        "test[suite=integration]",
    ] {
        let t = task(&r, id);
        assert_eq!(t["state"], "succeeded", "{t:#}");
        assert_eq!(t["attempts"].as_array().unwrap().len(), 1, "{t:#}");
    }
    // Tasks that need the `build`/`test` capabilities ran on the agent that has them.
    for id in ["build", "test[suite=unit]", "test[suite=integration]"] {
        assert_eq!(task(&r, id)["agent"], "builder");
    }
    assert_eq!(task(&r, "checkout")["attempts"][0]["exit_code"], 0);
    assert_eq!(
        task(&r, "build")["outputs"],
        serde_json::json!({"size_mb": 12})
    );
    assert_eq!(
        task(&r, "test[suite=unit]")["outputs"],
        serde_json::json!({"passed": true})
    );

    let fetch = task(&r, "fetch-assets");
    assert_eq!(fetch["state"], "succeeded");
    let attempts = fetch["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{fetch:#}");
    assert_eq!(attempts[0]["outcome"], "failed");
    assert_eq!(attempts[0]["exit_code"], 1);
    assert_eq!(attempts[0]["error"], "exited with code 1: mirror timed out");
    assert_eq!(attempts[1]["outcome"], "succeeded");
    assert!(attempts[1].get("error").is_none(), "{fetch:#}");
    // The task's duration spans both attempts and the backoff between them.
    let span = fetch["duration_ms"].as_u64().unwrap();
    let worked: u64 = attempts
        .iter()
        .map(|a| a["duration_ms"].as_u64().unwrap())
        .sum();
    assert!(span >= worked, "{fetch:#}");
    assert!(
        attempts[1]["started_at"].as_u64().unwrap() - attempts[0]["finished_at"].as_u64().unwrap()
            >= 900,
        "the 1s backoff was respected: {fetch:#}"
    );

    let db = task(&r, "staging-db");
    assert_eq!(db["state"], "failed");
    assert_eq!(
        db["reason"],
        "exited with code 1: database container not ready"
    );
    assert_eq!(db["attempts"].as_array().unwrap().len(), 1);
    for id in ["package", "release", "announce"] {
        let t = task(&r, id);
        assert_eq!(t["state"], "blocked", "{t:#}");
        assert_eq!(t["reason"], "upstream `staging-db` did not succeed");
    }

    let gates = r["gates"].as_array().unwrap();
    assert_eq!(gates.len(), 1);
    assert_eq!(
        gates[0],
        serde_json::json!({
            "id": "quality",
            "level": "output",
            "on_fail": "pause",
            "state": "passed",
            "after": ["build"],
            "checks": [
                {"name": "binary under 50 MB", "passed": true},
                {"name": "no warnings", "passed": true},
            ],
        })
    );
}

#[test]
fn demo_with_auto_approve_ends_the_same_and_nothing_waits() {
    let env = Env::new();
    let report_path = env.path("demo.json");
    let out = env.run(&[
        &"run",
        &example("demo.toml"),
        &"--headless",
        &"--auto-approve",
        &"--report",
        &report_path,
    ]);
    out.expect_code(1)
        .has("run failed")
        .lacks("waiting for approval");
    let r = report(&report_path);
    assert_eq!(r["state"], "failed");
    for t in r["tasks"].as_array().unwrap() {
        assert_ne!(t["state"], "waiting_approval", "{t:#}");
    }
}

#[test]
fn ci_pipeline_succeeds() {
    let env = Env::new();
    let report_path = env.path("ci.json");
    let out = env.run(&[
        &"run",
        &example("ci-pipeline.toml"),
        &"--auto-approve",
        &"--report",
        &report_path,
    ]);
    out.expect_code(0)
        .has("of `ci-pipeline`: 8 tasks")
        .has("▶ build[target=x86_64-linux] started on local (attempt 1/2)")
        .has("✓ lint done in")
        .has("✓ gate lint-clean passed (1/1 checks passed)")
        .lacks("✗")
        .lacks("↻");
    assert_eq!(out.progress().last().copied(), Some("run succeeded"));
    assert!(
        out.stdout.lines().any(|l| l.starts_with("run ")
            && l.contains(" (ci-pipeline) succeeded in ")
            && l.ends_with(": 8 succeeded")),
        "{}",
        out.show()
    );
    out.has("  gate lint-clean: passed (1/1 checks passed)");
    // Nothing failed, so the summary lists no task.
    assert!(
        !out.stdout.lines().any(|l| l.starts_with("  failed")
            || l.starts_with("  blocked")
            || l.starts_with("  cancelled")),
        "{}",
        out.show()
    );

    let r = report(&report_path);
    assert_eq!(r["state"], "succeeded");
    assert_eq!(r["counts"], serde_json::json!({"succeeded": 8}));
    for t in r["tasks"].as_array().unwrap() {
        check_task_shape(t);
        assert_eq!(t["state"], "succeeded", "{t:#}");
        assert_eq!(t["agent"], "local", "{t:#}");
    }
    assert_eq!(
        task(&r, "lint")["outputs"],
        serde_json::json!({"warnings": 0})
    );
    for target in ["x86_64-linux", "aarch64-linux"] {
        assert_eq!(
            task(&r, &format!("build[target={target}]"))["outputs"],
            serde_json::json!({"artifact": format!("app-{target}.tar.gz")})
        );
        assert_eq!(
            task(&r, &format!("test[target={target}]"))["outputs"],
            serde_json::json!({"failures": 0})
        );
    }
    // Both test instances take the `test-database` lock: their attempts never overlap.
    let span = |id: &str| {
        let a = &task(&r, id)["attempts"][0];
        (
            a["started_at"].as_u64().unwrap(),
            a["finished_at"].as_u64().unwrap(),
        )
    };
    let (a, b) = (
        span("test[target=x86_64-linux]"),
        span("test[target=aarch64-linux]"),
    );
    assert!(a.1 <= b.0 || b.1 <= a.0, "{a:?} overlaps {b:?}");
    assert_eq!(
        r["gates"][0]["checks"],
        serde_json::json!([{"name": "no clippy warnings", "passed": true}])
    );
    assert_eq!(r["gates"][0]["state"], "passed");
    assert_eq!(r["gates"][0]["after"], serde_json::json!(["lint"]));
}

#[test]
fn feature_development_succeeds_with_auto_approve() {
    let env = Env::new();
    let report_path = env.path("fd.json");
    let out = env.run(&[
        &"run",
        &example("feature-development.toml"),
        &"--auto-approve",
        &"--report",
        &report_path,
    ]);
    out.expect_code(0)
        .has("of `feature-development`: 9 tasks")
        .has("▶ requirements started on product-manager")
        .has("✓ gate review-approved passed (1/1 checks passed)");
    let waiting = out.line_of("⏸ deploy is waiting for approval");
    let approved = out.line_of("✓ deploy approved");
    let deployed = out.line_of("▶ deploy started on production-ops");
    assert!(waiting < approved && approved < deployed, "{}", out.show());
    assert_eq!(out.progress().last().copied(), Some("run succeeded"));

    let r = report(&report_path);
    assert_eq!(r["state"], "succeeded");
    for (id, agent) in [
        ("requirements", "product-manager"),
        ("design", "architect"),
        ("search-service", "core-services"),
        ("mcp-tool", "mcp-protocol"),
        ("index-docs", "docs-integration"),
        ("tests", "testing-specialist"),
        ("review", "testing-specialist"),
        ("deploy", "production-ops"),
        ("release-notes", "technical-writer"),
    ] {
        let t = task(&r, id);
        check_task_shape(t);
        assert_eq!(t["state"], "succeeded", "{t:#}");
        assert_eq!(t["agent"], agent, "{t:#}");
        // What mock-agent appended to $TASKDECK_OUTPUT.
        let summary = t["outputs"]["summary"].as_str().unwrap_or_default();
        assert!(summary.contains(" finished: "), "{t:#}");
        assert!(t["outputs"]["memory.last_role"].is_string(), "{t:#}");
    }
    assert_eq!(task(&r, "review")["outputs"]["verdict"], "approve");
    // The design got the requirements' summary in its rendered prompt.
    assert!(
        task(&r, "design")["outputs"]["summary"]
            .as_str()
            .unwrap()
            .contains("Design semantic search"),
        "{r:#}"
    );
    assert_eq!(r["gates"][0]["id"], "review-approved");
    assert_eq!(r["gates"][0]["level"], "integration");
    assert_eq!(r["gates"][0]["state"], "passed");
    assert_eq!(r["gates"][0]["checks"][0]["passed"], true);
}

// ----- exit codes -----

const OK_FLOW: &str = r#"
name = "alpha"
[tasks.one]
builtin = "echo one"
[tasks.two]
needs = ["one"]
run = "echo two"
"#;

const FAILING_FLOW: &str = r#"
name = "beta"
[tasks.first]
builtin = "fail"
[tasks.second]
needs = ["first"]
builtin = "noop"
"#;

#[test]
fn programs_start_with_clear_errors_and_scripts_without_shebang_run_with_sh() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    let script = env.write("plain.sh", "echo \"given=$1\" >> \"$TASKDECK_OUTPUT\"\n");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let locked = env.write("locked.sh", "echo never\n");
    let flow = env.write(
        "starts.toml",
        &format!(
            "name = \"starts\"\n\
             [tasks.plain]\nrun = \"{} arg\"\n\
             [tasks.missing]\nrun = \"no-such-program-anywhere --flag\"\n\
             [tasks.locked]\nrun = \"{}\"\n",
            script.display(),
            locked.display()
        ),
    );
    let report_path = env.path("starts.json");
    env.run(&[&"run", &flow, &"--report", &report_path])
        .expect_code(1)
        .has("✓ plain succeeded")
        .has("cannot start `no-such-program-anywhere`: No such file or directory (os error 2) — is it installed and on PATH?")
        .has("Permission denied (os error 13) — is it executable?");
    let r = report(&report_path);
    assert_eq!(task(&r, "plain")["outputs"]["given"], "arg");
}

#[test]
fn exit_0_on_success_and_1_on_a_failed_run() {
    let env = Env::new();
    let ok = env.write("ok.toml", OK_FLOW);
    env.run(&[&"run", &ok])
        .expect_code(0)
        .has("of `alpha`: 2 tasks")
        .has("run succeeded");
    let bad = env.write("bad.toml", FAILING_FLOW);
    env.run(&[&"run", &bad])
        .expect_code(1)
        .has("✗ first failed")
        .has("  blocked second: upstream `first` did not succeed");
}

#[test]
fn invalid_workflow_exits_1_with_located_diagnostics() {
    let env = Env::new();
    let bad = env.write(
        "bad.toml",
        "name = \"x\"\n[tasks.a]\nrun = \"true\"\nneeds = [\"nope\"]\n",
    );
    let out = env.run(&[&"run", &bad]);
    out.expect_code(1);
    assert!(out.stdout.is_empty(), "nothing runs: {}", out.show());
    assert!(
        out.stderr.contains(&format!(
            "{}:4:10: error: task `a` needs unknown task `nope`",
            bad.display()
        )),
        "{}",
        out.show()
    );
    assert!(out.stderr.contains("1 problem"), "{}", out.show());
}

#[test]
fn unreadable_file_exits_2() {
    let env = Env::new();
    let missing = env.path("missing.toml");
    let out = env.run(&[&"run", &missing]);
    out.expect_code(2);
    assert!(out.stdout.is_empty(), "{}", out.show());
    assert!(
        out.stderr.contains("cannot read") && out.stderr.contains("missing.toml"),
        "{}",
        out.show()
    );
    // A directory is not a readable workflow file either.
    let out = env.run(&[&"run", &env.dir.path()]);
    out.expect_code(2);
    assert!(out.stderr.contains("cannot read"), "{}", out.show());
}

#[test]
fn several_files_run_together_with_prefixed_lines() {
    let env = Env::new();
    let a = env.write("a.toml", OK_FLOW);
    let b = env.write("b.toml", FAILING_FLOW);
    let report_path = env.path("both.json");
    let out = env.run(&[&"run", &a, &b, &"--report", &report_path]);
    out.expect_code(1);
    let progress = out.progress();
    assert!(!progress.is_empty(), "{}", out.show());
    for l in &progress {
        assert!(
            l.starts_with("alpha ") || l.starts_with("beta "),
            "unprefixed progress line {l:?}\n{}",
            out.show()
        );
    }
    out.has("alpha ▶ one started on local")
        .has("alpha run succeeded")
        .has("beta ✗ first failed")
        .has("beta run failed");
    let summaries: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("run ") && l.contains(" in "))
        .collect();
    assert_eq!(summaries.len(), 2, "{}", out.show());
    assert!(summaries[0].contains("(alpha) succeeded"), "{}", out.show());
    assert!(summaries[1].contains("(beta) failed"), "{}", out.show());

    let r = report(&report_path);
    let runs = r.as_array().expect("one report per run");
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["workflow"], "alpha");
    assert_eq!(runs[0]["state"], "succeeded");
    assert_eq!(runs[1]["workflow"], "beta");
    assert_eq!(runs[1]["state"], "failed");
    assert_ne!(runs[0]["run"], runs[1]["run"]);

    // Both succeed: 0.
    let c = env.write("c.toml", &OK_FLOW.replace("alpha", "gamma"));
    env.run(&[&"run", &a, &c]).expect_code(0);
    // One file invalid: nothing runs at all.
    let bad = env.write(
        "bad.toml",
        "name = \"x\"\n[tasks.a]\nneeds = [\"zz\"]\nrun = \"true\"\n",
    );
    let out = env.run(&[&"run", &a, &bad]);
    out.expect_code(1);
    assert!(out.stdout.is_empty(), "{}", out.show());
}

// ----- signals -----

/// A run whose task records its shell's pid and a grandchild's, then waits on the grandchild.
fn long_flow(env: &Env) -> (PathBuf, PathBuf, PathBuf) {
    let pid = env.path("task.pid");
    let grandchild = env.path("grandchild.pid");
    let flow = env.write(
        "long.toml",
        &format!(
            r#"
name = "long"
[tasks.quick]
builtin = "noop"
[tasks.long]
needs = ["quick"]
run = 'echo $$ > "{}"; sleep 300 & echo $! > "{}"; wait'
[tasks.after]
needs = ["long"]
builtin = "noop"
"#,
            pid.display(),
            grandchild.display()
        ),
    );
    (flow, pid, grandchild)
}

fn stops_on(sig: i32) {
    let env = Env::new();
    let (flow, pid_file, grandchild_file) = long_flow(&env);
    let report_path = env.path("r.json");
    let mut c = env.cmd();
    c.args(["run", "--report"]).arg(&report_path).arg(&flow);
    let running = Running::spawn(c);
    let pid = pid_in(&pid_file);
    let grandchild = pid_in(&grandchild_file);
    assert!(alive(pid) && alive(grandchild));
    // The progress line for the running task is out before anything else happens.
    eventually("the task's progress line", || {
        running
            .stdout_now()
            .contains("▶ long started on local")
            .then_some(())
    });
    running.signal(sig);
    let out = running.wait();
    out.expect_code(1);
    assert!(
        out.stderr.contains("taskdeck: cancelling"),
        "{}",
        out.show()
    );
    gone_soon(pid, "the task");
    gone_soon(grandchild, "the task's child");
    out.has("■ long cancelled").has("run cancelled");
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("run ") && l.contains("(long) cancelled in ")),
        "{}",
        out.show()
    );

    let r = report(&report_path);
    assert_eq!(r["state"], "cancelled");
    assert_eq!(task(&r, "quick")["state"], "succeeded");
    let long = task(&r, "long");
    assert_eq!(long["state"], "cancelled", "{long:#}");
    assert_eq!(long["attempts"][0]["outcome"], "cancelled", "{long:#}");
    assert_eq!(task(&r, "after")["state"], "cancelled");
}

#[test]
fn ctrl_c_cancels_the_run_kills_its_processes_and_writes_the_report() {
    stops_on(libc::SIGINT);
}

#[test]
fn sigterm_cancels_the_run_kills_its_processes_and_writes_the_report() {
    stops_on(libc::SIGTERM);
}

#[test]
fn task_processes_die_with_a_killed_engine() {
    let env = Env::new();
    let (flow, pid_file, grandchild_file) = long_flow(&env);
    let mut c = env.cmd();
    c.arg("run").arg(&flow);
    let running = Running::spawn(c);
    let pid = pid_in(&pid_file);
    let grandchild = pid_in(&grandchild_file);
    assert!(alive(pid) && alive(grandchild));
    running.signal(libc::SIGKILL);
    let out = running.wait();
    assert_eq!(out.code, None, "killed by a signal: {}", out.show());
    // The guardian kills the task's whole process group, not just the direct child.
    gone_soon(pid, "the task");
    gone_soon(grandchild, "the task's own child");
}

// ----- config -----

const CONFIG: &str = r#"
[context]
greeting = "hello-from-config"

[agents.gpu-box]
kind = "local"
capabilities = ["gpu"]
"#;

#[test]
fn config_file_gives_context_and_agents() {
    let env = Env::new();
    let config = env.write("config.toml", CONFIG);
    let flow = env.write(
        "flow.toml",
        r#"
name = "cfg"
[tasks.render]
requires = ["gpu"]
run = 'echo "greeting={{ context.greeting }}" >> "$TASKDECK_OUTPUT"'
"#,
    );
    let report_path = env.path("r.json");
    env.run(&[
        &"--config",
        &config,
        &"run",
        &flow,
        &"--report",
        &report_path,
    ])
    .expect_code(0)
    .has("▶ render started on gpu-box");
    let r = report(&report_path);
    let t = task(&r, "render");
    assert_eq!(t["agent"], "gpu-box");
    assert_eq!(t["outputs"]["greeting"], "hello-from-config");

    // `--config` after the subcommand works too, and so does `TASKDECK_HOME/config.toml`.
    env.run(&[&"run", &flow, &"--config", &config])
        .expect_code(0);
    std::fs::write(env.home.path().join("config.toml"), CONFIG).unwrap();
    env.run(&[&"run", &flow]).expect_code(0);
    std::fs::remove_file(env.home.path().join("config.toml")).unwrap();

    // Without the config, no agent has `gpu`: the workflow is invalid.
    let out = env.run(&[&"run", &flow]);
    out.expect_code(1);
    assert!(
        out.stderr.contains("no agent can run task `render`"),
        "{}",
        out.show()
    );
}

#[test]
fn bad_or_missing_config_file_exits_2() {
    let env = Env::new();
    let flow = env.write("ok.toml", OK_FLOW);
    let config = env.write("config.toml", "[context\ngreeting = 1\n");
    let out = env.run(&[&"--config", &config, &"run", &flow]);
    out.expect_code(2);
    assert!(out.stdout.is_empty(), "{}", out.show());
    assert!(
        out.stderr
            .contains(&format!("config file {} is not valid", config.display()))
            && out.stderr.contains("line 1"),
        "{}",
        out.show()
    );

    let config = env.write("typo.toml", "[contxt]\ngreeting = 1\n");
    let out = env.run(&[&"--config", &config, &"run", &flow]);
    out.expect_code(2);
    assert!(out.stderr.contains("contxt"), "{}", out.show());

    let missing = env.path("nope.toml");
    let out = env.run(&[&"--config", &missing, &"run", &flow]);
    out.expect_code(2);
    assert!(
        out.stderr
            .contains(&format!("cannot read config file {}", missing.display())),
        "{}",
        out.show()
    );
}

// ----- secrets -----

fn secret_flow(env: &Env, var: &str, seen: &Path) -> PathBuf {
    env.write(
        "secret.toml",
        &format!(
            r#"
name = "secretive"
[secrets]
token = {{ env = "{var}" }}
[tasks.use]
reads = ["secrets.token"]
env = {{ TOKEN = "{{{{ secrets.token }}}}" }}
run = 'echo "the token is $TOKEN"; echo "$TOKEN" > "{}"; echo "echoed=$TOKEN" >> "$TASKDECK_OUTPUT"'
[tasks.after]
needs = ["use"]
builtin = "noop"
"#,
            seen.display()
        ),
    )
}

#[test]
fn secrets_reach_the_task_and_nothing_else() {
    let env = Env::new();
    let var = format!("TASKDECK_RUN_CLI_SECRET_{}", std::process::id());
    let value = "s3cr3t-v4lue-9f2c";
    let seen = env.path("seen");
    let flow = secret_flow(&env, &var, &seen);
    let report_path = env.path("r.json");
    let mut c = env.cmd();
    c.env(&var, value)
        .arg("run")
        .arg(&flow)
        .arg("--report")
        .arg(&report_path);
    let out = Running::spawn(c).wait();
    out.expect_code(0);
    // The task got it ...
    assert_eq!(std::fs::read_to_string(&seen).unwrap().trim(), value);
    // ... and nothing taskdeck shows or keeps has it.
    assert!(!out.stdout.contains(value), "{}", out.show());
    assert!(!out.stderr.contains(value), "{}", out.show());
    let text = std::fs::read_to_string(&report_path).unwrap();
    assert!(!text.contains(value), "{text}");
    let r = report(&report_path);
    assert_eq!(task(&r, "use")["outputs"]["echoed"], "***");
    // On disk, only the reader's scratch files in the run's private scratch dir held it (the
    // context file taskdeck gave it, the outputs file the task wrote it into), and those are
    // gone with the attempt.
    for file in walk(env.home.path()) {
        let bytes = std::fs::read(&file).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(value),
            "{} holds the secret",
            file.display()
        );
    }
    // The run's scratch dir went with the run.
    let work = env.home.path().join("run").join("work");
    let left: Vec<_> = std::fs::read_dir(&work).into_iter().flatten().collect();
    assert!(left.is_empty(), "left in {}: {left:?}", work.display());
}

#[test]
fn taskdeck_runtime_dir_holds_the_scratch_files() {
    let env = Env::new();
    let rt = env.path("rt");
    let seen = env.path("seen");
    let flow = env.write(
        "rt.toml",
        &format!(
            r#"
name = "scratch"
[tasks.look]
run = 'echo "$TASKDECK_CONTEXT" > "{}"; test -f "$TASKDECK_CONTEXT" && test "$(dirname "$TASKDECK_OUTPUT")" = "$(dirname "$TASKDECK_CONTEXT")" && echo k=v >> "$TASKDECK_OUTPUT"'
"#,
            seen.display()
        ),
    );
    let mut c = env.cmd();
    c.env("TASKDECK_RUNTIME_DIR", &rt)
        .args(["run", "--headless", "--quiet"])
        .arg(&flow);
    Running::spawn(c).wait().expect_code(0);
    let ctx = PathBuf::from(std::fs::read_to_string(&seen).unwrap().trim());
    // DIR/work/RUN/task-0.1.context.json
    assert_eq!(ctx.parent().unwrap().parent().unwrap(), rt.join("work"));
    assert!(
        ctx.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("task-0.1.")
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&rt).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    // Nothing left once the run is over.
    assert_eq!(std::fs::read_dir(rt.join("work")).unwrap().count(), 0);
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files
}

#[test]
fn unset_secret_fails_the_task_naming_the_variable() {
    let env = Env::new();
    let var = format!("TASKDECK_RUN_CLI_UNSET_{}", std::process::id());
    let seen = env.path("seen");
    let flow = secret_flow(&env, &var, &seen);
    let report_path = env.path("r.json");
    let mut c = env.cmd();
    c.env_remove(&var)
        .arg("run")
        .arg(&flow)
        .arg("--report")
        .arg(&report_path);
    let out = Running::spawn(c).wait();
    out.expect_code(1);
    let message = format!("secret `token` needs the environment variable {var}, which is not set");
    out.has(&format!("✗ use failed: {message}"))
        .has(&format!("  failed use: {message}"))
        .has("  blocked after: upstream `use` did not succeed");
    assert!(!seen.exists(), "the task never ran");
    let r = report(&report_path);
    assert_eq!(task(&r, "use")["reason"], message.as_str());
}

// ----- quiet -----

#[test]
fn quiet_prints_only_the_run_line_and_the_summary() {
    let env = Env::new();
    let a = env.write("a.toml", OK_FLOW);
    let out = env.run(&[&"run", &"--quiet", &a]);
    out.expect_code(0);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", out.show());
    assert!(
        lines[0].starts_with("run ") && lines[0].ends_with(" of `alpha`: 2 tasks"),
        "{}",
        out.show()
    );
    assert!(
        lines[1].starts_with("run ") && lines[1].contains("(alpha) succeeded in "),
        "{}",
        out.show()
    );
    // The summary names the same run as the run line.
    let id = lines[0].split(' ').nth(1).unwrap();
    assert!(
        lines[1].starts_with(&format!("run {id} ")),
        "{}",
        out.show()
    );

    let b = env.write("b.toml", FAILING_FLOW);
    let out = env.run(&[&"run", &"-q", &b]);
    out.expect_code(1);
    assert!(out.progress().is_empty(), "{}", out.show());
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines[2..],
        [
            "  failed first: builtin fail: this task fails on purpose",
            "  blocked second: upstream `first` did not succeed"
        ],
        "{}",
        out.show()
    );
}

// ----- malformed input -----

#[test]
fn malformed_files_never_panic() {
    let env = Env::new();
    let mut files: Vec<PathBuf> = [
        "cycle.toml",
        "dup.json",
        "dup_table.toml",
        "empty.toml",
        "refs.toml",
        "syntax.json",
        "syntax.toml",
        "wrong_type.toml",
    ]
    .iter()
    .map(|f| fixture(f))
    .collect();
    files.push(env.write("not-utf8.toml", "name = \"x\u{0}\"\n"));
    std::fs::write(env.path("binary.toml"), b"\xff\xfe\x00garbage").unwrap();
    files.push(env.path("binary.toml"));
    files.push(env.write("array.json", "[1, 2, 3]"));
    files.push(env.write("tasks-string.toml", "tasks = \"none\"\n"));
    files.push(env.write(
        "deep.json",
        &format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)),
    ));
    files.push(env.write("noext", OK_FLOW));
    for f in &files {
        let out = env.run(&[&"run", f]);
        let name = f.file_name().unwrap().to_string_lossy();
        if name == "noext" {
            // No extension: read as TOML.
            assert!(
                out.code == Some(0) || out.code == Some(1),
                "{name}: {}",
                out.show()
            );
        } else {
            assert_eq!(out.code, Some(1), "{name}: {}", out.show());
            assert!(out.stdout.is_empty(), "{name}: {}", out.show());
            assert!(
                out.stderr.contains(&format!("{}:", f.display())),
                "{name}: diagnostics name the file: {}",
                out.show()
            );
        }
        assert!(!out.stderr.contains("panicked"), "{name}: {}", out.show());
    }
    // A located diagnostic for a syntax error.
    let out = env.run(&[&"run", &fixture("syntax.toml")]);
    assert!(
        out.stderr
            .contains(&format!("{}:3:", fixture("syntax.toml").display())),
        "{}",
        out.show()
    );
}

// ----- engine regressions seen through the CLI -----

/// A gate whose checks are all expressions passes on the spot, inside the engine's work loop;
/// the tasks it releases must still start when they first need a condition check or an
/// approval (here given at once by --auto-approve). They used to wait forever.
#[test]
fn tasks_released_by_an_instant_gate_start() {
    let env = Env::new();
    let flow = env.write(
        "gate.toml",
        r#"
name = "gated"
[tasks.a]
run = "true"
[tasks.conditional]
needs = ["a"]
when = "1 == 1"
run = "true"
[tasks.approved]
needs = ["a"]
approval = true
run = "true"
[gates.ok]
after = ["a"]
checks = [{ name = "always", expr = "1 == 1" }]
"#,
    );
    env.run(&[&"run", &flow, &"--auto-approve"])
        .expect_code(0)
        .has("✓ conditional succeeded")
        .has("✓ approved succeeded")
        .has("run succeeded");
}

/// A gate over several tasks can never run once one of them is blocked: the others, done and
/// waiting for it, fail instead of waiting forever, and the gate ends `skipped`.
#[test]
fn a_gate_over_a_blocked_task_fails_the_tasks_waiting_for_it() {
    let env = Env::new();
    let flow = env.write(
        "gate.toml",
        r#"
name = "gated"
[tasks.x]
run = "true"
[tasks.z]
run = "sleep 0.3; false"
[tasks.y]
needs = ["z"]
run = "true"
[gates.both]
after = ["x", "y"]
checks = [{ name = "always", expr = "1 == 1" }]
"#,
    );
    let report_path = env.path("r.json");
    env.run(&[&"run", &flow, &"--report", &report_path])
        .expect_code(1)
        .has("✓ x done in")
        .has("  failed x: gate `both` could not run: `y` did not succeed")
        .has("  blocked y: upstream `z` did not succeed")
        .has("  gate both: skipped (its checks did not run)");
    let r = report(&report_path);
    assert_eq!(r["state"], "failed");
    assert_eq!(r["gates"][0]["state"], "skipped");
    assert_eq!(r["gates"][0]["checks"][0]["passed"], Value::Null);
}

#[test]
fn a_report_that_cannot_be_written_is_refused_before_running() {
    let env = Env::new();
    let flow = env.write("ok.toml", OK_FLOW);
    let nowhere = env.path("no/such/dir/r.json");
    let out = env.run(&[&"run", &flow, &"--report", &nowhere]);
    out.expect_code(2);
    assert!(out.stdout.is_empty(), "nothing ran: {}", out.show());
    assert!(
        out.stderr.contains(&format!(
            "taskdeck: cannot write the report to {}: its directory does not exist",
            nowhere.display()
        )),
        "{}",
        out.show()
    );
    let out = env.run(&[&"run", &flow, &"--report", &env.dir.path()]);
    out.expect_code(2);
    assert!(out.stderr.contains("it is a directory"), "{}", out.show());
}

#[test]
fn a_gate_that_pauses_says_the_run_waits() {
    let env = Env::new();
    let flow = env.write(
        "pause.toml",
        r#"
name = "paused"
[tasks.x]
run = "true"
[gates.g]
after = ["x"]
checks = [{ name = "never", expr = "1 == 2" }, { name = "cmd", run = "sh -c 'echo nope; exit 3'" }]
on_fail = "pause"
"#,
    );
    let mut c = env.cmd();
    c.arg("run").arg(&flow);
    let running = Running::spawn(c);
    eventually("the paused line", || {
        running
            .stdout_now()
            .contains("⏸ x is paused by gate g")
            .then_some(())
    });
    let out = running.stdout_now();
    assert!(
        out.contains("✗ gate g failed (0/2 checks passed)\n    ✗ never: `1 == 2` is false\n    ✗ cmd: exited with code 3\n    ⏸ x is paused by gate g (resume or retry it in the console; Ctrl-C cancels the run)\n"),
        "{out}"
    );
    running.signal(libc::SIGINT);
    running
        .wait()
        .expect_code(1)
        .has("run cancelled")
        .has("  gate g: failed (0/2 checks passed)");
}

/// `taskdeck ... | head`: the reader goes away early.
fn with_stdout_closed(mut c: Command) -> (std::process::ExitStatus, String) {
    use std::io::Read;
    let mut child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (child.wait().unwrap(), stderr)
}

#[test]
fn a_reader_that_goes_away_neither_crashes_nor_stops_a_run() {
    use std::os::unix::process::ExitStatusExt;
    let env = Env::new();
    let flow = env.write(
        "pipe.toml",
        "name = \"pipe\"\n[tasks.a]\nrun = \"true\"\n[tasks.b]\nrun = \"true\"\nneeds = [\"a\"]\n",
    );
    // The run goes on to its end, journaled, with nobody reading its progress.
    let mut c = env.cmd();
    c.args(["run", "--headless"]).arg(&flow);
    let (status, stderr) = with_stdout_closed(c);
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    env.run(&[&"runs"]).expect_code(0).has("2: 2 succeeded");
    // A command that only prints ends quietly, as `cat` would.
    let mut c = env.cmd();
    c.args(["runs"]);
    let (status, stderr) = with_stdout_closed(c);
    assert!(
        status.code() == Some(0) || status.signal() == Some(libc::SIGPIPE),
        "{status:?} {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}
