//! Loki's metadata endpoints: `labels`, `label/<name>/values` (both with an optional `query=`
//! selector), `series` (`match[]`, GET or form POST) and `index/stats` (a bare object).

use super::params::{bounds, optional_selector, selector};
use super::{store_error, task_failed};
use crate::error::PlainError;
use crate::params::Params;
use crate::prom::{encode, json_response};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

pub async fn labels(State(st): State<Arc<AppState>>, p: Params) -> Result<Response, PlainError> {
    let (start, end) = bounds(&p)?;
    let matchers = optional_selector(&p, "query")?;
    let logs = st.logs.clone();
    list(tokio::task::spawn_blocking(move || logs.label_names(&matchers, start, end)).await)
}

pub async fn label_values(
    State(st): State<Arc<AppState>>,
    Path(name): Path<String>,
    p: Params,
) -> Result<Response, PlainError> {
    let (start, end) = bounds(&p)?;
    let matchers = optional_selector(&p, "query")?;
    let logs = st.logs.clone();
    list(tokio::task::spawn_blocking(move || logs.label_values(&name, &matchers, start, end)).await)
}

pub async fn series(State(st): State<Arc<AppState>>, p: Params) -> Result<Response, PlainError> {
    let (start, end) = bounds(&p)?;
    let selectors = p
        .all("match[]")
        .into_iter()
        .chain(p.all("match"))
        .map(selector)
        .collect::<Result<Vec<_>, _>>()?;
    if selectors.is_empty() {
        return Err(PlainError::bad_request(
            "at least one match[] argument must be provided",
        ));
    }
    let logs = st.logs.clone();
    let found = tokio::task::spawn_blocking(move || logs.series(&selectors, start, end))
        .await
        .map_err(task_failed)?
        .map_err(store_error)?;
    let mut body = String::from(r#"{"status":"success","data":["#);
    for (i, labels) in found.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        encode::write_labels(&mut body, labels);
    }
    body.push_str("]}");
    Ok(json_response(body))
}

/// Grafana's query-size hint: `{"streams":N,"chunks":N,"entries":N,"bytes":N}`, no envelope.
pub async fn index_stats(
    State(st): State<Arc<AppState>>,
    p: Params,
) -> Result<Response, PlainError> {
    let (start, end) = bounds(&p)?;
    let matchers = match p.get("query") {
        Some(q) if !q.trim().is_empty() => selector(q)?,
        _ => return Err(PlainError::bad_request("query parameter is required")),
    };
    let logs = st.logs.clone();
    let s = tokio::task::spawn_blocking(move || logs.index_stats(&matchers, start, end))
        .await
        .map_err(task_failed)?
        .map_err(store_error)?;
    Ok(json_response(format!(
        r#"{{"streams":{},"chunks":{},"entries":{},"bytes":{}}}"#,
        s.streams, s.chunks, s.entries, s.bytes
    )))
}

/// Endpoints Grafana probes (`detected_labels`, `detected_fields`, `patterns`, ...): a 404
/// makes it fall back to `labels` and `series`, as it does against older Lokis.
pub async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "404 page not found\n").into_response()
}

fn list(
    r: Result<Result<Vec<String>, logstore::Error>, tokio::task::JoinError>,
) -> Result<Response, PlainError> {
    let items = r.map_err(task_failed)?.map_err(store_error)?;
    let mut body = String::from(r#"{"status":"success","data":["#);
    for (i, s) in items.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        encode::write_str(&mut body, s);
    }
    body.push_str("]}");
    Ok(json_response(body))
}
