//! The Loki HTTP API as Grafana's Loki datasource and log shippers use it
//! (`../shared/reference/logs.md` §1). Errors are plain text, as Loki answers them.

mod meta;
mod params;
mod push;
mod query;
mod tail;
mod volume;

use crate::error::PlainError;
use crate::state::AppState;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;

pub fn routes(state: &AppState) -> Router<Arc<AppState>> {
    Router::new()
        .route(
            "/loki/api/v1/push",
            post(push::push).layer(DefaultBodyLimit::max(state.limits.max_body_bytes)),
        )
        .route(
            "/loki/api/v1/query_range",
            get(query::query_range).post(query::query_range),
        )
        .route("/loki/api/v1/query", get(query::query).post(query::query))
        .route("/loki/api/v1/tail", get(tail::tail))
        .route("/loki/api/v1/labels", get(meta::labels).post(meta::labels))
        .route(
            "/loki/api/v1/label/{name}/values",
            get(meta::label_values).post(meta::label_values),
        )
        .route("/loki/api/v1/series", get(meta::series).post(meta::series))
        .route(
            "/loki/api/v1/index/stats",
            get(meta::index_stats).post(meta::index_stats),
        )
        .route(
            "/loki/api/v1/index/volume",
            get(volume::volume).post(volume::volume),
        )
        .route(
            "/loki/api/v1/index/volume_range",
            get(volume::volume_range).post(volume::volume_range),
        )
        .route("/loki/api/v1/detected_labels", get(meta::not_found))
        .route(
            "/loki/api/v1/detected_fields",
            get(meta::not_found).post(meta::not_found),
        )
        .route(
            "/loki/api/v1/detected_field/{name}/values",
            get(meta::not_found),
        )
        .route("/loki/api/v1/patterns", get(meta::not_found))
}

/// Loki's answer to a log store error: 400 for the request's fault, 500 for the store's.
pub(crate) fn store_error(e: logstore::Error) -> PlainError {
    let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status.is_server_error() {
        tracing::error!(error = %e, "log store failed");
    }
    PlainError::new(status, e.to_string())
}

pub(crate) fn task_failed(e: tokio::task::JoinError) -> PlainError {
    PlainError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("task failed: {e}"),
    )
}
