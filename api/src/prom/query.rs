//! `/api/v1/query` and `/api/v1/query_range`, with Prometheus's per-query options: `timeout`
//! (capped by the server's), `lookback_delta`, `limit` (series cut with Prometheus's warning)
//! and `stats`.

use crate::error::ApiError;
use crate::params::{parse_duration, parse_limit, parse_time, Params};
use crate::prom::stats::{CountingQuerier, QueryStats};
use crate::prom::{encode, success};
use crate::state::AppState;
use axum::extract::State;
use axum::response::Response;
use promql::{Engine, QueryResult, Value};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Prometheus's (and Grafana's) cap on points per series in a range query.
const MAX_POINTS_PER_SERIES: i64 = 11_000;

/// The warning Prometheus attaches when `limit` cut the answer short; Grafana matches on it.
pub(crate) const TRUNCATED: &str = "results truncated due to limit";

/// The options every query endpoint shares.
#[derive(Debug, Default, PartialEq)]
struct QueryOptions {
    limit: Option<usize>,
    timeout: Option<Duration>,
    lookback_delta: Option<Duration>,
    stats: bool,
}

impl QueryOptions {
    fn parse(p: &Params) -> Result<Self, ApiError> {
        let limit = parse_limit(p.get("limit")).map_err(|e| ApiError::bad_param("limit", e))?;
        let timeout = match p.get("timeout").filter(|s| !s.is_empty()) {
            Some(s) => Some(non_negative(
                parse_duration(s).map_err(|e| ApiError::bad_param("timeout", e))?,
            )),
            None => None,
        };
        let lookback_delta = match p.get("lookback_delta").filter(|s| !s.is_empty()) {
            Some(s) => Some(non_negative(parse_duration(s).map_err(|e| {
                ApiError::bad_data(format!("error parsing lookback delta duration: {e}"))
            })?)),
            None => None,
        };
        // Prometheus renders stats for any non-empty value; `all` would add per-step counts,
        // which it only fills with a feature flag, so both answer the same block.
        let stats = p.get("stats").is_some_and(|s| !s.is_empty());
        Ok(QueryOptions {
            limit,
            timeout,
            lookback_delta,
            stats,
        })
    }
}

/// A negative duration means "already past" for a timeout and "the default" for a lookback
/// delta; zero expresses both.
fn non_negative(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

pub async fn instant(State(st): State<Arc<AppState>>, p: Params) -> Result<Response, ApiError> {
    let opts = QueryOptions::parse(&p)?;
    let query = p.get("query").unwrap_or_default().to_string();
    let t = match p.get("time") {
        Some(s) if !s.is_empty() => parse_time(s).map_err(|e| ApiError::bad_param("time", e))?,
        _ => now_ms(),
    };
    run(&st, opts, move |engine| engine.instant_query(&query, t)).await
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
    let opts = QueryOptions::parse(&p)?;
    run(&st, opts, move |engine| {
        engine.range_query(&query, start, end, step)
    })
    .await
}

/// Runs `query` on a blocking thread, on the server's engine or, when the request changes the
/// timeout or lookback delta or asks for stats, on an engine derived from the server's options
/// for this query alone; then applies `limit` and renders the answer.
async fn run<F>(st: &AppState, opts: QueryOptions, query: F) -> Result<Response, ApiError>
where
    F: FnOnce(&Engine) -> Result<QueryResult, promql::Error> + Send + 'static,
{
    let custom = opts.timeout.is_some() || opts.lookback_delta.is_some() || opts.stats;
    let shared = st.engine.clone();
    let counting = Arc::new(CountingQuerier::new(st.querier.clone()));
    let mut engine_opts = st.engine_options.clone();
    if let Some(t) = opts.timeout {
        engine_opts.timeout = engine_opts.timeout.min(t);
    }
    if let Some(l) = opts.lookback_delta {
        // Zero means the server's default, as in Prometheus.
        if !l.is_zero() {
            engine_opts.lookback_delta = l;
        }
    }
    let reads = counting.clone();
    let queued = Instant::now();
    // When the client goes away, hyper drops this future and with it the guard, which tells
    // the engine to stop at its next look at the clock (Prometheus's `canceled`).
    let canceled = CancelOnDrop::new(&st.metrics.queries_canceled);
    let flag = canceled.flag();
    let joined = tokio::task::spawn_blocking(move || {
        let began = Instant::now();
        let engine = if custom {
            Engine::new(reads, engine_opts).canceled_by(flag)
        } else {
            shared.canceled_by(flag)
        };
        let res = query(&engine);
        if matches!(res, Err(promql::Error::Canceled(_))) {
            // Nobody reads the answer; the log says the thread is free again.
            tracing::info!(
                elapsed_ms = began.elapsed().as_millis() as u64,
                "query stopped: its client went away"
            );
        }
        (res, began - queued, began.elapsed())
    })
    .await;
    // The task ended (a panic included): only a dropped request counts as canceled.
    canceled.finished();
    let (res, queue, eval) =
        joined.map_err(|e| ApiError::internal(format!("query task failed: {e}")))?;
    let mut res = res?;
    if let Some(limit) = opts.limit {
        truncate(&mut res, limit);
    }
    let stats = opts.stats.then(|| QueryStats {
        queue,
        eval,
        preparation: counting.read_time(),
        loaded_samples: counting.samples(),
        result_samples: result_samples(&res.value),
    });
    Ok(render(&res, stats))
}

/// Sets its flag when dropped before [`CancelOnDrop::finished`]: the request went away with
/// its query still running. Counted in `vigil_engine_queries_canceled_total`.
struct CancelOnDrop<'a> {
    flag: Arc<AtomicBool>,
    done: bool,
    counter: &'a AtomicU64,
}

impl<'a> CancelOnDrop<'a> {
    fn new(counter: &'a AtomicU64) -> Self {
        CancelOnDrop {
            flag: Arc::new(AtomicBool::new(false)),
            done: false,
            counter,
        }
    }

    fn flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.flag)
    }

    fn finished(mut self) {
        self.done = true;
    }
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.flag.store(true, Ordering::Relaxed);
            self.counter.fetch_add(1, Ordering::Relaxed);
            tracing::debug!("client went away; query canceled");
        }
    }
}

/// Keeps the first `limit` series of a vector or matrix answer, warning when any were cut.
fn truncate(res: &mut QueryResult, limit: usize) {
    let cut = match &mut res.value {
        Value::Vector(v) if v.len() > limit => {
            v.truncate(limit);
            true
        }
        Value::Matrix(m) if m.len() > limit => {
            m.truncate(limit);
            true
        }
        _ => false,
    };
    if cut {
        res.warnings.push(TRUNCATED.to_string());
    }
}

fn result_samples(v: &Value) -> u64 {
    match v {
        Value::Scalar { .. } | Value::String { .. } => 1,
        Value::Vector(v) => v.len() as u64,
        Value::Matrix(m) => m.iter().map(|s| s.samples.len() as u64).sum(),
    }
}

fn render(res: &QueryResult, stats: Option<QueryStats>) -> Response {
    let mut data = String::new();
    encode::write_query_data(&mut data, &res.value);
    if let Some(stats) = stats {
        // The stats block is the last member of `data`: reopen the object to add it.
        data.pop();
        stats.write(&mut data);
        data.push('}');
    }
    success(&data, &res.warnings, &res.infos)
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::Labels;
    use promql::VectorElement;

    fn params(q: &str) -> Params {
        Params::from_query(q)
    }

    #[test]
    fn options_parse_like_prometheus() {
        let o = QueryOptions::parse(&params("limit=2&timeout=1.5&lookback_delta=1m&stats=all"))
            .unwrap();
        assert_eq!(
            o,
            QueryOptions {
                limit: Some(2),
                timeout: Some(Duration::from_millis(1500)),
                lookback_delta: Some(Duration::from_secs(60)),
                stats: true,
            }
        );
        assert_eq!(
            QueryOptions::parse(&params("")).unwrap(),
            QueryOptions::default()
        );
        let e = QueryOptions::parse(&params("timeout=abc")).unwrap_err();
        assert_eq!(
            e.message,
            r#"invalid parameter "timeout": cannot parse "abc" to a valid duration"#
        );
        let e = QueryOptions::parse(&params("lookback_delta=x")).unwrap_err();
        assert_eq!(
            e.message,
            r#"error parsing lookback delta duration: cannot parse "x" to a valid duration"#
        );
        let e = QueryOptions::parse(&params("limit=-3")).unwrap_err();
        assert_eq!(
            e.message,
            r#"invalid parameter "limit": limit must be non-negative"#
        );
    }

    #[test]
    fn limit_cuts_series_and_warns() {
        let elem = |job: &str| VectorElement {
            labels: Labels::from_pairs([("job", job)]),
            t: 0,
            v: 1.0,
        };
        let mut res = QueryResult {
            value: Value::Vector(vec![elem("a"), elem("b"), elem("c")]),
            warnings: vec![],
            infos: vec![],
        };
        truncate(&mut res, 3);
        assert!(res.warnings.is_empty(), "not cut at exactly the limit");
        truncate(&mut res, 2);
        let Value::Vector(v) = &res.value else {
            panic!("vector")
        };
        assert_eq!(v.len(), 2);
        assert_eq!(res.warnings, vec![TRUNCATED.to_string()]);
    }
}
