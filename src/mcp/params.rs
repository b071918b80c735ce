//! The tools' inputs. Their doc comments become the JSON Schema descriptions an assistant reads
//! to call the tools, so they say what a value looks like and where to get it.

use schemars::JsonSchema;
use serde::Deserialize;

#[derive(Debug, Deserialize, JsonSchema)]
pub struct SubmitParams {
    /// The workflow file's full text (TOML, or JSON when it starts with `{`). Example:
    /// `name = "demo"\n[tasks.build]\nrun = "make"\n[tasks.test]\nrun = "make test"\nneeds = ["build"]`.
    /// Give this or `path`, not both.
    #[serde(default)]
    pub workflow: Option<String>,
    /// Path of a workflow file (TOML, or JSON when it ends in .json) on the machine running
    /// this MCP server; relative paths are from its working directory.
    #[serde(default)]
    pub path: Option<String>,
    /// Force the text's format: "toml" or "json" (default: guessed from the text or the path).
    #[serde(default)]
    pub format: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct RunParams {
    /// The run's id as `submit_workflow` or `list_runs` gave it (a unique prefix works too).
    pub run: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct StatusParams {
    /// The run's id as `submit_workflow` or `list_runs` gave it (a unique prefix works too).
    pub run: String,
    /// Wait up to this many seconds (at most 300) for the run to finish or for a task to
    /// wait for approval, then answer; 0 or absent answers at once.
    #[serde(default)]
    pub wait_seconds: Option<u64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ListRunsParams {
    /// Show at most this many runs, newest first (default 20).
    #[serde(default)]
    pub limit: Option<usize>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ListTasksParams {
    /// The run's id as `submit_workflow` or `list_runs` gave it (a unique prefix works too).
    pub run: String,
    /// Only tasks in this state: pending, ready, assigned, running, validating, succeeded,
    /// failed, skipped, cancelled, paused, waiting_approval, retry_wait or blocked.
    #[serde(default)]
    pub state: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct LogParams {
    /// The run's id as `submit_workflow` or `list_runs` gave it (a unique prefix works too).
    pub run: String,
    /// The task's id, as in the workflow file (see `list_tasks`).
    pub task: String,
    /// Which attempt (1 is the first; default: the latest).
    #[serde(default)]
    pub attempt: Option<u32>,
    /// Only the last N lines (default 100; 0 for the whole log).
    #[serde(default)]
    pub tail: Option<usize>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct TaskParams {
    /// The run's id as `submit_workflow` or `list_runs` gave it (a unique prefix works too).
    pub run: String,
    /// The task's id, as in the workflow file (see `list_tasks`).
    pub task: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct RunOrTaskParams {
    /// The run's id as `submit_workflow` or `list_runs` gave it (a unique prefix works too).
    pub run: String,
    /// One task of the run, by its id in the workflow file; absent means the whole run.
    #[serde(default)]
    pub task: Option<String>,
}
