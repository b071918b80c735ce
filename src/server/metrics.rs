//! `/metrics` in the Prometheus (OpenMetrics) text format, with `prometheus-client`: runs and
//! tasks by state, queue depth, agent slots and utilisation (read from the engine at scrape
//! time), task durations and the event count (from the event stream), API latency and stream
//! clients (from the server).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use super::AppState;
use super::error::ApiError;
use crate::engine::EngineHandle;
use crate::model::{EventKind, RunId, RunState, TaskIdx, TaskState};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AgentLabel {
    agent: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabel {
    action: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabel {
    model: String,
    /// prompt | completion
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabel {
    model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    method: String,
    route: String,
    status: u16,
}

fn duration_buckets() -> Histogram {
    // 10 ms .. ~5.5 h
    Histogram::new(exponential_buckets(0.01, 2.0, 21))
}

fn latency_buckets() -> Histogram {
    // 0.1 ms .. ~6.5 s
    Histogram::new(exponential_buckets(0.0001, 2.0, 17))
}

pub struct Metrics {
    registry: Registry,
    runs: Family<StateLabel, Gauge>,
    tasks: Family<StateLabel, Gauge>,
    queue_depth: Gauge,
    active: Gauge,
    agent_slots: Family<AgentLabel, Gauge>,
    agent_used: Family<AgentLabel, Gauge>,
    agent_utilisation: Family<AgentLabel, Gauge<f64, AtomicU64>>,
    events: Counter,
    last_seq: Gauge,
    task_duration: Family<OutcomeLabel, Histogram, fn() -> Histogram>,
    submitted: Counter,
    commands: Family<ActionLabel, Counter>,
    requests: Family<RouteLabel, Histogram, fn() -> Histogram>,
    streams: Gauge,
    lagged: Counter,
    llm_tokens: Family<TokenLabel, Counter>,
    llm_latency: Family<ModelLabel, Histogram, fn() -> Histogram>,
}

/// What an `llm` attempt's outputs say about its cost: model, prompt and completion tokens,
/// latency in seconds. `None` for outputs that are not an llm reply's.
fn llm_usage(
    outputs: &serde_json::Map<String, serde_json::Value>,
) -> Option<(String, u64, u64, f64)> {
    let model = outputs.get("model")?.as_str()?;
    let usage = outputs.get("usage")?.as_object()?;
    let latency_ms = outputs.get("latency_ms")?.as_u64()?;
    let n = |k: &str| {
        usage
            .get(k)
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0)
    };
    Some((
        model.to_string(),
        n("prompt_tokens"),
        n("completion_tokens"),
        latency_ms as f64 / 1000.0,
    ))
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut m = Metrics {
            registry: Registry::with_prefix("taskdeck"),
            runs: Family::default(),
            tasks: Family::default(),
            queue_depth: Gauge::default(),
            active: Gauge::default(),
            agent_slots: Family::default(),
            agent_used: Family::default(),
            agent_utilisation: Family::default(),
            events: Counter::default(),
            last_seq: Gauge::default(),
            task_duration: Family::new_with_constructor(duration_buckets as fn() -> Histogram),
            submitted: Counter::default(),
            commands: Family::default(),
            requests: Family::new_with_constructor(latency_buckets as fn() -> Histogram),
            streams: Gauge::default(),
            lagged: Counter::default(),
            llm_tokens: Family::default(),
            llm_latency: Family::new_with_constructor(duration_buckets as fn() -> Histogram),
        };
        let r = &mut m.registry;
        r.register("runs", "Runs of this server by state", m.runs.clone());
        r.register("tasks", "Tasks of live runs by state", m.tasks.clone());
        r.register(
            "queue_depth",
            "Tasks ready and waiting for an agent slot",
            m.queue_depth.clone(),
        );
        r.register(
            "active_tasks",
            "Tasks holding an agent slot",
            m.active.clone(),
        );
        r.register("agent_slots", "Slots of each agent", m.agent_slots.clone());
        r.register(
            "agent_slots_used",
            "Slots of each agent in use",
            m.agent_used.clone(),
        );
        r.register(
            "agent_utilisation_ratio",
            "Share of each agent's slots in use (0..1)",
            m.agent_utilisation.clone(),
        );
        r.register(
            "events",
            "Engine events since the server started (rate() gives events/s)",
            m.events.clone(),
        );
        r.register(
            "last_seq",
            "Sequence number of the last event",
            m.last_seq.clone(),
        );
        r.register(
            "task_duration_seconds",
            "Duration of finished task attempts, by outcome",
            m.task_duration.clone(),
        );
        r.register(
            "runs_submitted",
            "Runs submitted over the API",
            m.submitted.clone(),
        );
        r.register(
            "commands",
            "Operator commands by action",
            m.commands.clone(),
        );
        r.register(
            "http_request_duration_seconds",
            "API latency by method, route and status",
            m.requests.clone(),
        );
        r.register(
            "event_streams",
            "Connected event stream clients (SSE and websocket)",
            m.streams.clone(),
        );
        r.register(
            "llm_tokens",
            "Tokens used by llm agents, by model and kind (prompt, completion)",
            m.llm_tokens.clone(),
        );
        r.register(
            "llm_latency_seconds",
            "Latency of llm agents' replies, by model",
            m.llm_latency.clone(),
        );
        r.register(
            "event_streams_lagged",
            "Event stream clients dropped for falling behind",
            m.lagged.clone(),
        );
        m
    }

    pub fn submitted(&self) {
        self.submitted.inc();
    }

    pub fn command(&self, action: &str) {
        self.commands
            .get_or_create(&ActionLabel {
                action: action.to_string(),
            })
            .inc();
    }

    /// Counts an llm reply's tokens and latency (any other outputs are ignored).
    fn llm_reply(&self, outputs: &serde_json::Map<String, serde_json::Value>) {
        let Some((model, prompt, completion, secs)) = llm_usage(outputs) else {
            return;
        };
        for (kind, n) in [("prompt", prompt), ("completion", completion)] {
            self.llm_tokens
                .get_or_create(&TokenLabel {
                    model: model.clone(),
                    kind: kind.into(),
                })
                .inc_by(n);
        }
        self.llm_latency
            .get_or_create(&ModelLabel { model })
            .observe(secs);
    }

    pub fn stream_opened(&self) {
        self.streams.inc();
    }

    pub fn stream_closed(&self) {
        self.streams.dec();
    }

    pub fn stream_lagged(&self) {
        self.lagged.inc();
    }

    /// Reads the engine's gauges (counts by state, queue, agents).
    fn refresh(&self, st: &crate::engine::state::EngineState) {
        let stats = super::routes::stats_of(st);
        for s in [
            RunState::Pending,
            RunState::Running,
            RunState::Paused,
            RunState::Succeeded,
            RunState::Failed,
            RunState::Cancelled,
        ] {
            let n = stats.runs.get(s.as_str()).copied().unwrap_or(0);
            self.runs
                .get_or_create(&StateLabel {
                    state: s.as_str().into(),
                })
                .set(n.into());
        }
        for s in TaskState::ALL {
            let n = stats.tasks.get(s.as_str()).copied().unwrap_or(0);
            self.tasks
                .get_or_create(&StateLabel {
                    state: s.as_str().into(),
                })
                .set(n.into());
        }
        self.queue_depth.set(stats.queue_depth.into());
        self.active.set(stats.active.into());
        self.last_seq.set(stats.last_seq as i64);
        for a in st.agents.values() {
            let label = AgentLabel {
                agent: a.name.to_string(),
            };
            let slots = a.spec.slots;
            self.agent_slots.get_or_create(&label).set(slots.into());
            self.agent_used
                .get_or_create(&label)
                .set(a.slots_used.into());
            let ratio = if slots == 0 {
                0.0
            } else {
                f64::from(a.slots_used) / f64::from(slots)
            };
            self.agent_utilisation.get_or_create(&label).set(ratio);
        }
    }

    fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// Follows the engine's events for the counters and histograms that come from them.
pub fn watch_engine(
    metrics: Arc<Metrics>,
    engine: EngineHandle,
    mut closing: watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        let Ok(from) = engine.inspect(|st| st.last_seq).await else {
            return;
        };
        let Ok(mut sub) = engine.subscribe(from).await else {
            return;
        };
        let mut started: HashMap<(RunId, TaskIdx, u32), u64> = HashMap::new();
        // Multi-agent attempts: each branch's reply is counted, so the task's (the winner's
        // outputs again) is not.
        let mut branched: std::collections::HashSet<(RunId, TaskIdx, u32)> = Default::default();
        loop {
            let ev = tokio::select! {
                ev = sub.next() => ev,
                _ = closing.wait_for(|c| *c) => None,
            };
            let Some(ev) = ev else { return };
            metrics.events.inc();
            let (task, attempt, outcome) = match &ev.kind {
                EventKind::TaskStarted { task, attempt, .. } => {
                    started.insert((ev.run.clone(), *task, *attempt), ev.ts);
                    continue;
                }
                EventKind::BranchFinished {
                    task,
                    attempt,
                    outputs,
                    ..
                } => {
                    branched.insert((ev.run.clone(), *task, *attempt));
                    metrics.llm_reply(outputs);
                    continue;
                }
                EventKind::TaskSucceeded {
                    task,
                    attempt,
                    outputs,
                    ..
                } => {
                    if !branched.remove(&(ev.run.clone(), *task, *attempt)) {
                        metrics.llm_reply(outputs);
                    }
                    (*task, *attempt, "succeeded")
                }
                EventKind::TaskFailed {
                    task,
                    attempt,
                    outcome,
                    ..
                } => (
                    *task,
                    *attempt,
                    match outcome {
                        crate::model::AttemptOutcome::TimedOut => "timed_out",
                        crate::model::AttemptOutcome::Cancelled => "cancelled",
                        crate::model::AttemptOutcome::Interrupted => "interrupted",
                        _ => "failed",
                    },
                ),
                EventKind::RunFinished { .. } => {
                    started.retain(|(r, _, _), _| *r != ev.run);
                    branched.retain(|(r, _, _)| *r != ev.run);
                    continue;
                }
                _ => continue,
            };
            if let Some(t0) = started.remove(&(ev.run.clone(), task, attempt)) {
                let secs = ev.ts.saturating_sub(t0) as f64 / 1000.0;
                metrics
                    .task_duration
                    .get_or_create(&OutcomeLabel {
                        outcome: outcome.into(),
                    })
                    .observe(secs);
            }
        }
    });
}

/// Records every request's latency by its route pattern (not the raw path: run ids would
/// make a label per run).
pub async fn observe(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched".to_string(), |p| p.as_str().to_string());
    let resp = next.run(req).await;
    app.metrics
        .requests
        .get_or_create(&RouteLabel {
            method,
            route,
            status: resp.status().as_u16(),
        })
        .observe(start.elapsed().as_secs_f64());
    resp
}

/// Prometheus text.
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, content_type = "application/openmetrics-text", description = "the metrics")))]
pub async fn render(State(app): State<AppState>) -> Result<Response, ApiError> {
    let metrics = app.metrics.clone();
    let m = metrics.clone();
    app.engine.inspect(move |st| m.refresh(st)).await?;
    let text = metrics
        .encode()
        .map_err(|e| ApiError::internal(format!("cannot encode the metrics: {e}")))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llm_replies_count_tokens_and_latency_by_model() {
        let m = Metrics::new();
        let reply: serde_json::Map<String, serde_json::Value> =
            serde_json::from_value(serde_json::json!({
                "text": "hi", "model": "qwen", "latency_ms": 830,
                "usage": {"prompt_tokens": 12, "completion_tokens": 40, "total_tokens": 52},
            }))
            .unwrap();
        m.llm_reply(&reply);
        m.llm_reply(&reply);
        // A command task's outputs are not an llm reply.
        m.llm_reply(&serde_json::from_value(serde_json::json!({"summary": "x"})).unwrap());
        let text = m.encode().unwrap();
        assert!(
            text.contains(r#"taskdeck_llm_tokens_total{model="qwen",kind="prompt"} 24"#),
            "{text}"
        );
        assert!(
            text.contains(r#"taskdeck_llm_tokens_total{model="qwen",kind="completion"} 80"#),
            "{text}"
        );
        assert!(
            text.contains(r#"taskdeck_llm_latency_seconds_count{model="qwen"} 2"#),
            "{text}"
        );
    }
}
