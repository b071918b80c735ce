//! JSON workflow files -> spanned tree, in one pass over the text: a strict scanner checks
//! the syntax (exactly what serde_json accepts), records where every key and value is (which
//! serde_json does not expose), and finds duplicate keys (which serde_json silently merges).
//! Only when the text is not valid JSON is serde_json run, for its error message and position.

use std::borrow::Cow;
use std::collections::HashSet;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};

use super::node::{JEntry, JNode, JVal, Span};
use super::problem::Problems;

/// Parses `text`; on a syntax error, the one problem serde_json reports.
pub fn parse<'a>(text: &'a str, problems: &mut Problems) -> Option<JNode<'a>> {
    let mut s = Scanner {
        text,
        bytes: text.as_bytes(),
        pos: 0,
        depth: 0,
        items: Vec::new(),
        entries: Vec::new(),
        dups: Vec::new(),
    };
    match s.document() {
        Ok(root) => {
            for (span, message, hint) in s.dups {
                problems.push(span, message, hint);
            }
            Some(root)
        }
        Err(Invalid) => {
            syntax_error(text, s.pos, problems);
            None
        }
    }
}

/// The problem for text the scanner refused: serde_json's error, or too deep a nesting.
fn syntax_error(text: &str, scanner_pos: usize, problems: &mut Problems) {
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
        return;
    }
    if let Some(at) = too_deep(text) {
        problems.push(
            at..at + 1,
            format!("JSON nested more than {MAX_DEPTH} levels deep"),
            "a workflow needs only a few levels; flatten this value",
        );
        return;
    }
    // The scanner accepts exactly what serde_json does, so this is not expected.
    let at = scanner_pos.min(text.len());
    problems.push(
        at..at + 1,
        "JSON syntax error",
        "fix the JSON syntax here (no trailing commas or comments; keys in double quotes)",
    );
}

/// Deeper nesting is refused (serde_json's own limit is not applied when only checking the
/// syntax), so no input can overflow the stack of the recursive scanner.
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

/// Hashes a `u64` that is already a hash to itself.
#[derive(Default)]
struct HashIsKey(u64);

impl Hasher for HashIsKey {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// The text is not valid JSON (or is nested too deep) at the scanner's position.
struct Invalid;

type Scan<T> = Result<T, Invalid>;

struct Scanner<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    depth: usize,
    /// Items and entries of the arrays and objects being read, innermost last: each one's are
    /// moved into a vector of exactly their number when it closes (no growth, no slack).
    items: Vec<JNode<'a>>,
    entries: Vec<JEntry<'a>>,
    /// Duplicate-key problems, reported only if the whole text is valid.
    dups: Vec<(Span, String, String)>,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> u8 {
        self.bytes.get(self.pos).copied().unwrap_or(0)
    }

    fn ws(&mut self) {
        while matches!(self.peek(), b' ' | b'\t' | b'\n' | b'\r') {
            self.pos += 1;
        }
    }

    /// Consumes `b` or fails.
    fn eat(&mut self, b: u8) -> Scan<()> {
        if self.peek() == b {
            self.pos += 1;
            Ok(())
        } else {
            Err(Invalid)
        }
    }

    /// One value and nothing but whitespace around it.
    fn document(&mut self) -> Scan<JNode<'a>> {
        self.ws();
        let root = self.value()?;
        self.ws();
        if self.pos < self.bytes.len() {
            return Err(Invalid);
        }
        Ok(root)
    }

    fn value(&mut self) -> Scan<JNode<'a>> {
        let start = self.pos;
        let val = match self.peek() {
            b'{' => self.nested(Self::object)?,
            b'[' => self.nested(Self::array)?,
            b'"' => JVal::Str(self.string()?),
            b't' => self.word(b"true", JVal::Bool(true))?,
            b'f' => self.word(b"false", JVal::Bool(false))?,
            b'n' => self.word(b"null", JVal::Null)?,
            b'-' | b'0'..=b'9' => self.number()?,
            _ => return Err(Invalid),
        };
        Ok(JNode {
            span: start..self.pos,
            val,
        })
    }

    /// An array or object, at most `MAX_DEPTH` levels deep.
    fn nested(&mut self, f: fn(&mut Self) -> Scan<JVal<'a>>) -> Scan<JVal<'a>> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Invalid);
        }
        let v = f(self)?;
        self.depth -= 1;
        Ok(v)
    }

    fn word(&mut self, word: &[u8], v: JVal<'a>) -> Scan<JVal<'a>> {
        if !self.bytes[self.pos..].starts_with(word) {
            return Err(Invalid);
        }
        self.pos += word.len();
        Ok(v)
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while self.peek().is_ascii_digit() {
            self.pos += 1;
        }
        self.pos - start
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`; an integer that fits in i64 is an
    /// integer, anything else a float.
    fn number(&mut self) -> Scan<JVal<'a>> {
        let start = self.pos;
        if self.peek() == b'-' {
            self.pos += 1;
        }
        match self.peek() {
            b'0' => {
                self.pos += 1;
                if self.peek().is_ascii_digit() {
                    return Err(Invalid);
                }
            }
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return Err(Invalid),
        }
        let mut integer = true;
        if self.peek() == b'.' {
            integer = false;
            self.pos += 1;
            if self.digits() == 0 {
                return Err(Invalid);
            }
        }
        if matches!(self.peek(), b'e' | b'E') {
            integer = false;
            self.pos += 1;
            if matches!(self.peek(), b'+' | b'-') {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(Invalid);
            }
        }
        let s = &self.text[start..self.pos];
        if integer && let Ok(i) = s.parse::<i64>() {
            return Ok(JVal::Int(i));
        }
        Ok(JVal::Float(s.parse().unwrap_or(f64::NAN)))
    }

    /// A string token (at its opening quote): borrowed from the text unless it has escapes.
    fn string(&mut self) -> Scan<Cow<'a, str>> {
        let start = self.pos;
        self.pos += 1;
        let mut escaped = false;
        loop {
            match self.peek() {
                b'"' => break,
                b'\\' => {
                    escaped = true;
                    self.pos += 1;
                    match self.peek() {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.pos += 1,
                        b'u' => {
                            let hex = self.bytes.get(self.pos + 1..self.pos + 5);
                            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                                return Err(Invalid);
                            }
                            self.pos += 5;
                        }
                        _ => return Err(Invalid),
                    }
                }
                // A control character, or the end of the text (`peek` gives 0 there).
                0..=0x1f => return Err(Invalid),
                _ => self.pos += 1,
            }
        }
        self.pos += 1;
        if !escaped {
            return Ok(Cow::Borrowed(&self.text[start + 1..self.pos - 1]));
        }
        let raw = &self.text[start..self.pos];
        Ok(serde_json::from_str::<String>(raw).map_or(Cow::Borrowed(raw), Cow::Owned))
    }

    fn array(&mut self) -> Scan<JVal<'a>> {
        self.pos += 1;
        self.ws();
        if self.peek() == b']' {
            self.pos += 1;
            return Ok(JVal::Array(Vec::new()));
        }
        let base = self.items.len();
        loop {
            let item = self.value()?;
            self.items.push(item);
            self.ws();
            match self.peek() {
                b',' => {
                    self.pos += 1;
                    self.ws();
                }
                b']' => {
                    self.pos += 1;
                    return Ok(JVal::Array(self.items.drain(base..).collect()));
                }
                _ => return Err(Invalid),
            }
        }
    }

    fn object(&mut self) -> Scan<JVal<'a>> {
        self.pos += 1;
        self.ws();
        if self.peek() == b'}' {
            self.pos += 1;
            return Ok(JVal::Table(Vec::new()));
        }
        let base = self.entries.len();
        loop {
            if self.peek() != b'"' {
                return Err(Invalid);
            }
            let key_start = self.pos;
            let key = self.string()?;
            let key_span = key_start..self.pos;
            self.ws();
            self.eat(b':')?;
            self.ws();
            let value = self.value()?;
            self.entries.push(JEntry {
                key,
                key_span,
                value,
            });
            self.ws();
            match self.peek() {
                b',' => {
                    self.pos += 1;
                    self.ws();
                }
                b'}' => {
                    self.pos += 1;
                    let entries: Vec<JEntry<'a>> = self.entries.drain(base..).collect();
                    self.check_duplicates(&entries);
                    return Ok(JVal::Table(entries));
                }
                _ => return Err(Invalid),
            }
        }
    }

    fn check_duplicates(&mut self, entries: &[JEntry<'a>]) {
        let text = self.text;
        let mut report = |first: &Span, dup: &JEntry<'a>| {
            let line = text[..first.start].matches('\n').count() + 1;
            self.dups.push((
                dup.key_span.clone(),
                format!("duplicate key `{}`", dup.key),
                format!(
                    "`{}` is already defined on line {line}; remove or rename one of them",
                    dup.key
                ),
            ));
        };
        if entries.len() <= 16 {
            for (i, e) in entries.iter().enumerate() {
                if let Some(first) = entries[..i].iter().find(|f| f.key == e.key) {
                    report(&first.key_span, e);
                }
            }
            return;
        }
        // Large objects (the task table): a set of the keys' hashes, so probing never reads
        // the keys themselves; a repeated hash is confirmed by comparing the keys.
        let state = foldhash::fast::RandomState::default();
        let mut seen: HashSet<u64, BuildHasherDefault<HashIsKey>> =
            HashSet::with_capacity_and_hasher(entries.len(), Default::default());
        for (i, e) in entries.iter().enumerate() {
            if !seen.insert(state.hash_one(&*e.key))
                && let Some(first) = entries[..i].iter().find(|f| f.key == e.key)
            {
                report(&first.key_span, e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(text: &str) -> JNode<'_> {
        let mut p = Problems::default();
        let n = parse(text, &mut p).unwrap();
        assert!(p.is_empty(), "{p:?}");
        n
    }

    #[test]
    fn spans_point_at_keys_and_values() {
        let text = r#"{ "a": [1, 2.5, "x\"y"], "b": {"c": true, "d": null} }"#;
        let n = parse_ok(text);
        let JVal::Table(entries) = &n.val else {
            panic!()
        };
        assert_eq!(&text[entries[0].key_span.clone()], r#""a""#);
        let JVal::Array(items) = &entries[0].value.val else {
            panic!()
        };
        assert!(matches!(items[0].val, JVal::Int(1)));
        assert!(matches!(items[1].val, JVal::Float(f) if f == 2.5));
        assert!(matches!(&items[2].val, JVal::Str(s) if s == "x\"y"));
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
        let JVal::Array(items) = &n.val else { panic!() };
        assert!(matches!(items[0].val, JVal::Float(_)));
        assert!(matches!(items[1].val, JVal::Int(-3)));
    }

    /// Fragments that make texts near valid JSON, so random joins hit every branch
    /// (separated by `|`).
    const PIECES: &str = r#"{|}|[|]|,|:| |
|"a"|"b"|"\u00e9"|"\q"|"\ud800"|"	"|0|-|1|01|1.5|1.|1e5|1e|-0|2E+3|true|tru|null|false|x|"|\"#;

    proptest::proptest! {
        /// The scanner accepts exactly the texts serde_json accepts (within the depth limit),
        /// and every refused text gets serde_json's own message.
        #[test]
        fn accepts_what_serde_json_accepts(
            picks in proptest::collection::vec(0..31usize, 1..24)
        ) {
            let pieces: Vec<&str> = PIECES.split('|').collect();
            let text: String = picks.iter().map(|&i| pieces[i % pieces.len()]).collect();
            let valid = serde_json::from_str::<serde::de::IgnoredAny>(&text).is_ok();
            let mut p = Problems::default();
            let parsed = parse(&text, &mut p).is_some();
            proptest::prop_assert_eq!(parsed, valid, "{}", text);
            if !parsed {
                let d = p.into_diagnostics(&text, "f.json");
                proptest::prop_assert!(d[0].message.starts_with("JSON syntax error: "), "{:?}", d);
            }
        }
    }
}
