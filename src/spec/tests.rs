//! `parse_str` end to end: what a valid file becomes, and one test per kind of diagnostic.

use std::time::Duration;

use super::*;

fn config() -> Config {
    let mut c = Config::default();
    c.defaults.resources = Resources {
        cpu: 4.0,
        memory_mb: 8192,
        gpu: 0,
    };
    c
}

fn ok(text: &str) -> Workflow {
    match parse_str(text, "flow.toml", Format::Toml, &config()) {
        Ok(w) => w,
        Err(e) => panic!("{e:?}"),
    }
}

fn errors(text: &str) -> Vec<Diagnostic> {
    errors_in(text, Format::Toml)
}

fn errors_in(text: &str, format: Format) -> Vec<Diagnostic> {
    match parse_str(text, "flow", format, &config()) {
        Ok(_) => panic!("expected problems"),
        Err(LoadError::Invalid(d)) => {
            assert!(d.iter().all(|d| d.hint.is_some()), "{d:?}");
            d
        }
        Err(e) => panic!("{e:?}"),
    }
}

/// The single diagnostic's (line, column, message).
fn one(text: &str) -> (usize, usize, String) {
    let d = errors(text);
    assert_eq!(d.len(), 1, "{d:#?}");
    (d[0].line, d[0].column, d[0].message.clone())
}

#[test]
fn valid_file_becomes_a_workflow() {
    let w = ok(r#"
description = "demo"
max_parallel = 3
[context]
n = 1
[tasks.build]
run = "make"
priority = "high"
timeout = "5m"
retry = 3
[tasks.test]
needs = ["build"]
run = "make test-{{ matrix.os }}"
matrix = { os = ["linux", "mac"] }
[tasks.ship]
needs = ["test"]
builtin = "sleep 1s"
priority = 9
retry = { attempts = 2, backoff = "exponential", delay = "1s", max_delay = "10s", jitter = true }
[gates.g]
after = ["test"]
checks = [{ name = "n", expr = "context.n == 1" }]
"#);
    assert_eq!(w.name, "flow");
    assert_eq!(w.max_parallel, Some(3));
    let ids: Vec<&str> = w.tasks.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["build", "test[os=linux]", "test[os=mac]", "ship"]);
    assert_eq!(w.tasks[1].base, "test");
    assert_eq!(w.tasks[1].matrix["os"], "linux");
    assert_eq!(w.tasks[1].needs, [0]);
    // Needing a matrix base means needing every instance.
    assert_eq!(w.tasks[3].needs, [1, 2]);
    assert_eq!(w.tasks[0].priority, 7);
    assert_eq!(w.tasks[0].timeout, Some(Duration::from_secs(300)));
    assert_eq!(w.tasks[0].retry.attempts, 3);
    assert_eq!(
        w.tasks[3].action,
        Action::Builtin(Builtin::Sleep(Duration::from_secs(1)))
    );
    assert_eq!(w.tasks[3].retry.backoff, Backoff::Exponential);
    assert!(w.tasks[3].retry.jitter);
    assert_eq!(w.gates[0].after, [1, 2]);
    assert_eq!(w.gates[0].level, GateLevel::Output);
    assert_eq!(w.gates[0].on_fail, OnFail::Fail);
}

#[test]
fn json_and_toml_give_the_same_workflow() {
    let toml = ok(r#"
[tasks.a]
run = "x"
env = { K = "v" }
[tasks.b]
needs = ["a"]
builtin = "echo hi"
"#);
    let json = parse_str(
        r#"{"tasks": {"a": {"run": "x", "env": {"K": "v"}}, "b": {"needs": ["a"], "builtin": "echo hi", "when": null}}}"#,
        "flow.json",
        Format::Json,
        &config(),
    )
    .unwrap();
    assert_eq!(toml, json);
}

#[test]
fn unknown_keys_suggest_the_right_one() {
    let (line, col, msg) = one("[tasks.a]\nrun = \"x\"\nneed = [\"b\"]\n");
    assert_eq!((line, col), (3, 1));
    assert!(msg.contains("unknown key `need`"), "{msg}");
    let d = errors("[tasks.a]\nrun = \"x\"\nneed = []\n");
    assert_eq!(d[0].hint.as_deref(), Some("did you mean `needs`?"));
}

#[test]
fn one_action_per_task() {
    let (line, _, msg) = one("[tasks.a]\nrun = \"x\"\nprompt = \"y\"\n");
    assert_eq!(line, 3);
    assert!(msg.contains("both `run` and `prompt`"), "{msg}");
    let (line, col, msg) = one("[tasks.a]\nneeds = []\n");
    assert_eq!((line, col), (1, 8));
    assert!(msg.contains("nothing to do"), "{msg}");
}

#[test]
fn bad_priority_duration_and_retry() {
    let d = errors(
        "[tasks.a]\nrun = \"x\"\npriority = 11\ntimeout = \"soon\"\nretry = { attempts = 0 }\n",
    );
    let lines: Vec<usize> = d.iter().map(|d| d.line).collect();
    assert_eq!(lines, [3, 4, 5], "{d:#?}");
}

#[test]
fn agents_are_checked() {
    let d = errors(
        r#"
[agents.rev]
kind = "command"
url = "http://x"
[agents.bot]
kind = "robot"
[tasks.a]
prompt = "p"
agent = "local"
"#,
    );
    let msgs: Vec<&str> = d.iter().map(|d| d.message.as_str()).collect();
    assert!(
        msgs.iter()
            .any(|m| m.contains("command agent `rev` needs `command`")),
        "{msgs:?}"
    );
    assert!(
        msgs.iter()
            .any(|m| m.contains("`url` does not apply to a command agent")),
        "{msgs:?}"
    );
    assert!(
        msgs.iter()
            .any(|m| m.contains("unknown agent kind `robot`")),
        "{msgs:?}"
    );
    assert!(
        msgs.iter()
            .any(|m| m.contains("agent `local` (local) cannot run task `a`")),
        "{msgs:?}"
    );
}

#[test]
fn config_agents_count_for_capabilities() {
    let text = "[tasks.a]\nrun = \"x\"\nrequires = [\"gpu\"]\n";
    assert!(parse_str(text, "f", Format::Toml, &config()).is_err());
    let mut c = config();
    let mut a = AgentSpec::default_local(1);
    a.capabilities = vec!["gpu".into()];
    c.agents.insert("big".into(), a);
    assert!(parse_str(text, "f", Format::Toml, &c).is_ok());
}

#[test]
fn resources_over_the_pool() {
    let (line, _, msg) = one("[tasks.a]\nrun = \"x\"\nresources = { cpu = 8, memory_mb = 1024 }\n");
    assert_eq!(line, 3);
    assert!(msg.contains("asks for 8 cpu, but the pool has 4"), "{msg}");
    ok("[tasks.a]\nrun = \"x\"\nresources = { cpu = 4, memory_mb = 8192 }\n");
}

#[test]
fn reads_follow_ancestry() {
    let w = ok(r#"
[context]
path = "."
[tasks.a]
run = "x"
[tasks.b]
needs = ["a"]
run = "y"
[tasks.c]
needs = ["b"]
run = "z"
reads = ["path", "context.path", "tasks.a.outputs.*", "tasks.b.outputs.size", "agent.memory.*"]
"#);
    assert_eq!(w.tasks[2].reads.as_ref().map(Vec::len), Some(5));
    let (_, _, msg) =
        one("[tasks.a]\nrun = \"x\"\n[tasks.b]\nrun = \"y\"\nreads = [\"tasks.a.outputs.*\"]\n");
    assert!(msg.contains("not upstream"), "{msg}");
}

#[test]
fn templates_and_cel_are_checked() {
    let (_, _, msg) = one("[tasks.a]\nrun = \"x {{ matrix.arch }}\"\nmatrix = { os = [\"l\"] }\n");
    assert!(msg.contains("unknown matrix key `arch`"), "{msg}");
    let (_, _, msg) =
        one("[tasks.a]\nrun = \"x\"\n[tasks.b]\nrun = \"y\"\nwhen = \"tasks.a.outputs.ok\"\n");
    assert!(msg.contains("not upstream"), "{msg}");
    let (_, _, msg) = one("[tasks.a]\nrun = \"x\"\nwhen = \"foo == 1\"\n");
    assert!(msg.contains("unknown variable `foo`"), "{msg}");
    ok(
        "[secrets]\nk = { env = \"K\" }\n[tasks.a]\nrun = \"x {{ secrets.k | shquote }}\"\nwhen = \"[1].all(x, x > 0)\"\n",
    );
}

#[test]
fn invalid_ids_and_gate_problems() {
    let d = errors(
        r#"
[tasks."a.b"]
run = "x"
[gates.g]
after = []
checks = [{ name = "c", run = "x", expr = "true" }]
on_fail = "nope"
"#,
    );
    let msgs: Vec<&str> = d.iter().map(|d| d.message.as_str()).collect();
    assert!(
        msgs.iter().any(|m| m.contains("invalid task id `a.b`")),
        "{msgs:?}"
    );
    assert!(msgs.iter().any(|m| m.contains("after no task")), "{msgs:?}");
    assert!(
        msgs.iter().any(|m| m.contains("both `run` and `expr`")),
        "{msgs:?}"
    );
    assert!(
        msgs.iter().any(|m| m.contains("unknown on_fail")),
        "{msgs:?}"
    );
}

#[test]
fn matrix_problems() {
    let d = errors("[tasks.a]\nrun = \"x\"\nmatrix = { os = [], v = [1, 1], bad = \"x\" }\n");
    assert_eq!(d.len(), 3, "{d:#?}");
    let (_, _, msg) =
        one("[tasks.a]\nrun = \"x\"\n[tasks.b]\nrun = \"y\"\nneeds = [\"a[os=x]\"]\n");
    assert!(msg.contains("unknown task `a[os=x]`"), "{msg}");
    let w = ok(
        "[tasks.a]\nrun = \"x\"\nmatrix = { os = [\"x\", \"y\"] }\n[tasks.b]\nrun = \"y\"\nneeds = [\"a[os=y]\"]\n",
    );
    assert_eq!(w.tasks[2].needs, [1]);
}

#[test]
fn no_tasks_and_wrong_top_level() {
    let (_, _, msg) = one("name = \"x\"\n");
    assert!(msg.contains("no tasks"), "{msg}");
    let d = errors_in("[1, 2]", Format::Json);
    assert!(d[0].message.contains("must be a table"), "{d:?}");
}

#[test]
fn many_cycles_are_all_reported() {
    let d = errors(
        "[tasks.a]\nbuiltin = \"noop\"\nneeds = [\"b\"]\n[tasks.b]\nbuiltin = \"noop\"\nneeds = [\"a\"]\n\
         [tasks.c]\nbuiltin = \"noop\"\nneeds = [\"d\"]\n[tasks.d]\nbuiltin = \"noop\"\nneeds = [\"c\"]\n",
    );
    let cycles: Vec<&str> = d.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(
        cycles,
        [
            "dependency cycle: a -> b -> a",
            "dependency cycle: c -> d -> c"
        ]
    );
}

#[test]
fn reply_format_is_for_prompt_tasks() {
    let agent = "[agents.w]\nkind = \"llm\"\nendpoint = \"http://127.0.0.1:1/v1\"\nmodel = \"m\"\n";
    let w = ok(&format!(
        "{agent}[tasks.a]\nprompt = \"x\"\nformat = \"json\"\n[tasks.b]\nprompt = \"y\"\n"
    ));
    assert_eq!(w.tasks[0].format, ReplyFormat::Json);
    assert_eq!(w.tasks[1].format, ReplyFormat::Text);
    let (line, _, msg) = one("[tasks.a]\nrun = \"x\"\nformat = \"json\"\n");
    assert_eq!(line, 3);
    assert!(msg.contains("not a `prompt` task"), "{msg}");
    let (line, _, msg) = one(&format!(
        "{agent}[tasks.a]\nprompt = \"x\"\nformat = \"yaml\"\n"
    ));
    assert_eq!(line, 7);
    assert!(msg.contains("unknown reply format `yaml`"), "{msg}");
}

#[test]
fn reply_schema_must_be_valid_and_needs_json() {
    let agent = "[agents.w]\nkind = \"llm\"\nendpoint = \"http://127.0.0.1:1/v1\"\nmodel = \"m\"\n";
    let w = ok(&format!(
        "{agent}[tasks.a]\nprompt = \"x\"\nformat = \"json\"\nschema = {{ type = \"object\", required = [\"score\"] }}\n"
    ));
    assert_eq!(
        w.tasks[0].schema,
        Some(serde_json::json!({"type": "object", "required": ["score"]}))
    );
    let (line, _, msg) = one(&format!(
        "{agent}[tasks.a]\nprompt = \"x\"\nschema = {{ type = \"object\" }}\n"
    ));
    assert_eq!(line, 7);
    assert!(msg.contains("no format = \"json\""), "{msg}");
    let (line, _, msg) = one(&format!(
        "{agent}[tasks.a]\nprompt = \"x\"\nformat = \"json\"\nschema = {{ type = \"thing\" }}\n"
    ));
    assert_eq!(line, 8);
    assert!(msg.contains("not a valid JSON Schema"), "{msg}");
}

#[test]
fn http_agent_settings_and_fallbacks() {
    let w = ok(r#"
[agents.worker]
kind = "http"
url = "http://127.0.0.1:9000/tasks"
heartbeat_timeout = "10s"
health_url = "http://127.0.0.1:9000/health"
fallback = "local"
[tasks.a]
agent = "worker"
run = "make"
"#);
    let a = &w.agents["worker"];
    assert_eq!(a.heartbeat_timeout, Some(Duration::from_secs(10)));
    assert_eq!(
        a.health_url.as_deref(),
        Some("http://127.0.0.1:9000/health")
    );
    assert_eq!(a.fallback.as_deref(), Some("local"));

    let (line, _, msg) =
        one("[agents.x]\nkind = \"local\"\nfallback = \"x\"\n[tasks.a]\nrun = \"make\"\n");
    assert_eq!(line, 3);
    assert!(msg.contains("names itself"), "{msg}");
    let (_, _, msg) =
        one("[agents.x]\nkind = \"local\"\nfallback = \"lokal\"\n[tasks.a]\nrun = \"make\"\n");
    assert!(msg.contains("unknown agent `lokal`"), "{msg}");
    let (_, _, msg) = one(
        "[agents.x]\nkind = \"local\"\nheartbeat_timeout = \"5s\"\n[tasks.a]\nrun = \"make\"\n",
    );
    assert!(msg.contains("does not apply to a local agent"), "{msg}");
}
