//! The Prometheus HTTP API v1: queries, metadata and build information, answered in
//! Prometheus's exact JSON (`../shared/reference/prometheus.md` §2).

pub mod encode;
mod meta;
mod query;
mod remote_write;

use crate::state::AppState;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;

/// The routes under `/api/v1`.
pub fn routes(state: &AppState) -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v1/query", get(query::instant).post(query::instant))
        .route("/api/v1/query_range", get(query::range).post(query::range))
        .route("/api/v1/labels", get(meta::labels).post(meta::labels))
        .route("/api/v1/label/{name}/values", get(meta::label_values))
        .route("/api/v1/series", get(meta::series).post(meta::series))
        .route("/api/v1/status/buildinfo", get(meta::buildinfo))
        .route(
            "/api/v1/write",
            post(remote_write::write).layer(DefaultBodyLimit::max(state.limits.max_body_bytes)),
        )
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
