//! The llm planner: an `llm` agent from the config file is asked for the task graph as JSON.
//! The call is an ordinary taskdeck task on an in-memory engine, so it streams, times out and
//! retries 429/5xx answers like any other. Its answer must pass `validate`; when it does not,
//! the planner is shown the problems and asked again.

use std::fmt::Write;

use serde_json::{Map, Value};

use super::toml_text::{quote, quote_prompt, to_toml};
use super::{Agents, Request};
use crate::config::Config;
use crate::engine::{EngineHandle, EngineOptions};
use crate::model::RunState;
use crate::spec::{self, AgentKind, Format, LoadError};

#[derive(Debug, thiserror::Error)]
pub enum PlannerError {
    #[error("{0}")]
    Agent(String),
    #[error("the planner could not answer: {0}")]
    Call(String),
    #[error(
        "the planner's graph did not pass validate in {attempts} answers; the last one had these problems:\n{problems}"
    )]
    Invalid { attempts: u32, problems: String },
    #[error("cannot run the planner: {0}")]
    Engine(String),
}

/// The workflow TOML the planner agent `planner` makes for `req`, checked against `config`.
/// `file` names the workflow in messages.
pub fn plan(
    req: &Request,
    planner: &str,
    agents: &Agents,
    config: &Config,
    attempts: u32,
    file: &str,
) -> Result<String, PlannerError> {
    let agent = config.agents.get(planner).ok_or_else(|| {
        let llms: Vec<&String> = config
            .agents
            .iter()
            .filter(|(_, a)| a.kind == AgentKind::Llm)
            .map(|(n, _)| n)
            .collect();
        PlannerError::Agent(if llms.is_empty() {
            format!(
                "no agent `{planner}` in the config file; add an `llm` agent under [agents.{planner}] (kind, endpoint, model)"
            )
        } else {
            format!("no agent `{planner}` in the config file; its llm agents are {llms:?}")
        })
    })?;
    if agent.kind != AgentKind::Llm {
        return Err(PlannerError::Agent(format!(
            "agent `{planner}` is a `{}` agent; the planner must be an `llm` agent",
            agent.kind.as_str()
        )));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| PlannerError::Engine(e.to_string()))?;
    runtime.block_on(async {
        let mut opts = EngineOptions::from_config(config.clone());
        opts.journal = None;
        let engine = EngineHandle::start(opts);
        let result = ask_until_valid(&engine, req, planner, agents, config, attempts, file).await;
        let _ = engine.shutdown().await;
        result
    })
}

async fn ask_until_valid(
    engine: &EngineHandle,
    req: &Request,
    planner: &str,
    agents: &Agents,
    config: &Config,
    attempts: u32,
    file: &str,
) -> Result<String, PlannerError> {
    let mut feedback: Option<(String, String)> = None;
    let attempts = attempts.max(1);
    for n in 1..=attempts {
        let prompt = prompt(req, agents, config, feedback.as_ref());
        eprintln!("taskdeck: asking planner `{planner}` for the graph (answer {n} of {attempts})…");
        let reply = ask(engine, planner, &prompt, config).await?;
        let (text, problems) = match workflow_text(req, &reply, agents) {
            Ok(text) => match spec::parse_str(&text, file, Format::Toml, config) {
                Ok(_) => return Ok(text),
                Err(LoadError::Invalid(diags)) => {
                    let problems: Vec<String> = diags.iter().map(|d| d.to_string()).collect();
                    (text, problems.join("\n"))
                }
                Err(e) => (text, e.to_string()),
            },
            Err(e) => (reply.to_string(), e),
        };
        eprintln!("taskdeck: the planner's graph has problems:\n{problems}");
        if n == attempts {
            return Err(PlannerError::Invalid { attempts, problems });
        }
        feedback = Some((text, problems));
    }
    unreachable!("the loop returns on its last answer")
}

/// One planner call as a one-task run; the parsed JSON reply.
async fn ask(
    engine: &EngineHandle,
    planner: &str,
    prompt: &str,
    config: &Config,
) -> Result<Value, PlannerError> {
    // The prompt holds the request's own text: it is not a template.
    let body = format!(
        "{{% raw %}}{}{{% endraw %}}",
        prompt.replace("{% endraw %}", "")
    );
    let wf_text = format!(
        "name = \"plan\"\n[tasks.plan]\nagent = {}\nformat = \"json\"\ntimeout = \"10m\"\n\
         retry = {{ attempts = 3, backoff = \"exponential\", delay = \"2s\", max_delay = \"1m\" }}\n\
         prompt = {}\n",
        quote(planner),
        quote_prompt(&body)
    );
    let wf = spec::parse_str(&wf_text, "planner", Format::Toml, config).map_err(|e| {
        PlannerError::Engine(match e {
            LoadError::Invalid(d) => d
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("; "),
            e => e.to_string(),
        })
    })?;
    let run = engine
        .submit(wf, None)
        .await
        .map_err(|e| PlannerError::Engine(e.to_string()))?;
    let state = engine
        .wait_finished(&run)
        .await
        .map_err(|e| PlannerError::Engine(e.to_string()))?;
    let snapshot = engine
        .snapshot()
        .await
        .map_err(|e| PlannerError::Engine(e.to_string()))?;
    let task = snapshot.run(&run).and_then(|r| r.tasks.first());
    if state != RunState::Succeeded {
        let why = task
            .and_then(|t| t.attempts.last())
            .map(|a| a.error.clone())
            .filter(|e| !e.is_empty())
            .unwrap_or_else(|| format!("the planner run {state}"));
        return Err(PlannerError::Call(why));
    }
    task.and_then(|t| t.outputs.get("json").cloned())
        .ok_or_else(|| PlannerError::Call("the reply has no JSON".into()))
}

/// What the planner is told: the workflow format, the agents it may use, the request, and the
/// problems of its last answer.
fn prompt(
    req: &Request,
    agents: &Agents,
    config: &Config,
    feedback: Option<&(String, String)>,
) -> String {
    let mut p = String::from(
        "You are the planner of taskdeck, a workflow engine. Turn the request below into a task \
         graph: reply with one JSON object and nothing else, in this shape:\n\
         {\n  \"name\": \"short-kebab-case-name\",\n  \"description\": \"one line\",\n  \
         \"tasks\": {\n    \"TASK_ID\": {\n      \"prompt\": \"what the agent must do, in full sentences\",\n      \
         \"requires\": [\"CAPABILITY\"],\n      \"needs\": [\"IDS OF TASKS THAT MUST FINISH FIRST\"]\n    }\n  },\n  \
         \"gates\": {\n    \"GATE_ID\": {\"after\": [\"TASK_ID\"], \"checks\": [{\"name\": \"...\", \"run\": \"shell command\"}], \"on_fail\": \"fail\"}\n  }\n}\n\
         Rules: task ids use letters, digits, - and _. `needs` names only tasks in the graph and \
         never makes a cycle. A task has either `prompt` (done by an agent with the capability it \
         `requires`) or `run` (a shell command done by the `local` agent, no `requires`). \
         Optional task fields: `priority` (low, normal, high, urgent, critical), `timeout` (\"30m\"), \
         `retry` ({\"attempts\": 2, \"delay\": \"10s\"}), `approval` (true: an operator approves it \
         first; use it before anything irreversible). `gates` is optional; `on_fail` is fail, \
         pause, retry or warn. Run independent work in parallel; keep tasks small enough to check.\n",
    );
    p.push_str("\nCapabilities you may require:\n");
    for (cap, who) in capabilities(agents, config) {
        let _ = writeln!(p, "- {cap}: {who}");
    }
    let _ = write!(
        p,
        "\nThe request (request_type, title, priority, complexity 1-10, context, requirements, preferences):\n{}\n",
        serde_json::to_string_pretty(&request_json(req)).unwrap_or_default()
    );
    if let Some((previous, problems)) = feedback {
        let _ = write!(
            p,
            "\nYour previous answer did not pass validation. Previous answer:\n{previous}\n\
             Problems:\n{problems}\nReply with the corrected JSON object only.\n"
        );
    }
    p
}

/// Every capability the plan may require, with who provides it.
fn capabilities(agents: &Agents, config: &Config) -> Vec<(String, String)> {
    let mut caps: Vec<(String, String)> = Vec::new();
    for (name, a) in &config.agents {
        if a.kind == AgentKind::Local {
            continue;
        }
        for c in &a.capabilities {
            caps.push((
                c.clone(),
                format!("agent `{name}` ({} agent)", a.kind.as_str()),
            ));
        }
    }
    if *agents != Agents::Roster {
        for role in super::templates::ALL_ROLES {
            if !caps.iter().any(|(c, _)| c == role.capability()) {
                caps.push((
                    role.capability().to_string(),
                    format!("the {}", role.brief()),
                ));
            }
        }
    }
    caps
}

fn request_json(req: &Request) -> Value {
    let r = &req.requirements;
    serde_json::json!({
        "request_type": req.request_type.as_str(),
        "title": req.title,
        "priority": match req.priority {
            super::RequestPriority::Low => "low",
            super::RequestPriority::Medium => "medium",
            super::RequestPriority::High => "high",
            super::RequestPriority::Urgent => "urgent",
        },
        "complexity_level": req.complexity_level,
        "context": req.context,
        "requirements": {
            "functional": r.functional,
            "non_functional": r.non_functional,
            "constraints": r.constraints,
        },
        "preferences": {
            "execution_strategy": req.preferences.execution_strategy.as_str(),
            "quality_gates": req.preferences.quality_gates.iter()
                .map(|g| serde_json::json!({"name": g.name(), "run": g.run()}))
                .collect::<Vec<_>>(),
        },
    })
}

/// The reply as a workflow file: a header, the request's context, the planner's graph, and
/// the role agents for the capabilities it used that no agent of its own provides.
fn workflow_text(req: &Request, reply: &Value, agents: &Agents) -> Result<String, String> {
    let Value::Object(graph) = reply else {
        return Err("the reply is JSON but not an object with `tasks`".into());
    };
    let mut graph: Map<String, Value> = graph.clone();
    if !graph.contains_key("name") {
        graph.insert("name".into(), req.slug().into());
    }
    let mut context = req.context.clone();
    if let Some(Value::Object(c)) = graph.get("context") {
        context.extend(c.clone());
    }
    context.insert("request_type".into(), req.request_type.as_str().into());
    graph.insert("context".into(), Value::Object(context));
    let mut text = format!(
        "# Planned by `taskdeck plan` with an llm planner from a {} request.\n\
         # Review it before it runs.\n",
        req.request_type.as_str()
    );
    let doc = to_toml(&Value::Object(graph.clone())).ok_or("the reply is empty")?;
    text.push_str(&toml::to_string(&doc).map_err(|e| format!("the reply has no TOML form: {e}"))?);
    let own: Vec<String> = graph
        .get("agents")
        .and_then(Value::as_object)
        .map(|a| a.keys().cloned().collect())
        .unwrap_or_default();
    let used = used_capabilities(&graph);
    for role in super::templates::ALL_ROLES {
        if used.iter().any(|c| c == role.capability()) && !own.iter().any(|a| a == role.agent()) {
            super::agent_table(&mut text, role, agents);
        }
    }
    Ok(text)
}

fn used_capabilities(graph: &Map<String, Value>) -> Vec<String> {
    let mut used: Vec<String> = Vec::new();
    for task in graph
        .get("tasks")
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|t| t.values())
    {
        for c in task
            .get("requires")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !used.iter().any(|u| u == c) {
                used.push(c.to_string());
            }
        }
    }
    used
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::RequestType;

    #[test]
    fn a_reply_becomes_a_valid_workflow_with_the_role_agents_it_uses() {
        let req = Request::new(RequestType::BugInvestigation, "Login answers 500".into());
        let reply = serde_json::json!({
            "name": "login-500",
            "tasks": {
                "reproduce": {"prompt": "Reproduce it", "requires": ["test"]},
                "fix": {"prompt": "Fix it", "requires": ["backend"], "needs": ["reproduce"]},
                "check": {"run": "true", "needs": ["fix"]}
            }
        });
        let agents = Agents::Command(super::super::DRY_RUN_COMMAND.into());
        let text = workflow_text(&req, &reply, &agents).unwrap();
        let wf = spec::parse_str(&text, "plan.toml", Format::Toml, &Config::default())
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(wf.tasks.len(), 3);
        assert!(wf.agents.contains_key("testing-specialist"));
        assert!(wf.agents.contains_key("core-services"));
        assert!(!wf.agents.contains_key("technical-writer"));
    }

    #[test]
    fn the_prompt_lists_capabilities_and_the_last_problems() {
        let req = Request::new(RequestType::SystemAnalysis, "Why is CI slow".into());
        let agents = Agents::Command(super::super::DRY_RUN_COMMAND.into());
        let fb = (
            "{}".to_string(),
            "plan.toml:1:1: error: no tasks".to_string(),
        );
        let p = prompt(&req, &agents, &Config::default(), Some(&fb));
        assert!(p.contains("- backend: the core services engineer"), "{p}");
        assert!(p.contains("\"title\": \"Why is CI slow\""), "{p}");
        assert!(p.contains("error: no tasks"), "{p}");
    }
}
