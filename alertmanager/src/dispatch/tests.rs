//! Dispatcher timing and routing on tokio's paused clock, with a recording integration:
//! group_wait, group_interval ticks, repeat_interval, resolved handling, `continue`, retries,
//! inhibition.

use crate::notify::test_support::{recording_pipeline, Calls};
use crate::notify::NotifyAlert;
use crate::{Alertmanager, AlertmanagerConfig, AlertmanagerOptions, PostableAlert};
use model::Labels;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::sleep;
use tokio_util::sync::CancellationToken;

pub(super) struct Harness {
    pub am: Arc<Alertmanager>,
    calls: Arc<Calls>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Harness {
    fn start(config: &str, receivers: &[&str], send_resolved: bool) -> Harness {
        Self::start_at(config, receivers, send_resolved, crate::clock::Clock::new())
    }

    /// Starts with the Alertmanager's wall clock at a chosen instant.
    pub fn start_at(
        config: &str,
        receivers: &[&str],
        send_resolved: bool,
        clock: crate::clock::Clock,
    ) -> Harness {
        let config = AlertmanagerConfig::parse(config).unwrap();
        let calls = Arc::new(Calls::default());
        let c = Arc::clone(&calls);
        let am = Arc::new(Alertmanager::with_pipeline(
            config,
            AlertmanagerOptions {
                external_url: "http://am".into(),
                data_dir: None,
            },
            {
                let receivers: Vec<String> = receivers.iter().map(|r| r.to_string()).collect();
                move |_: &AlertmanagerConfig| {
                    let names: Vec<&str> = receivers.iter().map(String::as_str).collect();
                    recording_pipeline(&names, send_resolved, &c)
                }
            },
            clock,
        ));
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(Arc::clone(&am).run(shutdown.clone()));
        Harness {
            am,
            calls,
            shutdown,
            task,
        }
    }

    /// Posts an alert that started `age` ago and ends `ends_in` from now (negative: resolved).
    pub fn post(&self, pairs: &[(&str, &str)], age: Duration, ends_in: chrono::Duration) {
        let now = self.am.now();
        self.am.put_alerts(vec![PostableAlert {
            labels: Labels::from_pairs(pairs.iter().copied()),
            annotations: Labels::empty(),
            starts_at: Some(now - chrono::Duration::from_std(age).unwrap()),
            ends_at: Some(now + ends_in),
            generator_url: String::new(),
        }]);
    }

    pub fn firing(&self, pairs: &[(&str, &str)]) {
        self.post(pairs, Duration::ZERO, chrono::Duration::hours(24));
    }

    pub fn resolve(&self, pairs: &[(&str, &str)]) {
        self.post(pairs, Duration::from_secs(600), chrono::Duration::zero());
    }

    pub fn sent(&self) -> Vec<(String, Vec<NotifyAlert>)> {
        self.calls.sent.lock().unwrap().clone()
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap();
    }
}

const DEFAULTS: &str = "route:\n  receiver: r\n  group_by: [alertname]\nreceivers:\n- name: r\n";

pub(super) fn names(alerts: &[NotifyAlert]) -> Vec<(String, bool)> {
    alerts
        .iter()
        .map(|a| (a.labels.get("i").unwrap_or("").to_string(), a.is_resolved()))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn group_wait_interval_resolve_and_repeat() {
    let h = Harness::start(DEFAULTS, &["r"], true);
    h.firing(&[("alertname", "A"), ("i", "1")]);
    sleep(Duration::from_secs(29)).await;
    assert!(h.sent().is_empty(), "waits group_wait (30s)");
    sleep(Duration::from_secs(2)).await;
    let sent = h.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, "{}:{alertname=\"A\"}");
    assert_eq!(names(&sent[0].1), vec![("1".into(), false)]);

    // A second alert joins at 1m and is notified on the next tick (30s + 5m), not before.
    sleep(Duration::from_secs(29)).await;
    h.firing(&[("alertname", "A"), ("i", "2")]);
    sleep(Duration::from_secs(4 * 60 + 28)).await;
    assert_eq!(h.sent().len(), 1);
    sleep(Duration::from_secs(3)).await;
    let sent = h.sent();
    assert_eq!(sent.len(), 2);
    assert_eq!(
        names(&sent[1].1),
        vec![("1".into(), false), ("2".into(), false)]
    );

    // Nothing changed: the 10m30s tick sends nothing.
    sleep(Duration::from_secs(5 * 60)).await;
    assert_eq!(h.sent().len(), 2);

    // Resolving 1 is notified on the next tick, then 1 leaves the group.
    h.resolve(&[("alertname", "A"), ("i", "1")]);
    sleep(Duration::from_secs(5 * 60)).await;
    let sent = h.sent();
    assert_eq!(sent.len(), 3);
    assert_eq!(
        names(&sent[2].1),
        vec![("1".into(), true), ("2".into(), false)]
    );
    let resolved = &sent[2].1[0];
    assert!(resolved.ends_at.is_some());
    assert!(
        sent[2].1[1].ends_at.is_none(),
        "firing alerts carry no endsAt"
    );

    // repeat_interval (4h) is checked on ticks only: the first tick after 15m30s + 4h.
    sleep(Duration::from_secs(4 * 3600)).await;
    assert_eq!(h.sent().len(), 3);
    sleep(Duration::from_secs(5 * 60)).await;
    let sent = h.sent();
    assert_eq!(sent.len(), 4);
    assert_eq!(names(&sent[3].1), vec![("2".into(), false)]);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn old_alert_flushes_at_once() {
    let h = Harness::start(DEFAULTS, &["r"], true);
    h.post(
        &[("alertname", "Old")],
        Duration::from_secs(120),
        chrono::Duration::hours(1),
    );
    sleep(Duration::from_millis(10)).await;
    assert_eq!(h.sent().len(), 1, "older than group_wait: no waiting");
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn all_resolved_group_is_notified_once_then_removed() {
    let h = Harness::start(DEFAULTS, &["r"], true);
    h.firing(&[("alertname", "A")]);
    sleep(Duration::from_secs(31)).await;
    h.resolve(&[("alertname", "A")]);
    sleep(Duration::from_secs(5 * 60)).await;
    let sent = h.sent();
    assert_eq!(sent.len(), 2);
    assert_eq!(names(&sent[1].1), vec![(String::new(), true)]);
    assert!(h.am.group_keys().is_empty(), "empty group removed");
    sleep(Duration::from_secs(30 * 60)).await;
    assert_eq!(h.sent().len(), 2);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn send_resolved_false_skips_resolved_alerts() {
    let h = Harness::start(DEFAULTS, &["r"], false);
    h.firing(&[("alertname", "A"), ("i", "1")]);
    h.firing(&[("alertname", "A"), ("i", "2")]);
    sleep(Duration::from_secs(31)).await;
    assert_eq!(h.sent().len(), 1);
    h.resolve(&[("alertname", "A"), ("i", "1")]);
    sleep(Duration::from_secs(5 * 60)).await;
    assert_eq!(h.sent().len(), 1, "only a resolved alert changed");
    h.resolve(&[("alertname", "A"), ("i", "2")]);
    sleep(Duration::from_secs(5 * 60)).await;
    assert_eq!(h.sent().len(), 1, "all resolved: logged, nothing sent");
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn continue_routes_to_several_groups() {
    let config = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/reference/alertmanager-captures/inputs/alertmanager.yml"
    ))
    .unwrap();
    let h = Harness::start(&config, &["webhook", "slack", "errors"], true);
    // Different services, so the config's inhibit rule (equal: [service]) mutes neither.
    h.firing(&[
        ("alertname", "KubePodCrashLooping"),
        ("service", "checkout"),
        ("severity", "critical"),
    ]);
    h.firing(&[
        ("alertname", "KubePodCrashLooping"),
        ("service", "cart"),
        ("severity", "warning"),
    ]);
    h.firing(&[("alertname", "Boom"), ("demo", "errors")]);
    sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        h.am.group_keys(),
        vec![
            "{}/{demo=\"errors\"}:{alertname=\"Boom\"}",
            "{}/{severity=~\".+\"}:{alertname=\"KubePodCrashLooping\"}",
            "{}/{severity=~\"critical|warning\"}:{alertname=\"KubePodCrashLooping\"}",
        ]
    );
    let sent = h.sent();
    assert_eq!(sent.len(), 3);
    let webhook = sent
        .iter()
        .find(|(k, _)| k.starts_with("{}/{severity=~\".+\"}"))
        .unwrap();
    assert_eq!(webhook.1.len(), 2, "both severities grouped by alertname");
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn retryable_failures_are_retried_within_the_flush() {
    let h = Harness::start(DEFAULTS, &["r"], true);
    h.calls
        .fail_next
        .store(2, std::sync::atomic::Ordering::SeqCst);
    h.firing(&[("alertname", "A")]);
    sleep(Duration::from_secs(30 + 3)).await;
    assert_eq!(h.sent().len(), 1, "third attempt succeeded");
    sleep(Duration::from_secs(5 * 60)).await;
    assert_eq!(h.sent().len(), 1, "logged as sent: no duplicate");
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn api_view_lists_unresolved_alerts_with_their_receivers() {
    let config = "route:\n  receiver: r\n  routes:\n  - receiver: s\n    matchers: ['severity=\"page\"']\n    continue: true\n  - receiver: r\n    matchers: ['severity=~\".+\"']\nreceivers:\n- name: r\n- name: s\n";
    let h = Harness::start(config, &["r", "s"], true);
    h.firing(&[("alertname", "B"), ("severity", "page")]);
    h.firing(&[("alertname", "A")]);
    h.resolve(&[("alertname", "C")]);
    let view = h.am.alerts();
    let names: Vec<_> = view
        .iter()
        .map(|a| (a.labels.get("alertname").unwrap_or(""), a.receivers.clone()))
        .collect();
    assert_eq!(
        names.len(),
        2,
        "the resolved alert is not listed: {names:?}"
    );
    assert!(
        names.contains(&("B", vec!["s".to_string(), "r".to_string()])),
        "{names:?}"
    );
    assert!(names.contains(&("A", vec!["r".to_string()])), "{names:?}");
    let fps: Vec<u64> = view.iter().map(|a| a.fingerprint).collect();
    assert!(fps.windows(2).all(|w| w[0] < w[1]), "listed by fingerprint");
    assert!(view
        .iter()
        .all(|a| a.state == crate::AlertViewState::Active));
    assert_eq!(h.am.receiver_names(), vec!["r", "s"]);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn silenced_alerts_are_not_notified_and_show_suppressed() {
    use crate::{AlertViewState, PostableSilence, SilenceMatcher};
    let h = Harness::start(DEFAULTS, &["r"], true);
    let now = h.am.now();
    let id =
        h.am.set_silence(PostableSilence {
            id: None,
            matchers: vec![SilenceMatcher {
                name: "i".into(),
                value: "1|3".into(),
                is_regex: true,
                is_equal: true,
            }],
            starts_at: now,
            ends_at: now + chrono::Duration::minutes(10),
            created_by: "test".into(),
            comment: "quiet".into(),
        })
        .unwrap();
    h.firing(&[("alertname", "A"), ("i", "1")]);
    h.firing(&[("alertname", "A"), ("i", "2")]);
    h.firing(&[("alertname", "B"), ("i", "3")]);

    let view = h.am.alerts();
    let state = |i: &str| {
        let a = view.iter().find(|a| a.labels.get("i") == Some(i)).unwrap();
        (a.state, a.silenced_by.clone())
    };
    assert_eq!(state("1"), (AlertViewState::Suppressed, vec![id.clone()]));
    assert_eq!(state("2"), (AlertViewState::Active, vec![]));

    // Group A is sent without the silenced alert; group B, wholly silenced, sends nothing.
    sleep(Duration::from_secs(31)).await;
    let sent = h.sent();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(names(&sent[0].1), vec![("2".into(), false)]);

    // Once the silence is expired, the next ticks notify what it muted.
    h.am.expire_silence(&id).unwrap();
    sleep(Duration::from_secs(5 * 60)).await;
    let sent = h.sent();
    assert_eq!(sent.len(), 3, "{sent:?}");
    let mut notified: Vec<_> = sent[1..].iter().flat_map(|(_, a)| names(a)).collect();
    notified.sort();
    assert_eq!(
        notified,
        vec![
            ("1".into(), false),
            ("2".into(), false),
            ("3".into(), false)
        ]
    );
    assert_eq!(
        h.am.alerts()
            .iter()
            .filter(|a| a.state == AlertViewState::Suppressed)
            .count(),
        0
    );
    h.stop().await;
}

const INHIBITING: &str = "route:\n  receiver: r\n  group_by: [alertname]\n  group_wait: 1s\n  group_interval: 5s\nreceivers:\n- name: r\ninhibit_rules:\n- source_matchers: ['severity=\"critical\"']\n  target_match: {severity: warning}\n  equal: [service]\n";

#[tokio::test(start_paused = true)]
async fn inhibited_alerts_wait_until_their_source_resolves() {
    let h = Harness::start(INHIBITING, &["r"], true);
    h.firing(&[
        ("alertname", "Down"),
        ("i", "crit"),
        ("service", "a"),
        ("severity", "critical"),
    ]);
    h.firing(&[
        ("alertname", "Slow"),
        ("i", "warn-a"),
        ("service", "a"),
        ("severity", "warning"),
    ]);
    h.firing(&[
        ("alertname", "Slow"),
        ("i", "warn-b"),
        ("service", "b"),
        ("severity", "warning"),
    ]);
    sleep(Duration::from_millis(1500)).await;
    let mut first: Vec<_> = h.sent().iter().flat_map(|(_, a)| names(a)).collect();
    first.sort();
    assert_eq!(
        first,
        vec![("crit".into(), false), ("warn-b".into(), false)],
        "warn-a is inhibited by crit (same service); warn-b is not"
    );
    let view = h.am.alerts();
    let warn_a = view
        .iter()
        .find(|a| a.labels.get("i") == Some("warn-a"))
        .unwrap();
    let crit = view
        .iter()
        .find(|a| a.labels.get("i") == Some("crit"))
        .unwrap();
    assert_eq!(
        warn_a.inhibited_by,
        vec![crate::fingerprint_hex(crit.fingerprint)]
    );
    assert_eq!(warn_a.state, crate::AlertViewState::Suppressed);

    // The source resolves: the next tick of warn-a's group notifies it.
    h.resolve(&[
        ("alertname", "Down"),
        ("i", "crit"),
        ("service", "a"),
        ("severity", "critical"),
    ]);
    sleep(Duration::from_secs(5)).await;
    let later: Vec<_> = h
        .sent()
        .iter()
        .skip(2)
        .flat_map(|(_, a)| names(a))
        .collect();
    assert!(later.contains(&("warn-a".into(), false)), "{later:?}");
    assert!(h.am.alerts().iter().all(|a| a.inhibited_by.is_empty()));
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_reload_routes_kept_alerts_through_the_new_tree_without_resending() {
    let h = Harness::start(DEFAULTS, &["r", "s"], true);
    h.firing(&[("alertname", "A")]);
    sleep(Duration::from_secs(31)).await;
    assert_eq!(h.sent().len(), 1);

    // The same config again: the alert is routed into a new group, which finds it already
    // notified in the log and sends nothing.
    h.am.reload(AlertmanagerConfig::parse(DEFAULTS).unwrap());
    sleep(Duration::from_secs(6 * 60)).await;
    assert_eq!(h.sent().len(), 1, "nothing new to say");

    // A route to another receiver: the kept alert goes there at once, being older than the
    // new group's group_wait (as any alert that started long before its group).
    let rerouted = "route:\n  receiver: r\n  group_by: [alertname]\n  routes:\n  - matchers: [alertname=A]\n    receiver: s\nreceivers:\n- name: r\n- name: s\n";
    h.am.reload(AlertmanagerConfig::parse(rerouted).unwrap());
    sleep(Duration::from_millis(10)).await;
    let sent = h.sent();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1].0, "{}/{alertname=\"A\"}:{alertname=\"A\"}");
    assert_eq!(
        h.am.config().route.as_ref().map(|r| r.routes.len()),
        Some(1),
        "the new config is the one shown"
    );
    h.stop().await;
}
