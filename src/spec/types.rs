//! The validated workflow: what the engine runs. Produced by `spec::load`/`spec::parse_str`
//! after every check has passed, so the engine can trust it (indices resolve, no cycles).

use std::time::Duration;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Index of a task in `Workflow::tasks` (file order, after matrix expansion).
pub type TaskIdx = u32;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workflow {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Workflow-wide concurrency cap; `None` means only the engine's global limit applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_parallel: Option<u32>,
    /// The workflow context layer (`[context]`).
    #[serde(default)]
    pub context: Map<String, Value>,
    /// Secret name -> where its value comes from. Values are resolved at run start, never stored.
    #[serde(default)]
    pub secrets: IndexMap<String, SecretSource>,
    /// Agents declared by this workflow (the config roster and the default `local` agent add to these).
    #[serde(default)]
    pub agents: IndexMap<String, AgentSpec>,
    /// Tasks in file order, matrix tasks expanded in place.
    pub tasks: Vec<TaskSpec>,
    #[serde(default)]
    pub gates: Vec<GateSpec>,
}

impl Workflow {
    /// A workflow of `tasks` with no context, secrets, agents of its own or gates.
    pub fn new(name: impl Into<String>, tasks: Vec<TaskSpec>) -> Workflow {
        Workflow {
            name: name.into(),
            description: None,
            max_parallel: None,
            context: Map::new(),
            secrets: IndexMap::new(),
            agents: IndexMap::new(),
            tasks,
            gates: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretSource {
    /// Read from this environment variable at run start.
    Env(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentKind {
    /// Runs `run` commands and builtins as local processes.
    Local,
    /// Wraps a task's prompt and context in the agent's command template (AI CLIs).
    Command,
    /// POSTs the task assignment to a URL.
    Http,
    /// OpenAI-compatible chat completions.
    Llm,
}

impl AgentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AgentKind::Local => "local",
            AgentKind::Command => "command",
            AgentKind::Http => "http",
            AgentKind::Llm => "llm",
        }
    }

    /// Whether an agent of this kind can carry out a task of the given action.
    pub fn can_run(self, action: &Action) -> bool {
        matches!(
            (self, action),
            (AgentKind::Local, Action::Run(_) | Action::Builtin(_))
                | (AgentKind::Command | AgentKind::Llm, Action::Prompt(_))
                | (AgentKind::Http, Action::Run(_) | Action::Prompt(_))
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentSpec {
    pub kind: AgentKind,
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// Concurrent tasks on this agent.
    #[serde(default = "one")]
    pub slots: u32,
    /// `command` agents: template rendered per task (Jinja-style, sees `task`, `context`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// `http` agents: URL the assignment is POSTed to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// `llm` agents: OpenAI-compatible base URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Template, usually `{{ secrets.NAME }}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Extra environment for processes this agent starts.
    #[serde(default)]
    pub env: IndexMap<String, String>,
}

fn one() -> u32 {
    1
}

impl AgentSpec {
    /// The implicit `local` agent that always exists.
    pub fn default_local(slots: u32) -> Self {
        AgentSpec {
            kind: AgentKind::Local,
            capabilities: Vec::new(),
            slots,
            command: None,
            url: None,
            endpoint: None,
            model: None,
            api_key: None,
            system: None,
            temperature: None,
            max_tokens: None,
            env: IndexMap::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type", content = "value")]
pub enum Action {
    /// A shell command line (template).
    Run(String),
    Builtin(Builtin),
    /// A prompt (template) for an AI agent.
    Prompt(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "op", content = "arg")]
pub enum Builtin {
    Noop,
    Fail,
    #[serde(with = "humantime_serde_compat")]
    Sleep(Duration),
    Echo(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backoff {
    Fixed,
    Exponential,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Total attempts including the first (1 = no retry).
    pub attempts: u32,
    pub backoff: Backoff,
    #[serde(with = "humantime_serde_compat")]
    pub delay: Duration,
    #[serde(with = "humantime_serde_compat")]
    pub max_delay: Duration,
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 1,
            backoff: Backoff::Fixed,
            delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            jitter: false,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Resources {
    #[serde(default)]
    pub cpu: f64,
    #[serde(default)]
    pub memory_mb: u64,
    #[serde(default)]
    pub gpu: u32,
}

impl Resources {
    pub fn is_zero(&self) -> bool {
        self.cpu == 0.0 && self.memory_mb == 0 && self.gpu == 0
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSpec {
    /// Unique id, e.g. `build` or `test[os=linux]` for a matrix instance.
    pub id: String,
    /// The table key it came from (equals `id` unless a matrix expanded it).
    pub base: String,
    /// This instance's matrix values (empty unless expanded).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub matrix: IndexMap<String, Value>,
    pub action: Action,
    /// Resolved dependencies (indices into `Workflow::tasks`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub needs: Vec<TaskIdx>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requires: Vec<String>,
    /// Pin to one agent by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// 1 (lowest) ..= 10 (highest); `normal` = 5.
    #[serde(
        default = "normal_priority",
        skip_serializing_if = "is_normal_priority"
    )]
    pub priority: u8,
    #[serde(
        default,
        with = "humantime_serde_compat::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout: Option<Duration>,
    #[serde(default, skip_serializing_if = "RetryPolicy::is_default")]
    pub retry: RetryPolicy,
    #[serde(default, skip_serializing_if = "Resources::is_zero")]
    pub resources: Resources,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub locks: Vec<String>,
    /// CEL condition; false -> skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub approval: bool,
    /// Context this task may read; `None` = default (direct upstream outputs and the context layers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reads: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub env: IndexMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub continue_on_failure: bool,
    /// Saga compensation command, run for succeeded tasks when the run fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compensate: Option<String>,
    /// What a `prompt` task's reply is: plain text, or JSON parsed into the `json` output.
    #[serde(default, skip_serializing_if = "ReplyFormat::is_text")]
    pub format: ReplyFormat,
    /// JSON Schema the parsed reply must match (with `format = "json"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
    /// Run the same work on several agents at once and resolve their outputs (`agents` and
    /// `resolve` in the file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fanout: Option<Fanout>,
}

/// A multi-agent task: which agents run it and how their outputs become the task's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fanout {
    pub agents: FanoutAgents,
    pub resolve: Resolve,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FanoutAgents {
    /// `agents = N`: the N best-scoring capable agents.
    Count(u32),
    /// `agents = ["a", "b"]`: exactly these, in this order (the order breaks ties).
    Named(Vec<String>),
}

impl FanoutAgents {
    pub fn len(&self) -> usize {
        match self {
            FanoutAgents::Count(n) => *n as usize,
            FanoutAgents::Named(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How the branches' outputs become the task's outputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "strategy")]
pub enum Resolve {
    /// The first successful branch wins; the others are cancelled.
    First,
    /// The union of every successful branch's outputs; disagreeing keys are conflicts and the
    /// value of the first agent (in branch order) is kept.
    Merge,
    /// A vote on one output (a key, or a dotted path into a JSON output such as `json.verdict`):
    /// more than half of the branches must agree, else the attempt fails with a conflict.
    Majority { field: String },
    /// A judge agent sees every candidate and its reply decides the outputs.
    Judge {
        agent: String,
        /// Template for the judge's prompt (sees `task`, `candidates`, the context).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prompt: Option<String>,
    },
}

impl Resolve {
    pub fn name(&self) -> &'static str {
        match self {
            Resolve::First => "first",
            Resolve::Merge => "merge",
            Resolve::Majority { .. } => "majority",
            Resolve::Judge { .. } => "judge",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplyFormat {
    #[default]
    Text,
    Json,
}

impl ReplyFormat {
    pub fn is_text(&self) -> bool {
        *self == ReplyFormat::Text
    }
}

// Defaults are left out when a workflow is serialised (the journal stores one per run, and a
// 100,000-task run should not spend 40 MB saying "priority 5, one attempt" for every task).
fn normal_priority() -> u8 {
    5
}

fn is_normal_priority(p: &u8) -> bool {
    *p == 5
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl RetryPolicy {
    pub fn is_default(&self) -> bool {
        *self == RetryPolicy::default()
    }
}

impl TaskSpec {
    /// A task with every optional field at its default (no needs, priority normal, one attempt).
    pub fn new(id: impl Into<String>, action: Action) -> TaskSpec {
        let id = id.into();
        TaskSpec {
            base: id.clone(),
            id,
            matrix: IndexMap::new(),
            action,
            needs: Vec::new(),
            requires: Vec::new(),
            agent: None,
            priority: 5,
            timeout: None,
            retry: RetryPolicy::default(),
            resources: Resources::default(),
            locks: Vec::new(),
            when: None,
            approval: false,
            reads: None,
            env: IndexMap::new(),
            cwd: None,
            continue_on_failure: false,
            compensate: None,
            format: ReplyFormat::Text,
            schema: None,
            fanout: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateLevel {
    Input,
    Process,
    Output,
    Integration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFail {
    Fail,
    Pause,
    Retry,
    Warn,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    /// A command; exit 0 passes, its output is the message.
    Run(String),
    /// A CEL expression over the context; true passes.
    Expr(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckSpec {
    pub name: String,
    pub kind: CheckKind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateSpec {
    pub id: String,
    /// Gated tasks (resolved, matrix bases expanded).
    pub after: Vec<TaskIdx>,
    pub level: GateLevel,
    pub checks: Vec<CheckSpec>,
    pub on_fail: OnFail,
}

/// Durations as humantime strings ("5m", "2s") in JSON/TOML.
pub mod humantime_serde_compat {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(serde::de::Error::custom)
    }

    pub mod option {
        use super::*;

        pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => super::serialize(d, s),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
            let s: Option<String> = Option::deserialize(d)?;
            s.map(|s| humantime::parse_duration(&s).map_err(serde::de::Error::custom))
                .transpose()
        }
    }
}
