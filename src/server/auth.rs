//! Bearer tokens with roles: viewer (read) < operator (actions) < admin (submit, shutdown).
//! `/health` is open; everything else needs a token once any token is configured. Tokens are
//! compared in constant time (over their SHA-256 digests, so their length does not show either).

use std::fmt;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Operator,
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s.to_ascii_lowercase().as_str() {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The configured tokens (digests only are kept).
#[derive(Default)]
pub struct Tokens {
    entries: Vec<(Role, [u8; 32])>,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tokens({} configured)", self.entries.len())
    }
}

fn digest(token: &[u8]) -> [u8; 32] {
    Sha256::digest(token).into()
}

impl Tokens {
    pub fn add(&mut self, role: Role, token: &str) {
        self.entries.push((role, digest(token.as_bytes())));
    }

    /// Reads a tokens file: one `ROLE TOKEN` a line; blank lines and `#` comments are skipped.
    /// Errors name the line.
    pub fn parse(&mut self, text: &str, source: &str) -> Result<(), String> {
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut words = line.split_whitespace();
            let (Some(role), Some(token), None) = (words.next(), words.next(), words.next()) else {
                return Err(format!(
                    "{source}:{}: expected `ROLE TOKEN` (role viewer, operator or admin)",
                    n + 1
                ));
            };
            let role = Role::parse(role).ok_or_else(|| {
                format!(
                    "{source}:{}: unknown role `{role}`: use viewer, operator or admin",
                    n + 1
                )
            })?;
            if token.len() < 16 {
                return Err(format!(
                    "{source}:{}: the token is too short ({} characters; use at least 16, e.g. `openssl rand -hex 24`)",
                    n + 1,
                    token.len()
                ));
            }
            self.add(role, token);
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The highest role of a presented token. Every entry is compared, in constant time.
    pub fn role_of(&self, presented: &str) -> Option<Role> {
        let d = digest(presented.as_bytes());
        let mut best = None;
        for (role, want) in &self.entries {
            if bool::from(want.ct_eq(&d)) {
                best = best.max(Some(*role));
            }
        }
        best
    }
}

/// The role a request needs; `None` for open routes.
pub fn required(method: &Method, path: &str) -> Option<Role> {
    if path == "/health" || path == "/api/v1/health" {
        return None;
    }
    // An http agent's callback carries its attempt's unguessable token instead.
    if path.starts_with("/api/v1/callbacks/") && method == Method::POST {
        return None;
    }
    if method == Method::GET || method == Method::HEAD || method == Method::OPTIONS {
        return Some(Role::Viewer);
    }
    match path.trim_end_matches('/') {
        "/api/v1/runs" | "/api/v1/shutdown" => Some(Role::Admin),
        _ => Some(Role::Operator),
    }
}

/// Refuses requests without a good enough token (when tokens are configured).
pub async fn check(State(app): State<AppState>, req: Request, next: Next) -> Response {
    if app.tokens.is_empty() {
        return next.run(req).await;
    }
    let Some(need) = required(req.method(), req.uri().path()) else {
        return next.run(req).await;
    };
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let Some(presented) = presented else {
        return unauthorized(
            "this server needs a bearer token: Authorization: Bearer TOKEN (taskdeck: --token or TASKDECK_TOKEN)",
        );
    };
    match app.tokens.role_of(presented) {
        None => unauthorized("the token is not valid on this server"),
        Some(role) if role < need => ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "this token's role is {role}; {} {} needs {need}",
                req.method(),
                req.uri().path()
            ),
        )
        .into_response(),
        Some(_) => next.run(req).await,
    }
}

fn unauthorized(detail: &str) -> Response {
    let mut resp = ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", detail).into_response();
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_file_roles_and_errors() {
        let mut t = Tokens::default();
        t.parse(
            "# team tokens\nviewer vvvvvvvvvvvvvvvv\n\nOPERATOR oooooooooooooooo\nadmin aaaaaaaaaaaaaaaa\n",
            "tokens",
        )
        .unwrap();
        assert_eq!(t.role_of("vvvvvvvvvvvvvvvv"), Some(Role::Viewer));
        assert_eq!(t.role_of("oooooooooooooooo"), Some(Role::Operator));
        assert_eq!(t.role_of("aaaaaaaaaaaaaaaa"), Some(Role::Admin));
        assert_eq!(t.role_of("aaaaaaaaaaaaaaa"), None);
        let e = Tokens::default()
            .parse("root xxxxxxxxxxxxxxxxxx", "f")
            .unwrap_err();
        assert!(e.contains("f:1: unknown role `root`"), "{e}");
        let e = Tokens::default().parse("\nadmin short", "f").unwrap_err();
        assert!(e.contains("f:2: the token is too short"), "{e}");
        let e = Tokens::default().parse("admin", "f").unwrap_err();
        assert!(e.contains("expected `ROLE TOKEN`"), "{e}");
    }

    #[test]
    fn roles_per_route() {
        assert_eq!(required(&Method::GET, "/health"), None);
        assert_eq!(required(&Method::GET, "/metrics"), Some(Role::Viewer));
        assert_eq!(required(&Method::GET, "/api/v1/runs"), Some(Role::Viewer));
        assert_eq!(required(&Method::POST, "/api/v1/runs"), Some(Role::Admin));
        assert_eq!(
            required(&Method::POST, "/api/v1/shutdown"),
            Some(Role::Admin)
        );
        assert_eq!(
            required(&Method::POST, "/api/v1/runs/r1/pause"),
            Some(Role::Operator)
        );
    }
}
