//! Agent health: a command agent whose program is missing gets no work and its task goes to
//! the fallback agent (or another capable one); an llm endpoint that is down or refuses the key
//! makes its agent unhealthy and its task waits; an agent that comes back takes its task.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use taskdeck::config::Config;
use taskdeck::engine::{EngineHandle, EngineOptions};
use taskdeck::model::{AgentHealth, Command, RunId, RunState, TaskState};
use taskdeck::spec::{Format, parse_str};

struct Rig {
    _dir: tempfile::TempDir,
    engine: EngineHandle,
}

/// One llm agent, `writer`, at `endpoint`, and one task that needs it.
fn llm_writer_flow(name: &str, endpoint: &str) -> String {
    format!(
        r#"
name = "{name}"
[agents.writer]
kind = "llm"
endpoint = "{endpoint}"
model = "m"
capabilities = ["docs"]

[tasks.write]
requires = ["docs"]
prompt = "write"
"#
    )
}

impl Rig {
    /// Cancels the run and waits for its end.
    async fn cancel(&self, run: &RunId) -> RunState {
        self.engine
            .command(Command::CancelRun { run: run.clone() })
            .await
            .unwrap();
        self.engine.wait_finished(run).await.unwrap()
    }

    fn new() -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let engine = EngineHandle::start(EngineOptions {
            config: Arc::new(Config::default()),
            log_dir: dir.path().join("logs"),
            work_dir: dir.path().join("work"),
            auto_approve: false,
            journal: None,
            callbacks: Default::default(),
        });
        Rig { _dir: dir, engine }
    }

    async fn submit(&self, text: &str) -> RunId {
        let wf = parse_str(text, "flow.toml", Format::Toml, &Config::default())
            .unwrap_or_else(|e| panic!("{e:?}"));
        self.engine.submit(wf, None).await.unwrap()
    }

    async fn health(&self, agent: &str) -> AgentHealth {
        let agent: Arc<str> = agent.into();
        self.engine
            .inspect(move |st| st.agents[&agent].health.clone())
            .await
            .unwrap()
    }

    /// Waits (however long it takes) until `agent` is down, and returns why.
    async fn until_down(&self, agent: &str) -> String {
        loop {
            if let AgentHealth::Down(why) = self.health(agent).await {
                return why;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn task(&self, run: &RunId, id: &str) -> taskdeck::engine::state::Task {
        let snap = self.engine.snapshot().await.unwrap();
        let r = snap.runs.get(run).unwrap();
        r.tasks[r.index.by_id[id] as usize].clone()
    }
}

#[tokio::test]
async fn a_missing_program_sends_the_task_to_the_fallback_agent() {
    let rig = Rig::new();
    let run = rig
        .submit(
            r#"
name = "fallback"
[agents.claude]
kind = "command"
command = "no-such-program-4711 -p {{ task.prompt | tojson }}"
capabilities = ["review"]
fallback = "backup"

[agents.backup]
kind = "command"
command = "echo reviewed by backup"

[tasks.review]
requires = ["review"]
prompt = "look at it"
"#,
        )
        .await;
    assert_eq!(
        rig.engine.wait_finished(&run).await.unwrap(),
        RunState::Succeeded
    );
    let t = rig.task(&run, "review").await;
    assert_eq!(t.attempts.len(), 1);
    assert_eq!(&*t.attempts[0].agent, "backup");
    assert_eq!(
        rig.health("claude").await,
        AgentHealth::Down("command \"no-such-program-4711\" not found on PATH".into())
    );
    assert_eq!(rig.health("backup").await, AgentHealth::Up);
}

#[tokio::test]
async fn without_a_fallback_another_capable_agent_takes_the_task() {
    let rig = Rig::new();
    let run = rig
        .submit(
            r#"
name = "others"
[agents.first]
kind = "command"
command = "/no/such/dir/tool {{ task.prompt }}"
capabilities = ["review"]

[agents.second]
kind = "command"
command = "echo second"
capabilities = ["review"]

[tasks.review]
requires = ["review"]
prompt = "look"
"#,
        )
        .await;
    assert_eq!(
        rig.engine.wait_finished(&run).await.unwrap(),
        RunState::Succeeded
    );
    assert_eq!(&*rig.task(&run, "review").await.attempts[0].agent, "second");
    assert_eq!(
        rig.health("first").await,
        AgentHealth::Down("command \"/no/such/dir/tool\" not found".into())
    );
}

#[tokio::test]
async fn an_unreachable_llm_endpoint_is_down_and_its_task_waits() {
    let rig = Rig::new();
    // A port nothing listens on: bind one, then let it go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let run = rig
        .submit(&llm_writer_flow(
            "llm-down",
            &format!("http://127.0.0.1:{port}/v1"),
        ))
        .await;
    let why = rig.until_down("writer").await;
    assert!(why.contains("unreachable"), "{why}");
    // Nothing was attempted: the task waits for a healthy agent.
    let t = rig.task(&run, "write").await;
    assert_eq!(t.state, TaskState::Ready);
    assert!(t.attempts.is_empty());
    // The console and API can say why it waits.
    let id = run.clone();
    let waits = rig
        .engine
        .inspect(move |st| st.waiting_for_agents(&st.runs[&id], 0))
        .await
        .unwrap()
        .unwrap();
    assert!(
        waits.starts_with("waiting for a healthy agent: agent `writer` is down: "),
        "{waits}"
    );
    assert_eq!(rig.cancel(&run).await, RunState::Cancelled);
}

#[tokio::test]
async fn a_refused_api_key_makes_the_llm_agent_unhealthy() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().route("/v1/models", get(|| async { StatusCode::UNAUTHORIZED }));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let rig = Rig::new();
    let run = rig
        .submit(&llm_writer_flow("llm-401", &format!("http://{addr}/v1")))
        .await;
    let why = rig.until_down("writer").await;
    assert!(why.starts_with("api key refused"), "{why}");
    rig.cancel(&run).await;
}

#[tokio::test]
async fn an_agent_that_comes_back_takes_its_waiting_task() {
    let dir = tempfile::tempdir().unwrap();
    let tool = dir.path().join("tool");
    let rig = Rig::new();
    let run = rig
        .submit(&format!(
            r#"
name = "comes-back"
[agents.late]
kind = "command"
command = "{} {{{{ task.prompt }}}}"
capabilities = ["late"]

[tasks.job]
requires = ["late"]
prompt = "hello"
"#,
            tool.display()
        ))
        .await;
    rig.until_down("late").await;
    std::fs::write(&tool, "#!/bin/sh\necho \"tool says $1\"\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
    // The next probe finds it; the task then runs on it.
    assert_eq!(
        rig.engine.wait_finished(&run).await.unwrap(),
        RunState::Succeeded
    );
    assert_eq!(rig.health("late").await, AgentHealth::Up);
    assert_eq!(&*rig.task(&run, "job").await.attempts[0].agent, "late");
}
