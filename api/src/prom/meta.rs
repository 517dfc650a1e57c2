//! Metadata endpoints: `/api/v1/labels`, `/api/v1/label/<name>/values`, `/api/v1/series`
//! (each with `match[]`, `start`, `end` and `limit`), `/api/v1/status/buildinfo`.

use crate::error::ApiError;
use crate::params::{parse_limit, parse_time, unescape_label_name, Params};
use crate::prom::query::TRUNCATED;
use crate::prom::{encode, success};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::response::Response;
use model::Matcher;
use std::collections::BTreeSet;
use std::sync::Arc;

/// The time range of a metadata request; Prometheus defaults to all time.
fn time_range(p: &Params) -> Result<(i64, i64), ApiError> {
    let start = match p.get("start") {
        Some(s) if !s.is_empty() => parse_time(s).map_err(|e| ApiError::bad_param("start", e))?,
        _ => i64::MIN,
    };
    let end = match p.get("end") {
        Some(s) if !s.is_empty() => parse_time(s).map_err(|e| ApiError::bad_param("end", e))?,
        _ => i64::MAX,
    };
    if end < start {
        return Err(ApiError::bad_param(
            "end",
            "end timestamp must not be before start time",
        ));
    }
    Ok((start, end))
}

/// The matcher sets of every `match[]` parameter.
fn match_sets(p: &Params) -> Result<Vec<Vec<Matcher>>, ApiError> {
    p.all("match[]")
        .into_iter()
        .map(|s| promql::parse_selector(s).map_err(|e| ApiError::bad_param("match[]", e)))
        .collect()
}

fn limit(p: &Params) -> Result<Option<usize>, ApiError> {
    parse_limit(p.get("limit")).map_err(|e| ApiError::bad_param("limit", e))
}

/// The warnings of an answer of `total` items cut to `limit`.
fn truncation(total: usize, limit: Option<usize>) -> Vec<String> {
    match limit {
        Some(l) if total > l => vec![TRUNCATED.to_string()],
        _ => Vec::new(),
    }
}

fn string_list(items: BTreeSet<String>, limit: Option<usize>) -> Response {
    let warnings = truncation(items.len(), limit);
    let mut data = String::from("[");
    for (i, s) in items.iter().take(limit.unwrap_or(usize::MAX)).enumerate() {
        if i > 0 {
            data.push(',');
        }
        encode::write_str(&mut data, s);
    }
    data.push(']');
    success(&data, &warnings, &[])
}

pub async fn labels(State(st): State<Arc<AppState>>, p: Params) -> Result<Response, ApiError> {
    let limit = limit(&p)?;
    let (start, end) = time_range(&p)?;
    let sets = match_sets(&p)?;
    let querier = st.querier.clone();
    let names = tokio::task::spawn_blocking(move || -> Result<BTreeSet<String>, ApiError> {
        let mut names = BTreeSet::new();
        if sets.is_empty() {
            names.extend(querier.label_names(start, end, &[])?);
        }
        for set in &sets {
            names.extend(querier.label_names(start, end, set)?);
        }
        Ok(names)
    })
    .await
    .map_err(|e| ApiError::internal(format!("labels task failed: {e}")))??;
    Ok(string_list(names, limit))
}

pub async fn label_values(
    State(st): State<Arc<AppState>>,
    Path(name): Path<String>,
    p: Params,
) -> Result<Response, ApiError> {
    // Prometheus 3 accepts any UTF-8 label name; Grafana sends the ones that are not
    // `[a-zA-Z_][a-zA-Z0-9_]*` escaped with `U__`.
    let name = unescape_label_name(&name);
    if name.is_empty() {
        return Err(ApiError::bad_data(format!("invalid label name: {name:?}")));
    }
    let limit = limit(&p)?;
    let (start, end) = time_range(&p)?;
    let sets = match_sets(&p)?;
    let querier = st.querier.clone();
    let values = tokio::task::spawn_blocking(move || -> Result<BTreeSet<String>, ApiError> {
        let mut values = BTreeSet::new();
        if sets.is_empty() {
            values.extend(querier.label_values(&name, start, end, &[])?);
        }
        for set in &sets {
            values.extend(querier.label_values(&name, start, end, set)?);
        }
        Ok(values)
    })
    .await
    .map_err(|e| ApiError::internal(format!("label values task failed: {e}")))??;
    Ok(string_list(values, limit))
}

pub async fn series(State(st): State<Arc<AppState>>, p: Params) -> Result<Response, ApiError> {
    let limit = limit(&p)?;
    let sets = match_sets(&p)?;
    if sets.is_empty() {
        return Err(ApiError::bad_data("no match[] parameter provided"));
    }
    let (start, end) = time_range(&p)?;
    let querier = st.querier.clone();
    let all = tokio::task::spawn_blocking(move || -> Result<BTreeSet<model::Labels>, ApiError> {
        let mut all = BTreeSet::new();
        for set in &sets {
            all.extend(querier.series(start, end, set)?);
        }
        Ok(all)
    })
    .await
    .map_err(|e| ApiError::internal(format!("series task failed: {e}")))??;
    let warnings = truncation(all.len(), limit);
    let mut data = String::from("[");
    for (i, labels) in all.iter().take(limit.unwrap_or(usize::MAX)).enumerate() {
        if i > 0 {
            data.push(',');
        }
        encode::write_labels(&mut data, labels);
    }
    data.push(']');
    Ok(success(&data, &warnings, &[]))
}

pub async fn buildinfo() -> Response {
    let mut data = String::from("{");
    let fields = [
        ("version", env!("CARGO_PKG_VERSION")),
        (
            "revision",
            option_env!("VIGIL_GIT_REVISION").unwrap_or("unknown"),
        ),
        (
            "branch",
            option_env!("VIGIL_GIT_BRANCH").unwrap_or("unknown"),
        ),
        ("buildUser", ""),
        ("buildDate", ""),
        ("goVersion", ""),
    ];
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            data.push(',');
        }
        encode::write_str(&mut data, k);
        data.push(':');
        encode::write_str(&mut data, v);
    }
    data.push('}');
    success(&data, &[], &[])
}
