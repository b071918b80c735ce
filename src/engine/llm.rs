//! What an `llm` agent sends for a `prompt` task: the agent's settings, the rendered prompt, and
//! the API key rendered from the run's secrets.

use serde_json::{Map, Value};

use super::context::Secrets;
use crate::exec::LlmCall;
use crate::spec::{AgentSpec, TaskSpec};

/// The call for one attempt. The API key template sees every secret of the run (not only those
/// the task reads): the key belongs to the agent, and the task never sees it.
pub fn call(
    agent: &str,
    spec: &AgentSpec,
    task: &TaskSpec,
    prompt: String,
    secrets: &Secrets,
    ctx: &Value,
) -> Result<LlmCall, String> {
    let endpoint = spec
        .endpoint
        .clone()
        .ok_or_else(|| format!("agent `{agent}` has no `endpoint`"))?;
    let model = spec
        .model
        .clone()
        .ok_or_else(|| format!("agent `{agent}` has no `model`"))?;
    let api_key = match &spec.api_key {
        Some(template) => Some(render_api_key(agent, template, secrets, ctx)?),
        None => None,
    };
    Ok(LlmCall {
        endpoint,
        model,
        api_key,
        system: spec.system.clone(),
        prompt,
        temperature: spec.temperature,
        max_tokens: spec.max_tokens,
        format: task.format,
        schema: task.schema.clone(),
    })
}

/// Renders an agent's `api_key` template. It sees every secret of the run (not only those the
/// task reads): the key belongs to the agent, and the task never sees it.
pub fn render_api_key(
    agent: &str,
    template: &str,
    secrets: &Secrets,
    ctx: &Value,
) -> Result<String, String> {
    let mut key_ctx = ctx.clone();
    let all: Map<String, Value> = secrets
        .iter()
        .filter_map(|(k, v)| {
            v.as_ref()
                .ok()
                .map(|v| (k.clone(), Value::String(v.clone())))
        })
        .collect();
    key_ctx["secrets"] = Value::Object(all);
    crate::template::render(template, &key_ctx).map_err(|e| {
        let unset: Vec<&String> = secrets
            .iter()
            .filter_map(|(k, v)| v.as_ref().err().map(|_| k))
            .collect();
        if unset.is_empty() {
            format!("cannot render agent `{agent}`'s api_key: {e}")
        } else {
            format!("cannot render agent `{agent}`'s api_key: {e} (unset secrets: {unset:?})")
        }
    })
}

/// `` `ask` attempt 1: 12 prompt + 40 completion tokens in 830 ms (model) `` for the engine log.
pub fn usage_line(task: &str, attempt: u32, outputs: &Map<String, Value>) -> String {
    let n = |k: &str| {
        outputs
            .get("usage")
            .and_then(|u| u.get(k))
            .and_then(Value::as_u64)
            .map_or("?".to_string(), |n| n.to_string())
    };
    format!(
        "`{task}` attempt {attempt}: {} prompt + {} completion tokens in {} ms ({})",
        n("prompt_tokens"),
        n("completion_tokens"),
        outputs
            .get("latency_ms")
            .and_then(Value::as_u64)
            .unwrap_or(0),
        outputs.get("model").and_then(Value::as_str).unwrap_or("?"),
    )
}
