//! Things drawn over the panes: help (from the key table), the command palette and confirmations.

use ratatui::Frame;
use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Clear, Paragraph, Wrap};

use super::common::fit;
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

/// Help lines, generated from the key table with the effective bindings.
pub fn help_lines(app: &App) -> Vec<Line<'static>> {
    let t = &app.theme;
    let mut out = Vec::new();
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
            Scope::In(ps) => {
                let names: Vec<&str> = ps.iter().map(|p| p.title()).collect();
                format!("  [{}]", names.join(", ").to_lowercase())
            }
        };
        out.push(Line::from(vec![
            Span::styled(
                fit(&keys, 16),
                Style::default().fg(t.key).add_modifier(Modifier::BOLD),
            ),
            Span::raw(e.help),
            Span::styled(scope, t.dimmed()),
        ]));
    }
    out.push(Line::from(""));
    out.push(Line::from(Span::styled("palette commands (:)", t.title())));
    for (name, _, help) in COMMANDS {
        out.push(Line::from(vec![
            Span::styled(fit(name, 16), Style::default().fg(t.key)),
            Span::raw(*help),
        ]));
    }
    out.push(Line::from(""));
    out.push(Line::from(Span::styled(
        "keys are rebound in the config file: [ui.keys] retry = \"x\"",
        t.dimmed(),
    )));
    out
}

pub fn help(app: &App, f: &mut Frame, scroll: u16) {
    let area = centered(f.area(), 84, f.area().height.saturating_sub(2));
    f.render_widget(Clear, area);
    let p = Paragraph::new(help_lines(app))
        .block(frame(app, "Keys · ↑↓ scroll · any other key closes"))
        .wrap(Wrap { trim: false })
        .scroll((scroll, 0));
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
            Span::styled(fit(c, 28), style),
            Span::styled(format!(" {help}"), t.dimmed()),
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
