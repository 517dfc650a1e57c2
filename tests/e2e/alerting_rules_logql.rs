//! LogQL alerting rules: a rule file mixing a LogQL alert with a PromQL one, log lines pushed
//! through Loki's push API, and the LogQL alert firing like any other — in `/api/v1/alerts`,
//! in `/api/v1/rules`, as an `ALERTS` series, and at a webhook. Plus `vigil check rules` on
//! such a file, and its error naming both languages when an expression is neither.

use crate::harness::*;
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

const RULES: &str = r#"groups:
  - name: logs
    interval: 1s
    rules:
      - alert: PanicLogged
        expr: sum by (pod) (count_over_time({namespace="prod"} |= "panic" [5m])) > 0
        labels:
          severity: page
        annotations:
          summary: "{{ $labels.pod }} logged {{ $value }} panics"
      - record: prod:log_lines:count5m
        expr: sum(count_over_time({namespace="prod"}[5m]))
      - alert: AlwaysOn
        expr: vector(1)
"#;

async fn push(v: &Vigil, labels: Value, lines: &[&str]) {
    let ns = now_ms() * 1_000_000;
    let values: Vec<Value> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| serde_json::json!([(ns + i as i64).to_string(), l]))
        .collect();
    let r = client()
        .post(v.url("/loki/api/v1/push"))
        .json(&serde_json::json!({"streams": [{"stream": labels, "values": values}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204, "{}", r.text().await.unwrap());
}

#[tokio::test]
async fn logql_alert_fires_through_api_alerts_series_and_webhook() {
    let (hook_url, mut received) = webhook_sink().await;
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yml");
    std::fs::write(&rules, RULES).unwrap();
    let am = dir.path().join("alertmanager.yml");
    std::fs::write(
        &am,
        format!(
            "route:\n  receiver: hook\n  group_by: [alertname]\n  group_wait: 1s\n  group_interval: 1s\n  routes:\n  - matchers: ['alertname=\"AlwaysOn\"']\n    receiver: void\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: {hook_url}\n  - name: void\n"
        ),
    )
    .unwrap();
    let v = Vigil::server(&[
        &format!("--rules.file={}", rules.display()),
        &format!("--alertmanager.config.file={}", am.display()),
    ]);
    push(
        &v,
        serde_json::json!({"namespace": "prod", "pod": "api-1"}),
        &[
            "starting",
            "panic: runtime error: index out of range",
            "panic: again",
        ],
    )
    .await;
    push(
        &v,
        serde_json::json!({"namespace": "prod", "pod": "api-2"}),
        &["all good"],
    )
    .await;
    push(
        &v,
        serde_json::json!({"namespace": "dev", "pod": "api-3"}),
        &["panic in dev is not paged"],
    )
    .await;

    let payload = tokio::time::timeout(Duration::from_secs(30), received.recv())
        .await
        .unwrap_or_else(|_| panic!("no webhook within 30s; server log:\n{}", v.log()))
        .expect("webhook channel");
    assert_eq!(payload["status"], "firing", "{payload}");
    assert_eq!(payload["groupKey"], r#"{}:{alertname="PanicLogged"}"#);
    let alerts = payload["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 1, "only api-1 panicked in prod: {payload}");
    assert_eq!(
        alerts[0]["labels"],
        serde_json::json!({"alertname": "PanicLogged", "pod": "api-1", "severity": "page"})
    );
    assert_eq!(
        alerts[0]["annotations"],
        serde_json::json!({"summary": "api-1 logged 2 panics"})
    );

    // The rule manager's view: firing in /api/v1/alerts, healthy in /api/v1/rules.
    let (status, body) = get_json(&v, "/api/v1/alerts").await;
    assert_eq!(status, 200);
    let firing: Vec<&Value> = body["data"]["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["labels"]["alertname"] == "PanicLogged")
        .collect();
    assert_eq!(firing.len(), 1, "{body}");
    assert_eq!(firing[0]["state"], "firing");
    assert_eq!(firing[0]["value"], "2e+00");
    let (_, body) = get_json(&v, "/api/v1/rules").await;
    let rules = body["data"]["groups"][0]["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 3, "{body}");
    for rule in rules {
        assert_eq!(rule["health"], "ok", "{rule}");
    }
    assert_eq!(rules[0]["state"], "firing");
    assert_eq!(
        rules[0]["query"],
        r#"sum by (pod) (count_over_time({namespace="prod"} |= "panic" [5m])) > 0"#
    );

    // Written back to the TSDB like a PromQL rule's results: ALERTS and the recording rule.
    let alerts_series = eventually(Duration::from_secs(10), || async {
        let (_, body) = get_json(
            &v,
            &format!(
                "/api/v1/query?query={}",
                enc(r#"ALERTS{alertname="PanicLogged"}"#)
            ),
        )
        .await;
        let result = body["data"]["result"].as_array()?.clone();
        (!result.is_empty()).then_some(result)
    })
    .await
    .unwrap_or_else(|| panic!("no ALERTS series; log:\n{}", v.log()));
    assert_eq!(alerts_series[0]["metric"]["alertstate"], "firing");
    assert_eq!(alerts_series[0]["metric"]["pod"], "api-1");
    let recorded = eventually(Duration::from_secs(10), || async {
        let (_, body) = get_json(&v, "/api/v1/query?query=prod:log_lines:count5m").await;
        body["data"]["result"][0]["value"][1]
            .as_str()
            .map(String::from)
    })
    .await
    .unwrap_or_else(|| panic!("recording rule wrote nothing; log:\n{}", v.log()));
    assert_eq!(recorded, "4");
}

fn check_rules(file: &std::path::Path) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(["check", "rules"])
        .arg(file)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_rules_accepts_logql_and_names_both_languages_when_neither_parses() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.yml");
    std::fs::write(&good, RULES).unwrap();
    let (code, out, err) = check_rules(&good);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("SUCCESS: 3 rules found"), "{out}");

    let bad = dir.path().join("bad.yml");
    std::fs::write(
        &bad,
        "groups:\n  - name: g\n    rules:\n      - alert: Broken\n        expr: count_over_time({app=\"x\"} |= [5m])\n",
    )
    .unwrap();
    let (code, out, err) = check_rules(&bad);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("Broken"), "{err}");
    assert!(err.contains("PromQL") && err.contains("LogQL"), "{err}");

    // A log query (lines, not samples) is refused for a rule, saying why.
    let lines = dir.path().join("lines.yml");
    std::fs::write(
        &lines,
        "groups:\n  - name: g\n    rules:\n      - alert: Lines\n        expr: '{app=\"x\"} |= \"panic\"'\n",
    )
    .unwrap();
    let (code, _, err) = check_rules(&lines);
    assert_eq!(code, 1);
    assert!(err.contains("a rule needs a metric query"), "{err}");
}
