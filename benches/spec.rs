//! `cargo bench --bench spec`: `spec::parse_str` (parse, validate, build) on a generated
//! 10,000-task workflow, as TOML and as the same workflow in JSON.

use std::fmt::Write;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use taskdeck::config::Config;
use taskdeck::spec::{Format, parse_str};

/// A layered DAG like `gendag.py layered`: `n` no-op tasks, each (after the first layer)
/// needing two random tasks of earlier layers.
fn needs(n: usize) -> Vec<Vec<usize>> {
    let mut rng = fastrand::Rng::with_seed(7);
    let width = 100;
    (0..n)
        .map(|i| {
            if i < width {
                return Vec::new();
            }
            let below = i - i % width;
            let mut v = vec![rng.usize(0..below), rng.usize(0..below)];
            v.dedup();
            v
        })
        .collect()
}

fn toml(needs: &[Vec<usize>]) -> String {
    let mut s = String::from("name = \"bench\"\n");
    for (i, ns) in needs.iter().enumerate() {
        let _ = write!(s, "\n[tasks.t{i}]\nbuiltin = \"noop\"\n");
        if !ns.is_empty() {
            let list: Vec<String> = ns.iter().map(|n| format!("\"t{n}\"")).collect();
            let _ = writeln!(s, "needs = [{}]", list.join(", "));
        }
    }
    s
}

fn json(needs: &[Vec<usize>]) -> String {
    let mut s = String::from("{\"name\": \"bench\", \"tasks\": {");
    for (i, ns) in needs.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        let _ = write!(s, "\"t{i}\": {{\"builtin\": \"noop\"");
        if !ns.is_empty() {
            let list: Vec<String> = ns.iter().map(|n| format!("\"t{n}\"")).collect();
            let _ = write!(s, ", \"needs\": [{}]", list.join(", "));
        }
        s.push('}');
    }
    s.push_str("}}");
    s
}

fn bench(c: &mut Criterion) {
    let needs = needs(10_000);
    let config = Config::default();
    let mut g = c.benchmark_group("parse_str 10k tasks");
    g.sample_size(20);
    for (name, text, format) in [
        ("toml", toml(&needs), Format::Toml),
        ("json", json(&needs), Format::Json),
    ] {
        let w = parse_str(&text, "bench", format, &config).expect("the workflow is valid");
        assert_eq!(w.tasks.len(), needs.len());
        g.throughput(Throughput::Bytes(text.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| parse_str(black_box(&text), "bench", format, &config))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
