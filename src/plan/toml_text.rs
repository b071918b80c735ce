//! Writing TOML by hand (so the plan keeps its comments and order) without getting quoting
//! wrong, and keeping the request's own text out of the template language.

use serde_json::{Map, Value};

/// A TOML basic string.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    escape_into(&mut out, s, false);
    out.push('"');
    out
}

/// A TOML multi-line basic string: newlines stay newlines, so long prompts read well.
pub fn quote_prompt(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    out.push_str("\"\"\"\n");
    escape_into(&mut out, s, true);
    out.push_str("\"\"\"");
    out
}

fn escape_into(out: &mut String, s: &str, keep_newlines: bool) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' if keep_newlines => out.push('\n'),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
}

/// The request's own words inside a prompt template: text that looks like template syntax is
/// kept verbatim instead of being rendered.
pub fn literal(text: &str) -> String {
    if text.contains("{{") || text.contains("{%") || text.contains("{#") {
        format!("{{% raw %}}{text}{{% endraw %}}")
    } else {
        text.to_string()
    }
}

/// `[context]` with the request's context values (any JSON; nulls have no TOML form and are
/// left out).
pub fn context_table(context: &Map<String, Value>) -> String {
    let mut doc = toml::Table::new();
    let mut table = toml::Table::new();
    for (k, v) in context {
        if let Some(v) = to_toml(v) {
            table.insert(k.clone(), v);
        }
    }
    doc.insert("context".into(), toml::Value::Table(table));
    toml::to_string(&doc).unwrap_or_default()
}

/// A JSON value as TOML; `None` for null (and arrays/tables keep only their non-null parts).
pub fn to_toml(v: &Value) -> Option<toml::Value> {
    Some(match v {
        Value::Null => return None,
        Value::Bool(b) => toml::Value::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => toml::Value::Integer(i),
            None => toml::Value::Float(n.as_f64()?),
        },
        Value::String(s) => toml::Value::String(s.clone()),
        Value::Array(a) => toml::Value::Array(a.iter().filter_map(to_toml).collect()),
        Value::Object(m) => toml::Value::Table(
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), to_toml(v)?)))
                .collect(),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_text_reads_back_as_itself() {
        for s in [
            "plain",
            "with \"quotes\" and \\",
            "tab\there",
            "line\nbreak",
            "bell\u{7}",
        ] {
            let doc = format!("a = {}\nb = {}\n", quote(s), quote_prompt(s));
            let t: toml::Table = toml::from_str(&doc).unwrap();
            assert_eq!(t["a"].as_str(), Some(s));
            assert_eq!(t["b"].as_str(), Some(s));
        }
    }

    #[test]
    fn template_syntax_in_the_request_is_kept_verbatim() {
        assert_eq!(literal("fix {{ x }}"), "{% raw %}fix {{ x }}{% endraw %}");
        assert_eq!(literal("fix x"), "fix x");
        let ctx = serde_json::json!({});
        assert_eq!(
            crate::template::render(&literal("fix {{ x }}"), &ctx).unwrap(),
            "fix {{ x }}"
        );
    }

    #[test]
    fn context_keeps_nested_values_and_drops_nulls() {
        let ctx: Map<String, Value> = serde_json::from_str(
            r#"{"project_path": ".", "n": 3, "gone": null, "deep": {"a": [1, null]}}"#,
        )
        .unwrap();
        let text = context_table(&ctx);
        let t: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(t["context"]["project_path"].as_str(), Some("."));
        assert_eq!(t["context"]["deep"]["a"].as_array().map(Vec::len), Some(1));
        assert!(t["context"].get("gone").is_none());
    }
}
