//! The one interface a console (the TUI) uses to reach an engine: `Local` wraps an embedded
//! `EngineHandle`; a `Remote` HTTP client joins later. The TUI never touches `EngineHandle`.
//!
//! A client follows the engine with "list + watch": `snapshot()` once, then `events(seq)` from
//! the snapshot's `last_seq` on, folding every event into its own `EngineState`. Logs are pulled
//! (`task_log`/`engine_log` from a line number on) whenever `log_feed` says something new arrived.

use tokio::sync::broadcast;

use crate::engine::state::EngineState;
use crate::engine::{EngineError, EngineHandle, Subscription};
use crate::exec::{AttemptKey, Purpose};
use crate::model::{Command, Event, LogLine, RunId, TaskIdx};
use crate::spec::Workflow;
use std::sync::Arc;

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
}

impl Console {
    /// Shown in the status bar.
    pub fn location(&self) -> &'static str {
        match self {
            Console::Local(_) => "local",
        }
    }

    pub async fn submit(
        &self,
        workflow: Workflow,
        source: Option<String>,
    ) -> Result<RunId, ConsoleError> {
        match self {
            Console::Local(e) => Ok(e.submit(workflow, source).await?),
        }
    }

    pub async fn command(&self, cmd: Command) -> Result<(), ConsoleError> {
        match self {
            Console::Local(e) => Ok(e.command(cmd).await?),
        }
    }

    pub async fn snapshot(&self) -> Result<Box<EngineState>, ConsoleError> {
        match self {
            Console::Local(e) => Ok(e.snapshot().await?),
        }
    }

    /// Every event after `from_seq`, then live ones, with no gap and no duplicate.
    pub async fn events(&self, from_seq: u64) -> Result<EventFeed, ConsoleError> {
        match self {
            Console::Local(e) => Ok(EventFeed::Local(e.subscribe(from_seq).await?)),
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
                Ok(e.logs().lines(&key, since))
            }
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
        }
    }

    /// Notices of new log lines (of any attempt) from now on.
    pub fn log_feed(&self) -> LogFeed {
        match self {
            Console::Local(e) => LogFeed::Local(e.logs().subscribe()),
        }
    }

    /// Stops the engine (local) or lets go of it (remote).
    pub async fn shutdown(&self) {
        match self {
            Console::Local(e) => {
                let _ = e.shutdown().await;
            }
        }
    }
}

pub enum EventFeed {
    Local(Subscription),
}

impl EventFeed {
    /// The next event, or `None` once the engine is gone.
    pub async fn next(&mut self) -> Option<Arc<Event>> {
        match self {
            EventFeed::Local(s) => s.next().await,
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
        }
    }
}
