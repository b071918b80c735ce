//! The journal on PostgreSQL, for teams that share one store. Same tables as SQLite; events go in
//! with one `UNNEST` insert per batch so a commit is one round trip. Run ownership is a
//! compare-and-set on `runs.owner`; workers claiming tasks (a later step) will use
//! `SELECT ... FOR UPDATE SKIP LOCKED` on the same kind of lease columns.

use std::path::Path;

use postgres::{Client, IsolationLevel, NoTls};

use super::sqlite::corrupt_first;
use super::sqlite::{Dump, Sqlite, version_numbers};
use super::{
    Backend, Batch, LogRecord, Result, RunRecord, RunRow, SCHEMA_VERSION, Segment, StoreError,
    StoredEvent, WorkflowRecord, decode_segment, first_event, redact_url, segment_prefix, segments,
};
use crate::model::{Millis, RunId};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    pos BIGSERIAL PRIMARY KEY,
    run_id TEXT NOT NULL,
    first_seq BIGINT NOT NULL,
    last_seq BIGINT NOT NULL,
    count BIGINT NOT NULL,
    payload BYTEA NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_run ON events (run_id, pos);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    workflow TEXT NOT NULL,
    version TEXT NOT NULL,
    state TEXT NOT NULL,
    submitted_at BIGINT NOT NULL,
    finished_at BIGINT,
    tasks BIGINT NOT NULL,
    counts TEXT NOT NULL,
    owner TEXT,
    heartbeat BIGINT
);
CREATE INDEX IF NOT EXISTS runs_by_owner ON runs (owner);
CREATE TABLE IF NOT EXISTS workflows (
    hash TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    source TEXT,
    definition TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS logs (
    run_id TEXT NOT NULL,
    task TEXT NOT NULL,
    attempt BIGINT NOT NULL,
    path TEXT NOT NULL,
    PRIMARY KEY (run_id, task, attempt)
);
";

pub struct Postgres {
    client: Client,
    location: String,
}

impl Postgres {
    pub fn open(url: &str) -> Result<Postgres> {
        let location = redact_url(url);
        let client = Client::connect(url, NoTls).map_err(|e| {
            StoreError::Open(format!(
                "cannot connect to the store {location}: {}",
                describe(&e)
            ))
        })?;
        let mut db = Postgres { client, location };
        db.prepare()?;
        Ok(db)
    }

    fn prepare(&mut self) -> Result<()> {
        let loc = self.location.clone();
        // Two engines starting at once must not both create the tables.
        let mut tx = self.client.transaction().map_err(|e| db_error(&loc, e))?;
        tx.execute("SELECT pg_advisory_xact_lock(7070707070)", &[])
            .map_err(|e| db_error(&loc, e))?;
        let exists: bool = tx
            .query_one("SELECT to_regclass('meta') IS NOT NULL", &[])
            .map_err(|e| db_error(&loc, e))?
            .get(0);
        if exists {
            let found: Option<String> = tx
                .query_opt("SELECT value FROM meta WHERE key = 'schema_version'", &[])
                .map_err(|e| db_error(&loc, e))?
                .map(|r| r.get(0));
            let found: i64 = found.and_then(|v| v.parse().ok()).unwrap_or(SCHEMA_VERSION);
            if found > SCHEMA_VERSION {
                return Err(StoreError::TooNew {
                    location: loc,
                    found,
                    known: SCHEMA_VERSION,
                });
            }
        }
        tx.batch_execute(SCHEMA).map_err(|e| db_error(&loc, e))?;
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('schema_version', $1) ON CONFLICT (key) DO NOTHING",
            &[&SCHEMA_VERSION.to_string()],
        )
        .map_err(|e| db_error(&loc, e))?;
        tx.commit().map_err(|e| db_error(&loc, e))
    }

    fn runs_table(
        client: &mut impl postgres::GenericClient,
    ) -> std::result::Result<Vec<RunRow>, postgres::Error> {
        let rows = client.query(
            "SELECT id, workflow, version, state, submitted_at, finished_at, tasks, counts, owner, heartbeat
             FROM runs ORDER BY submitted_at DESC, id DESC",
            &[],
        )?;
        Ok(rows
            .iter()
            .map(|r| RunRow {
                id: RunId::from(r.get::<_, String>(0).as_str()),
                workflow: r.get(1),
                version: r.get(2),
                state: r.get(3),
                submitted_at: r.get::<_, i64>(4) as Millis,
                finished_at: r.get::<_, Option<i64>>(5).map(|v| v as Millis),
                tasks: r.get::<_, i64>(6) as u32,
                counts: serde_json::from_str(&r.get::<_, String>(7)).unwrap_or_default(),
                owner: r.get(8),
                heartbeat: r.get::<_, Option<i64>>(9).map(|v| v as Millis),
            })
            .collect())
    }

    fn dump(&mut self) -> Result<Dump> {
        let loc = self.location.clone();
        let err = |e| db_error(&loc, e);
        // One snapshot for every table, while engines keep writing.
        let mut tx = self
            .client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .map_err(err)?;
        let mut d = Dump {
            runs: Self::runs_table(&mut tx).map_err(err)?,
            ..Dump::default()
        };
        d.events = tx
            .query(
                "SELECT run_id, first_seq, last_seq, count, payload FROM events ORDER BY pos",
                &[],
            )
            .map_err(err)?
            .iter()
            .map(|r| Segment {
                run: RunId::from(r.get::<_, String>(0).as_str()),
                first_seq: r.get::<_, i64>(1) as u64,
                last_seq: r.get::<_, i64>(2) as u64,
                count: r.get::<_, i64>(3) as u32,
                payload: r.get(4),
            })
            .collect();
        d.workflows = tx
            .query(
                "SELECT hash, name, source, definition, created_at FROM workflows",
                &[],
            )
            .map_err(err)?
            .iter()
            .map(|r| WorkflowRecord {
                hash: r.get(0),
                name: r.get(1),
                source: r.get(2),
                definition: r.get(3),
                created_at: r.get::<_, i64>(4) as Millis,
            })
            .collect();
        d.logs = tx
            .query("SELECT run_id, task, attempt, path FROM logs", &[])
            .map_err(err)?
            .iter()
            .map(|r| LogRecord {
                run: RunId::from(r.get::<_, String>(0).as_str()),
                task: r.get(1),
                attempt: r.get::<_, i64>(2) as u32,
                path: r.get(3),
            })
            .collect();
        d.max_seq = tx
            .query_opt(
                "SELECT CAST(value AS BIGINT) FROM meta WHERE key = 'max_seq'",
                &[],
            )
            .map_err(err)?
            .map(|r| r.get(0))
            .unwrap_or(0);
        tx.commit().map_err(err)?;
        Ok(d)
    }
}

/// All segments in one statement: one round trip per commit.
fn insert_segments(
    tx: &mut postgres::Transaction<'_>,
    segs: &[Segment],
) -> std::result::Result<(), postgres::Error> {
    let run: Vec<&str> = segs.iter().map(|s| s.run.as_str()).collect();
    let first: Vec<i64> = segs.iter().map(|s| s.first_seq as i64).collect();
    let last: Vec<i64> = segs.iter().map(|s| s.last_seq as i64).collect();
    let count: Vec<i64> = segs.iter().map(|s| s.count as i64).collect();
    let payload: Vec<&[u8]> = segs.iter().map(|s| s.payload.as_slice()).collect();
    tx.execute(
        "INSERT INTO events (run_id, first_seq, last_seq, count, payload)
         SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bytea[])",
        &[&run, &first, &last, &count, &payload],
    )?;
    Ok(())
}

fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => db.message().to_string(),
        None => {
            let s = e.to_string();
            match std::error::Error::source(e) {
                Some(src) => format!("{s}: {src}"),
                None => s,
            }
        }
    }
}

fn db_error(loc: &str, e: postgres::Error) -> StoreError {
    use postgres::error::SqlState;
    if let Some(code) = e.code() {
        if *code == SqlState::DISK_FULL {
            return StoreError::Full(loc.to_string());
        }
        if *code == SqlState::READ_ONLY_SQL_TRANSACTION {
            return StoreError::ReadOnly(loc.to_string());
        }
        if *code == SqlState::LOCK_NOT_AVAILABLE {
            return StoreError::Busy(loc.to_string());
        }
    }
    StoreError::Db {
        location: loc.to_string(),
        detail: describe(&e),
    }
}

impl Backend for Postgres {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn append(&mut self, batch: &Batch) -> Result<()> {
        let loc = self.location.clone();
        let err = |e| db_error(&loc, e);
        let mut tx = self.client.transaction().map_err(err)?;
        let segs = segments(&batch.events);
        if !segs.is_empty() {
            insert_segments(&mut tx, &segs).map_err(err)?;
            let max = segs.iter().map(|s| s.last_seq as i64).max().unwrap_or(0);
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('max_seq', $1)
                 ON CONFLICT (key) DO UPDATE SET value = GREATEST(CAST(meta.value AS BIGINT), CAST(excluded.value AS BIGINT))::text",
                &[&max.to_string()],
            )
            .map_err(err)?;
        }
        for w in &batch.workflows {
            tx.execute(
                "INSERT INTO workflows (hash, name, source, definition, created_at) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (hash) DO NOTHING",
                &[&w.hash, &w.name, &w.source, &w.definition, &(w.created_at as i64)],
            )
            .map_err(err)?;
        }
        for r in &batch.runs {
            tx.execute(
                "INSERT INTO runs (id, workflow, version, state, submitted_at, finished_at, tasks, counts, owner, heartbeat)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                 ON CONFLICT (id) DO UPDATE SET state = excluded.state, finished_at = excluded.finished_at,
                     counts = excluded.counts, owner = excluded.owner, heartbeat = excluded.heartbeat",
                &[
                    &r.id.as_str(),
                    &r.workflow,
                    &r.version,
                    &r.state,
                    &(r.submitted_at as i64),
                    &r.finished_at.map(|v| v as i64),
                    &(r.tasks as i64),
                    &serde_json::to_string(&r.counts).unwrap_or_else(|_| "{}".into()),
                    &r.owner,
                    &r.heartbeat.map(|v| v as i64),
                ],
            )
            .map_err(err)?;
        }
        for l in &batch.logs {
            tx.execute(
                "INSERT INTO logs (run_id, task, attempt, path) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (run_id, task, attempt) DO UPDATE SET path = excluded.path",
                &[&l.run.as_str(), &l.task, &(l.attempt as i64), &l.path],
            )
            .map_err(err)?;
        }
        tx.commit().map_err(err)
    }

    fn max_seq(&mut self) -> Result<u64> {
        let loc = self.location.clone();
        let v: Option<i64> = self
            .client
            .query_opt(
                "SELECT CAST(value AS BIGINT) FROM meta WHERE key = 'max_seq'",
                &[],
            )
            .map_err(|e| db_error(&loc, e))?
            .map(|r| r.get(0));
        Ok(v.unwrap_or(0).max(0) as u64)
    }

    fn submission(&mut self, run: &RunId) -> Result<Option<crate::model::Event>> {
        let loc = self.location.clone();
        let row = self
            .client
            .query_opt(
                "SELECT payload FROM events WHERE run_id = $1 ORDER BY pos LIMIT 1",
                &[&run.as_str()],
            )
            .map_err(|e| db_error(&loc, e))?;
        row.map(|r| first_event(run, r.get::<_, &[u8]>(0)).map_err(|e| corrupt_first(&loc, run, e)))
            .transpose()
    }

    fn run_events(&mut self, run: &RunId) -> Result<Vec<StoredEvent>> {
        let loc = self.location.clone();
        let rows = self
            .client
            .query(
                "SELECT pos, payload FROM events WHERE run_id = $1 ORDER BY pos",
                &[&run.as_str()],
            )
            .map_err(|e| db_error(&loc, e))?;
        let mut out = Vec::new();
        for r in &rows {
            decode_segment(run, r.get(0), r.get::<_, &[u8]>(1), &mut out);
        }
        Ok(out)
    }

    fn cut_events(&mut self, run: &RunId, pos: i64, line: usize) -> Result<()> {
        let loc = self.location.clone();
        let err = |e| db_error(&loc, e);
        let mut tx = self.client.transaction().map_err(err)?;
        tx.execute(
            "DELETE FROM events WHERE run_id = $1 AND pos > $2",
            &[&run.as_str(), &pos],
        )
        .map_err(err)?;
        let payload: Option<Vec<u8>> = tx
            .query_opt("SELECT payload FROM events WHERE pos = $1", &[&pos])
            .map_err(err)?
            .map(|r| r.get(0));
        match payload.filter(|_| line > 0) {
            Some(p) => {
                tx.execute(
                    "UPDATE events SET payload = $1, count = $2 WHERE pos = $3",
                    &[&segment_prefix(&p, line), &(line as i64), &pos],
                )
                .map_err(err)?;
            }
            None => {
                tx.execute("DELETE FROM events WHERE pos = $1", &[&pos])
                    .map_err(err)?;
            }
        }
        tx.commit().map_err(err)
    }

    fn runs(&mut self) -> Result<Vec<RunRecord>> {
        let loc = self.location.clone();
        let err = |e| db_error(&loc, e);
        let rows = Self::runs_table(&mut self.client).map_err(err)?;
        let versions = self
            .client
            .query("SELECT hash, name, created_at FROM workflows", &[])
            .map_err(err)?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
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
        let loc = self.location.clone();
        let n = self
            .client
            .execute(
                "UPDATE runs SET owner = $1, heartbeat = $2 WHERE id = $3 AND owner IS NOT DISTINCT FROM $4",
                &[&owner, &(now as i64), &run.as_str(), &previous],
            )
            .map_err(|e| db_error(&loc, e))?;
        Ok(n == 1)
    }

    fn heartbeat(&mut self, owner: &str, now: Millis) -> Result<()> {
        let loc = self.location.clone();
        self.client
            .execute(
                "UPDATE runs SET heartbeat = $1 WHERE owner = $2",
                &[&(now as i64), &owner],
            )
            .map_err(|e| db_error(&loc, e))?;
        Ok(())
    }

    fn release(&mut self, owner: &str) -> Result<()> {
        let loc = self.location.clone();
        self.client
            .execute("UPDATE runs SET owner = NULL WHERE owner = $1", &[&owner])
            .map_err(|e| db_error(&loc, e))?;
        Ok(())
    }

    fn workflow(&mut self, hash: &str) -> Result<Option<WorkflowRecord>> {
        let loc = self.location.clone();
        Ok(self
            .client
            .query_opt(
                "SELECT hash, name, source, definition, created_at FROM workflows WHERE hash = $1",
                &[&hash],
            )
            .map_err(|e| db_error(&loc, e))?
            .map(|r| WorkflowRecord {
                hash: r.get(0),
                name: r.get(1),
                source: r.get(2),
                definition: r.get(3),
                created_at: r.get::<_, i64>(4) as Millis,
            }))
    }

    fn log_files(&mut self, run: &RunId) -> Result<Vec<LogRecord>> {
        let loc = self.location.clone();
        Ok(self
            .client
            .query(
                "SELECT task, attempt, path FROM logs WHERE run_id = $1 ORDER BY task, attempt",
                &[&run.as_str()],
            )
            .map_err(|e| db_error(&loc, e))?
            .iter()
            .map(|r| LogRecord {
                run: run.clone(),
                task: r.get(0),
                attempt: r.get::<_, i64>(1) as u32,
                path: r.get(2),
            })
            .collect())
    }

    fn delete_runs(&mut self, ids: &[RunId]) -> Result<()> {
        let loc = self.location.clone();
        let err = |e| db_error(&loc, e);
        let ids: Vec<&str> = ids.iter().map(|r| r.as_str()).collect();
        let mut tx = self.client.transaction().map_err(err)?;
        tx.execute("DELETE FROM events WHERE run_id = ANY($1)", &[&ids])
            .map_err(err)?;
        tx.execute("DELETE FROM logs WHERE run_id = ANY($1)", &[&ids])
            .map_err(err)?;
        tx.execute("DELETE FROM runs WHERE id = ANY($1)", &[&ids])
            .map_err(err)?;
        tx.execute(
            "DELETE FROM workflows WHERE hash NOT IN (SELECT version FROM runs)",
            &[],
        )
        .map_err(err)?;
        tx.commit().map_err(err)
    }

    fn backup_to(&mut self, dest: &Path) -> Result<()> {
        let dump = self.dump()?;
        Sqlite::write_dump(dest, &dump)
    }

    fn restore_from(&mut self, src: &Path) -> Result<()> {
        let loc = self.location.clone();
        let err = |e| db_error(&loc, e);
        let from = Sqlite::open_backup(src)?;
        let d = Sqlite::dump(&from).map_err(|e| {
            StoreError::Invalid(format!("cannot read the backup {}: {e}", src.display()))
        })?;
        let mut tx = self.client.transaction().map_err(err)?;
        tx.batch_execute("TRUNCATE events, runs, workflows, logs")
            .map_err(err)?;
        insert_segments(&mut tx, &d.events).map_err(err)?;
        for w in &d.workflows {
            tx.execute(
                "INSERT INTO workflows (hash, name, source, definition, created_at) VALUES ($1, $2, $3, $4, $5)",
                &[&w.hash, &w.name, &w.source, &w.definition, &(w.created_at as i64)],
            )
            .map_err(err)?;
        }
        for r in &d.runs {
            tx.execute(
                "INSERT INTO runs (id, workflow, version, state, submitted_at, finished_at, tasks, counts, owner, heartbeat)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, NULL)",
                &[
                    &r.id.as_str(),
                    &r.workflow,
                    &r.version,
                    &r.state,
                    &(r.submitted_at as i64),
                    &r.finished_at.map(|v| v as i64),
                    &(r.tasks as i64),
                    &serde_json::to_string(&r.counts).unwrap_or_else(|_| "{}".into()),
                ],
            )
            .map_err(err)?;
        }
        for l in &d.logs {
            tx.execute(
                "INSERT INTO logs (run_id, task, attempt, path) VALUES ($1, $2, $3, $4)",
                &[&l.run.as_str(), &l.task, &(l.attempt as i64), &l.path],
            )
            .map_err(err)?;
        }
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('max_seq', $1)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            &[&d.max_seq.to_string()],
        )
        .map_err(err)?;
        tx.commit().map_err(err)
    }
}
