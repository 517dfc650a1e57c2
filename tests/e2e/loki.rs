//! The Loki API as Grafana's Loki datasource calls it: the health check, instant and range
//! metric queries with `step=<N>ms`, log queries, the label browser's fallbacks (`labels` and
//! `label/<name>/values` with `query=`, `series` by GET and form POST), the query-size hint
//! (`index/stats`), the 404s for endpoints Vigil does not have, and errors in Loki's form.

use crate::harness::*;

/// Pushes lines as Loki's JSON push API takes them; `lines` are (ns, line).
async fn push(v: &Vigil, labels: serde_json::Value, lines: &[(i64, &str)]) {
    let values: Vec<_> = lines
        .iter()
        .map(|(t, l)| serde_json::json!([t.to_string(), l]))
        .collect();
    let r = client()
        .post(v.url("/loki/api/v1/push"))
        .json(&serde_json::json!({"streams": [{"stream": labels, "values": values}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204, "{}", r.text().await.unwrap());
}

async fn get_text(v: &Vigil, path: &str) -> (u16, String) {
    let r = client().get(v.url(path)).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn grafana_health_check_and_metric_queries() {
    let v = Vigil::server(&[]);
    // Grafana's "Save & test": `vector(1)+vector(1)` at 4 s, which must be a vector of 2.
    let (status, j) = get_json(
        &v,
        &format!(
            "/loki/api/v1/query?query={}&time=4000000000&direction=backward",
            enc("vector(1)+vector(1)")
        ),
    )
    .await;
    assert_eq!(status, 200, "{j}");
    assert_eq!(j["status"], "success");
    assert_eq!(j["data"]["resultType"], "vector");
    assert_eq!(j["data"]["result"][0]["metric"], serde_json::json!({}));
    assert_eq!(j["data"]["result"][0]["value"][1], "2");

    // Lines a minute ago, at whole seconds: 3 errors in pod a, 1 in pod b, 2 infos.
    let t0 = (now_ms() / 1000 - 60) * 1_000_000_000;
    let s = 1_000_000_000;
    push(
        &v,
        serde_json::json!({"app": "web", "pod": "a"}),
        &[
            (t0 + s, "level=error msg=x took=10ms"),
            (t0 + 2 * s, "level=error msg=y took=30ms"),
            (t0 + 3 * s, "level=info msg=z took=20ms"),
            (t0 + 4 * s, "level=error msg=w took=40ms"),
        ],
    )
    .await;
    push(
        &v,
        serde_json::json!({"app": "web", "pod": "b"}),
        &[
            (t0 + 2 * s, "level=error msg=q took=1s"),
            (t0 + 3 * s, "level=info msg=r took=5ms"),
        ],
    )
    .await;

    // Grafana's logs volume query, as a range query with step in ms.
    let q = r#"sum by (level) (count_over_time({app="web"} | logfmt [10s]))"#;
    let (status, j) = get_json(
        &v,
        &format!(
            "/loki/api/v1/query_range?query={}&start={}&end={}&step=5000ms&direction=backward&limit=1000",
            enc(q),
            t0,
            t0 + 10 * s
        ),
    )
    .await;
    assert_eq!(status, 200, "{j}");
    assert_eq!(j["data"]["resultType"], "matrix");
    let result = j["data"]["result"].as_array().unwrap();
    let series = |level: &str| {
        result
            .iter()
            .find(|r| r["metric"]["level"] == level)
            .unwrap_or_else(|| panic!("no {level} series in {j}"))["values"]
            .clone()
    };
    let secs = t0 / s;
    // Steps at t0, t0+5s, t0+10s; windows (t-10s, t]: nothing at t0.
    assert_eq!(
        series("error"),
        serde_json::json!([[secs + 5, "4"], [secs + 10, "4"]])
    );
    assert_eq!(
        series("info"),
        serde_json::json!([[secs + 5, "2"], [secs + 10, "2"]])
    );

    // An instant metric query with unwrap and a float-seconds time.
    let q = r#"max_over_time({app="web"} | logfmt | unwrap duration(took) [1m]) by (pod)"#;
    let (status, j) = get_json(
        &v,
        &format!("/loki/api/v1/query?query={}&time={}.000", enc(q), secs + 30),
    )
    .await;
    assert_eq!(status, 200, "{j}");
    let mut got: Vec<(String, String)> = j["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["metric"]["pod"].as_str().unwrap().to_string(),
                r["value"][1].as_str().unwrap().to_string(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(got, [("a".into(), "0.04".into()), ("b".into(), "1".into())]);

    // A scalar instant query.
    let (_, j) = get_json(
        &v,
        &format!("/loki/api/v1/query?query={}&time=10", enc("2 * 3")),
    )
    .await;
    assert_eq!(j["data"]["resultType"], "scalar");
    assert_eq!(j["data"]["result"], serde_json::json!([10, "6"]));

    // Log queries through query_range, with a parser and a label filter.
    let q = r#"{app="web"} | logfmt | took > 25ms"#;
    let (_, j) = get_json(
        &v,
        &format!(
            "/loki/api/v1/query_range?query={}&start={}&end={}&step=1000ms&limit=10&direction=forward",
            enc(q),
            t0,
            t0 + 10 * s
        ),
    )
    .await;
    assert_eq!(j["data"]["resultType"], "streams", "{j}");
    let mut lines: Vec<String> = j["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| {
            r["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v[1].as_str().unwrap().to_string())
        })
        .collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "level=error msg=q took=1s",
            "level=error msg=w took=40ms",
            "level=error msg=y took=30ms"
        ]
    );
}

#[tokio::test]
async fn label_browser_and_query_size_hint() {
    let v = Vigil::server(&[]);
    let t0 = (now_ms() / 1000 - 30) * 1_000_000_000;
    push(
        &v,
        serde_json::json!({"app": "api", "namespace": "prod"}),
        &[(t0, "a"), (t0 + 1, "bb")],
    )
    .await;
    push(
        &v,
        serde_json::json!({"app": "db", "namespace": "dev", "tier": "data"}),
        &[(t0 + 2, "ccc")],
    )
    .await;
    let range = format!("start={}&end={}", t0 - 1_000_000_000, t0 + 1_000_000_000);

    // Grafana probes detected_labels first and falls back on a 404.
    for path in [
        "/loki/api/v1/detected_labels",
        "/loki/api/v1/detected_fields",
        "/loki/api/v1/patterns",
    ] {
        let (status, _) = get_text(&v, &format!("{path}?{range}")).await;
        assert_eq!(status, 404, "{path}");
    }

    let (_, j) = get_json(&v, &format!("/loki/api/v1/labels?{range}")).await;
    assert_eq!(j["data"], serde_json::json!(["app", "namespace", "tier"]));
    let (_, j) = get_json(
        &v,
        &format!(
            "/loki/api/v1/labels?{range}&query={}",
            enc(r#"{namespace="prod"}"#)
        ),
    )
    .await;
    assert_eq!(j["data"], serde_json::json!(["app", "namespace"]));
    let (_, j) = get_json(
        &v,
        &format!(
            "/loki/api/v1/label/app/values?{range}&query={}",
            enc(r#"{tier="data"}"#)
        ),
    )
    .await;
    assert_eq!(j["data"], serde_json::json!(["db"]));

    // series: GET with repeated match[], and the same as a form POST.
    let (status, j) = get_json(
        &v,
        &format!(
            "/loki/api/v1/series?{range}&match[]={}&match[]={}",
            enc(r#"{app="api"}"#),
            enc(r#"{tier=~"d.*"}"#)
        ),
    )
    .await;
    assert_eq!(status, 200, "{j}");
    assert_eq!(
        j["data"],
        serde_json::json!([{"app": "api", "namespace": "prod"}, {"app": "db", "namespace": "dev", "tier": "data"}])
    );
    let r = client()
        .post(v.url("/loki/api/v1/series"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("{range}&match[]={}", enc(r#"{namespace="dev"}"#)))
        .send()
        .await
        .unwrap();
    let j: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        j["data"],
        serde_json::json!([{"app": "db", "namespace": "dev", "tier": "data"}])
    );
    let (status, _) = get_text(&v, &format!("/loki/api/v1/series?{range}")).await;
    assert_eq!(status, 400, "series needs match[]");

    // index/stats: a bare object.
    let (status, j) = get_json(
        &v,
        &format!(
            "/loki/api/v1/index/stats?{range}&query={}",
            enc(r#"{namespace=~".+"}"#)
        ),
    )
    .await;
    assert_eq!(status, 200, "{j}");
    assert_eq!(
        j,
        serde_json::json!({"streams": 2, "chunks": 2, "entries": 3, "bytes": 6})
    );
}

#[tokio::test]
async fn errors_in_lokis_form() {
    let v = Vigil::server(&[]);
    let cases = [
        // An instant log query.
        (
            format!("/loki/api/v1/query?query={}", enc(r#"{app="x"}"#)),
            "log queries are not supported as an instant query type",
        ),
        (
            format!("/loki/api/v1/query?query={}", enc("sum(")),
            "parse error",
        ),
        (
            format!(
                "/loki/api/v1/query_range?query={}&start=0&end=86400&step=1ms",
                enc(r#"rate({app="x"}[1m])"#)
            ),
            "exceeded maximum resolution of 11,000 points per time series",
        ),
        (
            format!(
                "/loki/api/v1/query_range?query={}&step=abc",
                enc(r#"rate({app="x"}[1m])"#)
            ),
            "cannot parse",
        ),
        (
            format!("/loki/api/v1/labels?query={}", enc("{app=")),
            "parse error",
        ),
    ];
    for (path, want) in cases {
        let r = client().get(v.url(&path)).send().await.unwrap();
        assert_eq!(r.status(), 400, "{path}");
        let ctype = r.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ctype.starts_with("text/plain"), "{path}: {ctype}");
        let body = r.text().await.unwrap();
        assert!(body.contains(want), "{path}: {body}");
    }
}

/// The LogQL constructs Grafana users write for addresses and shapes of lines, through
/// `query_range` as Grafana sends it: `ip()` as a line filter and as a label filter, the
/// pattern line filters `|>` / `!>`, and `label_replace` on a metric query; a misused `ip()`
/// is a 400 with Loki's message.
#[tokio::test]
async fn ip_pattern_filters_and_label_replace() {
    let v = Vigil::server(&[]);
    let t0 = (now_ms() / 1000 - 60) * 1_000_000_000;
    let s = 1_000_000_000;
    push(
        &v,
        serde_json::json!({"app": "gw", "pod": "gw-1"}),
        &[
            (t0 + s, "addr=10.1.2.3 method=GET status=200"),
            (t0 + 2 * s, "addr=192.168.7.9 method=GET status=502"),
            (t0 + 3 * s, "addr=2001:db8::7 method=POST status=201"),
            (t0 + 4 * s, "addr=10.200.0.1 method=POST status=503"),
        ],
    )
    .await;
    let range = |q: &str| {
        format!(
            "/loki/api/v1/query_range?query={}&start={}&end={}&step=60000ms&direction=forward&limit=100",
            enc(q),
            t0,
            t0 + 60 * s
        )
    };
    let lines = |j: &serde_json::Value| -> Vec<String> {
        let mut out: Vec<String> = j["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s["values"].as_array().unwrap().iter())
            .map(|v| v[1].as_str().unwrap().to_string())
            .collect();
        out.sort();
        out
    };
    let cases: [(&str, &[&str]); 5] = [
        (
            r#"{app="gw"} |= ip("10.0.0.0/8")"#,
            &[
                "addr=10.1.2.3 method=GET status=200",
                "addr=10.200.0.1 method=POST status=503",
            ],
        ),
        (
            r#"{app="gw"} != ip("10.0.0.0/8") != ip("2001:db8::/32")"#,
            &["addr=192.168.7.9 method=GET status=502"],
        ),
        (
            r#"{app="gw"} | logfmt | addr = ip("192.168.0.0-192.168.255.255") or addr = ip("2001:db8::7")"#,
            &[
                "addr=192.168.7.9 method=GET status=502",
                "addr=2001:db8::7 method=POST status=201",
            ],
        ),
        (
            r#"{app="gw"} |> "<_> status=5<_>""#,
            &[
                "addr=10.200.0.1 method=POST status=503",
                "addr=192.168.7.9 method=GET status=502",
            ],
        ),
        (
            r#"{app="gw"} !> "<_> method=GET <_>" |> "addr=<_> <_>""#,
            &[
                "addr=10.200.0.1 method=POST status=503",
                "addr=2001:db8::7 method=POST status=201",
            ],
        ),
    ];
    for (q, want) in cases {
        let (status, j) = get_json(&v, &range(q)).await;
        assert_eq!(status, 200, "{q}: {j}");
        assert_eq!(j["data"]["resultType"], "streams", "{q}");
        assert_eq!(lines(&j), *want, "{q}");
    }

    let q = r#"label_replace(sum by (pod) (count_over_time({app="gw"} |= ip("10.0.0.0/8") [1m])), "node", "n-$1", "pod", "gw-(.*)")"#;
    let (status, j) = get_json(&v, &range(q)).await;
    assert_eq!(status, 200, "{j}");
    assert_eq!(j["data"]["resultType"], "matrix");
    let result = j["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 1, "{j}");
    assert_eq!(
        result[0]["metric"],
        serde_json::json!({"pod": "gw-1", "node": "n-1"})
    );
    assert_eq!(result[0]["values"][0][1], "2");

    for (q, want) in [
        (r#"{app="gw"} |~ ip("10.0.0.0/8")"#, "ip: invalid operation"),
        (r#"{app="gw"} |= ip("10.0.0.0/99")"#, "ip: invalid pattern"),
        (
            r#"{app="gw"} |> "<addr> x""#,
            "named captures are not allowed",
        ),
        (
            r#"label_replace(rate({app="gw"}[1m]), "x", "$1", "a", "(")"#,
            "invalid regex in label_replace",
        ),
    ] {
        let (status, body) = get_text(&v, &range(q)).await;
        assert_eq!(status, 400, "{q}: {body}");
        assert!(body.contains(want), "{q}: {body}");
    }
}
