//! End to end through the public API: a rule fires, the in-process Alertmanager routes and
//! groups it, and a real HTTP server on 127.0.0.1:0 receives Alertmanager's webhook v4 payload,
//! which is compared with a payload captured from Alertmanager 0.25.

// Helpers of a test harness: a panic is a failed test, as in `#[test]` functions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use alertmanager::{
    fingerprint, fingerprint_hex, parse_rule_file, Alertmanager, AlertmanagerConfig,
    AlertmanagerOptions, QueryFn, RuleManager, RuleManagerOptions,
};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use model::{Labels, MemStorage};
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const CAPTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/reference/alertmanager-captures/004_webhook.json"
);

#[derive(Clone)]
struct Sink {
    bodies: mpsc::UnboundedSender<(String, HeaderMap, Vec<u8>)>,
    /// How many requests to `/flaky` still get a 500.
    flaky_failures: Arc<AtomicUsize>,
}

async fn hook(State(sink): State<Sink>, headers: HeaderMap, body: axum::body::Bytes) -> StatusCode {
    let _ = sink.bodies.send(("hook".into(), headers, body.to_vec()));
    StatusCode::OK
}

async fn flaky(
    State(sink): State<Sink>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let failed = sink
        .flaky_failures
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if failed {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    let _ = sink.bodies.send(("flaky".into(), headers, body.to_vec()));
    StatusCode::OK
}

async fn start_sink() -> (
    String,
    mpsc::UnboundedReceiver<(String, HeaderMap, Vec<u8>)>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let sink = Sink {
        bodies: tx,
        flaky_failures: Arc::new(AtomicUsize::new(2)),
    };
    let app = Router::new()
        .route("/hook", post(hook))
        .route("/flaky", post(flaky))
        .with_state(sink);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), rx)
}

const RULES: &str = r#"
groups:
  - name: demo
    interval: 1s
    rules:
      - alert: DemoServiceDown
        expr: service:demo_up:min == 0
        labels:
          severity: critical
          team: '{{ $labels.service }}-team'
        annotations:
          summary: 'Service {{ $labels.service }} is down'
          description: 'value={{ $value }} humanize={{ humanize 1234567.0 }} ext={{ $externalLabels.cluster }}'
"#;

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Same keys with the same JSON types at the top level and in each alert; label maps are maps
/// of strings.
fn assert_same_shape(got: &Value, want: &Value) {
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(got), keys(want));
    for (k, w) in want.as_object().unwrap() {
        assert_eq!(json_kind(&got[k]), json_kind(w), "type of {k}");
    }
    let want_alert = &want["alerts"][0];
    for alert in got["alerts"].as_array().unwrap() {
        assert_eq!(keys(alert), keys(want_alert));
        for (k, w) in want_alert.as_object().unwrap() {
            assert_eq!(json_kind(&alert[k]), json_kind(w), "type of alerts[].{k}");
        }
        for map in ["labels", "annotations"] {
            assert!(alert[map]
                .as_object()
                .unwrap()
                .values()
                .all(Value::is_string));
        }
    }
    for map in ["groupLabels", "commonLabels", "commonAnnotations"] {
        assert!(got[map].as_object().unwrap().values().all(Value::is_string));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_to_webhook_matches_alertmanager_v4() {
    let (base, mut bodies) = start_sink().await;
    let config = AlertmanagerConfig::parse(&format!(
        "route:\n  receiver: hook\n  group_by: [alertname]\n  group_wait: 100ms\n  group_interval: 1s\nreceivers:\n- name: hook\n  webhook_configs:\n  - url: '{base}/hook'\n"
    ))
    .unwrap();
    let am = Arc::new(Alertmanager::new(
        config,
        AlertmanagerOptions {
            external_url: "http://127.0.0.1:19093".into(),
            ..Default::default()
        },
    ));
    let shutdown = CancellationToken::new();
    let am_task = tokio::spawn(Arc::clone(&am).run(shutdown.clone()));

    let answer: Arc<Mutex<Vec<(Labels, f64)>>> = Arc::new(Mutex::new(vec![(
        Labels::from_pairs([("__name__", "service:demo_up:min"), ("service", "checkout")]),
        0.0,
    )]));
    let a = Arc::clone(&answer);
    let query: QueryFn = Arc::new(move |_expr: &str, _t: i64| Ok(a.lock().unwrap().clone()));
    let rules = RuleManager::new(
        parse_rule_file(RULES, "rules.yml").unwrap(),
        query,
        Arc::new(MemStorage::new()),
        am.clone(),
        RuleManagerOptions {
            external_url: "http://127.0.0.1:19090".into(),
            external_labels: Labels::from_pairs([("cluster", "research")]),
            ..Default::default()
        },
    );

    let fired_at = chrono::Utc::now().timestamp_millis();
    rules.eval_group_at(0, fired_at);
    let (path, headers, raw) = tokio::time::timeout(Duration::from_secs(10), bodies.recv())
        .await
        .expect("a firing notification")
        .unwrap();
    assert_eq!(path, "hook");
    assert_eq!(headers["content-type"], "application/json");
    let text = String::from_utf8(raw).unwrap();
    assert!(text.ends_with("}\n"), "Go's encoder ends with a newline");
    assert!(
        text.contains("\\u0026g0.tab=1"),
        "& escaped as Go does: {text}"
    );

    let got: Value = serde_json::from_str(&text).unwrap();
    let capture: Value = serde_json::from_str(&std::fs::read_to_string(CAPTURE).unwrap()).unwrap();
    assert_same_shape(&got, &capture["body"]);

    let labels = Labels::from_pairs([
        ("alertname", "DemoServiceDown"),
        ("cluster", "research"),
        ("service", "checkout"),
        ("severity", "critical"),
        ("team", "checkout-team"),
    ]);
    assert_eq!(got["receiver"], "hook");
    assert_eq!(got["status"], "firing");
    assert_eq!(got["version"], "4");
    assert_eq!(got["truncatedAlerts"], 0);
    assert_eq!(got["externalURL"], "http://127.0.0.1:19093");
    assert_eq!(got["groupKey"], "{}:{alertname=\"DemoServiceDown\"}");
    assert_eq!(
        got["groupLabels"],
        serde_json::json!({"alertname": "DemoServiceDown"})
    );
    assert_eq!(got["commonLabels"]["team"], "checkout-team");
    let alert = &got["alerts"][0];
    assert_eq!(alert["status"], "firing");
    assert_eq!(alert["endsAt"], "0001-01-01T00:00:00Z");
    assert_eq!(alert["fingerprint"], fingerprint_hex(fingerprint(&labels)));
    assert_eq!(
        alert["annotations"]["description"],
        "value=0 humanize=1.235M ext=research"
    );
    assert_eq!(
        alert["generatorURL"],
        "http://127.0.0.1:19090/graph?g0.expr=service%3Ademo_up%3Amin+%3D%3D+0&g0.tab=1"
    );
    let starts = chrono::DateTime::parse_from_rfc3339(alert["startsAt"].as_str().unwrap()).unwrap();
    assert_eq!(starts.timestamp_millis(), fired_at);

    // The condition clears: the next evaluation resolves the alert, and the next group tick
    // notifies it with endsAt = the resolving evaluation.
    answer.lock().unwrap().clear();
    let resolved_at = chrono::Utc::now().timestamp_millis();
    rules.eval_group_at(0, resolved_at);
    let (_, _, raw) = tokio::time::timeout(Duration::from_secs(10), bodies.recv())
        .await
        .expect("a resolved notification")
        .unwrap();
    let got: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(got["status"], "resolved");
    let ends =
        chrono::DateTime::parse_from_rfc3339(got["alerts"][0]["endsAt"].as_str().unwrap()).unwrap();
    assert_eq!(ends.timestamp_millis(), resolved_at);

    shutdown.cancel();
    am_task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_retried_until_delivered() {
    let (base, mut bodies) = start_sink().await;
    let config = AlertmanagerConfig::parse(&format!(
        "route:\n  receiver: flaky\n  group_wait: 50ms\nreceivers:\n- name: flaky\n  webhook_configs:\n  - url: '{base}/flaky'\n    max_alerts: 1\n"
    ))
    .unwrap();
    let am = Arc::new(Alertmanager::new(config, AlertmanagerOptions::default()));
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(Arc::clone(&am).run(shutdown.clone()));
    let now = chrono::Utc::now();
    let posted = |name: &str| alertmanager::PostableAlert {
        labels: Labels::from_pairs([("alertname", "Flaky"), ("pod", name)]),
        annotations: Labels::empty(),
        starts_at: Some(now),
        ends_at: Some(now + chrono::Duration::hours(1)),
        generator_url: String::new(),
    };
    assert!(am.put_alerts(vec![posted("a"), posted("b")]).is_empty());
    let (path, _, raw) = tokio::time::timeout(Duration::from_secs(15), bodies.recv())
        .await
        .expect("delivered after two 500s")
        .unwrap();
    assert_eq!(path, "flaky");
    let got: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(got["groupKey"], "{}:{}");
    assert_eq!(got["alerts"].as_array().unwrap().len(), 1);
    assert_eq!(got["truncatedAlerts"], 1);
    assert_eq!(got["commonLabels"]["pod"], "a");
    shutdown.cancel();
    task.await.unwrap();
}
