//! `/api/v1/query` and `/api/v1/query_range`.

use crate::error::ApiError;
use crate::params::{parse_duration, parse_time, Params};
use crate::prom::{encode, success};
use crate::state::AppState;
use axum::extract::State;
use axum::response::Response;
use std::sync::Arc;

/// Prometheus's (and Grafana's) cap on points per series in a range query.
const MAX_POINTS_PER_SERIES: i64 = 11_000;

pub async fn instant(State(st): State<Arc<AppState>>, p: Params) -> Result<Response, ApiError> {
    let query = p.get("query").unwrap_or_default().to_string();
    let t = match p.get("time") {
        Some(s) if !s.is_empty() => parse_time(s).map_err(|e| ApiError::bad_param("time", e))?,
        _ => now_ms(),
    };
    let engine = st.engine.clone();
    let res = tokio::task::spawn_blocking(move || engine.instant_query(&query, t))
        .await
        .map_err(|e| ApiError::internal(format!("query task failed: {e}")))??;
    Ok(render(&res))
}

pub async fn range(State(st): State<Arc<AppState>>, p: Params) -> Result<Response, ApiError> {
    let query = p.get("query").unwrap_or_default().to_string();
    let start = parse_time(p.get("start").unwrap_or_default())
        .map_err(|e| ApiError::bad_param("start", e))?;
    let end =
        parse_time(p.get("end").unwrap_or_default()).map_err(|e| ApiError::bad_param("end", e))?;
    if end < start {
        return Err(ApiError::bad_param(
            "end",
            "end timestamp must not be before start time",
        ));
    }
    let step = parse_duration(p.get("step").unwrap_or_default())
        .map_err(|e| ApiError::bad_param("step", e))?;
    if step <= 0 {
        return Err(ApiError::bad_param(
            "step",
            "zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    if (end - start) / step > MAX_POINTS_PER_SERIES {
        return Err(ApiError::bad_data(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        ));
    }
    let engine = st.engine.clone();
    let res = tokio::task::spawn_blocking(move || engine.range_query(&query, start, end, step))
        .await
        .map_err(|e| ApiError::internal(format!("query task failed: {e}")))??;
    Ok(render(&res))
}

fn render(res: &promql::QueryResult) -> Response {
    let mut data = String::new();
    encode::write_query_data(&mut data, &res.value);
    success(&data, &res.warnings, &res.infos)
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
