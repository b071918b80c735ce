//! Agent health inside the actor: which agents to probe and when, and what a probe's answer
//! changes. Probes run off the engine's task; their answers come back on a channel and become
//! `AgentHealth` events on every unfinished run that uses the agent.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use tokio::sync::mpsc;

use super::Actor;
use crate::engine::llm;
use crate::engine::state::Run;
use crate::exec::probe::{self, ProbeTarget};
use crate::model::{AgentHealth, EventKind, RunId, now_millis};
use crate::spec::AgentKind;

/// Time between probes of a healthy agent.
const UP_EVERY_MS: u64 = 30_000;
/// Time between probes of a down agent (its tasks are waiting for it or its fallback).
const DOWN_EVERY_MS: u64 = 5_000;

pub(super) struct Probes {
    tx: mpsc::UnboundedSender<(Arc<str>, AgentHealth)>,
    pub(super) rx: mpsc::UnboundedReceiver<(Arc<str>, AgentHealth)>,
    in_flight: HashSet<Arc<str>>,
    /// When each agent's last probe answered.
    last: HashMap<Arc<str>, u64>,
}

impl Default for Probes {
    fn default() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Probes {
            tx,
            rx,
            in_flight: HashSet::new(),
            last: HashMap::new(),
        }
    }
}

/// Whether `run` is unfinished and may give work to `agent`.
fn uses(run: &Run, agent: &str) -> bool {
    !run.state.is_terminal()
        && run
            .index
            .classes
            .iter()
            .any(|c| c.agents.iter().chain(&c.fallbacks).any(|a| &**a == agent))
}

impl Actor {
    /// Unfinished runs that may give work to `agent`.
    fn runs_using(&self, agent: &str) -> Vec<RunId> {
        self.state
            .runs
            .iter()
            .filter(|(_, r)| uses(r, agent))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Starts the probes that are due: agents never probed, and those whose last probe is older
    /// than their interval, among agents some unfinished run uses.
    pub(super) fn probe_due_agents(&mut self) {
        let now = now_millis();
        let names: Vec<Arc<str>> = self.state.agents.keys().cloned().collect();
        for name in names {
            let Some(agent) = self.state.agents.get(&name) else {
                continue;
            };
            if agent.spec.kind == AgentKind::Local || self.probes.in_flight.contains(&name) {
                continue;
            }
            let every = if agent.health.takes_work() {
                UP_EVERY_MS
            } else {
                DOWN_EVERY_MS
            };
            if self
                .probes
                .last
                .get(&name)
                .is_some_and(|at| now < at + every)
            {
                continue;
            }
            let runs = self.runs_using(&name);
            let Some(first_run) = runs.first() else {
                continue;
            };
            let spec = agent.spec.clone();
            let first_probe = agent.health == AgentHealth::Unknown;
            // The key is rendered with the secrets of a run that uses the agent.
            let api_key = spec.api_key.as_deref().and_then(|t| {
                let secrets = &self.extras.get(first_run)?.secrets;
                llm::render_api_key(&name, t, secrets, &serde_json::json!({})).ok()
            });
            if first_probe {
                // No work until the first answer: a missing program should not fail a task.
                for run in &runs {
                    self.emit(
                        run,
                        EventKind::AgentHealth {
                            agent: name.clone(),
                            health: AgentHealth::Probing,
                        },
                    );
                }
            }
            self.probes.in_flight.insert(name.clone());
            let tx = self.probes.tx.clone();
            let target = ProbeTarget { spec, api_key };
            tokio::spawn(async move {
                let health = probe::probe(&target).await;
                let _ = tx.send((name, health));
            });
        }
    }

    /// A probe answered: a change becomes an event (and a line in the engine log).
    pub(super) fn on_probe(&mut self, name: Arc<str>, health: AgentHealth) {
        self.probes.in_flight.remove(&name);
        self.probes.last.insert(name.clone(), now_millis());
        let Some(agent) = self.state.agents.get(&name) else {
            return;
        };
        let was = agent.health.clone();
        if was == health {
            return;
        }
        let fallback = agent.spec.fallback.clone();
        let line = match &health {
            AgentHealth::Down(why) => Some(match &fallback {
                Some(f) => format!("agent `{name}` is down: {why}; its tasks go to `{f}`"),
                None => format!(
                    "agent `{name}` is down: {why}; its tasks go to other capable agents or wait"
                ),
            }),
            AgentHealth::Up if matches!(was, AgentHealth::Down(_)) => {
                Some(format!("agent `{name}` is up again"))
            }
            _ => None,
        };
        for run in self.runs_using(&name) {
            if let Some(l) = &line {
                self.system_log(&run, l.clone());
            }
            self.emit(
                &run,
                EventKind::AgentHealth {
                    agent: name.clone(),
                    health: health.clone(),
                },
            );
        }
        if let Some(l) = line {
            tracing::info!("{l}");
        }
        // No unfinished run uses it: the roster still shows the truth.
        if let Some(a) = self.state.agents.get_mut(&name) {
            a.health = health;
        }
    }

    /// When the next probe is due of an agent some unfinished run uses.
    pub(super) fn next_probe_at(&self) -> Option<u64> {
        let live: Vec<&Run> = self
            .state
            .runs
            .values()
            .filter(|r| !r.state.is_terminal())
            .collect();
        if live.is_empty() {
            return None;
        }
        self.state
            .agents
            .iter()
            .filter(|(n, a)| a.spec.kind != AgentKind::Local && !self.probes.in_flight.contains(*n))
            // An agent no run uses is not probed, so it must not wake the engine either.
            .filter(|(n, _)| live.iter().any(|r| uses(r, n)))
            .filter_map(|(n, a)| {
                let every = if a.health.takes_work() {
                    UP_EVERY_MS
                } else {
                    DOWN_EVERY_MS
                };
                self.probes.last.get(n).map(|at| at + every)
            })
            .min()
    }
}
