//! Small pieces shared by the views: pane frames, durations, bars, truncation.

use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType};

use crate::engine::state::Run;
use crate::model::{Millis, TaskState};
use crate::tui::app::App;
use crate::tui::keymap::Pane;

/// Rows `lines` take in a pane whose inside is `w` wide: one each, or, when the pane wraps, as
/// many as their width needs (by characters: a close estimate of word wrapping).
pub fn text_height(lines: &[Line], w: usize, wraps: bool) -> usize {
    if !wraps {
        return lines.len();
    }
    lines
        .iter()
        .map(|l| l.width().div_ceil(w.max(1)).max(1))
        .sum()
}

/// The bottom-border note of a scrolling pane: `↓ more` while text goes on below the window,
/// `↑` once scrolled.
pub fn scroll_note(
    app: &App,
    lines: &[Line],
    wraps: bool,
    area: Rect,
    scroll: u16,
) -> Option<Line<'static>> {
    let w = usize::from(area.width.saturating_sub(2));
    let h = usize::from(area.height.saturating_sub(2));
    let below = text_height(lines, w, wraps) > usize::from(scroll) + h;
    let text = match (scroll > 0, below) {
        (_, true) if scroll > 0 => " ↑ ↓ more ",
        (_, true) => " ↓ more ",
        (true, false) => " ↑ ",
        (false, false) => return None,
    };
    Some(Line::from(Span::styled(text, app.theme.dimmed())).right_aligned())
}

/// A pane's border and title, highlighted when it has the focus.
pub fn pane_block<'a>(app: &App, pane: Pane, title: Vec<Span<'a>>) -> Block<'a> {
    let focused = app.focus == pane;
    let t = &app.theme;
    let mut spans = vec![Span::raw(" ")];
    spans.extend(title);
    spans.push(Span::raw(" "));
    Block::bordered()
        .border_type(if focused {
            BorderType::Thick
        } else {
            BorderType::Rounded
        })
        .border_style(t.border(focused))
        .title(Line::from(spans))
        .style(t.base())
}

pub fn title_span<'a>(app: &App, s: impl Into<std::borrow::Cow<'a, str>>) -> Span<'a> {
    Span::styled(s, app.theme.title())
}

pub fn dim_span<'a>(app: &App, s: impl Into<std::borrow::Cow<'a, str>>) -> Span<'a> {
    Span::styled(s, app.theme.dimmed())
}

/// `850ms`, `4.2s`, `3m07s`, `2h05m`.
pub fn duration(ms: Millis) -> String {
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else if ms < 3_600_000 {
        format!("{}m{:02}s", ms / 60_000, ms / 1000 % 60)
    } else {
        format!("{}h{:02}m", ms / 3_600_000, ms / 60_000 % 60)
    }
}

/// `HH:MM:SS` (UTC) of a timestamp.
pub fn clock(ts: Millis) -> String {
    let (_, _, _, h, m, s) = crate::model::civil_from_unix((ts / 1000) as i64);
    format!("{h:02}:{m:02}:{s:02}")
}

pub fn run_elapsed(run: &Run, now: Millis) -> Millis {
    run.finished_at
        .unwrap_or(now)
        .saturating_sub(run.submitted_at)
}

/// Finished tasks per second (or per minute when slow) over the run so far.
pub fn throughput(done: u32, elapsed: Millis) -> String {
    if elapsed == 0 || done == 0 {
        return "–".into();
    }
    let per_s = f64::from(done) * 1000.0 / elapsed as f64;
    if per_s >= 100.0 {
        format!("{per_s:.0}/s")
    } else if per_s >= 1.0 {
        format!("{per_s:.1}/s")
    } else {
        format!("{:.1}/m", per_s * 60.0)
    }
}

/// A bar of `width` cells, `done` of `total` filled.
pub fn bar(done: u32, total: u32, width: usize) -> (String, String) {
    let filled = if total == 0 {
        0
    } else {
        (done as usize * width).div_ceil(total as usize).min(width)
    };
    ("█".repeat(filled), "░".repeat(width - filled))
}

/// Cuts `s` to `w` characters, ending in `…` when cut.
pub fn truncate(s: &str, w: usize) -> String {
    if s.chars().count() <= w {
        return s.to_string();
    }
    if w == 0 {
        return String::new();
    }
    let mut out: String = s.chars().take(w - 1).collect();
    out.push('…');
    out
}

/// Pads or cuts `s` to exactly `w` characters.
pub fn fit(s: &str, w: usize) -> String {
    let t = truncate(s, w);
    let n = t.chars().count();
    format!("{t}{}", " ".repeat(w.saturating_sub(n)))
}

/// Compact per-state counts of a run: `✓7 ✗1 ▶2`.
pub fn counts<'a>(app: &App, run: &Run) -> Vec<Span<'a>> {
    let mut out = Vec::new();
    for s in [
        TaskState::Succeeded,
        TaskState::Running,
        TaskState::Failed,
        TaskState::WaitingApproval,
        TaskState::Paused,
        TaskState::RetryWait,
        TaskState::Blocked,
        TaskState::Skipped,
        TaskState::Cancelled,
    ] {
        let n = run.count(s);
        if n > 0 {
            if !out.is_empty() {
                out.push(Span::raw(" "));
            }
            out.push(Span::styled(
                format!("{}{n}", crate::tui::theme::task_icon(s)),
                Style::default().fg(app.theme.task(s)),
            ));
        }
    }
    out
}

pub fn bold() -> Style {
    Style::default().add_modifier(Modifier::BOLD)
}

/// Per-state counts of some tasks, compact like `counts`.
pub fn counts_of<'a>(app: &App, states: impl Iterator<Item = TaskState>) -> Vec<Span<'a>> {
    let mut n = [0u32; 13];
    for s in states {
        n[s as usize] += 1;
    }
    let mut out = Vec::new();
    for s in TaskState::ALL {
        if n[s as usize] > 0 {
            if !out.is_empty() {
                out.push(Span::raw(" "));
            }
            out.push(Span::styled(
                format!("{}{}", crate::tui::theme::task_icon(s), n[s as usize]),
                Style::default().fg(app.theme.task(s)),
            ));
        }
    }
    out
}

/// `text` if it fits in `w` characters, else cut at the last word that fits, with `…`.
pub fn cut_at_word(text: &str, w: usize) -> String {
    if text.chars().count() <= w {
        return text.to_string();
    }
    if w == 0 {
        return String::new();
    }
    let head: String = text.chars().take(w - 1).collect();
    let cut = match head.rfind(' ') {
        Some(i) if i >= head.len() / 2 => head[..i].trim_end_matches([' ', '·', ',', ';', ':']),
        _ => head.as_str(),
    };
    format!("{cut}…")
}
