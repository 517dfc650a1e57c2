//! The alerting APIs over HTTP: a rule firing in Vigil shows in `/api/v1/rules` and
//! `/api/v1/alerts` in Prometheus's shape; Alertmanager's API v2 takes and lists alerts and
//! creates, updates and expires silences that mute them; and a
//! real Prometheus 2.42, configured with Vigil as its Alertmanager, delivers its own alerts.
//!
//! The last test needs `/usr/bin/prometheus`. Without it the test skips, unless `CI=true`,
//! where a missing peer is a failure.

use crate::harness::*;
use crate::peers::Prometheus;
use serde_json::{json, Value};
use std::time::Duration;

const RULES: &str = r#"groups:
  - name: api
    interval: 1s
    rules:
      - record: job:one:sum
        expr: sum(vector(1))
      - alert: AlwaysOn
        expr: vector(1)
        labels:
          severity: page
        annotations:
          summary: "value is {{ $value }}"
      - alert: SlowBurn
        expr: vector(2)
        for: 1h
        keep_firing_for: 5m
"#;

const ALERTMANAGER: &str = r#"route:
  receiver: team
  group_by: [alertname]
  routes:
    - receiver: pager
      matchers: ['severity="page"']
receivers:
  - name: team
  - name: pager
"#;

/// Writes `text` to `name` in `dir` and returns the path as a string.
fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// An RFC 3339 time as Go writes it: a `T`, a `Z`, and `frac_digits` fraction digits (`None`:
/// any number, Go's trimmed RFC3339Nano).
fn go_time(s: &str, frac_digits: Option<usize>) -> bool {
    let Some(body) = s.strip_suffix('Z') else {
        return false;
    };
    let (secs, frac) = body.split_once('.').unwrap_or((body, ""));
    let frac_ok = match frac_digits {
        Some(n) => frac.len() == n,
        None => frac.len() <= 9 && !frac.ends_with('0'),
    };
    secs.len() == 19
        && secs.as_bytes()[10] == b'T'
        && frac_ok
        && frac.bytes().all(|b| b.is_ascii_digit())
}

#[tokio::test]
async fn a_firing_rule_shows_in_rules_and_alerts_in_prometheus_shape() {
    let dir = tempfile::tempdir().unwrap();
    let rules = write(&dir, "rules.yml", RULES);
    let v = Vigil::server(&[&format!("--rules.file={rules}")]);

    let alerts = eventually(Duration::from_secs(20), || async {
        let (_, body) = get_json(&v, "/api/v1/alerts").await;
        let alerts = body["data"]["alerts"].as_array()?.clone();
        (alerts.len() == 2).then_some(alerts)
    })
    .await
    .unwrap_or_else(|| panic!("two alerts did not show; log:\n{}", v.log()));
    let firing = alerts
        .iter()
        .find(|a| a["state"] == "firing")
        .expect("a firing alert");
    assert_eq!(
        firing["labels"],
        json!({"alertname": "AlwaysOn", "severity": "page"})
    );
    assert_eq!(firing["annotations"], json!({"summary": "value is 1"}));
    assert_eq!(firing["value"], "1e+00");
    assert!(
        go_time(firing["activeAt"].as_str().unwrap(), None),
        "{firing}"
    );
    assert!(firing.get("keepFiringSince").is_none(), "{firing}");
    let pending = alerts
        .iter()
        .find(|a| a["state"] == "pending")
        .expect("a pending alert");
    assert_eq!(pending["labels"], json!({"alertname": "SlowBurn"}));
    assert_eq!(pending["value"], "2e+00");

    let (status, body) = get_json(&v, "/api/v1/rules").await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "success");
    let groups = body["data"]["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{body}");
    let g = &groups[0];
    assert_eq!(g["name"], "api");
    assert_eq!(g["file"], rules);
    assert_eq!(g["interval"], 1.0);
    assert_eq!(g["limit"], 0);
    assert!(g["evaluationTime"].is_f64(), "{g}");
    assert!(go_time(g["lastEvaluation"].as_str().unwrap(), None), "{g}");
    let r = g["rules"].as_array().unwrap();
    assert_eq!(r.len(), 3);
    assert_eq!(r[0]["type"], "recording");
    assert_eq!(r[0]["name"], "job:one:sum");
    assert_eq!(r[0]["query"], "sum(vector(1))");
    assert_eq!(r[0]["health"], "ok");
    assert!(
        r[0].get("labels").is_none(),
        "empty labels are omitted: {}",
        r[0]
    );
    assert_eq!(r[1]["type"], "alerting");
    assert_eq!(r[1]["state"], "firing");
    assert_eq!(r[1]["query"], "vector(1)");
    assert_eq!(r[1]["duration"], 0.0);
    assert_eq!(r[1]["labels"], json!({"severity": "page"}));
    assert_eq!(
        r[1]["annotations"],
        json!({"summary": "value is {{ $value }}"})
    );
    assert_eq!(r[1]["health"], "ok");
    assert!(r[1].get("lastError").is_none(), "{}", r[1]);
    assert_eq!(r[1]["alerts"].as_array().unwrap().len(), 1);
    assert_eq!(r[1]["alerts"][0]["labels"], firing["labels"]);
    assert_eq!(r[2]["state"], "pending");
    assert_eq!(r[2]["duration"], 3600.0);
    assert_eq!(r[2]["keepFiringFor"], 300.0);
    assert_eq!(r[2]["labels"], json!({}));

    // The filters.
    let names = |body: &Value| -> Vec<String> {
        body["data"]["groups"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|g| g["rules"].as_array().unwrap().iter())
            .map(|r| r["name"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, body) = get_json(&v, "/api/v1/rules?type=record").await;
    assert_eq!(names(&body), ["job:one:sum"]);
    let (_, body) = get_json(&v, "/api/v1/rules?type=alert&rule_name[]=SlowBurn").await;
    assert_eq!(names(&body), ["SlowBurn"]);
    let (_, body) = get_json(&v, "/api/v1/rules?rule_name[]=Nope").await;
    assert_eq!(
        body["data"]["groups"],
        json!([]),
        "a group with no rule left is dropped"
    );
    let (_, body) = get_json(&v, "/api/v1/rules?rule_group[]=other").await;
    assert_eq!(body["data"]["groups"], json!([]));
    let (_, body) = get_json(
        &v,
        &format!("/api/v1/rules?file[]={rules}&rule_group[]=api"),
    )
    .await;
    assert_eq!(names(&body).len(), 3);
    let (_, body) = get_json(&v, "/api/v1/rules?exclude_alerts=true&type=alert").await;
    let rules_json = &body["data"]["groups"][0]["rules"];
    assert!(rules_json[0]["alerts"].is_null(), "{body}");
    assert_eq!(
        rules_json[0]["state"], "firing",
        "state is kept without the alerts"
    );
    let (status, body) = get_json(&v, "/api/v1/rules?type=both").await;
    assert_eq!(status, 400);
    assert_eq!(body["errorType"], "bad_data");
    assert_eq!(
        body["error"],
        r#"invalid parameter "type": not supported value "both""#
    );

    // No Alertmanager configured: API v2 says so.
    let resp = client().get(v.url("/api/v2/alerts")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    assert!(resp
        .text()
        .await
        .unwrap()
        .contains("--alertmanager.config.file"));
}

#[tokio::test]
async fn alertmanager_api_v2_takes_lists_and_describes_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let am = write(&dir, "alertmanager.yml", ALERTMANAGER);
    let v = Vigil::server(&[&format!("--alertmanager.config.file={am}")]);
    let c = client();

    // One good alert and two refused ones: the good one is stored, the 400 names the others.
    let resp = c
        .post(v.url("/api/v2/alerts"))
        .json(&json!([
            {"labels": {"alertname": "DiskFull", "severity": "page", "instance": "a"},
             "annotations": {"summary": "disk a"}, "generatorURL": "http://gen/x"},
            {"labels": {}},
            {"labels": {"alertname": "Backwards"},
             "startsAt": "2030-01-01T00:00:00Z", "endsAt": "2029-01-01T00:00:00Z"},
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let refusal: Value = resp.json().await.unwrap();
    let refusal = refusal.as_str().expect("the refusal is a JSON string");
    assert!(
        refusal.contains("at least one label pair required"),
        "{refusal}"
    );
    assert!(
        refusal.contains("start time must be before end time"),
        "{refusal}"
    );
    let resp = c
        .post(v.url("/api/v2/alerts"))
        .json(&json!([{"labels": {"alertname": "Quiet", "severity": "info"}}]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "");
    let resp = c
        .post(v.url("/api/v2/alerts"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);

    let (status, body) = get_json(&v, "/api/v2/alerts").await;
    assert_eq!(status, 200);
    let alerts = body.as_array().unwrap();
    assert_eq!(alerts.len(), 2, "{body}");
    let disk = alerts
        .iter()
        .find(|a| a["labels"]["alertname"] == "DiskFull")
        .unwrap();
    let keys: Vec<&str> = disk
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut expected = vec![
        "annotations",
        "endsAt",
        "fingerprint",
        "generatorURL",
        "labels",
        "receivers",
        "startsAt",
        "status",
        "updatedAt",
    ];
    expected.sort();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(sorted, expected, "{disk}");
    assert_eq!(disk["receivers"], json!([{"name": "pager"}]));
    assert_eq!(
        disk["status"],
        json!({"inhibitedBy": [], "silencedBy": [], "state": "active"})
    );
    assert_eq!(disk["annotations"], json!({"summary": "disk a"}));
    assert_eq!(disk["generatorURL"], "http://gen/x");
    for field in ["startsAt", "endsAt", "updatedAt"] {
        assert!(
            go_time(disk[field].as_str().unwrap(), Some(3)),
            "{field}: {disk}"
        );
    }
    let fp = disk["fingerprint"].as_str().unwrap();
    assert!(
        fp.len() == 16 && fp.bytes().all(|b| b.is_ascii_hexdigit()),
        "{fp}"
    );
    let fps: Vec<&str> = alerts
        .iter()
        .map(|a| a["fingerprint"].as_str().unwrap())
        .collect();
    assert!(
        fps.windows(2).all(|w| w[0] < w[1]),
        "sorted by fingerprint: {fps:?}"
    );

    let (_, body) = get_json(&v, "/api/v2/alerts?filter=severity%3D%22info%22").await;
    assert_eq!(body.as_array().unwrap().len(), 1);
    assert_eq!(body[0]["labels"]["alertname"], "Quiet");
    assert_eq!(body[0]["receivers"], json!([{"name": "team"}]));
    let (_, body) = get_json(&v, "/api/v2/alerts?receiver=pag.*").await;
    assert_eq!(body.as_array().unwrap().len(), 1);
    let (_, body) = get_json(&v, "/api/v2/alerts?active=false").await;
    assert_eq!(body, json!([]));
    let (status, body) = get_json(&v, "/api/v2/alerts?filter=%3D%3Dx").await;
    assert_eq!(status, 400);
    assert!(
        body.as_str().unwrap().contains("bad matcher format"),
        "{body}"
    );

    let (status, body) = get_json(&v, "/api/v2/receivers").await;
    assert_eq!(status, 200);
    assert_eq!(body, json!([{"name": "team"}, {"name": "pager"}]));

    let (status, body) = get_json(&v, "/api/v2/status").await;
    assert_eq!(status, 200);
    assert_eq!(body["cluster"], json!({"peers": [], "status": "disabled"}));
    let original = body["config"]["original"].as_str().unwrap();
    assert!(original.contains("receiver: team"), "{original}");
    assert!(go_time(body["uptime"].as_str().unwrap(), Some(3)), "{body}");
    assert!(body["versionInfo"]["version"].is_string(), "{body}");
}

/// Posts a silence body and returns the status and the JSON answer.
async fn post_silence(v: &Vigil, body: Value) -> (u16, Value) {
    let resp = client()
        .post(v.url("/api/v2/silences"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn silences_mute_alerts_until_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let am = write(&dir, "alertmanager.yml", ALERTMANAGER);
    let v = Vigil::server(&[&format!("--alertmanager.config.file={am}")]);
    let c = client();
    let silence = |id: Option<&str>, ns: &str| {
        let mut body = json!({
            "matchers": [
                {"name": "pod", "value": "cart-.*", "isRegex": true},
                {"name": "namespace", "value": ns, "isRegex": false, "isEqual": true},
            ],
            "startsAt": "2020-01-01T00:00:00Z",
            "endsAt": "2099-01-01T00:00:00Z",
            "createdBy": "e2e",
            "comment": "maintenance on cart",
        });
        if let Some(id) = id {
            body["id"] = json!(id);
        }
        body
    };

    let (status, created) = post_silence(&v, silence(None, "shop")).await;
    assert_eq!(status, 200, "{created}");
    let id = created["silenceID"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 36, "a UUID: {id}");

    // Listed in Alertmanager 0.25's shape, the past start clamped to now.
    let (status, listed) = get_json(&v, "/api/v2/silences").await;
    assert_eq!(status, 200);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    let s = &listed[0];
    let keys: Vec<&str> = s.as_object().unwrap().keys().map(String::as_str).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            "comment",
            "createdBy",
            "endsAt",
            "id",
            "matchers",
            "startsAt",
            "status",
            "updatedAt"
        ],
        "{s}"
    );
    assert_eq!(s["status"], json!({"state": "active"}));
    assert_eq!(
        s["matchers"][0],
        json!({"isEqual": true, "isRegex": true, "name": "pod", "value": "cart-.*"})
    );
    assert!(s["startsAt"].as_str().unwrap() > "2025", "{s}");
    for field in ["startsAt", "endsAt", "updatedAt"] {
        assert!(go_time(s[field].as_str().unwrap(), Some(3)), "{field}: {s}");
    }
    let (status, one) = get_json(&v, &format!("/api/v2/silence/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(&one, s);
    let (_, filtered) = get_json(&v, "/api/v2/silences?filter=namespace%3D%22other%22").await;
    assert_eq!(filtered, json!([]));

    // A matching alert shows suppressed by the silence; a non-matching one stays active.
    let resp = c
        .post(v.url("/api/v2/alerts"))
        .json(&json!([
            {"labels": {"alertname": "PodDown", "pod": "cart-7", "namespace": "shop"}},
            {"labels": {"alertname": "PodDown", "pod": "web-1", "namespace": "shop"}},
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let status_of = |alerts: &Value, pod: &str| {
        alerts
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["labels"]["pod"] == pod)
            .map(|a| a["status"].clone())
            .unwrap()
    };
    let (_, alerts) = get_json(&v, "/api/v2/alerts").await;
    assert_eq!(
        status_of(&alerts, "cart-7"),
        json!({"inhibitedBy": [], "silencedBy": [id], "state": "suppressed"})
    );
    assert_eq!(status_of(&alerts, "web-1")["state"], "active");
    let (_, unsilenced) = get_json(&v, "/api/v2/alerts?silenced=false").await;
    assert_eq!(unsilenced.as_array().unwrap().len(), 1, "{unsilenced}");

    // Extending keeps the id; changing a matcher replaces it and expires the old one.
    let mut extended = silence(Some(&id), "shop");
    extended["startsAt"] = one["startsAt"].clone();
    let (status, same) = post_silence(&v, extended).await;
    assert_eq!(
        (status, same["silenceID"].as_str()),
        (200, Some(id.as_str()))
    );
    let (status, replaced) = post_silence(&v, silence(Some(&id), "shop2")).await;
    assert_eq!(status, 200);
    let new_id = replaced["silenceID"].as_str().unwrap().to_string();
    assert_ne!(new_id, id);
    let (_, old) = get_json(&v, &format!("/api/v2/silence/{id}")).await;
    assert_eq!(old["status"]["state"], "expired");
    let (_, alerts) = get_json(&v, "/api/v2/alerts").await;
    assert_eq!(status_of(&alerts, "cart-7")["state"], "active", "{alerts}");

    // Delete expires the silence, which stays listed.
    let resp = c
        .delete(v.url(&format!("/api/v2/silence/{new_id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (_, listed) = get_json(&v, "/api/v2/silences").await;
    let states: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"]["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["expired", "expired"], "{listed}");

    // Refusals, each in Alertmanager's form.
    let mut empty = silence(None, "");
    empty["matchers"] = json!([{"name": "namespace", "value": "", "isRegex": false}]);
    let (status, body) = post_silence(&v, empty).await;
    assert_eq!(status, 400);
    assert!(
        body.as_str()
            .unwrap()
            .contains("must not match the empty string"),
        "{body}"
    );
    let mut no_comment = silence(None, "shop");
    no_comment.as_object_mut().unwrap().remove("comment");
    let (status, body) = post_silence(&v, no_comment).await;
    assert_eq!(
        (status, body),
        (
            422,
            json!({"code": 602, "message": "comment in body is required"})
        )
    );
    let (status, body) = post_silence(
        &v,
        silence(Some("4ffb5d2a-29db-4d2b-a1a5-f17ca0817dcd"), "x"),
    )
    .await;
    assert_eq!((status, body), (404, json!("silence not found")));
    let resp = c
        .get(v.url("/api/v2/silence/4ffb5d2a-29db-4d2b-a1a5-f17ca0817dcd"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(
        resp.text().await.unwrap(),
        "",
        "go-swagger's 404 has no body"
    );
    let (status, body) = get_json(&v, "/api/v2/silence/not-a-uuid").await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["code"], 601);
}

#[tokio::test]
async fn real_prometheus_delivers_its_alerts_to_vigil() {
    let dir = tempfile::tempdir().unwrap();
    let am = write(&dir, "alertmanager.yml", ALERTMANAGER);
    let v = Vigil::server(&[&format!("--alertmanager.config.file={am}")]);
    let config = format!(
        "global:\n  evaluation_interval: 1s\nrule_files: [rules.yml]\nalerting:\n  alertmanagers:\n    - api_version: v2\n      static_configs:\n        - targets: ['{}']\n",
        v.addr
    );
    let rules = "groups:\n  - name: prom\n    rules:\n      - alert: FromPrometheus\n        expr: vector(3)\n        labels:\n          severity: page\n        annotations:\n          summary: 'value {{ $value }}'\n";
    let Some(prom) = Prometheus::start(
        "the Alertmanager API test",
        &config,
        &[("rules.yml", rules)],
        // The first evaluation can come before the Alertmanager is discovered, and that
        // alert is dropped; resending every second keeps the test short.
        &["--rules.alert.resend-delay=1s"],
    )
    .await
    else {
        return;
    };

    let alert = eventually(Duration::from_secs(30), || async {
        let (_, body) =
            get_json(&v, "/api/v2/alerts?filter=alertname%3D%22FromPrometheus%22").await;
        body.as_array()?.first().cloned()
    })
    .await
    .unwrap_or_else(|| panic!("Prometheus's alert did not arrive; vigil log:\n{}", v.log()));
    assert_eq!(
        alert["labels"],
        json!({"alertname": "FromPrometheus", "severity": "page"})
    );
    assert_eq!(alert["annotations"], json!({"summary": "value 3"}));
    assert_eq!(alert["receivers"], json!([{"name": "pager"}]));
    assert_eq!(alert["status"]["state"], "active");
    let generator = alert["generatorURL"].as_str().unwrap();
    assert!(
        generator.contains("/graph?g0.expr=vector%283%29"),
        "{generator}"
    );
    assert!(
        generator.contains(&prom.addr.port().to_string()),
        "{generator}"
    );
    // Prometheus sends endsAt = now + 4 × max(resend delay, evaluation interval): still open.
    // Both are fixed-width UTC millisecond times, so string order is time order.
    let (starts, ends) = (
        alert["startsAt"].as_str().unwrap(),
        alert["endsAt"].as_str().unwrap(),
    );
    assert!(
        go_time(starts, Some(3)) && go_time(ends, Some(3)),
        "{alert}"
    );
    assert!(ends > starts, "{alert}");
}

#[tokio::test]
async fn silences_survive_a_kill_9_restart() {
    let dir = tempfile::tempdir().unwrap();
    let am = write(&dir, "alertmanager.yml", ALERTMANAGER);
    let storage = dir.path().join("am-state");
    let flags = [
        format!("--alertmanager.config.file={am}"),
        format!("--alertmanager.storage.path={}", storage.display()),
    ];
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let body = json!({
        "matchers": [{"name": "alertname", "value": "Maintenance", "isRegex": false}],
        "startsAt": "2020-01-01T00:00:00Z",
        "endsAt": "2099-01-01T00:00:00Z",
        "createdBy": "e2e",
        "comment": "kept across restarts",
    });
    let id = {
        let first = Vigil::server(&flags);
        let (status, created) = post_silence(&first, body).await;
        assert_eq!(status, 200, "{created}");
        created["silenceID"].as_str().unwrap().to_string()
        // `first` is killed with SIGKILL here, on drop: no shutdown path runs.
    };
    let second = Vigil::server(&flags);
    let (status, got) = get_json(&second, &format!("/api/v2/silence/{id}")).await;
    assert_eq!(status, 200, "the silence is gone after a restart: {got}");
    assert_eq!(got["status"]["state"], "active", "{got}");
    assert_eq!(got["comment"], "kept across restarts");
    assert!(storage.join("silences.json").exists());
}

#[tokio::test]
async fn posted_alerts_are_bounded_like_every_other_body() {
    let dir = tempfile::tempdir().unwrap();
    let am = write(&dir, "alertmanager.yml", ALERTMANAGER);
    let v = Vigil::server(&[&format!("--alertmanager.config.file={am}")]);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    // An empty JSON array padded to `size` bytes, so only the size decides.
    let post = |size: usize| {
        let mut body = vec![b' '; size];
        body[0] = b'[';
        body[size - 1] = b']';
        client
            .post(v.url("/api/v2/alerts"))
            .header("Content-Type", "application/json")
            .body(body)
            .send()
    };
    // Above axum's 2 MiB default, within the server's 32 MiB bound: accepted.
    assert_eq!(post(3 << 20).await.unwrap().status(), 200);
    // One byte over the bound: refused before it is read.
    assert_eq!(post((32 << 20) + 1).await.unwrap().status(), 413);
}
