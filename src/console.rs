//! The one interface a console (the TUI) uses to reach an engine: `Local` wraps an embedded
//! `EngineHandle`, `Remote` a taskdeck server's HTTP API (`remote`). The TUI never knows which.
//!
//! A client follows the engine with "list + watch": `snapshot()` once, then `events(seq)` from
//! the snapshot's `last_seq` on, folding every event into its own `EngineState`. Logs are pulled
//! (`task_log`/`engine_log` from a line number on) whenever `log_feed` says something new arrived.

pub mod link;
pub mod remote;

use tokio::sync::{broadcast, mpsc, watch};

pub use link::{Link, LinkState};
pub use remote::Remote;

use crate::engine::state::EngineState;
use crate::engine::{EngineError, EngineHandle, Recovered, Subscription};
use crate::exec::{AttemptKey, Purpose};
use crate::history::{self, HistoryEntry, PastRun};
use crate::model::{Command, Event, EventKind, LogLine, RunId, TaskIdx, now_millis};
use crate::spec::Workflow;
use crate::store::Journal;
use std::path::PathBuf;
use std::sync::Arc;

use crate::config::Config;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsoleError {
    /// The engine said no, politely: show the message to the operator.
    #[error("{0}")]
    Refused(String),
    /// The engine is gone (stopped, or unreachable).
    #[error("{0}")]
    Unavailable(String),
}

impl From<EngineError> for ConsoleError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Stopped => ConsoleError::Unavailable(e.to_string()),
            other => ConsoleError::Refused(other.to_string()),
        }
    }
}

/// Where the console's engine lives.
#[derive(Clone)]
pub enum Console {
    Local(EngineHandle),
    Remote(Remote),
}

impl Console {
    /// Shown in the status bar.
    pub fn location(&self) -> &'static str {
        match self {
            Console::Local(_) => "local",
            Console::Remote(_) => "remote",
        }
    }

    /// A remote console's connection (state and latency) as it changes; `None` locally.
    pub fn link(&self) -> Option<watch::Receiver<Link>> {
        match self {
            Console::Local(_) => None,
            Console::Remote(r) => Some(r.link()),
        }
    }

    pub async fn submit(
        &self,
        workflow: Workflow,
        source: Option<String>,
    ) -> Result<RunId, ConsoleError> {
        match self {
            Console::Local(e) => Ok(e.submit(workflow, source).await?),
            // The server reads the file's text itself (and checks it against its own agents).
            Console::Remote(r) => {
                let json = source
                    .as_deref()
                    .is_some_and(|s| s.trim_start().starts_with('{'));
                r.submit(source, json).await
            }
        }
    }

    /// Starts a run of a workflow file (`:run FILE`). Locally it is loaded and checked here;
    /// a remote console reads the text and lets the server check it against its own agents.
    pub async fn submit_file(&self, path: PathBuf, config: &Config) -> Result<RunId, String> {
        if let Console::Remote(r) = self {
            let text = tokio::fs::read_to_string(&path)
                .await
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let json = path.extension().is_some_and(|e| e == "json");
            return r
                .submit(Some(text), json)
                .await
                .map_err(|e| format!("{}: {e}", path.display()));
        }
        let p = path.clone();
        let cfg = config.clone();
        let loaded = tokio::task::spawn_blocking(move || {
            let wf = crate::spec::load_path(&p, &cfg)?;
            let text = std::fs::read_to_string(&p).ok();
            Ok::<_, crate::spec::LoadError>((wf, text))
        })
        .await
        .map_err(|e| format!("cannot load {}: {e}", path.display()))?;
        match loaded {
            Ok((wf, text)) => self.submit(wf, text).await.map_err(|e| e.to_string()),
            Err(crate::spec::LoadError::Read { path, source }) => {
                Err(format!("cannot read {}: {source}", path.display()))
            }
            Err(crate::spec::LoadError::Invalid(diags)) => {
                let first = diags.first().map(|d| d.to_string()).unwrap_or_default();
                let first = first.lines().next().unwrap_or("").to_string();
                Err(format!(
                    "{}: {} problem{} (see `taskdeck validate`): {first}",
                    path.display(),
                    diags.len(),
                    if diags.len() == 1 { "" } else { "s" }
                ))
            }
        }
    }

    pub async fn command(&self, cmd: Command) -> Result<(), ConsoleError> {
        match self {
            Console::Local(e) => Ok(e.command(cmd).await?),
            Console::Remote(r) => r.command(cmd).await,
        }
    }

    pub async fn snapshot(&self) -> Result<Box<EngineState>, ConsoleError> {
        match self {
            Console::Local(e) => Ok(e.snapshot().await?),
            Console::Remote(r) => r.snapshot().await,
        }
    }

    /// Every event after `from_seq`, then live ones, with no gap and no duplicate. A remote
    /// feed reconnects by itself; when it cannot resume it hands over a fresh snapshot.
    pub async fn events(&self, from_seq: u64) -> Result<EventFeed, ConsoleError> {
        match self {
            Console::Local(e) => Ok(EventFeed::Local(e.subscribe(from_seq).await?)),
            Console::Remote(r) => Ok(EventFeed::Remote(r.events(from_seq))),
        }
    }

    /// Lines of a task attempt from line number `since` on.
    pub async fn task_log(
        &self,
        run: &RunId,
        task: TaskIdx,
        attempt: u32,
        since: usize,
    ) -> Result<Vec<LogLine>, ConsoleError> {
        match self {
            Console::Local(e) => {
                let key = AttemptKey {
                    run: run.clone(),
                    task,
                    attempt,
                    purpose: Purpose::Task,
                };
                let lines = e.logs().lines(&key, since);
                if lines.is_empty() && since == 0 && e.logs().line_count(&key) == 0 {
                    // An attempt of a resumed run that ended before this process took the run
                    // over: only its file knows it.
                    let path = e.logs().attempt_path_of(&key);
                    return read_log_file(path, run.clone(), Some(task), attempt, 0).await;
                }
                Ok(lines)
            }
            Console::Remote(r) => r.task_log(run, task, attempt, since).await,
        }
    }

    /// Lines of the engine's own log of `run` from line number `since` on.
    pub async fn engine_log(
        &self,
        run: &RunId,
        since: usize,
    ) -> Result<Vec<LogLine>, ConsoleError> {
        match self {
            Console::Local(e) => Ok(e.logs().engine_lines(run, since)),
            Console::Remote(r) => r.engine_log(run, since).await,
        }
    }

    /// Notices of new log lines (of any attempt) from now on.
    pub fn log_feed(&self) -> LogFeed {
        match self {
            Console::Local(e) => LogFeed::Local(e.logs().subscribe()),
            Console::Remote(_) => {
                let mut every = tokio::time::interval(remote::LOG_POLL);
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                LogFeed::Poll(every)
            }
        }
    }

    /// Runs in the store, newest first (live ones included: the caller tells them apart).
    pub async fn history(&self) -> Result<Vec<HistoryEntry>, ConsoleError> {
        match self {
            Console::Local(e) => {
                let runs = journal(e)?.read(|b| b.runs()).await.map_err(store_err)?;
                let now = now_millis();
                Ok(runs.iter().map(|r| HistoryEntry::of(r, now)).collect())
            }
            Console::Remote(r) => r.history().await,
        }
    }

    /// A past run rebuilt from its journaled events, for reading only. The events are read on
    /// the journal's thread and folded on a blocking thread, so neither the console nor the
    /// engine waits on a big run.
    pub async fn open_past(&self, run: &RunId) -> Result<PastRun, ConsoleError> {
        match self {
            Console::Local(e) => {
                let id = run.clone();
                let started = std::time::Instant::now();
                let (stored, orphaned) = journal(e)?
                    .read(move |b| {
                        let now = now_millis();
                        let orphaned = b
                            .runs()?
                            .iter()
                            .any(|r| r.row.id == id && r.is_orphaned(now));
                        Ok((b.run_events(&id)?, orphaned))
                    })
                    .await
                    .map_err(store_err)?;
                let read = started.elapsed();
                let id = run.clone();
                tokio::task::spawn_blocking(move || {
                    let n = stored.len();
                    let events = stored.into_iter().map(|s| s.event.ok());
                    let past = history::fold_run(&id, events, orphaned);
                    tracing::info!(
                        run = %id,
                        events = n,
                        read_ms = read.as_millis() as u64,
                        fold_ms = (started.elapsed() - read).as_millis() as u64,
                        "opened a past run"
                    );
                    past
                })
                .await
                .map_err(|e| ConsoleError::Unavailable(e.to_string()))?
                .ok_or_else(|| {
                    ConsoleError::Refused(format!(
                        "the journal of run {run} does not begin with its submission"
                    ))
                })
            }
            Console::Remote(r) => r.open_past(run).await,
        }
    }

    /// Lines of a past run's log from line `since` on: a task attempt's (`task` is its index
    /// and id) or the engine's (`None`). Read from the file the journal indexes, or where the
    /// engine writes it when the run's process died before indexing it.
    pub async fn past_log(
        &self,
        run: &RunId,
        task: Option<(TaskIdx, String)>,
        attempt: u32,
        since: usize,
    ) -> Result<Vec<LogLine>, ConsoleError> {
        match self {
            Console::Local(e) => {
                let path = match &task {
                    Some((idx, name)) => {
                        let id = run.clone();
                        let files = journal(e)?
                            .read(move |b| b.log_files(&id))
                            .await
                            .map_err(store_err)?;
                        match files
                            .into_iter()
                            .find(|f| &f.task == name && f.attempt == attempt)
                        {
                            Some(f) => std::path::PathBuf::from(f.path),
                            None => e.logs().attempt_path_of(&AttemptKey {
                                run: run.clone(),
                                task: *idx,
                                attempt,
                                purpose: Purpose::Task,
                            }),
                        }
                    }
                    None => e.logs().engine_path_of(run),
                };
                read_log_file(path, run.clone(), task.map(|t| t.0), attempt, since).await
            }
            Console::Remote(r) => r.past_log(run, task, attempt, since).await,
        }
    }

    /// Takes over an interrupted run: it goes on in this console's engine. Returns what was
    /// recovered and warnings (a damaged journal tail that was cut).
    pub async fn resume(&self, run: &RunId) -> Result<(Recovered, Vec<String>), ConsoleError> {
        match self {
            Console::Local(e) => Ok(e.resume(run).await?),
            Console::Remote(_) => Err(ConsoleError::Refused(format!(
                "a server takes interrupted runs over when it starts; restart `taskdeck serve`, or `taskdeck resume {run}` on its machine"
            ))),
        }
    }

    /// Starts a new run of exactly the workflow version `run` used.
    pub async fn rerun(&self, run: &RunId) -> Result<RunId, ConsoleError> {
        match self {
            Console::Local(e) => {
                let id = run.clone();
                let first = journal(e)?
                    .read(move |b| b.submission(&id))
                    .await
                    .map_err(store_err)?;
                match first.map(|ev| ev.kind) {
                    Some(EventKind::RunSubmitted { workflow, source }) => {
                        Ok(e.submit((*workflow).clone(), source).await?)
                    }
                    _ => Err(ConsoleError::Refused(format!(
                        "the journal holds no submission for run {run}"
                    ))),
                }
            }
            Console::Remote(r) => {
                // The run's recorded workflow text, sent back as a new run.
                let past = r.open_past(run).await?;
                let source = past.run.source.clone().ok_or_else(|| {
                    ConsoleError::Refused(format!(
                        "the server keeps no workflow text for run {run}"
                    ))
                })?;
                let json = source.trim_start().starts_with('{');
                r.submit(Some(source), json).await
            }
        }
    }

    /// Stops the engine (local) or lets go of it (remote).
    pub async fn shutdown(&self) {
        match self {
            Console::Local(e) => {
                let _ = e.shutdown().await;
            }
            // The feed and pinger end when the console drops their receivers.
            Console::Remote(_) => {}
        }
    }
}

fn journal(e: &EngineHandle) -> Result<&Journal, ConsoleError> {
    e.journal().ok_or_else(|| {
        ConsoleError::Refused("no history: this console keeps no store (--store memory)".into())
    })
}

/// Lines of a log file from line `since` on, read on a blocking thread. A task that printed
/// nothing has no file: no lines.
async fn read_log_file(
    path: std::path::PathBuf,
    run: RunId,
    task: Option<TaskIdx>,
    attempt: u32,
    since: usize,
) -> Result<Vec<LogLine>, ConsoleError> {
    tokio::task::spawn_blocking(move || match std::fs::read_to_string(&path) {
        Ok(text) => Ok(history::parse_log(&text, since, &run, task, attempt)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(ConsoleError::Refused(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    })
    .await
    .map_err(|e| ConsoleError::Unavailable(e.to_string()))?
}

fn store_err(e: crate::store::StoreError) -> ConsoleError {
    ConsoleError::Unavailable(e.to_string())
}

/// What an event feed delivers.
#[derive(Debug)]
pub enum FeedItem {
    Event(Arc<Event>),
    /// The feed could not resume without a gap: this is the whole state now, follow on from
    /// its `last_seq` (the feed already does).
    Reset(Box<EngineState>),
}

pub enum EventFeed {
    Local(Subscription),
    Remote(mpsc::Receiver<FeedItem>),
}

impl EventFeed {
    /// The next event (or fresh snapshot), or `None` once the engine is gone.
    pub async fn next(&mut self) -> Option<FeedItem> {
        match self {
            EventFeed::Local(s) => s.next().await.map(FeedItem::Event),
            EventFeed::Remote(rx) => rx.recv().await,
        }
    }
}

/// What the log feed tells.
#[derive(Debug, Clone, PartialEq)]
pub enum LogNotice {
    Line(LogLine),
    /// Some notices were lost: re-read whatever is on screen.
    Missed,
}

pub enum LogFeed {
    Local(broadcast::Receiver<LogLine>),
    /// A remote console asks for the shown log's new lines now and then.
    Poll(tokio::time::Interval),
}

impl LogFeed {
    /// The next notice, or `None` once the engine is gone.
    pub async fn next(&mut self) -> Option<LogNotice> {
        match self {
            LogFeed::Local(rx) => match rx.recv().await {
                Ok(l) => Some(LogNotice::Line(l)),
                Err(broadcast::error::RecvError::Lagged(_)) => Some(LogNotice::Missed),
                Err(broadcast::error::RecvError::Closed) => None,
            },
            LogFeed::Poll(every) => {
                every.tick().await;
                Some(LogNotice::Missed)
            }
        }
    }
}
