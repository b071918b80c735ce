//! Agent assignment: among agents able to run a task with a free slot, the best score wins.
//! score = 0.40 capability fit + 0.25 spare capacity + 0.20 success rate (EMA) + 0.15 context
//! affinity (it ran this task's upstreams). After a failed attempt the runner-up is preferred.

use std::sync::Arc;

use indexmap::IndexMap;

use super::state::{AgentState, Run};
use crate::model::{AttemptOutcome, TaskIdx};

/// Capability fit: a specialist whose capabilities are mostly what the task needs fits best;
/// an agent with no capabilities fits a task that requires none perfectly.
pub fn capability_fit(requires: &[String], capabilities: &[String]) -> f64 {
    if capabilities.is_empty() {
        return if requires.is_empty() { 1.0 } else { 0.0 };
    }
    let matched = requires.iter().filter(|r| capabilities.contains(r)).count();
    matched as f64 / capabilities.len() as f64
}

/// Share of the task's upstreams whose latest attempt ran on `agent`.
pub fn affinity(run: &Run, t: TaskIdx, agent: &str) -> f64 {
    let needs = &run.workflow.tasks[t as usize].needs;
    if needs.is_empty() {
        return 0.0;
    }
    let same = needs
        .iter()
        .filter(|n| {
            run.tasks[**n as usize]
                .last_agent()
                .is_some_and(|a| &**a == agent)
        })
        .count();
    same as f64 / needs.len() as f64
}

pub fn score(agent: &AgentState, run: &Run, t: TaskIdx) -> f64 {
    let spec = &run.workflow.tasks[t as usize];
    let spare = if agent.spec.slots == 0 {
        0.0
    } else {
        agent.free_slots() as f64 / agent.spec.slots as f64
    };
    0.40 * capability_fit(&spec.requires, &agent.spec.capabilities)
        + 0.25 * spare
        + 0.20 * agent.success_ema
        + 0.15 * affinity(run, t, &agent.name)
}

/// Picks the agent for task `t` among `candidates` (already known able to run it).
/// Returns `None` when none has a free slot.
pub fn choose(
    agents: &IndexMap<Arc<str>, AgentState>,
    run: &Run,
    t: TaskIdx,
    candidates: &[Arc<str>],
) -> Option<Arc<str>> {
    if let [only] = candidates {
        // One possible agent: nothing to score.
        return agents
            .get(only)
            .filter(|a| a.free_slots() > 0)
            .map(|_| only.clone());
    }
    let task = &run.tasks[t as usize];
    // After a failed attempt, avoid the agent it failed on when another can take the task.
    let avoid = task
        .attempts
        .last()
        .filter(|a| {
            matches!(
                a.outcome,
                Some(AttemptOutcome::Failed | AttemptOutcome::TimedOut)
            )
        })
        .map(|a| a.agent.clone());
    let mut best: Option<(f64, &Arc<str>)> = None;
    let mut fallback: Option<(f64, &Arc<str>)> = None;
    for name in candidates {
        let Some(agent) = agents.get(name) else {
            continue;
        };
        if agent.free_slots() == 0 {
            continue;
        }
        let s = score(agent, run, t);
        let slot = if avoid.as_ref() == Some(name) {
            &mut fallback
        } else {
            &mut best
        };
        if slot.is_none_or(|(b, _)| s > b) {
            *slot = Some((s, name));
        }
    }
    best.or(fallback).map(|(_, n)| n.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(c: &[&str]) -> Vec<String> {
        c.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn specialists_fit_better_than_generalists() {
        let req = caps(&["review"]);
        assert_eq!(capability_fit(&req, &caps(&["review"])), 1.0);
        assert_eq!(capability_fit(&req, &caps(&["review", "build"])), 0.5);
        assert_eq!(capability_fit(&req, &caps(&[])), 0.0);
        assert_eq!(capability_fit(&[], &caps(&[])), 1.0);
        assert_eq!(capability_fit(&[], &caps(&["build"])), 0.0);
    }
}
