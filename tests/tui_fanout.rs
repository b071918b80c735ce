//! The console's task detail of a multi-agent task: each agent's branch, how the attempt was
//! resolved, and the conflict, folded from hand-built events as the engine emits them.

mod common;

use common::tui::Feed;
use common::{task, workflow};
use serde_json::{Map, Value, json};
use taskdeck::model::{AgentValue, AttemptOutcome, Conflict, EventKind, Resolution};
use taskdeck::spec::{
    Action, AgentKind, AgentSpec, Fanout, FanoutAgents, Resolve, TaskSpec, Workflow,
};

fn command_agent() -> AgentSpec {
    let mut a = AgentSpec::default_local(1);
    a.kind = AgentKind::Command;
    a.command = Some("my-cli {{ task.prompt }}".into());
    a
}

fn review_flow() -> Workflow {
    let mut review = TaskSpec::new("review", Action::Prompt("Review the change".into()));
    review.fanout = Some(Fanout {
        agents: FanoutAgents::Named(vec!["claude".into(), "codex".into(), "qwen".into()]),
        resolve: Resolve::Majority {
            field: "verdict".into(),
        },
    });
    let mut wf = workflow(vec![review, task("release", &[0])]);
    wf.name = "review".into();
    for name in ["claude", "codex", "qwen"] {
        wf.agents.insert(name.into(), command_agent());
    }
    wf
}

fn outputs(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// `review` ran on three agents: two approve, one rejects; the vote approves.
fn voted() -> Feed {
    let mut f = Feed::new(review_flow());
    f.emit(EventKind::TaskAssigned {
        task: 0,
        agent: "claude+codex+qwen".into(),
        attempt: 1,
    });
    for (i, agent) in ["claude", "codex", "qwen"].into_iter().enumerate() {
        f.emit(EventKind::BranchAssigned {
            task: 0,
            attempt: 1,
            branch: i as u32,
            agent: agent.into(),
            judge: false,
        });
    }
    f.emit(EventKind::TaskStarted {
        task: 0,
        attempt: 1,
        pid: Some(4242),
    });
    let said = [
        ("approve", "looks good"),
        ("reject", "missing tests"),
        ("approve", "fine"),
    ];
    for (i, (verdict, note)) in said.into_iter().enumerate() {
        f.emit(EventKind::BranchFinished {
            task: 0,
            attempt: 1,
            branch: i as u32,
            outcome: AttemptOutcome::Succeeded,
            exit_code: Some(0),
            outputs: outputs(json!({"verdict": verdict, "note": note})),
            error: String::new(),
        });
    }
    let value = |agent: &str, v: &str| AgentValue {
        agent: agent.into(),
        value: json!(v),
    };
    f.emit(EventKind::TaskResolved {
        task: 0,
        attempt: 1,
        resolution: Resolution {
            strategy: "majority".into(),
            ok: true,
            winner: Some("claude".into()),
            summary: "`verdict` = \"approve\" by 2 of 3 agents (\"approve\" ×2, \"reject\" ×1)"
                .into(),
            conflicts: vec![Conflict {
                field: "verdict".into(),
                values: vec![
                    value("claude", "approve"),
                    value("codex", "reject"),
                    value("qwen", "approve"),
                ],
                kept: Some("claude".into()),
            }],
        },
    });
    f.emit(EventKind::TaskSucceeded {
        task: 0,
        attempt: 1,
        exit_code: None,
        outputs: outputs(json!({"verdict": "approve", "note": "looks good"})),
    });
    f
}

fn screen(f: &mut Feed, w: u16, h: u16) -> String {
    f.resize(w, h);
    f.draw(w, h).backend().to_string()
}

#[test]
fn detail_shows_each_branch_and_the_conflict_120x40() {
    let mut f = voted();
    f.resize(120, 40);
    f.keys(&["l", "h", "enter"]);
    let s = screen(&mut f, 120, 40);
    assert!(s.contains("branches of attempt #1"), "{s}");
    assert!(s.contains("conflict"), "{s}");
    insta::assert_snapshot!(s);
}

#[test]
fn detail_at_80x24() {
    let mut f = voted();
    f.resize(80, 24);
    f.keys(&["l", "h", "enter"]);
    // Scroll the detail down to the branches.
    f.keys(&["j", "j", "j", "j", "j"]);
    let s = screen(&mut f, 80, 24);
    assert!(s.contains("codex  succeeded"), "{s}");
    insta::assert_snapshot!(s);
}
