//! Snapshots of the console's views on ratatui's `TestBackend`, from states folded out of
//! hand-built events: empty, running, failed and paused runs at 80x24 and 200x60.

mod common;

use common::tui::{Feed, T0, demo, past_failed_run, sample_history};
use taskdeck::model::{EventKind, LogLine, LogStream, RunId};
use taskdeck::tui::app::{App, Msg, update};
use taskdeck::tui::dag_layout::Zoom;
use taskdeck::tui::keymap::Keymap;
use taskdeck::tui::theme::Theme;

fn screen(f: &mut Feed, w: u16, h: u16) -> String {
    f.resize(w, h);
    let term = f.draw(w, h);
    term.backend().to_string()
}

#[test]
fn empty_console() {
    let mut app = App::new("local", Theme::default(), Keymap::default());
    update(&mut app, Msg::Resize(80, 24));
    let mut term = ratatui::Terminal::new(ratatui::backend::TestBackend::new(80, 24)).unwrap();
    term.draw(|f| taskdeck::tui::views::view(&app, f)).unwrap();
    insta::assert_snapshot!(term.backend().to_string());
}

#[test]
fn running_80x24() {
    let mut f = Feed::running();
    f.logs(0, &["checking out taskdeck-demo"]);
    insta::assert_snapshot!(screen(&mut f, 80, 24));
}

#[test]
fn running_200x60() {
    let mut f = Feed::running();
    f.logs(
        0,
        &[
            "checking out taskdeck-demo",
            "error: pretend warning on stderr",
        ],
    );
    insta::assert_snapshot!(screen(&mut f, 200, 60));
}

#[test]
fn failed_80x24_detail_of_the_failed_task() {
    let mut f = Feed::failed();
    f.resize(80, 24);
    f.keys(&["l", "j", "j", "l", "enter"]);
    insta::assert_snapshot!(screen(&mut f, 80, 24));
}

#[test]
fn failed_200x60() {
    let mut f = Feed::failed();
    f.resize(200, 60);
    f.keys(&["l", "j", "j", "l"]);
    insta::assert_snapshot!(screen(&mut f, 200, 60));
}

#[test]
fn paused_run_200x60_with_tree() {
    let mut f = Feed::running();
    f.emit(EventKind::RunPaused);
    f.emit(EventKind::TaskPaused { task: 4 });
    f.resize(200, 60);
    f.keys(&["t", "l", "j", "j"]);
    insta::assert_snapshot!(screen(&mut f, 200, 60));
}

#[test]
fn paused_run_80x24_agents() {
    let mut f = Feed::running();
    f.emit(EventKind::RunPaused);
    f.resize(80, 24);
    f.keys(&["tab", "tab", "tab"]);
    insta::assert_snapshot!(screen(&mut f, 80, 24));
}

#[test]
fn help_is_the_key_table() {
    let mut f = Feed::running();
    f.resize(120, 40);
    f.key("?");
    let s = screen(&mut f, 120, 40);
    // Every action's help text is on screen, with its key.
    for (e, keys) in f.app.keymap.entries().take(20) {
        assert!(s.contains(e.help), "help lacks {:?}", e.name);
        assert!(
            s.contains(&keys[0].to_string()),
            "help lacks the key of {}",
            e.name
        );
    }
    insta::assert_snapshot!(s);
}

#[test]
fn palette_with_candidates() {
    let mut f = Feed::failed();
    f.resize(80, 24);
    f.key(":");
    f.key("r");
    insta::assert_snapshot!(screen(&mut f, 80, 24));
}

#[test]
fn cancel_confirmation() {
    let mut f = Feed::running();
    f.resize(80, 24);
    f.key("c");
    insta::assert_snapshot!(screen(&mut f, 80, 24));
}

#[test]
fn ten_thousand_tasks_draw_only_what_is_visible() {
    // Ten parallel chains of 1,000 tasks, cross-linked: large, deep and wide.
    let n = 10_000u32;
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let needs: Vec<u32> = if i < 10 {
                vec![]
            } else {
                vec![i - 10, i - 1 - (i % 10)]
            };
            common::task(&format!("task-{i:05}"), &needs)
        })
        .collect();
    let mut f = Feed::new(common::workflow(tasks));
    f.resize(200, 60);
    let started = std::time::Instant::now();
    for _ in 0..20 {
        f.key("l");
    }
    f.key("G");
    let s = screen(&mut f, 200, 60);
    let took = started.elapsed();
    assert!(s.contains("task-0"), "{s}");
    // Generous bound for an unoptimised build on a shared machine; a full redraw of every box
    // would take far longer.
    assert!(took.as_secs_f64() < 5.0, "took {took:?}");
    let _ = demo;
}

/// The failed demo with `staging-db` selected, zoomed out `outs` times.
fn zoomed(outs: usize, w: u16, h: u16) -> String {
    let mut f = Feed::failed();
    f.resize(w, h);
    f.keys(&["l", "j", "j", "l"]);
    for _ in 0..outs {
        f.key("-");
    }
    f.app.message = None;
    screen(&mut f, w, h)
}

#[test]
fn zoom_compact_80x24() {
    insta::assert_snapshot!(zoomed(1, 80, 24));
}

#[test]
fn zoom_dots_80x24() {
    insta::assert_snapshot!(zoomed(2, 80, 24));
}

#[test]
fn zoom_compact_200x60() {
    insta::assert_snapshot!(zoomed(1, 200, 60));
}

#[test]
fn zoom_dots_200x60() {
    insta::assert_snapshot!(zoomed(2, 200, 60));
}

#[test]
fn zoom_overview_80x24() {
    insta::assert_snapshot!(zoomed(3, 80, 24));
}

/// 10,000 tasks, 50 levels of 200 (two random upstreams each, as gendag's `layered` makes them).
fn layered(n: u32, width: u32) -> taskdeck::spec::Workflow {
    let mut rng = 42u64;
    let mut next = |m: u32| {
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((rng >> 33) % u64::from(m)) as u32
    };
    let tasks = (0..n)
        .map(|i| {
            let level = i / width;
            let needs: Vec<u32> = if level == 0 {
                vec![]
            } else {
                let base = (level - 1) * width;
                let mut v = vec![base + next(width), base + next(width)];
                v.sort();
                v.dedup();
                v
            };
            common::task(&format!("t{i}"), &needs)
        })
        .collect();
    common::workflow(tasks)
}

#[test]
fn zoom_overview_200x60_shows_a_10k_task_graph_whole() {
    let mut f = Feed::new(layered(10_000, 200));
    f.resize(200, 60);
    // Some progress to see: the first 30 levels done, one task failed, some running.
    for t in 0..6_000 {
        f.start(t, "local");
        f.succeed(t);
    }
    f.start(6_000, "local");
    f.fail(6_000, "boom");
    for t in 6_001..6_100 {
        f.start(t, "local");
    }
    f.keys(&["-", "-", "-"]);
    assert_eq!(f.app.graph_zoom, Zoom::Overview);
    f.app.message = None;
    let s = screen(&mut f, 200, 60);
    assert!(s.contains("overview"), "{s}");
    insta::assert_snapshot!(s);
}

/// A wide, crossed graph: 8 roots, 3 more levels each task needing three from the level before.
fn crossed(n_levels: u32, width: u32) -> taskdeck::spec::Workflow {
    let mut tasks = Vec::new();
    for l in 0..n_levels {
        for i in 0..width {
            let needs: Vec<u32> = if l == 0 {
                vec![]
            } else {
                let base = (l - 1) * width;
                let mut v = vec![
                    base + i,
                    base + (i * 3 + 1) % width,
                    base + (i * 5 + 2) % width,
                ];
                v.sort();
                v.dedup();
                v
            };
            tasks.push(common::task(&format!("l{l}-t{i}"), &needs));
        }
    }
    common::workflow(tasks)
}

#[test]
fn crossed_edges_200x60_boxes_and_dots() {
    let mut f = Feed::new(crossed(4, 8));
    f.resize(200, 60);
    f.keys(&["l", "j", "j"]);
    f.app.message = None;
    let boxes = screen(&mut f, 200, 60);
    insta::assert_snapshot!("crossed_boxes_200x60", boxes);
    f.key("-");
    f.key("-");
    f.app.message = None;
    insta::assert_snapshot!("crossed_dots_200x60", screen(&mut f, 200, 60));
}

#[test]
fn the_selected_tasks_edges_are_highlighted_and_crossings_are_not_joins() {
    let mut f = Feed::new(crossed(3, 6));
    f.resize(200, 60);
    f.keys(&["l", "j"]);
    let term = f.draw(200, 60);
    let buf = term.backend().buffer().clone();
    let focus = f.app.theme.border_focus;
    let edge = f.app.theme.edge;
    let lines = "─│╭╮╰╯├┤┬┴┼━┃┏┓┗┛┣┫┳┻╋▸";
    let inner = f.app.areas().graph_inner();
    let (mut lit, mut plain) = (0, 0);
    for y in inner.y..inner.y + inner.height {
        for x in inner.x..inner.x + inner.width {
            let c = &buf[(x, y)];
            if !lines.contains(c.symbol()) {
                continue;
            }
            if c.fg == focus {
                lit += 1;
            } else if c.fg == edge {
                plain += 1;
            }
        }
    }
    assert!(lit >= 6, "the selected task's edges are lit: {lit}");
    assert!(plain > lit, "the others are not: {plain} vs {lit}");
    // Every highlighted cell lies on a path to or from the selected task: the lit cells next to
    // the selected box touch it.
    let run = &f.app.mirror.runs[&f.run];
    let t = f.app.selected_task().unwrap();
    let (x, y, w, _) = f.app.layout().unwrap().rect(Zoom::Boxes, t).unwrap();
    let (ox, oy) = f.app.graph_offset;
    let left = (inner.x as u32 + x - ox - 1, inner.y as u32 + y + 1 - oy);
    let right = (inner.x as u32 + x + w - ox, left.1);
    assert_eq!(
        buf[(left.0 as u16, left.1 as u16)].fg,
        focus,
        "{}",
        run.task_id(t)
    );
    assert_eq!(buf[(right.0 as u16, right.1 as u16)].fg, focus);
}

#[test]
fn status_line_gives_the_message_room_and_cuts_it_at_a_word() {
    let mut f = Feed::running();
    f.resize(80, 24);
    f.keys(&["tab", "tab"]);
    f.logs(0, &["first line", "second line"]);
    f.key("y");
    let line = |f: &Feed| -> String {
        let term = f.draw(80, 24);
        let buf = term.backend().buffer().clone();
        (0..80).map(|x| buf[(x, 23)].symbol().to_string()).collect()
    };
    let copied = line(&f);
    assert!(
        copied.contains("copied 2 lines to the clipboard (in tmux: set -g set-clipboard on)"),
        "the whole message: {copied}"
    );
    f.app.say(
        "a very long message that goes on and on about what happened, far past the end of the line",
        taskdeck::tui::app::Level::Info,
    );
    let long = line(&f);
    assert!(long.trim_end().ends_with("far past…"), "{long}");
}

// ---- history ----------------------------------------------------------------------------------

/// The console with no run of its own, the store's history loaded (an interrupted run first).
fn console_with_history() -> Feed {
    let mut f = Feed::empty();
    update(&mut f.app, Msg::History(Ok(sample_history())));
    f.app.now = T0;
    f
}

/// The failed demo run opened read-only from the history, its failed task's log read back.
fn past_run_open(w: u16, h: u16) -> Feed {
    let mut f = Feed::running();
    update(&mut f.app, Msg::History(Ok(sample_history())));
    f.resize(w, h);
    f.keys(&["esc", "j", "j", "enter"]);
    let id = RunId::from("20261123-130000-f00d");
    update(
        &mut f.app,
        Msg::PastOpened {
            id: id.clone(),
            result: Ok(past_failed_run(id.as_str())),
        },
    );
    let key = f.app.logs.key.clone().expect("a log is wanted");
    let lines = [
        "waiting for postgres on :5432",
        "database container not ready",
    ]
    .iter()
    .enumerate()
    .map(|(i, l)| LogLine {
        run: id.clone(),
        task: key.task,
        attempt: key.attempt,
        ts: T0 + i as u64,
        stream: if i == 1 {
            LogStream::Stderr
        } else {
            LogStream::Stdout
        },
        line: l.to_string(),
    })
    .collect();
    update(
        &mut f.app,
        Msg::LogLines {
            key,
            since: 0,
            lines,
        },
    );
    f
}

#[test]
fn history_80x24_offers_the_interrupted_run() {
    let mut f = console_with_history();
    insta::assert_snapshot!(screen(&mut f, 80, 24));
}

#[test]
fn history_200x60_below_a_live_run() {
    let mut f = Feed::running();
    update(&mut f.app, Msg::History(Ok(sample_history())));
    f.resize(200, 60);
    f.keys(&["esc", "j"]);
    insta::assert_snapshot!(screen(&mut f, 200, 60));
}

#[test]
fn past_run_read_only_80x24() {
    let mut f = past_run_open(80, 24);
    f.keys(&["tab", "tab"]);
    insta::assert_snapshot!(screen(&mut f, 80, 24));
}

#[test]
fn past_run_read_only_200x60_refuses_operator_keys() {
    let mut f = past_run_open(200, 60);
    f.key("r");
    insta::assert_snapshot!(screen(&mut f, 200, 60));
}

fn remote(f: &mut Feed, state: taskdeck::console::LinkState) {
    f.app.location = "remote";
    let mut link = taskdeck::console::Link::new("deck.example.com:7070");
    link.state = state;
    link.latency_ms = Some(23);
    update(&mut f.app, Msg::Link(link));
}

#[test]
fn remote_connected_80x24() {
    let mut f = Feed::running();
    remote(&mut f, taskdeck::console::LinkState::Connected);
    let s = screen(&mut f, 80, 24);
    assert!(s.contains("REMOTE deck.example.com:7070 · 23 ms · connected"));
    insta::assert_snapshot!(s);
}

#[test]
fn remote_reconnecting_120x40() {
    let mut f = Feed::failed();
    let at = f.app.now + 4_000;
    remote(
        &mut f,
        taskdeck::console::LinkState::Reconnecting {
            at,
            why: "connection refused".into(),
        },
    );
    let s = screen(&mut f, 120, 40);
    assert!(s.contains("REMOTE deck.example.com:7070 · reconnecting in 4s"));
    insta::assert_snapshot!(s);
}

#[test]
fn agents_pane_says_why_an_agent_is_down() {
    let mut f = Feed::running();
    f.emit(EventKind::AgentHealth {
        agent: "builder".into(),
        health: taskdeck::model::AgentHealth::Down("command \"claude\" not found on PATH".into()),
    });
    f.resize(80, 24);
    f.keys(&["tab", "tab", "tab"]);
    let s = screen(&mut f, 80, 24);
    assert!(
        s.contains("down: command \"claude\" not found on PATH"),
        "{s}"
    );
    insta::assert_snapshot!(s);
}
