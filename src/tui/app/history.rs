//! The runs list's history: past runs from the store below the live ones, a past run opened
//! read-only, resuming an interrupted run and re-running a past one. Reading the store is the
//! loop's work (`Effect::LoadHistory`, `OpenPast`, `Resume`, `Rerun`); this is the state side.

use std::sync::Arc;

use super::{
    App, Confirm, Effect, Level, OnYes, Overlay, keep_selection_visible, select_run, set_focus,
};
use crate::engine::Recovered;
use crate::history::{HistoryEntry, PastRun};
use crate::model::{RunId, TaskState};
use crate::tui::dag_layout::DagLayout;
use crate::tui::keymap::{Action, Pane};

use super::AgentState;

pub(super) fn on_history(app: &mut App, r: Result<Vec<HistoryEntry>, String>) -> bool {
    let keep = app.past_entry().map(|h| h.id.clone());
    match r {
        Err(e) => {
            app.history.clear();
            app.history_off = Some(e);
        }
        Ok(rows) => {
            app.history_off = None;
            app.history = rows
                .into_iter()
                .filter(|h| {
                    !app.mirror.runs.contains_key(&h.id) && !app.resuming.contains_key(&h.id)
                })
                .collect();
        }
    }
    // The cursor stays on the same run; on a run that left the history, back to the live list.
    app.hist_sel = keep.and_then(|id| app.history.iter().position(|h| h.id == id));
    if !app.history_noticed {
        app.history_noticed = true;
        // Nothing live (`taskdeck console`): the history is what there is to look at.
        if app.mirror.runs.is_empty() && !app.history.is_empty() {
            select_past(app, 0);
            set_focus(app, Pane::Runs);
        }
        announce_interrupted(app);
    }
    true
}

/// When the console opens: name the interrupted runs and say how to resume them; with nothing
/// live, put the cursor on the newest so `R` is one key away.
fn announce_interrupted(app: &mut App) {
    let found: Vec<(usize, &HistoryEntry)> = app
        .history
        .iter()
        .enumerate()
        .filter(|(_, h)| h.interrupted())
        .collect();
    let Some(&(first, newest)) = found.first() else {
        return;
    };
    // With nothing live the cursor goes to the run, so its key is enough. The key comes first:
    // a narrow status line cuts the end.
    let how = if app.mirror.runs.is_empty() {
        format!("{} resumes", app.keymap.key_of(Action::ResumeRun))
    } else {
        ":resume RUN resumes".into()
    };
    let text = match found.as_slice() {
        [_] => format!("{how} interrupted run {} ({})", newest.id, newest.workflow),
        many => {
            let names: Vec<String> = many
                .iter()
                .take(3)
                .map(|(_, h)| format!("{} ({})", h.id, h.workflow))
                .collect();
            let more = if many.len() > 3 { ", …" } else { "" };
            format!(
                "{how} one of {} interrupted runs: {}{more}",
                many.len(),
                names.join(", ")
            )
        }
    };
    app.say(text, Level::Warning);
    if app.mirror.runs.is_empty() {
        select_past(app, first);
        set_focus(app, Pane::Runs);
    }
}

/// Puts the runs list's cursor on history row `h`.
pub(super) fn select_past(app: &mut App, h: usize) {
    if h >= app.history.len() {
        return;
    }
    if app.hist_sel != Some(h) {
        app.tree_open.clear();
        app.tree_level = None;
        app.detail_scroll = 0;
    }
    app.hist_sel = Some(h);
    keep_selection_visible(app);
}

/// Moves the runs list's cursor to row `i` of live runs followed by history.
pub(super) fn select_row(app: &mut App, i: usize) {
    let live = app.mirror.runs.len();
    if i < live {
        select_run(app, i);
    } else {
        select_past(app, i - live);
    }
}

/// The cursor's row among live runs followed by history.
pub fn cursor_row(app: &App) -> usize {
    app.hist_sel
        .map_or(app.run_sel, |h| app.mirror.runs.len() + h)
}

/// Enter on a history row: show the run, reading it from the store the first time.
pub(super) fn open_past(app: &mut App) {
    let Some(h) = app.past_entry() else { return };
    let id = h.id.clone();
    if app.run().is_some() {
        set_focus(app, Pane::Graph);
    } else if app.opening.as_ref() == Some(&id) {
        app.say(format!("still reading run {id}…"), Level::Info);
    } else {
        app.opening = Some(id.clone());
        app.effects.push(Effect::OpenPast(id.clone()));
        app.say(format!("reading run {id} from the journal…"), Level::Info);
    }
}

pub(super) fn on_past_opened(
    app: &mut App,
    id: RunId,
    result: Result<(PastRun, Arc<DagLayout>), String>,
) -> bool {
    if app.opening.as_ref() == Some(&id) {
        app.opening = None;
    }
    let (past, layout) = match result {
        Ok(r) => r,
        Err(e) => {
            app.say(format!("cannot open run {id}: {e}"), Level::Error);
            return true;
        }
    };
    if let Some(old) = app.past.take()
        && old.id != id
    {
        app.layouts.remove(&old.id);
        app.task_sel.remove(&old.id);
    }
    // Start where the story is: the first failed task, else the first task.
    let run = &past.run;
    let failed =
        (0..run.tasks.len() as u32).find(|t| run.tasks[*t as usize].state == TaskState::Failed);
    let first = failed.or_else(|| layout.levels.first().and_then(|l| l.first()).copied());
    if let Some(t) = first {
        app.task_sel.entry(id.clone()).or_insert(t);
    }
    app.layouts.insert(id.clone(), layout);
    app.past = Some(past.run);
    if app.past_entry().is_some_and(|h| h.id == id) {
        set_focus(app, Pane::Graph);
        keep_selection_visible(app);
        let mut text = format!("opened read-only: {}", next_step(app));
        if past.damaged > 0 {
            text.push_str(&format!(
                " · the journal's last {} events could not be read",
                past.damaged
            ));
        }
        app.say(text, Level::Info);
    }
    true
}

/// What can be done with the past run under the cursor.
fn next_step(app: &App) -> String {
    match app.past_entry() {
        Some(h) if h.interrupted() => format!(
            "{} in the runs list resumes it",
            app.keymap.key_of(Action::ResumeRun)
        ),
        Some(_) => ":rerun starts it again".into(),
        None => String::new(),
    }
}

/// Operator keys on a past run: say why not and what instead.
pub(super) fn refuse_read_only(app: &mut App) {
    if app.past_entry().is_none() {
        return;
    }
    let text = format!("this run is history, read-only: {}", next_step(app));
    app.say(text, Level::Info);
}

/// `R` in the runs list, or `:resume RUN`: asks before taking the run over.
pub(super) fn ask_resume(app: &mut App, id: Option<RunId>) {
    let entry = match &id {
        Some(id) => app.history.iter().find(|h| &h.id == id),
        None => app.past_entry(),
    };
    let Some(h) = entry else {
        let text = match id {
            Some(id) if app.mirror.runs.contains_key(&id) => {
                format!("run {id} is already live in this console")
            }
            Some(id) => format!("no run {id} in the history"),
            None => "select an interrupted run in the history to resume it (:history)".into(),
        };
        app.say(text, Level::Info);
        return;
    };
    if !h.interrupted() {
        let text = if h.state == "running" || h.state == "paused" {
            format!(
                "run {} is still being executed by another process: stop that first",
                h.id
            )
        } else {
            format!(
                "run {} has {}: only an interrupted run can be resumed · :rerun {} starts it again",
                h.id, h.state, h.id
            )
        };
        app.say(text, Level::Info);
        return;
    }
    let question = format!(
        "Resume run {} ({})? It goes on in this console: {} of {} tasks had finished; attempts cut short start again.",
        h.id,
        h.workflow,
        h.done(),
        h.tasks
    );
    app.overlay = Overlay::Confirm(Confirm {
        question,
        on_yes: OnYes::Resume(h.id.clone()),
    });
}

/// The confirm dialog said yes.
pub(super) fn start_resume(app: &mut App, id: RunId) {
    app.resuming.insert(id.clone(), Vec::new());
    app.effects.push(Effect::Resume(id.clone()));
    app.say(format!("resuming run {id}…"), Level::Info);
}

pub(super) fn on_resumed(
    app: &mut App,
    id: RunId,
    result: Result<(Recovered, Vec<String>), String>,
) -> bool {
    let held = app.resuming.remove(&id).unwrap_or_default();
    let (rec, warnings) = match result {
        Ok(r) => r,
        Err(e) => {
            app.say(format!("cannot resume run {id}: {e}"), Level::Error);
            return true;
        }
    };
    // The engine's copy at `at_seq`, then what the feed brought since.
    let last = app.mirror.last_seq;
    for (name, spec) in &rec.state.workflow.agents {
        let key: Arc<str> = name.as_str().into();
        if !app.mirror.agents.contains_key(&key) {
            app.mirror
                .agents
                .insert(key.clone(), AgentState::new(key, spec.clone()));
        }
    }
    app.mirror.runs.insert(id.clone(), *rec.state);
    for ev in held.iter().filter(|e| e.seq > rec.at_seq) {
        app.mirror.apply(ev);
    }
    app.mirror.last_seq = app.mirror.last_seq.max(last);
    // It is live now: out of the history, into the live list under the cursor.
    app.history.retain(|h| h.id != id);
    if app.past.as_ref().is_some_and(|p| p.id == id) {
        app.past = None;
    }
    app.layouts.remove(&id);
    app.on_new_run(&id);
    app.own_runs.push(id.clone());
    app.hist_sel = None;
    if let Some(i) = app.mirror.runs.get_index_of(&id) {
        select_run(app, i);
    }
    let mut text = format!(
        "resumed run {id}: {} of {} tasks had finished",
        rec.finished, rec.tasks
    );
    if !rec.interrupted.is_empty() {
        text.push_str(&format!("; running again: {}", rec.interrupted.join(", ")));
    }
    let level = if warnings.is_empty() {
        Level::Success
    } else {
        text.push_str(" · ");
        text.push_str(&warnings.join("; "));
        Level::Warning
    };
    app.say(text, level);
    true
}

/// A run id from the palette: exact, or a unique prefix, among past and live runs.
pub(super) fn find_run(app: &App, wanted: &str) -> Result<Option<RunId>, String> {
    let ids = app
        .history
        .iter()
        .map(|h| &h.id)
        .chain(app.mirror.runs.keys());
    let mut found: Vec<&RunId> = Vec::new();
    for id in ids {
        if id.as_str() == wanted {
            return Ok(Some(id.clone()));
        }
        if id.as_str().starts_with(wanted) {
            found.push(id);
        }
    }
    match found.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some((*one).clone())),
        many => Err(format!(
            "`{wanted}` matches {} runs: give more of the id",
            many.len()
        )),
    }
}

/// `:rerun RUN`: a new run of exactly the workflow version `id` used.
pub(super) fn rerun(app: &mut App, id: RunId) {
    app.say(
        format!("starting a new run of the workflow run {id} used…"),
        Level::Info,
    );
    app.effects.push(Effect::Rerun(id));
}

/// `:history`: the cursor to the history (read again from the store).
pub(super) fn focus_history(app: &mut App) {
    if let Some(why) = app.history_off.clone() {
        app.say(why, Level::Info);
        return;
    }
    set_focus(app, Pane::Runs);
    if app.history.is_empty() {
        app.say("no past runs in the store yet", Level::Info);
    } else if app.hist_sel.is_none() {
        select_past(app, 0);
    }
    app.effects.push(Effect::LoadHistory);
}
