//! Workflow files: parse TOML or JSON (keeping source positions), validate everything at once,
//! and produce the `Workflow` the engine runs.

mod types;

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
    let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let name = path.display().to_string();
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            return Err(LoadError::Invalid(vec![Diagnostic {
                file: name,
                line: 1,
                column: 1,
                message: format!(
                    "the file is not UTF-8 text (invalid byte at offset {})",
                    e.utf8_error().valid_up_to()
                ),
                hint: Some("a workflow file is TOML or JSON text".into()),
            }]));
        }
    };
    parse_str(&text, &name, Format::from_path(path), config)
}

/// Parses and validates workflow text; `file` names it in diagnostics.
pub fn parse_str(
    text: &str,
    file: &str,
    format: Format,
    config: &Config,
) -> Result<Workflow, LoadError> {
    let _ = (text, file, format, config);
    todo!("spec parsing")
}
