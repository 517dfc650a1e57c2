//! Tests of the Slack integration: bodies compared byte for byte with what Alertmanager 0.25
//! sent in the captured run, and the answers of a loopback Slack classified as Alertmanager
//! does (plus 429 honoured).

use super::*;
use crate::alert::fingerprint;
use crate::config::AlertmanagerConfig;
use axum::http::{HeaderMap, StatusCode};
use chrono::{TimeZone, Utc};
use model::Labels;
use std::path::Path;
use std::sync::Mutex;

const CAPTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/reference/alertmanager-captures"
);

/// The captured config and its template file, laid out as the run had them.
fn captured_config() -> (tempfile::TempDir, AlertmanagerConfig) {
    let dir = tempfile::tempdir().unwrap();
    let inputs = Path::new(CAPTURES).join("inputs");
    std::fs::copy(
        inputs.join("alertmanager.yml"),
        dir.path().join("alertmanager.yml"),
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("templates")).unwrap();
    std::fs::copy(
        inputs.join("custom.tmpl"),
        dir.path().join("templates/custom.tmpl"),
    )
    .unwrap();
    let config = AlertmanagerConfig::load(&dir.path().join("alertmanager.yml")).unwrap();
    (dir, config)
}

fn notifier(config: &AlertmanagerConfig, receiver: &str, index: usize) -> SlackNotifier {
    let templates = Arc::new(config.notification_templates().unwrap());
    let slack = config.receiver(receiver).unwrap().slack_configs[index].clone();
    SlackNotifier::new(slack, &config.global, templates)
}

/// The two alerts of `raw-run/002…004`, resolved for `007`/`008`.
fn captured_alerts(resolved: bool) -> Vec<NotifyAlert> {
    let alert = |pod: &str, service: &str, severity: &str, restarts: u32, expr: &str| {
        let labels = Labels::from_pairs([
            ("alertname", "KubePodCrashLooping"),
            ("namespace", "shop"),
            ("pod", pod),
            ("service", service),
            ("severity", severity),
        ]);
        NotifyAlert {
            fingerprint: fingerprint(&labels),
            labels,
            annotations: Labels::from_pairs([
                (
                    "description",
                    format!("Pod shop/{pod} restarted {restarts} times in 10m"),
                ),
                (
                    "runbook_url",
                    "https://runbooks.example/KubePodCrashLooping".to_string(),
                ),
                ("summary", format!("Pod shop/{pod} is crash looping")),
            ]),
            starts_at: Utc.timestamp_opt(1_795_803_961, 0).unwrap(),
            ends_at: resolved.then(|| Utc.timestamp_opt(1_795_803_993, 0).unwrap()),
            generator_url: format!("http://127.0.0.1:19090/graph?g0.expr={expr}&g0.tab=1"),
        }
    };
    vec![
        alert("cart-5c6b", "cart", "warning", 2, "up"),
        alert(
            "checkout-7d9f",
            "checkout",
            "critical",
            5,
            "rate%28kube_pod_container_status_restarts_total%5B5m%5D%29+%3E+0",
        ),
    ]
}

fn ctx() -> FlushContext {
    FlushContext {
        receiver: "slack".into(),
        group_key: "{}/{severity=~\"critical|warning\"}:{alertname=\"KubePodCrashLooping\"}".into(),
        group_labels: Labels::from_pairs([("alertname", "KubePodCrashLooping")]),
        external_url: "http://127.0.0.1:19093".into(),
        repeat_interval: std::time::Duration::from_secs(3600),
    }
}

fn raw(name: &str) -> String {
    std::fs::read_to_string(Path::new(CAPTURES).join("raw-run").join(name)).unwrap()
}

#[test]
fn bodies_are_byte_identical_to_the_captures() {
    let (_dir, config) = captured_config();
    let cases = [
        (0, false, "002_slack_global-default.raw"),
        (1, false, "004_slack_custom.raw"),
        (1, true, "007_slack_custom.raw"),
        (0, true, "008_slack_global-default.raw"),
    ];
    for (index, resolved, file) in cases {
        let (_, body) = notifier(&config, "slack", index)
            .build_body(&ctx(), &captured_alerts(resolved))
            .unwrap();
        assert_eq!(String::from_utf8(body).unwrap(), raw(file), "{file}");
    }
}

#[test]
fn interactive_actions_confirmations_and_truncation() {
    let yaml = r#"
route: {receiver: s}
receivers:
- name: s
  slack_configs:
  - api_url: http://127.0.0.1:1/x
    link_names: true
    icon_url: 'http://icons/{{ .Status }}.png'
    mrkdwn_in: [text]
    title: '{{ range .Alerts }}{{ .Annotations.description }}{{ end }}'
    actions:
    - type: button
      text: Ack
      name: ack
      value: '{{ .GroupLabels.alertname }}'
      confirm: {text: 'Sure?', ok_text: 'Yes'}
    - type: button
      text: Open
      url: 'http://x/'
      name: dropped
"#;
    let config = AlertmanagerConfig::parse(yaml).unwrap();
    let n = notifier(&config, "s", 0);
    let mut alerts = captured_alerts(false);
    alerts[0].annotations = Labels::from_pairs([("description", "é".repeat(2000))]);
    let (_, body) = n.build_body(&ctx(), &alerts).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["link_names"], true);
    assert_eq!(v["icon_url"], "http://icons/firing.png");
    let att = &v["attachments"][0];
    assert_eq!(att["mrkdwn_in"], serde_json::json!(["text"]));
    let title = att["title"].as_str().unwrap();
    assert_eq!(title.chars().count(), MAX_TITLE_RUNES);
    assert!(title.ends_with('…'), "a visible marker at the cut");
    assert_eq!(
        att["actions"],
        serde_json::json!([
            {"type": "button", "text": "Ack", "name": "ack", "value": "KubePodCrashLooping",
             "confirm": {"text": "Sure?", "ok_text": "Yes"}},
            {"type": "button", "text": "Open", "url": "http://x/"},
        ])
    );
}

#[test]
fn config_errors_are_alertmanagers() {
    let base = "route: {receiver: s}\nreceivers:\n- name: s\n  slack_configs:\n";
    let cases = [
        ("  - channel: '#a'\n", "no global Slack API URL set"),
        (
            "  - api_url: http://x/\n    fields: [{title: a}]\n",
            "missing value in Slack field configuration",
        ),
        (
            "  - api_url: http://x/\n    actions: [{type: button, text: a}]\n",
            "missing name or url in Slack action configuration",
        ),
        (
            "  - api_url: http://x/\n    actions: [{text: a, url: 'http://y/'}]\n",
            "missing type in Slack action configuration",
        ),
        (
            "  - api_url: http://x/\n    api_url_file: /f\n",
            "at most one of api_url & api_url_file",
        ),
    ];
    for (tail, want) in cases {
        let err = AlertmanagerConfig::parse(&format!("{base}{tail}"))
            .unwrap_err()
            .to_string();
        assert!(err.contains(want), "{err:?} should contain {want:?}");
    }
    let global = "global: {slack_api_url: 'http://g/'}\n";
    assert!(AlertmanagerConfig::parse(&format!("{global}{base}  - channel: '#a'\n")).is_ok());
}

/// The requests a fake Slack received: headers and body.
type Received = Arc<Mutex<Vec<(HeaderMap, Vec<u8>)>>>;

/// A loopback Slack answering each request with the next scripted answer.
struct FakeSlack {
    url: String,
    received: Received,
}

type Answer = (StatusCode, Vec<(&'static str, &'static str)>, &'static str);

async fn fake_slack(answers: Vec<Answer>) -> FakeSlack {
    let received: Received = Arc::new(Mutex::new(Vec::new()));
    let script = Arc::new(Mutex::new(answers.into_iter()));
    let rec = Arc::clone(&received);
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let rec = Arc::clone(&rec);
            let script = Arc::clone(&script);
            async move {
                rec.lock().unwrap().push((headers, body.to_vec()));
                let (status, headers, body) =
                    script
                        .lock()
                        .unwrap()
                        .next()
                        .unwrap_or((StatusCode::OK, vec![], "ok"));
                let mut response = axum::response::Response::new(axum::body::Body::from(body));
                *response.status_mut() = status;
                for (k, v) in headers {
                    response.headers_mut().insert(k, v.parse().unwrap());
                }
                response
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    FakeSlack {
        url: format!("http://{addr}/hook"),
        received,
    }
}

fn loopback_notifier(url: &str, url_in_file: Option<&Path>) -> SlackNotifier {
    let api = match url_in_file {
        Some(f) => format!("api_url_file: {}", f.display()),
        None => format!("api_url: {url}"),
    };
    let yaml = format!(
        "route: {{receiver: s}}\nreceivers:\n- name: s\n  slack_configs:\n  - {api}\n    channel: '#a'\n    http_config: {{bearer_token: tok}}\n"
    );
    let config = AlertmanagerConfig::parse(&yaml).unwrap();
    notifier(&config, "s", 0)
}

#[tokio::test]
async fn answers_are_classified_like_alertmanager() {
    let slack = fake_slack(vec![
        (StatusCode::OK, vec![], "ok"),
        (
            StatusCode::OK,
            vec![("content-type", "application/json")],
            r#"{"ok":false,"error":"invalid_blocks"}"#,
        ),
        (StatusCode::NOT_FOUND, vec![], "channel_not_found"),
        (StatusCode::INTERNAL_SERVER_ERROR, vec![], "rollup_error"),
        (
            StatusCode::TOO_MANY_REQUESTS,
            vec![("retry-after", "7")],
            r#"{"ok":false,"error":"rate_limited"}"#,
        ),
    ])
    .await;
    let n = loopback_notifier(&slack.url, None);
    let alerts = captured_alerts(false);
    assert!(n.notify(&ctx(), &alerts).await.is_ok());
    let e = n.notify(&ctx(), &alerts).await.unwrap_err();
    assert!(!e.retryable);
    assert_eq!(
        e.message,
        "channel \"#a\": error response from Slack: invalid_blocks"
    );
    let e = n.notify(&ctx(), &alerts).await.unwrap_err();
    assert!(!e.retryable);
    assert_eq!(
        e.message,
        "channel \"#a\": unexpected status code 404: channel_not_found"
    );
    let e = n.notify(&ctx(), &alerts).await.unwrap_err();
    assert!(e.retryable && e.retry_after.is_none(), "{e:?}");
    let e = n.notify(&ctx(), &alerts).await.unwrap_err();
    assert!(e.retryable, "429 is retried");
    assert_eq!(e.retry_after, Some(std::time::Duration::from_secs(7)));

    let received = slack.received.lock().unwrap();
    assert_eq!(received.len(), 5);
    let (headers, body) = &received[0];
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["authorization"], "Bearer tok");
    let v: serde_json::Value = serde_json::from_slice(body).unwrap();
    assert_eq!(v["channel"], "#a");
    assert_eq!(
        v["attachments"][0]["title"],
        "[FIRING:2] KubePodCrashLooping (shop)"
    );
}

#[tokio::test]
async fn api_url_file_is_read_at_each_send() {
    let slack = fake_slack(vec![]).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("url");
    std::fs::write(&file, format!("{}\n", slack.url)).unwrap();
    let n = loopback_notifier(&slack.url, Some(&file));
    n.notify(&ctx(), &captured_alerts(false)).await.unwrap();
    std::fs::remove_file(&file).unwrap();
    let e = n.notify(&ctx(), &captured_alerts(false)).await.unwrap_err();
    assert!(!e.retryable);
    assert!(e.message.contains("reading"), "{}", e.message);
    assert_eq!(slack.received.lock().unwrap().len(), 1);
}
