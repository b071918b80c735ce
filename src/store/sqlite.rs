//! The embedded journal: one SQLite file in WAL mode. `synchronous = NORMAL` makes every commit
//! survive the death of the process (the case `kill -9` tests); a power cut may lose the last
//! commits but never leaves the file inconsistent.
//!
//! Each run's segments sit together in `segments`: a run gets a slot (`run_slots`) when its first
//! segment is written, and its segments take the row ids `slot << 32` + 1, 2, 3... So reading a
//! run is a range of the table itself, and a commit writes one table page, not that page and an
//! index's. (Layout 1 kept them in commit order in `events`, indexed by run; `upgrade` moves
//! them. The new name makes a taskdeck of layout 1 still writing to an upgraded file fail
//! loudly rather than put its rows into some run's slot.)

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OptionalExtension, params};

use super::{
    Backend, Batch, LogRecord, Result, RunRecord, RunRow, Segment, StoreError, StoredEvent,
    WorkflowRecord, decode_segment, first_event, segment_prefix, segments,
};
use crate::model::{Millis, RunId};

/// The layout of the file. 1: events in commit order with an index by run (before 2026-12);
/// 2: events grouped by run slot. A file of version 1 is rewritten when opened.
const SCHEMA_VERSION: i64 = 2;

/// Rows a run's slot spans: `slot << 32` is below its first row, this much above it its last.
const SLOT_SPAN: i64 = 0xFFFF_FFFF;

/// The `segments` rows of run `?1` (with `?2` = `SLOT_SPAN`): a range of its slot's row ids.
macro_rules! rows_of_run {
    () => {
        " WHERE pos > (SELECT slot FROM run_slots WHERE run_id = ?1) << 32
            AND pos <= ((SELECT slot FROM run_slots WHERE run_id = ?1) << 32) + ?2
            AND run_id = ?1"
    };
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS segments (
    pos INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    first_seq INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    count INTEGER NOT NULL,
    payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS run_slots (
    slot INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    workflow TEXT NOT NULL,
    version TEXT NOT NULL,
    state TEXT NOT NULL,
    submitted_at INTEGER NOT NULL,
    finished_at INTEGER,
    tasks INTEGER NOT NULL,
    counts TEXT NOT NULL,
    owner TEXT,
    heartbeat INTEGER
);
CREATE TABLE IF NOT EXISTS workflows (
    hash TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    source TEXT,
    definition TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS logs (
    run_id TEXT NOT NULL,
    task TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    path TEXT NOT NULL,
    PRIMARY KEY (run_id, task, attempt)
);
";

pub struct Sqlite {
    conn: Connection,
    path: PathBuf,
    /// Slots of the runs this connection wrote. Another process may prune a run or restore the
    /// store meanwhile, so `insert_segment` checks the slot it takes from here.
    slots: Slots,
}

type Slots = HashMap<RunId, Slot>;

/// A run's slot as this connection knows it, and the row id its next segment takes (`None`:
/// read it from the table).
#[derive(Debug, Clone, Copy)]
struct Slot {
    id: i64,
    next: Option<i64>,
}

impl Sqlite {
    pub fn open(path: &Path) -> Result<Sqlite> {
        let location = format!("sqlite://{}", path.display());
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Open(format!(
                    "cannot create the store's folder {}: {e}",
                    dir.display()
                ))
            })?;
        }
        if path.is_dir() {
            return Err(StoreError::Open(format!(
                "the store {location} is a folder; give a file path"
            )));
        }
        let conn = Connection::open(path).map_err(|e| open_error(&location, e))?;
        let mut db = Sqlite {
            conn,
            path: path.to_path_buf(),
            slots: Slots::new(),
        };
        // Two processes opening a new store at once (an engine starting, `taskdeck runs`) can
        // get SQLITE_BUSY at once, without SQLite's busy wait: while the other one switches the
        // file to WAL or creates the schema. That passes quickly, so try again for a while.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut prepared = db.prepare();
        while matches!(prepared, Err(StoreError::Busy(_))) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            prepared = db.prepare();
        }
        prepared.map_err(|e| match e {
            StoreError::Db { detail, .. } => {
                StoreError::Open(format!("cannot open the store {location}: {detail}"))
            }
            other => other,
        })?;
        Ok(db)
    }

    fn prepare(&mut self) -> Result<()> {
        let loc = self.location();
        self.conn
            .busy_timeout(Duration::from_secs(10))
            .map_err(|e| db_error(&loc, e))?;
        // Set first: the switch to WAL of a new file is itself a commit, synced as this says.
        self.conn
            .execute_batch("PRAGMA synchronous = NORMAL;")
            .map_err(|e| db_error(&loc, e))?;
        // WAL lets readers (`taskdeck runs`, a second engine) work while an engine writes.
        let mode: String = self
            .conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(|e| db_error(&loc, e))?;
        if mode != "wal" {
            tracing::warn!(store = %loc, mode, "SQLite would not switch to WAL mode");
        }
        check_version(&self.conn, &loc)?;
        // The tables in one commit rather than one each. It is a write even when they exist,
        // so a store that cannot be written (a read-only file system) is refused here, not
        // mid-run.
        let schema = format!(
            "BEGIN IMMEDIATE; {SCHEMA}
             INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', '{SCHEMA_VERSION}');
             COMMIT;"
        );
        if let Err(e) = self.conn.execute_batch(&schema) {
            if !self.conn.is_autocommit() {
                let _ = self.conn.execute_batch("ROLLBACK");
            }
            return Err(db_error(&loc, e));
        }
        // Read again now that it is set: an older taskdeck may have made the file meanwhile.
        if check_version(&self.conn, &loc)? == Some(1) {
            upgrade(&mut self.conn).map_err(|e| db_error(&loc, e))?;
        }
        Ok(())
    }

    fn runs_table(conn: &Connection) -> rusqlite::Result<Vec<RunRow>> {
        let mut stmt = conn.prepare(
            "SELECT id, workflow, version, state, submitted_at, finished_at, tasks, counts, owner, heartbeat
             FROM runs ORDER BY submitted_at DESC, id DESC",
        )?;
        let rows = stmt.query_map([], |r| {
            let counts: String = r.get(7)?;
            Ok(RunRow {
                id: RunId::from(r.get::<_, String>(0)?.as_str()),
                workflow: r.get(1)?,
                version: r.get(2)?,
                state: r.get(3)?,
                submitted_at: r.get::<_, i64>(4)? as Millis,
                finished_at: r.get::<_, Option<i64>>(5)?.map(|v| v as Millis),
                tasks: r.get::<_, i64>(6)? as u32,
                counts: serde_json::from_str(&counts).unwrap_or_default(),
                owner: r.get(8)?,
                heartbeat: r.get::<_, Option<i64>>(9)?.map(|v| v as Millis),
            })
        })?;
        rows.collect()
    }
}

/// Moves a layout 1 file's events (in commit order, indexed by run) into slots, in one
/// transaction: a crash leaves the file as it was, and a second process opening it meanwhile
/// waits, then finds it done. It needs free space for a copy of the events while it runs.
fn upgrade(conn: &mut Connection) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let version: Option<String> = tx
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    if version.and_then(|v| v.parse::<i64>().ok()) != Some(1) {
        return Ok(());
    }
    tracing::info!("upgrading the store to layout {SCHEMA_VERSION} (events grouped by run)");
    // Kept so sequence numbers never repeat (`high_water` then reads it with the new rows).
    let high: i64 = tx.query_row(
        "SELECT max(
             COALESCE((SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'max_seq'), 0),
             COALESCE((SELECT max(last_seq) FROM events), 0))",
        [],
        |r| r.get(0),
    )?;
    tx.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES ('max_seq', ?1)",
        [high.to_string()],
    )?;
    tx.execute_batch(
        "INSERT OR IGNORE INTO run_slots (run_id)
             SELECT run_id FROM events GROUP BY run_id ORDER BY min(pos);
         INSERT INTO segments (pos, run_id, first_seq, last_seq, count, payload)
             SELECT (s.slot << 32) + row_number() OVER (PARTITION BY e.run_id ORDER BY e.pos),
                    e.run_id, e.first_seq, e.last_seq, e.count, e.payload
             FROM events e JOIN run_slots s ON s.run_id = e.run_id;
         DROP TABLE events;
         UPDATE meta SET value = '2' WHERE key = 'schema_version';",
    )?;
    tx.commit()
}

/// Refuses a file written by a newer taskdeck before touching it; says which layout it has
/// (`None`: a new file).
fn check_version(conn: &Connection, loc: &str) -> Result<Option<i64>> {
    let has_meta: bool = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map_err(|e| db_error(loc, e))?
        > 0;
    if !has_meta {
        return Ok(None);
    }
    let found: Option<String> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(|e| db_error(loc, e))?;
    let found: i64 = found.and_then(|v| v.parse().ok()).unwrap_or(SCHEMA_VERSION);
    if found > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            location: loc.to_string(),
            found,
            known: SCHEMA_VERSION,
        });
    }
    Ok(Some(found))
}

fn open_error(loc: &str, e: rusqlite::Error) -> StoreError {
    match db_error(loc, e) {
        StoreError::Db { detail, .. } => {
            StoreError::Open(format!("cannot open the store {loc}: {detail}"))
        }
        other => other,
    }
}

/// Turns SQLite's errors into ones that say what to do.
fn db_error(loc: &str, e: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(f, _) = &e {
        match f.code {
            ErrorCode::DiskFull => return StoreError::Full(loc.to_string()),
            ErrorCode::ReadOnly => return StoreError::ReadOnly(loc.to_string()),
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => {
                return StoreError::Busy(loc.to_string());
            }
            ErrorCode::NotADatabase => {
                return StoreError::Corrupt {
                    location: loc.to_string(),
                    detail: "the file is not a taskdeck store (not an SQLite database)".into(),
                };
            }
            ErrorCode::DatabaseCorrupt => {
                return StoreError::Corrupt {
                    location: loc.to_string(),
                    detail: format!("{e}; restore it from a backup (`taskdeck restore FILE`)"),
                };
            }
            ErrorCode::CannotOpen => {
                return StoreError::Open(format!(
                    "cannot open the store {loc}: check that its folder exists and is writable"
                ));
            }
            _ => {}
        }
    }
    StoreError::Db {
        location: loc.to_string(),
        detail: e.to_string(),
    }
}

/// The highest sequence number the store has seen: the newest segment's of any run, or the
/// one kept in `meta` when segments were deleted (`remember_high_water`), whichever is higher.
/// One lookup per run: a run's newest segment is the last row of its slot.
fn high_water(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT max(
             COALESCE((SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'max_seq'), 0),
             COALESCE((SELECT max((SELECT last_seq FROM segments
                                   WHERE pos > s.slot << 32 AND pos <= (s.slot << 32) + ?1
                                   ORDER BY pos DESC LIMIT 1))
                       FROM run_slots s), 0))",
        [SLOT_SPAN],
        |r| r.get(0),
    )
}

/// Keeps the high-water mark in `meta` before segments go, so sequence numbers never repeat.
fn remember_high_water(conn: &Connection) -> rusqlite::Result<()> {
    let seq = high_water(conn)?;
    conn.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES ('max_seq', ?1)",
        [seq.to_string()],
    )?;
    Ok(())
}

/// The run's slot, given one if it has none yet (inside the caller's transaction: if that
/// rolls back, the caller forgets its `slots`).
fn slot_of(conn: &Connection, slots: &mut Slots, run: &RunId) -> rusqlite::Result<i64> {
    if let Some(slot) = slots.get(run) {
        return Ok(slot.id);
    }
    conn.prepare_cached("INSERT OR IGNORE INTO run_slots (run_id) VALUES (?1)")?
        .execute([run.as_str()])?;
    let slot: i64 = conn
        .prepare_cached("SELECT slot FROM run_slots WHERE run_id = ?1")?
        .query_row([run.as_str()], |r| r.get(0))?;
    slots.insert(
        run.clone(),
        Slot {
            id: slot,
            next: None,
        },
    );
    Ok(slot)
}

/// Appends a segment after the last one of its run's slot. The slot is checked in the same
/// statement: another process may have deleted the run (a prune) or replaced the whole store
/// (a restore) since this connection cached it; then the run gets its slot anew.
fn insert_segment(conn: &Connection, slots: &mut Slots, seg: &Segment) -> rusqlite::Result<()> {
    // The usual case: this connection wrote the run's last segment, so it knows the next row
    // id and the statement reads no segment (reading the table it inserts into makes SQLite
    // stage the row in a temporary table first).
    if let Some(Slot {
        id,
        next: Some(pos),
    }) = slots.get(&seg.run).copied()
    {
        let added = conn
            .prepare_cached(
                "INSERT INTO segments (pos, run_id, first_seq, last_seq, count, payload)
                 SELECT ?1, ?2, ?3, ?4, ?5, ?6 FROM run_slots WHERE slot = ?7 AND run_id = ?2",
            )?
            .execute(params![
                pos,
                seg.run.as_str(),
                seg.first_seq as i64,
                seg.last_seq as i64,
                seg.count as i64,
                seg.payload,
                id
            ]);
        match added {
            Ok(1) => {
                slots.insert(
                    seg.run.clone(),
                    Slot {
                        id,
                        next: Some(pos + 1),
                    },
                );
                return Ok(());
            }
            // The slot is gone or the row id taken: another process pruned or restored the
            // store. Ask the table.
            Ok(_) => {}
            Err(rusqlite::Error::SqliteFailure(f, _))
                if f.code == rusqlite::ErrorCode::ConstraintViolation => {}
            Err(e) => return Err(e),
        }
        slots.remove(&seg.run);
    }
    let mut ins = conn.prepare_cached(
        "INSERT INTO segments (pos, run_id, first_seq, last_seq, count, payload)
         SELECT COALESCE((SELECT pos FROM segments WHERE pos > ?1 << 32 AND pos <= (?1 << 32) + ?2
                          ORDER BY pos DESC LIMIT 1), ?1 << 32) + 1, ?3, ?4, ?5, ?6, ?7
         FROM run_slots WHERE slot = ?1 AND run_id = ?3",
    )?;
    for _ in 0..2 {
        let slot = slot_of(conn, slots, &seg.run)?;
        let added = ins.execute(params![
            slot,
            SLOT_SPAN,
            seg.run.as_str(),
            seg.first_seq as i64,
            seg.last_seq as i64,
            seg.count as i64,
            seg.payload
        ])?;
        if added == 1 {
            // The row id is the position (an INTEGER PRIMARY KEY).
            let next = conn.last_insert_rowid() + 1;
            slots.insert(
                seg.run.clone(),
                Slot {
                    id: slot,
                    next: Some(next),
                },
            );
            return Ok(());
        }
        slots.remove(&seg.run);
    }
    Err(rusqlite::Error::QueryReturnedNoRows)
}

/// The statements of one `append`, inside its transaction.
fn write_batch(conn: &Connection, slots: &mut Slots, batch: &Batch) -> rusqlite::Result<()> {
    // No `max_seq` row is written here: the newest segment says it (see `high_water`).
    for seg in segments(&batch.events) {
        insert_segment(conn, slots, &seg)?;
    }
    if !batch.workflows.is_empty() {
        let mut wf = conn.prepare_cached(
            "INSERT OR IGNORE INTO workflows (hash, name, source, definition, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for w in &batch.workflows {
            wf.execute(params![
                w.hash,
                w.name,
                w.source,
                w.definition,
                w.created_at as i64
            ])?;
        }
    }
    if !batch.runs.is_empty() {
        let mut run = conn.prepare_cached(
            "INSERT INTO runs (id, workflow, version, state, submitted_at, finished_at, tasks, counts, owner, heartbeat)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
             ON CONFLICT (id) DO UPDATE SET state = excluded.state, finished_at = excluded.finished_at,
                 counts = excluded.counts, owner = excluded.owner, heartbeat = excluded.heartbeat",
        )?;
        for r in &batch.runs {
            run.execute(params![
                r.id.as_str(),
                r.workflow,
                r.version,
                r.state,
                r.submitted_at as i64,
                r.finished_at.map(|v| v as i64),
                r.tasks as i64,
                serde_json::to_string(&r.counts).unwrap_or_else(|_| "{}".into()),
                r.owner,
                r.heartbeat.map(|v| v as i64),
            ])?;
        }
    }
    if !batch.logs.is_empty() {
        let mut log = conn.prepare_cached(
            "INSERT OR REPLACE INTO logs (run_id, task, attempt, path) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for l in &batch.logs {
            log.execute(params![l.run.as_str(), l.task, l.attempt as i64, l.path])?;
        }
    }
    Ok(())
}

/// The error for a first segment that cannot be read.
pub(super) fn corrupt_first(loc: &str, run: &RunId, detail: String) -> StoreError {
    StoreError::Corrupt {
        location: loc.to_string(),
        detail: format!("the first event of run {run} cannot be read: {detail}"),
    }
}

/// Version numbers per workflow name, in the order the store first saw each version.
pub(super) fn version_numbers(mut versions: Vec<(String, String, i64)>) -> HashMap<String, u32> {
    versions
        .sort_by(|a, b| (a.1.as_str(), a.2, a.0.as_str()).cmp(&(b.1.as_str(), b.2, b.0.as_str())));
    let mut out = HashMap::new();
    let mut per_name: HashMap<String, u32> = HashMap::new();
    for (hash, name, _) in versions {
        let n = per_name.entry(name).or_insert(0);
        *n += 1;
        out.insert(hash, *n);
    }
    out
}

impl Backend for Sqlite {
    fn location(&self) -> String {
        format!("sqlite://{}", self.path.display())
    }

    /// A commit is a few WAL page writes (no fsync but at checkpoints): cheaper than the two
    /// thread wake-ups of a trip to the journal thread.
    fn inline_ok(&self) -> bool {
        true
    }

    /// One commit per call, on the engine's thread between a task's end and the next start:
    /// BEGIN and COMMIT are cached statements (no SQL parse), and tables the batch has nothing
    /// for are not touched.
    fn append(&mut self, batch: &Batch) -> Result<()> {
        let conn = &self.conn;
        let slots = &mut self.slots;
        let written = conn
            .prepare_cached("BEGIN")
            .and_then(|mut begin| begin.execute([]))
            .and_then(|_| write_batch(conn, slots, batch))
            .and_then(|()| conn.prepare_cached("COMMIT")?.execute([]));
        match written {
            Ok(_) => Ok(()),
            Err(e) => {
                if !conn.is_autocommit() {
                    let _ = conn.execute_batch("ROLLBACK");
                }
                // A slot given in the rolled-back transaction is not in the file.
                self.slots.clear();
                Err(db_error(&self.location(), e))
            }
        }
    }

    fn max_seq(&mut self) -> Result<u64> {
        let loc = self.location();
        let v = high_water(&self.conn).map_err(|e| db_error(&loc, e))?;
        Ok(v.max(0) as u64)
    }

    fn submission(&mut self, run: &RunId) -> Result<Option<crate::model::Event>> {
        let loc = self.location();
        let row: Option<Vec<u8>> = self
            .conn
            .query_row(
                concat!(
                    "SELECT payload FROM segments",
                    rows_of_run!(),
                    " ORDER BY pos LIMIT 1"
                ),
                params![run.as_str(), SLOT_SPAN],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| db_error(&loc, e))?;
        row.map(|p| first_event(run, &p).map_err(|e| corrupt_first(&loc, run, e)))
            .transpose()
    }

    fn run_events(&mut self, run: &RunId) -> Result<Vec<StoredEvent>> {
        let loc = self.location();
        let err = |e| db_error(&loc, e);
        let mut stmt = self
            .conn
            .prepare_cached(concat!(
                "SELECT pos, payload FROM segments",
                rows_of_run!(),
                " ORDER BY pos"
            ))
            .map_err(err)?;
        let mut rows = stmt.query(params![run.as_str(), SLOT_SPAN]).map_err(err)?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(err)? {
            let pos: i64 = r.get(0).map_err(err)?;
            // A payload that is not text (a damaged row) is reported, not fatal.
            match r.get::<_, Vec<u8>>(1) {
                Ok(p) => decode_segment(run, pos, &p, &mut out),
                Err(e) => out.push(StoredEvent {
                    pos,
                    line: 0,
                    event: Err(e.to_string()),
                }),
            }
        }
        Ok(out)
    }

    fn cut_events(&mut self, run: &RunId, pos: i64, line: usize) -> Result<()> {
        // Its next row id is read from the table again.
        self.slots.remove(run);
        let loc = self.location();
        let err = |e| db_error(&loc, e);
        let tx = self.conn.transaction().map_err(err)?;
        remember_high_water(&tx).map_err(err)?;
        // `pos` is in the run's slot: the rows after it up to the slot's end are the run's.
        tx.execute(
            "DELETE FROM segments WHERE pos > ?1 AND pos <= (?1 & ~?2) + ?2 AND run_id = ?3",
            params![pos, SLOT_SPAN, run.as_str()],
        )
        .map_err(err)?;
        let payload: Option<Vec<u8>> = tx
            .query_row(
                "SELECT payload FROM segments WHERE pos = ?1 AND run_id = ?2",
                params![pos, run.as_str()],
                |r| r.get(0),
            )
            .optional()
            .unwrap_or(None);
        match payload.filter(|_| line > 0) {
            Some(p) => {
                let kept = segment_prefix(&p, line);
                tx.execute(
                    "UPDATE segments SET payload = ?1, count = ?2 WHERE pos = ?3",
                    params![kept, line as i64, pos],
                )
                .map_err(err)?;
            }
            None => {
                tx.execute("DELETE FROM segments WHERE pos = ?1", [pos])
                    .map_err(err)?;
            }
        }
        tx.commit().map_err(err)
    }

    fn runs(&mut self) -> Result<Vec<RunRecord>> {
        let loc = self.location();
        let err = |e| db_error(&loc, e);
        let rows = Self::runs_table(&self.conn).map_err(err)?;
        let mut stmt = self
            .conn
            .prepare("SELECT hash, name, created_at FROM workflows")
            .map_err(err)?;
        let versions = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(err)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(err)?;
        let numbers = version_numbers(versions);
        Ok(rows
            .into_iter()
            .map(|row| RunRecord {
                version_no: numbers.get(&row.version).copied().unwrap_or(1),
                row,
            })
            .collect())
    }

    fn claim(
        &mut self,
        run: &RunId,
        owner: &str,
        previous: Option<&str>,
        now: Millis,
    ) -> Result<bool> {
        let loc = self.location();
        let n = self
            .conn
            .execute(
                "UPDATE runs SET owner = ?1, heartbeat = ?2 WHERE id = ?3 AND owner IS ?4",
                params![owner, now as i64, run.as_str(), previous],
            )
            .map_err(|e| db_error(&loc, e))?;
        Ok(n == 1)
    }

    fn heartbeat(&mut self, owner: &str, now: Millis) -> Result<()> {
        let loc = self.location();
        self.conn
            .execute(
                "UPDATE runs SET heartbeat = ?1 WHERE owner = ?2",
                params![now as i64, owner],
            )
            .map_err(|e| db_error(&loc, e))?;
        Ok(())
    }

    fn release(&mut self, owner: &str) -> Result<()> {
        let loc = self.location();
        self.conn
            .execute("UPDATE runs SET owner = NULL WHERE owner = ?1", [owner])
            .map_err(|e| db_error(&loc, e))?;
        Ok(())
    }

    fn workflow(&mut self, hash: &str) -> Result<Option<WorkflowRecord>> {
        let loc = self.location();
        self.conn
            .query_row(
                "SELECT hash, name, source, definition, created_at FROM workflows WHERE hash = ?1",
                [hash],
                |r| {
                    Ok(WorkflowRecord {
                        hash: r.get(0)?,
                        name: r.get(1)?,
                        source: r.get(2)?,
                        definition: r.get(3)?,
                        created_at: r.get::<_, i64>(4)? as Millis,
                    })
                },
            )
            .optional()
            .map_err(|e| db_error(&loc, e))
    }

    fn log_files(&mut self, run: &RunId) -> Result<Vec<LogRecord>> {
        let loc = self.location();
        let err = |e| db_error(&loc, e);
        let mut stmt = self
            .conn
            .prepare(
                "SELECT task, attempt, path FROM logs WHERE run_id = ?1 ORDER BY task, attempt",
            )
            .map_err(err)?;
        let rows = stmt
            .query_map([run.as_str()], |r| {
                Ok(LogRecord {
                    run: run.clone(),
                    task: r.get(0)?,
                    attempt: r.get::<_, i64>(1)? as u32,
                    path: r.get(2)?,
                })
            })
            .map_err(err)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(err)
    }

    fn delete_runs(&mut self, ids: &[RunId]) -> Result<()> {
        let loc = self.location();
        let err = |e| db_error(&loc, e);
        let tx = self.conn.transaction().map_err(err)?;
        remember_high_water(&tx).map_err(err)?;
        for id in ids {
            tx.execute(
                concat!("DELETE FROM segments", rows_of_run!()),
                params![id.as_str(), SLOT_SPAN],
            )
            .map_err(err)?;
            for table in [
                "DELETE FROM run_slots WHERE run_id = ?1",
                "DELETE FROM logs WHERE run_id = ?1",
                "DELETE FROM runs WHERE id = ?1",
            ] {
                tx.execute(table, [id.as_str()]).map_err(err)?;
            }
        }
        // Workflow versions no run uses any more go too.
        tx.execute(
            "DELETE FROM workflows WHERE hash NOT IN (SELECT version FROM runs)",
            [],
        )
        .map_err(err)?;
        tx.commit().map_err(err)?;
        for id in ids {
            self.slots.remove(id);
        }
        Ok(())
    }

    fn backup_to(&mut self, dest: &Path) -> Result<()> {
        let loc = self.location();
        // VACUUM INTO reads one consistent snapshot while writers go on (WAL).
        self.conn
            .execute("VACUUM INTO ?1", [dest.to_string_lossy()])
            .map_err(|e| db_error(&loc, e))?;
        Ok(())
    }

    fn restore_from(&mut self, src: &Path) -> Result<()> {
        let loc = self.location();
        let from = Sqlite::open_backup(src)?;
        let backup =
            rusqlite::backup::Backup::new(&from, &mut self.conn).map_err(|e| db_error(&loc, e))?;
        backup
            .run_to_completion(256, Duration::from_millis(5), None)
            .map_err(|e| db_error(&loc, e))?;
        drop(backup);
        // A backup of an older layout is upgraded like any file opened.
        self.slots.clear();
        self.prepare()
    }
}

impl Sqlite {
    /// Opens a backup file read-only after checking it is a taskdeck store we can read.
    pub(super) fn open_backup(src: &Path) -> Result<Connection> {
        let loc = format!("sqlite://{}", src.display());
        if !src.is_file() {
            return Err(StoreError::Open(format!(
                "no backup file {}",
                src.display()
            )));
        }
        let conn = Connection::open_with_flags(src, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| open_error(&loc, e))?;
        check_version(&conn, &loc)?;
        // The events are in `segments`, or in `events` in a backup of layout 1.
        let tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('segments', 'events', 'runs', 'workflows', 'logs', 'meta')",
                [],
                |r| r.get(0),
            )
            .map_err(|e| db_error(&loc, e))?;
        if tables != 5 {
            return Err(StoreError::Invalid(format!(
                "{} is not a taskdeck backup (it lacks the journal's tables)",
                src.display()
            )));
        }
        Ok(conn)
    }

    /// Every row of every table of a backup, for loading into another kind of store.
    pub(super) fn dump(conn: &Connection) -> rusqlite::Result<Dump> {
        let mut d = Dump {
            runs: Self::runs_table(conn)?,
            ..Dump::default()
        };
        let table = events_table(conn)?;
        let mut stmt = conn.prepare(&format!(
            "SELECT run_id, first_seq, last_seq, count, payload FROM {table} ORDER BY pos"
        ))?;
        d.events = stmt
            .query_map([], |r| {
                Ok(Segment {
                    run: RunId::from(r.get::<_, String>(0)?.as_str()),
                    first_seq: r.get::<_, i64>(1)? as u64,
                    last_seq: r.get::<_, i64>(2)? as u64,
                    count: r.get::<_, i64>(3)? as u32,
                    payload: r.get(4)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        let mut stmt =
            conn.prepare("SELECT hash, name, source, definition, created_at FROM workflows")?;
        d.workflows = stmt
            .query_map([], |r| {
                Ok(WorkflowRecord {
                    hash: r.get(0)?,
                    name: r.get(1)?,
                    source: r.get(2)?,
                    definition: r.get(3)?,
                    created_at: r.get::<_, i64>(4)? as Millis,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        let mut stmt = conn.prepare("SELECT run_id, task, attempt, path FROM logs")?;
        d.logs = stmt
            .query_map([], |r| {
                Ok(LogRecord {
                    run: RunId::from(r.get::<_, String>(0)?.as_str()),
                    task: r.get(1)?,
                    attempt: r.get::<_, i64>(2)? as u32,
                    path: r.get(3)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        // Either layout: a backup may be older than this taskdeck.
        d.max_seq = conn.query_row(
            &format!(
                "SELECT max(
                     COALESCE((SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'max_seq'), 0),
                     COALESCE((SELECT max(last_seq) FROM {table}), 0))"
            ),
            [],
            |r| r.get(0),
        )?;
        Ok(d)
    }

    /// Writes a dump (from any store) into a fresh SQLite file.
    pub(super) fn write_dump(dest: &Path, d: &Dump) -> Result<()> {
        let mut db = Sqlite::open(dest)?;
        let loc = db.location();
        let err = |e| db_error(&loc, e);
        let mut slots = Slots::new();
        let tx = db.conn.transaction().map_err(err)?;
        {
            for seg in &d.events {
                insert_segment(&tx, &mut slots, seg).map_err(err)?;
            }
            for w in &d.workflows {
                tx.execute(
                    "INSERT INTO workflows (hash, name, source, definition, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![w.hash, w.name, w.source, w.definition, w.created_at as i64],
                )
                .map_err(err)?;
            }
            for r in &d.runs {
                tx.execute(
                    "INSERT INTO runs (id, workflow, version, state, submitted_at, finished_at, tasks, counts, owner, heartbeat)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, NULL, NULL)",
                    params![
                        r.id.as_str(),
                        r.workflow,
                        r.version,
                        r.state,
                        r.submitted_at as i64,
                        r.finished_at.map(|v| v as i64),
                        r.tasks as i64,
                        serde_json::to_string(&r.counts).unwrap_or_else(|_| "{}".into()),
                    ],
                )
                .map_err(err)?;
            }
            for l in &d.logs {
                tx.execute(
                    "INSERT INTO logs (run_id, task, attempt, path) VALUES (?1, ?2, ?3, ?4)",
                    params![l.run.as_str(), l.task, l.attempt as i64, l.path],
                )
                .map_err(err)?;
            }
            tx.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('max_seq', ?1)",
                [d.max_seq.to_string()],
            )
            .map_err(err)?;
        }
        tx.commit().map_err(err)
    }
}

/// Where a file keeps its events: `segments`, or `events` in a file of layout 1.
fn events_table(conn: &Connection) -> rusqlite::Result<&'static str> {
    let new: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'segments'",
        [],
        |r| r.get(0),
    )?;
    Ok(if new > 0 { "segments" } else { "events" })
}

/// The whole content of a store, database-neutral.
#[derive(Default)]
pub(super) struct Dump {
    pub events: Vec<Segment>,
    pub runs: Vec<RunRow>,
    pub workflows: Vec<WorkflowRecord>,
    pub logs: Vec<LogRecord>,
    pub max_seq: i64,
}
