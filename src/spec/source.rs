//! Byte offsets -> line:column, and rustc-style rendering of diagnostics with the source line.

use super::Diagnostic;

/// Line starts of a text, built only when a diagnostic needs a position.
pub struct LineIndex<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub fn new(text: &'a str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { text, starts }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self
            .starts
            .partition_point(|&s| s <= offset)
            .saturating_sub(1);
        let start = self.starts.get(line).copied().unwrap_or(0);
        let col = self
            .text
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count());
        (line + 1, col + 1)
    }
}

/// Renders a diagnostic like rustc: the header, the source line with a caret under the
/// offending token, then the hint. `source` is the file text, if available.
pub fn render(d: &Diagnostic, source: Option<&str>) -> String {
    let mut out = format!("{}:{}:{}: error: {}\n", d.file, d.line, d.column, d.message);
    if let Some(line) = source.and_then(|s| s.lines().nth(d.line.saturating_sub(1))) {
        let line = line.trim_end_matches('\r');
        let num = d.line.to_string();
        let pad = " ".repeat(num.len());
        let mut col = d.column.saturating_sub(1);
        // Very long lines (generated files) show a window around the column.
        let window: String;
        let line = if line.chars().count() > MAX_SHOWN {
            let start = col.saturating_sub(MAX_SHOWN / 3);
            window = line.chars().skip(start).take(MAX_SHOWN).collect();
            col -= start;
            window.as_str()
        } else {
            line
        };
        let indent: String = line
            .chars()
            .take(col)
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        // A quote right after a word is a closing quote (a position inside a string).
        let closing = col > 0
            && line.chars().nth(col).is_some_and(|c| c == '"' || c == '\'')
            && line
                .chars()
                .nth(col - 1)
                .is_some_and(|c| !c.is_whitespace() && !"=[{(,".contains(c));
        let width = if closing {
            1
        } else {
            token_width(line.chars().skip(col))
        };
        out.push_str(&format!(
            "{pad} |\n{num} | {line}\n{pad} | {indent}{}\n",
            "^".repeat(width)
        ));
    }
    if let Some(h) = &d.hint {
        out.push_str(&format!("  hint: {h}\n"));
    }
    out
}

/// Longest source line shown in full.
const MAX_SHOWN: usize = 160;

/// Width (in characters) of the token starting a text: a quoted string, a bracketed header
/// or a bare word; at least 1.
fn token_width(mut chars: impl Iterator<Item = char>) -> usize {
    let Some(first) = chars.next() else {
        return 1;
    };
    let close = match first {
        '"' | '\'' => Some(first),
        '[' => Some(']'),
        '{' => Some('}'),
        _ => None,
    };
    let mut n = 1;
    let mut escaped = false;
    for c in chars {
        match close {
            Some(end) => {
                n += 1;
                if c == end && !escaped {
                    return n;
                }
                escaped = c == '\\' && !escaped && first == '"';
            }
            None => {
                if c.is_whitespace() || ",=]}[{\"'".contains(c) {
                    return n;
                }
                n += 1;
            }
        }
    }
    if close.is_some() { 1 } else { n }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_and_count_chars() {
        let idx = LineIndex::new("ab\nçd = 1\n");
        assert_eq!(idx.position(0), (1, 1));
        assert_eq!(idx.position(1), (1, 2));
        assert_eq!(idx.position(3), (2, 1));
        // `d` follows a two-byte character.
        assert_eq!(idx.position(5), (2, 2));
        assert_eq!(idx.position(100), (3, 1));
    }

    #[test]
    fn renders_caret_under_token() {
        let d = Diagnostic {
            file: "f.toml".into(),
            line: 2,
            column: 10,
            message: "unknown task `bild`".into(),
            hint: Some("did you mean `build`?".into()),
        };
        let text = "[tasks.x]\nneeds = [\"bild\"]\n";
        let out = render(&d, Some(text));
        assert_eq!(
            out,
            "f.toml:2:10: error: unknown task `bild`\n  |\n2 | needs = [\"bild\"]\n  |          ^^^^^^\n  hint: did you mean `build`?\n"
        );
    }

    #[test]
    fn token_widths() {
        assert_eq!(token_width("abc = 1".chars()), 3);
        assert_eq!(token_width("[tasks.a] x".chars()), 9);
        assert_eq!(token_width(r#""a\"b" x"#.chars()), 6);
        assert_eq!(token_width("".chars()), 1);
    }
}
