//! The console's state and its `update`: every input, engine event, log notice and tick is a
//! `Msg`; `update` changes `App` and says whether the screen needs drawing. Side effects (engine
//! commands, log reads, submitting a file) are queued in `App::effects` for the loop to carry out;
//! their results come back as messages. Nothing here touches the terminal or the engine.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers, MouseButton, MouseEvent, MouseEventKind};

use super::dag_layout::{DagLayout, Zoom};
use super::keymap::{Action, Key, Keymap, Pane};
use super::layout::{self, Areas};
use super::palette::{self, PaletteCmd, TaskVerb};
use super::theme::{self, Theme};
use crate::console::LogNotice;
use crate::engine::Recovered;
use crate::engine::state::{AgentState, EngineState, Limits, Run};
use crate::history::{HistoryEntry, PastRun};
use crate::model::{
    Command, Event, EventKind, LogLine, Millis, RunId, RunState, TaskIdx, TaskState,
};

mod history;
pub use history::cursor_row;
use history::{on_history, on_past_opened, on_resumed};

/// Log lines kept per view (the store keeps more on disk).
const MAX_LOG_LINES: usize = 20_000;

#[derive(Debug)]
pub enum Msg {
    Key(KeyEvent),
    Mouse(MouseEvent),
    Resize(u16, u16),
    Engine(Arc<Event>),
    /// The engine's event feed ended.
    EngineGone,
    /// A remote feed could not resume without a gap: the whole state, to mirror from now on.
    Resync(Box<EngineState>),
    /// A remote console's connection changed (state, latency).
    Link(crate::console::Link),
    Log(LogNotice),
    LogLines {
        key: LogKey,
        since: usize,
        lines: Vec<LogLine>,
    },
    CommandDone {
        what: String,
        result: Result<(), String>,
    },
    Submitted(Result<RunId, String>),
    /// The store's runs (newest first), or why there are none.
    History(Result<Vec<HistoryEntry>, String>),
    /// A past run was read and folded (with its graph laid out), for reading only.
    PastOpened {
        id: RunId,
        result: Result<(PastRun, Arc<DagLayout>), String>,
    },
    /// An interrupted run was taken over by this console's engine.
    Resumed {
        id: RunId,
        result: Result<(Recovered, Vec<String>), String>,
    },
    Tick(Millis),
    /// SIGTERM or SIGHUP: leave now.
    Terminate,
}

/// Work for the event loop.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Put text on the terminal's clipboard (OSC 52).
    Clipboard(String),
    /// Write a log to a file.
    Export {
        path: PathBuf,
        text: String,
    },
    /// Capture the mouse (true) or leave it to the terminal (false).
    Mouse(bool),
    Command {
        cmd: Command,
        what: String,
    },
    FetchLog {
        key: LogKey,
        since: usize,
    },
    Submit(PathBuf),
    /// Read the store's runs again.
    LoadHistory,
    /// Read and fold a past run.
    OpenPast(RunId),
    /// Take an interrupted run over.
    Resume(RunId),
    /// Start a new run of the workflow version a past run used.
    Rerun(RunId),
}

/// Which log a view shows: a task attempt's, or the run's engine log (`task: None`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LogKey {
    pub run: RunId,
    pub task: Option<TaskIdx>,
    pub attempt: u32,
}

impl LogKey {
    fn matches(&self, l: &LogLine) -> bool {
        l.run == self.run
            && l.task == self.task
            && (self.task.is_none() || l.attempt == self.attempt)
    }
}

#[derive(Debug, Clone)]
pub struct LogView {
    pub key: Option<LogKey>,
    pub lines: Vec<LogLine>,
    /// Line number (in the store) of `lines[0]`.
    pub first: usize,
    fetching: bool,
    stale: bool,
    /// Stick to the newest line.
    pub follow: bool,
    /// Top line (index into `lines`) when not following.
    pub top: usize,
    pub wrap: bool,
    pub timestamps: bool,
    pub search: Option<String>,
    /// Show the engine's log of the run instead of the task's.
    pub engine: bool,
}

impl Default for LogView {
    fn default() -> Self {
        LogView {
            key: None,
            lines: Vec::new(),
            first: 0,
            fetching: false,
            stale: false,
            follow: true,
            top: 0,
            wrap: false,
            timestamps: false,
            search: None,
            engine: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Overlay {
    None,
    Help {
        scroll: u16,
    },
    Palette(PaletteInput),
    Confirm(Confirm),
    /// A one-line prompt: the task filter or the log search.
    Prompt {
        kind: PromptKind,
        text: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptKind {
    Filter,
    Search,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct PaletteInput {
    pub text: String,
    pub candidates: Vec<String>,
    pub choice: Option<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Confirm {
    pub question: String,
    pub on_yes: OnYes,
}

#[derive(Debug, Clone, PartialEq)]
pub enum OnYes {
    Command { cmd: Command, what: String },
    Resume(RunId),
    Quit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Success,
    /// Needs attention, not a failure (interrupted runs): kept as long as an error.
    Warning,
    Error,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub text: String,
    pub level: Level,
    pub at: Millis,
    /// Stays until another message replaces it (how to go on from a held plan).
    pub pinned: bool,
}

/// How long a status message stays.
const MESSAGE_MS: Millis = 8_000;

pub struct App {
    /// Our own copy of the engine's state: the fold of every event seen.
    pub mirror: EngineState,
    pub layouts: HashMap<RunId, Arc<DagLayout>>,
    /// "local" or "remote".
    pub location: &'static str,
    pub size: (u16, u16),
    pub now: Millis,
    pub focus: Pane,
    /// Narrow screens show one of Task/Logs/Agents/Gates below the graph: this one.
    pub bottom: Pane,
    pub run_sel: usize,
    pub task_sel: HashMap<RunId, TaskIdx>,
    pub tree: bool,
    /// Levels opened in the tree.
    pub tree_open: HashSet<u32>,
    /// The tree cursor sits on this level's header instead of a task.
    pub tree_level: Option<u32>,
    /// Top-left of the graph viewport in layout coordinates (of the current zoom level).
    pub graph_offset: (u32, u32),
    pub graph_zoom: Zoom,
    pub detail_scroll: u16,
    pub side_scroll: u16,
    pub filter: String,
    pub logs: LogView,
    pub overlay: Overlay,
    pub message: Option<Message>,
    pub theme: Theme,
    pub keymap: Keymap,
    pub effects: Vec<Effect>,
    pub exit_on_finish: bool,
    /// Runs this console started: they decide the exit code.
    pub own_runs: Vec<RunId>,
    pub quit: bool,
    /// Whether the console captures the mouse (else the terminal selects text natively).
    pub mouse: bool,
    pub engine_gone: bool,
    /// A remote console's connection, for the status bar.
    pub link: Option<crate::console::Link>,
    /// Where `:run` completes file names.
    pub cwd: PathBuf,
    /// Runs in the store that are not live here, newest first.
    pub history: Vec<HistoryEntry>,
    /// Why there is no history (no store), once asked.
    pub history_off: Option<String>,
    /// The runs list's cursor is on this history row (else on the live run `run_sel`).
    pub hist_sel: Option<usize>,
    /// The past run opened read-only (shown while the cursor is on its row).
    pub past: Option<Box<Run>>,
    /// A past run being read.
    pub opening: Option<RunId>,
    /// Runs being resumed, with their events that arrived before the engine's answer.
    pub resuming: HashMap<RunId, Vec<Arc<Event>>>,
    /// Whether the interrupted runs were announced (once, when the console opens).
    history_noticed: bool,
}

impl App {
    pub fn new(location: &'static str, theme: Theme, keymap: Keymap) -> App {
        App {
            mirror: EngineState::new(
                Limits {
                    max_parallel: u32::MAX,
                    pool: Default::default(),
                },
                [],
            ),
            layouts: HashMap::new(),
            location,
            size: (80, 24),
            now: 0,
            focus: Pane::Graph,
            bottom: Pane::Logs,
            run_sel: 0,
            task_sel: HashMap::new(),
            tree: false,
            tree_open: HashSet::new(),
            tree_level: None,
            graph_offset: (0, 0),
            graph_zoom: Zoom::Boxes,
            detail_scroll: 0,
            side_scroll: 0,
            filter: String::new(),
            logs: LogView::default(),
            overlay: Overlay::None,
            message: None,
            theme,
            keymap,
            effects: Vec::new(),
            exit_on_finish: false,
            own_runs: Vec::new(),
            quit: false,
            mouse: true,
            engine_gone: false,
            link: None,
            cwd: std::env::current_dir().unwrap_or_default(),
            history: Vec::new(),
            history_off: None,
            hist_sel: None,
            past: None,
            opening: None,
            resuming: HashMap::new(),
            history_noticed: false,
        }
    }

    /// Starts from a snapshot of the engine (so agents from the config are known too).
    pub fn with_snapshot(mut self, snapshot: EngineState) -> App {
        self.mirror = snapshot;
        let ids: Vec<RunId> = self.mirror.runs.keys().cloned().collect();
        for id in ids {
            self.on_new_run(&id);
        }
        self
    }

    /// The run the panes show: the live run under the cursor, or the past one opened read-only.
    pub fn run(&self) -> Option<&Run> {
        match self.hist_sel {
            Some(i) => {
                let id = &self.history.get(i)?.id;
                self.past.as_deref().filter(|r| &r.id == id)
            }
            None => self.mirror.runs.get_index(self.run_sel).map(|(_, r)| r),
        }
    }

    /// The history row under the cursor.
    pub fn past_entry(&self) -> Option<&HistoryEntry> {
        self.history.get(self.hist_sel?)
    }

    /// Whether the panes show a past run: operator keys are refused.
    pub fn read_only(&self) -> bool {
        self.hist_sel.is_some()
    }

    /// Interrupted runs in the history.
    pub fn interrupted(&self) -> impl Iterator<Item = &HistoryEntry> {
        self.history.iter().filter(|h| h.interrupted())
    }

    pub fn layout(&self) -> Option<&DagLayout> {
        self.run()
            .and_then(|r| self.layouts.get(&r.id))
            .map(|l| &**l)
    }

    pub fn selected_task(&self) -> Option<TaskIdx> {
        let run = self.run()?;
        self.task_sel.get(&run.id).copied()
    }

    /// The scroll of a side pane (it only scrolls while focused).
    pub fn side_scroll_for(&self, p: Pane) -> u16 {
        if self.focus == p { self.side_scroll } else { 0 }
    }

    pub fn areas(&self) -> Areas {
        layout::areas(self.size, self)
    }

    /// Whether anything moves on its own, so elapsed times need a tick.
    pub fn animating(&self) -> bool {
        self.mirror.runs.values().any(|r| !r.state.is_terminal())
    }

    /// 0 when every run this console started succeeded, else 1.
    pub fn exit_code(&self) -> u8 {
        let ok = self.own_runs.iter().all(|id| {
            self.mirror
                .runs
                .get(id)
                .is_some_and(|r| r.state == RunState::Succeeded)
        });
        if ok { 0 } else { 1 }
    }

    fn own_runs_finished(&self) -> bool {
        !self.own_runs.is_empty()
            && self.own_runs.iter().all(|id| {
                self.mirror
                    .runs
                    .get(id)
                    .is_some_and(|r| r.state.is_terminal())
            })
    }

    /// Whether a task matches the filter (by id or state name).
    pub fn matches_filter(&self, run: &Run, t: TaskIdx) -> bool {
        if self.filter.is_empty() {
            return true;
        }
        let f = self.filter.to_lowercase();
        let id = run.task_id(t).to_lowercase();
        id.contains(&f) || run.tasks[t as usize].state.as_str().starts_with(&f)
    }

    pub fn say(&mut self, text: impl Into<String>, level: Level) {
        self.message = Some(Message {
            text: text.into(),
            level,
            at: self.now,
            pinned: false,
        });
    }

    /// A message that stays until another one replaces it.
    pub fn pin(&mut self, text: impl Into<String>) {
        self.say(text, Level::Info);
        if let Some(m) = &mut self.message {
            m.pinned = true;
        }
    }

    /// Whether a message is waiting to expire (the console ticks until it has).
    pub fn message_expires(&self) -> bool {
        self.message.as_ref().is_some_and(|m| !m.pinned)
    }

    fn on_new_run(&mut self, id: &RunId) {
        let Some(run) = self.mirror.runs.get(id) else {
            return;
        };
        let layout = Arc::new(DagLayout::new(&run.workflow));
        let first = layout.levels.first().and_then(|l| l.first()).copied();
        self.layouts.insert(id.clone(), layout);
        if let Some(t) = first {
            self.task_sel.entry(id.clone()).or_insert(t);
        }
    }
}

/// Applies one message; returns whether the screen should be drawn again.
pub fn update(app: &mut App, msg: Msg) -> bool {
    let redraw = match msg {
        Msg::Key(k) => on_key(app, k),
        Msg::Mouse(m) => on_mouse(app, m),
        Msg::Resize(w, h) => {
            app.size = (w, h);
            keep_selection_visible(app);
            true
        }
        Msg::Engine(ev) => on_event(app, ev),
        Msg::EngineGone => {
            app.engine_gone = true;
            app.say("the engine has stopped", Level::Error);
            true
        }
        Msg::Resync(state) => {
            resync(app, *state);
            true
        }
        Msg::Link(link) => {
            let changed = app.link.as_ref() != Some(&link);
            app.link = Some(link);
            changed
        }
        Msg::Log(notice) => on_log_notice(app, notice),
        Msg::LogLines { key, since, lines } => on_log_lines(app, key, since, lines),
        Msg::CommandDone { what, result } => {
            match result {
                Ok(()) => app.say(format!("✓ {what}"), Level::Success),
                Err(e) => app.say(format!("{what}: {e}"), Level::Error),
            }
            true
        }
        Msg::Submitted(r) => {
            match r {
                Ok(id) => {
                    app.own_runs.push(id.clone());
                    if let Some(i) = app.mirror.runs.get_index_of(&id) {
                        select_run(app, i);
                    }
                    app.say(format!("started run {id}"), Level::Success);
                }
                Err(e) => app.say(e, Level::Error),
            }
            true
        }
        Msg::History(r) => on_history(app, r),
        Msg::PastOpened { id, result } => on_past_opened(app, id, result),
        Msg::Resumed { id, result } => on_resumed(app, id, result),
        Msg::Tick(now) => {
            app.now = now;
            if app.message.as_ref().is_some_and(|m| {
                if m.pinned {
                    return false;
                }
                let keep = if matches!(m.level, Level::Error | Level::Warning) {
                    3 * MESSAGE_MS
                } else {
                    MESSAGE_MS
                };
                now.saturating_sub(m.at) > keep
            }) {
                app.message = None;
            }
            app.animating() || app.message.is_none()
        }
        Msg::Terminate => {
            app.quit = true;
            true
        }
    };
    sync_logs(app);
    redraw
}

fn on_event(app: &mut App, ev: Arc<Event>) -> bool {
    if !app.mirror.runs.contains_key(&ev.run)
        && let Some(held) = app.resuming.get_mut(&ev.run)
    {
        // A run being resumed: its state comes with the engine's answer, these go on top.
        held.push(ev);
        return false;
    }
    app.mirror.apply(&ev);
    app.now = app.now.max(ev.ts);
    match &ev.kind {
        EventKind::RunSubmitted { .. } => {
            app.on_new_run(&ev.run);
            if app.mirror.runs.len() == 1 {
                select_run(app, 0);
            }
        }
        EventKind::RunFinished { state } => {
            let name = app
                .mirror
                .runs
                .get(&ev.run)
                .map(|r| r.workflow.name.clone())
                .unwrap_or_default();
            let level = if *state == RunState::Succeeded {
                Level::Success
            } else {
                Level::Error
            };
            // Name what failed and the command that retries it: the selection may be elsewhere.
            let failed: Vec<String> = app
                .mirror
                .runs
                .get(&ev.run)
                .map(|r| {
                    (0..r.tasks.len() as TaskIdx)
                        .filter(|t| r.tasks[*t as usize].state == TaskState::Failed)
                        .map(|t| r.task_id(t).to_string())
                        .collect()
                })
                .unwrap_or_default();
            let text = match failed.as_slice() {
                [] => format!("run {name} {state}"),
                [first, rest @ ..] => {
                    let more = if rest.is_empty() {
                        String::new()
                    } else {
                        format!(" (+{})", rest.len())
                    };
                    format!("run {name} {state} at {first}{more} · :retry {first}")
                }
            };
            app.say(text, level);
            if app.exit_on_finish && app.own_runs_finished() {
                app.quit = true;
            }
        }
        EventKind::TaskAwaitingApproval { task } => {
            if let Some(run) = app.mirror.runs.get(&ev.run) {
                let id = run.task_id(*task).to_string();
                let key = app.keymap.key_of(Action::Approve);
                app.say(
                    format!(
                        "{id} waits for approval: select it and press {key} (or :approve {id})"
                    ),
                    Level::Info,
                );
            }
        }
        _ => {}
    }
    true
}

fn select_run(app: &mut App, i: usize) {
    if i >= app.mirror.runs.len() {
        return;
    }
    let from_history = app.hist_sel.take().is_some();
    if app.run_sel != i || from_history {
        app.tree_open.clear();
        app.tree_level = None;
        app.detail_scroll = 0;
    }
    app.run_sel = i;
    keep_selection_visible(app);
}

fn select_task(app: &mut App, t: TaskIdx) {
    let Some(id) = app.run().map(|r| r.id.clone()) else {
        return;
    };
    if app.task_sel.get(&id) != Some(&t) {
        app.detail_scroll = 0;
    }
    app.task_sel.insert(id, t);
    app.tree_level = None;
    keep_selection_visible(app);
}

/// Switches the graph's zoom level and centres the view on the selected task (or shows the
/// graph from its start when the task is on screen from there).
fn set_zoom(app: &mut App, z: Zoom) {
    app.graph_zoom = z;
    if z == Zoom::Overview {
        app.graph_offset = (0, 0);
        return;
    }
    let view = app.areas().graph_inner();
    let (vw, vh) = (u32::from(view.width), u32::from(view.height));
    let Some(layout) = app.layout() else {
        app.graph_offset = (0, 0);
        return;
    };
    let (total_w, total_h) = layout.size(z);
    let rect = app.selected_task().and_then(|t| layout.rect(z, t));
    // Centred on `at` (of `size` cells), within the drawing; 0 when it is visible from there.
    let place = |at: u32, size: u32, view: u32, total: u32, margin: u32| {
        if at + size + margin <= view {
            0
        } else {
            (at + size / 2)
                .saturating_sub(view / 2)
                .min(total.saturating_sub(view))
        }
    };
    app.graph_offset = match rect {
        Some((x, y, w, h)) => (
            place(x, w, vw, total_w, z.gap_range().0),
            place(y, h, vh, total_h, z.slot_h() - z.box_h()),
        ),
        None => (0, 0),
    };
    keep_selection_visible(app);
}

/// Moves the graph viewport just enough to show the selected box.
pub fn keep_selection_visible(app: &mut App) {
    let (Some(layout), Some(t)) = (app.layout(), app.selected_task()) else {
        return;
    };
    let z = app.graph_zoom;
    if z == Zoom::Overview {
        // Everything is on screen.
        app.graph_offset = (0, 0);
        return;
    }
    let Some((x, y, w, h)) = layout.rect(z, t) else {
        return;
    };
    let view = app.areas().graph_inner();
    let (vw, vh) = (u32::from(view.width), u32::from(view.height));
    if vw == 0 || vh == 0 {
        return;
    }
    let (mut ox, mut oy) = app.graph_offset;
    let margin_x = z.gap_range().0;
    if x < ox + margin_x.min(ox) {
        ox = x.saturating_sub(margin_x);
    } else if x + w + margin_x > ox + vw {
        ox = (x + w + margin_x).saturating_sub(vw);
        if x < ox {
            ox = x;
        }
    }
    let margin_y = z.slot_h() - z.box_h();
    if y < oy {
        oy = y.saturating_sub(margin_y);
    } else if y + h + margin_y > oy + vh {
        oy = (y + h + margin_y).saturating_sub(vh);
        if y < oy {
            oy = y;
        }
    }
    app.graph_offset = (ox, oy);
}

// ---- keys -------------------------------------------------------------------------------------

fn on_key(app: &mut App, k: KeyEvent) -> bool {
    if k.kind == crossterm::event::KeyEventKind::Release {
        return false;
    }
    match app.overlay.clone() {
        Overlay::None => {}
        Overlay::Help { scroll } => {
            let key = Key::from_event(&k);
            let scroll = match app.keymap.action(app.focus, key) {
                Some(Action::Down) => scroll.saturating_add(1),
                Some(Action::Up) => scroll.saturating_sub(1),
                Some(Action::PageDown) => scroll.saturating_add(10),
                Some(Action::PageUp) => scroll.saturating_sub(10),
                Some(Action::Quit) if k.modifiers.contains(KeyModifiers::CONTROL) => {
                    return request_quit(app);
                }
                _ => {
                    app.overlay = Overlay::None;
                    return true;
                }
            };
            let scroll = scroll.min(super::views::overlays::help_max_scroll(app));
            app.overlay = Overlay::Help { scroll };
            return true;
        }
        Overlay::Confirm(c) => {
            let ctrl_c =
                k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL);
            if ctrl_c && c.on_yes == OnYes::Quit {
                // Ctrl-C twice leaves at once.
                app.quit = true;
                return true;
            }
            match k.code {
                KeyCode::Char('y') | KeyCode::Char('Y') | KeyCode::Enter => {
                    app.overlay = Overlay::None;
                    match c.on_yes {
                        OnYes::Command { cmd, what } => {
                            app.say(format!("{what}…"), Level::Info);
                            app.effects.push(Effect::Command { cmd, what });
                        }
                        OnYes::Resume(id) => history::start_resume(app, id),
                        OnYes::Quit => app.quit = true,
                    }
                }
                KeyCode::Char('n') | KeyCode::Char('N') | KeyCode::Esc => {
                    app.overlay = Overlay::None
                }
                _ => return false,
            }
            return true;
        }
        Overlay::Prompt { kind, text } => return on_prompt_key(app, kind, text, k),
        Overlay::Palette(p) => return on_palette_key(app, p, k),
    }
    let key = Key::from_event(&k);
    match app.keymap.action(app.focus, key) {
        Some(a) => perform(app, a),
        None => false,
    }
}

/// Edits a one-line input; returns `None` when the key is not an edit.
fn edit(text: &mut String, k: &KeyEvent) -> Option<()> {
    match k.code {
        KeyCode::Char(c) if !k.modifiers.contains(KeyModifiers::CONTROL) => text.push(c),
        KeyCode::Char('u') => text.clear(),
        KeyCode::Char('w') => {
            let trimmed = text.trim_end().len();
            let cut = text[..trimmed].rfind(' ').map_or(0, |i| i + 1);
            text.truncate(cut);
        }
        KeyCode::Backspace => {
            text.pop();
        }
        _ => return None,
    }
    Some(())
}

fn on_prompt_key(app: &mut App, kind: PromptKind, mut text: String, k: KeyEvent) -> bool {
    match k.code {
        KeyCode::Esc => {
            app.overlay = Overlay::None;
            if kind == PromptKind::Filter {
                app.filter.clear();
            }
        }
        KeyCode::Enter => {
            app.overlay = Overlay::None;
            match kind {
                PromptKind::Filter => set_filter(app, text),
                PromptKind::Search => {
                    app.logs.search = (!text.is_empty()).then_some(text);
                    jump_to_match(app, 1, true);
                }
            }
        }
        _ => {
            if edit(&mut text, &k).is_none() {
                return false;
            }
            if kind == PromptKind::Filter {
                // Live: the graph and tree follow as you type.
                app.filter = text.clone();
                select_first_match(app);
            }
            app.overlay = Overlay::Prompt { kind, text };
        }
    }
    true
}

fn set_filter(app: &mut App, text: String) {
    app.filter = text;
    select_first_match(app);
    if !app.filter.is_empty() {
        let n = app
            .run()
            .map(|r| {
                (0..r.tasks.len() as TaskIdx)
                    .filter(|t| app.matches_filter(r, *t))
                    .count()
            })
            .unwrap_or(0);
        app.say(
            format!("filter `{}`: {n} tasks (Esc clears)", app.filter),
            Level::Info,
        );
    }
}

fn select_first_match(app: &mut App) {
    let (Some(run), Some(layout)) = (app.run(), app.layout()) else {
        return;
    };
    if let Some(t) = app.selected_task()
        && app.matches_filter(run, t)
    {
        return;
    }
    let found = layout
        .levels
        .iter()
        .flatten()
        .copied()
        .find(|t| app.matches_filter(run, *t));
    if let Some(t) = found {
        select_task(app, t);
    }
}

fn palette_sources(app: &App) -> (Vec<String>, Vec<String>) {
    let tasks = app
        .run()
        .map(|r| r.workflow.tasks.iter().map(|t| t.id.clone()).collect())
        .unwrap_or_default();
    (tasks, theme::names())
}

fn refresh_candidates(app: &App, p: &mut PaletteInput) {
    let (tasks, themes) = palette_sources(app);
    let tasks: Vec<&str> = tasks.iter().map(String::as_str).collect();
    let runs: Vec<&str> = app
        .history
        .iter()
        .map(|h| h.id.as_str())
        .chain(app.mirror.runs.keys().map(|r| r.as_str()))
        .collect();
    let resumable: Vec<&str> = app.interrupted().map(|h| h.id.as_str()).collect();
    let src = palette::Sources {
        tasks: &tasks,
        runs: &runs,
        resumable: &resumable,
        themes: &themes,
        cwd: &app.cwd,
    };
    p.candidates = palette::complete(&p.text, &src, 8);
    p.choice = None;
}

fn on_palette_key(app: &mut App, mut p: PaletteInput, k: KeyEvent) -> bool {
    match k.code {
        KeyCode::Esc => {
            app.overlay = Overlay::None;
            return true;
        }
        KeyCode::Tab | KeyCode::Down => {
            if !p.candidates.is_empty() {
                let next = p.choice.map_or(0, |c| (c + 1) % p.candidates.len());
                if p.candidates.len() == 1 && k.code == KeyCode::Tab {
                    p.text = p.candidates[0].clone();
                    refresh_candidates(app, &mut p);
                } else {
                    p.choice = Some(next);
                }
            }
        }
        KeyCode::BackTab | KeyCode::Up => {
            if !p.candidates.is_empty() {
                let n = p.candidates.len();
                p.choice = Some(p.choice.map_or(n - 1, |c| (c + n - 1) % n));
            }
        }
        KeyCode::Enter => {
            if let Some(c) = p.choice.and_then(|c| p.candidates.get(c)).cloned() {
                // First Enter takes the highlighted candidate; the next one runs it.
                p.text = c;
                refresh_candidates(app, &mut p);
                if !p.text.ends_with(' ') {
                    p.candidates.clear();
                }
                app.overlay = Overlay::Palette(p);
                return true;
            }
            app.overlay = Overlay::None;
            match palette::parse(&p.text) {
                Ok(cmd) => run_palette(app, cmd),
                Err(e) => app.say(e, Level::Error),
            }
            return true;
        }
        _ => {
            if edit(&mut p.text, &k).is_none() {
                return false;
            }
            refresh_candidates(app, &mut p);
        }
    }
    app.overlay = Overlay::Palette(p);
    true
}

fn run_palette(app: &mut App, cmd: PaletteCmd) {
    match cmd {
        PaletteCmd::Task { verb, task } => {
            if matches!(verb, TaskVerb::Resume | TaskVerb::Rerun) {
                // `:resume RUN` / `:rerun RUN` name a run; a task of the shown run wins.
                let is_task = |app: &App, name: &str| {
                    app.run().is_some_and(|r| r.index.by_id.contains_key(name))
                };
                let target = match &task {
                    Some(arg) if !is_task(app, arg) => match history::find_run(app, arg) {
                        Ok(found) => found,
                        Err(e) => {
                            app.say(e, Level::Error);
                            return;
                        }
                    },
                    None if app.read_only() => app.past_entry().map(|h| h.id.clone()),
                    _ => None,
                };
                if let Some(id) = target {
                    match verb {
                        TaskVerb::Resume => history::ask_resume(app, Some(id)),
                        _ => history::rerun(app, id),
                    }
                    return;
                }
            }
            if app.read_only() {
                history::refuse_read_only(app);
                return;
            }
            let Some(run) = app.run() else {
                app.say("no run", Level::Error);
                return;
            };
            let id = match task {
                Some(name) => {
                    if !run.index.by_id.contains_key(&name) {
                        app.say(format!("run has no task `{name}`"), Level::Error);
                        return;
                    }
                    name
                }
                None => match app.selected_task() {
                    Some(t) => run.task_id(t).to_string(),
                    None => {
                        app.say("no task selected", Level::Error);
                        return;
                    }
                },
            };
            let run_id = run.id.clone();
            let (cmd, what) = match verb {
                TaskVerb::Retry => (
                    Command::RetryTask {
                        run: run_id,
                        task: id.clone(),
                    },
                    "retry",
                ),
                TaskVerb::Rerun => (
                    Command::RerunFrom {
                        run: run_id,
                        task: id.clone(),
                    },
                    "re-run from",
                ),
                TaskVerb::Cancel => (
                    Command::CancelTask {
                        run: run_id,
                        task: id.clone(),
                    },
                    "cancel",
                ),
                TaskVerb::Pause => (
                    Command::PauseTask {
                        run: run_id,
                        task: id.clone(),
                    },
                    "pause",
                ),
                TaskVerb::Resume => (
                    Command::ResumeTask {
                        run: run_id,
                        task: id.clone(),
                    },
                    "resume",
                ),
                TaskVerb::Approve => (
                    Command::Approve {
                        run: run_id,
                        task: id.clone(),
                    },
                    "approve",
                ),
            };
            send(app, cmd, format!("{what} {id}"));
        }
        PaletteCmd::PauseRun | PaletteCmd::ResumeRun | PaletteCmd::CancelRun => {
            if app.read_only() {
                history::refuse_read_only(app);
                return;
            }
            let Some(run) = app.run().map(|r| r.id.clone()) else {
                app.say("no run", Level::Error);
                return;
            };
            let (cmd, what) = match cmd {
                PaletteCmd::PauseRun => (Command::PauseRun { run: run.clone() }, "pause run"),
                PaletteCmd::ResumeRun => (Command::ResumeRun { run: run.clone() }, "resume run"),
                _ => (Command::CancelRun { run: run.clone() }, "cancel run"),
            };
            send(app, cmd, format!("{what} {run}"));
        }
        PaletteCmd::Theme(name) => match Theme::load(&name) {
            Ok(t) => {
                app.theme = t;
                app.say(format!("theme {name}"), Level::Success);
            }
            Err(e) => app.say(e, Level::Error),
        },
        PaletteCmd::Run(path) => {
            app.say(format!("starting {}…", path.display()), Level::Info);
            app.effects.push(Effect::Submit(path));
        }
        PaletteCmd::Filter(f) => set_filter(app, f),
        PaletteCmd::View(tree) => {
            app.tree = tree;
            app.focus = Pane::Graph;
        }
        PaletteCmd::Help => app.overlay = Overlay::Help { scroll: 0 },
        PaletteCmd::History => history::focus_history(app),
        PaletteCmd::Quit => {
            request_quit(app);
        }
    }
}

fn send(app: &mut App, cmd: Command, what: String) {
    app.say(format!("{what}…"), Level::Info);
    app.effects.push(Effect::Command { cmd, what });
}

fn request_quit(app: &mut App) -> bool {
    let going = app.mirror.runs.values().any(|r| !r.state.is_terminal());
    if going && app.location == "local" && !app.engine_gone {
        app.overlay = Overlay::Confirm(Confirm {
            question: "Runs are still going. Quit and cancel them?".into(),
            on_yes: OnYes::Quit,
        });
    } else {
        app.quit = true;
    }
    true
}

/// Carries out a key's action in the focused pane.
pub fn perform(app: &mut App, a: Action) -> bool {
    match a {
        Action::Quit => return request_quit(app),
        Action::Help => app.overlay = Overlay::Help { scroll: 0 },
        Action::Palette => {
            let mut p = PaletteInput::default();
            refresh_candidates(app, &mut p);
            app.overlay = Overlay::Palette(p);
        }
        Action::FocusNext | Action::FocusPrev => {
            let order = Pane::ALL;
            let i = order.iter().position(|p| *p == app.focus).unwrap_or(0);
            let n = order.len();
            let j = if a == Action::FocusNext {
                (i + 1) % n
            } else {
                (i + n - 1) % n
            };
            set_focus(app, order[j]);
        }
        Action::Open => match app.focus {
            Pane::Runs if app.read_only() => history::open_past(app),
            Pane::Runs => set_focus(app, Pane::Graph),
            Pane::Graph if app.tree && app.tree_level.is_some() => tree_toggle(app),
            Pane::Graph => set_focus(app, Pane::Detail),
            Pane::Detail => set_focus(app, Pane::Logs),
            _ => return false,
        },
        Action::Back => {
            if !app.filter.is_empty() {
                app.filter.clear();
                app.say("filter cleared", Level::Info);
            } else {
                match app.focus {
                    Pane::Runs => return false,
                    Pane::Graph => set_focus(app, Pane::Runs),
                    _ => set_focus(app, Pane::Graph),
                }
            }
        }
        Action::Up
        | Action::Down
        | Action::PageUp
        | Action::PageDown
        | Action::Top
        | Action::Bottom => move_in_pane(app, a),
        Action::Left | Action::Right => {
            if app.tree {
                tree_left_right(app, a == Action::Right);
            } else {
                graph_step_level(app, if a == Action::Right { 1 } else { -1 });
            }
        }
        Action::PanLeft | Action::PanRight | Action::PanUp | Action::PanDown => {
            if app.graph_zoom == Zoom::Overview {
                return false;
            }
            let (x, y) = app.graph_offset;
            let (w, h) = app
                .layout()
                .map(|l| l.size(app.graph_zoom))
                .unwrap_or((0, 0));
            app.graph_offset = match a {
                Action::PanLeft => (x.saturating_sub(8), y),
                Action::PanRight => ((x + 8).min(w.saturating_sub(8)), y),
                Action::PanUp => (x, y.saturating_sub(4)),
                _ => (x, (y + 4).min(h.saturating_sub(4))),
            };
        }
        Action::ZoomIn | Action::ZoomOut => {
            if app.tree {
                return false;
            }
            let z = app.graph_zoom;
            let next = if a == Action::ZoomIn {
                z.zoom_in()
            } else {
                z.zoom_out()
            };
            match next {
                Some(next) => set_zoom(app, next),
                None => {
                    let (how, back, other) = if a == Action::ZoomIn {
                        ("in", Action::ZoomOut, "out")
                    } else {
                        ("out", Action::ZoomIn, "in")
                    };
                    let key = app.keymap.key_of(back);
                    app.say(
                        format!("the graph is zoomed {how} all the way ({key} zooms {other})"),
                        Level::Info,
                    );
                }
            }
        }
        Action::ToggleTree => {
            app.tree = !app.tree;
            if app.tree {
                // Open the selected task's level so the cursor has something to show.
                if let (Some(l), Some(t)) = (app.layout(), app.selected_task()) {
                    let c = l.pos[t as usize].0;
                    app.tree_open.insert(c);
                }
            }
        }
        Action::Filter => {
            app.overlay = Overlay::Prompt {
                kind: PromptKind::Filter,
                text: app.filter.clone(),
            };
        }
        Action::Search => {
            app.overlay = Overlay::Prompt {
                kind: PromptKind::Search,
                text: String::new(),
            };
        }
        Action::PauseResume | Action::Retry | Action::Rerun | Action::Approve | Action::Cancel
            if app.read_only() =>
        {
            history::refuse_read_only(app)
        }
        Action::PauseResume => pause_resume(app),
        Action::Retry => task_command(app, TaskVerb::Retry),
        Action::Rerun => task_command(app, TaskVerb::Rerun),
        Action::Approve => task_command(app, TaskVerb::Approve),
        Action::Cancel => cancel(app),
        Action::ResumeRun => history::ask_resume(app, None),
        Action::Follow => {
            app.logs.follow = true;
        }
        Action::NextMatch => jump_to_match(app, 1, false),
        Action::PrevMatch => jump_to_match(app, -1, false),
        Action::Copy => {
            let text = log_text(app);
            if text.is_empty() {
                app.say("nothing to copy: the log is empty", Level::Info);
            } else {
                let n = text.lines().count();
                app.effects.push(Effect::Clipboard(text));
                app.say(
                    format!("copied {n} lines to the clipboard (in tmux: set -g set-clipboard on)"),
                    Level::Success,
                );
            }
        }
        Action::Export => {
            if let Some(key) = app.logs.key.clone() {
                let what = match key.task {
                    Some(t) => format!("task-{t}.{}", key.attempt),
                    None => "engine".to_string(),
                };
                let path = PathBuf::from(format!("taskdeck-{}-{what}.log", key.run));
                app.effects.push(Effect::Export {
                    path,
                    text: log_text(app),
                });
            }
        }
        Action::ToggleMouse => {
            app.mouse = !app.mouse;
            app.effects.push(Effect::Mouse(app.mouse));
            app.say(
                if app.mouse {
                    "mouse captured: click to select, wheel to scroll"
                } else {
                    "mouse released: select text with the terminal; press m to take it back"
                },
                Level::Info,
            );
        }
        Action::Wrap => app.logs.wrap = !app.logs.wrap,
        Action::Timestamps => app.logs.timestamps = !app.logs.timestamps,
        Action::EngineLog => {
            app.logs.engine = !app.logs.engine;
        }
    }
    true
}

/// The log lines the view holds, as plain text (what copy and export take).
fn log_text(app: &App) -> String {
    let mut out = String::new();
    for l in &app.logs.lines {
        out.push_str(&l.line);
        out.push('\n');
    }
    out
}

fn set_focus(app: &mut App, p: Pane) {
    app.focus = p;
    if matches!(p, Pane::Detail | Pane::Logs | Pane::Agents | Pane::Gates) {
        app.bottom = p;
    }
    app.side_scroll = 0;
}

fn task_command(app: &mut App, verb: TaskVerb) {
    run_palette(app, PaletteCmd::Task { verb, task: None });
}

fn pause_resume(app: &mut App) {
    let Some(run) = app.run() else { return };
    // In a paused run (a plan under review), `p` resumes the run unless it is aimed at a task
    // that is paused itself.
    let task_paused = app
        .selected_task()
        .is_some_and(|t| run.tasks[t as usize].state == TaskState::Paused);
    if app.focus == Pane::Runs || (run.state == RunState::Paused && !task_paused) {
        let cmd = if run.state == RunState::Paused {
            PaletteCmd::ResumeRun
        } else {
            PaletteCmd::PauseRun
        };
        run_palette(app, cmd);
        return;
    }
    let Some(t) = app.selected_task() else { return };
    let verb = if run.tasks[t as usize].state == TaskState::Paused {
        TaskVerb::Resume
    } else {
        TaskVerb::Pause
    };
    task_command(app, verb);
}

fn cancel(app: &mut App) {
    let Some(run) = app.run() else { return };
    let (cmd, what, question) = if app.focus == Pane::Runs {
        (
            Command::CancelRun {
                run: run.id.clone(),
            },
            format!("cancel run {}", run.id),
            format!(
                "Cancel run {} ({})? Running tasks are stopped.",
                run.id, run.workflow.name
            ),
        )
    } else {
        let Some(t) = app.selected_task() else { return };
        let id = run.task_id(t).to_string();
        (
            Command::CancelTask {
                run: run.id.clone(),
                task: id.clone(),
            },
            format!("cancel {id}"),
            format!("Cancel task {id}? Tasks that need it will be blocked."),
        )
    };
    app.overlay = Overlay::Confirm(Confirm {
        question,
        on_yes: OnYes::Command { cmd, what },
    });
}

fn move_in_pane(app: &mut App, a: Action) {
    let page = |app: &App| -> i64 {
        let areas = app.areas();
        i64::from(
            areas
                .pane(app.focus)
                .map_or(10, |r| r.height.saturating_sub(3))
                .max(1),
        )
    };
    let delta: i64 = match a {
        Action::Up => -1,
        Action::Down => 1,
        Action::PageUp => -page(app),
        Action::PageDown => page(app),
        Action::Top => i64::MIN / 2,
        _ => i64::MAX / 2,
    };
    match app.focus {
        Pane::Runs => {
            let n = (app.mirror.runs.len() + app.history.len()) as i64;
            if n > 0 {
                let i = (cursor_row(app) as i64 + delta).clamp(0, n - 1);
                history::select_row(app, i as usize);
            }
        }
        Pane::Graph => {
            if app.tree {
                tree_move(app, delta);
            } else {
                graph_move(app, delta, a);
            }
        }
        Pane::Detail => {
            let max = super::views::max_scroll(app, Pane::Detail);
            app.detail_scroll = scroll(app.detail_scroll, delta).min(max);
        }
        Pane::Agents | Pane::Gates => {
            let max = super::views::max_scroll(app, app.focus);
            app.side_scroll = scroll(app.side_scroll, delta).min(max);
        }
        Pane::Logs => log_scroll(app, delta),
    }
}

fn scroll(v: u16, delta: i64) -> u16 {
    (i64::from(v) + delta).clamp(0, i64::from(u16::MAX)) as u16
}

fn graph_move(app: &mut App, delta: i64, a: Action) {
    let (Some(layout), Some(t)) = (app.layout(), app.selected_task()) else {
        return;
    };
    let next = match a {
        Action::Top | Action::Bottom => {
            let (c, _) = layout.pos[t as usize];
            let slot = if a == Action::Top { 0 } else { u32::MAX / 2 };
            layout.nearest_in_column(i64::from(c), slot, 0)
        }
        _ => {
            let dir = delta.signum();
            let mut cur = t;
            for _ in 0..delta.unsigned_abs().min(10_000) {
                match layout.step_in_column(cur, dir) {
                    Some(n) => cur = n,
                    None => break,
                }
            }
            Some(cur)
        }
    };
    if let Some(n) = next {
        select_task(app, n);
    }
}

fn graph_step_level(app: &mut App, dir: i64) {
    let (Some(layout), Some(t)) = (app.layout(), app.selected_task()) else {
        return;
    };
    let (c, s) = layout.pos[t as usize];
    if let Some(n) = layout.nearest_in_column(i64::from(c) + dir, s, dir) {
        select_task(app, n);
    }
}

/// Rows of the tree as (level, task) — `None` for a level's header — filter applied.
pub fn tree_rows(app: &App) -> Vec<(u32, Option<TaskIdx>)> {
    let (Some(run), Some(layout)) = (app.run(), app.layout()) else {
        return Vec::new();
    };
    let mut rows = Vec::new();
    for (l, tasks) in layout.levels.iter().enumerate() {
        let l = l as u32;
        if !app.filter.is_empty() && !tasks.iter().any(|t| app.matches_filter(run, *t)) {
            continue;
        }
        rows.push((l, None));
        if app.tree_open.contains(&l) || !app.filter.is_empty() {
            rows.extend(
                tasks
                    .iter()
                    .filter(|t| app.matches_filter(run, **t))
                    .map(|t| (l, Some(*t))),
            );
        }
    }
    rows
}

fn tree_cursor(app: &App, rows: &[(u32, Option<TaskIdx>)]) -> usize {
    let t = app.selected_task();
    rows.iter()
        .position(|(l, x)| match app.tree_level {
            Some(level) => *l == level && x.is_none(),
            None => x.is_some() && *x == t,
        })
        .or_else(|| {
            // The selected task's level is closed: its header.
            let layout = app.layout()?;
            let l = layout.pos.get(t? as usize)?.0;
            rows.iter().position(|(x, y)| *x == l && y.is_none())
        })
        .unwrap_or(0)
}

fn tree_set_cursor(app: &mut App, row: (u32, Option<TaskIdx>)) {
    match row.1 {
        Some(t) => select_task(app, t),
        None => app.tree_level = Some(row.0),
    }
}

fn tree_move(app: &mut App, delta: i64) {
    let rows = tree_rows(app);
    if rows.is_empty() {
        return;
    }
    let i = tree_cursor(app, &rows) as i64;
    let j = (i + delta).clamp(0, rows.len() as i64 - 1) as usize;
    tree_set_cursor(app, rows[j]);
}

fn tree_toggle(app: &mut App) {
    if let Some(l) = app.tree_level
        && !app.tree_open.remove(&l)
    {
        app.tree_open.insert(l);
    }
}

fn tree_left_right(app: &mut App, right: bool) {
    let rows = tree_rows(app);
    let Some(&(level, task)) = rows.get(tree_cursor(app, &rows)) else {
        return;
    };
    match (task, right) {
        (None, true) => {
            if !app.tree_open.insert(level) {
                // Already open: step onto its first task.
                if let Some(&(_, Some(t))) = rows.iter().find(|(l, t)| *l == level && t.is_some()) {
                    select_task(app, t);
                }
            }
        }
        (None, false) => {
            app.tree_open.remove(&level);
        }
        (Some(_), false) => app.tree_level = Some(level),
        (Some(_), true) => {}
    }
}

// ---- logs -------------------------------------------------------------------------------------

/// The log the logs pane should show now.
pub fn wanted_log(app: &App) -> Option<LogKey> {
    let run = app.run()?;
    if app.logs.engine {
        return Some(LogKey {
            run: run.id.clone(),
            task: None,
            attempt: 0,
        });
    }
    let t = app.selected_task()?;
    let attempt = run.tasks.get(t as usize)?.attempts.last()?.number;
    Some(LogKey {
        run: run.id.clone(),
        task: Some(t),
        attempt,
    })
}

fn sync_logs(app: &mut App) {
    let want = wanted_log(app);
    if want == app.logs.key {
        return;
    }
    let logs = &mut app.logs;
    logs.key = want.clone();
    logs.lines.clear();
    logs.first = 0;
    logs.top = 0;
    logs.follow = true;
    logs.stale = false;
    logs.fetching = false;
    if let Some(key) = want {
        logs.fetching = true;
        app.effects.push(Effect::FetchLog { key, since: 0 });
    }
}

fn fetch_more(app: &mut App) {
    let Some(key) = app.logs.key.clone() else {
        return;
    };
    if app.logs.fetching {
        app.logs.stale = true;
        return;
    }
    app.logs.fetching = true;
    let since = app.logs.first + app.logs.lines.len();
    app.effects.push(Effect::FetchLog { key, since });
}

/// Takes a fresh snapshot as the mirror (a remote feed that could not resume), keeping the
/// selection where it can, then reads the shown log again.
fn resync(app: &mut App, state: EngineState) {
    let selected = app.run().map(|r| r.id.clone());
    app.mirror = state;
    app.layouts.retain(|id, _| app.mirror.runs.contains_key(id));
    let ids: Vec<RunId> = app.mirror.runs.keys().cloned().collect();
    for id in ids {
        if !app.layouts.contains_key(&id) {
            app.on_new_run(&id);
        }
    }
    if app.hist_sel.is_none() {
        let i = selected
            .and_then(|id| app.mirror.runs.get_index_of(&id))
            .unwrap_or(0);
        app.run_sel = i.min(app.mirror.runs.len().saturating_sub(1));
    }
    on_log_notice(app, LogNotice::Missed);
}

fn on_log_notice(app: &mut App, n: LogNotice) -> bool {
    let relevant = match (&n, &app.logs.key) {
        (LogNotice::Line(l), Some(k)) => k.matches(l),
        (LogNotice::Missed, Some(_)) => true,
        (_, None) => false,
    };
    if relevant {
        fetch_more(app);
    }
    false
}

fn on_log_lines(app: &mut App, key: LogKey, since: usize, lines: Vec<LogLine>) -> bool {
    if app.logs.key.as_ref() != Some(&key) {
        return false;
    }
    app.logs.fetching = false;
    let expected = app.logs.first + app.logs.lines.len();
    let changed = !lines.is_empty();
    if since == expected {
        if app.logs.lines.is_empty() && since == 0 {
            // Lines before the store's oldest are gone: count from what came back.
            app.logs.first = 0;
        }
        app.logs.lines.extend(lines);
        if app.logs.lines.len() > MAX_LOG_LINES {
            let drop = app.logs.lines.len() - MAX_LOG_LINES;
            app.logs.lines.drain(..drop);
            app.logs.first += drop;
            app.logs.top = app.logs.top.saturating_sub(drop);
        }
    } else {
        app.logs.stale = true;
    }
    if std::mem::take(&mut app.logs.stale) {
        fetch_more(app);
    }
    changed
}

fn log_scroll(app: &mut App, delta: i64) {
    let n = app.logs.lines.len() as i64;
    let view_h = app
        .areas()
        .pane(Pane::Logs)
        .map_or(10, |r| i64::from(r.height.saturating_sub(2)).max(1));
    let last_top = (n - view_h).max(0);
    let top = if app.logs.follow {
        last_top
    } else {
        app.logs.top as i64
    };
    let new = (top + delta).clamp(0, last_top);
    if delta > 0 && new >= last_top {
        app.logs.follow = true;
    } else if delta < 0 || new < last_top {
        app.logs.follow = false;
    }
    app.logs.top = new as usize;
}

fn jump_to_match(app: &mut App, dir: i64, from_current: bool) {
    let Some(needle) = app.logs.search.as_ref().map(|s| s.to_lowercase()) else {
        app.say("no search (press / in the logs)", Level::Info);
        return;
    };
    let n = app.logs.lines.len();
    if n == 0 {
        return;
    }
    let view_h = app
        .areas()
        .pane(Pane::Logs)
        .map_or(10, |r| usize::from(r.height.saturating_sub(2)).max(1));
    let cur = if app.logs.follow {
        n.saturating_sub(view_h)
    } else {
        app.logs.top
    };
    let start = if from_current {
        cur as i64 - dir
    } else {
        cur as i64
    };
    let mut i = start;
    for _ in 0..n {
        i = (i + dir).rem_euclid(n as i64);
        if app.logs.lines[i as usize]
            .line
            .to_lowercase()
            .contains(&needle)
        {
            app.logs.follow = false;
            app.logs.top = i as usize;
            return;
        }
    }
    app.say(format!("`{needle}` not found"), Level::Info);
}

// ---- mouse ------------------------------------------------------------------------------------

fn on_mouse(app: &mut App, m: MouseEvent) -> bool {
    let areas = app.areas();
    let Some(pane) = areas.pane_at(m.column, m.row) else {
        return false;
    };
    match m.kind {
        MouseEventKind::Down(MouseButton::Left) => {
            set_focus(app, pane);
            if pane == Pane::Runs {
                if let Some(i) = layout::runs_row_at(app, m.row) {
                    history::select_row(app, i);
                }
            } else if pane == Pane::Graph && !app.tree {
                click_graph(app, m.column, m.row);
            }
            true
        }
        MouseEventKind::ScrollUp | MouseEventKind::ScrollDown => {
            let prev = app.focus;
            app.focus = pane;
            let a = if m.kind == MouseEventKind::ScrollUp {
                Action::Up
            } else {
                Action::Down
            };
            if pane == Pane::Graph && !app.tree {
                perform(
                    app,
                    if a == Action::Up {
                        Action::PanUp
                    } else {
                        Action::PanDown
                    },
                );
            } else {
                move_in_pane(app, a);
                if pane == Pane::Logs {
                    move_in_pane(app, a);
                    move_in_pane(app, a);
                }
            }
            app.focus = prev;
            true
        }
        _ => false,
    }
}

fn click_graph(app: &mut App, col: u16, row: u16) {
    let inner = app.areas().graph_inner();
    let Some(layout) = app.layout() else { return };
    let x = app.graph_offset.0 + u32::from(col.saturating_sub(inner.x));
    let y = app.graph_offset.1 + u32::from(row.saturating_sub(inner.y));
    let hit = if app.graph_zoom == Zoom::Overview {
        let b = layout.buckets(u32::from(inner.width), u32::from(inner.height));
        layout.task_in_bucket(b, x, y)
    } else {
        layout.task_at(app.graph_zoom, x, y)
    };
    if let Some(t) = hit {
        select_task(app, t);
    }
}
