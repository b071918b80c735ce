//! What an `http` agent answers, read from JSON (pure). A result — the body of a synchronous
//! `200` or of a result callback — is
//! `{"status": "succeeded" | "failed", "outputs": {...}, "log": "..." | ["..."], "error": "..."}`;
//! an acceptance (`202`) may carry `{"cancel_url": "..."}`.

use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq)]
pub struct AgentReply {
    pub succeeded: bool,
    pub outputs: Map<String, Value>,
    /// Log lines, in order.
    pub log: Vec<String>,
    /// Why it failed (may be empty on failure too).
    pub error: String,
    pub exit_code: Option<i32>,
}

/// Reads a result; the error says what is wrong with it, for the task's error.
pub fn parse_result(v: &Value) -> Result<AgentReply, String> {
    let Value::Object(o) = v else {
        return Err(format!("a result must be a JSON object, not {}", kind(v)));
    };
    let succeeded = match o.get("status").and_then(Value::as_str) {
        Some("succeeded" | "success" | "ok") => true,
        Some("failed" | "failure" | "error") => false,
        Some(other) => {
            return Err(format!(
                "`status` is `{other}`; a result's status is \"succeeded\" or \"failed\""
            ));
        }
        None => {
            return Err("the result has no `status` (\"succeeded\" or \"failed\")".to_string());
        }
    };
    let outputs = match o.get("outputs") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(other) => {
            return Err(format!(
                "`outputs` must be a JSON object, not {}",
                kind(other)
            ));
        }
    };
    Ok(AgentReply {
        succeeded,
        outputs,
        log: log_lines(o.get("log"))?,
        error: o
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        exit_code: o
            .get("exit_code")
            .and_then(Value::as_i64)
            .and_then(|c| i32::try_from(c).ok()),
    })
}

/// `"a\nb"` or `["a", "b"]` as lines.
pub fn log_lines(v: Option<&Value>) -> Result<Vec<String>, String> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(s.lines().map(str::to_string).collect()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|l| {
                l.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("`log` entries must be strings, not {}", kind(l)))
            })
            .collect(),
        Some(other) => Err(format!(
            "`log` must be a string or a list of strings, not {}",
            kind(other)
        )),
    }
}

/// The `cancel_url` of an acceptance, if it gave one (an empty or non-JSON body gives none).
pub fn cancel_url(body: &str) -> Option<String> {
    serde_json::from_str::<Value>(body)
        .ok()?
        .get("cancel_url")?
        .as_str()
        .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
        .map(str::to_string)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn results_read_status_outputs_and_log() {
        let r = parse_result(&json!({
            "status": "succeeded", "outputs": {"n": 3}, "log": "one\ntwo"
        }))
        .unwrap();
        assert!(r.succeeded);
        assert_eq!(r.outputs["n"], 3);
        assert_eq!(r.log, ["one", "two"]);
        let r = parse_result(&json!({"status": "failed", "error": "boom", "log": ["x"]})).unwrap();
        assert!(!r.succeeded);
        assert_eq!(r.error, "boom");
        assert_eq!(r.log, ["x"]);
    }

    #[test]
    fn malformed_results_say_what_is_wrong() {
        assert!(parse_result(&json!([1])).unwrap_err().contains("object"));
        assert!(
            parse_result(&json!({}))
                .unwrap_err()
                .contains("no `status`")
        );
        assert!(
            parse_result(&json!({"status": "maybe"}))
                .unwrap_err()
                .contains("`maybe`")
        );
        assert!(
            parse_result(&json!({"status": "ok", "outputs": 1}))
                .unwrap_err()
                .contains("`outputs`")
        );
        assert!(
            parse_result(&json!({"status": "ok", "log": [1]}))
                .unwrap_err()
                .contains("strings")
        );
    }

    #[test]
    fn acceptances_may_name_a_cancel_url() {
        assert_eq!(
            cancel_url(r#"{"cancel_url": "http://w/cancel/1"}"#).as_deref(),
            Some("http://w/cancel/1")
        );
        assert_eq!(cancel_url(""), None);
        assert_eq!(cancel_url(r#"{"cancel_url": "file:///x"}"#), None);
    }
}
