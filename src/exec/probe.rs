//! Agent health probes: a command agent's program exists, an llm endpoint answers, an http
//! agent answers. Each probe is one short check; the engine decides when to probe.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::model::AgentHealth;
use crate::spec::{AgentKind, AgentSpec};

/// How long a network probe may take before the agent counts as down.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// What to probe, with the API key already rendered.
#[derive(Debug, Clone)]
pub struct ProbeTarget {
    pub spec: AgentSpec,
    pub api_key: Option<String>,
}

pub async fn probe(t: &ProbeTarget) -> AgentHealth {
    match t.spec.kind {
        AgentKind::Local => AgentHealth::Up,
        AgentKind::Command => {
            let Some(program) = t.spec.command.as_deref().and_then(program_of) else {
                return AgentHealth::Up; // a templated program name cannot be checked ahead
            };
            match find_program(&program, std::env::var_os("PATH").as_deref()) {
                Ok(_) => AgentHealth::Up,
                Err(why) => AgentHealth::Down(why),
            }
        }
        AgentKind::Llm => match &t.spec.endpoint {
            Some(e) => {
                let url = format!("{}/models", e.trim_end_matches('/'));
                http_probe(&url, t.api_key.as_deref(), false).await
            }
            None => AgentHealth::Down("no `endpoint`".into()),
        },
        AgentKind::Http => match (&t.spec.health_url, &t.spec.url) {
            (Some(h), _) => http_probe(h, t.api_key.as_deref(), true).await,
            (None, Some(u)) => http_probe(u, t.api_key.as_deref(), false).await,
            (None, None) => AgentHealth::Down("no `url`".into()),
        },
    }
}

/// Any answer counts as up, except 5xx and a refused key; with `strict` (a health URL) only 2xx.
async fn http_probe(url: &str, key: Option<&str>, strict: bool) -> AgentHealth {
    let http = match super::llm::client() {
        Ok(c) => c,
        Err(e) => return AgentHealth::Down(e),
    };
    let mut rb = http.get(url).timeout(PROBE_TIMEOUT);
    if let Some(k) = key.filter(|k| !k.is_empty()) {
        rb = rb.bearer_auth(k);
    }
    match rb.send().await {
        Err(e) => AgentHealth::Down(format!("{url} unreachable: {}", root_cause(&e))),
        Ok(r) => {
            let s = r.status();
            if s.as_u16() == 401 || s.as_u16() == 403 {
                AgentHealth::Down(format!("api key refused ({url} answered {s})"))
            } else if s.is_server_error() || (strict && !s.is_success()) {
                AgentHealth::Down(format!("{url} answered {s}"))
            } else {
                AgentHealth::Up
            }
        }
    }
}

/// The innermost error ("Connection refused (os error 111)"): reqwest's outer ones repeat the URL.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// The program a command line starts (its first word), unless a template decides it.
pub fn program_of(command: &str) -> Option<String> {
    let first = shlex::split(command)?.into_iter().next()?;
    // `VAR=value cmd` and templated names cannot be checked from here.
    if first.contains("{{") || first.contains("{%") || first.contains('=') {
        return None;
    }
    Some(first)
}

/// Where `program` is: a path that exists and is executable, or a name found on `path`.
pub fn find_program(program: &str, path: Option<&OsStr>) -> Result<PathBuf, String> {
    if program.contains('/') {
        let p = Path::new(program);
        return if is_executable(p) {
            Ok(p.to_path_buf())
        } else if p.exists() {
            Err(format!("command \"{program}\" is not executable"))
        } else {
            Err(format!("command \"{program}\" not found"))
        };
    }
    std::env::split_paths(path.unwrap_or_default())
        .map(|dir| dir.join(program))
        .find(|p| is_executable(p))
        .ok_or_else(|| format!("command \"{program}\" not found on PATH"))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_program_is_the_first_word_unless_a_template_picks_it() {
        assert_eq!(
            program_of("claude -p {{ task.prompt | tojson }}").as_deref(),
            Some("claude")
        );
        assert_eq!(
            program_of("'/opt/my tool' x").as_deref(),
            Some("/opt/my tool")
        );
        assert_eq!(program_of("{{ agent.bin }} x"), None);
        assert_eq!(program_of("A=1 tool"), None);
    }

    #[test]
    fn programs_are_found_on_path_or_by_path() {
        let dir = tempfile::tempdir().unwrap();
        let tool = dir.path().join("tool");
        std::fs::write(&tool, "#!/bin/sh\n").unwrap();
        let path = std::env::join_paths([dir.path()]).unwrap();
        let no_exec = find_program("tool", Some(&path)).unwrap_err();
        assert!(no_exec.contains("not found on PATH"), "{no_exec}");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(find_program("tool", Some(&path)).unwrap(), tool);
        assert!(find_program(tool.to_str().unwrap(), None).is_ok());
        let e = find_program("/no/such/tool", None).unwrap_err();
        assert_eq!(e, "command \"/no/such/tool\" not found");
    }
}
