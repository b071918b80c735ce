//! Pure views: `view(&App, &mut Frame)` draws everything from the state, nothing else.

mod agents;
mod branches;
pub mod common;
mod detail;
mod gates;
mod graph;
mod logs;
pub mod overlays;
mod runs;
mod status;
mod tree;

use ratatui::Frame;
use ratatui::style::{Modifier, Style};
use ratatui::text::Span;

use super::app::{App, Overlay};
use super::keymap::Pane;

pub fn view(app: &App, f: &mut Frame) {
    let areas = app.areas();
    f.render_widget(
        ratatui::widgets::Block::default().style(app.theme.base()),
        f.area(),
    );
    runs::draw(app, f, areas.runs);
    if app.tree {
        tree::draw(app, f, areas.graph);
    } else {
        graph::draw(app, f, areas.graph);
    }
    let tabs = areas.bottom.map(|_| tabs(app));
    if let Some(r) = areas.detail {
        detail::draw(app, f, r, tabs.clone());
    }
    if let Some(r) = areas.logs {
        logs::draw(app, f, r, tabs.clone());
    }
    if let Some(r) = areas.agents {
        agents::draw(app, f, r, tabs.clone());
    }
    if let Some(r) = areas.gates {
        gates::draw(app, f, r, tabs);
    }
    status::draw(app, f, areas.status);
    match &app.overlay {
        Overlay::Help { scroll } => overlays::help(app, f, *scroll),
        Overlay::Palette(p) => overlays::palette(app, f, p),
        Overlay::Confirm(c) => overlays::confirm(app, f, c),
        Overlay::None | Overlay::Prompt { .. } => {}
    }
}

/// How far a text pane (task, agents, gates) can scroll at the app's screen size: its text's
/// height (as `common::scroll_note` counts it) less the window's.
pub fn max_scroll(app: &App, pane: Pane) -> u16 {
    let Some(area) = app.areas().pane(pane) else {
        return 0;
    };
    let w = usize::from(area.width.saturating_sub(2));
    let (lines, wraps) = match (pane, app.run()) {
        (Pane::Detail, Some(run)) => match app.selected_task() {
            Some(t) => (detail::lines(app, run, t, w), true),
            None => return 0,
        },
        (Pane::Agents, _) => (agents::lines(app, w), false),
        (Pane::Gates, Some(run)) => (gates::lines(app, run), true),
        _ => return 0,
    };
    let total = common::text_height(&lines, w, wraps);
    let h = usize::from(area.height.saturating_sub(2));
    total.saturating_sub(h).min(usize::from(u16::MAX)) as u16
}

/// Narrow screens: the tab strip naming the pane below the graph and its siblings.
fn tabs(app: &App) -> Vec<Span<'static>> {
    let mut out = Vec::new();
    for (i, p) in [Pane::Detail, Pane::Logs, Pane::Agents, Pane::Gates]
        .into_iter()
        .enumerate()
    {
        if i > 0 {
            out.push(Span::styled(" │ ", app.theme.dimmed()));
        }
        let style = if p == app.bottom {
            app.theme.title().add_modifier(Modifier::UNDERLINED)
        } else {
            Style::default().fg(app.theme.dim)
        };
        let name = if p == app.bottom {
            format!("[{}]", p.title())
        } else {
            p.title().to_string()
        };
        out.push(Span::styled(name, style));
    }
    out
}
