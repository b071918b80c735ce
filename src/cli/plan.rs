//! `taskdeck plan`: a request in, a checked workflow file out, then the console to review it
//! (held: nothing runs until the operator starts it).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use super::PlanArgs;
use super::run::Launch;
use crate::config::Config;
use crate::plan::{self, Agents, Request};
use crate::spec::{self, AgentKind, Format, LoadError};

/// Whether `plan` ends in the console: it does unless told not to or stdout is not a terminal.
pub fn opens_console(args: &PlanArgs) -> bool {
    !args.no_review && std::io::stdout().is_terminal()
}

/// Returns the process exit code: 0 planned (and, after a review, the run succeeded), 1 the
/// request or the planned graph is invalid, 2 a file could not be read or written.
pub fn run(args: PlanArgs, config: Config) -> color_eyre::Result<u8> {
    let req = match request(&args) {
        Ok(r) => r,
        Err((code, msg)) => {
            eprintln!("taskdeck: {msg}");
            return Ok(code);
        }
    };
    let agents = agents(&args, &config, &req);
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{}.toml", req.slug())));
    if out.exists() && !args.force {
        eprintln!(
            "taskdeck: {} exists; choose another name with --out, or --force to replace it",
            out.display()
        );
        return Ok(2);
    }
    let name = out.display().to_string();
    let text = match &args.planner {
        None => plan::from_template(&req, &agents),
        Some(planner) => {
            match plan::planner::plan(
                &req,
                planner,
                &agents,
                &config,
                args.planner_attempts,
                &name,
            ) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("taskdeck: {e}");
                    return Ok(1);
                }
            }
        }
    };
    // Whatever made it, the file must pass `validate` before anyone sees it.
    let workflow = match spec::parse_str(&text, &name, Format::Toml, &config) {
        Ok(w) => w,
        Err(LoadError::Invalid(diags)) => {
            for d in &diags {
                eprintln!("{}", spec::render(d, Some(&text)));
            }
            eprintln!(
                "taskdeck: the planned workflow is not valid (this is a bug in the template)"
            );
            return Ok(1);
        }
        Err(e) => {
            eprintln!("taskdeck: {e}");
            return Ok(1);
        }
    };
    if let Err(e) = write(&out, &text) {
        eprintln!("taskdeck: cannot write {}: {e}", out.display());
        return Ok(2);
    }
    println!(
        "wrote {name}: {} {}, {} {} ({} {}, {} strategy)",
        workflow.tasks.len(),
        if workflow.tasks.len() == 1 {
            "task"
        } else {
            "tasks"
        },
        workflow.gates.len(),
        if workflow.gates.len() == 1 {
            "gate"
        } else {
            "gates"
        },
        req.request_type.as_str(),
        if args.planner.is_some() {
            "planned by the llm planner"
        } else {
            "from the built-in template"
        },
        req.preferences.execution_strategy.as_str(),
    );
    if !opens_console(&args) {
        println!("review it, then: taskdeck run {name}");
        return Ok(0);
    }
    let notice = format!("Plan {name} held for review: p starts it, :cancel-run drops it");
    let opts = super::RunOptions {
        theme: args.theme.clone(),
        store: args.store.clone(),
        ..super::RunOptions::default()
    };
    super::run::execute(
        vec![Launch::Held {
            workflow: Box::new(workflow),
            source: Some(text),
            notice,
        }],
        opts,
        config,
    )
}

/// The request from its file and the flags (flags win).
fn request(args: &PlanArgs) -> Result<Request, (u8, String)> {
    let mut req = match &args.request {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| (2, format!("cannot read {}: {e}", path.display())))?;
            Request::parse(&text).map_err(|e| (1, format!("{}: {e}", path.display())))?
        }
        None => {
            let kind = args
                .request_type
                .ok_or((2, "name a request file or --type".to_string()))?;
            let title = args.title.clone().ok_or((
                2,
                "--type needs --title: one line saying what the work is about".to_string(),
            ))?;
            Request::new(kind, title)
        }
    };
    if let Some(t) = args.request_type {
        req.request_type = t;
    }
    if let Some(t) = &args.title {
        req.title = t.clone();
    }
    req.requirements
        .functional
        .extend(args.requirements.iter().cloned());
    req.preferences.quality_gates.extend(
        args.gates
            .iter()
            .cloned()
            .map(plan::request::GateRequest::Command),
    );
    if let Some(s) = args.strategy {
        req.preferences.execution_strategy = s;
    }
    if let Some(p) = args.priority {
        req.priority = p;
    }
    if let Some(c) = args.complexity {
        req.complexity_level = c;
    }
    req.checked().map_err(|e| (1, e.to_string()))
}

/// Who plays the roles: the flags, else the config's agents when they cover every role's
/// capability, else agents that only print their prompts (a dry run to review).
fn agents(args: &PlanArgs, config: &Config, req: &Request) -> Agents {
    if let Some(c) = &args.agent_command {
        return Agents::Command(c.clone());
    }
    if let (Some(endpoint), Some(model)) = (&args.llm_endpoint, &args.model) {
        return Agents::Llm {
            endpoint: endpoint.clone(),
            model: model.clone(),
            key_env: args.api_key_env.clone(),
        };
    }
    let covered = plan::role_capabilities(req).iter().all(|cap| {
        config.agents.values().any(|a| {
            matches!(
                a.kind,
                AgentKind::Command | AgentKind::Llm | AgentKind::Http
            ) && a.capabilities.iter().any(|c| c == cap)
        })
    });
    if covered {
        Agents::Roster
    } else {
        Agents::Command(plan::DRY_RUN_COMMAND.to_string())
    }
}

/// Writes the file whole or not at all: a temporary file beside it, then a rename.
fn write(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "plan".into())
    ));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}
