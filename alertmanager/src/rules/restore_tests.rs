//! `for` state restored on startup, through two [`RuleManager`]s sharing one `MemStorage` (the
//! second is the restarted server): Prometheus's three cases (resume where it stopped, at
//! least the grace period, already firing) and the outage tolerance. As in Prometheus, the
//! restore happens after the restarted group's second evaluation.

use super::*;
use crate::alert::PostableAlert;
use model::{Labels, MemStorage, Querier};
use std::sync::Arc;
use std::time::Duration;

struct Nowhere;

impl AlertSink for Nowhere {
    fn send(&self, _alerts: Vec<PostableAlert>) {}
}

const MIN: i64 = 60_000;

/// A manager whose one rule (`for: hold`) always sees `up{instance="a"}`, restoring from
/// `store` with Prometheus's default tolerance (1h) and grace period (10m).
fn manager(hold: &str, store: &Arc<MemStorage>) -> RuleManager {
    let text = format!(
        "groups:\n- name: g\n  rules:\n  - alert: Down\n    expr: up == 0\n    for: {hold}\n"
    );
    let groups = parse_rule_file(&text, "r.yml").unwrap();
    let query: QueryFn = Arc::new(|_: &str, _: i64| {
        Ok(vec![(
            Labels::from_pairs([("__name__", "up"), ("instance", "a")]),
            0.0,
        )])
    });
    RuleManager::new(
        groups,
        query,
        store.clone(),
        Arc::new(Nowhere),
        RuleManagerOptions::default(),
    )
    .with_for_restore(store.clone(), ForRestoreOptions::default())
}

/// Evaluates every minute from `from` to `to` (inclusive).
fn run_minutes(m: &RuleManager, from: i64, to: i64) {
    let mut t = from;
    while t <= to {
        m.eval_group_at(0, t);
        t += MIN;
    }
}

fn alert(m: &RuleManager) -> ActiveAlert {
    let mut alerts = m.active_alerts();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    alerts.remove(0)
}

fn for_state_samples(store: &MemStorage) -> Vec<(i64, f64)> {
    let m =
        model::Matcher::new(model::MatchOp::Equal, "__name__", ALERTS_FOR_STATE_METRIC).unwrap();
    store
        .select(i64::MIN / 2, i64::MAX / 2, &[m])
        .unwrap()
        .into_iter()
        .flat_map(|s| s.samples)
        .map(|s| (s.t, s.v))
        .collect()
}

#[test]
fn pending_time_before_the_outage_counts_after_restart() {
    let store = Arc::new(MemStorage::new());
    let first = manager("15m", &store);
    run_minutes(&first, 0, 5 * MIN);
    // The first two evaluations of a run write nothing; the others record active since 0.
    assert_eq!(for_state_samples(&store).first(), Some(&(2 * MIN, 0.0)));
    drop(first);

    // Down from 5m; back at 8m, restored after the evaluation at 9m: 5 of the 15 minutes
    // were spent, 10 remain, counted from 9m.
    let second = manager("15m", &store);
    second.eval_group_at(0, 8 * MIN);
    assert_eq!(alert(&second).active_at_ms, 8 * MIN, "not restored yet");
    second.eval_group_at(0, 9 * MIN);
    assert_eq!(alert(&second).active_at_ms, 4 * MIN);
    assert!(
        for_state_samples(&store)
            .iter()
            .all(|&(t, _)| t != 8 * MIN && t != 9 * MIN),
        "nothing written before the restore"
    );
    run_minutes(&second, 10 * MIN, 18 * MIN);
    assert_eq!(alert(&second).state, AlertState::Pending);
    second.eval_group_at(0, 19 * MIN);
    assert_eq!(alert(&second).state, AlertState::Firing);
    assert_eq!(for_state_samples(&store).last(), Some(&(19 * MIN, 240.0)));
}

#[test]
fn less_than_the_grace_period_left_waits_the_grace_period() {
    let store = Arc::new(MemStorage::new());
    run_minutes(&manager("12m", &store), 0, 5 * MIN);
    // 7 minutes remained, under the 10-minute grace period: it fires 10 minutes after the
    // restore at 9m.
    let second = manager("12m", &store);
    run_minutes(&second, 8 * MIN, 9 * MIN);
    assert_eq!(alert(&second).active_at_ms, 9 * MIN + 10 * MIN - 12 * MIN);
    run_minutes(&second, 10 * MIN, 18 * MIN);
    assert_eq!(alert(&second).state, AlertState::Pending);
    second.eval_group_at(0, 19 * MIN);
    assert_eq!(alert(&second).state, AlertState::Firing);
}

#[test]
fn an_alert_firing_at_shutdown_fires_again_at_the_next_evaluation() {
    let store = Arc::new(MemStorage::new());
    let first = manager("10m", &store);
    run_minutes(&first, 0, 11 * MIN);
    assert_eq!(alert(&first).state, AlertState::Firing);
    let second = manager("10m", &store);
    run_minutes(&second, 12 * MIN, 13 * MIN);
    assert_eq!(alert(&second).active_at_ms, 0);
    assert_eq!(alert(&second).state, AlertState::Pending);
    second.eval_group_at(0, 14 * MIN);
    assert_eq!(alert(&second).state, AlertState::Firing);
}

#[test]
fn nothing_is_restored_past_the_outage_tolerance_or_under_the_grace_period() {
    let store = Arc::new(MemStorage::new());
    run_minutes(&manager("15m", &store), 0, 5 * MIN);
    let late = manager("15m", &store);
    let restart = 5 * MIN + 60 * MIN;
    run_minutes(&late, restart, restart + MIN);
    assert_eq!(
        alert(&late).active_at_ms,
        restart,
        "older than 1h: starts over"
    );

    let store = Arc::new(MemStorage::new());
    run_minutes(&manager("5m", &store), 0, 3 * MIN);
    let short = manager("5m", &store);
    run_minutes(&short, 4 * MIN, 5 * MIN);
    assert_eq!(
        alert(&short).active_at_ms,
        4 * MIN,
        "a `for` under the grace period is not restored"
    );
    assert_eq!(DEFAULT_FOR_GRACE_PERIOD, Duration::from_secs(600));
}
