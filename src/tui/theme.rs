//! Colour themes as data: TOML files. Built-ins (`themes/*.toml`) are compiled in; a user theme in
//! `<config dir>/themes/NAME.toml` is layered over the dark one, so it may name only what it
//! changes. A bad theme is an error message, never a panic.

use std::path::PathBuf;
use std::str::FromStr;

use ratatui::style::{Color, Modifier, Style};

use crate::model::{GateState, RunState, TaskState};

/// Built-in themes, in the order `:theme` completion offers them.
pub const BUILT_IN: [(&str, &str); 4] = [
    ("dark", include_str!("../../themes/dark.toml")),
    ("light", include_str!("../../themes/light.toml")),
    (
        "high-contrast",
        include_str!("../../themes/high-contrast.toml"),
    ),
    ("ansi16", include_str!("../../themes/ansi16.toml")),
];

#[derive(Debug, Clone, PartialEq)]
pub struct Theme {
    pub name: String,
    pub fg: Color,
    pub bg: Color,
    pub dim: Color,
    pub border: Color,
    pub border_focus: Color,
    pub title: Color,
    pub selection_fg: Color,
    pub selection_bg: Color,
    pub critical: Color,
    pub edge: Color,
    pub status_fg: Color,
    pub status_bg: Color,
    pub key: Color,
    pub info: Color,
    pub warning: Color,
    pub error: Color,
    pub pending: Color,
    pub ready: Color,
    pub running: Color,
    pub validating: Color,
    pub succeeded: Color,
    pub failed: Color,
    pub skipped: Color,
    pub cancelled: Color,
    pub paused: Color,
    pub waiting: Color,
    pub retrying: Color,
    pub blocked: Color,
}

impl Default for Theme {
    fn default() -> Self {
        // The compiled-in dark theme is checked by a test, so this cannot fail in practice; if it
        // ever did, plain terminal colours are still usable.
        Theme::parse(BUILT_IN[0].1, None).unwrap_or_else(|_| Theme::plain())
    }
}

impl Theme {
    /// Every colour the terminal's default: the last resort.
    fn plain() -> Theme {
        let c = Color::Reset;
        Theme {
            name: "plain".into(),
            fg: c,
            bg: c,
            dim: c,
            border: c,
            border_focus: c,
            title: c,
            selection_fg: c,
            selection_bg: c,
            critical: c,
            edge: c,
            status_fg: c,
            status_bg: c,
            key: c,
            info: c,
            warning: c,
            error: c,
            pending: c,
            ready: c,
            running: c,
            validating: c,
            succeeded: c,
            failed: c,
            skipped: c,
            cancelled: c,
            paused: c,
            waiting: c,
            retrying: c,
            blocked: c,
        }
    }

    /// Parses a theme file over `base` (or over every colour `reset` when `None`, in which case
    /// every colour must be given).
    pub fn parse(text: &str, base: Option<&Theme>) -> Result<Theme, String> {
        let table: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut theme = base.cloned().unwrap_or_else(Theme::plain);
        let mut missing: Vec<&str> = Vec::new();
        for name in FIELDS {
            match table.get(*name) {
                Some(toml::Value::String(s)) => {
                    let c = Color::from_str(s).map_err(|_| {
                        format!("`{name}`: `{s}` is not a colour (try `red`, `#ff8800` or `203`)")
                    })?;
                    *theme.slot(name) = c;
                }
                Some(_) => return Err(format!("`{name}` must be a string")),
                None if base.is_none() => missing.push(name),
                None => {}
            }
        }
        for key in table.keys() {
            if key != "name" && !FIELDS.contains(&key.as_str()) {
                return Err(format!(
                    "unknown key `{key}` (known: name, {})",
                    FIELDS.join(", ")
                ));
            }
        }
        if !missing.is_empty() {
            return Err(format!("missing colours: {}", missing.join(", ")));
        }
        if let Some(toml::Value::String(n)) = table.get("name") {
            theme.name = n.clone();
        }
        Ok(theme)
    }

    /// A built-in theme, or `<config dir>/themes/NAME.toml` layered over the dark theme.
    pub fn load(name: &str) -> Result<Theme, String> {
        if let Some((_, text)) = BUILT_IN.iter().find(|(n, _)| *n == name) {
            return Theme::parse(text, None).map_err(|e| format!("theme `{name}`: {e}"));
        }
        let Some(path) = user_theme_path(name) else {
            return Err(format!(
                "no theme `{name}` (built in: {})",
                names().join(", ")
            ));
        };
        let text = std::fs::read_to_string(&path).map_err(|_| {
            format!(
                "no theme `{name}` (built in: {}; or put {} there)",
                names().join(", "),
                path.display()
            )
        })?;
        let mut t = Theme::parse(&text, Some(&Theme::default()))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if t.name == "dark" {
            t.name = name.to_string();
        }
        Ok(t)
    }

    fn slot(&mut self, name: &str) -> &mut Color {
        match name {
            "fg" => &mut self.fg,
            "bg" => &mut self.bg,
            "dim" => &mut self.dim,
            "border" => &mut self.border,
            "border_focus" => &mut self.border_focus,
            "title" => &mut self.title,
            "selection_fg" => &mut self.selection_fg,
            "selection_bg" => &mut self.selection_bg,
            "critical" => &mut self.critical,
            "edge" => &mut self.edge,
            "status_fg" => &mut self.status_fg,
            "status_bg" => &mut self.status_bg,
            "key" => &mut self.key,
            "info" => &mut self.info,
            "warning" => &mut self.warning,
            "error" => &mut self.error,
            "pending" => &mut self.pending,
            "ready" => &mut self.ready,
            "running" => &mut self.running,
            "validating" => &mut self.validating,
            "succeeded" => &mut self.succeeded,
            "failed" => &mut self.failed,
            "skipped" => &mut self.skipped,
            "cancelled" => &mut self.cancelled,
            "paused" => &mut self.paused,
            "waiting" => &mut self.waiting,
            "retrying" => &mut self.retrying,
            _ => &mut self.blocked,
        }
    }

    pub fn base(&self) -> Style {
        Style::default().fg(self.fg).bg(self.bg)
    }

    pub fn dimmed(&self) -> Style {
        Style::default().fg(self.dim)
    }

    pub fn selected(&self) -> Style {
        Style::default()
            .fg(self.selection_fg)
            .bg(self.selection_bg)
            .add_modifier(Modifier::BOLD)
    }

    pub fn border(&self, focused: bool) -> Style {
        if focused {
            Style::default().fg(self.border_focus)
        } else {
            Style::default().fg(self.border)
        }
    }

    pub fn title(&self) -> Style {
        Style::default().fg(self.title).add_modifier(Modifier::BOLD)
    }

    pub fn task(&self, s: TaskState) -> Color {
        match s {
            TaskState::Pending => self.pending,
            TaskState::Ready | TaskState::Assigned => self.ready,
            TaskState::Running => self.running,
            TaskState::Validating => self.validating,
            TaskState::Succeeded => self.succeeded,
            TaskState::Failed => self.failed,
            TaskState::Skipped => self.skipped,
            TaskState::Cancelled => self.cancelled,
            TaskState::Paused => self.paused,
            TaskState::WaitingApproval => self.waiting,
            TaskState::RetryWait => self.retrying,
            TaskState::Blocked => self.blocked,
        }
    }

    pub fn run(&self, s: RunState) -> Color {
        match s {
            RunState::Pending => self.pending,
            RunState::Running => self.running,
            RunState::Paused => self.paused,
            RunState::Succeeded => self.succeeded,
            RunState::Failed => self.failed,
            RunState::Cancelled => self.cancelled,
        }
    }

    pub fn gate(&self, s: GateState) -> Color {
        match s {
            GateState::Pending => self.pending,
            GateState::Checking => self.running,
            GateState::Passed => self.succeeded,
            GateState::Failed => self.failed,
            GateState::Warned => self.warning,
            GateState::Skipped => self.skipped,
        }
    }
}

const FIELDS: &[&str] = &[
    "fg",
    "bg",
    "dim",
    "border",
    "border_focus",
    "title",
    "selection_fg",
    "selection_bg",
    "critical",
    "edge",
    "status_fg",
    "status_bg",
    "key",
    "info",
    "warning",
    "error",
    "pending",
    "ready",
    "running",
    "validating",
    "succeeded",
    "failed",
    "skipped",
    "cancelled",
    "paused",
    "waiting",
    "retrying",
    "blocked",
];

fn user_theme_path(name: &str) -> Option<PathBuf> {
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        return None;
    }
    let dir = crate::paths::config_file()?.parent()?.join("themes");
    Some(dir.join(format!("{name}.toml")))
}

/// Theme names to offer: built-ins, then the user's own.
pub fn names() -> Vec<String> {
    let mut out: Vec<String> = BUILT_IN.iter().map(|(n, _)| n.to_string()).collect();
    if let Some(dir) = crate::paths::config_file()
        .and_then(|p| p.parent().map(|d| d.join("themes")))
        .and_then(|d| std::fs::read_dir(d).ok())
    {
        for e in dir.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "toml")
                && let Some(stem) = p.file_stem().and_then(|s| s.to_str())
                && !out.iter().any(|n| n == stem)
            {
                out.push(stem.to_string());
            }
        }
    }
    out
}

/// State icons shared by every view (plain Unicode that every terminal font has).
pub fn task_icon(s: TaskState) -> &'static str {
    match s {
        TaskState::Pending => "·",
        TaskState::Ready => "○",
        TaskState::Assigned => "◔",
        TaskState::Running => "▶",
        TaskState::Validating => "◑",
        TaskState::Succeeded => "✓",
        TaskState::Failed => "✗",
        TaskState::Skipped => "⊘",
        TaskState::Cancelled => "■",
        TaskState::Paused => "‖",
        TaskState::WaitingApproval => "?",
        TaskState::RetryWait => "↻",
        TaskState::Blocked => "⊗",
    }
}

pub fn run_icon(s: RunState) -> &'static str {
    match s {
        RunState::Pending => "·",
        RunState::Running => "▶",
        RunState::Paused => "‖",
        RunState::Succeeded => "✓",
        RunState::Failed => "✗",
        RunState::Cancelled => "■",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_theme_parses_completely() {
        for (name, text) in BUILT_IN {
            let t = Theme::parse(text, None).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(t.name, name);
        }
    }

    #[test]
    fn ansi16_uses_only_the_sixteen_colours() {
        let t = Theme::load("ansi16").unwrap();
        for name in FIELDS {
            let c = *t.clone().slot(name);
            assert!(
                !matches!(c, Color::Rgb(..) | Color::Indexed(_)),
                "{name} is {c:?}"
            );
        }
    }

    #[test]
    fn a_user_theme_may_override_a_few_colours() {
        let t = Theme::parse("failed = \"magenta\"", Some(&Theme::default())).unwrap();
        assert_eq!(t.failed, Color::Magenta);
        assert_eq!(t.succeeded, Theme::default().succeeded);
    }

    #[test]
    fn bad_themes_are_messages() {
        let e = Theme::parse("failed = \"blurple\"", Some(&Theme::default())).unwrap_err();
        assert!(e.contains("blurple"), "{e}");
        let e = Theme::parse("falied = \"red\"", Some(&Theme::default())).unwrap_err();
        assert!(e.contains("unknown key `falied`"), "{e}");
        assert!(
            Theme::parse("fg = \"red\"", None)
                .unwrap_err()
                .contains("missing")
        );
        assert!(Theme::load("no-such-theme").is_err());
    }
}
