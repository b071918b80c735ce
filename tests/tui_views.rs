//! Snapshots of the console's views on ratatui's `TestBackend`, from states folded out of
//! hand-built events: empty, running, failed and paused runs at 80x24 and 200x60.

mod common;

use common::tui::{Feed, demo};
use taskdeck::model::EventKind;
use taskdeck::tui::app::{App, Msg, update};
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
