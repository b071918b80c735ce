//! Dispatch decisions: which ready task runs next, on which agent. Deterministic over the
//! state; costs O(log n) per dispatch plus the number of requirement classes.

use std::sync::Arc;

use super::assign;
use super::fanout::{self, Crew};
use super::state::{EngineState, ReadyKey, fits};
use crate::model::{RunId, RunState, TaskIdx, TaskState};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dispatch {
    pub run: RunId,
    pub task: TaskIdx,
    pub agent: Arc<str>,
    /// The attempt number this dispatch starts (1-based, over the task's whole history).
    pub attempt: u32,
    /// A multi-agent task's agents (`agent` is then their label, `a+b`).
    pub crew: Option<Crew>,
}

/// The next task to start, or `None` when nothing can start now. Tasks that cannot start for a
/// lock or resources are parked until those are released.
pub fn next_dispatch(st: &mut EngineState) -> Option<Dispatch> {
    if st.active >= st.limits.max_parallel {
        return None;
    }
    let n_runs = st.runs.len();
    for offset in 0..n_runs {
        let ri = (st.rr_cursor + offset) % n_runs;
        let EngineState {
            runs,
            agents,
            limits,
            pool_used,
            locks,
            slot_waiters,
            ..
        } = st;
        let Some((run_id, run)) = runs.get_index_mut(ri) else {
            continue;
        };
        if run.state != RunState::Running || run.cancel_requested {
            continue;
        }
        if run
            .workflow
            .max_parallel
            .is_some_and(|m| run.index.active >= m)
        {
            continue;
        }
        loop {
            // The best queue head among classes that have an agent with a free slot.
            let mut best: Option<(ReadyKey, usize)> = None;
            for (c, class) in run.index.classes.iter().enumerate() {
                let Some(top) = class.heap.peek() else {
                    continue;
                };
                if best.as_ref().is_some_and(|(k, _)| top <= k) {
                    continue;
                }
                let has_free = class
                    .agents
                    .iter()
                    .any(|a| agents.get(a).is_some_and(|a| a.free_slots() > 0));
                if has_free {
                    best = Some((*top, c));
                }
            }
            let Some((_, c)) = best else {
                break;
            };
            let Some(key) = run.index.classes[c].heap.pop() else {
                break;
            };
            let t = key.2.0;
            if run.tasks[t as usize].state != TaskState::Ready {
                continue; // stale entry (paused, cancelled, or already dispatched)
            }
            let spec = &run.workflow.tasks[t as usize];
            if let Some(lock) = spec.locks.iter().find(|l| locks.contains_key(*l)) {
                run.index
                    .waiting_lock
                    .entry(lock.clone())
                    .or_default()
                    .push(t);
                continue;
            }
            if !spec.resources.is_zero() && !fits(limits, pool_used, &spec.resources) {
                run.index.waiting_resources.push(t);
                continue;
            }
            let candidates = &run.index.classes[c].agents;
            let (agent, crew) = match &spec.fanout {
                // Every branch needs its own agent's slot, all at once.
                Some(f) => match fanout::choose_crew(agents, run, t, candidates, f) {
                    Some(crew) => (crew.label(), Some(crew)),
                    None => {
                        run.index.waiting_slots.push(t);
                        *slot_waiters = true;
                        continue;
                    }
                },
                None => match assign::choose(agents, run, t, candidates) {
                    Some(agent) => (agent, None),
                    None => {
                        // Cannot happen (the class had a free agent), but never lose the task.
                        run.index.classes[c].heap.push(key);
                        break;
                    }
                },
            };
            let attempt = run.tasks[t as usize].attempts.len() as u32 + 1;
            let dispatch = Dispatch {
                run: run_id.clone(),
                task: t,
                agent,
                attempt,
                crew,
            };
            st.rr_cursor = (ri + 1) % n_runs;
            return Some(dispatch);
        }
    }
    None
}
