//! The queue's tests: round trip, torn tails, backpressure or dropping the oldest when full,
//! replay after a restart and deletion after delivery, and the delivery mark (skip on reopen,
//! out-of-order completion, a damaged mark), on real files in a temp dir.

use std::time::Duration;

use super::segment::{self, SegmentError};
use super::*;

fn rec(k: u8, len: usize) -> Record {
    Record {
        entries: u32::from(k) + 1,
        text_bytes: len as u32,
        lane: 0,
        meta: Vec::new(),
        body: vec![k; len],
    }
}

fn cfg(dir: &Path) -> QueueConfig {
    QueueConfig::new(dir)
}

/// The segment files in `dir`, in order (the delivery mark left out).
fn segments(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".seg"))
        .collect();
    names.sort();
    names
}

/// Every record the reader hands out until the writer's close, with their segments.
async fn drain(reader: &mut QueueReader) -> Vec<Queued> {
    let mut out = Vec::new();
    while let Some(q) = tokio::time::timeout(Duration::from_secs(5), reader.next())
        .await
        .expect("reader ended")
    {
        out.push(q);
    }
    out
}

#[tokio::test]
async fn records_come_back_in_order_after_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let written = vec![rec(1, 10), rec(2, 0), rec(3, 5000)];
    {
        let (mut writer, mut reader, _q) = cfg(dir.path()).open().unwrap();
        for r in &written {
            writer.push(r.clone()).await.unwrap();
        }
        writer.close();
        let got: Vec<Record> = drain(&mut reader)
            .await
            .into_iter()
            .map(|q| q.record)
            .collect();
        assert_eq!(got, written);
    }
    // Nothing was marked done: a new run replays all of it.
    let (writer, mut reader, queue) = cfg(dir.path()).open().unwrap();
    assert_eq!(queue.usage().1, 2 + 3 + 4, "lines waiting");
    writer.close();
    let got: Vec<Record> = drain(&mut reader)
        .await
        .into_iter()
        .map(|q| q.record)
        .collect();
    assert_eq!(got, written);
}

#[tokio::test]
async fn a_torn_tail_is_cut_at_every_record_boundary() {
    let dir = tempfile::tempdir().unwrap();
    let written = vec![rec(1, 3), rec(2, 40), rec(3, 7)];
    {
        let (mut writer, _reader, _q) = cfg(dir.path()).open().unwrap();
        for r in &written {
            writer.push(r.clone()).await.unwrap();
        }
        writer.close();
    }
    let name = segment::file_name(1);
    let full = std::fs::read(dir.path().join(&name)).unwrap();
    let mut ends = vec![segment::HEADER_LEN];
    for r in &written {
        ends.push(ends[ends.len() - 1] + r.framed_len());
    }
    assert_eq!(*ends.last().unwrap(), full.len() as u64);
    for cut in 0..=full.len() {
        let torn = tempfile::tempdir().unwrap();
        std::fs::write(torn.path().join(&name), &full[..cut]).unwrap();
        let (writer, mut reader, _q) = cfg(torn.path()).open().unwrap();
        writer.close();
        let got: Vec<Record> = drain(&mut reader)
            .await
            .into_iter()
            .map(|q| q.record)
            .collect();
        let whole = ends.iter().skip(1).filter(|&&e| e <= cut as u64).count();
        assert_eq!(got, written[..whole], "cut at {cut}");
        let good = ends.iter().copied().filter(|&e| e <= cut as u64).max();
        let len = std::fs::metadata(torn.path().join(&name)).map(|m| m.len());
        match good {
            // Nothing whole in it: the segment is gone.
            _ if whole == 0 => assert!(len.is_err(), "cut at {cut}: empty segment removed"),
            Some(g) => assert_eq!(len.unwrap(), g, "cut at {cut}: truncated to the boundary"),
            None => unreachable!(),
        }
    }
    // A flipped byte in the last record's payload: that record is dropped, the others stay.
    let mut flipped = full.clone();
    *flipped.last_mut().unwrap() ^= 0xff;
    let torn = tempfile::tempdir().unwrap();
    std::fs::write(torn.path().join(&name), &flipped).unwrap();
    let (writer, mut reader, _q) = cfg(torn.path()).open().unwrap();
    writer.close();
    let got: Vec<Record> = drain(&mut reader)
        .await
        .into_iter()
        .map(|q| q.record)
        .collect();
    assert_eq!(got, written[..2]);
}

#[tokio::test]
async fn a_full_queue_blocks_the_writer_until_a_segment_is_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path());
    // Room for the header and one 1000-byte record, and one record per segment.
    c.max_bytes = segment::HEADER_LEN + rec(0, 1000).framed_len();
    c.segment_bytes = 1;
    let (mut writer, mut reader, queue) = c.open().unwrap();
    writer.push(rec(0, 1000)).await.unwrap();
    let blocked = tokio::time::timeout(Duration::from_millis(300), writer.push(rec(1, 1000))).await;
    assert!(blocked.is_err(), "the second record waits for room");
    let first = reader.next().await.unwrap();
    assert_eq!(first.record, rec(0, 1000));
    queue.done(first.seq, first.nth, 1, 1).await;
    // The first segment is still open (nothing else was appended): it is rolled and deleted
    // by the next append, which then fits.
    tokio::time::timeout(Duration::from_secs(5), writer.push(rec(1, 1000)))
        .await
        .expect("the writer goes on once the first record is done")
        .unwrap();
    assert_eq!(segments(dir.path()), [segment::file_name(2)]);
    let second = reader.next().await.unwrap();
    assert_eq!(second.record, rec(1, 1000));
}

#[tokio::test]
async fn a_record_larger_than_the_queue_is_taken_when_the_queue_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path());
    c.max_bytes = 100;
    let (mut writer, mut reader, _q) = c.open().unwrap();
    tokio::time::timeout(Duration::from_secs(5), writer.push(rec(7, 1000)))
        .await
        .expect("not blocked forever")
        .unwrap();
    assert_eq!(reader.next().await.unwrap().record, rec(7, 1000));
}

#[tokio::test]
async fn a_restart_replays_only_the_segments_not_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path());
    c.segment_bytes = 1; // one record per segment
    {
        let (mut writer, mut reader, queue) = c.open().unwrap();
        for k in 0..3 {
            writer.push(rec(k, 100)).await.unwrap();
        }
        let first = reader.next().await.unwrap();
        queue.done(first.seq, first.nth, 1, 1).await;
        // Killed here: records 1 and 2 were never delivered.
    }
    assert_eq!(
        segments(dir.path()),
        [segment::file_name(2), segment::file_name(3)]
    );
    let (mut writer, mut reader, _q) = c.open().unwrap();
    writer.push(rec(9, 10)).await.unwrap();
    writer.close();
    let got: Vec<Record> = drain(&mut reader)
        .await
        .into_iter()
        .map(|q| q.record)
        .collect();
    assert_eq!(
        got,
        [rec(1, 100), rec(2, 100), rec(9, 10)],
        "old records first"
    );
    assert_eq!(
        segments(dir.path()).last().unwrap(),
        &segment::file_name(4),
        "new segments continue the sequence"
    );
}

#[tokio::test]
async fn a_segment_is_deleted_only_when_every_record_in_it_is_done() {
    let dir = tempfile::tempdir().unwrap();
    let (mut writer, mut reader, queue) = cfg(dir.path()).open().unwrap();
    writer.push(rec(0, 10)).await.unwrap();
    writer.push(rec(1, 10)).await.unwrap();
    writer.close();
    let got = drain(&mut reader).await;
    assert_eq!(got.len(), 2);
    // Out of order, as concurrent pushes finish.
    queue.done(got[1].seq, got[1].nth, 1, 2).await;
    assert_eq!(segments(dir.path()), [segment::file_name(1)]);
    queue.done(got[0].seq, got[0].nth, 1, 1).await;
    assert!(segments(dir.path()).is_empty());
    assert_eq!(queue.usage(), (0, 0));
}

#[tokio::test]
async fn drop_oldest_deletes_whole_segments_and_counts_only_unread_records() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path());
    c.when_full = WhenFull::DropOldest;
    c.segment_bytes = 1; // one record per segment
    c.max_bytes = 3 * (segment::HEADER_LEN + rec(0, 100).framed_len());
    let (mut writer, mut reader, queue) = c.open().unwrap();
    for k in 0..3 {
        writer.push(rec(k, 100)).await.unwrap();
    }
    // The sender holds the first record (in flight, against a receiver that is away).
    let first = reader.next().await.unwrap();
    assert_eq!(first.record, rec(0, 100));
    assert_eq!(queue.take_dropped(), (0, 0), "everything fits so far");
    for k in 3..5 {
        tokio::time::timeout(Duration::from_secs(5), writer.push(rec(k, 100)))
            .await
            .expect("a full dropping queue never waits")
            .unwrap();
    }
    // Segments 1 and 2 are gone; only record 1 (2 entries) was never handed out.
    assert_eq!(queue.take_dropped(), (1, 2));
    assert_eq!(queue.take_dropped(), (0, 0), "taken once");
    assert_eq!(
        segments(dir.path()),
        [3, 4, 5].map(segment::file_name),
        "the newest stay"
    );
    assert!(
        !queue.holds(first.seq),
        "the record in flight lost its segment"
    );
    queue.done(first.seq, first.nth, 1, 1).await;
    writer.close();
    let got: Vec<Record> = drain(&mut reader)
        .await
        .into_iter()
        .map(|q| q.record)
        .collect();
    assert_eq!(got, [rec(2, 100), rec(3, 100), rec(4, 100)]);
}

#[tokio::test]
async fn a_dropping_queue_takes_a_record_larger_than_itself_by_dropping_everything() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path());
    c.when_full = WhenFull::DropOldest;
    c.max_bytes = 300;
    let (mut writer, mut reader, queue) = c.open().unwrap();
    writer.push(rec(1, 100)).await.unwrap();
    writer.push(rec(2, 1000)).await.unwrap();
    assert_eq!(queue.take_dropped(), (1, 2));
    assert_eq!(reader.next().await.unwrap().record, rec(2, 1000));
}

#[test]
fn an_unknown_version_or_magic_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(segment::file_name(1));
    std::fs::write(&path, b"VLGQ\x03\0\0\0").unwrap();
    match cfg(dir.path()).open() {
        Err(SegmentError::UnknownVersion { found: 3, .. }) => {}
        other => panic!("{other:?}"),
    }
    std::fs::write(&path, b"NOPE\x01\0\0\0").unwrap();
    assert!(matches!(
        cfg(dir.path()).open(),
        Err(SegmentError::BadMagic { .. })
    ));
    // Other files in the directory are not the queue's business.
    std::fs::remove_file(&path).unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"x").unwrap();
    assert!(cfg(dir.path()).open().is_ok());
}

#[tokio::test]
async fn a_version_1_segment_is_still_read_with_empty_meta() {
    let dir = tempfile::tempdir().unwrap();
    // Version 1 framing: len | crc | entries | text_bytes | body.
    let mut bytes = b"VLGQ\x01\0\0\0".to_vec();
    for k in [1u8, 2] {
        let mut payload = (u32::from(k) + 1).to_le_bytes().to_vec();
        payload.extend_from_slice(&5u32.to_le_bytes());
        payload.extend_from_slice(&[k; 5]);
        bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        bytes.extend_from_slice(&payload);
    }
    std::fs::write(dir.path().join(segment::file_name(1)), bytes).unwrap();
    let (mut writer, mut reader, _queue) = cfg(dir.path()).open().unwrap();
    writer.push(rec(3, 5)).await.unwrap();
    for k in 1..=3 {
        assert_eq!(reader.next().await.unwrap().record, rec(k, 5));
    }
}

#[tokio::test]
async fn meta_round_trips_and_a_reopen_hands_back_the_undelivered_records_meta() {
    let dir = tempfile::tempdir().unwrap();
    let with_meta = |k: u8, meta: &[u8], body: usize| Record {
        lane: u32::from(k),
        meta: meta.to_vec(),
        ..rec(k, body)
    };
    {
        let (mut writer, mut reader, queue) = cfg(dir.path()).open().unwrap();
        writer.push(with_meta(1, b"first", 10)).await.unwrap();
        writer.push(with_meta(2, b"", 10)).await.unwrap();
        writer.push(with_meta(3, b"third", 0)).await.unwrap();
        writer.push(with_meta(4, b"fourth", 10)).await.unwrap();
        let first = reader.next().await.unwrap();
        assert_eq!(first.record, with_meta(1, b"first", 10));
        queue.done(first.seq, first.nth, 1, 2).await;
        assert_eq!(
            queue.take_recovered_metas(),
            RecoveredMetas::default(),
            "a fresh queue"
        );
    }
    let (_writer, mut reader, queue) = cfg(dir.path()).open().unwrap();
    assert_eq!(
        queue.take_recovered_metas(),
        RecoveredMetas {
            delivered: vec![b"first".to_vec()],
            undelivered: vec![b"third".to_vec(), b"fourth".to_vec()],
        },
        "the delivered record's meta is told apart, empty metas are left out"
    );
    assert_eq!(
        queue.take_recovered_metas(),
        RecoveredMetas::default(),
        "taken once"
    );
    assert_eq!(reader.next().await.unwrap().record, with_meta(2, b"", 10));
    assert_eq!(
        reader.next().await.unwrap().record,
        with_meta(3, b"third", 0)
    );
}

/// Pushes `n` records, 100 bytes each, into one segment and reads them all.
async fn fill_one_segment(dir: &Path, n: u8) -> (QueueWriter, QueueReader, DiskQueue, Vec<Queued>) {
    let (mut writer, mut reader, queue) = cfg(dir).open().unwrap();
    for k in 0..n {
        writer.push(rec(k, 100)).await.unwrap();
    }
    let mut got = Vec::new();
    for _ in 0..n {
        got.push(reader.next().await.unwrap());
    }
    (writer, reader, queue, got)
}

/// Marks `q` delivered.
async fn deliver(queue: &DiskQueue, q: &Queued) {
    queue
        .done(q.seq, q.nth, 1, u64::from(q.record.entries))
        .await;
}

/// What a fresh run of the queue in `dir` hands out, with each record's place.
async fn replay(dir: &Path) -> Vec<(u64, Record)> {
    let (writer, mut reader, _q) = cfg(dir).open().unwrap();
    writer.close();
    drain(&mut reader)
        .await
        .into_iter()
        .map(|q| (q.nth, q.record))
        .collect()
}

#[tokio::test]
async fn a_crash_mid_segment_resends_only_the_records_not_delivered() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (_writer, _reader, queue, got) = fill_one_segment(dir.path(), 5).await;
        for q in &got[..3] {
            deliver(&queue, q).await;
        }
        // Killed here, records 3 and 4 in flight or waiting.
    }
    let (writer, mut reader, queue) = cfg(dir.path()).open().unwrap();
    assert_eq!(
        queue.usage().1,
        4 + 5,
        "only the lines of records 3 and 4 wait"
    );
    writer.close();
    let got = drain(&mut reader).await;
    let records: Vec<(u64, Record)> = got.iter().map(|q| (q.nth, q.record.clone())).collect();
    assert_eq!(records, [(3, rec(3, 100)), (4, rec(4, 100))]);
    for q in &got {
        deliver(&queue, q).await;
    }
    assert!(segments(dir.path()).is_empty(), "all delivered: deleted");
    assert_eq!(queue.usage(), (0, 0));
    drop((reader, queue));
    assert!(replay(dir.path()).await.is_empty());
}

#[tokio::test]
async fn records_finished_after_a_gap_are_not_sent_again_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let with_meta = |k: u8| Record {
        meta: vec![k],
        ..rec(k, 100)
    };
    {
        let (mut writer, mut reader, queue) = cfg(dir.path()).open().unwrap();
        for k in 0..6 {
            writer.push(with_meta(k)).await.unwrap();
        }
        let mut got = Vec::new();
        for _ in 0..6 {
            got.push(reader.next().await.unwrap());
        }
        // Records 1 and 4 are in flight when the others finish.
        for at in [0, 2, 3, 5] {
            deliver(&queue, &got[at]).await;
        }
        // Killed here.
    }
    {
        let (writer, mut reader, queue) = cfg(dir.path()).open().unwrap();
        assert_eq!(
            queue.take_recovered_metas(),
            RecoveredMetas {
                delivered: vec![vec![0], vec![2], vec![3], vec![5]],
                undelivered: vec![vec![1], vec![4]],
            }
        );
        assert_eq!(
            queue.usage().1,
            2 + 5,
            "only the lines of records 1 and 4 wait"
        );
        writer.close();
        let got = drain(&mut reader).await;
        let nths: Vec<u64> = got.iter().map(|q| q.nth).collect();
        assert_eq!(nths, [1, 4], "only the records in flight are sent again");
        // Record 4 finishes first, then 1 closes the gap: everything is finished.
        deliver(&queue, &got[1]).await;
        assert_eq!(queue.usage().1, 2);
        deliver(&queue, &got[0]).await;
        assert_eq!(queue.usage(), (0, 0));
        assert!(segments(dir.path()).is_empty(), "all finished: deleted");
    }
    assert!(replay(dir.path()).await.is_empty());
}

#[tokio::test]
async fn out_of_order_completion_advances_the_prefix_once_the_gap_closes() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (_writer, _reader, queue, got) = fill_one_segment(dir.path(), 6).await;
        // Record 1 is still in flight when 2, 4 and then 3 finish: one run.
        for at in [0, 2, 4, 3] {
            deliver(&queue, &got[at]).await;
        }
        assert_eq!(
            marks::load(dir.path()),
            Some(Mark {
                seq: 1,
                records: 1,
                runs: vec![Run {
                    seq: 1,
                    first: 2,
                    end: 5
                }],
            })
        );
        deliver(&queue, &got[1]).await;
        assert_eq!(
            marks::load(dir.path()),
            Some(Mark::prefix(1, 5)),
            "record 1 closed the gap: the run joined the prefix"
        );
    }
    assert_eq!(replay(dir.path()).await, [(5, rec(5, 100))]);
}

#[tokio::test]
async fn a_later_segment_finishing_first_is_a_run_in_the_mark() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path());
    c.segment_bytes = 1; // one record per segment
    {
        let (mut writer, mut reader, queue) = c.open().unwrap();
        for k in 0..4 {
            writer.push(rec(k, 100)).await.unwrap();
        }
        let got = [
            reader.next().await.unwrap(),
            reader.next().await.unwrap(),
            reader.next().await.unwrap(),
        ];
        deliver(&queue, &got[2]).await;
        assert_eq!(
            marks::load(dir.path()),
            Some(Mark {
                seq: 1,
                records: 0,
                runs: vec![Run {
                    seq: 3,
                    first: 0,
                    end: 1
                }],
            })
        );
        deliver(&queue, &got[0]).await;
        assert_eq!(marks::load(dir.path()), Some(Mark::prefix(1, 1)));
        // Killed with record 1 (segment 2) in flight.
    }
    let got: Vec<Record> = replay(dir.path()).await.into_iter().map(|r| r.1).collect();
    assert_eq!(got, [rec(1, 100), rec(3, 100)]);
}

#[tokio::test]
async fn an_unreadable_segment_counts_only_its_unfinished_records_done() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (_writer, _reader, queue, got) = fill_one_segment(dir.path(), 5).await;
        for at in [0, 2, 3] {
            deliver(&queue, &got[at]).await;
        }
    }
    let (writer, mut reader, queue) = cfg(dir.path()).open().unwrap();
    writer.close();
    // The segment vanishes before the reader gets to it.
    std::fs::remove_file(dir.path().join(segment::file_name(1))).unwrap();
    assert!(drain(&mut reader).await.is_empty());
    assert_eq!(queue.usage().1, 0, "records 1 and 4 counted done, once");
}

#[tokio::test]
async fn a_corrupt_or_missing_mark_replays_the_whole_queue() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (_writer, _reader, queue, got) = fill_one_segment(dir.path(), 4).await;
        deliver(&queue, &got[0]).await;
        deliver(&queue, &got[1]).await;
    }
    let mark = dir.path().join(marks::FILE_NAME);
    let good = std::fs::read(&mark).unwrap();
    let mut bad = good.clone();
    bad[9] ^= 1;
    std::fs::write(&mark, &bad).unwrap();
    assert_eq!(
        replay(dir.path()).await.len(),
        4,
        "corrupt: nothing delivered"
    );
    std::fs::write(&mark, &good[..good.len() - 1]).unwrap();
    assert_eq!(
        replay(dir.path()).await.len(),
        4,
        "short: nothing delivered"
    );
    std::fs::remove_file(&mark).unwrap();
    assert_eq!(
        replay(dir.path()).await.len(),
        4,
        "missing: nothing delivered"
    );
    std::fs::write(&mark, &good).unwrap();
    assert_eq!(
        replay(dir.path()).await.len(),
        2,
        "restored: records 2 and 3"
    );
}

#[tokio::test]
async fn a_delivered_open_segment_is_deleted_at_open_and_new_segments_sort_after_the_mark() {
    let dir = tempfile::tempdir().unwrap();
    {
        // All delivered, but the segment was still open for appends: it stays on disk.
        let (_writer, _reader, queue, got) = fill_one_segment(dir.path(), 2).await;
        for q in &got {
            deliver(&queue, q).await;
        }
        assert_eq!(segments(dir.path()), [segment::file_name(1)]);
    }
    {
        let (mut writer, _reader, _q) = cfg(dir.path()).open().unwrap();
        assert!(segments(dir.path()).is_empty(), "delivered whole: deleted");
        writer.push(rec(9, 10)).await.unwrap();
        assert_eq!(
            segments(dir.path()),
            [segment::file_name(2)],
            "after the mark's segment, so the mark cannot skip it"
        );
    }
    assert_eq!(replay(dir.path()).await, [(0, rec(9, 10))]);
}
