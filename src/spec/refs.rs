//! What templates and CEL expressions refer to: allowed top-level variables, declared secrets,
//! matrix keys, existing (and upstream) tasks. Compiled results are cached by source text, so
//! a generated file repeating one template compiles it once.

use std::collections::{BTreeSet, HashMap};

use indexmap::IndexMap;

use super::SecretSource;
use super::node::Span;
use super::problem::Problems;
use super::suggest;
use super::template_ref::TemplateRef;
use crate::expr::{Expr, ExprError};
use crate::template::{self, TemplateError};

/// Variables templates and expressions may use.
pub const ROOTS: &[&str] = &[
    "context", "tasks", "matrix", "task", "run", "secrets", "agent",
];

/// What a template or expression may refer to where it is used.
pub struct Scope<'s> {
    /// "task `build`", "agent `rev`", "gate `g`": who uses it, for messages.
    pub owner: &'s str,
    pub secrets: &'s IndexMap<String, SecretSource>,
    /// `None`: `matrix` may hold anything (agent templates); `Some(keys)`: exactly these keys.
    pub matrix_keys: Option<&'s [&'s str]>,
    pub task_exists: &'s dyn Fn(&str) -> bool,
    /// When set, `tasks.ID` must be upstream of the owner (it only sees upstream outputs).
    pub is_upstream: Option<&'s dyn Fn(&str) -> bool>,
}

#[derive(Default)]
pub struct Cache<'n> {
    templates: HashMap<&'n str, Result<BTreeSet<String>, TemplateError>>,
    exprs: HashMap<&'n str, Result<Vec<Vec<String>>, ExprError>>,
}

impl<'n> Cache<'n> {
    pub fn check_template(
        &mut self,
        t: &TemplateRef<'n>,
        scope: &Scope<'_>,
        problems: &mut Problems,
    ) {
        let paths = self
            .templates
            .entry(t.src)
            .or_insert_with(|| template::undeclared_paths(t.src));
        match paths {
            Ok(paths) => {
                for p in paths.iter() {
                    let parts: Vec<&str> = p.split('.').collect();
                    check_path(
                        &parts,
                        &t.field,
                        "template",
                        scope,
                        t.span.clone(),
                        problems,
                    );
                }
            }
            Err(e) => {
                let at = match e.line {
                    Some(l) if t.src.lines().nth(1).is_some() => {
                        format!(" (line {l} of the template)")
                    }
                    _ => String::new(),
                };
                problems.push(
                    t.span.clone(),
                    format!(
                        "template in `{}` does not compile{at}: {}",
                        t.field, e.message
                    ),
                    "fix the template syntax: {{ variable }}, {% if cond %}...{% endif %}",
                );
            }
        }
    }

    /// Compiles a CEL expression and checks what it refers to. `text` is the file text, used
    /// to point inside the expression when it is written as a simple one-line string.
    pub fn check_expr(
        &mut self,
        src: &'n str,
        span: &Span,
        field: &str,
        scope: &Scope<'_>,
        text: &str,
        problems: &mut Problems,
    ) {
        let compiled = self
            .exprs
            .entry(src)
            .or_insert_with(|| Expr::compile(src).map(|e| e.paths()));
        match compiled {
            Ok(paths) => {
                for p in paths.iter() {
                    let parts: Vec<&str> = p.iter().map(String::as_str).collect();
                    check_path(&parts, field, "expression", scope, span.clone(), problems);
                }
            }
            Err(e) => {
                let at = e
                    .position
                    .and_then(|(line, col)| inner_offset(text, span, src, line, col))
                    .unwrap_or(span.start);
                problems.push(
                    at..at + 1,
                    format!("`{field}` is not a valid CEL expression: {}", e.message),
                    "write a CEL condition such as tasks.review.outputs.verdict == 'approve'",
                );
            }
        }
    }
}

fn check_path(
    parts: &[&str],
    field: &str,
    kind: &str,
    scope: &Scope<'_>,
    span: Span,
    problems: &mut Problems,
) {
    let Some(&root) = parts.first() else {
        return;
    };
    let owner = scope.owner;
    if !ROOTS.contains(&root) {
        let hint = match suggest::did_you_mean(root, ROOTS.iter().copied()) {
            Some(s) => s,
            None => format!("available: {}", ROOTS.join(", ")),
        };
        problems.push(
            span,
            format!("{kind} in `{field}` of {owner} uses unknown variable `{root}`"),
            hint,
        );
        return;
    }
    let second = parts.get(1).copied();
    match (root, second) {
        ("secrets", Some(name)) if !scope.secrets.contains_key(name) => {
            let hint = match suggest::did_you_mean(name, scope.secrets.keys().map(String::as_str)) {
                Some(s) => s,
                None => format!("declare it: [secrets] {name} = {{ env = \"VARIABLE\" }}"),
            };
            problems.push(
                span,
                format!("{kind} in `{field}` of {owner} uses undeclared secret `{name}`"),
                hint,
            );
        }
        ("matrix", key) => match (scope.matrix_keys, key) {
            (None, _) => {}
            (Some([]), _) => problems.push(
                span,
                format!("{kind} in `{field}` of {owner} uses `matrix`, but the task has no matrix"),
                "add matrix = { KEY = [values] } to the task, or remove the reference",
            ),
            (Some(keys), Some(k)) if !keys.contains(&k) => {
                let hint = match suggest::did_you_mean(k, keys.iter().copied()) {
                    Some(s) => s,
                    None => format!("the matrix keys are: {}", keys.join(", ")),
                };
                problems.push(
                    span,
                    format!("{kind} in `{field}` of {owner} uses unknown matrix key `{k}`"),
                    hint,
                );
            }
            _ => {}
        },
        ("tasks", Some(id)) => {
            if !(scope.task_exists)(id) {
                problems.push(
                    span,
                    format!("{kind} in `{field}` of {owner} refers to unknown task `{id}`"),
                    "check the task id: it must be a key of [tasks]",
                );
            } else if let Some(up) = scope.is_upstream
                && !up(id)
            {
                problems.push(
                    span,
                    format!("{kind} in `{field}` of {owner} reads task `{id}`, which is not upstream of it"),
                    format!("add \"{id}\" to `needs` (directly or through another task) so its outputs exist in time"),
                );
            }
        }
        _ => {}
    }
}

/// Byte offset of (line, col) of an expression inside the file, when the expression is a
/// one-line quoted string without escapes (so its text appears verbatim).
fn inner_offset(text: &str, span: &Span, src: &str, line: usize, col: usize) -> Option<usize> {
    let raw = text.get(span.clone())?;
    let quote = raw.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let body = raw.get(1..raw.len().checked_sub(1)?)?;
    if line != 1
        || body != src
        || body.contains('\\')
        || raw.starts_with(&format!("{quote}{quote}{quote}"))
    {
        return None;
    }
    let byte = body
        .char_indices()
        .nth(col.saturating_sub(1))
        .map_or(body.len(), |(i, _)| i);
    Some(span.start + 1 + byte)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope<'s>(
        secrets: &'s IndexMap<String, SecretSource>,
        keys: Option<&'s [&'s str]>,
        exists: &'s dyn Fn(&str) -> bool,
    ) -> Scope<'s> {
        Scope {
            owner: "task `t`",
            secrets,
            matrix_keys: keys,
            task_exists: exists,
            is_upstream: None,
        }
    }

    fn messages(p: Problems) -> Vec<String> {
        p.into_diagnostics("", "f")
            .into_iter()
            .map(|d| d.message)
            .collect()
    }

    #[test]
    fn template_references() {
        let mut secrets = IndexMap::new();
        secrets.insert("key".to_string(), SecretSource::Env("K".into()));
        let exists = |id: &str| id == "build";
        let keys: &[&str] = &["os"];
        let s = scope(&secrets, Some(keys), &exists);
        let mut cache = Cache::default();
        let mut p = Problems::default();
        let src = "{{ secrets.key }} {{ secrets.nope }} {{ matrix.os }} {{ matrix.arch }} \
                   {{ tasks.build.outputs.x }} {{ tasks.bild.outputs.x }} {{ contxt.a }}";
        let t = TemplateRef {
            field: "run".into(),
            src,
            span: 0..1,
        };
        cache.check_template(&t, &s, &mut p);
        let m = messages(p);
        assert_eq!(m.len(), 4, "{m:?}");
        assert!(m.iter().any(|m| m.contains("undeclared secret `nope`")));
        assert!(m.iter().any(|m| m.contains("unknown matrix key `arch`")));
        assert!(m.iter().any(|m| m.contains("unknown task `bild`")));
        assert!(m.iter().any(|m| m.contains("unknown variable `contxt`")));
    }

    #[test]
    fn expressions_and_upstream() {
        let secrets = IndexMap::new();
        let exists = |_: &str| true;
        let up = |id: &str| id == "a";
        let mut s = scope(&secrets, Some(&[]), &exists);
        s.is_upstream = Some(&up);
        let mut cache = Cache::default();
        let mut p = Problems::default();
        let text = "when = \"tasks.b.outputs.ok && matrix.x\"";
        cache.check_expr(
            "tasks.b.outputs.ok && matrix.x",
            &(7..text.len()),
            "when",
            &s,
            text,
            &mut p,
        );
        let m = messages(p);
        assert_eq!(m.len(), 2, "{m:?}");
        assert!(m[0].contains("not upstream") || m[1].contains("not upstream"));
    }

    #[test]
    fn cel_errors_point_inside_the_string() {
        let secrets = IndexMap::new();
        let exists = |_: &str| true;
        let s = scope(&secrets, None, &exists);
        let mut cache = Cache::default();
        let mut p = Problems::default();
        let text = "when = \"a == = b\"";
        cache.check_expr("a == = b", &(7..text.len()), "when", &s, text, &mut p);
        let d = p.into_diagnostics(text, "f");
        assert_eq!(d.len(), 1);
        assert!(d[0].column > 8, "{d:?}");
    }
}
