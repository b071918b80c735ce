//! The console: a full-screen TUI over a `Console` (local engine now, remote later).
//!
//! Elm architecture: `app::App` is the state, `app::update` applies a `Msg`, `views::view` draws
//! (pure). This module is the loop: terminal input arrives on one channel, engine events, log
//! notices and effect results on another, timers in between. Whatever is queued is applied in one
//! batch, input first (`pace::drain`); then at most one frame is drawn, only if something changed
//! and at most ~30 a second (`pace::Pacer`); with nothing going on the loop sleeps.

pub mod app;
pub mod dag_layout;
pub mod keymap;
pub mod layout;
pub mod pace;
pub mod palette;
pub mod terminal;
pub mod theme;
pub mod views;

use std::sync::Arc;
use std::time::Duration;
use std::time::Instant as StdInstant;

use color_eyre::eyre::WrapErr;
use crossterm::event::{Event as TermEvent, EventStream};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::config::Config;
use crate::console::{Console, FeedItem};
use crate::model::{RunId, now_millis};
use app::{App, Effect, Msg};
use dag_layout::DagLayout;
use keymap::Keymap;
use pace::{BUDGET, FRAME, Pacer};
use theme::Theme;

/// Elapsed times move on once a second while something runs.
const TICK: Duration = Duration::from_secs(1);

pub struct Options {
    /// `--theme`, over the config file's `[ui] theme`.
    pub theme: Option<String>,
    pub exit_on_finish: bool,
    pub config: Arc<Config>,
    /// Shown in the status line until another message replaces it.
    pub notice: Option<String>,
}

/// The console's starting state: theme and keys from options and config, problems as a message.
pub fn initial_app(console: &Console, opts: &Options) -> App {
    let mut problems = Vec::new();
    let name = opts
        .theme
        .clone()
        .or_else(|| opts.config.ui.theme.clone())
        .unwrap_or_else(|| "dark".into());
    let theme = Theme::load(&name).unwrap_or_else(|e| {
        problems.push(e);
        Theme::default()
    });
    let (keymap, errors) = Keymap::with_overrides(&opts.config.ui.keys);
    problems.extend(errors);
    let mut app = App::new(console.location(), theme, keymap);
    app.exit_on_finish = opts.exit_on_finish;
    app.link = console.link().map(|l| l.borrow().clone());
    app.now = now_millis();
    if let Some(n) = &opts.notice {
        app.pin(n.clone());
    }
    if !problems.is_empty() {
        app.say(problems.join("; "), app::Level::Error);
    }
    app
}

/// Runs the console until the operator quits (or, with `exit_on_finish`, until `own_runs` end).
/// Returns the exit code: 0 when every run in `own_runs` succeeded. The caller stops the engine.
pub async fn run(console: Console, own_runs: Vec<RunId>, opts: Options) -> color_eyre::Result<u8> {
    let mut app = initial_app(&console, &opts);
    let snapshot = console
        .snapshot()
        .await
        .wrap_err("cannot read the engine's state")?;
    let seq = snapshot.last_seq;
    app = app.with_snapshot(*snapshot);
    app.own_runs = own_runs;
    app.now = now_millis();
    let mut events = console
        .events(seq)
        .await
        .wrap_err("cannot follow the engine")?;
    let mut log_feed = console.log_feed();

    // Input on its own channel (stamped when read, for the latency figure), everything else on
    // the feed.
    let (input_tx, mut input_rx) = mpsc::unbounded_channel::<(StdInstant, Msg)>();
    let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
    let mut term = terminal::Term::enter().wrap_err("cannot set up the terminal")?;
    if let Ok(s) = term.size() {
        app::update(&mut app, Msg::Resize(s.width, s.height));
    }

    // Feeds: terminal input, engine events, log notices, signals.
    let mut tasks = Vec::new();
    tasks.push(tokio::spawn(async move {
        let mut input = EventStream::new();
        while let Some(Ok(ev)) = input.next().await {
            let msg = match ev {
                TermEvent::Key(k) => Msg::Key(k),
                TermEvent::Mouse(m) => Msg::Mouse(m),
                TermEvent::Resize(w, h) => Msg::Resize(w, h),
                _ => continue,
            };
            if input_tx.send((StdInstant::now(), msg)).is_err() {
                break;
            }
        }
    }));
    let t = tx.clone();
    tasks.push(tokio::spawn(async move {
        while let Some(item) = events.next().await {
            let msg = match item {
                FeedItem::Event(ev) => Msg::Engine(ev),
                FeedItem::Reset(state) => Msg::Resync(state),
            };
            if t.send(msg).is_err() {
                return;
            }
        }
        let _ = t.send(Msg::EngineGone);
    }));
    if let Some(mut link) = console.link() {
        let t = tx.clone();
        let _ = t.send(Msg::Link(link.borrow_and_update().clone()));
        tasks.push(tokio::spawn(async move {
            while link.changed().await.is_ok() {
                let now = link.borrow_and_update().clone();
                if t.send(Msg::Link(now)).is_err() {
                    break;
                }
            }
        }));
    }
    let t = tx.clone();
    tasks.push(tokio::spawn(async move {
        while let Some(n) = log_feed.next().await {
            if t.send(Msg::Log(n)).is_err() {
                break;
            }
        }
    }));
    let t = tx.clone();
    tasks.push(tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term_sig), Ok(mut hup)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) else {
            return;
        };
        tokio::select! {
            _ = term_sig.recv() => {}
            _ = hup.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        let _ = t.send(Msg::Terminate);
    }));

    let mut pacer = Pacer::new(FRAME);
    pacer.changed(true);
    let mut stats = Stats::default();
    // Input read but not yet on screen: when it was read.
    let mut unseen_input: Option<StdInstant> = None;
    let mut input_open = true;
    let mut next_tick = Instant::now() + TICK;
    // The store's past runs, and a notice if some were interrupted.
    app.effects.push(Effect::LoadHistory);
    run_effects(&mut app, &console, &opts, &tx);
    loop {
        if pacer.due(StdInstant::now()) {
            let started = StdInstant::now();
            let mut view_time = Duration::ZERO;
            term.draw(|f| {
                views::view(&app, f);
                view_time = started.elapsed();
            })
            .wrap_err("cannot draw")?;
            let done = StdInstant::now();
            pacer.drew(done);
            stats.frame(view_time, done - started);
            if let Some(at) = unseen_input.take() {
                stats.input_latency(done - at);
            }
        }
        if app.quit {
            break;
        }
        if !pacer.dirty() {
            unseen_input = None;
        }
        let frame_due = pacer.deadline(StdInstant::now()).map(Instant::from_std);
        let ticking = app.animating()
            || app.message_expires()
            || app.link.as_ref().is_some_and(|l| l.counting());
        // Input first: a key never waits behind the engine's backlog.
        let first = tokio::select! {
            biased;
            msg = input_rx.recv(), if input_open => match msg {
                Some((at, msg)) => Some((Some(at), msg)),
                None => {
                    input_open = false;
                    None
                }
            },
            msg = rx.recv() => match msg {
                Some(msg) => Some((None, msg)),
                None => break,
            },
            _ = tokio::time::sleep_until(frame_due.unwrap_or_else(Instant::now)), if frame_due.is_some() => None,
            _ = tokio::time::sleep_until(next_tick), if ticking => {
                next_tick = Instant::now() + TICK;
                pacer.changed(app::update(&mut app, Msg::Tick(now_millis())));
                None
            }
        };
        if let Some((at, msg)) = first {
            let started = StdInstant::now();
            if let Some(at) = at {
                unseen_input.get_or_insert(at);
            }
            pacer.changed(app::update(&mut app, msg));
            let d = pace::drain(&mut app, &mut input_rx, &mut rx, started + BUDGET);
            pacer.changed(d.changed);
            if let Some(at) = d.input_at {
                unseen_input.get_or_insert(at);
            }
            stats.batch(1 + d.applied, started.elapsed());
            run_effects(&mut app, &console, &opts, &tx);
        }
        if !ticking {
            next_tick = Instant::now() + TICK;
        }
    }
    drop(term);
    for t in tasks {
        t.abort();
    }
    stats.log();
    Ok(app.exit_code())
}

/// What the loop did, written to the log when the console closes (see BENCHMARKS.md).
#[derive(Debug, Default)]
struct Stats {
    frames: u64,
    messages: u64,
    batches: u64,
    longest_batch: Duration,
    view: Duration,
    view_max: Duration,
    draw: Duration,
    draw_max: Duration,
    inputs: u64,
    input_latency: Duration,
    input_latency_max: Duration,
}

impl Stats {
    fn frame(&mut self, view: Duration, draw: Duration) {
        self.frames += 1;
        self.view += view;
        self.view_max = self.view_max.max(view);
        self.draw += draw;
        self.draw_max = self.draw_max.max(draw);
    }

    fn batch(&mut self, n: usize, took: Duration) {
        self.batches += 1;
        self.messages += n as u64;
        self.longest_batch = self.longest_batch.max(took);
    }

    fn input_latency(&mut self, d: Duration) {
        self.inputs += 1;
        self.input_latency += d;
        self.input_latency_max = self.input_latency_max.max(d);
    }

    fn log(&self) {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let mean = |d: Duration, n: u64| if n == 0 { 0.0 } else { ms(d) / n as f64 };
        tracing::info!(
            frames = self.frames,
            messages = self.messages,
            batches = self.batches,
            longest_batch_ms = format!("{:.2}", ms(self.longest_batch)),
            view_ms_mean = format!("{:.2}", mean(self.view, self.frames)),
            view_ms_max = format!("{:.2}", ms(self.view_max)),
            draw_ms_mean = format!("{:.2}", mean(self.draw, self.frames)),
            draw_ms_max = format!("{:.2}", ms(self.draw_max)),
            inputs_drawn = self.inputs,
            input_to_frame_ms_mean = format!("{:.2}", mean(self.input_latency, self.inputs)),
            input_to_frame_ms_max = format!("{:.2}", ms(self.input_latency_max)),
            "console loop"
        );
    }
}

/// Starts the work `update` asked for; results come back as messages.
fn run_effects(app: &mut App, console: &Console, opts: &Options, tx: &mpsc::UnboundedSender<Msg>) {
    for effect in app.effects.drain(..) {
        let console = console.clone();
        let tx = tx.clone();
        match effect {
            Effect::Clipboard(text) => {
                let copy = crossterm::clipboard::CopyToClipboard::to_clipboard_from(text);
                let _ = crossterm::execute!(std::io::stdout(), copy);
            }
            Effect::Mouse(on) => {
                use crossterm::event::{DisableMouseCapture, EnableMouseCapture};
                let _ = if on {
                    crossterm::execute!(std::io::stdout(), EnableMouseCapture)
                } else {
                    crossterm::execute!(std::io::stdout(), DisableMouseCapture)
                };
            }
            Effect::Export { path, text } => {
                tokio::spawn(async move {
                    let what = format!("saved the log to {}", path.display());
                    let result = tokio::fs::write(&path, text)
                        .await
                        .map_err(|e| format!("cannot write {}: {e}", path.display()));
                    let _ = tx.send(Msg::CommandDone { what, result });
                });
            }
            Effect::Command { cmd, what } => {
                tokio::spawn(async move {
                    let result = console.command(cmd).await.map_err(|e| e.to_string());
                    let _ = tx.send(Msg::CommandDone { what, result });
                });
            }
            Effect::FetchLog { key, since } if !app.mirror.runs.contains_key(&key.run) => {
                // A past run's log: from its file, as the journal indexes it.
                let task = key.task.and_then(|t| {
                    let run = app.past.as_ref().filter(|r| r.id == key.run)?;
                    Some((t, run.task_id(t).to_string()))
                });
                if key.task.is_some() && task.is_none() {
                    continue;
                }
                tokio::spawn(async move {
                    let lines = match console.past_log(&key.run, task, key.attempt, since).await {
                        Ok(lines) => lines,
                        Err(e) => {
                            let _ = tx.send(Msg::CommandDone {
                                what: "read the log".into(),
                                result: Err(e.to_string()),
                            });
                            Vec::new()
                        }
                    };
                    let _ = tx.send(Msg::LogLines { key, since, lines });
                });
            }
            Effect::FetchLog { key, since } => {
                tokio::spawn(async move {
                    let lines = match key.task {
                        Some(t) => console.task_log(&key.run, t, key.attempt, since).await,
                        None => console.engine_log(&key.run, since).await,
                    }
                    .unwrap_or_default();
                    let _ = tx.send(Msg::LogLines { key, since, lines });
                });
            }
            Effect::LoadHistory => {
                tokio::spawn(async move {
                    let r = console.history().await.map_err(|e| e.to_string());
                    let _ = tx.send(Msg::History(r));
                });
            }
            Effect::OpenPast(id) => {
                tokio::spawn(async move {
                    let result = match console.open_past(&id).await {
                        Ok(past) => {
                            // Laying out a big graph takes a while: not on the loop either.
                            let wf = past.run.workflow.clone();
                            tokio::task::spawn_blocking(move || {
                                let started = StdInstant::now();
                                let layout = Arc::new(DagLayout::new(&wf));
                                let ms = started.elapsed().as_millis() as u64;
                                tracing::info!(
                                    tasks = wf.tasks.len(),
                                    layout_ms = ms,
                                    "laid out a past run"
                                );
                                layout
                            })
                            .await
                            .map(|layout| (past, layout))
                            .map_err(|e| e.to_string())
                        }
                        Err(e) => Err(e.to_string()),
                    };
                    let _ = tx.send(Msg::PastOpened { id, result });
                });
            }
            Effect::Resume(id) => {
                tokio::spawn(async move {
                    let result = console.resume(&id).await.map_err(|e| e.to_string());
                    let _ = tx.send(Msg::Resumed { id, result });
                    // The history changed: that run is live now.
                    let r = console.history().await.map_err(|e| e.to_string());
                    let _ = tx.send(Msg::History(r));
                });
            }
            Effect::Rerun(id) => {
                tokio::spawn(async move {
                    let result = console.rerun(&id).await.map_err(|e| e.to_string());
                    let _ = tx.send(Msg::Submitted(result));
                });
            }
            Effect::Submit(path) => {
                let config = opts.config.clone();
                tokio::spawn(async move {
                    let result = console.submit_file(path, &config).await;
                    let _ = tx.send(Msg::Submitted(result));
                });
            }
        }
    }
}
