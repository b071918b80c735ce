//! The logs pane: the selected task's current attempt (or the run's engine log), live. Only the
//! lines that fit are laid out: from the bottom when following, from `top` otherwise.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use super::common::{clock, dim_span, pane_block, title_span};
use crate::model::{LogLine, LogStream};
use crate::tui::app::App;
use crate::tui::keymap::Pane;

pub fn draw(app: &App, f: &mut Frame, area: Rect, tabs: Option<Vec<Span<'static>>>) {
    let logs = &app.logs;
    let mut title = tabs.unwrap_or_else(|| vec![title_span(app, "Logs")]);
    if let (Some(k), Some(run)) = (&logs.key, app.run()) {
        match k.task {
            Some(t) => title.push(dim_span(
                app,
                format!(" · {} #{}", run.task_id(t), k.attempt),
            )),
            None => title.push(dim_span(app, " · engine log")),
        }
    }
    let mut flags = Vec::new();
    flags.push(if logs.follow {
        "following"
    } else {
        "paused: f follows"
    });
    if logs.wrap {
        flags.push("wrap");
    }
    if let Some(s) = &logs.search {
        title.push(Span::styled(
            format!(" · /{s}"),
            Style::default().fg(app.theme.warning),
        ));
    }
    title.push(dim_span(app, format!(" · {}", flags.join(" · "))));
    let block = pane_block(app, Pane::Logs, title);
    let inner = block.inner(area);
    if logs.key.is_none() || logs.lines.is_empty() {
        let why = if app.run().is_none() {
            "no run open"
        } else if logs.key.is_none() {
            if logs.engine {
                "no run"
            } else {
                "no attempt yet for this task"
            }
        } else if app.read_only() {
            "no output was kept for this attempt"
        } else {
            "no output yet"
        };
        f.render_widget(Paragraph::new(dim_span(app, why)).block(block), area);
        return;
    }
    let h = inner.height as usize;
    let w = inner.width.max(1) as usize;
    let n = logs.lines.len();
    let height = |l: &LogLine| -> usize {
        if !logs.wrap {
            return 1;
        }
        let len = l.line.chars().count() + if logs.timestamps { 9 } else { 0 } + 2;
        len.div_ceil(w).max(1)
    };
    let (start, end, skip) = if logs.follow || logs.top + 1 > n {
        let mut used = 0;
        let mut start = n;
        while start > 0 && used < h {
            start -= 1;
            used += height(&logs.lines[start]);
        }
        (start, n, used.saturating_sub(h))
    } else {
        let mut used = 0;
        let mut end = logs.top;
        while end < n && used < h {
            used += height(&logs.lines[end]);
            end += 1;
        }
        (logs.top, end, 0)
    };
    let needle = logs.search.as_ref().map(|s| s.to_lowercase());
    let lines: Vec<Line> = logs.lines[start..end]
        .iter()
        .map(|l| line(app, l, needle.as_deref()))
        .collect();
    let mut p = Paragraph::new(lines).block(block).scroll((skip as u16, 0));
    if logs.wrap {
        p = p.wrap(Wrap { trim: false });
    }
    f.render_widget(p, area);
}

fn line<'a>(app: &App, l: &'a LogLine, needle: Option<&str>) -> Line<'a> {
    let t = &app.theme;
    let mut spans = Vec::new();
    if app.logs.timestamps {
        spans.push(Span::styled(format!("{} ", clock(l.ts)), t.dimmed()));
    }
    let style = match l.stream {
        LogStream::Stdout => Style::default().fg(t.fg),
        LogStream::Stderr => Style::default().fg(t.warning),
        LogStream::System => Style::default().fg(t.info),
    };
    let marker = match l.stream {
        LogStream::Stdout => "  ",
        LogStream::Stderr => "! ",
        LogStream::System => "» ",
    };
    spans.push(Span::styled(marker, style.add_modifier(Modifier::DIM)));
    match needle {
        Some(n) if !n.is_empty() && l.line.is_ascii() => {
            let lower = l.line.to_ascii_lowercase();
            let mut at = 0;
            for (i, _) in lower.match_indices(n) {
                if i > at {
                    spans.push(Span::styled(&l.line[at..i], style));
                }
                spans.push(Span::styled(&l.line[i..i + n.len()], t.selected()));
                at = i + n.len();
            }
            if at < l.line.len() {
                spans.push(Span::styled(&l.line[at..], style));
            }
        }
        _ => spans.push(Span::styled(l.line.as_str(), style)),
    }
    Line::from(spans)
}
