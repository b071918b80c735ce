//! A planning request, shaped after the seeds' Task Graph Constructor input schema: what kind
//! of work, how important, what it must do, and how carefully to go about it.

use serde::Deserialize;
use serde_json::{Map, Value};

/// The request types the seeds name; each has a built-in template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum RequestType {
    FeatureDevelopment,
    DocumentationUpdate,
    SystemAnalysis,
    ReleaseManagement,
    BugInvestigation,
}

impl RequestType {
    pub const ALL: [RequestType; 5] = [
        RequestType::FeatureDevelopment,
        RequestType::DocumentationUpdate,
        RequestType::SystemAnalysis,
        RequestType::ReleaseManagement,
        RequestType::BugInvestigation,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RequestType::FeatureDevelopment => "feature_development",
            RequestType::DocumentationUpdate => "documentation_update",
            RequestType::SystemAnalysis => "system_analysis",
            RequestType::ReleaseManagement => "release_management",
            RequestType::BugInvestigation => "bug_investigation",
        }
    }
}

/// `fast` drops the optional steps, `thorough` adds reviews and an approval before anything
/// irreversible; `balanced` is in between.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    Fast,
    #[default]
    Balanced,
    Thorough,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Fast => "fast",
            Strategy::Balanced => "balanced",
            Strategy::Thorough => "thorough",
        }
    }
}

/// The seeds' priorities; `medium` is taskdeck's `normal`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum RequestPriority {
    Low,
    #[default]
    Medium,
    High,
    Urgent,
}

impl RequestPriority {
    /// The workflow file's name for it.
    pub fn task_priority(self) -> &'static str {
        match self {
            RequestPriority::Low => "low",
            RequestPriority::Medium => "normal",
            RequestPriority::High => "high",
            RequestPriority::Urgent => "urgent",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Requirements {
    #[serde(default)]
    pub functional: Vec<String>,
    #[serde(default)]
    pub non_functional: Vec<String>,
    #[serde(default)]
    pub constraints: Vec<String>,
}

impl Requirements {
    pub fn is_empty(&self) -> bool {
        self.functional.is_empty() && self.non_functional.is_empty() && self.constraints.is_empty()
    }
}

/// A quality gate the plan must hold: a command whose exit 0 means it passed.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum GateRequest {
    /// Just the command: `"cargo test"`.
    Command(String),
    Named {
        name: String,
        run: String,
    },
}

impl GateRequest {
    pub fn name(&self) -> &str {
        match self {
            GateRequest::Command(c) => c,
            GateRequest::Named { name, .. } => name,
        }
    }

    pub fn run(&self) -> &str {
        match self {
            GateRequest::Command(c) => c,
            GateRequest::Named { run, .. } => run,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preferences {
    #[serde(default)]
    pub execution_strategy: Strategy,
    #[serde(default)]
    pub quality_gates: Vec<GateRequest>,
}

/// What `taskdeck plan` is asked to plan.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub request_type: RequestType,
    /// One line saying what this is about; it names the workflow.
    pub title: String,
    #[serde(default)]
    pub request_id: Option<String>,
    /// 1 (small) to 10 (large): large requests split the main work into parallel tracks.
    #[serde(default = "default_complexity")]
    pub complexity_level: u8,
    #[serde(default)]
    pub priority: RequestPriority,
    /// Becomes the workflow's `[context]` (e.g. `project_path`).
    #[serde(default)]
    pub context: Map<String, Value>,
    #[serde(default)]
    pub requirements: Requirements,
    #[serde(default)]
    pub preferences: Preferences,
}

fn default_complexity() -> u8 {
    5
}

#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("{0}")]
    Parse(String),
    #[error("complexity_level must be 1 to 10, not {0}")]
    Complexity(u8),
    #[error("the request needs a `title` that says what it is about")]
    NoTitle,
}

impl Request {
    /// Reads a request file's text: JSON when it starts with `{`, TOML otherwise.
    pub fn parse(text: &str) -> Result<Request, RequestError> {
        let req: Request = if text.trim_start().starts_with('{') {
            serde_json::from_str(text).map_err(|e| RequestError::Parse(e.to_string()))?
        } else {
            toml::from_str(text).map_err(|e| RequestError::Parse(e.to_string()))?
        };
        req.checked()
    }

    /// A request from the command line's flags alone.
    pub fn new(request_type: RequestType, title: String) -> Request {
        Request {
            request_type,
            title,
            request_id: None,
            complexity_level: default_complexity(),
            priority: RequestPriority::default(),
            context: Map::new(),
            requirements: Requirements::default(),
            preferences: Preferences::default(),
        }
    }

    pub fn checked(self) -> Result<Request, RequestError> {
        if !(1..=10).contains(&self.complexity_level) {
            return Err(RequestError::Complexity(self.complexity_level));
        }
        if self.title.trim().is_empty() {
            return Err(RequestError::NoTitle);
        }
        Ok(self)
    }

    /// A workflow name from the title: lower case, words joined by `-`, at most 48 characters.
    pub fn slug(&self) -> String {
        let mut s = String::new();
        for word in self
            .title
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
        {
            if s.len() + word.len() + 1 > 48 {
                break;
            }
            if !s.is_empty() {
                s.push('-');
            }
            s.push_str(&word.to_lowercase());
        }
        if s.is_empty() {
            self.request_type.as_str().replace('_', "-")
        } else {
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_toml_request_in_the_seeds_shape() {
        let r = Request::parse(
            r#"
request_type = "bug_investigation"
title = "Login answers 500 after the session refactor"
priority = "urgent"
complexity_level = 7
[context]
project_path = "."
[requirements]
functional = ["users can log in again"]
constraints = ["no schema change"]
[preferences]
execution_strategy = "thorough"
quality_gates = ["cargo test", { name = "lint", run = "cargo clippy" }]
"#,
        )
        .unwrap();
        assert_eq!(r.request_type, RequestType::BugInvestigation);
        assert_eq!(r.priority.task_priority(), "urgent");
        assert_eq!(r.preferences.execution_strategy, Strategy::Thorough);
        assert_eq!(r.preferences.quality_gates[1].name(), "lint");
        assert_eq!(r.preferences.quality_gates[0].run(), "cargo test");
        assert_eq!(r.slug(), "login-answers-500-after-the-session-refactor");
    }

    #[test]
    fn json_requests_and_clear_errors() {
        let r =
            Request::parse(r#"{"request_type": "system_analysis", "title": "Why is CI slow?"}"#)
                .unwrap();
        assert_eq!(r.slug(), "why-is-ci-slow");
        let e = Request::parse("request_type = \"haircut\"\ntitle = \"x\"").unwrap_err();
        assert!(e.to_string().contains("feature_development"), "{e}");
        let e = Request::parse(
            "request_type = \"system_analysis\"\ntitle = \"x\"\ncomplexity_level = 11",
        )
        .unwrap_err();
        assert!(e.to_string().contains("1 to 10"), "{e}");
        let e = Request::parse("request_type = \"system_analysis\"\ntitle = \" \"").unwrap_err();
        assert!(e.to_string().contains("title"), "{e}");
    }
}
