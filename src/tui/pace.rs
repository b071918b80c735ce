//! How the console loop coalesces work: queued messages are applied in a batch — the operator's
//! input before the engine's backlog — and a frame is drawn only after something changed, at most
//! one per `FRAME`, never on a timer while nothing did. A frame always shows the newest state:
//! there is no queue of frames, so a stale one is never drawn. Time is passed in, so this is
//! tested without a terminal or a clock.

use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedReceiver;

use super::app::{self, App, Msg};

/// At most this many frames a second.
pub const FRAME: Duration = Duration::from_millis(33);
/// A backlog is applied for at most this long before a frame may be drawn in between.
pub const BUDGET: Duration = Duration::from_millis(25);
/// Once the operator's input is in, the rest of the backlog gets only this long before the frame
/// that shows the input.
pub const AFTER_INPUT: Duration = Duration::from_millis(3);

/// Decides when to draw.
#[derive(Debug, Clone)]
pub struct Pacer {
    frame: Duration,
    last: Option<Instant>,
    dirty: bool,
}

impl Pacer {
    pub fn new(frame: Duration) -> Pacer {
        Pacer {
            frame,
            last: None,
            dirty: false,
        }
    }

    /// Records whether an update changed what is on screen.
    pub fn changed(&mut self, changed: bool) {
        self.dirty |= changed;
    }

    pub fn dirty(&self) -> bool {
        self.dirty
    }

    /// Whether a frame should be drawn at `now`.
    pub fn due(&self, now: Instant) -> bool {
        self.dirty && self.last.is_none_or(|l| now >= l + self.frame)
    }

    /// When the wanted frame may be drawn; `None` when nothing needs drawing.
    pub fn deadline(&self, now: Instant) -> Option<Instant> {
        self.dirty
            .then(|| self.last.map_or(now, |l| (l + self.frame).max(now)))
    }

    pub fn drew(&mut self, now: Instant) {
        self.last = Some(now);
        self.dirty = false;
    }
}

/// What one `drain` did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Drained {
    pub applied: usize,
    pub changed: bool,
    /// The budget ran out with messages still queued.
    pub more: bool,
    /// When the first input message of the batch was read from the terminal.
    pub input_at: Option<Instant>,
}

/// Applies queued messages until both queues are empty or `deadline` passes: any input first,
/// then the feed (engine events, log notices, effect results), one at a time, looking at the
/// input again before each, so a key never waits behind a flood of engine events; once input
/// came in, the batch ends within `AFTER_INPUT` so its frame is not held up either.
pub fn drain(
    app: &mut App,
    input: &mut UnboundedReceiver<(Instant, Msg)>,
    feed: &mut UnboundedReceiver<Msg>,
    deadline: Instant,
) -> Drained {
    let mut d = Drained::default();
    let mut deadline = deadline;
    loop {
        if let Ok((at, msg)) = input.try_recv() {
            if d.input_at.is_none() {
                d.input_at = Some(at);
                deadline = deadline.min(Instant::now() + AFTER_INPUT);
            }
            d.changed |= app::update(app, msg);
            d.applied += 1;
            continue;
        }
        if app.quit {
            return d;
        }
        // The clock is read once per 64 messages: cheap, and still well inside a frame.
        if d.applied % 64 == 63 && Instant::now() >= deadline {
            d.more = !feed.is_empty() || !input.is_empty();
            return d;
        }
        match feed.try_recv() {
            Ok(msg) => {
                d.changed |= app::update(app, msg);
                d.applied += 1;
            }
            Err(_) => return d,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::keymap::Keymap;
    use crate::tui::theme::Theme;
    use tokio::sync::mpsc::unbounded_channel;

    fn app() -> App {
        App::new("local", Theme::default(), Keymap::default())
    }

    #[test]
    fn input_goes_before_the_backlog_and_everything_queued_is_applied() {
        let mut app = app();
        let (itx, mut irx) = unbounded_channel();
        let (ftx, mut frx) = unbounded_channel();
        // 100,000 messages of backlog, then a key-like input that arrived last.
        for i in 0..100_000u32 {
            let _ = ftx.send(Msg::Resize(100 + (i % 7) as u16, 30));
        }
        let _ = ftx.send(Msg::Resize(120, 40));
        let _ = itx.send((Instant::now(), Msg::Resize(80, 24)));
        let far = Instant::now() + Duration::from_secs(600);
        let first = drain(&mut app, &mut irx, &mut frx, far);
        assert!(first.input_at.is_some() && first.changed);
        let mut applied = first.applied;
        let mut more = first.more;
        while more {
            let d = drain(&mut app, &mut irx, &mut frx, far);
            assert!(d.input_at.is_none());
            applied += d.applied;
            more = d.more;
        }
        // The input was applied first (the backlog's last size won), and nothing is left.
        assert_eq!(app.size, (120, 40));
        assert_eq!(applied, 100_002);
    }

    #[test]
    fn a_spent_budget_leaves_the_rest_for_after_the_frame() {
        let mut app = app();
        let (_itx, mut irx) = unbounded_channel::<(Instant, Msg)>();
        let (ftx, mut frx) = unbounded_channel();
        for _ in 0..10_000 {
            let _ = ftx.send(Msg::Resize(100, 30));
        }
        let d = drain(&mut app, &mut irx, &mut frx, Instant::now());
        assert!(d.more);
        assert!(d.applied <= 64, "{}", d.applied);
        // The next batch goes on where this one stopped.
        let far = Instant::now() + Duration::from_secs(600);
        let d2 = drain(&mut app, &mut irx, &mut frx, far);
        assert_eq!(d.applied + d2.applied, 10_000);
    }

    #[test]
    fn input_cuts_a_long_batch_short() {
        let mut app = app();
        let (itx, mut irx) = unbounded_channel();
        let (ftx, mut frx) = unbounded_channel();
        for _ in 0..300_000 {
            let _ = ftx.send(Msg::Resize(100, 30));
        }
        let _ = itx.send((Instant::now(), Msg::Resize(80, 24)));
        let started = Instant::now();
        let d = drain(
            &mut app,
            &mut irx,
            &mut frx,
            started + Duration::from_secs(600),
        );
        assert!(d.more, "the batch ended early: {} applied", d.applied);
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn draws_only_after_a_change_and_at_most_once_a_frame() {
        let t0 = Instant::now();
        let mut p = Pacer::new(FRAME);
        assert!(!p.due(t0));
        assert_eq!(p.deadline(t0), None, "idle: no timer at all");
        p.changed(false);
        assert_eq!(p.deadline(t0), None);
        p.changed(true);
        assert!(p.due(t0), "the first change draws at once");
        p.drew(t0);
        assert!(!p.dirty());
        // A burst of changes 1 ms apart: one frame per 33 ms, each with the newest state.
        let mut frames = 0;
        for ms in 1..=1000u64 {
            let now = t0 + Duration::from_millis(ms);
            p.changed(true);
            if p.due(now) {
                p.drew(now);
                frames += 1;
            }
        }
        assert!((29..=31).contains(&frames), "{frames} frames in one second");
        // The last change is still owed a frame, and it comes by the deadline.
        let now = t0 + Duration::from_millis(1000);
        let due = p.deadline(now).unwrap();
        assert!(due > now && due <= now + FRAME);
        assert!(p.due(due));
    }
}
