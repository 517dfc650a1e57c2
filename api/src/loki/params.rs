//! Loki's request parameters: timestamps (`start`, `end`, `time`), `limit`, `direction`,
//! `step`, and the selector in `query=` of the metadata endpoints, with Loki's defaults and
//! error texts.

use crate::error::PlainError;
use crate::params::{parse_duration, Params};
use logstore::Direction;
use model::Matcher;

/// Loki's default look-back when `start` is missing.
pub const DEFAULT_SINCE_NS: i64 = 3_600 * 1_000_000_000;
/// Loki's default `limit`.
pub const DEFAULT_LIMIT: usize = 100;
/// Loki's `max_entries_limit_per_query`.
pub const MAX_LIMIT: usize = 5_000;
/// Loki refuses range queries with more points than this per series.
pub const MAX_POINTS: i64 = 11_000;
/// The default step divides the range into about this many points.
const DEFAULT_STEP_POINTS: i64 = 250;
const NS_PER_S: i64 = 1_000_000_000;

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
            n.saturating_mul(NS_PER_S)
        } else {
            n
        });
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .and_then(|t| t.timestamp_nanos_opt())
        .ok_or_else(|| format!("cannot parse {s:?} to a valid timestamp"))
}

fn time_param(p: &Params, key: &str) -> Result<Option<i64>, PlainError> {
    match p.get(key) {
        Some(s) if !s.is_empty() => parse_loki_time(s)
            .map(Some)
            .map_err(PlainError::bad_request),
        _ => Ok(None),
    }
}

/// `start`/`end` with Loki's defaults: end = now, start = end − 1h (or `since`).
pub fn bounds(p: &Params) -> Result<(i64, i64), PlainError> {
    let end = time_param(p, "end")?.unwrap_or_else(now_ns);
    let since = match p.get("since") {
        Some(s) if !s.is_empty() => parse_duration(s)
            .map_err(PlainError::bad_request)?
            .saturating_mul(1_000_000),
        _ => DEFAULT_SINCE_NS,
    };
    let start = time_param(p, "start")?.unwrap_or_else(|| end.min(now_ns()) - since);
    if end < start {
        return Err(PlainError::bad_request(
            "end timestamp must not be before or equal to start time",
        ));
    }
    Ok((start, end))
}

/// The instant of `/query`: `time`, default now.
pub fn instant(p: &Params) -> Result<i64, PlainError> {
    Ok(time_param(p, "time")?.unwrap_or_else(now_ns))
}

pub fn limit(p: &Params) -> Result<usize, PlainError> {
    let limit = match p.get("limit") {
        Some(s) if !s.is_empty() => match s.parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => return Err(PlainError::bad_request("limit must be a positive value")),
        },
        _ => DEFAULT_LIMIT,
    };
    if limit > MAX_LIMIT {
        return Err(PlainError::bad_request(format!(
            "max entries limit per query exceeded, limit > max_entries_limit ({limit} > {MAX_LIMIT})"
        )));
    }
    Ok(limit)
}

pub fn direction(p: &Params) -> Result<Direction, PlainError> {
    match p.get("direction") {
        None | Some("") => Ok(Direction::Backward),
        Some(d) => d.parse::<Direction>().map_err(|_| {
            PlainError::bad_request(format!("invalid direction {d:?}: want forward or backward"))
        }),
    }
}

/// `step` as float seconds or a duration (Grafana sends `15000ms`); by default the range over
/// 250, at least one second. Refuses more than [`MAX_POINTS`] points.
pub fn step(p: &Params, start: i64, end: i64) -> Result<i64, PlainError> {
    let step = match p.get("step") {
        Some(s) if !s.is_empty() => parse_duration(s)
            .map_err(PlainError::bad_request)?
            .saturating_mul(1_000_000),
        _ => ((end - start) / NS_PER_S / DEFAULT_STEP_POINTS).max(1) * NS_PER_S,
    };
    if step <= 0 {
        return Err(PlainError::bad_request(
            "zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    if (end - start) / step > MAX_POINTS {
        return Err(PlainError::bad_request(
            "exceeded maximum resolution of 11,000 points per time series. Try increasing the value of the step parameter",
        ));
    }
    Ok(step)
}

/// The stream selector of `query=` (a log query's pipeline, if any, is ignored), or none.
pub fn optional_selector(p: &Params, key: &str) -> Result<Vec<Matcher>, PlainError> {
    match p.get(key) {
        Some(q) if !q.trim().is_empty() => selector(q),
        _ => Ok(Vec::new()),
    }
}

pub fn selector(q: &str) -> Result<Vec<Matcher>, PlainError> {
    logstore::logql::parse(q)
        .map(|lq| lq.matchers)
        .map_err(|e| PlainError::bad_request(e.to_string()))
}

pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(q: &str) -> Params {
        Params::from_query(q)
    }

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

    #[test]
    fn steps() {
        let s = NS_PER_S;
        assert_eq!(step(&params("step=15000ms"), 0, 3600 * s).unwrap(), 15 * s);
        assert_eq!(step(&params("step=15"), 0, 3600 * s).unwrap(), 15 * s);
        assert_eq!(step(&params("step=0.5"), 0, 60 * s).unwrap(), s / 2);
        assert_eq!(step(&params("step=1m"), 0, 3600 * s).unwrap(), 60 * s);
        assert_eq!(step(&params(""), 0, 3600 * s).unwrap(), 14 * s);
        assert_eq!(step(&params(""), 0, 60 * s).unwrap(), s);
        let e = step(&params("step=1ms"), 0, 3600 * s).unwrap_err();
        assert!(e.message.contains("11,000 points"), "{}", e.message);
        assert!(step(&params("step=0"), 0, s).is_err());
        assert!(step(&params("step=x"), 0, s).is_err());
    }
}
