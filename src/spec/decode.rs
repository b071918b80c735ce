//! Typed reads from the spanned tree: each helper reports a wrong type with the value's position
//! and returns `None`, so decoding carries on and finds every problem in one pass.

use indexmap::IndexMap;

use super::node::{Entry, Node, Span, Table, Val};
use super::problem::Problems;
use super::suggest;
use super::template_ref::TemplateRef;

pub struct Dec<'p> {
    pub problems: &'p mut Problems,
}

impl Dec<'_> {
    pub fn push(&mut self, span: Span, message: impl Into<String>, hint: impl Into<String>) {
        self.problems.push(span, message, hint);
    }

    pub fn wrong_type(
        &mut self,
        node: Node<'_>,
        field: &str,
        expected: &str,
        hint: impl Into<String>,
    ) {
        let hint = hint.into();
        let hint = if hint.is_empty() {
            format!("change `{field}` to {expected}")
        } else {
            hint
        };
        self.push(
            node.span(),
            format!("`{field}` must be {expected}, found {}", node.type_name()),
            hint,
        );
    }

    /// An unknown key: a typo suggestion when one is close, else the list of known keys.
    pub fn unknown_key(&mut self, e: &Entry<'_>, known: &[&str], what: &str) {
        let hint = match suggest::did_you_mean(e.key, known.iter().copied()) {
            Some(s) => s,
            None => format!("known keys of {what}: {}", known.join(", ")),
        };
        self.push(
            e.key_span.clone(),
            format!("unknown key `{}` in {what}", e.key),
            hint,
        );
    }

    pub fn str<'n>(&mut self, node: Node<'n>, field: &str, expected: &str) -> Option<&'n str> {
        match node.as_str() {
            Some(s) => Some(s),
            None => {
                self.wrong_type(node, field, expected, "");
                None
            }
        }
    }

    pub fn bool(&mut self, node: Node<'_>, field: &str) -> Option<bool> {
        match node.val() {
            Val::Bool(b) => Some(b),
            _ => {
                self.wrong_type(node, field, "true or false", "");
                None
            }
        }
    }

    pub fn int(&mut self, node: Node<'_>, field: &str, expected: &str) -> Option<i64> {
        match node.val() {
            Val::Int(i) => Some(i),
            _ => {
                self.wrong_type(node, field, expected, "");
                None
            }
        }
    }

    /// An integer within `min..=max`.
    pub fn int_in<T: TryFrom<i64>>(
        &mut self,
        node: Node<'_>,
        field: &str,
        min: i64,
        max: i64,
    ) -> Option<T> {
        let unbounded = max >= i64::from(u32::MAX);
        let expected = if unbounded {
            format!("an integer >= {min}")
        } else {
            format!("an integer from {min} to {max}")
        };
        let i = self.int(node, field, &expected)?;
        if i < min || i > max {
            let range = if unbounded {
                format!("at least {min}")
            } else {
                format!("from {min} to {max}")
            };
            self.push(
                node.span(),
                format!("`{field}` must be {range}, found {i}"),
                format!("use {expected}"),
            );
            return None;
        }
        T::try_from(i).ok()
    }

    pub fn number(&mut self, node: Node<'_>, field: &str) -> Option<f64> {
        match node.val() {
            Val::Int(i) => Some(i as f64),
            Val::Float(f) => Some(f),
            _ => {
                self.wrong_type(node, field, "a number", "");
                None
            }
        }
    }

    pub fn table<'n>(&mut self, node: Node<'n>, field: &str, expected: &str) -> Option<Table<'n>> {
        match node.val() {
            Val::Table(t) => Some(t),
            _ => {
                self.wrong_type(node, field, expected, "");
                None
            }
        }
    }

    /// A list of strings; a lone string gets a hint to wrap it in a list.
    pub fn str_list<'n>(
        &mut self,
        node: Node<'n>,
        field: &str,
        item: &str,
    ) -> Vec<(&'n str, Span)> {
        let mut out = Vec::new();
        self.str_list_into(node, field, item, &mut out);
        out
    }

    /// [`Dec::str_list`], appending to `out`.
    pub fn str_list_into<'n>(
        &mut self,
        node: Node<'n>,
        field: &str,
        item: &str,
        out: &mut Vec<(&'n str, Span)>,
    ) {
        let items = match node.val() {
            Val::Array(items) => items,
            Val::Str(s) => {
                self.wrong_type(
                    node,
                    field,
                    &format!("a list of {item}s"),
                    format!("write a list: [{}]", serde_json::Value::from(s)),
                );
                return;
            }
            _ => {
                self.wrong_type(node, field, &format!("a list of {item}s"), "");
                return;
            }
        };
        out.reserve(items.len());
        for n in items.iter() {
            match n.as_str() {
                Some(s) => out.push((s, n.span())),
                None => self.push(
                    n.span(),
                    format!(
                        "each entry of `{field}` must be a {item} (a string), found {}",
                        n.type_name()
                    ),
                    format!("put the {item} in quotes"),
                ),
            }
        }
    }

    /// A table of strings (`env`); values that look like templates are queued for checking.
    pub fn str_map<'n>(
        &mut self,
        node: Node<'n>,
        field: &str,
        templates: Option<&mut Vec<TemplateRef<'n>>>,
    ) -> IndexMap<String, String> {
        let mut out = IndexMap::new();
        let Some(entries) = self.table(node, field, "a table of strings") else {
            return out;
        };
        let mut templates = templates;
        for e in entries.iter() {
            let name = format!("{field}.{}", e.key);
            if let Some(v) = self.str(e.value, &name, "a string") {
                if let Some(t) = templates.as_deref_mut() {
                    TemplateRef::queue(t, name, v, e.value.span());
                }
                out.insert(e.key.to_string(), v.to_string());
            }
        }
        out
    }
}
