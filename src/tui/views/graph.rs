//! The task graph: levels as columns of boxes, edges drawn with box characters between them,
//! boxes coloured by state, the critical path in heavy lines. Only the visible window of the
//! layout is looked at.

use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::Span;
use ratatui::widgets::Paragraph;

use super::common::{dim_span, fit, pane_block, title_span};
use crate::engine::state::Run;
use crate::tui::app::App;
use crate::tui::dag_layout::{DagLayout, GAP_W, SLOT_H, Slot};
use crate::tui::keymap::Pane;
use crate::tui::layout::inner;
use crate::tui::theme::task_icon;

const UP: u8 = 1;
const DOWN: u8 = 2;
const LEFT: u8 = 4;
const RIGHT: u8 = 8;
const CRIT: u8 = 16;

pub fn draw(app: &App, f: &mut Frame, area: Rect) {
    let (Some(run), Some(layout)) = (app.run(), app.layout()) else {
        let block = pane_block(app, Pane::Graph, vec![title_span(app, "Graph")]);
        f.render_widget(
            Paragraph::new(dim_span(app, "waiting for a run…")).block(block),
            area,
        );
        return;
    };
    let sel = app.selected_task();
    let mut title = vec![title_span(app, "Graph")];
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

/// Draws the layout window at `app.graph_offset` into `view`.
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
    let (ox, oy) = app.graph_offset;
    let (vw, vh) = (u32::from(view.width), u32::from(view.height));
    let cols = layout.visible_columns(ox, ox + vw);
    let s0 = oy / SLOT_H;
    let s1 = (oy + vh) / SLOT_H + 1;

    // Edges first, into a grid of line bits; boxes are drawn over them.
    let mut grid = vec![0u8; (vw * vh) as usize];
    let mut mark = |x: i64, y: i64, bits: u8| {
        if x >= ox as i64 && y >= oy as i64 && x < (ox + vw) as i64 && y < (oy + vh) as i64 {
            let i = ((y - oy as i64) as u32 * vw + (x - ox as i64) as u32) as usize;
            grid[i] |= bits;
        }
    };
    let first_gap = cols.start.saturating_sub(1);
    let mut arrows = Vec::new();
    for g in first_gap..cols.end.min(layout.gaps.len()) {
        let left = &layout.columns[g];
        let right = &layout.columns[g + 1];
        let x_from = i64::from(left.x + left.width);
        let x_to = i64::from(right.x) - 1;
        let mid = x_from + i64::from(GAP_W / 2);
        for seg in layout.visible_segments(g, s0, s1) {
            let crit = if seg.critical { CRIT } else { 0 };
            let ya = i64::from(seg.from * SLOT_H + 1);
            let yb = i64::from(seg.to * SLOT_H + 1);
            // Left leg: from the source box to the middle.
            for x in x_from..=mid {
                let mut b = crit | RIGHT | LEFT;
                if x == mid {
                    b &= !RIGHT;
                }
                mark(x, ya, b);
            }
            // Vertical leg (clipped to the window).
            let (top, bottom) = (ya.min(yb), ya.max(yb));
            let lo = top.max(i64::from(oy) - 1);
            let hi = bottom.min(i64::from(oy + vh));
            for y in lo..=hi {
                let mut b = crit;
                if y > top {
                    b |= UP;
                }
                if y < bottom {
                    b |= DOWN;
                }
                if b != crit {
                    mark(mid, y, b);
                }
            }
            // Right leg: from the middle into the target box.
            for x in mid..=x_to {
                let mut b = crit | RIGHT | LEFT;
                if x == mid {
                    b &= !LEFT;
                }
                mark(x, yb, b);
            }
            if matches!(right.slots.get(seg.to as usize), Some(Slot::Task(_))) {
                arrows.push((x_to, yb, seg.critical));
            }
        }
    }
    let t = &app.theme;
    let edge = Style::default().fg(t.edge);
    let crit_edge = Style::default().fg(t.critical);
    for y in 0..vh {
        for x in 0..vw {
            let b = grid[(y * vw + x) as usize];
            if b & !CRIT == 0 {
                continue;
            }
            let c = line_char(b & !CRIT, b & CRIT != 0);
            put(
                buf,
                view,
                x,
                y,
                c,
                if b & CRIT != 0 { crit_edge } else { edge },
            );
        }
    }
    for (x, y, crit) in arrows {
        if x >= i64::from(ox)
            && y >= i64::from(oy)
            && x < i64::from(ox + vw)
            && y < i64::from(oy + vh)
        {
            put(
                buf,
                view,
                (x - i64::from(ox)) as u32,
                (y - i64::from(oy)) as u32,
                '▸',
                if crit { crit_edge } else { edge },
            );
        }
    }

    // Boxes and pass-through lines of the visible columns and slots.
    for c in cols {
        let col = &layout.columns[c];
        let last = (s1 as usize).min(col.slots.len());
        for s in (s0 as usize).min(last)..last {
            let y = s as u32 * SLOT_H;
            match col.slots[s] {
                Slot::Through { critical } => {
                    let style = if critical { crit_edge } else { edge };
                    let ch = if critical { '━' } else { '─' };
                    for x in col.x..col.x + col.width {
                        put_abs(buf, view, (ox, oy), x, y + 1, ch, style);
                    }
                }
                Slot::Task(task) => draw_box(
                    app,
                    run,
                    layout,
                    task,
                    sel == Some(task),
                    (col.x, y, col.width),
                    (ox, oy),
                    view,
                    buf,
                ),
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn draw_box(
    app: &App,
    run: &Run,
    layout: &DagLayout,
    task: u32,
    selected: bool,
    (x, y, w): (u32, u32, u32),
    origin: (u32, u32),
    view: Rect,
    buf: &mut Buffer,
) {
    let t = &app.theme;
    let state = run.tasks[task as usize].state;
    let colour = t.task(state);
    let critical = layout.critical[task as usize];
    let matches = app.matches_filter(run, task);
    let mut border = Style::default().fg(if matches { colour } else { t.dim });
    if selected {
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
        &format!("{} {}", task_icon(state), run.task_id(task)),
        (w - 2) as usize,
    );
    let mut style = Style::default().fg(if matches { colour } else { t.dim });
    if selected {
        style = t.selected();
    } else if matches && !app.filter.is_empty() {
        style = style.add_modifier(Modifier::BOLD);
    }
    for (i, ch) in label.chars().enumerate() {
        put_abs(buf, view, origin, x + 1 + i as u32, y + 1, ch, style);
    }
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

fn line_char(bits: u8, heavy: bool) -> char {
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
