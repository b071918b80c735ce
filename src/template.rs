//! Jinja-style templates (`{{ context.x }}`, `{% if %}`) for commands, prompts, env and cwd.
//!
//! One shared minijinja environment: strict undefined (a missing variable is an error that names
//! it), trailing newlines kept, filters `tojson` (builtin) and `shquote` (POSIX sh quoting).
//! Strings without template syntax never touch minijinja.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use minijinja::syntax::SyntaxConfig;
use minijinja::{Environment, ErrorKind, UndefinedBehavior, Value as JinjaValue};
use serde_json::Value;

static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // Commands and prompts must come out exactly as written, final newline included.
    if let Ok(syntax) = SyntaxConfig::builder().keep_trailing_newline(true).build() {
        env.set_syntax(syntax);
    }
    env.add_filter("shquote", |v: JinjaValue| -> String {
        match v.as_str() {
            Some(s) => shquote(s),
            None => shquote(&v.to_string()),
        }
    });
    env
});

/// Why a template does not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TemplateError {
    pub message: String,
    /// 1-based line inside the template, when known.
    pub line: Option<usize>,
}

impl From<minijinja::Error> for TemplateError {
    fn from(e: minijinja::Error) -> Self {
        let message = match e.detail() {
            Some(d) => format!("{}: {d}", e.kind()),
            None => e.kind().to_string(),
        };
        TemplateError {
            message,
            line: e.line(),
        }
    }
}

/// Whether `src` contains template syntax at all (`{{`, `{%` or `{#`).
pub fn is_template(src: &str) -> bool {
    src.contains("{{") || src.contains("{%") || src.contains("{#")
}

/// Checks that `src` compiles.
pub fn check(src: &str) -> Result<(), TemplateError> {
    if !is_template(src) {
        return Ok(());
    }
    ENV.template_from_str(src)?;
    Ok(())
}

/// Renders `src` with the top-level keys of `ctx` as variables.
pub fn render(src: &str, ctx: &Value) -> Result<String, String> {
    if !is_template(src) {
        return Ok(src.to_string());
    }
    let tmpl = ENV
        .template_from_str(src)
        .map_err(|e| TemplateError::from(e).message)?;
    tmpl.render(JinjaValue::from(minijinja::value::Serde(ctx)))
        .map_err(|e| {
            if e.kind() == ErrorKind::UndefinedError
                && let Some(path) = first_missing(&tmpl.undeclared_variables(true), ctx)
            {
                return format!("undefined variable `{path}` in template");
            }
            TemplateError::from(e).message
        })
}

/// Top-level variables `src` reads that it does not define itself (`{% set %}`, loops).
/// Global functions such as `range` are not listed.
pub fn undeclared_top_level(src: &str) -> Result<BTreeSet<String>, TemplateError> {
    undeclared(src, false)
}

/// Like [`undeclared_top_level`] but with attribute paths: `secrets.openai`, `context.x`.
pub fn undeclared_paths(src: &str) -> Result<BTreeSet<String>, TemplateError> {
    undeclared(src, true)
}

fn undeclared(src: &str, nested: bool) -> Result<BTreeSet<String>, TemplateError> {
    if !is_template(src) {
        return Ok(BTreeSet::new());
    }
    let tmpl = ENV.template_from_str(src)?;
    Ok(tmpl
        .undeclared_variables(nested)
        .into_iter()
        .filter(|v| {
            let top = v.split('.').next().unwrap_or(v);
            ENV.globals().all(|(g, _)| g != top)
        })
        .collect())
}

/// The shortest dotted path among `paths` whose value is absent from `ctx`.
fn first_missing(paths: &std::collections::HashSet<String>, ctx: &Value) -> Option<String> {
    let mut sorted: Vec<&String> = paths.iter().collect();
    sorted.sort();
    for path in sorted {
        let mut cur = ctx;
        let mut walked = Vec::new();
        for seg in path.split('.') {
            walked.push(seg);
            match cur.get(seg) {
                Some(next) => cur = next,
                None => return Some(walked.join(".")),
            }
        }
    }
    None
}

/// Quotes `s` as one word for POSIX sh: safe strings as they are, others in single quotes.
pub fn shquote(s: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c);
    if !s.is_empty() && s.chars().all(safe) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn plain_strings_pass_through() {
        assert_eq!(render("echo }} {", &json!({})).unwrap(), "echo }} {");
        assert!(check("no template here").is_ok());
        assert!(undeclared_top_level("plain").unwrap().is_empty());
    }

    #[test]
    fn renders_context_and_keeps_trailing_newline() {
        let ctx = json!({"context": {"path": "/src"}, "matrix": {"os": "linux"}});
        assert_eq!(
            render("cd {{ context.path }} && make {{ matrix.os }}\n", &ctx).unwrap(),
            "cd /src && make linux\n"
        );
    }

    #[test]
    fn missing_variable_is_named() {
        let err = render("x {{ context.nope }}", &json!({"context": {}})).unwrap_err();
        assert!(err.contains("context.nope"), "{err}");
        let err = render("{{ secrets.key }}", &json!({})).unwrap_err();
        assert!(err.contains("secrets"), "{err}");
    }

    #[test]
    fn filters() {
        let ctx = json!({"task": {"prompt": "say \"hi\""}, "s": "it's a b"});
        assert_eq!(
            render("claude -p {{ task.prompt | tojson }}", &ctx).unwrap(),
            r#"claude -p "say \"hi\"""#
        );
        assert_eq!(
            render("echo {{ s | shquote }}", &ctx).unwrap(),
            r"echo 'it'\''s a b'"
        );
    }

    #[test]
    fn shquote_cases() {
        assert_eq!(shquote("abc-1.2/x"), "abc-1.2/x");
        assert_eq!(shquote(""), "''");
        assert_eq!(shquote("a b"), "'a b'");
        assert_eq!(shquote("$(rm)"), "'$(rm)'");
        assert_eq!(shquote("'"), r"''\'''");
    }

    #[test]
    fn check_reports_line() {
        let err = check("ok\n{{ broken ").unwrap_err();
        assert_eq!(err.line, Some(2));
        assert!(check("{% if x %}y{% endif %}").is_ok());
        assert!(check("{% if x %}y").is_err());
    }

    #[test]
    fn undeclared_variables() {
        let src = "{{ context.a }} {{ secrets.k }} {% for i in range(3) %}{{ i }}{% endfor %}\
                   {% set y = 1 %}{{ y }} {{ bogus }}";
        let top: Vec<_> = undeclared_top_level(src).unwrap().into_iter().collect();
        assert_eq!(top, vec!["bogus", "context", "secrets"]);
        let paths = undeclared_paths(src).unwrap();
        assert!(paths.contains("secrets.k"), "{paths:?}");
        assert!(paths.contains("context.a"), "{paths:?}");
    }
}
