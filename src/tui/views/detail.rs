//! Task detail: state and why, what it runs, where, every attempt, outputs, dependencies,
//! dependents and the gates that hold it.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use super::common::{
    bold, clock, dim_span, duration, pane_block, scroll_note, title_span, truncate,
};
use crate::engine::state::Run;
use crate::model::{AttemptOutcome, TaskIdx};
use crate::spec::{Action, Builtin};
use crate::tui::app::App;
use crate::tui::keymap::Pane;
use crate::tui::theme::task_icon;

pub fn draw(app: &App, f: &mut Frame, area: Rect, tabs: Option<Vec<Span<'static>>>) {
    let (Some(run), Some(t)) = (app.run(), app.selected_task()) else {
        let block = pane_block(
            app,
            Pane::Detail,
            tabs.unwrap_or_else(|| vec![title_span(app, "Task")]),
        );
        f.render_widget(
            Paragraph::new(dim_span(app, "no task selected")).block(block),
            area,
        );
        return;
    };
    let title = tabs.unwrap_or_else(|| vec![title_span(app, format!("Task {}", run.task_id(t)))]);
    let lines = lines(app, run, t, area.width.saturating_sub(2) as usize);
    let mut block = pane_block(app, Pane::Detail, title);
    if let Some(note) = scroll_note(app, &lines, true, area, app.detail_scroll) {
        block = block.title_bottom(note);
    }
    let p = Paragraph::new(lines)
        .block(block)
        .wrap(Wrap { trim: false })
        .scroll((app.detail_scroll, 0));
    f.render_widget(p, area);
}

fn action_text(a: &Action) -> String {
    match a {
        Action::Run(cmd) => format!("run: {cmd}"),
        Action::Prompt(p) => format!("prompt: {p}"),
        Action::Builtin(b) => match b {
            Builtin::Noop => "builtin: noop".into(),
            Builtin::Fail => "builtin: fail".into(),
            Builtin::Sleep(d) => format!("builtin: sleep {}", humantime::format_duration(*d)),
            Builtin::Echo(s) => format!("builtin: echo {s}"),
        },
    }
}

fn outcome(o: Option<AttemptOutcome>) -> &'static str {
    match o {
        None => "running",
        Some(AttemptOutcome::Succeeded) => "succeeded",
        Some(AttemptOutcome::Failed) => "failed",
        Some(AttemptOutcome::TimedOut) => "timed out",
        Some(AttemptOutcome::Cancelled) => "cancelled",
        Some(AttemptOutcome::Interrupted) => "interrupted",
    }
}

pub fn lines(app: &App, run: &Run, t: TaskIdx, width: usize) -> Vec<Line<'static>> {
    let th = &app.theme;
    let task = &run.tasks[t as usize];
    let spec = &run.workflow.tasks[t as usize];
    let label = |s: &str| Span::styled(format!("{s:<10}"), th.dimmed());
    let state_style = Style::default().fg(th.task(task.state));
    let mut out = vec![Line::from(vec![
        Span::styled(
            format!("{} {}", task_icon(task.state), spec.id),
            state_style.patch(bold()),
        ),
        Span::styled(format!("  {}", task.state), state_style),
    ])];
    if let Some(r) = &task.reason {
        out.push(Line::from(vec![
            label("why"),
            Span::styled(r.clone(), Style::default().fg(th.warning)),
        ]));
    }
    if let Some(at) = task.retry_at {
        out.push(Line::from(vec![
            label("retry in"),
            Span::raw(duration(at.saturating_sub(app.now))),
        ]));
    }
    out.push(Line::from(vec![
        label("does"),
        Span::raw(truncate(
            &action_text(&spec.action),
            width.saturating_sub(10).max(8),
        )),
    ]));
    let agent = task
        .last_agent()
        .map(|a| a.to_string())
        .unwrap_or_else(|| "–".into());
    let mut wants = Vec::new();
    if !spec.requires.is_empty() {
        wants.push(format!("needs capabilities {}", spec.requires.join(", ")));
    }
    if spec.approval {
        wants.push(if task.approved {
            "approved".into()
        } else {
            "needs approval".into()
        });
    }
    if spec.retry.attempts > 1 {
        wants.push(format!("{} attempts", spec.retry.attempts));
    }
    if let Some(to) = spec.timeout {
        wants.push(format!("timeout {}", humantime::format_duration(to)));
    }
    let mut agent_line = vec![label("agent"), Span::raw(agent)];
    if !wants.is_empty() {
        agent_line.push(dim_span(app, format!("  ({})", wants.join(", "))));
    }
    out.push(Line::from(agent_line));
    if let Some(f) = &spec.fanout {
        out.push(Line::from(vec![
            label("agents"),
            Span::raw(truncate(
                &super::branches::fanout_text(f),
                width.saturating_sub(10).max(8),
            )),
        ]));
    }

    out.push(Line::from(Span::styled("attempts", th.title())));
    if task.attempts.is_empty() {
        out.push(Line::from(dim_span(app, "  none yet")));
    }
    for a in task.attempts.iter().rev().take(10) {
        let start = a.started_at.unwrap_or(a.assigned_at);
        let took = a.finished_at.unwrap_or(app.now).saturating_sub(start);
        let colour = match a.outcome {
            None => th.running,
            Some(AttemptOutcome::Succeeded) => th.succeeded,
            Some(AttemptOutcome::Cancelled) => th.cancelled,
            _ => th.failed,
        };
        let mut spans = vec![
            Span::raw(format!("  #{} ", a.number)),
            Span::styled(
                format!("{:<9}", outcome(a.outcome)),
                Style::default().fg(colour),
            ),
            dim_span(app, format!(" {}", clock(start))),
            Span::raw(format!(" {:>6}", duration(took))),
        ];
        if let Some(code) = a.exit_code {
            spans.push(dim_span(app, format!(" exit {code}")));
        }
        spans.push(Span::raw(format!(" {}", a.agent)));
        out.push(Line::from(spans));
        if !a.error.is_empty() && a.outcome != Some(AttemptOutcome::Cancelled) {
            out.push(Line::from(Span::styled(
                format!("     {}", a.error.trim()),
                Style::default().fg(th.failed),
            )));
        }
    }
    out.extend(super::branches::lines(app, task, width));
    if !task.outputs.is_empty() {
        out.push(Line::from(Span::styled("outputs", th.title())));
        for (k, v) in &task.outputs {
            let v = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            out.push(Line::from(vec![
                Span::raw(format!("  {k} = ")),
                Span::styled(v, Style::default().fg(th.info)),
            ]));
        }
    }
    let deps = |title: &'static str, list: &[TaskIdx], out: &mut Vec<Line<'static>>| {
        if list.is_empty() {
            return;
        }
        let mut spans = vec![Span::styled(format!("{title} "), th.title())];
        for (i, d) in list.iter().take(30).enumerate() {
            if i > 0 {
                spans.push(Span::raw(" "));
            }
            let s = run.tasks[*d as usize].state;
            spans.push(Span::styled(
                format!("{} {}", task_icon(s), run.task_id(*d)),
                Style::default().fg(th.task(s)),
            ));
        }
        if list.len() > 30 {
            spans.push(dim_span(app, format!(" … and {} more", list.len() - 30)));
        }
        out.push(Line::from(spans));
    };
    deps("needs", &spec.needs, &mut out);
    deps("needed by", &run.index.dependents[t as usize], &mut out);
    for g in &run.index.gates_of[t as usize] {
        let gate = &run.gates[*g as usize];
        out.push(Line::from(vec![
            Span::styled("gate ", th.title()),
            Span::raw(run.workflow.gates[*g as usize].id.clone()),
            Span::styled(
                format!(" {}", gate.state.as_str()),
                Style::default().fg(th.gate(gate.state)),
            ),
        ]));
    }
    out
}
