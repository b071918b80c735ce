//! Things drawn over the panes: help (from the key table), the command palette and confirmations.

use ratatui::Frame;
use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Clear, Paragraph, Wrap};

use super::common::{cut_at_word, fit};
use crate::tui::app::{App, Confirm, PaletteInput};
use crate::tui::keymap::{Pane, Scope};
use crate::tui::palette::COMMANDS;

fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let [v] = Layout::vertical([Constraint::Length(h.min(area.height))])
        .flex(Flex::Center)
        .areas(area);
    let [r] = Layout::horizontal([Constraint::Length(w.min(area.width))])
        .flex(Flex::Center)
        .areas(v);
    r
}

fn frame<'a>(app: &App, title: &'a str) -> Block<'a> {
    Block::bordered()
        .border_type(BorderType::Rounded)
        .border_style(Style::default().fg(app.theme.border_focus))
        .title(Line::from(Span::styled(
            format!(" {title} "),
            app.theme.title(),
        )))
        .style(app.theme.base())
}

/// Width of the keys column in the help.
const KEYS_W: usize = 16;

/// Help lines, generated from the key table with the effective bindings, for a box `width`
/// columns wide inside: long descriptions wrap under themselves, not under the keys.
pub fn help_lines(app: &App, width: u16) -> Vec<Line<'static>> {
    let t = &app.theme;
    let text_w = usize::from(width).saturating_sub(KEYS_W).max(20);
    let mut out = Vec::new();
    let entry = |out: &mut Vec<Line<'static>>,
                 keys: String,
                 key_style: Style,
                 text: &str,
                 scope: String| {
        // (word, style, spaces before it): two spaces set the scope apart.
        let mut words: Vec<(String, Style, usize)> = text
            .split(' ')
            .map(|w| (w.to_string(), Style::default(), 1))
            .collect();
        // The scope stays in one piece.
        if !scope.is_empty() {
            words.push((scope, t.dimmed(), 2));
        }
        let mut rows: Vec<Vec<Span<'static>>> = vec![Vec::new()];
        let mut used = 0;
        for (w, style, gap) in words {
            let n = w.chars().count();
            if used > 0 && used + gap + n > text_w {
                rows.push(Vec::new());
                used = 0;
            }
            let Some(row) = rows.last_mut() else { break };
            if used > 0 {
                row.push(Span::styled(" ".repeat(gap), style));
                used += gap;
            }
            row.push(Span::styled(w, style));
            used += n;
        }
        for (i, row) in rows.into_iter().enumerate() {
            let lead = if i == 0 {
                Span::styled(fit(&keys, KEYS_W), key_style)
            } else {
                Span::raw(" ".repeat(KEYS_W))
            };
            let mut spans = vec![lead];
            spans.extend(row);
            out.push(Line::from(spans));
        }
    };
    let key_style = Style::default().fg(t.key).add_modifier(Modifier::BOLD);
    for (e, keys) in app.keymap.entries() {
        let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        let keys = if keys.is_empty() {
            "(unbound)".to_string()
        } else {
            keys.join(" ")
        };
        let scope = match e.scope {
            Scope::Global => String::new(),
            Scope::In(ps) if ps.len() == Pane::ALL.len() => String::new(),
            // Most panes: name the ones left out.
            Scope::In(ps) if ps.len() * 2 > Pane::ALL.len() => {
                let names: Vec<&str> = Pane::ALL
                    .iter()
                    .filter(|p| !ps.contains(p))
                    .map(|p| p.title())
                    .collect();
                format!("[not in {}]", names.join(", ").to_lowercase())
            }
            Scope::In(ps) => {
                let names: Vec<&str> = ps.iter().map(|p| p.title()).collect();
                format!("[{}]", names.join(", ").to_lowercase())
            }
        };
        entry(&mut out, keys, key_style, e.help, scope);
    }
    out.push(Line::from(""));
    out.push(Line::from(Span::styled("palette commands (:)", t.title())));
    for (name, _, help) in COMMANDS {
        entry(
            &mut out,
            name.to_string(),
            Style::default().fg(t.key),
            help,
            String::new(),
        );
    }
    out.push(Line::from(""));
    out.push(Line::from(Span::styled(
        "keys are rebound in the config file: [ui.keys] retry = \"x\"",
        t.dimmed(),
    )));
    out
}

fn help_area(full: Rect) -> Rect {
    centered(full, 84, full.height.saturating_sub(2))
}

/// How far the help can scroll at the app's screen size.
pub fn help_max_scroll(app: &App) -> u16 {
    let area = help_area(Rect::new(0, 0, app.size.0, app.size.1));
    let lines = help_lines(app, area.width.saturating_sub(2)).len() as u16;
    lines.saturating_sub(area.height.saturating_sub(2))
}

pub fn help(app: &App, f: &mut Frame, scroll: u16) {
    let area = help_area(f.area());
    f.render_widget(Clear, area);
    let lines = help_lines(app, area.width.saturating_sub(2));
    // Scrolling stops at the last page.
    let last = (lines.len() as u16).saturating_sub(area.height.saturating_sub(2));
    let p = Paragraph::new(lines)
        .block(frame(app, "Keys · ↑↓ scroll · any other key closes"))
        .scroll((scroll.min(last), 0));
    f.render_widget(p, area);
}

pub fn palette(app: &App, f: &mut Frame, p: &PaletteInput) {
    let t = &app.theme;
    let h = 3 + p.candidates.len() as u16;
    let full = f.area();
    let area = Rect::new(
        full.x + 2.min(full.width),
        full.y + 1.min(full.height),
        full.width.saturating_sub(4).min(80),
        h.min(full.height),
    );
    f.render_widget(Clear, area);
    let mut lines = vec![Line::from(vec![
        Span::styled(":", Style::default().fg(t.key).add_modifier(Modifier::BOLD)),
        Span::raw(p.text.clone()),
        Span::styled("▏", Style::default().fg(t.border_focus)),
    ])];
    lines.push(Line::from(Span::styled(
        "─".repeat(area.width.saturating_sub(2) as usize),
        t.dimmed(),
    )));
    // The candidates' column as wide as the longest; the help gets the rest, cut at a word.
    let cand_w = p
        .candidates
        .iter()
        .map(|c| c.chars().count())
        .max()
        .unwrap_or(0)
        .clamp(8, 40)
        + 2;
    let help_w = usize::from(area.width.saturating_sub(2)).saturating_sub(cand_w + 1);
    for (i, c) in p.candidates.iter().enumerate() {
        let style = if p.choice == Some(i) {
            t.selected()
        } else {
            Style::default().fg(t.fg)
        };
        let help = COMMANDS
            .iter()
            .find(|x| {
                c.trim_end() == x.0 || c.starts_with(&format!("{} ", x.0)) && c.ends_with(' ')
            })
            .map(|x| x.2)
            .unwrap_or("");
        lines.push(Line::from(vec![
            Span::styled(fit(c, cand_w), style),
            Span::styled(format!(" {}", cut_at_word(help, help_w)), t.dimmed()),
        ]));
    }
    f.render_widget(
        Paragraph::new(lines).block(frame(app, "Command · tab completes · enter runs")),
        area,
    );
}

pub fn confirm(app: &App, f: &mut Frame, c: &Confirm) {
    let t = &app.theme;
    let area = centered(f.area(), 60, 6);
    f.render_widget(Clear, area);
    let lines = vec![
        Line::from(Span::raw(c.question.clone())),
        Line::from(""),
        Line::from(vec![
            Span::styled("y", Style::default().fg(t.key).add_modifier(Modifier::BOLD)),
            Span::raw(" yes    "),
            Span::styled("n", Style::default().fg(t.key).add_modifier(Modifier::BOLD)),
            Span::raw("/esc no"),
        ]),
    ];
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: true })
            .block(frame(app, "Confirm")),
        area,
    );
}
