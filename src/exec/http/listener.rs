//! The callback routes http agents call: `POST {base}/{token}` (a result),
//! `POST {base}/{token}/heartbeat`, `POST {base}/{token}/log` (`{"log": "..." | ["..."]}`).
//! `taskdeck serve` mounts them at `/api/v1/callbacks`; an engine without a server serves them
//! from a listener of its own on 127.0.0.1.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use super::hub::{Callback, CallbackHub, Undeliverable};
use super::reply;

/// The callback routes, relative to where they are mounted.
pub fn callback_router<S: Clone + Send + Sync + 'static>(hub: CallbackHub) -> Router<S> {
    Router::new()
        .route("/{token}", post(result))
        .route("/{token}/heartbeat", post(heartbeat))
        .route("/{token}/log", post(log))
        .with_state(hub)
}

/// Serves the callback routes on 127.0.0.1 (a free port) for the rest of the process; returns
/// their base URL.
pub(super) async fn listen_local(hub: CallbackHub) -> Result<String, String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("cannot open a port for http agents' callbacks: {e}"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("cannot read the callback listener's address: {e}"))?;
    let app: Router = Router::new().nest("/api/v1/callbacks", callback_router(hub));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!("the callback listener stopped: {e}");
        }
    });
    tracing::info!("http agents call back at http://{addr}/api/v1/callbacks");
    Ok(format!("http://{addr}/api/v1/callbacks"))
}

async fn result(
    State(hub): State<CallbackHub>,
    Path(token): Path<String>,
    body: Bytes,
) -> Response {
    let parsed = serde_json::from_slice::<Value>(&body)
        .map_err(|e| format!("the body is not JSON: {e}"))
        .and_then(|v| reply::parse_result(&v));
    match parsed {
        Ok(r) => deliver(&hub, &token, Callback::Result(r)),
        Err(e) => error(StatusCode::BAD_REQUEST, "bad_request", e),
    }
}

async fn heartbeat(State(hub): State<CallbackHub>, Path(token): Path<String>) -> Response {
    deliver(&hub, &token, Callback::Heartbeat)
}

async fn log(State(hub): State<CallbackHub>, Path(token): Path<String>, body: Bytes) -> Response {
    let lines = serde_json::from_slice::<Value>(&body)
        .map_err(|e| format!("the body is not JSON: {e}"))
        .and_then(|v| reply::log_lines(v.get("log")));
    match lines {
        Ok(lines) => deliver(&hub, &token, Callback::Log(lines)),
        Err(e) => error(StatusCode::BAD_REQUEST, "bad_request", e),
    }
}

fn deliver(hub: &CallbackHub, token: &str, cb: Callback) -> Response {
    match hub.deliver(token, cb) {
        Ok(()) => (StatusCode::OK, axum::Json(json!({"ok": true}))).into_response(),
        Err(Undeliverable::Gone) => error(
            StatusCode::GONE,
            "gone",
            "this attempt has ended (finished, cancelled, timed out or lost); drop its work",
        ),
        Err(Undeliverable::Unknown) => error(
            StatusCode::NOT_FOUND,
            "not_found",
            "no attempt has this callback token",
        ),
    }
}

fn error(status: StatusCode, code: &str, detail: impl Into<String>) -> Response {
    (
        status,
        axum::Json(json!({"error": code, "detail": detail.into()})),
    )
        .into_response()
}
