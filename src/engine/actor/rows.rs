//! When a run's journal row (state, counts, lease) is rewritten (pure).
//!
//! Events are the record; the row is a summary for listings (`taskdeck runs`, pruning, the
//! lease). Rewriting it in every commit cost a page of the ~3 a commit writes, so while only
//! its counts change it is rewritten at most every `EVERY` ms; a change of state is written
//! at once.

use std::collections::HashMap;

use crate::model::{RunId, RunState};

/// How stale a running run's counts may get in its journal row.
pub const EVERY: u64 = 250;

#[derive(Debug, Default)]
pub struct RowSchedule {
    /// The state each run's row was last written with, and when.
    written: HashMap<RunId, (RunState, u64)>,
}

impl RowSchedule {
    /// Whether the row of a run now in `state` must go into the commit made at `now`.
    pub fn due(&self, id: &RunId, state: RunState, now: u64) -> bool {
        match self.written.get(id) {
            None => true,
            Some((s, at)) => *s != state || now >= at + EVERY,
        }
    }

    pub fn wrote(&mut self, id: &RunId, state: RunState, now: u64) {
        if state.is_terminal() {
            // A finished run's row changes only with its state: no need to remember it (a
            // server sees many runs).
            self.written.remove(id);
        } else {
            self.written.insert(id.clone(), (state, now));
        }
    }

    /// When the first of `waiting` (rows left out of a commit) becomes due.
    pub fn next_due<'a>(&self, waiting: impl IntoIterator<Item = &'a RunId>) -> Option<u64> {
        waiting
            .into_iter()
            .filter_map(|id| self.written.get(id).map(|(_, at)| at + EVERY))
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_row_or_a_new_state_is_written_at_once_counts_wait() {
        let mut rows = RowSchedule::default();
        let id = RunId::from("r1");
        assert!(rows.due(&id, RunState::Running, 1_000), "never written");
        rows.wrote(&id, RunState::Running, 1_000);
        assert!(
            !rows.due(&id, RunState::Running, 1_100),
            "only counts changed"
        );
        assert!(rows.due(&id, RunState::Succeeded, 1_100), "state changed");
        assert!(rows.due(&id, RunState::Running, 1_000 + EVERY));
        assert_eq!(rows.next_due([&id]), Some(1_000 + EVERY));
        assert_eq!(rows.next_due([&RunId::from("other")]), None);
        rows.wrote(&id, RunState::Succeeded, 1_300);
        assert!(rows.written.is_empty(), "finished runs are forgotten");
    }
}
