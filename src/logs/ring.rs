//! A bounded buffer of the most recent lines that remembers absolute line numbers, so a reader
//! asking "from line N on" still gets the right lines after older ones were evicted.

use std::collections::VecDeque;

use crate::model::{LogStream, Millis};

/// One stored line; run/task/attempt live in the map key, not in every line.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub ts: Millis,
    pub stream: LogStream,
    pub line: Box<str>,
}

#[derive(Debug)]
pub(crate) struct Ring {
    /// Absolute number of `lines[0]`.
    first: usize,
    lines: VecDeque<Entry>,
    cap: usize,
}

impl Ring {
    pub fn new(cap: usize) -> Ring {
        Ring {
            first: 0,
            lines: VecDeque::new(),
            cap,
        }
    }

    pub fn push(&mut self, e: Entry) {
        if self.cap == 0 {
            self.first += 1;
            return;
        }
        if self.lines.len() == self.cap {
            self.lines.pop_front();
            self.first += 1;
        }
        self.lines.push_back(e);
    }

    /// Total lines ever pushed (the absolute number the next line will get).
    pub fn total(&self) -> usize {
        self.first + self.lines.len()
    }

    /// Lines still held whose absolute number is `since` or later.
    pub fn since(&self, since: usize) -> impl Iterator<Item = &Entry> {
        let skip = since.saturating_sub(self.first);
        self.lines.iter().skip(skip)
    }

    /// Gives back spare capacity once nothing more will be added.
    pub fn shrink(&mut self) {
        self.lines.shrink_to_fit();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn e(n: usize) -> Entry {
        Entry {
            ts: n as Millis,
            stream: LogStream::Stdout,
            line: n.to_string().into(),
        }
    }

    fn texts<'a>(it: impl Iterator<Item = &'a Entry>) -> Vec<String> {
        it.map(|e| e.line.to_string()).collect()
    }

    #[test]
    fn keeps_the_last_lines_with_absolute_numbers() {
        let mut r = Ring::new(3);
        for n in 0..5 {
            r.push(e(n));
        }
        assert_eq!(r.total(), 5);
        assert_eq!(texts(r.since(0)), ["2", "3", "4"]);
        assert_eq!(texts(r.since(3)), ["3", "4"]);
        assert_eq!(texts(r.since(5)), Vec::<String>::new());
        assert_eq!(texts(r.since(99)), Vec::<String>::new());
    }

    #[test]
    fn zero_capacity_counts_but_keeps_nothing() {
        let mut r = Ring::new(0);
        r.push(e(0));
        assert_eq!(r.total(), 1);
        assert_eq!(r.since(0).count(), 0);
    }
}
