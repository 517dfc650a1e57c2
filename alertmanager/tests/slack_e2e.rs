//! End to end through the public API: the captured run's alerts posted to an Alertmanager whose
//! config has Slack receivers (the global default URL, custom templates from a `templates:`
//! glob, and one endpoint that rate-limits), with a real HTTP server on 127.0.0.1:0 as Slack.
//! The bodies must equal what Alertmanager 0.25 sent, byte for byte.

// Helpers of a test harness: a panic is a failed test, as in `#[test]` functions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use alertmanager::{Alertmanager, AlertmanagerConfig, AlertmanagerOptions, PostableAlert};
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const CAPTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/reference/alertmanager-captures"
);

#[derive(Clone)]
struct Slack {
    bodies: mpsc::UnboundedSender<(String, Instant, Vec<u8>)>,
    limited_once: Arc<AtomicBool>,
}

async fn hook(
    State(slack): State<Slack>,
    UrlPath(name): UrlPath<String>,
    body: axum::body::Bytes,
) -> axum::response::Response {
    if name == "limited" && !slack.limited_once.swap(true, Ordering::SeqCst) {
        let _ = slack
            .bodies
            .send(("limited-429".into(), Instant::now(), body.to_vec()));
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "1")],
            r#"{"ok":false,"error":"rate_limited"}"#,
        )
            .into_response();
    }
    let _ = slack.bodies.send((name, Instant::now(), body.to_vec()));
    "ok".into_response()
}

#[tokio::test]
async fn slack_bodies_match_alertmanager_and_429_is_retried_after_retry_after() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    // Everything else the captured config posts to (its webhooks) is answered 200 unseen.
    let app = Router::new()
        .route("/slack/{name}", post(hook))
        .fallback(|| async { "ok" })
        .with_state(Slack {
            bodies: tx,
            limited_once: Arc::new(AtomicBool::new(false)),
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    // The captured config's Slack receiver, with its URLs pointed at the loopback Slack and
    // its template file where the `templates:` glob finds it.
    let inputs = Path::new(CAPTURES).join("inputs");
    let captured = std::fs::read_to_string(inputs.join("alertmanager.yml")).unwrap();
    let config = captured
        .replace(
            "http://127.0.0.1:18080/slack/global-default",
            &format!("http://{addr}/slack/global-default"),
        )
        .replace(
            "http://127.0.0.1:18080/slack/custom",
            &format!("http://{addr}/slack/custom"),
        )
        .replace(
            "http://127.0.0.1:18080/slack-429",
            &format!("http://{addr}/slack/limited"),
        )
        .replace("http://127.0.0.1:18080/", &format!("http://{addr}/"))
        .replace("group_wait: 1s", "group_wait: 100ms");
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("templates")).unwrap();
    std::fs::copy(
        inputs.join("custom.tmpl"),
        dir.path().join("templates/custom.tmpl"),
    )
    .unwrap();
    std::fs::write(dir.path().join("alertmanager.yml"), config).unwrap();
    let config = AlertmanagerConfig::load(&dir.path().join("alertmanager.yml")).unwrap();
    let am = Arc::new(Alertmanager::new(
        config,
        AlertmanagerOptions {
            external_url: "http://127.0.0.1:19093".into(),
            data_dir: None,
        },
    ));
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(Arc::clone(&am).run(shutdown.clone()));

    let mut alerts: Vec<PostableAlert> =
        serde_json::from_slice(&std::fs::read(inputs.join("post1.json")).unwrap()).unwrap();
    // The errors route (demo="errors") goes to the rate-limited Slack.
    let mut limited: PostableAlert = serde_json::from_str(
        r#"{"labels": {"alertname": "RetryDemo", "demo": "errors"}, "annotations": {}}"#,
    )
    .unwrap();
    limited.generator_url = String::new();
    alerts.push(limited);
    let posted_at = Instant::now();
    assert!(am.put_alerts(alerts).is_empty());

    let mut got = std::collections::HashMap::new();
    while got.len() < 4 {
        let (name, at, body) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("all Slack posts within 10s")
            .unwrap();
        got.insert(name, (at, body));
    }
    let raw = |f: &str| std::fs::read(Path::new(CAPTURES).join("raw-run").join(f)).unwrap();
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).unwrap();
    assert_eq!(
        text(&got["global-default"].1),
        text(&raw("002_slack_global-default.raw"))
    );
    assert_eq!(text(&got["custom"].1), text(&raw("004_slack_custom.raw")));
    let first = got["limited-429"].0;
    let retried = got["limited"].0;
    assert_eq!(
        got["limited"].1, got["limited-429"].1,
        "the same message resent"
    );
    assert!(
        retried - first >= Duration::from_millis(950),
        "Retry-After: 1 honoured, retried after {:?}",
        retried - first
    );
    assert!(
        retried - posted_at < Duration::from_secs(5),
        "retried within the flush, not at the next group interval"
    );
    let v: serde_json::Value = serde_json::from_slice(&got["limited"].1).unwrap();
    assert_eq!(v["channel"], "#rate-limited");
    assert_eq!(
        v["attachments"][0]["title"],
        "[FIRING:1] RetryDemo (errors)"
    );

    shutdown.cancel();
    task.await.unwrap();
}
