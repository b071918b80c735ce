//! Helpers shared by integration tests: hand-built workflows and a pure engine simulator.
#![allow(dead_code)]

pub mod tui;

/// Serves the app `app(address)` builds on 127.0.0.1 from a thread of its own (so sync and
/// async tests can both use it) and gives the address.
pub fn serve_on_thread(
    app: impl FnOnce(std::net::SocketAddr) -> axum::Router,
) -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let app = app(addr);
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let l = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(l, app).await.unwrap();
        });
    });
    addr
}

use std::sync::Arc;

use taskdeck::engine::scheduler::next_dispatch;
use taskdeck::engine::state::{EngineState, Limits};
use taskdeck::model::{AttemptOutcome, Event, EventKind, RunId, TaskIdx, TaskState};
use taskdeck::spec::{Action, AgentSpec, Builtin, TaskSpec, Workflow};

pub fn task(id: &str, needs: &[TaskIdx]) -> TaskSpec {
    let mut t = TaskSpec::new(id, Action::Builtin(Builtin::Noop));
    t.needs = needs.to_vec();
    t
}

pub fn workflow(tasks: Vec<TaskSpec>) -> Workflow {
    Workflow::new("test", tasks)
}

pub fn local(slots: u32) -> (String, AgentSpec) {
    ("local".into(), AgentSpec::default_local(slots))
}

/// Drives an `EngineState` by hand, as the actor would, without processes or clocks.
pub struct Sim {
    pub st: EngineState,
    pub run: RunId,
    seq: u64,
    pub ts: u64,
}

impl Sim {
    pub fn new(wf: Workflow, limits: Limits, agents: Vec<(String, AgentSpec)>) -> Sim {
        let mut sim = Sim {
            st: EngineState::new(limits, agents),
            run: RunId::from("r1"),
            seq: 0,
            ts: 1000,
        };
        sim.emit(EventKind::RunSubmitted {
            workflow: Arc::new(wf),
            source: None,
        });
        sim
    }

    pub fn emit(&mut self, kind: EventKind) {
        self.seq += 1;
        self.ts += 1;
        let ev = Event {
            seq: self.seq,
            ts: self.ts,
            run: self.run.clone(),
            kind,
        };
        self.st.apply(&ev);
    }

    pub fn state_of(&self, t: TaskIdx) -> TaskState {
        self.st.runs[&self.run].tasks[t as usize].state
    }

    /// What the actor does with tasks waiting for a condition check: here every condition holds.
    pub fn pass_conditions(&mut self, approve: bool) {
        let due = std::mem::take(&mut self.st.runs.get_mut(&self.run).unwrap().index.to_check);
        for t in due {
            let run = &self.st.runs[&self.run];
            let needs_approval =
                run.workflow.tasks[t as usize].approval && !run.tasks[t as usize].approved;
            if needs_approval {
                self.emit(EventKind::TaskAwaitingApproval { task: t });
                if approve {
                    self.emit(EventKind::TaskApproved { task: t });
                }
            } else {
                self.emit(EventKind::TaskConditionPassed { task: t });
            }
        }
    }

    /// Dispatches everything that can start; returns the started tasks.
    pub fn dispatch_all(&mut self) -> Vec<TaskIdx> {
        let mut started = Vec::new();
        while let Some(d) = next_dispatch(&mut self.st) {
            self.emit(EventKind::TaskAssigned {
                task: d.task,
                agent: d.agent.clone(),
                attempt: d.attempt,
            });
            self.emit(EventKind::TaskStarted {
                task: d.task,
                attempt: d.attempt,
                pid: None,
            });
            started.push(d.task);
        }
        started
    }

    pub fn succeed(&mut self, t: TaskIdx) {
        let attempt = self.st.runs[&self.run].tasks[t as usize].attempts.len() as u32;
        self.emit(EventKind::TaskSucceeded {
            task: t,
            attempt,
            exit_code: Some(0),
            outputs: Default::default(),
        });
    }

    pub fn fail(&mut self, t: TaskIdx, retry: bool) {
        let attempt = self.st.runs[&self.run].tasks[t as usize].attempts.len() as u32;
        self.emit(EventKind::TaskFailed {
            task: t,
            attempt,
            outcome: AttemptOutcome::Failed,
            error: "boom".into(),
            exit_code: Some(1),
            retry_at: retry.then_some(self.ts + 1),
        });
    }

    pub fn running(&self) -> Vec<TaskIdx> {
        self.st.runs[&self.run]
            .tasks
            .iter()
            .enumerate()
            .filter(|(_, t)| t.state == TaskState::Running)
            .map(|(i, _)| i as TaskIdx)
            .collect()
    }
}
