//! The durable store end to end in-process: the shared storage suite, restarts, WAL damage
//! and WAL write failures.

use super::*;
use model::{Labels, MatchOp, Matcher, Querier, Sample, STALE_NAN_BITS};
use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};

/// A store in its own temp dir, for the conformance suite's fresh-store-per-check.
struct TempTsdb {
    db: Tsdb,
    _dir: tempfile::TempDir,
}

impl TempTsdb {
    fn new() -> TempTsdb {
        let dir = tempfile::tempdir().unwrap();
        let db = Tsdb::open(dir.path(), TsdbOptions::default()).unwrap();
        TempTsdb { db, _dir: dir }
    }
}

impl Querier for TempTsdb {
    fn select(&self, mint: i64, maxt: i64, m: &[Matcher]) -> Result<Vec<Series>, StorageError> {
        self.db.select(mint, maxt, m)
    }
    fn series(&self, mint: i64, maxt: i64, m: &[Matcher]) -> Result<Vec<Labels>, StorageError> {
        self.db.series(mint, maxt, m)
    }
    fn label_names(
        &self,
        mint: i64,
        maxt: i64,
        m: &[Matcher],
    ) -> Result<Vec<String>, StorageError> {
        self.db.label_names(mint, maxt, m)
    }
    fn label_values(
        &self,
        name: &str,
        mint: i64,
        maxt: i64,
        m: &[Matcher],
    ) -> Result<Vec<String>, StorageError> {
        self.db.label_values(name, mint, maxt, m)
    }
}

impl Appender for TempTsdb {
    fn append(&self, batch: &[Series]) -> Result<AppendOutcome, AppendError> {
        self.db.append(batch)
    }

    fn append_batch(&self, batch: &SeriesBatch<'_>) -> Result<AppendOutcome, AppendError> {
        self.db.append_batch(batch)
    }
}

fn batch(job: &str, n_series: usize, ts: std::ops::Range<i64>) -> Vec<Series> {
    (0..n_series)
        .map(|i| Series {
            labels: Labels::from_pairs([
                ("__name__", "m".to_string()),
                ("job", job.to_string()),
                ("i", i.to_string()),
            ]),
            samples: ts
                .clone()
                .map(|t| Sample {
                    t: t * 1000,
                    v: (t * i as i64) as f64 / 100.0,
                })
                .collect(),
        })
        .collect()
}

/// Everything in the store, as comparable bits.
fn dump(db: &Tsdb) -> Vec<(String, Vec<(i64, u64)>)> {
    let all = Matcher::new(MatchOp::Regex, "__name__", ".+").unwrap();
    db.select(i64::MIN, i64::MAX, &[all])
        .unwrap()
        .into_iter()
        .map(|s| {
            let bits = s.samples.iter().map(|x| (x.t, x.v.to_bits())).collect();
            (s.labels.to_string(), bits)
        })
        .collect()
}

fn open(dir: &Path) -> Tsdb {
    Tsdb::open(dir, TsdbOptions::default()).unwrap()
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    crate::wal::segment_paths(&dir.join("wal"))
}

#[test]
fn tsdb_passes_conformance() {
    model::conformance::run_all(TempTsdb::new);
}

#[test]
fn tsdb_passes_conformance_through_append_batch() {
    model::conformance::run_all(|| model::conformance::ViaBatch(TempTsdb::new()));
}

#[test]
fn series_created_from_borrowed_labels_are_logged_and_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let first = batch("a", 20, 0..3);
    let second = batch("a", 30, 3..5);
    let want = {
        let db = Tsdb::open(dir.path(), TsdbOptions::default()).unwrap();
        db.append_batch(&SeriesBatch::from_series(&first)).unwrap();
        // Ten known series found by their bytes, ten new ones created.
        let out = db.append_batch(&SeriesBatch::from_series(&second)).unwrap();
        assert_eq!(out.appended, 60);
        assert_eq!(db.head().num_series(), 30);
        dump(&db)
    };
    let db = Tsdb::open(dir.path(), TsdbOptions::default()).unwrap();
    assert_eq!(dump(&db), want);
    // Owned appends after replay land in the same series.
    db.append(&batch("a", 30, 5..6)).unwrap();
    assert_eq!(db.head().num_series(), 30);
}

#[test]
fn acknowledged_samples_survive_reopen_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let special = Series {
        labels: Labels::from_pairs([("__name__", "special")]),
        samples: [
            f64::from_bits(STALE_NAN_BITS),
            -0.0,
            f64::INFINITY,
            f64::from_bits(0x7ff8_0000_0000_0bad),
        ]
        .iter()
        .enumerate()
        .map(|(i, &v)| Sample { t: i as i64, v })
        .collect(),
    };
    let before = {
        let db = open(dir.path());
        db.append(&[special]).unwrap();
        for k in 0..5 {
            // 5 × 100 samples per series: several closed chunks and an open one.
            db.append(&batch("a", 20, k * 100..(k + 1) * 100)).unwrap();
        }
        db.append(&batch("b", 3, 0..1)).unwrap();
        let d = dump(&db);
        assert_eq!((db.num_series(), db.num_samples()), (24, 4 + 20 * 500 + 3));
        d
    };
    let db = open(dir.path());
    assert_eq!(dump(&db), before);
    assert_eq!((db.num_series(), db.num_samples()), (24, 4 + 20 * 500 + 3));
    assert_eq!((db.min_time(), db.max_time()), (Some(0), Some(499_000)));
    assert_eq!(db.replay_stats().repaired, 0);
    // Appends continue where the replayed series left off.
    let out = db.append(&batch("a", 20, 499..501)).unwrap();
    assert_eq!((out.appended, out.duplicate_timestamp), (20, 0));
}

#[test]
fn small_segments_rotate_and_each_replays_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let opts = TsdbOptions {
        wal_segment_bytes: 1024,
        ..TsdbOptions::default()
    };
    let before = {
        let db = Tsdb::open(dir.path(), opts.clone()).unwrap();
        for k in 0..40 {
            db.append(&batch("a", 10, k * 3..(k + 1) * 3)).unwrap();
        }
        dump(&db)
    };
    assert!(segments(dir.path()).len() > 5, "{:?}", segments(dir.path()));
    // Drop the first segment, where every series record was first written: later segments
    // carry their own series records, so their samples still replay.
    std::fs::remove_file(&segments(dir.path())[0]).unwrap();
    let db = Tsdb::open(dir.path(), opts).unwrap();
    let after = dump(&db);
    assert_eq!(after.len(), 10);
    for ((l1, s1), (l2, s2)) in before.iter().zip(&after) {
        assert_eq!(l1, l2);
        assert!(
            s2.len() > 90 && s1.ends_with(s2),
            "the newest samples are kept"
        );
    }
}

/// Appends three batches and returns the dir and the WAL segment they went to.
fn three_batches() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    for k in 0..3 {
        db.append(&batch("a", 2, k * 10..(k + 1) * 10)).unwrap();
    }
    let seg = segments(dir.path()).pop().unwrap();
    (dir, seg)
}

#[test]
fn torn_wal_tail_is_cut_at_the_last_good_record() {
    let (dir, seg) = three_batches();
    let len = std::fs::metadata(&seg).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(len - 5)
        .unwrap();

    let db = open(dir.path());
    assert_eq!(db.replay_stats().repaired, 1);
    assert_eq!(
        db.num_samples(),
        2 * 20,
        "the third batch's record was torn"
    );
    assert!(
        std::fs::metadata(&seg).unwrap().len() < len - 5,
        "segment cut back"
    );
    db.append(&batch("a", 2, 20..30)).unwrap();
    drop(db);
    let db = open(dir.path());
    assert_eq!(db.replay_stats().repaired, 0, "the repair held");
    assert_eq!(db.num_samples(), 2 * 30);
}

#[test]
fn flipped_byte_stops_replay_at_the_damaged_record() {
    let (dir, seg) = three_batches();
    let bytes = std::fs::read(&seg).unwrap();
    // Flip a byte in the last quarter of the file: inside the third samples record.
    let at = bytes.len() - bytes.len() / 8;
    let mut f = OpenOptions::new().write(true).open(&seg).unwrap();
    f.seek(SeekFrom::Start(at as u64)).unwrap();
    f.write_all(&[bytes[at] ^ 0x40]).unwrap();
    drop(f);

    let db = open(dir.path());
    assert_eq!(db.replay_stats().repaired, 1);
    assert_eq!(db.num_samples(), 2 * 20);
}

#[test]
fn wal_of_another_format_version_is_refused() {
    let (dir, seg) = three_batches();
    let mut f = OpenOptions::new().write(true).open(&seg).unwrap();
    f.seek(SeekFrom::Start(4)).unwrap();
    f.write_all(&99u32.to_le_bytes()).unwrap();
    drop(f);
    match Tsdb::open(dir.path(), TsdbOptions::default()) {
        Err(Error::UnsupportedVersion {
            found: 99,
            supported: 1,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn failed_wal_write_is_an_error_and_a_retry_makes_it_durable() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = open(dir.path());
        db.append(&batch("a", 2, 0..10)).unwrap();
        db.inner.wal.fail_next_write();
        match db.append(&batch("a", 2, 10..20)) {
            Err(AppendError::Io(_)) => {}
            other => panic!("{other:?}"),
        }
        // The failed request's samples were taken back out of the head: queries do not
        // see them, and the retry of the same request appends them afresh.
        let a = Matcher::new(MatchOp::Equal, "job", "a").unwrap();
        let seen = db.select(i64::MIN, i64::MAX, &[a]).unwrap();
        assert!(seen.iter().all(|s| s.samples.len() == 10), "{seen:?}");
        assert!(db
            .inner
            .head
            .all_for_test()
            .iter()
            .all(|s| !s.is_unsynced()));
        let retry = db.append(&batch("a", 2, 10..20)).unwrap();
        assert_eq!(retry.appended, 20);
        assert!(db
            .inner
            .head
            .all_for_test()
            .iter()
            .all(|s| !s.is_unsynced()));
        db.inner.wal.fail_next_write();
        assert!(db.append(&batch("b", 1, 0..5)).is_err());
    }
    let db = open(dir.path());
    assert_eq!(
        db.replay_stats().repaired,
        0,
        "the partial frame was cut off at once"
    );
    let a = Matcher::new(MatchOp::Equal, "job", "a").unwrap();
    let got = db.select(i64::MIN, i64::MAX, &[a]).unwrap();
    assert_eq!(got.len(), 2);
    assert!(
        got.iter().all(|s| s.samples.len() == 20),
        "acknowledged by the retry"
    );
    let b = Matcher::new(MatchOp::Equal, "job", "b").unwrap();
    assert!(
        db.select(i64::MIN, i64::MAX, &[b]).unwrap().is_empty(),
        "never acknowledged"
    );
}

#[test]
fn segment_that_cannot_be_created_fails_the_append_until_it_can() {
    let dir = tempfile::tempdir().unwrap();
    let opts = TsdbOptions {
        wal_segment_bytes: 256,
        ..TsdbOptions::default()
    };
    let db = Tsdb::open(dir.path(), opts.clone()).unwrap();
    db.append(&batch("a", 1, 0..20)).unwrap();
    // The next segment's name is taken by a directory, so creating it fails (this runs as
    // root in CI, where a read-only directory would not stop the write).
    let next = segments(dir.path()).len() + 1;
    let blocker = dir.path().join("wal").join(format!("{next:08}"));
    std::fs::create_dir(&blocker).unwrap();
    assert!(matches!(
        db.append(&batch("a", 1, 20..40)),
        Err(AppendError::Io(_))
    ));
    std::fs::remove_dir(&blocker).unwrap();
    db.append(&batch("a", 1, 40..60)).unwrap();
    drop(db);
    let db = Tsdb::open(dir.path(), opts).unwrap();
    let got = dump(&db);
    let times: Vec<i64> = got[0].1.iter().map(|(t, _)| t / 1000).collect();
    // 20..40 failed and was taken back; the next append succeeded.
    let want: Vec<i64> = (0..20).chain(40..60).collect();
    assert_eq!(times, want);
}

#[test]
fn concurrent_appends_share_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(open(dir.path()));
    let threads: Vec<_> = (0..8)
        .map(|w| {
            let db = Arc::clone(&db);
            std::thread::spawn(move || {
                for k in 0..25 {
                    db.append(&batch(&format!("w{w}"), 5, k..k + 1)).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let fsyncs = db.wal_fsyncs();
    assert_eq!(db.num_samples(), 8 * 25 * 5);
    // Not a timing assertion: each append is acknowledged only after an fsync that covers
    // it, and with eight writers in flight some fsyncs must have served several.
    assert!(fsyncs <= 200, "{fsyncs} fsyncs for 200 appends");
    drop(db);
    assert_eq!(open(dir.path()).num_samples(), 8 * 25 * 5);
}

#[test]
fn replay_merges_samples_logged_out_of_order() {
    // Two appends racing on one series may log in the other order than they were applied;
    // simulate that by logging by hand.
    let dir = tempfile::tempdir().unwrap();
    {
        let db = open(dir.path());
        db.append(&batch("a", 1, 0..1)).unwrap();
        let series = db.inner.head.all_for_test();
        let s = &series[0];
        let mut late = SamplesEncoder::default();
        late.add(
            s.id,
            &[Sample { t: 5000, v: 5.0 }, Sample { t: 9000, v: 9.0 }],
        );
        let mut early = SamplesEncoder::default();
        early.add(s.id, &[Sample { t: 3000, v: 3.0 }]);
        for rec in [late.finish(), early.finish()] {
            let pos = db.inner.wal.log(&series, &rec, 9000).unwrap();
            db.inner.wal.wait_durable(pos).unwrap();
        }
    }
    let db = open(dir.path());
    let got = dump(&db);
    let times: Vec<i64> = got[0].1.iter().map(|(t, _)| *t).collect();
    assert_eq!(times, [0, 3000, 5000, 9000]);
    assert_eq!(db.num_samples(), 4);
}

#[test]
fn second_open_of_a_directory_fails_until_the_first_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let first = open(dir.path());
    first.append(&batch("a", 2, 0..3)).unwrap();
    let err = Tsdb::open(dir.path(), TsdbOptions::default()).unwrap_err();
    assert!(
        matches!(&err, Error::Locked { dir: d } if d == dir.path()),
        "{err:?}"
    );
    assert!(
        err.to_string().contains(&dir.path().display().to_string()),
        "the error names the directory: {err}"
    );
    let before = dump(&first);
    drop(first);
    let again = open(dir.path());
    assert_eq!(dump(&again), before, "the refused open changed nothing");
}

#[test]
fn status_reports_head_totals_and_top_lists() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let empty = db.status(10).unwrap();
    assert_eq!(
        (empty.num_series, empty.min_time, empty.max_time),
        (0, None, None)
    );
    assert!(empty.series_count_by_metric_name.is_empty());

    // 150 samples per series: each has a closed chunk (120 samples) and an open one.
    db.append(&batch("a", 3, 1..151)).unwrap();
    db.append(&batch("bb", 1, 5..6)).unwrap();
    let s = db.status(2).unwrap();
    assert_eq!(s.num_series, 4);
    // __name__=m; job=a, job=bb; i=0, 1, 2.
    assert_eq!(s.num_label_pairs, 6);
    assert_eq!(s.num_chunks, db.num_chunks() as u64);
    assert!(s.num_chunks >= 4, "{}", s.num_chunks);
    assert_eq!((s.min_time, s.max_time), (Some(1_000), Some(150_000)));
    let stat = |name: &str, value| crate::Stat {
        name: name.to_string(),
        value,
    };
    assert_eq!(s.series_count_by_metric_name, vec![stat("m", 4)]);
    assert_eq!(
        s.label_value_count_by_label_name,
        vec![stat("i", 3), stat("job", 2)]
    );
    // Distinct values: i: "0" + "1" + "2"; job: "a" + "bb"; __name__: "m".
    assert_eq!(
        s.memory_in_bytes_by_label_name,
        vec![stat("i", 3), stat("job", 3)]
    );
    assert_eq!(
        s.series_count_by_label_value_pair,
        vec![stat("__name__=m", 4), stat("job=a", 3)]
    );
}

#[test]
fn replay_stats_name_the_segments_read() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = open(dir.path());
        let r = db.replay_stats();
        assert_eq!((r.first_segment, r.last_segment), (None, None));
        db.append(&batch("a", 1, 0..2)).unwrap();
    }
    // Each open reads what is there, then starts the next segment.
    let db = open(dir.path());
    let r = db.replay_stats();
    assert_eq!(
        (r.segments, r.first_segment, r.last_segment),
        (1, Some(1), Some(1))
    );
    drop(db);
    let db = open(dir.path());
    let r = db.replay_stats();
    assert_eq!(
        (r.segments, r.first_segment, r.last_segment),
        (2, Some(1), Some(2))
    );
}
