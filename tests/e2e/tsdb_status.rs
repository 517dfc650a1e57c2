//! `/api/v1/status/tsdb` against the real Prometheus 2.42: the same remote-written series
//! into both, then the same keys, the same head totals and the same top-N lists; and
//! `/api/v1/status/walreplay`'s shape.
//!
//! The peer is `/usr/bin/prometheus`. Without it the test skips, unless `CI=true`, where a
//! missing peer is a failure.

use crate::harness::*;
use crate::peers::Prometheus;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// One owned series: label pairs and `(t_ms, value)` samples.
type OwnedSeries = (Vec<(String, String)>, Vec<(i64, f64)>);

/// The data: 12 metrics, metric `m_k` with `k` series, spread over instances and jobs so
/// that every top list is longer than ten and its counts differ; five samples each, a
/// minute apart, ending at `end`.
fn data(end: i64) -> Vec<OwnedSeries> {
    let mut out = Vec::new();
    for k in 1..=12usize {
        for i in 0..k {
            let labels = vec![
                ("__name__".to_string(), format!("m_{k}")),
                ("instance".to_string(), format!("host-{i}:9100")),
                ("job".to_string(), format!("job-{}", (k + i) % 4)),
                (
                    "zone".to_string(),
                    ["eu", "us-east", "ap"][i % 3].to_string(),
                ),
            ];
            let samples = (0..5)
                .map(|n| (end - (4 - n) * 60_000, (k * 100 + i) as f64 + n as f64))
                .collect();
            out.push((labels, samples));
        }
    }
    out
}

/// Where the four minutes of samples end: two minutes after the latest 2 h boundary that
/// leaves room for them, so they straddle it. Prometheus's head cuts a chunk there (its
/// `chunkRange`), and so must Vigil's for `headStats.chunkCount` to agree.
fn end_across_a_chunk_range(now: i64) -> i64 {
    const RANGE: i64 = 2 * 3600 * 1000;
    let mut boundary = now - now.rem_euclid(RANGE);
    if now - boundary < 3 * 60_000 {
        boundary -= RANGE;
    }
    boundary + 2 * 60_000
}

async fn write(base: &str, data: &[OwnedSeries]) {
    let pairs: Vec<Vec<(&str, &str)>> = data
        .iter()
        .map(|(l, _)| l.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect())
        .collect();
    let series: Vec<TestSeries> = pairs
        .iter()
        .zip(data)
        .map(|(p, (_, s))| (p.as_slice(), s.clone()))
        .collect();
    let (status, text) = remote_write_to(base, write_body(&series)).await;
    assert_eq!(status, 204, "{base}: {text}");
}

async fn status(base: &str, which: &str) -> Value {
    let resp = client()
        .get(format!("{base}/api/v1/status/{which}"))
        .send()
        .await
        .expect("GET /api/v1/status");
    assert_eq!(resp.status().as_u16(), 200, "{base}");
    let body: Value = resp.json().await.expect("JSON");
    assert_eq!(body["status"], "success", "{base}: {body}");
    body["data"].clone()
}

/// The keys of an object, recursively for nested objects and the first element of arrays.
fn shape(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), shape(v))).collect()),
        Value::Array(a) => Value::Array(a.first().map(shape).into_iter().collect()),
        Value::Number(_) => Value::String("number".into()),
        Value::String(_) => Value::String("string".into()),
        other => other.clone(),
    }
}

/// Compares two top lists. Prometheus orders entries of equal value as its heap leaves
/// them, and may keep any of them at the cut, so names are compared as sets per value,
/// except for the smallest value of a full list, whose names either side may have cut.
fn same_top_list(key: &str, ours: &Value, theirs: &Value) {
    let parse = |v: &Value| -> Vec<(u64, String)> {
        v.as_array()
            .unwrap_or_else(|| panic!("{key} is not a list: {v}"))
            .iter()
            .map(|e| {
                let value = e["value"].as_u64().unwrap_or_else(|| panic!("{key}: {e}"));
                (value, e["name"].as_str().unwrap_or_default().to_string())
            })
            .collect()
    };
    let (ours, theirs) = (parse(ours), parse(theirs));
    let values = |l: &[(u64, String)]| l.iter().map(|(v, _)| *v).collect::<Vec<_>>();
    assert_eq!(
        values(&ours),
        values(&theirs),
        "{key}: values\nvigil: {ours:?}\nprometheus: {theirs:?}"
    );
    let by_value = |l: &[(u64, String)]| {
        let mut m: BTreeMap<u64, BTreeSet<String>> = BTreeMap::new();
        for (v, n) in l {
            m.entry(*v).or_default().insert(n.clone());
        }
        m
    };
    let (a, b) = (by_value(&ours), by_value(&theirs));
    let cut = (ours.len() == 10)
        .then(|| ours.last().map(|(v, _)| *v))
        .flatten();
    for (value, names) in &a {
        if Some(*value) != cut {
            assert_eq!(Some(names), b.get(value), "{key}: names with value {value}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tsdb_status_matches_prometheus() {
    let Some(prom) = Prometheus::receiver("the status comparison").await else {
        return;
    };
    let vigil = Vigil::server(&[]);
    let data = data(end_across_a_chunk_range(now_ms()));
    let prom_base = format!("http://{}", prom.addr);
    write(&prom_base, &data).await;
    write(&vigil.url(""), &data).await;

    let ours = status(&vigil.url(""), "tsdb").await;
    let theirs = status(&prom_base, "tsdb").await;
    assert_eq!(
        shape(&ours),
        shape(&theirs),
        "keys\nvigil: {ours}\nprometheus: {theirs}"
    );
    // Five samples a minute apart make one chunk per series in both.
    for key in [
        "numSeries",
        "numLabelPairs",
        "chunkCount",
        "minTime",
        "maxTime",
    ] {
        assert_eq!(
            ours["headStats"][key], theirs["headStats"][key],
            "headStats.{key}\nvigil: {ours}\nprometheus: {theirs}"
        );
    }
    assert_eq!(ours["headStats"]["numSeries"], 78);
    for key in [
        "seriesCountByMetricName",
        "labelValueCountByLabelName",
        "memoryInBytesByLabelName",
        "seriesCountByLabelValuePair",
    ] {
        same_top_list(key, &ours[key], &theirs[key]);
    }

    // Both replayed an empty WAL before listening: the same keys, nothing read yet.
    let ours = status(&vigil.url(""), "walreplay").await;
    let theirs = status(&prom_base, "walreplay").await;
    assert_eq!(
        shape(&ours),
        shape(&theirs),
        "walreplay\nvigil: {ours}\nprometheus: {theirs}"
    );
    assert_eq!(ours, serde_json::json!({"min": 0, "max": 0, "current": 0}));
}
