//! The user's config file (`config.toml` in the platform config dir, or `--config FILE`):
//! global context, the agent roster shared by all workflows, and engine defaults.

use std::path::{Path, PathBuf};
use std::time::Duration;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::spec::{AgentSpec, Resources};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The global context layer, visible to every task of every run.
    #[serde(default)]
    pub context: Map<String, Value>,
    /// Agents available to every workflow.
    #[serde(default)]
    pub agents: IndexMap<String, AgentSpec>,
    #[serde(default)]
    pub defaults: Defaults,
    /// The console: theme and key bindings.
    #[serde(default)]
    pub ui: UiConfig,
    /// The journal: where it is and how long finished runs are kept.
    #[serde(default)]
    pub store: StoreConfig,
    /// `taskdeck serve`: where it listens, its tokens and TLS identity.
    #[serde(default)]
    pub server: ServerConfig,
}

/// `[server]`: `bind`, `tokens_file`, `tls_cert`/`tls_key` (PEM files), and tokens inline as
/// `[[server.tokens]] role = "operator"  token = "..."`. Command-line options win.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub bind: Option<String>,
    pub tokens_file: Option<PathBuf>,
    pub tokens: Vec<TokenConfig>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// viewer, operator or admin.
    pub role: String,
    pub token: String,
}

/// `[store]`: `url = "sqlite:///path"` or `"postgres://..."` (`--store` wins), and retention:
/// finished runs beyond `keep_runs`, or older than `keep_days`, are deleted with their logs
/// when an engine starts.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    pub url: Option<String>,
    pub keep_runs: usize,
    pub keep_days: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            url: None,
            keep_runs: 1000,
            keep_days: 90,
        }
    }
}

/// `[ui]`: `theme = "light"` and `[ui.keys]` with `action = "key"` or `action = ["k1", "k2"]`.
/// Keys are checked by the console, which reports bad ones instead of refusing to start.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UiConfig {
    #[serde(default)]
    pub theme: Option<String>,
    #[serde(default, deserialize_with = "one_or_many")]
    pub keys: IndexMap<String, Vec<String>>,
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<IndexMap<String, Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Keys {
        One(String),
        Many(Vec<String>),
    }
    let raw = IndexMap::<String, Keys>::deserialize(d)?;
    Ok(raw
        .into_iter()
        .map(|(k, v)| match v {
            Keys::One(s) => (k, vec![s]),
            Keys::Many(v) => (k, v),
        })
        .collect())
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Defaults {
    /// Engine-wide cap on tasks running at once, across all runs.
    pub max_parallel: u32,
    /// Slots of the implicit `local` agent.
    pub local_slots: u32,
    /// The resource pool tasks draw from (`cpu` defaults to the number of cores).
    pub resources: Resources,
    /// Time between TERM and KILL when a task is cancelled or times out.
    #[serde(with = "crate::spec::humantime_serde_compat")]
    pub kill_grace: Duration,
    /// Largest context (JSON bytes) a task may be given.
    pub max_context_bytes: usize,
    /// Largest outputs (JSON bytes) a task may produce.
    pub max_output_bytes: usize,
    /// Log lines kept in memory per task attempt (the log file keeps everything up to `max_log_bytes`).
    pub log_lines_in_memory: usize,
    /// Cap of one attempt's log file.
    pub max_log_bytes: u64,
}

impl Default for Defaults {
    fn default() -> Self {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        Defaults {
            max_parallel: 16,
            local_slots: 16,
            resources: Resources {
                cpu: cores as f64,
                memory_mb: total_memory_mb(),
                gpu: 0,
            },
            kill_grace: Duration::from_secs(5),
            max_context_bytes: 1 << 20,
            max_output_bytes: 1 << 20,
            log_lines_in_memory: 10_000,
            max_log_bytes: 64 << 20,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl Config {
    /// Loads `path` if given (it must exist), else the platform config file if it exists,
    /// else the built-in defaults.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let (path, required) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => match crate::paths::config_file() {
                Some(p) => (p, false),
                None => return Ok(Config::default()),
            },
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Config::default());
            }
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        Config::parse(&text).map_err(|message| ConfigError::Invalid { path, message })
    }

    pub fn parse(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }
}

/// The machine's memory in MiB (from /proc/meminfo; 0 where unknown).
fn total_memory_mb() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map(|kb| kb / 1024)
        .unwrap_or(0)
}
