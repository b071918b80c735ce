//! The durable journal: every event of every run, the workflow versions runs used, and an index
//! of task log files. One `Backend` trait, two databases: SQLite (the embedded default, a file in
//! the platform data dir) and PostgreSQL (for teams sharing one store).
//!
//! Events are the source of truth: a run is rebuilt by folding its events (`engine::recover`).
//! The `runs` table is a projection kept in the same transaction as the events it summarises, so
//! `taskdeck runs` never has to fold anything.

mod journal;
mod postgres;
mod segment;
mod sqlite;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::model::{Event, Millis, RunId};

pub use journal::Journal;
pub use segment::{Segment, decode_segment, first_event, segment_prefix, segments};

/// The PostgreSQL schema this build writes. A store with a higher number was written by a newer
/// taskdeck. (SQLite files have a layout number of their own: `sqlite::SCHEMA_VERSION`.)
pub const SCHEMA_VERSION: i64 = 1;

/// A store that has not written for this long is presumed dead and its unfinished runs may be
/// resumed by another process (same-host owners are checked at once by pid).
pub const LEASE_MILLIS: Millis = 15_000;
/// How often a live engine renews its lease on the runs it executes.
pub const HEARTBEAT_MILLIS: Millis = 5_000;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    Open(String),
    #[error(
        "the store {location} was written by a newer taskdeck (schema version {found}; this build knows {known}): upgrade taskdeck to use it"
    )]
    TooNew {
        location: String,
        found: i64,
        known: i64,
    },
    #[error(
        "the disk holding the store {0} is full: free some space; taskdeck keeps the unsaved events in memory and retries"
    )]
    Full(String),
    #[error(
        "the store {0} is read-only: check the file's permissions or pass another with --store"
    )]
    ReadOnly(String),
    #[error(
        "the store {0} stayed locked by another process for too long; is a backup or another tool holding it?"
    )]
    Busy(String),
    #[error("the store {location} is damaged: {detail}")]
    Corrupt { location: String, detail: String },
    #[error("store {location}: {detail}")]
    Db { location: String, detail: String },
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Where the journal lives, as given to `--store`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    Sqlite(PathBuf),
    Postgres(String),
    /// No journal: runs live only as long as the process (benchmarks, throwaway experiments).
    Memory,
}

impl StoreUrl {
    pub fn parse(s: &str) -> Result<StoreUrl> {
        if let Some(path) = s.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(StoreError::Invalid(
                    "`sqlite://` needs a path, e.g. sqlite:///var/lib/taskdeck/runs.db or sqlite://runs.db".into(),
                ));
            }
            return Ok(StoreUrl::Sqlite(PathBuf::from(path)));
        }
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            return Ok(StoreUrl::Postgres(s.to_string()));
        }
        if s == "memory" {
            return Ok(StoreUrl::Memory);
        }
        Err(StoreError::Invalid(format!(
            "unknown store `{s}`: use sqlite://PATH, postgres://USER@HOST/DB or memory"
        )))
    }

    /// The default: `taskdeck.db` in the platform data dir.
    pub fn default_sqlite() -> StoreUrl {
        StoreUrl::Sqlite(crate::paths::data_dir().join("taskdeck.db"))
    }

    /// `--store` if given, else the config file's `[store] url`, else the default file.
    pub fn from_arg(arg: Option<&str>, config: &crate::config::Config) -> Result<StoreUrl> {
        match arg.or(config.store.url.as_deref()) {
            Some(s) => StoreUrl::parse(s),
            None => Ok(StoreUrl::default_sqlite()),
        }
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreUrl::Sqlite(p) => write!(f, "sqlite://{}", p.display()),
            StoreUrl::Postgres(url) => f.write_str(&redact_url(url)),
            StoreUrl::Memory => f.write_str("memory"),
        }
    }
}

/// A postgres URL without its password, for messages.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.split_once('@') {
        Some((user, host)) => {
            let user = user.split(':').next().unwrap_or(user);
            format!("{scheme}://{user}@{host}")
        }
        None => url.to_string(),
    }
}

/// Opens (and creates or migrates) the store. Must not be called inside an async runtime (the
/// PostgreSQL client runs its own); engines use the result through a `Journal`.
pub fn open(url: &StoreUrl) -> Result<Box<dyn Backend>> {
    match url {
        StoreUrl::Sqlite(path) => Ok(Box::new(sqlite::Sqlite::open(path)?)),
        StoreUrl::Postgres(conn) => Ok(Box::new(postgres::Postgres::open(conn)?)),
        StoreUrl::Memory => Err(StoreError::Invalid(
            "this needs a store, and `memory` keeps nothing: pass --store sqlite://PATH or postgres://...".into(),
        )),
    }
}

/// Deletes finished runs beyond `keep_runs` (newest kept) or older than `keep_days`, with their
/// log files (those the journal indexes, and the run's folder under `log_dir`). Unfinished runs
/// are never pruned. Returns the deleted ids.
pub fn prune(
    b: &mut dyn Backend,
    keep_runs: usize,
    keep_days: u64,
    now: Millis,
    log_dir: Option<&Path>,
) -> Result<Vec<RunId>> {
    let runs = b.runs()?;
    let cutoff = now.saturating_sub(keep_days.saturating_mul(86_400_000));
    let mut kept = 0;
    let mut doomed = Vec::new();
    for r in &runs {
        if !is_terminal_state(&r.row.state) {
            continue;
        }
        let old = r.row.finished_at.unwrap_or(r.row.submitted_at) < cutoff;
        if old || kept >= keep_runs {
            doomed.push(r.row.id.clone());
        } else {
            kept += 1;
        }
    }
    if doomed.is_empty() {
        return Ok(doomed);
    }
    let mut files = Vec::new();
    for id in &doomed {
        files.extend(b.log_files(id)?);
    }
    b.delete_runs(&doomed)?;
    if let Some(dir) = log_dir {
        for id in &doomed {
            let _ = std::fs::remove_dir_all(crate::logs::run_log_dir(dir, id));
        }
    }
    for f in files {
        let path = Path::new(&f.path);
        let _ = std::fs::remove_file(path);
        if let Some(dir) = path.parent() {
            // Only goes once empty (other attempts' files, the engine log).
            let _ = std::fs::remove_dir(dir);
        }
    }
    Ok(doomed)
}

/// One row of the `runs` projection, as the engine writes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRow {
    pub id: RunId,
    pub workflow: String,
    /// Content hash of the workflow version the run uses.
    pub version: String,
    pub state: String,
    pub submitted_at: Millis,
    pub finished_at: Option<Millis>,
    pub tasks: u32,
    /// Tasks per state (only states with at least one task).
    pub counts: BTreeMap<String, u32>,
    /// The engine executing the run (`host:pid:start`), `None` once it let go.
    pub owner: Option<String>,
    pub heartbeat: Option<Millis>,
}

/// A run as listed from the store.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRecord {
    #[serde(flatten)]
    pub row: RunRow,
    /// 1 for the first version of this workflow name the store saw, 2 for the next, ...
    pub version_no: u32,
}

impl RunRecord {
    /// Unfinished and nobody is executing it any more: `resume` can take it over.
    pub fn is_orphaned(&self, now: Millis) -> bool {
        !is_terminal_state(&self.row.state)
            && !owner_alive(self.row.owner.as_deref(), self.row.heartbeat, now)
    }

    /// The state as people should read it: an unfinished run nobody executes was interrupted.
    pub fn display_state(&self, now: Millis) -> &str {
        if self.is_orphaned(now) {
            "interrupted"
        } else {
            &self.row.state
        }
    }
}

pub fn is_terminal_state(s: &str) -> bool {
    matches!(s, "succeeded" | "failed" | "cancelled")
}

/// One workflow version: the exact text (when it came from a file) and its parsed definition.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkflowRecord {
    pub hash: String,
    pub name: String,
    pub source: Option<String>,
    /// The workflow as JSON (what the engine ran).
    pub definition: String,
    pub created_at: Millis,
}

/// Where one task attempt's log file is.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogRecord {
    pub run: RunId,
    pub task: String,
    pub attempt: u32,
    pub path: String,
}

/// What one commit writes: events, the runs they touched, new workflow versions, log files.
#[derive(Debug, Default, Clone)]
pub struct Batch {
    pub events: Vec<Arc<Event>>,
    pub runs: Vec<RunRow>,
    pub workflows: Vec<WorkflowRecord>,
    pub logs: Vec<LogRecord>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && self.runs.is_empty() && self.logs.is_empty()
    }
}

/// An event as read back: where it is (segment row, line in it) and the decoded event, or why
/// it cannot be decoded.
pub struct StoredEvent {
    pub pos: i64,
    pub line: usize,
    pub event: Result<Event, String>,
}

/// The journal operations both databases implement. Calls block: the engine runs them on the
/// journal's own thread (`Journal`), the CLI calls them directly.
pub trait Backend: Send {
    /// `sqlite:///path` or the redacted postgres URL.
    fn location(&self) -> String;
    /// Whether the engine may commit on its own thread (`Journal::call_inline`): true for a
    /// store whose calls are short local work, false for a network client (PostgreSQL's runs
    /// its own async runtime and must stay off the engine's).
    fn inline_ok(&self) -> bool {
        false
    }
    /// Writes the batch in one transaction.
    fn append(&mut self, batch: &Batch) -> Result<()>;
    /// The highest event sequence number any engine wrote (new engines continue above it).
    fn max_seq(&mut self) -> Result<u64>;
    /// The first event of a run: its submission, with the exact workflow it ran.
    fn submission(&mut self, run: &RunId) -> Result<Option<Event>>;
    /// All events of a run in the order they were written.
    fn run_events(&mut self, run: &RunId) -> Result<Vec<StoredEvent>>;
    /// Cuts a run's events from line `line` of segment `pos` on (a damaged tail).
    fn cut_events(&mut self, run: &RunId, pos: i64, line: usize) -> Result<()>;
    /// Every run, newest first.
    fn runs(&mut self) -> Result<Vec<RunRecord>>;
    /// Takes over an unfinished run for `owner` if `previous` still holds it (compare-and-set).
    fn claim(
        &mut self,
        run: &RunId,
        owner: &str,
        previous: Option<&str>,
        now: Millis,
    ) -> Result<bool>;
    /// Renews `owner`'s lease on the runs it executes.
    fn heartbeat(&mut self, owner: &str, now: Millis) -> Result<()>;
    /// Lets go of every run `owner` holds.
    fn release(&mut self, owner: &str) -> Result<()>;
    fn workflow(&mut self, hash: &str) -> Result<Option<WorkflowRecord>>;
    fn log_files(&mut self, run: &RunId) -> Result<Vec<LogRecord>>;
    /// Deletes runs with their events and log index (the caller removes log files).
    fn delete_runs(&mut self, ids: &[RunId]) -> Result<()>;
    /// Writes a consistent copy of the whole store, as a SQLite file, while runs go on.
    fn backup_to(&mut self, dest: &Path) -> Result<()>;
    /// Replaces the store's whole content with a backup made by `backup_to`.
    fn restore_from(&mut self, src: &Path) -> Result<()>;
}

/// Content hash of a workflow version: of its file text when there is one, else of its JSON.
pub fn workflow_hash(source: Option<&str>, definition: &str) -> String {
    let mut h = Sha256::new();
    h.update(source.unwrap_or(definition).as_bytes());
    let digest = h.finalize();
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Finds a run by exact id or unique prefix.
pub fn resolve_run(runs: &[RunRecord], wanted: &str) -> Result<RunRecord> {
    if let Some(r) = runs.iter().find(|r| r.row.id.as_str() == wanted) {
        return Ok(r.clone());
    }
    let matches: Vec<&RunRecord> = runs
        .iter()
        .filter(|r| r.row.id.as_str().starts_with(wanted))
        .collect();
    match matches.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(StoreError::Invalid(format!(
            "no run `{wanted}` in the store; `taskdeck runs` lists them"
        ))),
        many => Err(StoreError::Invalid(format!(
            "`{wanted}` matches {} runs ({}, ...): give more of the id",
            many.len(),
            many.iter()
                .take(3)
                .map(|r| r.row.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Claims an unfinished run for this process and reads its events for recovery. A damaged tail
/// (an event that cannot be decoded) is cut, with a warning, so the run goes on from the last
/// good event.
pub fn take_over(b: &mut dyn Backend, run: &RunId) -> Result<(Vec<Event>, Vec<String>)> {
    let now = crate::model::now_millis();
    let runs = b.runs()?;
    let rec = resolve_run(&runs, run.as_str())?;
    let id = rec.row.id.clone();
    if is_terminal_state(&rec.row.state) {
        return Err(StoreError::Invalid(format!(
            "run {id} has already {}; `taskdeck rerun {id}` starts it again",
            rec.row.state
        )));
    }
    let me = owner_id();
    if rec.row.owner.as_deref() != Some(me.as_str())
        && owner_alive(rec.row.owner.as_deref(), rec.row.heartbeat, now)
    {
        return Err(StoreError::Invalid(format!(
            "run {id} is still being executed by {} (its lease was renewed {}s ago); stop that process first",
            rec.row.owner.as_deref().unwrap_or("another process"),
            now.saturating_sub(rec.row.heartbeat.unwrap_or(now)) / 1000
        )));
    }
    if !b.claim(&id, &me, rec.row.owner.as_deref(), now)? {
        return Err(StoreError::Invalid(format!(
            "another process took run {id} over just now"
        )));
    }
    let stored = b.run_events(&id)?;
    let mut events = Vec::with_capacity(stored.len());
    let mut warnings = Vec::new();
    for (i, s) in stored.iter().enumerate() {
        match &s.event {
            Ok(ev) => events.push(ev.clone()),
            Err(why) => {
                b.cut_events(&id, s.pos, s.line)?;
                warnings.push(format!(
                    "the journal of run {id} is damaged at event {} of {} ({why}); cut {} events from there and resumed from the last good one",
                    i + 1,
                    stored.len(),
                    stored.len() - i
                ));
                break;
            }
        }
    }
    Ok((events, warnings))
}

/// This process's identity as a run owner: `host:pid:start_millis`.
pub fn owner_id() -> String {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        format!(
            "{}:{}:{}",
            hostname(),
            std::process::id(),
            crate::model::now_millis()
        )
    })
    .clone()
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Whether the owner of a run still executes it: a process on this host that is alive, or a
/// remote one whose lease is fresh.
pub fn owner_alive(owner: Option<&str>, heartbeat: Option<Millis>, now: Millis) -> bool {
    let Some(owner) = owner else {
        return false;
    };
    if owner == owner_id() {
        return true;
    }
    let mut parts = owner.rsplitn(3, ':');
    let (_start, pid, host) = (parts.next(), parts.next(), parts.next());
    if host == Some(hostname().as_str())
        && let Some(pid) = pid.and_then(|p| p.parse::<i32>().ok())
    {
        return pid_alive(pid);
    }
    heartbeat.is_some_and(|h| now.saturating_sub(h) < LEASE_MILLIS)
}

fn pid_alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_with_clear_errors() {
        assert_eq!(
            StoreUrl::parse("sqlite:///tmp/x.db").unwrap(),
            StoreUrl::Sqlite("/tmp/x.db".into())
        );
        assert_eq!(
            StoreUrl::parse("sqlite://rel.db").unwrap(),
            StoreUrl::Sqlite("rel.db".into())
        );
        assert!(matches!(
            StoreUrl::parse("postgres://u@h/db").unwrap(),
            StoreUrl::Postgres(_)
        ));
        let e = StoreUrl::parse("mysql://x").unwrap_err().to_string();
        assert!(e.contains("sqlite://PATH"), "{e}");
        assert!(StoreUrl::parse("sqlite://").is_err());
    }

    #[test]
    fn postgres_passwords_never_shown() {
        let u = StoreUrl::Postgres("postgres://bob:hunter2@db.example/prod".into());
        assert_eq!(u.to_string(), "postgres://bob@db.example/prod");
    }

    #[test]
    fn hash_follows_the_text() {
        let a = workflow_hash(Some("name = 'a'"), "{}");
        let b = workflow_hash(Some("name = 'b'"), "{}");
        assert_ne!(a, b);
        assert_eq!(a, workflow_hash(Some("name = 'a'"), "{\"other\":1}"));
        assert_eq!(a.len(), 16);
    }

    #[test]
    fn own_and_dead_owners() {
        let now = crate::model::now_millis();
        assert!(owner_alive(Some(&owner_id()), None, now));
        assert!(!owner_alive(None, Some(now), now));
        // A pid that cannot exist on this host.
        let dead = format!("{}:{}:1", hostname(), i32::MAX);
        assert!(!owner_alive(Some(&dead), Some(now), now));
        // Another host: the lease decides.
        assert!(owner_alive(Some("elsewhere:1:1"), Some(now), now));
        assert!(!owner_alive(
            Some("elsewhere:1:1"),
            Some(now - LEASE_MILLIS - 1),
            now
        ));
    }
}
