//! `Console::Remote`: the same console over a taskdeck server's HTTP API.
//!
//! Nothing here runs on the console's loop: every call is awaited on a task of its own. The
//! event feed is a task that follows `/events?since=` and, when the connection drops, tries
//! again with capped exponential backoff from the last sequence number it delivered (no gap, no
//! duplicate); when the server says it cannot serve that number (`lagged`, `reset`: it fell
//! behind or the server restarted with less history), it reads the snapshot again and hands
//! it over whole. A pinger measures the round trip and notices a connection that hangs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, mpsc, watch};

use super::link::{Link, LinkState, backoff, server_label};
use super::{ConsoleError, FeedItem};
use crate::client::{Client, ClientError, StreamItem};
use crate::engine::state::EngineState;
use crate::history::{HistoryEntry, PastRun};
use crate::model::{Command, EventKind, LogLine, RunId, TaskIdx, now_millis};

/// Time between pings while connected.
const PING_EVERY: Duration = Duration::from_secs(3);
/// A ping without an answer in this time counts as a dropped connection.
const PING_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a request may go unanswered before it counts as failed (the console never
/// waits on it, but the operator should hear about it).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// How often the log pane asks for new lines (the server has no feed of all logs).
pub const LOG_POLL: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct Remote {
    client: Client,
    link: Arc<watch::Sender<Link>>,
    /// Task ids by index for each run seen, so log requests can name the task.
    names: Arc<Mutex<HashMap<RunId, Arc<Vec<String>>>>>,
    /// Tells the event feed to drop its connection and start again (a ping failed).
    redial: Arc<Notify>,
}

impl Remote {
    pub fn new(client: Client) -> Remote {
        let (link, _) = watch::channel(Link::new(server_label(client.base())));
        Remote {
            client,
            link: Arc::new(link),
            names: Arc::default(),
            redial: Arc::new(Notify::new()),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn link(&self) -> watch::Receiver<Link> {
        self.link.subscribe()
    }

    fn set_state(&self, state: LinkState) {
        self.link.send_if_modified(|l| {
            let changed = l.state != state;
            l.state = state;
            changed
        });
    }

    fn note_latency(&self, took: Duration) {
        let ms = took.as_millis() as u64;
        self.link.send_if_modified(|l| {
            let changed = l.latency_ms != Some(ms);
            l.latency_ms = Some(ms);
            changed
        });
    }

    /// Runs a request, timing it: a real request is as good a latency probe as a ping.
    async fn timed<T>(
        &self,
        f: impl std::future::Future<Output = Result<T, ClientError>>,
    ) -> Result<T, ConsoleError> {
        let started = Instant::now();
        let r = match tokio::time::timeout(REQUEST_TIMEOUT, f).await {
            Ok(r) => r,
            Err(_) => {
                return Err(ConsoleError::Unavailable(format!(
                    "no answer from the server in {}s",
                    REQUEST_TIMEOUT.as_secs()
                )));
            }
        };
        match &r {
            Ok(_) | Err(ClientError::Api { .. } | ClientError::Denied { .. }) => {
                self.note_latency(started.elapsed())
            }
            Err(_) => {}
        }
        r.map_err(refusal)
    }

    fn remember(&self, st: &EngineState) {
        let mut names = self.names.lock().unwrap_or_else(|p| p.into_inner());
        for (id, run) in &st.runs {
            names.entry(id.clone()).or_insert_with(|| {
                Arc::new(run.workflow.tasks.iter().map(|t| t.id.clone()).collect())
            });
        }
    }

    fn task_name(&self, run: &RunId, task: TaskIdx) -> Option<String> {
        let names = self.names.lock().unwrap_or_else(|p| p.into_inner());
        names.get(run)?.get(task as usize).cloned()
    }

    pub async fn snapshot(&self) -> Result<Box<EngineState>, ConsoleError> {
        let st = self.timed(self.client.state()).await?;
        self.remember(&st);
        Ok(Box::new(st))
    }

    pub async fn submit(&self, source: Option<String>, json: bool) -> Result<RunId, ConsoleError> {
        let text = source.ok_or_else(|| {
            ConsoleError::Refused("the workflow file's text is needed to send it".into())
        })?;
        let done = self.timed(self.client.submit(text, json)).await?;
        Ok(RunId::from(done.id.as_str()))
    }

    pub async fn command(&self, cmd: Command) -> Result<(), ConsoleError> {
        let (run, task, action) = match &cmd {
            Command::PauseRun { run } => (run, None, "pause"),
            Command::ResumeRun { run } => (run, None, "resume"),
            Command::CancelRun { run } => (run, None, "cancel"),
            Command::PauseTask { run, task } => (run, Some(task), "pause"),
            Command::ResumeTask { run, task } => (run, Some(task), "resume"),
            Command::CancelTask { run, task } => (run, Some(task), "cancel"),
            Command::RetryTask { run, task } => (run, Some(task), "retry"),
            Command::RerunFrom { run, task } => (run, Some(task), "rerun"),
            Command::Approve { run, task } => (run, Some(task), "approve"),
        };
        self.timed(
            self.client
                .command(run.as_str(), task.map(|t| t.as_str()), action),
        )
        .await
        .map(|_| ())
    }

    pub async fn task_log(
        &self,
        run: &RunId,
        task: TaskIdx,
        attempt: u32,
        since: usize,
    ) -> Result<Vec<LogLine>, ConsoleError> {
        let Some(name) = self.task_name(run, task) else {
            return Ok(Vec::new());
        };
        let page = self
            .timed(
                self.client
                    .task_log(run.as_str(), &name, Some(attempt), since),
            )
            .await?;
        Ok(page.lines)
    }

    pub async fn engine_log(
        &self,
        run: &RunId,
        since: usize,
    ) -> Result<Vec<LogLine>, ConsoleError> {
        let page = self
            .timed(self.client.engine_log(run.as_str(), since))
            .await?;
        Ok(page.lines)
    }

    pub async fn history(&self) -> Result<Vec<HistoryEntry>, ConsoleError> {
        let list = self.timed(self.client.runs()).await?;
        Ok(list
            .runs
            .into_iter()
            .map(|r| HistoryEntry {
                id: RunId::from(r.id.as_str()),
                workflow: r.workflow,
                version_no: r.version.unwrap_or(1),
                state: r.state,
                submitted_at: r.submitted_at,
                finished_at: r.finished_at,
                tasks: r.tasks,
                counts: r.counts,
            })
            .collect())
    }

    pub async fn open_past(&self, run: &RunId) -> Result<PastRun, ConsoleError> {
        let run = self.timed(self.client.run_state(run.as_str())).await?;
        Ok(PastRun {
            run: Box::new(run),
            damaged: 0,
        })
    }

    /// A past run's task log, or its engine log (`task` is `None`): the server reads the
    /// files its journal indexes.
    pub async fn past_log(
        &self,
        run: &RunId,
        task: Option<(TaskIdx, String)>,
        attempt: u32,
        since: usize,
    ) -> Result<Vec<LogLine>, ConsoleError> {
        let Some((idx, name)) = task else {
            let page = self
                .timed(self.client.engine_log(run.as_str(), since))
                .await?;
            return Ok(page.lines);
        };
        let page = self
            .timed(
                self.client
                    .task_log(run.as_str(), &name, Some(attempt), since),
            )
            .await?;
        Ok(page
            .lines
            .into_iter()
            .map(|mut l| {
                l.task = Some(idx);
                l
            })
            .collect())
    }

    /// The event feed: a task of its own follows the server, the console reads a channel.
    pub fn events(&self, from_seq: u64) -> mpsc::Receiver<FeedItem> {
        let (tx, rx) = mpsc::channel(1024);
        let me = self.clone();
        tokio::spawn(async move { me.follow(from_seq, tx).await });
        let me = self.clone();
        tokio::spawn(async move { me.ping().await });
        rx
    }

    async fn follow(self, mut last: u64, tx: mpsc::Sender<FeedItem>) {
        let mut failures = 0u32;
        loop {
            let open = tokio::time::timeout(PING_TIMEOUT, self.client.events(Some(last), None));
            let why = match open.await.unwrap_or_else(|_| {
                Err(ClientError::Connect {
                    url: self.client.base().to_string(),
                    detail: "no answer in time".into(),
                })
            }) {
                Ok(mut stream) => {
                    self.set_state(LinkState::Connected);
                    failures = 0;
                    loop {
                        let item = tokio::select! {
                            item = stream.next() => item,
                            _ = self.redial.notified() => break "the server stopped answering".to_string(),
                            _ = tx.closed() => return,
                        };
                        match item {
                            Some(Ok(StreamItem::Event(ev))) => {
                                // A resumed stream never repeats, but a duplicate costs nothing
                                // to drop here and would corrupt the fold.
                                if ev.seq <= last {
                                    continue;
                                }
                                last = ev.seq;
                                if let EventKind::RunSubmitted { workflow, .. } = &ev.kind {
                                    let ids = workflow.tasks.iter().map(|t| t.id.clone()).collect();
                                    self.names
                                        .lock()
                                        .unwrap_or_else(|p| p.into_inner())
                                        .insert(ev.run.clone(), Arc::new(ids));
                                }
                                if tx.send(FeedItem::Event(Arc::new(*ev))).await.is_err() {
                                    return;
                                }
                            }
                            Some(Ok(StreamItem::Notice(n))) if n.kind != "closing" => {
                                // Fell behind, or the server cannot resume from `last`: start
                                // over from a fresh snapshot.
                                match self.snapshot().await {
                                    Ok(st) => {
                                        last = st.last_seq;
                                        if tx.send(FeedItem::Reset(st)).await.is_err() {
                                            return;
                                        }
                                        break String::new();
                                    }
                                    Err(e) => break e.to_string(),
                                }
                            }
                            Some(Ok(StreamItem::Notice(_))) => {
                                break "the server is shutting down".to_string();
                            }
                            Some(Err(e)) => break e.to_string(),
                            None => break "the server closed the event stream".to_string(),
                        }
                    }
                }
                Err(ClientError::Denied { detail, .. }) => {
                    self.set_state(LinkState::Refused(detail.clone()));
                    detail
                }
                Err(e) => e.to_string(),
            };
            if why.is_empty() {
                continue;
            }
            failures += 1;
            let wait = backoff(failures);
            if !matches!(self.link.borrow().state, LinkState::Refused(_)) {
                self.set_state(LinkState::Reconnecting {
                    at: now_millis() + wait.as_millis() as u64,
                    why,
                });
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = tx.closed() => return,
            }
        }
    }

    /// Measures the round trip while connected; a hung connection makes the feed start over.
    async fn ping(self) {
        let mut misses = 0;
        loop {
            tokio::time::sleep(PING_EVERY).await;
            if Arc::strong_count(&self.redial) <= 1 {
                return;
            }
            if !self.link.borrow().healthy() {
                continue;
            }
            let started = Instant::now();
            match tokio::time::timeout(PING_TIMEOUT, self.client.health()).await {
                Ok(Ok(_)) => {
                    misses = 0;
                    self.note_latency(started.elapsed());
                }
                _ => {
                    misses += 1;
                    if misses >= 2 {
                        misses = 0;
                        self.redial.notify_one();
                    }
                }
            }
        }
    }
}

/// The server's 403 ("this token's role is viewer; POST … needs operator") in a few words
/// that fit a narrow status bar.
pub fn polite_refusal(detail: &str) -> String {
    let word_after = |key: &str| {
        let rest = &detail[detail.find(key)? + key.len()..];
        rest.split(|c: char| !c.is_alphanumeric()).next()
    };
    match (word_after("role is "), word_after("needs ")) {
        (Some(have), Some(need)) => {
            format!("refused: needs an {need} token (this one is a {have}'s)")
        }
        _ => format!("refused: {detail}"),
    }
}

/// A client error as the operator should read it in the status bar.
fn refusal(e: ClientError) -> ConsoleError {
    match e {
        ClientError::Denied {
            status: 403,
            detail,
        } => ConsoleError::Refused(polite_refusal(&detail)),
        ClientError::Denied { detail, .. } => ConsoleError::Refused(detail),
        ClientError::Api {
            detail, problems, ..
        } => match problems.first().and_then(|p| p.lines().next()) {
            Some(first) => ConsoleError::Refused(format!("{detail}: {first}")),
            None => ConsoleError::Refused(detail),
        },
        other => ConsoleError::Unavailable(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_viewer_is_refused_in_few_words() {
        assert_eq!(
            polite_refusal(
                "this token's role is viewer; POST /api/v1/runs/x/tasks/y/retry needs operator"
            ),
            "refused: needs an operator token (this one is a viewer's)"
        );
        assert_eq!(polite_refusal("no"), "refused: no");
    }
}
