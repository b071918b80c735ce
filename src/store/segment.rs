//! How events sit in the journal: the events of one run from one commit form one row, a
//! segment: one JSON event per line, LZ4-compressed. A row per commit rather than per event is
//! what keeps the journal cheap (group commit all the way down): a 100,000-task run writes a few
//! dozen rows, not 300,000, and compression turns ~35 MB of repetitive JSON into a few.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::StoredEvent;
use crate::model::{Event, EventKind, Millis, RunId};

/// One run's events from one commit.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub run: RunId,
    pub first_seq: u64,
    pub last_seq: u64,
    pub count: u32,
    /// LZ4 (size-prepended) of the JSON lines.
    pub payload: Vec<u8>,
}

/// A line leaves out the run: the row names it.
#[derive(Serialize)]
struct LineOut<'a> {
    seq: u64,
    ts: Millis,
    #[serde(flatten)]
    kind: &'a EventKind,
}

#[derive(Deserialize)]
struct LineIn {
    seq: u64,
    ts: Millis,
    #[serde(flatten)]
    kind: EventKind,
}

/// Groups a commit's events into one segment per run, keeping each run's order.
pub fn segments(events: &[Arc<Event>]) -> Vec<Segment> {
    let mut runs: Vec<(RunId, u64, u64, u32, Vec<u8>)> = Vec::new();
    for ev in events {
        let i = match runs.iter().position(|r| r.0 == ev.run) {
            Some(i) => i,
            None => {
                runs.push((ev.run.clone(), ev.seq, ev.seq, 0, Vec::new()));
                runs.len() - 1
            }
        };
        let r = &mut runs[i];
        if r.3 > 0 {
            r.4.push(b'\n');
        }
        let line = LineOut {
            seq: ev.seq,
            ts: ev.ts,
            kind: &ev.kind,
        };
        // Events are plain data: serialising one cannot fail short of a bug, and a reader
        // reports a damaged line rather than the writer crashing.
        let _ = serde_json::to_writer(&mut r.4, &line);
        r.2 = ev.seq;
        r.3 += 1;
    }
    runs.into_iter()
        .map(|(run, first_seq, last_seq, count, text)| Segment {
            run,
            first_seq,
            last_seq,
            count,
            payload: lz4_flex::compress_prepend_size(&text),
        })
        .collect()
}

fn text(payload: &[u8]) -> Result<String, String> {
    let raw = lz4_flex::decompress_size_prepended(payload)
        .map_err(|e| format!("the segment cannot be decompressed: {e}"))?;
    String::from_utf8(raw).map_err(|_| "the segment is not text".to_string())
}

fn decode_line(run: &RunId, line: &str) -> Result<Event, String> {
    let l: LineIn = serde_json::from_str(line).map_err(|e| e.to_string())?;
    Ok(Event {
        seq: l.seq,
        ts: l.ts,
        run: run.clone(),
        kind: l.kind,
    })
}

/// Splits a segment row back into events; damage shows as an `Err` event where it starts.
pub fn decode_segment(run: &RunId, pos: i64, payload: &[u8], out: &mut Vec<StoredEvent>) {
    match text(payload) {
        Ok(t) => {
            for (line, l) in t.split('\n').enumerate() {
                out.push(StoredEvent {
                    pos,
                    line,
                    event: decode_line(run, l),
                });
            }
        }
        Err(e) => out.push(StoredEvent {
            pos,
            line: 0,
            event: Err(e),
        }),
    }
}

/// The first event of a segment (a run's first segment starts with its submission).
pub fn first_event(run: &RunId, payload: &[u8]) -> Result<Event, String> {
    let t = text(payload)?;
    decode_line(run, t.split('\n').next().unwrap_or_default())
}

/// The segment cut to its first `keep` lines (what survives a cut inside it).
pub fn segment_prefix(payload: &[u8], keep: usize) -> Vec<u8> {
    let kept = text(payload)
        .map(|t| t.split('\n').take(keep).collect::<Vec<_>>().join("\n"))
        .unwrap_or_default();
    lz4_flex::compress_prepend_size(kept.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(seq: u64, run: &str, kind: EventKind) -> Arc<Event> {
        Arc::new(Event {
            seq,
            ts: 1000 + seq,
            run: RunId::from(run),
            kind,
        })
    }

    #[test]
    fn events_round_trip_grouped_by_run() {
        let events = vec![
            ev(1, "a", EventKind::RunPaused),
            ev(
                2,
                "b",
                EventKind::TaskStarted {
                    task: 3,
                    attempt: 1,
                    pid: Some(9),
                },
            ),
            ev(3, "a", EventKind::RunResumed),
        ];
        let segs = segments(&events);
        assert_eq!(segs.len(), 2);
        assert_eq!(
            (segs[0].first_seq, segs[0].last_seq, segs[0].count),
            (1, 3, 2)
        );
        let mut out = Vec::new();
        decode_segment(&segs[0].run, 7, &segs[0].payload, &mut out);
        let back: Vec<Event> = out.into_iter().map(|s| s.event.unwrap()).collect();
        assert_eq!(back, vec![(*events[0]).clone(), (*events[2]).clone()]);
        assert_eq!(
            first_event(&segs[1].run, &segs[1].payload).unwrap(),
            *events[1]
        );
    }

    #[test]
    fn damage_is_reported_where_it_starts() {
        let events: Vec<_> = (1..=3).map(|i| ev(i, "a", EventKind::RunPaused)).collect();
        let seg = &segments(&events)[0];
        let good = text(&seg.payload).unwrap();
        let bad = good.replacen("\"run_paused\"}", "\"run_pau", 2).replacen(
            "\"run_pau",
            "\"run_paused\"}",
            1,
        );
        let payload = lz4_flex::compress_prepend_size(bad.as_bytes());
        let mut out = Vec::new();
        decode_segment(&seg.run, 1, &payload, &mut out);
        assert!(out[0].event.is_ok());
        assert!(out[1].event.is_err(), "the second line was damaged");
        let cut = segment_prefix(&payload, 1);
        let mut again = Vec::new();
        decode_segment(&seg.run, 1, &cut, &mut again);
        assert_eq!(again.len(), 1);
        assert!(again[0].event.is_ok());
        let mut garbage = Vec::new();
        decode_segment(&seg.run, 1, b"\x05\x00\x00\x00xx", &mut garbage);
        assert!(garbage[0].event.is_err());
    }
}
