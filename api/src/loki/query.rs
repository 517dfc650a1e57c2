//! `/loki/api/v1/query_range`, `/loki/api/v1/labels`, `/loki/api/v1/label/<name>/values`.

use super::{store_error, task_failed};
use crate::error::PlainError;
use crate::params::Params;
use crate::prom::{encode, json_response};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::response::Response;
use logstore::Direction;
use std::fmt::Write;
use std::sync::Arc;
use std::time::Instant;

/// Loki's default look-back when `start` is missing.
const DEFAULT_SINCE_NS: i64 = 3_600 * 1_000_000_000;
/// Loki's default `limit`.
const DEFAULT_LIMIT: usize = 100;
/// Loki's `max_entries_limit_per_query`.
const MAX_LIMIT: usize = 5_000;

/// Parses a Loki timestamp: float seconds when it has a dot, an integer of at most 10 digits
/// as seconds, a longer one as nanoseconds, else RFC 3339.
pub fn parse_loki_time(s: &str) -> Result<i64, String> {
    if s.contains('.') {
        if let Ok(f) = s.parse::<f64>() {
            return Ok((f * 1e3).round() as i64 * 1_000_000);
        }
    }
    if let Ok(n) = s.parse::<i64>() {
        let digits = s.trim_start_matches('-').len();
        return Ok(if digits <= 10 {
            n.saturating_mul(1_000_000_000)
        } else {
            n
        });
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .and_then(|t| t.timestamp_nanos_opt())
        .ok_or_else(|| format!("cannot parse {s:?} to a valid timestamp"))
}

/// `start`/`end` with Loki's defaults: end = now, start = end − 1h.
fn bounds(p: &Params) -> Result<(i64, i64), PlainError> {
    let bad = |m: String| PlainError::bad_request(m);
    let end = match p.get("end") {
        Some(s) if !s.is_empty() => parse_loki_time(s).map_err(bad)?,
        _ => now_ns(),
    };
    let start = match p.get("start") {
        Some(s) if !s.is_empty() => parse_loki_time(s).map_err(bad)?,
        _ => end.min(now_ns()) - DEFAULT_SINCE_NS,
    };
    if end < start {
        return Err(bad(
            "end timestamp must not be before or equal to start time".into(),
        ));
    }
    Ok((start, end))
}

pub async fn query_range(
    State(st): State<Arc<AppState>>,
    p: Params,
) -> Result<Response, PlainError> {
    let bad = |m: String| PlainError::bad_request(m);
    let query = p.get("query").unwrap_or_default().to_string();
    let (start, end) = bounds(&p)?;
    let limit = match p.get("limit") {
        Some(s) if !s.is_empty() => match s.parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => return Err(bad("limit must be a positive value".into())),
        },
        _ => DEFAULT_LIMIT,
    };
    if limit > MAX_LIMIT {
        return Err(bad(format!("max entries limit per query exceeded, limit > max_entries_limit ({limit} > {MAX_LIMIT})")));
    }
    let direction = match p.get("direction") {
        None | Some("") => Direction::Backward,
        Some(d) => match d.parse::<Direction>() {
            Ok(d) => d,
            Err(_) => {
                return Err(bad(format!(
                    "invalid direction {d:?}: want forward or backward"
                )))
            }
        },
    };
    let logs = st.logs.clone();
    let began = Instant::now();
    let result =
        tokio::task::spawn_blocking(move || logs.query_range(&query, start, end, limit, direction))
            .await;
    let streams = result.map_err(task_failed)?.map_err(store_error)?;
    let mut body = String::from(r#"{"status":"success","data":{"resultType":"streams","result":["#);
    let mut returned = 0usize;
    for (i, s) in streams.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(r#"{"stream":"#);
        encode::write_labels(&mut body, &s.labels);
        body.push_str(r#","values":["#);
        for (j, e) in s.entries.iter().enumerate() {
            if j > 0 {
                body.push(',');
            }
            let _ = write!(body, "[\"{}\",", e.ts_ns);
            encode::write_str(&mut body, &e.line);
            body.push(']');
        }
        returned += s.entries.len();
        body.push_str("]}");
    }
    let _ = write!(
        body,
        r#"],"stats":{{"summary":{{"execTime":{},"totalEntriesReturned":{returned}}}}}}}}}"#,
        began.elapsed().as_secs_f64()
    );
    Ok(json_response(body))
}

pub async fn labels(State(st): State<Arc<AppState>>, p: Params) -> Result<Response, PlainError> {
    let (start, end) = bounds(&p)?;
    let logs = st.logs.clone();
    list(tokio::task::spawn_blocking(move || logs.label_names(start, end)).await)
}

pub async fn label_values(
    State(st): State<Arc<AppState>>,
    Path(name): Path<String>,
    p: Params,
) -> Result<Response, PlainError> {
    let (start, end) = bounds(&p)?;
    let logs = st.logs.clone();
    list(tokio::task::spawn_blocking(move || logs.label_values(&name, start, end)).await)
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

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::parse_loki_time;

    #[test]
    fn loki_timestamps() {
        assert_eq!(
            parse_loki_time("4000000000").unwrap(),
            4_000_000_000_000_000_000
        );
        assert_eq!(
            parse_loki_time("1700000000000000000").unwrap(),
            1_700_000_000_000_000_000
        );
        assert_eq!(parse_loki_time("1.5").unwrap(), 1_500_000_000);
        assert_eq!(
            parse_loki_time("1970-01-01T00:00:01Z").unwrap(),
            1_000_000_000
        );
        assert!(parse_loki_time("soon").is_err());
    }
}
