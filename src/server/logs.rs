//! Logs over HTTP: a task attempt's lines from a line number on (optionally followed until the
//! attempt ends, as newline-delimited JSON), and the engine's own log of a run.

use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use super::AppState;
use super::error::ApiError;
use crate::exec::{AttemptKey, Purpose};
use crate::model::{LogLine, RunId};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct LogQuery {
    /// The attempt (1-based; default: the latest).
    pub attempt: Option<u32>,
    /// The first line number to send (default 0).
    pub since: Option<usize>,
    /// Keep the answer open and send new lines as they come, until the attempt ends; the
    /// answer is then newline-delimited JSON, one line object per line.
    #[serde(default)]
    pub follow: bool,
}

/// Lines from `since` on; `next` is the `since` that asks for newer lines only.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LogPage {
    pub run: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    pub attempt: u32,
    pub next: usize,
    /// The attempt has ended: no more lines will come.
    pub finished: bool,
    #[schema(value_type = Vec<Object>)]
    pub lines: Vec<LogLine>,
}

/// Where an attempt stands: its key and whether it is over.
async fn attempt_of(
    app: &AppState,
    run: &RunId,
    task: &str,
    attempt: Option<u32>,
) -> Result<(AttemptKey, bool), ApiError> {
    let (r, t) = (run.clone(), task.to_string());
    let found = app
        .engine
        .inspect(move |st| {
            let run = st.runs.get(&r)?;
            let idx = *run.index.by_id.get(&t)?;
            let task = &run.tasks[idx as usize];
            let latest = task.attempts.last().map_or(0, |a| a.number);
            // Before its first attempt a task is followed as attempt 1.
            let number = attempt.unwrap_or(latest.max(1));
            let finished = match task.attempts.iter().find(|a| a.number == number) {
                Some(a) => a.finished_at.is_some(),
                None => task.state.is_terminal(),
            };
            Some((idx, number, finished, latest))
        })
        .await?;
    match found {
        None => Err(ApiError::not_found(format!(
            "no live run `{run}` with a task `{task}`"
        ))),
        Some((idx, number, finished, latest)) => {
            if number == 0 || number > latest.max(1) {
                return Err(ApiError::not_found(format!(
                    "task `{task}` has no attempt {number} (it has {latest})"
                )));
            }
            Ok((
                AttemptKey {
                    run: run.clone(),
                    task: idx,
                    attempt: number,
                    purpose: Purpose::Task,
                },
                finished,
            ))
        }
    }
}

/// Lines of `key` from `since` on and the line number after them. (When lines before the
/// oldest one still in memory were asked for, a few may come twice, never missing.)
fn read(app: &AppState, key: &AttemptKey, since: usize) -> (Vec<LogLine>, usize) {
    let before = app.engine.logs().line_count(key);
    let lines = app.engine.logs().lines(key, since);
    let next = (since + lines.len()).max(before).max(since);
    (lines, next)
}

fn ndjson(lines: &[LogLine]) -> String {
    let mut out = String::new();
    for l in lines {
        if let Ok(json) = serde_json::to_string(l) {
            out.push_str(&json);
            out.push('\n');
        }
    }
    out
}

/// A task attempt's log lines: a live run's, or a finished run's from the file its journal indexes.
#[utoipa::path(get, path = "/api/v1/runs/{id}/tasks/{task}/logs", tag = "logs",
    params(("id" = String, Path), ("task" = String, Path), LogQuery),
    responses((status = 200, body = LogPage, description = "JSON; with follow=true newline-delimited JSON lines"),
        (status = 404, body = super::ErrorBody)))]
pub async fn task_log(
    State(app): State<AppState>,
    Path((id, task)): Path<(String, String)>,
    Query(q): Query<LogQuery>,
) -> Result<Response, ApiError> {
    let run = RunId::from(id.as_str());
    // Subscribe before reading so no line falls between the read and the feed.
    let feed = app.engine.logs().subscribe();
    let since = q.since.unwrap_or(0);
    let (key, finished) = match attempt_of(&app, &run, &task, q.attempt).await {
        Ok(found) => found,
        // Not a live run: a finished one's log, from the file the journal indexes.
        Err(e) => match past_log(&app, &run, &task, q.attempt, since).await? {
            Some(page) => return Ok(Json(page).into_response()),
            None => return Err(e),
        },
    };
    if !q.follow {
        let (lines, next) = read(&app, &key, since);
        return Ok(Json(LogPage {
            run: id,
            task: Some(task),
            attempt: key.attempt,
            next,
            finished,
            lines,
        })
        .into_response());
    }
    let state = Follow {
        app,
        key,
        task,
        next: since,
        feed,
        done: false,
    };
    let stream = futures_util::stream::unfold(state, |mut f| async move {
        let chunk = f.next_chunk().await?;
        Some((Ok::<_, std::convert::Infallible>(chunk), f))
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(stream),
    )
        .into_response())
}

/// A past run's task log from the journal's index of log files (the latest attempt unless
/// one is named); `None` when the journal knows no such run, task or attempt.
async fn past_log(
    app: &AppState,
    run: &RunId,
    task: &str,
    attempt: Option<u32>,
    since: usize,
) -> Result<Option<LogPage>, ApiError> {
    let Some(journal) = app.engine.journal() else {
        return Ok(None);
    };
    let id = run.clone();
    let files = journal.read(move |b| b.log_files(&id)).await?;
    let Some(file) = files
        .into_iter()
        .filter(|f| f.task == task && attempt.is_none_or(|a| a == f.attempt))
        .max_by_key(|f| f.attempt)
    else {
        return Ok(None);
    };
    let (run, number) = (run.clone(), file.attempt);
    let text = tokio::task::spawn_blocking(move || std::fs::read_to_string(&file.path))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let lines = match text {
        Ok(text) => crate::history::parse_log(&text, since, &run, None, number),
        // A task that printed nothing has no file.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(ApiError::internal(format!("cannot read the log: {e}"))),
    };
    Ok(Some(LogPage {
        run: run.to_string(),
        task: Some(task.to_string()),
        attempt: number,
        next: since + lines.len(),
        finished: true,
        lines,
    }))
}

/// The engine's log of a run this server does not hold (an earlier engine's, in the store),
/// from the file it was written to.
async fn past_engine_log(
    app: &AppState,
    run: RunId,
    since: usize,
) -> Result<Json<LogPage>, ApiError> {
    let no_run = || ApiError::not_found(format!("no run `{run}` here or in the store"));
    let Some(journal) = app.engine.journal() else {
        return Err(no_run());
    };
    let id = run.clone();
    let known = journal
        .read(move |b| Ok(b.runs()?.iter().any(|r| r.row.id == id)))
        .await?;
    if !known {
        return Err(no_run());
    }
    let path = app.engine.logs().engine_path_of(&run);
    let r = run.clone();
    let text = tokio::task::spawn_blocking(move || std::fs::read_to_string(path))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let lines = match text {
        Ok(text) => crate::history::parse_log(&text, since, &r, None, 0),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(ApiError::internal(format!("cannot read the log: {e}"))),
    };
    Ok(Json(LogPage {
        run: run.to_string(),
        task: None,
        attempt: 0,
        next: since + lines.len(),
        finished: true,
        lines,
    }))
}

/// Following one attempt's log.
struct Follow {
    app: AppState,
    key: AttemptKey,
    task: String,
    next: usize,
    feed: broadcast::Receiver<LogLine>,
    done: bool,
}

impl Follow {
    /// New lines as NDJSON, waiting until there are some; `None` once the attempt has ended and
    /// every line was sent (or the server closes).
    async fn next_chunk(&mut self) -> Option<String> {
        loop {
            if self.done || *self.app.closing.borrow() {
                return None;
            }
            let (lines, next) = read(&self.app, &self.key, self.next);
            if !lines.is_empty() {
                self.next = next;
                return Some(ndjson(&lines));
            }
            let over = match attempt_of(
                &self.app,
                &self.key.run,
                &self.task,
                Some(self.key.attempt),
            )
            .await
            {
                Ok((_, finished)) => finished,
                Err(_) => true,
            };
            if over {
                // Lines written just before the end are read once more.
                self.done = true;
                let (rest, next) = read(&self.app, &self.key, self.next);
                self.next = next;
                return (!rest.is_empty()).then(|| ndjson(&rest));
            }
            // Wait for a line of this attempt, or look again in a second (the end of an
            // attempt is an event, not a log line).
            let key = self.key.clone();
            let wait = async {
                loop {
                    match self.feed.recv().await {
                        Ok(l)
                            if l.run == key.run
                                && l.task == Some(key.task)
                                && l.attempt == key.attempt =>
                        {
                            return;
                        }
                        Ok(_) => {}
                        Err(broadcast::error::RecvError::Lagged(_)) => return,
                        Err(broadcast::error::RecvError::Closed) => {
                            std::future::pending::<()>().await
                        }
                    }
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(1), wait).await;
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct EngineLogQuery {
    /// The first line number to send (default 0).
    pub since: Option<usize>,
}

/// The engine's own log of a run (starts, exits, gate results, warnings).
#[utoipa::path(get, path = "/api/v1/runs/{id}/logs", tag = "logs",
    params(("id" = String, Path), EngineLogQuery),
    responses((status = 200, body = LogPage), (status = 404, body = super::ErrorBody)))]
pub async fn engine_log(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<EngineLogQuery>,
) -> Result<Json<LogPage>, ApiError> {
    let run = RunId::from(id.as_str());
    let key = run.clone();
    let since = q.since.unwrap_or(0);
    let live = app
        .engine
        .inspect(move |st| st.runs.get(&key).map(|r| r.state.is_terminal()))
        .await?;
    let Some(finished) = live else {
        return past_engine_log(&app, run, since).await;
    };
    let lines = app.engine.logs().engine_lines(&run, since);
    let next = since + lines.len();
    Ok(Json(LogPage {
        run: id,
        task: None,
        attempt: 0,
        next,
        finished,
        lines,
    }))
}
