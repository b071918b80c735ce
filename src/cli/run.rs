//! `taskdeck run FILE...`: runs workflows with the engine embedded. Headless mode prints one line
//! per state change and a summary, writes the report, and exits 0 only if every run succeeded.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use color_eyre::eyre::{WrapErr, eyre};

use super::RunArgs;
use crate::config::Config;
use crate::engine::state::{EngineState, Run};
use crate::engine::{EngineHandle, EngineOptions};
use crate::model::{
    Command, Event, EventKind, GateState, RunId, RunState, TaskState, civil_from_unix,
};
use crate::report::Report;
use crate::spec::{self, LoadError, Workflow};

/// Returns the process exit code.
pub fn run(args: RunArgs, config: Config) -> color_eyre::Result<u8> {
    let mut workflows = Vec::new();
    for file in &args.files {
        match load(file, &config) {
            Ok(w) => workflows.push(w),
            Err(code) => return Ok(code),
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .wrap_err("cannot start the async runtime")?;
    if args.headless || !std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        runtime.block_on(headless(workflows, args, config))
    } else {
        runtime.block_on(console(workflows, args, config))
    }
}

/// The full-screen console over an embedded engine. Tracing goes to a file, never the screen.
async fn console(
    workflows: Vec<(Workflow, String)>,
    args: RunArgs,
    config: Config,
) -> color_eyre::Result<u8> {
    log_to_file();
    let engine = EngineHandle::start(EngineOptions::from_config(config.clone()));
    let console = crate::console::Console::Local(engine);
    let mut runs = Vec::new();
    for (wf, text) in workflows {
        runs.push(console.submit(wf, Some(text)).await?);
    }
    let opts = crate::tui::Options {
        theme: args.theme,
        exit_on_finish: args.exit_on_finish,
        config: std::sync::Arc::new(config),
    };
    let result = crate::tui::run(console.clone(), runs.clone(), opts).await;
    if let Some(path) = &args.report
        && let Ok(snapshot) = console.snapshot().await
    {
        write_report(path, &snapshot, &runs)?;
    }
    console.shutdown().await;
    result
}

/// Sends tracing output to `<state dir>/taskdeck.log` (nowhere if that cannot be opened).
fn log_to_file() {
    let dir = crate::paths::state_dir();
    let _ = std::fs::create_dir_all(&dir);
    let Ok(file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("taskdeck.log"))
    else {
        return;
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("TASKDECK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(file))
        .try_init();
}

/// Loads one workflow file, printing its problems; `Err` carries the exit code.
pub fn load(file: &PathBuf, config: &Config) -> Result<(Workflow, String), u8> {
    match spec::load_path(file, config) {
        Ok(wf) => {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            Ok((wf, text))
        }
        Err(LoadError::Read { path, source }) => {
            eprintln!("taskdeck: cannot read {}: {source}", path.display());
            Err(2)
        }
        Err(LoadError::Invalid(diags)) => {
            for d in &diags {
                eprintln!("{d}");
            }
            eprintln!(
                "{}: {} problem{} (see `taskdeck validate`)",
                file.display(),
                diags.len(),
                if diags.len() == 1 { "" } else { "s" }
            );
            Err(1)
        }
    }
}

async fn headless(
    workflows: Vec<(Workflow, String)>,
    args: RunArgs,
    config: Config,
) -> color_eyre::Result<u8> {
    let engine = EngineHandle::start(EngineOptions::from_config(config));
    let mut sub = engine.subscribe(0).await?;
    let multi = workflows.len() > 1;
    let mut runs: Vec<RunId> = Vec::new();
    for (wf, text) in workflows {
        runs.push(engine.submit(wf, Some(text)).await?);
    }
    let started = Instant::now();
    let mut printer = Printer::new(multi, args.quiet);
    let mut finished: HashMap<RunId, RunState> = HashMap::new();
    let mut cancelling = false;
    let mut term = signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut hup = signal(tokio::signal::unix::SignalKind::hangup())?;
    while finished.len() < runs.len() {
        tokio::select! {
            ev = sub.next() => {
                let Some(ev) = ev else { break };
                printer.event(&ev);
                match &ev.kind {
                    EventKind::RunFinished { state } => {
                        finished.insert(ev.run.clone(), *state);
                    }
                    EventKind::TaskAwaitingApproval { task } if args.auto_approve => {
                        let task = printer.task_name(&ev.run, *task);
                        let cmd = Command::Approve { run: ev.run.clone(), task };
                        if let Err(e) = engine.command(cmd).await {
                            eprintln!("taskdeck: cannot approve: {e}");
                        }
                    }
                    _ => {}
                }
            }
            _ = interrupted(&mut term, &mut hup) => {
                if cancelling {
                    eprintln!("taskdeck: interrupted again; stopping now");
                    break;
                }
                cancelling = true;
                eprintln!("taskdeck: cancelling (running tasks are being stopped; press Ctrl-C again to quit at once)");
                for r in &runs {
                    if !finished.contains_key(r) {
                        let _ = engine.command(Command::CancelRun { run: r.clone() }).await;
                    }
                }
            }
        }
    }
    printer.flush();
    let snapshot = engine.snapshot().await?;
    let mut code = 0u8;
    for id in &runs {
        let Some(run) = snapshot.run(id) else {
            continue;
        };
        print_summary(run, started.elapsed().as_secs_f64());
        if run.state != RunState::Succeeded {
            code = 1;
        }
    }
    if let Some(path) = &args.report {
        write_report(path, &snapshot, &runs)?;
        println!("report written to {}", path.display());
    }
    engine.shutdown().await.ok();
    Ok(code)
}

fn signal(
    kind: tokio::signal::unix::SignalKind,
) -> color_eyre::Result<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(kind).wrap_err("cannot install a signal handler")
}

async fn interrupted(
    term: &mut tokio::signal::unix::Signal,
    hup: &mut tokio::signal::unix::Signal,
) {
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
        _ = hup.recv() => {}
    }
}

fn write_report(path: &PathBuf, state: &EngineState, runs: &[RunId]) -> color_eyre::Result<()> {
    let reports: Vec<Report> = runs
        .iter()
        .filter_map(|id| state.run(id))
        .map(Report::of)
        .collect();
    let json = if reports.len() == 1 {
        serde_json::to_vec_pretty(&reports[0])
    } else {
        serde_json::to_vec_pretty(&reports)
    }
    .map_err(|e| eyre!("cannot encode the report: {e}"))?;
    std::fs::write(path, json)
        .wrap_err_with(|| format!("cannot write the report to {}", path.display()))
}

fn print_summary(run: &Run, secs: f64) {
    let mut parts = Vec::new();
    for s in [
        TaskState::Succeeded,
        TaskState::Failed,
        TaskState::Skipped,
        TaskState::Blocked,
        TaskState::Cancelled,
        TaskState::Paused,
        TaskState::WaitingApproval,
    ] {
        let n = run.count(s);
        if n > 0 {
            parts.push(format!("{n} {s}"));
        }
    }
    println!(
        "run {} ({}) {} in {secs:.2}s: {}",
        run.id,
        run.workflow.name,
        run.state,
        parts.join(", ")
    );
    let mut shown = 0;
    for (i, t) in run.tasks.iter().enumerate() {
        if matches!(
            t.state,
            TaskState::Failed | TaskState::Blocked | TaskState::Cancelled
        ) {
            if shown == 10 {
                println!("  …");
                break;
            }
            shown += 1;
            println!(
                "  {} {}: {}",
                t.state,
                run.workflow.tasks[i].id,
                t.reason.as_deref().unwrap_or("")
            );
        }
    }
    for (g, gate) in run.gates.iter().zip(&run.workflow.gates) {
        let passed = g.results.iter().flatten().filter(|r| r.passed).count();
        println!(
            "  gate {}: {} ({passed}/{} checks passed)",
            gate.id,
            g.state.as_str(),
            gate.checks.len()
        );
    }
}

/// Turns events into progress lines. It folds events into its own mirror of the state, as every
/// client does, to name tasks and know their attempts.
struct Printer {
    mirror: EngineState,
    multi: bool,
    quiet: bool,
    out: std::io::BufWriter<std::io::Stdout>,
}

impl Printer {
    fn new(multi: bool, quiet: bool) -> Printer {
        Printer {
            mirror: EngineState::new(
                crate::engine::state::Limits {
                    max_parallel: u32::MAX,
                    pool: Default::default(),
                },
                [],
            ),
            multi,
            quiet,
            out: std::io::BufWriter::new(std::io::stdout()),
        }
    }

    fn task_name(&self, run: &RunId, t: u32) -> String {
        self.mirror
            .run(run)
            .map(|r| r.task_id(t).to_string())
            .unwrap_or_default()
    }

    fn event(&mut self, ev: &Event) {
        if self.quiet {
            // Only what the summary cannot show.
            if let EventKind::RunSubmitted { workflow, .. } = &ev.kind {
                let _ = writeln!(
                    self.out,
                    "run {} of `{}`: {} tasks",
                    ev.run,
                    workflow.name,
                    workflow.tasks.len()
                );
            }
            return;
        }
        self.mirror.apply(ev);
        let Some(run) = self.mirror.run(&ev.run) else {
            return;
        };
        let line = describe(run, &ev.kind);
        if let Some(line) = line {
            let (_, _, _, h, m, s) = civil_from_unix((ev.ts / 1000) as i64);
            let prefix = if self.multi {
                format!("{} ", run.workflow.name)
            } else {
                String::new()
            };
            let _ = writeln!(self.out, "{h:02}:{m:02}:{s:02} {prefix}{line}");
        }
        if matches!(
            ev.kind,
            EventKind::RunFinished { .. }
                | EventKind::TaskAwaitingApproval { .. }
                | EventKind::TaskFailed { .. }
        ) {
            let _ = self.out.flush();
        }
    }

    fn flush(&mut self) {
        let _ = self.out.flush();
    }
}

fn secs(ms: u64) -> String {
    format!("{:.2}s", ms as f64 / 1000.0)
}

/// One progress line for an event, or `None` for events not worth a line.
fn describe(run: &Run, kind: &EventKind) -> Option<String> {
    let name = |t: u32| run.task_id(t).to_string();
    Some(match kind {
        EventKind::RunSubmitted { workflow, .. } => {
            format!(
                "run {} of `{}`: {} tasks",
                run.id,
                workflow.name,
                workflow.tasks.len()
            )
        }
        EventKind::RunPaused => "run paused".into(),
        EventKind::RunResumed => "run resumed".into(),
        EventKind::RunCancelRequested => "run cancelling".into(),
        EventKind::RunFinished { state } => format!("run {state}"),
        EventKind::TaskStarted { task, attempt, .. } => {
            let t = &run.tasks[*task as usize];
            let agent = t.last_agent().map(|a| a.to_string()).unwrap_or_default();
            let of = run.workflow.tasks[*task as usize].retry.attempts;
            if of > 1 {
                format!(
                    "▶ {} started on {agent} (attempt {attempt}/{of})",
                    name(*task)
                )
            } else {
                format!("▶ {} started on {agent}", name(*task))
            }
        }
        EventKind::TaskSucceeded { task, .. } => {
            let t = &run.tasks[*task as usize];
            let took = t
                .attempts
                .last()
                .and_then(|a| a.finished_at.zip(a.started_at))
                .map(|(f, s)| secs(f.saturating_sub(s)))
                .unwrap_or_default();
            if t.state == TaskState::Validating {
                format!(
                    "✓ {} done in {took}, waiting for its quality gate",
                    name(*task)
                )
            } else {
                format!("✓ {} succeeded in {took}", name(*task))
            }
        }
        EventKind::TaskFailed {
            task,
            attempt,
            error,
            retry_at,
            ..
        } => match retry_at {
            Some(at) => {
                let now = crate::model::now_millis();
                format!(
                    "↻ {} attempt {attempt} failed: {error}; retrying in {}",
                    name(*task),
                    secs(at.saturating_sub(now))
                )
            }
            None => format!("✗ {} failed: {error}", name(*task)),
        },
        EventKind::TaskSkipped { task, reason } => format!("○ {} skipped: {reason}", name(*task)),
        EventKind::TaskCancelled { task } => format!("■ {} cancelled", name(*task)),
        EventKind::TaskPaused { task } => format!("⏸ {} paused", name(*task)),
        EventKind::TaskResumed { task } => format!("▶ {} resumed", name(*task)),
        EventKind::TaskAwaitingApproval { task } => format!(
            "⏸ {} is waiting for approval (run with --auto-approve, or approve it in the console)",
            name(*task)
        ),
        EventKind::TaskApproved { task } => format!("✓ {} approved", name(*task)),
        EventKind::TaskRetried { task } => format!("↻ {} retried by the operator", name(*task)),
        EventKind::TaskRerun { task } => format!("↻ re-running from {}", name(*task)),
        EventKind::GateFinished { gate, state } => {
            let g = &run.workflow.gates[*gate as usize];
            let results = &run.gates[*gate as usize].results;
            let passed = results.iter().flatten().filter(|r| r.passed).count();
            let mut line = format!(
                "{} gate {} {} ({passed}/{} checks passed)",
                if *state == GateState::Passed {
                    "✓"
                } else {
                    "✗"
                },
                g.id,
                state.as_str(),
                g.checks.len()
            );
            for (c, r) in g.checks.iter().zip(results) {
                if let Some(r) = r.as_ref().filter(|r| !r.passed) {
                    let first = r.message.lines().next().unwrap_or("");
                    line.push_str(&format!("\n    ✗ {}: {first}", c.name));
                }
            }
            line
        }
        EventKind::CompensationStarted { task } => format!("↶ compensating {}", name(*task)),
        EventKind::CompensationFinished { task, ok, error } => {
            if *ok {
                format!("↶ {} compensated", name(*task))
            } else {
                format!("✗ compensation of {} failed: {error}", name(*task))
            }
        }
        EventKind::TaskAssigned { .. }
        | EventKind::TaskRetryDue { .. }
        | EventKind::TaskConditionPassed { .. }
        | EventKind::GateStarted { .. }
        | EventKind::GateCheck { .. } => return None,
    })
}
