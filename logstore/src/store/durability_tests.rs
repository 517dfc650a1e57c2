//! Tests of the store's durability and storage layout: WAL replay after a crash, duplicate
//! suppression (also across replay), time partitions, a damaged partition, retention.

use super::test_support::{manual, push};
use super::*;

const H: i64 = 3_600_000_000_000;

/// Every (ts, line) of `{app=~".+"}` over all time, oldest first.
fn all(store: &LogStore) -> Vec<(i64, String)> {
    let result = store
        .query_range(
            r#"{app=~".+"}"#,
            i64::MIN,
            i64::MAX,
            100_000,
            Direction::Forward,
        )
        .unwrap();
    let mut out: Vec<(i64, String)> = result
        .iter()
        .flat_map(|s| s.entries.iter().map(|e| (e.ts_ns, e.line.clone())))
        .collect();
    out.sort();
    out
}

fn wal_segments(dir: &Path) -> usize {
    std::fs::read_dir(dir.join(WAL_DIR)).unwrap().count()
}

#[test]
fn acknowledged_pushes_survive_a_crash_before_any_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open_with(dir.path(), manual()).unwrap();
    push(&store, "a", &[(1, "one"), (2, "two")]);
    push(&store, "a", &[(3, "three")]);
    store.abandon();

    let store = LogStore::open_with(dir.path(), manual()).unwrap();
    assert_eq!(
        all(&store),
        [(1, "one".into()), (2, "two".into()), (3, "three".into())]
    );
    // Replay committed its entries and trimmed the segments it read.
    assert_eq!(wal_segments(dir.path()), 1);
}

#[test]
fn checkpoint_trims_the_wal_and_a_clean_stop_leaves_nothing_to_replay() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open_with(dir.path(), manual()).unwrap();
    push(&store, "a", &[(1, "one")]);
    store.checkpoint().unwrap();
    assert_eq!(wal_segments(dir.path()), 1);
    push(&store, "a", &[(2, "two")]);
    drop(store);
    assert_eq!(wal_segments(dir.path()), 1);
    let store = LogStore::open_with(dir.path(), manual()).unwrap();
    assert_eq!(all(&store), [(1, "one".into()), (2, "two".into())]);
}

#[test]
fn a_torn_wal_tail_is_cut_and_the_store_opens() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open_with(dir.path(), manual()).unwrap();
    push(&store, "a", &[(1, "kept")]);
    store.abandon();
    let mut segments: Vec<_> = std::fs::read_dir(dir.path().join(WAL_DIR))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    segments.sort();
    let last = segments.last().unwrap();
    let mut bytes = std::fs::read(last).unwrap();
    bytes.extend_from_slice(&[0x40, 0, 0, 0, 1, 2, 3]); // a frame header cut short
    std::fs::write(last, bytes).unwrap();

    let store = LogStore::open_with(dir.path(), manual()).unwrap();
    assert_eq!(all(&store), [(1, "kept".into())]);
}

#[test]
fn identical_entries_are_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open_with(dir.path(), manual()).unwrap();
    let first = push(&store, "a", &[(1, "x"), (1, "x"), (1, "y"), (2, "x")]);
    assert_eq!((first.entries, first.duplicates), (3, 1));
    // Pending (not yet committed) entries are found, and so are committed ones.
    let again = push(&store, "a", &[(1, "x"), (3, "z")]);
    assert_eq!((again.entries, again.duplicates), (1, 1));
    store.checkpoint().unwrap();
    let after_commit = push(&store, "a", &[(1, "y"), (2, "x")]);
    assert_eq!((after_commit.entries, after_commit.duplicates), (0, 2));
    // The same line at the same time in another stream is another entry.
    assert_eq!(push(&store, "b", &[(1, "x")]).entries, 1);
    assert_eq!(all(&store).len(), 5);
}

#[test]
fn replay_of_entries_already_committed_stores_them_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open_with(dir.path(), manual()).unwrap();
    push(&store, "a", &[(1, "committed")]);
    // A query commits to tantivy without trimming the WAL, as when the process dies between
    // a commit and the next checkpoint.
    assert_eq!(all(&store).len(), 1);
    push(&store, "a", &[(2, "pending")]);
    store.abandon();

    let store = LogStore::open_with(dir.path(), manual()).unwrap();
    assert_eq!(
        all(&store),
        [(1, "committed".into()), (2, "pending".into())]
    );
    // And a client retrying an acknowledged push after the crash adds nothing.
    assert_eq!(push(&store, "a", &[(2, "pending")]).duplicates, 1);
    assert_eq!(all(&store).len(), 2);
}

#[test]
fn entries_go_to_hourly_partitions_and_queries_open_only_overlapping_ones() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open_with(dir.path(), manual()).unwrap();
    push(
        &store,
        "a",
        &[
            (10, "h0"),
            (H + 10, "h1"),
            (2 * H + 10, "h2"),
            (2 * H + 20, "h2b"),
        ],
    );
    assert_eq!(store.partitions().unwrap(), 3);
    assert_eq!(store.views(H, 2 * H).unwrap().len(), 1);
    assert_eq!(store.views(H - 1, 2 * H + 1).unwrap().len(), 3);
    assert_eq!(store.views(5 * H, 6 * H).unwrap().len(), 0);
    // Limits and direction carry across partitions.
    let newest = store
        .query_range(r#"{app="a"}"#, 0, 3 * H, 3, Direction::Backward)
        .unwrap();
    let lines: Vec<&str> = newest[0].entries.iter().map(|e| &*e.line).collect();
    assert_eq!(lines, ["h2b", "h2", "h1"]);
    let oldest = store
        .query_range(r#"{app="a"}"#, 0, 3 * H, 2, Direction::Forward)
        .unwrap();
    let lines: Vec<&str> = oldest[0].entries.iter().map(|e| &*e.line).collect();
    assert_eq!(lines, ["h0", "h1"]);
    let count = store
        .instant_query(r#"count_over_time({app="a"}[3h])"#, 3 * H)
        .unwrap();
    assert_eq!(
        count,
        crate::QueryResult::Vector(vec![(Labels::from_pairs([("app", "a")]), 4.0)])
    );
    let stats = store.index_stats(&[], 0, 3 * H).unwrap();
    assert_eq!((stats.streams, stats.entries), (1, 4));
}

#[test]
fn a_corrupted_partition_is_set_aside_and_the_rest_is_served() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = LogStore::open_with(dir.path(), manual()).unwrap();
        push(&store, "a", &[(10, "lost"), (H + 10, "kept")]);
    }
    let damaged = dir.path().join(format!("partitions/0_{H}"));
    for entry in std::fs::read_dir(&damaged).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "idx" || e == "store") {
            std::fs::write(&path, b"garbage").unwrap();
        }
    }
    std::fs::write(damaged.join("meta.json"), b"garbage").unwrap();

    let store = LogStore::open_with(dir.path(), manual()).unwrap();
    assert_eq!(all(&store), [(H + 10, "kept".into())]);
    assert!(dir.path().join(format!("corrupt/0_{H}")).is_dir());
    // The window is recreated empty for new entries.
    push(&store, "a", &[(20, "new")]);
    assert_eq!(all(&store).len(), 2);
}

#[test]
fn retention_deletes_old_partitions_and_keeps_recent_ones() {
    let dir = tempfile::tempdir().unwrap();
    let options = LogStoreOptions {
        retention_time: Some(Duration::from_secs(2 * 3600)),
        ..manual()
    };
    let store = LogStore::open_with(dir.path(), options).unwrap();
    // Far in the past by the real clock: open's own retention pass would delete them, so the
    // test drives retention with its own clock.
    push(
        &store,
        "a",
        &[(10, "h0"), (H + 10, "h1"), (3 * H + 10, "h3")],
    );
    store.checkpoint().unwrap();
    assert_eq!(
        store.apply_retention(3 * H + H / 2).unwrap(),
        [format!("0_{H}")]
    );
    assert_eq!(
        all(&store),
        [(H + 10, "h1".into()), (3 * H + 10, "h3".into())]
    );

    let sized = LogStoreOptions {
        retention_time: None,
        retention_bytes: Some(1),
        ..manual()
    };
    drop(store);
    let store = LogStore::open_with(dir.path(), sized).unwrap();
    // Opening applied the size bound: only the newest partition is left.
    assert_eq!(all(&store), [(3 * H + 10, "h3".into())]);
}

#[test]
fn concurrent_pushes_share_wal_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LogStore::open_with(dir.path(), manual()).unwrap());
    let threads: Vec<_> = (0..8i64)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                for i in 0..25 {
                    push(&store, "a", &[(t * 1000 + i, "x")]);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(all(&store).len(), 200);
    // Each segment creation fsyncs too; a push alone would cost one fsync each.
    assert!(store.wal_fsyncs() < 200, "fsyncs: {}", store.wal_fsyncs());
}

#[test]
fn a_second_store_on_the_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _store = LogStore::open_with(dir.path(), manual()).unwrap();
    let err = LogStore::open_with(dir.path(), manual()).unwrap_err();
    assert!(matches!(err, Error::Locked { .. }), "{err:?}");
}

#[test]
fn a_partition_of_the_previous_layout_is_read_written_and_deduplicated() {
    use crate::schema::{label_terms, Layout};
    let dir = tempfile::tempdir().unwrap();
    let part = dir
        .path()
        .join(crate::partition::PARTITIONS_DIR)
        .join(format!("0_{H}"));
    std::fs::create_dir_all(&part).unwrap();
    {
        // Written as before V3: `ts` and `hash` indexed terms.
        let index = tantivy::Index::create_in_dir(&part, Fields::schema_for(Layout::V2)).unwrap();
        index.tokenizers().register(
            crate::tokens::LINE_TOKENIZER,
            crate::tokens::line_analyzer(),
        );
        let fields = Fields::from_schema(&index.schema()).unwrap();
        let mut writer: tantivy::IndexWriter<tantivy::TantivyDocument> =
            index.writer_with_num_threads(1, 15_000_000).unwrap();
        let labels = Labels::from_pairs([("app", "a")]);
        let (stream, terms) = (labels.to_string(), label_terms(&labels));
        for (ts, line) in [(1, "old one"), (2, "old two")] {
            let e = model::LogEntry {
                ts_ns: ts,
                line: line.into(),
                metadata: vec![],
            };
            let hash = crate::dedup::entry_hash(&stream, ts, line);
            writer
                .add_document(fields.document(&stream, &terms, &e, hash).unwrap())
                .unwrap();
        }
        writer.commit().unwrap();
    }
    let store = LogStore::open_with(dir.path(), manual()).unwrap();
    assert_eq!(store.partitions().unwrap(), 1, "the V2 partition is served");
    assert_eq!(all(&store), [(1, "old one".into()), (2, "old two".into())]);
    // Its entries are found as duplicates through its indexed hashes; new ones go in.
    let again = push(&store, "a", &[(1, "old one"), (3, "new")]);
    assert_eq!((again.entries, again.duplicates), (1, 1));
    // A new partition gets the current layout; both answer, with time ranges on either.
    push(&store, "a", &[(H + 1, "next hour")]);
    store.checkpoint().unwrap();
    assert_eq!(all(&store).len(), 4);
    let views = store.views(0, 2 * H).unwrap();
    let layouts: Vec<_> = views
        .iter()
        .map(|v| Layout::of(v.searcher.schema()))
        .collect();
    assert_eq!(layouts, [Some(Layout::V2), Some(Layout::CURRENT)]);
    let in_range = store
        .query_range(r#"{app="a"}"#, 2, H + 2, 100, Direction::Forward)
        .unwrap();
    let lines: Vec<&str> = in_range
        .iter()
        .flat_map(|s| s.entries.iter().map(|e| e.line.as_str()))
        .collect();
    assert_eq!(lines, ["old two", "new", "next hour"]);
    drop(store);
    let store = LogStore::open_with(dir.path(), manual()).unwrap();
    let retry = push(
        &store,
        "a",
        &[(2, "old two"), (3, "new"), (H + 1, "next hour")],
    );
    assert_eq!(
        (retry.entries, retry.duplicates),
        (0, 3),
        "after a restart too"
    );
}
