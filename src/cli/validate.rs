//! `taskdeck validate FILE...`: every problem of every file, rustc-style.
//! Exit 0 when all are valid, 1 when any has problems, 2 when any cannot be read.

use std::io::Write;

use crate::config::Config;
use crate::spec::{self, Format, LoadError};

/// Returns the process exit code.
pub fn run(args: super::ValidateArgs, config: &Config) -> color_eyre::Result<u8> {
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let mut code = 0u8;
    for path in &args.files {
        let name = path.display().to_string();
        let text = match spec::read_text(path) {
            Ok(t) => t,
            Err(LoadError::Read { path, source }) => {
                writeln!(
                    stderr.lock(),
                    "taskdeck: cannot read {}: {source}",
                    path.display()
                )?;
                code = 2;
                continue;
            }
            Err(LoadError::Invalid(diags)) => {
                report(&mut stderr.lock(), &name, &diags, None)?;
                code = code.max(1);
                continue;
            }
        };
        match spec::parse_str(&text, &name, Format::from_path(path), config) {
            Ok(w) => {
                let agents = w.effective_agents(config).len();
                writeln!(
                    stdout.lock(),
                    "{name}: ok — {} {}, {agents} {}, {} {}",
                    w.tasks.len(),
                    plural(w.tasks.len(), "task", "tasks"),
                    plural(agents, "agent", "agents"),
                    w.gates.len(),
                    plural(w.gates.len(), "gate", "gates"),
                )?;
                for line in missing_programs(&w, config) {
                    writeln!(stderr.lock(), "{name}: warning: {line}")?;
                }
            }
            Err(LoadError::Invalid(diags)) => {
                report(&mut stderr.lock(), &name, &diags, Some(&text))?;
                code = code.max(1);
            }
            Err(e @ LoadError::Read { .. }) => {
                writeln!(stderr.lock(), "taskdeck: {e}")?;
                code = 2;
            }
        }
    }
    Ok(code)
}

fn report(
    out: &mut impl Write,
    name: &str,
    diags: &[spec::Diagnostic],
    text: Option<&str>,
) -> std::io::Result<()> {
    for d in diags {
        writeln!(out, "{}", spec::render(d, text))?;
    }
    writeln!(
        out,
        "{name}: {} {}",
        diags.len(),
        plural(diags.len(), "problem", "problems")
    )
}

/// Command agents whose program is not on this machine: a warning, not a problem (the
/// workflow may run elsewhere; at run time such an agent is down and gets no work).
fn missing_programs(w: &spec::Workflow, config: &Config) -> Vec<String> {
    let path = std::env::var_os("PATH");
    w.effective_agents(config)
        .iter()
        .filter(|(_, a)| a.kind == spec::AgentKind::Command)
        .filter_map(|(name, a)| {
            let program = crate::exec::probe::program_of(a.command.as_deref()?)?;
            let why = crate::exec::probe::find_program(&program, path.as_deref()).err()?;
            Some(match &a.fallback {
                Some(f) => format!("agent `{name}`: {why}; its tasks would go to `{f}`"),
                None => format!(
                    "agent `{name}`: {why}; its tasks would go to other capable agents or wait"
                ),
            })
        })
        .collect()
}

fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}
