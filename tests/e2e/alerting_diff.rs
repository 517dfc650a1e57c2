//! The alerting differential test (issue 9): one rule file, one Alertmanager config and the
//! same remote-written data in Vigil and in Prometheus 2.42 + Alertmanager 0.25, both stacks
//! posting to one local sink; their notifications must agree in receiver, status, group key,
//! group and common labels, common annotations, which alerts each carries (labels,
//! annotations, fingerprints, status, generator URL), the Slack bodies, and the time they
//! arrive (within one evaluation interval plus slack).
//!
//! The data is written once, before any of it is due: a timeline of samples at a sub-second
//! offset chosen away from both stacks' evaluation phases, so which evaluation sees a change
//! never depends on when a request arrived. Group timers sit half a second off the evaluation
//! grid (group_wait 1.5s, group_interval 2s), so no alert reaches a group on a flush tick.
//!
//! Needs `/usr/bin/prometheus` and `/usr/bin/prometheus-alertmanager`; skips without them
//! unless `CI=true`.

use crate::harness::*;
use crate::peers::{Alertmanager, Prometheus};
use axum::body::Bytes;
use axum::http::{HeaderMap, Uri};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Both stacks' evaluation interval.
const EVAL_MS: i64 = 1000;
/// How far apart the two stacks' notifications may arrive: one evaluation interval (their
/// phases differ by less than that) plus scheduling slack on a loaded machine.
const TIMING_TOLERANCE_MS: i64 = EVAL_MS + 500;
/// The timeline's length: the last change is at +22s, its notification a flush later.
const SCENARIO_MS: i64 = 28_000;
/// The same external URL in both stacks, so generator URLs compare as they are.
const EXTERNAL_URL: &str = "http://vigil-diff.test:9090";

const RULES: &str = r#"groups:
  - name: diff
    rules:
      - record: service:diff_errors:sum
        expr: sum by (service, env) (diff_errors)
      - alert: HighErrors
        expr: service:diff_errors:sum > 5
        for: 3s
        labels:
          severity: critical
          team: '{{ $labels.service }}'
        annotations:
          summary: '{{ $labels.service }} in {{ $labels.env }} has {{ $value }} errors'
          description: '{{ printf "%.1f" $value }} errors ({{ humanize $value }}) in cluster {{ $externalLabels.cluster }}'
      - alert: QueueBacklog
        expr: diff_queue_depth > 100
        for: 2s
        labels:
          severity: warning
        annotations:
          summary: 'queue {{ $labels.queue }} holds {{ $value | humanize }} messages'
      - alert: InstanceDown
        expr: diff_up == 0
        for: 2s
        labels:
          severity: page
        annotations:
          summary: '{{ $labels.instance }} of job {{ $labels.job }} is down'
"#;

/// The Alertmanager config both stacks load; `SINK` is replaced by the sink's address.
const ALERTMANAGER: &str = r#"global:
  slack_api_url: http://SINK/slack/global
route:
  receiver: default-hook
  group_by: [alertname]
  group_wait: 1500ms
  group_interval: 2s
  repeat_interval: 1h
  routes:
    - receiver: slack-crit
      matchers: ['severity="critical"']
      group_by: [alertname, service]
      continue: true
    - receiver: team-hook
      matchers: ['team=~".+"']
      group_by: ['...']
inhibit_rules:
  - source_matchers: ['severity="critical"']
    target_matchers: ['severity="warning"']
    equal: [service]
receivers:
  - name: default-hook
    webhook_configs:
      - url: http://SINK/hook/default
  - name: team-hook
    webhook_configs:
      - url: http://SINK/hook/team
        send_resolved: true
  - name: slack-crit
    slack_configs:
      - channel: '#crit'
        send_resolved: true
        text: '{{ range .Alerts }}{{ .Annotations.summary }}{{ "\n" }}{{ end }}'
"#;

/// Notifications the scenario makes the real pair send (InstanceDown 3 and QueueBacklog 1 to
/// default-hook; HighErrors firing twice and resolved once to team-hook and to Slack): a floor
/// that keeps the comparison from passing on two empty lists.
const EXPECTED_AT_LEAST: usize = 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Stack {
    Vigil,
    Pair,
    /// Neither: a POST the test did not expect, which fails it.
    Unknown,
}

/// One POST the sink received.
#[derive(Clone, Debug)]
struct Received {
    path: String,
    body: Value,
    at_ms: i64,
}

type Inbox = Arc<Mutex<BTreeMap<Stack, Vec<Received>>>>;

/// The local sink both stacks' receivers post to; the sender is told apart by its
/// User-Agent (`Alertmanager/0.25.0` or `Vigil-Alertmanager/...`).
async fn sink() -> (String, Inbox) {
    let inbox: Inbox = Arc::default();
    let store = inbox.clone();
    let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap, body: Bytes| {
        let store = store.clone();
        async move {
            let agent = headers
                .get("user-agent")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let stack = if agent.starts_with("Vigil-Alertmanager/") {
                Stack::Vigil
            } else if agent.starts_with("Alertmanager/") {
                Stack::Pair
            } else {
                Stack::Unknown
            };
            // A body that is not JSON is kept as text, so the comparison shows it.
            let body: Value = serde_json::from_slice(&body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into()));
            store
                .lock()
                .unwrap()
                .entry(stack)
                .or_default()
                .push(Received {
                    path: uri.path().to_string(),
                    body,
                    at_ms: now_ms(),
                });
            "ok"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, inbox)
}

/// The millisecond within the second of a group's last evaluation, from `/api/v1/rules`.
async fn eval_phase(base: &str) -> Option<i64> {
    let body: Value = client()
        .get(format!("{base}/api/v1/rules"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    let last = body["data"]["groups"][0]["lastEvaluation"].as_str()?;
    let t = chrono::DateTime::parse_from_rfc3339(last).ok()?;
    if t.timestamp() < 1_000_000_000 {
        return None; // Go's zero time: not evaluated yet.
    }
    Some(t.timestamp_millis().rem_euclid(EVAL_MS))
}

/// The sub-second offset farthest from both evaluation phases.
fn sample_offset(a: i64, b: i64) -> i64 {
    let dist = |x: i64, p: i64| {
        let d = (x - p).rem_euclid(EVAL_MS);
        d.min(EVAL_MS - d)
    };
    (0..EVAL_MS)
        .step_by(10)
        .max_by_key(|&o| dist(o, a).min(dist(o, b)))
        .unwrap_or(EVAL_MS / 2)
}

/// The scenario's series, sampled every second from `t0 - 5s` to the end: each a label set
/// and its value at `s` seconds after `t0`.
#[allow(clippy::type_complexity)]
fn timeline() -> Vec<(Vec<(&'static str, &'static str)>, fn(i64) -> f64)> {
    vec![
        // Two instances go down together (one group notification), come back apart.
        (
            vec![("__name__", "diff_up"), ("job", "api"), ("instance", "a")],
            |s| if (1..12).contains(&s) { 0.0 } else { 1.0 },
        ),
        (
            vec![("__name__", "diff_up"), ("job", "api"), ("instance", "b")],
            |s| if (1..22).contains(&s) { 0.0 } else { 1.0 },
        ),
        (
            vec![("__name__", "diff_up"), ("job", "api"), ("instance", "c")],
            |_| 1.0,
        ),
        // Errors, summed by a recording rule that the HighErrors alert reads.
        (
            vec![
                ("__name__", "diff_errors"),
                ("service", "checkout"),
                ("env", "prod"),
                ("instance", "a"),
            ],
            |s| if s >= 2 { 4.5 } else { 0.0 },
        ),
        (
            vec![
                ("__name__", "diff_errors"),
                ("service", "checkout"),
                ("env", "prod"),
                ("instance", "b"),
            ],
            |s| if s >= 2 { 3.25 } else { 0.0 },
        ),
        (
            vec![
                ("__name__", "diff_errors"),
                ("service", "cart"),
                ("env", "prod"),
                ("instance", "c"),
            ],
            |s| if (2..14).contains(&s) { 9.0 } else { 0.0 },
        ),
        // The checkout backlog is inhibited by checkout's critical alert for the whole run;
        // the cart backlog starts after cart's critical alert resolved, so it is notified.
        (
            vec![
                ("__name__", "diff_queue_depth"),
                ("service", "checkout"),
                ("queue", "orders"),
            ],
            |s| if s >= 8 { 500.0 } else { 0.0 },
        ),
        (
            vec![
                ("__name__", "diff_queue_depth"),
                ("service", "cart"),
                ("queue", "payments"),
            ],
            |s| if s >= 18 { 1_234_567.0 } else { 0.0 },
        ),
    ]
}

/// One notification reduced to what must match exactly, with its times set aside (compared
/// within the tolerance): webhook v4 bodies field by field, Slack bodies whole, each stack's
/// Alertmanager URL replaced by `<external>`.
fn normalize(r: &Received, external: &str) -> (Value, Vec<i64>) {
    let mut times = Vec::new();
    let mut body = r.body.clone();
    if let Some(alerts) = body.get_mut("alerts").and_then(Value::as_array_mut) {
        for a in alerts {
            for key in ["startsAt", "endsAt"] {
                let t = a[key].as_str().unwrap_or_default().to_string();
                if t == "0001-01-01T00:00:00Z" {
                    continue;
                }
                let parsed = chrono::DateTime::parse_from_rfc3339(&t)
                    .unwrap_or_else(|e| panic!("{key} {t:?} is not RFC 3339: {e}"));
                times.push(parsed.timestamp_millis());
                a[key] = json!("<time>");
            }
        }
    }
    // Alertmanager's own links (`externalURL`, the Slack title link `<url>/#/alerts?...`)
    // name each stack's Alertmanager; generator URLs name Prometheus/Vigil and must match.
    if body.get("externalURL").is_some() {
        body["externalURL"] = json!("<external>");
    }
    let text = body
        .to_string()
        .replace(&format!("{external}/#/"), "<external>/#/");
    (serde_json::from_str(&text).unwrap(), times)
}

/// A one-line summary of a notification for the mismatch report.
fn summary(r: &Received, t0: i64) -> String {
    let b = &r.body;
    let alerts: Vec<String> = b["alerts"]
        .as_array()
        .map(|alerts| {
            alerts
                .iter()
                .map(|a| format!("{}:{}", a["labels"], a["status"]))
                .collect()
        })
        .unwrap_or_else(|| vec![format!("{}", b["attachments"][0]["title"])]);
    format!(
        "{:+7.2}s {:<14} {} {} {}",
        (r.at_ms - t0) as f64 / 1000.0,
        r.path,
        b["groupKey"].as_str().unwrap_or("(slack)"),
        b["status"].as_str().unwrap_or(""),
        alerts.join(" ")
    )
}

/// Each stack's external URL as its webhook bodies give it.
fn external_url(got: &[Received]) -> String {
    got.iter()
        .find_map(|r| r.body["externalURL"].as_str())
        .unwrap_or("<none>")
        .to_string()
}

/// Which aggregation group a notification came from: the webhook's `groupKey`, or for Slack
/// the default title without its status prefix (the group labels' values and the common
/// labels'), so notifications of groups flushed in the same instant are never paired up by
/// their arrival order.
fn group_of(r: &Received) -> String {
    if let Some(key) = r.body["groupKey"].as_str() {
        return key.to_string();
    }
    let title = r.body["attachments"][0]["title"]
        .as_str()
        .unwrap_or_default();
    title
        .split_once("] ")
        .map_or(title, |(_, rest)| rest)
        .to_string()
}

/// Compares the two stacks' notifications group by group (per receiver URL) in arrival
/// order; every difference goes into the returned list.
fn compare(ours: &[Received], theirs: &[Received], t0: i64) -> Vec<String> {
    let (our_url, their_url) = (external_url(ours), external_url(theirs));
    let by_path = |got: &[Received]| {
        let mut m: BTreeMap<String, Vec<Received>> = BTreeMap::new();
        for r in got {
            m.entry(format!("{} {}", r.path, group_of(r)))
                .or_default()
                .push(r.clone());
        }
        m
    };
    let (ours_by, theirs_by) = (by_path(ours), by_path(theirs));
    let mut problems = Vec::new();
    let paths: std::collections::BTreeSet<&String> =
        ours_by.keys().chain(theirs_by.keys()).collect();
    for path in paths {
        let (o, t) = (
            ours_by.get(path).cloned().unwrap_or_default(),
            theirs_by.get(path).cloned().unwrap_or_default(),
        );
        if o.len() != t.len() {
            problems.push(format!(
                "{path}: Vigil sent {} notifications, the pair {}",
                o.len(),
                t.len()
            ));
        }
        for (i, (o, t)) in o.iter().zip(&t).enumerate() {
            let (ob, ot) = normalize(o, &our_url);
            let (tb, tt) = normalize(t, &their_url);
            if ob != tb {
                problems.push(format!(
                    "{path} #{i} differs\n  Vigil: {}\n  pair:  {}",
                    serde_json::to_string_pretty(&ob).unwrap(),
                    serde_json::to_string_pretty(&tb).unwrap()
                ));
            }
            if (o.at_ms - t.at_ms).abs() > TIMING_TOLERANCE_MS {
                problems.push(format!(
                    "{path} #{i} arrived {:+.2}s (Vigil) vs {:+.2}s (pair)",
                    (o.at_ms - t0) as f64 / 1000.0,
                    (t.at_ms - t0) as f64 / 1000.0
                ));
            }
            for (a, b) in ot.iter().zip(&tt) {
                if (a - b).abs() > TIMING_TOLERANCE_MS {
                    problems.push(format!(
                        "{path} #{i}: alert times {ot:?} (Vigil) vs {tt:?} (pair)"
                    ));
                    break;
                }
            }
        }
    }
    problems
}

#[tokio::test]
async fn notifications_match_prometheus_and_alertmanager() {
    let (sink_addr, inbox) = sink().await;
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yml");
    std::fs::write(&rules, RULES).unwrap();
    let am_config = ALERTMANAGER.replace("SINK", &sink_addr);
    let am_path = dir.path().join("alertmanager.yml");
    std::fs::write(&am_path, &am_config).unwrap();
    let purpose = "the alerting differential test";
    let Some(am) = Alertmanager::start(purpose, &am_config).await else {
        return;
    };
    // One config for both: Vigil accepts the `alerting` section and ignores it (its
    // Alertmanager is in-process); the rule file has one path, so the group's identity is
    // the same in both.
    let prom_config = format!(
        "global:\n  evaluation_interval: 1s\n  external_labels: {{cluster: diff}}\n\
         rule_files: ['{}']\n\
         alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['{}']\n",
        rules.display(),
        am.addr
    );
    let prom_path = dir.path().join("prometheus.yml");
    std::fs::write(&prom_path, &prom_config).unwrap();
    let external = format!("--web.external-url={EXTERNAL_URL}");
    let Some(prom) = Prometheus::start(
        purpose,
        &prom_config,
        &[],
        &["--web.enable-remote-write-receiver", &external],
    )
    .await
    else {
        return;
    };
    let vigil = Vigil::server(&[
        &format!("--config.file={}", prom_path.display()),
        &format!("--alertmanager.config.file={}", am_path.display()),
        &external,
    ]);
    let (ours, theirs) = (vigil.url(""), format!("http://{}", prom.addr));

    // Learn both evaluation phases, then put every sample between them.
    let phases = eventually(Duration::from_secs(10), || async {
        Some((eval_phase(&ours).await?, eval_phase(&theirs).await?))
    })
    .await
    .unwrap_or_else(|| panic!("no rule evaluation seen; Vigil log:\n{}", vigil.log()));
    let offset = sample_offset(phases.0, phases.1);
    let t0 = (now_ms() / 1000 + 3) * 1000 + offset;
    let series = timeline();
    let samples: Vec<Vec<(i64, f64)>> = series
        .iter()
        .map(|(_, f)| {
            (-5..=SCENARIO_MS / 1000 + 5)
                .map(|s| (t0 + s * 1000, f(s)))
                .collect()
        })
        .collect();
    let body: Vec<TestSeries> = series
        .iter()
        .zip(&samples)
        .map(|((labels, _), s)| (labels.as_slice(), s.clone()))
        .collect();
    let body = write_body(&body);
    assert_eq!(remote_write_to(&ours, body.clone()).await.0, 204);
    let (status, text) = remote_write_to(&theirs, body).await;
    assert_eq!(status, 204, "prometheus refused the data: {text}");

    let wait = (t0 + SCENARIO_MS - now_ms()).max(0) as u64;
    tokio::time::sleep(Duration::from_millis(wait)).await;

    let got = inbox.lock().unwrap().clone();
    let ours_got = got.get(&Stack::Vigil).cloned().unwrap_or_default();
    let theirs_got = got.get(&Stack::Pair).cloned().unwrap_or_default();
    let listing = |got: &[Received]| {
        got.iter()
            .map(|r| format!("  {}", summary(r, t0)))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let report = format!(
        "phases Vigil {}ms, Prometheus {}ms, samples at {offset}ms\nVigil:\n{}\npair:\n{}",
        phases.0,
        phases.1,
        listing(&ours_got),
        listing(&theirs_got)
    );
    assert!(
        !got.contains_key(&Stack::Unknown),
        "POSTs from an unknown sender: {:?}",
        got.get(&Stack::Unknown)
    );
    assert!(
        theirs_got.len() >= EXPECTED_AT_LEAST,
        "the pair sent too few notifications to compare\n{report}"
    );
    // The checkout backlog is inhibited throughout: no stack may notify it.
    for r in ours_got.iter().chain(&theirs_got) {
        assert!(
            !r.body.to_string().contains("\"orders\""),
            "the inhibited backlog was notified\n{report}"
        );
    }
    let problems = compare(&ours_got, &theirs_got, t0);
    assert!(
        problems.is_empty(),
        "Vigil's notifications differ from Prometheus + Alertmanager's:\n{}\n\n{report}\n\nVigil log:\n{}",
        problems.join("\n"),
        vigil.log()
    );
    eprintln!("{report}");
    drop(am);
}
