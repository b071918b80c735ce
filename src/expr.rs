//! CEL expressions (`when` conditions, gate checks), compiled once and evaluated against JSON.
//!
//! Variables: the top-level keys of the JSON object given to [`Expr::eval`] (e.g. `tasks`,
//! `context`, `matrix`). Numbers: JSON integers become CEL `int` (or `uint` above `i64::MAX`),
//! other numbers `double`. CEL here compares `int`, `uint` and `double` by value, so
//! `tasks.build.outputs.size_mb < 50` holds for an output of `42` or `42.5` alike, and
//! `x == 2` holds for `2.0`. Arithmetic does not mix them: write `x + 1.0` when `x` may be a double.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, LazyLock};

use cel::common::ast::{EntryExpr, Expr as AstExpr, LiteralValue};
use cel::{Context, Env, IdedExpr, Program};
use serde_json::Value;

/// The standard CEL environment, built once: building it registers every stdlib function.
static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| Arc::new(Env::stdlib()));

/// A compiled CEL expression.
pub struct Expr {
    source: String,
    program: Program,
}

impl fmt::Debug for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Expr").field(&self.source).finish()
    }
}

/// Why an expression does not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ExprError {
    pub message: String,
    /// 1-based (line, column) inside the expression, when the parser knows it.
    pub position: Option<(usize, usize)>,
}

impl Expr {
    /// Parses and compiles `src` (stdlib functions and macros: `has`, `all`, `exists`, `map`, ...).
    pub fn compile(src: &str) -> Result<Expr, ExprError> {
        if src.trim().is_empty() {
            return Err(ExprError {
                message: "the expression is empty".into(),
                position: None,
            });
        }
        match ENV.compile(src) {
            Ok(program) => Ok(Expr {
                source: src.to_string(),
                program,
            }),
            Err(errs) => {
                let first = errs.errors.first();
                let message = first
                    .map(|e| shorten(&e.msg))
                    .unwrap_or_else(|| "invalid expression".into());
                let position = first.and_then(|e| {
                    let (line, col) = e.pos;
                    (line >= 1 && col >= 0).then(|| (line as usize, col as usize + 1))
                });
                Err(ExprError { message, position })
            }
        }
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Top-level variables the expression reads (comprehension variables excluded), sorted.
    pub fn variables(&self) -> Vec<String> {
        let mut vars: Vec<String> = self
            .paths()
            .into_iter()
            .filter_map(|p| p.into_iter().next())
            .collect();
        vars.sort();
        vars.dedup();
        vars
    }

    /// Every access path rooted at a free variable, e.g. `["tasks", "build", "outputs", "size"]`
    /// for `tasks.build.outputs.size` (string-literal indexing `tasks['x']` counts as a step).
    pub fn paths(&self) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        let mut bound = Vec::new();
        collect_paths(self.program.expression(), &mut bound, &mut out);
        out
    }

    /// Evaluates to JSON. `vars` must be an object: each key becomes a variable.
    pub fn eval(&self, vars: &Value) -> Result<Value, String> {
        let ctx = context(vars)?;
        let value = self.program.execute(&ctx).map_err(|e| e.to_string())?;
        value.json().map_err(|e| format!("`{}`: {e}", self.source))
    }

    /// Evaluates and requires a boolean result.
    pub fn eval_bool(&self, vars: &Value) -> Result<bool, String> {
        let ctx = context(vars)?;
        match self.program.execute(&ctx) {
            Ok(cel::Value::Bool(b)) => Ok(b),
            Ok(other) => Err(format!(
                "`{}` must give true or false, but gave a {}",
                self.source,
                other.type_of()
            )),
            Err(e) => Err(e.to_string()),
        }
    }
}

fn context(vars: &Value) -> Result<Context<'static, 'static>, String> {
    let mut ctx = Context::with_env(Arc::clone(&ENV));
    match vars {
        Value::Object(map) => {
            for (k, v) in map {
                ctx.add_variable_from_value(k.as_str(), to_cel(v));
            }
            Ok(ctx)
        }
        Value::Null => Ok(ctx),
        _ => Err("expression variables must be a JSON object".into()),
    }
}

/// Drops the parser's long list of expected tokens: the position says enough.
fn shorten(msg: &str) -> String {
    match msg.find(" expecting {") {
        Some(i) => msg[..i]
            .replace("mismatched input '<EOF>'", "unexpected end of expression")
            .replace("mismatched input", "unexpected"),
        None => msg.to_string(),
    }
}

/// Walks the AST collecting free-variable access paths; `bound` holds comprehension variables.
fn collect_paths(e: &IdedExpr, bound: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    if let Some(mut path) = select_chain(&e.expr) {
        if path.first().is_some_and(|root| !bound.contains(root)) {
            path.shrink_to_fit();
            out.push(path);
        }
        return;
    }
    match &e.expr {
        AstExpr::Call(call) => {
            if let Some(t) = &call.target {
                collect_paths(t, bound, out);
            }
            for a in &call.args {
                collect_paths(a, bound, out);
            }
        }
        AstExpr::Comprehension(c) => {
            collect_paths(&c.iter_range, bound, out);
            collect_paths(&c.accu_init, bound, out);
            let before = bound.len();
            bound.push(c.iter_var.clone());
            if let Some(v) = &c.iter_var2 {
                bound.push(v.clone());
            }
            bound.push(c.accu_var.clone());
            collect_paths(&c.loop_cond, bound, out);
            collect_paths(&c.loop_step, bound, out);
            collect_paths(&c.result, bound, out);
            bound.truncate(before);
        }
        AstExpr::List(l) => {
            for x in &l.elements {
                collect_paths(x, bound, out);
            }
        }
        AstExpr::Map(m) => {
            for entry in &m.entries {
                if let EntryExpr::MapEntry(me) = &entry.expr {
                    collect_paths(&me.key, bound, out);
                    collect_paths(&me.value, bound, out);
                }
            }
        }
        AstExpr::Struct(st) => {
            for entry in &st.entries {
                match &entry.expr {
                    EntryExpr::StructField(f) => collect_paths(&f.value, bound, out),
                    EntryExpr::MapEntry(me) => {
                        collect_paths(&me.key, bound, out);
                        collect_paths(&me.value, bound, out);
                    }
                }
            }
        }
        AstExpr::Select(sel) => collect_paths(&sel.operand, bound, out),
        AstExpr::Ident(_) | AstExpr::Literal(_) | AstExpr::Unspecified => {}
    }
}

/// `a.b['c'].d` -> `["a", "b", "c", "d"]`; `None` when the expression is not such a chain.
fn select_chain(e: &AstExpr) -> Option<Vec<String>> {
    match e {
        AstExpr::Ident(name) => Some(vec![name.clone()]),
        AstExpr::Select(sel) if !sel.test => {
            let mut p = select_chain(&sel.operand.expr)?;
            p.push(sel.field.clone());
            Some(p)
        }
        AstExpr::Call(call) if call.func_name == "_[_]" && call.args.len() == 2 => {
            let key = match &call.args[1].expr {
                AstExpr::Literal(LiteralValue::String(s)) => s.to_string(),
                _ => return None,
            };
            let mut p = select_chain(&call.args[0].expr)?;
            p.push(key);
            Some(p)
        }
        _ => None,
    }
}

/// JSON -> CEL. Not `cel::to_value`: serde would make every non-negative integer a `uint`,
/// and CEL refuses `uint * int`, so `x * 2` would fail for `x = 3`.
fn to_cel(v: &Value) -> cel::Value {
    match v {
        Value::Null => cel::Value::Null,
        Value::Bool(b) => cel::Value::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => cel::Value::Int(i),
            (None, Some(u)) => cel::Value::UInt(u),
            _ => cel::Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => cel::Value::String(Arc::new(s.clone())),
        Value::Array(items) => cel::Value::List(Arc::new(items.iter().map(to_cel).collect())),
        Value::Object(map) => {
            let map: HashMap<cel::objects::Key, cel::Value> = map
                .iter()
                .map(|(k, v)| (cel::objects::Key::from(k.as_str()), to_cel(v)))
                .collect();
            cel::Value::Map(cel::objects::Map { map: Arc::new(map) })
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn compares_strings_from_outputs() {
        let e = Expr::compile("tasks.review.outputs.verdict == 'approve'").unwrap();
        let vars = json!({"tasks": {"review": {"outputs": {"verdict": "approve"}}}});
        assert!(e.eval_bool(&vars).unwrap());
        let vars = json!({"tasks": {"review": {"outputs": {"verdict": "reject"}}}});
        assert!(!e.eval_bool(&vars).unwrap());
    }

    #[test]
    fn ints_and_doubles_compare_by_value() {
        let e = Expr::compile("tasks.build.outputs.size_mb < 50").unwrap();
        for (v, want) in [
            (json!(42), true),
            (json!(42.5), true),
            (json!(50), false),
            (json!(50.0), false),
            (json!(51.2), false),
        ] {
            let vars = json!({"tasks": {"build": {"outputs": {"size_mb": v}}}});
            assert_eq!(e.eval_bool(&vars).unwrap(), want, "{v}");
        }
        let e = Expr::compile("x == 2").unwrap();
        assert!(e.eval_bool(&json!({"x": 2.0})).unwrap());
        let e = Expr::compile("x > 1.5").unwrap();
        assert!(e.eval_bool(&json!({"x": 2})).unwrap());
    }

    #[test]
    fn eval_returns_json() {
        let e = Expr::compile("[x, x * 2, 'a' + y]").unwrap();
        assert_eq!(
            e.eval(&json!({"x": 3, "y": "b"})).unwrap(),
            json!([3, 6, "ab"])
        );
    }

    #[test]
    fn missing_variable_is_an_error() {
        let e = Expr::compile("tasks.nope.outputs.x == 1").unwrap();
        let err = e.eval_bool(&json!({"tasks": {}})).unwrap_err();
        assert!(err.contains("nope"), "{err}");
    }

    #[test]
    fn non_bool_result_is_an_error() {
        let e = Expr::compile("1 + 1").unwrap();
        assert!(e.eval_bool(&json!({})).is_err());
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let err = Expr::compile("a == = b").unwrap_err();
        assert!(err.position.is_some(), "{err:?}");
        assert!(Expr::compile("   ").is_err());
    }

    #[test]
    fn variables_lists_top_level_names() {
        let e =
            Expr::compile("tasks.a.outputs.n > 1 && [1, 2].all(x, x > 0) && context.k").unwrap();
        assert_eq!(e.variables(), vec!["context".to_string(), "tasks".into()]);
        let e = Expr::compile("tasks['t[os=a]'].outputs.n > 1 && has(context.k)").unwrap();
        let paths = e.paths();
        assert!(
            paths.contains(&vec![
                "tasks".into(),
                "t[os=a]".into(),
                "outputs".into(),
                "n".into()
            ]),
            "{paths:?}"
        );
        assert!(paths.iter().any(|p| p[0] == "context"), "{paths:?}");
    }

    #[test]
    fn expr_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Expr>();
    }
}
