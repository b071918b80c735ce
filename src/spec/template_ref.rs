//! Template strings found while decoding, checked together once the whole file is known
//! (allowed variables depend on declared secrets and the task's matrix).

use super::node::Span;
use crate::template;

#[derive(Debug, Clone)]
pub struct TemplateRef<'n> {
    /// Where it came from, for messages: `run`, `env.HOME`, `command`.
    pub field: String,
    pub src: &'n str,
    pub span: Span,
}

impl<'n> TemplateRef<'n> {
    /// Queues `src` only if it has template syntax: plain strings cost nothing more.
    pub fn queue(
        list: &mut Vec<TemplateRef<'n>>,
        field: impl Into<String>,
        src: &'n str,
        span: Span,
    ) {
        if template::is_template(src) {
            list.push(TemplateRef {
                field: field.into(),
                src,
                span,
            });
        }
    }
}
