//! Pure parsers for the small values of the format: ids, priorities, durations, builtins.

use std::time::Duration;

use super::Builtin;

/// A failed parse: what is wrong and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bad {
    pub message: String,
    pub hint: String,
}

fn bad(message: impl Into<String>, hint: impl Into<String>) -> Bad {
    Bad {
        message: message.into(),
        hint: hint.into(),
    }
}

/// Task, gate and agent names: `^[A-Za-z_][A-Za-z0-9_-]*$`. No dots, which would clash with
/// `tasks.ID.outputs` paths, and no brackets, which matrix instance ids use.
pub fn is_valid_id(id: &str) -> bool {
    let mut chars = id.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// A version of `id` that is valid, for hints.
pub fn fix_id(id: &str) -> String {
    let mut out: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if !out.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        out.insert(0, '_');
    }
    out
}

pub const PRIORITY_NAMES: [(&str, u8); 5] = [
    ("low", 3),
    ("normal", 5),
    ("high", 7),
    ("urgent", 9),
    ("critical", 10),
];

const PRIORITY_HINT: &str =
    "use low, normal, high, urgent, critical, or an integer from 1 (lowest) to 10 (highest)";

pub fn priority_name(name: &str) -> Result<u8, Bad> {
    PRIORITY_NAMES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, p)| *p)
        .ok_or_else(|| {
            let hint = match super::suggest::closest(name, PRIORITY_NAMES.iter().map(|(n, _)| *n)) {
                Some(c) => format!("did you mean `{c}`? {PRIORITY_HINT}"),
                None => PRIORITY_HINT.to_string(),
            };
            bad(format!("unknown priority `{name}`"), hint)
        })
}

pub fn priority_number(n: i64) -> Result<u8, Bad> {
    u8::try_from(n)
        .ok()
        .filter(|p| (1..=10).contains(p))
        .ok_or_else(|| bad(format!("priority {n} is out of range"), PRIORITY_HINT))
}

/// A humantime duration such as `5m`, `2s`, `1h 30m`, `250ms`.
pub fn duration(s: &str) -> Result<Duration, Bad> {
    humantime::parse_duration(s.trim()).map_err(|e| {
        bad(
            format!("invalid duration `{s}`: {e}"),
            "write a duration like \"30s\", \"5m\", \"1h 30m\" or \"250ms\"",
        )
    })
}

const BUILTIN_HINT: &str = "builtins are \"noop\", \"fail\", \"sleep DURATION\" and \"echo TEXT\"";

/// `noop` | `fail` | `sleep DURATION` | `echo TEXT`.
pub fn builtin(s: &str) -> Result<Builtin, Bad> {
    let s = s.trim();
    let (op, arg) = match s.split_once(char::is_whitespace) {
        Some((op, arg)) => (op, arg.trim()),
        None => (s, ""),
    };
    match (op, arg) {
        ("noop", "") => Ok(Builtin::Noop),
        ("fail", "") => Ok(Builtin::Fail),
        ("noop" | "fail", _) => Err(bad(
            format!("builtin `{op}` takes no argument"),
            format!("write just \"{op}\""),
        )),
        ("sleep", "") => Err(bad(
            "builtin `sleep` needs a duration",
            "write e.g. \"sleep 2s\"",
        )),
        ("sleep", d) => duration(d)
            .map(Builtin::Sleep)
            .map_err(|e| bad(e.message, "write e.g. \"sleep 2s\" or \"sleep 500ms\"")),
        ("echo", text) => Ok(Builtin::Echo(text.to_string())),
        _ => {
            let hint = match super::suggest::closest(op, ["noop", "fail", "sleep", "echo"]) {
                Some(c) => format!("did you mean `{c}`? {BUILTIN_HINT}"),
                None => BUILTIN_HINT.to_string(),
            };
            Err(bad(format!("unknown builtin `{s}`"), hint))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        for ok in ["a", "build", "_x", "t-1", "A_b-9"] {
            assert!(is_valid_id(ok), "{ok}");
        }
        for bad in ["", "1a", "-a", "a.b", "a b", "a[x]", "é"] {
            assert!(!is_valid_id(bad), "{bad}");
        }
        assert_eq!(fix_id("a.b"), "a_b");
        assert_eq!(fix_id("1a"), "_1a");
        assert!(is_valid_id(&fix_id("9 x.y")));
    }

    #[test]
    fn priorities() {
        assert_eq!(priority_name("low"), Ok(3));
        assert_eq!(priority_name("normal"), Ok(5));
        assert_eq!(priority_name("HIGH"), Ok(7));
        assert_eq!(priority_name("urgent"), Ok(9));
        assert_eq!(priority_name("critical"), Ok(10));
        let e = priority_name("hgh").unwrap_err();
        assert!(e.hint.contains("`high`"), "{e:?}");
        assert_eq!(priority_number(1), Ok(1));
        assert_eq!(priority_number(10), Ok(10));
        assert!(priority_number(0).is_err());
        assert!(priority_number(11).is_err());
        assert!(priority_number(-3).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(duration("5 minutes please").is_err());
        assert!(duration("").is_err());
        assert!(duration("10").is_err());
    }

    #[test]
    fn builtins() {
        assert_eq!(builtin("noop"), Ok(Builtin::Noop));
        assert_eq!(builtin(" fail "), Ok(Builtin::Fail));
        assert_eq!(
            builtin("sleep 2s"),
            Ok(Builtin::Sleep(Duration::from_secs(2)))
        );
        assert_eq!(
            builtin("echo hello  world"),
            Ok(Builtin::Echo("hello  world".into()))
        );
        assert_eq!(builtin("echo"), Ok(Builtin::Echo(String::new())));
        assert!(builtin("sleep").is_err());
        assert!(builtin("sleep forever").is_err());
        assert!(builtin("noop 1").is_err());
        let e = builtin("nop").unwrap_err();
        assert!(e.hint.contains("`noop`"), "{e:?}");
    }
}
