//! `update` driven by keys and events: what the operator's keys do to the console's state and
//! which engine commands they ask for.

mod common;

use common::tui::{Feed, demo};
use taskdeck::model::{Command, EventKind, RunState};
use taskdeck::tui::app::{Effect, Msg, OnYes, Overlay, update};
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
    let (x, y, w, _) = f.app.layout().unwrap().rect(lint).unwrap();
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
    assert!(
        m.text.contains("failed") && m.text.contains("r retries a failed task"),
        "{}",
        m.text
    );
    f.emit(EventKind::TaskAwaitingApproval { task: 9 });
    let m = f.app.message.clone().unwrap();
    assert!(
        m.text.contains("release waits for approval") && m.text.contains("press a"),
        "{}",
        m.text
    );
}
