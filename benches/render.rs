//! `cargo bench --bench render`: the console on a 10,000-task workflow — laying out the graph
//! (once per run), drawing a full 200x60 frame (every change) to ratatui's `TestBackend` at each
//! zoom level, and applying a flood of engine events (what the loop does between two frames).

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use taskdeck::config::Config;
use taskdeck::model::{Event, EventKind, RunId};
use taskdeck::spec::{self, Format, Workflow};
use taskdeck::tui::app::{App, Msg, update};
use taskdeck::tui::dag_layout::{DagLayout, Zoom};
use taskdeck::tui::keymap::Keymap;
use taskdeck::tui::theme::Theme;

/// Ten cross-linked chains of 1,000 tasks each.
fn workflow(n: u32) -> Workflow {
    let mut tasks = serde_json::Map::new();
    for i in 0..n {
        let mut needs = Vec::new();
        if i >= 10 {
            needs.push(format!("t{:05}", i - 10));
            let j = (i * 7) % (i - 9);
            if j != i - 10 {
                needs.push(format!("t{j:05}"));
            }
        }
        tasks.insert(
            format!("t{i:05}"),
            serde_json::json!({ "builtin": "noop", "needs": needs }),
        );
    }
    let text = serde_json::json!({ "name": "big", "tasks": tasks }).to_string();
    match spec::parse_str(&text, "big.json", Format::Json, &Config::default()) {
        Ok(wf) => wf,
        Err(_) => panic!("the generated workflow is valid"),
    }
}

fn bench(c: &mut Criterion) {
    let wf = workflow(10_000);
    c.bench_function("layout 10k tasks", |b| {
        b.iter(|| black_box(DagLayout::new(&wf)))
    });

    let mut app = App::new("local", Theme::default(), Keymap::default());
    update(&mut app, Msg::Resize(200, 60));
    let ev = Event {
        seq: 1,
        ts: 1,
        run: RunId::from("r"),
        kind: EventKind::RunSubmitted {
            workflow: Arc::new(wf),
            source: None,
        },
    };
    update(&mut app, Msg::Engine(Arc::new(ev.clone())));
    let mut term = match Terminal::new(TestBackend::new(200, 60)) {
        Ok(t) => t,
        Err(e) => panic!("test backend: {e}"),
    };
    c.bench_function("draw 200x60, 10k-task graph", |b| {
        b.iter(|| {
            term.draw(|f| taskdeck::tui::views::view(&app, f))
                .map(|_| ())
        })
    });
    for (z, name) in [
        (Zoom::Compact, "draw 200x60, 10k-task graph, compact"),
        (Zoom::Dots, "draw 200x60, 10k-task graph, dots"),
        (Zoom::Overview, "draw 200x60, 10k-task graph, overview"),
    ] {
        app.graph_zoom = z;
        c.bench_function(name, |b| {
            b.iter(|| {
                term.draw(|f| taskdeck::tui::views::view(&app, f))
                    .map(|_| ())
            })
        });
    }
    app.graph_zoom = Zoom::Boxes;
    app.tree = true;
    c.bench_function("draw 200x60, 10k-task tree", |b| {
        b.iter(|| {
            term.draw(|f| taskdeck::tui::views::view(&app, f))
                .map(|_| ())
        })
    });
    app.tree = false;

    // A flood: every task of the run assigned, started and finished (30,000 events), applied
    // through the channels the loop uses, then one frame.
    let run = RunId::from("r");
    let mut events = Vec::new();
    let mut seq = 1;
    for t in 0..10_000u32 {
        for kind in [
            EventKind::TaskAssigned {
                task: t,
                agent: "local".into(),
                attempt: 1,
            },
            EventKind::TaskStarted {
                task: t,
                attempt: 1,
                pid: None,
            },
            EventKind::TaskSucceeded {
                task: t,
                attempt: 1,
                exit_code: Some(0),
                outputs: Default::default(),
            },
        ] {
            seq += 1;
            events.push(Arc::new(Event {
                seq,
                ts: seq,
                run: run.clone(),
                kind,
            }));
        }
    }
    c.bench_function("apply 30k engine events in one batch, then draw", |b| {
        b.iter_batched(
            || {
                let mut app = App::new("local", Theme::default(), Keymap::default());
                update(&mut app, Msg::Resize(200, 60));
                update(&mut app, Msg::Engine(Arc::new(ev.clone())));
                let (_itx, irx) = tokio::sync::mpsc::unbounded_channel();
                let (ftx, frx) = tokio::sync::mpsc::unbounded_channel();
                for e in &events {
                    let _ = ftx.send(Msg::Engine(e.clone()));
                }
                (app, irx, frx, _itx)
            },
            |(mut app, mut irx, mut frx, _itx)| {
                let far = std::time::Instant::now() + std::time::Duration::from_secs(60);
                let d = taskdeck::tui::pace::drain(&mut app, &mut irx, &mut frx, far);
                assert_eq!(d.applied, events.len());
                let _ = term.draw(|f| taskdeck::tui::views::view(&app, f));
                app
            },
            criterion::BatchSize::LargeInput,
        )
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
