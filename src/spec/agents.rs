//! Which agents exist for a workflow and whether one of them can run a task.

use indexmap::IndexMap;

use super::{Action, AgentKind, AgentSpec, Workflow};
use crate::config::Config;

/// The name of the implicit agent every workflow has.
pub const DEFAULT_AGENT: &str = "local";

impl Workflow {
    /// The agents this workflow can use: the default `local` agent, then the config roster,
    /// then the workflow's own agents (a workflow agent replaces one of the same name).
    pub fn effective_agents(&self, config: &Config) -> IndexMap<String, AgentSpec> {
        effective(config, self.agents.iter().map(|(n, a)| (n.as_str(), a)))
    }
}

pub fn effective<'a>(
    config: &Config,
    own: impl Iterator<Item = (&'a str, &'a AgentSpec)>,
) -> IndexMap<String, AgentSpec> {
    let mut all = IndexMap::new();
    all.insert(
        DEFAULT_AGENT.to_string(),
        AgentSpec::default_local(config.defaults.local_slots.max(1)),
    );
    for (n, a) in &config.agents {
        all.insert(n.clone(), a.clone());
    }
    for (n, a) in own {
        all.insert(n.to_string(), a.clone());
    }
    all
}

/// Whether `agent` can carry out a task with this action and required capabilities.
pub fn can_run(agent: &AgentSpec, action: &Action, requires: &[String]) -> bool {
    agent.kind.can_run(action) && has_all(agent, requires)
}

fn has_all(agent: &AgentSpec, requires: &[String]) -> bool {
    requires.iter().all(|r| agent.capabilities.contains(r))
}

/// Which action kinds an agent kind runs, for messages.
pub fn runs(kind: AgentKind) -> &'static str {
    match kind {
        AgentKind::Local => "`run` commands and builtins",
        AgentKind::Command | AgentKind::Llm => "`prompt` tasks",
        AgentKind::Http => "`run` and `prompt` tasks",
    }
}

pub fn action_name(action: &Action) -> &'static str {
    match action {
        Action::Run(_) => "a `run` task",
        Action::Builtin(_) => "a builtin task",
        Action::Prompt(_) => "a `prompt` task",
    }
}

/// Why no agent can run a task, and what to do: `(message, hint)`.
pub fn explain_none(
    agents: &IndexMap<String, AgentSpec>,
    task: &str,
    action: &Action,
    requires: &[String],
) -> (String, String) {
    let caps = format!("{requires:?}");
    let message = if requires.is_empty() {
        format!("no agent can run task `{task}` ({})", action_name(action))
    } else {
        format!("no agent can run task `{task}`: it requires {caps}")
    };
    let capable: Vec<String> = agents
        .iter()
        .filter(|(_, a)| has_all(a, requires))
        .map(|(n, a)| format!("`{n}` ({})", a.kind.as_str()))
        .collect();
    let kinds = match action {
        Action::Run(_) => "local or http",
        Action::Builtin(_) => "local",
        Action::Prompt(_) => "command, llm or http",
    };
    let hint = if capable.is_empty() {
        format!(
            "add an agent with these capabilities, e.g. [agents.NAME] with kind = \"{}\" and capabilities = {caps}",
            kinds
                .split(' ')
                .next()
                .unwrap_or("local")
                .trim_end_matches(',')
        )
    } else {
        format!(
            "{} {} the capabilities but {} needs a {kinds} agent; add capabilities = {caps} to one",
            capable.join(", "),
            if capable.len() == 1 { "has" } else { "have" },
            action_name(action),
        )
    };
    (message, hint)
}

/// Why the pinned agent cannot run the task: `(message, hint)`.
pub fn explain_pinned(
    name: &str,
    agent: &AgentSpec,
    task: &str,
    action: &Action,
    requires: &[String],
) -> (String, String) {
    if !agent.kind.can_run(action) {
        return (
            format!(
                "agent `{name}` ({}) cannot run task `{task}`, {}",
                agent.kind.as_str(),
                action_name(action)
            ),
            format!(
                "a {} agent runs {}; pin another agent or change the task",
                agent.kind.as_str(),
                runs(agent.kind)
            ),
        );
    }
    let missing: Vec<&String> = requires
        .iter()
        .filter(|r| !agent.capabilities.contains(r))
        .collect();
    (
        format!("agent `{name}` lacks capabilities {missing:?} that task `{task}` requires"),
        format!("add {missing:?} to the capabilities of `{name}`, or pin another agent"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Builtin;

    fn agent(kind: AgentKind, caps: &[&str]) -> AgentSpec {
        let mut a = AgentSpec::default_local(1);
        a.kind = kind;
        a.capabilities = caps.iter().map(|c| c.to_string()).collect();
        a
    }

    #[test]
    fn workflow_agents_win_on_name_clash() {
        let mut config = Config::default();
        config
            .agents
            .insert("shared".into(), agent(AgentKind::Local, &["a"]));
        let own = agent(AgentKind::Http, &["b"]);
        let all = effective(&config, [("shared", &own)].into_iter());
        assert_eq!(all.keys().collect::<Vec<_>>(), ["local", "shared"]);
        assert_eq!(all["shared"].kind, AgentKind::Http);
    }

    #[test]
    fn can_run_needs_kind_and_capabilities() {
        let a = agent(AgentKind::Local, &["build", "test"]);
        let run = Action::Run("make".into());
        assert!(can_run(&a, &run, &["build".into()]));
        assert!(!can_run(&a, &run, &["review".into()]));
        assert!(!can_run(&a, &Action::Prompt("x".into()), &[]));
        assert!(can_run(&a, &Action::Builtin(Builtin::Noop), &[]));
    }

    #[test]
    fn explanations_name_capable_agents() {
        let mut agents = IndexMap::new();
        agents.insert("rev".to_string(), agent(AgentKind::Command, &["review"]));
        let (_, hint) = explain_none(&agents, "t", &Action::Run("x".into()), &["review".into()]);
        assert!(hint.contains("`rev` (command)"), "{hint}");
        let (msg, hint) = explain_none(&agents, "t", &Action::Run("x".into()), &["gpu".into()]);
        assert!(msg.contains("[\"gpu\"]"), "{msg}");
        assert!(hint.contains("add an agent"), "{hint}");
    }
}
