//! The Prometheus HTTP API v1: queries, metadata, status, remote write and read, and
//! federation, answered in Prometheus's exact JSON (`../shared/reference/prometheus.md` §2).

pub(crate) mod agent_targets;
pub mod encode;
mod exprs;
mod federate;
mod meta;
pub mod metadata;
mod query;
mod read_wire;
mod remote_read;
mod remote_write;
mod stats;
pub mod status;

use crate::state::AppState;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;

/// The routes under `/api/v1`, and `/federate`.
pub fn routes(state: &AppState) -> Router<Arc<AppState>> {
    let body_limit = DefaultBodyLimit::max(state.limits.max_body_bytes);
    Router::new()
        .route("/api/v1/query", get(query::instant).post(query::instant))
        .route("/api/v1/query_range", get(query::range).post(query::range))
        .route(
            "/api/v1/format_query",
            get(exprs::format_query).post(exprs::format_query),
        )
        .route(
            "/api/v1/parse_query",
            get(exprs::parse_query).post(exprs::parse_query),
        )
        .route(
            "/api/v1/query_exemplars",
            get(exprs::query_exemplars).post(exprs::query_exemplars),
        )
        .route("/api/v1/labels", get(meta::labels).post(meta::labels))
        .route("/api/v1/label/{name}/values", get(meta::label_values))
        .route("/api/v1/series", get(meta::series).post(meta::series))
        .route("/api/v1/metadata", get(metadata::metadata))
        .route("/api/v1/status/buildinfo", get(meta::buildinfo))
        .route("/api/v1/status/runtimeinfo", get(status::runtimeinfo))
        .route("/api/v1/status/config", get(status::config))
        .route("/api/v1/status/flags", get(status::flags))
        .route("/api/v1/status/walreplay", get(status::walreplay))
        .route("/api/v1/status/tsdb", get(status::tsdb))
        .route("/api/v1/targets", get(status::targets))
        .route("/api/v1/agent/targets", post(agent_targets::push))
        .route("/federate", get(federate::federate))
        .route("/api/v1/write", post(remote_write::write).layer(body_limit))
        .route("/api/v1/read", post(remote_read::read).layer(body_limit))
}

/// `{"status":"success","data":<data>}` with the annotations, as a JSON response.
pub(crate) fn success(
    data: &str,
    warnings: &[String],
    infos: &[String],
) -> axum::response::Response {
    let mut body = String::with_capacity(data.len() + 32);
    body.push_str(r#"{"status":"success","data":"#);
    body.push_str(data);
    encode::write_annotations(&mut body, warnings, infos);
    body.push('}');
    json_response(body)
}

pub(crate) fn json_response(body: String) -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}
