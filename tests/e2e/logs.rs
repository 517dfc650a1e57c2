//! Logs path: Loki push (protobuf + snappy, and JSON) in, LogQL query_range out.

use crate::harness::*;
use model::wire::loki::{EntryAdapter, PushRequest, StreamAdapter, Timestamp};
use prost::Message;

fn proto_push(labels: &str, entries: &[(i64, &str)]) -> Vec<u8> {
    let req = PushRequest {
        streams: vec![StreamAdapter {
            labels: labels.to_string(),
            entries: entries
                .iter()
                .map(|&(ns, line)| EntryAdapter {
                    timestamp: Some(Timestamp::from_nanos(ns)),
                    line: line.to_string(),
                    structured_metadata: vec![],
                })
                .collect(),
            hash: 0,
        }],
    };
    snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .unwrap()
}

#[tokio::test]
async fn pushed_lines_are_read_back_with_filters() {
    let v = Vigil::server(&[]);
    let c = client();
    let t0 = now_ms() * 1_000_000 - 60_000_000_000;
    let r = c
        .post(v.url("/loki/api/v1/push"))
        .header("Content-Type", "application/x-protobuf")
        .body(proto_push(
            r#"{app="web", namespace="prod"}"#,
            &[
                (t0, "GET /a 200"),
                (t0 + 1_000, "GET /b 500 error"),
                (t0 + 2_000, "POST /c 200"),
            ],
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204, "{}", r.text().await.unwrap());

    let json = serde_json::json!({"streams": [{
        "stream": {"app": "db", "namespace": "prod"},
        "values": [[(t0 + 500).to_string(), "slow query error"], [(t0 + 1_500).to_string(), "ok", {"trace_id": "abc"}]]
    }]});
    let r = c
        .post(v.url("/loki/api/v1/push"))
        .json(&json)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204, "{}", r.text().await.unwrap());

    // Backward (the default): newest first, grouped by stream.
    let (status, j) = get_json(
        &v,
        &format!(
            "/loki/api/v1/query_range?query={}&start={}&end={}",
            enc(r#"{namespace="prod"} |= "error""#),
            t0 - 1,
            t0 + 10_000
        ),
    )
    .await;
    assert_eq!(status, 200, "{j}");
    assert_eq!(j["status"], "success");
    assert_eq!(j["data"]["resultType"], "streams");
    let mut result = j["data"]["result"].as_array().unwrap().clone();
    result.sort_by_key(|s| s["stream"]["app"].as_str().unwrap().to_string());
    assert_eq!(result.len(), 2, "{j}");
    assert_eq!(
        result[0]["stream"],
        serde_json::json!({"app": "db", "namespace": "prod"})
    );
    assert_eq!(
        result[0]["values"],
        serde_json::json!([[(t0 + 500).to_string(), "slow query error"]])
    );
    assert_eq!(
        result[1]["values"],
        serde_json::json!([[(t0 + 1_000).to_string(), "GET /b 500 error"]])
    );

    // Forward with a limit: the oldest lines of one stream.
    let (_, j) = get_json(
        &v,
        &format!(
            "/loki/api/v1/query_range?query={}&start={}&end={}&direction=forward&limit=2",
            enc(r#"{app="web"} != "error""#),
            t0 - 1,
            t0 + 10_000
        ),
    )
    .await;
    assert_eq!(
        j["data"]["result"][0]["values"],
        serde_json::json!([
            [t0.to_string(), "GET /a 200"],
            [(t0 + 2_000).to_string(), "POST /c 200"]
        ])
    );

    let (_, j) = get_json(
        &v,
        &format!(
            "/loki/api/v1/label/app/values?start={}&end={}",
            t0 - 1,
            t0 + 10_000
        ),
    )
    .await;
    assert_eq!(j["data"], serde_json::json!(["db", "web"]));
}

#[tokio::test]
async fn bad_pushes_are_refused_whole() {
    let v = Vigil::server(&[]);
    let c = client();
    let t = now_ms() * 1_000_000;
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("application/x-protobuf", b"not snappy".to_vec(), 400),
        ("application/json", b"{\"streams\": [".to_vec(), 400),
        // A numeric timestamp is a 400 in Loki's JSON push.
        (
            "application/json",
            format!(r#"{{"streams":[{{"stream":{{"a":"b"}},"values":[[{t},"x"]]}}]}}"#)
                .into_bytes(),
            400,
        ),
        (
            "application/json",
            format!(r#"{{"streams":[{{"stream":{{}},"values":[["{t}","x"]]}}]}}"#).into_bytes(),
            400,
        ),
        // One good stream and one over the line limit: nothing is stored.
        (
            "application/json",
            serde_json::to_vec(&serde_json::json!({"streams": [
                {"stream": {"app": "kept"}, "values": [[t.to_string(), "fine"]]},
                {"stream": {"app": "big"}, "values": [[t.to_string(), "x".repeat(300 << 10)]]}
            ]}))
            .unwrap(),
            400,
        ),
    ];
    for (ct, body, want) in cases {
        let r = c
            .post(v.url("/loki/api/v1/push"))
            .header("Content-Type", ct)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), want);
        let ctype = r.headers()["content-type"].to_str().unwrap().to_string();
        assert!(
            ctype.starts_with("text/plain"),
            "Loki errors are plain text: {ctype}"
        );
    }
    let (_, j) = get_json(&v, "/loki/api/v1/labels").await;
    assert_eq!(
        j["data"],
        serde_json::json!([]),
        "nothing of refused pushes stored"
    );
    // A bad query is a plain-text 400.
    let r = c
        .get(v.url(&format!("/loki/api/v1/query_range?query={}", enc("{app="))))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}
