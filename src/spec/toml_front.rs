//! TOML workflow files -> the `toml` crate's spanned tables (decoded from as they are), with
//! every syntax error the parser can recover from reported, and duplicate tables explained in
//! terms of tasks, agents and gates.

use toml::Spanned;
use toml::de::DeTable;

use super::node;
use super::problem::Problems;

pub fn parse<'a>(text: &'a str, problems: &mut Problems) -> Option<Spanned<DeTable<'a>>> {
    let (doc, errors) = DeTable::parse_recoverable(text);
    if !errors.is_empty() {
        // Inside a repeated table every key repeats too: report only the table.
        let mut dup_header_until: Option<usize> = None;
        for e in &errors {
            let span = e.span().unwrap_or(0..0);
            let line = line_at(text, span.start);
            if e.message() == "duplicate key" {
                if dup_header_until.is_some_and(|end| span.start < end) {
                    continue;
                }
                let (message, hint) = duplicate(text, &span);
                if line.trim_start().starts_with('[') {
                    dup_header_until = Some(next_header(text, span.start));
                }
                problems.push(span, message, hint);
            } else {
                let mut parts = e.message().lines();
                let first = parts.next().unwrap_or("invalid TOML");
                let rest: Vec<&str> = parts.collect();
                let hint = if rest.is_empty() {
                    "fix the TOML syntax here".to_string()
                } else {
                    rest.join("; ")
                };
                problems.push(span, format!("TOML syntax error: {first}"), hint);
            }
        }
        return None;
    }
    if may_overflow(text) {
        let mut int_errors = Vec::new();
        node::toml_int_errors(doc.get_ref(), &mut int_errors);
        for e in int_errors {
            problems.push(e.span, e.message, "use an integer from -2^63 to 2^63-1");
        }
    }
    Some(doc)
}

/// Whether the text could hold an integer outside i64, to skip the search for one in nearly
/// every file: such an integer has at least 16 digits after any `0x`/`0o`/`0b` prefix (19
/// decimal, 16 hex, 22 octal or 64 binary), so its literal holds a run of at least 16 bytes of
/// hex digits and `_`.
fn may_overflow(text: &str) -> bool {
    let mut run = 0usize;
    for b in text.bytes() {
        if b.is_ascii_hexdigit() || b == b'_' {
            run += 1;
            if run >= 16 {
                return true;
            }
        } else {
            run = 0;
        }
    }
    false
}

/// The whole line containing `offset`.
fn line_at(text: &str, offset: usize) -> &str {
    let offset = offset.min(text.len());
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    &text[start..end]
}

/// Offset of the next table header line after `offset` (or the end).
fn next_header(text: &str, offset: usize) -> usize {
    let mut pos = text[offset..]
        .find('\n')
        .map_or(text.len(), |i| offset + i + 1);
    while pos < text.len() {
        let line = line_at(text, pos);
        if line.trim_start().starts_with('[') {
            return pos;
        }
        pos += line.len() + 1;
    }
    text.len()
}

/// Message and hint for a duplicate key or table at `span`.
fn duplicate(text: &str, span: &std::ops::Range<usize>) -> (String, String) {
    let key = text
        .get(span.clone())
        .unwrap_or("")
        .trim_matches(['"', '\'']);
    let line = line_at(text, span.start).trim();
    if let Some(header) = line.strip_prefix('[').and_then(|l| l.split(']').next()) {
        let header = header.trim_start_matches('[').trim();
        let first = text
            .lines()
            .position(|l| {
                l.trim().starts_with('[') && l.trim().trim_matches(['[', ']']).trim() == header
            })
            .map(|i| format!(" (first defined on line {})", i + 1))
            .unwrap_or_default();
        let what = match header.split('.').next() {
            Some("tasks") => Some("task"),
            Some("agents") => Some("agent"),
            Some("gates") => Some("gate"),
            _ => None,
        };
        let message = match what {
            Some(w) if header.matches('.').count() == 1 => {
                format!("{w} `{key}` is defined twice{first}")
            }
            _ => format!("table [{header}] is defined twice{first}"),
        };
        return (
            message,
            "each table may appear once: rename one of them or merge their keys into one table"
                .into(),
        );
    }
    (
        format!("key `{key}` is set twice in the same table"),
        "remove one of the two settings".into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diags(text: &str) -> Vec<crate::spec::Diagnostic> {
        let mut p = Problems::default();
        assert!(parse(text, &mut p).is_none());
        p.into_diagnostics(text, "f.toml")
    }

    #[test]
    fn duplicate_task_table_is_one_clear_error() {
        let d = diags("[tasks.a]\nrun = \"x\"\n\n[tasks.a]\nrun = \"y\"\n");
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!((d[0].line, d[0].column), (4, 8));
        assert_eq!(
            d[0].message,
            "task `a` is defined twice (first defined on line 1)"
        );
    }

    #[test]
    fn duplicate_key() {
        let d = diags("[tasks.a]\nrun = \"x\"\nrun = \"y\"\n");
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].line, 3);
        assert!(d[0].message.contains("`run` is set twice"), "{d:?}");
    }

    #[test]
    fn integers_outside_i64_are_found() {
        for (lit, bad) in [
            ("9223372036854775807", false),
            ("9223372036854775808", true),
            ("-9223372036854775809", true),
            ("0x7fffffffffffffff", false),
            ("0x8000000000000000", true),
            ("0o777777777777777777777", false),
            ("0o1000000000000000000000", true),
            ("1000000000000000000000", true),
        ] {
            let text = format!("[context]\nn = {lit}\n");
            assert!(may_overflow(&text) || !bad, "{lit}");
            let mut p = Problems::default();
            assert!(parse(&text, &mut p).is_some());
            assert_eq!(p.is_empty(), !bad, "{lit}");
        }
        assert!(!may_overflow("[tasks.t123456]\nneeds = [\"t99999\"]\n"));
    }

    #[test]
    fn syntax_errors_have_positions() {
        let d = diags("name = \"x\"\n[tasks.a\nrun = 1\n");
        assert!(!d.is_empty());
        assert_eq!(d[0].line, 2, "{d:?}");
        assert!(d[0].message.starts_with("TOML syntax error"), "{d:?}");
    }
}
