//! Metrics path: remote write in, PromQL out, bad bodies refused while the server keeps serving.

use crate::harness::*;
use serde_json::Value;
use std::time::Duration;

/// Samples every 15 s, offset 7.3 s from the minute so none sits on a query step.
fn counter_samples(start: i64, n: i64, per_step: f64) -> Vec<(i64, f64)> {
    (0..n)
        .map(|i| (start + 7_300 + i * 15_000, per_step * i as f64))
        .collect()
}

#[tokio::test]
async fn remote_write_then_query_range_reads_it_back() {
    let v = Vigil::server(&[]);
    // Ten minutes of data ending a minute ago, on a minute boundary.
    let start = (now_ms() / 60_000 - 11) * 60_000;
    let body = write_body(&[
        (
            &[
                ("__name__", "http_requests_total"),
                ("job", "api"),
                ("instance", "a"),
            ],
            counter_samples(start, 40, 30.0),
        ),
        (
            &[
                ("__name__", "http_requests_total"),
                ("job", "api"),
                ("instance", "b"),
            ],
            counter_samples(start, 40, 15.0),
        ),
        (
            &[
                ("__name__", "http_requests_total"),
                ("job", "web"),
                ("instance", "a"),
            ],
            counter_samples(start, 40, 150.0),
        ),
    ]);
    let (status, text) = remote_write(&v, body).await;
    assert_eq!(status, 204, "{text}");

    // The raw series: each step shows the latest sample within the 5m lookback.
    let q_start = (start + 120_000) / 1000;
    let q_end = (start + 540_000) / 1000;
    let (status, j) = get_json(
        &v,
        &format!(
            "/api/v1/query_range?query={}&start={q_start}&end={q_end}&step=60",
            enc(r#"http_requests_total{job="api",instance=~"a|b"}"#)
        ),
    )
    .await;
    assert_eq!(status, 200, "{j}");
    assert_eq!(j["status"], "success");
    assert_eq!(j["data"]["resultType"], "matrix");
    let result = j["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 2);
    assert_eq!(
        result[0]["metric"]["instance"], "a",
        "series sorted by labels"
    );
    let values = result[0]["values"].as_array().unwrap();
    assert_eq!(values.len(), 8);
    // At start+120s the latest sample is at start+112.3s, index 7: 7 * 30.
    assert_eq!(values[0][0].as_f64().unwrap() as i64, q_start);
    assert_eq!(values[0][1], "210");

    // rate over a counter increasing 30 per 15s is 2/s; sum by job adds instance b's 1/s.
    // From start+180s on, every 2m window holds eight samples 7.3s and 7.7s from its edges,
    // so Prometheus's extrapolation recovers the exact slope.
    let r_start = (start + 180_000) / 1000;
    let (status, j) = get_json(
        &v,
        &format!(
            "/api/v1/query_range?query={}&start={r_start}&end={q_end}&step=60",
            enc("sum by (job) (rate(http_requests_total[2m]))")
        ),
    )
    .await;
    assert_eq!(status, 200, "{j}");
    let result = j["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 2);
    assert_eq!(result[0]["metric"], serde_json::json!({"job": "api"}));
    for point in result[0]["values"].as_array().unwrap() {
        let x: f64 = point[1].as_str().unwrap().parse().unwrap();
        assert!((x - 3.0).abs() < 1e-9, "api rate {x}");
    }

    // Arithmetic with a scalar and an instant query at a float-seconds time.
    let t = (start + 300_000) as f64 / 1000.0 + 0.5;
    let (status, j) = get_json(
        &v,
        &format!(
            "/api/v1/query?query={}&time={t}",
            enc(r#"http_requests_total{job!="api"} / 10 - 1"#)
        ),
    )
    .await;
    assert_eq!(status, 200, "{j}");
    assert_eq!(j["data"]["resultType"], "vector");
    let r = &j["data"]["result"][0];
    assert_eq!(
        r["metric"],
        serde_json::json!({"instance": "a", "job": "web"})
    );
    // Latest sample at start+292.3s is index 19: 19 * 150 / 10 - 1.
    assert_eq!(r["value"][1], "284");
    assert_eq!(r["value"][0].as_f64().unwrap(), t);

    // Metadata endpoints see the written series.
    let (_, j) = get_json(&v, "/api/v1/label/job/values").await;
    assert_eq!(j["data"], serde_json::json!(["api", "web"]));
    let (_, j) = get_json(&v, "/api/v1/labels").await;
    assert_eq!(
        j["data"],
        serde_json::json!(["__name__", "instance", "job"])
    );
    let (_, j) = get_json(
        &v,
        &format!("/api/v1/series?match[]={}", enc(r#"{job="web"}"#)),
    )
    .await;
    assert_eq!(
        j["data"],
        serde_json::json!([{"__name__": "http_requests_total", "instance": "a", "job": "web"}])
    );
}

#[tokio::test]
async fn query_errors_have_prometheus_shape() {
    let v = Vigil::server(&[]);
    let cases: &[(&str, u16, &str)] = &[
        ("/api/v1/query?query=sum(", 400, "bad_data"),
        ("/api/v1/query?query=up&time=yesterday", 400, "bad_data"),
        (
            "/api/v1/query_range?query=up&start=10&end=0&step=1",
            400,
            "bad_data",
        ),
        (
            "/api/v1/query_range?query=up&start=0&end=10&step=0",
            400,
            "bad_data",
        ),
        (
            "/api/v1/query_range?query=up&start=0&end=100000&step=1",
            400,
            "bad_data",
        ),
        ("/api/v1/series", 400, "bad_data"),
    ];
    for (path, code, kind) in cases {
        let (status, j) = get_json(&v, path).await;
        assert_eq!(status, *code, "{path}: {j}");
        assert_eq!(j["status"], "error", "{path}");
        assert_eq!(j["errorType"], *kind, "{path}");
        assert!(j["error"].as_str().is_some_and(|e| !e.is_empty()), "{path}");
        assert!(j.get("data").is_none(), "{path}: no data on errors");
    }
    // An execution error (a many-to-many match) is 422.
    let body = write_body(&[
        (
            &[("__name__", "a"), ("x", "1"), ("y", "1")],
            vec![(now_ms() - 1000, 1.0)],
        ),
        (
            &[("__name__", "a"), ("x", "1"), ("y", "2")],
            vec![(now_ms() - 1000, 1.0)],
        ),
        (
            &[("__name__", "b"), ("x", "1")],
            vec![(now_ms() - 1000, 1.0)],
        ),
    ]);
    assert_eq!(remote_write(&v, body).await.0, 204);
    let (status, j) = get_json(&v, &format!("/api/v1/query?query={}", enc("b + on(x) a"))).await;
    assert_eq!(status, 422, "{j}");
    assert_eq!(j["errorType"], "execution");

    // Special values are strings.
    let (_, j) = get_json(&v, &format!("/api/v1/query?query={}&time=100", enc("1/0"))).await;
    assert_eq!(
        j["data"],
        serde_json::json!({"resultType": "scalar", "result": [100, "+Inf"]})
    );
    let (_, j) = get_json(&v, &format!("/api/v1/query?query={}&time=1.5", enc("0/0"))).await;
    assert_eq!(j["data"]["result"], serde_json::json!([1.5, "NaN"]));
}

/// A client that goes away stops its query: the engine notices at its next look at the clock
/// (the query would run for many seconds), counts it, and the server keeps serving.
#[tokio::test]
async fn a_query_whose_client_goes_away_is_stopped() {
    let v = Vigil::server(&[]);
    // Millions of inner subquery steps: far longer than the wait below in this build.
    let slow = enc("max_over_time(count_over_time(vector(1)[1h:1s])[2d:1m])");
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(400))
        .build()
        .unwrap();
    let gone = impatient
        .get(v.url(&format!("/api/v1/query?query={slow}")))
        .send()
        .await;
    assert!(gone.is_err(), "the query answered within 400 ms: {gone:?}");
    let stopped = eventually(Duration::from_secs(5), || async {
        v.log()
            .contains("query stopped: its client went away")
            .then_some(())
    })
    .await;
    assert!(
        stopped.is_some(),
        "the query kept running; log:\n{}",
        v.log()
    );
    let metrics = v.metrics().await;
    assert!(
        metrics.contains("\nvigil_engine_queries_canceled_total 1\n"),
        "{metrics}"
    );
    let (status, j) = get_json(&v, "/api/v1/query?query=1%2B1").await;
    assert_eq!(
        (status, &j["data"]["result"][1]),
        (200, &serde_json::json!("2"))
    );
}

#[tokio::test]
async fn malformed_write_bodies_are_refused_and_the_server_keeps_serving() {
    let mut v = Vigil::server(&[]);
    // A server answers an oversized body early and closes that connection, as HTTP/1.1
    // servers should; a fresh connection per request keeps one refusal from failing the next.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .unwrap();
    let post = |body: Vec<u8>| {
        client
            .post(v.url("/api/v1/write"))
            .header("Content-Encoding", "snappy")
            .header("Content-Type", "application/x-protobuf")
            .body(body)
            .send()
    };
    let t = now_ms();
    // Not snappy at all.
    let r = post(b"this is not snappy".to_vec()).await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("snappy"));
    // Valid snappy around bytes that are not a WriteRequest.
    let garbage = snap::raw::Encoder::new().compress_vec(&[0xff; 64]).unwrap();
    let r = post(garbage).await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("protobuf"));
    // A truncated valid body.
    let mut body = write_body(&[(&[("__name__", "x")], vec![(t, 1.0)])]);
    body.truncate(body.len() / 2);
    assert_eq!(post(body).await.unwrap().status(), 400);
    // Duplicate label names, and an invalid one: refused whole, nothing stored.
    let dup = write_body(&[
        (&[("__name__", "dup_ok")], vec![(t, 1.0)]),
        (
            &[("__name__", "dup"), ("a", "1"), ("a", "2")],
            vec![(t, 1.0)],
        ),
    ]);
    let r = post(dup).await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("duplicate"));
    let bad = write_body(&[(&[("__name__", "x"), ("1bad", "v")], vec![(t, 1.0)])]);
    assert_eq!(post(bad).await.unwrap().status(), 400);
    // A body that declares a decompressed size over the bound: 413 before allocating.
    let huge = snap::raw::Encoder::new()
        .compress_vec(&vec![0u8; 129 << 20])
        .unwrap();
    assert_eq!(post(huge).await.unwrap().status(), 413);
    // A compressed body over the bound: 413.
    let r = post(vec![0u8; 33 << 20]).await.unwrap();
    assert_eq!(r.status(), 413);
    // Wrong encoding.
    let r = client
        .post(v.url("/api/v1/write"))
        .header("Content-Encoding", "gzip")
        .body(vec![1, 2, 3])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);

    assert!(v.alive(), "server died: {}", v.log());
    // Out-of-order samples: the rest is stored, the sender is told not to retry.
    let ok = write_body(&[(
        &[("__name__", "after"), ("k", "v")],
        vec![(t - 2000, 1.0), (t - 1000, 2.0)],
    )]);
    assert_eq!(remote_write(&v, ok).await.0, 204);
    let ooo = write_body(&[(
        &[("__name__", "after"), ("k", "v")],
        vec![(t - 1500, 9.0), (t, 3.0)],
    )]);
    let (status, text) = remote_write(&v, ooo).await;
    assert_eq!(status, 400);
    assert!(text.contains("out of order"), "{text}");

    let (_, j) = get_json(
        &v,
        &format!("/api/v1/query?query=after&time={}", t as f64 / 1000.0),
    )
    .await;
    assert_eq!(j["data"]["result"][0]["value"][1], "3");
    let (_, j) = get_json(&v, "/api/v1/label/__name__/values").await;
    assert_eq!(
        j["data"],
        serde_json::json!(["after"]),
        "nothing of refused requests stored"
    );

    // The server counts what it did.
    let text = client
        .get(v.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("vigil_remote_write_samples_total 3\n"),
        "{text}"
    );
    assert!(
        text.contains("vigil_remote_write_rejected_samples_total{reason=\"out_of_order\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("vigil_http_requests_total{code=\"400\",handler=\"/api/v1/write\"}"),
        "{text}"
    );
}

#[tokio::test]
async fn health_ready_buildinfo() {
    let v = Vigil::server(&[]);
    let c = client();
    let r = c.get(v.url("/-/healthy")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = c.get(v.url("/-/ready")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let (status, j) = get_json(&v, "/api/v1/status/buildinfo").await;
    assert_eq!(status, 200);
    for key in [
        "version",
        "revision",
        "branch",
        "buildUser",
        "buildDate",
        "goVersion",
    ] {
        assert!(matches!(j["data"][key], Value::String(_)), "{key} in {j}");
    }
    // POST with a form body works like GET, as Grafana sends it.
    let r = c
        .post(v.url("/api/v1/query"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("query=1%2B1&time=4")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let j: Value = r.json().await.unwrap();
    assert_eq!(
        j,
        serde_json::json!({"status":"success","data":{"resultType":"scalar","result":[4,"2"]}})
    );
}
