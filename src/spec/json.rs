//! JSON workflow files -> spanned tree. serde_json checks the syntax (with its positions); a
//! small scanner over the now-known-good text then records where every key and value is, which
//! serde_json does not expose, and finds duplicate keys, which serde_json silently merges.

use std::borrow::Cow;
use std::collections::HashSet;

use super::node::{Entry, Node, Span, Val};
use super::problem::Problems;

/// Parses `text`; on a syntax error, the one problem serde_json reports.
pub fn parse<'a>(text: &'a str, problems: &mut Problems) -> Option<Node<'a>> {
    if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(text) {
        let offset = offset_of(text, e.line(), e.column());
        let full = e.to_string();
        let mut message = match full.rfind(" at line ") {
            Some(i) => full[..i].to_string(),
            None => full,
        };
        // serde_json calls `{"a": 1, }` a bad key; say what it is.
        let before = text.get(..offset).unwrap_or("").trim_end();
        if before.ends_with(',')
            && text
                .get(offset..)
                .is_some_and(|r| r.starts_with(['}', ']']))
        {
            message = "trailing comma".into();
        }
        problems.push(
            offset..offset + 1,
            format!("JSON syntax error: {message}"),
            "fix the JSON syntax here (no trailing commas or comments; keys in double quotes)",
        );
        return None;
    }
    if let Some(at) = too_deep(text) {
        problems.push(
            at..at + 1,
            format!("JSON nested more than {MAX_DEPTH} levels deep"),
            "a workflow needs only a few levels; flatten this value",
        );
        return None;
    }
    let mut s = Scanner {
        text,
        bytes: text.as_bytes(),
        pos: 0,
        problems,
    };
    s.ws();
    Some(s.value())
}

/// Deeper nesting is refused before the recursive scan, so no input can overflow the stack.
const MAX_DEPTH: usize = 128;

/// Offset of the first bracket nested deeper than `MAX_DEPTH`, if any (the text is valid JSON).
fn too_deep(text: &str) -> Option<usize> {
    let (mut depth, mut in_str, mut esc) = (0usize, false, false);
    for (i, b) in text.bytes().enumerate() {
        if in_str {
            match b {
                _ if esc => esc = false,
                b'\\' => esc = true,
                b'"' => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Some(i);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

/// Byte offset of serde_json's 1-based line and (byte) column.
fn offset_of(text: &str, line: usize, column: usize) -> usize {
    let line_start = if line <= 1 {
        0
    } else {
        text.match_indices('\n')
            .nth(line - 2)
            .map_or(text.len(), |(i, _)| i + 1)
    };
    (line_start + column.saturating_sub(1)).min(text.len())
}

struct Scanner<'a, 'p> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    problems: &'p mut Problems,
}

impl<'a> Scanner<'a, '_> {
    fn peek(&self) -> u8 {
        self.bytes.get(self.pos).copied().unwrap_or(0)
    }

    fn ws(&mut self) {
        while matches!(self.peek(), b' ' | b'\t' | b'\n' | b'\r') {
            self.pos += 1;
        }
    }

    // The text is valid JSON (checked by serde_json), so each branch can trust its shape;
    // recursion depth is bounded by serde_json's own limit (128).
    fn value(&mut self) -> Node<'a> {
        let start = self.pos;
        let val = match self.peek() {
            b'{' => self.object(),
            b'[' => self.array(),
            b'"' => Val::Str(self.string()),
            b't' => self.word(4, Val::Bool(true)),
            b'f' => self.word(5, Val::Bool(false)),
            b'n' => self.word(4, Val::Null),
            _ => self.number(),
        };
        Node {
            span: start..self.pos,
            val,
        }
    }

    fn word(&mut self, len: usize, v: Val<'a>) -> Val<'a> {
        self.pos += len;
        v
    }

    fn number(&mut self) -> Val<'a> {
        let start = self.pos;
        while matches!(self.peek(), b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9') {
            self.pos += 1;
        }
        let s = &self.text[start..self.pos];
        if !s.contains(['.', 'e', 'E'])
            && let Ok(i) = s.parse::<i64>()
        {
            return Val::Int(i);
        }
        Val::Float(s.parse().unwrap_or(f64::NAN))
    }

    fn string(&mut self) -> Cow<'a, str> {
        let start = self.pos;
        self.pos += 1;
        let mut escaped = false;
        loop {
            match self.peek() {
                b'\\' => {
                    escaped = true;
                    self.pos += 2;
                }
                b'"' | 0 => break,
                _ => self.pos += 1,
            }
        }
        self.pos += 1;
        let end = self.pos.min(self.text.len());
        if !escaped {
            return Cow::Borrowed(self.text.get(start + 1..end - 1).unwrap_or(""));
        }
        let raw = self.text.get(start..end).unwrap_or("");
        serde_json::from_str::<String>(raw).map_or(Cow::Borrowed(raw), Cow::Owned)
    }

    fn array(&mut self) -> Val<'a> {
        self.pos += 1;
        let mut items = Vec::new();
        self.ws();
        while self.peek() != b']' && self.peek() != 0 {
            items.push(self.value());
            self.ws();
            if self.peek() == b',' {
                self.pos += 1;
                self.ws();
            }
        }
        self.pos += 1;
        Val::Array(items)
    }

    fn object(&mut self) -> Val<'a> {
        self.pos += 1;
        let mut entries: Vec<Entry<'a>> = Vec::new();
        self.ws();
        while self.peek() == b'"' {
            let key_start = self.pos;
            let key = self.string();
            let key_span = key_start..self.pos;
            self.ws();
            self.pos += 1; // ':'
            self.ws();
            let value = self.value();
            entries.push(Entry {
                key,
                key_span,
                value,
            });
            self.ws();
            if self.peek() == b',' {
                self.pos += 1;
                self.ws();
            }
        }
        self.pos += 1;
        self.check_duplicates(&entries);
        Val::Table(entries)
    }

    fn check_duplicates(&mut self, entries: &[Entry<'a>]) {
        let mut report = |first: &Span, dup: &Entry<'a>| {
            let line = self.text[..first.start].matches('\n').count() + 1;
            self.problems.push(
                dup.key_span.clone(),
                format!("duplicate key `{}`", dup.key),
                format!(
                    "`{}` is already defined on line {line}; remove or rename one of them",
                    dup.key
                ),
            );
        };
        if entries.len() <= 16 {
            for (i, e) in entries.iter().enumerate() {
                if let Some(first) = entries[..i].iter().find(|f| f.key == e.key) {
                    report(&first.key_span, e);
                }
            }
            return;
        }
        let mut seen: HashSet<&str> = HashSet::with_capacity(entries.len());
        for e in entries {
            if !seen.insert(&e.key)
                && let Some(first) = entries.iter().find(|f| f.key == e.key)
            {
                report(&first.key_span, e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(text: &str) -> Node<'_> {
        let mut p = Problems::default();
        let n = parse(text, &mut p).unwrap();
        assert!(p.is_empty(), "{p:?}");
        n
    }

    #[test]
    fn spans_point_at_keys_and_values() {
        let text = r#"{ "a": [1, 2.5, "x\"y"], "b": {"c": true, "d": null} }"#;
        let n = parse_ok(text);
        let Val::Table(entries) = &n.val else {
            panic!()
        };
        assert_eq!(&text[entries[0].key_span.clone()], r#""a""#);
        let Val::Array(items) = &entries[0].value.val else {
            panic!()
        };
        assert!(matches!(items[0].val, Val::Int(1)));
        assert!(matches!(items[1].val, Val::Float(f) if f == 2.5));
        assert!(matches!(&items[2].val, Val::Str(s) if s == "x\"y"));
        assert_eq!(&text[items[2].span.clone()], r#""x\"y""#);
        assert_eq!(
            &text[entries[1].value.span.clone()],
            r#"{"c": true, "d": null}"#
        );
    }

    #[test]
    fn syntax_error_has_position() {
        let text = "{\n  \"a\": 1,\n}";
        let mut p = Problems::default();
        assert!(parse(text, &mut p).is_none());
        let d = p.into_diagnostics(text, "f.json");
        assert_eq!((d[0].line, d[0].column), (3, 1), "{d:?}");
        assert!(d[0].message.contains("trailing comma"), "{d:?}");
    }

    #[test]
    fn duplicate_keys_are_found() {
        let text = "{\"a\": 1,\n \"a\": 2}";
        let mut p = Problems::default();
        parse(text, &mut p);
        let d = p.into_diagnostics(text, "f.json");
        assert_eq!(d.len(), 1);
        assert_eq!((d[0].line, d[0].column), (2, 2));
        let many: String = (0..40).map(|i| format!("\"k{i}\": 0, ")).collect();
        let text = format!("{{{many} \"k7\": 1}}");
        let mut p = Problems::default();
        parse(&text, &mut p);
        assert_eq!(p.len(), 1);
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let text = format!("{{\"a\": {}{}}}", "[".repeat(100_000), "]".repeat(100_000));
        let mut p = Problems::default();
        assert!(parse(&text, &mut p).is_none());
        assert_eq!(p.len(), 1);
        let ok = format!(
            "{{\"a\": {}{}, \"s\": \"[[[\\\"\"}}",
            "[".repeat(100),
            "]".repeat(100)
        );
        assert!(!parse_ok(&ok).span.is_empty());
    }

    #[test]
    fn large_integers_become_floats() {
        let n = parse_ok("[18446744073709551615, -3]");
        let Val::Array(items) = &n.val else { panic!() };
        assert!(matches!(items[0].val, Val::Float(_)));
        assert!(matches!(items[1].val, Val::Int(-3)));
    }
}
