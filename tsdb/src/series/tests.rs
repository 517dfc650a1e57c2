//! `MemSeries` on its own: bounds, chunks, truncation, the out-of-order window and late
//! merges.

use super::*;

static NO_LIMIT: AtomicI64 = AtomicI64::new(i64::MIN);

fn samples(ts: &[i64]) -> Vec<Sample> {
    ts.iter().map(|&t| Sample { t, v: t as f64 }).collect()
}

fn new_series() -> MemSeries {
    MemSeries::new(
        0,
        Arc::new(Labels::from_pairs([("a", "1")])),
        crate::DEFAULT_BLOCK_RANGE.as_millis() as i64,
    )
}

#[test]
fn bounds_follow_appended_samples() {
    let s = new_series();
    assert!(!s.overlaps(i64::MIN, i64::MAX), "no samples yet");
    let mut stats = BatchStats::default();
    let mut accepted = Vec::new();
    s.append(
        &samples(&[10, 20, 5, 30]),
        &NO_LIMIT,
        &mut stats,
        &mut accepted,
    )
    .unwrap();
    assert_eq!(accepted, samples(&[10, 20, 30]));
    assert_eq!((stats.outcome.appended, stats.outcome.out_of_order), (3, 1));
    assert_eq!((stats.min_t, stats.max_t), (10, 30));
    assert!(s.overlaps(30, 40) && s.overlaps(0, 10) && s.overlaps(15, 16));
    assert!(!s.overlaps(31, 40) && !s.overlaps(0, 9));
    assert_eq!(s.samples_in(11, 30).unwrap(), samples(&[20, 30]));
    assert_eq!(s.samples_in(40, 0).unwrap(), vec![]);
}

#[test]
fn samples_span_closed_and_open_chunks() {
    let s = new_series();
    let ts: Vec<i64> = (0..1000).map(|i| i * 15).collect();
    let mut stats = BatchStats::default();
    for part in ts.chunks(7) {
        s.append(&samples(part), &NO_LIMIT, &mut stats, &mut Vec::new())
            .unwrap();
    }
    assert_eq!(s.num_chunks(), 1000 / SAMPLES_PER_CHUNK + 1);
    assert_eq!(s.samples_in(i64::MIN, i64::MAX).unwrap(), samples(&ts));
    // A range inside one closed chunk, and one straddling a chunk boundary.
    assert_eq!(s.samples_in(150, 300).unwrap(), samples(&ts[10..=20]));
    let edge = SAMPLES_PER_CHUNK as i64 * 15;
    assert_eq!(
        s.samples_in(edge - 15, edge).unwrap(),
        samples(&[edge - 15, edge])
    );
}

#[test]
fn truncation_drops_whole_chunks_and_trims_the_straddling_one() {
    let s = new_series();
    let mut stats = BatchStats::default();
    let ts: Vec<i64> = (0..300).collect();
    s.append(&samples(&ts), &NO_LIMIT, &mut stats, &mut Vec::new())
        .unwrap();
    // Chunks hold 0..120, 120..240 and the open 240..300; 150 falls in the second.
    assert_eq!(s.truncate_before(150).unwrap(), (150, false));
    assert_eq!(
        s.samples_in(i64::MIN, i64::MAX).unwrap(),
        samples(&ts[150..])
    );
    assert_eq!((s.first_time(), s.num_chunks()), (Some(150), 2));
    assert_eq!(
        s.truncate_before(250).unwrap(),
        (100, false),
        "into the open chunk"
    );
    assert_eq!(s.samples_in(0, 1000).unwrap(), samples(&ts[250..]));
    // Appends carry on after the trimmed open chunk.
    s.append(&samples(&[300]), &NO_LIMIT, &mut stats, &mut Vec::new())
        .unwrap();
    assert_eq!(s.samples_in(299, 300).unwrap(), samples(&[299, 300]));
    assert_eq!(s.truncate_before(1000).unwrap(), (51, true));
    assert!(!s.overlaps(i64::MIN, i64::MAX));
    let out = s.append(&samples(&[2000]), &NO_LIMIT, &mut stats, &mut Vec::new());
    assert_eq!(
        out.unwrap(),
        Appended::Removed,
        "a removed series takes no samples"
    );
}

#[test]
fn samples_below_min_valid_are_refused() {
    let s = new_series();
    let min_valid = AtomicI64::new(100);
    let mut stats = BatchStats::default();
    let mut logged = Vec::new();
    s.append(
        &samples(&[50, 100, 150]),
        &min_valid,
        &mut stats,
        &mut logged,
    )
    .unwrap();
    assert_eq!(logged, samples(&[100, 150]));
    assert_eq!(stats.outcome.out_of_order, 1);
}

#[test]
fn the_window_merges_late_samples_and_refuses_older_ones() {
    let s = new_series();
    let mut stats = BatchStats::default();
    let ooo = OooWindow {
        window: 102,
        head_max: 0,
    };
    let even: Vec<i64> = (0..300).map(|i| i * 2).collect();
    s.append_with(&samples(&even), &NO_LIMIT, ooo, &mut stats, &mut Vec::new())
        .unwrap();
    let closed_before = s.num_chunks();
    let mut logged = Vec::new();
    // 598 is the newest, so the window reaches back to 496; even ones are re-sends.
    let late = [597, 501, 498, 499, 497, 496, 500, 501, 495];
    s.append_with(&samples(&late), &NO_LIMIT, ooo, &mut stats, &mut logged)
        .unwrap();
    assert_eq!(
        logged,
        samples(&[497, 499, 501, 597]),
        "logged in time order"
    );
    assert_eq!((stats.ooo_appended, stats.too_old), (4, 1));
    assert_eq!(stats.outcome.out_of_order, 1);
    let mut want: Vec<i64> = even.clone();
    want.extend([497, 499, 501, 597]);
    want.sort_unstable();
    assert_eq!(s.samples_in(i64::MIN, i64::MAX).unwrap(), samples(&want));
    assert_eq!(
        s.num_chunks(),
        closed_before,
        "late samples fill the open chunk"
    );
    // A conflicting late value is a duplicate; in-order appends carry on after.
    let mut stats = BatchStats::default();
    let conflict = [Sample { t: 499, v: -1.0 }, Sample { t: 600, v: 600.0 }];
    s.append_with(&conflict, &NO_LIMIT, ooo, &mut stats, &mut Vec::new())
        .unwrap();
    assert_eq!(
        (stats.outcome.appended, stats.outcome.duplicate_timestamp),
        (1, 1)
    );
    assert_eq!(s.last_time(), Some(600));
    assert_eq!(s.first_time(), Some(0));
}

#[test]
fn late_samples_merge_into_order() {
    let s = new_series();
    let mut stats = BatchStats::default();
    let even: Vec<i64> = (0..300).map(|i| i * 2).collect();
    s.append(&samples(&even), &NO_LIMIT, &mut stats, &mut Vec::new())
        .unwrap();
    let late = samples(&[1, 3, 4, 599, 1000]);
    assert_eq!(s.merge_late(late).unwrap(), 4, "4 is already there");
    let got = s.samples_in(0, 5).unwrap();
    assert_eq!(got, samples(&[0, 1, 2, 3, 4]));
    assert_eq!(s.last_time(), Some(1000));
}

#[test]
fn chunks_are_cut_as_prometheus_cuts_them() {
    let two_hours = 7_200_000;
    let chunk_bounds = |ts: &[i64]| {
        let s = new_series();
        let mut stats = BatchStats::default();
        s.append(&samples(ts), &NO_LIMIT, &mut stats, &mut Vec::new())
            .unwrap();
        let data = s.data.lock().unwrap();
        let mut bounds: Vec<(i64, i64)> = data.closed.iter().map(|c| (c.min_t, c.max_t)).collect();
        if let Some(last) = data.last {
            bounds.push((data.open_min_t, last.t));
        }
        bounds
    };
    // 15 s samples over 4 h: four even chunks of 120 per 2 h range.
    let ts: Vec<i64> = (0..960).map(|i| i * 15_000).collect();
    let bounds = chunk_bounds(&ts);
    assert_eq!(bounds.len(), 8, "{bounds:?}");
    assert!(bounds.iter().all(|(lo, hi)| (hi - lo) / 15_000 + 1 == 120));
    // Samples across a range boundary: the chunk ends before it, the next starts after it,
    // although neither holds 120 samples (20 minutes at 15 s, 7.3 s off the minute).
    let ts: Vec<i64> = (0..80)
        .map(|i| two_hours - 600_000 + 7_300 + i * 15_000)
        .collect();
    let bounds = chunk_bounds(&ts);
    assert_eq!(bounds.len(), 2, "{bounds:?}");
    assert!(
        bounds[0].1 < two_hours && bounds[1].0 >= two_hours,
        "{bounds:?}"
    );
}

#[test]
fn reads_trim_chunks_that_stick_out_and_empty_ranges_read_nothing() {
    let s = new_series();
    let ts: Vec<i64> = (0..300).map(|i| i * 1000).collect();
    let mut stats = BatchStats::default();
    s.append(&samples(&ts), &NO_LIMIT, &mut stats, &mut Vec::new())
        .unwrap();
    assert_eq!(
        s.samples_in(5_500, 9_000).unwrap(),
        samples(&[6_000, 7_000, 8_000, 9_000])
    );
    assert_eq!(s.samples_in(i64::MIN, i64::MAX).unwrap(), samples(&ts));
    // Inside one chunk, but backwards: nothing, and no panic.
    assert_eq!(s.samples_in(9_000, 5_500).unwrap(), vec![]);
    assert_eq!(s.samples_in(299_000, 299_000).unwrap(), samples(&[299_000]));
}

#[test]
fn roll_back_removes_exactly_the_failed_samples_across_chunks() {
    let s = new_series();
    let mut stats = BatchStats::default();
    // 300 samples a second apart: several closed chunks and an open one.
    let kept: Vec<i64> = (0..300).map(|i| i * 1000).collect();
    s.append(&samples(&kept), &NO_LIMIT, &mut stats, &mut Vec::new())
        .unwrap();
    let failed: Vec<i64> = (300..450).map(|i| i * 1000).collect();
    s.append(&samples(&failed), &NO_LIMIT, &mut stats, &mut Vec::new())
        .unwrap();
    // Another request's sample, appended after the failed one but before its rollback.
    s.append(&samples(&[500_000]), &NO_LIMIT, &mut stats, &mut Vec::new())
        .unwrap();
    // A sample at a failed timestamp with other value bits is not the failed one.
    let mut not_ours = samples(&failed);
    not_ours[0].v = -1.0;
    assert_eq!(s.roll_back(&not_ours[..1]), Some(0));
    assert_eq!(s.roll_back(&samples(&failed)), Some(failed.len()));
    let mut want = samples(&kept);
    want.push(Sample {
        t: 500_000,
        v: 500_000.0,
    });
    assert_eq!(s.samples_in(i64::MIN, i64::MAX).unwrap(), want);
    // Appends go on after the rollback in order, and the failed range can be written again.
    let mut to_log = Vec::new();
    s.append(&samples(&[400_000]), &NO_LIMIT, &mut stats, &mut to_log)
        .unwrap();
    assert!(
        to_log.is_empty(),
        "older than the newest sample: out of order"
    );
    s.append(&samples(&[600_000]), &NO_LIMIT, &mut stats, &mut to_log)
        .unwrap();
    assert_eq!(to_log, samples(&[600_000]));
    assert_eq!(s.samples_in(300_000, 450_000).unwrap(), vec![]);
    assert_eq!(s.last_time(), Some(600_000));
}

#[test]
fn roll_back_of_every_sample_leaves_an_empty_series_that_takes_them_again() {
    let s = new_series();
    let mut stats = BatchStats::default();
    let ts: Vec<i64> = (0..200).map(|i| i * 1000).collect();
    s.append(&samples(&ts), &NO_LIMIT, &mut stats, &mut Vec::new())
        .unwrap();
    assert_eq!(s.roll_back(&samples(&ts)), Some(ts.len()));
    assert!(!s.overlaps(i64::MIN, i64::MAX));
    assert_eq!(s.first_time(), None);
    let mut to_log = Vec::new();
    s.append(&samples(&ts), &NO_LIMIT, &mut stats, &mut to_log)
        .unwrap();
    assert_eq!(
        to_log,
        samples(&ts),
        "a retry is appended afresh, not a re-send"
    );
}
