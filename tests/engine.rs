//! The engine actor end to end through its public API: real processes, real files, events read
//! from a subscription. Nothing here measures time: every wait is for an event (or a process
//! state), bounded by a generous limit that only a hang can reach.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::{task, workflow};
use serde_json::{Value, json};
use taskdeck::config::Config;
use taskdeck::engine::state::EngineState;
use taskdeck::engine::{EngineError, EngineHandle, EngineOptions, Subscription};
use taskdeck::exec::{AttemptKey, Purpose};
use taskdeck::model::{
    AttemptOutcome, Command, Event, EventKind, GateState, LogStream, RunId, RunState, TaskIdx,
    TaskState,
};
use taskdeck::spec::{
    Action, AgentKind, AgentSpec, CheckKind, CheckSpec, GateLevel, GateSpec, OnFail, RetryPolicy,
    SecretSource, TaskSpec, Workflow,
};
use tempfile::TempDir;

/// Only a hang gets anywhere near this.
const WAIT: Duration = Duration::from_secs(20);

// ----- harness -----

struct Rig {
    dir: TempDir,
    engine: EngineHandle,
}

impl Rig {
    fn new() -> Rig {
        Rig::with(|_| {})
    }

    fn with(tweak: impl FnOnce(&mut Config)) -> Rig {
        Rig::with_options(tweak, false)
    }

    /// A second engine on this rig's journal and files, as after a restart.
    fn engine_on_same_store(&self) -> EngineHandle {
        let mut config = Config::default();
        config.defaults.kill_grace = Duration::from_millis(200);
        let store = taskdeck::store::open(&taskdeck::store::StoreUrl::Sqlite(
            self.dir.path().join("journal.db"),
        ))
        .unwrap();
        EngineHandle::start(EngineOptions {
            config: Arc::new(config),
            log_dir: self.dir.path().join("logs"),
            work_dir: self.dir.path().join("work"),
            auto_approve: false,
            journal: Some(taskdeck::store::Journal::spawn(store).unwrap()),
        })
    }

    fn with_options(tweak: impl FnOnce(&mut Config), auto_approve: bool) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.defaults.kill_grace = Duration::from_millis(200);
        tweak(&mut config);
        // Every engine test runs with a real journal: effects wait for their events to be
        // committed, which is the path users run.
        let store = taskdeck::store::open(&taskdeck::store::StoreUrl::Sqlite(
            dir.path().join("journal.db"),
        ))
        .unwrap();
        let engine = EngineHandle::start(EngineOptions {
            config: Arc::new(config),
            log_dir: dir.path().join("logs"),
            work_dir: dir.path().join("work"),
            auto_approve,
            journal: Some(taskdeck::store::Journal::spawn(store).unwrap()),
        });
        Rig { dir, engine }
    }

    /// A path in the test's scratch directory (shell-safe: temp dirs have no spaces or quotes).
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn p(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    /// A command that runs until the test calls `release(name)`: the test, not the clock,
    /// decides when it ends.
    fn hold(&self, name: &str) -> String {
        format!("while [ ! -e {} ]; do sleep 0.02; done", self.p(name))
    }

    fn release(&self, name: &str) {
        std::fs::write(self.path(name), "").unwrap();
    }

    /// Like `hold`, as one process that never forks (the shell blocks opening a FIFO), so its
    /// pid's state is the whole story: `T` when stopped. (A looping shell can sit in `D`,
    /// waiting on a stopped vfork child.)
    fn hold_in_one_process(&self, name: &str) -> String {
        let path = self.path(name);
        let ok = std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mkfifo {}", path.display());
        format!("read line < {}", path.display())
    }

    /// Ends a `hold_in_one_process` command, once its reader is there.
    async fn release_fifo(&self, name: &str) {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let path = self.path(name);
        // Without a reader a non-blocking open fails (ENXIO) instead of hanging.
        let released = eventually(|| {
            std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&path)
                .and_then(|mut f| f.write_all(b"go\n"))
                .is_ok()
        })
        .await;
        assert!(released, "nobody read {}", path.display());
    }

    async fn submit(&self, wf: Workflow) -> Watch {
        self.submit_as(wf, false).await
    }

    /// `held`: paused before anything runs (a plan under review).
    async fn submit_as(&self, wf: Workflow, held: bool) -> Watch {
        let wf = Arc::new(wf);
        let run = if held {
            self.engine.submit_held((*wf).clone(), None).await.unwrap()
        } else {
            self.engine.submit((*wf).clone(), None).await.unwrap()
        };
        let sub = self.engine.subscribe(0).await.unwrap();
        Watch {
            engine: self.engine.clone(),
            sub,
            run,
            wf,
            events: Vec::new(),
        }
    }
}

/// One run's events as read from a subscription from seq 0 (each test has its own engine).
struct Watch {
    engine: EngineHandle,
    sub: Subscription,
    run: RunId,
    wf: Arc<Workflow>,
    events: Vec<Arc<Event>>,
}

impl Watch {
    fn idx(&self, id: &str) -> TaskIdx {
        self.wf
            .tasks
            .iter()
            .position(|t| t.id == id)
            .unwrap_or_else(|| panic!("no task `{id}`")) as TaskIdx
    }

    fn name(&self, t: TaskIdx) -> &str {
        &self.wf.tasks[t as usize].id
    }

    fn dump(&self) -> String {
        self.events
            .iter()
            .map(|e| {
                let task = e.kind.task().map(|t| self.name(t).to_string());
                let detail = match &e.kind {
                    EventKind::TaskFailed { error, .. } => format!(": {error}"),
                    EventKind::RunFinished { state } => format!(": {state}"),
                    _ => String::new(),
                };
                format!(
                    "{:>4} {} {}{detail}",
                    e.seq,
                    e.kind.name(),
                    task.unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The first event with `seq > after` matching `pred`, reading more as needed.
    async fn wait_after(&mut self, after: u64, pred: impl Fn(&EventKind) -> bool) -> Arc<Event> {
        if let Some(e) = self.events.iter().find(|e| e.seq > after && pred(&e.kind)) {
            return e.clone();
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.sub.next()).await {
                Ok(Some(ev)) => {
                    self.events.push(ev.clone());
                    if ev.seq > after && pred(&ev.kind) {
                        return ev;
                    }
                }
                Ok(None) => panic!("the engine stopped; events so far:\n{}", self.dump()),
                Err(_) => panic!(
                    "no expected event within {WAIT:?}; events so far:\n{}",
                    self.dump()
                ),
            }
        }
    }

    async fn wait(&mut self, pred: impl Fn(&EventKind) -> bool) -> Arc<Event> {
        self.wait_after(0, pred).await
    }

    async fn started(&mut self, id: &str) -> Arc<Event> {
        let t = self.idx(id);
        self.wait(|k| matches!(k, EventKind::TaskStarted { task, .. } if *task == t))
            .await
    }

    async fn started_attempt(&mut self, id: &str, n: u32) -> Arc<Event> {
        let t = self.idx(id);
        self.wait(
            |k| matches!(k, EventKind::TaskStarted { task, attempt, .. } if *task == t && *attempt == n),
        )
        .await
    }

    /// Waits for the first `RunFinished` after `after` and returns its state.
    async fn finish_after(&mut self, after: u64) -> (RunState, u64) {
        let ev = self
            .wait_after(after, |k| matches!(k, EventKind::RunFinished { .. }))
            .await;
        let EventKind::RunFinished { state } = ev.kind else {
            unreachable!()
        };
        self.assert_idle().await;
        (state, ev.seq)
    }

    /// A finished run holds nothing: no slot, lock, resource, timer or active attempt.
    async fn assert_idle(&self) {
        let snap = self.snapshot().await;
        let run = &snap.runs[&self.run];
        assert!(run.all_terminal(), "\n{}", self.dump());
        assert!(run.tasks.iter().all(|t| t.open_attempt().is_none()));
        assert_eq!(snap.active, 0);
        assert!(snap.agents.values().all(|a| a.slots_used == 0));
        assert!(snap.locks.is_empty(), "{:?}", snap.locks);
        assert!(snap.timers.is_empty(), "{:?}", snap.timers);
        assert_eq!(snap.pool_used.cpu, 0.0);
    }

    async fn finish(&mut self) -> RunState {
        self.finish_after(0).await.0
    }

    async fn cmd(&self, cmd: Command) -> Result<(), EngineError> {
        self.engine.command(cmd).await
    }

    fn run_id(&self) -> RunId {
        self.run.clone()
    }

    async fn snapshot(&self) -> Box<EngineState> {
        self.engine.snapshot().await.unwrap()
    }

    async fn state_of(&self, id: &str) -> TaskState {
        let t = self.idx(id);
        self.snapshot().await.runs[&self.run].tasks[t as usize].state
    }

    /// Position in `events` of the first event matching `pred`.
    fn pos(&self, pred: impl Fn(&EventKind) -> bool) -> Option<usize> {
        self.events.iter().position(|e| pred(&e.kind))
    }

    fn pos_started(&self, id: &str) -> usize {
        let t = self.idx(id);
        self.pos(|k| matches!(k, EventKind::TaskStarted { task, .. } if *task == t))
            .unwrap_or_else(|| panic!("`{id}` never started:\n{}", self.dump()))
    }

    fn pos_assigned(&self, id: &str) -> usize {
        let t = self.idx(id);
        self.pos(|k| matches!(k, EventKind::TaskAssigned { task, .. } if *task == t))
            .unwrap_or_else(|| panic!("`{id}` never assigned:\n{}", self.dump()))
    }

    fn pos_succeeded(&self, id: &str) -> usize {
        let t = self.idx(id);
        self.pos(|k| matches!(k, EventKind::TaskSucceeded { task, .. } if *task == t))
            .unwrap_or_else(|| panic!("`{id}` never succeeded:\n{}", self.dump()))
    }

    fn log_lines(&self, id: &str, attempt: u32) -> Vec<String> {
        let key = AttemptKey {
            run: self.run.clone(),
            task: self.idx(id),
            attempt,
            purpose: Purpose::Task,
        };
        self.engine
            .logs()
            .lines(&key, 0)
            .into_iter()
            .filter(|l| l.stream != LogStream::System)
            .map(|l| l.line)
            .collect()
    }
}

fn sh(id: &str, needs: &[TaskIdx], cmd: &str) -> TaskSpec {
    let mut t = task(id, needs);
    t.action = Action::Run(cmd.to_string());
    t
}

fn retry(attempts: u32, delay_ms: u64) -> RetryPolicy {
    RetryPolicy {
        attempts,
        delay: Duration::from_millis(delay_ms),
        ..RetryPolicy::default()
    }
}

fn run_of(st: &EngineState, id: &RunId) -> taskdeck::engine::state::Run {
    st.runs[id].clone()
}

/// Whether a process exists and is not a zombie.
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(stat) => process_state(&stat) != Some('Z'),
    }
}

/// The state letter of /proc/PID/stat (after the parenthesised command name).
fn process_state(stat: &str) -> Option<char> {
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next())
}

fn state_letter(pid: u32) -> Option<char> {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| process_state(&s))
}

/// Polls `cond` until it holds; false if it never did within `WAIT`.
async fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if cond() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits for a task to write its pid file and reads it.
async fn read_pid(path: &Path) -> u32 {
    let mut pid = None;
    let ok = eventually(|| {
        pid = std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok());
        pid.is_some()
    })
    .await;
    assert!(ok, "no pid in {}", path.display());
    pid.unwrap()
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

// ----- 1. a diamond -----

#[tokio::test]
async fn diamond_of_commands_succeeds_in_dependency_order() {
    let rig = Rig::new();
    let wf = workflow(vec![
        sh("a", &[], "echo from-a"),
        sh("b", &[0], "echo from-b"),
        sh("c", &[0], "echo from-c"),
        sh("d", &[1, 2], "echo from-d"),
    ]);
    let mut w = rig.submit(wf).await;
    assert_eq!(w.finish().await, RunState::Succeeded);

    // Gap-free, increasing sequence numbers from 1, all about this run.
    for (i, e) in w.events.iter().enumerate() {
        assert_eq!(e.seq, i as u64 + 1, "\n{}", w.dump());
        assert_eq!(e.run, w.run);
    }
    assert!(matches!(w.events[0].kind, EventKind::RunSubmitted { .. }));

    let snap = w.snapshot().await;
    let run = run_of(&snap, &w.run);
    assert_eq!(run.state, RunState::Succeeded);
    for (i, t) in run.tasks.iter().enumerate() {
        let name = w.name(i as TaskIdx);
        assert_eq!(t.state, TaskState::Succeeded, "{name}");
        assert_eq!(t.attempts.len(), 1, "{name}");
        let a = &t.attempts[0];
        assert_eq!(a.outcome, Some(AttemptOutcome::Succeeded), "{name}");
        assert_eq!(a.exit_code, Some(0), "{name}");
        assert_eq!(a.number, 1);
        assert!(a.pid.is_some(), "{name} ran as a process");
        assert_eq!(w.log_lines(name, 1), vec![format!("from-{name}")]);
    }

    // No task starts before its needs finished.
    for spec in &w.wf.tasks {
        for n in &spec.needs {
            let need = w.name(*n).to_string();
            assert!(
                w.pos_assigned(&spec.id) > w.pos_succeeded(&need),
                "`{}` assigned before `{need}` succeeded:\n{}",
                spec.id,
                w.dump()
            );
            assert!(w.pos_started(&spec.id) > w.pos_succeeded(&need));
        }
    }
    // Each task started and succeeded exactly once.
    for t in 0..4 {
        let n = w
            .events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::TaskSucceeded { task, .. } if task == t))
            .count();
        assert_eq!(n, 1);
    }
}

// ----- 2. outputs and context -----

#[tokio::test]
async fn outputs_flow_downstream_and_context_holds_direct_upstreams_only() {
    let rig = Rig::new();
    let mut wf = workflow(vec![
        // 0: an indirect upstream of `down` (upstream of `up`), with outputs of its own.
        sh("other", &[], "echo far=away >> \"$TASKDECK_OUTPUT\""),
        // 1: key=value lines.
        sh(
            "up",
            &[0],
            "printf 'key=hello\\ncount=3\\n' >> \"$TASKDECK_OUTPUT\"",
        ),
        // 2: one JSON object.
        sh(
            "up2",
            &[],
            "echo '{\"obj\": {\"x\": 1}, \"list\": [1, 2]}' > \"$TASKDECK_OUTPUT\"",
        ),
        // 3: reads both through templates and the context file.
        sh(
            "down",
            &[1, 2],
            &format!(
                "echo got {{{{ tasks.up.outputs.key }}}} {{{{ tasks.up2.outputs.obj.x }}}} && cp \"$TASKDECK_CONTEXT\" {}",
                rig.p("down-ctx.json")
            ),
        ),
    ]);
    wf.context.insert("project".into(), json!("demo"));
    let mut w = rig.submit(wf).await;
    assert_eq!(w.finish().await, RunState::Succeeded, "\n{}", w.dump());

    let snap = w.snapshot().await;
    let run = run_of(&snap, &w.run);
    assert_eq!(
        Value::Object(run.tasks[1].outputs.clone()),
        json!({"key": "hello", "count": 3})
    );
    assert_eq!(
        Value::Object(run.tasks[2].outputs.clone()),
        json!({"obj": {"x": 1}, "list": [1, 2]})
    );
    assert_eq!(w.log_lines("down", 1), vec!["got hello 1".to_string()]);

    let ctx = read_json(&rig.path("down-ctx.json"));
    // Default reads: direct upstreams' outputs only (not `other`, which finished before).
    assert_eq!(keys(&ctx["tasks"]), vec!["up", "up2"]);
    assert_eq!(
        ctx["tasks"]["up"]["outputs"],
        json!({"key": "hello", "count": 3})
    );
    assert_eq!(ctx["tasks"]["up2"]["outputs"]["obj"], json!({"x": 1}));
    assert_eq!(ctx["context"], json!({"project": "demo"}));
    assert_eq!(ctx["secrets"], json!({}));
    assert_eq!(ctx["task"]["id"], "down");
    assert_eq!(ctx["task"]["attempt"], 1);
    assert_eq!(ctx["run"]["id"], w.run.as_str());
}

#[tokio::test]
async fn reads_restricts_the_context_and_templates() {
    let rig = Rig::new();
    let mut wf = workflow(vec![
        sh(
            "up",
            &[],
            "printf 'key=hello\\nhidden=42\\n' >> \"$TASKDECK_OUTPUT\"",
        ),
        sh("up2", &[], "echo n=7 >> \"$TASKDECK_OUTPUT\""),
        sh(
            "narrow",
            &[0, 1],
            &format!(
                "echo {{{{ tasks.up.outputs.key }}}} && cp \"$TASKDECK_CONTEXT\" {}",
                rig.p("narrow-ctx.json")
            ),
        ),
        sh("bad", &[0, 1], "echo {{ tasks.up2.outputs.n }}"),
    ]);
    wf.context.insert("project".into(), json!("demo"));
    wf.context.insert("other".into(), json!("x"));
    wf.tasks[2].reads = Some(vec!["tasks.up.outputs.key".into(), "project".into()]);
    wf.tasks[3].reads = Some(vec!["tasks.up.outputs.key".into()]);
    let mut w = rig.submit(wf).await;
    assert_eq!(w.finish().await, RunState::Failed);

    let snap = w.snapshot().await;
    let run = run_of(&snap, &w.run);
    assert_eq!(run.tasks[2].state, TaskState::Succeeded);
    assert_eq!(w.log_lines("narrow", 1), vec!["hello".to_string()]);
    let ctx = read_json(&rig.path("narrow-ctx.json"));
    assert_eq!(keys(&ctx["tasks"]), vec!["up"]);
    assert_eq!(ctx["tasks"]["up"]["outputs"], json!({"key": "hello"}));
    assert_eq!(ctx["context"], json!({"project": "demo"}));

    // A template naming something not read fails the task, clearly, without starting a process.
    let bad = &run.tasks[3];
    assert_eq!(bad.state, TaskState::Failed);
    assert_eq!(bad.attempts.len(), 1);
    let err = &bad.attempts[0].error;
    assert!(err.contains("cannot render `run`"), "{err}");
    assert!(
        err.contains("up2"),
        "the error should name what is missing: {err}"
    );
    assert_eq!(bad.attempts[0].pid, None);
    assert_eq!(bad.attempts[0].outcome, Some(AttemptOutcome::Failed));
}

// ----- 3. retries -----

#[tokio::test]
async fn retry_policy_retries_until_success() {
    let rig = Rig::new();
    let mut wf = workflow(vec![
        sh("flaky", &[], "[ \"$TASKDECK_ATTEMPT\" -ge 2 ]"),
        sh("after", &[0], "true"),
    ]);
    wf.tasks[0].retry = retry(3, 50);
    let mut w = rig.submit(wf).await;
    assert_eq!(w.finish().await, RunState::Succeeded, "\n{}", w.dump());

    let snap = w.snapshot().await;
    let run = run_of(&snap, &w.run);
    let flaky = &run.tasks[0];
    assert_eq!(flaky.state, TaskState::Succeeded);
    assert_eq!(flaky.attempts.len(), 2);
    assert_eq!(flaky.attempts[0].outcome, Some(AttemptOutcome::Failed));
    assert_eq!(flaky.attempts[0].exit_code, Some(1));
    assert_eq!(flaky.attempts[1].outcome, Some(AttemptOutcome::Succeeded));
    assert_eq!(run.tasks[1].state, TaskState::Succeeded);
    // The failure announced the retry; the retry came when due.
    let failed = w
        .pos(|k| {
            matches!(
                k,
                EventKind::TaskFailed {
                    task: 0,
                    attempt: 1,
                    retry_at: Some(_),
                    ..
                }
            )
        })
        .expect("a failed first attempt with a retry time");
    let due = w
        .pos(|k| matches!(k, EventKind::TaskRetryDue { task: 0 }))
        .unwrap();
    assert!(failed < due);
    assert!(
        due < w
            .pos(|k| matches!(
                k,
                EventKind::TaskStarted {
                    task: 0,
                    attempt: 2,
                    ..
                }
            ))
            .unwrap()
    );
}

#[tokio::test]
async fn exhausted_retries_fail_the_task_and_block_dependents() {
    let rig = Rig::new();
    let mut wf = workflow(vec![
        sh("broken", &[], "exit 3"),
        sh("child", &[0], "true"),
        sh("grandchild", &[1], "true"),
        sh("independent", &[], "true"),
    ]);
    wf.tasks[0].retry = retry(2, 10);
    let mut w = rig.submit(wf).await;
    assert_eq!(w.finish().await, RunState::Failed);

    let snap = w.snapshot().await;
    let run = run_of(&snap, &w.run);
    let broken = &run.tasks[0];
    assert_eq!(broken.state, TaskState::Failed);
    assert_eq!(broken.attempts.len(), 2);
    assert!(broken.attempts.iter().all(|a| a.exit_code == Some(3)));
    assert_eq!(run.tasks[1].state, TaskState::Blocked);
    assert_eq!(run.tasks[2].state, TaskState::Blocked);
    assert!(run.tasks[1].attempts.is_empty());
    assert_eq!(run.tasks[3].state, TaskState::Succeeded);
    // The last failure says no retry follows.
    assert!(
        w.pos(|k| matches!(
            k,
            EventKind::TaskFailed {
                task: 0,
                attempt: 2,
                retry_at: None,
                ..
            }
        ))
        .is_some()
    );
}

#[tokio::test]
async fn continue_on_failure_lets_dependents_run() {
    let rig = Rig::new();
    let mut wf = workflow(vec![sh("lenient", &[], "exit 1"), sh("next", &[0], "true")]);
    wf.tasks[0].continue_on_failure = true;
    let mut w = rig.submit(wf).await;
    assert_eq!(w.finish().await, RunState::Succeeded);
    let snap = w.snapshot().await;
    let run = run_of(&snap, &w.run);
    assert_eq!(run.tasks[0].state, TaskState::Failed);
    assert_eq!(run.tasks[1].state, TaskState::Succeeded);
}

// ----- 4. timeout and cancel -----

#[tokio::test]
async fn timeout_kills_the_whole_process_group() {
    let rig = Rig::new();
    let pidfile = rig.path("bg.pid");
    let mut wf = workflow(vec![
        sh(
            "slow",
            &[],
            &format!("sleep 30 & echo $! > {}; wait", pidfile.display()),
        ),
        sh("after", &[0], "true"),
    ]);
    wf.tasks[0].timeout = Some(Duration::from_secs(2));
    let mut w = rig.submit(wf).await;
    assert_eq!(w.finish().await, RunState::Failed);

    let snap = w.snapshot().await;
    let run = run_of(&snap, &w.run);
    let slow = &run.tasks[0];
    assert_eq!(slow.state, TaskState::Failed);
    assert_eq!(slow.attempts[0].outcome, Some(AttemptOutcome::TimedOut));
    assert!(
        slow.attempts[0].error.contains("timed out"),
        "{}",
        slow.attempts[0].error
    );
    assert_eq!(run.tasks[1].state, TaskState::Blocked);
    // The background child (same process group) is gone too.
    let bg = read_pid(&pidfile).await;
    assert!(
        eventually(|| !alive(bg)).await,
        "background pid {bg} survived"
    );
}

#[tokio::test]
async fn cancelling_a_running_task_blocks_its_dependents() {
    let rig = Rig::new();
    let wf = workflow(vec![
        sh("long", &[], "sleep 30"),
        sh("after", &[0], "true"),
        sh("other", &[], "true"),
    ]);
    let mut w = rig.submit(wf).await;
    let started = w.started("long").await;
    let EventKind::TaskStarted { pid: Some(pid), .. } = started.kind else {
        panic!("no pid")
    };
    w.cmd(Command::CancelTask {
        run: w.run_id(),
        task: "long".into(),
    })
    .await
    .unwrap();
    assert_eq!(w.finish().await, RunState::Failed);

    let snap = w.snapshot().await;
    let run = run_of(&snap, &w.run);
    assert_eq!(run.tasks[0].state, TaskState::Cancelled);
    assert_eq!(
        run.tasks[0].attempts[0].outcome,
        Some(AttemptOutcome::Cancelled)
    );
    assert_eq!(run.tasks[1].state, TaskState::Blocked);
    assert_eq!(run.tasks[2].state, TaskState::Succeeded);
    assert!(eventually(|| !alive(pid)).await);
    // A finished task cannot be cancelled.
    let again = w
        .cmd(Command::CancelTask {
            run: w.run_id(),
            task: "other".into(),
        })
        .await;
    assert!(matches!(again, Err(EngineError::Refused(_))), "{again:?}");
}

#[tokio::test]
async fn cancelling_the_run_cancels_everything_and_leaves_no_process() {
    let rig = Rig::new();
    let pidfile = rig.path("bg.pid");
    let mut wf = workflow(vec![
        sh(
            "running",
            &[],
            &format!("sleep 30 & echo $! > {}; wait", pidfile.display()),
        ),
        sh("waiting", &[0], "true"),
        sh("approval", &[], "true"),
        sh("also-running", &[], "sleep 30"),
    ]);
    wf.tasks[2].approval = true;
    let mut w = rig.submit(wf).await;
    w.started("running").await;
    w.started("also-running").await;
    w.wait(|k| matches!(k, EventKind::TaskAwaitingApproval { .. }))
        .await;
    let bg = read_pid(&pidfile).await;
    let leader = w.snapshot().await.runs[&w.run].tasks[3].attempts[0]
        .pid
        .unwrap();

    w.cmd(Command::CancelRun { run: w.run_id() }).await.unwrap();
    assert_eq!(w.finish().await, RunState::Cancelled);

    let snap = w.snapshot().await;
    let run = run_of(&snap, &w.run);
    for (i, t) in run.tasks.iter().enumerate() {
        assert_eq!(t.state, TaskState::Cancelled, "{}", w.name(i as TaskIdx));
    }
    assert_eq!(
        run.tasks[0].attempts[0].outcome,
        Some(AttemptOutcome::Cancelled)
    );
    assert!(
        eventually(|| !alive(bg)).await,
        "pid {bg} survived the cancel"
    );
    assert!(
        eventually(|| !alive(leader)).await,
        "pid {leader} survived the cancel"
    );
    // Cancelling again is refused: the run is over.
    let again = w.cmd(Command::CancelRun { run: w.run_id() }).await;
    assert!(matches!(again, Err(EngineError::Refused(_))));
}

// ----- 5. pause and resume -----

#[tokio::test]
async fn paused_run_dispatches_nothing_until_resumed() {
    let rig = Rig::new();
    let wf = workflow(vec![
        sh("first", &[], &rig.hold("first-done")),
        sh("second", &[0], "true"),
    ]);
    let mut w = rig.submit(wf).await;
    w.started("first").await;
    w.cmd(Command::PauseRun { run: w.run_id() }).await.unwrap();
    rig.release("first-done");
    // The running task finishes; the next one must not start.
    w.wait(|k| matches!(k, EventKind::TaskSucceeded { task: 0, .. }))
        .await;
    let snap = w.snapshot().await;
    let run = run_of(&snap, &w.run);
    assert_eq!(run.state, RunState::Paused);
    assert_eq!(run.tasks[1].state, TaskState::Ready);
    assert!(run.tasks[1].attempts.is_empty());

    w.cmd(Command::ResumeRun { run: w.run_id() }).await.unwrap();
    assert_eq!(w.finish().await, RunState::Succeeded);
    let resumed = w.pos(|k| matches!(k, EventKind::RunResumed)).unwrap();
    assert!(w.pos_assigned("second") > resumed, "\n{}", w.dump());
    // Resuming a running run is refused.
    let again = w.cmd(Command::ResumeRun { run: w.run_id() }).await;
    assert!(matches!(again, Err(EngineError::Refused(_))));
}

#[tokio::test]
async fn a_held_run_starts_nothing_until_resumed() {
    let rig = Rig::new();
    let wf = workflow(vec![sh("first", &[], "true"), sh("second", &[0], "true")]);
    let mut w = rig.submit_as(wf, true).await;
    w.wait(|k| matches!(k, EventKind::RunPaused)).await;
    let submitted = w
        .pos(|k| matches!(k, EventKind::RunSubmitted { .. }))
        .unwrap();
    let paused = w.pos(|k| matches!(k, EventKind::RunPaused)).unwrap();
    assert_eq!(
        paused,
        submitted + 1,
        "paused in the same turn:\n{}",
        w.dump()
    );
    let snap = w.snapshot().await;
    let run = run_of(&snap, &w.run);
    assert_eq!(run.state, RunState::Paused);
    assert!(run.tasks.iter().all(|t| t.attempts.is_empty()));
    w.cmd(Command::ResumeRun { run: w.run_id() }).await.unwrap();
    assert_eq!(w.finish().await, RunState::Succeeded);
}

#[tokio::test]
async fn paused_pending_task_is_held_until_resumed() {
    let rig = Rig::new();
    let wf = workflow(vec![
        sh("first", &[], &rig.hold("first-done")),
        sh("held", &[0], "true"),
        sh("free", &[0], "true"),
    ]);
    let mut w = rig.submit(wf).await;
    w.started("first").await;
    w.cmd(Command::PauseTask {
        run: w.run_id(),
        task: "held".into(),
    })
    .await
    .unwrap();
    rig.release("first-done");
    // `free` runs once `first` is done; `held` does not.
    w.wait(|k| matches!(k, EventKind::TaskSucceeded { task: 2, .. }))
        .await;
    assert_eq!(w.state_of("held").await, TaskState::Paused);
    assert!(
        w.pos(|k| matches!(k, EventKind::TaskAssigned { task: 1, .. }))
            .is_none()
    );

    w.cmd(Command::ResumeTask {
        run: w.run_id(),
        task: "held".into(),
    })
    .await
    .unwrap();
    assert_eq!(w.finish().await, RunState::Succeeded);
    let resumed = w
        .pos(|k| matches!(k, EventKind::TaskResumed { task: 1 }))
        .unwrap();
    assert!(w.pos_assigned("held") > resumed);
}

#[tokio::test]
async fn pausing_a_running_task_stops_its_process_and_resume_continues_it() {
    let rig = Rig::new();
    let wf = workflow(vec![sh(
        "sleeper",
        &[],
        &rig.hold_in_one_process("sleeper-done"),
    )]);
    let mut w = rig.submit(wf).await;
    let ev = w.started("sleeper").await;
    let EventKind::TaskStarted { pid: Some(pid), .. } = ev.kind else {
        panic!("no pid")
    };
    w.cmd(Command::PauseTask {
        run: w.run_id(),
        task: "sleeper".into(),
    })
    .await
    .unwrap();
    assert!(
        eventually(|| state_letter(pid) == Some('T')).await,
        "pid {pid} was not stopped: {:?}",
        state_letter(pid)
    );
    assert_eq!(w.state_of("sleeper").await, TaskState::Paused);

    w.cmd(Command::ResumeTask {
        run: w.run_id(),
        task: "sleeper".into(),
    })
    .await
    .unwrap();
    assert!(eventually(|| state_letter(pid) != Some('T')).await);
    rig.release_fifo("sleeper-done").await;
    assert_eq!(w.finish().await, RunState::Succeeded);
    let snap = w.snapshot().await;
    let t = &snap.runs[&w.run].tasks[0];
    // The same attempt carried on.
    assert_eq!(t.attempts.len(), 1);
    assert_eq!(t.attempts[0].outcome, Some(AttemptOutcome::Succeeded));
}

// ----- 6. approval -----

#[tokio::test]
async fn approval_holds_a_task_until_approved() {
    let rig = Rig::new();
    let mut wf = workflow(vec![
        sh("build", &[], "true"),
        sh("release", &[0], "echo released"),
    ]);
    wf.tasks[1].approval = true;
    let mut w = rig.submit(wf).await;
    w.wait(|k| matches!(k, EventKind::TaskAwaitingApproval { task: 1 }))
        .await;
    assert_eq!(w.state_of("release").await, TaskState::WaitingApproval);

    // Approving a task that needs no approval is refused.
    let refused = w
        .cmd(Command::Approve {
            run: w.run_id(),
            task: "build".into(),
        })
        .await;
    assert!(
        matches!(refused, Err(EngineError::Refused(_))),
        "{refused:?}"
    );
    // Unknown tasks are named.
    let unknown = w
        .cmd(Command::Approve {
            run: w.run_id(),
            task: "nope".into(),
        })
        .await;
    assert!(
        matches!(unknown, Err(EngineError::UnknownTask { .. })),
        "{unknown:?}"
    );

    w.cmd(Command::Approve {
        run: w.run_id(),
        task: "release".into(),
    })
    .await
    .unwrap();
    assert_eq!(w.finish().await, RunState::Succeeded);
    let approved = w
        .pos(|k| matches!(k, EventKind::TaskApproved { task: 1 }))
        .unwrap();
    assert!(w.pos_assigned("release") > approved);
    assert_eq!(w.log_lines("release", 1), vec!["released".to_string()]);
    let twice = w
        .cmd(Command::Approve {
            run: w.run_id(),
            task: "release".into(),
        })
        .await;
    assert!(matches!(twice, Err(EngineError::Refused(_))));
}

#[tokio::test]
async fn auto_approve_records_the_approval_and_wait_finished_reports_the_end() {
    let rig = Rig::with_options(|_| {}, true);
    let mut wf = workflow(vec![sh("build", &[], "true"), sh("release", &[0], "true")]);
    wf.tasks[1].approval = true;
    let run = rig.engine.submit(wf, None).await.unwrap();
    let state = tokio::time::timeout(WAIT, rig.engine.wait_finished(&run))
        .await
        .expect("wait_finished hung")
        .unwrap();
    assert_eq!(state, RunState::Succeeded);
    // Already finished: answered at once.
    assert_eq!(
        rig.engine.wait_finished(&run).await,
        Ok(RunState::Succeeded)
    );
    assert_eq!(
        rig.engine.wait_finished(&RunId::from("nope")).await,
        Err(EngineError::UnknownRun(RunId::from("nope")))
    );
    let mut sub = rig.engine.subscribe(0).await.unwrap();
    let mut kinds = Vec::new();
    while let Ok(Some(ev)) = tokio::time::timeout(WAIT, sub.next()).await {
        kinds.push(ev.kind.name());
        if matches!(ev.kind, EventKind::RunFinished { .. }) {
            break;
        }
    }
    let awaiting = kinds.iter().position(|k| *k == "task_awaiting_approval");
    let approved = kinds.iter().position(|k| *k == "task_approved");
    assert!(awaiting.is_some() && approved > awaiting, "{kinds:?}");
}

// ----- 7. when -----

#[tokio::test]
async fn when_conditions_skip_or_run() {
    let rig = Rig::new();
    let mut wf = workflow(vec![
        sh("no", &[], "true"),
        sh("after-no", &[0], "true"),
        sh("yes", &[], "true"),
        sh(
            "review",
            &[],
            "echo verdict=approve >> \"$TASKDECK_OUTPUT\"",
        ),
        sh("release", &[3], "true"),
        sh("rework", &[3], "true"),
    ]);
    wf.context.insert("env".into(), json!("prod"));
    wf.tasks[0].when = Some("1 == 2".into());
    wf.tasks[2].when = Some("context.env == 'prod'".into());
    wf.tasks[4].when = Some("tasks.review.outputs.verdict == 'approve'".into());
    wf.tasks[5].when = Some("tasks.review.outputs.verdict == 'reject'".into());
    let mut w = rig.submit(wf).await;
    assert_eq!(w.finish().await, RunState::Succeeded, "\n{}", w.dump());

    let snap = w.snapshot().await;
    let run = run_of(&snap, &w.run);
    let states: Vec<TaskState> = run.tasks.iter().map(|t| t.state).collect();
    assert_eq!(
        states,
        vec![
            TaskState::Skipped,
            TaskState::Skipped,
            TaskState::Succeeded,
            TaskState::Succeeded,
            TaskState::Succeeded,
            TaskState::Skipped,
        ]
    );
    assert!(run.tasks[0].attempts.is_empty());
    assert!(run.tasks[1].attempts.is_empty());
    assert!(run.tasks[5].attempts.is_empty());
    assert!(run.tasks[0].reason.as_deref().unwrap().contains("1 == 2"));
    assert!(run.tasks[1].reason.as_deref().unwrap().contains("`no`"));
}

// ----- 8. operator retry and re-run -----

#[tokio::test]
async fn operator_retry_reopens_a_failed_run() {
    let rig = Rig::new();
    let wf = workflow(vec![
        sh("flaky", &[], "[ \"$TASKDECK_ATTEMPT\" -ge 2 ]"),
        sh("child", &[0], "true"),
        sh("grandchild", &[1], "true"),
    ]);
    let mut w = rig.submit(wf).await;
    let (state, first_end) = w.finish_after(0).await;
    assert_eq!(state, RunState::Failed);
    assert_eq!(w.state_of("child").await, TaskState::Blocked);

    // Blocked tasks cannot be retried themselves.
    let refused = w
        .cmd(Command::RetryTask {
            run: w.run_id(),
            task: "child".into(),
        })
        .await;
    assert!(matches!(refused, Err(EngineError::Refused(_))));

    w.cmd(Command::RetryTask {
        run: w.run_id(),
        task: "flaky".into(),
    })
    .await
    .unwrap();
    let (state, _) = w.finish_after(first_end).await;
    assert_eq!(state, RunState::Succeeded, "\n{}", w.dump());
    let snap = w.snapshot().await;
    let run = run_of(&snap, &w.run);
    assert_eq!(run.state, RunState::Succeeded);
    assert_eq!(run.tasks[0].attempts.len(), 2);
    assert_eq!(
        run.tasks[0].attempts[0].outcome,
        Some(AttemptOutcome::Failed)
    );
    assert_eq!(
        run.tasks[0].attempts[1].outcome,
        Some(AttemptOutcome::Succeeded)
    );
    for t in 1..3 {
        assert_eq!(run.tasks[t].state, TaskState::Succeeded);
        assert_eq!(run.tasks[t].attempts.len(), 1);
    }
}

#[tokio::test]
async fn rerun_from_reruns_the_task_and_downstream_only() {
    let rig = Rig::new();
    let wf = workflow(vec![
        sh("a", &[], "echo attempt-$TASKDECK_ATTEMPT"),
        sh("b", &[0], "echo attempt-$TASKDECK_ATTEMPT"),
        sh("c", &[1], "echo attempt-$TASKDECK_ATTEMPT"),
        sh("side", &[0], "true"),
    ]);
    let mut w = rig.submit(wf).await;
    let (state, first_end) = w.finish_after(0).await;
    assert_eq!(state, RunState::Succeeded);

    w.cmd(Command::RerunFrom {
        run: w.run_id(),
        task: "b".into(),
    })
    .await
    .unwrap();
    let (state, _) = w.finish_after(first_end).await;
    assert_eq!(state, RunState::Succeeded, "\n{}", w.dump());
    let snap = w.snapshot().await;
    let run = run_of(&snap, &w.run);
    let attempts: Vec<usize> = run.tasks.iter().map(|t| t.attempts.len()).collect();
    assert_eq!(attempts, vec![1, 2, 2, 1]);
    assert_eq!(w.log_lines("c", 2), vec!["attempt-2".to_string()]);
    // The re-run of `c` waited for the re-run of `b`.
    let b2 = w
        .pos(|k| {
            matches!(
                k,
                EventKind::TaskSucceeded {
                    task: 1,
                    attempt: 2,
                    ..
                }
            )
        })
        .unwrap();
    let c2 = w
        .pos(|k| {
            matches!(
                k,
                EventKind::TaskStarted {
                    task: 2,
                    attempt: 2,
                    ..
                }
            )
        })
        .unwrap();
    assert!(b2 < c2);
}

// ----- 9. gates -----

fn gated(build_cmd: &str, run_check: &str, on_fail: OnFail) -> Workflow {
    let mut wf = workflow(vec![
        sh("build", &[], build_cmd),
        sh("deploy", &[0], "true"),
    ]);
    wf.gates.push(GateSpec {
        id: "tests-pass".into(),
        after: vec![0],
        level: GateLevel::Output,
        checks: vec![
            CheckSpec {
                name: "size".into(),
                kind: CheckKind::Expr("tasks.build.outputs.size_mb < 50".into()),
            },
            CheckSpec {
                name: "unit tests".into(),
                kind: CheckKind::Run(run_check.into()),
            },
        ],
        on_fail,
    });
    wf
}

const SMALL: &str = "echo size_mb=12 >> \"$TASKDECK_OUTPUT\"";
const BIG: &str = "echo size_mb=80 >> \"$TASKDECK_OUTPUT\"";

#[tokio::test]
async fn passing_gate_releases_dependents() {
    let rig = Rig::new();
    let mut w = rig.submit(gated(SMALL, "true", OnFail::Fail)).await;
    assert_eq!(w.finish().await, RunState::Succeeded, "\n{}", w.dump());
    let snap = w.snapshot().await;
    let run = run_of(&snap, &w.run);
    assert_eq!(run.gates[0].state, GateState::Passed);
    assert!(
        run.gates[0]
            .results
            .iter()
            .all(|r| r.as_ref().is_some_and(|r| r.passed))
    );
    let gate_done = w
        .pos(|k| {
            matches!(
                k,
                EventKind::GateFinished {
                    gate: 0,
                    state: GateState::Passed
                }
            )
        })
        .unwrap();
    assert!(w.pos_succeeded("build") < gate_done);
    assert!(w.pos_assigned("deploy") > gate_done);
    assert_eq!(run.tasks[1].state, TaskState::Succeeded);
}

#[tokio::test]
async fn failing_gate_with_fail_fails_the_task_and_blocks_dependents() {
    let rig = Rig::new();
    let mut w = rig.submit(gated(BIG, "true", OnFail::Fail)).await;
    assert_eq!(w.finish().await, RunState::Failed);
    let snap = w.snapshot().await;
    let run = run_of(&snap, &w.run);
    assert_eq!(run.gates[0].state, GateState::Failed);
    let size = run.gates[0].results[0].as_ref().unwrap();
    assert!(!size.passed);
    assert!(size.message.contains("size_mb < 50"), "{}", size.message);
    assert!(run.gates[0].results[1].as_ref().unwrap().passed);
    assert_eq!(run.tasks[0].state, TaskState::Failed);
    assert!(
        run.tasks[0]
            .reason
            .as_deref()
            .unwrap()
            .contains("tests-pass"),
        "{:?}",
        run.tasks[0].reason
    );
    assert_eq!(run.tasks[1].state, TaskState::Blocked);
    assert!(run.tasks[1].attempts.is_empty());
}

#[tokio::test]
async fn failing_gate_with_pause_holds_until_resumed_and_rechecks() {
    let rig = Rig::new();
    let marker = rig.path("tests-fixed");
    let check = format!("test -f {}", marker.display());
    let mut w = rig.submit(gated(SMALL, &check, OnFail::Pause)).await;
    w.wait(|k| {
        matches!(
            k,
            EventKind::GateFinished {
                gate: 0,
                state: GateState::Failed
            }
        )
    })
    .await;
    let snap = w.snapshot().await;
    let run = run_of(&snap, &w.run);
    assert_eq!(run.tasks[0].state, TaskState::Paused);
    assert_eq!(run.tasks[1].state, TaskState::Pending);
    assert!(!run.gates[0].results[1].as_ref().unwrap().passed);
    assert!(!run.state.is_terminal());

    std::fs::write(&marker, "").unwrap();
    w.cmd(Command::ResumeTask {
        run: w.run_id(),
        task: "build".into(),
    })
    .await
    .unwrap();
    assert_eq!(w.finish().await, RunState::Succeeded, "\n{}", w.dump());
    let snap = w.snapshot().await;
    let run = run_of(&snap, &w.run);
    assert_eq!(run.gates[0].state, GateState::Passed);
    assert_eq!(run.tasks[0].state, TaskState::Succeeded);
    assert_eq!(
        run.tasks[0].attempts.len(),
        1,
        "the gate re-checked; build did not re-run"
    );
    assert_eq!(run.tasks[1].state, TaskState::Succeeded);
    let starts = w
        .events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::GateStarted { gate: 0 }))
        .count();
    assert_eq!(starts, 2);
}

#[tokio::test]
async fn failing_gate_with_warn_lets_dependents_run() {
    let rig = Rig::new();
    let mut w = rig.submit(gated(BIG, "false", OnFail::Warn)).await;
    assert_eq!(w.finish().await, RunState::Succeeded, "\n{}", w.dump());
    let snap = w.snapshot().await;
    let run = run_of(&snap, &w.run);
    assert_eq!(run.gates[0].state, GateState::Warned);
    assert!(
        run.gates[0]
            .results
            .iter()
            .all(|r| !r.as_ref().unwrap().passed)
    );
    assert_eq!(run.tasks[0].state, TaskState::Succeeded);
    assert_eq!(run.tasks[1].state, TaskState::Succeeded);
}

// ----- 10. saga -----

#[tokio::test]
async fn failed_run_compensates_succeeded_tasks_in_reverse_completion_order() {
    let rig = Rig::new();
    let log = rig.p("undo.log");
    let undo = |name: &str| format!("echo {name} >> {log}");
    let mut wf = workflow(vec![
        sh("a", &[], "true"),
        sh("b", &[0], "true"),
        sh("x", &[], "sleep 0.2"),
        sh("plain", &[0], "true"),
        sh("c", &[1, 2, 3], "exit 1"),
    ]);
    wf.tasks[0].compensate = Some(undo("a"));
    wf.tasks[1].compensate = Some(undo("b"));
    wf.tasks[2].compensate = Some(undo("x"));
    wf.tasks[4].compensate = Some(undo("c"));
    let mut w = rig.submit(wf).await;
    assert_eq!(w.finish().await, RunState::Failed, "\n{}", w.dump());

    // Expected: compensable tasks in reverse order of their TaskSucceeded events.
    let mut expected: Vec<String> = w
        .events
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::TaskSucceeded { task, .. } => Some(w.name(task).to_string()),
            _ => None,
        })
        .filter(|n| n != "plain")
        .collect();
    expected.reverse();
    let got: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(got, expected);
    assert_eq!(got.len(), 3);
    let pos = |n: &str| got.iter().position(|g| g == n).unwrap();
    assert!(
        pos("b") < pos("a"),
        "b completed after a, so it is undone first"
    );

    // One at a time, all before the run finished.
    let finished = w
        .pos(|k| matches!(k, EventKind::RunFinished { .. }))
        .unwrap();
    let mut open = 0;
    for e in &w.events {
        match &e.kind {
            EventKind::CompensationStarted { .. } => {
                open += 1;
                assert_eq!(open, 1, "compensations overlap:\n{}", w.dump());
            }
            EventKind::CompensationFinished { ok, error, .. } => {
                assert!(ok, "{error}");
                open -= 1;
            }
            _ => {}
        }
    }
    assert!(
        w.events
            .iter()
            .position(|e| matches!(e.kind, EventKind::CompensationFinished { .. }))
            .unwrap()
            < finished
    );
    let snap = w.snapshot().await;
    let run = run_of(&snap, &w.run);
    assert!(run.tasks[0].compensated && run.tasks[1].compensated && run.tasks[2].compensated);
    assert!(
        !run.tasks[4].compensated,
        "the failed task is not compensated"
    );
}

// ----- 11. secrets -----

#[tokio::test]
async fn secrets_reach_only_their_reader_and_are_masked_everywhere_else() {
    let var = format!("TASKDECK_ETEST_TOKEN_{}", std::process::id());
    let secret = format!("s3cr3t-{:08x}", fastrand::u32(..));
    // SAFETY: a variable unique to this test, set before the run that reads it. Other tests'
    // threads only touch the environment through std (which serializes access) when spawning.
    unsafe { std::env::set_var(&var, &secret) };

    let rig = Rig::new();
    let mut wf = workflow(vec![
        sh(
            "use",
            &[],
            &format!(
                "t='{{{{ secrets.token }}}}'; echo \"token is $t\"; echo \"len=$(printf %s \"$t\" | wc -c)\" >> \"$TASKDECK_OUTPUT\"; \
                 echo \"echo=$t\" >> \"$TASKDECK_OUTPUT\"; cp \"$TASKDECK_CONTEXT\" {}",
                rig.p("use-ctx.json")
            ),
        ),
        sh(
            "downstream",
            &[0],
            &format!("cp \"$TASKDECK_CONTEXT\" {}", rig.p("down-ctx.json")),
        ),
    ]);
    // Fails, printing the secret to stderr: the error shown keeps it masked.
    let mut leaky = sh("leaky", &[], "echo \"bad {{ secrets.token }}\" >&2; exit 1");
    leaky.reads = Some(vec!["secrets.token".into()]);
    leaky.continue_on_failure = true;
    wf.tasks.push(leaky);
    wf.secrets
        .insert("token".into(), SecretSource::Env(var.clone()));
    wf.tasks[0].reads = Some(vec!["secrets.token".into()]);
    let mut w = rig.submit(wf).await;
    assert_eq!(w.finish().await, RunState::Succeeded, "\n{}", w.dump());

    // The reader got the real value ...
    let ctx = read_json(&rig.path("use-ctx.json"));
    assert_eq!(ctx["secrets"]["token"], json!(secret));
    let snap = w.snapshot().await;
    let run = run_of(&snap, &w.run);
    let outputs = Value::Object(run.tasks[0].outputs.clone());
    assert_eq!(outputs["len"], json!(secret.len()));
    let leaky = &run.tasks[2];
    assert_eq!(leaky.state, TaskState::Failed);
    assert_eq!(leaky.attempts[0].error, "exited with code 1: bad ***");
    // ... but its log and outputs show `***`.
    assert_eq!(outputs["echo"], json!("***"));
    assert_eq!(w.log_lines("use", 1), vec!["token is ***".to_string()]);
    // A task that does not read it gets nothing of it.
    let down = read_json(&rig.path("down-ctx.json"));
    assert_eq!(down["secrets"], json!({}));
    assert_eq!(down["tasks"]["use"]["outputs"]["echo"], json!("***"));

    // Nowhere else: events, snapshot, engine log, log files.
    let events = serde_json::to_string(&w.events).unwrap();
    assert!(!events.contains(&secret));
    let state = serde_json::to_string(&*snap).unwrap();
    assert!(!state.contains(&secret));
    let all_lines: Vec<String> = rig
        .engine
        .logs()
        .engine_lines(&w.run, 0)
        .into_iter()
        .chain(rig.engine.logs().lines(
            &AttemptKey {
                run: w.run.clone(),
                task: 0,
                attempt: 1,
                purpose: Purpose::Task,
            },
            0,
        ))
        .map(|l| l.line)
        .collect();
    assert!(
        all_lines.iter().all(|l| !l.contains(&secret)),
        "{all_lines:?}"
    );
    let mut files = vec![rig.path("logs")];
    while let Some(p) = files.pop() {
        if p.is_dir() {
            files.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else {
            let text = std::fs::read_to_string(&p).unwrap();
            assert!(!text.contains(&secret), "{} holds the secret", p.display());
        }
    }
}

// ----- 12. agents, slots, locks -----

fn agent(kind: AgentKind, caps: &[&str], slots: u32) -> AgentSpec {
    AgentSpec {
        kind,
        capabilities: caps.iter().map(|c| c.to_string()).collect(),
        slots,
        ..AgentSpec::default_local(slots)
    }
}

#[tokio::test]
async fn capability_tasks_go_to_capable_agents_within_their_slots() {
    let rig = Rig::new();
    let mut wf = workflow(
        (0..4)
            .map(|i| {
                let mut t = sh(&format!("build{i}"), &[], "sleep 0.5");
                t.requires = vec!["build".into()];
                t
            })
            .collect(),
    );
    wf.agents
        .insert("b1".into(), agent(AgentKind::Local, &["build"], 1));
    wf.agents
        .insert("b2".into(), agent(AgentKind::Local, &["build"], 1));
    let mut w = rig.submit(wf).await;
    assert_eq!(w.finish().await, RunState::Succeeded, "\n{}", w.dump());

    let mut running: HashMap<TaskIdx, Arc<str>> = HashMap::new();
    let mut max = 0;
    let mut on_agent: HashMap<Arc<str>, usize> = HashMap::new();
    for e in &w.events {
        match &e.kind {
            EventKind::TaskAssigned { task, agent, .. } => {
                assert!(&**agent == "b1" || &**agent == "b2", "{agent}");
                running.insert(*task, agent.clone());
                *on_agent.entry(agent.clone()).or_default() += 1;
                max = max.max(running.len());
                let per: HashSet<&Arc<str>> = running.values().collect();
                assert_eq!(per.len(), running.len(), "an agent ran two tasks at once");
            }
            EventKind::TaskSucceeded { task, .. } | EventKind::TaskFailed { task, .. } => {
                running.remove(task);
            }
            _ => {}
        }
    }
    assert_eq!(max, 2, "both agents were used at once");
    assert_eq!(on_agent.values().sum::<usize>(), 4);
}

#[tokio::test]
async fn tasks_sharing_a_lock_never_overlap() {
    let rig = Rig::new();
    let mut wf = workflow(vec![
        sh("one", &[], "sleep 0.3"),
        sh("two", &[], "sleep 0.3"),
        sh("three", &[], "sleep 0.3"),
        sh("free", &[], "sleep 0.3"),
    ]);
    for t in 0..3 {
        wf.tasks[t].locks = vec!["target-dir".into()];
    }
    let mut w = rig.submit(wf).await;
    assert_eq!(w.finish().await, RunState::Succeeded, "\n{}", w.dump());
    let mut holder: Option<TaskIdx> = None;
    let mut free_overlapped = false;
    for e in &w.events {
        match e.kind {
            EventKind::TaskAssigned { task, .. } if task < 3 => {
                assert_eq!(holder, None, "two lock holders at once:\n{}", w.dump());
                holder = Some(task);
            }
            EventKind::TaskAssigned { task: 3, .. } => free_overlapped = holder.is_some(),
            EventKind::TaskSucceeded { task, .. } if task < 3 => {
                assert_eq!(holder, Some(task));
                holder = None;
            }
            _ => {}
        }
    }
    assert!(free_overlapped, "a task without the lock is not held back");
}

#[tokio::test]
async fn command_agent_wraps_prompt_tasks() {
    let rig = Rig::new();
    let mut review = task("review", &[]);
    review.action = Action::Prompt("Review {{ context.project }}".into());
    review.requires = vec!["review".into()];
    let mut wf = workflow(vec![review]);
    wf.context.insert("project".into(), json!("demo"));
    let mut ai = agent(AgentKind::Command, &["review"], 1);
    ai.command = Some("echo {{ task.prompt }}".into());
    wf.agents.insert("ai".into(), ai);
    let mut w = rig.submit(wf).await;
    assert_eq!(w.finish().await, RunState::Succeeded, "\n{}", w.dump());
    let snap = w.snapshot().await;
    assert_eq!(&*snap.runs[&w.run].tasks[0].attempts[0].agent, "ai");
    assert_eq!(w.log_lines("review", 1), vec!["Review demo".to_string()]);
}

// ----- 13. subscriptions -----

#[tokio::test]
async fn subscribing_from_a_middle_seq_gets_exactly_the_later_events() {
    let rig = Rig::new();
    let wf = workflow(vec![
        sh("a", &[], "sleep 0.1"),
        sh("b", &[0], "sleep 0.1"),
        sh("c", &[1], "sleep 0.1"),
        sh("d", &[2], "sleep 0.1"),
    ]);
    let mut w = rig.submit(wf).await;
    // Part way through the run ...
    let mid = w
        .wait(|k| matches!(k, EventKind::TaskSucceeded { task: 0, .. }))
        .await
        .seq
        - 2;
    let mut late = rig.engine.subscribe(mid).await.unwrap();
    assert_eq!(w.finish().await, RunState::Succeeded);
    let last = w.events.last().unwrap().seq;

    let mut got = Vec::new();
    while got.last().is_none_or(|e: &Arc<Event>| e.seq < last) {
        let ev = tokio::time::timeout(WAIT, late.next())
            .await
            .expect("the late subscription stalled")
            .expect("engine stopped");
        got.push(ev);
    }
    let expected: Vec<Arc<Event>> = w.events.iter().filter(|e| e.seq > mid).cloned().collect();
    assert_eq!(got, expected);
    assert_eq!(got[0].seq, mid + 1);
    assert_eq!(late.last_seq(), last);

    // A subscription from 0 after the fact replays the same history.
    let mut replay = rig.engine.subscribe(0).await.unwrap();
    for e in &w.events {
        let ev = tokio::time::timeout(WAIT, replay.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&ev, e);
    }
}

// ----- 14. many instant tasks -----

#[tokio::test]
async fn two_thousand_noop_tasks_in_layers_each_succeed_once() {
    const LAYERS: usize = 20;
    const WIDTH: usize = 100;
    let rig = Rig::new();
    let mut tasks = Vec::new();
    for l in 0..LAYERS {
        for i in 0..WIDTH {
            let needs: Vec<TaskIdx> = if l == 0 {
                vec![]
            } else {
                let prev = (l - 1) * WIDTH;
                let mut n = vec![
                    (prev + i) as TaskIdx,
                    (prev + (i * 7 + 3) % WIDTH) as TaskIdx,
                ];
                n.dedup();
                n
            };
            tasks.push(task(&format!("t{l}-{i}"), &needs));
        }
    }
    let mut w = rig.submit(workflow(tasks)).await;
    assert_eq!(w.finish().await, RunState::Succeeded);

    let mut succeeded = vec![0u32; LAYERS * WIDTH];
    let mut done = vec![false; LAYERS * WIDTH];
    for (i, e) in w.events.iter().enumerate() {
        assert_eq!(e.seq, i as u64 + 1);
        match e.kind {
            EventKind::TaskSucceeded { task, .. } => {
                succeeded[task as usize] += 1;
                done[task as usize] = true;
            }
            EventKind::TaskAssigned { task, .. } => {
                for n in &w.wf.tasks[task as usize].needs {
                    assert!(done[*n as usize], "t{task} started before its need t{n}");
                }
            }
            _ => {}
        }
    }
    assert!(succeeded.iter().all(|n| *n == 1));
    let snap = w.snapshot().await;
    let run = run_of(&snap, &w.run);
    assert_eq!(run.count(TaskState::Succeeded) as usize, LAYERS * WIDTH);
    assert!(run.tasks.iter().all(|t| t.attempts.len() == 1));
}

// ----- edge cases: pauses in odd states, retries with other failures, gate retry -----

#[tokio::test]
async fn a_task_paused_while_waiting_for_its_retry_runs_once_resumed() {
    let rig = Rig::new();
    let mut wf = workflow(vec![sh("flaky", &[], "[ \"$TASKDECK_ATTEMPT\" -ge 2 ]")]);
    wf.tasks[0].retry = retry(2, 2000);
    let mut w = rig.submit(wf).await;
    w.wait(|k| matches!(k, EventKind::TaskFailed { attempt: 1, .. }))
        .await;
    w.cmd(Command::PauseTask {
        run: w.run_id(),
        task: "flaky".into(),
    })
    .await
    .unwrap();
    // The retry comes due while the task is paused: it stays paused.
    w.wait(|k| matches!(k, EventKind::TaskRetryDue { .. }))
        .await;
    let snap = w.snapshot().await;
    assert_eq!(snap.runs[&w.run].tasks[0].state, TaskState::Paused);
    assert_eq!(snap.runs[&w.run].tasks[0].attempts.len(), 1);

    w.cmd(Command::ResumeTask {
        run: w.run_id(),
        task: "flaky".into(),
    })
    .await
    .unwrap();
    assert_eq!(w.finish().await, RunState::Succeeded, "\n{}", w.dump());
    assert_eq!(w.snapshot().await.runs[&w.run].tasks[0].attempts.len(), 2);
}

#[tokio::test]
async fn a_task_approved_while_paused_runs_once_resumed() {
    let rig = Rig::new();
    let mut wf = workflow(vec![sh("release", &[], "true")]);
    wf.tasks[0].approval = true;
    let mut w = rig.submit(wf).await;
    w.wait(|k| matches!(k, EventKind::TaskAwaitingApproval { .. }))
        .await;
    let cmd = |c: fn(RunId, String) -> Command| c(w.run_id(), "release".into());
    w.cmd(cmd(|run, task| Command::PauseTask { run, task }))
        .await
        .unwrap();
    w.cmd(cmd(|run, task| Command::Approve { run, task }))
        .await
        .unwrap();
    assert_eq!(w.state_of("release").await, TaskState::Paused);
    w.cmd(cmd(|run, task| Command::ResumeTask { run, task }))
        .await
        .unwrap();
    assert_eq!(w.finish().await, RunState::Succeeded, "\n{}", w.dump());
}

#[tokio::test]
async fn a_task_paused_while_its_gate_checks_finishes_once_resumed() {
    let rig = Rig::new();
    let mut w = rig
        .submit(gated(SMALL, &rig.hold("check-done"), OnFail::Fail))
        .await;
    w.wait(|k| matches!(k, EventKind::GateStarted { .. })).await;
    w.cmd(Command::PauseTask {
        run: w.run_id(),
        task: "build".into(),
    })
    .await
    .unwrap();
    rig.release("check-done");
    w.wait(|k| {
        matches!(
            k,
            EventKind::GateFinished {
                state: GateState::Passed,
                ..
            }
        )
    })
    .await;
    let snap = w.snapshot().await;
    assert_eq!(snap.runs[&w.run].tasks[0].state, TaskState::Paused);
    assert_eq!(snap.runs[&w.run].tasks[1].state, TaskState::Pending);
    w.cmd(Command::ResumeTask {
        run: w.run_id(),
        task: "build".into(),
    })
    .await
    .unwrap();
    assert_eq!(w.finish().await, RunState::Succeeded, "\n{}", w.dump());
}

#[tokio::test]
async fn retrying_one_failed_upstream_keeps_a_dependent_of_another_blocked() {
    let rig = Rig::new();
    let wf = workflow(vec![
        sh("a", &[], "[ \"$TASKDECK_ATTEMPT\" -ge 2 ]"),
        sh("z", &[], "exit 1"),
        sh("d", &[0, 1], "true"),
    ]);
    let mut w = rig.submit(wf).await;
    let (state, end) = w.finish_after(0).await;
    assert_eq!(state, RunState::Failed);
    w.cmd(Command::RetryTask {
        run: w.run_id(),
        task: "a".into(),
    })
    .await
    .unwrap();
    let (state, _) = w.finish_after(end).await;
    assert_eq!(state, RunState::Failed, "\n{}", w.dump());
    let snap = w.snapshot().await;
    let run = run_of(&snap, &w.run);
    assert_eq!(run.tasks[0].state, TaskState::Succeeded);
    assert_eq!(run.tasks[2].state, TaskState::Blocked);
    assert!(run.tasks[2].attempts.is_empty());
}

#[tokio::test]
async fn rerun_from_keeps_a_dependent_of_a_failed_task_blocked() {
    let rig = Rig::new();
    let wf = workflow(vec![
        sh("b", &[], "true"),
        sh("z", &[], "exit 1"),
        sh("d", &[0, 1], "true"),
    ]);
    let mut w = rig.submit(wf).await;
    let (state, end) = w.finish_after(0).await;
    assert_eq!(state, RunState::Failed);
    w.cmd(Command::RerunFrom {
        run: w.run_id(),
        task: "b".into(),
    })
    .await
    .unwrap();
    let (state, _) = w.finish_after(end).await;
    assert_eq!(state, RunState::Failed, "\n{}", w.dump());
    let snap = w.snapshot().await;
    let run = run_of(&snap, &w.run);
    assert_eq!(run.tasks[0].attempts.len(), 2);
    assert_eq!(run.tasks[2].state, TaskState::Blocked);
}

#[tokio::test]
async fn rerun_from_a_task_whose_upstream_failed_is_refused() {
    let rig = Rig::new();
    let wf = workflow(vec![sh("a", &[], "exit 1"), sh("b", &[0], "true")]);
    let mut w = rig.submit(wf).await;
    assert_eq!(w.finish().await, RunState::Failed);
    let r = w
        .cmd(Command::RerunFrom {
            run: w.run_id(),
            task: "b".into(),
        })
        .await;
    let Err(EngineError::Refused(msg)) = r else {
        panic!("expected a refusal, got {r:?}")
    };
    assert!(msg.contains("`a`"), "{msg}");
    let snap = w.snapshot().await;
    assert_eq!(snap.runs[&w.run].state, RunState::Failed);
    assert_eq!(snap.runs[&w.run].tasks[1].state, TaskState::Blocked);
}

#[tokio::test]
async fn failing_gate_with_retry_reruns_the_task_and_rechecks() {
    let rig = Rig::new();
    let mut wf = gated(
        "echo size_mb=$((100 / TASKDECK_ATTEMPT / TASKDECK_ATTEMPT)) >> \"$TASKDECK_OUTPUT\"",
        "true",
        OnFail::Retry,
    );
    wf.tasks[0].retry = retry(2, 10);
    let mut w = rig.submit(wf).await;
    assert_eq!(w.finish().await, RunState::Succeeded, "\n{}", w.dump());
    let snap = w.snapshot().await;
    let run = run_of(&snap, &w.run);
    assert_eq!(run.tasks[0].attempts.len(), 2);
    assert_eq!(run.tasks[0].outputs["size_mb"], json!(25));
    assert_eq!(run.gates[0].state, GateState::Passed);
    assert_eq!(run.tasks[1].state, TaskState::Succeeded);
}

// ----- cancel and shutdown with gate checks and processes in flight -----

/// After `shutdown` returned every report has been handled: no event may follow `RunFinished`.
async fn assert_run_finished_last(w: &Watch) {
    w.engine.shutdown().await.unwrap();
    let snap = w.snapshot().await;
    let finished = w
        .events
        .iter()
        .find(|e| matches!(e.kind, EventKind::RunFinished { .. }))
        .expect("finished")
        .seq;
    assert_eq!(
        snap.last_seq,
        finished,
        "events after RunFinished:\n{}",
        w.dump()
    );
}

#[tokio::test]
async fn cancelling_a_run_during_gate_checks_stops_them_and_ends_the_run_last() {
    let rig = Rig::new();
    let pidfile = rig.path("check.pid");
    let check = format!("echo $$ > {}; exec sleep 30", pidfile.display());
    let mut w = rig.submit(gated(SMALL, &check, OnFail::Fail)).await;
    w.wait(|k| matches!(k, EventKind::GateStarted { .. })).await;
    let pid = read_pid(&pidfile).await;
    w.cmd(Command::CancelRun { run: w.run_id() }).await.unwrap();
    assert_eq!(w.finish().await, RunState::Cancelled, "\n{}", w.dump());
    assert!(
        eventually(|| !alive(pid)).await,
        "gate check {pid} survived"
    );
    assert_run_finished_last(&w).await;
}

#[tokio::test]
async fn cancelling_a_validating_task_stops_its_gate_checks() {
    let rig = Rig::new();
    let pidfile = rig.path("check.pid");
    let check = format!("echo $$ > {}; exec sleep 30", pidfile.display());
    let mut w = rig.submit(gated(SMALL, &check, OnFail::Fail)).await;
    w.wait(|k| matches!(k, EventKind::GateStarted { .. })).await;
    let pid = read_pid(&pidfile).await;
    w.cmd(Command::CancelTask {
        run: w.run_id(),
        task: "build".into(),
    })
    .await
    .unwrap();
    assert_eq!(w.finish().await, RunState::Failed, "\n{}", w.dump());
    let snap = w.snapshot().await;
    assert_eq!(snap.runs[&w.run].tasks[0].state, TaskState::Cancelled);
    assert_eq!(snap.runs[&w.run].tasks[1].state, TaskState::Blocked);
    assert!(
        eventually(|| !alive(pid)).await,
        "gate check {pid} survived"
    );
    assert_run_finished_last(&w).await;
}

#[tokio::test]
async fn shutdown_cancels_runs_and_waits_for_their_processes() {
    let rig = Rig::new();
    let wf = workflow(vec![sh("long", &[], "sleep 30"), sh("next", &[0], "true")]);
    let mut w = rig.submit(wf).await;
    let ev = w.started("long").await;
    let EventKind::TaskStarted { pid: Some(pid), .. } = ev.kind else {
        panic!("no pid")
    };
    tokio::time::timeout(WAIT, rig.engine.shutdown())
        .await
        .expect("shutdown hung")
        .unwrap();
    // Shutdown returned: the process has been reaped.
    assert!(!alive(pid), "pid {pid} outlived shutdown");
    assert_eq!(w.finish().await, RunState::Cancelled);
    let snap = w.snapshot().await;
    assert!(
        snap.runs[&w.run]
            .tasks
            .iter()
            .all(|t| t.state == TaskState::Cancelled)
    );
}

// ----- limits and errors -----

#[tokio::test]
async fn workflow_max_parallel_caps_running_tasks() {
    let rig = Rig::new();
    let mut wf = workflow(
        (0..4)
            .map(|i| sh(&format!("t{i}"), &[], "sleep 0.2"))
            .collect(),
    );
    wf.max_parallel = Some(2);
    let mut w = rig.submit(wf).await;
    assert_eq!(w.finish().await, RunState::Succeeded);
    let (mut running, mut max) = (0, 0);
    for e in &w.events {
        match e.kind {
            EventKind::TaskAssigned { .. } => {
                running += 1;
                max = max.max(running);
            }
            EventKind::TaskSucceeded { .. } => running -= 1,
            _ => {}
        }
    }
    assert_eq!(max, 2);
}

#[tokio::test]
async fn clear_errors_for_missing_secrets_bad_conditions_and_oversized_context() {
    let rig = Rig::with(|c| c.defaults.max_context_bytes = 2_000);
    let mut wf = workflow(vec![
        sh("needs-secret", &[], "true"),
        sh("bad-when", &[], "true"),
        sh("big", &[], "true"),
    ]);
    wf.secrets.insert(
        "missing".into(),
        SecretSource::Env("TASKDECK_ETEST_SURELY_UNSET_VAR".into()),
    );
    wf.tasks[0].reads = Some(vec!["secrets.missing".into()]);
    wf.tasks[1].when = Some("tasks.nowhere.outputs.x == 1".into());
    wf.context.insert("blob".into(), json!("x".repeat(3_000)));
    let mut w = rig.submit(wf).await;
    assert_eq!(w.finish().await, RunState::Failed);
    let snap = w.snapshot().await;
    let run = run_of(&snap, &w.run);
    let err = |t: usize| run.tasks[t].reason.clone().unwrap_or_default();
    assert!(
        run.tasks.iter().all(|t| t.state == TaskState::Failed),
        "\n{}",
        w.dump()
    );
    assert!(
        err(0).contains("TASKDECK_ETEST_SURELY_UNSET_VAR"),
        "{}",
        err(0)
    );
    assert!(err(1).contains("cannot evaluate `when`"), "{}", err(1));
    assert!(err(2).contains("max_context_bytes"), "{}", err(2));
}

#[tokio::test]
async fn rerun_from_upstream_of_a_task_waiting_for_its_retry_drops_the_old_timer() {
    let rig = Rig::new();
    let mut wf = workflow(vec![sh("a", &[], "true"), sh("b", &[0], "exit 1")]);
    wf.tasks[1].retry = retry(3, 60_000);
    let mut w = rig.submit(wf).await;
    w.wait(|k| {
        matches!(
            k,
            EventKind::TaskFailed {
                task: 1,
                retry_at: Some(_),
                ..
            }
        )
    })
    .await;
    assert_eq!(w.snapshot().await.timers.len(), 1);
    w.cmd(Command::RerunFrom {
        run: w.run_id(),
        task: "a".into(),
    })
    .await
    .unwrap();
    // `b` starts over: its old retry timer must not fire into the new attempts.
    let snap = w.snapshot().await;
    let b = &snap.runs[&w.run].tasks[1];
    assert_ne!(b.state, TaskState::RetryWait);
    assert!(
        snap.timers.iter().all(|(at, _, _)| Some(*at) == b.retry_at),
        "stale timers: {:?}",
        snap.timers
    );
    w.cmd(Command::CancelRun { run: w.run_id() }).await.unwrap();
    assert_eq!(w.finish().await, RunState::Cancelled);
}

#[tokio::test]
async fn retrying_a_task_whose_upstream_was_cancelled_is_refused() {
    let rig = Rig::new();
    let wf = workflow(vec![sh("long", &[], "sleep 30"), sh("after", &[0], "true")]);
    let mut w = rig.submit(wf).await;
    w.started("long").await;
    w.cmd(Command::CancelRun { run: w.run_id() }).await.unwrap();
    let (state, end) = w.finish_after(0).await;
    assert_eq!(state, RunState::Cancelled);
    let r = w
        .cmd(Command::RetryTask {
            run: w.run_id(),
            task: "after".into(),
        })
        .await;
    let Err(EngineError::Refused(msg)) = r else {
        panic!("expected a refusal, got {r:?}")
    };
    assert!(msg.contains("`long`"), "{msg}");
    // Retrying the upstream itself reopens the run, and both run.
    w.cmd(Command::RetryTask {
        run: w.run_id(),
        task: "long".into(),
    })
    .await
    .unwrap();
    let snap = w.snapshot().await;
    assert_eq!(snap.runs[&w.run].state, RunState::Running);
    w.started_attempt("long", 2).await;
    w.cmd(Command::CancelRun { run: w.run_id() }).await.unwrap();
    assert_eq!(w.finish_after(end).await.0, RunState::Cancelled);
}

#[tokio::test]
async fn two_runs_share_locks_and_each_finishes() {
    let rig = Rig::new();
    let make = |name: &str| {
        let mut wf = workflow(vec![
            sh("uses-lock", &[], "sleep 0.2"),
            sh("after", &[0], "true"),
        ]);
        wf.name = name.into();
        wf.tasks[0].locks = vec!["shared".into()];
        wf
    };
    let r1 = rig.engine.submit(make("one"), None).await.unwrap();
    let r2 = rig.engine.submit(make("two"), None).await.unwrap();
    let mut sub = rig.engine.subscribe(0).await.unwrap();
    let mut finished = HashMap::new();
    let mut holder: Option<RunId> = None;
    while finished.len() < 2 {
        let ev = tokio::time::timeout(WAIT, sub.next())
            .await
            .unwrap()
            .unwrap();
        match &ev.kind {
            EventKind::TaskAssigned { task: 0, .. } => {
                assert_eq!(holder, None, "both runs hold the lock");
                holder = Some(ev.run.clone());
            }
            EventKind::TaskSucceeded { task: 0, .. } => holder = None,
            EventKind::RunFinished { state } => {
                finished.insert(ev.run.clone(), *state);
            }
            _ => {}
        }
    }
    assert_eq!(finished[&r1], RunState::Succeeded);
    assert_eq!(finished[&r2], RunState::Succeeded);
}

#[tokio::test]
async fn agent_memory_follows_tasks_on_the_same_agent() {
    let rig = Rig::new();
    let mut first = sh(
        "first",
        &[],
        "echo memory.note=remember-me >> \"$TASKDECK_OUTPUT\"",
    );
    first.requires = vec!["mem".into()];
    let mut second = sh(
        "second",
        &[],
        &format!("cp \"$TASKDECK_CONTEXT\" {}", rig.p("second-ctx.json")),
    );
    second.requires = vec!["mem".into()];
    // Not a dependency: memory comes through the agent, not through `needs`.
    second.needs = vec![];
    let mut wf = workflow(vec![first, second]);
    wf.tasks[1].priority = 1; // `first` goes first on the single slot.
    wf.agents
        .insert("solo".into(), agent(AgentKind::Local, &["mem"], 1));
    let mut w = rig.submit(wf).await;
    assert_eq!(w.finish().await, RunState::Succeeded, "\n{}", w.dump());
    assert!(w.pos_succeeded("first") < w.pos_assigned("second"));
    let ctx = read_json(&rig.path("second-ctx.json"));
    assert_eq!(ctx["agent"]["name"], "solo");
    assert_eq!(ctx["agent"]["memory"], json!({"note": "remember-me"}));
    assert_eq!(ctx["tasks"], json!({}));
}

// ----- small things: empty runs, unknown runs, env and cwd, bad outputs -----

#[tokio::test]
async fn an_empty_workflow_succeeds_and_unknown_runs_are_named() {
    let rig = Rig::new();
    let mut w = rig.submit(workflow(vec![])).await;
    assert_eq!(w.finish().await, RunState::Succeeded);
    let r = rig
        .engine
        .command(Command::PauseRun {
            run: RunId::from("no-such-run"),
        })
        .await;
    assert_eq!(r, Err(EngineError::UnknownRun(RunId::from("no-such-run"))));
}

#[tokio::test]
async fn env_and_cwd_are_rendered_and_bad_outputs_fail_the_task() {
    let rig = Rig::new();
    std::fs::create_dir(rig.path("place")).unwrap();
    let mut wf = workflow(vec![
        sh("where", &[], "echo \"$GREETING\"; pwd"),
        sh(
            "bad-outputs",
            &[],
            "echo 'just words' >> \"$TASKDECK_OUTPUT\"",
        ),
    ]);
    wf.context.insert("who".into(), json!("world"));
    wf.context.insert("dir".into(), json!(rig.p("place")));
    wf.tasks[0]
        .env
        .insert("GREETING".into(), "hello {{ context.who }}".into());
    wf.tasks[0].cwd = Some("{{ context.dir }}".into());
    let mut w = rig.submit(wf).await;
    assert_eq!(w.finish().await, RunState::Failed);
    assert_eq!(
        w.log_lines("where", 1),
        vec!["hello world".to_string(), rig.p("place")]
    );
    let snap = w.snapshot().await;
    let bad = &snap.runs[&w.run].tasks[1];
    assert_eq!(bad.state, TaskState::Failed);
    assert_eq!(bad.attempts[0].exit_code, Some(0));
    assert!(
        bad.attempts[0].error.contains("not `key=value`"),
        "{}",
        bad.attempts[0].error
    );
}

// ----- the fold, driven by hand where the actor's timing cannot be controlled -----

mod fold {
    use super::*;
    use common::{Sim, local};
    use taskdeck::engine::scheduler::next_dispatch;
    use taskdeck::engine::state::Limits;
    use taskdeck::spec::Resources;

    fn sim(wf: Workflow) -> Sim {
        let limits = Limits {
            max_parallel: 16,
            pool: Resources::default(),
        };
        Sim::new(wf, limits, vec![local(8)])
    }

    /// Paused between assignment and the executor's start report: resume shows it running.
    #[test]
    fn a_start_reported_while_paused_is_remembered() {
        let mut s = sim(workflow(vec![sh("t", &[], "true")]));
        let d = next_dispatch(&mut s.st).unwrap();
        s.emit(EventKind::TaskAssigned {
            task: 0,
            agent: d.agent,
            attempt: 1,
        });
        s.emit(EventKind::TaskPaused { task: 0 });
        s.emit(EventKind::TaskStarted {
            task: 0,
            attempt: 1,
            pid: Some(42),
        });
        assert_eq!(s.state_of(0), TaskState::Paused);
        s.emit(EventKind::TaskResumed { task: 0 });
        assert_eq!(s.state_of(0), TaskState::Running);
    }

    /// The actor fails a task whose `when` cannot be evaluated by assigning and failing it at
    /// once; that must not take over a lock another task holds.
    #[test]
    fn a_task_failed_at_assignment_does_not_release_another_tasks_lock() {
        let mut wf = workflow(vec![
            sh("holder", &[], "true"),
            sh("bad-when", &[], "true"),
            sh("waiter", &[], "true"),
        ]);
        for t in &mut wf.tasks {
            t.locks = vec!["L".into()];
        }
        let mut s = sim(wf);
        // `holder` takes the lock; `waiter` and `bad-when` park behind it.
        assert_eq!(s.dispatch_all(), vec![0]);
        let run = s.run.clone();
        // What check_conditions does for an unevaluable `when` of `bad-when`.
        s.emit(EventKind::TaskAssigned {
            task: 1,
            agent: "local".into(),
            attempt: 1,
        });
        s.emit(EventKind::TaskFailed {
            task: 1,
            attempt: 1,
            outcome: AttemptOutcome::Failed,
            error: "cannot evaluate `when`".into(),
            exit_code: None,
            retry_at: None,
        });
        assert_eq!(s.st.locks.get("L"), Some(&(run, 0)));
        assert_eq!(
            s.dispatch_all(),
            Vec::<TaskIdx>::new(),
            "`waiter` must wait"
        );
        s.succeed(0);
        assert_eq!(s.dispatch_all(), vec![2]);
    }
}

#[tokio::test]
async fn retrying_a_task_paused_by_its_gate_reruns_it_and_rechecks() {
    let rig = Rig::new();
    let wf = gated(
        "echo size_mb=$((100 / TASKDECK_ATTEMPT / TASKDECK_ATTEMPT)) >> \"$TASKDECK_OUTPUT\"",
        "true",
        OnFail::Pause,
    );
    let mut w = rig.submit(wf).await;
    w.wait(|k| {
        matches!(
            k,
            EventKind::GateFinished {
                state: GateState::Failed,
                ..
            }
        )
    })
    .await;
    assert_eq!(w.state_of("build").await, TaskState::Paused);
    w.cmd(Command::RetryTask {
        run: w.run_id(),
        task: "build".into(),
    })
    .await
    .unwrap();
    assert_eq!(w.finish().await, RunState::Succeeded, "\n{}", w.dump());
    let snap = w.snapshot().await;
    let run = run_of(&snap, &w.run);
    assert_eq!(run.tasks[0].attempts.len(), 2);
    assert_eq!(run.tasks[0].outputs["size_mb"], json!(25));
    assert_eq!(run.gates[0].state, GateState::Passed);
    assert_eq!(run.tasks[1].state, TaskState::Succeeded);
}

#[tokio::test]
async fn rerun_from_a_gated_task_checks_its_gate_again() {
    let rig = Rig::new();
    let mut w = rig.submit(gated(SMALL, "true", OnFail::Fail)).await;
    let (state, end) = w.finish_after(0).await;
    assert_eq!(state, RunState::Succeeded);
    w.cmd(Command::RerunFrom {
        run: w.run_id(),
        task: "build".into(),
    })
    .await
    .unwrap();
    assert_eq!(w.finish_after(end).await.0, RunState::Succeeded);
    let passes = w
        .events
        .iter()
        .filter(|e| {
            matches!(
                e.kind,
                EventKind::GateFinished {
                    state: GateState::Passed,
                    ..
                }
            )
        })
        .count();
    assert_eq!(passes, 2);
    let snap = w.snapshot().await;
    let attempts: Vec<usize> = snap.runs[&w.run]
        .tasks
        .iter()
        .map(|t| t.attempts.len())
        .collect();
    assert_eq!(attempts, vec![2, 2]);
}

#[tokio::test]
async fn a_failing_compensation_does_not_stop_the_others() {
    let rig = Rig::new();
    let log = rig.p("undo.log");
    let mut wf = workflow(vec![
        sh("a", &[], "true"),
        sh("b", &[0], "true"),
        sh("c", &[1], "exit 1"),
    ]);
    wf.tasks[0].compensate = Some(format!("echo a >> {log}"));
    wf.tasks[1].compensate = Some("exit 2".into());
    let mut w = rig.submit(wf).await;
    assert_eq!(w.finish().await, RunState::Failed);
    let results: Vec<(String, bool)> = w
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::CompensationFinished { task, ok, .. } => {
                Some((w.name(*task).to_string(), *ok))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        results,
        vec![("b".to_string(), false), ("a".to_string(), true)]
    );
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "a\n");
}

#[tokio::test]
async fn a_subscriber_that_falls_behind_catches_up_without_gaps() {
    // More events than the live feed holds (65,536), none read until the run is over.
    const N: usize = 24_000;
    let rig = Rig::new();
    let mut sub = rig.engine.subscribe(0).await.unwrap();
    let wf = workflow((0..N).map(|i| task(&format!("t{i}"), &[])).collect());
    let run = rig.engine.submit(wf, None).await.unwrap();
    let state = tokio::time::timeout(WAIT * 3, rig.engine.wait_finished(&run))
        .await
        .expect("the run hung")
        .unwrap();
    assert_eq!(state, RunState::Succeeded);
    let last = rig.engine.snapshot().await.unwrap().last_seq;
    assert!(
        last > 65_536,
        "only {last} events: the feed never overflowed"
    );
    let mut expect = 1;
    let mut succeeded = 0;
    while expect <= last {
        let ev = tokio::time::timeout(WAIT, sub.next())
            .await
            .expect("stalled")
            .expect("engine stopped");
        assert_eq!(ev.seq, expect);
        succeeded += matches!(ev.kind, EventKind::TaskSucceeded { .. }) as usize;
        expect += 1;
    }
    assert_eq!(succeeded, N);
}

#[tokio::test]
async fn cancelling_a_paused_process_kills_it() {
    let rig = Rig::new();
    let wf = workflow(vec![
        sh("stuck", &[], &rig.hold_in_one_process("never")),
        sh("after", &[0], "true"),
    ]);
    let mut w = rig.submit(wf).await;
    let ev = w.started("stuck").await;
    let EventKind::TaskStarted { pid: Some(pid), .. } = ev.kind else {
        panic!("no pid")
    };
    let task = || "stuck".to_string();
    w.cmd(Command::PauseTask {
        run: w.run_id(),
        task: task(),
    })
    .await
    .unwrap();
    assert!(eventually(|| state_letter(pid) == Some('T')).await);
    w.cmd(Command::CancelTask {
        run: w.run_id(),
        task: task(),
    })
    .await
    .unwrap();
    assert_eq!(w.finish().await, RunState::Failed);
    assert!(
        eventually(|| !alive(pid)).await,
        "stopped pid {pid} survived"
    );
    let snap = w.snapshot().await;
    let run = run_of(&snap, &w.run);
    assert_eq!(run.tasks[0].state, TaskState::Cancelled);
    assert_eq!(
        run.tasks[0].attempts[0].outcome,
        Some(AttemptOutcome::Cancelled)
    );
    assert_eq!(run.tasks[1].state, TaskState::Blocked);
}

#[tokio::test]
async fn cancelling_a_task_waiting_for_its_retry_ends_it() {
    let rig = Rig::new();
    let mut wf = workflow(vec![sh("flaky", &[], "exit 1"), sh("after", &[0], "true")]);
    wf.tasks[0].retry = retry(5, 60_000);
    let mut w = rig.submit(wf).await;
    w.wait(|k| {
        matches!(
            k,
            EventKind::TaskFailed {
                retry_at: Some(_),
                ..
            }
        )
    })
    .await;
    w.cmd(Command::CancelTask {
        run: w.run_id(),
        task: "flaky".into(),
    })
    .await
    .unwrap();
    assert_eq!(w.finish().await, RunState::Failed);
    let snap = w.snapshot().await;
    assert!(snap.timers.is_empty());
    let run = run_of(&snap, &w.run);
    assert_eq!(run.tasks[0].state, TaskState::Cancelled);
    assert_eq!(run.tasks[0].attempts.len(), 1);
    assert_eq!(run.tasks[1].state, TaskState::Blocked);
}

#[tokio::test]
async fn cancelling_a_paused_run_cancels_its_waiting_tasks() {
    let rig = Rig::new();
    let wf = workflow(vec![
        sh("first", &[], &rig.hold("first-done")),
        sh("second", &[0], "true"),
    ]);
    let mut w = rig.submit(wf).await;
    w.started("first").await;
    w.cmd(Command::PauseRun { run: w.run_id() }).await.unwrap();
    rig.release("first-done");
    w.wait(|k| matches!(k, EventKind::TaskSucceeded { task: 0, .. }))
        .await;
    w.cmd(Command::CancelRun { run: w.run_id() }).await.unwrap();
    assert_eq!(w.finish().await, RunState::Cancelled);
    let snap = w.snapshot().await;
    let run = run_of(&snap, &w.run);
    assert_eq!(run.tasks[0].state, TaskState::Succeeded);
    assert_eq!(run.tasks[1].state, TaskState::Cancelled);
    assert!(run.tasks[1].attempts.is_empty());
    let r = w.cmd(Command::ResumeRun { run: w.run_id() }).await;
    assert!(matches!(r, Err(EngineError::Refused(_))), "{r:?}");
}

#[tokio::test]
async fn a_retry_moves_to_another_capable_agent() {
    let rig = Rig::new();
    let mut flaky = sh("flaky", &[], "[ \"$TASKDECK_ATTEMPT\" -ge 2 ]");
    flaky.requires = vec!["build".into()];
    flaky.retry = retry(2, 10);
    let mut wf = workflow(vec![flaky]);
    wf.agents
        .insert("b1".into(), agent(AgentKind::Local, &["build"], 1));
    wf.agents
        .insert("b2".into(), agent(AgentKind::Local, &["build"], 1));
    let mut w = rig.submit(wf).await;
    assert_eq!(w.finish().await, RunState::Succeeded);
    let snap = w.snapshot().await;
    let attempts = &snap.runs[&w.run].tasks[0].attempts;
    assert_eq!(attempts.len(), 2);
    assert_ne!(attempts[0].agent, attempts[1].agent);
    // The agents' records show one failure and one success.
    let b1 = &snap.agents["b1"];
    let b2 = &snap.agents["b2"];
    assert_eq!(b1.failed + b2.failed, 1);
    assert_eq!(b1.succeeded + b2.succeeded, 1);
    assert_eq!(b1.slots_used + b2.slots_used, 0);
}

/// The principle clients rely on: snapshot at seq N, then fold the events after N, and you
/// have the engine's state.
#[tokio::test]
async fn a_snapshot_plus_later_events_folds_into_the_engines_state() {
    let rig = Rig::new();
    let mut wf = workflow(vec![
        sh("a", &[], &rig.hold("a-done")),
        sh("flaky", &[0], "[ \"$TASKDECK_ATTEMPT\" -ge 2 ]"),
        sh("out", &[0], "echo size_mb=3 >> \"$TASKDECK_OUTPUT\""),
        sh("skip", &[2], "true"),
        sh("last", &[1, 2], "echo memory.k=v >> \"$TASKDECK_OUTPUT\""),
    ]);
    wf.tasks[1].retry = retry(2, 10);
    wf.tasks[3].when = Some("tasks.out.outputs.size_mb > 10".into());
    wf.gates.push(GateSpec {
        id: "small".into(),
        after: vec![2],
        level: GateLevel::Output,
        checks: vec![CheckSpec {
            name: "size".into(),
            kind: CheckKind::Expr("tasks.out.outputs.size_mb < 50".into()),
        }],
        on_fail: OnFail::Fail,
    });
    let mut w = rig.submit(wf).await;
    w.started("a").await;
    let mut mirror = rig.engine.snapshot().await.unwrap();
    let mut sub = rig.engine.subscribe(mirror.last_seq).await.unwrap();
    rig.release("a-done");
    assert_eq!(w.finish().await, RunState::Succeeded, "\n{}", w.dump());
    let last = w.events.last().unwrap().seq;
    while mirror.last_seq < last {
        let ev = tokio::time::timeout(WAIT, sub.next())
            .await
            .unwrap()
            .unwrap();
        mirror.apply(&ev);
    }
    let engine = rig.engine.snapshot().await.unwrap();
    let json = |s: &EngineState| serde_json::to_value(s).unwrap();
    assert_eq!(json(&mirror), json(&engine));
    let run = &engine.runs[&w.run];
    assert_eq!(run.tasks[3].state, TaskState::Skipped);
    assert_eq!(run.tasks[1].attempts.len(), 2);
}

// ----- recovery -----

#[tokio::test]
async fn a_handed_back_run_resumes_with_pauses_approvals_timers_and_gates_intact() {
    let rig = Rig::new();
    let mut built = task("built", &[]);
    built.action = Action::Run("true".into());
    let mut approve = task("approve", &[0]);
    approve.approval = true;
    let mut flaky = task("flaky", &[]);
    flaky.action = Action::Run("exit 3".into());
    flaky.retry = retry(3, 3_600_000);
    let mut slow = task("slow", &[]);
    slow.action = Action::Run(rig.hold("slow-go"));
    let mut wf = workflow(vec![built, approve, flaky, slow]);
    wf.gates.push(GateSpec {
        id: "ok".into(),
        after: vec![0],
        level: GateLevel::Output,
        checks: vec![CheckSpec {
            name: "always".into(),
            kind: CheckKind::Expr("true".into()),
        }],
        on_fail: OnFail::Fail,
    });
    let mut w = rig.submit(wf).await;
    let (approve_t, flaky_t, slow_t) = (w.idx("approve"), w.idx("flaky"), w.idx("slow"));
    w.wait(|k| matches!(k, EventKind::TaskAwaitingApproval { task } if *task == approve_t))
        .await;
    w.wait(
        |k| matches!(k, EventKind::TaskFailed { task, retry_at: Some(_), .. } if *task == flaky_t),
    )
    .await;
    w.started("slow").await;
    w.cmd(Command::PauseTask {
        run: w.run_id(),
        task: "slow".into(),
    })
    .await
    .unwrap();
    w.wait(|k| matches!(k, EventKind::TaskPaused { task } if *task == slow_t))
        .await;
    let before = run_of(&*w.snapshot().await, &w.run);

    rig.engine.detach().await.unwrap();
    let engine = rig.engine_on_same_store();
    let (rec, warnings) = engine.resume(&w.run).await.unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(rec.interrupted, vec!["slow#1".to_string()]);
    assert_eq!(rec.finished, 1, "built");

    let snap = engine.snapshot().await.unwrap();
    let run = &snap.runs[&w.run];
    let t = |i: TaskIdx| &run.tasks[i as usize];
    assert_eq!(t(0).state, TaskState::Succeeded);
    assert_eq!(t(0).attempts.len(), 1, "a finished task never runs again");
    assert_eq!(run.gates[0].state, GateState::Passed);
    assert_eq!(t(approve_t).state, TaskState::WaitingApproval);
    assert_eq!(t(flaky_t).state, TaskState::RetryWait);
    assert_eq!(t(flaky_t).retry_at, before.tasks[flaky_t as usize].retry_at);
    assert!(
        snap.timers.iter().any(|(_, _, x)| *x == flaky_t),
        "the retry timer survives"
    );
    assert_eq!(t(slow_t).state, TaskState::Paused);
    assert_eq!(
        t(slow_t).attempts[0].outcome,
        Some(AttemptOutcome::Interrupted)
    );
    assert_eq!(
        t(slow_t).attempts_used(),
        0,
        "an interrupted attempt is not a retry"
    );
    assert_eq!(snap.active, 0, "the interrupted attempt holds no slot");

    // The run goes on in the new engine: resume the paused task, approve the other.
    let mut sub = engine.subscribe(rec.at_seq).await.unwrap();
    rig.release("slow-go");
    engine
        .command(Command::ResumeTask {
            run: w.run_id(),
            task: "slow".into(),
        })
        .await
        .unwrap();
    engine
        .command(Command::Approve {
            run: w.run_id(),
            task: "approve".into(),
        })
        .await
        .unwrap();
    let mut done = HashSet::new();
    while done.len() < 2 {
        let ev = tokio::time::timeout(WAIT, sub.next())
            .await
            .unwrap()
            .unwrap();
        match ev.kind {
            EventKind::TaskSucceeded { task, attempt, .. } if task == slow_t => {
                assert_eq!(attempt, 2);
                done.insert(task);
            }
            EventKind::TaskSucceeded { task, .. } if task == approve_t => {
                done.insert(task);
            }
            _ => {}
        }
    }
}
