//! The status bar: local or remote, run and task counts, throughput, then either the latest
//! message or the key hints of the focused pane (from the key table).

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::common::{run_elapsed, throughput};
use crate::model::{RunState, TaskState};
use crate::tui::app::{App, Level, Overlay, PromptKind};

pub fn draw(app: &App, f: &mut Frame, area: Rect) {
    let t = &app.theme;
    let base = Style::default().fg(t.status_fg).bg(t.status_bg);
    let mut spans = vec![Span::styled(
        format!(" {} ", app.location.to_uppercase()),
        Style::default()
            .fg(t.selection_fg)
            .bg(if app.engine_gone { t.error } else { t.info })
            .add_modifier(Modifier::BOLD),
    )];
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
    let mut summary = format!(" {runs} run{}", if runs == 1 { "" } else { "s" });
    if going > 0 {
        summary.push_str(&format!(" ({going} going)"));
    }
    summary.push_str(&format!(" · {running} running"));
    if let Some(run) = app.run() {
        let e = run_elapsed(run, app.now);
        summary.push_str(&format!(" · {}", throughput(run.terminal_count(), e)));
        if run.state == RunState::Paused {
            summary.push_str(" · PAUSED");
        }
    }
    summary.push_str(" │ ");
    spans.push(Span::styled(summary, base));
    match &app.message {
        Some(m) => {
            let colour = match m.level {
                Level::Info => t.status_fg,
                Level::Success => t.succeeded,
                Level::Error => t.error,
            };
            spans.push(Span::styled(
                m.text.clone(),
                base.fg(colour).add_modifier(Modifier::BOLD),
            ));
        }
        None => {
            for (k, hint) in app.keymap.hints(app.focus) {
                spans.push(Span::styled(k, base.fg(t.key).add_modifier(Modifier::BOLD)));
                spans.push(Span::styled(format!(" {hint}  "), base));
            }
        }
    }
    f.render_widget(Paragraph::new(Line::from(spans)).style(base), area);
}
