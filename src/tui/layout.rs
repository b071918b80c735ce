//! Where each pane goes for a screen size: one pure function used by both `view` (to draw) and
//! `update` (to page, scroll and click), so they always agree.
//!
//! Wide screens (at least 120x30) show everything at once; narrow ones (down to 80x24) show the
//! graph with one of task / logs / agents / gates below it, switched by focus.

use ratatui::layout::{Constraint, Layout, Rect};

use super::app::App;
use super::keymap::Pane;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Areas {
    pub runs: Rect,
    pub graph: Rect,
    pub detail: Option<Rect>,
    pub logs: Option<Rect>,
    pub agents: Option<Rect>,
    pub gates: Option<Rect>,
    /// Narrow screens: the one tabbed pane below the graph.
    pub bottom: Option<Rect>,
    pub status: Rect,
}

pub fn is_wide(size: (u16, u16)) -> bool {
    size.0 >= 120 && size.1 >= 30
}

pub fn areas(size: (u16, u16), app: &App) -> Areas {
    let full = Rect::new(0, 0, size.0, size.1);
    let wide = is_wide(size);
    let shown_runs = app.mirror.runs.len().clamp(1, if wide { 5 } else { 2 }) as u16;
    let [runs, body, status] = Layout::vertical([
        Constraint::Length(shown_runs + 3),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(full);
    if wide {
        let [top, bottom] =
            Layout::vertical([Constraint::Percentage(58), Constraint::Percentage(42)]).areas(body);
        let [graph, detail] =
            Layout::horizontal([Constraint::Percentage(62), Constraint::Percentage(38)]).areas(top);
        let [logs, side] =
            Layout::horizontal([Constraint::Percentage(62), Constraint::Percentage(38)])
                .areas(bottom);
        let [agents, gates] =
            Layout::vertical([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(side);
        Areas {
            runs,
            graph,
            detail: Some(detail),
            logs: Some(logs),
            agents: Some(agents),
            gates: Some(gates),
            bottom: None,
            status,
        }
    } else {
        let [graph, bottom] =
            Layout::vertical([Constraint::Percentage(58), Constraint::Percentage(42)]).areas(body);
        let one = Some(bottom);
        Areas {
            runs,
            graph,
            detail: (app.bottom == Pane::Detail).then_some(bottom),
            logs: (app.bottom == Pane::Logs).then_some(bottom),
            agents: (app.bottom == Pane::Agents).then_some(bottom),
            gates: (app.bottom == Pane::Gates).then_some(bottom),
            bottom: one,
            status,
        }
    }
}

impl Areas {
    /// Where `p` is drawn now, if it is.
    pub fn pane(&self, p: Pane) -> Option<Rect> {
        match p {
            Pane::Runs => Some(self.runs),
            Pane::Graph => Some(self.graph),
            Pane::Detail => self.detail,
            Pane::Logs => self.logs,
            Pane::Agents => self.agents,
            Pane::Gates => self.gates,
        }
    }

    pub fn pane_at(&self, x: u16, y: u16) -> Option<Pane> {
        let pos = ratatui::layout::Position { x, y };
        Pane::ALL
            .into_iter()
            .find(|p| self.pane(*p).is_some_and(|r| r.contains(pos)))
    }

    /// The graph pane inside its border.
    pub fn graph_inner(&self) -> Rect {
        inner(self.graph)
    }
}

/// A rectangle inside a one-cell border.
pub fn inner(r: Rect) -> Rect {
    Rect::new(
        r.x.saturating_add(1),
        r.y.saturating_add(1),
        r.width.saturating_sub(2),
        r.height.saturating_sub(2),
    )
}
