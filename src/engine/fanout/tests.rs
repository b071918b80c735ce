use proptest::prelude::*;
use serde_json::json;

use super::*;

fn branch(agent: &str, outcome: Option<AttemptOutcome>, outputs: Value) -> Branch {
    Branch {
        agent: agent.into(),
        judge: false,
        finished_at: outcome.map(|_| 0),
        outcome,
        exit_code: None,
        outputs: match outputs {
            Value::Object(m) => m,
            _ => Map::new(),
        },
        error: if outcome == Some(AttemptOutcome::Failed) {
            "exit 1".into()
        } else {
            String::new()
        },
    }
}

fn ok(agent: &str, outputs: Value) -> Branch {
    branch(agent, Some(AttemptOutcome::Succeeded), outputs)
}

fn failed(agent: &str) -> Branch {
    branch(agent, Some(AttemptOutcome::Failed), json!({}))
}

fn running(agent: &str) -> Branch {
    branch(agent, None, json!({}))
}

fn done(v: Verdict) -> (Option<Resolution>, Outcome) {
    match v {
        Verdict::Done {
            resolution,
            outcome,
        } => (resolution, outcome),
        other => panic!("not decided: {other:?}"),
    }
}

fn majority_on(field: &str) -> Resolve {
    Resolve::Majority {
        field: field.into(),
    }
}

#[test]
fn first_takes_the_earliest_success_and_waits_otherwise() {
    let mut a = ok("a", json!({"x": 1}));
    a.finished_at = Some(20);
    let mut b = ok("b", json!({"x": 2}));
    b.finished_at = Some(10);
    assert_eq!(
        decide(&Resolve::First, &[failed("c"), running("d")], false),
        Verdict::Wait
    );
    let (res, out) = done(decide(&Resolve::First, &[a, b, running("c")], false));
    assert_eq!(
        out,
        Outcome::Succeeded(json!({"x": 2}).as_object().unwrap().clone())
    );
    assert_eq!(res.unwrap().winner.as_deref(), Some("b"));
    let (res, out) = done(decide(&Resolve::First, &[failed("a"), failed("b")], false));
    assert!(matches!(out, Outcome::Failed(e) if e == "all 2 agents failed (a: exit 1; b: exit 1)"));
    assert!(!res.unwrap().ok);
}

#[test]
fn majority_wins_with_more_than_half_of_all_branches() {
    let branches = [
        ok("a", json!({"verdict": "approve", "n": 1})),
        ok("b", json!({"verdict": "reject"})),
        ok("c", json!({"verdict": " Approve", "n": 3})),
    ];
    let (res, out) = done(decide(&majority_on("verdict"), &branches, false));
    let res = res.unwrap();
    assert!(res.ok);
    assert_eq!(res.winner.as_deref(), Some("a"));
    assert_eq!(out, Outcome::Succeeded(branches[0].outputs.clone()));
    assert_eq!(
        res.summary,
        "`verdict` = \"approve\" by 2 of 3 agents (\"approve\" ×2, \"reject\" ×1)"
    );
    // Not unanimous: the disagreement is a conflict, with the winner's value kept.
    assert_eq!(res.conflicts.len(), 1);
    assert_eq!(res.conflicts[0].kept.as_deref(), Some("a"));
    assert_eq!(res.conflicts[0].values[1].value, json!("reject"));
}

#[test]
fn failed_branches_count_against_a_majority() {
    let branches = [
        ok("a", json!({"v": "x"})),
        failed("b"),
        ok("c", json!({"v": "y"})),
    ];
    let (res, out) = done(decide(&majority_on("v"), &branches, false));
    let res = res.unwrap();
    assert!(!res.ok);
    assert_eq!(
        res.summary,
        "no majority on `v` among 3 agents (\"x\" ×1, \"y\" ×1, no vote ×1)"
    );
    assert!(matches!(out, Outcome::Failed(_)));
    assert_eq!(res.conflicts[0].kept, None);
    assert_eq!(res.conflicts[0].values[1].value, Value::Null);
}

#[test]
fn majority_reads_dotted_paths_into_json() {
    let branches = [
        ok("a", json!({"json": {"verdict": "yes"}})),
        ok("b", json!({"json": {"verdict": "yes"}})),
    ];
    let (res, _) = done(decide(&majority_on("json.verdict"), &branches, false));
    let res = res.unwrap();
    assert!(res.ok);
    assert!(res.conflicts.is_empty(), "unanimous: no conflict");
}

#[test]
fn merge_unions_and_keeps_the_first_agents_value() {
    let branches = [
        ok("a", json!({"x": 1, "only_a": true, "latency_ms": 5})),
        failed("b"),
        ok("c", json!({"x": 2, "only_c": "z", "latency_ms": 9})),
    ];
    let (res, out) = done(decide(&Resolve::Merge, &branches, false));
    let Outcome::Succeeded(out) = out else {
        panic!()
    };
    assert_eq!(
        Value::Object(out),
        json!({"x": 1, "only_a": true, "latency_ms": 5, "only_c": "z"})
    );
    let res = res.unwrap();
    assert_eq!(res.conflicts.len(), 1, "metadata keys are not conflicts");
    let c = &res.conflicts[0];
    assert_eq!(c.field, "x");
    assert_eq!(c.kept.as_deref(), Some("a"));
    assert_eq!(
        c.values.iter().map(|v| v.value.clone()).collect::<Vec<_>>(),
        [json!(1), json!(2)]
    );
    assert_eq!(
        res.summary,
        "merged the outputs of 2 agents (1 of 3 failed: b: exit 1); 1 conflict: `x` kept from `a`"
    );
}

#[test]
fn judge_starts_after_the_workers_and_its_pick_wins() {
    let mut judge = running("j");
    judge.judge = true;
    let workers = vec![
        ok("a", json!({"text": "short"})),
        ok("b", json!({"text": "long"})),
    ];
    let mut all = workers.clone();
    all.push(judge.clone());
    let mut waiting = all.clone();
    waiting[1] = running("b");
    assert_eq!(decide(&judge_of("j"), &waiting, false), Verdict::Wait);
    assert_eq!(decide(&judge_of("j"), &all, false), Verdict::StartJudge);
    assert_eq!(decide(&judge_of("j"), &all, true), Verdict::Wait);

    let cands = candidates(&all);
    assert_eq!(
        cands[1],
        json!({"index": 2, "agent": "b", "outputs": {"text": "long"}})
    );

    all[2] = ok("j", json!({"pick": "2"}));
    all[2].judge = true;
    let (res, out) = done(decide(&judge_of("j"), &all, true));
    assert_eq!(out, Outcome::Succeeded(workers[1].outputs.clone()));
    let res = res.unwrap();
    assert_eq!(res.summary, "`j` picked `b`");
    assert_eq!(res.conflicts[0].kept.as_deref(), Some("b"));

    all[2] = ok("j", json!({"text": "both"}));
    all[2].judge = true;
    let (res, out) = done(decide(&judge_of("j"), &all, true));
    assert_eq!(out, Outcome::Succeeded(all[2].outputs.clone()));
    assert_eq!(res.unwrap().winner.as_deref(), Some("j"));
}

fn judge_of(agent: &str) -> Resolve {
    Resolve::Judge {
        agent: agent.into(),
        prompt: None,
    }
}

#[test]
fn a_cancelled_branch_cancels_the_attempt_once_all_stopped() {
    let cancelled = branch("b", Some(AttemptOutcome::Cancelled), json!({}));
    assert_eq!(
        decide(&Resolve::Merge, &[running("a"), cancelled.clone()], false),
        Verdict::Wait
    );
    let (_, out) = done(decide(
        &Resolve::Merge,
        &[ok("a", json!({})), cancelled],
        false,
    ));
    assert_eq!(out, Outcome::Cancelled);
}

#[test]
fn lookup_prefers_exact_keys() {
    let m = json!({"a.b": 1, "a": {"b": 2, "l": [5, 6]}});
    let m = m.as_object().unwrap();
    assert_eq!(lookup(m, "a.b"), Some(&json!(1)));
    assert_eq!(lookup(m, "a.l.1"), Some(&json!(6)));
    assert_eq!(lookup(m, "a.c"), None);
}

proptest! {
    /// A majority verdict keeps the outputs of a branch that voted for the winner, and the
    /// winner has strictly more than half of all branches' votes; otherwise the attempt fails.
    #[test]
    fn majority_is_sound(votes in proptest::collection::vec(proptest::option::of(0u8..3), 1..8)) {
        let branches: Vec<Branch> = votes
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Some(v) => ok(&format!("a{i}"), json!({ "v": v, "i": i })),
                None => failed(&format!("a{i}")),
            })
            .collect();
        if votes.iter().all(Option::is_none) {
            let (_, out) = done(decide(&majority_on("v"), &branches, false));
            prop_assert!(matches!(out, Outcome::Failed(_)));
            return Ok(());
        }
        let (res, out) = done(decide(&majority_on("v"), &branches, false));
        let res = res.unwrap();
        match out {
            Outcome::Succeeded(o) => {
                let winner = o["v"].as_u64().unwrap() as u8;
                let count = votes.iter().filter(|v| **v == Some(winner)).count();
                prop_assert!(count * 2 > votes.len());
                let i = o["i"].as_u64().unwrap() as usize;
                let expected = format!("a{i}");
                prop_assert_eq!(res.winner.as_deref(), Some(expected.as_str()));
                prop_assert_eq!(res.conflicts.is_empty(), count == votes.len());
            }
            Outcome::Failed(_) => {
                for x in 0..3u8 {
                    let count = votes.iter().filter(|v| **v == Some(x)).count();
                    prop_assert!(count * 2 <= votes.len());
                }
                prop_assert_eq!(res.conflicts.len(), 1);
            }
            Outcome::Cancelled => prop_assert!(false),
        }
    }

    /// A merge holds every key any successful branch gave, with the first giver's value, and
    /// names a conflict exactly for the keys where some later value differs.
    #[test]
    fn merge_is_a_first_wins_union(
        maps in proptest::collection::vec(
            proptest::collection::btree_map("[a-d]", 0u8..3, 0..4), 1..5)
    ) {
        let branches: Vec<Branch> = maps
            .iter()
            .enumerate()
            .map(|(i, m)| ok(&format!("a{i}"), serde_json::to_value(m).unwrap()))
            .collect();
        let refs: Vec<&Branch> = branches.iter().collect();
        let (out, conflicts) = merge_outputs(&refs);
        for (k, v) in &out {
            let first = maps.iter().find_map(|m| m.get(k)).unwrap();
            prop_assert_eq!(v, &json!(first));
            let disputed = maps.iter().filter_map(|m| m.get(k)).any(|x| x != first);
            prop_assert_eq!(disputed, conflicts.iter().any(|c| &c.field == k));
        }
        let all_keys: std::collections::BTreeSet<&String> = maps.iter().flat_map(|m| m.keys()).collect();
        prop_assert_eq!(all_keys.len(), out.len());
    }
}

// ----- choosing the crew -----

mod crew {
    use std::sync::Arc;

    use proptest::prelude::*;

    use super::super::choose_crew;
    use crate::engine::state::{EngineState, Limits};
    use crate::model::{Event, EventKind, RunId};
    use crate::spec::{
        Action, AgentKind, AgentSpec, Fanout, FanoutAgents, Resolve, TaskSpec, Workflow,
    };

    fn agent(slots: u32) -> AgentSpec {
        let mut a = AgentSpec::default_local(slots);
        a.kind = AgentKind::Command;
        a.command = Some("x".into());
        a
    }

    /// A state with `agents` (name, slots, slots already used) and one prompt task fanned out.
    fn state(agents: &[(&str, u32, u32)], fanout: &Fanout) -> EngineState {
        let mut st = EngineState::new(
            Limits {
                max_parallel: 64,
                pool: Default::default(),
            },
            agents.iter().map(|(n, s, _)| (n.to_string(), agent(*s))),
        );
        for (n, _, used) in agents {
            st.agents.get_mut(*n).unwrap().slots_used = *used;
        }
        let mut t = TaskSpec::new("t", Action::Prompt("p".into()));
        t.fanout = Some(fanout.clone());
        st.apply(&Event {
            seq: 1,
            ts: 0,
            run: RunId::from("r"),
            kind: EventKind::RunSubmitted {
                workflow: Arc::new(Workflow::new("w", vec![t])),
                source: None,
            },
        });
        st
    }

    fn choose(st: &EngineState, fanout: &Fanout) -> Option<(Vec<String>, Option<String>)> {
        let run = &st.runs[&RunId::from("r")];
        let c = run.index.class_of[0] as usize;
        choose_crew(&st.agents, run, 0, &run.index.classes[c].agents, fanout).map(|crew| {
            (
                crew.workers.iter().map(|a| a.to_string()).collect(),
                crew.judge.map(|j| j.to_string()),
            )
        })
    }

    fn fanout(agents: FanoutAgents, resolve: Resolve) -> Fanout {
        Fanout { agents, resolve }
    }

    #[test]
    fn named_agents_all_need_a_free_slot_and_a_working_judge_two() {
        let f = fanout(
            FanoutAgents::Named(vec!["a".into(), "b".into()]),
            Resolve::Judge {
                agent: "b".into(),
                prompt: None,
            },
        );
        assert_eq!(choose(&state(&[("a", 1, 0), ("b", 1, 0)], &f), &f), None);
        assert_eq!(
            choose(&state(&[("a", 1, 0), ("b", 2, 0)], &f), &f),
            Some((vec!["a".into(), "b".into()], Some("b".into())))
        );
        assert_eq!(choose(&state(&[("a", 1, 1), ("b", 2, 0)], &f), &f), None);
    }

    #[test]
    fn a_count_takes_the_best_free_agents_in_roster_order() {
        let f = fanout(FanoutAgents::Count(2), Resolve::Merge);
        assert_eq!(
            choose(&state(&[("a", 1, 1), ("b", 1, 0), ("c", 1, 0)], &f), &f).map(|(w, _)| w),
            Some(vec!["b".into(), "c".into()])
        );
        assert_eq!(
            choose(&state(&[("a", 1, 1), ("b", 1, 0), ("c", 1, 1)], &f), &f),
            None
        );
    }

    proptest! {
        /// A crew never asks an agent for more slots than it has free, its workers are
        /// distinct, and none is found only when too few agents are free.
        #[test]
        fn a_crew_fits_the_free_slots(
            slots in proptest::collection::vec((1u32..3, 0u32..3), 2..6),
            n in 2u32..5,
            judged in any::<bool>(),
        ) {
            let names = ["a", "b", "c", "d", "e", "f"];
            let agents: Vec<(&str, u32, u32)> = slots
                .iter()
                .enumerate()
                .map(|(i, (s, u))| (names[i], *s, (*u).min(*s)))
                .collect();
            let resolve = if judged {
                Resolve::Judge { agent: "a".into(), prompt: None }
            } else {
                Resolve::First
            };
            let f = fanout(FanoutAgents::Count(n), resolve);
            let st = state(&agents, &f);
            let free = |name: &str| agents.iter().find(|a| a.0 == name).map_or(0, |a| a.1 - a.2);
            match choose(&st, &f) {
                Some((workers, judge)) => {
                    prop_assert_eq!(workers.len(), n as usize);
                    let mut seen = workers.clone();
                    seen.sort();
                    seen.dedup();
                    prop_assert_eq!(seen.len(), workers.len());
                    for w in &workers {
                        let demand = 1 + u32::from(judge.as_deref() == Some(w.as_str()));
                        prop_assert!(demand <= free(w));
                    }
                    if let Some(j) = judge {
                        prop_assert!(free(&j) >= 1);
                    }
                }
                None => {
                    let able = agents
                        .iter()
                        .filter(|(name, _, _)| {
                            free(name) > u32::from(judged && *name == "a")
                        })
                        .count();
                    prop_assert!(able < n as usize || (judged && free("a") == 0));
                }
            }
        }
    }
}

#[test]
fn the_judge_is_a_worker_only_when_it_must_be() {
    use crew_helpers::*;
    let f = Fanout {
        agents: FanoutAgents::Count(2),
        resolve: Resolve::Judge {
            agent: "a".into(),
            prompt: None,
        },
    };
    assert_eq!(
        pick(&[("a", 2), ("b", 1), ("c", 1)], &f),
        Some(vec!["b".to_string(), "c".to_string()])
    );
    assert_eq!(
        pick(&[("a", 2), ("b", 1)], &f),
        Some(vec!["b".to_string(), "a".to_string()])
    );
}

mod crew_helpers {
    use std::sync::Arc;

    use super::super::choose_crew;
    use crate::engine::state::{EngineState, Limits};
    use crate::model::{Event, EventKind, RunId};
    use crate::spec::{Action, AgentKind, AgentSpec, Fanout, TaskSpec, Workflow};

    /// The workers chosen among idle command agents (name, slots).
    pub fn pick(agents: &[(&str, u32)], f: &Fanout) -> Option<Vec<String>> {
        let mut st = EngineState::new(
            Limits {
                max_parallel: 64,
                pool: Default::default(),
            },
            agents.iter().map(|(n, s)| {
                let mut a = AgentSpec::default_local(*s);
                a.kind = AgentKind::Command;
                a.command = Some("x".into());
                (n.to_string(), a)
            }),
        );
        let mut t = TaskSpec::new("t", Action::Prompt("p".into()));
        t.fanout = Some(f.clone());
        st.apply(&Event {
            seq: 1,
            ts: 0,
            run: RunId::from("r"),
            kind: EventKind::RunSubmitted {
                workflow: Arc::new(Workflow::new("w", vec![t])),
                source: None,
            },
        });
        let run = &st.runs[&RunId::from("r")];
        let c = run.index.class_of[0] as usize;
        choose_crew(&st.agents, run, 0, &run.index.classes[c].agents, f)
            .map(|crew| crew.workers.iter().map(|a| a.to_string()).collect())
    }
}
