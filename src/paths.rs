//! Where taskdeck keeps its files (platform dirs via `directories`; `TASKDECK_HOME` overrides all).

use std::path::PathBuf;

use directories::ProjectDirs;

fn project_dirs() -> Option<ProjectDirs> {
    ProjectDirs::from("dev", "taskdeck", "taskdeck")
}

fn home_override() -> Option<PathBuf> {
    std::env::var_os("TASKDECK_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

pub fn config_file() -> Option<PathBuf> {
    if let Some(h) = home_override() {
        return Some(h.join("config.toml"));
    }
    project_dirs().map(|d| d.config_dir().join("config.toml"))
}

pub fn data_dir() -> PathBuf {
    if let Some(h) = home_override() {
        return h.join("data");
    }
    project_dirs()
        .map(|d| d.data_dir().to_path_buf())
        .unwrap_or_else(|| std::env::temp_dir().join("taskdeck").join("data"))
}

/// Logs of task attempts and taskdeck's own log.
pub fn state_dir() -> PathBuf {
    if let Some(h) = home_override() {
        return h.join("state");
    }
    project_dirs()
        .and_then(|d| d.state_dir().map(|p| p.to_path_buf()))
        .unwrap_or_else(|| data_dir().join("state"))
}

/// Scratch space for running tasks (context and outputs files): on tmpfs when the machine has
/// one (`$XDG_RUNTIME_DIR`, else `/dev/shm`), since these files live only as long as an attempt
/// and creating them on a disk costs far more. Falls back to the state dir. Under
/// `TASKDECK_HOME` it is `DIR/run`; `TASKDECK_RUNTIME_DIR` names it outright (when it is, or
/// can be made, a directory only we can enter).
pub fn runtime_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("TASKDECK_RUNTIME_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .filter(|d| private_dir(d))
    {
        return dir;
    }
    if let Some(h) = home_override() {
        return h.join("run");
    }
    let tmpfs = std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|v| !v.is_empty())
        .map(|d| PathBuf::from(d).join("taskdeck"))
        .or_else(|| {
            let shm = PathBuf::from("/dev/shm");
            // SAFETY: getuid has no preconditions.
            let uid = unsafe { libc::getuid() };
            shm.is_dir().then(|| shm.join(format!("taskdeck-{uid}")))
        });
    match tmpfs {
        Some(dir) if private_dir(&dir) => dir,
        _ => state_dir().join("run"),
    }
}

/// Creates `dir` (mode 0700) if needed and checks it is a directory only we can enter.
fn private_dir(dir: &std::path::Path) -> bool {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    let _ = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir);
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    std::fs::symlink_metadata(dir)
        .is_ok_and(|m| m.is_dir() && m.uid() == uid && m.permissions().mode() & 0o077 == 0)
}
