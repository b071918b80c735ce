//! A format-neutral document tree with byte spans, so TOML and JSON are validated by one code
//! path and every key and value can be pointed at.

use std::borrow::Cow;
use std::ops::Range;

use serde_json::Value;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// Byte range into the source text.
pub type Span = Range<usize>;

#[derive(Debug, Clone)]
pub struct Node<'a> {
    pub span: Span,
    pub val: Val<'a>,
}

#[derive(Debug, Clone)]
pub enum Val<'a> {
    /// JSON `null` (TOML has none); optional fields treat it as absent.
    Null,
    Str(Cow<'a, str>),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// TOML date/time, kept as its text.
    Datetime(String),
    Array(Vec<Node<'a>>),
    Table(Vec<Entry<'a>>),
}

#[derive(Debug, Clone)]
pub struct Entry<'a> {
    pub key: Cow<'a, str>,
    pub key_span: Span,
    pub value: Node<'a>,
}

impl<'a> Val<'a> {
    /// Article and type name for messages: "found a string".
    pub fn type_name(&self) -> &'static str {
        match self {
            Val::Null => "null",
            Val::Str(_) => "a string",
            Val::Int(_) => "an integer",
            Val::Float(_) => "a float",
            Val::Bool(_) => "a boolean",
            Val::Datetime(_) => "a date",
            Val::Array(_) => "a list",
            Val::Table(_) => "a table",
        }
    }

    /// JSON-compatible value (dates become strings, non-finite floats null).
    pub fn to_json(&self) -> Value {
        match self {
            Val::Null => Value::Null,
            Val::Str(s) => Value::String(s.to_string()),
            Val::Int(i) => Value::from(*i),
            Val::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Val::Bool(b) => Value::Bool(*b),
            Val::Datetime(d) => Value::String(d.clone()),
            Val::Array(items) => Value::Array(items.iter().map(|n| n.val.to_json()).collect()),
            Val::Table(entries) => Value::Object(
                entries
                    .iter()
                    .map(|e| (e.key.to_string(), e.value.val.to_json()))
                    .collect(),
            ),
        }
    }
}

/// A problem found while building the tree (integer overflow).
pub struct TreeError {
    pub span: Span,
    pub message: String,
}

/// Converts a parsed TOML document, taking ownership so strings move instead of copying.
pub fn from_toml<'a>(doc: Spanned<DeTable<'a>>, errors: &mut Vec<TreeError>) -> Node<'a> {
    let span = doc.span();
    Node {
        span,
        val: Val::Table(table(doc.into_inner(), errors)),
    }
}

fn table<'a>(t: DeTable<'a>, errors: &mut Vec<TreeError>) -> Vec<Entry<'a>> {
    let mut out = Vec::with_capacity(t.len());
    for (k, v) in t {
        let key_span = k.span();
        out.push(Entry {
            key: k.into_inner(),
            key_span,
            value: value(v, errors),
        });
    }
    out
}

fn value<'a>(v: Spanned<DeValue<'a>>, errors: &mut Vec<TreeError>) -> Node<'a> {
    let span = v.span();
    let val = match v.into_inner() {
        DeValue::String(s) => Val::Str(s),
        DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
            Ok(n) => Val::Int(n),
            Err(_) => {
                errors.push(TreeError {
                    span: span.clone(),
                    message: format!("integer `{i}` does not fit in 64 bits"),
                });
                Val::Int(0)
            }
        },
        DeValue::Float(f) => Val::Float(f.as_str().parse().unwrap_or(f64::NAN)),
        DeValue::Boolean(b) => Val::Bool(b),
        DeValue::Datetime(d) => Val::Datetime(d.to_string()),
        DeValue::Array(a) => Val::Array(a.into_iter().map(|v| value(v, errors)).collect()),
        DeValue::Table(t) => Val::Table(table(t, errors)),
    };
    Node { span, val }
}
