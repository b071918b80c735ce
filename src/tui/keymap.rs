//! Keys as data. One table lists every action with its default keys, the panes it works in and
//! what it does; dispatch, the help screen and the status-bar hints all read the same table, so
//! they cannot disagree. The config file (`[ui.keys]`) rebinds actions; a bad entry is a message.

use std::fmt;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use indexmap::IndexMap;

/// The panes a key may be limited to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pane {
    Runs,
    Graph,
    Detail,
    Logs,
    Agents,
    Gates,
}

impl Pane {
    pub const ALL: [Pane; 6] = [
        Pane::Runs,
        Pane::Graph,
        Pane::Detail,
        Pane::Logs,
        Pane::Agents,
        Pane::Gates,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Pane::Runs => "Runs",
            Pane::Graph => "Graph",
            Pane::Detail => "Task",
            Pane::Logs => "Logs",
            Pane::Agents => "Agents",
            Pane::Gates => "Gates",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Copy,
    Export,
    ToggleMouse,
    Quit,
    Help,
    Palette,
    FocusNext,
    FocusPrev,
    Open,
    Back,
    Up,
    Down,
    Left,
    Right,
    PageUp,
    PageDown,
    Top,
    Bottom,
    PanLeft,
    PanRight,
    PanUp,
    PanDown,
    ZoomIn,
    ZoomOut,
    ToggleTree,
    Filter,
    PauseResume,
    Retry,
    Rerun,
    ResumeRun,
    Cancel,
    Approve,
    Follow,
    Search,
    NextMatch,
    PrevMatch,
    Wrap,
    Timestamps,
    EngineLog,
}

/// Where an action works: everywhere, or only in some panes.
#[derive(Debug, Clone, Copy)]
pub enum Scope {
    Global,
    In(&'static [Pane]),
}

impl Scope {
    pub fn contains(self, p: Pane) -> bool {
        match self {
            Scope::Global => true,
            Scope::In(ps) => ps.contains(&p),
        }
    }
}

pub struct Entry {
    pub action: Action,
    /// Name used in the config file.
    pub name: &'static str,
    pub keys: &'static [&'static str],
    pub scope: Scope,
    pub help: &'static str,
    /// Shown in the status bar's hints.
    pub hint: Option<&'static str>,
}

const TASKS: &[Pane] = &[Pane::Graph, Pane::Detail, Pane::Logs, Pane::Gates];
const OPERATE: &[Pane] = &[
    Pane::Runs,
    Pane::Graph,
    Pane::Detail,
    Pane::Logs,
    Pane::Gates,
];
const LOGS: &[Pane] = &[Pane::Logs];
const OPENABLE: &[Pane] = &[Pane::Runs, Pane::Graph, Pane::Detail];
const GRAPH: &[Pane] = &[Pane::Graph];
const RUNS: &[Pane] = &[Pane::Runs];
const FILTERABLE: &[Pane] = &[
    Pane::Runs,
    Pane::Graph,
    Pane::Detail,
    Pane::Gates,
    Pane::Agents,
];

/// Every action, in help order.
pub const TABLE: &[Entry] = &[
    Entry {
        action: Action::Help,
        name: "help",
        keys: &["?"],
        scope: Scope::Global,
        help: "show this help",
        hint: Some("help"),
    },
    Entry {
        action: Action::Quit,
        name: "quit",
        keys: &["q", "ctrl-c"],
        scope: Scope::Global,
        help: "quit (asks first while runs are going)",
        hint: Some("quit"),
    },
    Entry {
        action: Action::Palette,
        name: "palette",
        keys: &[":"],
        scope: Scope::Global,
        help: "command palette (:retry build, :theme light, :run FILE)",
        hint: Some("cmd"),
    },
    Entry {
        action: Action::FocusNext,
        name: "focus_next",
        keys: &["tab"],
        scope: Scope::Global,
        help: "focus the next pane",
        hint: None,
    },
    Entry {
        action: Action::FocusPrev,
        name: "focus_prev",
        keys: &["shift-tab"],
        scope: Scope::Global,
        help: "focus the previous pane",
        hint: None,
    },
    Entry {
        action: Action::Open,
        name: "open",
        keys: &["enter"],
        scope: Scope::In(OPENABLE),
        help: "open: run -> graph (past: read-only), task -> details -> log",
        hint: Some("open"),
    },
    Entry {
        action: Action::Back,
        name: "back",
        keys: &["esc"],
        scope: Scope::Global,
        help: "back: close a dialog, clear a filter, leave a pane",
        hint: None,
    },
    Entry {
        action: Action::Up,
        name: "up",
        keys: &["up", "k"],
        scope: Scope::Global,
        help: "move up",
        hint: None,
    },
    Entry {
        action: Action::Down,
        name: "down",
        keys: &["down", "j"],
        scope: Scope::Global,
        help: "move down",
        hint: None,
    },
    Entry {
        action: Action::Left,
        name: "left",
        keys: &["left", "h"],
        scope: Scope::In(GRAPH),
        help: "previous level",
        hint: None,
    },
    Entry {
        action: Action::Right,
        name: "right",
        keys: &["right", "l"],
        scope: Scope::In(GRAPH),
        help: "next level",
        hint: None,
    },
    Entry {
        action: Action::PageUp,
        name: "page_up",
        keys: &["pageup", "ctrl-u"],
        scope: Scope::Global,
        help: "page up",
        hint: None,
    },
    Entry {
        action: Action::PageDown,
        name: "page_down",
        keys: &["pagedown", "ctrl-d"],
        scope: Scope::Global,
        help: "page down",
        hint: None,
    },
    Entry {
        action: Action::Top,
        name: "top",
        keys: &["home", "g"],
        scope: Scope::Global,
        help: "first item / top",
        hint: None,
    },
    Entry {
        action: Action::Bottom,
        name: "bottom",
        keys: &["end", "G"],
        scope: Scope::Global,
        help: "last item / bottom (logs: follow again)",
        hint: None,
    },
    Entry {
        action: Action::PanLeft,
        name: "pan_left",
        keys: &["H", "shift-left"],
        scope: Scope::In(GRAPH),
        help: "pan the graph left",
        hint: None,
    },
    Entry {
        action: Action::PanRight,
        name: "pan_right",
        keys: &["L", "shift-right"],
        scope: Scope::In(GRAPH),
        help: "pan the graph right",
        hint: None,
    },
    Entry {
        action: Action::PanUp,
        name: "pan_up",
        keys: &["K", "shift-up"],
        scope: Scope::In(GRAPH),
        help: "pan the graph up",
        hint: None,
    },
    Entry {
        action: Action::PanDown,
        name: "pan_down",
        keys: &["J", "shift-down"],
        scope: Scope::In(GRAPH),
        help: "pan the graph down",
        hint: None,
    },
    Entry {
        action: Action::ZoomIn,
        name: "zoom_in",
        keys: &["+", "="],
        scope: Scope::In(GRAPH),
        help: "zoom the graph in: overview -> dots -> one-line boxes -> boxes",
        hint: Some("zoom"),
    },
    Entry {
        action: Action::ZoomOut,
        name: "zoom_out",
        keys: &["-"],
        scope: Scope::In(GRAPH),
        help: "zoom the graph out, down to an overview of the whole graph",
        hint: Some("zoom"),
    },
    Entry {
        action: Action::ToggleTree,
        name: "toggle_tree",
        keys: &["t"],
        scope: Scope::In(GRAPH),
        help: "switch between graph and tree",
        hint: Some("tree"),
    },
    Entry {
        action: Action::Filter,
        name: "filter",
        keys: &["/"],
        scope: Scope::In(FILTERABLE),
        help: "filter tasks by name or state",
        hint: Some("filter"),
    },
    Entry {
        action: Action::PauseResume,
        name: "pause",
        keys: &["p"],
        scope: Scope::In(OPERATE),
        help: "pause/resume the task (the run in the runs list)",
        hint: Some("pause"),
    },
    Entry {
        action: Action::Retry,
        name: "retry",
        keys: &["r"],
        scope: Scope::In(TASKS),
        help: "retry the failed task",
        hint: Some("retry"),
    },
    Entry {
        action: Action::Rerun,
        name: "rerun",
        keys: &["R"],
        scope: Scope::In(TASKS),
        help: "re-run from this task (it and everything downstream)",
        hint: Some("rerun"),
    },
    Entry {
        action: Action::ResumeRun,
        name: "resume_run",
        keys: &["R"],
        scope: Scope::In(RUNS),
        help: "resume an interrupted run in this console (asks first)",
        hint: Some("resume"),
    },
    Entry {
        action: Action::Cancel,
        name: "cancel",
        keys: &["c"],
        scope: Scope::In(OPERATE),
        help: "cancel the task (the run in the runs list), after a confirmation",
        hint: Some("cancel"),
    },
    Entry {
        action: Action::Approve,
        name: "approve",
        keys: &["a"],
        scope: Scope::In(TASKS),
        help: "approve the task waiting for approval",
        hint: Some("approve"),
    },
    Entry {
        action: Action::Follow,
        name: "follow",
        keys: &["f"],
        scope: Scope::In(LOGS),
        help: "follow the log again",
        hint: Some("follow"),
    },
    Entry {
        action: Action::Search,
        name: "search",
        keys: &["/"],
        scope: Scope::In(LOGS),
        help: "search the log",
        hint: Some("search"),
    },
    Entry {
        action: Action::NextMatch,
        name: "next_match",
        keys: &["n"],
        scope: Scope::In(LOGS),
        help: "next match",
        hint: None,
    },
    Entry {
        action: Action::PrevMatch,
        name: "prev_match",
        keys: &["N"],
        scope: Scope::In(LOGS),
        help: "previous match",
        hint: None,
    },
    Entry {
        action: Action::Wrap,
        name: "wrap",
        keys: &["w"],
        scope: Scope::In(LOGS),
        help: "wrap long lines on/off",
        hint: Some("wrap"),
    },
    Entry {
        action: Action::Timestamps,
        name: "timestamps",
        keys: &["T"],
        scope: Scope::In(LOGS),
        help: "timestamps on/off",
        hint: Some("time"),
    },
    Entry {
        action: Action::Copy,
        name: "copy",
        keys: &["y"],
        scope: Scope::In(LOGS),
        help: "copy the log lines held in memory to the clipboard (OSC 52)",
        hint: Some("copy"),
    },
    Entry {
        action: Action::Export,
        name: "export",
        keys: &["s"],
        scope: Scope::In(LOGS),
        help: "save the log to a file in the current directory",
        hint: None,
    },
    Entry {
        action: Action::ToggleMouse,
        name: "mouse",
        keys: &["m"],
        scope: Scope::Global,
        help: "release the mouse for the terminal's own selection (press again to take it back)",
        hint: None,
    },
    Entry {
        action: Action::EngineLog,
        name: "engine_log",
        keys: &["e"],
        scope: Scope::In(LOGS),
        help: "switch between the task's log and the engine log",
        hint: Some("engine"),
    },
];

/// The status bar's hint order: what an operator reaches for most comes first.
const HINT_ORDER: &[Action] = &[
    Action::Follow,
    Action::Search,
    Action::Open,
    Action::ResumeRun,
    Action::PauseResume,
    Action::Retry,
    Action::Approve,
    Action::Cancel,
    Action::Filter,
    Action::ZoomIn,
    Action::ZoomOut,
    Action::ToggleTree,
    Action::Rerun,
    Action::Wrap,
    Action::Timestamps,
    Action::Copy,
    Action::EngineLog,
    Action::Palette,
    Action::Quit,
    Action::Help,
];

/// A key with its modifiers, as written in the config file (`ctrl-c`, `shift-tab`, `R`, `f5`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    pub code: KeyCode,
    pub ctrl: bool,
    pub alt: bool,
    pub shift: bool,
}

impl Key {
    pub fn from_event(ev: &KeyEvent) -> Key {
        let mut shift = ev.modifiers.contains(KeyModifiers::SHIFT);
        let code = match ev.code {
            // Characters carry their shift already (`R`, `?`); BackTab is shift-tab.
            KeyCode::Char(c) => {
                shift = false;
                KeyCode::Char(c)
            }
            KeyCode::BackTab => {
                shift = true;
                KeyCode::Tab
            }
            other => other,
        };
        Key {
            code,
            ctrl: ev.modifiers.contains(KeyModifiers::CONTROL),
            alt: ev.modifiers.contains(KeyModifiers::ALT),
            shift,
        }
    }

    pub fn parse(s: &str) -> Result<Key, String> {
        let mut key = Key {
            code: KeyCode::Null,
            ctrl: false,
            alt: false,
            shift: false,
        };
        let mut rest = s;
        loop {
            let lower = rest.to_ascii_lowercase();
            if lower.len() > 1 && lower.starts_with("ctrl-") {
                key.ctrl = true;
                rest = &rest[5..];
            } else if lower.len() > 1 && lower.starts_with("alt-") {
                key.alt = true;
                rest = &rest[4..];
            } else if lower.len() > 1 && lower.starts_with("shift-") {
                key.shift = true;
                rest = &rest[6..];
            } else {
                break;
            }
        }
        let mut chars = rest.chars();
        key.code = match (chars.next(), chars.next()) {
            (Some(c), None) => KeyCode::Char(if key.ctrl { c.to_ascii_lowercase() } else { c }),
            _ => match rest.to_ascii_lowercase().as_str() {
                "enter" | "return" => KeyCode::Enter,
                "esc" | "escape" => KeyCode::Esc,
                "tab" => KeyCode::Tab,
                "backspace" => KeyCode::Backspace,
                "space" => KeyCode::Char(' '),
                "up" => KeyCode::Up,
                "down" => KeyCode::Down,
                "left" => KeyCode::Left,
                "right" => KeyCode::Right,
                "home" => KeyCode::Home,
                "end" => KeyCode::End,
                "pageup" | "pgup" => KeyCode::PageUp,
                "pagedown" | "pgdn" => KeyCode::PageDown,
                "delete" | "del" => KeyCode::Delete,
                "insert" | "ins" => KeyCode::Insert,
                f if f.starts_with('f') && f.len() > 1 => match f[1..].parse::<u8>() {
                    Ok(n) if (1..=24).contains(&n) => KeyCode::F(n),
                    _ => return Err(format!("`{s}` is not a key")),
                },
                _ => {
                    return Err(format!(
                        "`{s}` is not a key (try `x`, `ctrl-x`, `F5`, `enter`, `pageup`)"
                    ));
                }
            },
        };
        Ok(key)
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ctrl {
            f.write_str("ctrl-")?;
        }
        if self.alt {
            f.write_str("alt-")?;
        }
        if self.shift {
            f.write_str("shift-")?;
        }
        match self.code {
            KeyCode::Char(' ') => f.write_str("space"),
            KeyCode::Char(c) => write!(f, "{c}"),
            KeyCode::Enter => f.write_str("enter"),
            KeyCode::Esc => f.write_str("esc"),
            KeyCode::Tab => f.write_str("tab"),
            KeyCode::Backspace => f.write_str("backspace"),
            KeyCode::Up => f.write_str("↑"),
            KeyCode::Down => f.write_str("↓"),
            KeyCode::Left => f.write_str("←"),
            KeyCode::Right => f.write_str("→"),
            KeyCode::Home => f.write_str("home"),
            KeyCode::End => f.write_str("end"),
            KeyCode::PageUp => f.write_str("pgup"),
            KeyCode::PageDown => f.write_str("pgdn"),
            KeyCode::Delete => f.write_str("del"),
            KeyCode::Insert => f.write_str("ins"),
            KeyCode::F(n) => write!(f, "F{n}"),
            _ => f.write_str("?"),
        }
    }
}

/// The effective bindings: the table's defaults with the user's rebindings applied.
#[derive(Debug, Clone)]
pub struct Keymap {
    /// Per table entry (same index), its keys.
    keys: Vec<Vec<Key>>,
}

impl Default for Keymap {
    fn default() -> Self {
        Keymap {
            keys: TABLE
                .iter()
                .map(|e| e.keys.iter().filter_map(|k| Key::parse(k).ok()).collect())
                .collect(),
        }
    }
}

impl Keymap {
    /// Defaults with `overrides` (action name -> key or keys) applied. Bad entries are skipped
    /// and reported, one message each.
    pub fn with_overrides(overrides: &IndexMap<String, Vec<String>>) -> (Keymap, Vec<String>) {
        let mut map = Keymap::default();
        let mut errors = Vec::new();
        for (name, keys) in overrides {
            let Some(i) = TABLE.iter().position(|e| e.name == name) else {
                errors.push(format!("[ui.keys]: no action `{name}`"));
                continue;
            };
            let mut parsed = Vec::new();
            for k in keys {
                match Key::parse(k) {
                    Ok(k) => parsed.push(k),
                    Err(e) => errors.push(format!("[ui.keys] {name}: {e}")),
                }
            }
            if !parsed.is_empty() {
                map.keys[i] = parsed;
            }
        }
        (map, errors)
    }

    /// The action `key` triggers in `pane`, if any.
    pub fn action(&self, pane: Pane, key: Key) -> Option<Action> {
        TABLE
            .iter()
            .zip(&self.keys)
            .find(|(e, keys)| e.scope.contains(pane) && keys.contains(&key))
            .map(|(e, _)| e.action)
    }

    /// Every entry with its effective keys, for the help screen.
    pub fn entries(&self) -> impl Iterator<Item = (&'static Entry, &[Key])> {
        TABLE.iter().zip(self.keys.iter().map(Vec::as_slice))
    }

    /// The first key of `action` as text (for dialogs and hints), or `""` when unbound.
    pub fn key_of(&self, action: Action) -> String {
        self.entries()
            .find(|(e, _)| e.action == action)
            .and_then(|(_, k)| k.first())
            .map(|k| k.to_string())
            .unwrap_or_default()
    }

    /// (key, hint) pairs for the status bar in `pane`, most useful first (`HINT_ORDER`), so a
    /// narrow bar can keep a prefix. Neighbours with the same hint share it (`+/- zoom`).
    pub fn hints(&self, pane: Pane) -> Vec<(String, &'static str)> {
        let mut out: Vec<(String, &'static str)> = Vec::new();
        let rank = |a: Action| {
            HINT_ORDER
                .iter()
                .position(|x| *x == a)
                .unwrap_or(usize::MAX)
        };
        let mut pairs: Vec<(usize, String, &'static str)> = self
            .entries()
            .filter(|(e, _)| e.scope.contains(pane))
            .filter_map(|(e, k)| Some((rank(e.action), k.first()?.to_string(), e.hint?)))
            .collect();
        pairs.sort_by_key(|p| p.0);
        for (_, key, hint) in pairs {
            match out.last_mut() {
                Some((keys, last)) if *last == hint => {
                    keys.push('/');
                    keys.push_str(&key);
                }
                _ => out.push((key, hint)),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(code: KeyCode, m: KeyModifiers) -> Key {
        Key::from_event(&KeyEvent::new(code, m))
    }

    #[test]
    fn keys_parse_like_terminal_events() {
        assert_eq!(
            Key::parse("R").unwrap(),
            ev(KeyCode::Char('R'), KeyModifiers::SHIFT)
        );
        assert_eq!(
            Key::parse("ctrl-c").unwrap(),
            ev(KeyCode::Char('c'), KeyModifiers::CONTROL)
        );
        assert_eq!(
            Key::parse("shift-tab").unwrap(),
            ev(KeyCode::BackTab, KeyModifiers::SHIFT)
        );
        assert_eq!(
            Key::parse("F5").unwrap(),
            ev(KeyCode::F(5), KeyModifiers::NONE)
        );
        assert_eq!(
            Key::parse("?").unwrap(),
            ev(KeyCode::Char('?'), KeyModifiers::SHIFT)
        );
        assert!(Key::parse("-").is_ok());
        assert!(Key::parse("ctrl-").is_err());
        assert!(Key::parse("hyper-x").is_err());
        assert!(Key::parse("F99").is_err());
    }

    #[test]
    fn same_key_means_different_actions_in_different_panes() {
        let k = Keymap::default();
        let slash = Key::parse("/").unwrap();
        assert_eq!(k.action(Pane::Graph, slash), Some(Action::Filter));
        assert_eq!(k.action(Pane::Logs, slash), Some(Action::Search));
        assert_eq!(k.action(Pane::Agents, Key::parse("r").unwrap()), None);
    }

    #[test]
    fn every_key_is_unambiguous_in_every_pane() {
        let k = Keymap::default();
        for pane in Pane::ALL {
            let mut seen = std::collections::HashMap::new();
            for (e, keys) in k.entries().filter(|(e, _)| e.scope.contains(pane)) {
                for key in keys {
                    if let Some(other) = seen.insert(*key, e.name) {
                        panic!("{key} is both {other} and {} in {pane:?}", e.name);
                    }
                }
            }
        }
    }

    #[test]
    fn rebinding_changes_dispatch_and_bad_entries_are_messages() {
        let mut o = IndexMap::new();
        o.insert("retry".to_string(), vec!["x".to_string()]);
        o.insert("retyr".to_string(), vec!["y".to_string()]);
        o.insert("approve".to_string(), vec!["hyper-a".to_string()]);
        let (k, errors) = Keymap::with_overrides(&o);
        assert_eq!(
            k.action(Pane::Graph, Key::parse("x").unwrap()),
            Some(Action::Retry)
        );
        assert_eq!(k.action(Pane::Graph, Key::parse("r").unwrap()), None);
        // The bad binding left the default in place.
        assert_eq!(
            k.action(Pane::Graph, Key::parse("a").unwrap()),
            Some(Action::Approve)
        );
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].contains("retyr"));
    }
}
