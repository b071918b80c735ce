//! Problems found while checking a file, positioned by byte span until they are reported.

use super::Diagnostic;
use super::node::Span;
use super::source::LineIndex;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub span: Span,
    pub message: String,
    pub hint: String,
}

/// Collects every problem instead of stopping at the first.
#[derive(Debug, Default)]
pub struct Problems {
    list: Vec<Problem>,
}

impl Problems {
    pub fn push(&mut self, span: Span, message: impl Into<String>, hint: impl Into<String>) {
        self.list.push(Problem {
            span,
            message: message.into(),
            hint: hint.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Diagnostics in file order (a stable sort keeps the order of checks at one position).
    pub fn into_diagnostics(mut self, text: &str, file: &str) -> Vec<Diagnostic> {
        self.list.sort_by_key(|p| p.span.start);
        self.list.dedup();
        let index = LineIndex::new(text);
        self.list
            .into_iter()
            .map(|p| {
                let (line, column) = index.position(p.span.start);
                Diagnostic {
                    file: file.to_string(),
                    line,
                    column,
                    message: p.message,
                    hint: (!p.hint.is_empty()).then_some(p.hint),
                }
            })
            .collect()
    }
}
