//! Engine state as a pure fold of events: `EngineState::apply(&Event)`.
//!
//! Besides what clients show (task states, attempts, outputs, gates, agents), the fold keeps the
//! scheduler's indexes — unmet-dependency counters, ready queues per requirement class, parked
//! tasks — so every transition costs O(log n) plus the edges it touches, never a rescan.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::sync::Arc;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::model::{
    AttemptOutcome, Branch, Event, EventKind, GateState, Millis, Resolution, RunId, RunState,
    TaskIdx, TaskState,
};
use crate::spec::{Action, AgentSpec, OnFail, Resources, Workflow};

/// Ready-queue order: priority, then critical-path rank, then file order.
pub type ReadyKey = (u8, u32, Reverse<TaskIdx>);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attempt {
    pub number: u32,
    pub agent: Arc<str>,
    pub assigned_at: Millis,
    pub started_at: Option<Millis>,
    pub finished_at: Option<Millis>,
    pub outcome: Option<AttemptOutcome>,
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// A multi-agent attempt: one branch per agent (and the judge), in branch order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub branches: Vec<Branch>,
    /// How a multi-agent attempt's branches were resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<Resolution>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Task {
    pub state: TaskState,
    pub attempts: Vec<Attempt>,
    /// Attempts before this index do not count against the retry budget (operator retries reset it).
    #[serde(skip)]
    pub budget_base: usize,
    pub outputs: Map<String, Value>,
    pub approved: bool,
    /// Why it is skipped, failed by a gate, or blocked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<Millis>,
    /// The state to return to on resume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_from: Option<TaskState>,
    /// When its own work finished successfully (for compensation order and durations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Millis>,
    pub compensated: bool,
    /// Needs not yet satisfied.
    #[serde(skip)]
    pub unmet: u32,
}

impl Task {
    fn new(unmet: u32) -> Task {
        Task {
            state: TaskState::Pending,
            attempts: Vec::new(),
            budget_base: 0,
            outputs: Map::new(),
            approved: false,
            reason: None,
            retry_at: None,
            paused_from: None,
            finished_at: None,
            compensated: false,
            unmet,
        }
    }

    /// The attempt that is assigned or running, if any.
    pub fn open_attempt(&self) -> Option<&Attempt> {
        self.attempts.last().filter(|a| a.finished_at.is_none())
    }

    /// Attempts that count against the retry budget: interrupted ones (the engine died) do not.
    pub fn attempts_used(&self) -> u32 {
        let from = self.budget_base.min(self.attempts.len());
        self.attempts[from..]
            .iter()
            .filter(|a| a.outcome != Some(AttemptOutcome::Interrupted))
            .count() as u32
    }

    pub fn last_agent(&self) -> Option<&Arc<str>> {
        self.attempts.last().map(|a| &a.agent)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckResult {
    pub passed: bool,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Gate {
    pub state: GateState,
    /// One entry per check once it has a result.
    pub results: Vec<Option<CheckResult>>,
}

/// Tasks that need the same kind of agent share a ready queue, so a busy agent class is skipped
/// in O(1) instead of popping and re-pushing its tasks.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClassKey {
    pub requires: Vec<String>,
    pub agent: Option<String>,
    /// 0 = run, 1 = builtin, 2 = prompt: decides which agent kinds qualify.
    pub action: u8,
}

fn action_class(a: &Action) -> u8 {
    match a {
        Action::Run(_) => 0,
        Action::Builtin(_) => 1,
        Action::Prompt(_) => 2,
    }
}

#[derive(Debug, Default, Clone)]
pub struct ReadyClass {
    pub heap: BinaryHeap<ReadyKey>,
    /// Agents able to run this class, best known first (refreshed when agents are added).
    pub agents: Vec<Arc<str>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Run {
    pub id: RunId,
    pub workflow: Arc<Workflow>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    pub state: RunState,
    pub submitted_at: Millis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Millis>,
    pub tasks: Vec<Task>,
    pub gates: Vec<Gate>,
    pub cancel_requested: bool,
    /// Count of tasks per state, indexed like `TaskState::ALL`.
    pub counts: [u32; 13],
    /// Agent-local memory: outputs named `memory.*` by tasks that ran on each agent.
    pub agent_memory: HashMap<Arc<str>, Map<String, Value>>,
    #[serde(skip)]
    pub index: RunIndex,
}

/// Derived structure of a run: computed once at submit, plus the scheduler's queues.
#[derive(Debug, Clone, Default)]
pub struct RunIndex {
    pub by_id: HashMap<String, TaskIdx>,
    pub dependents: Vec<Vec<TaskIdx>>,
    pub rank: Vec<u32>,
    /// Gates that hold each task.
    pub gates_of: Vec<Vec<u32>>,
    pub class_of: Vec<u16>,
    pub classes: Vec<ReadyClass>,
    pub class_keys: Vec<ClassKey>,
    /// Assigned or running tasks.
    pub active: u32,
    /// Tasks whose `when` must be evaluated by the engine.
    pub to_check: Vec<TaskIdx>,
    /// Gates whose tasks all finished their work: the engine must run their checks.
    pub gates_due: Vec<u32>,
    /// Parked because a lock they need is held: lock -> tasks.
    pub waiting_lock: HashMap<String, Vec<TaskIdx>>,
    /// Parked because the resource pool is short.
    pub waiting_resources: Vec<TaskIdx>,
    /// Multi-agent tasks parked until enough of their agents have a free slot at once.
    pub waiting_slots: Vec<TaskIdx>,
    /// Succeeded tasks in completion order (saga compensation runs in reverse).
    pub completion_order: Vec<TaskIdx>,
}

impl RunIndex {
    /// The derived structure of a workflow, with empty queues.
    fn of(wf: &Workflow) -> RunIndex {
        let n = wf.tasks.len();
        let needs: Vec<Vec<TaskIdx>> = wf.tasks.iter().map(|t| t.needs.clone()).collect();
        let analysis = crate::graph::analyze(&needs);
        let mut dependents = vec![Vec::new(); n];
        for (i, t) in wf.tasks.iter().enumerate() {
            for d in &t.needs {
                dependents[*d as usize].push(i as TaskIdx);
            }
        }
        let mut gates_of = vec![Vec::new(); n];
        for (g, gate) in wf.gates.iter().enumerate() {
            for t in &gate.after {
                gates_of[*t as usize].push(g as u32);
            }
        }
        let by_id = wf
            .tasks
            .iter()
            .enumerate()
            .map(|(i, t)| (t.id.clone(), i as TaskIdx))
            .collect();
        let mut class_keys: Vec<ClassKey> = Vec::new();
        let mut class_lookup: HashMap<ClassKey, u16> = HashMap::new();
        let mut class_of = Vec::with_capacity(n);
        for t in &wf.tasks {
            let key = ClassKey {
                requires: t.requires.clone(),
                agent: t.agent.clone(),
                action: action_class(&t.action),
            };
            let next = class_keys.len() as u16;
            let c = *class_lookup.entry(key.clone()).or_insert_with(|| {
                class_keys.push(key);
                next
            });
            class_of.push(c);
        }
        RunIndex {
            by_id,
            dependents,
            rank: analysis.rank,
            gates_of,
            classes: vec![ReadyClass::default(); class_keys.len()],
            class_of,
            class_keys,
            ..RunIndex::default()
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentState {
    pub name: Arc<str>,
    pub spec: AgentSpec,
    pub slots_used: u32,
    /// Exponential moving average of success (1.0 = every attempt succeeded).
    pub success_ema: f64,
    pub succeeded: u64,
    pub failed: u64,
    /// Sum of finished attempts' durations, for the mean.
    pub busy_ms: u64,
    /// Recent finished attempts (time, success), newest last, for sparklines.
    pub recent: Vec<(Millis, bool)>,
}

const EMA_ALPHA: f64 = 0.3;
const RECENT_KEEP: usize = 64;

impl AgentState {
    pub fn new(name: Arc<str>, spec: AgentSpec) -> AgentState {
        AgentState {
            name,
            spec,
            slots_used: 0,
            success_ema: 1.0,
            succeeded: 0,
            failed: 0,
            busy_ms: 0,
            recent: Vec::new(),
        }
    }

    pub fn free_slots(&self) -> u32 {
        self.spec.slots.saturating_sub(self.slots_used)
    }

    fn record(&mut self, at: Millis, ok: bool, took: u64) {
        self.success_ema = self.success_ema * (1.0 - EMA_ALPHA) + if ok { EMA_ALPHA } else { 0.0 };
        if ok {
            self.succeeded += 1;
        } else {
            self.failed += 1;
        }
        self.busy_ms += took;
        if self.recent.len() == RECENT_KEEP {
            self.recent.remove(0);
        }
        self.recent.push((at, ok));
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Limits {
    /// Engine-wide cap on assigned + running tasks.
    pub max_parallel: u32,
    pub pool: Resources,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EngineState {
    pub runs: IndexMap<RunId, Run>,
    pub agents: IndexMap<Arc<str>, AgentState>,
    pub limits: Limits,
    pub pool_used: Resources,
    /// Held named locks.
    pub locks: HashMap<String, (RunId, TaskIdx)>,
    pub active: u32,
    pub last_seq: u64,
    /// Round-robin start for dispatch across runs (scheduler bookkeeping, not client state).
    #[serde(skip)]
    pub rr_cursor: usize,
    /// Pending retry timers.
    #[serde(skip)]
    pub timers: BTreeSet<(Millis, RunId, TaskIdx)>,
    /// Some run has multi-agent tasks parked in `waiting_slots` (spares a scan of every run
    /// each time a slot frees).
    #[serde(skip)]
    pub slot_waiters: bool,
}

fn state_slot(s: TaskState) -> usize {
    s as usize
}

impl Run {
    pub fn count(&self, s: TaskState) -> u32 {
        self.counts[state_slot(s)]
    }

    pub fn task_id(&self, t: TaskIdx) -> &str {
        &self.workflow.tasks[t as usize].id
    }

    pub fn terminal_count(&self) -> u32 {
        TaskState::ALL
            .iter()
            .filter(|s| s.is_terminal())
            .map(|s| self.count(*s))
            .sum()
    }

    pub fn all_terminal(&self) -> bool {
        self.terminal_count() as usize == self.tasks.len()
    }

    /// Whether the run would fail if it ended now.
    pub fn has_failures(&self) -> bool {
        self.tasks.iter().enumerate().any(|(i, t)| {
            matches!(
                t.state,
                TaskState::Failed | TaskState::Blocked | TaskState::Cancelled
            ) && !(t.state == TaskState::Failed && self.workflow.tasks[i].continue_on_failure)
        })
    }

    fn set_state(&mut self, t: TaskIdx, s: TaskState) {
        let task = &mut self.tasks[t as usize];
        if task.state == s {
            return;
        }
        self.counts[state_slot(task.state)] -= 1;
        self.counts[state_slot(s)] += 1;
        task.state = s;
    }

    fn ready_key(&self, t: TaskIdx) -> ReadyKey {
        (
            self.workflow.tasks[t as usize].priority,
            self.index.rank[t as usize],
            Reverse(t),
        )
    }

    fn push_ready(&mut self, t: TaskIdx) {
        self.set_state(t, TaskState::Ready);
        let key = self.ready_key(t);
        let class = self.index.class_of[t as usize] as usize;
        self.index.classes[class].heap.push(key);
    }

    /// Puts a parked task back in its ready queue (if it is still ready).
    fn requeue(&mut self, t: TaskIdx) {
        if self.tasks[t as usize].state == TaskState::Ready {
            let key = self.ready_key(t);
            let c = self.index.class_of[t as usize] as usize;
            self.index.classes[c].heap.push(key);
        }
    }

    /// A task whose needs are all satisfied is ready, unless the engine must first evaluate its
    /// `when` or ask for approval (it emits the event that decides).
    fn on_unblocked(&mut self, t: TaskIdx) {
        let spec = &self.workflow.tasks[t as usize];
        if spec.when.is_some() || (spec.approval && !self.tasks[t as usize].approved) {
            self.index.to_check.push(t);
        } else {
            self.push_ready(t);
        }
    }

    /// A need of each dependent got satisfied.
    fn release_dependents(&mut self, t: TaskIdx) {
        for i in 0..self.index.dependents[t as usize].len() {
            let d = self.index.dependents[t as usize][i];
            let task = &mut self.tasks[d as usize];
            task.unmet = task.unmet.saturating_sub(1);
            if task.unmet == 0 && task.state == TaskState::Pending {
                self.on_unblocked(d);
            }
        }
    }

    /// Everything downstream of `t` that has not finished becomes `state` (blocked or skipped),
    /// and the gates over those tasks can no longer run.
    fn propagate_down(&mut self, t: TaskIdx, state: TaskState, why: &str, now: Millis) {
        let mut stack: Vec<TaskIdx> = self.index.dependents[t as usize].clone();
        while let Some(d) = stack.pop() {
            let task = &self.tasks[d as usize];
            let open = matches!(
                task.state,
                TaskState::Pending | TaskState::WaitingApproval | TaskState::Ready
            ) || (task.state == TaskState::Paused
                && matches!(
                    task.paused_from,
                    Some(TaskState::Pending | TaskState::WaitingApproval | TaskState::Ready)
                ));
            if !open {
                continue;
            }
            self.set_state(d, state);
            let task = &mut self.tasks[d as usize];
            task.paused_from = None;
            task.reason = Some(why.to_string());
            stack.extend(self.index.dependents[d as usize].iter().copied());
            self.gates_cannot_run(d, now);
        }
    }

    /// Satisfied for its dependents: succeeded, or failed but allowed to.
    fn satisfies(&self, t: TaskIdx) -> bool {
        let s = self.tasks[t as usize].state;
        s == TaskState::Succeeded
            || (s == TaskState::Failed && self.workflow.tasks[t as usize].continue_on_failure)
    }

    /// A need of `t` that has finished without satisfying it (so `t` can never run), if any.
    pub fn dead_need(&self, t: TaskIdx) -> Option<TaskIdx> {
        self.workflow.tasks[t as usize]
            .needs
            .iter()
            .copied()
            .find(|n| self.tasks[*n as usize].state.is_terminal() && !self.satisfies(*n))
    }

    /// After a reset: a pending task with a dead need ends blocked (or skipped) at once, with
    /// its pending dependents, as it would have the first time.
    fn settle_dead_needs(&mut self, t: TaskIdx, now: Millis) {
        if self.tasks[t as usize].state != TaskState::Pending {
            return;
        }
        let Some(n) = self.dead_need(t) else {
            return;
        };
        let (state, why) = if self.tasks[n as usize].state == TaskState::Skipped {
            (
                TaskState::Skipped,
                format!("upstream `{}` was skipped", self.task_id(n)),
            )
        } else {
            (
                TaskState::Blocked,
                format!("upstream `{}` did not succeed", self.task_id(n)),
            )
        };
        self.set_state(t, state);
        self.tasks[t as usize].reason = Some(why.clone());
        self.gates_cannot_run(t, now);
        self.propagate_down(t, state, &why, now);
    }

    fn recount_unmet(&mut self, t: TaskIdx) {
        let needs = &self.workflow.tasks[t as usize].needs;
        let unmet = needs.iter().filter(|n| !self.satisfies(**n)).count() as u32;
        self.tasks[t as usize].unmet = unmet;
    }

    /// Resets `t` to pending with fresh state (keeping its attempt history).
    fn reset_task(&mut self, t: TaskIdx) {
        self.set_state(t, TaskState::Pending);
        let task = &mut self.tasks[t as usize];
        task.budget_base = task.attempts.len();
        task.outputs.clear();
        task.approved = false;
        task.reason = None;
        task.retry_at = None;
        task.paused_from = None;
        task.finished_at = None;
        task.compensated = false;
        self.index.completion_order.retain(|x| *x != t);
        for g in self.index.gates_of[t as usize].clone() {
            self.gates[g as usize] = Gate {
                state: GateState::Pending,
                results: vec![None; self.workflow.gates[g as usize].checks.len()],
            };
        }
        self.recount_unmet(t);
    }

    fn reopen(&mut self) {
        if self.state.is_terminal() {
            self.state = RunState::Running;
            self.finished_at = None;
            self.cancel_requested = false;
        }
    }

    /// A gated task finished its work: once every task of a gate has, the gate is due.
    fn note_validating(&mut self, t: TaskIdx) {
        for g in self.index.gates_of[t as usize].clone() {
            let gate = &self.workflow.gates[g as usize];
            if self.gates[g as usize].state == GateState::Pending
                && gate
                    .after
                    .iter()
                    .all(|a| self.tasks[*a as usize].state == TaskState::Validating)
            {
                self.index.gates_due.push(g);
            }
        }
    }

    /// A gated task will never finish its work: its gates cannot run, so their other tasks fail.
    fn gates_cannot_run(&mut self, t: TaskIdx, now: Millis) {
        for g in self.index.gates_of[t as usize].clone() {
            if matches!(
                self.gates[g as usize].state,
                GateState::Pending | GateState::Checking
            ) {
                self.gates[g as usize].state = GateState::Skipped;
                let gate_id = self.workflow.gates[g as usize].id.clone();
                let why = format!(
                    "gate `{gate_id}` could not run: `{}` did not succeed",
                    self.task_id(t)
                );
                for a in self.workflow.gates[g as usize].after.clone() {
                    if self.tasks[a as usize].state == TaskState::Validating {
                        self.fail_task(a, &why, now);
                    }
                }
            }
        }
    }

    fn fail_task(&mut self, t: TaskIdx, why: &str, now: Millis) {
        self.set_state(t, TaskState::Failed);
        self.tasks[t as usize].reason = Some(why.to_string());
        self.tasks[t as usize].finished_at = Some(now);
        self.after_failure(t, now);
    }

    /// Downstream consequences of a terminal failure or cancellation.
    fn after_failure(&mut self, t: TaskIdx, now: Millis) {
        if self.satisfies(t) {
            self.release_dependents(t);
        } else {
            let why = format!("upstream `{}` did not succeed", self.task_id(t));
            self.propagate_down(t, TaskState::Blocked, &why, now);
        }
        self.gates_cannot_run(t, now);
    }

    fn succeed(&mut self, t: TaskIdx, now: Millis) {
        self.set_state(t, TaskState::Succeeded);
        self.tasks[t as usize].finished_at.get_or_insert(now);
        self.index.completion_order.push(t);
        self.release_dependents(t);
    }
}

impl EngineState {
    pub fn new(limits: Limits, agents: impl IntoIterator<Item = (String, AgentSpec)>) -> Self {
        let agents = agents
            .into_iter()
            .map(|(n, s)| {
                let n: Arc<str> = n.into();
                (n.clone(), AgentState::new(n, s))
            })
            .collect();
        EngineState {
            runs: IndexMap::new(),
            agents,
            limits,
            pool_used: Resources::default(),
            locks: HashMap::new(),
            active: 0,
            last_seq: 0,
            rr_cursor: 0,
            timers: BTreeSet::new(),
            slot_waiters: false,
        }
    }

    pub fn run(&self, id: &RunId) -> Option<&Run> {
        self.runs.get(id)
    }

    /// Rebuilds what serialization leaves out (indexes, dependency counters, ready queues), so
    /// a state read back from its JSON (a remote console's snapshot) folds later events exactly
    /// like the engine's own. Budgets and timers are the engine's business and stay empty.
    pub fn restore(&mut self) {
        for run in self.runs.values_mut() {
            run.index = RunIndex::of(&run.workflow);
            let mut done: Vec<(Millis, TaskIdx)> = Vec::new();
            for t in 0..run.tasks.len() as TaskIdx {
                run.recount_unmet(t);
                let task = &run.tasks[t as usize];
                match task.state {
                    TaskState::Ready => run.requeue(t),
                    TaskState::Assigned | TaskState::Running => run.index.active += 1,
                    TaskState::Succeeded => done.push((task.finished_at.unwrap_or(0), t)),
                    _ => {}
                }
            }
            done.sort();
            run.index.completion_order = done.into_iter().map(|(_, t)| t).collect();
        }
        self.refresh_all_classes();
    }

    /// Applies one event. Pure: the same events in the same order give the same state.
    pub fn apply(&mut self, ev: &Event) {
        self.last_seq = ev.seq;
        let now = ev.ts;
        if let EventKind::RunSubmitted { workflow, source } = &ev.kind {
            self.submit(ev.run.clone(), workflow.clone(), source.clone(), now);
            return;
        }
        let Some(run) = self.runs.get_mut(&ev.run) else {
            return;
        };
        match &ev.kind {
            EventKind::RunSubmitted { .. } => {}
            EventKind::RunPaused => {
                if run.state == RunState::Running {
                    run.state = RunState::Paused;
                }
            }
            EventKind::RunResumed => {
                if run.state == RunState::Paused {
                    run.state = RunState::Running;
                }
            }
            EventKind::RunCancelRequested => run.cancel_requested = true,
            EventKind::RunFinished { state } => {
                run.state = *state;
                run.finished_at = Some(now);
            }
            EventKind::TaskAssigned {
                task,
                agent,
                attempt,
            } => {
                let t = *task;
                run.set_state(t, TaskState::Assigned);
                run.tasks[t as usize].attempts.push(Attempt {
                    number: *attempt,
                    agent: agent.clone(),
                    assigned_at: now,
                    started_at: None,
                    finished_at: None,
                    outcome: None,
                    exit_code: None,
                    error: String::new(),
                    pid: None,
                    branches: Vec::new(),
                    resolution: None,
                });
                run.index.active += 1;
                self.active += 1;
                let spec = &run.workflow.tasks[t as usize];
                add_resources(&mut self.pool_used, &spec.resources);
                for l in &spec.locks {
                    // Never take over a held lock: a task failed at assignment (a `when` that
                    // cannot be evaluated) would release it on another's behalf.
                    self.locks
                        .entry(l.clone())
                        .or_insert_with(|| (ev.run.clone(), t));
                }
                if let Some(a) = self.agents.get_mut(agent) {
                    a.slots_used += 1;
                }
            }
            EventKind::TaskStarted { task, pid, .. } => {
                let t = *task;
                let task = &mut run.tasks[t as usize];
                if task.state == TaskState::Assigned {
                    run.set_state(t, TaskState::Running);
                } else if task.state == TaskState::Paused
                    && task.paused_from == Some(TaskState::Assigned)
                {
                    // Started while paused (the executor stops it at once): resume to running.
                    task.paused_from = Some(TaskState::Running);
                }
                if let Some(a) = run.tasks[t as usize].attempts.last_mut() {
                    a.started_at = Some(now);
                    a.pid = *pid;
                }
            }
            EventKind::TaskSucceeded {
                task,
                exit_code,
                outputs,
                ..
            } => {
                let t = *task;
                self.end_attempt(&ev.run, t, AttemptOutcome::Succeeded, *exit_code, "", now);
                let Some(run) = self.runs.get_mut(&ev.run) else {
                    return;
                };
                let agent = run.tasks[t as usize].last_agent().cloned();
                if let Some(agent) = agent {
                    let memory = outputs
                        .iter()
                        .filter_map(|(k, v)| k.strip_prefix("memory.").map(|k| (k, v)))
                        .collect::<Vec<_>>();
                    if !memory.is_empty() {
                        let m = run.agent_memory.entry(agent).or_default();
                        for (k, v) in memory {
                            m.insert(k.to_string(), v.clone());
                        }
                    }
                }
                let task = &mut run.tasks[t as usize];
                task.outputs = outputs.clone();
                task.finished_at = Some(now);
                if run.index.gates_of[t as usize].is_empty() {
                    run.succeed(t, now);
                } else {
                    run.set_state(t, TaskState::Validating);
                    run.note_validating(t);
                }
            }
            EventKind::TaskFailed {
                task,
                outcome,
                error,
                exit_code,
                retry_at,
                ..
            } => {
                let t = *task;
                self.end_attempt(&ev.run, t, *outcome, *exit_code, error, now);
                let Some(run) = self.runs.get_mut(&ev.run) else {
                    return;
                };
                match retry_at {
                    Some(at) => {
                        run.set_state(t, TaskState::RetryWait);
                        run.tasks[t as usize].retry_at = Some(*at);
                        self.timers.insert((*at, ev.run.clone(), t));
                    }
                    None => {
                        run.set_state(t, TaskState::Failed);
                        run.tasks[t as usize].reason = Some(error.clone());
                        run.tasks[t as usize].finished_at = Some(now);
                        run.after_failure(t, now);
                    }
                }
            }
            EventKind::TaskRetryDue { task } => {
                let t = *task;
                let task_state = run.tasks[t as usize].state;
                if let Some(at) = run.tasks[t as usize].retry_at.take() {
                    self.timers.remove(&(at, ev.run.clone(), t));
                }
                match task_state {
                    TaskState::RetryWait => run.push_ready(t),
                    // Due while paused: it is ready once resumed (the timer is gone).
                    TaskState::Paused
                        if run.tasks[t as usize].paused_from == Some(TaskState::RetryWait) =>
                    {
                        run.tasks[t as usize].paused_from = Some(TaskState::Ready);
                    }
                    _ => {}
                }
            }
            EventKind::TaskConditionPassed { task } => {
                if run.tasks[*task as usize].state == TaskState::Pending {
                    run.push_ready(*task);
                }
            }
            EventKind::TaskAwaitingApproval { task } => {
                if run.tasks[*task as usize].state == TaskState::Pending {
                    run.set_state(*task, TaskState::WaitingApproval);
                }
            }
            EventKind::TaskSkipped { task, reason } => {
                let t = *task;
                run.set_state(t, TaskState::Skipped);
                run.tasks[t as usize].reason = Some(reason.clone());
                let why = format!("upstream `{}` was skipped", run.task_id(t));
                run.propagate_down(t, TaskState::Skipped, &why, now);
                run.gates_cannot_run(t, now);
            }
            EventKind::TaskCancelled { task } => {
                let t = *task;
                let was_active = run.tasks[t as usize].state.is_active()
                    || (run.tasks[t as usize].state == TaskState::Paused
                        && run.tasks[t as usize].open_attempt().is_some());
                if was_active {
                    self.end_attempt(
                        &ev.run,
                        t,
                        AttemptOutcome::Cancelled,
                        None,
                        "cancelled",
                        now,
                    );
                }
                let Some(run) = self.runs.get_mut(&ev.run) else {
                    return;
                };
                if let Some(at) = run.tasks[t as usize].retry_at.take() {
                    self.timers.remove(&(at, ev.run.clone(), t));
                }
                run.set_state(t, TaskState::Cancelled);
                run.tasks[t as usize].paused_from = None;
                run.tasks[t as usize].reason = Some("cancelled by the operator".into());
                run.after_failure(t, now);
            }
            EventKind::TaskPaused { task } => {
                let t = *task;
                let s = run.tasks[t as usize].state;
                if !s.is_terminal() && s != TaskState::Paused {
                    run.tasks[t as usize].paused_from = Some(s);
                    run.set_state(t, TaskState::Paused);
                }
            }
            EventKind::TaskResumed { task } => {
                let t = *task;
                if run.tasks[t as usize].state == TaskState::Paused {
                    let from = run.tasks[t as usize]
                        .paused_from
                        .take()
                        .unwrap_or(TaskState::Pending);
                    match from {
                        TaskState::Ready => run.push_ready(t),
                        TaskState::Pending => {
                            run.set_state(t, TaskState::Pending);
                            if run.tasks[t as usize].unmet == 0 {
                                run.on_unblocked(t);
                            }
                        }
                        TaskState::Validating => {
                            // Paused by a failed gate: resuming re-checks the gate.
                            run.set_state(t, TaskState::Validating);
                            for g in run.index.gates_of[t as usize].clone() {
                                if run.gates[g as usize].state == GateState::Failed {
                                    run.gates[g as usize].state = GateState::Pending;
                                }
                            }
                            // Paused while its gates ran, and they passed meanwhile: done.
                            let passed = run.index.gates_of[t as usize].iter().all(|g| {
                                matches!(
                                    run.gates[*g as usize].state,
                                    GateState::Passed | GateState::Warned
                                )
                            });
                            if passed {
                                run.succeed(t, now);
                            } else {
                                run.note_validating(t);
                            }
                        }
                        other => run.set_state(t, other),
                    }
                }
            }
            EventKind::TaskApproved { task } => {
                let t = *task;
                run.tasks[t as usize].approved = true;
                let task = &mut run.tasks[t as usize];
                if task.state == TaskState::WaitingApproval {
                    run.push_ready(t);
                } else if task.state == TaskState::Paused
                    && task.paused_from == Some(TaskState::WaitingApproval)
                {
                    // Approved while paused: it is ready once resumed.
                    task.paused_from = Some(TaskState::Ready);
                }
            }
            EventKind::TaskRetried { task } => {
                let t = *task;
                run.reopen();
                run.reset_task(t);
                // Its blocked (or gate-failed) dependents get another chance too.
                let mut stack = run.index.dependents[t as usize].clone();
                let mut reset = vec![t];
                while let Some(d) = stack.pop() {
                    if run.tasks[d as usize].state == TaskState::Blocked {
                        run.reset_task(d);
                        reset.push(d);
                        stack.extend(run.index.dependents[d as usize].iter().copied());
                    }
                }
                // Those with another failed upstream stay blocked.
                for x in reset {
                    run.settle_dead_needs(x, now);
                }
                if run.tasks[t as usize].state == TaskState::Pending
                    && run.tasks[t as usize].unmet == 0
                {
                    run.on_unblocked(t);
                }
            }
            EventKind::TaskRerun { task } => {
                let t = *task;
                run.reopen();
                // Reset in topological order (upstream first) so unmet counters are right.
                let mut order = Vec::new();
                let mut seen = vec![false; run.tasks.len()];
                let mut stack = vec![t];
                while let Some(x) = stack.pop() {
                    if std::mem::replace(&mut seen[x as usize], true) {
                        continue;
                    }
                    order.push(x);
                    stack.extend(run.index.dependents[x as usize].iter().copied());
                }
                order.sort_by_key(|x| Reverse(run.index.rank[*x as usize]));
                for x in &order {
                    if !run.tasks[*x as usize].state.is_active() {
                        // A task waiting for its retry starts over: its timer must not fire.
                        if let Some(at) = run.tasks[*x as usize].retry_at {
                            self.timers.remove(&(at, ev.run.clone(), *x));
                        }
                        run.reset_task(*x);
                    }
                }
                for x in &order {
                    run.recount_unmet(*x);
                }
                // Those with a failed or skipped upstream outside the re-run end as before.
                for x in &order {
                    run.settle_dead_needs(*x, now);
                }
                for x in order {
                    if run.tasks[x as usize].state == TaskState::Pending
                        && run.tasks[x as usize].unmet == 0
                    {
                        run.on_unblocked(x);
                    }
                }
            }
            EventKind::GateStarted { gate } => {
                let g = *gate as usize;
                run.gates[g].state = GateState::Checking;
                run.gates[g].results = vec![None; run.workflow.gates[g].checks.len()];
            }
            EventKind::GateCheck {
                gate,
                check,
                passed,
                message,
            } => {
                if let Some(slot) = run.gates[*gate as usize].results.get_mut(*check as usize) {
                    *slot = Some(CheckResult {
                        passed: *passed,
                        message: message.clone(),
                    });
                }
            }
            EventKind::GateFinished { gate, state } => {
                let g = *gate as usize;
                run.gates[g].state = *state;
                let spec = run.workflow.gates[g].clone();
                let gate_passed = |run: &Run, gi: u32| {
                    matches!(
                        run.gates[gi as usize].state,
                        GateState::Passed | GateState::Warned
                    )
                };
                match state {
                    GateState::Passed | GateState::Warned => {
                        for t in &spec.after {
                            let t = *t;
                            if run.tasks[t as usize].state == TaskState::Validating
                                && run.index.gates_of[t as usize]
                                    .iter()
                                    .all(|gi| gate_passed(run, *gi))
                            {
                                run.succeed(t, now);
                            }
                        }
                    }
                    GateState::Failed => {
                        let why = format!("quality gate `{}` failed", spec.id);
                        for t in &spec.after {
                            let t = *t;
                            if run.tasks[t as usize].state != TaskState::Validating {
                                continue;
                            }
                            match spec.on_fail {
                                OnFail::Pause => {
                                    run.tasks[t as usize].paused_from = Some(TaskState::Validating);
                                    run.tasks[t as usize].reason = Some(why.clone());
                                    run.set_state(t, TaskState::Paused);
                                }
                                OnFail::Retry => {
                                    let attempts = run.workflow.tasks[t as usize].retry.attempts;
                                    if run.tasks[t as usize].attempts_used() < attempts {
                                        run.tasks[t as usize].outputs.clear();
                                        run.tasks[t as usize].reason = Some(why.clone());
                                        run.push_ready(t);
                                        // The new attempt is checked again.
                                        run.gates[g].state = GateState::Pending;
                                    } else {
                                        run.fail_task(t, &why, now);
                                    }
                                }
                                OnFail::Fail | OnFail::Warn => run.fail_task(t, &why, now),
                            }
                        }
                    }
                    _ => {}
                }
            }
            EventKind::CompensationStarted { .. } => {}
            EventKind::TaskInterrupted { task, .. } => {
                let t = *task;
                self.end_attempt(
                    &ev.run,
                    t,
                    AttemptOutcome::Interrupted,
                    None,
                    "taskdeck stopped while this attempt ran",
                    now,
                );
                let Some(run) = self.runs.get_mut(&ev.run) else {
                    return;
                };
                match run.tasks[t as usize].state {
                    TaskState::Assigned | TaskState::Running => run.push_ready(t),
                    // Paused mid-attempt: ready for a new attempt once resumed.
                    TaskState::Paused => run.tasks[t as usize].paused_from = Some(TaskState::Ready),
                    _ => {}
                }
            }
            EventKind::GateInterrupted { gate } => {
                let g = *gate as usize;
                if run.gates[g].state == GateState::Checking {
                    run.gates[g].state = GateState::Pending;
                    run.gates[g].results.clear();
                    run.index.gates_due.push(*gate);
                }
            }
            EventKind::CompensationFinished { task, .. } => {
                run.tasks[*task as usize].compensated = true;
            }
            EventKind::BranchAssigned {
                task,
                attempt,
                branch,
                agent,
                judge,
            } => {
                let Some(a) = open_attempt_mut(run, *task, *attempt) else {
                    return;
                };
                if a.branches.len() != *branch as usize {
                    return; // out of order: never double-count a slot
                }
                a.branches.push(Branch {
                    agent: agent.clone(),
                    judge: *judge,
                    finished_at: None,
                    outcome: None,
                    exit_code: None,
                    outputs: Map::new(),
                    error: String::new(),
                });
                if let Some(a) = self.agents.get_mut(agent) {
                    a.slots_used += 1;
                }
            }
            EventKind::BranchFinished {
                task,
                attempt,
                branch,
                outcome,
                exit_code,
                outputs,
                error,
            } => {
                let Some(a) = open_attempt_mut(run, *task, *attempt) else {
                    return;
                };
                let began = a.started_at.unwrap_or(a.assigned_at);
                let Some(b) = a
                    .branches
                    .get_mut(*branch as usize)
                    .filter(|b| b.outcome.is_none())
                else {
                    return;
                };
                b.outcome = Some(*outcome);
                b.finished_at = Some(now);
                b.exit_code = *exit_code;
                b.outputs = outputs.clone();
                b.error = error.clone();
                let agent = b.agent.clone();
                if let Some(a) = self.agents.get_mut(&agent) {
                    a.slots_used = a.slots_used.saturating_sub(1);
                    if *outcome != AttemptOutcome::Cancelled {
                        a.record(
                            now,
                            *outcome == AttemptOutcome::Succeeded,
                            now.saturating_sub(began),
                        );
                    }
                }
                self.wake_slot_waiters();
            }
            EventKind::TaskResolved {
                task,
                attempt,
                resolution,
            } => {
                if let Some(a) = open_attempt_mut(run, *task, *attempt) {
                    a.resolution = Some(resolution.clone());
                }
            }
        }
    }

    /// A slot came free: multi-agent tasks waiting for several at once look again.
    fn wake_slot_waiters(&mut self) {
        if !std::mem::take(&mut self.slot_waiters) {
            return;
        }
        for r in self.runs.values_mut() {
            for w in std::mem::take(&mut r.index.waiting_slots) {
                r.requeue(w);
            }
        }
    }

    fn submit(&mut self, id: RunId, wf: Arc<Workflow>, source: Option<String>, now: Millis) {
        let n = wf.tasks.len();
        // Workflow agents join the roster (a redefinition replaces the old spec).
        for (name, spec) in &wf.agents {
            let key: Arc<str> = name.as_str().into();
            match self.agents.get_mut(&key) {
                Some(a) => a.spec = spec.clone(),
                None => {
                    self.agents
                        .insert(key.clone(), AgentState::new(key, spec.clone()));
                }
            }
        }

        let mut counts = [0u32; 13];
        counts[state_slot(TaskState::Pending)] = n as u32;
        let tasks = wf
            .tasks
            .iter()
            .map(|t| Task::new(t.needs.len() as u32))
            .collect();
        let gates = wf
            .gates
            .iter()
            .map(|g| Gate {
                state: GateState::Pending,
                results: vec![None; g.checks.len()],
            })
            .collect();
        let mut run = Run {
            index: RunIndex::of(&wf),
            id: id.clone(),
            workflow: wf.clone(),
            source,
            state: RunState::Running,
            submitted_at: now,
            finished_at: None,
            tasks,
            gates,
            cancel_requested: false,
            counts,
            agent_memory: HashMap::new(),
        };
        for i in 0..n {
            if run.tasks[i].unmet == 0 {
                run.on_unblocked(i as TaskIdx);
            }
        }
        self.runs.insert(id, run);
        // Which agents can serve each ready class, for this run and (since this workflow may
        // have added agents) every other.
        self.refresh_all_classes();
    }

    /// Which agents can serve each ready class, in every run (the roster may have changed).
    fn refresh_all_classes(&mut self) {
        let roster: Vec<(Arc<str>, AgentSpec)> = self
            .agents
            .values()
            .map(|a| (a.name.clone(), a.spec.clone()))
            .collect();
        for r in self.runs.values_mut() {
            refresh_classes(r, &roster);
        }
    }

    /// Closes the open attempt of `t`, releasing its slot, resources and locks.
    fn end_attempt(
        &mut self,
        run_id: &RunId,
        t: TaskIdx,
        outcome: AttemptOutcome,
        exit_code: Option<i32>,
        error: &str,
        now: Millis,
    ) {
        let Some(run) = self.runs.get_mut(run_id) else {
            return;
        };
        let task = &mut run.tasks[t as usize];
        let Some(att) = task.attempts.last_mut() else {
            return;
        };
        if att.finished_at.is_some() {
            return;
        }
        att.finished_at = Some(now);
        att.outcome = Some(outcome);
        att.exit_code = exit_code;
        att.error = error.to_string();
        let took = now.saturating_sub(att.started_at.unwrap_or(att.assigned_at));
        let agent = att.agent.clone();
        run.index.active = run.index.active.saturating_sub(1);
        self.active = self.active.saturating_sub(1);
        let spec = &run.workflow.tasks[t as usize];
        sub_resources(&mut self.pool_used, &spec.resources);
        let freed_resources = !spec.resources.is_zero();
        let locks = spec.locks.clone();
        if freed_resources {
            // Tasks of any run may wait for resources.
            for r in self.runs.values_mut() {
                for w in std::mem::take(&mut r.index.waiting_resources) {
                    r.requeue(w);
                }
            }
        }
        for l in locks {
            if self
                .locks
                .get(&l)
                .is_some_and(|(r, x)| r == run_id && *x == t)
            {
                self.locks.remove(&l);
            }
            // Tasks of any run may wait on this lock.
            for r in self.runs.values_mut() {
                for w in r.index.waiting_lock.remove(&l).unwrap_or_default() {
                    r.requeue(w);
                }
            }
        }
        if let Some(a) = self.agents.get_mut(&agent) {
            a.slots_used = a.slots_used.saturating_sub(1);
            if outcome != AttemptOutcome::Cancelled {
                a.record(now, outcome == AttemptOutcome::Succeeded, took);
            }
        }
        // Branches still open when a multi-agent attempt ends stop with it.
        let branch_outcome = match outcome {
            AttemptOutcome::Interrupted => AttemptOutcome::Interrupted,
            _ => AttemptOutcome::Cancelled,
        };
        let mut freed = Vec::new();
        if let Some(att) = self
            .runs
            .get_mut(run_id)
            .and_then(|r| r.tasks[t as usize].attempts.last_mut())
        {
            for b in att.branches.iter_mut().filter(|b| b.outcome.is_none()) {
                b.outcome = Some(branch_outcome);
                b.finished_at = Some(now);
                freed.push(b.agent.clone());
            }
        }
        for name in freed {
            if let Some(a) = self.agents.get_mut(&name) {
                a.slots_used = a.slots_used.saturating_sub(1);
            }
        }
        self.wake_slot_waiters();
    }

    /// Earliest pending retry timer.
    pub fn next_timer(&self) -> Option<Millis> {
        self.timers.first().map(|(at, _, _)| *at)
    }
}

/// The open attempt of `t` if it is number `attempt`.
fn open_attempt_mut(run: &mut Run, t: TaskIdx, attempt: u32) -> Option<&mut Attempt> {
    run.tasks
        .get_mut(t as usize)?
        .attempts
        .last_mut()
        .filter(|a| a.number == attempt && a.finished_at.is_none())
}

/// Recomputes which agents can serve each ready class of a run.
fn refresh_classes(run: &mut Run, roster: &[(Arc<str>, AgentSpec)]) {
    for (c, key) in run.index.class_keys.iter().enumerate() {
        let probe = match key.action {
            0 => Action::Run(String::new()),
            1 => Action::Builtin(crate::spec::Builtin::Noop),
            _ => Action::Prompt(String::new()),
        };
        run.index.classes[c].agents = roster
            .iter()
            .filter(|(name, spec)| {
                key.agent.as_deref().is_none_or(|a| a == &**name)
                    && spec.kind.can_run(&probe)
                    && key.requires.iter().all(|r| spec.capabilities.contains(r))
            })
            .map(|(n, _)| n.clone())
            .collect();
    }
}

fn add_resources(pool: &mut Resources, r: &Resources) {
    pool.cpu += r.cpu;
    pool.memory_mb += r.memory_mb;
    pool.gpu += r.gpu;
}

fn sub_resources(pool: &mut Resources, r: &Resources) {
    pool.cpu = (pool.cpu - r.cpu).max(0.0);
    pool.memory_mb = pool.memory_mb.saturating_sub(r.memory_mb);
    pool.gpu = pool.gpu.saturating_sub(r.gpu);
}

/// Whether `need` fits in what is left of the pool.
pub fn fits(limits: &Limits, used: &Resources, need: &Resources) -> bool {
    let p = &limits.pool;
    (need.cpu == 0.0 || used.cpu + need.cpu <= p.cpu + 1e-9)
        && (need.memory_mb == 0 || used.memory_mb + need.memory_mb <= p.memory_mb)
        && (need.gpu == 0 || used.gpu + need.gpu <= p.gpu)
}
