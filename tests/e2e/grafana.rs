//! The Grafana contract: every request Grafana's Prometheus datasource makes, replayed against
//! Vigil and against the real Prometheus 2.42 holding the same remote-written data, compared
//! on status code, envelope, result type, label sets and values (1e-6 relative); plus bad
//! input that both must refuse with `bad_data` 400.
//!
//! The peer is `/usr/bin/prometheus`. Without it the test skips, unless `CI=true`, where a
//! missing peer is a failure.

use crate::harness::*;
use crate::peers::Prometheus;
use model::wire::prom::{Label, MetricMetadata, TimeSeries, WireSample, WriteRequest};
use prost::Message;
use serde_json::Value;
use std::collections::BTreeMap;

/// One request as Grafana sends it: GET with a query string, or POST with a form body.
#[derive(Clone, Debug)]
pub(crate) enum Req {
    Get(String),
    Post(&'static str, String),
}

/// Sends `req` to the server at `base` and returns the status and JSON body.
pub(crate) async fn send(base: &str, req: &Req) -> (u16, Value) {
    let c = client();
    let resp = match req {
        Req::Get(path) => c.get(format!("{base}{path}")).send().await,
        Req::Post(path, form) => {
            c.post(format!("{base}{path}"))
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(form.clone())
                .send()
                .await
        }
    }
    .unwrap_or_else(|e| panic!("{req:?} to {base}: {e}"));
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    let json = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{req:?} to {base}: not JSON ({e}): {text}"));
    (status, json)
}

/// The generated data: counters and gauges every 15 s, 7.3 s off the minute so no sample sits
/// on a query step, for 20 minutes ending about a minute ago.
pub(crate) fn data(start: i64) -> WriteRequest {
    let mut timeseries = Vec::new();
    let mut add = |pairs: &[(&str, &str)], f: &dyn Fn(i64) -> f64| {
        timeseries.push(TimeSeries {
            labels: pairs
                .iter()
                .map(|(n, v)| Label {
                    name: n.to_string(),
                    value: v.to_string(),
                })
                .collect(),
            samples: (0..80)
                .map(|i| WireSample {
                    value: f(i),
                    timestamp: start + 7_300 + i * 15_000,
                })
                .collect(),
            exemplars: vec![],
        });
    };
    for (job, per_step) in [("api", 30.0), ("web", 12.5)] {
        for (instance, k) in [("a", 1.0), ("b", 2.0)] {
            for code in ["200", "500"] {
                let scale = if code == "500" { 0.1 } else { 1.0 };
                add(
                    &[
                        ("__name__", "http_requests_total"),
                        ("code", code),
                        ("instance", instance),
                        ("job", job),
                    ],
                    &move |i| per_step * k * scale * i as f64,
                );
            }
        }
    }
    for (instance, base) in [("a", 0.5), ("b", 1.75)] {
        add(
            &[
                ("__name__", "node_load1"),
                ("instance", instance),
                ("job", "node"),
            ],
            &move |i| base + ((i % 7) as f64) * 0.125,
        );
    }
    WriteRequest {
        timeseries,
        metadata: vec![
            MetricMetadata {
                r#type: 1,
                metric_family_name: "http_requests_total".into(),
                help: "Requests served.".into(),
                unit: String::new(),
            },
            MetricMetadata {
                r#type: 2,
                metric_family_name: "node_load1".into(),
                help: "1m load average.".into(),
                unit: String::new(),
            },
        ],
    }
}

pub(crate) async fn write(base: &str, req: &WriteRequest) {
    let body = snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .expect("snappy");
    let (status, text) = remote_write_to(base, body).await;
    assert_eq!(status, 204, "{base}: {text}");
}

/// The instant as RFC 3339 with milliseconds (`2026-11-28T03:00:00.250Z`), URL-encoded.
fn rfc3339(ms: i64) -> String {
    let t = chrono::DateTime::from_timestamp_millis(ms).expect("valid time");
    enc(&t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

/// Seconds with a millisecond fraction, as Grafana formats times.
pub(crate) fn secs(ms: i64) -> String {
    format!("{:.3}", ms as f64 / 1000.0)
}

fn close(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => (x - y).abs() <= 1e-6 * x.abs().max(y.abs()),
        _ => false,
    }
}

/// `[t, "v"]` pairs compared: the same timestamp, values within 1e-6 relative.
fn same_point(ctx: &str, a: &Value, b: &Value) {
    assert_eq!(a[0], b[0], "{ctx}: timestamps differ: {a} vs {b}");
    let (x, y) = (a[1].as_str().unwrap(), b[1].as_str().unwrap());
    assert!(
        close(x, y),
        "{ctx}: values differ: {a} (vigil) vs {b} (prometheus)"
    );
}

/// Result series keyed by their label set.
fn by_metric(result: &Value) -> BTreeMap<String, Value> {
    result
        .as_array()
        .unwrap_or(&vec![])
        .iter()
        .map(|s| (s["metric"].to_string(), s.clone()))
        .collect()
}

/// Compares Vigil's answer with Prometheus's on everything Grafana reads.
pub(crate) fn compare(ctx: &str, ours: &(u16, Value), theirs: &(u16, Value)) {
    let ((sa, a), (sb, b)) = (ours, theirs);
    assert_eq!(
        sa, sb,
        "{ctx}: status {sa} vs {sb}\nvigil: {a}\nprometheus: {b}"
    );
    assert_eq!(
        a["status"], b["status"],
        "{ctx}: envelope\nvigil: {a}\nprometheus: {b}"
    );
    assert_eq!(
        a["errorType"], b["errorType"],
        "{ctx}: errorType\nvigil: {a}\nprometheus: {b}"
    );
    if a["status"] != "success" {
        return;
    }
    let (da, db) = (&a["data"], &b["data"]);
    let Some(kind) = db["resultType"].as_str() else {
        // Label names, label values and series lists: the same items in the same order.
        assert_eq!(da, db, "{ctx}: data");
        return;
    };
    assert_eq!(da["resultType"], db["resultType"], "{ctx}: result type");
    match kind {
        "scalar" | "string" => same_point(ctx, &da["result"], &db["result"]),
        "vector" | "matrix" => {
            let (ma, mb) = (by_metric(&da["result"]), by_metric(&db["result"]));
            assert_eq!(
                ma.keys().collect::<Vec<_>>(),
                mb.keys().collect::<Vec<_>>(),
                "{ctx}: label sets"
            );
            assert!(!mb.is_empty(), "{ctx}: pick a query with an answer");
            for (k, sa) in &ma {
                let sb = &mb[k];
                if kind == "vector" {
                    same_point(&format!("{ctx} {k}"), &sa["value"], &sb["value"]);
                } else {
                    let (va, vb) = (
                        sa["values"].as_array().unwrap(),
                        sb["values"].as_array().unwrap(),
                    );
                    assert_eq!(va.len(), vb.len(), "{ctx} {k}: points\n{va:?}\n{vb:?}");
                    for (pa, pb) in va.iter().zip(vb) {
                        same_point(&format!("{ctx} {k}"), pa, pb);
                    }
                }
            }
        }
        other => panic!("{ctx}: unexpected result type {other}"),
    }
}

#[tokio::test]
async fn grafana_requests_answered_like_prometheus() {
    let Some(prom) = Prometheus::receiver("the Grafana contract").await else {
        return;
    };
    let vigil = Vigil::server(&[]);
    let (ours, theirs) = (vigil.url(""), format!("http://{}", prom.addr));

    let start = (now_ms() / 60_000 - 21) * 60_000;
    let req = data(start);
    write(&ours, &req).await;
    write(&theirs, &req).await;

    let (s, e) = (start + 60_000, start + 19 * 60_000 + 500);
    let range = format!("start={}&end={}", secs(s), secs(e));
    let t = secs(start + 15 * 60_000 + 250);
    let q = |expr: &str| enc(expr);
    let mut cases: Vec<(&str, Req)> = vec![
        // The datasource health check.
        (
            "health check",
            Req::Get("/api/v1/query?query=1%2B1&time=4".into()),
        ),
        (
            "health check POST",
            Req::Post("/api/v1/query", "query=1%2B1&time=4".into()),
        ),
        // Metrics and label browser.
        ("labels", Req::Get(format!("/api/v1/labels?{range}"))),
        (
            "labels POST match[]",
            Req::Post(
                "/api/v1/labels",
                format!("{range}&match[]={}", q("node_load1")),
            ),
        ),
        (
            "metric names",
            Req::Get(format!("/api/v1/label/__name__/values?{range}")),
        ),
        (
            "label values with match[]",
            Req::Get(format!(
                "/api/v1/label/job/values?match[]={}&{range}",
                q(r#"http_requests_total{code="500"}"#)
            )),
        ),
        (
            "series match-all",
            Req::Get(format!(
                "/api/v1/series?match[]={}&{range}",
                q(r#"{__name__!=""}"#)
            )),
        ),
        (
            "series POST, two match[]",
            Req::Post(
                "/api/v1/series",
                format!(
                    "match[]={}&match[]={}&{range}",
                    q("node_load1"),
                    q(r#"http_requests_total{job="web",code="200"}"#)
                ),
            ),
        ),
        // Variables: label_values(metric, label) and query_result(...) become these.
        (
            "query_result sum by",
            Req::Get(format!(
                "/api/v1/query?query={}&time={t}",
                q("sum by (job) (rate(http_requests_total[5m]))")
            )),
        ),
        (
            "query_result comparison",
            Req::Post(
                "/api/v1/query",
                format!(
                    "query={}&time={t}",
                    q(r#"http_requests_total{job="api"} > 3000"#)
                ),
            ),
        ),
        (
            "instant arithmetic",
            Req::Get(format!(
                "/api/v1/query?query={}&time={t}",
                q("node_load1 * 2 - 1")
            )),
        ),
        (
            "instant bool comparison",
            Req::Get(format!(
                "/api/v1/query?query={}&time={t}",
                q("node_load1 > bool 1")
            )),
        ),
        // Panels: range queries, steps as float seconds, start and end on step multiples.
        (
            "range rate 15s",
            Req::Post(
                "/api/v1/query_range",
                format!(
                    "query={}&start={}&end={}&step=15",
                    q("rate(http_requests_total{code=\"200\"}[1m])"),
                    secs(s),
                    secs(start + 18 * 60_000)
                ),
            ),
        ),
        (
            "range sum by 60s",
            Req::Get(format!(
                "/api/v1/query_range?query={}&start={}&end={}&step=60",
                q("sum by (job, code) (rate(http_requests_total[5m]))"),
                secs(s),
                secs(start + 19 * 60_000)
            )),
        ),
        (
            "range fractional step",
            Req::Get(format!(
                "/api/v1/query_range?query={}&start={}&end={}&step=7.5",
                q("node_load1 / on(instance) group_left node_load1"),
                secs(start + 120_000),
                secs(start + 240_000)
            )),
        ),
        (
            "range scalar",
            Req::Get(format!(
                "/api/v1/query_range?query={}&start={}&end={}&step=30",
                q("2 * 3"),
                secs(s),
                secs(start + 300_000)
            )),
        ),
        (
            "range with RFC 3339 times and a duration step",
            Req::Get(format!(
                "/api/v1/query_range?query={}&start={}&end={}&step=1m",
                q("sum(rate(http_requests_total[2m]))"),
                rfc3339(start + 120_000),
                rfc3339(start + 600_000)
            )),
        ),
        (
            "instant at an RFC 3339 time with a fraction",
            Req::Get(format!(
                "/api/v1/query?query={}&time={}",
                q("node_load1"),
                rfc3339(start + 15 * 60_000 + 250)
            )),
        ),
        // The exemplars probe sends milliseconds where seconds belong.
        (
            "exemplars probe",
            Req::Get(format!(
                "/api/v1/query_exemplars?query=test&start={s}&end={e}"
            )),
        ),
        (
            "timeout applies",
            Req::Post(
                "/api/v1/query",
                format!("query={}&time={t}&timeout=0.000001", q("node_load1")),
            ),
        ),
        ("buildinfo", Req::Get("/api/v1/status/buildinfo".into())),
        ("targets", Req::Get("/api/v1/targets".into())),
        ("walreplay", Req::Get("/api/v1/status/walreplay".into())),
    ];
    // Bad input both refuse with bad_data 400.
    cases.extend([
        (
            "step 0",
            Req::Get(format!("/api/v1/query_range?query=up&{range}&step=0")),
        ),
        (
            "negative step",
            Req::Get(format!("/api/v1/query_range?query=up&{range}&step=-15")),
        ),
        (
            "too many points",
            Req::Get("/api/v1/query_range?query=up&start=0&end=20000&step=1".to_string()),
        ),
        (
            "invalid start",
            Req::Get("/api/v1/query_range?query=up&start=yesterday&end=10&step=1".into()),
        ),
        (
            "invalid time",
            Req::Get("/api/v1/query?query=up&time=noon".into()),
        ),
        (
            "malformed query",
            Req::Get("/api/v1/query?query=sum(".into()),
        ),
        (
            "malformed match[]",
            Req::Get(format!("/api/v1/series?match[]={}", q("up{"))),
        ),
        ("series without match[]", Req::Get("/api/v1/series".into())),
        (
            "invalid timeout",
            Req::Post("/api/v1/query", "query=up&timeout=soon".into()),
        ),
        (
            "end before start",
            Req::Get("/api/v1/query_range?query=up&start=20&end=10&step=1".into()),
        ),
        (
            "form body over Go's 10 MiB bound",
            Req::Post(
                "/api/v1/series",
                format!("match[]=up&pad={}", "a".repeat(10 << 20)),
            ),
        ),
    ]);
    let bad_cases = 11;
    for (ctx, req) in &cases {
        let a = send(&ours, req).await;
        let b = send(&theirs, req).await;
        if *ctx == "buildinfo" {
            // Versions differ by nature; Grafana needs the same keys (and no `features`).
            let keys = |v: &Value| {
                v["data"]
                    .as_object()
                    .unwrap()
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
            };
            assert_eq!((a.0, keys(&a.1)), (b.0, keys(&b.1)), "buildinfo keys");
            continue;
        }
        compare(ctx, &a, &b);
        if ctx.contains("bound") {
            assert_eq!(a.1["error"], b.1["error"], "{ctx}: message");
        }
    }
    for (ctx, req) in cases.iter().skip(cases.len() - bad_cases) {
        let (status, body) = send(&ours, req).await;
        assert_eq!(
            (status, body["errorType"].as_str()),
            (400, Some("bad_data")),
            "{ctx}: {body}"
        );
    }

    // The stats block has Prometheus's members.
    let stats = Req::Get("/api/v1/query?query=node_load1&time=4&stats=all".into());
    let (a, b) = (send(&ours, &stats).await, send(&theirs, &stats).await);
    let members = |v: &Value, part: &str| {
        v["data"]["stats"][part]
            .as_object()
            .map(|o| o.keys().cloned().collect::<Vec<_>>())
    };
    for part in ["timings", "samples"] {
        assert!(members(&b.1, part).is_some(), "{}", b.1);
        assert_eq!(members(&a.1, part), members(&b.1, part), "stats {part}");
    }

    // `limit` (Prometheus 3; 2.42 ignores it) cuts series and says so.
    let limited = Req::Get(format!(
        "/api/v1/query?query={}&time={t}&limit=3",
        q("http_requests_total")
    ));
    let (status, body) = send(&ours, &limited).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["result"].as_array().unwrap().len(), 3);
    assert_eq!(
        body["warnings"],
        serde_json::json!(["results truncated due to limit"])
    );

    // `limit` on the label and series lists (Prometheus 3) and UTF-8 label names written with
    // Prometheus 3's `U__` escaping (`U__job` is `job`).
    for (path, want) in [
        (
            "/api/v1/labels?limit=2",
            serde_json::json!(["__name__", "code"]),
        ),
        (
            "/api/v1/label/job/values?limit=1",
            serde_json::json!(["api"]),
        ),
        (
            "/api/v1/label/U__job/values?limit=2",
            serde_json::json!(["api", "node"]),
        ),
    ] {
        let (status, body) = send(&ours, &Req::Get(format!("{path}&{range}"))).await;
        assert_eq!((status, &body["data"]), (200, &want), "{path}: {body}");
        assert_eq!(
            body["warnings"],
            serde_json::json!(["results truncated due to limit"]),
            "{path}"
        );
    }
    let (_, series) = send(
        &ours,
        &Req::Get(format!(
            "/api/v1/series?match[]=http_requests_total&limit=3&{range}"
        )),
    )
    .await;
    assert_eq!(series["data"].as_array().map(Vec::len), Some(3), "{series}");
    let (_, all) = send(
        &ours,
        &Req::Get(format!("/api/v1/label/U__job/values?{range}")),
    )
    .await;
    assert_eq!(all["data"], serde_json::json!(["api", "node", "web"]));
    assert!(all.get("warnings").is_none(), "{all}");

    // Metadata: Prometheus learns it only from scrapes, Vigil also from remote write; both
    // answer a map of metric to entries.
    let (sa, ma) = send(&ours, &Req::Get("/api/v1/metadata".into())).await;
    let (sb, mb) = send(&theirs, &Req::Get("/api/v1/metadata".into())).await;
    assert_eq!((sa, sb), (200, 200));
    assert!(mb["data"].is_object(), "{mb}");
    assert_eq!(
        ma["data"]["http_requests_total"],
        serde_json::json!([{"type": "counter", "help": "Requests served.", "unit": ""}])
    );
    let (_, one) = send(
        &ours,
        &Req::Get("/api/v1/metadata?limit=1&metric=node_load1".into()),
    )
    .await;
    assert_eq!(one["data"].as_object().unwrap().len(), 1);

    // Grafana's alerting takes a server answering /status/flags for Thanos: Vigil says 404.
    let (status, body) = send(&ours, &Req::Get("/api/v1/status/flags".into())).await;
    assert_eq!(
        (status, body["errorType"].as_str()),
        (404, Some("not_found"))
    );
}
