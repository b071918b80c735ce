//! Task detail of a multi-agent task: its agents and strategy, each branch of the latest
//! multi-agent attempt (agent, outcome, outputs or error), how it was resolved and where the
//! agents disagreed.

use ratatui::style::Style;
use ratatui::text::{Line, Span};
use serde_json::{Map, Value};

use super::common::{dim_span, truncate};
use crate::engine::state::Task;
use crate::model::AttemptOutcome;
use crate::spec::{Fanout, FanoutAgents, Resolve};
use crate::tui::app::App;

/// `3 agents, majority on verdict` or `claude, codex; judge referee`.
pub fn fanout_text(f: &Fanout) -> String {
    let who = match &f.agents {
        FanoutAgents::Count(n) => format!("{n} agents"),
        FanoutAgents::Named(v) => v.join(", "),
    };
    let how = match &f.resolve {
        Resolve::First => "first success wins".to_string(),
        Resolve::Merge => "merge outputs".to_string(),
        Resolve::Majority { field } => format!("majority on {field}"),
        Resolve::Judge { agent, .. } => format!("judge {agent}"),
    };
    format!("{who}; {how}")
}

fn short(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn outputs_text(m: &Map<String, Value>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k}={}", short(v)))
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn lines(app: &App, task: &Task, width: usize) -> Vec<Line<'static>> {
    let th = &app.theme;
    let mut out = Vec::new();
    let Some(a) = task.attempts.iter().rev().find(|a| !a.branches.is_empty()) else {
        return out;
    };
    out.push(Line::from(Span::styled(
        format!("branches of attempt #{}", a.number),
        th.title(),
    )));
    let name_w = a
        .branches
        .iter()
        .map(|b| b.agent.chars().count())
        .max()
        .unwrap_or(0)
        .min(16);
    let winner = a.resolution.as_ref().and_then(|r| r.winner.clone());
    for b in &a.branches {
        let (word, colour) = match b.outcome {
            None => ("running", th.running),
            Some(AttemptOutcome::Succeeded) => ("succeeded", th.succeeded),
            Some(AttemptOutcome::Cancelled) => ("cancelled", th.cancelled),
            Some(AttemptOutcome::Interrupted) => ("interrupted", th.cancelled),
            Some(AttemptOutcome::TimedOut) => ("timed out", th.failed),
            Some(AttemptOutcome::Failed) => ("failed", th.failed),
        };
        let mark = if winner.as_deref() == Some(&*b.agent) {
            "★"
        } else if b.judge {
            "⚖"
        } else {
            " "
        };
        let head = format!("  {mark} {:<name_w$} ", truncate(&b.agent, name_w));
        let used = head.chars().count() + 10;
        let detail = if b.outcome == Some(AttemptOutcome::Succeeded) {
            outputs_text(&b.outputs)
        } else {
            b.error.lines().next().unwrap_or("").to_string()
        };
        let detail_style = if matches!(
            b.outcome,
            Some(AttemptOutcome::Failed | AttemptOutcome::TimedOut)
        ) {
            Style::default().fg(th.failed)
        } else {
            Style::default().fg(th.info)
        };
        out.push(Line::from(vec![
            Span::raw(head),
            Span::styled(format!("{word:<10}"), Style::default().fg(colour)),
            Span::styled(
                truncate(&detail, width.saturating_sub(used).max(8)),
                detail_style,
            ),
        ]));
    }
    if let Some(r) = &a.resolution {
        let colour = if r.ok { th.succeeded } else { th.failed };
        out.push(Line::from(vec![
            Span::styled(format!("resolved  {}: ", r.strategy), th.title()),
            // Wrapped, not cut: the verdict is what the operator came for.
            Span::styled(r.summary.clone(), Style::default().fg(colour)),
        ]));
        for c in &r.conflicts {
            let values = c
                .values
                .iter()
                .map(|v| format!("{}={}", v.agent, short(&v.value)))
                .collect::<Vec<_>>()
                .join(" ");
            let kept = match &c.kept {
                Some(k) => format!(" → kept {k}"),
                None => " → none kept".into(),
            };
            let text = format!("{}: {values}{kept}", c.field);
            out.push(Line::from(vec![
                Span::styled("conflict  ", Style::default().fg(th.warning)),
                Span::styled(text, Style::default().fg(th.warning)),
            ]));
        }
    } else if a.outcome.is_none() {
        out.push(Line::from(dim_span(
            app,
            "  resolving when the branches are done",
        )));
    }
    out
}
