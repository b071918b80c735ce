//! PLACEHOLDER (replaced by the spec branch at merge).
use serde_json::Value;

pub struct Expr {
    program: cel::Program,
}

#[derive(Debug)]
pub struct ExprError {
    pub message: String,
}

impl Expr {
    pub fn compile(src: &str) -> Result<Expr, ExprError> {
        cel::Program::compile(src)
            .map(|program| Expr { program })
            .map_err(|e| ExprError {
                message: e.to_string(),
            })
    }

    pub fn eval_bool(&self, vars: &Value) -> Result<bool, String> {
        let mut ctx = cel::Context::default();
        if let Value::Object(m) = vars {
            for (k, v) in m {
                ctx.add_variable(k.clone(), v).map_err(|e| e.to_string())?;
            }
        }
        match self.program.execute(&ctx) {
            Ok(cel::Value::Bool(b)) => Ok(b),
            Ok(other) => Err(format!("expected a boolean, got {other:?}")),
            Err(e) => Err(e.to_string()),
        }
    }
}
