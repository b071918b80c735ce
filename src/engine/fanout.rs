//! Multi-agent tasks, the pure part: which agents run the branches of an attempt, and how their
//! outputs become the task's (`first`, `merge`, `majority`, `judge`). No I/O: the actor feeds in
//! the branches as the journal records them and carries out the verdict.

use std::sync::Arc;

use indexmap::IndexMap;
use serde_json::{Map, Value, json};

use super::assign;
use super::state::{AgentState, Run};
use crate::model::{AgentValue, AttemptOutcome, Branch, Conflict, Resolution, TaskIdx};
use crate::spec::{Fanout, FanoutAgents, Resolve};

/// Per-agent facts that differ between agents by nature (llm usage and timing): merged like
/// any output but never called a conflict.
const METADATA_KEYS: &[&str] = &["usage", "latency_ms", "model", "finish_reason"];

/// The agents of one multi-agent attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crew {
    /// One branch each, in branch order.
    pub workers: Vec<Arc<str>>,
    /// The judge (`resolve = { judge = ... }`); its slot is held from the start, so it can
    /// always answer once the workers are done.
    pub judge: Option<Arc<str>>,
}

impl Crew {
    /// What the attempt's `agent` field says: `a+b+c` (`+` is not allowed in agent names).
    pub fn label(&self) -> Arc<str> {
        self.workers
            .iter()
            .map(|a| &**a)
            .collect::<Vec<_>>()
            .join("+")
            .into()
    }
}

/// Agents for a multi-agent attempt of `t`, each with a free slot for its branch (and one
/// more for the judge), or `None` when they are not all free now. `candidates` are the agents
/// able to run the task, in roster order.
pub fn choose_crew(
    agents: &IndexMap<Arc<str>, AgentState>,
    run: &Run,
    t: TaskIdx,
    candidates: &[Arc<str>],
    fanout: &Fanout,
) -> Option<Crew> {
    let judge: Option<Arc<str>> = match &fanout.resolve {
        Resolve::Judge { agent, .. } => Some(agents.get_key_value(agent.as_str())?.0.clone()),
        _ => None,
    };
    let free = |name: &str| agents.get(name).map_or(0, AgentState::free_slots);
    // A judge that is also a worker needs two slots there.
    let judge_extra = |name: &str| u32::from(judge.as_deref() == Some(name));
    let workers: Vec<Arc<str>> = match &fanout.agents {
        FanoutAgents::Named(names) => {
            let mut out = Vec::with_capacity(names.len());
            for n in names {
                let (key, _) = agents.get_key_value(n.as_str())?;
                if free(n) < 1 + judge_extra(n) {
                    return None;
                }
                out.push(key.clone());
            }
            out
        }
        FanoutAgents::Count(n) => {
            let mut scored: Vec<(bool, f64, usize, &Arc<str>)> = candidates
                .iter()
                .enumerate()
                .filter(|(_, name)| free(name) > judge_extra(name))
                .filter_map(|(i, name)| {
                    let score = assign::score(agents.get(name)?, run, t);
                    Some((judge_extra(name) == 1, score, i, name))
                })
                .collect();
            if scored.len() < *n as usize {
                return None;
            }
            // The judge works only when it must (it should judge others' answers); then best
            // score first; roster order breaks ties, so the choice is deterministic.
            scored.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)).then(a.2.cmp(&b.2)));
            scored
                .into_iter()
                .take(*n as usize)
                .map(|(_, _, _, name)| name.clone())
                .collect()
        }
    };
    if let Some(j) = &judge
        && !workers.contains(j)
        && free(j) < 1
    {
        return None;
    }
    Some(Crew { workers, judge })
}

/// How an attempt ends.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Succeeded(Map<String, Value>),
    Failed(String),
    Cancelled,
}

/// What the actor does after a branch reported.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Branches are still running.
    Wait,
    /// The workers are done: start the judge.
    StartJudge,
    /// Decided. Branches still running are cancelled.
    Done {
        resolution: Option<Resolution>,
        outcome: Outcome,
    },
}

/// Decides a multi-agent attempt from its branches so far (in branch order; the judge, if
/// any, is the one with `judge` set). `judge_started` tells a judge waiting for the workers
/// from one already at work.
pub fn decide(resolve: &Resolve, branches: &[Branch], judge_started: bool) -> Verdict {
    let workers: Vec<&Branch> = branches.iter().filter(|b| !b.judge).collect();
    let judge = branches.iter().find(|b| b.judge);
    let finished = |b: &&Branch| b.outcome.is_some();
    let all_done = workers.iter().all(finished);
    // An operator's cancel: wait for every running branch to stop, then the attempt is
    // cancelled (there is nothing to resolve).
    if branches
        .iter()
        .any(|b| b.outcome == Some(AttemptOutcome::Cancelled))
    {
        let judge_busy = judge_started && judge.is_some_and(|j| j.outcome.is_none());
        return if all_done && !judge_busy {
            Verdict::Done {
                resolution: None,
                outcome: Outcome::Cancelled,
            }
        } else {
            Verdict::Wait
        };
    }
    if let Resolve::First = resolve {
        return first(&workers, all_done);
    }
    if !all_done {
        return Verdict::Wait;
    }
    let ok: Vec<&Branch> = workers
        .iter()
        .copied()
        .filter(|b| b.outcome == Some(AttemptOutcome::Succeeded))
        .collect();
    if ok.is_empty() {
        return none_succeeded(resolve, &workers);
    }
    match resolve {
        Resolve::First => first(&workers, true),
        Resolve::Merge => merge(&workers, &ok),
        Resolve::Majority { field } => majority(field, &workers),
        Resolve::Judge { .. } => match judge {
            Some(j) if j.outcome.is_some() => judged(j, &ok),
            Some(_) if judge_started => Verdict::Wait,
            Some(_) => Verdict::StartJudge,
            None => Verdict::Done {
                resolution: None,
                outcome: Outcome::Failed("the judge of this task was never assigned".into()),
            },
        },
    }
}

fn summary_of_failures(workers: &[&Branch]) -> String {
    workers
        .iter()
        .filter(|b| b.outcome != Some(AttemptOutcome::Succeeded))
        .map(|b| {
            let why = b.error.lines().next().unwrap_or("failed");
            format!("{}: {why}", b.agent)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn none_succeeded(resolve: &Resolve, workers: &[&Branch]) -> Verdict {
    let error = format!(
        "all {} agents failed ({})",
        workers.len(),
        summary_of_failures(workers)
    );
    Verdict::Done {
        resolution: Some(Resolution {
            strategy: resolve.name().into(),
            ok: false,
            winner: None,
            summary: error.clone(),
            conflicts: Vec::new(),
        }),
        outcome: Outcome::Failed(error),
    }
}

/// The earliest successful reply wins (branch order breaks a tie).
fn first(workers: &[&Branch], all_done: bool) -> Verdict {
    let winner = workers
        .iter()
        .enumerate()
        .filter(|(_, b)| b.outcome == Some(AttemptOutcome::Succeeded))
        .min_by_key(|(i, b)| (b.finished_at.unwrap_or(u64::MAX), *i))
        .map(|(_, b)| *b);
    match winner {
        Some(w) => Verdict::Done {
            resolution: Some(Resolution {
                strategy: "first".into(),
                ok: true,
                winner: Some(w.agent.clone()),
                summary: format!("`{}` answered first", w.agent),
                conflicts: Vec::new(),
            }),
            outcome: Outcome::Succeeded(w.outputs.clone()),
        },
        None if all_done => none_succeeded(&Resolve::First, workers),
        None => Verdict::Wait,
    }
}

/// The union of the successful branches' outputs; the first agent's value of a key is kept.
fn merge(workers: &[&Branch], ok: &[&Branch]) -> Verdict {
    let (outputs, conflicts) = merge_outputs(ok);
    let mut summary = format!("merged the outputs of {} agents", ok.len());
    if ok.len() < workers.len() {
        summary.push_str(&format!(
            " ({} of {} failed: {})",
            workers.len() - ok.len(),
            workers.len(),
            summary_of_failures(workers)
        ));
    }
    if !conflicts.is_empty() {
        let keys: Vec<String> = conflicts
            .iter()
            .map(|c| {
                format!(
                    "`{}` kept from `{}`",
                    c.field,
                    c.kept.as_deref().unwrap_or("?")
                )
            })
            .collect();
        summary.push_str(&format!(
            "; {} conflict{}: {}",
            conflicts.len(),
            if conflicts.len() == 1 { "" } else { "s" },
            keys.join(", ")
        ));
    }
    Verdict::Done {
        resolution: Some(Resolution {
            strategy: "merge".into(),
            ok: true,
            winner: None,
            summary,
            conflicts,
        }),
        outcome: Outcome::Succeeded(outputs),
    }
}

/// Union of `branches`' outputs in branch order, and the keys they disagree on.
pub fn merge_outputs(branches: &[&Branch]) -> (Map<String, Value>, Vec<Conflict>) {
    let mut out = Map::new();
    let mut kept_from: Map<String, Value> = Map::new();
    let mut conflicts: IndexMap<String, Conflict> = IndexMap::new();
    for b in branches {
        for (k, v) in &b.outputs {
            match out.get(k) {
                None => {
                    out.insert(k.clone(), v.clone());
                    kept_from.insert(k.clone(), Value::String(b.agent.to_string()));
                }
                Some(kept) if kept != v && !METADATA_KEYS.contains(&k.as_str()) => {
                    conflicts.entry(k.clone()).or_insert_with(|| Conflict {
                        field: k.clone(),
                        values: Vec::new(),
                        kept: kept_from.get(k).and_then(Value::as_str).map(Arc::from),
                    });
                }
                Some(_) => {}
            }
        }
    }
    // Every agent's value of each disputed key, in branch order.
    for c in conflicts.values_mut() {
        c.values = branches
            .iter()
            .map(|b| AgentValue {
                agent: b.agent.clone(),
                value: b.outputs.get(&c.field).cloned().unwrap_or(Value::Null),
            })
            .collect();
    }
    (out, conflicts.into_values().collect())
}

/// An output by key, or by a dotted path into JSON outputs (`json.verdict`).
pub fn lookup<'a>(outputs: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if let Some(v) = outputs.get(path) {
        return Some(v);
    }
    let mut parts = path.split('.');
    let mut v = outputs.get(parts.next()?)?;
    for p in parts {
        v = match v {
            Value::Object(m) => m.get(p)?,
            Value::Array(a) => a.get(p.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(v)
}

/// Votes compare trimmed, case-folded text, so `Approve` and `approve ` agree.
fn ballot(v: &Value) -> Value {
    match v {
        Value::String(s) => Value::String(s.trim().to_lowercase()),
        other => other.clone(),
    }
}

/// More than half of all branches (failed ones count as no vote) must agree on `field`.
fn majority(field: &str, workers: &[&Branch]) -> Verdict {
    let votes: Vec<Option<&Value>> = workers
        .iter()
        .map(|b| {
            (b.outcome == Some(AttemptOutcome::Succeeded))
                .then(|| lookup(&b.outputs, field))
                .flatten()
        })
        .collect();
    // Tally in order of first appearance.
    let mut tally: Vec<(Value, usize, usize)> = Vec::new(); // ballot, count, first voter
    for (i, v) in votes.iter().enumerate() {
        let Some(v) = v else { continue };
        let b = ballot(v);
        match tally.iter_mut().find(|(x, _, _)| *x == b) {
            Some(entry) => entry.1 += 1,
            None => tally.push((b, 1, i)),
        }
    }
    let n = workers.len();
    let top = tally
        .iter()
        .max_by_key(|(_, c, i)| (*c, std::cmp::Reverse(*i)));
    let winner = top.filter(|(_, c, _)| c * 2 > n);
    let unanimous = winner.is_some_and(|(_, c, _)| *c == n);
    let conflict = (!unanimous).then(|| Conflict {
        field: field.to_string(),
        values: workers
            .iter()
            .zip(&votes)
            .map(|(b, v)| AgentValue {
                agent: b.agent.clone(),
                value: v.cloned().unwrap_or(Value::Null),
            })
            .collect(),
        kept: winner.map(|(_, _, i)| workers[*i].agent.clone()),
    });
    let spread = tally
        .iter()
        .map(|(v, c, _)| format!("{} ×{c}", short(v)))
        .collect::<Vec<_>>()
        .join(", ");
    let missing = votes.iter().filter(|v| v.is_none()).count();
    let spread = if missing > 0 {
        format!(
            "{spread}{}no vote ×{missing}",
            if spread.is_empty() { "" } else { ", " }
        )
    } else {
        spread
    };
    match winner {
        Some((v, c, i)) => {
            let w = workers[*i];
            Verdict::Done {
                resolution: Some(Resolution {
                    strategy: "majority".into(),
                    ok: true,
                    winner: Some(w.agent.clone()),
                    summary: format!("`{field}` = {} by {c} of {n} agents ({spread})", short(v)),
                    conflicts: conflict.into_iter().collect(),
                }),
                outcome: Outcome::Succeeded(w.outputs.clone()),
            }
        }
        None => {
            let summary = format!("no majority on `{field}` among {n} agents ({spread})");
            Verdict::Done {
                resolution: Some(Resolution {
                    strategy: "majority".into(),
                    ok: false,
                    winner: None,
                    summary: summary.clone(),
                    conflicts: conflict.into_iter().collect(),
                }),
                outcome: Outcome::Failed(summary),
            }
        }
    }
}

/// A value in a short line.
fn short(v: &Value) -> String {
    let s = match v {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    };
    if s.chars().count() > 40 {
        format!("{}…", s.chars().take(39).collect::<String>())
    } else {
        s
    }
}

/// What the judge sees: each successful branch, numbered from 1.
pub fn candidates(branches: &[Branch]) -> Value {
    Value::Array(
        branches
            .iter()
            .filter(|b| !b.judge && b.outcome == Some(AttemptOutcome::Succeeded))
            .enumerate()
            .map(|(i, b)| json!({ "index": i + 1, "agent": &*b.agent, "outputs": b.outputs }))
            .collect(),
    )
}

/// The judge's reply decides: a `pick` (an agent name or a candidate's number, also read from
/// `json.pick`) takes that candidate's outputs; otherwise the judge's own outputs are the
/// task's.
fn judged(judge: &Branch, ok: &[&Branch]) -> Verdict {
    let (_, conflicts) = merge_outputs(ok);
    if judge.outcome != Some(AttemptOutcome::Succeeded) {
        let error = format!(
            "judge `{}` failed: {}",
            judge.agent,
            judge.error.lines().next().unwrap_or("no reason given")
        );
        return Verdict::Done {
            resolution: Some(Resolution {
                strategy: "judge".into(),
                ok: false,
                winner: None,
                summary: error.clone(),
                conflicts,
            }),
            outcome: Outcome::Failed(error),
        };
    }
    let pick = lookup(&judge.outputs, "pick").or_else(|| lookup(&judge.outputs, "json.pick"));
    let picked = pick.and_then(|p| match p {
        Value::String(s) => {
            let s = s.trim();
            ok.iter().find(|b| &*b.agent == s).or_else(|| {
                s.parse::<usize>()
                    .ok()
                    .and_then(|i| ok.get(i.checked_sub(1)?))
            })
        }
        Value::Number(n) => ok.get((n.as_u64()? as usize).checked_sub(1)?),
        _ => None,
    });
    let mut conflicts = conflicts;
    let (outputs, winner, summary) = match picked {
        Some(b) => {
            for c in &mut conflicts {
                c.kept = Some(b.agent.clone());
            }
            (
                b.outputs.clone(),
                b.agent.clone(),
                format!("`{}` picked `{}`", judge.agent, b.agent),
            )
        }
        None => {
            for c in &mut conflicts {
                c.kept = None;
            }
            let mut summary = format!(
                "`{}` wrote the outputs from {} candidates",
                judge.agent,
                ok.len()
            );
            if let Some(p) = pick {
                summary.push_str(&format!(" (its pick {} names no candidate)", short(p)));
            }
            (judge.outputs.clone(), judge.agent.clone(), summary)
        }
    };
    Verdict::Done {
        resolution: Some(Resolution {
            strategy: "judge".into(),
            ok: true,
            winner: Some(winner),
            summary,
            conflicts,
        }),
        outcome: Outcome::Succeeded(outputs),
    }
}

/// The judge's default prompt: the task, then every candidate's outputs.
pub const DEFAULT_JUDGE_PROMPT: &str = "Several agents did the same task. Choose the best result, \
or write a better one from them.\n\nTask:\n{{ task.prompt }}\n\n{% for c in candidates %}\
Candidate {{ c.index }} ({{ c.agent }}):\n{{ c.outputs | tojson }}\n\n{% endfor %}\
Reply with the final answer only.";

#[cfg(test)]
mod tests;
