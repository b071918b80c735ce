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
