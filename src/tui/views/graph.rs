//! The task graph: levels as columns of tasks, edges drawn with box characters between them,
//! tasks coloured by state, the critical path in heavy lines, the selected task's edges (its
//! inputs and outputs) highlighted. Three zoom levels: boxes, one-line boxes, one-cell dots.
//! Only the visible window of the layout is looked at.
//!
//! Where lines touch in a corner, a T or a cross, the edges there are joined; where one edge only
//! passes over another, the line underneath is interrupted instead, so a crossing never looks
//! like a join.

use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::Span;
use ratatui::widgets::Paragraph;

use super::common::{dim_span, fit, pane_block, title_span, truncate};
use crate::engine::state::Run;
use crate::model::TaskState;
use crate::tui::app::App;
use crate::tui::dag_layout::{DagLayout, Slot, Zoom};
use crate::tui::keymap::Pane;
use crate::tui::layout::inner;
use crate::tui::theme::task_icon;

const UP: u16 = 1;
const DOWN: u16 = 2;
const LEFT: u16 = 4;
const RIGHT: u16 = 8;
const DIRS: u16 = UP | DOWN | LEFT | RIGHT;
/// An edge passes straight through the cell, across or down.
const THRU_H: u16 = 16;
const THRU_V: u16 = 32;
/// Per axis: a critical or a highlighted edge uses the cell.
const CRIT_H: u16 = 64;
const CRIT_V: u16 = 128;
const HL_H: u16 = 256;
const HL_V: u16 = 512;
/// Flags of a whole edge (before they are split by axis).
const CRIT: u16 = 1;
const HL: u16 = 2;

pub fn draw(app: &App, f: &mut Frame, area: Rect) {
    let (Some(run), Some(layout)) = (app.run(), app.layout()) else {
        let block = pane_block(app, Pane::Graph, vec![title_span(app, "Graph")]);
        let text = match app.past_entry() {
            Some(h) if app.opening.as_ref() == Some(&h.id) => {
                format!("reading run {} from the journal…", h.id)
            }
            Some(h) if h.interrupted() => format!(
                "run {} ({}) was interrupted · in the runs list, Enter opens it read-only and {} resumes it",
                h.id,
                h.workflow,
                app.keymap.key_of(crate::tui::keymap::Action::ResumeRun)
            ),
            Some(h) => format!(
                "run {} ({}) is history · in the runs list, Enter opens it read-only",
                h.id, h.workflow
            ),
            None if app.mirror.runs.is_empty() => {
                "no run open — :run FILE starts one, :history browses past runs".into()
            }
            None => "waiting for a run…".into(),
        };
        f.render_widget(
            Paragraph::new(dim_span(app, text))
                .wrap(ratatui::widgets::Wrap { trim: true })
                .block(block),
            area,
        );
        return;
    };
    let sel = app.selected_task();
    let mut title = vec![title_span(app, "Graph")];
    if app.read_only() {
        title.push(Span::styled(
            " · read-only",
            Style::default().fg(app.theme.warning),
        ));
    }
    if let Some(t) = sel {
        let (c, _) = layout.pos[t as usize];
        title.push(dim_span(
            app,
            format!(
                " · level {}/{} · {} tasks",
                c + 1,
                layout.columns.len(),
                run.tasks.len()
            ),
        ));
    }
    match app.graph_zoom {
        Zoom::Boxes => {}
        Zoom::Overview => {
            let v = inner(area);
            let b = layout.buckets(u32::from(v.width), u32::from(v.height));
            let per_cell = b.levels * b.slots;
            title.push(dim_span(
                app,
                if per_cell > 1 {
                    format!(" · overview, ≤{per_cell} a cell")
                } else {
                    " · overview".to_string()
                },
            ));
        }
        z => title.push(dim_span(app, format!(" · {}", z.name()))),
    }
    if !app.filter.is_empty() {
        title.push(Span::styled(
            format!(" · filter: {}", app.filter),
            Style::default().fg(app.theme.warning),
        ));
    }
    title.push(Span::styled(
        " · ━ critical path",
        Style::default().fg(app.theme.critical),
    ));
    let block = pane_block(app, Pane::Graph, title);
    f.render_widget(block, area);
    let view = inner(area);
    draw_canvas(app, run, layout, sel, view, f.buffer_mut());
}

/// Line bits of the visible window, one `u16` per cell.
struct Grid {
    cells: Vec<u16>,
    origin: (u32, u32),
    w: u32,
    h: u32,
}

impl Grid {
    fn add(&mut self, x: u32, y: u32, dirs: u16, flags: u16) {
        let (ox, oy) = self.origin;
        if x < ox || y < oy || x - ox >= self.w || y - oy >= self.h {
            return;
        }
        let cell = &mut self.cells[((y - oy) * self.w + (x - ox)) as usize];
        *cell |= match dirs {
            d if d == LEFT | RIGHT => THRU_H,
            d if d == UP | DOWN => THRU_V,
            d => d,
        };
        if dirs & (LEFT | RIGHT) != 0 {
            *cell |=
                if flags & CRIT != 0 { CRIT_H } else { 0 } | if flags & HL != 0 { HL_H } else { 0 };
        }
        if dirs & (UP | DOWN) != 0 {
            *cell |=
                if flags & CRIT != 0 { CRIT_V } else { 0 } | if flags & HL != 0 { HL_V } else { 0 };
        }
    }

    /// One segment: right from `x_from` to the track at `xt` on row `ya`, along the track to row
    /// `yb`, then right to `x_to`.
    fn path(&mut self, (x_from, xt, x_to): (u32, u32, u32), (ya, yb): (u32, u32), flags: u16) {
        for x in x_from..xt {
            self.add(x, ya, LEFT | RIGHT, flags);
        }
        if ya == yb {
            self.add(xt, ya, LEFT | RIGHT, flags);
        } else {
            let (top, bottom) = (ya.min(yb), ya.max(yb));
            let down = yb > ya;
            self.add(xt, ya, LEFT | if down { DOWN } else { UP }, flags);
            self.add(xt, yb, RIGHT | if down { UP } else { DOWN }, flags);
            // Only the part of the track inside the window.
            let lo = (top + 1).max(self.origin.1);
            let hi = bottom.min(self.origin.1 + self.h);
            for y in lo..hi {
                self.add(xt, y, UP | DOWN, flags);
            }
        }
        for x in xt + 1..=x_to {
            self.add(x, yb, LEFT | RIGHT, flags);
        }
    }
}

/// Draws the layout window at `app.graph_offset` into `view`, at `app.graph_zoom`.
pub fn draw_canvas(
    app: &App,
    run: &Run,
    layout: &DagLayout,
    sel: Option<u32>,
    view: Rect,
    buf: &mut Buffer,
) {
    if view.width == 0 || view.height == 0 {
        return;
    }
    let z = app.graph_zoom;
    if z == Zoom::Overview {
        draw_overview(app, run, layout, sel, view, buf);
        return;
    }
    let geo = layout.geo(z);
    let (ox, oy) = app.graph_offset;
    let (vw, vh) = (u32::from(view.width), u32::from(view.height));
    let cols = layout.visible_columns(z, ox, ox + vw);
    let (sh, mid) = (z.slot_h(), z.mid());
    let s0 = oy / sh;
    let s1 = (oy + vh) / sh + 1;
    let is_sel = |t: u32| sel == Some(t);

    // Edges first, into a grid of line bits; boxes are drawn over them.
    let mut grid = Grid {
        cells: vec![0; (vw * vh) as usize],
        origin: (ox, oy),
        w: vw,
        h: vh,
    };
    let first_gap = cols.start.saturating_sub(1);
    let mut arrows = Vec::new();
    for g in first_gap..cols.end.min(layout.gaps.len()) {
        let x_from = geo.x[g] + geo.width[g];
        let x_to = geo.x[g + 1].saturating_sub(1).max(x_from);
        let tracks = layout.tracks.get(g).copied().unwrap_or(0);
        let right = &layout.columns[g + 1];
        for seg in layout.visible_segments(g, s0, s1) {
            let mut flags = 0;
            if seg.critical {
                flags |= CRIT;
            }
            if is_sel(seg.src) || is_sel(seg.dst) {
                flags |= HL;
            }
            let xt = geo.track_x(g, seg.track, tracks).clamp(x_from, x_to);
            let (ya, yb) = (seg.from * sh + mid, seg.to * sh + mid);
            grid.path((x_from, xt, x_to), (ya, yb), flags);
            if x_to > xt && matches!(right.slots.get(seg.to as usize), Some(Slot::Task(_))) {
                arrows.push((x_to, yb, flags));
            }
        }
    }
    let t = &app.theme;
    let edge = Style::default().fg(t.edge);
    let crit_edge = Style::default().fg(t.critical);
    let hl_edge = Style::default()
        .fg(t.border_focus)
        .add_modifier(Modifier::BOLD);
    let style_of = |hl: bool, crit: bool| {
        if hl {
            hl_edge
        } else if crit {
            crit_edge
        } else {
            edge
        }
    };
    for y in 0..vh {
        for x in 0..vw {
            let c = grid.cells[(y * vw + x) as usize];
            if c == 0 {
                continue;
            }
            let (ch, style) = if c & DIRS == 0 && c & THRU_H != 0 && c & THRU_V != 0 {
                // A crossing: the line on top goes on, the one underneath is interrupted.
                if c & HL_V != 0 && c & HL_H == 0 {
                    (line_char(UP | DOWN, c & CRIT_V != 0), hl_edge)
                } else {
                    (
                        line_char(LEFT | RIGHT, c & CRIT_H != 0),
                        style_of(c & HL_H != 0, c & CRIT_H != 0),
                    )
                }
            } else {
                let mut dirs = c & DIRS;
                if c & THRU_H != 0 {
                    dirs |= LEFT | RIGHT;
                }
                if c & THRU_V != 0 {
                    dirs |= UP | DOWN;
                }
                let crit = c & (CRIT_H | CRIT_V) != 0;
                (
                    line_char(dirs, crit),
                    style_of(c & (HL_H | HL_V) != 0, crit),
                )
            };
            put(buf, view, x, y, ch, style);
        }
    }
    // Highlighted arrows last, so they win where several edges arrive.
    arrows.sort_by_key(|a| a.2 & HL);
    for (x, y, flags) in arrows {
        if x >= ox && y >= oy && x - ox < vw && y - oy < vh {
            put(
                buf,
                view,
                x - ox,
                y - oy,
                '▸',
                style_of(flags & HL != 0, flags & CRIT != 0),
            );
        }
    }

    // Tasks and pass-through lines of the visible columns and slots.
    let origin = (ox, oy);
    for c in cols {
        let col = &layout.columns[c];
        let (x, w) = (geo.x[c], geo.width[c]);
        let last = (s1 as usize).min(col.slots.len());
        for s in (s0 as usize).min(last)..last {
            let y = s as u32 * sh;
            match col.slots[s] {
                Slot::Through { critical, src, dst } => {
                    let style = style_of(is_sel(src) || is_sel(dst), critical);
                    let ch = line_char(LEFT | RIGHT, critical);
                    for dx in 0..w {
                        put_abs(buf, view, origin, x + dx, y + mid, ch, style);
                    }
                }
                Slot::Task(task) => {
                    let task = TaskCell {
                        task,
                        selected: is_sel(task),
                        at: (x, y, w),
                    };
                    match z {
                        Zoom::Boxes => draw_box(app, run, layout, &task, origin, view, buf),
                        Zoom::Compact => draw_line(app, run, layout, &task, origin, view, buf),
                        Zoom::Dots | Zoom::Overview => {
                            draw_dot(app, run, layout, &task, origin, view, buf)
                        }
                    }
                }
            }
        }
    }
}

/// Which state an overview cell shows for the tasks in it: the one most in need of attention.
fn urgency(s: TaskState) -> u8 {
    match s {
        TaskState::Failed => 0,
        TaskState::WaitingApproval => 1,
        TaskState::Running => 2,
        TaskState::RetryWait => 3,
        TaskState::Paused => 4,
        TaskState::Validating => 5,
        TaskState::Assigned => 6,
        TaskState::Blocked => 7,
        TaskState::Cancelled => 8,
        TaskState::Ready => 9,
        TaskState::Pending => 10,
        TaskState::Skipped => 11,
        TaskState::Succeeded => 12,
    }
}

/// The whole graph in the window: each cell shows the most urgent state among its tasks (bold
/// when one matches the filter); the selected task's cell is highlighted. No edges: at this scale
/// they would fill every cell. One pass over the tasks.
fn draw_overview(
    app: &App,
    run: &Run,
    layout: &DagLayout,
    sel: Option<u32>,
    view: Rect,
    buf: &mut Buffer,
) {
    let (vw, vh) = (u32::from(view.width), u32::from(view.height));
    let b = layout.buckets(vw, vh);
    // Per cell: the urgency of its most urgent task (u8::MAX for none), that task's state, and
    // whether any of its tasks matches the filter.
    let mut cells: Vec<(u8, Option<TaskState>, bool)> =
        vec![(u8::MAX, None, false); (vw * vh) as usize];
    let filtering = !app.filter.is_empty();
    for (t, task) in run.tasks.iter().enumerate() {
        let Some((x, y)) = layout.bucket_of(b, t as u32) else {
            continue;
        };
        if x >= vw || y >= vh {
            continue;
        }
        let cell = &mut cells[(y * vw + x) as usize];
        let u = urgency(task.state);
        if u < cell.0 {
            *cell = (u, Some(task.state), cell.2);
        }
        if filtering && app.matches_filter(run, t as u32) {
            cell.2 = true;
        }
    }
    let t = &app.theme;
    let sel_cell = sel.and_then(|s| layout.bucket_of(b, s));
    for y in 0..vh {
        for x in 0..vw {
            let (_, state, matched) = cells[(y * vw + x) as usize];
            let Some(state) = state else { continue };
            let ch = task_icon(state).chars().next().unwrap_or('•');
            let mut style = Style::default().fg(if !filtering || matched {
                t.task(state)
            } else {
                t.dim
            });
            if sel_cell == Some((x, y)) {
                style = t.selected();
            } else if filtering && matched {
                style = style.add_modifier(Modifier::BOLD);
            }
            put(buf, view, x, y, ch, style);
        }
    }
}

/// A task to draw, where, and whether it is the selected one.
struct TaskCell {
    task: u32,
    selected: bool,
    /// Layout x, y and column width.
    at: (u32, u32, u32),
}

/// The label style of a task: its state's colour, the selection, the filter, the critical path.
fn label_style(app: &App, run: &Run, layout: &DagLayout, task: &TaskCell) -> Style {
    let t = &app.theme;
    let state = run.tasks[task.task as usize].state;
    let matches = app.matches_filter(run, task.task);
    let mut style = Style::default().fg(if matches { t.task(state) } else { t.dim });
    if task.selected {
        style = t.selected();
    } else if matches && (!app.filter.is_empty() || layout.critical[task.task as usize]) {
        style = style.add_modifier(Modifier::BOLD);
    }
    style
}

fn draw_box(
    app: &App,
    run: &Run,
    layout: &DagLayout,
    task: &TaskCell,
    origin: (u32, u32),
    view: Rect,
    buf: &mut Buffer,
) {
    let t = &app.theme;
    let (x, y, w) = task.at;
    let state = run.tasks[task.task as usize].state;
    let colour = t.task(state);
    let critical = layout.critical[task.task as usize];
    let matches = app.matches_filter(run, task.task);
    let mut border = Style::default().fg(if matches { colour } else { t.dim });
    if task.selected {
        border = border.fg(t.border_focus).add_modifier(Modifier::BOLD);
    }
    let (tl, tr, bl, br, h, v) = if critical {
        ('┏', '┓', '┗', '┛', '━', '┃')
    } else {
        ('╭', '╮', '╰', '╯', '─', '│')
    };
    let w = w.max(4);
    for dx in 0..w {
        let (top, bottom) = match dx {
            0 => (tl, bl),
            _ if dx == w - 1 => (tr, br),
            _ => (h, h),
        };
        put_abs(buf, view, origin, x + dx, y, top, border);
        put_abs(buf, view, origin, x + dx, y + 2, bottom, border);
    }
    put_abs(buf, view, origin, x, y + 1, v, border);
    put_abs(buf, view, origin, x + w - 1, y + 1, v, border);
    let label = fit(
        &format!("{} {}", task_icon(state), run.task_id(task.task)),
        (w - 2) as usize,
    );
    // The critical path shows in the border; the label stays plain unless filtered.
    let mut style = Style::default().fg(if matches { colour } else { t.dim });
    if task.selected {
        style = t.selected();
    } else if matches && !app.filter.is_empty() {
        style = style.add_modifier(Modifier::BOLD);
    }
    for (i, ch) in label.chars().enumerate() {
        put_abs(buf, view, origin, x + 1 + i as u32, y + 1, ch, style);
    }
}

/// A one-line box: icon and id, then (when edges leave the task) a line to the gap.
fn draw_line(
    app: &App,
    run: &Run,
    layout: &DagLayout,
    task: &TaskCell,
    origin: (u32, u32),
    view: Rect,
    buf: &mut Buffer,
) {
    let (x, y, w) = task.at;
    let state = run.tasks[task.task as usize].state;
    let label = truncate(
        &format!("{} {}", task_icon(state), run.task_id(task.task)),
        w.saturating_sub(1) as usize,
    );
    let style = label_style(app, run, layout, task);
    let mut n = 0;
    for ch in label.chars() {
        put_abs(buf, view, origin, x + n, y, ch, style);
        n += 1;
    }
    let critical = layout.critical[task.task as usize];
    let lead = if task.selected {
        Style::default()
            .fg(app.theme.border_focus)
            .add_modifier(Modifier::BOLD)
    } else if critical {
        Style::default().fg(app.theme.critical)
    } else {
        Style::default().fg(app.theme.edge)
    };
    let fans_out = layout.fans_out[task.task as usize];
    for dx in n..w {
        let ch = if fans_out && dx > n {
            line_char(LEFT | RIGHT, critical)
        } else {
            ' '
        };
        put_abs(buf, view, origin, x + dx, y, ch, lead);
    }
}

/// A task as one cell: its state icon.
fn draw_dot(
    app: &App,
    run: &Run,
    layout: &DagLayout,
    task: &TaskCell,
    origin: (u32, u32),
    view: Rect,
    buf: &mut Buffer,
) {
    let (x, y, _) = task.at;
    let state = run.tasks[task.task as usize].state;
    let ch = task_icon(state).chars().next().unwrap_or('•');
    put_abs(
        buf,
        view,
        origin,
        x,
        y,
        ch,
        label_style(app, run, layout, task),
    );
}

/// Writes `ch` at layout position (`x`, `y`) if it is inside the window.
fn put_abs(
    buf: &mut Buffer,
    view: Rect,
    (ox, oy): (u32, u32),
    x: u32,
    y: u32,
    ch: char,
    style: Style,
) {
    if x < ox || y < oy {
        return;
    }
    let (dx, dy) = (x - ox, y - oy);
    if dx < u32::from(view.width) && dy < u32::from(view.height) {
        put(buf, view, dx, dy, ch, style);
    }
}

/// Writes `ch` at window position (`dx`, `dy`).
fn put(buf: &mut Buffer, view: Rect, dx: u32, dy: u32, ch: char, style: Style) {
    let pos = (view.x + dx as u16, view.y + dy as u16);
    if let Some(cell) = buf.cell_mut(pos) {
        cell.set_char(ch);
        cell.set_style(style);
    }
}

fn line_char(bits: u16, heavy: bool) -> char {
    let light = match bits {
        b if b == LEFT | RIGHT || b == LEFT || b == RIGHT => '─',
        b if b == UP | DOWN || b == UP || b == DOWN => '│',
        b if b == DOWN | RIGHT => '╭',
        b if b == DOWN | LEFT => '╮',
        b if b == UP | RIGHT => '╰',
        b if b == UP | LEFT => '╯',
        b if b == UP | DOWN | RIGHT => '├',
        b if b == UP | DOWN | LEFT => '┤',
        b if b == DOWN | LEFT | RIGHT => '┬',
        b if b == UP | LEFT | RIGHT => '┴',
        _ => '┼',
    };
    if !heavy {
        return light;
    }
    match light {
        '─' => '━',
        '│' => '┃',
        '╭' => '┏',
        '╮' => '┓',
        '╰' => '┗',
        '╯' => '┛',
        '├' => '┣',
        '┤' => '┫',
        '┬' => '┳',
        '┴' => '┻',
        _ => '╋',
    }
}
