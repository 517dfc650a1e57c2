//! Rule evaluation through [`RuleManager::eval_group_at`] with a scripted query function: the
//! alert lifecycle and send timing of Prometheus 2.42, and recording rules written to
//! `model::MemStorage`.

use super::*;
use crate::alert::PostableAlert;
use crate::goformat::rfc3339_millis;
use model::{Labels, MemStorage, Querier};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A query function answering each expression from a table the test changes between evals.
#[derive(Default)]
struct Script {
    answers: Mutex<HashMap<String, Vec<(Labels, f64)>>>,
}

impl Script {
    fn set(&self, expr: &str, answer: Vec<(Labels, f64)>) {
        self.answers
            .lock()
            .unwrap()
            .insert(expr.to_string(), answer);
    }
    fn query_fn(self: &Arc<Self>) -> QueryFn {
        let me = Arc::clone(self);
        Arc::new(move |expr: &str, _t: i64| {
            Ok(me
                .answers
                .lock()
                .unwrap()
                .get(expr)
                .cloned()
                .unwrap_or_default())
        })
    }
}

#[derive(Default)]
struct Recorder {
    sent: Mutex<Vec<PostableAlert>>,
}

impl AlertSink for Recorder {
    fn send(&self, alerts: Vec<PostableAlert>) {
        self.sent.lock().unwrap().extend(alerts);
    }
}

impl Recorder {
    fn take(&self) -> Vec<PostableAlert> {
        std::mem::take(&mut *self.sent.lock().unwrap())
    }
}

/// The captured Prometheus run: 1s interval, resend delay 2s, external label cluster=research.
fn setup(rules: &str) -> (RuleManager, Arc<Script>, Arc<Recorder>, Arc<MemStorage>) {
    let groups = parse_rule_file(rules, "rules.yml").unwrap();
    let script = Arc::new(Script::default());
    let recorder = Arc::new(Recorder::default());
    let store = Arc::new(MemStorage::new());
    let opts = RuleManagerOptions {
        external_url: "http://127.0.0.1:19090".into(),
        resend_delay: Duration::from_secs(2),
        external_labels: Labels::from_pairs([("cluster", "research")]),
        ..Default::default()
    };
    let manager = RuleManager::new(
        groups,
        script.query_fn(),
        store.clone(),
        recorder.clone(),
        opts,
    );
    (manager, script, recorder, store)
}

const DEMO: &str = r#"
groups:
  - name: demo
    interval: 1s
    rules:
      - alert: DemoServiceDown
        expr: service:demo_up:min == 0
        for: 3s
        labels:
          severity: critical
          team: '{{ $labels.service }}-team'
        annotations:
          summary: 'Service {{ $labels.service }} is down'
          description: 'value={{ $value }} humanize={{ humanize 1234567.0 }} ext={{ $externalLabels.cluster }}'
"#;

const EXPR: &str = "service:demo_up:min == 0";
const T0: i64 = 1_795_804_038_568; // 2026-11-27T18:27:18.568Z, the captured activeAt

fn down() -> Vec<(Labels, f64)> {
    vec![(
        Labels::from_pairs([("__name__", "service:demo_up:min"), ("service", "checkout")]),
        0.0,
    )]
}

fn ms(t: i64) -> String {
    rfc3339_millis(&chrono::TimeZone::timestamp_millis_opt(&chrono::Utc, t).unwrap())
}

#[test]
fn pending_then_firing_then_resolved_with_prometheus_timing() {
    let (m, script, sent, _) = setup(DEMO);
    script.set(EXPR, down());

    // Pending for the first 3s: visible as active, never sent.
    for s in 0..3 {
        m.eval_group_at(0, T0 + s * 1000);
        let active = m.active_alerts();
        assert_eq!(active.len(), 1);
        assert_eq!(active[0].state, AlertState::Pending);
        assert_eq!(active[0].active_at_ms, T0);
        assert!(sent.take().is_empty(), "pending alerts are not sent");
    }

    // Fires once `for` has elapsed, and is sent at once.
    m.eval_group_at(0, T0 + 3000);
    assert_eq!(m.active_alerts()[0].state, AlertState::Firing);
    let first = sent.take();
    assert_eq!(first.len(), 1);
    let a = &first[0];
    assert_eq!(
        a.labels,
        Labels::from_pairs([
            ("alertname", "DemoServiceDown"),
            ("cluster", "research"),
            ("service", "checkout"),
            ("severity", "critical"),
            ("team", "checkout-team"),
        ])
    );
    assert_eq!(
        a.annotations.get("summary"),
        Some("Service checkout is down")
    );
    assert_eq!(
        a.annotations.get("description"),
        Some("value=0 humanize=1.235M ext=research")
    );
    // As captured: startsAt is FiredAt, endsAt is +4×max(interval, resend delay).
    assert_eq!(
        ms(a.starts_at.unwrap().timestamp_millis()),
        "2026-11-27T18:27:21.568Z"
    );
    assert_eq!(a.ends_at.unwrap().timestamp_millis(), T0 + 3000 + 8000);
    assert_eq!(
        a.generator_url,
        "http://127.0.0.1:19090/graph?g0.expr=service%3Ademo_up%3Amin+%3D%3D+0&g0.tab=1"
    );

    // Resend delay 2s is checked strictly: re-sent every 3 evaluations of 1s.
    let mut resend_times = Vec::new();
    for s in 4..=10 {
        m.eval_group_at(0, T0 + s * 1000);
        if !sent.take().is_empty() {
            resend_times.push(s);
        }
    }
    assert_eq!(resend_times, vec![6, 9]);

    // Gone: resolved at once, sent with endsAt = resolve time.
    script.set(EXPR, vec![]);
    m.eval_group_at(0, T0 + 11_000);
    assert!(m.active_alerts().is_empty());
    let resolved = sent.take();
    assert_eq!(resolved.len(), 1);
    assert_eq!(resolved[0].ends_at.unwrap().timestamp_millis(), T0 + 11_000);
    assert_eq!(resolved[0].starts_at.unwrap().timestamp_millis(), T0 + 3000);

    // Re-sent as resolved every resend delay for 15 minutes, then forgotten.
    m.eval_group_at(0, T0 + 14_000);
    assert_eq!(
        sent.take()[0].ends_at.unwrap().timestamp_millis(),
        T0 + 11_000
    );
    m.eval_group_at(0, T0 + 11_000 + RESOLVED_RETENTION_MS);
    assert_eq!(sent.take().len(), 1, "still within retention");
    m.eval_group_at(0, T0 + 11_001 + RESOLVED_RETENTION_MS + 5000);
    assert!(sent.take().is_empty(), "dropped after retention");
}

#[test]
fn pending_alert_that_disappears_is_never_sent() {
    let (m, script, sent, _) = setup(DEMO);
    script.set(EXPR, down());
    m.eval_group_at(0, T0);
    script.set(EXPR, vec![]);
    m.eval_group_at(0, T0 + 1000);
    assert!(m.active_alerts().is_empty());
    script.set(EXPR, down());
    m.eval_group_at(0, T0 + 2000);
    assert_eq!(
        m.active_alerts()[0].active_at_ms,
        T0 + 2000,
        "a new activeAt"
    );
    assert!(sent.take().is_empty());
}

#[test]
fn for_zero_fires_on_the_first_evaluation() {
    let rules = "groups:\n- name: g\n  rules:\n  - alert: Up\n    expr: up\n";
    let (m, script, sent, _) = setup(rules);
    script.set(
        "up",
        vec![(Labels::from_pairs([("__name__", "up"), ("job", "a")]), 1.0)],
    );
    m.eval_group_at(0, T0);
    assert_eq!(m.active_alerts()[0].state, AlertState::Firing);
    let a = sent.take();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].labels.get("__name__"), None, "__name__ is dropped");
    // Default interval 1m beats the 2s resend delay: endsAt = ts + 4m.
    assert_eq!(a[0].ends_at.unwrap().timestamp_millis(), T0 + 240_000);
}

#[test]
fn keep_firing_for_holds_a_vanished_alert() {
    let rules = "groups:\n- name: g\n  interval: 1s\n  rules:\n  - alert: A\n    expr: x\n    keep_firing_for: 2s\n";
    let (m, script, sent, _) = setup(rules);
    script.set("x", vec![(Labels::from_pairs([("i", "1")]), 1.0)]);
    m.eval_group_at(0, T0);
    script.set("x", vec![]);
    m.eval_group_at(0, T0 + 1000);
    m.eval_group_at(0, T0 + 2000);
    assert_eq!(m.active_alerts().len(), 1, "kept firing for 2s");
    m.eval_group_at(0, T0 + 3000);
    assert!(m.active_alerts().is_empty());
    let last = sent.take().pop().unwrap();
    assert_eq!(last.ends_at.unwrap().timestamp_millis(), T0 + 3000);
}

#[test]
fn identical_label_sets_after_templating_fail_the_rule() {
    let rules = "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: x\n    labels: {i: same}\n";
    let (m, script, sent, _) = setup(rules);
    script.set(
        "x",
        vec![
            (Labels::from_pairs([("i", "1")]), 1.0),
            (Labels::from_pairs([("i", "2")]), 1.0),
        ],
    );
    m.eval_group_at(0, T0);
    assert!(m.active_alerts().is_empty());
    assert!(sent.take().is_empty());
}

#[test]
fn limit_overflow_clears_the_rule() {
    let rules = "groups:\n- name: g\n  limit: 1\n  rules:\n  - alert: A\n    expr: x\n";
    let (m, script, sent, _) = setup(rules);
    script.set("x", vec![(Labels::from_pairs([("i", "1")]), 1.0)]);
    m.eval_group_at(0, T0);
    assert_eq!(m.active_alerts().len(), 1);
    sent.take();
    script.set(
        "x",
        vec![
            (Labels::from_pairs([("i", "1")]), 1.0),
            (Labels::from_pairs([("i", "2")]), 1.0),
        ],
    );
    m.eval_group_at(0, T0 + 60_000);
    assert!(m.active_alerts().is_empty());
    assert!(sent.take().is_empty());
}

#[test]
fn recording_rule_appends_with_labels_and_stale_markers() {
    let rules = "groups:\n- name: g\n  rules:\n  - record: job:up:sum\n    expr: sum by (job) (up)\n    labels: {source: rule}\n  - alert: Low\n    expr: job:up:sum < 1\n";
    let (m, script, _, store) = setup(rules);
    let job = |j: &str| Labels::from_pairs([("job", j)]);
    script.set("sum by (job) (up)", vec![(job("a"), 3.0), (job("b"), 1.0)]);
    m.eval_group_at(0, T0);
    script.set("sum by (job) (up)", vec![(job("a"), 4.0)]);
    m.eval_group_at(0, T0 + 60_000);

    let series = store.select(0, i64::MAX, &[]).unwrap();
    assert_eq!(series.len(), 2);
    let a = &series[0];
    assert_eq!(
        a.labels,
        Labels::from_pairs([("__name__", "job:up:sum"), ("job", "a"), ("source", "rule")])
    );
    let values: Vec<(i64, f64)> = a.samples.iter().map(|s| (s.t, s.v)).collect();
    assert_eq!(values, vec![(T0, 3.0), (T0 + 60_000, 4.0)]);
    let b = &series[1];
    assert_eq!(b.samples.len(), 2);
    assert!(
        model::is_stale_nan(b.samples[1].v),
        "b disappeared: stale marker"
    );
}

#[test]
fn failing_template_keeps_the_rule_running() {
    let rules = "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: x\n    annotations:\n      d: '{{ humanize \"not a number\" }}'\n";
    let (m, script, sent, _) = setup(rules);
    script.set("x", vec![(Labels::from_pairs([("i", "1")]), 1.0)]);
    m.eval_group_at(0, T0);
    let a = sent.take();
    let d = a[0].annotations.get("d").unwrap();
    assert!(d.starts_with("<error expanding template: "), "{d}");
}

#[tokio::test(start_paused = true)]
async fn run_evaluates_each_group_on_its_phase_until_shutdown() {
    let rules = "groups:\n- name: g\n  interval: 1s\n  rules:\n  - record: r\n    expr: x\n";
    let groups = parse_rule_file(rules, "rules.yml").unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = Arc::clone(&seen);
    let query: QueryFn = Arc::new(move |_: &str, t: i64| {
        s.lock().unwrap().push(t);
        Ok(vec![])
    });
    let m = Arc::new(RuleManager::new(
        groups,
        query,
        Arc::new(MemStorage::new()),
        Arc::new(Recorder::default()),
        RuleManagerOptions::default(),
    ));
    let shutdown = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(Arc::clone(&m).run(shutdown.clone()));
    tokio::time::sleep(Duration::from_millis(5_500)).await;
    shutdown.cancel();
    task.await.unwrap();
    let seen = seen.lock().unwrap().clone();
    assert!((4..=6).contains(&seen.len()), "{seen:?}");
    for pair in seen.windows(2) {
        assert_eq!(
            pair[1] - pair[0],
            1000,
            "one evaluation per interval: {seen:?}"
        );
    }
}

#[test]
fn group_statuses_report_health_last_error_and_alerts() {
    let rules = "groups:\n- name: g\n  limit: 1\n  rules:\n  - alert: A\n    expr: x\n  - record: r\n    expr: y\n";
    let (m, script, _, _) = setup(rules);
    let st = m.group_statuses();
    assert_eq!(st[0].rules[0].health, RuleHealth::Unknown);
    assert_eq!(st[0].last_evaluation_ms, None);
    assert_eq!(st[0].limit, 1);

    script.set("x", vec![(Labels::from_pairs([("i", "1")]), 1.0)]);
    m.eval_group_at(0, T0);
    let st = m.group_statuses();
    assert_eq!(st[0].last_evaluation_ms, Some(T0));
    assert_eq!(st[0].rules[0].health, RuleHealth::Ok);
    assert_eq!(st[0].rules[0].alerts.len(), 1, "for: 0 fires at once");
    assert_eq!(st[0].rules[0].alerts[0].state, AlertState::Firing);
    assert_eq!(st[0].rules[1].health, RuleHealth::Ok);

    script.set(
        "x",
        vec![
            (Labels::from_pairs([("i", "1")]), 1.0),
            (Labels::from_pairs([("i", "2")]), 1.0),
        ],
    );
    m.eval_group_at(0, T0 + 60_000);
    let st = m.group_statuses();
    let a = &st[0].rules[0];
    assert_eq!(a.health, RuleHealth::Err);
    assert_eq!(
        a.last_error.as_deref(),
        Some("exceeded limit of 1 with 2 alerts")
    );
    assert!(
        a.alerts.is_empty(),
        "a limit overflow clears the rule's alerts"
    );
    assert_eq!(st[0].rules[1].health, RuleHealth::Ok, "health is per rule");
}

#[test]
fn alerts_and_for_state_series_follow_the_alert() {
    // The captured run: ALERTS_FOR_STATE{alertname="DemoServiceDown",…} = 1795804038 (the
    // activeAt in whole seconds), without external labels (prom_query_ALERTS_FOR_STATE.json).
    let (m, script, _, store) = setup(DEMO);
    script.set(EXPR, down());
    for s in 0..4 {
        m.eval_group_at(0, T0 + s * 1000);
    }
    script.set(EXPR, vec![]);
    m.eval_group_at(0, T0 + 4000);

    let series = store.select(0, i64::MAX, &[]).unwrap();
    let alert = Labels::from_pairs([
        ("alertname", "DemoServiceDown"),
        ("service", "checkout"),
        ("severity", "critical"),
        ("team", "checkout-team"),
    ]);
    let find = |labels: Labels| {
        let s = series
            .iter()
            .find(|s| s.labels == labels)
            .unwrap_or_else(|| panic!("no series {labels}"));
        s.samples
            .iter()
            .map(|x| (x.t - T0, if model::is_stale_nan(x.v) { -1.0 } else { x.v }))
            .collect::<Vec<_>>()
    };
    let pending = alert
        .with("__name__", ALERTS_METRIC)
        .with("alertstate", "pending");
    let firing = alert
        .with("__name__", ALERTS_METRIC)
        .with("alertstate", "firing");
    let for_state = alert.with("__name__", ALERTS_FOR_STATE_METRIC);
    assert_eq!(
        find(pending),
        vec![(0, 1.0), (1000, 1.0), (2000, 1.0), (3000, -1.0)],
        "pending until `for` (3s) passed, then stale"
    );
    assert_eq!(find(firing), vec![(3000, 1.0), (4000, -1.0)]);
    assert_eq!(
        find(for_state),
        vec![
            (0, 1_795_804_038.0),
            (1000, 1_795_804_038.0),
            (2000, 1_795_804_038.0),
            (3000, 1_795_804_038.0),
            (4000, -1.0)
        ]
    );
    assert_eq!(series.len(), 3);
}

#[test]
fn a_reload_keeps_each_unchanged_rules_alerts_and_drops_a_changed_ones() {
    let (old, script, _, _) = setup(DEMO);
    script.set(EXPR, down());
    for s in 0..2 {
        old.eval_group_at(0, T0 + s * 1000);
    }
    assert_eq!(old.active_alerts()[0].active_at_ms, T0);

    // The same rule plus a new one: the pending alert keeps its activeAt and fires when the
    // `for` that began before the reload has elapsed.
    let with_new_rule = format!("{DEMO}      - alert: Another\n        expr: vector(1)\n");
    let reloaded = |rules: &str| {
        let sent = Arc::new(Recorder::default());
        let groups = parse_rule_file(rules, "rules.yml").unwrap();
        let store = Arc::new(MemStorage::new());
        let m = RuleManager::new(
            groups,
            script.query_fn(),
            store,
            sent.clone(),
            Default::default(),
        );
        (m, sent)
    };
    let (new, sent) = reloaded(&with_new_rule);
    new.take_state_from(&old);
    assert_eq!(new.group_statuses()[0].last_evaluation_ms, Some(T0 + 1000));
    new.eval_group_at(0, T0 + 2000);
    let active = new.active_alerts();
    assert_eq!((active.len(), active[0].active_at_ms), (1, T0));
    assert_eq!(active[0].state, AlertState::Pending);
    new.eval_group_at(0, T0 + 3000);
    assert_eq!(new.active_alerts()[0].state, AlertState::Firing);
    assert_eq!(sent.take().len(), 1);

    // A rule whose labels changed is a different rule: its alert starts over.
    let relabelled = DEMO.replace("severity: critical", "severity: warning");
    let (fresh, _) = reloaded(&relabelled);
    fresh.take_state_from(&new);
    fresh.eval_group_at(0, T0 + 4000);
    assert_eq!(fresh.active_alerts()[0].active_at_ms, T0 + 4000);
}

#[test]
fn a_reload_marks_the_series_of_removed_rules_stale() {
    let both = "groups:\n- name: g\n  rules:\n  - record: kept\n    expr: a\n  - record: dropped\n    expr: b\n";
    let (old, script, _, store) = setup(both);
    script.set("a", vec![(Labels::from_pairs([("x", "1")]), 1.0)]);
    script.set("b", vec![(Labels::from_pairs([("x", "2")]), 2.0)]);
    old.eval_group_at(0, T0);

    let one = "groups:\n- name: g\n  rules:\n  - record: kept\n    expr: a\n";
    let groups = parse_rule_file(one, "rules.yml").unwrap();
    let sink = Arc::new(Recorder::default());
    let new = RuleManager::new(
        groups,
        script.query_fn(),
        store.clone(),
        sink,
        Default::default(),
    );
    new.take_state_from(&old);

    let series = store.select(0, i64::MAX, &[]).unwrap();
    let last = |name: &str| {
        let s = series
            .iter()
            .find(|s| s.labels.get("__name__") == Some(name))
            .unwrap();
        *s.samples.last().unwrap()
    };
    assert!(
        model::is_stale_nan(last("dropped").v),
        "the removed rule's series ends"
    );
    assert!(last("dropped").t > T0);
    assert_eq!(last("kept").v, 1.0, "the kept rule's series goes on");
}
