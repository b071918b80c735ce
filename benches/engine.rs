//! Engine core throughput without I/O: submit a layered DAG of noop tasks and drive it to the
//! end through the pure fold and the scheduler, as the actor does for builtin tasks.
//! Run: cargo bench --bench engine

use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

use taskdeck::engine::scheduler::next_dispatch;
use taskdeck::engine::state::{EngineState, Limits};
use taskdeck::model::{Event, EventKind, RunId};
use taskdeck::spec::{Action, AgentSpec, Builtin, Resources, TaskSpec, Workflow};

/// The same shape as `shared/bench/gendag.py layered`: layers of ~2*sqrt(n), two random upstreams.
fn layered(n: usize) -> Workflow {
    let width = ((n as f64).sqrt() as usize * 2).max(2);
    let mut rng = fastrand::Rng::with_seed(42);
    let mut tasks = Vec::with_capacity(n);
    let mut prev: Vec<u32> = Vec::new();
    let mut i = 0;
    while i < n {
        let mut layer = Vec::new();
        for _ in 0..width.min(n - i) {
            let mut needs = Vec::new();
            if !prev.is_empty() {
                for _ in 0..2.min(prev.len()) {
                    needs.push(prev[rng.usize(..prev.len())]);
                }
                needs.sort();
                needs.dedup();
            }
            let mut t = TaskSpec::new(format!("t{i}"), Action::Builtin(Builtin::Noop));
            t.needs = needs;
            tasks.push(t);
            layer.push(i as u32);
            i += 1;
        }
        prev = layer;
    }
    Workflow::new("bench", tasks)
}

fn drive(wf: Arc<Workflow>) -> u64 {
    let mut st = EngineState::new(
        Limits {
            max_parallel: 16,
            pool: Resources::default(),
        },
        [("local".to_string(), AgentSpec::default_local(16))],
    );
    let run = RunId::from("bench");
    let mut seq = 0;
    let mut emit = |st: &mut EngineState, kind| {
        seq += 1;
        st.apply(&Event {
            seq,
            ts: seq,
            run: run.clone(),
            kind,
        });
    };
    emit(
        &mut st,
        EventKind::RunSubmitted {
            workflow: wf,
            source: None,
        },
    );
    while let Some(d) = next_dispatch(&mut st) {
        emit(
            &mut st,
            EventKind::TaskAssigned {
                task: d.task,
                agent: d.agent,
                attempt: 1,
            },
        );
        emit(
            &mut st,
            EventKind::TaskStarted {
                task: d.task,
                attempt: 1,
                pid: None,
            },
        );
        emit(
            &mut st,
            EventKind::TaskSucceeded {
                task: d.task,
                attempt: 1,
                exit_code: None,
                outputs: Default::default(),
            },
        );
    }
    st.last_seq
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("engine_core");
    g.sample_size(10);
    for n in [10_000usize, 100_000] {
        let wf = Arc::new(layered(n));
        g.bench_with_input(BenchmarkId::new("noop_dag", n), &wf, |b, wf| {
            b.iter(|| drive(wf.clone()))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
