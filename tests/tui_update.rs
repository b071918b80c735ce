//! `update` driven by keys and events: what the operator's keys do to the console's state and
//! which engine commands they ask for.

mod common;

use std::sync::Arc;

use common::tui::{Feed, T0, demo, past_entry, past_failed_run, sample_history};
use taskdeck::engine::Recovered;
use taskdeck::model::{Command, Event, EventKind, RunId, RunState, TaskState};
use taskdeck::tui::app::{Effect, Level, Msg, OnYes, Overlay, update};
use taskdeck::tui::dag_layout::Zoom;
use taskdeck::tui::keymap::Pane;

fn commands(f: &mut Feed) -> Vec<Command> {
    f.app
        .effects
        .drain(..)
        .filter_map(|e| match e {
            Effect::Command { cmd, .. } => Some(cmd),
            _ => None,
        })
        .collect()
}

#[test]
fn arrow_keys_walk_the_graph_by_level_and_within_a_level() {
    let mut f = Feed::running();
    assert_eq!(f.selected(), "checkout");
    f.key("l");
    assert_eq!(f.selected(), "deps");
    f.key("j");
    f.key("j");
    assert_eq!(f.selected(), "fetch-assets");
    f.key("l");
    assert_eq!(f.selected(), "staging-db");
    f.key("h");
    assert_eq!(f.selected(), "fetch-assets");
    f.key("g");
    assert_eq!(f.selected(), "deps");
}

#[test]
fn operator_keys_send_commands_for_the_selected_task() {
    let mut f = Feed::failed();
    f.keys(&["l", "j", "j", "l"]);
    assert_eq!(f.selected(), "staging-db");
    f.app.effects.clear();
    f.key("r");
    let run = f.run.clone();
    assert_eq!(
        commands(&mut f),
        vec![Command::RetryTask {
            run: run.clone(),
            task: "staging-db".into()
        }]
    );
    f.key("R");
    assert_eq!(
        commands(&mut f),
        vec![Command::RerunFrom {
            run: run.clone(),
            task: "staging-db".into()
        }]
    );
    f.key("a");
    assert_eq!(
        commands(&mut f),
        vec![Command::Approve {
            run: run.clone(),
            task: "staging-db".into()
        }]
    );
    f.key("p");
    assert_eq!(
        commands(&mut f),
        vec![Command::PauseTask {
            run,
            task: "staging-db".into()
        }]
    );
}

#[test]
fn cancel_asks_first_and_only_yes_sends() {
    let mut f = Feed::running();
    f.app.effects.clear();
    f.key("c");
    assert!(matches!(f.app.overlay, Overlay::Confirm(_)));
    assert!(commands(&mut f).is_empty());
    f.key("n");
    assert_eq!(f.app.overlay, Overlay::None);
    assert!(commands(&mut f).is_empty());
    f.key("c");
    f.key("y");
    assert_eq!(
        commands(&mut f),
        vec![Command::CancelTask {
            run: f.run.clone(),
            task: "checkout".into()
        }]
    );
}

#[test]
fn pause_in_the_runs_list_pauses_the_run_and_then_resumes_it() {
    let mut f = Feed::running();
    f.key("esc");
    assert_eq!(f.app.focus, Pane::Runs);
    f.key("p");
    assert_eq!(
        commands(&mut f),
        vec![Command::PauseRun { run: f.run.clone() }]
    );
    f.emit(EventKind::RunPaused);
    assert_eq!(f.run_state(), RunState::Paused);
    f.key("p");
    assert_eq!(
        commands(&mut f),
        vec![Command::ResumeRun { run: f.run.clone() }]
    );
}

#[test]
fn quitting_while_a_run_goes_asks_and_after_it_ended_does_not() {
    let mut f = Feed::running();
    f.key("q");
    assert!(matches!(&f.app.overlay, Overlay::Confirm(c) if c.on_yes == OnYes::Quit));
    assert!(!f.app.quit);
    f.key("y");
    assert!(f.app.quit);

    let mut f = Feed::failed();
    f.key("q");
    assert!(f.app.quit);
    assert_eq!(f.app.exit_code(), 1);
}

#[test]
fn exit_on_finish_quits_with_the_runs_result() {
    let mut f = Feed::running();
    f.app.exit_on_finish = true;
    f.emit(EventKind::RunFinished {
        state: RunState::Succeeded,
    });
    assert!(f.app.quit);
    assert_eq!(f.app.exit_code(), 0);
}

#[test]
fn palette_completes_and_runs_commands() {
    let mut f = Feed::failed();
    f.key(":");
    assert!(matches!(f.app.overlay, Overlay::Palette(_)));
    for c in "retry stag".chars() {
        f.key(&c.to_string());
    }
    f.key("tab");
    let Overlay::Palette(p) = &f.app.overlay else {
        panic!("palette closed")
    };
    assert_eq!(p.text, "retry staging-db");
    f.app.effects.clear();
    f.key("enter");
    assert_eq!(f.app.overlay, Overlay::None);
    assert_eq!(
        commands(&mut f),
        vec![Command::RetryTask {
            run: f.run.clone(),
            task: "staging-db".into()
        }]
    );
    // A theme switch needs no engine.
    f.key(":");
    for c in "theme light".chars() {
        f.key(&c.to_string());
    }
    f.key("enter");
    assert_eq!(f.app.theme.name, "light");
    // A bad command is a message, not a crash.
    f.key(":");
    for c in "frobnicate".chars() {
        f.key(&c.to_string());
    }
    f.key("enter");
    assert!(f.app.message.as_ref().unwrap().text.contains("no command"));
}

#[test]
fn filter_by_state_selects_the_first_match() {
    let mut f = Feed::failed();
    f.key("/");
    for c in "fail".chars() {
        f.key(&c.to_string());
    }
    f.key("enter");
    assert_eq!(f.app.filter, "fail");
    assert_eq!(f.selected(), "staging-db");
    f.key("esc");
    assert!(f.app.filter.is_empty());
}

#[test]
fn tab_cycles_focus_and_the_narrow_screen_shows_the_focused_pane() {
    let mut f = Feed::running();
    f.resize(80, 24);
    assert_eq!(f.app.focus, Pane::Graph);
    f.key("tab");
    assert_eq!(f.app.focus, Pane::Detail);
    assert!(f.app.areas().detail.is_some() && f.app.areas().logs.is_none());
    f.key("tab");
    assert_eq!(f.app.focus, Pane::Logs);
    assert!(f.app.areas().logs.is_some() && f.app.areas().detail.is_none());
    f.key("shift-tab");
    assert_eq!(f.app.focus, Pane::Detail);
}

#[test]
fn the_tree_shares_the_graphs_selection() {
    let mut f = Feed::running();
    f.key("l");
    assert_eq!(f.selected(), "deps");
    f.key("t");
    assert!(f.app.tree);
    f.key("j");
    assert_eq!(f.selected(), "lint");
    f.key("h");
    assert_eq!(f.app.tree_level, Some(1));
    f.key("t");
    assert!(!f.app.tree);
}

#[test]
fn logs_follow_until_scrolled_up_and_resume_with_f() {
    let mut f = Feed::running();
    f.resize(80, 24);
    f.keys(&["tab", "tab"]);
    assert_eq!(f.app.focus, Pane::Logs);
    let lines: Vec<String> = (0..100).map(|i| format!("line {i}")).collect();
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    f.logs(0, &lines);
    assert_eq!(f.app.logs.lines.len(), 100);
    assert!(f.app.logs.follow);
    f.key("up");
    assert!(!f.app.logs.follow);
    f.key("f");
    assert!(f.app.logs.follow);
    // Search jumps to the match and stops following.
    f.key("/");
    for c in "line 42".chars() {
        f.key(&c.to_string());
    }
    f.key("enter");
    assert!(!f.app.logs.follow);
    assert_eq!(f.app.logs.top, 42);
    f.key("end");
    assert!(f.app.logs.follow);
}

#[test]
fn a_new_attempt_switches_the_log_and_asks_for_its_lines() {
    let mut f = Feed::new(demo());
    f.start(0, "local");
    let asks: Vec<_> = f.app.effects.drain(..).collect();
    assert!(
        asks.iter().any(|e| matches!(e, Effect::FetchLog { key, since: 0 } if key.task == Some(0) && key.attempt == 1)),
        "{asks:?}"
    );
    // A live line for another task does not cause a read; one for ours does.
    let other = taskdeck::model::LogLine {
        run: f.run.clone(),
        task: Some(3),
        attempt: 1,
        ts: 0,
        stream: taskdeck::model::LogStream::Stdout,
        line: "x".into(),
    };
    update(
        &mut f.app,
        Msg::Log(taskdeck::console::LogNotice::Line(other.clone())),
    );
    assert!(f.app.effects.is_empty());
    f.logs(0, &["hello"]);
    let ours = taskdeck::model::LogLine {
        task: Some(0),
        ..other
    };
    update(
        &mut f.app,
        Msg::Log(taskdeck::console::LogNotice::Line(ours)),
    );
    assert!(matches!(
        &f.app.effects[..],
        [Effect::FetchLog { since: 1, .. }]
    ));
}

#[test]
fn refusals_are_shown_not_swallowed() {
    let mut f = Feed::running();
    update(
        &mut f.app,
        Msg::CommandDone {
            what: "retry checkout".into(),
            result: Err("task `checkout` has not failed".into()),
        },
    );
    let m = f.app.message.as_ref().unwrap();
    assert!(m.text.contains("has not failed"), "{}", m.text);
}

#[test]
fn clicking_a_box_selects_its_task_and_focuses_the_pane() {
    use crossterm::event::{KeyModifiers, MouseButton, MouseEvent, MouseEventKind};
    let mut f = Feed::running();
    f.resize(120, 40);
    f.key("esc");
    assert_eq!(f.app.focus, Pane::Runs);
    // Find where `lint` is drawn, then click the middle of its box.
    let run = &f.app.mirror.runs[&f.run];
    let lint = run.index.by_id["lint"];
    let (x, y, w, _) = f.app.layout().unwrap().rect(Zoom::Boxes, lint).unwrap();
    let inner = f.app.areas().graph_inner();
    let (ox, oy) = f.app.graph_offset;
    let click = MouseEvent {
        kind: MouseEventKind::Down(MouseButton::Left),
        column: inner.x + (x + w / 2 - ox) as u16,
        row: inner.y + (y + 1 - oy) as u16,
        modifiers: KeyModifiers::NONE,
    };
    update(&mut f.app, Msg::Mouse(click));
    assert_eq!(f.app.focus, Pane::Graph);
    assert_eq!(f.selected(), "lint");
}

#[test]
fn wrap_timestamps_and_engine_log_toggle_in_the_logs_pane() {
    let mut f = Feed::running();
    f.keys(&["tab", "tab"]);
    assert_eq!(f.app.focus, Pane::Logs);
    f.keys(&["w", "T"]);
    assert!(f.app.logs.wrap && f.app.logs.timestamps);
    f.app.effects.clear();
    f.key("e");
    assert!(f.app.logs.engine);
    assert!(matches!(&f.app.effects[..], [Effect::FetchLog { key, .. }] if key.task.is_none()));
    // The same keys do nothing to the logs from the graph.
    f.key("esc");
    f.key("w");
    assert!(f.app.logs.wrap);
}

#[test]
fn copy_export_and_mouse_release_queue_their_effects() {
    let mut f = Feed::running();
    f.resize(80, 24);
    f.keys(&["tab", "tab"]);
    assert_eq!(f.app.focus, Pane::Logs);
    f.logs(0, &["first line", "second line"]);
    f.app.effects.clear();

    f.key("y");
    assert_eq!(
        f.app.effects.drain(..).collect::<Vec<_>>(),
        vec![Effect::Clipboard("first line\nsecond line\n".into())]
    );
    assert!(
        f.app
            .message
            .as_ref()
            .unwrap()
            .text
            .contains("copied 2 lines")
    );

    f.key("s");
    let effects: Vec<Effect> = f.app.effects.drain(..).collect();
    match effects.as_slice() {
        [Effect::Export { path, text }] => {
            assert!(path.to_string_lossy().starts_with("taskdeck-"), "{path:?}");
            assert!(path.to_string_lossy().ends_with(".log"), "{path:?}");
            assert_eq!(text, "first line\nsecond line\n");
        }
        other => panic!("expected one export, got {other:?}"),
    }

    assert!(f.app.mouse);
    f.key("m");
    assert!(!f.app.mouse);
    assert_eq!(
        f.app.effects.drain(..).collect::<Vec<_>>(),
        vec![Effect::Mouse(false)]
    );
    f.key("m");
    assert_eq!(
        f.app.effects.drain(..).collect::<Vec<_>>(),
        vec![Effect::Mouse(true)]
    );
}

#[test]
fn the_status_line_says_what_to_do_next() {
    let mut f = Feed::failed();
    let m = f.app.message.clone().unwrap();
    assert_eq!(
        m.text, "run demo failed at staging-db · :retry staging-db",
        "names the failed task and how to retry it"
    );
    f.emit(EventKind::TaskAwaitingApproval { task: 9 });
    let m = f.app.message.clone().unwrap();
    assert!(
        m.text.contains("release waits for approval") && m.text.contains("press a"),
        "{}",
        m.text
    );
}

/// Whether the selected task's box is inside the graph pane's window.
fn selection_on_screen(f: &Feed) -> bool {
    let layout = f.app.layout().unwrap();
    let t = f.app.selected_task().unwrap();
    let view = f.app.areas().graph_inner();
    if f.app.graph_zoom == Zoom::Overview {
        let b = layout.buckets(u32::from(view.width), u32::from(view.height));
        let (x, y) = layout.bucket_of(b, t).unwrap();
        return x < u32::from(view.width) && y < u32::from(view.height);
    }
    let (x, y, w, h) = layout.rect(f.app.graph_zoom, t).unwrap();
    let (ox, oy) = f.app.graph_offset;
    x >= ox
        && y >= oy
        && x + w <= ox + u32::from(view.width)
        && y + h <= oy + u32::from(view.height)
}

#[test]
fn zoom_keys_step_through_the_levels_keeping_the_selection_on_screen() {
    let mut f = Feed::failed();
    f.resize(80, 24);
    f.keys(&["l", "j", "j", "l"]);
    assert_eq!(f.selected(), "staging-db");
    assert_eq!(f.app.graph_zoom, Zoom::Boxes);
    assert!(f.key("-"));
    assert_eq!(f.app.graph_zoom, Zoom::Compact);
    assert_eq!(f.selected(), "staging-db");
    assert!(selection_on_screen(&f));
    f.key("-");
    assert_eq!(f.app.graph_zoom, Zoom::Dots);
    assert!(selection_on_screen(&f));
    f.key("-");
    assert_eq!(f.app.graph_zoom, Zoom::Overview);
    assert_eq!(f.app.graph_offset, (0, 0), "the whole graph, no panning");
    // Past the last level: a message, not a change.
    f.key("-");
    assert_eq!(f.app.graph_zoom, Zoom::Overview);
    let m = f.app.message.clone().unwrap();
    assert!(m.text.contains("zoomed out all the way"), "{}", m.text);
    // Moving works at every level, and the view follows.
    for (zoom_in, level) in [("+", Zoom::Dots), ("+", Zoom::Compact), ("=", Zoom::Boxes)] {
        f.keys(&["l", "l"]);
        assert_eq!(f.selected(), "package");
        assert!(selection_on_screen(&f), "{:?}", f.app.graph_zoom);
        f.keys(&["h", "h"]);
        f.key(zoom_in);
        assert_eq!(f.app.graph_zoom, level);
        assert!(selection_on_screen(&f), "{level:?}");
    }
    let before = f.app.graph_offset;
    f.key("L");
    assert_ne!(f.app.graph_offset, before, "pans");
}

#[test]
fn panning_stays_inside_the_drawing_at_every_zoom_level() {
    let mut f = Feed::running();
    f.resize(80, 24);
    for zoom in ["", "-", "-", "-"] {
        if !zoom.is_empty() {
            f.key(zoom);
        }
        let (w, h) = f.app.layout().unwrap().size(f.app.graph_zoom);
        for _ in 0..100 {
            f.keys(&["L", "J"]);
        }
        let (x, y) = f.app.graph_offset;
        assert!(x < w.max(1) && y < h.max(1), "{:?}", f.app.graph_zoom);
        for _ in 0..100 {
            f.keys(&["H", "K"]);
        }
        assert_eq!(f.app.graph_offset, (0, 0));
    }
}

#[test]
fn zoom_keys_are_rebindable_and_only_work_in_the_graph() {
    let mut f = Feed::running();
    let mut o = indexmap::IndexMap::new();
    o.insert("zoom_out".to_string(), vec!["z".to_string()]);
    o.insert("zoom_in".to_string(), vec!["Z".to_string()]);
    let (keymap, errors) = taskdeck::tui::keymap::Keymap::with_overrides(&o);
    assert!(errors.is_empty(), "{errors:?}");
    f.app.keymap = keymap;
    assert!(!f.key("-"), "the default is gone");
    assert_eq!(f.app.graph_zoom, Zoom::Boxes);
    f.key("z");
    assert_eq!(f.app.graph_zoom, Zoom::Compact);
    f.key("Z");
    assert_eq!(f.app.graph_zoom, Zoom::Boxes);
    // Not in the logs pane, and not in the tree.
    f.keys(&["tab", "tab"]);
    assert_eq!(f.app.focus, Pane::Logs);
    f.key("z");
    assert_eq!(f.app.graph_zoom, Zoom::Boxes);
    f.key("esc");
    f.key("t");
    assert!(!f.key("z"));
    assert_eq!(f.app.graph_zoom, Zoom::Boxes);
}

#[test]
fn clicking_selects_a_task_at_every_zoom_level() {
    use crossterm::event::{KeyModifiers, MouseButton, MouseEvent, MouseEventKind};
    let mut f = Feed::running();
    f.resize(120, 40);
    for (zoom, target) in [
        ("", "lint"),
        ("-", "staging-db"),
        ("-", "build"),
        ("-", "deps"),
    ] {
        if !zoom.is_empty() {
            f.key(zoom);
        }
        f.key("esc");
        let z = f.app.graph_zoom;
        if z == Zoom::Overview {
            // At this size every task has its own cell: the cell of `deps`.
            let inner = f.app.areas().graph_inner();
            let layout = f.app.layout().unwrap();
            let b = layout.buckets(u32::from(inner.width), u32::from(inner.height));
            let t = f.app.mirror.runs[&f.run].index.by_id[target];
            let (x, y) = layout.bucket_of(b, t).unwrap();
            let click = MouseEvent {
                kind: MouseEventKind::Down(MouseButton::Left),
                column: inner.x + x as u16,
                row: inner.y + y as u16,
                modifiers: KeyModifiers::NONE,
            };
            update(&mut f.app, Msg::Mouse(click));
            assert_eq!(f.selected(), target, "{z:?}");
            continue;
        }
        let t = f.app.mirror.runs[&f.run].index.by_id[target];
        let (x, y, w, _) = f.app.layout().unwrap().rect(z, t).unwrap();
        let inner = f.app.areas().graph_inner();
        let (ox, oy) = f.app.graph_offset;
        let click = MouseEvent {
            kind: MouseEventKind::Down(MouseButton::Left),
            column: inner.x + (x + w / 2 - ox) as u16,
            row: inner.y + (y + z.mid() - oy) as u16,
            modifiers: KeyModifiers::NONE,
        };
        update(&mut f.app, Msg::Mouse(click));
        assert_eq!(f.app.focus, Pane::Graph);
        assert_eq!(f.selected(), target, "{z:?}");
    }
}

#[test]
fn status_hints_are_the_focused_panes_and_fit_80_columns() {
    let mut f = Feed::running();
    f.resize(80, 24);
    f.app.message = None;
    let hints = |f: &Feed| -> String {
        let term = f.draw(80, 24);
        let buf = term.backend().buffer().clone();
        (0..80).map(|x| buf[(x, 23)].symbol().to_string()).collect()
    };
    let graph = hints(&f);
    assert!(graph.contains("enter open"), "{graph}");
    assert!(graph.contains("r retry"), "{graph}");
    assert!(
        graph.trim_end().ends_with("? help"),
        "help is always there: {graph}"
    );
    f.keys(&["tab", "tab"]);
    f.app.message = None;
    let logs = hints(&f);
    assert!(
        logs.contains("f follow") && logs.contains("/ search"),
        "{logs}"
    );
    assert!(!logs.contains("zoom") && !logs.contains("tree"), "{logs}");
    assert!(logs.trim_end().ends_with("? help"), "{logs}");
}

// ---- history ----------------------------------------------------------------------------------

fn message(f: &Feed) -> String {
    f.app
        .message
        .as_ref()
        .map(|m| m.text.clone())
        .unwrap_or_default()
}

#[test]
fn past_runs_list_below_the_live_one_and_open_read_only() {
    let mut f = Feed::running();
    // The store lists the live run too: it stays in the live list only.
    let mut rows = vec![past_entry(
        f.run.as_str(),
        "demo",
        "running",
        &[("running", 3)],
    )];
    rows.extend(sample_history());
    update(&mut f.app, Msg::History(Ok(rows)));
    assert_eq!(f.app.history.len(), 3);
    // Interrupted runs are named, with what resumes them.
    let m = message(&f);
    assert!(
        m.contains("20261123-130500-d00d") && m.contains(":resume"),
        "{m}"
    );

    f.keys(&["esc", "j", "j"]);
    assert_eq!(f.app.focus, Pane::Runs);
    assert_eq!(f.app.hist_sel, Some(1));
    assert!(f.app.read_only());
    assert!(f.app.run().is_none(), "not read until opened");
    f.app.effects.clear();
    f.key("enter");
    let id = RunId::from("20261123-130000-f00d");
    assert_eq!(f.app.effects, vec![Effect::OpenPast(id.clone())]);
    f.app.effects.clear();

    update(
        &mut f.app,
        Msg::PastOpened {
            id: id.clone(),
            result: Ok(past_failed_run(id.as_str())),
        },
    );
    assert_eq!(f.app.focus, Pane::Graph);
    let run = f.app.run().expect("the past run is shown");
    assert_eq!(run.id, id);
    assert_eq!(run.state, RunState::Failed);
    // It opens on what went wrong, and that task's log is read from the past run.
    let t = f.app.selected_task().unwrap();
    assert_eq!(run.task_id(t), "staging-db");
    assert!(f.app.effects.iter().any(|e| matches!(
        e,
        Effect::FetchLog { key, since: 0 } if key.run == id && key.task == Some(t)
    )));

    // Operator keys are refused, politely, with what to do instead.
    f.app.effects.clear();
    for k in ["r", "R", "c", "p", "a"] {
        f.key(k);
        assert_eq!(f.app.overlay, Overlay::None, "{k} opened a dialog");
        assert!(commands(&mut f).is_empty(), "{k} sent a command");
        let m = message(&f);
        assert!(m.contains("read-only") && m.contains(":rerun"), "{k}: {m}");
    }
    f.palette("retry staging-db");
    assert!(commands(&mut f).is_empty());
    // `:rerun` on a past run starts its workflow again.
    f.palette("rerun");
    assert_eq!(f.app.effects, vec![Effect::Rerun(id.clone())]);

    // Back on the live run, the panes show it again.
    f.keys(&["esc", "g"]);
    assert!(!f.app.read_only());
    assert_eq!(f.app.run().unwrap().id, f.run);
    // And the past one comes back at once, without reading it again.
    f.app.effects.clear();
    f.keys(&["j", "j"]);
    assert_eq!(f.app.run().unwrap().id, id);
    f.key("enter");
    assert!(
        !f.app
            .effects
            .iter()
            .any(|e| matches!(e, Effect::OpenPast(_)))
    );
    assert_eq!(f.app.focus, Pane::Graph);
}

#[test]
fn an_interrupted_run_is_offered_on_start_and_r_resumes_it_after_a_confirm() {
    let mut f = Feed::empty();
    update(&mut f.app, Msg::History(Ok(sample_history())));
    let id = RunId::from("20261123-130500-d00d");
    // Nothing live: the cursor waits on the interrupted run, one key from resuming it.
    assert_eq!(f.app.focus, Pane::Runs);
    assert_eq!(f.app.past_entry().map(|h| h.id.clone()), Some(id.clone()));
    let m = message(&f);
    assert!(
        m.starts_with("R resumes interrupted run 20261123-130500-d00d"),
        "{m}"
    );
    assert_eq!(f.app.message.as_ref().unwrap().level, Level::Warning);

    f.key("R");
    let Overlay::Confirm(c) = &f.app.overlay else {
        panic!("no confirm: {:?}", f.app.overlay)
    };
    assert!(
        c.question.contains("3 of 8 tasks had finished"),
        "{}",
        c.question
    );
    assert_eq!(c.on_yes, OnYes::Resume(id.clone()));
    f.key("y");
    assert!(f.app.effects.contains(&Effect::Resume(id.clone())));

    // The engine's copy of the run at seq 40; events of the run before the answer are held,
    // and only those after seq 40 apply.
    let live = Feed::running();
    let mut state = live.app.mirror.runs[&live.run].clone();
    state.id = id.clone();
    let event = |seq, kind| {
        Arc::new(Event {
            seq,
            ts: T0 + seq,
            run: id.clone(),
            kind,
        })
    };
    update(&mut f.app, Msg::Engine(event(39, EventKind::RunPaused)));
    update(
        &mut f.app,
        Msg::Engine(event(
            41,
            EventKind::TaskSucceeded {
                task: 2,
                attempt: 1,
                exit_code: Some(0),
                outputs: Default::default(),
            },
        )),
    );
    assert!(f.app.mirror.runs.is_empty());
    let recovered = Recovered {
        run: id.clone(),
        interrupted: vec!["build#1".into()],
        finished: 3,
        tasks: 11,
        state: Box::new(state),
        at_seq: 40,
    };
    update(
        &mut f.app,
        Msg::Resumed {
            id: id.clone(),
            result: Ok((recovered, Vec::new())),
        },
    );
    let run = f.app.run().expect("the resumed run is live and shown");
    assert_eq!(run.id, id);
    assert!(!f.app.read_only());
    assert_eq!(run.state, RunState::Running, "the older event stayed out");
    assert_eq!(
        run.tasks[2].state,
        TaskState::Succeeded,
        "the newer one applied"
    );
    assert!(f.app.history.iter().all(|h| h.id != id));
    assert!(f.app.own_runs.contains(&id));
    assert!(message(&f).contains("resumed run 20261123-130500-d00d"));
    // Operator keys work on it again.
    f.app.effects.clear();
    f.keys(&["p"]);
    assert_eq!(commands(&mut f), vec![Command::PauseRun { run: id }]);
}

#[test]
fn resume_and_rerun_take_run_ids_in_the_palette() {
    let mut f = Feed::failed();
    update(&mut f.app, Msg::History(Ok(sample_history())));
    // A unique prefix of an interrupted run asks to resume it.
    f.palette("resume 20261123-1305");
    let Overlay::Confirm(c) = &f.app.overlay else {
        panic!("no confirm")
    };
    assert_eq!(c.on_yes, OnYes::Resume(RunId::from("20261123-130500-d00d")));
    f.key("n");
    assert!(!f.app.effects.iter().any(|e| matches!(e, Effect::Resume(_))));
    // A finished run cannot be resumed: the message says what can be done.
    f.palette("resume 20261122-090000-abcd");
    assert_eq!(f.app.overlay, Overlay::None);
    assert!(message(&f).contains(":rerun"), "{}", message(&f));
    // A prefix matching several runs asks for more.
    f.palette("rerun 20261123-130");
    assert!(message(&f).contains("matches 2 runs"), "{}", message(&f));
    f.app.effects.clear();
    f.palette("rerun 20261122-090000-abcd");
    assert_eq!(
        f.app.effects,
        vec![Effect::Rerun(RunId::from("20261122-090000-abcd"))]
    );
    // A task name still means the task.
    f.app.effects.clear();
    f.palette("rerun staging-db");
    assert!(matches!(
        commands(&mut f).as_slice(),
        [Command::RerunFrom { .. }]
    ));
    // `:history` puts the cursor on the newest past run and reads the store again.
    f.app.effects.clear();
    f.palette("history");
    assert_eq!(f.app.focus, Pane::Runs);
    assert_eq!(f.app.hist_sel, Some(0));
    assert!(f.app.effects.contains(&Effect::LoadHistory));
}

#[test]
fn without_a_store_history_says_why() {
    let mut f = Feed::running();
    update(
        &mut f.app,
        Msg::History(Err(
            "no history: this console keeps no store (--store memory)".into(),
        )),
    );
    assert!(f.app.history.is_empty());
    f.palette("history");
    assert!(message(&f).contains("--store memory"), "{}", message(&f));
    f.keys(&["esc", "R"]);
    assert_eq!(f.app.overlay, Overlay::None);
}

#[test]
fn clicking_a_history_row_puts_the_cursor_on_it() {
    use crossterm::event::{KeyModifiers, MouseButton, MouseEvent, MouseEventKind};
    let mut f = Feed::running();
    update(&mut f.app, Msg::History(Ok(sample_history())));
    f.resize(80, 24);
    // Screen lines from the top: border, live header, the live run, history header, rows.
    let click = |row| {
        Msg::Mouse(MouseEvent {
            kind: MouseEventKind::Down(MouseButton::Left),
            column: 10,
            row,
            modifiers: KeyModifiers::NONE,
        })
    };
    update(&mut f.app, click(4));
    assert_eq!(f.app.focus, Pane::Runs);
    assert_eq!(f.app.hist_sel, Some(0));
    // Focused, the list shows more history: the third row is there to click.
    update(&mut f.app, click(6));
    assert_eq!(f.app.hist_sel, Some(2));
    // Headers select nothing; the live run is one click away.
    update(&mut f.app, click(3));
    assert_eq!(f.app.hist_sel, Some(2));
    update(&mut f.app, click(2));
    assert_eq!(f.app.hist_sel, None);
    assert_eq!(f.app.run().unwrap().id, f.run);
}

#[test]
fn a_fresh_snapshot_replaces_the_mirror_and_keeps_the_selection() {
    let mut f = Feed::running();
    f.key("l");
    let selected = f.selected().to_string();
    // The state a remote console reads again after its feed could not resume: further on.
    let mut later = Feed::running();
    later.succeed(2);
    let mut state = later.app.mirror.clone();
    state.runs[0].id = f.run.clone();
    let renamed = state.runs.swap_remove_index(0).unwrap();
    state.runs.insert(f.run.clone(), renamed.1);
    assert!(update(&mut f.app, Msg::Resync(Box::new(state))));
    let run = f.app.run().expect("the run is still shown");
    assert_eq!(run.tasks[2].state, TaskState::Succeeded);
    assert_eq!(f.selected(), selected);
    assert!(f.app.layouts.contains_key(&f.run));
}
