//! The runs list: state, progress, counts, elapsed time and throughput of every run.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table, TableState};

use super::common::{bar, counts, dim_span, pane_block, run_elapsed, throughput, title_span};
use crate::tui::app::App;
use crate::tui::keymap::Pane;
use crate::tui::theme::run_icon;

pub fn draw(app: &App, f: &mut Frame, area: Rect) {
    let n = app.mirror.runs.len();
    let block = pane_block(
        app,
        Pane::Runs,
        vec![title_span(app, format!("Runs ({n})"))],
    );
    if n == 0 {
        let p = Paragraph::new(Line::from(dim_span(
            app,
            "no runs yet — :run FILE starts one",
        )))
        .block(block);
        f.render_widget(p, area);
        return;
    }
    let t = &app.theme;
    let wide = area.width >= 110;
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
    let table = Table::new(rows, widths)
        .header(Row::new(header).style(t.dimmed()))
        .row_highlight_style(if app.focus == Pane::Runs {
            t.selected()
        } else {
            Style::default().bg(t.status_bg)
        })
        .highlight_symbol("› ")
        .highlight_spacing(ratatui::widgets::HighlightSpacing::Always)
        .block(block);
    let mut state = TableState::default().with_selected(Some(app.run_sel));
    f.render_stateful_widget(table, area, &mut state);
}
