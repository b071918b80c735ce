//! The status bar: local or remote, run and task counts, throughput, then either the latest
//! message or the key hints of the focused pane (from the key table).

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::common::{cut_at_word, run_elapsed, throughput};
use crate::model::{RunState, TaskState};
use crate::tui::app::{App, Level, Overlay, PromptKind};

pub fn draw(app: &App, f: &mut Frame, area: Rect) {
    let t = &app.theme;
    let base = Style::default().fg(t.status_fg).bg(t.status_bg);
    let (label, trouble) = match &app.link {
        Some(link) => (link.text(app.now), !link.healthy()),
        None => (app.location.to_uppercase(), false),
    };
    let mut spans = vec![Span::styled(
        format!(" {label} "),
        Style::default()
            .fg(t.selection_fg)
            .bg(if app.engine_gone {
                t.error
            } else if trouble {
                t.warning
            } else {
                t.info
            })
            .add_modifier(Modifier::BOLD),
    )];
    if app.read_only() {
        spans.push(Span::styled(
            " HISTORY ",
            Style::default()
                .fg(t.selection_fg)
                .bg(t.warning)
                .add_modifier(Modifier::BOLD),
        ));
    }
    if let Overlay::Prompt { kind, text } = &app.overlay {
        let label = match kind {
            PromptKind::Filter => " filter (name or state): ",
            PromptKind::Search => " search log: ",
        };
        spans.push(Span::styled(label, base.add_modifier(Modifier::BOLD)));
        spans.push(Span::styled(format!("{text}▏"), base));
        spans.push(Span::styled(
            "  enter applies · esc cancels",
            base.fg(t.dim),
        ));
        f.render_widget(Paragraph::new(Line::from(spans)).style(base), area);
        return;
    }
    let width = usize::from(area.width).saturating_sub(width_of(&spans));
    let runs = app.mirror.runs.len();
    let going = app
        .mirror
        .runs
        .values()
        .filter(|r| !r.state.is_terminal())
        .count();
    let running: u32 = app
        .mirror
        .runs
        .values()
        .map(|r| r.count(TaskState::Running))
        .sum();
    // The long form names the runs; the short one (narrow screens) leaves that to the runs pane.
    let mut long = format!(" {runs} run{}", if runs == 1 { "" } else { "s" });
    if going > 0 {
        long.push_str(&format!(" ({going} going)"));
    }
    long.push_str(" ·");
    let mut short = format!(" {running} running");
    if let Some(run) = app.run() {
        let e = run_elapsed(run, app.now);
        short.push_str(&format!(" · {}", throughput(run.terminal_count(), e)));
        if run.state == RunState::Paused {
            short.push_str(" · PAUSED");
        }
    }
    short.push_str(" │ ");
    let long = format!("{long}{short}");
    let wide = usize::from(area.width) >= 100;
    match &app.message {
        Some(m) => {
            let colour = match m.level {
                Level::Info => t.status_fg,
                Level::Success => t.succeeded,
                Level::Warning => t.warning,
                Level::Error => t.error,
            };
            // The message matters most: the counts give way to it, then it is cut at a word.
            let n = m.text.chars().count();
            let summary = [long.as_str(), short.as_str()]
                .into_iter()
                .skip(usize::from(!wide))
                .find(|s| s.chars().count() + n <= width)
                .unwrap_or(" ");
            spans.push(Span::styled(summary.to_string(), base));
            let room = width.saturating_sub(summary.chars().count());
            spans.push(Span::styled(
                cut_at_word(&m.text, room),
                base.fg(colour).add_modifier(Modifier::BOLD),
            ));
        }
        None => {
            let summary = if wide { long } else { short };
            let mut room = width.saturating_sub(summary.chars().count());
            spans.push(Span::styled(summary, base));
            // Hints in order of use while they fit whole; `help` always, last.
            let hints = app.keymap.hints(app.focus);
            let help = hints.iter().find(|(_, h)| *h == "help").cloned();
            let cost = |(k, h): &(String, &str)| k.chars().count() + 1 + h.chars().count() + 2;
            room = room.saturating_sub(help.as_ref().map_or(0, cost));
            let mut shown = Vec::new();
            for h in hints.iter().filter(|(_, h)| *h != "help") {
                if cost(h) <= room {
                    room -= cost(h);
                    shown.push(h.clone());
                }
            }
            shown.extend(help);
            for (k, hint) in shown {
                spans.push(Span::styled(k, base.fg(t.key).add_modifier(Modifier::BOLD)));
                spans.push(Span::styled(format!(" {hint}  "), base));
            }
        }
    }
    f.render_widget(Paragraph::new(Line::from(spans)).style(base), area);
}

fn width_of(spans: &[Span]) -> usize {
    spans.iter().map(|s| s.content.chars().count()).sum()
}
