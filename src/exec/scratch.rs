//! The scratch files of a command attempt: the context file the task reads (`TASKDECK_CONTEXT`)
//! and the outputs file it writes (`TASKDECK_OUTPUT`), in its run's private scratch dir.
//!
//! A finished attempt's pair is kept for the run's next attempt: rewriting two files that
//! exist costs a fraction of creating two and removing them again (inodes and directory
//! entries), and on a graph of tiny tasks that is a good share of the work per task. A pair is
//! kept only when it is ours and clean (the outputs file an empty regular file, no process of
//! the attempt left writing); the kept pairs are removed when the run ends or the engine stops.

use std::collections::HashMap;
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex};

use super::{CONTEXT_SUFFIX, OUTPUT_SUFFIX};

/// One attempt's pair of files.
#[derive(Debug)]
pub struct Scratch {
    dir: PathBuf,
    pub context: PathBuf,
    pub output: PathBuf,
}

/// Kept pairs by scratch dir. A dir has an entry from its first attempt until `forget_dir`;
/// a pair released into a dir without one (its run ended meanwhile) is removed instead.
static KEPT: LazyLock<Mutex<HashMap<PathBuf, Vec<Scratch>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// This attempt's files: a kept pair of the run rewritten, else a new pair named `name` in
/// `dir` (made, mode 0700, if needed). The error is the message for people.
pub fn prepare(dir: &Path, name: &str, context: &[u8]) -> Result<Scratch, String> {
    let kept = KEPT.lock().ok().and_then(|mut kept| {
        let pairs = kept.entry(dir.to_path_buf()).or_default();
        pairs.pop()
    });
    if let Some(pair) = kept {
        match rewrite(&pair.context, context) {
            Ok(()) => return Ok(pair),
            // Removed or replaced by a task: start afresh.
            Err(_) => pair.remove(),
        }
    }
    let pair = Scratch {
        dir: dir.to_path_buf(),
        context: dir.join(format!("{name}{CONTEXT_SUFFIX}")),
        output: dir.join(format!("{name}{OUTPUT_SUFFIX}")),
    };
    match create(&pair, context) {
        Ok(()) => Ok(pair),
        Err(e) => {
            pair.remove();
            Err(e)
        }
    }
}

/// The attempt is over. `clean`: no process of the attempt can still write to the files. The
/// pair is kept for the run's next attempt when that is safe, else removed.
pub fn release(pair: Scratch, clean: bool) {
    if !clean || !reusable_output(&pair.output) {
        pair.remove();
        return;
    }
    let Ok(mut kept) = KEPT.lock() else {
        pair.remove();
        return;
    };
    match kept.get_mut(&pair.dir) {
        Some(pairs) => pairs.push(pair),
        None => {
            drop(kept);
            pair.remove();
        }
    }
}

/// Removes the pairs kept for a run's scratch dir (its run has ended).
pub fn forget_dir(dir: &Path) {
    let pairs = KEPT.lock().ok().and_then(|mut kept| kept.remove(dir));
    pairs.into_iter().flatten().for_each(Scratch::remove);
}

/// Removes the pairs kept for every scratch dir under `root` (an engine stops).
pub fn forget_under(root: &Path) {
    let pairs: Vec<Scratch> = match KEPT.lock() {
        Ok(mut kept) => {
            let dirs: Vec<PathBuf> = kept
                .keys()
                .filter(|d| d.starts_with(root))
                .cloned()
                .collect();
            dirs.iter()
                .filter_map(|d| kept.remove(d))
                .flatten()
                .collect()
        }
        Err(_) => Vec::new(),
    };
    pairs.into_iter().for_each(Scratch::remove);
}

impl Scratch {
    fn remove(self) {
        let _ = std::fs::remove_file(&self.context);
        let _ = std::fs::remove_file(&self.output);
    }
}

fn create(pair: &Scratch, context: &[u8]) -> Result<(), String> {
    // Private: the context may hold secrets meant for this task only.
    let mut file = match fresh_file(&pair.context) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // The run's first attempt: make its scratch dir.
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&pair.dir)
                .map_err(|e| {
                    format!(
                        "cannot create scratch directory `{}`: {e}",
                        pair.dir.display()
                    )
                })?;
            fresh_file(&pair.context)
        }
        other => other,
    }
    .map_err(|e| file_err(&pair.context, e))?;
    file.write_all(context)
        .map_err(|e| file_err(&pair.context, e))?;
    fresh_file(&pair.output)
        .map(drop)
        .map_err(|e| file_err(&pair.output, e))
}

/// Overwrites a kept context file; never through a symlink, never creating one.
fn rewrite(path: &Path, context: &[u8]) -> io::Result<()> {
    OpenOptions::new()
        .write(true)
        .truncate(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?
        .write_all(context)
}

/// Whether the outputs file is (or has been made) an empty regular file of ours.
fn reusable_output(path: &Path) -> bool {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_file() && m.len() == 0 => true,
        Ok(m) if m.is_file() => OpenOptions::new()
            .write(true)
            .truncate(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .is_ok(),
        _ => false,
    }
}

fn file_err(path: &Path, e: io::Error) -> String {
    format!("cannot write `{}`: {e}", path.display())
}

/// Creates an empty file only we can read. `create_new`, so a file planted under the name is
/// never written through; one left by a taskdeck that died mid-attempt is replaced.
fn fresh_file(path: &Path) -> io::Result<File> {
    let create = || {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
    };
    match create() {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            std::fs::remove_file(path)?;
            create()
        }
        other => other,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn read(p: &Path) -> String {
        std::fs::read_to_string(p).unwrap()
    }

    #[test]
    fn a_released_pair_serves_the_next_attempt_until_the_run_ends() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("run-1");
        let a = prepare(&dir, "task-a.1", b"{\"a\":1}").unwrap();
        assert_eq!(read(&a.context), "{\"a\":1}");
        assert_eq!(read(&a.output), "");
        let (context, output) = (a.context.clone(), a.output.clone());
        std::fs::write(&a.output, "n=1\n").unwrap();
        release(a, true);

        // The next attempt gets the same files: the context rewritten, the outputs emptied.
        let b = prepare(&dir, "task-b.1", b"{}").unwrap();
        assert_eq!((&b.context, &b.output), (&context, &output));
        assert_eq!(read(&b.context), "{}");
        assert_eq!(read(&b.output), "");
        // Two at once: the second gets a pair of its own.
        let c = prepare(&dir, "task-c.1", b"{}").unwrap();
        assert!(c.context.ends_with("task-c.1.context.json"));
        release(b, true);
        release(c, true);
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 4);

        forget_dir(&dir);
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        // A pair released after its run ended is removed, not kept.
        let d = prepare(&dir, "task-d.1", b"{}").unwrap();
        forget_dir(&dir);
        release(d, true);
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    }

    #[test]
    fn a_pair_a_task_tampered_with_is_not_reused() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("run-2");
        let victim = root.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();

        // The outputs file replaced by a symlink: removed, and the target left alone.
        let a = prepare(&dir, "a.1", b"{}").unwrap();
        std::fs::remove_file(&a.output).unwrap();
        std::os::unix::fs::symlink(&victim, &a.output).unwrap();
        let output = a.output.clone();
        release(a, true);
        assert!(std::fs::symlink_metadata(&output).is_err());
        assert_eq!(read(&victim), "precious");

        // The context file replaced by a symlink: never written through.
        let b = prepare(&dir, "b.1", b"{}").unwrap();
        std::fs::remove_file(&b.context).unwrap();
        std::os::unix::fs::symlink(&victim, &b.context).unwrap();
        release(b, true);
        let c = prepare(&dir, "c.1", b"{\"c\":1}").unwrap();
        assert_eq!(read(&victim), "precious");
        assert_eq!(read(&c.context), "{\"c\":1}");
        assert!(c.context.ends_with("c.1.context.json"));

        // An attempt that may still have a process writing: not reused.
        let output = c.output.clone();
        release(c, false);
        assert!(!output.exists());
        forget_under(root.path());
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
    }
}
