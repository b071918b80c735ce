//! Workflow files: parse TOML or JSON (keeping source positions), validate everything at once,
//! and produce the `Workflow` the engine runs.

mod agents;
mod decode;
mod fanout;
#[cfg(test)]
mod fanout_tests;
mod json;
mod matrix;
mod node;
mod problem;
mod raw;
mod reads;
mod refs;
mod scalars;
mod source;
mod suggest;
mod task;
mod template_ref;
#[cfg(test)]
mod tests;
mod toml_front;
mod types;
mod validate;

pub use agents::DEFAULT_AGENT;
pub use source::render;
pub use types::*;

use std::fmt;
use std::path::{Path, PathBuf};

use crate::config::Config;

/// One problem found in a workflow file, with its position (1-based line and column).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: error: {}",
            self.file, self.line, self.column, self.message
        )?;
        if let Some(h) = &self.hint {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read at all (exit code 2).
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file was read but has problems (exit code 1); every problem is listed.
    #[error("{} problem(s) found", .0.len())]
    Invalid(Vec<Diagnostic>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Toml,
    Json,
}

impl Format {
    /// `.json` files are JSON, everything else TOML.
    pub fn from_path(path: &Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("json") => Format::Json,
            _ => Format::Toml,
        }
    }
}

/// Reads, parses and validates a workflow file.
pub fn load_path(path: &Path, config: &Config) -> Result<Workflow, LoadError> {
    let text = read_text(path)?;
    parse_str(
        &text,
        &path.display().to_string(),
        Format::from_path(path),
        config,
    )
}

/// Reads a workflow file as text: `LoadError::Read` when it cannot be read, `Invalid` when it
/// is not UTF-8 (a binary file).
pub fn read_text(path: &Path) -> Result<String, LoadError> {
    let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    String::from_utf8(bytes).map_err(|e| {
        LoadError::Invalid(vec![Diagnostic {
            file: path.display().to_string(),
            line: 1,
            column: 1,
            message: format!(
                "the file is not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
            hint: Some("a workflow file is TOML or JSON text".into()),
        }])
    })
}

/// Parses and validates workflow text; `file` names it in diagnostics. Every problem is
/// reported at once, in file order.
pub fn parse_str(
    text: &str,
    file: &str,
    format: Format,
    config: &Config,
) -> Result<Workflow, LoadError> {
    let mut problems = problem::Problems::default();
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let workflow = if text.trim().is_empty() {
        problems.push(
            0..0,
            "the file is empty",
            "a workflow needs at least one task, e.g. [tasks.hello] with builtin = \"echo hello\"",
        );
        None
    } else {
        let doc = match format {
            Format::Toml => toml_front::parse(text, &mut problems).map(node::Doc::Toml),
            Format::Json => json::parse(text, &mut problems).map(node::Doc::Json),
        };
        doc.and_then(|doc| {
            let raw = raw::decode(
                &mut decode::Dec {
                    problems: &mut problems,
                },
                doc.root(),
            );
            validate::validate(raw, config, &default_name(file), text, &mut problems)
        })
    };
    match workflow {
        Some(w) if problems.is_empty() => Ok(w),
        _ => Err(LoadError::Invalid(problems.into_diagnostics(text, file))),
    }
}

/// The workflow name when the file gives none: the file stem.
fn default_name(file: &str) -> String {
    Path::new(file)
        .file_stem()
        .and_then(|s| s.to_str())
        .filter(|s| !s.is_empty())
        .unwrap_or("workflow")
        .to_string()
}
