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
    let (live, hist) = runs_rows(size, app);
    let lines = (section(live) + section(hist)).max(2);
    let [runs, body, status] = Layout::vertical([
        Constraint::Length(lines + 2),
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

/// A table's lines: its header and rows, nothing when it has no rows.
fn section(rows: u16) -> u16 {
    if rows == 0 { 0 } else { rows + 1 }
}

/// Rows shown in the runs pane: (live runs, past runs). The list grows while focused, to browse
/// the history; otherwise the history keeps to a line or a few.
pub fn runs_rows(size: (u16, u16), app: &App) -> (u16, u16) {
    let wide = is_wide(size);
    let live = app.mirror.runs.len().min(usize::from(u16::MAX)) as u16;
    let hist = app.history.len().min(usize::from(u16::MAX)) as u16;
    let budget = match (wide, app.focus == Pane::Runs) {
        (false, false) => 4,
        (false, true) => (size.1 / 2).max(4),
        (true, false) => 8,
        (true, true) => (size.1 * 2 / 5).max(8),
    };
    let live_shown = live.min(if wide { 5 } else { 2 });
    if hist == 0 {
        return (live.clamp(1, if wide { 5 } else { 2 }), 0);
    }
    let room = budget.saturating_sub(section(live_shown) + 1).max(1);
    (live_shown, hist.min(room))
}

/// The runs pane's two tables inside its border: live runs on top, history below.
pub fn runs_parts(size: (u16, u16), app: &App, runs: Rect) -> (Rect, Rect) {
    let (live, _) = runs_rows(size, app);
    let inner = inner(runs);
    let live_h = if app.mirror.runs.is_empty() && !app.history.is_empty() {
        0
    } else {
        section(live).max(2)
    };
    let [top, bottom] =
        Layout::vertical([Constraint::Length(live_h), Constraint::Min(0)]).areas(inner);
    (top, bottom)
}

/// The first row a table of `height` lines (header included) shows with `selected` selected,
/// as ratatui scrolls it.
pub fn table_offset(selected: Option<usize>, height: u16) -> usize {
    let rows = usize::from(height.saturating_sub(1)).max(1);
    selected.map_or(0, |s| s.saturating_sub(rows - 1))
}

/// The runs list row (live runs, then history) drawn at screen line `y`, if any.
pub fn runs_row_at(app: &App, y: u16) -> Option<usize> {
    let areas = app.areas();
    let (top, bottom) = runs_parts(app.size, app, areas.runs);
    let live = app.mirror.runs.len();
    let pick = |r: Rect, sel: Option<usize>, n: usize| {
        if y <= r.y || y >= r.y + r.height {
            return None;
        }
        let i = table_offset(sel, r.height) + usize::from(y - r.y - 1);
        (i < n).then_some(i)
    };
    let live_sel = app.hist_sel.is_none().then_some(app.run_sel);
    pick(top, live_sel, live)
        .or_else(|| pick(bottom, app.hist_sel, app.history.len()).map(|i| live + i))
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
