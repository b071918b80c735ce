//! PLACEHOLDER (replaced by the spec branch at merge).
use serde_json::Value;

pub fn render(src: &str, ctx: &Value) -> Result<String, String> {
    if !src.contains("{{") && !src.contains("{%") {
        return Ok(src.to_string());
    }
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.render_str(src, minijinja::Value::from(minijinja::value::Serde(ctx)))
        .map_err(|e| e.to_string())
}
