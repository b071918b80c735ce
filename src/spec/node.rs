//! The parsed document, seen through one read-only view with byte spans, so TOML and JSON are
//! validated by one code path and every key and value can be pointed at.
//!
//! Nothing is copied into a tree of our own: TOML is read straight from the `toml` crate's
//! parsed values (`DeTable`/`DeValue`, which carry spans), JSON from the small tree that
//! `json.rs` builds in its single pass. A [`Node`] is a `Copy` handle into either.

use std::borrow::Cow;
use std::ops::Range;

use serde_json::Value;
use toml::Spanned;
use toml::de::{DeTable, DeValue};
use toml::value::Datetime;

/// Byte range into the source text.
pub type Span = Range<usize>;

/// A parsed workflow file: what `raw::decode` reads. Dropped after validation.
pub enum Doc<'a> {
    Toml(Spanned<DeTable<'a>>),
    Json(JNode<'a>),
}

impl Doc<'_> {
    pub fn root(&self) -> Node<'_> {
        match self {
            Doc::Toml(t) => {
                let span = t.span();
                Node {
                    start: span.start,
                    end: span.end,
                    kind: Kind::TomlTable(t.get_ref()),
                }
            }
            Doc::Json(n) => Node::json(n),
        }
    }
}

/// A JSON value with its span (built by `json.rs`).
#[derive(Debug, Clone)]
pub struct JNode<'a> {
    pub span: Span,
    pub val: JVal<'a>,
}

#[derive(Debug, Clone)]
pub enum JVal<'a> {
    Null,
    Str(Cow<'a, str>),
    Int(i64),
    Float(f64),
    Bool(bool),
    Array(Vec<JNode<'a>>),
    /// Entries in file order; a repeated key stays (and is reported by the scanner).
    Table(Vec<JEntry<'a>>),
}

#[derive(Debug, Clone)]
pub struct JEntry<'a> {
    pub key: Cow<'a, str>,
    pub key_span: Span,
    pub value: JNode<'a>,
}

/// A value anywhere in the document, with its span.
#[derive(Clone, Copy)]
pub struct Node<'n> {
    start: usize,
    end: usize,
    kind: Kind<'n>,
}

#[derive(Clone, Copy)]
enum Kind<'n> {
    Json(&'n JVal<'n>),
    Toml(&'n DeValue<'n>),
    /// The TOML document itself (the root table).
    TomlTable(&'n DeTable<'n>),
}

/// What a node holds. Scalars are read on demand (TOML numbers are parsed from their text).
#[derive(Clone, Copy)]
pub enum Val<'n> {
    /// JSON `null` (TOML has none); optional fields treat it as absent.
    Null,
    Str(&'n str),
    /// An integer; a TOML integer outside i64 reads as 0 (reported by [`toml_int_errors`]).
    Int(i64),
    Float(f64),
    Bool(bool),
    /// TOML date/time.
    Datetime(&'n Datetime),
    Array(List<'n>),
    Table(Table<'n>),
}

/// The items of an array.
#[derive(Clone, Copy)]
pub enum List<'n> {
    Json(&'n [JNode<'n>]),
    Toml(&'n [Spanned<DeValue<'n>>]),
}

/// The entries of a table, in file order.
#[derive(Clone, Copy)]
pub enum Table<'n> {
    Json(&'n [JEntry<'n>]),
    Toml(&'n DeTable<'n>),
}

/// One `key = value` of a table.
#[derive(Clone)]
pub struct Entry<'n> {
    pub key: &'n str,
    pub key_span: Span,
    pub value: Node<'n>,
}

impl<'n> Node<'n> {
    fn json(n: &'n JNode<'n>) -> Self {
        Node {
            start: n.span.start,
            end: n.span.end,
            kind: Kind::Json(&n.val),
        }
    }

    fn toml(v: &'n Spanned<DeValue<'n>>) -> Self {
        let span = v.span();
        Node {
            start: span.start,
            end: span.end,
            kind: Kind::Toml(v.get_ref()),
        }
    }

    pub fn span(self) -> Span {
        self.start..self.end
    }

    pub fn is_null(self) -> bool {
        matches!(self.kind, Kind::Json(JVal::Null))
    }

    pub fn val(self) -> Val<'n> {
        match self.kind {
            Kind::Json(v) => match v {
                JVal::Null => Val::Null,
                JVal::Str(s) => Val::Str(s),
                JVal::Int(i) => Val::Int(*i),
                JVal::Float(f) => Val::Float(*f),
                JVal::Bool(b) => Val::Bool(*b),
                JVal::Array(items) => Val::Array(List::Json(items)),
                JVal::Table(entries) => Val::Table(Table::Json(entries)),
            },
            Kind::Toml(v) => match v {
                DeValue::String(s) => Val::Str(s),
                DeValue::Integer(i) => Val::Int(toml_int(i).unwrap_or(0)),
                DeValue::Float(f) => Val::Float(f.as_str().parse().unwrap_or(f64::NAN)),
                DeValue::Boolean(b) => Val::Bool(*b),
                DeValue::Datetime(d) => Val::Datetime(d),
                DeValue::Array(a) => Val::Array(List::Toml(a)),
                DeValue::Table(t) => Val::Table(Table::Toml(t)),
            },
            Kind::TomlTable(t) => Val::Table(Table::Toml(t)),
        }
    }

    /// The string, if this is one.
    pub fn as_str(self) -> Option<&'n str> {
        match self.kind {
            Kind::Json(JVal::Str(s)) => Some(s),
            Kind::Toml(DeValue::String(s)) => Some(s),
            _ => None,
        }
    }

    /// Article and type name for messages: "found a string".
    pub fn type_name(self) -> &'static str {
        match self.val() {
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
    pub fn to_json(self) -> Value {
        match self.val() {
            Val::Null => Value::Null,
            Val::Str(s) => Value::String(s.to_string()),
            Val::Int(i) => Value::from(i),
            Val::Float(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
            Val::Bool(b) => Value::Bool(b),
            Val::Datetime(d) => Value::String(d.to_string()),
            Val::Array(items) => Value::Array(items.iter().map(|n| n.to_json()).collect()),
            Val::Table(entries) => Value::Object(
                entries
                    .iter()
                    .map(|e| (e.key.to_string(), e.value.to_json()))
                    .collect(),
            ),
        }
    }
}

impl<'n> List<'n> {
    pub fn len(&self) -> usize {
        match self {
            List::Json(items) => items.len(),
            List::Toml(items) => items.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn iter(&self) -> impl Iterator<Item = Node<'n>> + use<'n> {
        let (json, toml) = match *self {
            List::Json(items) => (items, &[][..]),
            List::Toml(items) => (&[][..], items),
        };
        json.iter()
            .map(Node::json)
            .chain(toml.iter().map(Node::toml))
    }
}

impl<'n> Table<'n> {
    pub fn len(&self) -> usize {
        match self {
            Table::Json(entries) => entries.len(),
            Table::Toml(t) => t.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn iter(&self) -> impl Iterator<Item = Entry<'n>> + use<'n> {
        let none: &'n [JEntry<'n>] = &[];
        let (json, toml) = match *self {
            Table::Json(entries) => (entries.iter(), None),
            Table::Toml(t) => (none.iter(), Some(t.iter())),
        };
        json.map(|e| Entry {
            key: &e.key,
            key_span: e.key_span.clone(),
            value: Node::json(&e.value),
        })
        .chain(toml.into_iter().flatten().map(|(k, v)| Entry {
            key: k.get_ref(),
            key_span: k.span(),
            value: Node::toml(v),
        }))
    }
}

/// A TOML integer as i64, `None` when it does not fit.
fn toml_int(i: &toml::de::DeInteger<'_>) -> Option<i64> {
    i64::from_str_radix(i.as_str(), i.radix()).ok()
}

/// A problem found in the parsed TOML before decoding (an integer that does not fit in 64 bits).
pub struct TreeError {
    pub span: Span,
    pub message: String,
}

/// Every TOML integer anywhere in the document that does not fit in 64 bits, in document order
/// (decoding reads such integers as 0).
pub fn toml_int_errors(doc: &DeTable<'_>, errors: &mut Vec<TreeError>) {
    fn value(v: &Spanned<DeValue<'_>>, errors: &mut Vec<TreeError>) {
        match v.get_ref() {
            DeValue::Integer(i) if toml_int(i).is_none() => errors.push(TreeError {
                span: v.span(),
                message: format!("integer `{i}` does not fit in 64 bits"),
            }),
            DeValue::Array(a) => a.iter().for_each(|v| value(v, errors)),
            DeValue::Table(t) => toml_int_errors(t, errors),
            _ => {}
        }
    }
    for v in doc.values() {
        value(v, errors);
    }
}
