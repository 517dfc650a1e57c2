//! A real Prometheus 2.42 using Vigil as the issue promises: as long-term storage through
//! `remote_read`, and as a federation source through `/federate`. Each Prometheus holds no data
//! of its own; its answers must equal Vigil's on the same questions. Plus `format_query`
//! printing expressions as Prometheus prints them.
//!
//! The peer is `/usr/bin/prometheus`. Without it the tests skip, unless `CI=true`, where a
//! missing peer is a failure.

use crate::grafana::{compare, data, secs, send, write, Req};
use crate::harness::*;
use crate::peers::Prometheus;
use serde_json::Value;
use std::time::Duration;

/// Queries a Prometheus that reads everything from Vigil must answer as Vigil does: selectors
/// of every matcher type (pushed down as remote-read matchers), range functions that need
/// samples before the step (the read's time hints), aggregations and range queries.
#[tokio::test]
async fn prometheus_remote_reads_vigil_as_its_long_term_storage() {
    let vigil = Vigil::server(&[]);
    let config = format!(
        "global:\n  scrape_interval: 15s\nremote_read:\n  - url: {}\n    read_recent: true\n",
        vigil.url("/api/v1/read")
    );
    let Some(prom) = Prometheus::start("remote read from Vigil", &config, &[], &[]).await else {
        return;
    };
    let (ours, theirs) = (vigil.url(""), format!("http://{}", prom.addr));
    let start = (now_ms() / 60_000 - 21) * 60_000;
    write(&ours, &data(start)).await;

    let t = secs(start + 15 * 60_000 + 250);
    let range = |expr: &str, step: u32| {
        Req::Get(format!(
            "/api/v1/query_range?query={}&start={}&end={}&step={step}",
            enc(expr),
            secs(start + 60_000),
            secs(start + 19 * 60_000)
        ))
    };
    let instant = |expr: &str| Req::Get(format!("/api/v1/query?query={}&time={t}", enc(expr)));
    let cases = [
        ("equality", instant(r#"http_requests_total{job="api"}"#)),
        ("inequality", instant(r#"http_requests_total{code!="200"}"#)),
        (
            "regex",
            instant(r#"{__name__=~"node_.+", instance=~"a|b"}"#),
        ),
        (
            "negative regex",
            instant(r#"http_requests_total{job!~"w.*"}"#),
        ),
        ("rate", instant("rate(http_requests_total[5m])")),
        (
            "sum by",
            instant("sum by (job) (increase(http_requests_total[2m]))"),
        ),
        ("offset", instant("node_load1 offset 3m")),
        (
            "range rate",
            range(r#"rate(http_requests_total{instance="b"}[1m])"#, 30),
        ),
        (
            "range max_over_time",
            range("max_over_time(node_load1[3m])", 60),
        ),
        ("range sum", range("sum(http_requests_total)", 45)),
    ];
    for (ctx, req) in &cases {
        let a = send(&ours, req).await;
        assert_eq!(a.0, 200, "{ctx}: {}", a.1);
        let b = send(&theirs, req).await;
        compare(ctx, &a, &b);
    }
    // Not a vacuous comparison: the answers hold Vigil's series; a selector matching nothing
    // in Vigil is empty in Prometheus too.
    let (_, sum) = send(&theirs, &cases[5].1).await;
    assert_eq!(
        sum["data"]["result"].as_array().map(Vec::len),
        Some(2),
        "{sum}"
    );
    let (status, none) = send(&theirs, &instant(r#"http_requests_total{job="none"}"#)).await;
    assert_eq!(
        (status, none["data"]["result"].as_array().map(Vec::len)),
        (200, Some(0)),
        "{none}"
    );
}

/// A Prometheus scraping Vigil's `/federate` with `honor_labels` stores each series' latest
/// sample with Vigil's labels, value and timestamp.
#[tokio::test]
async fn prometheus_federates_the_latest_samples_from_vigil() {
    let vigil = Vigil::server(&[]);
    let start = (now_ms() / 60_000 - 21) * 60_000;
    write(&vigil.url(""), &data(start)).await;
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: federate\n    honor_labels: true\n    metrics_path: /federate\n    params:\n      'match[]':\n        - '{{job=~\"api|web\"}}'\n        - 'node_load1'\n    static_configs:\n      - targets: ['{}']\n",
        vigil.addr
    );
    let Some(prom) = Prometheus::start("federation from Vigil", &config, &[], &[]).await else {
        return;
    };
    let theirs = format!("http://{}", prom.addr);
    let federated = r#"{__name__=~"http_requests_total|node_load1"}"#;
    let up = eventually(Duration::from_secs(20), || async {
        let (_, b) = send(
            &theirs,
            &Req::Get(format!("/api/v1/query?query={}", enc(federated))),
        )
        .await;
        (b["data"]["result"].as_array().map(Vec::len) == Some(10)).then_some(())
    })
    .await;
    assert!(
        up.is_some(),
        "Prometheus never held the 10 federated series"
    );

    // The latest sample of each series: its value and its own timestamp, as Vigil holds them.
    let t = secs(now_ms());
    for expr in [federated.to_string(), format!("timestamp({federated})")] {
        let req = Req::Get(format!("/api/v1/query?query={}&time={t}", enc(&expr)));
        let a = send(&vigil.url(""), &req).await;
        let b = send(&theirs, &req).await;
        compare(&expr, &a, &b);
    }
    let (_, ts) = send(
        &theirs,
        &Req::Get(format!(
            "/api/v1/query?query={}&time={t}",
            enc(&format!("max(timestamp({federated}))"))
        )),
    )
    .await;
    let last = (start + 7_300 + 79 * 15_000) as f64 / 1000.0;
    let got: f64 = ts["data"]["result"][0]["value"][1]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(f64::NAN);
    assert_eq!(
        got, last,
        "the federated timestamp is the sample's own: {ts}"
    );
}

/// `/api/v1/format_query` prints what Prometheus 2.42 prints, for expressions across the
/// grammar (2.42 has no `parse_query`; that one is Vigil's own, tested in `api`).
#[tokio::test]
async fn format_query_prints_as_prometheus_does() {
    let Some(prom) = Prometheus::receiver("format_query").await else {
        return;
    };
    let vigil = Vigil::server(&[]);
    let exprs = [
        "sum(rate(x[5m]))by(a)",
        r#"http_requests_total{job="api",code=~"5.."}"#,
        "a+on(x)group_left(y)b",
        "topk(3,sum without(instance)(rate(x[1m]offset 5m)))",
        "histogram_quantile(0.9,sum by(le)(rate(b_bucket[5m])))",
        "max_over_time(deriv(x[5m])[30m:1m])",
        "-x unless y",
        "x > bool 3",
        "x @ 100",
        r#"label_replace(up,"a","$1","job","(.*)")"#,
        "1 + 2 * 3 ^ 2",
        "sum(",
    ];
    for e in exprs {
        let req = Req::Get(format!("/api/v1/format_query?query={}", enc(e)));
        let (a, b) = (
            send(&vigil.url(""), &req).await,
            send(&format!("http://{}", prom.addr), &req).await,
        );
        assert_eq!(a.0, b.0, "{e}: {} vs {}", a.1, b.1);
        let field = if a.0 == 200 { "data" } else { "errorType" };
        assert_eq!(a.1[field], b.1[field], "{e}: {} vs {}", a.1, b.1);
        assert!(a.1[field] != Value::Null, "{e}: {}", a.1);
    }
}
