//! Past runs as a console sees them: the rows of the history list, a run rebuilt by folding its
//! journaled events, and the lines of a log file read back. Pure: no store, no terminal, so the
//! CLI, the local console and a later remote one share it and tests reach it directly.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::engine::state::{EngineState, Limits, Run};
use crate::model::{Event, EventKind, LogLine, LogStream, Millis, RunId, TaskIdx};
use crate::store::RunRecord;

/// One run of the history list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryEntry {
    pub id: RunId,
    pub workflow: String,
    /// 1 for the first version of this workflow name the store saw, 2 for the next, ...
    pub version_no: u32,
    /// As people should read it: `interrupted` for an unfinished run nobody executes.
    pub state: String,
    pub submitted_at: Millis,
    pub finished_at: Option<Millis>,
    pub tasks: u32,
    /// Tasks per state name (only states with at least one task).
    pub counts: BTreeMap<String, u32>,
}

impl HistoryEntry {
    pub fn of(r: &RunRecord, now: Millis) -> HistoryEntry {
        HistoryEntry {
            id: r.row.id.clone(),
            workflow: r.row.workflow.clone(),
            version_no: r.version_no,
            state: r.display_state(now).to_string(),
            submitted_at: r.row.submitted_at,
            finished_at: r.row.finished_at,
            tasks: r.row.tasks,
            counts: r.row.counts.clone(),
        }
    }

    /// The process running it died: `resume` can take it over.
    pub fn interrupted(&self) -> bool {
        self.state == "interrupted"
    }

    /// Tasks that ended one way or another.
    pub fn done(&self) -> u32 {
        ["succeeded", "failed", "skipped", "cancelled", "blocked"]
            .iter()
            .filter_map(|s| self.counts.get(*s))
            .sum()
    }

    /// How long it took; `None` while unfinished (an interrupted run has no end).
    pub fn took(&self) -> Option<Millis> {
        self.finished_at
            .map(|f| f.saturating_sub(self.submitted_at))
    }
}

/// `YYYY-MM-DD HH:MM` in local time (UTC if it cannot be told).
pub fn local_datetime(ts: Millis) -> String {
    let secs = (ts / 1000) as libc::time_t;
    // SAFETY: localtime_r writes only into the `tm` we own; a zeroed tm is a valid value.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    if unsafe { libc::localtime_r(&secs, &mut tm) }.is_null() {
        let (y, mo, d, h, mi, _) = crate::model::civil_from_unix(secs);
        return format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}");
    }
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min
    )
}

/// A past run rebuilt from the journal, for reading only.
#[derive(Debug, Clone)]
pub struct PastRun {
    pub run: Box<Run>,
    /// Events at the journal's end that could not be decoded (the fold stops at the first).
    pub damaged: usize,
}

/// Folds a run's journaled events into its state, as any client would. `None` when they do not
/// begin with the run's submission. A `None` event is one that could not be decoded: the fold
/// stops there and counts what is left. For a run whose process died (`interrupted`), attempts
/// still open end as interrupted at its last event, as `resume` will journal them, rather than
/// seeming to run on forever.
pub fn fold_run(
    id: &RunId,
    events: impl IntoIterator<Item = Option<Event>>,
    interrupted: bool,
) -> Option<PastRun> {
    let mut state = EngineState::new(
        Limits {
            max_parallel: u32::MAX,
            pool: Default::default(),
        },
        [],
    );
    let mut damaged = 0;
    let mut events = events.into_iter();
    let mut last_ts = 0;
    for e in events.by_ref() {
        match e {
            Some(ev) => {
                last_ts = ev.ts;
                state.apply(&ev)
            }
            None => {
                damaged = 1;
                break;
            }
        }
    }
    damaged += events.count();
    if interrupted && let Some(run) = state.runs.get(id) {
        let open: Vec<(TaskIdx, u32)> = (0..run.tasks.len() as TaskIdx)
            .filter_map(|t| run.tasks[t as usize].open_attempt().map(|a| (t, a.number)))
            .collect();
        let ts = last_ts;
        for (task, attempt) in open {
            state.apply(&Event {
                seq: state.last_seq,
                ts,
                run: id.clone(),
                kind: EventKind::TaskInterrupted { task, attempt },
            });
        }
    }
    let run = state.runs.swap_remove(id)?;
    Some(PastRun {
        run: Box::new(run),
        damaged,
    })
}

/// Lines of a log file (as `logs::LogStore` writes them: `RFC3339 STREAM TEXT`) from line
/// `since` on. A line in another shape is kept whole as output.
pub fn parse_log(
    text: &str,
    since: usize,
    run: &RunId,
    task: Option<TaskIdx>,
    attempt: u32,
) -> Vec<LogLine> {
    text.lines()
        .skip(since)
        .map(|l| {
            let (ts, stream, line) = split_log_line(l).unwrap_or((0, LogStream::Stdout, l));
            LogLine {
                run: run.clone(),
                task,
                attempt,
                ts,
                stream,
                line: line.to_string(),
            }
        })
        .collect()
}

fn split_log_line(l: &str) -> Option<(Millis, LogStream, &str)> {
    let (ts, rest) = l.split_once(' ')?;
    let (stream, text) = rest.split_once(' ').unwrap_or((rest, ""));
    let stream = match stream {
        "stdout" => LogStream::Stdout,
        "stderr" => LogStream::Stderr,
        "system" => LogStream::System,
        _ => return None,
    };
    Some((parse_rfc3339(ts)?, stream, text))
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` (what the log files hold) to Unix milliseconds.
fn parse_rfc3339(s: &str) -> Option<Millis> {
    let b = s.as_bytes();
    if b.len() != 24 || b[10] != b'T' || b[23] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec, ms) = (num(11..13)?, num(14..16)?, num(17..19)?, num(20..23)?);
    // Days from the civil date (Howard Hinnant's algorithm, the inverse of civil_from_unix).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if mo > 2 { mo - 3 } else { mo + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec;
    Millis::try_from(secs * 1000 + ms).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_parse_back_with_their_time_and_stream() {
        let run = RunId::from("r1");
        let text = "2026-11-23T14:00:00.123Z stdout hello world\n\
                    2026-11-23T14:00:01.000Z stderr oops\n\
                    [log truncated at 10 bytes]\n";
        let lines = parse_log(text, 0, &run, Some(2), 1);
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].ts, 1_795_442_400_123);
        assert_eq!(lines[0].line, "hello world");
        assert_eq!(lines[1].stream, LogStream::Stderr);
        assert_eq!(lines[2].line, "[log truncated at 10 bytes]");
        assert_eq!(lines[2].ts, 0);
        assert_eq!(parse_log(text, 2, &run, Some(2), 1).len(), 1);
    }

    #[test]
    fn rfc3339_is_the_inverse_of_the_writer() {
        for ts in [0, 1_795_442_400_123, 951_782_400_999, 4_102_444_800_000] {
            assert_eq!(parse_rfc3339(&crate::logs::format_ts(ts)), Some(ts), "{ts}");
        }
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
