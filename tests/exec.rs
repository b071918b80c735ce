//! The process and builtin executors against real processes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use taskdeck::exec::{
    AttemptKey, Control, ExecHandle, ExecMsg, ExecReport, ExecRequest, ExecResult, Purpose,
    Redactor, Work, spawn,
};
use taskdeck::logs::LogStore;
use taskdeck::model::{AttemptOutcome, LogStream, RunId};
use taskdeck::spec::Builtin;
use tempfile::TempDir;
use tokio::sync::mpsc;

struct Rig {
    dir: TempDir,
    logs: LogStore,
}

impl Rig {
    fn new() -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let logs = LogStore::new(dir.path().join("logs"), 1000, 1 << 20);
        Rig { dir, logs }
    }

    fn req(&self, work: Work) -> ExecRequest {
        ExecRequest {
            key: AttemptKey {
                run: RunId::from("run-1"),
                task: 4,
                attempt: 2,
                purpose: Purpose::Task,
            },
            task_id: "build".into(),
            work,
            env: Vec::new(),
            cwd: None,
            timeout: None,
            kill_grace: Duration::from_millis(200),
            context: b"{}".to_vec(),
            scratch_dir: self.dir.path().join("scratch"),
            scratch_name: "task-4.2".into(),
            redactor: Arc::new(Redactor::default()),
            max_output_bytes: 1 << 20,
        }
    }

    fn cmd(&self, line: &str) -> ExecRequest {
        self.req(Work::Command(line.into()))
    }

    fn start(&self, req: ExecRequest) -> Running {
        let (tx, rx) = mpsc::unbounded_channel();
        let key = req.key.clone();
        let handle = spawn(req, tx, self.logs.clone());
        Running { handle, rx, key }
    }

    async fn run(&self, req: ExecRequest) -> ExecResult {
        self.start(req).finish().await.1
    }

    fn lines(&self, stream: LogStream) -> Vec<String> {
        self.logs
            .lines(&self.cmd("").key, 0)
            .into_iter()
            .filter(|l| l.stream == stream)
            .map(|l| l.line)
            .collect()
    }

    fn scratch_dir(&self) -> PathBuf {
        self.dir.path().join("scratch")
    }

    /// What the scratch dir holds (nothing when it does not exist).
    fn scratch_files(&self) -> Vec<String> {
        std::fs::read_dir(self.scratch_dir())
            .into_iter()
            .flatten()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }
}

struct Running {
    handle: ExecHandle,
    rx: mpsc::UnboundedReceiver<ExecMsg>,
    key: AttemptKey,
}

impl Running {
    async fn started(&mut self) -> Option<u32> {
        let msg = self.rx.recv().await.unwrap();
        assert_eq!(msg.key, self.key);
        match msg.report {
            ExecReport::Started { pid } => pid,
            other => panic!("expected Started, got {other:?}"),
        }
    }

    async fn finished(&mut self) -> ExecResult {
        let msg = tokio::time::timeout(Duration::from_secs(20), self.rx.recv())
            .await
            .expect("attempt did not finish in time")
            .unwrap();
        assert_eq!(msg.key, self.key);
        let ExecReport::Finished(r) = msg.report else {
            panic!("expected Finished, got {:?}", msg.report);
        };
        // Exactly one Finished: the executor is done and dropped its sender.
        assert!(self.rx.recv().await.is_none());
        r
    }

    async fn finish(mut self) -> (Option<u32>, ExecResult) {
        let pid = self.started().await;
        (pid, self.finished().await)
    }
}

/// Gone, or a zombie nobody has reaped yet (in containers PID 1 may be slow at that).
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

async fn wait_gone(pid: u32) -> bool {
    for _ in 0..100 {
        if gone(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

fn bg_pid(lines: &[String]) -> u32 {
    lines
        .iter()
        .find_map(|l| l.strip_prefix("bg="))
        .expect("no bg= line")
        .parse()
        .unwrap()
}

#[tokio::test]
async fn exit_zero_succeeds_with_key_value_outputs() {
    let rig = Rig::new();
    let (pid, r) = rig
        .start(rig.cmd(
            "printf 'name=app\\ncount=3\\n# note\\n\\nflags=[1,2]\\nname=final\\n' > \"$TASKDECK_OUTPUT\"",
        ))
        .finish()
        .await;
    assert!(pid.is_some());
    assert_eq!(r.outcome, AttemptOutcome::Succeeded, "{}", r.error);
    assert_eq!(r.exit_code, Some(0));
    assert_eq!(
        Value::Object(r.outputs),
        json!({"name": "final", "count": 3, "flags": [1, 2]})
    );
    let system = rig.lines(LogStream::System);
    assert!(system[0].starts_with(&format!("started pid {}: printf", pid.unwrap())));
    assert!(
        system
            .last()
            .unwrap()
            .starts_with("exited with code 0 after "),
        "{system:?}"
    );
}

#[tokio::test]
async fn one_json_object_as_outputs() {
    let rig = Rig::new();
    let r = rig
        .run(rig.cmd(r#"echo '{"size_mb": 12.5, "files": ["a", "b"]}' > "$TASKDECK_OUTPUT""#))
        .await;
    assert_eq!(r.outcome, AttemptOutcome::Succeeded, "{}", r.error);
    assert_eq!(
        Value::Object(r.outputs),
        json!({"size_mb": 12.5, "files": ["a", "b"]})
    );
}

#[tokio::test]
async fn bad_outputs_fail_the_attempt() {
    let rig = Rig::new();
    let r = rig
        .run(rig.cmd("printf 'a=1\\nno equals here\\n' > \"$TASKDECK_OUTPUT\""))
        .await;
    assert_eq!(r.outcome, AttemptOutcome::Failed);
    assert_eq!(r.exit_code, Some(0));
    assert_eq!(
        r.error,
        "outputs line 2 is not `key=value`: \"no equals here\""
    );
    assert!(r.outputs.is_empty());

    let mut req = rig.cmd("echo big=0123456789012345678901234567890 > \"$TASKDECK_OUTPUT\"");
    req.max_output_bytes = 16;
    let r = rig.run(req).await;
    assert_eq!(r.outcome, AttemptOutcome::Failed);
    assert_eq!(
        r.error,
        "outputs are 36 bytes, over the limit of 16 (defaults.max_output_bytes)"
    );
}

#[tokio::test]
async fn non_zero_exit_fails_with_last_stderr_line_and_drops_outputs() {
    let rig = Rig::new();
    let mut req = rig.cmd(
        "echo a=1 > \"$TASKDECK_OUTPUT\"; echo 'first problem' >&2; echo 'token s3cret rejected' >&2; echo >&2; exit 3",
    );
    req.redactor = Arc::new(Redactor::new(["s3cret".to_string()]));
    let r = rig.run(req).await;
    assert_eq!(r.outcome, AttemptOutcome::Failed);
    assert_eq!(r.exit_code, Some(3));
    assert_eq!(r.error, "exited with code 3: token *** rejected");
    assert!(r.outputs.is_empty());
}

#[tokio::test]
async fn killed_by_a_signal() {
    let rig = Rig::new();
    let r = rig.run(rig.cmd("kill -9 $$")).await;
    assert_eq!(r.outcome, AttemptOutcome::Failed);
    assert_eq!(r.exit_code, None);
    assert_eq!(r.error, "killed by signal 9 (SIGKILL)");
}

#[tokio::test]
async fn environment_and_context_file() {
    let rig = Rig::new();
    let mut req = rig.cmd(
        "sh -c 'echo run=$TASKDECK_RUN_ID; echo task=$TASKDECK_TASK_ID; echo attempt=$TASKDECK_ATTEMPT; \
         echo extra=$EXTRA; cat \"$TASKDECK_CONTEXT\"; echo; echo ctx=$TASKDECK_CONTEXT; echo out=$TASKDECK_OUTPUT; \
         stat -c mode=%a \"$TASKDECK_CONTEXT\"; stat -c dir=%a \"$(dirname \"$TASKDECK_CONTEXT\")\"'",
    );
    let context = json!({"tasks": {"fetch": {"outputs": {"n": 1}}}, "secret": "x"});
    req.context = serde_json::to_vec(&context).unwrap();
    req.env = vec![
        ("EXTRA".into(), "first".into()),
        ("EXTRA".into(), "agent then task".into()),
    ];
    let r = rig.run(req.clone()).await;
    assert_eq!(r.outcome, AttemptOutcome::Succeeded, "{}", r.error);
    let out = rig.lines(LogStream::Stdout);
    let dir = rig.scratch_dir();
    assert_eq!(
        out,
        [
            "run=run-1".to_string(),
            "task=build".into(),
            "attempt=2".into(),
            "extra=agent then task".into(),
            serde_json::to_string(&context).unwrap(),
            format!("ctx={}", dir.join("task-4.2.context.json").display()),
            format!("out={}", dir.join("task-4.2.outputs").display()),
            // The context file is private to us while the task runs, in a private dir...
            "mode=600".into(),
            "dir=700".into(),
        ]
    );
    // ...and gone (with the outputs file) once the attempt is over.
    assert_eq!(
        rig.scratch_files(),
        Vec::<String>::new(),
        "files left behind"
    );
}

#[tokio::test]
async fn the_outputs_file_is_made_by_the_task_and_removed_after() {
    let rig = Rig::new();
    // A task that writes no outputs finds no file; appending creates it.
    let r = rig
        .run(rig.cmd(
            "sh -c 'test -e \"$TASKDECK_OUTPUT\" && echo present || echo absent; echo k=v >> \"$TASKDECK_OUTPUT\"; test -f \"$TASKDECK_OUTPUT\" && echo made'",
        ))
        .await;
    assert_eq!(r.outcome, AttemptOutcome::Succeeded, "{}", r.error);
    assert_eq!(rig.lines(LogStream::Stdout), ["absent", "made"]);
    assert_eq!(Value::Object(r.outputs), json!({"k": "v"}));
    assert_eq!(
        rig.scratch_files(),
        Vec::<String>::new(),
        "files left behind"
    );
}

#[tokio::test]
async fn stale_scratch_files_are_replaced_and_failed_starts_clean_up() {
    let rig = Rig::new();
    // Files left under this attempt's names by a taskdeck that died mid-attempt.
    std::fs::create_dir(rig.scratch_dir()).unwrap();
    std::fs::write(rig.scratch_dir().join("task-4.2.outputs"), "stale=1\n").unwrap();
    std::fs::write(rig.scratch_dir().join("task-4.2.context.json"), "old").unwrap();
    let mut req =
        rig.cmd("sh -c 'cat \"$TASKDECK_CONTEXT\"; echo; echo fresh=2 >> \"$TASKDECK_OUTPUT\"'");
    req.context = br#"{"new":true}"#.to_vec();
    let r = rig.run(req).await;
    assert_eq!(r.outcome, AttemptOutcome::Succeeded, "{}", r.error);
    assert_eq!(rig.lines(LogStream::Stdout), [r#"{"new":true}"#]);
    assert_eq!(Value::Object(r.outputs), json!({"fresh": 2}));
    assert_eq!(rig.scratch_files(), Vec::<String>::new());

    // A program that cannot start leaves no files either.
    let r = rig.run(rig.cmd("/nonexistent/program")).await;
    assert_eq!(r.outcome, AttemptOutcome::Failed);
    assert_eq!(rig.scratch_files(), Vec::<String>::new());
}

#[tokio::test]
async fn a_script_without_a_shebang_runs_through_sh() {
    use std::os::unix::fs::PermissionsExt;
    let rig = Rig::new();
    let script = rig.dir.path().join("plain-script");
    std::fs::write(&script, "echo \"from script: $1\"\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let r = rig.run(rig.cmd(&format!("{} arg", script.display()))).await;
    assert_eq!(r.outcome, AttemptOutcome::Succeeded, "{}", r.error);
    assert_eq!(rig.lines(LogStream::Stdout), ["from script: arg"]);
}

#[tokio::test]
async fn direct_exec_keeps_arguments_verbatim() {
    let rig = Rig::new();
    let r = rig
        .run(rig.cmd("printf '%s\\n' 'a  b' \"c d\" e\\ f"))
        .await;
    assert_eq!(r.outcome, AttemptOutcome::Succeeded, "{}", r.error);
    assert_eq!(rig.lines(LogStream::Stdout), ["a  b", "c d", "e f"]);
}

#[tokio::test]
async fn stdout_and_stderr_are_captured_in_order_and_redacted() {
    let rig = Rig::new();
    let mut req = rig.cmd(
        "for i in 1 2 3 4 5; do echo out$i; echo err$i >&2; done; echo 'pass=hunter2!'; printf 'no newline'",
    );
    req.redactor = Arc::new(Redactor::new(["hunter2".to_string()]));
    let r = rig.run(req).await;
    assert_eq!(r.outcome, AttemptOutcome::Succeeded);
    assert_eq!(
        rig.lines(LogStream::Stdout),
        [
            "out1",
            "out2",
            "out3",
            "out4",
            "out5",
            "pass=***!",
            "no newline"
        ]
    );
    assert_eq!(
        rig.lines(LogStream::Stderr),
        ["err1", "err2", "err3", "err4", "err5"]
    );
    // The log file has them too, after the attempt finished.
    let file = rig.logs.file(&rig.cmd("").key).unwrap();
    let text = std::fs::read_to_string(file).unwrap();
    assert!(text.contains(" stdout pass=***!\n"), "{text}");
    assert!(!text.contains("hunter2"));
}

#[tokio::test]
async fn very_long_lines_are_cut() {
    let rig = Rig::new();
    let r = rig
        .run(rig.cmd("head -c 100000 /dev/zero | tr '\\0' x; echo; echo after"))
        .await;
    assert_eq!(r.outcome, AttemptOutcome::Succeeded);
    let out = rig.lines(LogStream::Stdout);
    assert_eq!(out.len(), 2);
    assert!(out[0].starts_with("xxxx"));
    assert!(out[0].ends_with(" [line truncated at 65536 bytes]"));
    assert_eq!(out[1], "after");
}

#[tokio::test]
async fn output_in_many_reads_keeps_every_line_whole() {
    let rig = Rig::new();
    // 3.5 KB: lines straddle the first small read and the buffer refills after it (900
    // lines, within what the log keeps in memory).
    let r = rig.run(rig.cmd("seq 1 900")).await;
    assert_eq!(r.outcome, AttemptOutcome::Succeeded, "{}", r.error);
    let want: Vec<String> = (1..=900).map(|n| n.to_string()).collect();
    assert_eq!(rig.lines(LogStream::Stdout), want);
    // A stream that stays silent gives no line at all.
    assert!(rig.lines(LogStream::Stderr).is_empty());
}

#[tokio::test]
async fn a_quick_leader_with_a_writer_left_behind_neither_hangs_nor_loses_its_lines() {
    let rig = Rig::new();
    // The leader is gone at once; `yes` in its group keeps filling the pipe until taskdeck
    // kills the group. Lines before that are kept, whole, and the attempt ends.
    let t = Instant::now();
    let r = rig.run(rig.cmd("sh -c 'yes & echo first; exit 0'")).await;
    assert_eq!(r.outcome, AttemptOutcome::Succeeded, "{}", r.error);
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    let out = rig.lines(LogStream::Stdout);
    assert!(
        out.iter().all(|l| l == "y" || l == "first"),
        "a line was cut"
    );
    // Memory keeps the newest lines; the file has the first ones.
    let file = rig.logs.file(&rig.cmd("").key).unwrap();
    let text = std::fs::read_to_string(file).unwrap();
    assert!(
        text.contains(" stdout first\n"),
        "{}",
        &text[..text.len().min(300)]
    );
}

#[tokio::test]
async fn timeout_kills_the_whole_group_including_grandchildren() {
    let rig = Rig::new();
    let mut req = rig.cmd("sleep 100 & echo bg=$!; sleep 100");
    req.timeout = Some(Duration::from_millis(300));
    let t = Instant::now();
    let (pid, r) = rig.start(req).finish().await;
    assert_eq!(r.outcome, AttemptOutcome::TimedOut);
    assert_eq!(r.error, "timed out after 300ms");
    assert!(t.elapsed() < Duration::from_secs(5));
    let bg = bg_pid(&rig.lines(LogStream::Stdout));
    assert!(wait_gone(bg).await, "grandchild {bg} survived");
    assert!(wait_gone(pid.unwrap()).await);
    let system = rig.lines(LogStream::System);
    assert!(
        system
            .iter()
            .any(|l| l == "timed out after 300ms: sending SIGTERM to the process group"),
        "{system:?}"
    );
}

#[tokio::test]
async fn stray_background_children_die_with_the_attempt() {
    let rig = Rig::new();
    let r = rig
        .run(rig.cmd("sleep 100 > /dev/null 2>&1 & echo bg=$!"))
        .await;
    assert_eq!(r.outcome, AttemptOutcome::Succeeded);
    let bg = bg_pid(&rig.lines(LogStream::Stdout));
    assert!(wait_gone(bg).await, "background child {bg} survived");
}

#[tokio::test]
async fn a_cancel_sent_with_the_start_stops_even_a_task_that_ends_at_once() {
    let rig = Rig::new();
    // The way the engine cancels a task it has just started: before its first moment is over.
    let mut run = rig.start(rig.cmd("echo quick >> \"$TASKDECK_OUTPUT\""));
    run.handle.send(Control::Cancel);
    run.started().await;
    let r = run.finished().await;
    assert_eq!(r.outcome, AttemptOutcome::Cancelled, "{}", r.error);
}

#[tokio::test]
async fn a_timeout_shorter_than_the_quiet_start_still_counts_from_the_start() {
    let rig = Rig::new();
    let mut req = rig.cmd("sleep 5");
    req.timeout = Some(Duration::from_millis(2));
    let t = Instant::now();
    let r = rig.run(req).await;
    assert_eq!(r.outcome, AttemptOutcome::TimedOut, "{}", r.error);
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
}

#[tokio::test]
async fn cancel_terminates_and_reports_cancelled() {
    let rig = Rig::new();
    let mut run = rig.start(rig.cmd("sleep 100 & echo bg=$!; wait"));
    let pid = run.started().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    run.handle.send(Control::Cancel);
    let r = run.finished().await;
    assert_eq!(r.outcome, AttemptOutcome::Cancelled);
    assert_eq!(r.error, "cancelled");
    assert!(wait_gone(pid).await);
    assert!(wait_gone(bg_pid(&rig.lines(LogStream::Stdout))).await);
}

#[tokio::test]
async fn a_group_ignoring_term_is_killed_after_the_grace() {
    let rig = Rig::new();
    let mut req = rig.cmd("trap '' TERM; echo ready; sleep 100; sleep 100");
    req.kill_grace = Duration::from_millis(300);
    let mut run = rig.start(req);
    run.started().await;
    while rig.lines(LogStream::Stdout).is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let t = Instant::now();
    run.handle.send(Control::Cancel);
    let r = run.finished().await;
    assert_eq!(r.outcome, AttemptOutcome::Cancelled);
    assert!(t.elapsed() >= Duration::from_millis(300));
    assert!(
        rig.lines(LogStream::System)
            .iter()
            .any(|l| l.starts_with("grace of 300ms over: sending SIGKILL"))
    );
}

#[tokio::test]
async fn pause_stops_progress_and_resume_continues() {
    let rig = Rig::new();
    let key = rig.cmd("").key;
    let mut req = rig.cmd("i=0; while [ $i -lt 30 ]; do echo $i; i=$((i+1)); sleep 0.02; done");
    // Paused time does not count against the timeout.
    req.timeout = Some(Duration::from_secs(3));
    let mut run = rig.start(req);
    run.started().await;
    while rig.lines(LogStream::Stdout).len() < 3 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    run.handle.send(Control::Pause);
    tokio::time::sleep(Duration::from_millis(150)).await;
    let before = rig.logs.line_count(&key);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(rig.logs.line_count(&key), before, "output while paused");
    run.handle.send(Control::Resume);
    let r = run.finished().await;
    assert_eq!(r.outcome, AttemptOutcome::Succeeded, "{}", r.error);
    assert_eq!(rig.lines(LogStream::Stdout).len(), 30);
    let system = rig.lines(LogStream::System);
    assert!(system.iter().any(|l| l.starts_with("paused")));
    assert!(system.iter().any(|l| l.starts_with("resumed")));
}

#[tokio::test]
async fn cancel_while_paused_still_ends_the_group() {
    let rig = Rig::new();
    let mut run = rig.start(rig.cmd("sleep 100"));
    let pid = run.started().await.unwrap();
    run.handle.send(Control::Pause);
    tokio::time::sleep(Duration::from_millis(50)).await;
    run.handle.send(Control::Cancel);
    let r = run.finished().await;
    assert_eq!(r.outcome, AttemptOutcome::Cancelled);
    assert!(wait_gone(pid).await);
}

#[tokio::test]
async fn engine_gone_still_cleans_up() {
    let rig = Rig::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _handle = spawn(rig.cmd("echo bg=$$; sleep 100"), tx, rig.logs.clone());
    let Some(ExecMsg {
        report: ExecReport::Started { pid: Some(pid) },
        ..
    }) = rx.recv().await
    else {
        panic!("no start");
    };
    drop(rx);
    assert!(wait_gone(pid).await, "task outlived the engine");
}

#[tokio::test]
async fn missing_program_and_missing_cwd() {
    let rig = Rig::new();
    let (pid, r) = rig
        .start(rig.cmd("definitely-not-a-program-xyz --flag"))
        .finish()
        .await;
    assert_eq!(pid, None);
    assert_eq!(r.outcome, AttemptOutcome::Failed);
    assert_eq!(
        r.error,
        "cannot start `definitely-not-a-program-xyz`: No such file or directory (os error 2) — is it installed and on PATH?"
    );

    let mut req = rig.cmd("true");
    req.cwd = Some(Path::new("/no/such/dir").to_path_buf());
    let r = rig.run(req).await;
    assert_eq!(r.outcome, AttemptOutcome::Failed);
    assert_eq!(r.error, "working directory `/no/such/dir` does not exist");

    let r = rig.run(rig.cmd("echo 'unbalanced")).await;
    assert_eq!(r.outcome, AttemptOutcome::Failed);
    assert!(r.error.contains("unbalanced quotes"), "{}", r.error);
}

#[tokio::test]
async fn cwd_is_used() {
    let rig = Rig::new();
    let mut req = rig.cmd("pwd");
    req.cwd = Some(rig.dir.path().to_path_buf());
    let r = rig.run(req).await;
    assert_eq!(r.outcome, AttemptOutcome::Succeeded);
    let want = rig.dir.path().canonicalize().unwrap();
    assert_eq!(rig.lines(LogStream::Stdout), [want.display().to_string()]);
}

#[tokio::test]
async fn builtins_through_spawn() {
    let rig = Rig::new();
    let r = rig.run(rig.req(Work::Builtin(Builtin::Noop))).await;
    assert_eq!(r.outcome, AttemptOutcome::Succeeded);
    let r = rig.run(rig.req(Work::Builtin(Builtin::Fail))).await;
    assert_eq!(
        (r.outcome, r.error.as_str()),
        (
            AttemptOutcome::Failed,
            "builtin fail: this task fails on purpose"
        )
    );
    let r = rig
        .run(rig.req(Work::Builtin(Builtin::Echo("hello".into()))))
        .await;
    assert_eq!(Value::Object(r.outputs), json!({"text": "hello"}));
    assert_eq!(rig.lines(LogStream::Stdout), ["hello"]);
    // Builtins write no files.
    assert!(!rig.scratch_dir().exists());

    let r = rig
        .run(rig.req(Work::Builtin(Builtin::Sleep(Duration::from_millis(20)))))
        .await;
    assert_eq!(r.outcome, AttemptOutcome::Succeeded);

    let mut req = rig.req(Work::Builtin(Builtin::Sleep(Duration::from_secs(100))));
    req.timeout = Some(Duration::from_millis(50));
    let r = rig.run(req).await;
    assert_eq!(
        (r.outcome, r.error.as_str()),
        (AttemptOutcome::TimedOut, "timed out after 50ms")
    );

    let mut run = rig.start(rig.req(Work::Builtin(Builtin::Sleep(Duration::from_secs(100)))));
    run.started().await;
    run.handle.send(Control::Pause);
    run.handle.send(Control::Cancel);
    assert_eq!(run.finished().await.outcome, AttemptOutcome::Cancelled);
}

#[test]
fn spawn_outside_a_runtime_fails_the_attempt_instead_of_panicking() {
    let rig = Rig::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _ = spawn(rig.cmd("true"), tx, rig.logs.clone());
    assert!(matches!(
        rx.try_recv().unwrap().report,
        ExecReport::Started { pid: None }
    ));
    let ExecReport::Finished(r) = rx.try_recv().unwrap().report else {
        panic!()
    };
    assert_eq!(r.outcome, AttemptOutcome::Failed);
}

#[tokio::test]
async fn paused_time_does_not_count_against_the_timeout() {
    let rig = Rig::new();
    let mut req = rig.cmd("sleep 0.3");
    req.timeout = Some(Duration::from_millis(600));
    let mut run = rig.start(req);
    run.started().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    run.handle.send(Control::Pause);
    tokio::time::sleep(Duration::from_millis(800)).await;
    run.handle.send(Control::Resume);
    let r = run.finished().await;
    assert_eq!(r.outcome, AttemptOutcome::Succeeded, "{}", r.error);
}
