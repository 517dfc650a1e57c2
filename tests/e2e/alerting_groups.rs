//! `GET /api/v2/alerts/groups` against the real Alertmanager 0.25: the same config and the
//! same alerts posted to both, the groups compared (group labels, receiver, the alerts' labels,
//! fingerprints, states and order) for the filters the UI and amtool use.

use crate::harness::*;
use crate::peers::Alertmanager;
use serde_json::{json, Value};

const CONFIG: &str = "\
route:
  receiver: team
  group_by: [alertname, cluster]
  group_wait: 1h
  routes:
    - receiver: pager
      matchers: ['severity=\"page\"']
      continue: true
    - receiver: db-team
      matchers: ['service=~\"db|cache\"']
      group_by: ['...']
receivers:
  - name: team
  - name: pager
  - name: db-team
inhibit_rules:
  - source_matchers: ['alertname=\"ClusterDown\"']
    target_matchers: ['severity=\"warning\"']
    equal: [cluster]
";

fn alerts() -> Value {
    let ends = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let a =
        |labels: Value| json!({"labels": labels, "annotations": {"summary": "s"}, "endsAt": ends});
    json!([
        a(
            json!({"alertname": "HighLatency", "cluster": "eu", "severity": "page", "job": "api", "instance": "b"})
        ),
        a(
            json!({"alertname": "HighLatency", "cluster": "eu", "severity": "page", "job": "api", "instance": "a"})
        ),
        a(
            json!({"alertname": "HighLatency", "cluster": "us", "severity": "warning", "job": "api"})
        ),
        a(
            json!({"alertname": "DiskFull", "cluster": "eu", "service": "db", "severity": "warning"})
        ),
        a(json!({"alertname": "ClusterDown", "cluster": "us", "severity": "critical"})),
        a(json!({"alertname": "Queue", "cluster": "eu"})),
    ])
}

/// What must match: per group its labels and receiver, per alert (in order) its labels,
/// fingerprint, state and the number of alerts inhibiting it.
fn shape(groups: &Value) -> Vec<Value> {
    groups
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {groups}"))
        .iter()
        .map(|g| {
            json!({
                "labels": g["labels"],
                "receiver": g["receiver"]["name"],
                "alerts": g["alerts"].as_array().unwrap().iter().map(|a| json!({
                    "labels": a["labels"],
                    "fingerprint": a["fingerprint"],
                    "state": a["status"]["state"],
                    "inhibited": a["status"]["inhibitedBy"].as_array().map_or(0, |v| v.len()),
                    "receivers": a["receivers"],
                })).collect::<Vec<_>>(),
            })
        })
        .collect()
}

async fn groups(base: &str, query: &str) -> (u16, Value) {
    let resp = client()
        .get(format!("{base}/api/v2/alerts/groups{query}"))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn alert_groups_are_alertmanagers() {
    let Some(am) = Alertmanager::start("alert_groups_are_alertmanagers", CONFIG).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("am.yml");
    std::fs::write(&config, CONFIG).unwrap();
    let v = Vigil::server(&[&format!("--alertmanager.config.file={}", config.display())]);
    let theirs = format!("http://{}", am.addr);
    let ours = v.url("");
    for base in [&theirs, &ours] {
        let resp = client()
            .post(format!("{base}/api/v2/alerts"))
            .json(&alerts())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{base}");
    }
    // Alertmanager computes inhibitions as alerts arrive; give both a moment.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    for query in [
        "",
        "?silenced=false&inhibited=false",
        "?receiver=pager",
        "?receiver=db.*",
        "?filter=cluster%3D%22eu%22",
        "?active=false",
    ] {
        let (st, t) = groups(&theirs, query).await;
        let (so, o) = groups(&ours, query).await;
        assert_eq!((so, st), (200, 200), "{query}: ours {o}\ntheirs {t}");
        assert_eq!(
            shape(&o),
            shape(&t),
            "groups{query} differ\nours:   {o}\ntheirs: {t}"
        );
    }
    let (st, t) = groups(&theirs, "?receiver=(").await;
    let (so, _) = groups(&ours, "?receiver=(").await;
    assert_eq!(so, st, "a bad receiver regex: theirs {t}");
}
