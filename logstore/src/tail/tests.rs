//! Tail semantics over a real store: selector and pipeline filtering, backfill without
//! duplicates, `delay_for`, bounded buffers with dropped entries, and the limits.

use super::*;
use std::sync::atomic::{AtomicUsize, Ordering};

fn entry(ts_ns: i64, line: &str) -> LogEntry {
    LogEntry {
        ts_ns,
        line: line.into(),
        metadata: vec![],
    }
}

fn stream(pairs: &[(&str, &str)], entries: Vec<LogEntry>) -> LogStream {
    LogStream {
        labels: Labels::from_pairs(pairs.iter().copied()),
        entries,
    }
}

fn open() -> (tempfile::TempDir, LogStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path()).unwrap();
    (dir, store)
}

fn no_wake() -> Box<dyn Fn() + Send + Sync> {
    Box::new(|| {})
}

/// Every (labels, ts, line) of a response, in order.
fn flat(r: &TailResponse) -> Vec<(String, i64, String)> {
    r.streams
        .iter()
        .flat_map(|s| {
            s.entries
                .iter()
                .map(|e| (s.labels.to_string(), e.ts_ns, e.line.clone()))
        })
        .collect()
}

const FAR: i64 = i64::MAX / 2;

#[test]
fn live_entries_pass_the_selector_and_the_pipeline_in_timestamp_order() {
    let (_d, store) = open();
    let wakes = Arc::new(AtomicUsize::new(0));
    let w = wakes.clone();
    let mut tail = store
        .tail(
            r#"{app="api"} |= "GET" | logfmt | status >= 500"#,
            FAR,
            100,
            0,
            Box::new(move || {
                w.fetch_add(1, Ordering::SeqCst);
            }),
        )
        .unwrap();
    assert_eq!(tail.next_response(FAR), None);
    store
        .push(&[
            stream(
                &[("app", "api")],
                vec![
                    entry(30, "method=GET status=503"),
                    entry(10, "method=GET status=500"),
                    entry(20, "method=GET status=200"),
                    entry(25, "method=POST status=500"),
                ],
            ),
            stream(&[("app", "web")], vec![entry(15, "method=GET status=500")]),
        ])
        .unwrap();
    assert_eq!(
        wakes.load(Ordering::SeqCst),
        1,
        "one wake for the matching push"
    );
    let r = tail.next_response(FAR).unwrap();
    let labels = r#"{app="api", method="GET", status="500"}"#;
    assert_eq!(
        flat(&r),
        [
            (labels.to_string(), 10, "method=GET status=500".to_string()),
            (
                r#"{app="api", method="GET", status="503"}"#.to_string(),
                30,
                "method=GET status=503".to_string()
            ),
        ]
    );
    // One stream object per entry, as Loki sends them.
    assert_eq!(r.streams.len(), 2);
    assert!(r.dropped.is_empty());
    assert_eq!(tail.next_response(FAR), None);
    // A push to a stream the selector does not match does not wake the tail.
    store
        .push(&[stream(&[("app", "web")], vec![entry(40, "GET")])])
        .unwrap();
    assert_eq!(wakes.load(Ordering::SeqCst), 1);
}

#[test]
fn backfill_sends_the_newest_limit_oldest_first_and_no_entry_twice() {
    let (_d, store) = open();
    let lines: Vec<LogEntry> = (1..=5).map(|i| entry(i * 1000, &format!("l{i}"))).collect();
    store.push(&[stream(&[("app", "a")], lines)]).unwrap();
    let mut tail = store.tail(r#"{app="a"}"#, 2000, 3, 0, no_wake()).unwrap();
    // A retry of an entry the backfill holds is a duplicate and is not stored again; a new
    // one is sent live.
    store
        .push(&[stream(
            &[("app", "a")],
            vec![entry(5000, "l5"), entry(6000, "l6")],
        )])
        .unwrap();
    let r = tail.next_response(FAR).unwrap();
    let got: Vec<i64> = flat(&r).iter().map(|e| e.1).collect();
    assert_eq!(got, [3000, 4000, 5000, 6000]);
    assert_eq!(tail.next_response(FAR), None);
}

#[test]
fn delay_for_holds_entries_until_the_clock_passes_their_timestamp_plus_the_delay() {
    let (_d, store) = open();
    let mut tail = store.tail(r#"{app="a"}"#, FAR, 100, 2, no_wake()).unwrap();
    let s = 1_000_000_000;
    store
        .push(&[stream(
            &[("app", "a")],
            vec![entry(10 * s, "late"), entry(5 * s, "early")],
        )])
        .unwrap();
    assert_eq!(tail.next_response(7 * s), None, "5s + 2s is not yet past");
    assert_eq!(tail.next_release_ns(), Some(7 * s + 1));
    let r = tail.next_response(7 * s + 1).unwrap();
    assert_eq!(flat(&r)[0].2, "early");
    assert_eq!(r.streams.len(), 1);
    assert_eq!(tail.next_release_ns(), Some(12 * s + 1));
    assert_eq!(flat(&tail.next_response(13 * s).unwrap())[0].2, "late");
    assert_eq!(tail.next_release_ns(), None);
}

#[test]
fn a_slow_reader_loses_entries_as_dropped_entries_not_memory() {
    let (_d, store) = open();
    let mut tail = store.tail(r#"{app="a"}"#, FAR, 100, 0, no_wake()).unwrap();
    let pushed = MAX_BUFFERED_TAIL_ENTRIES + 250;
    let entries: Vec<LogEntry> = (0..pushed as i64).map(|i| entry(i + 1, "x")).collect();
    store.push(&[stream(&[("app", "a")], entries)]).unwrap();
    let mut delivered = 0;
    let mut dropped = Vec::new();
    while let Some(r) = tail.next_response(FAR) {
        assert!(r.streams.len() <= MAX_ENTRIES_PER_TAIL_RESPONSE);
        delivered += r.streams.len();
        dropped.extend(r.dropped);
    }
    assert_eq!(delivered, MAX_BUFFERED_TAIL_ENTRIES);
    assert_eq!(dropped.len(), 250);
    assert_eq!(dropped[0].labels, Labels::from_pairs([("app", "a")]));
    assert_eq!(dropped[0].ts_ns, MAX_BUFFERED_TAIL_ENTRIES as i64 + 1);

    // Past the itemised bound, drops are still bounded and the tail still works afterwards.
    let many = MAX_BUFFERED_TAIL_ENTRIES + MAX_DROPPED_ENTRIES_PER_TAIL_RESPONSE + 10;
    let entries: Vec<LogEntry> = (0..many as i64).map(|i| entry(10_000 + i, "y")).collect();
    store.push(&[stream(&[("app", "a")], entries)]).unwrap();
    let first = tail.next_response(FAR).unwrap();
    assert_eq!(first.dropped.len(), MAX_DROPPED_ENTRIES_PER_TAIL_RESPONSE);
    let mut delivered = first.streams.len();
    while let Some(r) = tail.next_response(FAR) {
        delivered += r.streams.len();
    }
    assert_eq!(delivered, MAX_BUFFERED_TAIL_ENTRIES);
}

#[test]
fn long_lines_are_bounded_by_bytes() {
    let (_d, store) = open();
    let mut tail = store.tail(r#"{app="a"}"#, FAR, 100, 0, no_wake()).unwrap();
    let line = "z".repeat(64 << 10);
    let n = MAX_BUFFERED_TAIL_BYTES / line.len() + 5;
    let entries: Vec<LogEntry> = (0..n as i64).map(|i| entry(i + 1, &line)).collect();
    store.push(&[stream(&[("app", "a")], entries)]).unwrap();
    let mut delivered = 0;
    let mut dropped = 0;
    while let Some(r) = tail.next_response(FAR) {
        delivered += r.streams.len();
        dropped += r.dropped.len();
    }
    assert_eq!(delivered, MAX_BUFFERED_TAIL_BYTES / line.len());
    assert_eq!(dropped, 5);
}

#[test]
fn refusals_and_the_concurrent_tail_limit() {
    let (_d, store) = open();
    let e = store
        .tail(r#"count_over_time({app="a"}[1m])"#, FAR, 100, 0, no_wake())
        .unwrap_err();
    assert!(
        e.to_string().contains("only supported for log queries"),
        "{e}"
    );
    let e = store
        .tail(r#"{app="a"}"#, FAR, 100, 6, no_wake())
        .unwrap_err();
    assert_eq!(e.to_string(), "delay_for can't be greater than 5");
    assert_eq!(e.http_status(), 400);
    assert!(store.tail(r#"{app="a""#, FAR, 100, 0, no_wake()).is_err());

    let mut open: Vec<Tail> = (0..MAX_CONCURRENT_TAILS)
        .map(|_| store.tail(r#"{app="a"}"#, FAR, 100, 0, no_wake()).unwrap())
        .collect();
    let e = store
        .tail(r#"{app="a"}"#, FAR, 100, 0, no_wake())
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "max concurrent tail requests limit exceeded, count > limit (11 > 10)"
    );
    // Closing a tail frees its place, and pushes stop collecting once none is open.
    open.pop();
    open.push(store.tail(r#"{app="a"}"#, FAR, 100, 0, no_wake()).unwrap());
    assert!(store.core.tail.is_active());
    open.clear();
    assert!(!store.core.tail.is_active());
}

#[test]
fn closing_the_store_closes_its_tails() {
    let (_d, store) = open();
    let wakes = Arc::new(AtomicUsize::new(0));
    let w = wakes.clone();
    let tail = store
        .tail(
            r#"{app="a"}"#,
            FAR,
            100,
            0,
            Box::new(move || {
                w.fetch_add(1, Ordering::SeqCst);
            }),
        )
        .unwrap();
    assert!(!tail.is_closed());
    drop(store);
    assert!(tail.is_closed());
    assert_eq!(wakes.load(Ordering::SeqCst), 1);
}
