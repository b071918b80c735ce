//! The state of a remote console's connection, as the status bar shows it, and the reconnect
//! schedule. Pure: no clock, no network, so both are unit-tested.

use std::time::Duration;

use crate::model::Millis;

/// First wait after a dropped connection; doubled on each failure up to `BACKOFF_MAX`.
pub const BACKOFF_FIRST: Duration = Duration::from_millis(500);
pub const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// How long to wait before connection attempt number `failures` (1 = right after the first
/// failure): exponential, capped.
pub fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    BACKOFF_FIRST
        .saturating_mul(1 << doublings)
        .min(BACKOFF_MAX)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkState {
    Connecting,
    Connected,
    /// The connection dropped; the next attempt is at `at` (wall clock, ms).
    Reconnecting {
        at: Millis,
        why: String,
    },
    /// The server answers but will not serve us (a bad or revoked token).
    Refused(String),
}

/// What the status bar says about a remote console's connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// `host:port` of the server.
    pub server: String,
    pub state: LinkState,
    /// Round trip of the latest request that completed, in ms.
    pub latency_ms: Option<u64>,
}

impl Link {
    pub fn new(server: impl Into<String>) -> Link {
        Link {
            server: server.into(),
            state: LinkState::Connecting,
            latency_ms: None,
        }
    }

    /// `REMOTE host:port · 12 ms · connected` (the part after the server as of `now`).
    pub fn text(&self, now: Millis) -> String {
        let state = match &self.state {
            LinkState::Connecting => "connecting…".to_string(),
            LinkState::Connected => "connected".to_string(),
            LinkState::Reconnecting { at, .. } => {
                let secs = at.saturating_sub(now).div_ceil(1000);
                if secs == 0 {
                    "reconnecting…".to_string()
                } else {
                    format!("reconnecting in {secs}s")
                }
            }
            LinkState::Refused(why) => format!("refused: {why}"),
        };
        match (self.latency_ms, &self.state) {
            (Some(0), LinkState::Connected) => format!("REMOTE {} · <1 ms · {state}", self.server),
            (Some(ms), LinkState::Connected) => {
                format!("REMOTE {} · {ms} ms · {state}", self.server)
            }
            _ => format!("REMOTE {} · {state}", self.server),
        }
    }

    /// Whether the text changes with time (a countdown): the console ticks while it does.
    pub fn counting(&self) -> bool {
        matches!(self.state, LinkState::Reconnecting { .. })
    }

    pub fn healthy(&self) -> bool {
        self.state == LinkState::Connected
    }
}

/// `host:port` of a server URL, for the status bar (the URL itself when it has no host).
pub fn server_label(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let host = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    if host.is_empty() {
        url.to_string()
    } else if host.contains(':') && !host.ends_with(']') {
        host.to_string()
    } else if url.starts_with("https://") {
        format!("{host}:443")
    } else {
        format!("{host}:80")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(2), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(2));
        assert_eq!(backoff(5), Duration::from_secs(8));
        assert_eq!(backoff(6), BACKOFF_MAX);
        assert_eq!(backoff(1000), BACKOFF_MAX);
        assert_eq!(backoff(0), BACKOFF_FIRST);
    }

    #[test]
    fn status_text_by_state() {
        let mut l = Link::new("127.0.0.1:7070");
        assert_eq!(l.text(0), "REMOTE 127.0.0.1:7070 · connecting…");
        l.state = LinkState::Connected;
        l.latency_ms = Some(12);
        assert_eq!(l.text(0), "REMOTE 127.0.0.1:7070 · 12 ms · connected");
        l.latency_ms = Some(0);
        assert_eq!(l.text(0), "REMOTE 127.0.0.1:7070 · <1 ms · connected");
        l.state = LinkState::Reconnecting {
            at: 10_000,
            why: "connection refused".into(),
        };
        assert_eq!(l.text(6_500), "REMOTE 127.0.0.1:7070 · reconnecting in 4s");
        assert_eq!(l.text(10_000), "REMOTE 127.0.0.1:7070 · reconnecting…");
        assert!(l.counting());
        l.state = LinkState::Refused("the token is not valid".into());
        assert_eq!(
            l.text(0),
            "REMOTE 127.0.0.1:7070 · refused: the token is not valid"
        );
        assert!(!l.healthy());
    }

    #[test]
    fn server_labels() {
        assert_eq!(server_label("http://127.0.0.1:7070"), "127.0.0.1:7070");
        assert_eq!(
            server_label("https://deck.example.com/"),
            "deck.example.com:443"
        );
        assert_eq!(server_label("http://host"), "host:80");
        assert_eq!(server_label("http://[::1]:9000/x"), "[::1]:9000");
    }
}
