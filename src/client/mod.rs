//! An HTTP client of the taskdeck API (reqwest with rustls): the CLI clients (`submit`,
//! `status`, `retry`, ...) use it, and a remote console can. Errors say what went wrong in
//! words a user can act on: the server cannot be reached, the token is missing or too weak,
//! the run does not exist.

mod sse;

use std::path::Path;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::model::Event;
use crate::server::ErrorBody;
use crate::server::events::StreamNotice;
use crate::server::logs::LogPage;
use crate::server::routes::{Done, Health, RunList, Stats, Submitted};

pub use sse::EventStream;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing answers at the address (or TLS failed).
    #[error("cannot reach the taskdeck server at {url}: {detail}")]
    Connect { url: String, detail: String },
    /// 401 or 403.
    #[error("{detail} (HTTP {status})")]
    Denied { status: u16, detail: String },
    /// Any other error answer of the API.
    #[error("{detail}")]
    Api {
        status: u16,
        error: String,
        detail: String,
        problems: Vec<String>,
    },
    /// The answer was not what the API sends (another program on that port?).
    #[error("unexpected answer from {url}: {detail}")]
    Protocol { url: String, detail: String },
    #[error("{0}")]
    Setup(String),
}

impl ClientError {
    /// The CLI clients' exit code: 1 the server refused (no such run, not allowed now, invalid
    /// workflow), 2 it cannot be reached or answered nonsense, 3 the token is missing or lacks
    /// the role.
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::Api { status, .. } if *status < 500 => 1,
            ClientError::Denied { .. } => 3,
            _ => 2,
        }
    }
}

/// What the client connects to and how.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    /// `url` is the server's base (`http://127.0.0.1:7070`); `ca` a PEM certificate to trust in
    /// addition to the usual roots (a self-signed server).
    pub fn new(url: &str, token: Option<String>, ca: Option<&Path>) -> Result<Client, ClientError> {
        let base = url.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ClientError::Setup(format!(
                "--to {url}: expected http://HOST:PORT or https://HOST:PORT"
            )));
        }
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("taskdeck/", env!("CARGO_PKG_VERSION")));
        if let Some(ca) = ca {
            let pem = std::fs::read(ca).map_err(|e| {
                ClientError::Setup(format!("cannot read the certificate {}: {e}", ca.display()))
            })?;
            let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| {
                ClientError::Setup(format!("{} is not a PEM certificate: {e}", ca.display()))
            })?;
            builder = builder.add_root_certificate(cert);
        }
        let http = builder
            .build()
            .map_err(|e| ClientError::Setup(format!("cannot set up the HTTP client: {e}")))?;
        Ok(Client {
            http,
            base,
            token: token.filter(|t| !t.is_empty()),
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        req
    }

    /// Sends a request and returns the raw answer when it is a success.
    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, ClientError> {
        let resp = req.send().await.map_err(|e| self.connect_error(e))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let text = resp.text().await.unwrap_or_default();
        let body: Option<ErrorBody> = serde_json::from_str(&text).ok();
        let (error, detail, problems) = match body {
            Some(b) => (b.error, b.detail, b.problems),
            None => (
                "http".to_string(),
                format!(
                    "the server answered {status}{}",
                    if text.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", text.trim())
                    }
                ),
                Vec::new(),
            ),
        };
        Err(match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ClientError::Denied {
                status: status.as_u16(),
                detail,
            },
            _ => ClientError::Api {
                status: status.as_u16(),
                error,
                detail,
                problems,
            },
        })
    }

    fn connect_error(&self, e: reqwest::Error) -> ClientError {
        // The innermost cause says it best ("Connection refused", "certificate unknown").
        let mut detail = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            detail = s.to_string();
            source = s.source();
        }
        if e.is_timeout() {
            detail = "no answer in time".into();
        }
        ClientError::Connect {
            url: self.base.clone(),
            detail,
        }
    }

    async fn json<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let resp = self.send(req).await?;
        let bytes = resp.bytes().await.map_err(|e| self.connect_error(e))?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Protocol {
            url: self.base.clone(),
            detail: format!("not the JSON taskdeck sends: {e}"),
        })
    }

    pub async fn health(&self) -> Result<Health, ClientError> {
        self.json(self.request(Method::GET, "/health")).await
    }

    /// Starts a run of a workflow file's text (`json`: it is JSON, else TOML).
    pub async fn submit(&self, text: String, json: bool) -> Result<Submitted, ClientError> {
        let ctype = if json {
            "application/json"
        } else {
            "application/toml"
        };
        let req = self
            .request(Method::POST, "/api/v1/runs")
            .header(reqwest::header::CONTENT_TYPE, ctype)
            .body(text);
        self.json(req).await
    }

    pub async fn runs(&self) -> Result<RunList, ClientError> {
        self.json(self.request(Method::GET, "/api/v1/runs")).await
    }

    /// A run's snapshot: `{seq, live, run}`.
    pub async fn run(&self, id: &str) -> Result<Value, ClientError> {
        self.json(self.request(Method::GET, &format!("/api/v1/runs/{}", seg(id))))
            .await
    }

    /// The engine's whole state; its `last_seq` is where to follow events from.
    pub async fn snapshot(&self) -> Result<Value, ClientError> {
        self.json(self.request(Method::GET, "/api/v1/snapshot"))
            .await
    }

    /// The engine's whole state, ready to fold later events into (see `EngineState::restore`).
    pub async fn state(&self) -> Result<crate::engine::state::EngineState, ClientError> {
        let mut st: crate::engine::state::EngineState = self
            .json(self.request(Method::GET, "/api/v1/snapshot"))
            .await?;
        st.restore();
        Ok(st)
    }

    /// One run's state (live or from the store's journal).
    pub async fn run_state(&self, id: &str) -> Result<crate::engine::state::Run, ClientError> {
        #[derive(serde::Deserialize)]
        struct Snap {
            run: crate::engine::state::Run,
        }
        let snap: Snap = self
            .json(self.request(Method::GET, &format!("/api/v1/runs/{}", seg(id))))
            .await?;
        let mut st = crate::engine::state::EngineState::new(
            crate::engine::state::Limits {
                max_parallel: u32::MAX,
                pool: Default::default(),
            },
            [],
        );
        let run = snap.run;
        let key = run.id.clone();
        st.runs.insert(key.clone(), run);
        st.restore();
        st.runs
            .swap_remove(&key)
            .ok_or_else(|| ClientError::Protocol {
                url: self.base.clone(),
                detail: "the run went missing".into(),
            })
    }

    pub async fn agents(&self) -> Result<Value, ClientError> {
        self.json(self.request(Method::GET, "/api/v1/agents")).await
    }

    pub async fn stats(&self) -> Result<Stats, ClientError> {
        self.json(self.request(Method::GET, "/api/v1/stats")).await
    }

    /// A run action (`pause`, `resume`, `cancel`) or, with `task`, a task action (`retry`,
    /// `rerun`, `cancel`, `pause`, `resume`, `approve`).
    pub async fn command(
        &self,
        run: &str,
        task: Option<&str>,
        action: &str,
    ) -> Result<Done, ClientError> {
        let path = match task {
            Some(t) => format!("/api/v1/runs/{}/tasks/{}/{action}", seg(run), seg(t)),
            None => format!("/api/v1/runs/{}/{action}", seg(run)),
        };
        self.json(self.request(Method::POST, &path)).await
    }

    /// A task attempt's log lines from line `since` on (`attempt`: default the latest).
    pub async fn task_log(
        &self,
        run: &str,
        task: &str,
        attempt: Option<u32>,
        since: usize,
    ) -> Result<LogPage, ClientError> {
        let mut path = format!(
            "/api/v1/runs/{}/tasks/{}/logs?since={since}",
            seg(run),
            seg(task)
        );
        if let Some(a) = attempt {
            path.push_str(&format!("&attempt={a}"));
        }
        self.json(self.request(Method::GET, &path)).await
    }

    /// The engine's own log of a run from line `since` on.
    pub async fn engine_log(&self, run: &str, since: usize) -> Result<LogPage, ClientError> {
        self.json(self.request(
            Method::GET,
            &format!("/api/v1/runs/{}/logs?since={since}", seg(run)),
        ))
        .await
    }

    /// Events after `since` (default: from now on), then live ones.
    pub async fn events(
        &self,
        since: Option<u64>,
        run: Option<&str>,
    ) -> Result<EventStream, ClientError> {
        let mut path = "/api/v1/events".to_string();
        let mut sep = '?';
        if let Some(s) = since {
            path.push_str(&format!("{sep}since={s}"));
            sep = '&';
        }
        if let Some(r) = run {
            path.push_str(&format!("{sep}run={}", seg(r)));
        }
        let resp = self
            .send(
                self.request(Method::GET, &path)
                    .header(reqwest::header::ACCEPT, "text/event-stream"),
            )
            .await?;
        Ok(EventStream::new(resp))
    }
}

/// One item of the event stream.
#[derive(Debug, Clone)]
pub enum StreamItem {
    Event(Box<Event>),
    /// Why the stream ends (`lagged`, `reset`, `closing`): read the snapshot again.
    Notice(StreamNotice),
}

/// A path segment, percent-encoded (task ids like `test[suite=unit]`).
fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(seg("test[suite=unit]"), "test%5Bsuite%3Dunit%5D");
        assert_eq!(seg("a b/c"), "a%20b%2Fc");
        assert_eq!(seg("20261201-101116-2a35"), "20261201-101116-2a35");
    }

    #[test]
    fn exit_codes_by_failure() {
        let denied = ClientError::Denied {
            status: 403,
            detail: String::new(),
        };
        assert_eq!(denied.exit_code(), 3);
        let missing = ClientError::Api {
            status: 404,
            error: "not_found".into(),
            detail: String::new(),
            problems: vec![],
        };
        assert_eq!(missing.exit_code(), 1);
        let down = ClientError::Connect {
            url: String::new(),
            detail: String::new(),
        };
        assert_eq!(down.exit_code(), 2);
    }
}
