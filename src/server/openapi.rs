//! The OpenAPI document, generated from the handlers' annotations (utoipa), served at
//! `/api/v1/openapi.json`.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{error, events, logs, metrics, routes};

#[derive(OpenApi)]
#[openapi(
    info(title = "taskdeck", description = "The taskdeck engine over HTTP: runs, commands, events, logs, agents, metrics."),
    paths(
        routes::submit, routes::list_runs, routes::get_run, routes::snapshot,
        routes::run_action, routes::task_action, routes::agents, routes::stats,
        routes::health, routes::ready, routes::shutdown,
        logs::task_log, logs::engine_log,
        events::sse, events::websocket_all, events::websocket_run,
        metrics::render, document,
    ),
    components(schemas(
        error::ErrorBody, routes::Submitted, routes::RunSummary, routes::RunList,
        routes::RunSnapshot, routes::Done, routes::Stats, routes::Health, logs::LogPage,
        events::StreamNotice,
    )),
    modifiers(&Bearer),
    security(("bearer" = [])),
)]
pub struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "health",
    responses((status = 200, description = "the OpenAPI document")))]
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
