//! WAL checkpoints and head chunk files end to end in-process: replay from a checkpoint,
//! appends racing one, and damage to the checkpoint or the head chunk files at every
//! boundary (the store then replays the whole WAL, losing and doubling nothing).

use super::*;
use crate::head_chunks;
use model::{Labels, MatchOp, Matcher, Querier, Sample};

fn opts() -> TsdbOptions {
    TsdbOptions {
        compaction_interval: None,
        ..TsdbOptions::default()
    }
}

/// `n` series, one sample each at `t` seconds for `t` in `ts`; values mix integers and
/// decimals so both chunk encodings occur.
fn batch(n: usize, ts: std::ops::Range<i64>) -> Vec<Series> {
    (0..n)
        .map(|i| Series {
            labels: Labels::from_pairs([("__name__", "m".to_string()), ("i", i.to_string())]),
            samples: ts
                .clone()
                .map(|t| Sample {
                    t: t * 1000,
                    v: if i % 2 == 0 { t as f64 } else { t as f64 / 7.0 },
                })
                .collect(),
        })
        .collect()
}

/// Every series as its labels and its samples' `(t, value bits)`.
type Dump = Vec<(String, Vec<(i64, u64)>)>;

fn dump(db: &Tsdb) -> Dump {
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

/// Copies a data directory (files one level deep under each subdirectory suffice here).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &dest);
        } else if e.file_name() != "lock" {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// A store with 6 series × 700 samples, checkpointed after 500 (so closed chunks are in a
/// head chunk file), then 200 more in the WAL tail. Returns the dir and its full contents.
fn checkpointed_store() -> (tempfile::TempDir, Dump) {
    let dir = tempfile::tempdir().unwrap();
    let db = Tsdb::open(dir.path(), opts()).unwrap();
    for k in 0..5 {
        db.append(&batch(6, k * 100..(k + 1) * 100)).unwrap();
    }
    db.checkpoint().unwrap();
    for k in 5..7 {
        db.append(&batch(6, k * 100..(k + 1) * 100)).unwrap();
    }
    let want = dump(&db);
    assert_eq!(db.num_samples(), 6 * 700);
    (dir, want)
}

#[test]
fn replay_starts_at_the_checkpoint_and_maps_its_head_chunks() {
    let (dir, want) = checkpointed_store();
    let db = Tsdb::open(dir.path(), opts()).unwrap();
    let stats = db.replay_stats().clone();
    assert_eq!(dump(&db), want);
    assert_eq!((db.num_series(), db.num_samples()), (6, 6 * 700));
    assert!(stats.checkpoint.is_some(), "{stats:?}");
    assert_eq!(stats.checkpoint_series, 6);
    // 500 samples per series make 4 closed chunks of 120 each.
    assert_eq!(stats.mapped_chunks, 6 * 4);
    assert_eq!(
        stats.segments, 1,
        "only the tail after the checkpoint is read"
    );
    assert_eq!(
        stats.records, 3,
        "a series record and the two appends' samples records"
    );
    // Appends carry on; a second checkpoint replaces the first and its unreferenced files.
    db.append(&batch(6, 700..800)).unwrap();
    db.checkpoint().unwrap();
    let (done, _) = super::checkpoint_files(dir.path());
    assert_eq!(done.len(), 1);
    let want = dump(&db);
    drop(db);
    let db = Tsdb::open(dir.path(), opts()).unwrap();
    assert_eq!(dump(&db), want);
    assert_eq!(
        db.replay_stats().records,
        0,
        "nothing logged after the checkpoint"
    );
    let out = db.append(&batch(6, 799..801)).unwrap();
    assert_eq!((out.appended, out.duplicate_timestamp), (6, 0));
}

#[test]
fn a_checkpoint_moves_closed_chunks_out_of_memory() {
    let dir = tempfile::tempdir().unwrap();
    let db = Tsdb::open(dir.path(), opts()).unwrap();
    db.append(&batch(4, 0..500)).unwrap();
    let resident = |db: &Tsdb| {
        db.head()
            .series_list()
            .unwrap()
            .iter()
            .map(|s| s.residency())
            .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
    };
    assert_eq!(
        resident(&db),
        (16, 0),
        "4 closed chunks per series, in memory"
    );
    db.checkpoint().unwrap();
    assert_eq!(
        resident(&db),
        (0, 16),
        "all mapped from the head chunk file"
    );
    assert_eq!(head_chunks::list(dir.path()).unwrap().len(), 1);
    // Queries read the mapped chunks.
    let one = Matcher::new(MatchOp::Equal, "i", "3").unwrap();
    let got = db.select(10_000, 20_000, &[one]).unwrap();
    assert_eq!(got[0].samples.len(), 11);
    assert_eq!(got[0].samples[0].v, 10.0 / 7.0);
}

#[test]
fn appends_racing_checkpoints_are_neither_lost_nor_doubled() {
    let dir = tempfile::tempdir().unwrap();
    let want = {
        let db = Tsdb::open(dir.path(), opts()).unwrap();
        std::thread::scope(|s| {
            for w in 0..3i64 {
                let db = &db;
                s.spawn(move || {
                    // Each writer owns its series; 400 small appends each.
                    for k in 0..400 {
                        let labels = Labels::from_pairs([("__name__", "r"), ("w", &w.to_string())]);
                        let samples = vec![Sample { t: k, v: k as f64 }];
                        db.append(&[Series { labels, samples }]).unwrap();
                    }
                });
            }
            let db = &db;
            s.spawn(move || {
                for _ in 0..15 {
                    db.checkpoint().unwrap();
                    std::thread::sleep(Duration::from_millis(2));
                }
            });
        });
        dump(&db)
    };
    assert_eq!(want.iter().map(|(_, s)| s.len()).sum::<usize>(), 1200);
    let db = Tsdb::open(dir.path(), opts()).unwrap();
    assert_eq!(dump(&db), want);
    assert_eq!(db.num_samples(), 1200);
}

/// Opens a copy of `dir` damaged by `damage` and checks it holds exactly `want`; returns
/// whether the checkpoint was used.
fn open_damaged(
    dir: &Path,
    want: &[(String, Vec<(i64, u64)>)],
    damage: impl FnOnce(&Path),
) -> bool {
    let copy = tempfile::tempdir().unwrap();
    copy_dir(dir, copy.path());
    damage(copy.path());
    let db = Tsdb::open(copy.path(), opts()).unwrap();
    assert_eq!(dump(&db), want);
    assert_eq!(db.num_samples(), 6 * 700);
    let used = db.replay_stats().checkpoint.is_some();
    if !used {
        assert!(
            head_chunks::list(copy.path()).unwrap().is_empty(),
            "an unusable checkpoint's files are removed"
        );
    }
    used
}

#[test]
fn a_torn_or_corrupt_checkpoint_falls_back_to_the_whole_wal() {
    let (dir, want) = checkpointed_store();
    let (done, _) = super::checkpoint_files(dir.path());
    let name = done[0].file_name().unwrap().to_owned();
    let len = std::fs::metadata(&done[0]).unwrap().len() as usize;
    // Lengths short of whole (a step of 29 bytes keeps the number of opens, each fsyncing a new WAL segment, low; the format's own
    // test cuts at every byte) and a flipped byte in each 101.
    for cut in (0..len).step_by(29) {
        let used = open_damaged(dir.path(), &want, |d| {
            let p = d.join("wal").join(&name);
            let full = std::fs::read(&p).unwrap();
            std::fs::write(&p, &full[..cut]).unwrap();
        });
        assert!(!used, "cut at {cut}");
    }
    // From byte 8 on: a changed version field reads as a newer format and fails the open
    // (`a_checkpoint_of_another_version_fails_the_open`).
    for i in (8..len).step_by(101) {
        let used = open_damaged(dir.path(), &want, |d| {
            let p = d.join("wal").join(&name);
            let mut full = std::fs::read(&p).unwrap();
            full[i] ^= 0x20;
            std::fs::write(&p, &full).unwrap();
        });
        assert!(!used, "flipped byte {i}");
    }
    // A crash while writing the next checkpoint leaves a temporary file and an unreferenced
    // head chunk file: both are ignored and removed.
    let used = open_damaged(dir.path(), &want, |d| {
        std::fs::write(d.join("wal").join("checkpoint.00000099.tmp"), b"VCKP").unwrap();
        std::fs::write(head_chunks::path(d, 77), b"VHCK\x01\0\0\0garbage").unwrap();
    });
    assert!(used);
}

#[test]
fn a_torn_or_corrupt_head_chunk_file_falls_back_to_the_whole_wal() {
    let (dir, want) = checkpointed_store();
    let files = head_chunks::list(dir.path()).unwrap();
    assert_eq!(files.len(), 1);
    let number = files[0].0;
    let full = std::fs::read(&files[0].1).unwrap();
    // Frame boundaries: the header, then each `uvarint len | chunk | crc`.
    let mut boundaries = vec![8usize];
    while let Some(&at) = boundaries.last() {
        let Ok((_, whole)) = crate::block::chunks::frame(&full[at..]) else {
            break;
        };
        boundaries.push(at + whole);
    }
    assert_eq!(boundaries.len(), 6 * 4 + 1, "one frame per closed chunk");
    for (k, &at) in boundaries.iter().enumerate() {
        let whole = k == boundaries.len() - 1;
        for cut in [at.saturating_sub(1), at, at + 2] {
            if cut >= full.len() && !whole {
                continue;
            }
            let used = open_damaged(dir.path(), &want, |d| {
                let p = head_chunks::path(d, number);
                std::fs::write(&p, &full[..cut.min(full.len())]).unwrap();
            });
            assert_eq!(used, cut >= full.len(), "cut at {cut}");
        }
        if !whole {
            let used = open_damaged(dir.path(), &want, |d| {
                let mut bad = full.clone();
                bad[at + 3] ^= 0x01;
                std::fs::write(head_chunks::path(d, number), &bad).unwrap();
            });
            assert!(!used, "flipped byte in the frame at {at}");
        }
    }
    let used = open_damaged(dir.path(), &want, |d| {
        std::fs::remove_file(head_chunks::path(d, number)).unwrap();
    });
    assert!(!used, "a missing head chunk file");
}

#[test]
fn a_checkpoint_of_another_version_fails_the_open() {
    let (dir, _) = checkpointed_store();
    let (done, _) = super::checkpoint_files(dir.path());
    let mut bytes = std::fs::read(&done[0]).unwrap();
    bytes[4] = 9;
    std::fs::write(&done[0], &bytes).unwrap();
    assert!(matches!(
        Tsdb::open(dir.path(), opts()),
        Err(Error::UnsupportedVersion { found: 9, .. })
    ));
}

#[test]
fn samples_a_block_took_after_the_checkpoint_are_not_doubled() {
    let dir = tempfile::tempdir().unwrap();
    let options = TsdbOptions {
        block_range: Duration::from_secs(100),
        ..opts()
    };
    let want = {
        let db = Tsdb::open(dir.path(), options.clone()).unwrap();
        db.append(&batch(3, 0..140)).unwrap();
        db.checkpoint().unwrap();
        db.append(&batch(3, 140..160)).unwrap();
        db.compact().unwrap();
        assert_eq!(db.blocks().len(), 1, "0..100 s cut into a block");
        dump(&db)
    };
    let db = Tsdb::open(dir.path(), options).unwrap();
    assert!(db.replay_stats().checkpoint.is_some());
    assert_eq!(dump(&db), want);
    assert_eq!(
        db.num_samples(),
        3 * 60,
        "the head holds only what the block does not"
    );
}

#[test]
fn late_samples_in_the_tail_merge_into_checkpointed_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let options = TsdbOptions {
        out_of_order_window: Duration::from_secs(3600),
        ..opts()
    };
    let even = |r: std::ops::Range<i64>| {
        let mut b = batch(2, 0..0);
        for s in &mut b {
            s.samples = r
                .clone()
                .map(|t| Sample {
                    t: t * 2000,
                    v: t as f64,
                })
                .collect();
        }
        b
    };
    let want = {
        let db = Tsdb::open(dir.path(), options.clone()).unwrap();
        db.append(&even(0..300)).unwrap();
        db.checkpoint().unwrap();
        // Odd seconds between the checkpointed even ones, some in mapped chunks.
        let mut late = batch(2, 0..0);
        for s in &mut late {
            s.samples = (1..40)
                .map(|t| Sample {
                    t: t * 2000 - 1000,
                    v: -1.0,
                })
                .collect();
        }
        assert_eq!(db.append(&late).unwrap().appended, 2 * 39);
        dump(&db)
    };
    let db = Tsdb::open(dir.path(), options).unwrap();
    assert_eq!(dump(&db), want);
    assert_eq!(db.num_samples(), 2 * (300 + 39));
}

/// The replay measurement: a store of `VIGIL_REPLAY_SERIES` series (default 2,000) ×
/// `VIGIL_REPLAY_SAMPLES` samples (default 480: two hours at 15 s), checkpointed with a tenth
/// of the samples still to come, then opened with its checkpoint and, from a copy without
/// it, by replaying the whole WAL. Prints both times (best of three).
///
/// `cargo test -p tsdb --lib -- --ignored --nocapture replay_time_with_and_without`
#[test]
#[ignore = "a measurement, not a check: run with --ignored --nocapture"]
fn replay_time_with_and_without_a_checkpoint() {
    let env = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (n, m) = (
        env("VIGIL_REPLAY_SERIES", 2000),
        env("VIGIL_REPLAY_SAMPLES", 480),
    );
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Tsdb::open(dir.path(), opts()).unwrap();
        let labels: Vec<Labels> = (0..n)
            .map(|i| {
                Labels::from_pairs([
                    ("__name__", format!("node_metric_{}", i % 50)),
                    ("instance", format!("10.0.{}.{}:9100", i / 250, i % 250)),
                    ("job", "node".to_string()),
                ])
            })
            .collect();
        for k in 0..m as i64 {
            let batch: Vec<Series> = labels
                .iter()
                .enumerate()
                .map(|(i, l)| {
                    // Counters, constants and two-decimal gauges, as node_exporter's.
                    let v = match i % 3 {
                        0 => (k * (i as i64 + 1) * 4096) as f64,
                        1 => 1.0,
                        _ => ((k * 37 + i as i64) % 10_000) as f64 / 100.0,
                    };
                    Series {
                        labels: l.clone(),
                        samples: vec![Sample { t: k * 15_000, v }],
                    }
                })
                .collect();
            db.append(&batch).unwrap();
            if k as usize == m - m / 10 {
                db.checkpoint().unwrap();
            }
        }
    }
    let full = tempfile::tempdir().unwrap();
    copy_dir(dir.path(), full.path());
    for (_, p) in head_chunks::list(full.path()).unwrap() {
        std::fs::remove_file(p).unwrap();
    }
    for p in super::checkpoint_files(full.path()).0 {
        std::fs::remove_file(p).unwrap();
    }
    let time_open = |d: &Path| {
        let started = Instant::now();
        let db = Tsdb::open(d, opts()).unwrap();
        let took = started.elapsed();
        assert_eq!(db.num_samples(), n * m);
        (took, db.replay_stats().clone())
    };
    let mut best = [Duration::MAX; 2];
    for _ in 0..3 {
        for (slot, d) in [dir.path(), full.path()].into_iter().enumerate() {
            let (took, stats) = time_open(d);
            assert_eq!(stats.checkpoint.is_some(), slot == 0);
            best[slot] = best[slot].min(took);
        }
    }
    println!(
        "replay of {n} series x {m} samples: with checkpoint {:.3} s, whole WAL {:.3} s, ratio {:.3}",
        best[0].as_secs_f64(),
        best[1].as_secs_f64(),
        best[0].as_secs_f64() / best[1].as_secs_f64()
    );
}
