//! The `:` command palette: parsing a line into a command, and completing what is typed.

use std::path::{Path, PathBuf};

/// What a palette line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaletteCmd {
    /// retry / rerun / cancel / pause / resume / approve a task (selected one when omitted).
    Task {
        verb: TaskVerb,
        task: Option<String>,
    },
    PauseRun,
    ResumeRun,
    CancelRun,
    Theme(String),
    Run(PathBuf),
    Filter(String),
    View(bool),
    /// Focus the history of past runs.
    History,
    Help,
    Quit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskVerb {
    Retry,
    Rerun,
    Cancel,
    Pause,
    Resume,
    Approve,
}

/// (name, argument kind, help). The order is the completion order.
pub const COMMANDS: &[(&str, Arg, &str)] = &[
    ("retry", Arg::Task, "retry a failed task"),
    (
        "rerun",
        Arg::Task,
        "re-run from a task (and downstream), or a past RUN again",
    ),
    ("approve", Arg::Task, "approve a task waiting for approval"),
    ("cancel", Arg::Task, "cancel a task"),
    ("pause", Arg::Task, "pause a task"),
    (
        "resume",
        Arg::Task,
        "resume a paused task, or take over an interrupted RUN",
    ),
    ("pause-run", Arg::None, "pause the selected run"),
    ("resume-run", Arg::None, "resume the selected run"),
    ("cancel-run", Arg::None, "cancel the selected run"),
    ("theme", Arg::Theme, "switch colour theme"),
    ("run", Arg::File, "start another workflow file"),
    (
        "filter",
        Arg::Text,
        "filter tasks by name or state (empty clears)",
    ),
    ("tree", Arg::None, "show the task tree"),
    ("graph", Arg::None, "show the task graph"),
    (
        "history",
        Arg::None,
        "browse past runs (Enter opens one read-only)",
    ),
    ("help", Arg::None, "show the keys"),
    ("quit", Arg::None, "quit"),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arg {
    None,
    Task,
    Theme,
    File,
    Text,
}

pub fn parse(line: &str) -> Result<PaletteCmd, String> {
    let line = line.trim().trim_start_matches(':').trim();
    let (name, rest) = match line.split_once(char::is_whitespace) {
        Some((n, r)) => (n, r.trim()),
        None => (line, ""),
    };
    if name.is_empty() {
        return Err("type a command; Tab completes".into());
    }
    let arg = (!rest.is_empty()).then(|| rest.to_string());
    let verb = |v| {
        Ok(PaletteCmd::Task {
            verb: v,
            task: arg.clone(),
        })
    };
    match name {
        "retry" => verb(TaskVerb::Retry),
        "rerun" => verb(TaskVerb::Rerun),
        "cancel" => verb(TaskVerb::Cancel),
        "pause" => verb(TaskVerb::Pause),
        "resume" => verb(TaskVerb::Resume),
        "approve" => verb(TaskVerb::Approve),
        "pause-run" => Ok(PaletteCmd::PauseRun),
        "resume-run" => Ok(PaletteCmd::ResumeRun),
        "cancel-run" => Ok(PaletteCmd::CancelRun),
        "theme" => arg
            .map(PaletteCmd::Theme)
            .ok_or_else(|| "which theme? (:theme light)".to_string()),
        "run" => arg
            .map(|a| PaletteCmd::Run(PathBuf::from(a)))
            .ok_or_else(|| "which file? (:run flow.toml)".to_string()),
        "filter" => Ok(PaletteCmd::Filter(rest.to_string())),
        "tree" => Ok(PaletteCmd::View(true)),
        "graph" => Ok(PaletteCmd::View(false)),
        "history" => Ok(PaletteCmd::History),
        "help" => Ok(PaletteCmd::Help),
        "quit" | "q" => Ok(PaletteCmd::Quit),
        other => {
            let first = other.chars().next().unwrap_or(' ');
            let near: Vec<&str> = COMMANDS
                .iter()
                .map(|c| c.0)
                .filter(|c| c.starts_with(first))
                .collect();
            if near.is_empty() {
                Err(format!("no command `{other}`"))
            } else {
                Err(format!(
                    "no command `{other}` (did you mean {}?)",
                    near.join(", ")
                ))
            }
        }
    }
}

/// What completion may offer.
pub struct Sources<'a> {
    pub tasks: &'a [&'a str],
    /// Run ids `:rerun` takes (past and live runs).
    pub runs: &'a [&'a str],
    /// Run ids `:resume` takes (interrupted runs).
    pub resumable: &'a [&'a str],
    pub themes: &'a [String],
    /// Directory file names are completed against.
    pub cwd: &'a Path,
}

/// Candidate full lines for what is typed, best first (at most `limit`).
pub fn complete(line: &str, src: &Sources<'_>, limit: usize) -> Vec<String> {
    let (name, rest) = match line.split_once(' ') {
        Some((n, r)) => (n, Some(r.trim_start())),
        None => (line, None),
    };
    let Some(rest) = rest else {
        return COMMANDS
            .iter()
            .filter(|c| c.0.starts_with(name))
            .map(|c| {
                if c.1 == Arg::None {
                    c.0.to_string()
                } else {
                    format!("{} ", c.0)
                }
            })
            .take(limit)
            .collect();
    };
    let Some(kind) = COMMANDS.iter().find(|c| c.0 == name).map(|c| c.1) else {
        return Vec::new();
    };
    let lower = rest.to_lowercase();
    match kind {
        Arg::Task => {
            let mut out: Vec<String> = src
                .tasks
                .iter()
                .filter(|t| t.to_lowercase().starts_with(&lower))
                .map(|t| format!("{name} {t}"))
                .take(limit)
                .collect();
            if out.len() < limit {
                out.extend(
                    src.tasks
                        .iter()
                        .filter(|t| {
                            let l = t.to_lowercase();
                            l.contains(&lower) && !l.starts_with(&lower)
                        })
                        .map(|t| format!("{name} {t}"))
                        .take(limit - out.len()),
                );
            }
            let runs = match name {
                "rerun" => src.runs,
                "resume" => src.resumable,
                _ => &[],
            };
            let runs: Vec<String> = runs
                .iter()
                .filter(|r| r.starts_with(rest))
                .map(|r| format!("{name} {r}"))
                .collect();
            // Interrupted runs are few and the reason to type `:resume` in a fresh console.
            if name == "resume" {
                out.splice(0..0, runs);
            } else {
                out.extend(runs);
            }
            out.truncate(limit);
            out
        }
        Arg::Theme => src
            .themes
            .iter()
            .filter(|t| t.starts_with(rest))
            .map(|t| format!("{name} {t}"))
            .take(limit)
            .collect(),
        Arg::File => complete_path(rest, src.cwd, limit)
            .into_iter()
            .map(|p| format!("{name} {p}"))
            .collect(),
        Arg::None | Arg::Text => Vec::new(),
    }
}

/// Workflow files and directories under `cwd` that start with `typed`.
fn complete_path(typed: &str, cwd: &Path, limit: usize) -> Vec<String> {
    let (dir_part, file_part) = match typed.rfind('/') {
        Some(i) => (&typed[..=i], &typed[i + 1..]),
        None => ("", typed),
    };
    let dir = if dir_part.starts_with('/') {
        PathBuf::from(dir_part)
    } else {
        cwd.join(dir_part)
    };
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out: Vec<String> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            if !name.starts_with(file_part) || name.starts_with('.') {
                return None;
            }
            let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
            let is_flow = name.ends_with(".toml") || name.ends_with(".json");
            (is_dir || is_flow)
                .then(|| format!("{dir_part}{name}{}", if is_dir { "/" } else { "" }))
        })
        .collect();
    out.sort();
    out.truncate(limit);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src<'a>(tasks: &'a [&'a str], themes: &'a [String]) -> Sources<'a> {
        Sources {
            tasks,
            runs: &["20261123-140000-beef", "20261124-090000-cafe"],
            resumable: &["20261124-090000-cafe"],
            themes,
            cwd: Path::new(env!("CARGO_MANIFEST_DIR")),
        }
    }

    #[test]
    fn parses_commands_with_and_without_arguments() {
        assert_eq!(
            parse(":retry build").unwrap(),
            PaletteCmd::Task {
                verb: TaskVerb::Retry,
                task: Some("build".into())
            }
        );
        assert_eq!(
            parse("approve").unwrap(),
            PaletteCmd::Task {
                verb: TaskVerb::Approve,
                task: None
            }
        );
        assert_eq!(
            parse("theme light").unwrap(),
            PaletteCmd::Theme("light".into())
        );
        assert_eq!(
            parse("run other.toml").unwrap(),
            PaletteCmd::Run("other.toml".into())
        );
        assert!(parse("theme").is_err());
        assert!(parse("ébauche").unwrap_err().contains("no command"));
        let e = parse("retyr x").unwrap_err();
        assert!(e.contains("did you mean") && e.contains("retry"), "{e}");
    }

    #[test]
    fn completes_commands_tasks_themes_and_files() {
        let themes = vec!["dark".to_string(), "light".to_string()];
        let s = src(&["build", "test[suite=unit]", "staging-db"], &themes);
        assert_eq!(complete("ret", &s, 5), vec!["retry "]);
        assert_eq!(complete("retry b", &s, 5)[0], "retry build");
        assert_eq!(
            complete("retry unit", &s, 5),
            vec!["retry test[suite=unit]"]
        );
        assert_eq!(complete("theme l", &s, 5), vec!["theme light"]);
        assert_eq!(
            complete("run assets/examples/de", &s, 5),
            vec!["run assets/examples/demo.toml"]
        );
        assert!(complete("graph x", &s, 5).is_empty());
    }

    #[test]
    fn resume_offers_interrupted_runs_first_and_rerun_every_run() {
        let themes = vec![];
        let s = src(&["build", "deploy"], &themes);
        assert_eq!(
            complete("resume ", &s, 3),
            vec![
                "resume 20261124-090000-cafe",
                "resume build",
                "resume deploy"
            ]
        );
        assert_eq!(
            complete("rerun 2026", &s, 5),
            vec!["rerun 20261123-140000-beef", "rerun 20261124-090000-cafe"]
        );
        assert!(complete("retry 2026", &s, 5).is_empty());
        assert_eq!(parse("history").unwrap(), PaletteCmd::History);
    }
}
