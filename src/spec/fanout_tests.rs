//! `agents` and `resolve`: what they become, and each mistake's position and message.

use super::*;

const AGENTS: &str = r#"
[agents.a]
kind = "command"
command = "echo a"
[agents.b]
kind = "command"
command = "echo b"
[agents.c]
kind = "command"
command = "echo c"
"#;

fn parse(tasks: &str) -> Result<Workflow, Vec<Diagnostic>> {
    let text = format!("{AGENTS}{tasks}");
    match parse_str(&text, "flow.toml", Format::Toml, &Config::default()) {
        Ok(w) => Ok(w),
        Err(LoadError::Invalid(d)) => Err(d),
        Err(e) => panic!("{e:?}"),
    }
}

/// The single problem's (line within `tasks`, column, message).
fn one(tasks: &str) -> (usize, usize, String) {
    let d = parse(tasks).expect_err("expected a problem");
    assert_eq!(d.len(), 1, "{d:#?}");
    assert!(d[0].hint.is_some());
    let offset = AGENTS.lines().count();
    (d[0].line - offset, d[0].column, d[0].message.clone())
}

#[test]
fn each_strategy_parses() {
    let w = parse(
        r#"
[tasks.one]
prompt = "p"
agents = 2
resolve = "first"
[tasks.two]
prompt = "p"
agents = ["c", "a"]
resolve = "merge"
[tasks.three]
prompt = "p"
agents = 3
resolve = { majority = "json.verdict" }
[tasks.four]
prompt = "p"
agents = ["a", "b"]
resolve = { judge = "c", prompt = "pick one of {{ candidates | length }}" }
"#,
    )
    .unwrap();
    let f = |i: usize| w.tasks[i].fanout.clone().unwrap();
    assert_eq!(f(0).agents, FanoutAgents::Count(2));
    assert_eq!(f(0).resolve, Resolve::First);
    assert_eq!(
        f(1).agents,
        FanoutAgents::Named(vec!["c".into(), "a".into()])
    );
    assert_eq!(f(1).resolve, Resolve::Merge);
    assert_eq!(
        f(2).resolve,
        Resolve::Majority {
            field: "json.verdict".into()
        }
    );
    assert_eq!(
        f(3).resolve,
        Resolve::Judge {
            agent: "c".into(),
            prompt: Some("pick one of {{ candidates | length }}".into())
        }
    );
    // The workflow survives the journal's JSON round trip.
    let json = serde_json::to_string(&w).unwrap();
    assert_eq!(serde_json::from_str::<Workflow>(&json).unwrap(), w);
}

#[test]
fn unknown_agent_in_the_list() {
    let (line, col, msg) =
        one("[tasks.t]\nprompt = \"p\"\nagents = [\"a\", \"bb\"]\nresolve = \"first\"\n");
    assert_eq!((line, col), (3, 16));
    assert_eq!(msg, "task `t` names unknown agent `bb` in `agents`");
}

#[test]
fn more_agents_than_can_run_it() {
    let (line, col, msg) = one("[tasks.t]\nprompt = \"p\"\nagents = 4\nresolve = \"merge\"\n");
    assert_eq!((line, col), (3, 10));
    assert_eq!(
        msg,
        "task `t` asks for 4 agents, but only 3 can (`a`, `b`, `c`) run a `prompt` task"
    );
}

#[test]
fn majority_without_a_field() {
    let (line, col, msg) = one("[tasks.t]\nprompt = \"p\"\nagents = 2\nresolve = \"majority\"\n");
    assert_eq!((line, col), (4, 11));
    assert_eq!(msg, "`majority` needs the output field to vote on");
}

#[test]
fn judge_missing_or_unable() {
    let (line, col, msg) =
        one("[tasks.t]\nprompt = \"p\"\nagents = 2\nresolve = { judge = \"referee\" }\n");
    assert_eq!((line, col), (4, 21));
    assert_eq!(msg, "task `t` is judged by unknown agent `referee`");
    let (_, _, msg) =
        one("[tasks.t]\nprompt = \"p\"\nagents = 2\nresolve = { judge = \"local\" }\n");
    assert_eq!(
        msg,
        "judge `local` of task `t` is a local agent, which cannot answer a prompt"
    );
    let (_, _, msg) = one("[tasks.t]\nprompt = \"p\"\nagents = 2\nresolve = \"judge\"\n");
    assert_eq!(msg, "`judge` needs the agent that judges");
}

#[test]
fn agents_and_resolve_go_together() {
    let (line, _, msg) = one("[tasks.t]\nprompt = \"p\"\nagents = 2\n");
    assert_eq!(line, 3);
    assert_eq!(
        msg,
        "task `t` runs on several agents but does not say how to resolve their outputs"
    );
    let (line, _, msg) = one("[tasks.t]\nprompt = \"p\"\nresolve = \"first\"\n");
    assert_eq!(line, 3);
    assert_eq!(msg, "task `t` has `resolve` but runs on one agent");
    let (line, _, msg) =
        one("[tasks.t]\nprompt = \"p\"\nagent = \"a\"\nagents = 2\nresolve = \"first\"\n");
    assert_eq!(line, 3);
    assert_eq!(msg, "task `t` has both `agent` and `agents`");
}

#[test]
fn small_or_repeated_lists() {
    let (_, _, msg) = one("[tasks.t]\nprompt = \"p\"\nagents = 1\nresolve = \"first\"\n");
    assert_eq!(
        msg,
        "`agents = 1` runs the task on one agent, as without `agents`"
    );
    let d = parse("[tasks.t]\nprompt = \"p\"\nagents = [\"a\", \"a\"]\nresolve = \"first\"\n")
        .unwrap_err();
    let msgs: Vec<&str> = d.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(
        msgs,
        [
            "`agents` must name at least two agents",
            "`agents` lists `a` twice"
        ]
    );
    let (_, _, msg) = one("[tasks.t]\nprompt = \"p\"\nagents = 2\nresolve = \"vote\"\n");
    assert_eq!(msg, "unknown resolve strategy `vote`");
}

#[test]
fn named_agent_that_cannot_run_the_task() {
    let (line, col, _) =
        one("[tasks.t]\nprompt = \"p\"\nagents = [\"a\", \"local\"]\nresolve = \"first\"\n");
    assert_eq!((line, col), (3, 16));
}
