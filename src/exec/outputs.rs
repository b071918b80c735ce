//! The outputs file a command task writes (`TASKDECK_OUTPUT`): one JSON object, or `key=value`
//! lines whose values are JSON when they parse as JSON and plain strings otherwise.

use std::path::Path;

use serde_json::{Map, Value};

#[derive(Debug, thiserror::Error)]
pub enum OutputsError {
    #[error("outputs are {bytes} bytes, over the limit of {limit} (defaults.max_output_bytes)")]
    TooBig { bytes: u64, limit: usize },
    #[error("cannot read the outputs file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the outputs file is not UTF-8 text")]
    NotUtf8,
    #[error("the outputs file is not a valid JSON object: {0}")]
    BadJson(serde_json::Error),
    #[error("outputs line {line} is not `key=value`: {text:?}")]
    BadLine { line: usize, text: String },
    #[error("outputs line {line} has an empty key")]
    EmptyKey { line: usize },
}

/// Reads and parses the outputs file, and removes it: a missing or empty file means no
/// outputs. One `open` for the usual case, a task that wrote none. Blocking, but the file is
/// small and on tmpfs: cheaper than two hops to the blocking pool.
pub fn take(path: &Path, limit: usize) -> Result<Map<String, Value>, OutputsError> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let read_err = |source| OutputsError::Read {
        path: path.display().to_string(),
        source,
    };
    // Non-blocking: a FIFO put in the file's place must not hang the engine. Not through a
    // symbolic link: the file is the task's own, and nothing of this attempt may outlive it.
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(path);
    if matches!(&opened, Err(e) if e.kind() == std::io::ErrorKind::NotFound) {
        return Ok(Map::new());
    }
    // It has served its purpose, whatever it holds; an open file reads on without its name.
    let _ = std::fs::remove_file(path);
    let file = opened.map_err(|e| match e.raw_os_error() {
        Some(libc::ELOOP) => read_err(std::io::Error::other(
            "it is a symbolic link; write the outputs into the file itself",
        )),
        _ => read_err(e),
    })?;
    let meta = file.metadata().map_err(read_err)?;
    if !meta.is_file() {
        return Err(read_err(std::io::Error::other("not a regular file")));
    }
    let len = meta.len();
    if len == 0 {
        return Ok(Map::new());
    }
    // Refuse before reading, so a runaway task cannot make us load gigabytes.
    if len > limit as u64 {
        return Err(OutputsError::TooBig { bytes: len, limit });
    }
    let mut bytes = Vec::with_capacity(len as usize);
    // A file still growing after the `stat` is cut one byte past the limit, then refused.
    file.take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() > limit {
        return Err(OutputsError::TooBig {
            bytes: bytes.len() as u64,
            limit,
        });
    }
    let text = String::from_utf8(bytes).map_err(|_| OutputsError::NotUtf8)?;
    let map = parse(&text)?;
    let json_len = serde_json::to_vec(&map).map_or(0, |v| v.len());
    if json_len > limit {
        return Err(OutputsError::TooBig {
            bytes: json_len as u64,
            limit,
        });
    }
    Ok(map)
}

pub fn parse(text: &str) -> Result<Map<String, Value>, OutputsError> {
    let trimmed = text.trim();
    if trimmed.starts_with('{') {
        return serde_json::from_str::<Map<String, Value>>(trimmed).map_err(OutputsError::BadJson);
    }
    let mut map = Map::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(OutputsError::BadLine {
                line: n + 1,
                text: line.to_string(),
            });
        };
        let key = key.trim();
        if key.is_empty() {
            return Err(OutputsError::EmptyKey { line: n + 1 });
        }
        let value = value.trim();
        let value = serde_json::from_str::<Value>(value)
            .unwrap_or_else(|_| Value::String(value.to_string()));
        // Later keys win: `insert` replaces.
        map.insert(key.to_string(), value);
    }
    Ok(map)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_value_lines_with_json_values() {
        let text = "\n# a comment\nname=build\ncount=3\nratio = 0.5\nok=true\nnothing=null\n\
                    quoted=\"a b\"\nlist=[1,2]\nobj={\"a\":1}\nver=007\nurl=http://x/?a=b\nname=final\n\
                    empty=\n";
        let got = parse(text).unwrap();
        assert_eq!(
            Value::Object(got),
            json!({
                "name": "final", "count": 3, "ratio": 0.5, "ok": true, "nothing": null,
                "quoted": "a b", "list": [1, 2], "obj": {"a": 1}, "ver": "007",
                "url": "http://x/?a=b", "empty": ""
            })
        );
    }

    #[test]
    fn one_json_object() {
        let got = parse("  {\"a\": [1, {\"b\": null}], \"c\": \"d\"}\n\n").unwrap();
        assert_eq!(Value::Object(got), json!({"a": [1, {"b": null}], "c": "d"}));
        assert!(parse("").unwrap().is_empty());
    }

    #[test]
    fn errors_name_the_problem() {
        let e = parse("a=1\n\njust words\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "outputs line 3 is not `key=value`: \"just words\""
        );
        assert_eq!(
            parse("=1").unwrap_err().to_string(),
            "outputs line 1 has an empty key"
        );
        assert!(matches!(parse("{\"a\": 1"), Err(OutputsError::BadJson(_))));
    }

    #[test]
    fn size_limit_and_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outputs");
        assert!(take(&path, 10).unwrap().is_empty());
        std::fs::write(&path, "k=0123456789").unwrap();
        let e = take(&path, 10).unwrap_err();
        assert_eq!(
            e.to_string(),
            "outputs are 12 bytes, over the limit of 10 (defaults.max_output_bytes)"
        );
        assert!(!path.exists(), "taken, even when refused");
        // Small file, but larger once it is JSON.
        std::fs::write(&path, "a=1\nb=2").unwrap();
        assert!(matches!(
            take(&path, 8),
            Err(OutputsError::TooBig { bytes: 13, .. })
        ));
        std::fs::write(&path, "a=1\nb=2").unwrap();
        assert_eq!(take(&path, 100).unwrap().len(), 2);
        assert!(!path.exists());
    }

    #[test]
    fn something_else_in_its_place_is_refused_without_hanging() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outputs");
        // A FIFO with no writer would block a plain open forever.
        let made = std::process::Command::new("mkfifo").arg(&path).status();
        assert!(made.unwrap().success());
        let e = take(&path, 100).unwrap_err().to_string();
        assert!(e.ends_with("not a regular file"), "{e}");
        assert!(!path.exists());
        std::fs::create_dir(&path).unwrap();
        let e = take(&path, 100).unwrap_err().to_string();
        assert!(e.ends_with("not a regular file"), "{e}");
        std::fs::remove_dir(&path).unwrap();
        // A link, even one to nothing, is refused and removed.
        std::os::unix::fs::symlink(dir.path().join("missing"), &path).unwrap();
        let e = take(&path, 100).unwrap_err().to_string();
        assert!(e.contains("symbolic link"), "{e}");
        assert!(path.symlink_metadata().is_err(), "the link is gone");
    }
}
