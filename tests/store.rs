//! The journal API, run against every store we ship: SQLite always, PostgreSQL when
//! `TASKDECK_TEST_PG_URL` names a server (each test in a schema of its own).

use std::collections::BTreeMap;
use std::sync::Arc;

use taskdeck::model::{Event, EventKind, RunId, now_millis};
use taskdeck::spec::{Action, Builtin, TaskSpec, Workflow};
use taskdeck::store::{
    self, Backend, Batch, LogRecord, RunRow, StoreError, StoreUrl, WorkflowRecord,
};

/// A store for one test; dropping it drops the PostgreSQL schema.
struct TestStore {
    name: &'static str,
    url: StoreUrl,
    _dir: Option<tempfile::TempDir>,
    pg_schema: Option<(String, String)>,
}

impl Drop for TestStore {
    fn drop(&mut self) {
        if let Some((base, schema)) = &self.pg_schema
            && let Ok(mut c) = postgres::Client::connect(base, postgres::NoTls)
        {
            let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
        }
    }
}

impl TestStore {
    fn open(&self) -> Box<dyn Backend> {
        store::open(&self.url).unwrap_or_else(|e| panic!("{}: {e}", self.name))
    }
}

fn stores() -> Vec<TestStore> {
    let dir = tempfile::tempdir().unwrap();
    let mut all = vec![TestStore {
        name: "sqlite",
        url: StoreUrl::Sqlite(dir.path().join("journal.db")),
        _dir: Some(dir),
        pg_schema: None,
    }];
    if let Ok(base) = std::env::var("TASKDECK_TEST_PG_URL") {
        let schema = format!("td_test_{}", fastrand::u64(..));
        let mut c = postgres::Client::connect(&base, postgres::NoTls)
            .expect("TASKDECK_TEST_PG_URL is set but the server does not answer");
        c.batch_execute(&format!("CREATE SCHEMA {schema}")).unwrap();
        let sep = if base.contains('?') { '&' } else { '?' };
        all.push(TestStore {
            name: "postgres",
            url: StoreUrl::Postgres(format!("{base}{sep}options=-csearch_path%3D{schema}")),
            _dir: None,
            pg_schema: Some((base, schema)),
        });
    }
    all
}

fn workflow(name: &str, tasks: &[&str]) -> Workflow {
    Workflow::new(
        name,
        tasks
            .iter()
            .map(|t| TaskSpec::new(*t, Action::Builtin(Builtin::Noop)))
            .collect(),
    )
}

fn ev(seq: u64, run: &RunId, kind: EventKind) -> Arc<Event> {
    Arc::new(Event {
        seq,
        ts: now_millis(),
        run: run.clone(),
        kind,
    })
}

fn row(run: &RunId, name: &str, version: &str, state: &str, owner: Option<String>) -> RunRow {
    RunRow {
        id: run.clone(),
        workflow: name.into(),
        version: version.into(),
        state: state.into(),
        submitted_at: now_millis(),
        finished_at: store::is_terminal_state(state).then(now_millis),
        tasks: 2,
        counts: BTreeMap::from([("succeeded".to_string(), 2)]),
        owner: owner.clone(),
        heartbeat: owner.map(|_| now_millis()),
    }
}

fn version(hash: &str, name: &str, source: &str) -> WorkflowRecord {
    WorkflowRecord {
        hash: hash.into(),
        name: name.into(),
        source: Some(source.into()),
        definition: String::new(),
        created_at: now_millis(),
    }
}

/// A run submitted and finished, in two commits.
fn finished_run(b: &mut dyn Backend, id: &str, name: &str, hash: &str, seq: u64) -> RunId {
    let run = RunId::from(id);
    let wf = workflow(name, &["a", "b"]);
    b.append(&Batch {
        events: vec![
            ev(
                seq,
                &run,
                EventKind::RunSubmitted {
                    workflow: Arc::new(wf),
                    source: Some(format!("name = '{name}' # {hash}")),
                },
            ),
            ev(
                seq + 1,
                &run,
                EventKind::TaskStarted {
                    task: 0,
                    attempt: 1,
                    pid: Some(42),
                },
            ),
        ],
        runs: vec![row(&run, name, hash, "running", Some(store::owner_id()))],
        workflows: vec![version(hash, name, &format!("name = '{name}' # {hash}"))],
        logs: vec![],
    })
    .unwrap();
    b.append(&Batch {
        events: vec![ev(
            seq + 2,
            &run,
            EventKind::RunFinished {
                state: taskdeck::model::RunState::Succeeded,
            },
        )],
        runs: vec![row(&run, name, hash, "succeeded", None)],
        workflows: vec![],
        logs: vec![LogRecord {
            run: run.clone(),
            task: "a".into(),
            attempt: 1,
            path: "/nonexistent/a.1.log".into(),
        }],
    })
    .unwrap();
    run
}

#[test]
fn events_come_back_in_order_with_the_run_listed() {
    for s in stores() {
        let mut b = s.open();
        let run = finished_run(b.as_mut(), "r1", "flow", "h1", 1);
        let events: Vec<Event> = b
            .run_events(&run)
            .unwrap()
            .into_iter()
            .map(|e| e.event.unwrap())
            .collect();
        assert_eq!(
            events.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![1, 2, 3],
            "{}",
            s.name
        );
        assert!(matches!(
            events[1].kind,
            EventKind::TaskStarted { pid: Some(42), .. }
        ));
        assert_eq!(b.max_seq().unwrap(), 3, "{}", s.name);
        let first = b.submission(&run).unwrap().unwrap();
        assert!(
            matches!(first.kind, EventKind::RunSubmitted { .. }),
            "{}",
            s.name
        );
        let runs = b.runs().unwrap();
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].row.state, "succeeded");
        assert_eq!(runs[0].row.counts.get("succeeded"), Some(&2));
        assert_eq!(runs[0].row.owner, None, "a finished run has no owner");
        assert_eq!(b.log_files(&run).unwrap().len(), 1);
        assert!(b.submission(&RunId::from("nope")).unwrap().is_none());
    }
}

#[test]
fn a_changed_workflow_is_a_new_version() {
    for s in stores() {
        let mut b = s.open();
        finished_run(b.as_mut(), "r1", "flow", "aaaa", 1);
        finished_run(b.as_mut(), "r2", "flow", "aaaa", 10);
        finished_run(b.as_mut(), "r3", "flow", "bbbb", 20);
        finished_run(b.as_mut(), "r4", "other", "cccc", 30);
        let runs = b.runs().unwrap();
        let v: BTreeMap<&str, u32> = runs
            .iter()
            .map(|r| (r.row.id.as_str(), r.version_no))
            .collect();
        assert_eq!(v["r1"], 1, "{}", s.name);
        assert_eq!(v["r2"], 1, "{}", s.name);
        assert_eq!(v["r3"], 2, "{}", s.name);
        assert_eq!(v["r4"], 1, "{}", s.name);
        let w = b.workflow("bbbb").unwrap().unwrap();
        assert!(w.source.unwrap().contains("bbbb"));
    }
}

#[test]
fn a_run_is_claimed_by_one_owner_at_a_time() {
    for s in stores() {
        let mut b = s.open();
        let run = RunId::from("live");
        b.append(&Batch {
            events: vec![],
            runs: vec![row(&run, "f", "h", "running", Some("elsewhere:1:1".into()))],
            ..Batch::default()
        })
        .unwrap();
        let now = now_millis();
        assert!(
            !b.claim(&run, "me:2:2", None, now).unwrap(),
            "{}: CAS must see the owner",
            s.name
        );
        assert!(b.claim(&run, "me:2:2", Some("elsewhere:1:1"), now).unwrap());
        assert!(
            !b.claim(&run, "third:3:3", Some("elsewhere:1:1"), now)
                .unwrap()
        );
        b.heartbeat("me:2:2", now + 5).unwrap();
        let r = &b.runs().unwrap()[0];
        assert_eq!(r.row.owner.as_deref(), Some("me:2:2"));
        assert_eq!(r.row.heartbeat, Some(now + 5));
        b.release("me:2:2").unwrap();
        assert_eq!(b.runs().unwrap()[0].row.owner, None, "{}", s.name);
    }
}

#[test]
fn a_damaged_tail_is_cut_and_the_good_prefix_kept() {
    for s in stores() {
        let mut b = s.open();
        let run = finished_run(b.as_mut(), "r1", "flow", "h1", 1);
        // Cut inside the first segment, after its first event.
        let second = b.run_events(&run).unwrap()[1].pos;
        b.cut_events(&run, second, 1).unwrap();
        let left: Vec<u64> = b
            .run_events(&run)
            .unwrap()
            .into_iter()
            .map(|e| e.event.unwrap().seq)
            .collect();
        assert_eq!(left, vec![1], "{}", s.name);
    }
}

#[test]
fn pruning_keeps_the_newest_finished_runs_and_every_live_one() {
    for s in stores() {
        let mut b = s.open();
        for i in 0..4 {
            finished_run(b.as_mut(), &format!("r{i}"), "flow", "h", i * 10 + 1);
            std::thread::sleep(std::time::Duration::from_millis(3));
        }
        let live = RunId::from("live");
        b.append(&Batch {
            runs: vec![row(&live, "flow", "h", "running", Some(store::owner_id()))],
            ..Batch::default()
        })
        .unwrap();
        let gone = store::prune(b.as_mut(), 2, 365, now_millis(), None).unwrap();
        assert_eq!(gone.len(), 2, "{}", s.name);
        let left: Vec<String> = b
            .runs()
            .unwrap()
            .iter()
            .map(|r| r.row.id.to_string())
            .collect();
        assert!(left.contains(&"live".to_string()));
        assert_eq!(left.len(), 3, "{}: {left:?}", s.name);
        assert!(
            b.run_events(&RunId::from("r0")).unwrap().is_empty(),
            "events go too"
        );
        // Age: everything finished is older than 0 days.
        let gone = store::prune(b.as_mut(), 100, 0, now_millis() + 1, None).unwrap();
        assert_eq!(gone.len(), 2);
    }
}

#[test]
fn backup_and_restore_round_trip_between_stores() {
    let dir = tempfile::tempdir().unwrap();
    for s in stores() {
        let mut b = s.open();
        let run = finished_run(b.as_mut(), "r1", "flow", "h1", 1);
        let file = dir.path().join(format!("{}.backup", s.name));
        b.backup_to(&file).unwrap();
        finished_run(b.as_mut(), "r2", "flow", "h2", 10);
        b.restore_from(&file).unwrap();
        let runs = b.runs().unwrap();
        assert_eq!(runs.len(), 1, "{}: restore replaces everything", s.name);
        assert_eq!(b.run_events(&run).unwrap().len(), 3);
        assert_eq!(b.max_seq().unwrap(), 3);
        // The backup is a store of its own, readable by the SQLite backend.
        let mut copy = store::open(&StoreUrl::Sqlite(file.clone())).unwrap();
        assert_eq!(copy.runs().unwrap().len(), 1);
    }
}

#[test]
fn a_store_from_a_newer_taskdeck_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.db");
    drop(store::open(&StoreUrl::Sqlite(path.clone())).unwrap());
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute(
        "UPDATE meta SET value = '99' WHERE key = 'schema_version'",
        [],
    )
    .unwrap();
    drop(c);
    let err = store::open(&StoreUrl::Sqlite(path)).err().unwrap();
    assert!(matches!(err, StoreError::TooNew { found: 99, .. }), "{err}");
    assert!(err.to_string().contains("upgrade taskdeck"), "{err}");
}

#[test]
fn files_that_are_not_stores_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, vec![0x42u8; 8192]).unwrap();
    let err = store::open(&StoreUrl::Sqlite(junk))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("not a taskdeck store"), "{err}");
    let err = store::open(&StoreUrl::Sqlite(dir.path().to_path_buf()))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("is a folder"), "{err}");
}

#[test]
fn sequence_numbers_never_go_back_when_runs_are_deleted() {
    for s in stores() {
        let mut b = s.open();
        finished_run(b.as_mut(), "r1", "flow", "h1", 1);
        let newest = finished_run(b.as_mut(), "r2", "flow", "h2", 10);
        assert_eq!(b.max_seq().unwrap(), 12, "{}", s.name);
        b.delete_runs(&[newest]).unwrap();
        assert_eq!(
            b.max_seq().unwrap(),
            12,
            "{}: the deleted run's numbers must not be handed out again",
            s.name
        );
    }
}

/// The sequence numbers of a run's events as the store gives them back.
fn seqs(b: &mut dyn Backend, run: &RunId) -> Vec<u64> {
    b.run_events(run)
        .unwrap()
        .into_iter()
        .map(|e| e.event.unwrap().seq)
        .collect()
}

/// One more event of `run`, in a commit of its own.
fn skipped(b: &mut dyn Backend, run: &RunId, seq: u64) {
    let kind = EventKind::TaskSkipped {
        task: 1,
        reason: "test".into(),
    };
    b.append(&Batch {
        events: vec![ev(seq, run, kind)],
        ..Batch::default()
    })
    .unwrap();
}

#[test]
fn a_store_of_the_first_layout_is_upgraded_when_opened() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let url = StoreUrl::Sqlite(path.clone());
    let (r1, r2) = {
        let mut b = store::open(&url).unwrap();
        let r1 = finished_run(b.as_mut(), "r1", "flow", "h1", 1);
        let r2 = finished_run(b.as_mut(), "r2", "flow", "h2", 10);
        // r1 again after r2: its segments are not next to each other in commit order.
        skipped(b.as_mut(), &r1, 20);
        (r1, r2)
    };
    // Rewrite the file the way the first layout kept it: rows in commit order (which the
    // global sequence numbers give), an index by run, no slots.
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute_batch(
        "CREATE TABLE old (pos INTEGER PRIMARY KEY, run_id TEXT NOT NULL,
             first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL, count INTEGER NOT NULL,
             payload BLOB NOT NULL);
         INSERT INTO old (run_id, first_seq, last_seq, count, payload)
             SELECT run_id, first_seq, last_seq, count, payload FROM segments ORDER BY first_seq;
         DROP TABLE segments;
         ALTER TABLE old RENAME TO events;
         CREATE INDEX events_by_run ON events (run_id, pos);
         DROP TABLE run_slots;
         UPDATE meta SET value = '1' WHERE key = 'schema_version';",
    )
    .unwrap();
    drop(c);
    let old_backup = dir.path().join("old.backup");
    std::fs::copy(&path, &old_backup).unwrap();

    let mut b = store::open(&url).unwrap();
    assert_eq!(seqs(b.as_mut(), &r1), [1, 2, 3, 20]);
    assert_eq!(seqs(b.as_mut(), &r2), [10, 11, 12]);
    assert_eq!(b.max_seq().unwrap(), 20);
    assert!(b.submission(&r2).unwrap().is_some());
    skipped(b.as_mut(), &r2, 21);
    assert_eq!(seqs(b.as_mut(), &r2), [10, 11, 12, 21]);
    drop(b);
    let c = rusqlite::Connection::open(&path).unwrap();
    let (version, index): (String, i64) = c
        .query_row(
            "SELECT (SELECT value FROM meta WHERE key = 'schema_version'),
                    (SELECT count(*) FROM sqlite_master WHERE name IN ('events', 'events_by_run'))",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((version.as_str(), index), ("2", 0));
    drop(c);
    // Opening an upgraded file again changes nothing.
    let mut b = store::open(&url).unwrap();
    assert_eq!(seqs(b.as_mut(), &r1), [1, 2, 3, 20]);
    assert_eq!(b.max_seq().unwrap(), 21);
    // A backup taken before the upgrade restores into the new layout.
    let mut fresh = store::open(&StoreUrl::Sqlite(dir.path().join("fresh.db"))).unwrap();
    fresh.restore_from(&old_backup).unwrap();
    assert_eq!(seqs(fresh.as_mut(), &r1), [1, 2, 3, 20]);
    assert_eq!(seqs(fresh.as_mut(), &r2), [10, 11, 12]);
    assert_eq!(fresh.max_seq().unwrap(), 20);
}

#[test]
fn a_writer_survives_another_process_deleting_or_restoring_under_it() {
    let dir = tempfile::tempdir().unwrap();
    let url = StoreUrl::Sqlite(dir.path().join("shared.db"));
    let mut a = store::open(&url).unwrap();
    let mut b = store::open(&url).unwrap();
    let r1 = finished_run(a.as_mut(), "r1", "flow", "h1", 1);
    let backup = dir.path().join("early.backup");
    b.backup_to(&backup).unwrap();
    let r2 = finished_run(a.as_mut(), "r2", "flow", "h2", 10);
    // Another process prunes r1 while `a` still knows its slot: `a`'s next segment of r1 is
    // not lost in a slot nobody owns.
    b.delete_runs(std::slice::from_ref(&r1)).unwrap();
    skipped(a.as_mut(), &r1, 20);
    assert_eq!(seqs(b.as_mut(), &r1), [20]);
    assert_eq!(seqs(b.as_mut(), &r2), [10, 11, 12]);
    // A restore of an older backup hands slots out again from where the backup was: `a`'s
    // next segment of r2 lands in r2's new slot, not in whichever run got r2's old one.
    b.restore_from(&backup).unwrap();
    let r3 = RunId::from("r3");
    skipped(b.as_mut(), &r3, 30);
    skipped(a.as_mut(), &r2, 31);
    assert_eq!(seqs(b.as_mut(), &r3), [30]);
    assert_eq!(seqs(b.as_mut(), &r2), [31]);
    assert_eq!(seqs(b.as_mut(), &r1), [1, 2, 3]);
    assert_eq!(a.max_seq().unwrap(), 31);
}
