//! Multi-agent tasks end to end through the engine: workflows parsed from TOML, real command
//! agents that print different outputs, a real journal. Every wait is for the run to finish
//! (or for a file a process writes), bounded by a limit only a hang reaches.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use taskdeck::config::Config;
use taskdeck::engine::state::{Run, Task};
use taskdeck::engine::{EngineHandle, EngineOptions};
use taskdeck::model::{AttemptOutcome, Command, RunId, RunState, TaskState};
use taskdeck::spec::{Format, Workflow, parse_str};
use tempfile::TempDir;

const WAIT: Duration = Duration::from_secs(30);

struct Rig {
    dir: TempDir,
    engine: EngineHandle,
}

impl Rig {
    fn new() -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let engine = Rig::engine_in(dir.path());
        Rig { dir, engine }
    }

    fn engine_in(dir: &Path) -> EngineHandle {
        let mut config = Config::default();
        config.defaults.kill_grace = Duration::from_millis(200);
        let store =
            taskdeck::store::open(&taskdeck::store::StoreUrl::Sqlite(dir.join("journal.db")))
                .unwrap();
        EngineHandle::start(EngineOptions {
            config: Arc::new(config),
            log_dir: dir.join("logs"),
            work_dir: dir.join("work"),
            auto_approve: false,
            journal: Some(taskdeck::store::Journal::spawn(store).unwrap()),
            callbacks: Default::default(),
        })
    }

    fn p(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    fn parse(&self, text: &str) -> Workflow {
        match parse_str(text, "flow.toml", Format::Toml, &Config::default()) {
            Ok(w) => w,
            Err(e) => panic!("{e}"),
        }
    }

    async fn run(&self, text: &str) -> (RunId, Run) {
        let id = self.engine.submit(self.parse(text), None).await.unwrap();
        let finished = tokio::time::timeout(WAIT, self.engine.wait_finished(&id)).await;
        assert!(finished.is_ok(), "the run did not finish");
        (id.clone(), self.snapshot(&id).await)
    }

    async fn snapshot(&self, id: &RunId) -> Run {
        self.engine.snapshot().await.unwrap().runs[id].clone()
    }
}

/// A command agent that writes `outputs` (`key=value` lines) after running `before`.
fn agent(name: &str, before: &str, outputs: &[(&str, &str)]) -> String {
    let mut script = String::from(before);
    for (k, v) in outputs {
        script.push_str(&format!(" echo {k}={v} >> $TASKDECK_OUTPUT;"));
    }
    format!("[agents.{name}]\nkind = \"command\"\ncommand = \"sh -c '{script}'\"\n")
}

fn task<'r>(run: &'r Run, id: &str) -> &'r Task {
    let i = run.workflow.tasks.iter().position(|t| t.id == id).unwrap();
    &run.tasks[i]
}

fn outcomes(t: &Task, attempt: usize) -> Vec<(String, Option<AttemptOutcome>)> {
    t.attempts[attempt]
        .branches
        .iter()
        .map(|b| (b.agent.to_string(), b.outcome))
        .collect()
}

const OK: Option<AttemptOutcome> = Some(AttemptOutcome::Succeeded);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn majority_wins_and_its_outputs_flow_downstream() {
    let rig = Rig::new();
    let text = format!(
        "{}{}{}{}",
        agent("a", "", &[("verdict", "approve"), ("by", "a")]),
        agent("b", "", &[("verdict", "reject"), ("by", "b")]),
        agent("c", "", &[("verdict", "Approve"), ("by", "c")]),
        r#"
[tasks.review]
prompt = "Review it"
agents = ["a", "b", "c"]
resolve = { majority = "verdict" }
[tasks.ship]
needs = ["review"]
when = "tasks.review.outputs.verdict == 'approve'"
builtin = "echo shipping"
"#
    );
    let (_, run) = rig.run(&text).await;
    assert_eq!(run.state, RunState::Succeeded);
    let review = task(&run, "review");
    assert_eq!(review.outputs["verdict"], json!("approve"));
    assert_eq!(review.outputs["by"], json!("a"));
    assert_eq!(
        outcomes(review, 0),
        [("a".into(), OK), ("b".into(), OK), ("c".into(), OK)]
    );
    let attempt = &review.attempts[0];
    assert_eq!(&*attempt.agent, "a+b+c");
    let r = attempt.resolution.as_ref().unwrap();
    assert!(r.ok);
    assert_eq!(r.winner.as_deref(), Some("a"));
    assert_eq!(r.conflicts.len(), 1);
    assert_eq!(r.conflicts[0].field, "verdict");
    assert_eq!(r.conflicts[0].values[1].value, json!("reject"));
    assert_eq!(task(&run, "ship").state, TaskState::Succeeded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_majority_fails_every_attempt_of_the_whole_task() {
    let rig = Rig::new();
    let text = format!(
        "{}{}{}{}",
        agent("a", "", &[("verdict", "yes")]),
        agent("b", "", &[("verdict", "no")]),
        agent("c", "exit 3;", &[]),
        r#"
[tasks.review]
prompt = "Review it"
agents = 3
resolve = { majority = "verdict" }
retry = { attempts = 2, delay = "10ms" }
"#
    );
    let (_, run) = rig.run(&text).await;
    assert_eq!(run.state, RunState::Failed);
    let review = task(&run, "review");
    assert_eq!(review.state, TaskState::Failed);
    // The retry ran the whole fan-out again.
    assert_eq!(review.attempts.len(), 2);
    for a in &review.attempts {
        assert_eq!(a.branches.len(), 3);
        let r = a.resolution.as_ref().unwrap();
        assert!(!r.ok);
        assert_eq!(r.conflicts[0].kept, None);
        assert!(
            a.error
                .starts_with("no majority on `verdict` among 3 agents"),
            "{}",
            a.error
        );
    }
    assert!(review.reason.as_deref().unwrap().contains("no majority"));
    // Every slot came back.
    let st = rig.engine.snapshot().await.unwrap();
    assert!(st.agents.values().all(|a| a.slots_used == 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_unions_outputs_and_records_conflicts() {
    let rig = Rig::new();
    let text = format!(
        "{}{}{}",
        agent("a", "", &[("summary", "short"), ("lang", "rust")]),
        agent("b", "", &[("summary", "long"), ("tests", "12")]),
        r#"
[tasks.notes]
prompt = "Write notes"
agents = ["a", "b"]
resolve = "merge"
"#
    );
    let (_, run) = rig.run(&text).await;
    assert_eq!(run.state, RunState::Succeeded);
    let notes = task(&run, "notes");
    assert_eq!(
        Value::Object(notes.outputs.clone()),
        json!({"summary": "short", "lang": "rust", "tests": 12})
    );
    let r = notes.attempts[0].resolution.as_ref().unwrap();
    assert_eq!(r.strategy, "merge");
    assert_eq!(r.conflicts.len(), 1);
    let c = &r.conflicts[0];
    assert_eq!(c.field, "summary");
    assert_eq!(c.kept.as_deref(), Some("a"));
    let report = serde_json::to_value(taskdeck::report::Report::of(&run)).unwrap();
    assert_eq!(report["conflicts"][0]["task"], "notes");
    assert_eq!(report["conflicts"][0]["kept"], "a");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_success_wins_and_the_others_are_cancelled() {
    let rig = Rig::new();
    let started = rig.p("slow-started");
    // `slow` never finishes on its own: only the cancel ends it.
    let text = format!(
        "{}{}{}",
        agent("fast", "", &[("answer", "fast")]),
        agent(
            "slow",
            &format!("touch {started}; while true; do sleep 0.05; done;"),
            &[("answer", "slow")]
        ),
        r#"
[tasks.ask]
prompt = "Quick"
agents = ["slow", "fast"]
resolve = "first"
"#
    );
    let (_, run) = rig.run(&text).await;
    assert_eq!(run.state, RunState::Succeeded);
    let ask = task(&run, "ask");
    assert_eq!(ask.outputs["answer"], json!("fast"));
    assert_eq!(
        outcomes(ask, 0),
        [
            ("slow".into(), Some(AttemptOutcome::Cancelled)),
            ("fast".into(), OK)
        ]
    );
    let r = ask.attempts[0].resolution.as_ref().unwrap();
    assert_eq!(r.winner.as_deref(), Some("fast"));
    // The run only finishes once every process is gone, and the slots are free.
    let st = rig.engine.snapshot().await.unwrap();
    assert!(st.agents.values().all(|a| a.slots_used == 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_judge_picks_a_candidate_or_writes_the_answer() {
    let rig = Rig::new();
    let text = format!(
        "{}{}{}{}{}",
        agent("a", "", &[("text", "draft-a")]),
        agent("b", "", &[("text", "draft-b")]),
        // Picks the candidate whose outputs mention draft-b, from the context it was given.
        agent(
            "picker",
            "grep -q draft-b $TASKDECK_CONTEXT || exit 9;",
            &[("pick", "b")]
        ),
        agent("writer", "", &[("text", "combined")]),
        r#"
[tasks.picked]
prompt = "Draft"
agents = ["a", "b"]
resolve = { judge = "picker" }
[tasks.written]
prompt = "Draft"
agents = ["a", "b"]
resolve = { judge = "writer", prompt = "choose among {{ candidates | length }}" }
"#
    );
    let (_, run) = rig.run(&text).await;
    assert_eq!(run.state, RunState::Succeeded, "{:#?}", run.tasks);
    let picked = task(&run, "picked");
    assert_eq!(picked.outputs["text"], json!("draft-b"));
    assert_eq!(
        outcomes(picked, 0),
        [("a".into(), OK), ("b".into(), OK), ("picker".into(), OK)]
    );
    assert!(picked.attempts[0].branches[2].judge);
    let r = picked.attempts[0].resolution.as_ref().unwrap();
    assert_eq!(r.summary, "`picker` picked `b`");
    assert_eq!(r.conflicts[0].field, "text");
    assert_eq!(r.conflicts[0].kept.as_deref(), Some("b"));

    let written = task(&run, "written");
    assert_eq!(written.outputs["text"], json!("combined"));
    let r = written.attempts[0].resolution.as_ref().unwrap();
    assert_eq!(r.winner.as_deref(), Some("writer"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_branch_holds_a_slot_on_its_agent() {
    let rig = Rig::new();
    // Two multi-agent tasks on the same two single-slot agents cannot overlap.
    let text = format!(
        "{}{}{}",
        agent("a", "", &[("x", "1")]),
        agent("b", "", &[("x", "2")]),
        r#"
[tasks.one]
prompt = "p"
agents = ["a", "b"]
resolve = "first"
[tasks.two]
prompt = "p"
agents = 2
resolve = "merge"
"#
    );
    let (_, run) = rig.run(&text).await;
    assert_eq!(run.state, RunState::Succeeded);
    let (one, two) = (
        &task(&run, "one").attempts[0],
        &task(&run, "two").attempts[0],
    );
    let (first, second) = if one.assigned_at <= two.assigned_at {
        (one, two)
    } else {
        (two, one)
    };
    // The second was assigned only once the first had ended and freed both slots.
    assert!(second.assigned_at >= first.finished_at.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_multi_agent_task_stops_every_branch() {
    let rig = Rig::new();
    let (sa, sb) = (rig.p("a-started"), rig.p("b-started"));
    let text = format!(
        "{}{}{}",
        agent(
            "a",
            &format!("touch {sa}; while true; do sleep 0.05; done;"),
            &[]
        ),
        agent(
            "b",
            &format!("touch {sb}; while true; do sleep 0.05; done;"),
            &[]
        ),
        r#"
[tasks.stuck]
prompt = "p"
agents = ["a", "b"]
resolve = "merge"
"#
    );
    let id = rig.engine.submit(rig.parse(&text), None).await.unwrap();
    for f in [&sa, &sb] {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !Path::new(f).exists() {
            assert!(tokio::time::Instant::now() < deadline, "{f} never started");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    rig.engine
        .command(Command::CancelTask {
            run: id.clone(),
            task: "stuck".into(),
        })
        .await
        .unwrap();
    let state = tokio::time::timeout(WAIT, rig.engine.wait_finished(&id))
        .await
        .expect("the run did not finish")
        .unwrap();
    // A cancelled task fails its run, as for any task.
    assert_eq!(state, RunState::Failed);
    let run = rig.snapshot(&id).await;
    let stuck = task(&run, "stuck");
    assert_eq!(stuck.state, TaskState::Cancelled);
    assert_eq!(
        outcomes(stuck, 0),
        [
            ("a".into(), Some(AttemptOutcome::Cancelled)),
            ("b".into(), Some(AttemptOutcome::Cancelled))
        ]
    );
    let st = rig.engine.snapshot().await.unwrap();
    assert!(st.agents.values().all(|a| a.slots_used == 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn branches_come_back_from_the_journal_after_a_restart() {
    let rig = Rig::new();
    let started = rig.p("b-started");
    let text = format!(
        "{}{}{}",
        agent("a", "", &[("v", "a")]),
        agent(
            "b",
            &format!(
                "[ -e {started} ] || {{ touch {started}; while true; do sleep 0.05; done; }};"
            ),
            &[("v", "b")]
        ),
        r#"
[tasks.both]
prompt = "p"
agents = ["a", "b"]
resolve = "merge"
"#
    );
    let id = rig.engine.submit(rig.parse(&text), None).await.unwrap();
    // Wait until `a` has finished (journaled) and `b` holds.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let run = rig.snapshot(&id).await;
        let t = task(&run, "both");
        let a_done = t
            .attempts
            .first()
            .and_then(|a| a.branches.first())
            .is_some_and(|b| b.outcome.is_some());
        if a_done && Path::new(&started).exists() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never got there");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    rig.engine.detach().await.unwrap();
    let engine = Rig::engine_in(rig.dir.path());
    let (recovered, _) = engine.resume(&id).await.unwrap();
    // The first attempt's branches were journaled: `a` finished, `b` was interrupted.
    let first = &task(&recovered.state, "both").attempts[0];
    assert_eq!(first.outcome, Some(AttemptOutcome::Interrupted));
    assert_eq!(first.branches[0].outcome, OK);
    assert_eq!(first.branches[1].outcome, Some(AttemptOutcome::Interrupted));
    // A new attempt fans out again and finishes (b's marker file lets it through now).
    let state = tokio::time::timeout(WAIT, engine.wait_finished(&id))
        .await
        .expect("the resumed run did not finish")
        .unwrap();
    assert_eq!(state, RunState::Succeeded);
    let run = engine.snapshot().await.unwrap().runs[&id].clone();
    let both = task(&run, "both");
    assert_eq!(both.attempts.len(), 2);
    assert_eq!(Value::Object(both.outputs.clone()), json!({"v": "a"}));
    let st = engine.snapshot().await.unwrap();
    assert!(st.agents.values().all(|a| a.slots_used == 0));
}

// ----- llm agents and an llm judge against a local OpenAI-compatible server -----

/// Answers chat completions by model: `yes`/`no` vote, `judge` picks candidate 2 when its
/// prompt shows both candidates' outputs. Records the judge's prompts.
fn llm_server() -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
    use axum::extract::State;
    use axum::routing::post;
    let prompts: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let state = prompts.clone();
    async fn chat(
        State(prompts): State<Arc<std::sync::Mutex<Vec<String>>>>,
        axum::Json(body): axum::Json<Value>,
    ) -> axum::Json<Value> {
        let model = body["model"].as_str().unwrap_or("").to_string();
        let prompt = body["messages"]
            .as_array()
            .and_then(|m| m.last())
            .and_then(|m| m["content"].as_str())
            .unwrap_or("")
            .to_string();
        let content = match model.as_str() {
            "yes" => json!({"verdict": "yes", "why": "fine"}).to_string(),
            "no" => json!({"verdict": "no", "why": "broken"}).to_string(),
            _ => {
                prompts.lock().unwrap().push(prompt.clone());
                let sees_both = prompt.contains("\"broken\"") && prompt.contains("\"fine\"");
                json!({"pick": if sees_both { 2 } else { 0 }, "verdict": "judged"}).to_string()
            }
        };
        axum::Json(json!({
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10},
        }))
    }
    let addr = common::serve_on_thread(move |_| {
        axum::Router::new()
            .route("/v1/chat/completions", post(chat))
            .with_state(state)
    });
    (format!("http://{addr}/v1"), prompts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llm_agents_vote_and_an_llm_judge_picks() {
    let rig = Rig::new();
    let (endpoint, judge_prompts) = llm_server();
    let llm = |name: &str, model: &str| {
        format!("[agents.{name}]\nkind = \"llm\"\nendpoint = \"{endpoint}\"\nmodel = \"{model}\"\n")
    };
    let text = format!(
        "{}{}{}{}{}",
        llm("y1", "yes"),
        llm("n1", "no"),
        llm("y2", "yes"),
        llm("referee", "judge"),
        r#"
[tasks.vote]
prompt = "Is it good?"
format = "json"
agents = ["y1", "n1", "y2"]
resolve = { majority = "json.verdict" }
[tasks.judged]
prompt = "Is it good?"
format = "json"
agents = ["y1", "n1"]
resolve = { judge = "referee" }
"#
    );
    let (_, run) = rig.run(&text).await;
    assert_eq!(run.state, RunState::Succeeded, "{:#?}", run.tasks);
    let vote = task(&run, "vote");
    assert_eq!(vote.outputs["json"]["verdict"], json!("yes"));
    let r = vote.attempts[0].resolution.as_ref().unwrap();
    assert_eq!(r.conflicts[0].field, "json.verdict");

    // The judge saw both candidates in its prompt and picked the second (n1).
    let judged = task(&run, "judged");
    assert_eq!(judged.outputs["json"]["verdict"], json!("no"));
    let r = judged.attempts[0].resolution.as_ref().unwrap();
    assert_eq!(r.summary, "`referee` picked `n1`");
    let prompts = judge_prompts.lock().unwrap();
    assert_eq!(prompts.len(), 1);
    assert!(prompts[0].contains("Is it good?"), "{}", prompts[0]);
    assert!(prompts[0].contains("Candidate 2 (n1)"), "{}", prompts[0]);
}
