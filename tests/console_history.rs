//! The console's history methods against real engines on one SQLite journal: a finished run and
//! one handed back mid-run are listed, folded read-only with their logs read from files, resumed
//! and re-run — what the TUI calls, with no terminal.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::{task, workflow};
use taskdeck::config::Config;
use taskdeck::console::Console;
use taskdeck::engine::{EngineHandle, EngineOptions};
use taskdeck::model::{AttemptOutcome, LogStream, RunState, TaskIdx, TaskState};
use taskdeck::spec::{Action, TaskSpec};
use taskdeck::store::{Journal, StoreUrl};

fn engine(dir: &Path) -> EngineHandle {
    let mut config = Config::default();
    config.defaults.kill_grace = Duration::from_millis(200);
    let store = taskdeck::store::open(&StoreUrl::Sqlite(dir.join("journal.db"))).unwrap();
    EngineHandle::start(EngineOptions {
        config: Arc::new(config),
        log_dir: dir.join("logs"),
        work_dir: dir.join("work"),
        auto_approve: false,
        journal: Some(Journal::spawn(store).unwrap()),
        callbacks: Default::default(),
    })
}

fn sh(id: &str, needs: &[TaskIdx], cmd: &str) -> TaskSpec {
    let mut t = task(id, needs);
    t.action = Action::Run(cmd.to_string());
    t
}

async fn wait_for_file(path: &Path) {
    for _ in 0..600 {
        if path.exists() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{} never appeared", path.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_opens_past_runs_with_logs_resumes_and_reruns() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();

    // First engine: one run to the end, one handed back while a task waits.
    let first = engine(dir.path());
    let mut done = workflow(vec![
        sh("greet", &[], "sh -c 'echo hello; echo careful >&2'"),
        sh("after", &[0], "echo after"),
    ]);
    done.name = "done".into();
    let finished = first.submit(done, None).await.unwrap();
    assert_eq!(
        first.wait_finished(&finished).await.unwrap(),
        RunState::Succeeded
    );
    let hold = format!(
        "sh -c 'touch {d}/started.$TASKDECK_ATTEMPT; while [ ! -e {d}/go ]; do sleep 0.02; done'"
    );
    let mut held = workflow(vec![sh("first", &[], "echo one"), sh("hold", &[0], &hold)]);
    held.name = "held".into();
    let cut = first.submit(held, None).await.unwrap();
    wait_for_file(&dir.path().join("started.1")).await;
    first.detach().await.unwrap();

    // Second engine, as the console after a restart.
    let console = Console::Local(engine(dir.path()));
    let history = console.history().await.unwrap();
    assert_eq!(history.len(), 2);
    let h_cut = history.iter().find(|h| h.id == cut).unwrap();
    let h_done = history.iter().find(|h| h.id == finished).unwrap();
    assert_eq!(h_cut.state, "interrupted");
    assert!(h_cut.interrupted());
    assert_eq!((h_cut.done(), h_cut.tasks), (1, 2));
    assert_eq!(h_done.state, "succeeded");
    assert!(h_done.took().is_some());

    // The finished run folds back whole, its logs from the indexed files.
    let past = console.open_past(&finished).await.unwrap();
    assert_eq!(past.run.state, RunState::Succeeded);
    assert_eq!(past.damaged, 0);
    assert!(
        past.run
            .tasks
            .iter()
            .all(|t| t.state == TaskState::Succeeded)
    );
    let lines = console
        .past_log(&finished, Some((0, "greet".into())), 1, 0)
        .await
        .unwrap();
    let text: Vec<(&str, LogStream)> = lines.iter().map(|l| (l.line.as_str(), l.stream)).collect();
    assert!(text.contains(&("hello", LogStream::Stdout)), "{text:?}");
    assert!(text.contains(&("careful", LogStream::Stderr)), "{text:?}");
    assert!(lines.iter().all(|l| l.ts > 0 && l.task == Some(0)));
    // From a line on, as the logs pane asks for more.
    let rest = console
        .past_log(&finished, Some((0, "greet".into())), 1, 1)
        .await
        .unwrap();
    assert_eq!(rest.len(), lines.len() - 1);
    let engine_log = console.past_log(&finished, None, 0, 0).await.unwrap();
    assert!(
        engine_log.iter().any(|l| l.line.contains("started")),
        "{engine_log:?}"
    );

    // The interrupted one shows its cut attempt as interrupted, not running forever.
    let past = console.open_past(&cut).await.unwrap();
    let attempt = past.run.tasks[1].attempts.last().unwrap();
    assert_eq!(attempt.outcome, Some(AttemptOutcome::Interrupted));
    assert_ne!(past.run.tasks[1].state, TaskState::Running);

    // Resume takes it over here; it finishes once released.
    let (rec, warnings) = console.resume(&cut).await.unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!((rec.finished, rec.tasks), (1, 2));
    assert_eq!(rec.interrupted, vec!["hold#1".to_string()]);
    // Its attempts from before the take-over show their logs, read from their files.
    let before = console.task_log(&cut, 0, 1, 0).await.unwrap();
    assert!(before.iter().any(|l| l.line == "one"), "{before:?}");
    wait_for_file(&dir.path().join("started.2")).await;
    std::fs::write(dir.path().join("go"), "").unwrap();
    let Console::Local(e) = &console else {
        unreachable!("the console was made local above")
    };
    assert_eq!(e.wait_finished(&cut).await.unwrap(), RunState::Succeeded);
    // Resuming it again, or a finished run, is refused with a reason.
    let again = console.resume(&finished).await.unwrap_err().to_string();
    assert!(again.contains("already succeeded"), "{again}");

    // Re-run: a new run of the same workflow version.
    let new = console.rerun(&finished).await.unwrap();
    assert_ne!(new, finished);
    assert_eq!(e.wait_finished(&new).await.unwrap(), RunState::Succeeded);
    let history = console.history().await.unwrap();
    let versions: Vec<u32> = history
        .iter()
        .filter(|h| h.workflow == "done")
        .map(|h| h.version_no)
        .collect();
    assert_eq!(versions, vec![1, 1]);
    console.shutdown().await;
}

#[tokio::test]
async fn without_a_store_history_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let console = Console::Local(EngineHandle::start(EngineOptions {
        config: Arc::new(Config::default()),
        log_dir: dir.path().join("logs"),
        work_dir: dir.path().join("work"),
        auto_approve: false,
        journal: None,
        callbacks: Default::default(),
    }));
    let e = console.history().await.unwrap_err().to_string();
    assert!(e.contains("--store memory"), "{e}");
    console.shutdown().await;
}
