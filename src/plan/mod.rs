//! The task-graph constructor: `taskdeck plan` turns a request into a workflow file, from a
//! built-in template per request type (`build`) or from a planner `llm` agent (`planner`).
//! The result is ordinary workflow TOML, with comments, for the operator to review and edit.

pub mod planner;
pub mod request;
mod templates;
mod toml_text;

use std::collections::BTreeSet;
use std::fmt::Write;

use indexmap::IndexMap;

pub use request::{Request, RequestError, RequestPriority, RequestType, Strategy};
use templates::{Keep, Role, Step};
use toml_text::{quote, quote_prompt};

/// Who plays the specialist roles in the generated workflow.
#[derive(Debug, Clone, PartialEq)]
pub enum Agents {
    /// A `command` agent per role running this template; `{role}` becomes the role's name.
    Command(String),
    /// An `llm` agent per role on this OpenAI-compatible endpoint, with the role as its system
    /// prompt; the API key (if any) comes from the named environment variable.
    Llm {
        endpoint: String,
        model: String,
        key_env: Option<String>,
    },
    /// The config file's agents already provide these capabilities: the plan defines none.
    Roster,
}

/// The agent that plays a role until the operator picks a real one: it prints its prompt.
pub const DRY_RUN_COMMAND: &str = "echo [{role}] {{ task.prompt | tojson }}";

/// Complex requests (this level and above) with several functional requirements get one
/// implementation task per requirement, in parallel.
const SPLIT_FROM_COMPLEXITY: u8 = 6;
/// At most this many parallel tracks from one step.
const MAX_TRACKS: usize = 8;

/// One task of the plan, after the strategy and the split are applied.
#[derive(Debug, Clone)]
struct PlannedTask {
    id: String,
    role: Role,
    step: Step,
    /// The functional requirement this track covers, for split steps.
    part: Option<String>,
    needs: Vec<String>,
}

/// Applies the strategy (drop or keep optional steps) and splits the main work into tracks.
fn planned_tasks(req: &Request) -> Vec<PlannedTask> {
    let strategy = req.preferences.execution_strategy;
    let kept = |s: &Step| match s.keep {
        Keep::Always => true,
        Keep::NotFast => strategy != Strategy::Fast,
        Keep::Thorough => strategy == Strategy::Thorough,
    };
    let steps = templates::template(req.request_type);
    // What each step's id stands for in `needs`: its own task(s), or, for a dropped step, what
    // the dropped step needed (so the order it imposed is kept).
    let mut stands_for: IndexMap<&str, Vec<String>> = IndexMap::new();
    let mut tasks = Vec::new();
    let functional = &req.requirements.functional;
    for s in steps {
        let mut needs: Vec<String> = Vec::new();
        for n in s.needs {
            for id in stands_for.get(n).into_iter().flatten() {
                if !needs.contains(id) {
                    needs.push(id.clone());
                }
            }
        }
        if !kept(s) {
            stands_for.insert(s.id, needs);
            continue;
        }
        let needs = without_implied(needs, &tasks);
        let split =
            s.splits && req.complexity_level >= SPLIT_FROM_COMPLEXITY && functional.len() > 1;
        let ids: Vec<String> = if split {
            let n = functional.len().min(MAX_TRACKS);
            for (i, part) in functional.iter().take(n).enumerate() {
                tasks.push(PlannedTask {
                    id: format!("{}-{}", s.id, i + 1),
                    role: s.role,
                    step: *s,
                    part: Some(if i + 1 == n && functional.len() > n {
                        // The last track takes whatever did not get its own.
                        functional[i..].join("; ")
                    } else {
                        part.clone()
                    }),
                    needs: needs.clone(),
                });
            }
            tasks[tasks.len() - n..]
                .iter()
                .map(|t| t.id.clone())
                .collect()
        } else {
            tasks.push(PlannedTask {
                id: s.id.to_string(),
                role: s.role,
                step: *s,
                part: None,
                needs,
            });
            vec![s.id.to_string()]
        };
        stands_for.insert(s.id, ids);
    }
    tasks
}

/// `needs` without those another need already waits for (a dropped step can leave both a task
/// and its upstream), so the graph draws no redundant edges.
fn without_implied(needs: Vec<String>, tasks: &[PlannedTask]) -> Vec<String> {
    let upstream_of = |id: &str| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![id.to_string()];
        while let Some(cur) = stack.pop() {
            if let Some(t) = tasks.iter().find(|t| t.id == cur) {
                for n in &t.needs {
                    if seen.insert(n.clone()) {
                        stack.push(n.clone());
                    }
                }
            }
        }
        seen
    };
    let implied: BTreeSet<String> = needs.iter().flat_map(|n| upstream_of(n)).collect();
    needs.into_iter().filter(|n| !implied.contains(n)).collect()
}

/// The capabilities the template's tasks for `req` require.
pub fn role_capabilities(req: &Request) -> Vec<&'static str> {
    let roles: BTreeSet<Role> = planned_tasks(req).iter().map(|t| t.role).collect();
    roles.into_iter().map(Role::capability).collect()
}

/// The workflow file for `req`, from its type's template.
pub fn from_template(req: &Request, agents: &Agents) -> String {
    let strategy = req.preferences.execution_strategy;
    let tasks = planned_tasks(req);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Planned by `taskdeck plan` from a {} request ({} strategy).\n\
         # Review it before it runs: every task is a prompt for the agent playing its role.",
        req.request_type.as_str(),
        strategy.as_str()
    );
    if matches!(agents, Agents::Command(c) if c == DRY_RUN_COMMAND) {
        out.push_str(
            "# The agents below only print their prompts (a dry run). Point each `command` at your\n\
             # AI assistant, e.g. command = \"claude -p {{ task.prompt | tojson }}\", or pass\n\
             # --agent-command / --llm-endpoint to `taskdeck plan`.\n",
        );
    }
    let _ = writeln!(out, "name = {}", quote(&req.slug()));
    let _ = writeln!(out, "description = {}", quote(&req.title));
    let _ = writeln!(out, "max_parallel = {}", max_parallel(strategy));
    out.push('\n');

    let mut context = req.context.clone();
    context.insert("request_type".into(), req.request_type.as_str().into());
    if let Some(id) = &req.request_id {
        context.insert("request_id".into(), id.clone().into());
    }
    out.push_str(&toml_text::context_table(&context));

    if let Agents::Llm {
        key_env: Some(var), ..
    } = agents
    {
        let _ = writeln!(out, "\n[secrets]\nllm_key = {{ env = {} }}", quote(var));
    }
    let roles: BTreeSet<Role> = tasks.iter().map(|t| t.role).collect();
    for role in &roles {
        agent_table(&mut out, *role, agents);
    }
    for t in &tasks {
        task_table(&mut out, req, t);
    }
    gate_table(&mut out, req, &tasks);
    out
}

fn max_parallel(strategy: Strategy) -> u32 {
    match strategy {
        Strategy::Fast => 8,
        Strategy::Balanced => 4,
        Strategy::Thorough => 2,
    }
}

fn agent_table(out: &mut String, role: Role, agents: &Agents) {
    match agents {
        Agents::Roster => {}
        Agents::Command(template) => {
            let _ = writeln!(
                out,
                "\n[agents.{}]\nkind = \"command\"\ncommand = {}\ncapabilities = [{}]",
                role.agent(),
                quote(&template.replace("{role}", role.agent())),
                quote(role.capability())
            );
        }
        Agents::Llm {
            endpoint,
            model,
            key_env,
        } => {
            let _ = writeln!(
                out,
                "\n[agents.{}]\nkind = \"llm\"\nendpoint = {}\nmodel = {}\nsystem = {}\ncapabilities = [{}]",
                role.agent(),
                quote(endpoint),
                quote(model),
                quote(&format!("You are the team's {}.", role.brief())),
                quote(role.capability())
            );
            if key_env.is_some() {
                out.push_str("api_key = \"{{ secrets.llm_key }}\"\n");
            }
        }
    }
}

fn task_table(out: &mut String, req: &Request, t: &PlannedTask) {
    let strategy = req.preferences.execution_strategy;
    let _ = writeln!(out, "\n[tasks.{}]", t.id);
    if !t.needs.is_empty() {
        let needs: Vec<String> = t.needs.iter().map(|n| quote(n)).collect();
        let _ = writeln!(out, "needs = [{}]", needs.join(", "));
    }
    let _ = writeln!(out, "requires = [{}]", quote(t.role.capability()));
    if req.priority != RequestPriority::Medium {
        let _ = writeln!(out, "priority = {}", quote(req.priority.task_priority()));
    }
    let _ = writeln!(out, "prompt = {}", quote_prompt(&prompt(req, t)));
    out.push_str("timeout = \"30m\"\n");
    if strategy != Strategy::Fast {
        out.push_str("retry = { attempts = 2, delay = \"10s\" }\n");
    }
    if t.step.irreversible && strategy == Strategy::Thorough {
        out.push_str("approval = true\n");
    }
}

/// What the agent is asked: its role, the step, the request, and what came before.
fn prompt(req: &Request, t: &PlannedTask) -> String {
    let mut p = format!("You are the team's {}.\n{}\n", t.role.brief(), t.step.does);
    let _ = write!(
        p,
        "\nRequest ({}): {}\n",
        req.request_type.as_str().replace('_', " "),
        toml_text::literal(&req.title)
    );
    if let Some(part) = &t.part {
        let _ = writeln!(
            p,
            "This task covers one requirement: {}",
            toml_text::literal(part)
        );
    }
    let r = &req.requirements;
    for (head, items) in [
        ("Functional requirements", &r.functional),
        ("Non-functional requirements", &r.non_functional),
        ("Constraints", &r.constraints),
    ] {
        if !items.is_empty() {
            let _ = writeln!(p, "{head}:");
            for i in items {
                let _ = writeln!(p, "- {}", toml_text::literal(i));
            }
        }
    }
    if !t.needs.is_empty() {
        p.push_str("\nResults of the steps before this one: {{ tasks | tojson }}\n");
    }
    p
}

fn gate_table(out: &mut String, req: &Request, tasks: &[PlannedTask]) {
    let gates = &req.preferences.quality_gates;
    if gates.is_empty() {
        return;
    }
    let after: Vec<String> = tasks
        .iter()
        .filter(|t| t.step.gated)
        .map(|t| quote(&t.id))
        .collect();
    let on_fail = match req.preferences.execution_strategy {
        Strategy::Fast => "fail",
        Strategy::Balanced => "retry",
        Strategy::Thorough => "pause",
    };
    let _ = writeln!(
        out,
        "\n[gates.quality]\nafter = [{}]\nlevel = \"output\"\non_fail = \"{on_fail}\"\nchecks = [",
        after.join(", ")
    );
    for g in gates {
        let _ = writeln!(
            out,
            "  {{ name = {}, run = {} }},",
            quote(g.name()),
            quote(g.run())
        );
    }
    out.push_str("]\n");
}

#[cfg(test)]
mod tests;
