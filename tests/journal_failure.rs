//! A journal that refuses writes (a full disk): nothing new starts, nothing is lost, and the run
//! goes on once writes work again. The failing store wraps a real SQLite one.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{task, workflow};
use taskdeck::config::Config;
use taskdeck::engine::{EngineHandle, EngineOptions, Subscription};
use taskdeck::model::{EventKind, Millis, RunId, RunState};
use taskdeck::spec::{Action, TaskSpec, Workflow};
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

/// An engine on a `Flaky` store, the store's file, and the switch that fills the disk.
struct Rig {
    dir: tempfile::TempDir,
    db: std::path::PathBuf,
    full: Arc<AtomicBool>,
    engine: EngineHandle,
}

impl Rig {
    fn new() -> Rig {
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
        Rig {
            dir,
            db,
            full,
            engine,
        }
    }

    /// A task that runs until `go` is called.
    fn held(&self, id: &str) -> TaskSpec {
        let mut t = task(id, &[]);
        t.action = Action::Run(format!(
            "while [ ! -e {} ]; do sleep 0.02; done",
            self.dir.path().join("go").display()
        ));
        t
    }

    fn go(&self) {
        std::fs::write(self.dir.path().join("go"), "").unwrap();
    }

    /// Submits `wf` and waits until its first task has started.
    async fn start(&self, wf: Workflow) -> (RunId, Subscription) {
        let mut feed = self.engine.subscribe(0).await.unwrap();
        let run = tokio::time::timeout(WAIT, self.engine.submit(wf, None))
            .await
            .expect("submitted")
            .unwrap();
        tokio::time::timeout(WAIT, next_start(&mut feed))
            .await
            .expect("the first task starts");
        (run, feed)
    }

    fn run_log(&self, run: &RunId) -> String {
        let lines: Vec<String> = self
            .engine
            .logs()
            .engine_lines(run, 0)
            .into_iter()
            .map(|l| l.line)
            .collect();
        lines.join("\n")
    }

    /// Lets the disk work again and checks the run ends as `want` with every event stored, in
    /// order and without gaps; gives the events' kinds.
    async fn recover(self, run: &RunId, want: RunState) -> Vec<String> {
        self.full.store(false, Ordering::SeqCst);
        let state = tokio::time::timeout(WAIT, self.engine.wait_finished(run))
            .await
            .expect("the run finishes once the journal accepts writes")
            .unwrap();
        assert_eq!(state, want);
        tokio::time::timeout(WAIT, self.engine.shutdown())
            .await
            .expect("the engine stops")
            .unwrap();
        let mut reader = store::open(&store::StoreUrl::Sqlite(self.db.clone())).unwrap();
        let events = reader.run_events(run).unwrap();
        let seqs: Vec<u64> = events
            .iter()
            .map(|e| e.event.as_ref().unwrap().seq)
            .collect();
        assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
        let row = reader.runs().unwrap();
        assert_eq!(row[0].row.state, want.as_str());
        events
            .iter()
            .map(|e| format!("{:?}", e.event.as_ref().unwrap().kind))
            .collect()
    }
}

async fn next_start(feed: &mut Subscription) {
    while let Some(ev) = feed.next().await {
        if matches!(ev.kind, EventKind::TaskStarted { .. }) {
            return;
        }
    }
}

fn command(id: &str, needs: &[u32], line: &str) -> TaskSpec {
    let mut t = task(id, needs);
    t.action = Action::Run(line.into());
    t
}

#[tokio::test]
async fn a_full_disk_holds_new_work_back_and_loses_nothing() {
    let rig = Rig::new();
    // Processes, not builtins: a builtin has no effect to hold back, so it may finish
    // unjournaled.
    let wf = workflow(vec![
        rig.held("a"),
        command("b", &[0], "true"),
        command("c", &[1], "true"),
    ]);
    let (run, mut feed) = rig.start(wf).await;

    // The disk fills up while `a` runs. Its end is applied, but `b` may not start before that
    // is journaled.
    rig.full.store(true, Ordering::SeqCst);
    rig.go();
    let held = tokio::time::timeout(Duration::from_millis(1500), next_start(&mut feed)).await;
    assert!(
        held.is_err(),
        "a task started while the journal refused writes"
    );
    let log = rig.run_log(&run);
    assert!(
        log.contains("journal write failed") && log.contains("database or disk is full"),
        "the failure is told in the run's log: {log}"
    );

    let kinds = rig.recover(&run, RunState::Succeeded).await;
    assert!(kinds[0].starts_with("RunSubmitted"), "{kinds:#?}");
    let succeeded = kinds
        .iter()
        .filter(|k| k.starts_with("TaskSucceeded"))
        .count();
    assert_eq!(succeeded, 3, "{kinds:#?}");
}

#[tokio::test]
async fn a_run_that_ends_while_the_disk_is_full_says_so_and_is_journaled_later() {
    let rig = Rig::new();
    // After `a`, nothing waits for the journal: the run ends in memory.
    let wf = workflow(vec![rig.held("a"), task("b", &[0])]);
    let (run, _feed) = rig.start(wf).await;
    rig.full.store(true, Ordering::SeqCst);
    rig.go();
    tokio::time::timeout(WAIT, async {
        while !rig.run_log(&run).contains("journal write failed") {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the finished run's log tells that its end is not journaled yet");

    let kinds = rig.recover(&run, RunState::Succeeded).await;
    assert!(
        kinds.last().unwrap().starts_with("RunFinished"),
        "{kinds:#?}"
    );
}
