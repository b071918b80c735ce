//! The MCP tools over a `Console`: the same operations whether the engine is embedded (a local
//! store) or a `taskdeck serve` reached over HTTP. Every tool answers text (JSON for data);
//! whatever goes wrong is a tool error whose message says what to do next.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{Implementation, ServerCapabilities, ServerConfig};
use rmcp::{ServerHandler, tool, tool_handler, tool_router};
use serde_json::{Value, json};

use super::params::*;
use super::view;
use crate::config::Config;
use crate::console::{Console, ConsoleError};
use crate::engine::state::{EngineState, Run};
use crate::model::{Command, RunId, TaskState};
use crate::spec::{Format, LoadError};

/// What a tool answers: its text, or the message of a tool error.
type Answer = Result<String, String>;

/// How long `run_status` may wait at most, and how often it looks while it waits.
const MAX_WAIT: Duration = Duration::from_secs(300);
const POLL: Duration = Duration::from_millis(250);
/// Lines `task_log` shows when not told.
const DEFAULT_TAIL: usize = 100;
/// Workflow problems listed in one error (the rest are counted).
const MAX_PROBLEMS: usize = 20;

const INSTRUCTIONS: &str = "taskdeck runs task-graph workflows: tasks (shell commands, builtins, \
LLM or HTTP agents) with dependencies (`needs`), retries, approvals and quality gates, journaled \
so runs survive restarts. Typical use: submit_workflow (TOML text or a file path) -> run_status \
with wait_seconds until it finishes or waits for approval -> list_tasks to see states, agents, \
errors and outputs -> task_log for a task's output -> retry_task / approve_task / cancel / pause / \
resume as needed. A minimal workflow: name = \"demo\"\\n[tasks.build]\\nrun = \"make\"\\n\
[tasks.test]\\nrun = \"make test\"\\nneeds = [\"build\"]. Other task kinds: builtin = \"echo TEXT\" | \
\"sleep 2s\" | \"fail\" | \"noop\"; approval = true makes a task wait for approve_task; retry = \
{ attempts = 3, delay = \"1s\" }. A task writes outputs by appending key=value lines to the file \
named by $TASKDECK_OUTPUT.";

#[derive(Clone)]
pub struct TaskdeckMcp {
    console: Console,
    config: Arc<Config>,
    tool_router: ToolRouter<Self>,
}

/// A run found by id or prefix: its state, and whether an engine executes it now.
struct Found {
    run: Box<Run>,
    live: bool,
}

fn console_err(e: ConsoleError) -> String {
    match e {
        ConsoleError::Refused(m) => m,
        ConsoleError::Unavailable(m) => format!("the engine cannot be reached: {m}"),
    }
}

fn to_text(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

/// Every problem of an invalid workflow, one per line, with the hint.
fn load_error(e: LoadError) -> String {
    match e {
        LoadError::Read { path, source } => format!("cannot read {}: {source}", path.display()),
        LoadError::Invalid(diags) => {
            let mut out = format!(
                "the workflow is not valid ({} problem{}):",
                diags.len(),
                if diags.len() == 1 { "" } else { "s" }
            );
            for d in diags.iter().take(MAX_PROBLEMS) {
                out.push('\n');
                out.push_str(&d.to_string());
            }
            if diags.len() > MAX_PROBLEMS {
                out.push_str(&format!("\n… and {} more", diags.len() - MAX_PROBLEMS));
            }
            out
        }
    }
}

fn parse_format(f: Option<&str>) -> Result<Option<Format>, String> {
    match f.map(|s| s.trim().to_ascii_lowercase()).as_deref() {
        None | Some("") => Ok(None),
        Some("toml") => Ok(Some(Format::Toml)),
        Some("json") => Ok(Some(Format::Json)),
        Some(other) => Err(format!(
            "format `{other}`: use \"toml\" or \"json\" (or leave it out)"
        )),
    }
}

fn guess_format(text: &str) -> Format {
    if text.trim_start().starts_with('{') {
        Format::Json
    } else {
        Format::Toml
    }
}

/// Finished, or stopped until someone approves a task: nothing to wait for.
fn settled(run: &Run) -> bool {
    run.state.is_terminal()
        || run
            .tasks
            .iter()
            .any(|t| t.state == TaskState::WaitingApproval)
}

/// The task's index in the run, or an error listing the run's task ids.
fn task_index(run: &Run, task: &str) -> Result<usize, String> {
    let tasks = &run.workflow.tasks;
    tasks.iter().position(|t| t.id == task).ok_or_else(|| {
        let ids: Vec<&str> = tasks.iter().map(|t| t.id.as_str()).take(30).collect();
        format!(
            "run {} has no task `{task}`; its tasks: {}{}",
            run.id,
            ids.join(", "),
            if tasks.len() > ids.len() { ", …" } else { "" }
        )
    })
}

#[tool_router]
impl TaskdeckMcp {
    pub fn new(console: Console, config: Config) -> TaskdeckMcp {
        TaskdeckMcp {
            console,
            config: Arc::new(config),
            tool_router: Self::tool_router(),
        }
    }

    /// Start a run of a workflow: give its TOML/JSON text in `workflow`, or a file `path`. The
    /// workflow is checked first; an invalid one is refused with every problem (line, column,
    /// hint). Answers the new run's id (use it with run_status, list_tasks, task_log).
    #[tool(annotations(title = "Submit a workflow", destructive_hint = false))]
    async fn submit_workflow(&self, Parameters(p): Parameters<SubmitParams>) -> Answer {
        let forced = parse_format(p.format.as_deref())?;
        let (text, name, format) = match (p.workflow, p.path) {
            (Some(_), Some(_)) => {
                return Err("give either `workflow` (text) or `path`, not both".into());
            }
            (None, None) => {
                return Err("give the workflow's text in `workflow`, or a file's `path`".into());
            }
            (Some(text), None) => {
                let f = forced.unwrap_or_else(|| guess_format(&text));
                (text, "workflow".to_string(), f)
            }
            (None, Some(path)) => {
                let path = PathBuf::from(path);
                let p2 = path.clone();
                let text = tokio::task::spawn_blocking(move || crate::spec::read_text(&p2))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(load_error)?;
                let f = forced.unwrap_or_else(|| Format::from_path(&path));
                (text, path.display().to_string(), f)
            }
        };
        let (id, workflow, tasks) = match &self.console {
            Console::Remote(r) => {
                // The server checks the workflow against its own agents.
                let done = r
                    .client()
                    .submit(text, format == Format::Json)
                    .await
                    .map_err(|e| match e {
                        crate::client::ClientError::Api {
                            detail, problems, ..
                        } if !problems.is_empty() => {
                            format!("{detail}:\n{}", problems.join("\n"))
                        }
                        other => other.to_string(),
                    })?;
                (done.id, done.workflow, done.tasks as usize)
            }
            Console::Local(_) => {
                let config = self.config.clone();
                let t2 = text.clone();
                let wf = tokio::task::spawn_blocking(move || {
                    crate::spec::parse_str(&t2, &name, format, &config)
                })
                .await
                .map_err(|e| e.to_string())?
                .map_err(load_error)?;
                let (workflow, tasks) = (wf.name.clone(), wf.tasks.len());
                let id = self
                    .console
                    .submit(wf, Some(text))
                    .await
                    .map_err(console_err)?;
                (id.to_string(), workflow, tasks)
            }
        };
        Ok(to_text(&json!({
            "run": id,
            "workflow": workflow,
            "tasks": tasks,
            "next": "run_status with wait_seconds to follow it",
        })))
    }

    /// A run's state (pending, running, paused, succeeded, failed, cancelled, or interrupted
    /// when nobody executes it), task counts per state, and the tasks that failed, wait for
    /// approval or are under way. With `wait_seconds` it first waits (up to 300 s) until the
    /// run finishes or a task waits for approval.
    #[tool(annotations(title = "Run status", read_only_hint = true))]
    async fn run_status(&self, Parameters(p): Parameters<StatusParams>) -> Answer {
        let wait = Duration::from_secs(p.wait_seconds.unwrap_or(0)).min(MAX_WAIT);
        let deadline = tokio::time::Instant::now() + wait;
        let mut found = self.find(&p.run).await?;
        // Only the engine's snapshot is read while waiting: the run is live, its id known.
        while found.live && !settled(&found.run) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(POLL).await;
            let snap = self.console.snapshot().await.map_err(console_err)?;
            match snap.runs.get(&found.run.id) {
                Some(run) => *found.run = run.clone(),
                None => found = self.find(found.run.id.as_str()).await?,
            }
        }
        Ok(to_text(&view::run_status(&found.run, found.live)))
    }

    /// Runs in the store (or on the server), newest first: id, workflow, state, task counts.
    #[tool(annotations(title = "List runs", read_only_hint = true))]
    async fn list_runs(&self, Parameters(p): Parameters<ListRunsParams>) -> Answer {
        let limit = p.limit.unwrap_or(20).max(1);
        let rows: Vec<Value> = match self.console.history().await {
            Ok(entries) => entries.iter().take(limit).map(view::history_row).collect(),
            // No store (--store memory): the engine's own runs are all there is.
            Err(ConsoleError::Refused(_)) => {
                let snap = self.console.snapshot().await.map_err(console_err)?;
                snap.runs
                    .values()
                    .rev()
                    .take(limit)
                    .map(|r| view::run_status(r, true))
                    .collect()
            }
            Err(e) => return Err(console_err(e)),
        };
        Ok(to_text(&Value::Array(rows)))
    }

    /// A run's tasks in workflow order: state, needs, agent, every attempt (agent, outcome,
    /// exit code, duration, error), whether it needs approval, and its outputs (long values
    /// cut). `state` keeps only the tasks in that state, e.g. "failed".
    #[tool(annotations(title = "List a run's tasks", read_only_hint = true))]
    async fn list_tasks(&self, Parameters(p): Parameters<ListTasksParams>) -> Answer {
        let state = match p.state.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(s) => Some(TaskState::parse(s).ok_or_else(|| {
                let all: Vec<&str> = TaskState::ALL.iter().map(|s| s.as_str()).collect();
                format!("unknown task state `{s}`; one of: {}", all.join(", "))
            })?),
        };
        let found = self.find(&p.run).await?;
        Ok(to_text(&json!({
            "run": found.run.id.as_str(),
            "state": found.run.state.as_str(),
            "tasks": view::task_rows(&found.run, state),
        })))
    }

    /// The output (stdout, stderr, and taskdeck's own lines) of one attempt of a task, the
    /// latest attempt unless `attempt` is given; the last 100 lines unless `tail` says otherwise.
    #[tool(annotations(title = "Read a task's log", read_only_hint = true))]
    async fn task_log(&self, Parameters(p): Parameters<LogParams>) -> Answer {
        let found = self.find(&p.run).await?;
        let run = &found.run;
        let idx = task_index(run, &p.task)?;
        let task = &run.tasks[idx];
        let Some(last) = task.attempts.last().map(|a| a.number) else {
            return Err(format!(
                "task `{}` has not started yet (state: {}), so it has no log",
                p.task, task.state
            ));
        };
        let attempt = p.attempt.unwrap_or(last);
        if !task.attempts.iter().any(|a| a.number == attempt) {
            return Err(format!(
                "task `{}` has no attempt {attempt}; its attempts are 1 to {last}",
                p.task
            ));
        }
        let lines = if found.live {
            self.console.task_log(&run.id, idx as u32, attempt, 0).await
        } else {
            self.console
                .past_log(&run.id, Some((idx as u32, p.task.clone())), attempt, 0)
                .await
        }
        .map_err(console_err)?;
        Ok(view::log_text(
            &p.task,
            attempt,
            &lines,
            p.tail.unwrap_or(DEFAULT_TAIL),
        ))
    }

    /// Run a failed, cancelled or blocked task again (a new attempt; tasks waiting on it go on
    /// when it succeeds).
    #[tool(annotations(title = "Retry a task", destructive_hint = false))]
    async fn retry_task(&self, Parameters(p): Parameters<TaskParams>) -> Answer {
        self.task_command(&p.run, &p.task, "retry", |run, task| Command::RetryTask {
            run,
            task,
        })
        .await
    }

    /// Run a task and everything downstream of it again, even if they succeeded.
    #[tool(annotations(title = "Re-run from a task", destructive_hint = false))]
    async fn rerun_task(&self, Parameters(p): Parameters<TaskParams>) -> Answer {
        self.task_command(&p.run, &p.task, "rerun", |run, task| Command::RerunFrom {
            run,
            task,
        })
        .await
    }

    /// Approve a task that waits for approval (`approval = true` in the workflow), so it runs.
    #[tool(annotations(title = "Approve a task", destructive_hint = false))]
    async fn approve_task(&self, Parameters(p): Parameters<TaskParams>) -> Answer {
        self.task_command(&p.run, &p.task, "approve", |run, task| Command::Approve {
            run,
            task,
        })
        .await
    }

    /// Cancel a whole run, or only one of its tasks (`task`): running processes are stopped;
    /// tasks that need a cancelled one are blocked.
    #[tool(annotations(title = "Cancel a run or task", destructive_hint = true))]
    async fn cancel(&self, Parameters(p): Parameters<RunOrTaskParams>) -> Answer {
        match p.task {
            Some(task) => {
                self.task_command(&p.run, &task, "cancel", |run, task| Command::CancelTask {
                    run,
                    task,
                })
                .await
            }
            None => {
                self.run_command(&p.run, "cancel", |run| Command::CancelRun { run })
                    .await
            }
        }
    }

    /// Pause a whole run (no new task starts; running ones finish), or one task (`task`).
    #[tool(annotations(title = "Pause a run or task", destructive_hint = false))]
    async fn pause(&self, Parameters(p): Parameters<RunOrTaskParams>) -> Answer {
        match p.task {
            Some(task) => {
                self.task_command(&p.run, &task, "pause", |run, task| Command::PauseTask {
                    run,
                    task,
                })
                .await
            }
            None => {
                self.run_command(&p.run, "pause", |run| Command::PauseRun { run })
                    .await
            }
        }
    }

    /// Resume a paused run or task (`task`). An interrupted run (its process stopped before it
    /// finished) is taken over by this engine: finished tasks are kept, the rest run.
    #[tool(annotations(title = "Resume a run or task", destructive_hint = false))]
    async fn resume(&self, Parameters(p): Parameters<RunOrTaskParams>) -> Answer {
        let found = self.find(&p.run).await?;
        if !found.live && p.task.is_none() && !found.run.state.is_terminal() {
            let (recovered, warnings) = self
                .console
                .resume(&found.run.id)
                .await
                .map_err(console_err)?;
            return Ok(to_text(&json!({
                "run": recovered.run.as_str(),
                "resumed": true,
                "finished_tasks": recovered.finished,
                "tasks": recovered.tasks,
                "warnings": warnings,
            })));
        }
        match p.task {
            Some(task) => {
                self.task_command(&p.run, &task, "resume", |run, task| Command::ResumeTask {
                    run,
                    task,
                })
                .await
            }
            None => {
                self.run_command(&p.run, "resume", |run| Command::ResumeRun { run })
                    .await
            }
        }
    }
}

impl TaskdeckMcp {
    /// Finds a run by id or unique prefix among the engine's runs and the store's.
    async fn find(&self, wanted: &str) -> Result<Found, String> {
        let wanted = wanted.trim();
        if wanted.is_empty() {
            return Err("give a run id (list_runs shows them)".into());
        }
        let snap = self.console.snapshot().await.map_err(console_err)?;
        let id = self.resolve(&snap, wanted).await?;
        if let Some(run) = snap.runs.get(&id) {
            return Ok(Found {
                run: Box::new(run.clone()),
                live: true,
            });
        }
        let past = self.console.open_past(&id).await.map_err(console_err)?;
        Ok(Found {
            run: past.run,
            live: false,
        })
    }

    async fn resolve(&self, snap: &EngineState, wanted: &str) -> Result<RunId, String> {
        let exact = RunId::from(wanted);
        if snap.runs.contains_key(&exact) {
            return Ok(exact);
        }
        let mut ids: Vec<RunId> = snap.runs.keys().cloned().collect();
        match self.console.history().await {
            Ok(entries) => ids.extend(entries.into_iter().map(|e| e.id)),
            Err(ConsoleError::Refused(_)) => {} // no store: live runs only
            Err(e) => return Err(console_err(e)),
        }
        ids.sort();
        ids.dedup();
        if ids.contains(&exact) {
            return Ok(exact);
        }
        let matching: Vec<&RunId> = ids
            .iter()
            .filter(|id| id.as_str().starts_with(wanted))
            .collect();
        match matching.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(format!("no run `{wanted}` here (list_runs shows the runs)")),
            many => Err(format!(
                "`{wanted}` matches {} runs ({}); give more of the id",
                many.len(),
                many.iter()
                    .take(5)
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    /// A run the engine executes now, or an error saying why commands cannot reach it.
    async fn live_run(&self, wanted: &str) -> Result<Found, String> {
        let found = self.find(wanted).await?;
        if !found.live {
            let state = found.run.state;
            return Err(if state.is_terminal() {
                format!(
                    "run {} has finished ({state}); submit it again to run it anew",
                    found.run.id
                )
            } else {
                format!(
                    "run {} is interrupted: nobody executes it. `resume` takes it over first",
                    found.run.id
                )
            });
        }
        Ok(found)
    }

    async fn run_command(
        &self,
        wanted: &str,
        verb: &str,
        make: impl FnOnce(RunId) -> Command,
    ) -> Answer {
        let found = self.live_run(wanted).await?;
        let id = found.run.id.clone();
        self.console
            .command(make(id.clone()))
            .await
            .map_err(console_err)?;
        Ok(format!(
            "{verb}: run {id} — done; run_status shows where it is now"
        ))
    }

    async fn task_command(
        &self,
        wanted: &str,
        task: &str,
        verb: &str,
        make: impl FnOnce(RunId, String) -> Command,
    ) -> Answer {
        let found = self.live_run(wanted).await?;
        let idx = task_index(&found.run, task)?;
        let id = found.run.id.clone();
        self.console
            .command(make(id.clone(), task.to_string()))
            .await
            .map_err(console_err)?;
        Ok(format!(
            "{verb}: task `{task}` of run {id} — done (it was {}); list_tasks shows where it is now",
            found.run.tasks[idx].state
        ))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for TaskdeckMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("taskdeck", env!("CARGO_PKG_VERSION")))
            .with_instructions(format!(
                "{INSTRUCTIONS} This server drives the {} engine.",
                self.console.location()
            ))
    }
}
