//! Agents: kind, capabilities, slots used of total, success rate, a sparkline of recent results
//! and what each is running now; a down agent says why (it gets no work meanwhile).

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::common::{dim_span, fit, pane_block, scroll_note, title_span, truncate};
use crate::model::AgentHealth;
use crate::tui::app::App;
use crate::tui::keymap::Pane;

pub fn draw(app: &App, f: &mut Frame, area: Rect, tabs: Option<Vec<Span<'static>>>) {
    let title = tabs.unwrap_or_else(|| {
        vec![title_span(
            app,
            format!("Agents ({})", app.mirror.agents.len()),
        )]
    });
    let block = pane_block(app, Pane::Agents, title);
    let lines = lines(app, block.inner(area).width as usize);
    let scroll = app.side_scroll_for(Pane::Agents);
    let block = match scroll_note(app, &lines, false, area, scroll) {
        Some(note) => block.title_bottom(note),
        None => block,
    };
    f.render_widget(Paragraph::new(lines).block(block).scroll((scroll, 0)), area);
}

/// The pane's text for an inner width of `width`.
pub fn lines(app: &App, width: usize) -> Vec<Line<'static>> {
    let t = &app.theme;
    let spark_w = if width >= 70 { 16 } else { 8 };
    let mut lines = vec![Line::from(dim_span(
        app,
        format!(
            "{} {} {} {} {} {}",
            fit("AGENT", 12),
            fit("KIND", 7),
            fit("SLOTS", 9),
            fit("OK%", 4),
            fit("RECENT", spark_w),
            "NOW"
        ),
    ))];
    for a in app.mirror.agents.values() {
        let used = a.slots_used;
        let total = a.spec.slots;
        let slot_style = Style::default().fg(if used == 0 {
            t.dim
        } else if used >= total {
            t.warning
        } else {
            t.running
        });
        let slots = format!(
            "{}{} {used}/{total}",
            "■".repeat(used.min(4) as usize),
            "□".repeat(total.min(4).saturating_sub(used.min(4)) as usize)
        );
        let finished = a.succeeded + a.failed;
        let rate = if finished == 0 {
            "–".to_string()
        } else {
            format!("{:.0}", a.success_ema * 100.0)
        };
        let rate_style = Style::default().fg(if finished == 0 {
            t.dim
        } else if a.success_ema >= 0.8 {
            t.succeeded
        } else if a.success_ema >= 0.5 {
            t.warning
        } else {
            t.failed
        });
        let mut spans = vec![
            Span::raw(format!("{} ", fit(&a.name, 12))),
            Span::styled(format!("{} ", fit(a.spec.kind.as_str(), 7)), t.dimmed()),
            Span::styled(format!("{} ", fit(&slots, 9)), slot_style),
            Span::styled(format!("{} ", fit(&rate, 4)), rate_style),
        ];
        let recent = &a.recent[a.recent.len().saturating_sub(spark_w)..];
        for (_, ok) in recent {
            spans.push(Span::styled(
                if *ok { "▆" } else { "▂" },
                Style::default().fg(if *ok { t.succeeded } else { t.failed }),
            ));
        }
        spans.push(Span::raw(" ".repeat(spark_w - recent.len() + 1)));
        let now: Vec<&str> = app
            .run()
            .map(|run| {
                run.tasks
                    .iter()
                    .enumerate()
                    .filter(|(_, x)| {
                        // Its own attempt, or a branch of a multi-agent attempt.
                        x.open_attempt().is_some_and(|o| {
                            o.agent == a.name
                                || o.branches
                                    .iter()
                                    .any(|b| b.outcome.is_none() && b.agent == a.name)
                        })
                    })
                    .map(|(i, _)| run.task_id(i as u32))
                    .take(4)
                    .collect()
            })
            .unwrap_or_default();
        let rest = width.saturating_sub(12 + 8 + 10 + 5 + spark_w + 1);
        let (state, state_style) = match &a.health {
            AgentHealth::Down(_) if now.is_empty() => ("down".to_string(), t.failed),
            AgentHealth::Probing if now.is_empty() => ("probing…".to_string(), t.dim),
            _ => (now.join(", "), t.running),
        };
        spans.push(Span::styled(
            truncate(&state, rest),
            Style::default().fg(state_style),
        ));
        lines.push(Line::from(spans));
        if let AgentHealth::Down(why) = &a.health {
            lines.push(Line::from(Span::styled(
                truncate(&format!("  down: {why}"), width),
                Style::default().fg(t.failed),
            )));
        }
        if !a.spec.capabilities.is_empty() && width >= 40 {
            lines.push(Line::from(dim_span(
                app,
                format!(
                    "  can: {}",
                    truncate(&a.spec.capabilities.join(", "), width.saturating_sub(8))
                ),
            )));
        }
    }
    lines
}
