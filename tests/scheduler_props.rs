//! Scheduler invariants on random DAGs, driven through the pure fold (no processes, no clocks):
//! no task starts before its needs are satisfied, limits are never exceeded, locks are never
//! held twice, and every task ends in a terminal state.

mod common;

use std::collections::HashSet;

use common::{Sim, local, task, workflow};
use proptest::prelude::*;
use taskdeck::engine::state::Limits;
use taskdeck::model::{RunState, TaskState};
use taskdeck::spec::{AgentKind, AgentSpec, Resources, RetryPolicy};

#[derive(Debug, Clone)]
struct Case {
    needs: Vec<Vec<u32>>,
    priority: Vec<u8>,
    locks: Vec<Vec<&'static str>>,
    cpu: Vec<u8>,
    build: Vec<bool>,
    attempts: Vec<u32>,
    cont: Vec<bool>,
    approval: Vec<bool>,
    max_parallel: u32,
    run_max: Option<u32>,
    local_slots: u32,
    builder_slots: u32,
    /// Per finished attempt: succeed?
    outcomes: Vec<bool>,
    picks: Vec<usize>,
}

fn case() -> impl Strategy<Value = Case> {
    (1usize..30).prop_flat_map(|n| {
        let needs = (0..n)
            .map(|i| proptest::collection::vec(0..(i.max(1) as u32), 0..=i.min(3)))
            .collect::<Vec<_>>();
        (
            needs,
            proptest::collection::vec(1u8..=10, n),
            proptest::collection::vec(proptest::sample::subsequence(vec!["a", "b", "c"], 0..=2), n),
            proptest::collection::vec(0u8..=2, n),
            proptest::collection::vec(proptest::bool::weighted(0.3), n),
            proptest::collection::vec(1u32..=3, n),
            proptest::collection::vec(proptest::bool::weighted(0.2), n),
            proptest::collection::vec(proptest::bool::weighted(0.1), n),
            (1u32..=6, proptest::option::of(1u32..=4), 1u32..=4, 1u32..=3),
            proptest::collection::vec(proptest::bool::weighted(0.75), 200),
            proptest::collection::vec(0usize..1000, 200),
        )
            .prop_map(
                move |(
                    needs,
                    priority,
                    locks,
                    cpu,
                    build,
                    attempts,
                    cont,
                    approval,
                    (max_parallel, run_max, local_slots, builder_slots),
                    outcomes,
                    picks,
                )| {
                    // Keep only edges to earlier tasks (a DAG), without duplicates.
                    let needs = needs
                        .into_iter()
                        .enumerate()
                        .map(|(i, ns)| {
                            let mut v: Vec<u32> =
                                ns.into_iter().filter(|d| (*d as usize) < i).collect();
                            v.sort();
                            v.dedup();
                            v
                        })
                        .collect();
                    Case {
                        needs,
                        priority,
                        locks,
                        cpu,
                        build,
                        attempts,
                        cont,
                        approval,
                        max_parallel,
                        run_max,
                        local_slots,
                        builder_slots,
                        outcomes,
                        picks,
                    }
                },
            )
    })
}

fn check_case(c: Case) -> Result<(), TestCaseError> {
    let n = c.needs.len();
    let tasks = (0..n)
        .map(|i| {
            let mut t = task(&format!("t{i}"), &c.needs[i]);
            t.priority = c.priority[i];
            t.locks = c.locks[i].iter().map(|s| s.to_string()).collect();
            t.resources = Resources {
                cpu: c.cpu[i] as f64,
                memory_mb: 0,
                gpu: 0,
            };
            if c.build[i] {
                t.requires = vec!["build".into()];
            }
            t.retry = RetryPolicy {
                attempts: c.attempts[i],
                ..RetryPolicy::default()
            };
            t.continue_on_failure = c.cont[i];
            t.approval = c.approval[i];
            t
        })
        .collect();
    let mut wf = workflow(tasks);
    wf.max_parallel = c.run_max;
    let mut builder = AgentSpec::default_local(c.builder_slots);
    builder.capabilities = vec!["build".into(), "test".into()];
    builder.kind = AgentKind::Local;
    let limits = Limits {
        max_parallel: c.max_parallel,
        pool: Resources {
            cpu: 2.0,
            memory_mb: 1024,
            gpu: 0,
        },
    };
    let mut sim = Sim::new(
        wf,
        limits,
        vec![local(c.local_slots), ("builder".into(), builder)],
    );
    let mut step = 0usize;
    let mut started_ever: HashSet<u32> = HashSet::new();
    loop {
        sim.pass_conditions(true);
        // Locks held before this round's dispatches.
        let held_before: HashSet<String> = sim.st.locks.keys().cloned().collect();
        let started = sim.dispatch_all();
        let run = &sim.st.runs[&sim.run];
        let mut taken: HashSet<String> = held_before;
        for t in &started {
            let spec = &run.workflow.tasks[*t as usize];
            for need in &spec.needs {
                let ns = run.tasks[*need as usize].state;
                let ok = ns == TaskState::Succeeded
                    || (ns == TaskState::Failed
                        && run.workflow.tasks[*need as usize].continue_on_failure);
                prop_assert!(ok, "t{t} started while its need t{need} was {ns}");
            }
            for l in &spec.locks {
                prop_assert!(taken.insert(l.clone()), "lock {l} held twice (t{t})");
            }
            if spec.requires.contains(&"build".to_string()) {
                let agent = run.tasks[*t as usize].last_agent().unwrap();
                prop_assert_eq!(&**agent, "builder");
            }
            started_ever.insert(*t);
        }
        // Limits.
        prop_assert!(sim.st.active <= c.max_parallel);
        if let Some(m) = c.run_max {
            prop_assert!(run.index.active <= m);
        }
        for a in sim.st.agents.values() {
            prop_assert!(
                a.slots_used <= a.spec.slots,
                "agent {} over its slots",
                a.name
            );
        }
        prop_assert!(sim.st.pool_used.cpu <= 2.0 + 1e-9);
        let running = sim.running();
        prop_assert_eq!(running.len() as u32, sim.st.active);
        if running.is_empty() {
            break;
        }
        let t = running[c.picks[step % c.picks.len()] % running.len()];
        let ok = c.outcomes[step % c.outcomes.len()];
        step += 1;
        prop_assert!(step < 10_000, "the simulation does not end");
        if ok {
            sim.succeed(t);
        } else {
            let r = &sim.st.runs[&sim.run];
            let used = r.tasks[t as usize].attempts_used();
            let retry = used < r.workflow.tasks[t as usize].retry.attempts;
            sim.fail(t, retry);
            if retry {
                sim.emit(taskdeck::model::EventKind::TaskRetryDue { task: t });
            }
        }
    }
    // Every task ended; blocked ones have an upstream that did not succeed.
    let run = &sim.st.runs[&sim.run];
    for (i, t) in run.tasks.iter().enumerate() {
        prop_assert!(t.state.is_terminal(), "t{i} ended {}", t.state);
        if t.state == TaskState::Blocked {
            let spec = &run.workflow.tasks[i];
            let has_bad_upstream = spec
                .needs
                .iter()
                .any(|n| run.tasks[*n as usize].state != TaskState::Succeeded);
            prop_assert!(has_bad_upstream, "t{} blocked without a failed upstream", i);
        }
        if t.state == TaskState::Succeeded {
            prop_assert!(started_ever.contains(&(i as u32)));
        }
    }
    prop_assert_eq!(run.terminal_count() as usize, n);
    prop_assert!(sim.st.locks.is_empty());
    prop_assert_eq!(sim.st.active, 0);
    prop_assert_eq!(run.state, RunState::Running); // the actor, not the fold, finishes runs
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn scheduler_invariants_hold_on_random_dags(c in case()) {
        check_case(c)?;
    }
}
