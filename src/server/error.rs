//! API errors: every failure answers JSON `{error, detail}` with a status code that says what
//! went wrong (4xx: the request, 5xx: the server).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::engine::EngineError;

/// The body of every error answer.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// A short machine-readable code: `not_found`, `invalid_workflow`, `unauthorized`, ...
    pub error: String,
    /// What happened and what to do, for people.
    pub detail: String,
    /// Every problem of an invalid workflow, with file, line and column.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
}

impl ApiError {
    pub fn new(status: StatusCode, error: &str, detail: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: ErrorBody {
                error: error.into(),
                detail: detail.into(),
                problems: Vec::new(),
            },
        }
    }

    pub fn not_found(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", detail)
    }

    pub fn bad_request(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", detail)
    }

    pub fn unavailable(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", detail)
    }

    pub fn internal(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", detail)
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        let status = match &e {
            EngineError::UnknownRun(_) | EngineError::UnknownTask { .. } => StatusCode::NOT_FOUND,
            EngineError::Refused(_) => StatusCode::CONFLICT,
            EngineError::Stopped => StatusCode::SERVICE_UNAVAILABLE,
        };
        let code = match &e {
            EngineError::UnknownRun(_) | EngineError::UnknownTask { .. } => "not_found",
            EngineError::Refused(_) => "refused",
            EngineError::Stopped => "unavailable",
        };
        ApiError::new(status, code, e.to_string())
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            crate::store::StoreError::Invalid(m) => ApiError::not_found(m),
            other => ApiError::internal(format!("the store failed: {other}")),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

/// Answers for paths and methods the API does not have.
pub async fn no_route(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!(
        "no such endpoint: {}; GET /api/v1/openapi.json lists them",
        uri.path()
    ))
}

pub async fn no_method(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} does not accept {method}", uri.path()),
    )
}
