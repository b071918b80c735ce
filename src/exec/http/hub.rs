//! Where callbacks from `http` agents meet the attempts waiting for them. Each accepted attempt
//! registers an unguessable token; `POST /api/v1/callbacks/{token}` (result, heartbeat, log
//! lines) is routed to it. The token is the callback's only credential, so a worker needs no
//! API token; a token whose attempt has ended answers 410, one never issued 404.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{OnceCell, mpsc};

use super::reply::AgentReply;

/// Tokens of ended attempts remembered for a 410 answer (older ones get 404).
const GONE_KEEP: usize = 4096;

/// What an agent sends back for an accepted attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Callback {
    Heartbeat,
    Log(Vec<String>),
    Result(AgentReply),
}

/// Why a callback was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Undeliverable {
    /// No attempt ever had this token.
    Unknown,
    /// The attempt has ended (finished, cancelled, lost).
    Gone,
}

/// Shared by the engine's http attempts and whatever serves the callback routes; cheap to clone.
#[derive(Clone, Default)]
pub struct CallbackHub {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    waiting: Mutex<HashMap<String, mpsc::UnboundedSender<Callback>>>,
    gone: Mutex<(VecDeque<String>, HashSet<String>)>,
    /// The callback base URL (`http://host:port/api/v1/callbacks`), once known.
    base: OnceCell<String>,
}

impl std::fmt::Debug for CallbackHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackHub")
            .field("base", &self.inner.base.get())
            .finish_non_exhaustive()
    }
}

impl PartialEq for CallbackHub {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

/// A registered token; dropping it ends the token (later callbacks get 410).
pub struct Registration {
    hub: CallbackHub,
    pub token: String,
    pub rx: mpsc::UnboundedReceiver<Callback>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.hub.retire(&self.token);
    }
}

impl CallbackHub {
    pub fn new() -> Self {
        Self::default()
    }

    /// Uses `public_base` (e.g. `http://ci.example:7070`) for callback URLs: the API server
    /// serves the callback routes itself.
    pub fn with_public_base(public_base: &str) -> Self {
        let hub = Self::default();
        let _ = hub.inner.base.set(format!(
            "{}/api/v1/callbacks",
            public_base.trim_end_matches('/')
        ));
        hub
    }

    /// The callback base URL; without a server, a listener on 127.0.0.1 is started the first
    /// time one is needed (so only workflows with http agents open a port).
    pub async fn base_url(&self) -> Result<String, String> {
        self.inner
            .base
            .get_or_try_init(|| super::listener::listen_local(self.clone()))
            .await
            .cloned()
    }

    /// A fresh token for one attempt.
    pub fn register(&self) -> Result<Registration, String> {
        let mut bytes = [0u8; 24];
        getrandom::fill(&mut bytes)
            .map_err(|e| format!("cannot make a callback token (no system randomness): {e}"))?;
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let (tx, rx) = mpsc::unbounded_channel();
        self.inner
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(token.clone(), tx);
        Ok(Registration {
            hub: self.clone(),
            token,
            rx,
        })
    }

    /// Hands a callback to the attempt holding `token`.
    pub fn deliver(&self, token: &str, cb: Callback) -> Result<(), Undeliverable> {
        let waiting = self
            .inner
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match waiting.get(token) {
            Some(tx) if tx.send(cb).is_ok() => Ok(()),
            Some(_) => Err(Undeliverable::Gone),
            None => {
                drop(waiting);
                let gone = self
                    .inner
                    .gone
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                Err(if gone.1.contains(token) {
                    Undeliverable::Gone
                } else {
                    Undeliverable::Unknown
                })
            }
        }
    }

    fn retire(&self, token: &str) {
        self.inner
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(token);
        let mut gone = self
            .inner
            .gone
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if gone.0.len() >= GONE_KEEP
            && let Some(old) = gone.0.pop_front()
        {
            gone.1.remove(&old);
        }
        gone.0.push_back(token.to_string());
        gone.1.insert(token.to_string());
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tokens_route_callbacks_until_their_attempt_ends() {
        let hub = CallbackHub::new();
        let mut a = hub.register().unwrap();
        let b = hub.register().unwrap();
        assert_ne!(a.token, b.token);
        assert_eq!(a.token.len(), 48);
        hub.deliver(&a.token, Callback::Heartbeat).unwrap();
        assert_eq!(a.rx.recv().await, Some(Callback::Heartbeat));
        let token = a.token.clone();
        drop(a);
        assert_eq!(
            hub.deliver(&token, Callback::Heartbeat),
            Err(Undeliverable::Gone)
        );
        assert_eq!(
            hub.deliver("nope", Callback::Heartbeat),
            Err(Undeliverable::Unknown)
        );
    }
}
