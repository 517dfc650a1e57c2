//! What `vigil server` takes through remote write with the TSDB's ingestion flags: a series
//! over a limit is refused with a 400 naming the flag while the rest of the request is
//! stored, late samples inside `--storage.tsdb.out-of-order-time-window` are stored, and
//! `/metrics` counts both under Prometheus's TSDB metric names.

use crate::harness::*;

/// The value of the sample line starting `prefix ` in a `/metrics` text.
async fn metric(v: &Vigil, prefix: &str) -> f64 {
    let text = client()
        .get(v.url("/metrics"))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("body");
    text.lines()
        .find_map(|l| l.strip_prefix(prefix)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {prefix} in /metrics:\n{text}"))
        .parse()
        .expect("a number")
}

async fn samples_of(v: &Vigil, selector: &str, at_ms: i64) -> Vec<i64> {
    let path = format!(
        "/api/v1/query?query={}&time={}",
        enc(&format!("{selector}[10m]")),
        at_ms as f64 / 1000.0
    );
    let (status, j) = get_json(v, &path).await;
    assert_eq!(status, 200, "{j}");
    let mut ts: Vec<i64> = j["data"]["result"]
        .as_array()
        .expect("result")
        .iter()
        .flat_map(|s| s["values"].as_array().cloned().unwrap_or_default())
        .map(|p| (p[0].as_f64().unwrap_or(0.0) * 1000.0).round() as i64)
        .collect();
    ts.sort_unstable();
    ts
}

#[tokio::test]
async fn limits_refuse_named_series_and_the_window_takes_late_samples() {
    let v = Vigil::server(&[
        "--storage.tsdb.max-label-value-length=10",
        "--storage.tsdb.max-labels-per-series=3",
        "--storage.tsdb.out-of-order-time-window=5m",
    ]);
    let now = now_ms() / 1000 * 1000;
    let ok: &[(&str, &str)] = &[("__name__", "ingest_ok"), ("job", "a")];
    let long: &[(&str, &str)] = &[("__name__", "ingest_long"), ("job", "far-too-long-value")];
    let many: &[(&str, &str)] = &[
        ("__name__", "ingest_many"),
        ("a", "1"),
        ("b", "2"),
        ("c", "3"),
    ];
    let body = write_body(&[
        (ok, vec![(now - 60_000, 1.0), (now, 2.0)]),
        (long, vec![(now, 1.0)]),
        (many, vec![(now, 1.0), (now - 1000, 1.0)]),
    ]);
    let (status, text) = remote_write(&v, body).await;
    assert_eq!(status, 400, "{text}");
    assert!(
        text.contains("--storage.tsdb.max-labels-per-series=3")
            || text.contains("--storage.tsdb.max-label-value-length=10"),
        "the answer names the limit: {text}"
    );
    assert!(
        text.contains("3 samples refused") && text.contains("2 stored"),
        "{text}"
    );
    assert_eq!(samples_of(&v, "ingest_ok", now).await, [now - 60_000, now]);
    assert!(
        samples_of(&v, "{__name__=~\"ingest_long|ingest_many\"}", now)
            .await
            .is_empty()
    );

    // Two minutes late is inside the five-minute window; ten minutes is too old.
    let late = write_body(&[(ok, vec![(now - 120_000, 0.5), (now - 30_000, 1.5)])]);
    let (status, text) = remote_write(&v, late).await;
    assert_eq!(status, 204, "{text}");
    let too_old = write_body(&[(ok, vec![(now - 600_000, 0.1)])]);
    let (status, text) = remote_write(&v, too_old).await;
    assert_eq!(status, 400, "{text}");
    assert_eq!(
        samples_of(&v, "ingest_ok", now).await,
        [now - 120_000, now - 60_000, now - 30_000, now]
    );

    let limit = |name: &str| {
        format!("vigil_tsdb_limit_refused_samples_total{{limit=\"storage.tsdb.{name}\"}}")
    };
    assert_eq!(metric(&v, &limit("max-label-value-length")).await, 1.0);
    assert_eq!(metric(&v, &limit("max-labels-per-series")).await, 2.0);
    assert_eq!(
        metric(
            &v,
            "vigil_remote_write_rejected_samples_total{reason=\"over_limit\"}"
        )
        .await,
        3.0
    );
    assert_eq!(
        metric(
            &v,
            "prometheus_tsdb_head_out_of_order_samples_appended_total"
        )
        .await,
        2.0
    );
    assert_eq!(
        metric(&v, "prometheus_tsdb_too_old_samples_total{type=\"float\"}").await,
        1.0
    );
    assert_eq!(
        metric(
            &v,
            "prometheus_tsdb_head_samples_appended_total{type=\"float\"}"
        )
        .await,
        4.0
    );
    assert_eq!(metric(&v, "prometheus_tsdb_head_series").await, 1.0);
}
