//! The store with blocks: cuts shrinking head and WAL, queries across blocks and head,
//! restarts, compaction levels, damaged blocks moved aside, and retention.

use super::*;
use crate::block::{writer, Compaction};
use model::{Labels, MatchOp, Matcher, Querier, Sample};
use std::sync::atomic::{AtomicBool, Ordering};

/// Options for tests: a block range of `range_ms`, no background worker (tests call
/// `compact` themselves), small WAL segments so cuts have segments to delete.
fn options(range_ms: u64) -> TsdbOptions {
    TsdbOptions {
        wal_segment_bytes: 4096,
        block_range: Duration::from_millis(range_ms),
        retention: Retention {
            time: None,
            size_bytes: None,
        },
        compaction_interval: None,
        ..TsdbOptions::default()
    }
}

/// A store that cuts and compacts after every append, so the conformance suite's data
/// lands in blocks as soon as the head spans enough.
struct Compacting {
    db: Tsdb,
    _dir: tempfile::TempDir,
}

impl Compacting {
    fn new() -> Compacting {
        let dir = tempfile::tempdir().unwrap();
        let db = Tsdb::open(dir.path(), options(100)).unwrap();
        Compacting { db, _dir: dir }
    }
}

impl Querier for Compacting {
    fn select(&self, a: i64, b: i64, m: &[Matcher]) -> Result<Vec<Series>, StorageError> {
        self.db.select(a, b, m)
    }
    fn series(&self, a: i64, b: i64, m: &[Matcher]) -> Result<Vec<Labels>, StorageError> {
        self.db.series(a, b, m)
    }
    fn label_names(&self, a: i64, b: i64, m: &[Matcher]) -> Result<Vec<String>, StorageError> {
        self.db.label_names(a, b, m)
    }
    fn label_values(
        &self,
        n: &str,
        a: i64,
        b: i64,
        m: &[Matcher],
    ) -> Result<Vec<String>, StorageError> {
        self.db.label_values(n, a, b, m)
    }
}

impl Appender for Compacting {
    fn append(&self, batch: &[Series]) -> Result<AppendOutcome, AppendError> {
        let out = self.db.append(batch)?;
        self.db
            .compact()
            .map_err(|e| AppendError::Other(e.to_string()))?;
        Ok(out)
    }
}

#[test]
fn tsdb_with_tiny_blocks_passes_conformance() {
    model::conformance::run_all(Compacting::new);
}

/// Series `i` of `jobs` jobs, one sample every `step` ms over `ts`.
fn data(n: usize, ts: std::ops::Range<i64>, step: usize) -> Vec<Series> {
    (0..n)
        .map(|i| Series {
            labels: Labels::from_pairs([
                ("__name__", "m".to_string()),
                ("i", i.to_string()),
                ("job", format!("j{}", i % 2)),
            ]),
            samples: ts
                .clone()
                .step_by(step)
                .map(|t| Sample {
                    t,
                    v: (t / 10) as f64,
                })
                .collect(),
        })
        .collect()
}

fn all(db: &Tsdb) -> Vec<Series> {
    let m = Matcher::new(MatchOp::Regex, "__name__", ".+").unwrap();
    db.select(i64::MIN, i64::MAX, &[m]).unwrap()
}

fn wal_segments(dir: &Path) -> usize {
    crate::wal::segment_paths(&dir.join("wal")).len()
}

#[test]
fn the_conformance_data_spans_blocks_and_head() {
    // The suite's largest fixture: 1000 series with one sample each at t = 0..1000.
    let store = Compacting::new();
    let fixture: Vec<Series> = (0..1000)
        .map(|i: i64| Series {
            labels: Labels::from_pairs([("i", i.to_string())]),
            samples: vec![Sample { t: i, v: 1.0 }],
        })
        .collect();
    for chunk in fixture.chunks(100) {
        store.append(chunk).unwrap();
    }
    let levels: Vec<(i64, i64, u32)> = store
        .db
        .blocks()
        .iter()
        .map(|m| (m.min_time, m.max_time, m.compaction.level))
        .collect();
    // Nine 100 ms blocks were cut and compacted twice; the head kept [900, 1000).
    assert_eq!(levels, [(0, 900, 3)]);
    assert_eq!(store.db.num_series(), 100, "the head holds only t >= 900");
    assert_eq!(store.select(250, 749, &[]).unwrap().len(), 500);
}

#[test]
fn a_cut_moves_old_samples_to_a_block_and_shrinks_head_and_wal() {
    let dir = tempfile::tempdir().unwrap();
    let db = Tsdb::open(dir.path(), options(1000)).unwrap();
    // 20 series over [0, 1000); 10 of them carry on to 2400. Appended 100 ms at a time,
    // as a scraper would, so the WAL has many segments.
    for start in (0..2400).step_by(100) {
        let n = if start < 1000 { 20 } else { 10 };
        db.append(&data(n, start..start + 100, 10)).unwrap();
    }
    let want = all(&db);
    let (series_before, segments_before) = (db.num_series(), wal_segments(dir.path()));
    assert!(segments_before > 3, "{segments_before} segments");

    db.compact().unwrap();
    let blocks = db.blocks();
    assert_eq!(blocks.len(), 1);
    let b = &blocks[0];
    assert_eq!((b.min_time, b.max_time, b.compaction.level), (0, 1000, 1));
    assert_eq!((b.stats.num_series, b.stats.num_samples), (20, 20 * 100));
    assert_eq!(b.compaction.sources, std::slice::from_ref(&b.ulid));
    assert!(dir.path().join(&b.ulid).join("chunks/000001").is_file());

    assert_eq!((series_before, db.num_series()), (20, 10));
    assert_eq!(db.num_samples(), 10 * 140);
    assert_eq!(db.inner.head.min_time(), Some(1000));
    let segments_after = wal_segments(dir.path());
    assert!(
        segments_after < segments_before,
        "{segments_before} -> {segments_after} WAL segments"
    );
    assert_eq!(all(&db), want, "every sample once, from block and head");
    let job = Matcher::new(MatchOp::Equal, "job", "j1").unwrap();
    assert_eq!(db.select(990, 1010, &[job]).unwrap().len(), 10);
    assert_eq!(db.series(0, 999, &[]).unwrap().len(), 20);
    assert_eq!(db.series(1000, 2000, &[]).unwrap().len(), 10);
    assert_eq!(db.label_values("i", 0, 500, &[]).unwrap().len(), 20);

    // The block's window is closed: a late sample in it is refused, as out of order.
    let late = data(1, 999..1000, 1);
    assert_eq!(db.append(&late).unwrap().out_of_order, 1);

    drop(db);
    let db = Tsdb::open(dir.path(), options(1000)).unwrap();
    assert_eq!(all(&db), want, "the same answers after a restart");
    assert_eq!(db.num_series(), 10, "no series resurrected from the WAL");
    assert_eq!(db.blocks().len(), 1);
}

#[test]
fn compaction_merges_three_aligned_blocks_per_level() {
    let dir = tempfile::tempdir().unwrap();
    let db = Tsdb::open(dir.path(), options(1000)).unwrap();
    for start in (0..30_000).step_by(1000) {
        db.append(&data(4, start..start + 1000, 50)).unwrap();
    }
    let want = all(&db);
    db.compact().unwrap();
    let levels: Vec<(i64, i64, u32)> = db
        .blocks()
        .iter()
        .map(|m| (m.min_time, m.max_time, m.compaction.level))
        .collect();
    assert_eq!(
        levels,
        [
            (0, 9000, 3),
            (9000, 18000, 3),
            (18000, 27000, 3),
            (27000, 28000, 1),
            (28000, 29000, 1)
        ]
    );
    let first = &db.blocks()[0];
    assert_eq!(first.compaction.sources.len(), 9);
    assert_eq!(first.compaction.parents.len(), 3);
    assert_eq!(first.stats.num_samples, 4 * 9000 / 50);
    assert_eq!(all(&db), want);
    let dirs = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(
        dirs,
        5 + 2,
        "five blocks, wal and lock: the parents are gone"
    );
}

#[test]
fn parents_left_by_a_crash_after_compaction_are_deleted_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let saved = tempfile::tempdir().unwrap();
    let want = {
        let db = Tsdb::open(dir.path(), options(1000)).unwrap();
        for start in (0..4_000).step_by(1000) {
            db.append(&data(3, start..start + 1000, 100)).unwrap();
        }
        // Cuts [0,1000), [1000,2000), [2000,3000), then compacts them into one.
        db.compact().unwrap();
        let want = all(&db);
        assert_eq!(db.blocks()[0].compaction.level, 2);
        for p in &db.blocks()[0].compaction.parents {
            // The parents are gone; recreate them as a crash before deletion would leave
            // them, by writing the same data again under the parents' names.
            let series: Vec<(Labels, Vec<Sample>)> = want
                .iter()
                .map(|s| {
                    let samples = s
                        .samples
                        .iter()
                        .filter(|x| p.min_time <= x.t && x.t < p.max_time)
                        .copied()
                        .collect();
                    (s.labels.clone(), samples)
                })
                .collect();
            let new = writer::NewBlock {
                ulid: p.ulid.clone(),
                min_time: p.min_time,
                max_time: p.max_time,
                compaction: Compaction {
                    level: 1,
                    sources: vec![p.ulid.clone()],
                    parents: Vec::new(),
                },
            };
            writer::write(saved.path(), new, series.into_iter().map(Ok))
                .unwrap()
                .unwrap();
        }
        want
    };
    for entry in std::fs::read_dir(saved.path()).unwrap() {
        let entry = entry.unwrap();
        std::fs::rename(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    let db = Tsdb::open(dir.path(), options(1000)).unwrap();
    assert_eq!(db.blocks().len(), 1, "the parents were deleted");
    assert_eq!(all(&db), want, "no sample twice");
}

#[test]
fn blocks_that_fail_their_checks_are_moved_aside() {
    let dir = tempfile::tempdir().unwrap();
    let opts = TsdbOptions {
        block_range: Duration::from_millis(1000),
        ..options(1000)
    };
    let ulids: Vec<String> = {
        let db = Tsdb::open(dir.path(), opts.clone()).unwrap();
        for start in (0..5_000).step_by(1000) {
            db.append(&data(3, start..start + 1000, 100)).unwrap();
            // Cut as we go, so no three blocks are there to compact.
            db.inner.cut_head().unwrap();
        }
        db.blocks().into_iter().map(|m| m.ulid).collect()
    };
    assert!(ulids.len() >= 4, "{ulids:?}");
    let block = |i: usize| dir.path().join(&ulids[i]);
    // A flipped byte in a chunk file, a missing index, a truncated meta.json.
    let chunk = block(0).join("chunks/000001");
    let mut bytes = std::fs::read(&chunk).unwrap();
    bytes[40] ^= 0x01;
    std::fs::write(&chunk, bytes).unwrap();
    std::fs::remove_file(block(1).join("index")).unwrap();
    let meta = std::fs::read(block(2).join("meta.json")).unwrap();
    std::fs::write(block(2).join("meta.json"), &meta[..20]).unwrap();

    let db = Tsdb::open(dir.path(), opts).unwrap();
    let kept: Vec<String> = db.blocks().into_iter().map(|m| m.ulid).collect();
    assert_eq!(kept, ulids[3..]);
    for u in &ulids[..3] {
        assert!(
            dir.path().join("corrupted").join(u).is_dir(),
            "{u} moved aside"
        );
    }
    // What the good blocks and the head hold is still there.
    let from = db.blocks()[0].min_time;
    let got = all(&db);
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|s| s.samples[0].t == from));
}

#[test]
fn retention_deletes_the_oldest_blocks_by_time_and_by_size() {
    let dir = tempfile::tempdir().unwrap();
    let db = Tsdb::open(dir.path(), options(1000)).unwrap();
    for start in (0..6_000).step_by(1000) {
        db.append(&data(3, start..start + 1000, 10)).unwrap();
        db.inner.cut_head().unwrap();
    }
    let before = db.blocks();
    assert_eq!(before.len(), 6, "[0,1000) .. [5000,6000)");
    drop(db);

    // Newest sample 5990: a 3s retention keeps blocks with samples after 2990.
    let by_time = TsdbOptions {
        retention: Retention {
            time: Some(Duration::from_secs(3)),
            size_bytes: None,
        },
        ..options(1000)
    };
    let db = Tsdb::open(dir.path(), by_time).unwrap();
    db.inner.apply_retention().unwrap();
    let left: Vec<i64> = db.blocks().iter().map(|m| m.min_time).collect();
    assert_eq!(left, [2000, 3000, 4000, 5000]);
    assert!(!dir.path().join(&before[0].ulid).exists());
    assert_eq!(all(&db)[0].samples[0].t, 2000);
    let size = db.disk_size();
    drop(db);

    // A limit just under the current size deletes exactly the oldest block.
    let by_size = TsdbOptions {
        retention: Retention {
            time: None,
            size_bytes: Some(size - 1),
        },
        ..options(1000)
    };
    let db = Tsdb::open(dir.path(), by_size).unwrap();
    db.inner.apply_retention().unwrap();
    let left: Vec<i64> = db.blocks().iter().map(|m| m.min_time).collect();
    assert_eq!(left, [3000, 4000, 5000]);
    assert!(db.disk_size() < size);
}

#[test]
fn appends_and_queries_racing_cuts_lose_and_repeat_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = Tsdb::open(dir.path(), options(200)).unwrap();
    const WRITERS: usize = 3;
    const STEPS: i64 = 400;
    let done = AtomicBool::new(false);
    // Writers move through time in step, as scrapers do: a writer far behind the others
    // would (rightly) have its samples refused once a cut closed their window.
    let step = std::sync::Barrier::new(WRITERS);
    std::thread::scope(|scope| {
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (db, step) = (&db, &step);
                scope.spawn(move || {
                    for t in 0..STEPS {
                        step.wait();
                        let batch: Vec<Series> = (0..5)
                            .map(|i| Series {
                                labels: Labels::from_pairs([
                                    ("w", w.to_string()),
                                    ("i", i.to_string()),
                                ]),
                                samples: vec![Sample {
                                    t: t * 5,
                                    v: t as f64,
                                }],
                            })
                            .collect();
                        let out = db.append(&batch).unwrap();
                        assert_eq!(out.appended, 5, "writer {w} at {t}");
                    }
                })
            })
            .collect();
        let compactor = scope.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                db.compact().unwrap();
                for s in db.select(i64::MIN, i64::MAX, &[]).unwrap() {
                    assert!(s.samples.windows(2).all(|p| p[0].t < p[1].t));
                }
            }
        });
        let failed = writers.into_iter().any(|h| h.join().is_err());
        done.store(true, Ordering::Relaxed);
        assert!(compactor.join().is_ok() && !failed, "a thread failed");
    });
    db.compact().unwrap();
    assert!(!db.blocks().is_empty());
    let got = db.select(i64::MIN, i64::MAX, &[]).unwrap();
    assert_eq!(got.len(), WRITERS * 5);
    let want: Vec<i64> = (0..STEPS).map(|t| t * 5).collect();
    for s in got {
        let times: Vec<i64> = s.samples.iter().map(|x| x.t).collect();
        assert_eq!(times, want, "{}", s.labels);
    }
}
