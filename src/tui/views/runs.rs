//! The runs list: live runs (state, progress, counts, elapsed time, throughput), then the
//! history of past runs from the store (state, start, duration, counts).

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table, TableState};

use super::common::{bar, counts, dim_span, pane_block, run_elapsed, throughput, title_span};
use crate::history::{HistoryEntry, local_datetime};
use crate::model::RunState;
use crate::tui::app::App;
use crate::tui::keymap::Pane;
use crate::tui::layout::{runs_parts, table_offset};
use crate::tui::theme::run_icon;

pub fn draw(app: &App, f: &mut Frame, area: Rect) {
    let t = &app.theme;
    let n = app.mirror.runs.len();
    let mut title = vec![title_span(app, format!("Runs ({n})"))];
    if !app.history.is_empty() {
        title.push(dim_span(app, format!(" · history {}", app.history.len())));
        let stopped = app.interrupted().count();
        if stopped > 0 {
            title.push(Span::styled(
                format!(" · {stopped} interrupted"),
                Style::default().fg(t.warning),
            ));
        }
    }
    f.render_widget(pane_block(app, Pane::Runs, title), area);
    let (top, bottom) = runs_parts(app.size, app, area);
    if n == 0 && app.history.is_empty() {
        let hint = match &app.history_off {
            Some(_) => "no runs yet — :run FILE starts one",
            None => "no runs yet — :run FILE starts one; past runs show here",
        };
        f.render_widget(Paragraph::new(Line::from(dim_span(app, hint))), top);
        return;
    }
    if n > 0 {
        live(app, f, top);
    }
    if !app.history.is_empty() {
        past(app, f, bottom);
    }
}

fn highlight(app: &App) -> Style {
    if app.focus == Pane::Runs {
        app.theme.selected()
    } else {
        Style::default().bg(app.theme.status_bg)
    }
}

fn live(app: &App, f: &mut Frame, area: Rect) {
    let t = &app.theme;
    let wide = area.width >= 108;
    let bar_w = if wide { 20 } else { 10 };
    let digits = app
        .mirror
        .runs
        .values()
        .map(|r| r.tasks.len().to_string().len())
        .max()
        .unwrap_or(1) as u16;
    let rows = app.mirror.runs.values().map(|run| {
        let total = run.tasks.len() as u32;
        let done = run.terminal_count();
        let (full, empty) = bar(done, total, bar_w);
        let elapsed = run_elapsed(run, app.now);
        let state = Span::styled(
            format!("{} {}", run_icon(run.state), run.state),
            Style::default().fg(t.run(run.state)),
        );
        let progress = Line::from(vec![
            Span::styled(full, Style::default().fg(t.run(run.state))),
            Span::styled(empty, t.dimmed()),
            Span::raw(format!(" {done}/{total}")),
        ]);
        let mut cells = vec![Cell::from(state), Cell::from(run.workflow.name.clone())];
        if wide {
            cells.push(Cell::from(Span::styled(run.id.to_string(), t.dimmed())));
        }
        cells.extend([
            Cell::from(progress),
            Cell::from(Line::from(counts(app, run))),
            Cell::from(super::common::duration(elapsed)),
            Cell::from(throughput(done, elapsed)),
        ]);
        Row::new(cells)
    });
    let mut widths = vec![Constraint::Length(12), Constraint::Min(8)];
    let mut header = vec!["STATE", "WORKFLOW"];
    if wide {
        widths.push(Constraint::Length(21));
        header.push("RUN");
    }
    widths.extend([
        Constraint::Length(bar_w as u16 + 2 + 2 * digits),
        Constraint::Min(12),
        Constraint::Length(7),
        Constraint::Length(8),
    ]);
    header.extend(["PROGRESS", "TASKS", "ELAPSED", "RATE"]);
    let selected = app.hist_sel.is_none().then_some(app.run_sel);
    let table = Table::new(rows, widths)
        .header(Row::new(header).style(t.dimmed()))
        .row_highlight_style(highlight(app))
        .highlight_symbol("› ")
        .highlight_spacing(ratatui::widgets::HighlightSpacing::Always);
    let mut state = TableState::default()
        .with_selected(selected)
        .with_offset(table_offset(selected, area.height));
    f.render_stateful_widget(table, area, &mut state);
}

/// A history row as text: what the view draws, testable without a terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryCells {
    pub state: String,
    pub workflow: String,
    pub run: String,
    pub started: String,
    pub took: String,
    pub tasks: String,
}

pub fn history_cells(h: &HistoryEntry) -> HistoryCells {
    let icon = match past_state(&h.state) {
        Some(s) => run_icon(s),
        None => "⚠",
    };
    let mut tasks = format!("{}/{}", h.done(), h.tasks);
    for s in ["failed", "cancelled", "blocked"] {
        if let Some(n) = h.counts.get(s) {
            tasks.push_str(&format!(", {n} {s}"));
        }
    }
    HistoryCells {
        state: format!("{icon} {}", h.state),
        workflow: format!("{} v{}", h.workflow, h.version_no),
        run: h.id.to_string(),
        started: local_datetime(h.submitted_at),
        took: h.took().map_or_else(|| "–".into(), super::common::duration),
        tasks,
    }
}

fn past_state(s: &str) -> Option<RunState> {
    Some(match s {
        "pending" => RunState::Pending,
        "running" => RunState::Running,
        "paused" => RunState::Paused,
        "succeeded" => RunState::Succeeded,
        "failed" => RunState::Failed,
        "cancelled" => RunState::Cancelled,
        _ => return None,
    })
}

fn past(app: &App, f: &mut Frame, area: Rect) {
    let t = &app.theme;
    let wide = area.width >= 108;
    let rows = app.history.iter().map(|h| {
        let c = history_cells(h);
        let colour = past_state(&h.state).map_or(t.warning, |s| t.run(s));
        let mut cells = vec![
            Cell::from(Span::styled(c.state, Style::default().fg(colour))),
            Cell::from(c.workflow),
        ];
        if wide {
            cells.push(Cell::from(Span::styled(c.run, t.dimmed())));
        }
        // Narrow: the date goes (the run id starts with it), the time stays.
        let started = if wide {
            c.started
        } else {
            c.started.get(11..).unwrap_or(&c.started).to_string()
        };
        cells.extend([Cell::from(started), Cell::from(c.took), Cell::from(c.tasks)]);
        Row::new(cells)
    });
    // The workflow column as wide as its names need; the counts take the rest.
    let name_w = app
        .history
        .iter()
        .map(|h| h.workflow.chars().count() + 4)
        .max()
        .unwrap_or(8)
        .clamp(8, 28) as u16;
    let mut widths = vec![Constraint::Length(13), Constraint::Length(name_w)];
    let mut header = vec!["HISTORY", "WORKFLOW"];
    if wide {
        widths.push(Constraint::Length(21));
        header.push("RUN");
    }
    widths.extend([
        Constraint::Length(if wide { 16 } else { 5 }),
        Constraint::Length(7),
        Constraint::Min(12),
    ]);
    header.extend(["STARTED", "TOOK", "TASKS"]);
    let table = Table::new(rows, widths)
        .header(Row::new(header).style(t.dimmed()))
        .row_highlight_style(highlight(app))
        .highlight_symbol("› ")
        .highlight_spacing(ratatui::widgets::HighlightSpacing::Always);
    let mut state = TableState::default()
        .with_selected(app.hist_sel)
        .with_offset(table_offset(app.hist_sel, area.height));
    f.render_stateful_widget(table, area, &mut state);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RunId;

    fn entry(state: &str, counts: &[(&str, u32)], finished: Option<u64>) -> HistoryEntry {
        HistoryEntry {
            id: RunId::from("20261123-140000-beef"),
            workflow: "demo".into(),
            version_no: 2,
            state: state.into(),
            submitted_at: 1_795_442_400_000,
            finished_at: finished,
            tasks: 11,
            counts: counts.iter().map(|(s, n)| (s.to_string(), *n)).collect(),
        }
    }

    #[test]
    fn rows_say_state_version_duration_and_what_went_wrong() {
        let done = history_cells(&entry(
            "failed",
            &[("succeeded", 8), ("failed", 1), ("blocked", 2)],
            Some(1_795_442_400_000 + 83_000),
        ));
        assert_eq!(done.state, "✗ failed");
        assert_eq!(done.workflow, "demo v2");
        assert_eq!(done.took, "1m23s");
        assert_eq!(done.tasks, "11/11, 1 failed, 2 blocked");
        assert_eq!(done.started.len(), "2026-11-23 14:00".len());
        let cut = history_cells(&entry(
            "interrupted",
            &[("succeeded", 4), ("running", 2), ("pending", 5)],
            None,
        ));
        assert_eq!(cut.state, "⚠ interrupted");
        assert_eq!(cut.took, "–");
        assert_eq!(cut.tasks, "4/11");
    }
}
