//! Server status endpoints: `/api/v1/status/{runtimeinfo,config,flags,walreplay,tsdb}` and
//! `/api/v1/targets` (the agents' reported targets merged), in Prometheus's JSON shapes.
//!
//! `/status/flags` deliberately answers 404: Grafana's alerting takes a server whose buildinfo
//! *and* flags answer for Thanos and then probes a ruler API Vigil does not have
//! (`../shared/reference/prometheus.md` §2.3, §8).

use crate::error::ApiError;
use crate::params::Params;
use crate::prom::agent_targets::TargetsFilter;
use crate::prom::success;
use crate::state::AppState;
use axum::extract::State;
use axum::response::Response;
use model::{MatchOp, Matcher};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// How many entries each `/status/tsdb` top list has unless `limit` says otherwise.
pub const DEFAULT_TSDB_STATUS_LIMIT: usize = 10;

/// Computes [`TsdbStatus`] with top lists of the given length; an `Err` is the store's failure
/// and answers 500. It may walk the whole index, so it is called on the blocking pool.
pub type TsdbStatusFn = Arc<dyn Fn(usize) -> Result<TsdbStatus, String> + Send + Sync>;
/// Reports the write-ahead log replay's progress.
pub type WalReplayFn = Arc<dyn Fn() -> WalReplayStatus + Send + Sync>;

/// `/api/v1/status/tsdb`'s answer, in Prometheus's shape.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TsdbStatus {
    pub head_stats: HeadStats,
    pub series_count_by_metric_name: Vec<TsdbStat>,
    pub label_value_count_by_label_name: Vec<TsdbStat>,
    pub memory_in_bytes_by_label_name: Vec<TsdbStat>,
    pub series_count_by_label_value_pair: Vec<TsdbStat>,
}

/// The head block's totals. An empty head has `minTime` = `i64::MAX` and `maxTime` =
/// `i64::MIN`, as Prometheus reports it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HeadStats {
    pub num_series: u64,
    pub num_label_pairs: u64,
    pub chunk_count: i64,
    pub min_time: i64,
    pub max_time: i64,
}

impl Default for HeadStats {
    fn default() -> Self {
        HeadStats {
            num_series: 0,
            num_label_pairs: 0,
            chunk_count: 0,
            min_time: i64::MAX,
            max_time: i64::MIN,
        }
    }
}

/// One entry of a top list: `{"name": …, "value": …}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TsdbStat {
    pub name: String,
    pub value: u64,
}

/// `/api/v1/status/walreplay`'s answer: WAL segment numbers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct WalReplayStatus {
    pub min: u64,
    pub max: u64,
    pub current: u64,
}

fn json<T: Serialize>(v: &T) -> Result<Response, ApiError> {
    let data =
        serde_json::to_string(v).map_err(|e| ApiError::internal(format!("encode answer: {e}")))?;
    Ok(success(&data, &[], &[]))
}

pub async fn runtimeinfo(State(st): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let rt = tokio::runtime::Handle::current().metrics();
    let cwd = std::env::current_dir()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|e| format!("<error retrieving current working directory: {e}>"));
    let started = st
        .started_at
        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    let info = serde_json::json!({
        "startTime": started,
        "CWD": cwd,
        // The configuration is read once, at start; there is no reload that could fail.
        "reloadConfigSuccess": true,
        "lastConfigTime": st.started_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "corruptionCount": 0,
        // Prometheus reports Go runtime figures; the tokio equivalents are tasks and workers.
        "goroutineCount": rt.num_alive_tasks(),
        "GOMAXPROCS": rt.num_workers(),
        "GOGC": "",
        "GODEBUG": "",
        "storageRetention": st.storage_retention,
    });
    json(&info)
}

pub async fn config(State(st): State<Arc<AppState>>) -> Result<Response, ApiError> {
    json(&serde_json::json!({ "yaml": st.config_yaml }))
}

pub async fn flags() -> ApiError {
    ApiError::not_found(
        "command-line flags are not exposed: a server answering here is taken for Thanos by Grafana",
    )
}

pub async fn walreplay(State(st): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let status = st.wal_replay.as_ref().map(|f| f()).unwrap_or_default();
    json(&status)
}

pub async fn tsdb(State(st): State<Arc<AppState>>, p: Params) -> Result<Response, ApiError> {
    let limit = match p.get("limit").filter(|s| !s.is_empty()) {
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| ApiError::bad_data("limit must be a positive number"))?,
        None => DEFAULT_TSDB_STATUS_LIMIT,
    };
    let provider = st.tsdb_status.clone();
    let querier = st.querier.clone();
    let status = tokio::task::spawn_blocking(move || match provider {
        Some(f) => f(limit).map_err(ApiError::internal),
        None => status_from_querier(querier.as_ref(), limit),
    })
    .await
    .map_err(|e| ApiError::internal(format!("tsdb status task failed: {e}")))??;
    json(&status)
}

/// The statistics a store without its own report can still give: cardinality from its series
/// and the time span from its samples. Chunks are a storage detail the `Querier` does not
/// show, so `chunkCount` stays 0; stores with chunks set [`AppState::tsdb_status`].
pub fn status_from_querier(
    querier: &dyn model::Querier,
    limit: usize,
) -> Result<TsdbStatus, ApiError> {
    let all = [Matcher::new(MatchOp::Regex, "__name__", ".+")
        .map_err(|e| ApiError::internal(format!("match-all matcher: {e}")))?];
    let series = querier.select(i64::MIN, i64::MAX, &all)?;
    let mut head = HeadStats {
        num_series: series.len() as u64,
        ..HeadStats::default()
    };
    let mut by_metric: BTreeMap<&str, u64> = BTreeMap::new();
    let mut values_by_name: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut by_pair: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for s in &series {
        if let (Some(first), Some(last)) = (s.samples.first(), s.samples.last()) {
            head.min_time = head.min_time.min(first.t);
            head.max_time = head.max_time.max(last.t);
        }
        if let Some(name) = s.labels.metric_name() {
            *by_metric.entry(name).or_default() += 1;
        }
        for l in s.labels.iter() {
            values_by_name.entry(&l.name).or_default().insert(&l.value);
            *by_pair.entry((&l.name, &l.value)).or_default() += 1;
        }
    }
    head.num_label_pairs = by_pair.len() as u64;
    let top = |entries: Vec<TsdbStat>| {
        let mut entries = entries;
        entries.sort_by(|a, b| b.value.cmp(&a.value).then_with(|| a.name.cmp(&b.name)));
        entries.truncate(limit);
        entries
    };
    Ok(TsdbStatus {
        head_stats: head,
        series_count_by_metric_name: top(by_metric.iter().map(|(n, c)| stat(n, *c)).collect()),
        label_value_count_by_label_name: top(values_by_name
            .iter()
            .map(|(n, v)| stat(n, v.len() as u64))
            .collect()),
        memory_in_bytes_by_label_name: top(values_by_name
            .iter()
            .map(|(n, v)| stat(n, v.iter().map(|x| x.len() as u64).sum()))
            .collect()),
        series_count_by_label_value_pair: top(by_pair
            .iter()
            .map(|((n, v), c)| stat(&format!("{n}={v}"), *c))
            .collect()),
    })
}

fn stat(name: &str, value: u64) -> TsdbStat {
    TsdbStat {
        name: name.to_string(),
        value,
    }
}

/// The targets the agents report (`agent_targets.rs`), merged: the server scrapes nothing
/// itself. `state` (`active`, `dropped`, `any`; default any) and `scrapePool` filter as in
/// Prometheus: a list left out is `null`, and an unknown state leaves out both.
pub async fn targets(State(st): State<Arc<AppState>>, p: Params) -> Result<Response, ApiError> {
    let state = p.get("state").unwrap_or_default().to_ascii_lowercase();
    let filter = TargetsFilter {
        active: matches!(state.as_str(), "" | "any" | "active"),
        dropped: matches!(state.as_str(), "" | "any" | "dropped"),
        pool: p
            .get("scrapePool")
            .filter(|s| !s.is_empty())
            .map(str::to_string),
    };
    let merged = st.agent_targets.merged(&filter, std::time::Instant::now());
    json(&serde_json::json!({
        "activeTargets": merged.active,
        "droppedTargets": merged.dropped,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::{Appender, Labels, MemStorage, Sample, Series};

    #[test]
    fn status_from_series() {
        let store = MemStorage::new();
        let mk = |pairs: &[(&str, &str)], t: i64| Series {
            labels: Labels::from_pairs(pairs.iter().copied()),
            samples: vec![Sample { t, v: 1.0 }],
        };
        store
            .append(&[
                mk(&[("__name__", "up"), ("job", "a")], 10),
                mk(&[("__name__", "up"), ("job", "bb")], 30),
                mk(&[("__name__", "x"), ("job", "a")], 20),
            ])
            .unwrap();
        let s = status_from_querier(&store, 1).unwrap();
        assert_eq!(s.head_stats.num_series, 3);
        assert_eq!(s.head_stats.num_label_pairs, 4);
        assert_eq!((s.head_stats.min_time, s.head_stats.max_time), (10, 30));
        assert_eq!(s.series_count_by_metric_name, vec![stat("up", 2)]);
        assert_eq!(s.label_value_count_by_label_name, vec![stat("__name__", 2)]);
        // Ties go to the smaller name.
        assert_eq!(s.memory_in_bytes_by_label_name, vec![stat("__name__", 3)]);
        assert_eq!(
            s.series_count_by_label_value_pair,
            vec![stat("__name__=up", 2)]
        );
        let empty = status_from_querier(&MemStorage::new(), 10).unwrap();
        let j = serde_json::to_value(&empty).unwrap();
        assert_eq!(j["headStats"]["minTime"], i64::MAX);
        assert_eq!(j["seriesCountByLabelValuePair"], serde_json::json!([]));
    }
}
