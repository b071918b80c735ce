//! The history commands from the real binary: runs, report, diff, rerun, resume, backup and
//! restore, and the bad situations around a store (damaged journal, read-only file, a run that
//! is still alive elsewhere).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

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

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_taskdeck"));
        c.args(args)
            .env("TASKDECK_HOME", self.home.path())
            .env_remove("TASKDECK_STORE")
            .current_dir(self.dir.path());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn db(&self) -> PathBuf {
        self.home.path().join("data").join("taskdeck.db")
    }

    fn runs(&self) -> Vec<Value> {
        let out = self.run(&["runs", "--json"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const FLOW_V1: &str = r#"
name = "pipeline"
[tasks.build]
run = "echo building"
[tasks.test]
needs = ["build"]
run = "echo testing"
"#;

const FLOW_V2: &str = r#"
name = "pipeline"
[tasks.build]
run = "echo building faster"
[tasks.test]
needs = ["build"]
run = "echo testing"
[tasks.ship]
needs = ["test"]
run = "echo shipping"
"#;

#[test]
fn runs_lists_history_with_versions_and_report_rebuilds_a_past_run() {
    let env = Env::new();
    let v1 = env.write("flow.toml", FLOW_V1);
    assert!(
        env.run(&["run", "--headless", "-q", v1.to_str().unwrap()])
            .status
            .success()
    );
    assert!(
        env.run(&["run", "--headless", "-q", v1.to_str().unwrap()])
            .status
            .success()
    );
    env.write("flow.toml", FLOW_V2);
    assert!(
        env.run(&["run", "--headless", "-q", v1.to_str().unwrap()])
            .status
            .success()
    );

    let runs = env.runs();
    assert_eq!(runs.len(), 3);
    let versions: Vec<u64> = runs
        .iter()
        .map(|r| r["version_no"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, vec![2, 1, 1], "newest first: {runs:?}");
    assert!(runs.iter().all(|r| r["state"] == "succeeded"));

    let table = text(&env.run(&["runs"]).stdout);
    assert!(
        table.contains("pipeline") && table.contains("v2"),
        "{table}"
    );
    assert!(table.contains("3: 3 succeeded"), "{table}");

    // The report of a past run, from the journal alone, named by a unique prefix.
    let id = runs[0]["id"].as_str().unwrap();
    let out = env.run(&["report", &id[..id.len() - 1]]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["state"], "succeeded");
    // A prefix every run shares is ambiguous.
    let out = env.run(&["report", "2"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("matches 3 runs"),
        "{}",
        text(&out.stderr)
    );
    let out = env.run(&["report", id, "-o", "r.json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: Value =
        serde_json::from_slice(&std::fs::read(env.dir.path().join("r.json")).unwrap()).unwrap();
    assert_eq!(report["tasks"].as_array().unwrap().len(), 3);
    assert_eq!(report["tasks"][2]["id"], "ship");

    let out = env.run(&["report", "no-such-run"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no run `no-such-run`"));
}

#[test]
fn diff_shows_what_changed_and_rerun_uses_the_old_version() {
    let env = Env::new();
    let flow = env.write("flow.toml", FLOW_V1);
    let f = flow.to_str().unwrap();
    assert!(env.run(&["run", "--headless", "-q", f]).status.success());
    env.write("flow.toml", FLOW_V2);
    assert!(env.run(&["run", "--headless", "-q", f]).status.success());
    let runs = env.runs();
    let (new, old) = (
        runs[0]["id"].as_str().unwrap().to_string(),
        runs[1]["id"].as_str().unwrap().to_string(),
    );

    let out = env.run(&["diff", &old, &new]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let d = text(&out.stdout);
    assert!(d.contains("tasks added: ship"), "{d}");
    assert!(d.contains("tasks changed: build (action)"), "{d}");
    assert!(d.contains("-run = \"echo building\""), "{d}");
    assert!(d.contains("+run = \"echo building faster\""), "{d}");
    let same = text(&env.run(&["diff", &old, &old]).stdout);
    assert!(same.contains("nothing changed"), "{same}");

    // The file now says v2; rerun of the old run runs v1 (two tasks, not three).
    let out = env.run(&["rerun", &old, "--headless", "--report", "again.json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("re-running `pipeline` v1"));
    let report: Value =
        serde_json::from_slice(&std::fs::read(env.dir.path().join("again.json")).unwrap()).unwrap();
    assert_eq!(report["tasks"].as_array().unwrap().len(), 2);
    let runs = env.runs();
    assert_eq!(runs.len(), 3);
    assert_eq!(runs[0]["version_no"], 1, "the rerun used version 1");
}

/// Starts a long run and waits until its first task is running (journaled).
#[allow(clippy::zombie_processes)] // only a failing test leaves it unwaited
fn start_slow_run(env: &Env) -> std::process::Child {
    let flow = env.write(
        "slow.toml",
        r#"
name = "slow"
[tasks.wait]
run = "sleep 30"
[tasks.after]
needs = ["wait"]
run = "echo after"
"#,
    );
    let child = env
        .cmd(&["run", "--headless", flow.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        let runs = env.runs();
        if runs.first().is_some_and(|r| r["counts"]["running"] == 1) {
            return child;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the run never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_live_run_cannot_be_resumed_twice_and_a_finished_one_is_rerun_instead() {
    let env = Env::new();
    let mut child = start_slow_run(&env);
    let id = env.runs()[0]["id"].as_str().unwrap().to_string();
    let out = env.run(&["resume", &id, "--headless"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(err.contains("still being executed"), "{err}");
    // Meanwhile a second engine on the same store runs other work fine.
    let quick = env.write(
        "quick.toml",
        "name = \"quick\"\n[tasks.a]\nrun = \"true\"\n",
    );
    assert!(
        env.run(&["run", "--headless", "-q", quick.to_str().unwrap()])
            .status
            .success()
    );

    child.kill().unwrap();
    child.wait().unwrap();
    let runs = env.runs();
    let slow = runs.iter().find(|r| r["id"] == id.as_str()).unwrap();
    assert_eq!(slow["state"], "interrupted");
    let listing = text(&env.run(&["runs"]).stdout);
    assert!(
        listing.contains("1 interrupted run can be resumed"),
        "{listing}"
    );

    let finished = runs.iter().find(|r| r["workflow"] == "quick").unwrap();
    let out = env.run(&["resume", finished["id"].as_str().unwrap(), "--headless"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("taskdeck rerun"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn resume_runs_the_interrupted_attempt_again_and_reports_it() {
    let env = Env::new();
    let marker = env.dir.path().join("go");
    let flow = env.write(
        "flow.toml",
        &format!(
            r#"
name = "resumable"
[tasks.first]
run = "echo first"
[tasks.hold]
needs = ["first"]
run = "sh -c 'while [ ! -e {m} ]; do sleep 0.05; done'"
[tasks.last]
needs = ["hold"]
run = "echo last"
"#,
            m = marker.display()
        ),
    );
    let mut child = env
        .cmd(&["run", "--headless", flow.to_str().unwrap()])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !env
        .runs()
        .first()
        .is_some_and(|r| r["counts"]["running"] == 1)
    {
        assert!(start.elapsed() < Duration::from_secs(20));
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    std::fs::write(&marker, "").unwrap();
    let out = env.run(&["resume", "--last", "--headless", "--report", "rep.json"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("1 of 3 tasks had finished"), "{stdout}");
    assert!(
        stdout.contains("interrupted, running again: hold#1"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("first started"),
        "a finished task never runs again: {stdout}"
    );
    let report: Value =
        serde_json::from_slice(&std::fs::read(env.dir.path().join("rep.json")).unwrap()).unwrap();
    let hold = &report["tasks"][1];
    assert_eq!(hold["attempts"][0]["outcome"], "interrupted");
    assert_eq!(hold["attempts"][1]["outcome"], "succeeded");
    assert_eq!(report["state"], "succeeded");
}

#[test]
fn a_damaged_journal_tail_is_cut_with_a_warning() {
    let env = Env::new();
    let mut child = start_slow_run(&env);
    child.kill().unwrap();
    child.wait().unwrap();
    // Damage the last segment of the run, as a torn write would.
    let c = rusqlite::Connection::open(env.db()).unwrap();
    c.execute(
        "UPDATE segments SET payload = x'0badbeef' WHERE pos = (SELECT max(pos) FROM segments)",
        [],
    )
    .unwrap();
    drop(c);
    let mut resumed = env
        .cmd(&["resume", "--last", "--headless"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    resumed.kill().unwrap();
    let out = resumed.wait_with_output().unwrap();
    let err = text(&out.stderr);
    assert!(err.contains("is damaged at event"), "{err}");
    assert!(err.contains("resumed from the last good one"), "{err}");
    assert!(
        text(&out.stdout).contains("resumed run"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn backup_and_restore_from_the_cli() {
    let env = Env::new();
    let flow = env.write("flow.toml", FLOW_V1);
    assert!(
        env.run(&["run", "--headless", "-q", flow.to_str().unwrap()])
            .status
            .success()
    );
    let out = env.run(&["backup", "b.db"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("(1 runs)"),
        "{}",
        text(&out.stdout)
    );
    let out = env.run(&["backup", "b.db"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("already exists"));

    assert!(
        env.run(&["run", "--headless", "-q", flow.to_str().unwrap()])
            .status
            .success()
    );
    assert_eq!(env.runs().len(), 2);
    let out = env.run(&["restore", "b.db"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(env.runs().len(), 1);

    let out = env.run(&["restore", "missing.db"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no backup file"),
        "{}",
        text(&out.stderr)
    );
    env.write("notes.txt", "hello");
    let out = env.run(&["restore", "notes.txt"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        text(&out.stderr).contains("not a taskdeck"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn unusable_stores_are_refused_with_a_clear_message() {
    let env = Env::new();
    let flow = env.write("flow.toml", FLOW_V1);
    let f = flow.to_str().unwrap();
    for (store, expect) in [
        ("mysql://x", "unknown store"),
        ("sqlite:///proc/no/such/dir/x.db", "cannot"),
        ("postgres://nobody@127.0.0.1:1/none", "cannot connect"),
    ] {
        let out = env.run(&["run", "--headless", "--store", store, f]);
        assert_eq!(out.status.code(), Some(2), "{store}");
        let err = text(&out.stderr);
        assert!(err.contains(expect), "{store}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    // Memory keeps nothing.
    let out = env.run(&["run", "--headless", "-q", "--store", "memory", f]);
    assert!(out.status.success());
    assert!(env.runs().is_empty(), "memory runs are not journaled");
    assert!(!Path::new(&env.db()).exists() || env.runs().is_empty());
}

/// A full disk under the store: the engine says so, starts nothing new, keeps the events in
/// memory, and carries on (losing nothing) once space is freed. Needs a small tmpfs, which
/// needs root; elsewhere the test says it was skipped.
#[test]
fn a_full_disk_holds_work_until_space_is_freed() {
    let env = Env::new();
    let fs = env.dir.path().join("small");
    std::fs::create_dir(&fs).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=8m", "tmpfs"])
        .arg(&fs)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipped: cannot mount a small tmpfs here (needs root)");
        return;
    }
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _guard = Unmount(fs.clone());
    let store = format!("sqlite://{}", fs.join("j.db").display());
    let flow = env.write("flow.toml", FLOW_V1);
    let f = flow.to_str().unwrap();
    assert!(
        env.run(&["run", "--headless", "-q", "--store", &store, f])
            .status
            .success()
    );
    // Fill the disk.
    let filler = fs.join("filler");
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=4k"])
        .arg(format!("of={}", filler.display()))
        .stderr(Stdio::null())
        .status();
    let mut many = String::from("name = \"many\"\n");
    for i in 0..200 {
        many.push_str(&format!(
            "[tasks.t{i}]\nrun = \"echo task {i} with a line of output\"\n"
        ));
    }
    let many = env.write("many.toml", &many);
    let child = env
        .cmd(&[
            "run",
            "--headless",
            "--store",
            &store,
            many.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    std::fs::remove_file(&filler).unwrap();
    let out = child.wait_with_output().unwrap();
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}{}", text(&out.stdout));
    assert!(err.contains("is full"), "the operator was told: {err}");
    assert!(!err.contains("panicked"), "{err}");
    let listing = env.run(&["runs", "--json", "--store", &store]);
    let runs: Vec<Value> = text(&listing.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(runs[0]["workflow"], "many");
    assert_eq!(runs[0]["state"], "succeeded");
    assert_eq!(runs[0]["counts"]["succeeded"], 200);
    // Every event made it: the report folds to 200 succeeded tasks.
    let out = env.run(&["report", runs[0]["id"].as_str().unwrap(), "--store", &store]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let tasks = report["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 200);
    assert!(tasks.iter().all(|t| t["state"] == "succeeded"));
}

/// A store on a file system that turned read-only is refused up front with a clear message.
/// Needs root for the mount; elsewhere the test says it was skipped.
#[test]
fn a_read_only_store_is_refused_clearly() {
    let env = Env::new();
    let fs = env.dir.path().join("ro");
    std::fs::create_dir(&fs).unwrap();
    let mount = |args: &[&str]| {
        Command::new("mount")
            .args(args)
            .arg(&fs)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !mount(&["-t", "tmpfs", "-o", "size=8m", "tmpfs"]) {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    }
    let unmount = || {
        let _ = Command::new("umount").arg("-l").arg(&fs).status();
    };
    let store = format!("sqlite://{}", fs.join("j.db").display());
    let flow = env.write("flow.toml", FLOW_V1);
    let f = flow.to_str().unwrap();
    let first = env.run(&["run", "--headless", "-q", "--store", &store, f]);
    let remounted = mount(&["-o", "remount,ro"]);
    let second = env.run(&["run", "--headless", "-q", "--store", &store, f]);
    unmount();
    assert!(first.status.success());
    assert!(remounted, "remount read-only");
    assert_eq!(second.status.code(), Some(2));
    let err = text(&second.stderr);
    assert!(err.contains("is read-only"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn retention_prunes_old_runs_with_their_logs() {
    let env = Env::new();
    std::fs::write(
        env.home.path().join("config.toml"),
        "[store]\nkeep_runs = 1\n",
    )
    .unwrap();
    let flow = env.write("flow.toml", FLOW_V1);
    let f = flow.to_str().unwrap();
    assert!(env.run(&["run", "--headless", "-q", f]).status.success());
    let first = env.runs()[0]["id"].as_str().unwrap().to_string();
    let logs = env.home.path().join("state").join("logs");
    assert!(logs.join(&first).is_dir(), "the run has logs");
    assert!(env.run(&["run", "--headless", "-q", f]).status.success());
    // The second run's engine start keeps one finished run: the first.
    assert_eq!(env.runs().len(), 2);
    assert!(env.run(&["run", "--headless", "-q", f]).status.success());
    let runs = env.runs();
    assert_eq!(
        runs.len(),
        2,
        "the newest finished run and the one just made"
    );
    assert!(runs.iter().all(|r| r["id"] != first.as_str()));
    assert!(!logs.join(&first).exists(), "its logs went with it");
}

#[test]
fn backup_works_while_a_run_is_live_and_restore_waits_for_it() {
    let env = Env::new();
    let mut child = start_slow_run(&env);
    let out = env.run(&["backup", "live.db"]);
    let backed_up = out.status.success();
    let restore = env.run(&["restore", "live.db"]);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(backed_up, "{}", text(&out.stderr));
    assert_eq!(restore.status.code(), Some(1));
    let err = text(&restore.stderr);
    assert!(err.contains("is executing on this store"), "{err}");
    // The copy holds the live run as it stood, resumable from the copy.
    let copy = format!("sqlite://{}", env.dir.path().join("live.db").display());
    let out = env.run(&["runs", "--json", "--store", &copy]);
    let runs: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["counts"]["running"], 1);
}

#[test]
fn console_without_a_terminal_says_what_to_use_instead() {
    let env = Env::new();
    let out = env.run(&["console"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("needs a terminal") && err.contains("taskdeck runs"),
        "{err}"
    );
}
