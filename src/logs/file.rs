//! One attempt's log file: created on the first line, buffered, capped in size, reopened in
//! append mode if lines arrive after it was closed.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use super::ring::Entry;
use crate::model::{LogStream, Millis, civil_from_unix};

#[derive(Debug)]
enum State {
    Unopened,
    Open {
        w: BufWriter<File>,
        written: u64,
    },
    /// The cap was reached and the marker written: nothing more goes to this file.
    Capped,
    /// A write failed once; the attempt keeps logging in memory only.
    Broken,
}

#[derive(Debug)]
pub(crate) struct LogFile {
    path: PathBuf,
    cap: u64,
    created: bool,
    state: State,
}

impl LogFile {
    pub fn new(path: PathBuf, cap: u64) -> LogFile {
        LogFile {
            path,
            cap,
            created: false,
            state: State::Unopened,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the file exists on disk because of us.
    pub fn created(&self) -> bool {
        self.created
    }

    /// Appends one line. An error leaves the file broken (no further writes); the caller decides
    /// how loudly to complain.
    pub fn write(&mut self, e: &Entry) -> io::Result<()> {
        let result = self.write_inner(e);
        if result.is_err() {
            self.state = State::Broken;
        }
        result
    }

    fn write_inner(&mut self, e: &Entry) -> io::Result<()> {
        if matches!(self.state, State::Unopened) {
            self.open()?;
        }
        let State::Open { w, written } = &mut self.state else {
            return Ok(());
        };
        let text = format_line(e);
        if *written + text.len() as u64 > self.cap {
            writeln!(w, "[log truncated at {} bytes]", self.cap)?;
            w.flush()?;
            self.state = State::Capped;
            return Ok(());
        }
        w.write_all(text.as_bytes())?;
        *written += text.len() as u64;
        Ok(())
    }

    fn open(&mut self) -> io::Result<()> {
        if let Some(parent) = self.path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.created = true;
        let written = file.metadata()?.len();
        // A file reopened at or over the cap already carries its truncation marker.
        self.state = if written >= self.cap {
            State::Capped
        } else {
            State::Open {
                w: BufWriter::new(file),
                written,
            }
        };
        Ok(())
    }

    pub fn flush(&mut self) -> io::Result<()> {
        let result = match &mut self.state {
            State::Open { w, .. } => w.flush(),
            _ => Ok(()),
        };
        if result.is_err() {
            self.state = State::Broken;
        }
        result
    }

    /// Flushes and closes the file; a later line reopens it.
    pub fn close(&mut self) -> io::Result<()> {
        let result = self.flush();
        if let State::Open { .. } = self.state {
            self.state = State::Unopened;
        }
        result
    }
}

fn format_line(e: &Entry) -> String {
    let stream = match e.stream {
        LogStream::Stdout => "stdout",
        LogStream::Stderr => "stderr",
        LogStream::System => "system",
    };
    format!("{} {stream} {}\n", rfc3339(e.ts), e.line)
}

/// `2026-01-02T03:04:05.678Z`
pub(crate) fn rfc3339(ts: Millis) -> String {
    let (y, mo, d, h, mi, s) = civil_from_unix((ts / 1000) as i64);
    format!(
        "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{:03}Z",
        ts % 1000
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn entry(line: &str) -> Entry {
        Entry {
            ts: 1_795_445_999_123,
            stream: LogStream::Stderr,
            line: line.into(),
        }
    }

    #[test]
    fn formats_timestamps_as_rfc3339_utc() {
        assert_eq!(rfc3339(1_795_445_999_123), "2026-11-23T14:59:59.123Z");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn created_lazily_and_capped_with_one_marker() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run").join("task-0.1.log");
        // Each line is 24 (ts) + 1 + 6 (stream) + 1 + 3 + 1 = 36 bytes.
        let mut f = LogFile::new(path.clone(), 80);
        assert!(!f.created());
        assert!(!path.exists());
        for n in 0..5 {
            f.write(&entry(&format!("l{n:02}"))).unwrap();
        }
        f.close().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert_eq!(lines[0], "2026-11-23T14:59:59.123Z stderr l00");
        assert_eq!(lines[2], "[log truncated at 80 bytes]");

        // Reopening a capped file writes nothing more.
        let mut again = LogFile::new(path.clone(), 80);
        again.write(&entry("more")).unwrap();
        again.close().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    }

    #[test]
    fn close_then_write_appends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let mut f = LogFile::new(path.clone(), 1 << 20);
        f.write(&entry("one")).unwrap();
        f.close().unwrap();
        f.write(&entry("two")).unwrap();
        f.close().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("one\n") && text.ends_with("two\n"), "{text}");
    }

    #[test]
    fn an_unwritable_directory_breaks_the_file_without_panicking() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("not-a-dir");
        std::fs::write(&blocker, b"").unwrap();
        let mut f = LogFile::new(blocker.join("x.log"), 1 << 20);
        assert!(f.write(&entry("x")).is_err());
        // Broken: later writes are silently dropped.
        assert!(f.write(&entry("y")).is_ok());
        assert!(f.close().is_ok());
    }
}
