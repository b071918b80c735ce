//! Every template, under every strategy, gives a workflow that passes `validate`.

use super::*;
use crate::config::Config;
use crate::spec::{self, Format};

fn load(text: &str) -> crate::spec::Workflow {
    spec::parse_str(text, "plan.toml", Format::Toml, &Config::default())
        .unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn request(kind: RequestType, strategy: Strategy) -> Request {
    let mut r = Request::new(kind, "Add {{ semantic }} search".into());
    r.preferences.execution_strategy = strategy;
    r
}

#[test]
fn every_template_and_strategy_passes_validate() {
    for kind in RequestType::ALL {
        for strategy in [Strategy::Fast, Strategy::Balanced, Strategy::Thorough] {
            let mut r = request(kind, strategy);
            r.preferences
                .quality_gates
                .push(request::GateRequest::Command("true".into()));
            for agents in [
                Agents::Command(DRY_RUN_COMMAND.into()),
                Agents::Llm {
                    endpoint: "http://127.0.0.1:8080/v1".into(),
                    model: "m".into(),
                    key_env: Some("KEY".into()),
                },
            ] {
                let wf = load(&from_template(&r, &agents));
                assert!(wf.tasks.len() >= 4, "{kind:?} {strategy:?}");
                assert_eq!(wf.gates.len(), 1);
            }
        }
    }
}

#[test]
fn fast_drops_optional_steps_and_thorough_adds_reviews_and_approvals() {
    let count = |s| {
        load(&from_template(
            &request(RequestType::FeatureDevelopment, s),
            &Agents::Command(DRY_RUN_COMMAND.into()),
        ))
        .tasks
        .len()
    };
    let (fast, balanced, thorough) = (
        count(Strategy::Fast),
        count(Strategy::Balanced),
        count(Strategy::Thorough),
    );
    assert!(
        fast < balanced && balanced < thorough,
        "{fast} {balanced} {thorough}"
    );
    let wf = load(&from_template(
        &request(RequestType::ReleaseManagement, Strategy::Thorough),
        &Agents::Command(DRY_RUN_COMMAND.into()),
    ));
    let release = wf.tasks.iter().find(|t| t.id == "release").unwrap();
    assert!(
        release.approval,
        "thorough plans approve irreversible steps"
    );
}

#[test]
fn a_dropped_step_keeps_the_order_it_imposed() {
    // `fast` drops `integration`; `tests` still waits for `implement`.
    let r = request(RequestType::FeatureDevelopment, Strategy::Fast);
    let tasks = planned_tasks(&r);
    assert!(!tasks.iter().any(|t| t.id == "integration"));
    let tests = tasks.iter().find(|t| t.id == "tests").unwrap();
    assert!(
        tests.needs.contains(&"implement".to_string()),
        "{:?}",
        tests.needs
    );
}

#[test]
fn complex_requests_split_the_main_work_per_requirement() {
    let mut r = request(RequestType::FeatureDevelopment, Strategy::Balanced);
    r.complexity_level = 8;
    r.requirements.functional = vec!["search by keyword".into(), "rank by relevance".into()];
    r.preferences
        .quality_gates
        .push(request::GateRequest::Command("cargo test".into()));
    let wf = load(&from_template(&r, &Agents::Command(DRY_RUN_COMMAND.into())));
    let ids: Vec<&str> = wf.tasks.iter().map(|t| t.id.as_str()).collect();
    assert!(
        ids.contains(&"implement-1") && ids.contains(&"implement-2"),
        "{ids:?}"
    );
    let tests = wf.tasks.iter().find(|t| t.id == "tests").unwrap();
    assert_eq!(tests.needs.len(), 3, "both tracks and integration");
    let gate = wf.gates.first().unwrap();
    assert_eq!(gate.after.len(), 2, "the gate checks both tracks");
    // A simple request keeps one implementation task.
    r.complexity_level = 3;
    let wf = load(&from_template(&r, &Agents::Command(DRY_RUN_COMMAND.into())));
    assert!(wf.tasks.iter().any(|t| t.id == "implement"));
}

#[test]
fn the_request_text_reaches_the_prompt_verbatim() {
    let mut r = request(RequestType::BugInvestigation, Strategy::Balanced);
    r.requirements.constraints = vec!["no \"schema\" change".into()];
    let text = from_template(&r, &Agents::Command(DRY_RUN_COMMAND.into()));
    let wf = load(&text);
    let Action::Prompt(p) = &wf.tasks[0].action else {
        panic!("a prompt task")
    };
    let rendered = crate::template::render(p, &serde_json::json!({})).unwrap();
    assert!(rendered.contains("Add {{ semantic }} search"), "{rendered}");
    assert!(rendered.contains("- no \"schema\" change"), "{rendered}");
}

use crate::spec::Action;
