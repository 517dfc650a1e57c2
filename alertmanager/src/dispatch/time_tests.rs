//! Routes' `mute_time_intervals` and `active_time_intervals` in the flush, on tokio's paused
//! clock with the Alertmanager's wall clock started at a chosen instant: what is suppressed,
//! what happens to resolved alerts and to the notification log, and that neither list is
//! inherited by child routes.

use super::tests::{names, Harness};
use crate::clock::Clock;
use chrono::{TimeZone, Utc};
use std::time::Duration;
use tokio::time::sleep;

const MUTED: &str = r#"
route:
  receiver: r
  group_by: [alertname]
  group_wait: 30s
  group_interval: 1m
  repeat_interval: 4h
  routes:
  - matchers: ['team="a"']
    mute_time_intervals: [business]
    routes:
    - matchers: ['sub="x"']
time_intervals:
- name: business
  time_intervals:
  - weekdays: ['monday:friday']
    times: [{start_time: '09:00', end_time: '17:00'}]
receivers:
- name: r
"#;

#[tokio::test(start_paused = true)]
async fn mute_time_suppresses_the_route_drops_resolved_and_sends_when_it_ends() {
    // Monday 16:50 UTC: inside business hours.
    let start = Utc.with_ymd_and_hms(2024, 3, 4, 16, 50, 0).unwrap();
    let h = Harness::start_at(MUTED, &["r"], true, Clock::starting_at(start));
    h.firing(&[("alertname", "A"), ("team", "a"), ("i", "1")]);
    h.firing(&[("alertname", "A"), ("team", "a"), ("i", "2")]);
    // The child route does not inherit the mute, and other routes are not affected.
    h.firing(&[("alertname", "B"), ("team", "a"), ("sub", "x"), ("i", "3")]);
    h.firing(&[("alertname", "C"), ("team", "b"), ("i", "4")]);
    sleep(Duration::from_secs(31)).await;
    let mut keys: Vec<String> = h.sent().into_iter().map(|(k, _)| k).collect();
    keys.sort();
    assert_eq!(
        keys,
        vec![
            "{}/{team=\"a\"}/{sub=\"x\"}:{alertname=\"B\"}".to_string(),
            "{}:{alertname=\"C\"}".to_string(),
        ],
        "the muted route's group sends nothing at 16:50:30"
    );

    // Resolved while muted: the flush succeeds without a word, so the alert leaves the group
    // and is never announced.
    h.resolve(&[("alertname", "A"), ("team", "a"), ("i", "2")]);
    sleep(Duration::from_secs(9 * 60)).await; // 16:59:31
    assert_eq!(h.sent().len(), 2);

    // The mute ends at 17:00; the tick at 17:00:30 sends what is still firing. The log never
    // recorded the muted flushes, so this counts as new.
    sleep(Duration::from_secs(60)).await; // 17:00:31
    let sent = h.sent();
    assert_eq!(sent.len(), 3, "{sent:?}");
    assert_eq!(sent[2].0, "{}/{team=\"a\"}:{alertname=\"A\"}");
    assert_eq!(names(&sent[2].1), vec![("1".into(), false)]);

    // Nothing changed since: later ticks stay quiet until repeat_interval.
    sleep(Duration::from_secs(5 * 60)).await;
    assert_eq!(h.sent().len(), 3);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_mute_starting_later_holds_back_changes_and_repeats() {
    // Monday 08:58: the first flush at 08:58:30 is before the mute.
    let start = Utc.with_ymd_and_hms(2024, 3, 4, 8, 58, 0).unwrap();
    let h = Harness::start_at(MUTED, &["r"], true, Clock::starting_at(start));
    h.firing(&[("alertname", "A"), ("team", "a"), ("i", "1")]);
    sleep(Duration::from_secs(31)).await;
    assert_eq!(h.sent().len(), 1);
    // A new alert during the mute is not sent at 09:00:30 or any tick until 17:00:30, when it
    // goes out with the first; the 4h repeat that fell due at 12:58 was held back too.
    sleep(Duration::from_secs(60)).await;
    h.firing(&[("alertname", "A"), ("team", "a"), ("i", "2")]);
    sleep(Duration::from_secs(8 * 3600)).await; // 16:59:31
    assert_eq!(h.sent().len(), 1);
    sleep(Duration::from_secs(60)).await; // 17:00:31
    let sent = h.sent();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(
        names(&sent[1].1),
        vec![("1".into(), false), ("2".into(), false)]
    );
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn active_time_in_a_location_lets_notifications_through_only_inside() {
    if !std::path::Path::new("/usr/share/zoneinfo/Europe/Berlin").exists() {
        println!("skipped: no Europe/Berlin zoneinfo");
        return;
    }
    let config = r#"
route:
  receiver: r
  group_by: [alertname]
  group_wait: 30s
  group_interval: 1m
  routes:
  - matchers: ['team="a"']
    active_time_intervals: [office]
time_intervals:
- name: office
  time_intervals:
  - times: [{start_time: '09:00', end_time: '17:00'}]
    location: Europe/Berlin
receivers:
- name: r
"#;
    // 07:58 UTC in January is 08:58 in Berlin: not yet active.
    let start = Utc.with_ymd_and_hms(2024, 1, 15, 7, 58, 0).unwrap();
    let h = Harness::start_at(config, &["r"], true, Clock::starting_at(start));
    h.firing(&[("alertname", "A"), ("team", "a"), ("i", "1")]);
    sleep(Duration::from_secs(31)).await; // 08:58:31 Berlin
    assert!(h.sent().is_empty());
    sleep(Duration::from_secs(60)).await; // 08:59:31
    assert!(h.sent().is_empty());
    sleep(Duration::from_secs(60)).await; // 09:00:31
    let sent = h.sent();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(names(&sent[0].1), vec![("1".into(), false)]);
    h.stop().await;
}
