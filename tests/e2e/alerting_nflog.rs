//! The notification log survives `kill -9`: a server that notified a group and was killed
//! does not notify it again after a restart on the same `--alertmanager.storage.path` while
//! `repeat_interval` has not passed, and still notifies what changed.

use crate::harness::*;
use serde_json::{json, Value};
use std::time::Duration;

async fn post_alerts(v: &Vigil, alerts: Value) {
    let resp = client()
        .post(v.url("/api/v2/alerts"))
        .json(&alerts)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
}

fn pods(payload: &Value) -> Vec<String> {
    payload["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["labels"]["pod"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_killed_server_does_not_renotify_within_repeat_interval() {
    let (hook_url, mut received) = webhook_sink().await;
    let dir = tempfile::tempdir().unwrap();
    let am = dir.path().join("alertmanager.yml");
    std::fs::write(
        &am,
        format!(
            "route:\n  receiver: hook\n  group_by: [alertname]\n  group_wait: 100ms\n  group_interval: 500ms\n  repeat_interval: 1h\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: {hook_url}\n"
        ),
    )
    .unwrap();
    let storage = dir.path().join("am");
    let flags = [
        format!("--alertmanager.config.file={}", am.display()),
        format!("--alertmanager.storage.path={}", storage.display()),
    ];
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let alert = |pod: &str| json!({"labels": {"alertname": "Crash", "pod": pod}});

    let v = Vigil::server(&flags);
    post_alerts(&v, json!([alert("a")])).await;
    let first = tokio::time::timeout(Duration::from_secs(10), received.recv())
        .await
        .unwrap_or_else(|_| panic!("no webhook; log:\n{}", v.log()))
        .unwrap();
    assert_eq!(pods(&first), vec!["a"]);
    // The log is written right after the receiver answered.
    let nflog = storage.join("nflog.json");
    let logged = eventually(Duration::from_secs(5), || async {
        std::fs::read_to_string(&nflog)
            .ok()
            .filter(|t| t.contains("Crash"))
    })
    .await;
    assert!(
        logged.is_some(),
        "nflog.json not written; log:\n{}",
        v.log()
    );
    drop(v); // SIGKILL: no shutdown code runs.

    // Prometheus re-sends its firing alerts to the restarted server.
    let v = Vigil::server(&flags);
    post_alerts(&v, json!([alert("a")])).await;
    let again = tokio::time::timeout(Duration::from_secs(2), received.recv()).await;
    assert!(
        again.is_err(),
        "re-notified after restart: {again:?}; log:\n{}",
        v.log()
    );
    // The group still flushes: a new alert is notified, together with the known one.
    post_alerts(&v, json!([alert("a"), alert("b")])).await;
    let changed = tokio::time::timeout(Duration::from_secs(10), received.recv())
        .await
        .unwrap_or_else(|_| panic!("no webhook for the change; log:\n{}", v.log()))
        .unwrap();
    assert_eq!(pods(&changed), vec!["a", "b"]);
}
