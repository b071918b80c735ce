//! Quality gates of the selected run: level, state, and each check passed or failed with its
//! message.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use super::common::{bold, dim_span, pane_block, scroll_note, title_span};
use crate::engine::state::Run;
use crate::model::GateState;
use crate::tui::app::App;
use crate::tui::keymap::Pane;

fn gate_icon(s: GateState) -> &'static str {
    match s {
        GateState::Pending => "·",
        GateState::Checking => "◑",
        GateState::Passed => "✓",
        GateState::Failed => "✗",
        GateState::Warned => "!",
        GateState::Skipped => "⊘",
    }
}

pub fn draw(app: &App, f: &mut Frame, area: Rect, tabs: Option<Vec<Span<'static>>>) {
    let Some(run) = app.run() else {
        let block = pane_block(
            app,
            Pane::Gates,
            tabs.unwrap_or_else(|| vec![title_span(app, "Gates")]),
        );
        f.render_widget(Paragraph::new(dim_span(app, "no run")).block(block), area);
        return;
    };
    let n = run.workflow.gates.len();
    let title = tabs.unwrap_or_else(|| vec![title_span(app, format!("Gates ({n})"))]);
    let block = pane_block(app, Pane::Gates, title);
    let lines = lines(app, run);
    let scroll = app.side_scroll_for(Pane::Gates);
    let block = match scroll_note(app, &lines, true, area, scroll) {
        Some(note) => block.title_bottom(note),
        None => block,
    };
    let p = Paragraph::new(lines)
        .block(block)
        .wrap(Wrap { trim: false })
        .scroll((scroll, 0));
    f.render_widget(p, area);
}

/// The pane's text for `run`.
pub fn lines(app: &App, run: &Run) -> Vec<Line<'static>> {
    let t = &app.theme;
    let n = run.workflow.gates.len();
    let mut lines = Vec::new();
    if n == 0 {
        lines.push(Line::from(dim_span(
            app,
            "this workflow has no quality gates",
        )));
    }
    for (g, spec) in run.gates.iter().zip(&run.workflow.gates) {
        let style = Style::default().fg(t.gate(g.state));
        let after: Vec<&str> = spec.after.iter().take(4).map(|x| run.task_id(*x)).collect();
        lines.push(Line::from(vec![
            Span::styled(
                format!("{} {}", gate_icon(g.state), spec.id),
                style.patch(bold()),
            ),
            Span::styled(format!(" {}", g.state.as_str()), style),
            dim_span(
                app,
                format!(
                    " · {:?} · after {} · on fail {:?}",
                    spec.level,
                    after.join(", "),
                    spec.on_fail
                )
                .to_lowercase(),
            ),
        ]));
        for (c, r) in spec.checks.iter().zip(&g.results) {
            let (icon, colour) = match r {
                None => ("·", t.pending),
                Some(r) if r.passed => ("✓", t.succeeded),
                Some(_) => ("✗", t.failed),
            };
            let mut spans = vec![
                Span::styled(format!("  {icon} "), Style::default().fg(colour)),
                Span::raw(c.name.clone()),
            ];
            if let Some(r) = r
                && !r.message.is_empty()
            {
                let first = r.message.lines().next().unwrap_or("").to_string();
                spans.push(dim_span(app, format!(": {first}")));
            }
            lines.push(Line::from(spans));
        }
    }
    lines
}
