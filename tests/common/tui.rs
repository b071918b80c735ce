//! Builders for console tests: an `App` fed with hand-built events, drawn on a `TestBackend`.
#![allow(dead_code)]

use std::sync::Arc;

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use taskdeck::engine::state::{EngineState, Limits};
use taskdeck::history::{HistoryEntry, PastRun};
use taskdeck::model::{AttemptOutcome, Event, EventKind, LogLine, LogStream, RunId, RunState};
use taskdeck::spec::{AgentSpec, CheckKind, CheckSpec, GateLevel, GateSpec, OnFail, Workflow};
use taskdeck::tui::app::{App, LogKey, Msg, update};
use taskdeck::tui::dag_layout::DagLayout;
use taskdeck::tui::keymap::Keymap;
use taskdeck::tui::theme::Theme;
use taskdeck::tui::views::view;

use super::{task, workflow};

/// A demo-shaped workflow: parallel branches, a gate on `build`, an approval on `release`.
pub fn demo() -> Workflow {
    let mut tasks = vec![
        task("checkout", &[]),
        task("deps", &[0]),
        task("lint", &[0]),
        task("fetch-assets", &[0]),
        task("build", &[1]),
        task("staging-db", &[3]),
        task("test[suite=unit]", &[4]),
        task("test[suite=integration]", &[4]),
        task("package", &[6, 7, 2, 5]),
        task("release", &[8]),
        task("announce", &[9]),
    ];
    tasks[9].approval = true;
    tasks[3].retry.attempts = 3;
    let mut wf = workflow(tasks);
    wf.name = "demo".into();
    wf.gates.push(GateSpec {
        id: "quality".into(),
        after: vec![4],
        level: GateLevel::Output,
        checks: vec![
            CheckSpec {
                name: "binary under 50 MB".into(),
                kind: CheckKind::Expr("true".into()),
            },
            CheckSpec {
                name: "no warnings".into(),
                kind: CheckKind::Run("true".into()),
            },
        ],
        on_fail: OnFail::Pause,
    });
    let mut builder = AgentSpec::default_local(2);
    builder.capabilities = vec!["build".into(), "test".into()];
    wf.agents.insert("builder".into(), builder);
    wf
}

/// Feeds hand-built events to an `App`, as the engine's feed would.
pub struct Feed {
    pub app: App,
    pub run: RunId,
    seq: u64,
    pub ts: u64,
}

/// 2026-11-23 14:00:00 UTC.
pub const T0: u64 = 1_795_442_400_000;

impl Feed {
    pub fn new(wf: Workflow) -> Feed {
        let snapshot = EngineState::new(
            Limits {
                max_parallel: 16,
                pool: Default::default(),
            },
            [("local".to_string(), AgentSpec::default_local(4))],
        );
        let mut app =
            App::new("local", Theme::default(), Keymap::default()).with_snapshot(snapshot);
        app.size = (80, 24);
        app.cwd = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let mut f = Feed {
            app,
            run: RunId::from("20261123-140000-beef"),
            seq: 0,
            ts: T0,
        };
        f.app.own_runs.push(f.run.clone());
        f.emit(EventKind::RunSubmitted {
            workflow: Arc::new(wf),
            source: None,
        });
        f
    }

    /// A console with no run of its own (`taskdeck console`).
    pub fn empty() -> Feed {
        let mut f = Feed::new(demo());
        let snapshot = EngineState::new(
            Limits {
                max_parallel: 16,
                pool: Default::default(),
            },
            [("local".to_string(), AgentSpec::default_local(4))],
        );
        let size = f.app.size;
        f.app = App::new("local", Theme::default(), Keymap::default()).with_snapshot(snapshot);
        f.app.size = size;
        f
    }

    /// Types a line into the command palette and runs it.
    pub fn palette(&mut self, line: &str) {
        self.key(":");
        for c in line.chars() {
            self.key(&c.to_string());
        }
        self.key("enter");
    }

    pub fn emit(&mut self, kind: EventKind) {
        self.seq += 1;
        self.ts += 700;
        let ev = Event {
            seq: self.seq,
            ts: self.ts,
            run: self.run.clone(),
            kind,
        };
        update(&mut self.app, Msg::Engine(Arc::new(ev)));
    }

    pub fn start(&mut self, t: u32, agent: &str) {
        let attempt = self.app.mirror.runs[&self.run].tasks[t as usize]
            .attempts
            .len() as u32
            + 1;
        self.emit(EventKind::TaskAssigned {
            task: t,
            agent: agent.into(),
            attempt,
        });
        self.emit(EventKind::TaskStarted {
            task: t,
            attempt,
            pid: Some(4242),
        });
    }

    pub fn succeed(&mut self, t: u32) {
        let attempt = self.app.mirror.runs[&self.run].tasks[t as usize]
            .attempts
            .len() as u32;
        self.emit(EventKind::TaskSucceeded {
            task: t,
            attempt,
            exit_code: Some(0),
            outputs: Default::default(),
        });
    }

    pub fn fail(&mut self, t: u32, error: &str) {
        let attempt = self.app.mirror.runs[&self.run].tasks[t as usize]
            .attempts
            .len() as u32;
        self.emit(EventKind::TaskFailed {
            task: t,
            attempt,
            outcome: AttemptOutcome::Failed,
            error: error.into(),
            exit_code: Some(1),
            retry_at: None,
        });
    }

    pub fn run_state(&self) -> RunState {
        self.app.mirror.runs[&self.run].state
    }

    /// Delivers log lines for `task`'s current attempt, as a log read would.
    pub fn logs(&mut self, t: u32, lines: &[&str]) {
        let attempt = self.app.mirror.runs[&self.run].tasks[t as usize]
            .attempts
            .len() as u32;
        let key = LogKey {
            run: self.run.clone(),
            task: Some(t),
            attempt,
        };
        let since = self.app.logs.lines.len();
        let lines = lines
            .iter()
            .enumerate()
            .map(|(i, l)| LogLine {
                run: self.run.clone(),
                task: Some(t),
                attempt,
                ts: self.ts + i as u64,
                stream: if l.starts_with("error") {
                    LogStream::Stderr
                } else {
                    LogStream::Stdout
                },
                line: l.to_string(),
            })
            .collect();
        update(&mut self.app, Msg::LogLines { key, since, lines });
    }

    /// The demo run part-way: checkout and deps done, build running, lint and fetch running.
    pub fn running() -> Feed {
        let mut f = Feed::new(demo());
        f.start(0, "local");
        f.succeed(0);
        f.start(1, "local");
        f.start(2, "local");
        f.start(3, "local");
        f.succeed(1);
        f.start(4, "builder");
        f
    }

    /// The demo run failed at `staging-db`, everything after it blocked.
    pub fn failed() -> Feed {
        let mut f = Feed::new(demo());
        for t in [0, 1, 2, 3] {
            f.start(t, "local");
            f.succeed(t);
        }
        f.start(4, "builder");
        f.succeed(4);
        f.emit(EventKind::GateStarted { gate: 0 });
        f.emit(EventKind::GateCheck {
            gate: 0,
            check: 0,
            passed: true,
            message: String::new(),
        });
        f.emit(EventKind::GateCheck {
            gate: 0,
            check: 1,
            passed: true,
            message: "ok".into(),
        });
        f.emit(EventKind::GateFinished {
            gate: 0,
            state: taskdeck::model::GateState::Passed,
        });
        for t in [6, 7] {
            f.start(t, "builder");
            f.succeed(t);
        }
        f.start(5, "local");
        f.fail(5, "exited with code 1: database container not ready");
        f.emit(EventKind::RunFinished {
            state: RunState::Failed,
        });
        f
    }

    pub fn draw(&self, w: u16, h: u16) -> Terminal<TestBackend> {
        let mut app_size = self.app.size;
        app_size.0 = w;
        app_size.1 = h;
        let mut term = Terminal::new(TestBackend::new(w, h)).expect("test backend");
        // The view reads the size from the app (update keeps it), so draw a copy at this size.
        term.draw(|frame| {
            let app = &self.app;
            assert_eq!(app.size, app_size, "set the size with Feed::resize first");
            view(app, frame)
        })
        .expect("draw");
        term
    }

    pub fn resize(&mut self, w: u16, h: u16) {
        update(&mut self.app, Msg::Resize(w, h));
    }

    pub fn key(&mut self, k: &str) -> bool {
        let key = taskdeck::tui::keymap::Key::parse(k).expect("key");
        let mut mods = crossterm::event::KeyModifiers::NONE;
        if key.ctrl {
            mods |= crossterm::event::KeyModifiers::CONTROL;
        }
        let code = if key.shift && key.code == crossterm::event::KeyCode::Tab {
            crossterm::event::KeyCode::BackTab
        } else {
            key.code
        };
        update(
            &mut self.app,
            Msg::Key(crossterm::event::KeyEvent::new(code, mods)),
        )
    }

    pub fn keys(&mut self, ks: &[&str]) {
        for k in ks {
            self.key(k);
        }
    }

    /// The selected task's id.
    pub fn selected(&self) -> String {
        let run = &self.app.mirror.runs[&self.run];
        self.app
            .selected_task()
            .map(|t| run.task_id(t).to_string())
            .unwrap_or_default()
    }
}

/// A row of the store's history, as `Console::history` gives it.
pub fn past_entry(id: &str, workflow: &str, state: &str, counts: &[(&str, u32)]) -> HistoryEntry {
    let tasks = counts.iter().map(|(_, n)| n).sum();
    let finished = (state != "interrupted").then_some(T0 - 3_600_000 + 83_000);
    HistoryEntry {
        id: RunId::from(id),
        workflow: workflow.into(),
        version_no: 1,
        state: state.into(),
        submitted_at: T0 - 3_600_000,
        finished_at: finished,
        tasks,
        counts: counts.iter().map(|(s, n)| (s.to_string(), *n)).collect(),
    }
}

/// The failed demo run under another id, as `Console::open_past` reads it back, with its layout.
pub fn past_failed_run(id: &str) -> (PastRun, Arc<DagLayout>) {
    let f = Feed::failed();
    let mut run = f.app.mirror.runs[&f.run].clone();
    run.id = RunId::from(id);
    let layout = Arc::new(DagLayout::new(&run.workflow));
    (
        PastRun {
            run: Box::new(run),
            damaged: 0,
        },
        layout,
    )
}

/// The history the failed-demo past run belongs to: an interrupted run, the failed one, an old
/// success.
pub fn sample_history() -> Vec<HistoryEntry> {
    vec![
        past_entry(
            "20261123-130500-d00d",
            "nightly",
            "interrupted",
            &[("succeeded", 3), ("running", 1), ("pending", 4)],
        ),
        past_entry(
            "20261123-130000-f00d",
            "demo",
            "failed",
            &[("succeeded", 7), ("failed", 1), ("blocked", 3)],
        ),
        past_entry(
            "20261122-090000-abcd",
            "demo",
            "succeeded",
            &[("succeeded", 11)],
        ),
    ]
}
