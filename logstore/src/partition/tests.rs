//! Tests of partition routing, opening with damage, and retention, on real directories.

use super::*;

const H: i64 = 3_600_000_000_000;

fn starts(p: &Partitions) -> Vec<(i64, i64)> {
    p.parts.values().map(|p| (p.start, p.end)).collect()
}

#[test]
fn entries_route_to_aligned_windows_created_on_demand() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = Partitions::open(dir.path(), H).unwrap();
    assert_eq!(p.route(H + 5).unwrap(), H);
    assert_eq!(p.route(2 * H - 1).unwrap(), H);
    assert_eq!(p.route(-1).unwrap(), -H);
    assert_eq!(starts(&p), [(-H, 0), (H, 2 * H)]);
    assert!(dir
        .path()
        .join("partitions")
        .join(format!("{H}_{}", 2 * H))
        .is_dir());
}

#[test]
fn a_changed_window_never_creates_overlapping_partitions() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut p = Partitions::open(dir.path(), H).unwrap();
        p.route(H + 1).unwrap(); // [1h, 2h)
    }
    // Reopened with 3 h windows: [0, 3h) would overlap [1h, 2h), so it is clipped around it.
    let mut p = Partitions::open(dir.path(), 3 * H).unwrap();
    assert_eq!(p.route(H / 2).unwrap(), 0);
    assert_eq!(p.route(H + 7).unwrap(), H);
    assert_eq!(p.route(2 * H + 1).unwrap(), 2 * H);
    assert_eq!(starts(&p), [(0, H), (H, 2 * H), (2 * H, 3 * H)]);
}

#[test]
fn a_partition_that_fails_to_open_is_moved_aside() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut p = Partitions::open(dir.path(), H).unwrap();
        p.route(1).unwrap();
        p.route(H + 1).unwrap();
    }
    let damaged = dir.path().join("partitions").join(format!("0_{H}"));
    std::fs::write(damaged.join("meta.json"), b"{ not json").unwrap();
    // Leftovers of a creation cut short and stray files are not partitions.
    std::fs::create_dir(dir.path().join("partitions/.new-5_6")).unwrap();
    std::fs::write(dir.path().join("partitions/README"), b"x").unwrap();

    let p = Partitions::open(dir.path(), H).unwrap();
    assert_eq!(starts(&p), [(H, 2 * H)]);
    assert!(!damaged.exists());
    assert!(dir
        .path()
        .join("corrupt")
        .join(format!("0_{H}"))
        .join("meta.json")
        .exists());
    assert!(!dir.path().join("partitions/.new-5_6").exists());
}

#[test]
fn overlapping_partitions_on_disk_keep_the_first() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut p = Partitions::open(dir.path(), H).unwrap();
        p.route(1).unwrap();
    }
    {
        let mut p = Partitions::open(dir.path().join("other").as_path(), 2 * H).unwrap();
        p.route(1).unwrap();
    }
    std::fs::rename(
        dir.path().join(format!("other/partitions/0_{}", 2 * H)),
        dir.path().join(format!("partitions/0_{}", 2 * H)),
    )
    .unwrap();
    let p = Partitions::open(dir.path(), H).unwrap();
    assert_eq!(starts(&p), [(0, H)]);
    assert!(dir.path().join(format!("corrupt/0_{}", 2 * H)).exists());
}

#[test]
fn retention_deletes_whole_partitions_by_age_then_size() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = Partitions::open(dir.path(), H).unwrap();
    for h in 0..4 {
        p.route(h * H).unwrap();
    }
    // At 4h, keeping 2h deletes [0,1h) and [1h,2h), whose ends are at or before 2h.
    let removed = p.apply_retention(4 * H, Some(2 * H), None).unwrap();
    assert_eq!(removed, [format!("0_{H}"), format!("{H}_{}", 2 * H)]);
    assert_eq!(starts(&p), [(2 * H, 3 * H), (3 * H, 4 * H)]);
    assert!(!dir.path().join(format!("partitions/0_{H}")).exists());

    // A bound of one byte deletes all but the newest partition.
    let removed = p.apply_retention(4 * H, None, Some(1)).unwrap();
    assert_eq!(removed, [format!("{}_{}", 2 * H, 3 * H)]);
    assert_eq!(starts(&p), [(3 * H, 4 * H)]);
    // A generous bound deletes nothing.
    assert!(p
        .apply_retention(4 * H, None, Some(1 << 40))
        .unwrap()
        .is_empty());
}

/// After a merge the writer finished on its own, the next checkpoint's pass replaces the
/// searcher, which otherwise keeps the merged-away segments open until the next commit.
#[test]
fn the_reader_follows_merges_finished_after_the_last_commit() {
    use crate::document::{EntryDoc, StreamDoc};
    use crate::schema::Fields;
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let mut parts = Partitions::open(dir.path(), H).unwrap();
    let start = parts.route(1).unwrap();
    let p = parts.get_mut(start).unwrap();
    let fields = Fields::from_schema(&p.index.schema()).unwrap();
    let stream = Arc::new(StreamDoc::new(&model::Labels::from_pairs([("app", "a")])));
    let ids = |p: &Partition| -> std::collections::BTreeSet<_> {
        p.index
            .searchable_segment_ids()
            .unwrap()
            .into_iter()
            .collect()
    };
    let held = |p: &Partition| -> std::collections::BTreeSet<_> {
        let searcher = p.reader.searcher();
        searcher
            .segment_readers()
            .iter()
            .map(|r| r.segment_id())
            .collect()
    };
    // One segment per commit; tantivy's log merge policy merges eight of them, in the
    // background: commit until a merge is seen to finish after the commit that started it.
    let mut stale = false;
    for i in 0..64 {
        let entry = model::LogEntry {
            ts_ns: i + 1,
            line: format!("line {i}"),
            metadata: vec![],
        };
        let line = entry.line.as_str().into();
        let doc = EntryDoc::new(fields, stream.clone(), &entry, line, i as u64).unwrap();
        p.add(vec![doc]).map_err(|(_, e)| e).unwrap();
        p.commit().unwrap();
        let until = std::time::Instant::now() + std::time::Duration::from_millis(200);
        while !stale && std::time::Instant::now() < until {
            stale = ids(p) != held(p);
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        if stale {
            break;
        }
    }
    assert!(stale, "no merge finished after a commit");
    let docs = p.reader.searcher().num_docs();
    parts.close_idle_writers();
    let p = parts.get_mut(start).unwrap();
    assert_eq!(held(p), ids(p), "the searcher has the merged segments");
    assert_eq!(p.reader.searcher().num_docs(), docs, "the same entries");
}
