//! Tests of the log WAL on real files: replay, repair of damaged tails, group commit and
//! trimming.

use super::*;
use model::{Labels, LogEntry};

fn push(i: i64) -> Vec<LogStream> {
    vec![LogStream {
        labels: Labels::from_pairs([("app", "wal")]),
        entries: vec![LogEntry {
            ts_ns: i,
            line: format!("line {i}"),
            metadata: vec![],
        }],
    }]
}

fn open(dir: &Path) -> (Wal, WalReplay, Vec<i64>) {
    let mut seen = Vec::new();
    let (wal, stats) = Wal::open(dir, DEFAULT_WAL_SEGMENT_BYTES, |streams| {
        seen.extend(streams[0].entries.iter().map(|e| e.ts_ns));
        Ok(())
    })
    .unwrap();
    (wal, stats, seen)
}

fn log_durably(wal: &Wal, i: i64) {
    let t = wal.log(&encode_push(&push(i)).unwrap()).unwrap();
    wal.wait_durable(t).unwrap();
    wal.finish(t);
}

#[test]
fn records_replay_in_order_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (wal, stats, seen) = open(dir.path());
        assert_eq!((stats.segments, seen.len()), (0, 0));
        log_durably(&wal, 1);
        log_durably(&wal, 2);
        wal.rotate().unwrap();
        log_durably(&wal, 3);
    }
    let (_wal, stats, seen) = open(dir.path());
    assert_eq!(seen, [1, 2, 3]);
    assert_eq!((stats.segments, stats.records, stats.repaired), (2, 3, 0));
}

#[test]
fn torn_tail_is_truncated_and_later_records_survive() {
    let dir = tempfile::tempdir().unwrap();
    let wal_dir = dir.path();
    {
        let (wal, _, _) = open(wal_dir);
        log_durably(&wal, 1);
        log_durably(&wal, 2);
    }
    // The process died halfway through writing a third record.
    let last = segment::list(wal_dir).unwrap().pop().unwrap().1;
    let good_len = std::fs::metadata(&last).unwrap().len();
    let third = encode_push(&push(3)).unwrap();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&last)
        .unwrap();
    f.write_all(&third[..third.len() / 2]).unwrap();
    drop(f);

    {
        let (wal, stats, seen) = open(wal_dir);
        assert_eq!(seen, [1, 2]);
        assert_eq!(stats.repaired, 1);
        assert_eq!(std::fs::metadata(&last).unwrap().len(), good_len);
        log_durably(&wal, 4);
    }
    let (_wal, stats, seen) = open(wal_dir);
    assert_eq!(seen, [1, 2, 4]);
    assert_eq!(stats.repaired, 0);
}

#[test]
fn a_flipped_bit_ends_the_segment_at_the_last_good_record() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (wal, _, _) = open(dir.path());
        log_durably(&wal, 1);
        log_durably(&wal, 2);
    }
    let last = segment::list(dir.path()).unwrap().pop().unwrap().1;
    let mut bytes = std::fs::read(&last).unwrap();
    let n = bytes.len();
    bytes[n - 2] ^= 0x40;
    std::fs::write(&last, bytes).unwrap();
    let (_wal, stats, seen) = open(dir.path());
    assert_eq!(seen, [1]);
    assert_eq!(stats.repaired, 1);
}

#[test]
fn foreign_or_newer_segments_fail_the_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut header = b"VLOG".to_vec();
    header.extend_from_slice(&99u32.to_le_bytes());
    std::fs::write(segment::path(dir.path(), 1), header).unwrap();
    let err = Wal::open(dir.path(), DEFAULT_WAL_SEGMENT_BYTES, |_| Ok(())).unwrap_err();
    assert!(err.to_string().contains("version 99"), "{err}");

    std::fs::write(segment::path(dir.path(), 1), b"NOPE\x01\0\0\0").unwrap();
    let err = Wal::open(dir.path(), DEFAULT_WAL_SEGMENT_BYTES, |_| Ok(())).unwrap_err();
    assert!(err.to_string().contains("bad magic"), "{err}");
}

#[test]
fn concurrent_pushes_share_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _, _) = open(dir.path());
    let wal = Arc::new(wal);
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let wal = wal.clone();
            std::thread::spawn(move || {
                for i in 0..50 {
                    log_durably(&wal, t * 1000 + i);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    // 400 pushes; without group commit each would need its own fsync.
    assert!(wal.fsyncs() < 400, "fsyncs: {}", wal.fsyncs());
    drop(wal);
    let (_wal, stats, _) = open(dir.path());
    assert_eq!(stats.records, 400);
}

#[test]
fn in_flight_records_pin_their_segment() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _, _) = open(dir.path());
    let pinned = wal.log(&encode_push(&push(1)).unwrap()).unwrap();
    wal.wait_durable(pinned).unwrap();
    wal.rotate().unwrap();
    log_durably(&wal, 2);
    wal.rotate().unwrap();
    assert_eq!(wal.remove_sealed().unwrap(), 0, "segment 1 is pinned");
    wal.finish(pinned);
    assert_eq!(wal.remove_sealed().unwrap(), 2);
    assert_eq!(segment::list(dir.path()).unwrap().len(), 1);
    // An empty current segment is not rotated into another empty one.
    wal.rotate().unwrap();
    assert_eq!(segment::list(dir.path()).unwrap().len(), 1);
}

#[test]
fn segments_are_cut_at_the_size_limit() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), 64, |_| Ok(())).unwrap();
    for i in 0..5 {
        log_durably(&wal, i);
    }
    assert_eq!(segment::list(dir.path()).unwrap().len(), 5);
}
