//! The event stream over HTTP: server-sent events (`GET /events`) and websockets
//! (`GET /ws`, `GET /ws/runs/{id}`). Every event carries its `seq` (the SSE `id:`), and a client
//! resumes from the last one it saw (`Last-Event-ID` or `?since=`) with no gap and no duplicate.
//!
//! Back-pressure: each client has a bounded queue filled by its own task. The engine never
//! waits for a client; a client whose queue is full is sent a `lagged` notice and dropped, and
//! must read the snapshot again. A `since` the server cannot serve without a gap (older than
//! this engine's history, or newer than its last event) gets a `reset` notice the same way.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::AppState;
use super::error::ApiError;
use crate::model::{Event, RunId};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct EventsQuery {
    /// Send events after this sequence number (default: from now on). `Last-Event-ID` wins.
    pub since: Option<u64>,
    /// Only events of this run.
    pub run: Option<String>,
}

/// Why a stream ended early, sent as its last message.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StreamNotice {
    /// `lagged`, `reset` or `closing`.
    #[serde(rename = "type")]
    pub kind: String,
    pub detail: String,
    /// The last sequence number this stream delivered (or was asked to start after).
    pub last_seq: u64,
}

/// Events encoded to JSON once and shared by every stream: a `run_submitted` carries the whole
/// workflow, and a hundred streams should not encode it a hundred times.
#[derive(Default)]
pub struct EventCache {
    map: std::sync::Mutex<std::collections::HashMap<u64, Arc<str>>>,
}

/// Encoded events kept; past it the older half is dropped.
const CACHED_EVENTS: usize = 1 << 15;

impl EventCache {
    fn json(&self, ev: &Event) -> Arc<str> {
        if let Some(j) = self.lock().get(&ev.seq) {
            return j.clone();
        }
        // Encoded outside the lock: two streams may both encode an event, none waits.
        let json: Arc<str> = serde_json::to_string(ev).unwrap_or_default().into();
        let mut map = self.lock();
        if map.len() >= CACHED_EVENTS {
            let floor = ev.seq.saturating_sub(CACHED_EVENTS as u64 / 2);
            map.retain(|seq, _| *seq >= floor);
        }
        map.insert(ev.seq, json.clone());
        json
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<u64, Arc<str>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }
}

const OPEN: u8 = 0;
const LAGGED: u8 = 1;
const RESET: u8 = 2;
const CLOSING: u8 = 3;

/// One client's queue of events and why it ended.
struct Feed {
    cache: Arc<EventCache>,
    rx: mpsc::Receiver<Arc<Event>>,
    end: Arc<AtomicU8>,
    since: u64,
    buffer: usize,
    last: u64,
}

impl Feed {
    /// Subscribes from `since` and fills a bounded queue from a task of its own.
    async fn start(app: &AppState, since: u64, run: Option<RunId>) -> Result<Feed, ApiError> {
        let buffer = app.opts.event_buffer.max(1);
        let (tx, rx) = mpsc::channel(buffer);
        let end = Arc::new(AtomicU8::new(OPEN));
        let feed = Feed {
            cache: app.events.clone(),
            rx,
            end: end.clone(),
            since,
            buffer,
            last: since,
        };
        let now = app.engine.inspect(|st| st.last_seq).await?;
        if since > now {
            // A client of an earlier server (or store): these sequence numbers mean nothing here.
            end.store(RESET, Ordering::SeqCst);
            return Ok(feed);
        }
        let mut sub = app.engine.subscribe(since).await?;
        let flag = end;
        let mut closing = app.closing.clone();
        let metrics = app.metrics.clone();
        metrics.stream_opened();
        tokio::spawn(async move {
            let mut first = true;
            loop {
                let ev = tokio::select! {
                    ev = sub.next() => ev,
                    _ = closing.wait_for(|c| *c) => {
                        flag.store(CLOSING, Ordering::SeqCst);
                        break;
                    }
                    _ = tx.closed() => break,
                };
                let Some(ev) = ev else {
                    flag.store(CLOSING, Ordering::SeqCst);
                    break;
                };
                if first && ev.seq > since + 1 {
                    // Events between `since` and this one are not held here any more.
                    flag.store(RESET, Ordering::SeqCst);
                    break;
                }
                first = false;
                if run.as_ref().is_some_and(|r| *r != ev.run) {
                    continue;
                }
                match tx.try_send(ev) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        metrics.stream_lagged();
                        flag.store(LAGGED, Ordering::SeqCst);
                        break;
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => break,
                }
            }
            metrics.stream_closed();
        });
        Ok(feed)
    }

    /// The next event, or the notice that ends the stream (`None` after that).
    async fn next(&mut self) -> Option<Result<Arc<Event>, StreamNotice>> {
        if let Some(ev) = self.rx.recv().await {
            self.last = ev.seq;
            return Some(Ok(ev));
        }
        let (kind, detail) = match self.end.swap(OPEN, Ordering::SeqCst) {
            LAGGED => (
                "lagged",
                format!(
                    "this client fell more than {} events behind the engine; read the snapshot again (GET /api/v1/snapshot or /api/v1/runs/ID) and follow from its sequence number",
                    self.buffer
                ),
            ),
            RESET => (
                "reset",
                format!(
                    "events after {} are not all held by this server (it restarted, or the number is from another server); read the snapshot again and follow from its sequence number",
                    self.since
                ),
            ),
            CLOSING => ("closing", "the server is shutting down".to_string()),
            _ => return None,
        };
        Some(Err(StreamNotice {
            kind: kind.into(),
            detail,
            last_seq: self.last,
        }))
    }
}

/// `Last-Event-ID` (a reconnecting EventSource), else `?since=`, else from now on.
async fn start_seq(
    app: &AppState,
    headers: &HeaderMap,
    since: Option<u64>,
) -> Result<u64, ApiError> {
    if let Some(v) = headers.get("last-event-id") {
        return v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| {
                ApiError::bad_request("Last-Event-ID must be an event's sequence number")
            });
    }
    match since {
        Some(s) => Ok(s),
        None => Ok(app.engine.inspect(|st| st.last_seq).await?),
    }
}

/// Server-sent events: `id:` is the event's seq, `data:` the event as JSON. A stream that
/// ends early says why in a last `event: lagged|reset|closing`.
#[utoipa::path(get, path = "/api/v1/events", tag = "events", params(EventsQuery),
    responses((status = 200, content_type = "text/event-stream", description = "the events")))]
pub async fn sse(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<EventsQuery>,
) -> Result<Response, ApiError> {
    let since = start_seq(&app, &headers, q.since).await?;
    let feed = Feed::start(&app, since, q.run.map(|r| RunId::from(r.as_str()))).await?;
    let stream = futures_util::stream::unfold(feed, |mut feed| async move {
        let item = match feed.next().await? {
            Ok(ev) => {
                let json = feed.cache.json(&ev);
                SseEvent::default().id(ev.seq.to_string()).data(&*json)
            }
            Err(notice) => SseEvent::default()
                .event(notice.kind.clone())
                .data(serde_json::to_string(&notice).unwrap_or_default()),
        };
        Some((Ok::<_, std::convert::Infallible>(item), feed))
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(app.opts.heartbeat))
        .into_response())
}

/// The same events over a websocket, every run's.
#[utoipa::path(get, path = "/api/v1/ws", tag = "events", params(EventsQuery),
    responses((status = 101, description = "websocket: one JSON event per text message")))]
pub async fn websocket_all(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<EventsQuery>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let ws = ws.map_err(not_websocket)?;
    let since = start_seq(&app, &headers, q.since).await?;
    let feed = Feed::start(&app, since, q.run.map(|r| RunId::from(r.as_str()))).await?;
    let beat = app.opts.heartbeat;
    Ok(ws.on_upgrade(move |socket| pump(socket, feed, beat)))
}

/// The events of one run over a websocket.
#[utoipa::path(get, path = "/api/v1/ws/runs/{id}", tag = "events",
    params(("id" = String, Path), ("since" = Option<u64>, Query)),
    responses((status = 101, description = "websocket: one JSON event per text message"),
        (status = 404, body = super::ErrorBody)))]
pub async fn websocket_run(
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(q): Query<EventsQuery>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let run = RunId::from(id.as_str());
    let key = run.clone();
    if !app
        .engine
        .inspect(move |st| st.runs.contains_key(&key))
        .await?
    {
        return Err(ApiError::not_found(format!(
            "no live run `{id}` (finished runs of earlier servers: GET /api/v1/runs/{id})"
        )));
    }
    let ws = ws.map_err(not_websocket)?;
    let since = start_seq(&app, &headers, q.since).await?;
    let feed = Feed::start(&app, since, Some(run)).await?;
    let beat = app.opts.heartbeat;
    Ok(ws.on_upgrade(move |socket| pump(socket, feed, beat)))
}

fn not_websocket(e: WebSocketUpgradeRejection) -> ApiError {
    ApiError::new(
        e.status(),
        "not_websocket",
        format!("{}: connect with a websocket client", e.body_text()),
    )
}

/// Sends events as text messages and pings while idle; the last message of a stream that ends
/// early is its notice, then a close frame.
async fn pump(mut socket: WebSocket, mut feed: Feed, beat: std::time::Duration) {
    let mut ping = tokio::time::interval(beat);
    ping.tick().await;
    loop {
        tokio::select! {
            item = feed.next() => {
                let msg = match item {
                    Some(Ok(ev)) => Message::Text(feed.cache.json(&ev).to_string().into()),
                    Some(Err(notice)) => {
                        let text = serde_json::to_string(&notice).unwrap_or_default();
                        let _ = socket.send(Message::Text(text.into())).await;
                        let _ = socket
                            .send(Message::Close(Some(CloseFrame {
                                code: 1013,
                                reason: notice.kind.into(),
                            })))
                            .await;
                        return;
                    }
                    None => return,
                };
                if socket.send(msg).await.is_err() {
                    return;
                }
            }
            _ = ping.tick() => {
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    return;
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}
