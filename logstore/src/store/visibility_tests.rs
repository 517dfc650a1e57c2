//! Tests of what queries see of entries not yet committed to tantivy: every acknowledged push,
//! exactly once, merged in time order with the committed entries, without a query ever
//! committing.

use super::test_support::{manual, push};
use super::*;
use crate::{QueryResult, RangeParams, VolumeRequest};
use std::sync::atomic::{AtomicBool, Ordering};

fn lines(store: &LogStore, query: &str, limit: usize, dir: Direction) -> Vec<(i64, String)> {
    let mut out: Vec<(i64, String)> = store
        .query_range(query, 0, 1000, limit, dir)
        .unwrap()
        .iter()
        .flat_map(|s| s.entries.iter().map(|e| (e.ts_ns, e.line.clone())))
        .collect();
    match dir {
        Direction::Forward => out.sort(),
        Direction::Backward => out.sort_by(|a, b| b.cmp(a)),
    }
    out
}

/// Every answer a query can give about the store, for comparing before and after a commit.
fn answers(store: &LogStore) -> Vec<String> {
    let sel = vec![Matcher::new(MatchOp::Regex, "app", ".+").unwrap()];
    let range = RangeParams {
        start_ns: 0,
        end_ns: 1000,
        step_ns: 100,
        limit: 1000,
        direction: Direction::Forward,
    };
    let volume = VolumeRequest {
        matchers: sel.clone(),
        start_ns: 0,
        end_ns: 1000,
        target_labels: vec![],
        by: crate::VolumeBy::Series,
        limit: 100,
    };
    vec![
        format!(
            "{:?}",
            lines(store, r#"{app=~".+"} |= "e""#, 3, Direction::Backward)
        ),
        format!(
            "{:?}",
            lines(store, r#"{app=~".+"}"#, 1000, Direction::Forward)
        ),
        format!(
            "{:?}",
            store.range_query(
                r#"sum by (app) (count_over_time({app=~".+"} != "x" [100ns]))"#,
                range
            )
        ),
        format!(
            "{:?}",
            store.instant_query(r#"bytes_over_time({app=~".+"}[1000ns])"#, 999)
        ),
        format!("{:?}", store.label_values("app", &[], 0, 1000)),
        format!("{:?}", store.label_names(&sel, 0, 1000)),
        format!("{:?}", store.series(std::slice::from_ref(&sel), 0, 1000)),
        format!("{:?}", store.index_stats(&sel, 0, 1000)),
        format!("{:?}", store.volume(&volume)),
    ]
}

#[test]
fn queries_see_pending_entries_without_committing() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open_with(dir.path(), manual()).unwrap();
    let commits = store.index_commits().unwrap();
    push(&store, "api", &[(10, "one"), (30, "three")]);
    push(&store, "db", &[(20, "two")]);
    assert_eq!(store.pending_entries().unwrap(), 3);
    let before = answers(&store);
    assert_eq!(
        store.index_commits().unwrap(),
        commits,
        "no query may commit"
    );
    assert_eq!(store.pending_entries().unwrap(), 3);
    assert!(before[1].contains("one") && before[1].contains("two") && before[1].contains("three"));
    assert_eq!(
        store
            .instant_query(r#"count_over_time({app="api"}[1000ns])"#, 999)
            .unwrap(),
        QueryResult::Vector(vec![(Labels::from_pairs([("app", "api")]), 2.0)])
    );
    // Once committed, every answer is the same.
    store.checkpoint().unwrap();
    assert_eq!(store.pending_entries().unwrap(), 0);
    assert!(store.index_commits().unwrap() > commits);
    assert_eq!(answers(&store), before);
}

#[test]
fn pending_and_committed_entries_merge_in_time_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open_with(dir.path(), manual()).unwrap();
    push(
        &store,
        "a",
        &[(10, "c10 e"), (30, "c30"), (50, "c50 e"), (70, "c70")],
    );
    store.checkpoint().unwrap();
    push(
        &store,
        "a",
        &[(20, "p20"), (40, "p40 e"), (60, "p60"), (80, "p80 e")],
    );
    // A duplicate of a committed entry and one of a pending entry are both suppressed.
    push(&store, "a", &[(30, "c30"), (40, "p40 e")]);
    assert_eq!(store.pending_entries().unwrap(), 4);
    let ts = |v: Vec<(i64, String)>| v.into_iter().map(|(t, _)| t).collect::<Vec<_>>();
    assert_eq!(
        ts(lines(&store, r#"{app="a"}"#, 5, Direction::Forward)),
        [10, 20, 30, 40, 50]
    );
    assert_eq!(
        ts(lines(&store, r#"{app="a"}"#, 5, Direction::Backward)),
        [80, 70, 60, 50, 40]
    );
    // A filter drops entries on both sides; the limit counts what it keeps.
    assert_eq!(
        ts(lines(&store, r#"{app="a"} |= "e""#, 3, Direction::Backward)),
        [80, 50, 40]
    );
    assert_eq!(
        ts(lines(&store, r#"{app="a"} |= "e""#, 2, Direction::Forward)),
        [10, 40]
    );
    assert_eq!(
        ts(lines(&store, r#"{app="a"}"#, 100, Direction::Forward)).len(),
        8
    );
    // A stream that only has pending entries is found although the index has no term for it.
    push(&store, "new", &[(5, "fresh")]);
    assert_eq!(
        lines(&store, r#"{app="new"}"#, 10, Direction::Forward),
        [(5, "fresh".to_string())]
    );
}

/// Read-your-writes while another writer keeps the store busy and the background thread
/// commits every 20 ms: each line is visible as soon as its push returns, and is
/// counted exactly once whether it is pending or committed when the query runs.
#[test]
fn read_your_writes_under_concurrent_ingest() {
    let dir = tempfile::tempdir().unwrap();
    let options = LogStoreOptions {
        commit_interval: Duration::from_millis(20),
        ..LogStoreOptions::default()
    };
    let store = std::sync::Arc::new(LogStore::open_with(dir.path(), options).unwrap());
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let writer = {
        let (store, stop) = (store.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0i64;
            while !stop.load(Ordering::Relaxed) {
                let batch: Vec<(i64, String)> = (0..50)
                    .map(|i| (n * 50 + i + 1, format!("bg {n} {i}")))
                    .collect();
                let refs: Vec<(i64, &str)> = batch.iter().map(|(t, l)| (*t, l.as_str())).collect();
                push(&store, "bg", &refs);
                n += 1;
            }
            n
        })
    };
    let commits = store.index_commits().unwrap();
    for i in 0..40i64 {
        let marker = format!("marker-{i}");
        // Timestamps from 1: the count's window, (0, 1h], leaves 0 out.
        push(&store, "me", &[(i + 1, &marker)]);
        let q = format!(r#"{{app="me"}} |= "{marker}""#);
        let got = store
            .query_range(&q, 0, i64::MAX, 10, Direction::Backward)
            .unwrap();
        assert_eq!(got.len(), 1, "{marker} visible once its push returned");
        assert_eq!(got[0].entries.len(), 1, "{marker} seen exactly once");
        let total = store
            .instant_query(r#"count_over_time({app="me"}[1h])"#, 3_600_000_000_000)
            .unwrap();
        assert_eq!(
            total,
            QueryResult::Vector(vec![(Labels::from_pairs([("app", "me")]), (i + 1) as f64)]),
            "after marker {i}"
        );
    }
    stop.store(true, Ordering::Relaxed);
    let batches = writer.join().unwrap();
    assert!(
        store.index_commits().unwrap() > commits,
        "the background thread committed during the test"
    );
    let bg = store
        .instant_query(r#"count_over_time({app="bg"}[1h])"#, 3_600_000_000_000)
        .unwrap();
    assert_eq!(
        bg,
        QueryResult::Vector(vec![(
            Labels::from_pairs([("app", "bg")]),
            (batches * 50) as f64
        )])
    );
}
