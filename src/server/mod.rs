//! `taskdeck serve`: the engine behind an HTTP API (axum on tokio). One file per job: `routes`
//! (runs, commands, agents, stats), `events` (server-sent events and the websocket), `logs`,
//! `auth` (bearer tokens and roles), `metrics` (Prometheus), `openapi` (the document, generated
//! from the handlers), `tls` (rustls) and `error` (JSON errors).
//!
//! Shutdown: `serve` stops accepting, ends every event stream, lets requests in flight finish
//! (up to `drain`), and returns; the caller then detaches the engine so unfinished runs are
//! handed back to the store for the next `taskdeck serve` or `taskdeck resume`.

pub mod auth;
pub mod error;
pub mod events;
pub mod logs;
pub mod metrics;
pub mod openapi;
pub mod routes;
pub mod tls;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::watch;

use crate::engine::EngineHandle;
pub use auth::{Role, Tokens};
pub use error::{ApiError, ErrorBody};

/// How the server behaves (everything but where it listens).
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Largest request body (a workflow), in bytes.
    pub body_limit: usize,
    /// Longest time an ordinary request may take (streams are exempt).
    pub request_timeout: Duration,
    /// Events queued for one streaming client before it is told it fell behind.
    pub event_buffer: usize,
    /// Time between heartbeats on idle event streams.
    pub heartbeat: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            body_limit: 32 << 20,
            request_timeout: Duration::from_secs(30),
            event_buffer: 4096,
            heartbeat: Duration::from_secs(15),
        }
    }
}

/// What every handler can reach; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub engine: EngineHandle,
    /// The config the engine runs with (workflows are checked against its agents).
    pub config: Arc<crate::config::Config>,
    pub tokens: Arc<Tokens>,
    pub metrics: Arc<metrics::Metrics>,
    /// Events encoded once for all streams.
    pub events: Arc<events::EventCache>,
    pub opts: Arc<ServeOptions>,
    /// Becomes `true` when the server shuts down: streams end.
    pub closing: watch::Receiver<bool>,
    /// Lets an admin ask for the shutdown over the API.
    pub shutdown: Arc<watch::Sender<bool>>,
}

impl AppState {
    pub fn new(
        engine: EngineHandle,
        config: Arc<crate::config::Config>,
        tokens: Tokens,
        opts: ServeOptions,
    ) -> AppState {
        let (tx, rx) = watch::channel(false);
        let metrics = Arc::new(metrics::Metrics::new());
        metrics::watch_engine(metrics.clone(), engine.clone(), rx.clone());
        AppState {
            engine,
            config,
            tokens: Arc::new(tokens),
            metrics,
            events: Arc::default(),
            opts: Arc::new(opts),
            closing: rx,
            shutdown: Arc::new(tx),
        }
    }

    /// Starts the shutdown (streams end, the listener stops).
    pub fn close(&self) {
        let _ = self.shutdown.send(true);
    }

    /// Resolves once the shutdown has started.
    pub async fn closed(&self) {
        let mut rx = self.closing.clone();
        let _ = rx.wait_for(|c| *c).await;
    }
}

/// Every route of the API.
pub fn router(state: AppState) -> Router {
    // Ordinary requests get a deadline; streams (events, websocket, followed logs) do not.
    let timed = Router::new()
        .route("/runs", post(routes::submit).get(routes::list_runs))
        .route("/runs/{id}", get(routes::get_run))
        .route("/runs/{id}/{action}", post(routes::run_action))
        .route(
            "/runs/{id}/tasks/{task}/{action}",
            post(routes::task_action),
        )
        .route("/runs/{id}/logs", get(logs::engine_log))
        .route("/snapshot", get(routes::snapshot))
        .route("/agents", get(routes::agents))
        .route("/stats", get(routes::stats))
        .route("/ready", get(routes::ready))
        .route("/shutdown", post(routes::shutdown))
        .route("/openapi.json", get(openapi::document))
        .nest(
            "/callbacks",
            crate::exec::http::callback_router(state.engine.callbacks().clone()),
        )
        .layer(middleware::from_fn_with_state(state.clone(), deadline));
    let streams = Router::new()
        .route("/runs/{id}/tasks/{task}/logs", get(logs::task_log))
        .route("/events", get(events::sse))
        .route("/ws", get(events::websocket_all))
        .route("/ws/runs/{id}", get(events::websocket_run));
    let api = timed.merge(streams);
    Router::new()
        .nest("/api/v1", api)
        .route("/health", get(routes::health))
        .route("/api/v1/health", get(routes::health))
        .route("/ready", get(routes::ready))
        .route("/metrics", get(metrics::render))
        .fallback(error::no_route)
        .method_not_allowed_fallback(error::no_method)
        .layer(middleware::from_fn(error::json_errors))
        .layer(middleware::from_fn_with_state(state.clone(), auth::check))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::observe,
        ))
        .layer(DefaultBodyLimit::max(state.opts.body_limit))
        .with_state(state)
}

/// Answers 503 when an ordinary request takes longer than the configured timeout.
async fn deadline(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let limit = app.opts.request_timeout;
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            format!(
                "the request took longer than {}",
                humantime::format_duration(limit)
            ),
        )
        .into_response(),
    }
}

/// Serves `router` on `listener` until `app.close()` (or the returned future is dropped).
/// In-flight requests get up to `drain` to finish once the shutdown starts.
pub async fn run<L>(listener: L, app: AppState, drain: Duration) -> std::io::Result<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    let service = router(app.clone());
    let closing = app.clone();
    let server = axum::serve(listener, service)
        .with_graceful_shutdown(async move { closing.closed().await })
        .into_future();
    tokio::pin!(server);
    tokio::select! {
        r = &mut server => return r,
        _ = app.closed() => {}
    }
    match tokio::time::timeout(drain, server).await {
        Ok(r) => r,
        Err(_) => {
            tracing::warn!("requests still running after {drain:?}; closing them");
            Ok(())
        }
    }
}
