//! `cargo bench --bench graph`: graph analysis on a generated 100,000-task workflow.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use taskdeck::graph::{analyze, find_cycle};

/// `n` tasks with two needs each on random earlier tasks (2n edges, minus the first few), listed
/// in a shuffled file order so the topological sort has real work to do.
fn random_dag(n: u32, shuffled: bool) -> Vec<Vec<u32>> {
    let mut rng = fastrand::Rng::with_seed(7);
    let mut perm: Vec<u32> = (0..n).collect();
    if shuffled {
        rng.shuffle(&mut perm);
    }
    let mut needs = vec![Vec::new(); n as usize];
    for i in 1..n {
        for _ in 0..2 {
            let j = rng.u32(0..i);
            needs[perm[i as usize] as usize].push(perm[j as usize]);
        }
    }
    // Reallocate in index order, as a parser reading the file top to bottom would have.
    needs.iter().map(|v| v.to_vec()).collect()
}

fn bench(c: &mut Criterion) {
    for (name, shuffled) in [("file-order", false), ("shuffled", true)] {
        let needs = random_dag(100_000, shuffled);
        let mut g = c.benchmark_group(format!("100k tasks 200k edges, {name}"));
        g.sample_size(20);
        g.bench_function("analyze", |b| b.iter(|| analyze(black_box(&needs))));
        g.bench_function("find_cycle", |b| b.iter(|| find_cycle(black_box(&needs))));
        g.finish();
    }
    // The error path: a long cycle closed from the first task back to the last one.
    let mut needs = random_dag(100_000, false);
    needs[0].push(99_999);
    let mut g = c.benchmark_group("100k tasks 200k edges, one cycle");
    g.sample_size(10);
    g.bench_function("find_cycle", |b| b.iter(|| find_cycle(black_box(&needs))));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
