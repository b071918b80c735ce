//! The engine actor: one tokio task owns `EngineState`, turns commands and executor reports into
//! events, applies them, and broadcasts them with a gap-free sequence number.

mod branches;
mod health;
mod rows;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::sync::{broadcast, mpsc, oneshot};

use super::context::{self, Secrets};
use super::http::{self as http_agent, Assigned, Assignment};
use super::llm;
use super::retry;
use super::scheduler::{self, Dispatch};
use super::state::{EngineState, Limits};
use crate::config::Config;
use crate::exec::{
    self, AttemptKey, Control, ExecHandle, ExecMsg, ExecReport, ExecRequest, ExecResult, Purpose,
    Redactor, Work,
};
use crate::expr::Expr;
use crate::logs::LogStore;
use crate::model::{
    AttemptOutcome, Command, Event, EventKind, GateState, LogStream, RunId, RunState, TaskIdx,
    TaskState, now_millis,
};
use crate::spec::{Action, AgentKind, CheckKind, OnFail, SecretSource, Workflow};
use crate::store::{self, Batch, Journal, LogRecord, RunRow, WorkflowRecord};

/// Events kept for live subscribers before a slow one is told it fell behind.
const BROADCAST_CAPACITY: usize = 1 << 16;
/// Units of work (dispatches, condition checks) between looks at the inbox.
const PUMP_BUDGET: usize = 4096;
/// How long events that nothing waits on (a task's start, most often) may wait for the next
/// commit, so a short task's start and end share one. Short enough that no one sees it.
const LINGER: Duration = Duration::from_millis(5);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    #[error("no run `{0}`")]
    UnknownRun(RunId),
    #[error("run `{run}` has no task `{task}`{hint}")]
    UnknownTask {
        run: RunId,
        task: String,
        hint: String,
    },
    #[error("{0}")]
    Refused(String),
    #[error("the engine has stopped")]
    Stopped,
}

/// Where the engine keeps files and how it behaves.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    pub config: Arc<Config>,
    /// Task logs (one file per attempt).
    pub log_dir: PathBuf,
    /// Private per-attempt directories (context and outputs files).
    pub work_dir: PathBuf,
    /// Approve tasks as soon as they wait for approval (headless `--auto-approve`); the approval
    /// is still recorded as an event.
    pub auto_approve: bool,
    /// The durable journal; `None` keeps everything in memory (tests, benchmarks).
    pub journal: Option<Journal>,
    /// Where `http` agents call back (the API server's routes, or a listener of its own).
    pub callbacks: exec::http::CallbackHub,
}

impl EngineOptions {
    pub fn from_config(config: Config) -> Self {
        EngineOptions {
            config: Arc::new(config),
            log_dir: crate::paths::state_dir().join("logs"),
            work_dir: crate::paths::runtime_dir().join("work"),
            auto_approve: false,
            journal: None,
            callbacks: exec::http::CallbackHub::new(),
        }
    }
}

/// Past events after a sequence number, and the live feed from that moment on.
type Backlog = (Vec<Arc<Event>>, broadcast::Receiver<Arc<Event>>);

enum Request {
    Submit {
        workflow: Box<Workflow>,
        source: Option<String>,
        /// Paused from the start: nothing runs until the run is resumed.
        held: bool,
        reply: oneshot::Sender<Result<RunId, EngineError>>,
    },
    Command {
        cmd: Command,
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    Snapshot {
        reply: oneshot::Sender<Box<EngineState>>,
    },
    Subscribe {
        from: u64,
        reply: oneshot::Sender<Backlog>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
    Detach {
        reply: oneshot::Sender<()>,
    },
    WaitFinished {
        run: RunId,
        reply: oneshot::Sender<Result<RunState, EngineError>>,
    },
    Inspect {
        f: Box<dyn FnOnce(&EngineState) + Send>,
    },
    /// Takes over a run from its journaled events (recovery).
    Adopt {
        events: Vec<Event>,
        reply: oneshot::Sender<Result<Recovered, EngineError>>,
    },
}

/// What recovery found when it took a run over.
#[derive(Debug, Clone)]
pub struct Recovered {
    pub run: RunId,
    /// Attempts that were running when the engine died (each gets a new attempt).
    pub interrupted: Vec<String>,
    /// Tasks already finished (they never run again).
    pub finished: u32,
    pub tasks: u32,
    /// The run right after recovery, and the sequence number it stands at: a client folding
    /// events starts from this copy and applies only later events of the run.
    pub state: Box<crate::engine::state::Run>,
    pub at_seq: u64,
}

/// Work held back until the events that caused it are in the journal.
enum AfterCommit {
    Spawn(AttemptKey, Box<ExecRequest>),
    Reply(Box<dyn FnOnce() + Send>),
    Snapshot(oneshot::Sender<Box<EngineState>>),
    Subscribe(u64, oneshot::Sender<Backlog>),
    Inspect(Box<dyn FnOnce(&EngineState) + Send>),
}

/// A cheap handle to the engine; clone it freely.
#[derive(Clone)]
pub struct EngineHandle {
    tx: mpsc::UnboundedSender<Request>,
    logs: LogStore,
    journal: Option<Journal>,
    callbacks: exec::http::CallbackHub,
}

impl EngineHandle {
    /// Starts the engine on the current tokio runtime.
    pub fn start(opts: EngineOptions) -> EngineHandle {
        let (tx, rx) = mpsc::unbounded_channel();
        let d = &opts.config.defaults;
        let logs = LogStore::new(opts.log_dir.clone(), d.log_lines_in_memory, d.max_log_bytes);
        let journal = opts.journal.clone();
        let callbacks = opts.callbacks.clone();
        let actor = Actor::new(opts, logs.clone());
        tokio::spawn(actor.run(rx));
        EngineHandle {
            tx,
            logs,
            journal,
            callbacks,
        }
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Request,
    ) -> Result<T, EngineError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(make(reply))
            .map_err(|_| EngineError::Stopped)?;
        rx.await.map_err(|_| EngineError::Stopped)
    }

    /// Starts a run of `workflow` (already validated); `source` is the file text it came from.
    pub async fn submit(
        &self,
        workflow: Workflow,
        source: Option<String>,
    ) -> Result<RunId, EngineError> {
        self.ask(|reply| Request::Submit {
            workflow: Box::new(workflow),
            source,
            held: false,
            reply,
        })
        .await?
    }

    /// Starts a run that is paused before any task runs (a plan under review): resuming it
    /// starts it.
    pub async fn submit_held(
        &self,
        workflow: Workflow,
        source: Option<String>,
    ) -> Result<RunId, EngineError> {
        self.ask(|reply| Request::Submit {
            workflow: Box::new(workflow),
            source,
            held: true,
            reply,
        })
        .await?
    }

    pub async fn command(&self, cmd: Command) -> Result<(), EngineError> {
        self.ask(|reply| Request::Command { cmd, reply }).await?
    }

    /// A copy of the whole state now.
    pub async fn snapshot(&self) -> Result<Box<EngineState>, EngineError> {
        self.ask(|reply| Request::Snapshot { reply }).await
    }

    /// Every event after `from_seq`, then live ones, with no gap and no duplicate.
    pub async fn subscribe(&self, from_seq: u64) -> Result<Subscription, EngineError> {
        let (backlog, live) = self
            .ask(|reply| Request::Subscribe {
                from: from_seq,
                reply,
            })
            .await?;
        Ok(Subscription {
            engine: self.clone(),
            backlog: backlog.into(),
            live,
            last_seq: from_seq,
        })
    }

    /// Runs `f` on the engine's state inside the actor and returns its result: reading a few
    /// facts of a huge run this way costs far less than a whole `snapshot`.
    pub async fn inspect<T: Send + 'static>(
        &self,
        f: impl FnOnce(&EngineState) -> T + Send + 'static,
    ) -> Result<T, EngineError> {
        let (reply, rx) = oneshot::channel();
        let f = Box::new(move |st: &EngineState| {
            let _ = reply.send(f(st));
        });
        self.tx
            .send(Request::Inspect { f })
            .map_err(|_| EngineError::Stopped)?;
        rx.await.map_err(|_| EngineError::Stopped)
    }

    /// Waits until `run` has finished and returns how it ended.
    pub async fn wait_finished(&self, run: &RunId) -> Result<RunState, EngineError> {
        self.ask(|reply| Request::WaitFinished {
            run: run.clone(),
            reply,
        })
        .await?
    }

    /// Takes over an unfinished run from the journal (after the process that ran it died):
    /// finished tasks never run again, attempts that were running are marked `interrupted` and
    /// get a new attempt; pauses, approvals, retry timers and gate results carry over. Returns
    /// what was recovered and warnings (a damaged journal tail that was cut).
    pub async fn resume(&self, run: &RunId) -> Result<(Recovered, Vec<String>), EngineError> {
        let journal = self.journal.as_ref().ok_or_else(|| {
            EngineError::Refused("this engine has no journal to resume runs from".into())
        })?;
        let wanted = run.clone();
        let (events, warnings) = journal
            .call(move |b| store::take_over(b, &wanted))
            .await
            .map_err(|e| EngineError::Refused(e.to_string()))?;
        let recovered = self.ask(|reply| Request::Adopt { events, reply }).await??;
        for w in &warnings {
            self.logs.push_system(&recovered.run, w.clone());
        }
        Ok((recovered, warnings))
    }

    pub fn journal(&self) -> Option<&Journal> {
        self.journal.as_ref()
    }

    /// Stops without finishing anything: running processes are killed, but their runs stay
    /// unfinished in the journal and are let go, so another engine can `resume` them at once
    /// (their running attempts become `interrupted`). A graceful hand-back of in-flight work.
    pub async fn detach(&self) -> Result<(), EngineError> {
        self.ask(|reply| Request::Detach { reply }).await
    }

    /// Cancels every unfinished run, stops all processes, and waits for them.
    pub async fn shutdown(&self) -> Result<(), EngineError> {
        self.ask(|reply| Request::Shutdown { reply }).await
    }

    pub fn logs(&self) -> &LogStore {
        &self.logs
    }

    /// Where `http` agents' callbacks are delivered (the API server mounts its routes).
    pub fn callbacks(&self) -> &exec::http::CallbackHub {
        &self.callbacks
    }
}

/// A stream of events from a sequence number on.
pub struct Subscription {
    engine: EngineHandle,
    backlog: std::collections::VecDeque<Arc<Event>>,
    live: broadcast::Receiver<Arc<Event>>,
    last_seq: u64,
}

impl Subscription {
    /// The next event, or `None` once the engine has stopped.
    pub async fn next(&mut self) -> Option<Arc<Event>> {
        loop {
            if let Some(ev) = self.backlog.pop_front() {
                if ev.seq <= self.last_seq {
                    continue;
                }
                self.last_seq = ev.seq;
                return Some(ev);
            }
            match self.live.recv().await {
                Ok(ev) => {
                    if ev.seq <= self.last_seq {
                        continue;
                    }
                    self.last_seq = ev.seq;
                    return Some(ev);
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    // Fell behind the live feed: catch up from the history.
                    let fresh = self.engine.subscribe(self.last_seq).await.ok()?;
                    self.backlog = fresh.backlog;
                    self.live = fresh.live;
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }
}

/// Per-run things that are not events: secret values and what is being checked or compensated.
#[derive(Default)]
struct RunExtras {
    secrets: Secrets,
    redactor: Arc<Redactor>,
    /// Gate -> checks still running.
    gate_pending: HashMap<u32, u32>,
    /// Gate -> how many times its checks have started (tells stale reports apart).
    gate_round: HashMap<u32, u32>,
    compensating: Option<TaskIdx>,
    /// Multi-agent attempts whose judge has been started: (task, attempt, branch).
    judging: HashSet<(TaskIdx, u32, u32)>,
    /// Content hash of the workflow version (the journal's `runs.version`).
    version: String,
}

struct Actor {
    opts: EngineOptions,
    state: EngineState,
    history: Vec<Arc<Event>>,
    events: broadcast::Sender<Arc<Event>>,
    exec_tx: mpsc::UnboundedSender<ExecMsg>,
    exec_rx: mpsc::UnboundedReceiver<ExecMsg>,
    handles: HashMap<AttemptKey, ExecHandle>,
    extras: HashMap<RunId, RunExtras>,
    logs: LogStore,
    shutdown_waiters: Vec<oneshot::Sender<()>>,
    finish_waiters: HashMap<RunId, Vec<oneshot::Sender<Result<RunState, EngineError>>>>,
    /// Events applied to the state but not yet journaled nor sent to clients.
    unflushed: Vec<Arc<Event>>,
    /// Effects and replies waiting for `unflushed` to be journaled.
    after_commit: Vec<AfterCommit>,
    /// Runs whose journal row changed since it was last written.
    dirty: Vec<RunId>,
    /// When each run's row was last written (rows are rewritten at most every few hundred
    /// milliseconds while only their counts change).
    rows: rows::RowSchedule,
    /// Every handle is gone: the last commit writes every row.
    closing: bool,
    new_workflows: Vec<WorkflowRecord>,
    new_logs: Vec<LogRecord>,
    /// The sequence number just before `history[0]`.
    seq_base: u64,
    /// Why the journal refuses writes, and when to try again.
    journal_failure: Option<(String, u64)>,
    next_heartbeat: u64,
    /// Set by `detach`: processes are being stopped; their reports change nothing.
    detach_waiters: Vec<oneshot::Sender<()>>,
    /// Unflushed events that nothing waits on are journaled by then at the latest.
    linger_until: Option<tokio::time::Instant>,
    /// Agent health probes in flight and when each agent was last probed.
    probes: health::Probes,
}

impl Actor {
    fn new(opts: EngineOptions, logs: LogStore) -> Actor {
        let cfg = &opts.config;
        let mut roster: Vec<(String, crate::spec::AgentSpec)> = vec![(
            "local".to_string(),
            crate::spec::AgentSpec::default_local(cfg.defaults.local_slots),
        )];
        for (name, spec) in &cfg.agents {
            roster.retain(|(n, _)| n != name);
            roster.push((name.clone(), spec.clone()));
        }
        let limits = Limits {
            max_parallel: cfg.defaults.max_parallel.max(1),
            pool: cfg.defaults.resources,
        };
        let (events, _) = broadcast::channel(BROADCAST_CAPACITY);
        let (exec_tx, exec_rx) = mpsc::unbounded_channel();
        Actor {
            state: EngineState::new(limits, roster),
            opts,
            history: Vec::new(),
            events,
            exec_tx,
            exec_rx,
            handles: HashMap::new(),
            extras: HashMap::new(),
            logs,
            shutdown_waiters: Vec::new(),
            finish_waiters: HashMap::new(),
            unflushed: Vec::new(),
            after_commit: Vec::new(),
            dirty: Vec::new(),
            rows: rows::RowSchedule::default(),
            closing: false,
            new_workflows: Vec::new(),
            new_logs: Vec::new(),
            seq_base: 0,
            journal_failure: None,
            next_heartbeat: 0,
            detach_waiters: Vec::new(),
            linger_until: None,
            probes: health::Probes::default(),
        }
    }

    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Request>) {
        if let Some(journal) = self.opts.journal.clone() {
            // Sequence numbers continue above everything the store has seen, so a client that
            // resumes a feed after a restart never mistakes new events for old ones.
            match journal.call(|b| b.max_seq()).await {
                Ok(seq) => {
                    self.seq_base = seq;
                    self.state.last_seq = seq;
                }
                Err(e) => tracing::warn!("cannot read the journal's last sequence number: {e}"),
            }
        }
        loop {
            if !self.detach_waiters.is_empty() {
                if self.handles.is_empty() {
                    self.flush().await;
                    if let Some(journal) = &self.opts.journal {
                        let owner = store::owner_id();
                        if let Err(e) = journal.call(move |b| b.release(&owner)).await {
                            tracing::warn!("cannot let go of the runs: {e}");
                        }
                    }
                    for w in self.detach_waiters.drain(..) {
                        let _ = w.send(());
                    }
                    return;
                }
                if let Some(msg) = self.exec_rx.recv().await {
                    self.handle_exec(msg);
                }
                continue;
            }
            let more = self.pump();
            if self.must_flush() {
                self.flush().await;
            } else if self.linger_until.is_none() && !self.unflushed.is_empty() {
                self.linger_until = Some(tokio::time::Instant::now() + LINGER);
            }
            if !self.shutdown_waiters.is_empty() && self.handles.is_empty() {
                for w in self.shutdown_waiters.drain(..) {
                    let _ = w.send(());
                }
            }
            if more {
                while let Ok(req) = rx.try_recv() {
                    self.handle_request(req);
                }
                while let Ok(msg) = self.exec_rx.try_recv() {
                    self.handle_exec(msg);
                }
                tokio::task::yield_now().await;
                continue;
            }
            let timer = self.next_wake();
            let sleep = async {
                match timer {
                    Some(at) => {
                        let wait = at.saturating_sub(now_millis());
                        tokio::time::sleep(Duration::from_millis(wait)).await
                    }
                    None => std::future::pending().await,
                }
            };
            let linger_at = self.linger_until;
            let linger = async {
                match linger_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                req = rx.recv() => match req {
                    Some(req) => self.handle_request(req),
                    None => {
                        // Every handle is gone: stop what runs, journal it and leave.
                        self.cancel_everything();
                        self.closing = true;
                        self.flush().await;
                        return;
                    }
                },
                Some(msg) = self.exec_rx.recv() => self.handle_exec(msg),
                Some((agent, health)) = self.probes.rx.recv() => self.on_probe(agent, health),
                _ = sleep => self.on_wake(),
                // The loop's top flushes once the linger is over.
                _ = linger => {}
            }
        }
    }

    /// Whether what is unflushed must be journaled now, or may wait up to `LINGER` to share a
    /// commit with what comes next. Only events that nothing waits on may wait: no process to
    /// start, no reply, no shutdown or detach. Their clients see them up to `LINGER` later;
    /// the journal loses nothing it could not lose before (a crash right before any commit
    /// loses the events since the last one, and recovery already handles an attempt whose
    /// start was never journaled).
    fn must_flush(&self) -> bool {
        self.opts.journal.is_none()
            || !self.after_commit.is_empty()
            || !self.shutdown_waiters.is_empty()
            || self.journal_failure.is_some()
            || self
                .linger_until
                .is_some_and(|at| tokio::time::Instant::now() >= at)
            || self.rows_due().next().is_some()
    }

    /// Dirty runs whose row must go into a commit made now.
    fn rows_due(&self) -> impl Iterator<Item = &RunId> {
        let now = now_millis();
        let stopping =
            self.closing || !self.shutdown_waiters.is_empty() || !self.detach_waiters.is_empty();
        self.dirty.iter().filter(move |id| {
            // A run the state does not know has no row to write: due, so it leaves `dirty`.
            self.state
                .runs
                .get(*id)
                .is_none_or(|r| stopping || self.rows.due(id, r.state, now))
        })
    }

    /// The next moment something is due: a retry timer, a journal retry, a lease renewal.
    fn next_wake(&self) -> Option<u64> {
        let mut at = self.state.next_timer();
        let mut consider = |t: u64| at = Some(at.map_or(t, |a| a.min(t)));
        if let Some((_, retry)) = &self.journal_failure {
            consider(*retry);
        }
        if let Some(probe) = self.next_probe_at() {
            consider(probe);
        }
        // While the journal refuses writes, its retry time above is the one to wake for.
        if self.opts.journal.is_some()
            && self.journal_failure.is_none()
            && let Some(row) = self.rows.next_due(&self.dirty)
        {
            consider(row);
        }
        if self.opts.journal.is_some() && self.state.runs.values().any(|r| !r.state.is_terminal()) {
            consider(self.next_heartbeat);
        }
        at
    }

    fn on_wake(&mut self) {
        self.fire_timers();
        self.probe_due_agents();
        let now = now_millis();
        if let Some(journal) = &self.opts.journal
            && now >= self.next_heartbeat
        {
            self.next_heartbeat = now + store::HEARTBEAT_MILLIS;
            let owner = store::owner_id();
            journal.call_detached(move |b| {
                if let Err(e) = b.heartbeat(&owner, now) {
                    tracing::debug!("cannot renew the lease on running runs: {e}");
                }
            });
        }
    }

    /// Applies an event now; clients and the journal get it at the next `flush`.
    fn emit(&mut self, run: &RunId, kind: EventKind) {
        let ev = Arc::new(Event {
            seq: self.state.last_seq + 1,
            ts: now_millis(),
            run: run.clone(),
            kind,
        });
        self.state.apply(&ev);
        if self.dirty.last() != Some(run) && !self.dirty.contains(run) {
            self.dirty.push(run.clone());
        }
        self.unflushed.push(ev);
    }

    /// Journals the events applied since the last flush in one commit (group commit), then
    /// sends them to clients and carries out what waited for them: processes start, replies
    /// go out. When the journal refuses (a full disk), everything waits in memory and the
    /// write is tried again a second later; nothing new starts meanwhile.
    async fn flush(&mut self) {
        self.linger_until = None;
        if self.unflushed.is_empty() && self.after_commit.is_empty() && self.dirty.is_empty() {
            return;
        }
        if let Some(journal) = self.opts.journal.clone() {
            let now = now_millis();
            if self
                .journal_failure
                .as_ref()
                .is_some_and(|(_, at)| now < *at)
            {
                return;
            }
            let rows: Vec<RunId> = self.rows_due().cloned().collect();
            let batch = Batch {
                events: self.unflushed.clone(),
                runs: rows.iter().filter_map(|id| self.run_row(id, now)).collect(),
                workflows: self.new_workflows.clone(),
                logs: self.new_logs.clone(),
            };
            if !batch.is_empty() {
                match journal.call_inline(move |b| b.append(&batch)).await {
                    Ok(()) => {
                        if self.journal_failure.take().is_some() {
                            self.log_everywhere("the journal accepts writes again".into());
                        }
                    }
                    Err(e) => {
                        let msg = e.to_string();
                        if self.journal_failure.is_none() {
                            tracing::error!("journal write failed: {msg}");
                            self.log_everywhere(format!(
                                "journal write failed: {msg} ({} events held in memory; nothing new starts until it works again)",
                                self.unflushed.len()
                            ));
                        }
                        self.journal_failure = Some((msg, now + 1000));
                        return;
                    }
                }
            }
            self.new_workflows.clear();
            self.new_logs.clear();
            for id in &rows {
                if let Some(run) = self.state.runs.get(id) {
                    self.rows.wrote(id, run.state, now);
                }
            }
            self.dirty.retain(|id| !rows.contains(id));
        } else {
            self.dirty.clear();
        }
        for ev in std::mem::take(&mut self.unflushed) {
            self.history.push(ev.clone());
            let _ = self.events.send(ev);
        }
        for job in std::mem::take(&mut self.after_commit) {
            match job {
                AfterCommit::Spawn(key, req) => self.spawn_now(key, *req),
                AfterCommit::Reply(f) => f(),
                AfterCommit::Snapshot(reply) => {
                    let _ = reply.send(Box::new(self.state.clone()));
                }
                AfterCommit::Subscribe(from, reply) => {
                    let start =
                        (from.saturating_sub(self.seq_base) as usize).min(self.history.len());
                    let backlog = self.history[start..].to_vec();
                    let _ = reply.send((backlog, self.events.subscribe()));
                }
                AfterCommit::Inspect(f) => f(&self.state),
            }
        }
    }

    /// Why the journal refuses writes, if it does: in the log of every unfinished run, and of
    /// every run whose events wait for the journal (a run that just finished in memory).
    fn log_everywhere(&self, line: String) {
        for (id, run) in &self.state.runs {
            if !run.state.is_terminal() || self.unflushed.iter().any(|e| &e.run == id) {
                self.system_log(id, line.clone());
            }
        }
    }

    fn reply_later(&mut self, f: impl FnOnce() + Send + 'static) {
        self.after_commit.push(AfterCommit::Reply(Box::new(f)));
    }

    /// The journal's row for a run as it stands now.
    fn run_row(&self, id: &RunId, now: u64) -> Option<RunRow> {
        let run = self.state.runs.get(id)?;
        let counts = TaskState::ALL
            .iter()
            .zip(run.counts)
            .filter(|(_, n)| *n > 0)
            .map(|(s, n)| (s.as_str().to_string(), n))
            .collect();
        let live = !run.state.is_terminal();
        Some(RunRow {
            id: id.clone(),
            workflow: run.workflow.name.clone(),
            version: self
                .extras
                .get(id)
                .map(|e| e.version.clone())
                .unwrap_or_default(),
            state: run.state.as_str().to_string(),
            submitted_at: run.submitted_at,
            finished_at: run.finished_at,
            tasks: run.tasks.len() as u32,
            counts,
            owner: live.then(store::owner_id),
            heartbeat: live.then_some(now),
        })
    }

    /// Starts a process held back until its assignment was journaled, unless what it was for
    /// has been cancelled meanwhile.
    fn spawn_now(&mut self, key: AttemptKey, req: ExecRequest) {
        let Some(run) = self.state.runs.get(&key.run) else {
            return;
        };
        let wanted = match key.purpose {
            Purpose::Task | Purpose::Branch { .. } => run.tasks[key.task as usize]
                .open_attempt()
                .is_some_and(|a| a.number == key.attempt),
            Purpose::GateCheck { gate, .. } => {
                run.gates
                    .get(gate as usize)
                    .is_some_and(|g| g.state == GateState::Checking)
                    && self
                        .extras
                        .get(&key.run)
                        .and_then(|e| e.gate_round.get(&gate))
                        .is_some_and(|r| *r == key.attempt)
            }
            Purpose::Compensation => self
                .extras
                .get(&key.run)
                .is_some_and(|e| e.compensating == Some(key.task)),
        };
        if !wanted {
            return;
        }
        let paused = matches!(key.purpose, Purpose::Task | Purpose::Branch { .. })
            && run.tasks[key.task as usize].state == TaskState::Paused;
        let handle = exec::spawn(req, self.exec_tx.clone(), self.logs.clone());
        if paused {
            handle.send(Control::Pause);
        }
        self.handles.insert(key, handle);
    }

    fn system_log(&self, run: &RunId, line: String) {
        self.logs.push_system(run, line);
    }

    // ----- requests -----

    fn handle_request(&mut self, req: Request) {
        match req {
            Request::Submit {
                workflow,
                source,
                held,
                reply,
            } => {
                let result = self.submit(*workflow, source);
                // In the same turn as the submit: nothing is dispatched in between.
                if held && let Ok(id) = &result {
                    self.emit(id, EventKind::RunPaused);
                }
                self.reply_later(move || {
                    let _ = reply.send(result);
                });
            }
            Request::Command { cmd, reply } => {
                let result = self.command(cmd);
                self.reply_later(move || {
                    let _ = reply.send(result);
                });
            }
            Request::Snapshot { reply } => self.after_commit.push(AfterCommit::Snapshot(reply)),
            Request::Subscribe { from, reply } => {
                self.after_commit.push(AfterCommit::Subscribe(from, reply))
            }
            Request::Shutdown { reply } => {
                self.cancel_everything();
                self.shutdown_waiters.push(reply);
            }
            Request::Detach { reply } => {
                for h in self.handles.values() {
                    h.send(Control::Resume);
                    h.send(Control::Cancel);
                }
                // Nothing held back may start now.
                self.after_commit
                    .retain(|j| !matches!(j, AfterCommit::Spawn(..)));
                self.detach_waiters.push(reply);
            }
            Request::Inspect { f } => self.after_commit.push(AfterCommit::Inspect(f)),
            Request::WaitFinished { run, reply } => match self.state.runs.get(&run) {
                None => {
                    let _ = reply.send(Err(EngineError::UnknownRun(run)));
                }
                Some(r) if r.state.is_terminal() => {
                    let state = r.state;
                    self.reply_later(move || {
                        let _ = reply.send(Ok(state));
                    });
                }
                Some(_) => self.finish_waiters.entry(run).or_default().push(reply),
            },
            Request::Adopt { events, reply } => {
                let result = self.adopt(events);
                self.reply_later(move || {
                    let _ = reply.send(result);
                });
            }
        }
    }

    /// Per-run secrets and redactor, resolved from this process's environment (values are
    /// never journaled, so a resumed run resolves them again).
    fn run_extras(workflow: &Workflow, version: String) -> RunExtras {
        let mut secrets = Secrets::new();
        for (name, src) in &workflow.secrets {
            let SecretSource::Env(var) = src;
            let value = match std::env::var(var) {
                Ok(v) if !v.is_empty() => Ok(v),
                _ => Err(format!(
                    "secret `{name}` needs the environment variable {var}, which is not set"
                )),
            };
            secrets.insert(name.clone(), value);
        }
        let redactor = Arc::new(Redactor::new(
            secrets.values().filter_map(|v| v.as_ref().ok().cloned()),
        ));
        RunExtras {
            secrets,
            redactor,
            version,
            ..RunExtras::default()
        }
    }

    /// The version hash of a workflow and, when it has no source text, its definition as JSON.
    fn version_of(workflow: &Workflow, source: Option<&str>) -> (String, String) {
        let definition = match source {
            Some(_) => String::new(),
            None => serde_json::to_string(workflow).unwrap_or_default(),
        };
        (store::workflow_hash(source, &definition), definition)
    }

    /// Takes a run over from its journaled events (see `EngineHandle::resume`).
    fn adopt(&mut self, events: Vec<Event>) -> Result<Recovered, EngineError> {
        let Some(first) = events.first() else {
            return Err(EngineError::Refused(
                "the journal holds no events for that run".into(),
            ));
        };
        let id = first.run.clone();
        if self.state.runs.contains_key(&id) {
            return Err(EngineError::Refused(format!(
                "run {id} is already open in this engine"
            )));
        }
        let EventKind::RunSubmitted { workflow, source } = &first.kind else {
            return Err(EngineError::Refused(format!(
                "the journal of run {id} does not begin with its submission; it cannot be resumed"
            )));
        };
        let (version, _) = Self::version_of(workflow, source.as_deref());
        let extras = Self::run_extras(workflow, version);
        let seq = self.state.last_seq;
        for ev in &events {
            if ev.run == id {
                self.state.apply(ev);
            }
        }
        self.state.last_seq = seq;
        self.extras.insert(id.clone(), extras);
        let run = &self.state.runs[&id];
        let open: Vec<(TaskIdx, u32)> = (0..run.tasks.len() as TaskIdx)
            .filter_map(|t| run.tasks[t as usize].open_attempt().map(|a| (t, a.number)))
            .collect();
        let checking: Vec<u32> = (0..run.gates.len() as u32)
            .filter(|g| run.gates[*g as usize].state == GateState::Checking)
            .collect();
        let interrupted: Vec<String> = open
            .iter()
            .map(|(t, a)| format!("{}#{a}", run.task_id(*t)))
            .collect();
        let finished = run.terminal_count();
        let tasks = run.tasks.len() as u32;
        for (t, attempt) in open {
            self.emit(&id, EventKind::TaskInterrupted { task: t, attempt });
        }
        for gate in checking {
            self.emit(&id, EventKind::GateInterrupted { gate });
        }
        if !self.dirty.contains(&id) {
            self.dirty.push(id.clone());
        }
        let mut line = format!("resumed run {id}: {finished} of {tasks} tasks had finished");
        if !interrupted.is_empty() {
            line.push_str(&format!(
                "; interrupted attempts run again: {}",
                interrupted.join(", ")
            ));
        }
        self.system_log(&id, line.clone());
        tracing::info!(run = %id, "{line}");
        self.probe_due_agents();
        Ok(Recovered {
            state: Box::new(self.state.runs[&id].clone()),
            at_seq: self.state.last_seq,
            run: id,
            interrupted,
            finished,
            tasks,
        })
    }

    fn submit(&mut self, workflow: Workflow, source: Option<String>) -> Result<RunId, EngineError> {
        let mut id = RunId::generate();
        while self.state.runs.contains_key(&id) {
            id = RunId::generate();
        }
        let (version, definition) = Self::version_of(&workflow, source.as_deref());
        if self.opts.journal.is_some() {
            self.new_workflows.push(WorkflowRecord {
                hash: version.clone(),
                name: workflow.name.clone(),
                source: source.clone(),
                definition,
                created_at: now_millis(),
            });
        }
        let n = workflow.tasks.len();
        let name = workflow.name.clone();
        self.extras
            .insert(id.clone(), Self::run_extras(&workflow, version));
        self.emit(
            &id,
            EventKind::RunSubmitted {
                workflow: Arc::new(workflow),
                source,
            },
        );
        self.system_log(&id, format!("run {id} of `{name}` started: {n} tasks"));
        self.probe_due_agents();
        tracing::info!(run = %id, workflow = %name, tasks = n, "run submitted");
        Ok(id)
    }

    fn resolve_task(&self, run: &RunId, task: &str) -> Result<TaskIdx, EngineError> {
        let r = self
            .state
            .runs
            .get(run)
            .ok_or_else(|| EngineError::UnknownRun(run.clone()))?;
        if let Some(t) = r.index.by_id.get(task) {
            return Ok(*t);
        }
        let instances: Vec<&str> = r
            .workflow
            .tasks
            .iter()
            .filter(|t| t.base == task)
            .map(|t| t.id.as_str())
            .collect();
        let hint = if instances.is_empty() {
            String::new()
        } else {
            format!(
                " (it is a matrix task: name one instance, e.g. `{}`)",
                instances[0]
            )
        };
        Err(EngineError::UnknownTask {
            run: run.clone(),
            task: task.to_string(),
            hint,
        })
    }

    fn command(&mut self, cmd: Command) -> Result<(), EngineError> {
        tracing::debug!(?cmd, "operator command");
        let run_id = cmd.run().clone();
        let run_state = self
            .state
            .runs
            .get(&run_id)
            .map(|r| r.state)
            .ok_or_else(|| EngineError::UnknownRun(run_id.clone()))?;
        let refuse = |msg: String| Err(EngineError::Refused(msg));
        match &cmd {
            Command::PauseRun { .. } => {
                if run_state != RunState::Running {
                    return refuse(format!("run {run_id} is {run_state}, not running"));
                }
                self.emit(&run_id, EventKind::RunPaused);
            }
            Command::ResumeRun { .. } => {
                if run_state != RunState::Paused {
                    return refuse(format!("run {run_id} is {run_state}, not paused"));
                }
                self.emit(&run_id, EventKind::RunResumed);
            }
            Command::CancelRun { .. } => {
                if run_state.is_terminal() {
                    return refuse(format!("run {run_id} has already {run_state}"));
                }
                self.cancel_run(&run_id);
            }
            Command::PauseTask { task, .. }
            | Command::ResumeTask { task, .. }
            | Command::CancelTask { task, .. }
            | Command::RetryTask { task, .. }
            | Command::RerunFrom { task, .. }
            | Command::Approve { task, .. } => {
                let t = self.resolve_task(&run_id, task)?;
                self.task_command(&cmd, &run_id, t, task)?;
            }
        }
        Ok(())
    }

    fn task_command(
        &mut self,
        cmd: &Command,
        run_id: &RunId,
        t: TaskIdx,
        name: &str,
    ) -> Result<(), EngineError> {
        let run = &self.state.runs[run_id];
        let task = &run.tasks[t as usize];
        let s = task.state;
        let refuse = |msg: String| Err(EngineError::Refused(msg));
        // The attempt's process, or its branches' processes (a multi-agent task).
        let handles = task
            .open_attempt()
            .map(|a| self.attempt_handles(run_id, t, a.number))
            .unwrap_or_default();
        match cmd {
            Command::PauseTask { .. } => {
                if s.is_terminal() || s == TaskState::Paused {
                    return refuse(format!("cannot pause `{name}`: it is {s}"));
                }
                for h in &handles {
                    h.send(Control::Pause);
                }
                self.emit(run_id, EventKind::TaskPaused { task: t });
            }
            Command::ResumeTask { .. } => {
                if s != TaskState::Paused {
                    return refuse(format!("cannot resume `{name}`: it is {s}, not paused"));
                }
                for h in &handles {
                    h.send(Control::Resume);
                }
                self.emit(run_id, EventKind::TaskResumed { task: t });
            }
            Command::CancelTask { .. } => {
                if s.is_terminal() {
                    return refuse(format!("cannot cancel `{name}`: it has already {s}"));
                }
                if !handles.is_empty() {
                    // The executor reports `Cancelled` once the process group is gone.
                    for h in &handles {
                        h.send(Control::Resume);
                        h.send(Control::Cancel);
                    }
                } else {
                    {
                        self.emit(run_id, EventKind::TaskCancelled { task: t });
                        // A validating task's gates cannot pass now: stop their checks.
                        self.stop_idle_gate_checks(run_id);
                    }
                }
            }
            Command::RetryTask { .. } => {
                let gate_paused =
                    s == TaskState::Paused && task.paused_from == Some(TaskState::Validating);
                if s == TaskState::Blocked {
                    return refuse(format!(
                        "cannot retry `{name}`: it is blocked ({}); retry the failed upstream task",
                        task.reason.as_deref().unwrap_or("an upstream task failed")
                    ));
                }
                if !matches!(s, TaskState::Failed | TaskState::Cancelled) && !gate_paused {
                    return refuse(format!(
                        "cannot retry `{name}`: it is {s} (only failed or cancelled tasks can be retried; use re-run to run a finished task again)"
                    ));
                }
                if let Some(n) = run.dead_need(t) {
                    return refuse(format!(
                        "cannot retry `{name}`: its upstream `{}` is {}; retry or re-run that first",
                        run.task_id(n),
                        run.tasks[n as usize].state
                    ));
                }
                self.emit(run_id, EventKind::TaskRetried { task: t });
            }
            Command::RerunFrom { .. } => {
                if let Some(n) = run.dead_need(t) {
                    return refuse(format!(
                        "cannot re-run from `{name}`: its upstream `{}` is {}; retry or re-run that first",
                        run.task_id(n),
                        run.tasks[n as usize].state
                    ));
                }
                // Nothing downstream (or the task itself) may be mid-attempt.
                let mut stack = vec![t];
                let mut seen = std::collections::HashSet::new();
                while let Some(x) = stack.pop() {
                    if !seen.insert(x) {
                        continue;
                    }
                    let xs = run.tasks[x as usize].state;
                    if xs.is_active() || run.tasks[x as usize].open_attempt().is_some() {
                        return refuse(format!(
                            "cannot re-run from `{name}`: `{}` is {xs}; wait for it or cancel it first",
                            run.task_id(x)
                        ));
                    }
                    stack.extend(run.index.dependents[x as usize].iter().copied());
                }
                self.emit(run_id, EventKind::TaskRerun { task: t });
                self.stop_idle_gate_checks(run_id);
            }
            Command::Approve { .. } => {
                let needs_approval = run.workflow.tasks[t as usize].approval;
                if !needs_approval {
                    return refuse(format!("`{name}` does not need approval"));
                }
                if task.approved {
                    return refuse(format!("`{name}` is already approved"));
                }
                if s.is_terminal() {
                    return refuse(format!("cannot approve `{name}`: it has already {s}"));
                }
                self.emit(run_id, EventKind::TaskApproved { task: t });
                self.system_log(run_id, format!("`{name}` approved"));
            }
            _ => {}
        }
        Ok(())
    }

    fn cancel_run(&mut self, run_id: &RunId) {
        self.emit(run_id, EventKind::RunCancelRequested);
        let Some(run) = self.state.runs.get(run_id) else {
            return;
        };
        // Leaves first, so everything unfinished ends `cancelled` rather than `blocked`.
        let mut order: Vec<TaskIdx> = (0..run.tasks.len() as TaskIdx).collect();
        order.sort_by_key(|t| run.index.rank[*t as usize]);
        let mut to_emit = Vec::new();
        for t in order {
            let task = &run.tasks[t as usize];
            if task.state.is_terminal() {
                continue;
            }
            match task.open_attempt() {
                Some(a) => {
                    let handles = self.attempt_handles(run_id, t, a.number);
                    if handles.is_empty() {
                        to_emit.push(t);
                    }
                    for h in handles {
                        h.send(Control::Resume);
                        h.send(Control::Cancel);
                    }
                }
                None => to_emit.push(t),
            }
        }
        for t in to_emit {
            self.emit(run_id, EventKind::TaskCancelled { task: t });
        }
        // Gate checks and compensations of this run stop too.
        for (k, h) in &self.handles {
            if &k.run == run_id && k.purpose != Purpose::Task {
                h.send(Control::Cancel);
            }
        }
        self.system_log(run_id, "cancel requested: stopping running tasks".into());
    }

    /// Cancels running checks of gates of `run_id` that are no longer checking.
    fn stop_idle_gate_checks(&self, run_id: &RunId) {
        let Some(run) = self.state.runs.get(run_id) else {
            return;
        };
        for (k, h) in &self.handles {
            if let Purpose::GateCheck { gate, .. } = k.purpose
                && &k.run == run_id
                && run
                    .gates
                    .get(gate as usize)
                    .is_none_or(|g| g.state != GateState::Checking)
            {
                h.send(Control::Cancel);
            }
        }
    }

    fn cancel_everything(&mut self) {
        let ids: Vec<RunId> = self
            .state
            .runs
            .iter()
            .filter(|(_, r)| !r.state.is_terminal() && !r.cancel_requested)
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            self.cancel_run(&id);
        }
    }

    fn fire_timers(&mut self) {
        let now = now_millis();
        while let Some((at, run, t)) = self.state.timers.first().cloned() {
            if at > now {
                break;
            }
            self.state.timers.pop_first();
            self.emit(&run, EventKind::TaskRetryDue { task: t });
        }
    }

    // ----- the work loop -----

    /// Does a bounded amount of work; returns true when more is waiting.
    fn pump(&mut self) -> bool {
        let mut budget = PUMP_BUDGET;
        let run_ids: Vec<RunId> = self.state.runs.keys().cloned().collect();
        for id in &run_ids {
            self.check_conditions(id, &mut budget);
            self.start_due_gates(id);
        }
        while budget > 0 {
            let Some(d) = scheduler::next_dispatch(&mut self.state) else {
                break;
            };
            self.start(d);
            budget -= 1;
            // Instant tasks may have made others ready or due for a condition check.
            if budget.is_multiple_of(256) {
                for id in &run_ids {
                    self.check_conditions(id, &mut budget);
                }
            }
        }
        let seq = self.state.last_seq;
        for id in &run_ids {
            self.check_conditions(id, &mut budget);
            self.start_due_gates(id);
        }
        // A condition that passed, an approval given at once (--auto-approve) or a gate that
        // passed on the spot may have made tasks ready after the dispatch loop: go round again
        // to start them, or nothing would until the next message.
        let progressed = self.state.last_seq != seq;
        for id in &run_ids {
            self.maybe_finish(id);
        }
        let pending_checks = run_ids.iter().any(|id| {
            self.state
                .runs
                .get(id)
                .is_some_and(|r| !r.index.to_check.is_empty() || !r.index.gates_due.is_empty())
        });
        budget == 0 || pending_checks || progressed
    }

    fn check_conditions(&mut self, id: &RunId, budget: &mut usize) {
        let Some(run) = self.state.runs.get_mut(id) else {
            return;
        };
        if run.index.to_check.is_empty() {
            return;
        }
        let due = std::mem::take(&mut run.index.to_check);
        let mut skip_reason = String::new();
        for t in due {
            let run = &self.state.runs[id];
            if run.tasks[t as usize].state != TaskState::Pending {
                continue;
            }
            let spec = &run.workflow.tasks[t as usize];
            let needs_approval = spec.approval && !run.tasks[t as usize].approved;
            let verdict = match spec.when.clone() {
                None => Ok(true),
                Some(src) => {
                    let vars = context::expression_vars(&self.opts.config.context, run, &src);
                    Expr::compile(&src)
                        .map_err(|e| e.message)
                        .and_then(|e| e.eval_bool(&vars))
                        .map_err(|e| format!("cannot evaluate `when` ({src}): {e}"))
                        .map(|ok| {
                            ok || {
                                skip_reason = format!("`when` is false: {src}");
                                false
                            }
                        })
                }
            };
            match verdict {
                Ok(true) if needs_approval => {
                    let name = run.task_id(t).to_string();
                    self.emit(id, EventKind::TaskAwaitingApproval { task: t });
                    if self.opts.auto_approve {
                        self.system_log(
                            id,
                            format!("`{name}` approved automatically (--auto-approve)"),
                        );
                        self.emit(id, EventKind::TaskApproved { task: t });
                    } else {
                        self.system_log(id, format!("`{name}` is waiting for approval"));
                    }
                }
                Ok(true) => self.emit(id, EventKind::TaskConditionPassed { task: t }),
                Ok(false) => self.emit(
                    id,
                    EventKind::TaskSkipped {
                        task: t,
                        reason: std::mem::take(&mut skip_reason),
                    },
                ),
                Err(e) => {
                    // A condition that cannot be evaluated fails the task: skipping silently
                    // would hide the mistake.
                    let agent: Arc<str> = "local".into();
                    let attempt = run.tasks[t as usize].attempts.len() as u32 + 1;
                    self.emit(
                        id,
                        EventKind::TaskAssigned {
                            task: t,
                            agent,
                            attempt,
                        },
                    );
                    self.fail_without_retry(id, t, e);
                }
            }
            *budget = budget.saturating_sub(1);
        }
    }

    fn fail_without_retry(&mut self, run: &RunId, t: TaskIdx, error: String) {
        let attempt = self.state.runs[run].tasks[t as usize]
            .open_attempt()
            .map(|a| a.number)
            .unwrap_or(0);
        let name = self.state.runs[run].task_id(t).to_string();
        self.system_log(run, format!("`{name}` failed: {error}"));
        self.emit(
            run,
            EventKind::TaskFailed {
                task: t,
                attempt,
                outcome: AttemptOutcome::Failed,
                error,
                exit_code: None,
                retry_at: None,
            },
        );
    }

    /// The run's scratch dir, shared by its attempts (created by the first one).
    fn scratch_dir(&self, run: &RunId) -> PathBuf {
        self.opts.work_dir.join(run.as_str())
    }

    /// Stem of one attempt's scratch files in the run's scratch dir.
    fn scratch_name(key: &AttemptKey) -> String {
        match key.purpose {
            Purpose::Task => format!("task-{}.{}", key.task, key.attempt),
            Purpose::GateCheck { gate, check } => format!("gate-{gate}-{check}.{}", key.attempt),
            Purpose::Compensation => format!("compensate-{}", key.task),
            Purpose::Branch { branch } => format!("task-{}.{}.b{branch}", key.task, key.attempt),
        }
    }

    fn start(&mut self, d: Dispatch) {
        let Dispatch {
            run: run_id,
            task: t,
            agent,
            attempt,
            crew,
        } = d;
        self.emit(
            &run_id,
            EventKind::TaskAssigned {
                task: t,
                agent: agent.clone(),
                attempt,
            },
        );
        if let Some(crew) = crew {
            self.start_branches(&run_id, t, attempt, crew);
            return;
        }
        let key = AttemptKey {
            run: run_id.clone(),
            task: t,
            attempt,
            purpose: Purpose::Task,
        };
        let run = &self.state.runs[&run_id];
        let spec = &run.workflow.tasks[t as usize];
        if let Action::Builtin(b) = &spec.action
            && let Some((result, line)) = exec::run_instant(b)
        {
            self.emit(
                &run_id,
                EventKind::TaskStarted {
                    task: t,
                    attempt,
                    pid: None,
                },
            );
            if let Some(line) = line {
                let line = match self.extras.get(&run_id) {
                    Some(e) => e.redactor.redact(&line).into_owned(),
                    None => line,
                };
                self.logs.push(&key, LogStream::Stdout, line);
            }
            self.finish_task_attempt(&key, result);
            return;
        }
        match self.prepare(&run_id, t, &agent, attempt) {
            Ok(req) => self
                .after_commit
                .push(AfterCommit::Spawn(key, Box::new(req))),
            Err(e) => {
                self.emit(
                    &run_id,
                    EventKind::TaskStarted {
                        task: t,
                        attempt,
                        pid: None,
                    },
                );
                self.fail_without_retry(&run_id, t, e);
            }
        }
    }

    /// Builds the request for one attempt: context, rendered command, environment.
    fn prepare(
        &self,
        run_id: &RunId,
        t: TaskIdx,
        agent: &str,
        attempt: u32,
    ) -> Result<ExecRequest, String> {
        let run = &self.state.runs[run_id];
        let spec = &run.workflow.tasks[t as usize];
        let extras = self.extras.get(run_id);
        let empty = Secrets::new();
        let secrets = extras.map(|e| &e.secrets).unwrap_or(&empty);
        let defaults = &self.opts.config.defaults;
        let doc = context::task_context(&self.opts.config.context, run, t, agent, attempt, secrets)
            .map_err(|e| e.to_string())?;
        // A builtin is given no context: neither its text nor its tree is made.
        let builtin = matches!(spec.action, Action::Builtin(_));
        let mut json = if builtin {
            Vec::new()
        } else {
            doc.to_json(defaults.max_context_bytes)
                .map_err(|e| e.to_string())?
        };
        let agent_spec = self
            .state
            .agents
            .get(agent)
            .map(|a| &a.spec)
            .ok_or_else(|| format!("agent `{agent}` is gone"))?;
        let mut ctx = if renders_context(spec, agent_spec) {
            doc.to_value()
        } else {
            Value::Null
        };
        let render = |what: &str, src: &str, ctx: &Value| {
            crate::template::render(src, ctx).map_err(|e| format!("cannot render {what}: {e}"))
        };
        let http_work = |work: Assigned, ctx: &Value| {
            let a = Assignment {
                run,
                task: t,
                agent,
                attempt,
                work,
                context: ctx,
            };
            http_agent::call(a, agent_spec, secrets, &self.opts.callbacks)
                .map(|c| Work::Http(Box::new(c)))
        };
        let work = match &spec.action {
            Action::Builtin(b) => Work::Builtin(b.clone()),
            Action::Run(cmd) => {
                let line = render("`run`", cmd, &ctx)?;
                match agent_spec.kind {
                    AgentKind::Http => http_work(Assigned::Command(line), &ctx)?,
                    _ => Work::Command(line),
                }
            }
            Action::Prompt(p) => {
                let prompt = render("`prompt`", p, &ctx)?;
                if let Some(task) = ctx.get_mut("task").and_then(Value::as_object_mut) {
                    task.insert("prompt".into(), Value::String(prompt.clone()));
                }
                json = serde_json::to_vec(&ctx).map_err(|e| e.to_string())?;
                match agent_spec.kind {
                    AgentKind::Command => {
                        let template = agent_spec
                            .command
                            .as_deref()
                            .ok_or_else(|| format!("agent `{agent}` has no `command`"))?;
                        Work::Command(render(
                            &format!("agent `{agent}`'s command"),
                            template,
                            &ctx,
                        )?)
                    }
                    AgentKind::Llm => Work::Llm(Box::new(llm::call(
                        agent, agent_spec, spec, prompt, secrets, &ctx,
                    )?)),
                    AgentKind::Http => http_work(Assigned::Prompt(prompt), &ctx)?,
                    AgentKind::Local => {
                        return Err(format!(
                            "`local` agents cannot run `prompt` tasks; use a `command`, `llm` or `http` agent (agent `{agent}`)"
                        ));
                    }
                }
            }
        };
        self.exec_request(run_id, t, attempt, agent_spec, work, &ctx, json)
    }

    /// The request for one attempt once its work is known: the agent's and task's environment
    /// and `cwd` rendered with the attempt's context (`ctx`; `context` is its text for the
    /// file), limits from the defaults.
    #[allow(clippy::too_many_arguments)]
    fn exec_request(
        &self,
        run_id: &RunId,
        t: TaskIdx,
        attempt: u32,
        agent_spec: &crate::spec::AgentSpec,
        work: Work,
        ctx: &Value,
        context: Vec<u8>,
    ) -> Result<ExecRequest, String> {
        let spec = &self.state.runs[run_id].workflow.tasks[t as usize];
        let defaults = &self.opts.config.defaults;
        let render = |what: &str, src: &str| {
            crate::template::render(src, ctx).map_err(|e| format!("cannot render {what}: {e}"))
        };
        let mut env = Vec::new();
        for (k, v) in agent_spec.env.iter().chain(spec.env.iter()) {
            env.push((k.clone(), render(&format!("env `{k}`"), v)?));
        }
        let cwd = match &spec.cwd {
            Some(c) => Some(PathBuf::from(render("`cwd`", c)?)),
            None => None,
        };
        let key = AttemptKey {
            run: run_id.clone(),
            task: t,
            attempt,
            purpose: Purpose::Task,
        };
        Ok(ExecRequest {
            scratch_dir: self.scratch_dir(run_id),
            scratch_name: Self::scratch_name(&key),
            key,
            task_id: spec.id.clone(),
            work,
            env,
            cwd,
            timeout: spec.timeout,
            kill_grace: defaults.kill_grace,
            context,
            redactor: self
                .extras
                .get(run_id)
                .map(|e| e.redactor.clone())
                .unwrap_or_default(),
            max_output_bytes: defaults.max_output_bytes,
        })
    }

    // ----- executor reports -----

    fn handle_exec(&mut self, msg: ExecMsg) {
        let ExecMsg { key, report } = msg;
        if !self.detach_waiters.is_empty() {
            // Detaching: the attempt stays open in the journal, for `resume` to interrupt.
            if matches!(report, ExecReport::Finished(_)) {
                self.handles.remove(&key);
            }
            return;
        }
        match (key.purpose, report) {
            (Purpose::Task, ExecReport::Started { pid }) => {
                let current = self
                    .state
                    .runs
                    .get(&key.run)
                    .and_then(|r| r.tasks[key.task as usize].open_attempt())
                    .is_some_and(|a| a.number == key.attempt);
                if current {
                    self.emit(
                        &key.run,
                        EventKind::TaskStarted {
                            task: key.task,
                            attempt: key.attempt,
                            pid,
                        },
                    );
                }
            }
            (Purpose::Task, ExecReport::Finished(result)) => {
                self.handles.remove(&key);
                if self.opts.journal.is_some()
                    && let Some(path) = self.logs.file(&key)
                    && let Some(run) = self.state.runs.get(&key.run)
                {
                    self.new_logs.push(LogRecord {
                        run: key.run.clone(),
                        task: run.task_id(key.task).to_string(),
                        attempt: key.attempt,
                        path: path.to_string_lossy().into_owned(),
                    });
                }
                self.finish_task_attempt(&key, result);
            }
            (Purpose::GateCheck { gate, check }, ExecReport::Finished(result)) => {
                self.handles.remove(&key);
                let current = self
                    .extras
                    .get(&key.run)
                    .and_then(|e| e.gate_round.get(&gate))
                    .is_some_and(|r| *r == key.attempt);
                // A gate that stopped checking (its task was cancelled, the run ended) takes
                // no more results: nothing about a run may follow its RunFinished.
                let checking = self.state.runs.get(&key.run).is_some_and(|r| {
                    r.gates
                        .get(gate as usize)
                        .is_some_and(|g| g.state == GateState::Checking)
                });
                if !current || !checking {
                    return;
                }
                let mut message = result.error.clone();
                if !result.error.is_empty() {
                    let tail: Vec<String> = self
                        .logs
                        .lines(&key, 0)
                        .into_iter()
                        .rev()
                        .filter(|l| l.stream != LogStream::System)
                        .take(5)
                        .map(|l| l.line)
                        .collect();
                    for l in tail.into_iter().rev() {
                        message.push('\n');
                        message.push_str(&l);
                    }
                }
                self.emit(
                    &key.run,
                    EventKind::GateCheck {
                        gate,
                        check,
                        passed: result.outcome == AttemptOutcome::Succeeded,
                        message,
                    },
                );
                let left = self
                    .extras
                    .get_mut(&key.run)
                    .and_then(|e| e.gate_pending.get_mut(&gate))
                    .map(|n| {
                        *n = n.saturating_sub(1);
                        *n
                    })
                    .unwrap_or(0);
                if left == 0 {
                    self.finish_gate(&key.run, gate);
                }
            }
            (Purpose::Branch { .. }, ExecReport::Started { pid }) => {
                self.branch_started(&key, pid);
            }
            (Purpose::Branch { branch }, ExecReport::Finished(result)) => {
                self.handles.remove(&key);
                self.branch_finished(&key, branch, result);
            }
            (Purpose::Compensation, ExecReport::Finished(result)) => {
                self.handles.remove(&key);
                if let Some(e) = self.extras.get_mut(&key.run) {
                    e.compensating = None;
                }
                let ok = result.outcome == AttemptOutcome::Succeeded;
                let name = self.state.runs[&key.run].task_id(key.task).to_string();
                self.system_log(
                    &key.run,
                    if ok {
                        format!("compensated `{name}`")
                    } else {
                        format!("compensation of `{name}` failed: {}", result.error)
                    },
                );
                self.emit(
                    &key.run,
                    EventKind::CompensationFinished {
                        task: key.task,
                        ok,
                        error: result.error,
                    },
                );
            }
            (_, ExecReport::Started { .. }) => {}
        }
    }

    fn finish_task_attempt(&mut self, key: &AttemptKey, result: ExecResult) {
        let Some(run) = self.state.runs.get(&key.run) else {
            return;
        };
        let task = &run.tasks[key.task as usize];
        if task.open_attempt().is_none_or(|a| a.number != key.attempt) {
            return; // stale report
        }
        let t = key.task;
        let spec = &run.workflow.tasks[t as usize];
        let redactor = self
            .extras
            .get(&key.run)
            .map(|e| e.redactor.clone())
            .unwrap_or_default();
        match result.outcome {
            AttemptOutcome::Succeeded => {
                let mut outputs = Value::Object(result.outputs);
                redactor.redact_json(&mut outputs);
                let outputs = match outputs {
                    Value::Object(m) => m,
                    _ => Map::new(),
                };
                // An llm attempt's tokens and latency go to the engine log too.
                let llm_line = task
                    .open_attempt()
                    .and_then(|a| self.state.agents.get(&a.agent))
                    .filter(|a| a.spec.kind == AgentKind::Llm)
                    .map(|_| llm::usage_line(&spec.id, key.attempt, &outputs));
                if let Some(line) = llm_line {
                    self.system_log(&key.run, line);
                }
                self.emit(
                    &key.run,
                    EventKind::TaskSucceeded {
                        task: t,
                        attempt: key.attempt,
                        exit_code: result.exit_code,
                        outputs,
                    },
                );
            }
            AttemptOutcome::Cancelled => {
                self.emit(&key.run, EventKind::TaskCancelled { task: t });
            }
            outcome => {
                let used = task.attempts_used();
                let policy = &spec.retry;
                let retry_at = (!run.cancel_requested
                    && retry::should_retry(policy, outcome, used))
                .then(|| {
                    let d = retry::backoff_delay(policy, used, fastrand::f64());
                    let d = retry::honour_retry_after(policy, d, result.retry_after);
                    now_millis() + d.as_millis() as u64
                });
                let error = redactor.redact(&result.error).into_owned();
                let name = spec.id.clone();
                let line = match retry_at {
                    Some(at) => format!(
                        "`{name}` attempt {} failed: {error}; retrying in {:.1}s",
                        key.attempt,
                        at.saturating_sub(now_millis()) as f64 / 1000.0
                    ),
                    None => format!("`{name}` failed: {error}"),
                };
                self.system_log(&key.run, line);
                self.emit(
                    &key.run,
                    EventKind::TaskFailed {
                        task: t,
                        attempt: key.attempt,
                        outcome,
                        error,
                        exit_code: result.exit_code,
                        retry_at,
                    },
                );
            }
        }
    }

    // ----- gates -----

    fn start_due_gates(&mut self, id: &RunId) {
        let Some(run) = self.state.runs.get_mut(id) else {
            return;
        };
        if run.index.gates_due.is_empty() {
            return;
        }
        let due = std::mem::take(&mut run.index.gates_due);
        for g in due {
            if self.state.runs[id].gates[g as usize].state != GateState::Pending {
                continue;
            }
            self.emit(id, EventKind::GateStarted { gate: g });
            let round = self.extras.get_mut(id).map_or(1, |e| {
                let r = e.gate_round.entry(g).or_insert(0);
                *r += 1;
                *r
            });
            let run = &self.state.runs[id];
            let gate = run.workflow.gates[g as usize].clone();
            let mut spawned = 0;
            for (ci, check) in gate.checks.iter().enumerate() {
                let run = &self.state.runs[id];
                match &check.kind {
                    CheckKind::Expr(src) => {
                        let vars = context::expression_vars(&self.opts.config.context, run, src);
                        let (passed, message) = match Expr::compile(src)
                            .map_err(|e| e.message)
                            .and_then(|e| e.eval_bool(&vars))
                        {
                            Ok(true) => (true, String::new()),
                            Ok(false) => (false, format!("`{src}` is false")),
                            Err(e) => (false, format!("cannot evaluate `{src}`: {e}")),
                        };
                        self.emit(
                            id,
                            EventKind::GateCheck {
                                gate: g,
                                check: ci as u32,
                                passed,
                                message,
                            },
                        );
                    }
                    CheckKind::Run(cmd) => {
                        let key = AttemptKey {
                            run: id.clone(),
                            task: g,
                            attempt: round,
                            purpose: Purpose::GateCheck {
                                gate: g,
                                check: ci as u32,
                            },
                        };
                        let vars = context::expression_vars(&self.opts.config.context, run, cmd);
                        match crate::template::render(cmd, &vars) {
                            Ok(line) => {
                                let req = self.side_request(
                                    key.clone(),
                                    format!("{}/{}", gate.id, check.name),
                                    line,
                                    vars,
                                );
                                self.after_commit
                                    .push(AfterCommit::Spawn(key, Box::new(req)));
                                spawned += 1;
                            }
                            Err(e) => self.emit(
                                id,
                                EventKind::GateCheck {
                                    gate: g,
                                    check: ci as u32,
                                    passed: false,
                                    message: format!("cannot render the check command: {e}"),
                                },
                            ),
                        }
                    }
                }
            }
            if spawned == 0 {
                self.finish_gate(id, g);
            } else if let Some(e) = self.extras.get_mut(id) {
                e.gate_pending.insert(g, spawned);
            }
        }
    }

    /// A request for a gate check or compensation command (no agent, no retry).
    fn side_request(
        &self,
        key: AttemptKey,
        label: String,
        line: String,
        context: Value,
    ) -> ExecRequest {
        let defaults = &self.opts.config.defaults;
        ExecRequest {
            scratch_dir: self.scratch_dir(&key.run),
            scratch_name: Self::scratch_name(&key),
            redactor: self
                .extras
                .get(&key.run)
                .map(|e| e.redactor.clone())
                .unwrap_or_default(),
            key,
            task_id: label,
            work: Work::Command(line),
            env: Vec::new(),
            cwd: None,
            timeout: None,
            kill_grace: defaults.kill_grace,
            context: serde_json::to_vec(&context).unwrap_or_default(),
            max_output_bytes: defaults.max_output_bytes,
        }
    }

    fn finish_gate(&mut self, id: &RunId, g: u32) {
        let Some(run) = self.state.runs.get(id) else {
            return;
        };
        if run.gates[g as usize].state != GateState::Checking {
            return;
        }
        let gate = &run.workflow.gates[g as usize];
        let passed = run.gates[g as usize]
            .results
            .iter()
            .all(|r| r.as_ref().is_some_and(|r| r.passed));
        let state = if passed {
            GateState::Passed
        } else if gate.on_fail == OnFail::Warn {
            GateState::Warned
        } else {
            GateState::Failed
        };
        let failed = run.gates[g as usize]
            .results
            .iter()
            .filter(|r| r.as_ref().is_some_and(|r| !r.passed))
            .count();
        let line = match state {
            GateState::Passed => format!("gate `{}` passed", gate.id),
            _ => format!(
                "gate `{}` {}: {failed} of {} checks failed (on_fail = {:?})",
                gate.id,
                state.as_str(),
                gate.checks.len(),
                gate.on_fail
            ),
        };
        self.system_log(id, line);
        self.emit(id, EventKind::GateFinished { gate: g, state });
    }

    // ----- finishing runs -----

    fn maybe_finish(&mut self, id: &RunId) {
        let Some(run) = self.state.runs.get(id) else {
            return;
        };
        if run.state.is_terminal() || !run.all_terminal() {
            return;
        }
        if run.gates.iter().any(|g| g.state == GateState::Checking) {
            return;
        }
        if self
            .extras
            .get(id)
            .is_some_and(|e| e.compensating.is_some())
        {
            return;
        }
        // Gate checks being stopped still run: the run ends once its processes are gone.
        if self.handles.keys().any(|k| &k.run == id) {
            return;
        }
        let state = if run.cancel_requested {
            RunState::Cancelled
        } else if run.has_failures() {
            // Saga: undo succeeded work in reverse completion order, one at a time.
            let next = run.index.completion_order.iter().rev().copied().find(|t| {
                let task = &run.tasks[*t as usize];
                task.state == TaskState::Succeeded
                    && !task.compensated
                    && run.workflow.tasks[*t as usize].compensate.is_some()
            });
            if let Some(t) = next {
                self.compensate(id, t);
                return;
            }
            RunState::Failed
        } else {
            RunState::Succeeded
        };
        let run = &self.state.runs[id];
        let line = format!(
            "run {state}: {} succeeded, {} failed, {} skipped, {} blocked, {} cancelled",
            run.count(TaskState::Succeeded),
            run.count(TaskState::Failed),
            run.count(TaskState::Skipped),
            run.count(TaskState::Blocked),
            run.count(TaskState::Cancelled)
        );
        tracing::info!(run = %id, %state, "{line}");
        self.system_log(id, line);
        // Every attempt removed its own files; the run's shared scratch dir goes with it.
        let _ = std::fs::remove_dir(self.scratch_dir(id));
        self.emit(id, EventKind::RunFinished { state });
        let waiters = self.finish_waiters.remove(id).unwrap_or_default();
        if !waiters.is_empty() {
            self.reply_later(move || {
                for w in waiters {
                    let _ = w.send(Ok(state));
                }
            });
        }
    }

    fn compensate(&mut self, id: &RunId, t: TaskIdx) {
        self.emit(id, EventKind::CompensationStarted { task: t });
        let run = &self.state.runs[id];
        let spec = &run.workflow.tasks[t as usize];
        let src = spec.compensate.clone().unwrap_or_default();
        let name = spec.id.clone();
        let key = AttemptKey {
            run: id.clone(),
            task: t,
            attempt: 0,
            purpose: Purpose::Compensation,
        };
        let vars =
            context::expression_vars(&self.opts.config.context, run, &format!("tasks.{name}"));
        match crate::template::render(&src, &vars) {
            Ok(line) => {
                self.system_log(id, format!("compensating `{name}`: {line}"));
                let req = self.side_request(key.clone(), name, line, vars);
                self.after_commit
                    .push(AfterCommit::Spawn(key, Box::new(req)));
                if let Some(e) = self.extras.get_mut(id) {
                    e.compensating = Some(t);
                }
            }
            Err(e) => self.emit(
                id,
                EventKind::CompensationFinished {
                    task: t,
                    ok: false,
                    error: format!("cannot render `compensate`: {e}"),
                },
            ),
        }
    }
}

/// Whether preparing task `spec` on an agent like `agent` reads the context as a JSON tree:
/// a template in its command, prompt, environment or `cwd`, or an agent that is sent it. A
/// builtin, or a command with no template anywhere (the common case), needs none; a command
/// only gets the context's text, in its file.
fn renders_context(spec: &crate::spec::TaskSpec, agent: &crate::spec::AgentSpec) -> bool {
    use crate::template::is_template;
    let action = match &spec.action {
        Action::Builtin(_) => false,
        Action::Run(cmd) => is_template(cmd) || agent.kind == AgentKind::Http,
        Action::Prompt(_) => true,
    };
    action
        || agent
            .env
            .values()
            .chain(spec.env.values())
            .any(|v| is_template(v))
        || spec.cwd.as_deref().is_some_and(is_template)
}
