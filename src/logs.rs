//! Task logs: the last lines of each attempt in memory (bounded), every line in a file per attempt
//! (capped), and a live feed for consoles.

use std::path::PathBuf;

use tokio::sync::broadcast;

use crate::exec::AttemptKey;
use crate::model::{LogLine, LogStream};

/// Cheap to clone; shared by the engine and its executors.
#[derive(Clone, Debug)]
pub struct LogStore {
    _private: (),
}

impl LogStore {
    /// `dir` holds one file per attempt; `lines_in_memory` per attempt; `max_file_bytes` per file.
    pub fn new(dir: PathBuf, lines_in_memory: usize, max_file_bytes: u64) -> LogStore {
        let _ = (dir, lines_in_memory, max_file_bytes);
        todo!("logs")
    }

    /// Appends a line (already redacted by the caller) and publishes it live.
    pub fn push(&self, key: &AttemptKey, stream: LogStream, line: String) {
        let _ = (key, stream, line);
        todo!("logs")
    }

    pub fn push_system(&self, run: &crate::model::RunId, line: String) {
        let _ = (run, line);
        todo!("logs")
    }

    /// Lines of one attempt kept in memory, from index `since` on.
    pub fn lines(&self, key: &AttemptKey, since: usize) -> Vec<LogLine> {
        let _ = (key, since);
        todo!("logs")
    }

    /// The attempt's log file, if one was written.
    pub fn file(&self, key: &AttemptKey) -> Option<PathBuf> {
        let _ = key;
        todo!("logs")
    }

    /// Live lines of all attempts from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<LogLine> {
        todo!("logs")
    }
}
