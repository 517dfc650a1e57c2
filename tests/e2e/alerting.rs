//! Alerting path: a rule in a Prometheus rule file fires, the in-process Alertmanager routes
//! it, and a webhook receiver gets Alertmanager's webhook v4 JSON.

use crate::harness::*;
use std::time::Duration;

#[tokio::test]
async fn firing_rule_reaches_the_webhook_as_v4_payload() {
    let (hook_url, mut received) = webhook_sink().await;
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yml");
    std::fs::write(
        &rules,
        r#"groups:
  - name: e2e
    interval: 1s
    rules:
      - alert: QueueTooLong
        expr: queue_length > 5
        for: 2s
        labels:
          severity: page
        annotations:
          summary: "queue {{ $labels.queue }} is {{ $value }}"
"#,
    )
    .unwrap();
    let am = dir.path().join("alertmanager.yml");
    std::fs::write(
        &am,
        format!(
            r#"route:
  receiver: hook
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: {hook_url}
"#
        ),
    )
    .unwrap();
    let v = Vigil::server(&[
        &format!("--rules.file={}", rules.display()),
        &format!("--alertmanager.config.file={}", am.display()),
    ]);
    let t = now_ms();
    let body = write_body(&[
        (
            &[("__name__", "queue_length"), ("queue", "q1")],
            vec![(t - 1000, 10.0)],
        ),
        (
            &[("__name__", "queue_length"), ("queue", "q2")],
            vec![(t - 1000, 1.0)],
        ),
    ]);
    assert_eq!(remote_write(&v, body).await.0, 204);

    let payload = tokio::time::timeout(Duration::from_secs(30), received.recv())
        .await
        .unwrap_or_else(|_| panic!("no webhook within 30s; server log:\n{}", v.log()))
        .expect("webhook channel");
    assert_eq!(payload["version"], "4");
    assert_eq!(payload["status"], "firing");
    assert_eq!(payload["receiver"], "hook");
    assert_eq!(payload["groupKey"], r#"{}:{alertname="QueueTooLong"}"#);
    assert_eq!(
        payload["groupLabels"],
        serde_json::json!({"alertname": "QueueTooLong"})
    );
    assert_eq!(payload["truncatedAlerts"], 0);
    assert_eq!(payload["externalURL"], format!("http://{}", v.addr));
    let alerts = payload["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 1, "only q1 is over the threshold: {payload}");
    let a = &alerts[0];
    assert_eq!(a["status"], "firing");
    assert_eq!(
        a["labels"],
        serde_json::json!({"alertname": "QueueTooLong", "queue": "q1", "severity": "page"})
    );
    assert_eq!(
        a["annotations"],
        serde_json::json!({"summary": "queue q1 is 10"})
    );
    assert_eq!(a["endsAt"], "0001-01-01T00:00:00Z");
    assert!(
        a["generatorURL"]
            .as_str()
            .unwrap()
            .contains("/graph?g0.expr="),
        "{a}"
    );
    let fp = a["fingerprint"].as_str().unwrap();
    assert!(
        fp.len() == 16 && fp.chars().all(|c| c.is_ascii_hexdigit()),
        "{fp}"
    );
    let starts = a["startsAt"].as_str().unwrap();
    assert!(chrono_like(starts), "{starts}");
    assert_eq!(payload["commonLabels"], a["labels"]);
    assert_eq!(payload["commonAnnotations"], a["annotations"]);
}

/// RFC 3339 with a `T` and a zone, as Go's time.Time marshals.
fn chrono_like(s: &str) -> bool {
    s.len() >= 20 && s.as_bytes()[10] == b'T' && (s.ends_with('Z') || s.contains('+'))
}
