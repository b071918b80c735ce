//! Load figures for `taskdeck serve` (BENCHMARKS.md): while a run of many tasks executes, some
//! clients read the run's snapshot (and the stats) in a loop and many SSE streams follow the
//! events. Prints GET latency percentiles and whether every stream kept up, gap-free.
//!
//!   taskdeck serve --store memory &
//!   cargo run --release --example serve_load -- http://127.0.0.1:7070 [TASKS] [CLIENTS] [STREAMS]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use taskdeck::client::{Client, StreamItem};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let url = args
        .get(1)
        .cloned()
        .unwrap_or("http://127.0.0.1:7070".into());
    let n_tasks: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let n_clients: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(4);
    let n_streams: usize = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(100);
    let client = Client::new(&url, std::env::var("TASKDECK_TOKEN").ok(), None).unwrap();
    let from = client.stats().await.unwrap().last_seq;

    // The streams start before the run, so each must see all of its events.
    let mut streams = Vec::new();
    for _ in 0..n_streams {
        let mut events = client.events(Some(from), None).await.unwrap();
        streams.push(tokio::spawn(async move {
            let mut last = from;
            let mut gaps = 0u64;
            let mut count = 0u64;
            let mut lag_ms = 0u64;
            while let Some(item) = events.next().await {
                match item {
                    Ok(StreamItem::Event(ev)) => {
                        if ev.seq != last + 1 {
                            gaps += 1;
                        }
                        last = ev.seq;
                        count += 1;
                        let now = taskdeck::model::now_millis();
                        lag_ms = lag_ms.max(now.saturating_sub(ev.ts));
                        if matches!(ev.kind, taskdeck::model::EventKind::RunFinished { .. }) {
                            return (count, gaps, lag_ms, None);
                        }
                    }
                    Ok(StreamItem::Notice(n)) => return (count, gaps, lag_ms, Some(n.kind)),
                    Err(e) => return (count, gaps, lag_ms, Some(e.to_string())),
                }
            }
            (count, gaps, lag_ms, Some("ended".into()))
        }));
    }

    let tasks: serde_json::Map<String, Value> = (0..n_tasks)
        .map(|i| (format!("t{i}"), json!({"builtin": "sleep 20ms"})))
        .collect();
    let wf = json!({"name": "load", "max_parallel": 64, "tasks": tasks}).to_string();
    let started = Instant::now();
    let run = client.submit(wf, true).await.unwrap().id;
    println!(
        "run {run}: {n_tasks} tasks submitted in {:?}",
        started.elapsed()
    );

    let done = Arc::new(AtomicBool::new(false));
    let http = reqwest::Client::new();
    let mut readers = Vec::new();
    for i in 0..n_clients {
        let (http, done, url, run) = (http.clone(), done.clone(), url.clone(), run.clone());
        // Half the clients read the whole run, half the stats.
        let path = if i % 2 == 0 {
            format!("{url}/api/v1/runs/{run}")
        } else {
            format!("{url}/api/v1/stats")
        };
        readers.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut bytes = 0;
            while !done.load(Ordering::Relaxed) {
                let t = Instant::now();
                let body = http.get(&path).send().await.unwrap().bytes().await.unwrap();
                lat.push(t.elapsed());
                bytes = body.len();
            }
            (i % 2 == 0, lat, bytes)
        }));
    }
    loop {
        let snap = client.run(&run).await.unwrap();
        if taskdeck::store::is_terminal_state(snap["run"]["state"].as_str().unwrap_or("")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let took = started.elapsed();
    done.store(true, Ordering::Relaxed);
    println!(
        "run finished in {took:.2?} ({:.0} tasks/s)",
        n_tasks as f64 / took.as_secs_f64()
    );
    let (mut snap_lat, mut stats_lat, mut snap_bytes) = (Vec::new(), Vec::new(), 0);
    for r in readers {
        let (is_snap, lat, bytes) = r.await.unwrap();
        if is_snap {
            snap_lat.extend(lat);
            snap_bytes = bytes;
        } else {
            stats_lat.extend(lat);
        }
    }
    report("GET /api/v1/runs/{id}", &mut snap_lat, Some(snap_bytes));
    report("GET /api/v1/stats", &mut stats_lat, None);
    let mut ok = 0;
    let mut worst_lag = 0;
    for s in streams {
        let (count, gaps, lag, end) = s.await.unwrap();
        worst_lag = worst_lag.max(lag);
        if gaps == 0 && end.is_none() {
            ok += 1;
        } else {
            println!("stream: {count} events, {gaps} gaps, ended: {end:?}");
        }
    }
    println!(
        "{ok}/{n_streams} SSE streams saw every event gap-free to run_finished; worst delay event -> client {worst_lag} ms"
    );
}

fn report(what: &str, lat: &mut [Duration], bytes: Option<usize>) {
    if lat.is_empty() {
        return;
    }
    lat.sort();
    let p = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)];
    println!(
        "{what}: {} requests, p50 {:.2?}, p99 {:.2?}, max {:.2?}{}",
        lat.len(),
        p(0.50),
        p(0.99),
        lat[lat.len() - 1],
        bytes.map_or(String::new(), |b| format!(", {} KiB each", b / 1024))
    );
}
