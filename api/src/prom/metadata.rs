//! Metric metadata (type, help, unit) learned from remote-write requests, and
//! `/api/v1/metadata`, which Grafana's query editor loads to show types and help.
//!
//! Prometheus keeps metadata per scrape target, so one metric can carry several distinct
//! entries (two exporter versions with different help). The store keeps that: a small set of
//! distinct entries per metric family, newest last.

use crate::error::ApiError;
use crate::params::Params;
use crate::prom::success;
use crate::state::AppState;
use axum::extract::State;
use axum::response::Response;
use model::wire::prom::MetricMetadata;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

/// Most distinct entries kept for one metric; older ones are dropped first.
pub const MAX_ENTRIES_PER_METRIC: usize = 8;
/// Most metric families remembered; metadata of further families is ignored, so a sender
/// inventing names cannot grow the map without bound.
pub const MAX_METRICS: usize = 200_000;

/// One metadata entry in Prometheus's JSON shape.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MetricMeta {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub help: String,
    pub unit: String,
}

/// Metadata by metric family name, shared by the remote-write handler and the API.
#[derive(Debug, Default)]
pub struct MetadataStore {
    by_metric: RwLock<BTreeMap<String, Vec<MetricMeta>>>,
}

impl MetadataStore {
    /// Records the metadata of a remote-write request.
    pub fn record(&self, entries: &[MetricMetadata]) {
        if entries.is_empty() {
            return;
        }
        let mut map = match self.by_metric.write() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        for e in entries {
            if e.metric_family_name.is_empty() {
                continue;
            }
            let meta = MetricMeta {
                kind: type_name(e.r#type),
                help: e.help.clone(),
                unit: e.unit.clone(),
            };
            if !map.contains_key(&e.metric_family_name) && map.len() >= MAX_METRICS {
                continue;
            }
            let list = map.entry(e.metric_family_name.clone()).or_default();
            list.retain(|m| m != &meta);
            list.push(meta);
            if list.len() > MAX_ENTRIES_PER_METRIC {
                list.remove(0);
            }
        }
    }

    /// Up to `limit` metrics (all when `None`), each with up to `per_metric` entries, only
    /// `metric` when given.
    pub fn query(
        &self,
        metric: Option<&str>,
        limit: Option<usize>,
        per_metric: Option<usize>,
    ) -> BTreeMap<String, Vec<MetricMeta>> {
        let map = match self.by_metric.read() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        map.iter()
            .filter(|(name, _)| metric.is_none_or(|m| m == name.as_str()))
            .take(limit.unwrap_or(usize::MAX))
            .map(|(name, list)| {
                let n = per_metric.unwrap_or(usize::MAX);
                (name.clone(), list.iter().take(n).cloned().collect())
            })
            .collect()
    }
}

/// The protobuf `MetricType` as Prometheus's API names it.
fn type_name(t: i32) -> &'static str {
    match t {
        1 => "counter",
        2 => "gauge",
        3 => "histogram",
        4 => "gaugehistogram",
        5 => "summary",
        6 => "info",
        7 => "stateset",
        _ => "unknown",
    }
}

/// Prometheus reads both limits with `strconv.Atoi`: a negative `limit` means no limit, zero
/// means an empty answer; `limit_per_metric` applies only when positive.
fn int_param(p: &Params, name: &str) -> Result<Option<i64>, ApiError> {
    match p.get(name).filter(|s| !s.is_empty()) {
        Some(s) => s
            .parse()
            .map(Some)
            .map_err(|_| ApiError::bad_data(format!("{name} must be a number"))),
        None => Ok(None),
    }
}

pub async fn metadata(State(st): State<Arc<AppState>>, p: Params) -> Result<Response, ApiError> {
    let limit = int_param(&p, "limit")?.and_then(|n| usize::try_from(n).ok());
    let per_metric = int_param(&p, "limit_per_metric")?
        .filter(|n| *n > 0)
        .and_then(|n| usize::try_from(n).ok());
    let metric = p.get("metric").filter(|s| !s.is_empty());
    let found = st.metadata.query(metric, limit, per_metric);
    let data = serde_json::to_string(&found)
        .map_err(|e| ApiError::internal(format!("encode metadata: {e}")))?;
    Ok(success(&data, &[], &[]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, t: i32, help: &str) -> MetricMetadata {
        MetricMetadata {
            r#type: t,
            metric_family_name: name.into(),
            help: help.into(),
            unit: String::new(),
        }
    }

    #[test]
    fn keeps_distinct_entries_and_applies_limits() {
        let s = MetadataStore::default();
        s.record(&[
            entry("b_total", 1, "B."),
            entry("a", 2, "A."),
            entry("b_total", 1, "B."),
            entry("b_total", 1, "B, newer help."),
            entry("", 1, "nameless"),
        ]);
        let all = s.query(None, None, None);
        assert_eq!(all.len(), 2);
        assert_eq!(all["a"][0].kind, "gauge");
        assert_eq!(all["b_total"].len(), 2, "the duplicate is kept once");
        assert_eq!(s.query(None, Some(1), None).len(), 1);
        assert!(s.query(None, Some(0), None).is_empty());
        assert_eq!(s.query(None, None, Some(1))["b_total"].len(), 1);
        let one = s.query(Some("a"), None, None);
        assert_eq!(one.keys().collect::<Vec<_>>(), vec!["a"]);
        let json = serde_json::to_value(&one).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"a":[{"type":"gauge","help":"A.","unit":""}]})
        );
    }

    #[test]
    fn entries_per_metric_are_bounded() {
        let s = MetadataStore::default();
        for i in 0..20 {
            s.record(&[entry("m", 2, &format!("help {i}"))]);
        }
        let list = &s.query(None, None, None)["m"];
        assert_eq!(list.len(), MAX_ENTRIES_PER_METRIC);
        assert_eq!(list.last().unwrap().help, "help 19");
    }
}
