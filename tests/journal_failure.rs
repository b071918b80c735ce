//! A journal that refuses writes (a full disk): nothing new starts, nothing is lost, and the run
//! goes on once writes work again. The failing store wraps a real SQLite one.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{task, workflow};
use taskdeck::config::Config;
use taskdeck::engine::{EngineHandle, EngineOptions};
use taskdeck::model::{EventKind, Millis, RunId, RunState};
use taskdeck::spec::Action;
use taskdeck::store::{
    self, Backend, Batch, LogRecord, RunRecord, StoreError, StoredEvent, WorkflowRecord,
};

/// Only a hang gets anywhere near this.
const WAIT: Duration = Duration::from_secs(20);

/// SQLite, except that `append` fails while `full` is set, as on a full disk.
struct Flaky {
    inner: Box<dyn Backend>,
    full: Arc<AtomicBool>,
}

impl Backend for Flaky {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn inline_ok(&self) -> bool {
        self.inner.inline_ok()
    }
    fn append(&mut self, batch: &Batch) -> store::Result<()> {
        if self.full.load(Ordering::SeqCst) {
            return Err(StoreError::Db {
                location: self.location(),
                detail: "database or disk is full".into(),
            });
        }
        self.inner.append(batch)
    }
    fn max_seq(&mut self) -> store::Result<u64> {
        self.inner.max_seq()
    }
    fn submission(&mut self, run: &RunId) -> store::Result<Option<taskdeck::model::Event>> {
        self.inner.submission(run)
    }
    fn run_events(&mut self, run: &RunId) -> store::Result<Vec<StoredEvent>> {
        self.inner.run_events(run)
    }
    fn cut_events(&mut self, run: &RunId, pos: i64, line: usize) -> store::Result<()> {
        self.inner.cut_events(run, pos, line)
    }
    fn runs(&mut self) -> store::Result<Vec<RunRecord>> {
        self.inner.runs()
    }
    fn claim(
        &mut self,
        run: &RunId,
        owner: &str,
        previous: Option<&str>,
        now: Millis,
    ) -> store::Result<bool> {
        self.inner.claim(run, owner, previous, now)
    }
    fn heartbeat(&mut self, owner: &str, now: Millis) -> store::Result<()> {
        self.inner.heartbeat(owner, now)
    }
    fn release(&mut self, owner: &str) -> store::Result<()> {
        self.inner.release(owner)
    }
    fn workflow(&mut self, hash: &str) -> store::Result<Option<WorkflowRecord>> {
        self.inner.workflow(hash)
    }
    fn log_files(&mut self, run: &RunId) -> store::Result<Vec<LogRecord>> {
        self.inner.log_files(run)
    }
    fn delete_runs(&mut self, ids: &[RunId]) -> store::Result<()> {
        self.inner.delete_runs(ids)
    }
    fn backup_to(&mut self, dest: &Path) -> store::Result<()> {
        self.inner.backup_to(dest)
    }
    fn restore_from(&mut self, src: &Path) -> store::Result<()> {
        self.inner.restore_from(src)
    }
}

#[tokio::test]
async fn a_full_disk_holds_new_work_back_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("journal.db");
    let full = Arc::new(AtomicBool::new(false));
    let flaky = Flaky {
        inner: store::open(&store::StoreUrl::Sqlite(db.clone())).unwrap(),
        full: full.clone(),
    };
    let engine = EngineHandle::start(EngineOptions {
        config: Arc::new(Config::default()),
        log_dir: dir.path().join("logs"),
        work_dir: dir.path().join("work"),
        auto_approve: false,
        journal: Some(store::Journal::spawn(Box::new(flaky)).unwrap()),
        callbacks: Default::default(),
    });
    let mut feed = engine.subscribe(0).await.unwrap();

    // `a` runs until the test lets it end; the disk fills up meanwhile. `a`'s end is applied,
    // but `b` may not start before that is journaled.
    let gate = dir.path().join("go");
    let mut a = task("a", &[]);
    a.action = Action::Run(format!(
        "while [ ! -e {} ]; do sleep 0.02; done",
        gate.display()
    ));
    // Processes, not builtins: a builtin has no effect to hold back, so it may finish unjournaled.
    let mut b = task("b", &[0]);
    b.action = Action::Run("true".into());
    let mut c = task("c", &[1]);
    c.action = Action::Run("true".into());
    let wf = workflow(vec![a, b, c]);
    let run = tokio::time::timeout(WAIT, engine.submit(wf, None))
        .await
        .expect("submitted")
        .unwrap();
    tokio::time::timeout(WAIT, async {
        while let Some(ev) = feed.next().await {
            if matches!(ev.kind, EventKind::TaskStarted { .. }) {
                return;
            }
        }
    })
    .await
    .expect("a starts");
    full.store(true, Ordering::SeqCst);
    std::fs::write(&gate, "").unwrap();
    let held = tokio::time::timeout(Duration::from_millis(1500), async {
        while let Some(ev) = feed.next().await {
            if matches!(ev.kind, EventKind::TaskStarted { .. }) {
                return;
            }
        }
    })
    .await;
    assert!(
        held.is_err(),
        "a task started while the journal refused writes"
    );
    let logs: Vec<String> = engine
        .logs()
        .engine_lines(&run, 0)
        .into_iter()
        .map(|l| l.line)
        .collect();
    let logs = logs.join("\n");
    assert!(
        logs.contains("journal write failed") && logs.contains("database or disk is full"),
        "the failure is told in the run's log: {logs}"
    );

    // Space again: the engine retries on its own, and the run finishes.
    full.store(false, Ordering::SeqCst);
    let state = tokio::time::timeout(WAIT, engine.wait_finished(&run))
        .await
        .expect("the run finishes once the journal accepts writes")
        .unwrap();
    assert_eq!(state, RunState::Succeeded);
    tokio::time::timeout(WAIT, engine.shutdown())
        .await
        .expect("the engine stops")
        .unwrap();

    // Everything the engine did is in the store, in order.
    let mut reader = store::open(&store::StoreUrl::Sqlite(db)).unwrap();
    let events = reader.run_events(&run).unwrap();
    let kinds: Vec<String> = events
        .iter()
        .map(|e| format!("{:?}", e.event.as_ref().unwrap().kind))
        .collect();
    let succeeded = kinds
        .iter()
        .filter(|k| k.starts_with("TaskSucceeded"))
        .count();
    assert_eq!(succeeded, 3, "{kinds:#?}");
    assert!(kinds[0].starts_with("RunSubmitted"), "{kinds:#?}");
    let seqs: Vec<u64> = events
        .iter()
        .map(|e| e.event.as_ref().unwrap().seq)
        .collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    let row = reader.runs().unwrap();
    assert_eq!(row[0].row.state, "succeeded");
}
