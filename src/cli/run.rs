//! `taskdeck run FILE...`: runs workflows with the engine embedded. Headless mode prints one line
//! per state change and a summary, writes the report, and exits 0 only if every run succeeded.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use color_eyre::eyre::WrapErr;

use super::{ConsoleArgs, RunArgs, RunOptions, StoreArg};
use crate::config::Config;
use crate::engine::state::{EngineState, Run};
use crate::engine::{EngineHandle, EngineOptions};
use crate::model::{
    AttemptOutcome, Command, Event, EventKind, GateState, RunId, RunState, TaskState,
};
use crate::report::Report;
use crate::spec::{self, LoadError, Workflow};
use crate::store::{Journal, StoreUrl};

/// What an engine session starts with: new runs, and runs taken over from the journal.
pub enum Launch {
    Submit {
        workflow: Box<Workflow>,
        source: Option<String>,
    },
    Resume(RunId),
    /// A run paused before anything starts, for review in the console (`taskdeck plan`); the
    /// notice tells the operator how to start or drop it.
    Held {
        workflow: Box<Workflow>,
        source: Option<String>,
        notice: String,
    },
}

/// `taskdeck run FILE...`. Returns the process exit code.
pub fn run(args: RunArgs, config: Config) -> color_eyre::Result<u8> {
    let mut launches = Vec::new();
    for file in &args.files {
        match load(file, &config) {
            Ok((workflow, text)) => launches.push(Launch::Submit {
                workflow: Box::new(workflow),
                source: Some(text),
            }),
            Err(code) => return Ok(code),
        }
    }
    execute(launches, args.opts, config)
}

/// `taskdeck console`: the console over an engine with no run of its own yet.
pub fn console_only(args: ConsoleArgs, config: Config) -> color_eyre::Result<u8> {
    if !std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        eprintln!(
            "taskdeck: the console needs a terminal; in scripts, `taskdeck runs` lists runs and `taskdeck resume RUN --headless` resumes one"
        );
        return Ok(2);
    }
    let opts = RunOptions {
        theme: args.theme,
        store: args.store,
        ..RunOptions::default()
    };
    execute(Vec::new(), opts, config)
}

/// Runs an engine session (console or headless) that starts with `launches`.
pub fn execute(launches: Vec<Launch>, opts: RunOptions, config: Config) -> color_eyre::Result<u8> {
    // Find out now, not after a long run, that the report could not be written.
    if let Some(path) = &opts.report {
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        if !dir.is_dir() || path.is_dir() {
            eprintln!(
                "taskdeck: cannot write the report to {}: {}",
                path.display(),
                if path.is_dir() {
                    "it is a directory"
                } else {
                    "its directory does not exist"
                }
            );
            return Ok(2);
        }
    }
    let journal = match open_journal(&opts.store, &config) {
        Ok(j) => j,
        Err(e) => {
            eprintln!("taskdeck: {e}");
            return Ok(2);
        }
    };
    if opens_console(&opts) {
        // The console draws while the engine works: two worker threads keep it responsive.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .wrap_err("cannot start the async runtime")?;
        return runtime.block_on(console(launches, opts, config, journal));
    }
    // Headless, the engine and the attempts' supervisors share this one thread: a task's exit,
    // its report and the next assignment follow each other with no thread wake-up in between
    // (measured ~10% faster than two workers on the 2,000-task benchmark, quiet machine).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .wrap_err("cannot start the async runtime")?;
    let code = runtime.block_on(headless(launches, opts, config, journal))?;
    // Every task process is gone (the engine shut down) and output is flushed; tearing down a
    // state of 100,000 tasks piece by piece would take longer than the run, so let the OS
    // reclaim it.
    let _ = std::io::stdout().flush();
    std::process::exit(code.into())
}

/// Opens the store (pruning old runs per the retention settings) and starts its journal
/// thread; `None` for `--store memory`.
pub fn open_journal(store: &StoreArg, config: &Config) -> Result<Option<Journal>, String> {
    let url = StoreUrl::from_arg(store.store.as_deref(), config).map_err(|e| e.to_string())?;
    if url == StoreUrl::Memory {
        return Ok(None);
    }
    let mut backend = crate::store::open(&url).map_err(|e| e.to_string())?;
    let keep = &config.store;
    match crate::store::prune(
        backend.as_mut(),
        keep.keep_runs,
        keep.keep_days,
        crate::model::now_millis(),
        Some(&crate::paths::state_dir().join("logs")),
    ) {
        Ok(gone) if !gone.is_empty() => {
            tracing::info!(runs = gone.len(), "pruned old runs from the store")
        }
        Ok(_) => {}
        Err(e) => tracing::warn!("cannot prune old runs: {e}"),
    }
    let journal =
        Journal::spawn(backend).map_err(|e| format!("cannot start the journal thread: {e}"))?;
    // A second connection for long reads (history, past runs), so they never delay commits.
    // Without it those reads share the writer's thread: slower to interleave, still correct.
    match crate::store::open(&url) {
        Ok(reader) => journal
            .with_reader(reader)
            .map(Some)
            .map_err(|e| format!("cannot start the journal's reader thread: {e}")),
        Err(e) => {
            tracing::warn!("cannot open a second connection to the store for reads: {e}");
            Ok(Some(journal))
        }
    }
}

/// Whether a session opens the console: not `--headless`, and stdout is a terminal.
pub fn opens_console(opts: &RunOptions) -> bool {
    !opts.headless && std::io::IsTerminal::is_terminal(&std::io::stdout())
}

fn engine_options(config: Config, journal: Option<Journal>) -> EngineOptions {
    let mut opts = EngineOptions::from_config(config);
    opts.journal = journal;
    opts
}

/// The full-screen console over an embedded engine. Tracing goes to a file, never the screen.
async fn console(
    launches: Vec<Launch>,
    opts: RunOptions,
    config: Config,
    journal: Option<Journal>,
) -> color_eyre::Result<u8> {
    log_to_file();
    let engine = EngineHandle::start(engine_options(config.clone(), journal));
    let mut runs = Vec::new();
    let mut notice = None;
    for l in launches {
        match l {
            Launch::Submit { workflow, source } => {
                runs.push(engine.submit(*workflow, source).await?)
            }
            Launch::Held {
                workflow,
                source,
                notice: n,
            } => {
                runs.push(engine.submit_held(*workflow, source).await?);
                notice = Some(n);
            }
            Launch::Resume(id) => match engine.resume(&id).await {
                Ok((r, _)) => runs.push(r.run),
                Err(e) => {
                    engine.shutdown().await.ok();
                    eprintln!("taskdeck: cannot resume run {id}: {e}");
                    return Ok(2);
                }
            },
        }
    }
    let console = crate::console::Console::Local(engine);
    let tui_opts = crate::tui::Options {
        theme: opts.theme,
        exit_on_finish: opts.exit_on_finish,
        config: std::sync::Arc::new(config),
        notice,
    };
    let result = crate::tui::run(console.clone(), runs.clone(), tui_opts).await;
    if let Some(path) = &opts.report
        && let Ok(snapshot) = console.snapshot().await
    {
        let reports: Vec<Report> = runs
            .iter()
            .filter_map(|id| snapshot.run(id))
            .map(Report::of)
            .collect();
        if let Err(e) = write_report(path, &reports) {
            eprintln!("taskdeck: {e}");
        }
    }
    console.shutdown().await;
    result
}

/// Sends tracing output to `<state dir>/taskdeck.log` (nowhere if that cannot be opened): under
/// the console nothing may write to the terminal. `main` leaves tracing alone in that case.
pub fn log_to_file() {
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
    launches: Vec<Launch>,
    args: RunOptions,
    config: Config,
    journal: Option<Journal>,
) -> color_eyre::Result<u8> {
    let mut opts = engine_options(config, journal);
    opts.auto_approve = args.auto_approve;
    let engine = EngineHandle::start(opts);
    // Quiet runs need no event stream: they wait for the end, which keeps huge runs cheap.
    let mut sub = if args.quiet {
        None
    } else {
        Some(engine.subscribe(0).await?)
    };
    let multi = launches.len() > 1;
    let mut runs: Vec<RunId> = Vec::new();
    let mut printer = Printer::new(multi);
    for l in launches {
        match l {
            // Headless there is nobody to review a held run: it starts at once.
            Launch::Submit { workflow, source }
            | Launch::Held {
                workflow, source, ..
            } => {
                let name = workflow.name.clone();
                let n = workflow.tasks.len();
                let id = engine.submit(*workflow, source).await?;
                if args.quiet {
                    say(format_args!("run {id} of `{name}`: {n} tasks\n"));
                }
                runs.push(id);
            }
            Launch::Resume(id) => match engine.resume(&id).await {
                Ok((r, warnings)) => {
                    for w in warnings {
                        eprintln!("taskdeck: warning: {w}");
                    }
                    say(format_args!(
                        "resumed run {} of `{}`: {} of {} tasks had finished{}\n",
                        r.run,
                        r.state.workflow.name,
                        r.finished,
                        r.tasks,
                        if r.interrupted.is_empty() {
                            String::new()
                        } else {
                            format!("; interrupted, running again: {}", r.interrupted.join(", "))
                        }
                    ));
                    runs.push(r.run.clone());
                    printer.adopt(r);
                }
                Err(e) => {
                    engine.shutdown().await.ok();
                    eprintln!("taskdeck: cannot resume run {id}: {e}");
                    return Ok(2);
                }
            },
        }
    }
    let started = Instant::now();
    let mut finished: HashMap<RunId, RunState> = HashMap::new();
    let mut cancelling = false;
    let mut term = signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut hup = signal(tokio::signal::unix::SignalKind::hangup())?;
    // Progress lines are buffered; this shows them promptly when stdout is a pipe or a file
    // (CI logs), where a long task's "started" line would otherwise wait for the next flush.
    let mut flush = tokio::time::interval(std::time::Duration::from_millis(200));
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while finished.len() < runs.len() {
        let next_event = async {
            match sub.as_mut() {
                Some(sub) => sub.next().await.map(Step::Event),
                None => {
                    let pending = runs.iter().find(|r| !finished.contains_key(*r))?;
                    let state = engine.wait_finished(pending).await.ok()?;
                    Some(Step::Finished(pending.clone(), state))
                }
            }
        };
        tokio::select! {
            step = next_event => {
                match step {
                    None => break,
                    Some(Step::Finished(id, state)) => {
                        finished.insert(id, state);
                    }
                    Some(Step::Event(ev)) => {
                        printer.event(&ev);
                        if let EventKind::RunFinished { state } = &ev.kind {
                            finished.insert(ev.run.clone(), *state);
                        }
                    }
                }
            }
            _ = flush.tick() => printer.flush(),
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
    let elapsed = started.elapsed().as_secs_f64();
    let want_report = args.report.is_some();
    let ids = runs.clone();
    let (summaries, reports, failed) = engine
        .inspect(move |st| {
            let mut summaries = String::new();
            let mut reports = Vec::new();
            let mut failed = false;
            for id in &ids {
                let Some(run) = st.run(id) else { continue };
                summaries.push_str(&summary(run, elapsed));
                failed |= run.state != RunState::Succeeded;
                if want_report {
                    reports.push(Report::of(run));
                }
            }
            (summaries, reports, failed)
        })
        .await?;
    say(format_args!("{summaries}"));
    let mut code = u8::from(failed);
    if let Some(path) = &args.report {
        match write_report(path, &reports) {
            Ok(()) => say(format_args!("report written to {}\n", path.display())),
            Err(e) => {
                eprintln!("taskdeck: {e}");
                code = 2;
            }
        }
    }
    engine.shutdown().await.ok();
    Ok(code)
}

enum Step {
    Event(std::sync::Arc<Event>),
    Finished(RunId, RunState),
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

fn write_report(path: &PathBuf, reports: &[Report]) -> Result<(), String> {
    let json = if reports.len() == 1 {
        serde_json::to_vec_pretty(&reports[0])
    } else {
        serde_json::to_vec_pretty(&reports)
    }
    .map_err(|e| format!("cannot encode the report: {e}"))?;
    std::fs::write(path, json)
        .map_err(|e| format!("cannot write the report to {}: {e}", path.display()))
}

fn summary(run: &Run, secs: f64) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
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
    let _ = writeln!(
        out,
        "run {} ({}) {} in {secs:.2}s: {}",
        run.id,
        run.workflow.name,
        run.state,
        parts.join(", ")
    );
    let mut shown = 0;
    for (i, t) in run.tasks.iter().enumerate() {
        // Flaky work that a retry saved is worth knowing about.
        if t.state == TaskState::Succeeded && t.attempts.len() > 1 {
            if shown == 10 {
                out.push_str("  …\n");
                break;
            }
            shown += 1;
            let last_error = t
                .attempts
                .iter()
                .rev()
                .find(|a| !a.error.is_empty())
                .map(|a| format!(" (attempt {}: {})", a.number, a.error))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  retried {}: succeeded on attempt {}{last_error}",
                run.workflow.tasks[i].id,
                t.attempts.len()
            );
        }
        if matches!(
            t.state,
            TaskState::Failed | TaskState::Blocked | TaskState::Cancelled
        ) {
            if shown == 10 {
                out.push_str("  …\n");
                break;
            }
            shown += 1;
            let _ = writeln!(
                out,
                "  {} {}: {}",
                t.state,
                run.workflow.tasks[i].id,
                t.reason.as_deref().unwrap_or("")
            );
        }
    }
    for (g, gate) in run.gates.iter().zip(&run.workflow.gates) {
        if matches!(g.state, GateState::Pending | GateState::Skipped) {
            let _ = writeln!(
                out,
                "  gate {}: {} (its checks did not run)",
                gate.id,
                g.state.as_str()
            );
            continue;
        }
        let passed = g.results.iter().flatten().filter(|r| r.passed).count();
        let _ = writeln!(
            out,
            "  gate {}: {} ({passed}/{} checks passed)",
            gate.id,
            g.state.as_str(),
            gate.checks.len()
        );
    }
    out
}

/// Turns events into progress lines. It folds events into its own mirror of the state, as every
/// client does, to name tasks and know their attempts.
struct Printer {
    mirror: EngineState,
    /// Resumed runs: events up to this seq are already in the mirror.
    skip_until: HashMap<RunId, u64>,
    multi: bool,
    out: std::io::BufWriter<std::io::Stdout>,
}

impl Printer {
    fn new(multi: bool) -> Printer {
        Printer {
            mirror: EngineState::new(
                crate::engine::state::Limits {
                    max_parallel: u32::MAX,
                    pool: Default::default(),
                },
                [],
            ),
            skip_until: HashMap::new(),
            multi,
            out: std::io::BufWriter::new(std::io::stdout()),
        }
    }

    /// Follows a resumed run from its recovered state on.
    fn adopt(&mut self, r: crate::engine::Recovered) {
        self.skip_until.insert(r.run.clone(), r.at_seq);
        self.mirror.runs.insert(r.run, *r.state);
    }

    fn event(&mut self, ev: &Event) {
        if self.skip_until.get(&ev.run).is_some_and(|s| ev.seq <= *s) {
            return;
        }
        self.mirror.apply(ev);
        let Some(run) = self.mirror.run(&ev.run) else {
            return;
        };
        let line = describe(run, &ev.kind);
        if let Some(line) = line {
            let (h, m, s) = local_clock(ev.ts);
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

/// Hour, minute and second of `ts` in the machine's local time zone (UTC if it cannot be told).
fn local_clock(ts: crate::model::Millis) -> (u32, u32, u32) {
    let secs = (ts / 1000) as libc::time_t;
    // SAFETY: localtime_r writes only into the `tm` we own; a zeroed tm is a valid value.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    if unsafe { libc::localtime_r(&secs, &mut tm) }.is_null() {
        let (_, _, _, h, m, s) = crate::model::civil_from_unix(secs);
        return (h, m, s);
    }
    (tm.tm_hour as u32, tm.tm_min as u32, tm.tm_sec as u32)
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
            "⏸ {} is waiting for approval (this headless run cannot approve: rerun with --auto-approve or in the console; Ctrl-C cancels)",
            name(*task)
        ),
        EventKind::TaskApproved { task } => format!("✓ {} approved", name(*task)),
        EventKind::TaskRetried { task } => format!("↻ {} retried by the operator", name(*task)),
        EventKind::TaskRerun { task } => format!("↻ re-running from {}", name(*task)),
        EventKind::TaskInterrupted { task, attempt } => format!(
            "↯ {} attempt {attempt} was interrupted (taskdeck stopped while it ran); it runs again",
            name(*task)
        ),
        EventKind::GateInterrupted { gate } => format!(
            "↯ gate {} was interrupted while checking; it checks again",
            run.workflow.gates[*gate as usize].id
        ),
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
            // on_fail = "pause": the run now waits for an operator; say so.
            for t in &g.after {
                if run.tasks[*t as usize].state == TaskState::Paused {
                    line.push_str(&format!(
                        "\n    ⏸ {} is paused by gate {} (resume or retry it in the console; Ctrl-C cancels the run)",
                        name(*t),
                        g.id
                    ));
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
        EventKind::BranchFinished {
            task,
            attempt,
            branch,
            outcome,
            error,
            ..
        } => {
            let agent = run.tasks[*task as usize]
                .attempts
                .iter()
                .find(|a| a.number == *attempt)
                .and_then(|a| a.branches.get(*branch as usize))
                .map(|b| b.agent.to_string())
                .unwrap_or_default();
            match outcome {
                AttemptOutcome::Succeeded => format!("  · {} on {agent} succeeded", name(*task)),
                AttemptOutcome::Cancelled => format!("  · {} on {agent} cancelled", name(*task)),
                _ => format!("  · {} on {agent} failed: {error}", name(*task)),
            }
        }
        EventKind::TaskResolved {
            task, resolution, ..
        } => {
            let mut line = format!(
                "⚖ {} resolved by {}: {}",
                name(*task),
                resolution.strategy,
                resolution.summary
            );
            for c in &resolution.conflicts {
                let values: Vec<String> = c
                    .values
                    .iter()
                    .map(|v| format!("{}={}", v.agent, v.value))
                    .collect();
                line.push_str(&format!(
                    "\n    conflict on {}: {}",
                    c.field,
                    values.join(", ")
                ));
            }
            line
        }
        EventKind::AgentHealth { agent, health } => match health {
            crate::model::AgentHealth::Down(why) => {
                format!("⚠ agent {agent} is down: {why} (its tasks go to its fallback or wait)")
            }
            _ => return None,
        },
        EventKind::TaskAssigned { .. }
        | EventKind::BranchAssigned { .. }
        | EventKind::TaskRetryDue { .. }
        | EventKind::TaskConditionPassed { .. }
        | EventKind::GateStarted { .. }
        | EventKind::GateCheck { .. } => return None,
    })
}

/// Prints to stdout, where a reader that went away (`taskdeck run ... | head`) is no error: the
/// run goes on, journaled as ever, with nobody reading its progress.
fn say(text: std::fmt::Arguments) {
    use std::io::Write;
    let _ = std::io::stdout().lock().write_fmt(text);
}
