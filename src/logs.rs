//! Task logs: the last lines of each attempt in memory (bounded), every line in a file per attempt
//! (capped), and a live feed for consoles. The engine's own log per run is kept the same way.

mod file;
mod ring;

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::broadcast;

use crate::exec::{AttemptKey, Purpose};
use crate::model::{LogLine, LogStream, RunId, now_millis};
use file::LogFile;
use ring::{Entry, Ring};

/// Live feed capacity; a receiver that falls further behind gets `Lagged`.
const FEED_CAPACITY: usize = 4096;

/// Cheap to clone; shared by the engine and its executors.
#[derive(Clone, Debug)]
pub struct LogStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    lines_in_memory: usize,
    max_file_bytes: u64,
    feed: broadcast::Sender<LogLine>,
    /// File errors are reported once per store, not once per line.
    warned: AtomicBool,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    attempts: HashMap<AttemptKey, Log>,
    engine: HashMap<RunId, Log>,
    /// Branch key -> the prefix of its lines in the attempt's log.
    branch_labels: HashMap<AttemptKey, Arc<str>>,
}

/// Memory ring and file of one attempt (or of one run's engine log). An attempt's file is
/// made with its first line of output: most tasks of a big graph print nothing.
#[derive(Debug)]
struct Log {
    ring: Ring,
    file: Option<LogFile>,
}

impl Log {
    fn created(&self) -> bool {
        self.file.as_ref().is_some_and(LogFile::created)
    }
}

impl LogStore {
    /// `dir` holds one file per attempt; `lines_in_memory` per attempt; `max_file_bytes` per file.
    pub fn new(dir: PathBuf, lines_in_memory: usize, max_file_bytes: u64) -> LogStore {
        let (feed, _) = broadcast::channel(FEED_CAPACITY);
        LogStore {
            inner: Arc::new(Inner {
                dir,
                lines_in_memory,
                max_file_bytes,
                feed,
                warned: AtomicBool::new(false),
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// Lines of `branch` (a `Purpose::Branch` key) go to its task attempt's log as
    /// `[label] line`, so every console shows a multi-agent attempt as one interleaved log.
    pub fn label_branch(&self, branch: &AttemptKey, label: &str) {
        self.lock()
            .branch_labels
            .insert(branch.clone(), format!("[{label}] ").into());
    }

    /// Appends a line (already redacted by the caller) and publishes it live.
    pub fn push(&self, key: &AttemptKey, stream: LogStream, line: String) {
        let (key, line) = match key.purpose {
            Purpose::Branch { .. } => {
                let prefix = self.lock().branch_labels.get(key).cloned();
                let task = AttemptKey {
                    purpose: Purpose::Task,
                    ..key.clone()
                };
                match prefix {
                    Some(p) => (Cow::Owned(task), format!("{p}{line}")),
                    None => (Cow::Owned(task), line),
                }
            }
            _ => (Cow::Borrowed(key), line),
        };
        let key: &AttemptKey = &key;
        let entry = Entry {
            ts: now_millis(),
            stream,
            line: line.into_boxed_str(),
        };
        let live = self.live_line(&key.run, Some(key.task), key.attempt, &entry);
        {
            let mut state = self.lock();
            let log = state
                .attempts
                .entry(key.clone())
                .or_insert_with(|| self.new_log(None));
            if entry.stream == LogStream::System && !log.created() {
                // A task that prints nothing gets no file: our own start/exit lines wait in
                // memory until the task's first line (creating files is a real cost per task).
                log.ring.push(entry);
            } else {
                if !log.created() {
                    let held: Vec<Entry> = log.ring.since(0).cloned().collect();
                    let cap = self.inner.max_file_bytes;
                    let file = log
                        .file
                        .get_or_insert_with(|| LogFile::new(self.attempt_path(key), cap));
                    for e in held {
                        if let Err(err) = file.write(&e) {
                            self.warn_once(file.path(), &err);
                        }
                    }
                }
                self.append(log, entry, false);
            }
        }
        if let Some(l) = live {
            let _ = self.inner.feed.send(l);
        }
    }

    /// Appends a line to the engine's own log of `run` (written to `<dir>/<run>/engine.log`).
    pub fn push_system(&self, run: &RunId, line: String) {
        let entry = Entry {
            ts: now_millis(),
            stream: LogStream::System,
            line: line.into_boxed_str(),
        };
        let live = self.live_line(run, None, 0, &entry);
        {
            let mut state = self.lock();
            let path = self.run_dir(run).join("engine.log");
            let log = state
                .engine
                .entry(run.clone())
                .or_insert_with(|| self.new_log(Some(path)));
            // Engine lines are few and matter after a crash, so they go to disk at once.
            self.append(log, entry, true);
        }
        if let Some(l) = live {
            let _ = self.inner.feed.send(l);
        }
    }

    /// Lines of one attempt kept in memory, from absolute line number `since` on (lines before
    /// the oldest one still held are gone; see `line_count`).
    pub fn lines(&self, key: &AttemptKey, since: usize) -> Vec<LogLine> {
        let state = self.lock();
        match state.attempts.get(key) {
            Some(log) => to_lines(&log.ring, since, &key.run, Some(key.task), key.attempt),
            None => Vec::new(),
        }
    }

    /// Lines of the engine's own log of `run` kept in memory, from `since` on.
    pub fn engine_lines(&self, run: &RunId, since: usize) -> Vec<LogLine> {
        let state = self.lock();
        match state.engine.get(run) {
            Some(log) => to_lines(&log.ring, since, run, None, 0),
            None => Vec::new(),
        }
    }

    /// Lines ever pushed for the attempt: the `since` that asks for new lines only.
    pub fn line_count(&self, key: &AttemptKey) -> usize {
        self.lock()
            .attempts
            .get(key)
            .map_or(0, |log| log.ring.total())
    }

    /// The attempt's log file, if one was written.
    pub fn file(&self, key: &AttemptKey) -> Option<PathBuf> {
        let state = self.lock();
        let file = state.attempts.get(key)?.file.as_ref()?;
        file.created().then(|| file.path().to_path_buf())
    }

    /// The attempt is over: flush and close its file and give back spare memory. Lines pushed
    /// later still land (the file is reopened for appending).
    pub fn finish(&self, key: &AttemptKey) {
        let mut state = self.lock();
        if let Purpose::Branch { .. } = key.purpose {
            // The attempt's log is finished once the whole attempt is.
            state.branch_labels.remove(key);
            return;
        }
        if let Some(log) = state.attempts.get_mut(key) {
            log.ring.shrink();
            if let Some(file) = log.file.as_mut()
                && let Err(e) = file.close()
            {
                self.warn_once(file.path(), &e);
            }
        }
    }

    /// Where the attempt's log file is (or would be): a past run's logs are read from there when
    /// the journal's index lacks them (an attempt the process died in).
    pub fn attempt_path_of(&self, key: &AttemptKey) -> PathBuf {
        self.attempt_path(key)
    }

    /// Where the engine's own log of `run` is written.
    pub fn engine_path_of(&self, run: &RunId) -> PathBuf {
        self.run_dir(run).join("engine.log")
    }

    /// Drops everything held in memory for `run` (its files stay).
    pub fn forget_run(&self, run: &RunId) {
        let mut state = self.lock();
        state.attempts.retain(|k, _| &k.run != run);
        state.branch_labels.retain(|k, _| &k.run != run);
        state.engine.remove(run);
    }

    /// Live lines of all attempts from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<LogLine> {
        self.inner.feed.subscribe()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves plain data behind; keep using it.
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn new_log(&self, path: Option<PathBuf>) -> Log {
        Log {
            ring: Ring::new(self.inner.lines_in_memory),
            file: path.map(|p| LogFile::new(p, self.inner.max_file_bytes)),
        }
    }

    /// Keeps the line in memory and writes it to the log's file (made by now).
    fn append(&self, log: &mut Log, entry: Entry, flush: bool) {
        if let Some(file) = log.file.as_mut() {
            let mut result = file.write(&entry);
            if flush && result.is_ok() {
                result = file.flush();
            }
            if let Err(e) = result {
                self.warn_once(file.path(), &e);
            }
        }
        log.ring.push(entry);
    }

    /// Builds the feed copy only when someone listens.
    fn live_line(
        &self,
        run: &RunId,
        task: Option<u32>,
        attempt: u32,
        e: &Entry,
    ) -> Option<LogLine> {
        (self.inner.feed.receiver_count() > 0).then(|| to_line(e, run, task, attempt))
    }

    fn warn_once(&self, path: &std::path::Path, e: &std::io::Error) {
        if !self.inner.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                path = %path.display(),
                error = %e,
                "cannot write task log file; logs are kept in memory only from now on"
            );
        }
    }

    fn run_dir(&self, run: &RunId) -> PathBuf {
        run_log_dir(&self.inner.dir, run)
    }

    fn attempt_path(&self, key: &AttemptKey) -> PathBuf {
        let name = match key.purpose {
            Purpose::Task => format!("task-{}.{}.log", key.task, key.attempt),
            Purpose::GateCheck { gate, check } => {
                format!("gate-{gate}-{check}.{}.log", key.attempt)
            }
            Purpose::Compensation => format!("compensate-{}.{}.log", key.task, key.attempt),
            // Not reached: branch lines are written to their attempt's log.
            Purpose::Branch { branch } => {
                format!("task-{}.{}.b{branch}.log", key.task, key.attempt)
            }
        };
        self.run_dir(&key.run).join(name)
    }
}

/// A timestamp as log files write it (RFC 3339, milliseconds, UTC).
pub fn format_ts(ts: crate::model::Millis) -> String {
    file::rfc3339(ts)
}

/// Where a run's log files live under the log directory `dir`.
pub fn run_log_dir(dir: &std::path::Path, run: &RunId) -> PathBuf {
    dir.join(safe_file_name(run.as_str()))
}

/// Run ids can come from API clients: keep them from naming a path outside `dir`.
fn safe_file_name(s: &str) -> String {
    let name: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() || name.chars().all(|c| c == '.') {
        format!("_{name}")
    } else {
        name
    }
}

fn to_line(e: &Entry, run: &RunId, task: Option<u32>, attempt: u32) -> LogLine {
    LogLine {
        run: run.clone(),
        task,
        attempt,
        ts: e.ts,
        stream: e.stream,
        line: e.line.to_string(),
    }
}

fn to_lines(
    ring: &Ring,
    since: usize,
    run: &RunId,
    task: Option<u32>,
    attempt: u32,
) -> Vec<LogLine> {
    ring.since(since)
        .map(|e| to_line(e, run, task, attempt))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn key(task: u32, attempt: u32) -> AttemptKey {
        AttemptKey {
            run: RunId::from("r1"),
            task,
            attempt,
            purpose: Purpose::Task,
        }
    }

    fn texts(lines: &[LogLine]) -> Vec<&str> {
        lines.iter().map(|l| l.line.as_str()).collect()
    }

    #[test]
    fn ring_eviction_keeps_absolute_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let logs = LogStore::new(dir.path().to_path_buf(), 3, 1 << 20);
        let k = key(7, 1);
        for n in 0..5 {
            logs.push(&k, LogStream::Stdout, format!("line {n}"));
        }
        assert_eq!(logs.line_count(&k), 5);
        assert_eq!(texts(&logs.lines(&k, 0)), ["line 2", "line 3", "line 4"]);
        assert_eq!(texts(&logs.lines(&k, 4)), ["line 4"]);
        assert!(logs.lines(&k, 5).is_empty());
        assert!(logs.lines(&key(8, 1), 0).is_empty());
        let l = &logs.lines(&k, 4)[0];
        assert_eq!(
            (l.task, l.attempt, l.stream),
            (Some(7), 1, LogStream::Stdout)
        );
    }

    #[test]
    fn every_line_goes_to_the_file_until_finish() {
        let dir = tempfile::tempdir().unwrap();
        let logs = LogStore::new(dir.path().to_path_buf(), 2, 1 << 20);
        let k = key(3, 2);
        assert_eq!(logs.file(&k), None);
        for n in 0..4 {
            logs.push(&k, LogStream::Stderr, format!("e{n}"));
        }
        logs.finish(&k);
        let path = logs.file(&k).unwrap();
        assert_eq!(path, dir.path().join("r1").join("task-3.2.log"));
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 4);
        assert!(text.lines().all(|l| l.contains(" stderr e")), "{text}");
    }

    #[test]
    fn a_silent_task_gets_no_file_and_the_first_line_brings_the_held_ones() {
        let dir = tempfile::tempdir().unwrap();
        let logs = LogStore::new(dir.path().to_path_buf(), 100, 1 << 20);
        let quiet = key(1, 1);
        logs.push(&quiet, LogStream::System, "started pid 1: true".into());
        logs.push(&quiet, LogStream::System, "exited with code 0".into());
        logs.finish(&quiet);
        assert_eq!(logs.file(&quiet), None);
        assert_eq!(logs.lines(&quiet, 0).len(), 2);

        let loud = key(2, 1);
        logs.push(&loud, LogStream::System, "started pid 2: echo hi".into());
        logs.push(&loud, LogStream::Stdout, "hi".into());
        logs.finish(&loud);
        let text = std::fs::read_to_string(logs.file(&loud).unwrap()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines[0].ends_with("system started pid 2: echo hi"),
            "{text}"
        );
        assert!(lines[1].ends_with("stdout hi"), "{text}");
    }

    #[test]
    fn file_is_capped_but_memory_keeps_going() {
        let dir = tempfile::tempdir().unwrap();
        let logs = LogStore::new(dir.path().to_path_buf(), 100, 100);
        let k = key(0, 1);
        for n in 0..10 {
            logs.push(&k, LogStream::Stdout, format!("line number {n}"));
        }
        logs.finish(&k);
        let text = std::fs::read_to_string(logs.file(&k).unwrap()).unwrap();
        assert!(text.ends_with("[log truncated at 100 bytes]\n"), "{text}");
        assert!(text.len() < 200);
        assert_eq!(logs.lines(&k, 0).len(), 10);
    }

    #[test]
    fn file_names_follow_the_purpose() {
        let dir = tempfile::tempdir().unwrap();
        let logs = LogStore::new(dir.path().to_path_buf(), 10, 1 << 20);
        let gate = AttemptKey {
            purpose: Purpose::GateCheck { gate: 2, check: 1 },
            ..key(0, 1)
        };
        let comp = AttemptKey {
            purpose: Purpose::Compensation,
            ..key(4, 1)
        };
        logs.push(&gate, LogStream::Stdout, "g".into());
        logs.push(&comp, LogStream::Stdout, "c".into());
        let name = |k| logs.file(k).unwrap().file_name().unwrap().to_owned();
        assert_eq!(name(&gate), "gate-2-1.1.log");
        assert_eq!(name(&comp), "compensate-4.1.log");
    }

    #[test]
    fn unwritable_dir_keeps_lines_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, b"").unwrap();
        let logs = LogStore::new(blocker, 10, 1 << 20);
        let k = key(0, 1);
        logs.push(&k, LogStream::Stdout, "a".into());
        logs.push(&k, LogStream::Stdout, "b".into());
        logs.finish(&k);
        assert_eq!(texts(&logs.lines(&k, 0)), ["a", "b"]);
        assert_eq!(logs.file(&k), None);
    }

    #[test]
    fn run_ids_cannot_escape_the_log_dir() {
        assert_eq!(
            safe_file_name("20260101-000000-ab12"),
            "20260101-000000-ab12"
        );
        assert_eq!(safe_file_name("../etc"), ".._etc");
        assert_eq!(safe_file_name(".."), "_..");
        assert_eq!(safe_file_name(""), "_");
    }

    #[test]
    fn engine_log_per_run() {
        let dir = tempfile::tempdir().unwrap();
        let logs = LogStore::new(dir.path().to_path_buf(), 10, 1 << 20);
        let r1 = RunId::from("r1");
        let r2 = RunId::from("r2");
        logs.push_system(&r1, "run started".into());
        logs.push_system(&r2, "other".into());
        logs.push_system(&r1, "run finished".into());
        let lines = logs.engine_lines(&r1, 0);
        assert_eq!(texts(&lines), ["run started", "run finished"]);
        assert_eq!((lines[0].task, lines[0].stream), (None, LogStream::System));
        assert_eq!(texts(&logs.engine_lines(&r1, 1)), ["run finished"]);
        let text = std::fs::read_to_string(dir.path().join("r1").join("engine.log")).unwrap();
        assert_eq!(text.lines().count(), 2);
        logs.forget_run(&r1);
        assert!(logs.engine_lines(&r1, 0).is_empty());
        assert_eq!(logs.engine_lines(&r2, 0).len(), 1);
    }

    #[tokio::test]
    async fn subscribers_see_live_lines() {
        let dir = tempfile::tempdir().unwrap();
        let logs = LogStore::new(dir.path().to_path_buf(), 10, 1 << 20);
        let k = key(1, 1);
        logs.push(&k, LogStream::Stdout, "before".into());
        let mut rx = logs.subscribe();
        logs.push(&k, LogStream::Stdout, "after".into());
        logs.push_system(&k.run, "engine".into());
        let a = rx.recv().await.unwrap();
        assert_eq!((a.line.as_str(), a.task), ("after", Some(1)));
        let b = rx.recv().await.unwrap();
        assert_eq!((b.line.as_str(), b.task), ("engine", None));
    }
}
