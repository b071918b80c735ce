//! Runs, commands, agents, stats, health: the request/response part of the API.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::AppState;
use super::error::ApiError;
use crate::engine::state::{EngineState, Limits, Run};
use crate::model::{Command, Millis, RunId, TaskState};
use crate::spec::{self, Format, LoadError};

/// The answer to a submission.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Submitted {
    /// The new run's id.
    pub id: String,
    pub workflow: String,
    pub tasks: usize,
}

/// One run in a listing.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunSummary {
    pub id: String,
    pub workflow: String,
    /// pending, running, paused, succeeded, failed, cancelled, or interrupted (unfinished and
    /// executed by nobody: `taskdeck resume` or a restarted server takes it over).
    pub state: String,
    pub submitted_at: Millis,
    pub finished_at: Option<Millis>,
    pub tasks: u32,
    /// Tasks per state (states with at least one task).
    pub counts: BTreeMap<String, u32>,
    /// Executed by this server (its events stream live).
    pub live: bool,
    /// Which version of this workflow name the run used: 1 for the first the store saw, 2 for
    /// the next, ... (absent without a store).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunList {
    pub runs: Vec<RunSummary>,
}

/// A run's whole state at a sequence number: fold events after `seq` into it to follow it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RunSnapshot {
    pub seq: u64,
    /// Executed by this server (false: read back from the store's journal).
    pub live: bool,
    #[schema(value_type = Object)]
    pub run: Run,
}

/// What a command did.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Done {
    pub run: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    pub action: String,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Stats {
    pub runs: BTreeMap<String, u32>,
    pub tasks: BTreeMap<String, u32>,
    /// Tasks holding an agent slot.
    pub active: u32,
    /// Tasks ready and waiting for a slot.
    pub queue_depth: u32,
    /// The sequence number of the last event.
    pub last_seq: u64,
    pub agents: usize,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Health {
    pub status: String,
    pub version: String,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    /// Show at most this many runs (newest first; default 100).
    pub limit: Option<usize>,
}

/// Start a run of a workflow given as TOML (`Content-Type: application/toml`) or JSON.
#[utoipa::path(post, path = "/api/v1/runs", tag = "runs",
    request_body(content = String, description = "the workflow file", content_type = "application/toml"),
    responses(
        (status = 201, body = Submitted, description = "the run started"),
        (status = 413, body = super::ErrorBody, description = "the body is over the size limit"),
        (status = 415, body = super::ErrorBody, description = "neither TOML nor JSON"),
        (status = 422, body = super::ErrorBody, description = "the workflow has problems (all listed)"),
    ))]
pub async fn submit(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Submitted>), ApiError> {
    let body = body.map_err(|e| {
        let status = e.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                status,
                "too_large",
                format!(
                    "the workflow is larger than the limit of {} bytes (serve --max-body)",
                    app.opts.body_limit
                ),
            )
        } else {
            ApiError::new(status, "bad_request", e.body_text())
        }
    })?;
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("the workflow is not UTF-8 text"))?;
    let format = body_format(&headers, text)?;
    let name = match format {
        Format::Toml => "request.toml",
        Format::Json => "request.json",
    };
    let workflow = match spec::parse_str(text, name, format, &app.config) {
        Ok(wf) => wf,
        Err(LoadError::Invalid(diags)) => {
            let mut err = ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_workflow",
                format!(
                    "the workflow has {} problem{}",
                    diags.len(),
                    if diags.len() == 1 { "" } else { "s" }
                ),
            );
            err.body.problems = diags.iter().map(|d| d.to_string()).collect();
            return Err(err);
        }
        Err(e) => return Err(ApiError::bad_request(e.to_string())),
    };
    let name = workflow.name.clone();
    let tasks = workflow.tasks.len();
    let id = app.engine.submit(workflow, Some(text.to_string())).await?;
    app.metrics.submitted();
    Ok((
        StatusCode::CREATED,
        Json(Submitted {
            id: id.to_string(),
            workflow: name,
            tasks,
        }),
    ))
}

/// TOML or JSON, from the content type; without one, a body starting with `{` is JSON.
fn body_format(headers: &HeaderMap, text: &str) -> Result<Format, ApiError> {
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    match ctype.as_deref() {
        Some("application/toml" | "text/toml" | "application/x-toml") => Ok(Format::Toml),
        Some("application/json" | "text/json") => Ok(Format::Json),
        None | Some("" | "text/plain" | "application/octet-stream") => {
            Ok(if text.trim_start().starts_with('{') {
                Format::Json
            } else {
                Format::Toml
            })
        }
        Some(other) => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("a workflow is sent as application/toml or application/json, not {other}"),
        )),
    }
}

/// Runs of this server and of the store, newest first.
#[utoipa::path(get, path = "/api/v1/runs", tag = "runs", params(ListQuery),
    responses((status = 200, body = RunList)))]
pub async fn list_runs(
    State(app): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<RunList>, ApiError> {
    let limit = q.limit.unwrap_or(100);
    let mut runs: Vec<RunSummary> = app
        .engine
        .inspect(|st| st.runs.values().map(summary).collect::<Vec<_>>())
        .await?;
    if let Some(journal) = app.engine.journal() {
        let now = crate::model::now_millis();
        let stored = journal.read(|b| b.runs()).await?;
        for rec in stored {
            if let Some(live) = runs.iter_mut().find(|r| r.id == rec.row.id.as_str()) {
                live.version = Some(rec.version_no);
                continue;
            }
            runs.push(RunSummary {
                id: rec.row.id.to_string(),
                workflow: rec.row.workflow.clone(),
                state: rec.display_state(now).to_string(),
                submitted_at: rec.row.submitted_at,
                finished_at: rec.row.finished_at,
                tasks: rec.row.tasks,
                counts: rec.row.counts.clone(),
                live: false,
                version: Some(rec.version_no),
            });
        }
    }
    runs.sort_by(|a, b| b.submitted_at.cmp(&a.submitted_at).then(b.id.cmp(&a.id)));
    runs.truncate(limit);
    Ok(Json(RunList { runs }))
}

fn summary(run: &Run) -> RunSummary {
    RunSummary {
        id: run.id.to_string(),
        workflow: run.workflow.name.clone(),
        state: run.state.as_str().to_string(),
        submitted_at: run.submitted_at,
        finished_at: run.finished_at,
        tasks: run.tasks.len() as u32,
        counts: TaskState::ALL
            .iter()
            .zip(run.counts)
            .filter(|(_, n)| *n > 0)
            .map(|(s, n)| (s.as_str().to_string(), n))
            .collect(),
        live: true,
        version: None,
    }
}

/// One run's whole state and the sequence number it stands at.
#[utoipa::path(get, path = "/api/v1/runs/{id}", tag = "runs",
    params(("id" = String, Path, description = "run id")),
    responses((status = 200, body = RunSnapshot), (status = 404, body = super::ErrorBody)))]
pub async fn get_run(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<RunSnapshot>, ApiError> {
    let wanted = RunId::from(id.as_str());
    let key = wanted.clone();
    let live = app
        .engine
        .inspect(move |st| st.runs.get(&key).map(|r| (st.last_seq, r.clone())))
        .await?;
    if let Some((seq, run)) = live {
        return Ok(Json(RunSnapshot {
            seq,
            live: true,
            run,
        }));
    }
    let Some(journal) = app.engine.journal() else {
        return Err(ApiError::not_found(format!("no run `{id}`")));
    };
    let (run, seq) = journal
        .read(move |b| fold_stored(b, &wanted))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no run `{id}`")))?;
    Ok(Json(RunSnapshot {
        seq,
        live: false,
        run,
    }))
}

/// The engine's whole state (every live run, agents, limits) at `last_seq`: what a console
/// starts from before following `/events?since=last_seq`.
#[utoipa::path(get, path = "/api/v1/snapshot", tag = "runs",
    responses((status = 200, body = Object, description = "the engine state; `last_seq` is its sequence number")))]
pub async fn snapshot(State(app): State<AppState>) -> Result<Json<Value>, ApiError> {
    let st = app.engine.snapshot().await?;
    let value = serde_json::to_value(&*st)
        .map_err(|e| ApiError::internal(format!("cannot encode the state: {e}")))?;
    Ok(Json(value))
}

/// Pause, resume or cancel a whole run.
#[utoipa::path(post, path = "/api/v1/runs/{id}/{action}", tag = "commands",
    params(("id" = String, Path), ("action" = String, Path, description = "pause | resume | cancel")),
    responses((status = 200, body = Done), (status = 404, body = super::ErrorBody), (status = 409, body = super::ErrorBody)))]
pub async fn run_action(
    State(app): State<AppState>,
    Path((id, action)): Path<(String, String)>,
) -> Result<Json<Done>, ApiError> {
    let run = RunId::from(id.as_str());
    let cmd = match action.as_str() {
        "pause" => Command::PauseRun { run },
        "resume" => Command::ResumeRun { run },
        "cancel" => Command::CancelRun { run },
        other => {
            return Err(ApiError::not_found(format!(
                "no run action `{other}`: use pause, resume or cancel"
            )));
        }
    };
    app.engine.command(cmd).await?;
    app.metrics.command(&action);
    Ok(Json(Done {
        run: id,
        task: None,
        action,
    }))
}

/// Retry, re-run from, cancel, pause, resume or approve one task.
#[utoipa::path(post, path = "/api/v1/runs/{id}/tasks/{task}/{action}", tag = "commands",
    params(("id" = String, Path), ("task" = String, Path),
        ("action" = String, Path, description = "retry | rerun | cancel | pause | resume | approve")),
    responses((status = 200, body = Done), (status = 404, body = super::ErrorBody), (status = 409, body = super::ErrorBody)))]
pub async fn task_action(
    State(app): State<AppState>,
    Path((id, task, action)): Path<(String, String, String)>,
) -> Result<Json<Done>, ApiError> {
    let run = RunId::from(id.as_str());
    let t = task.clone();
    let cmd = match action.as_str() {
        "retry" => Command::RetryTask { run, task: t },
        "rerun" => Command::RerunFrom { run, task: t },
        "cancel" => Command::CancelTask { run, task: t },
        "pause" => Command::PauseTask { run, task: t },
        "resume" => Command::ResumeTask { run, task: t },
        "approve" => Command::Approve { run, task: t },
        other => {
            return Err(ApiError::not_found(format!(
                "no task action `{other}`: use retry, rerun, cancel, pause, resume or approve"
            )));
        }
    };
    app.engine.command(cmd).await?;
    app.metrics.command(&action);
    Ok(Json(Done {
        run: id,
        task: Some(task),
        action,
    }))
}

/// The agents: capabilities, slots in use, success rate.
#[utoipa::path(get, path = "/api/v1/agents", tag = "engine",
    responses((status = 200, body = Object, description = "a list of agents")))]
pub async fn agents(State(app): State<AppState>) -> Result<Json<Value>, ApiError> {
    let agents = app
        .engine
        .inspect(|st| serde_json::to_value(st.agents.values().collect::<Vec<_>>()))
        .await?
        .map_err(|e| ApiError::internal(format!("cannot encode the agents: {e}")))?;
    Ok(Json(agents))
}

/// Counts of runs and tasks by state, queue depth, the last sequence number.
#[utoipa::path(get, path = "/api/v1/stats", tag = "engine", responses((status = 200, body = Stats)))]
pub async fn stats(State(app): State<AppState>) -> Result<Json<Stats>, ApiError> {
    Ok(Json(app.engine.inspect(stats_of).await?))
}

pub fn stats_of(st: &crate::engine::state::EngineState) -> Stats {
    let mut runs = BTreeMap::new();
    let mut tasks = BTreeMap::new();
    let mut counts = [0u32; 13];
    for r in st.runs.values() {
        *runs.entry(r.state.as_str().to_string()).or_insert(0) += 1;
        for (i, n) in r.counts.iter().enumerate() {
            counts[i] += n;
        }
    }
    for (s, n) in TaskState::ALL.iter().zip(counts) {
        if n > 0 {
            tasks.insert(s.as_str().to_string(), n);
        }
    }
    Stats {
        runs,
        tasks,
        active: st.active,
        queue_depth: counts[TaskState::Ready as usize],
        last_seq: st.last_seq,
        agents: st.agents.len(),
    }
}

/// Liveness: the process answers. Needs no token.
#[utoipa::path(get, path = "/health", tag = "health", responses((status = 200, body = Health)))]
pub async fn health() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

/// Readiness: the engine answers and the store can be read.
#[utoipa::path(get, path = "/ready", tag = "health",
    responses((status = 200, body = Health), (status = 503, body = super::ErrorBody)))]
pub async fn ready(State(app): State<AppState>) -> Result<Json<Health>, ApiError> {
    let wait = std::time::Duration::from_secs(5);
    if *app.closing.borrow() {
        return Err(ApiError::unavailable("the server is shutting down"));
    }
    tokio::time::timeout(wait, app.engine.inspect(|st| st.last_seq))
        .await
        .map_err(|_| ApiError::unavailable("the engine does not answer"))??;
    if let Some(journal) = app.engine.journal() {
        tokio::time::timeout(wait, journal.call(|b| b.max_seq()))
            .await
            .map_err(|_| ApiError::unavailable("the store does not answer"))?
            .map_err(|e| ApiError::unavailable(format!("the store cannot be read: {e}")))?;
    }
    Ok(Json(Health {
        status: "ready".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    }))
}

/// Stop the server: event streams end, requests in flight finish, unfinished runs are handed
/// back to the store (the next `taskdeck serve` or `taskdeck resume` continues them).
#[utoipa::path(post, path = "/api/v1/shutdown", tag = "engine",
    responses((status = 202, body = Health)))]
pub async fn shutdown(State(app): State<AppState>) -> (StatusCode, Json<Health>) {
    app.close();
    (
        StatusCode::ACCEPTED,
        Json(Health {
            status: "shutting down".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        }),
    )
}

/// A run of the store folded from its journaled events, with the last sequence number seen
/// (events after a damaged one are left out).
fn fold_stored(
    b: &mut dyn crate::store::Backend,
    id: &RunId,
) -> crate::store::Result<Option<(Run, u64)>> {
    let mut state = EngineState::new(
        Limits {
            max_parallel: u32::MAX,
            pool: Default::default(),
        },
        [],
    );
    let mut seq = 0;
    for e in b.run_events(id)? {
        match e.event {
            Ok(ev) => {
                seq = ev.seq;
                state.apply(&ev);
            }
            Err(_) => break,
        }
    }
    Ok(state.runs.swap_remove(id).map(|r| (r, seq)))
}
