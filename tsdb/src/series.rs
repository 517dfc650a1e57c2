//! One series in the head: its labels, its samples behind a lock of its own, and its time
//! bounds readable without that lock.
//!
//! Samples live in a plain vector for now; compressed chunks replace it later without
//! changing what this type promises: samples in strictly ascending time order, and
//! `min_time`/`max_time` that let a query skip the series without touching its samples.

use model::{AppendOutcome, Labels, Sample, StorageError};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

/// A series' time bounds while it has no sample: an empty range that no query overlaps.
const NO_MIN: i64 = i64::MAX;
const NO_MAX: i64 = i64::MIN;

#[derive(Debug)]
pub(crate) struct MemSeries {
    /// Shared with the head's labels → id map, so each label set is stored once.
    pub(crate) labels: Arc<Labels>,
    samples: Mutex<Vec<Sample>>,
    /// Written under the `samples` lock, read without it.
    min_time: AtomicI64,
    max_time: AtomicI64,
}

/// What appending one batch did, summed over its series.
#[derive(Debug)]
pub(crate) struct BatchStats {
    pub(crate) outcome: AppendOutcome,
    /// The oldest and newest timestamps appended; `NO_MIN`/`NO_MAX` when nothing was.
    pub(crate) min_t: i64,
    pub(crate) max_t: i64,
}

impl Default for BatchStats {
    fn default() -> Self {
        BatchStats {
            outcome: AppendOutcome::default(),
            min_t: NO_MIN,
            max_t: NO_MAX,
        }
    }
}

/// The lock is only poisoned if a panic struck while a series was being appended to; its
/// samples may then be half-written, so the series is reported broken rather than read.
#[derive(Debug)]
pub(crate) struct Poisoned;

impl MemSeries {
    pub(crate) fn new(labels: Arc<Labels>) -> Self {
        MemSeries {
            labels,
            samples: Mutex::new(Vec::new()),
            min_time: AtomicI64::new(NO_MIN),
            max_time: AtomicI64::new(NO_MAX),
        }
    }

    /// Appends in order, refusing what the `AppendOutcome` docs say to refuse: a sample older
    /// than the newest is out of order; one at the newest timestamp is a silent no-op when its
    /// value has the same bits (a re-send) and a conflicting duplicate otherwise.
    pub(crate) fn append(
        &self,
        samples: &[Sample],
        stats: &mut BatchStats,
    ) -> Result<(), Poisoned> {
        let mut stored = self.samples.lock().map_err(|_| Poisoned)?;
        let before = stored.len();
        for &sample in samples {
            match stored.last() {
                Some(last) if sample.t < last.t => stats.outcome.out_of_order += 1,
                Some(last) if sample.t == last.t => {
                    if last.v.to_bits() != sample.v.to_bits() {
                        stats.outcome.duplicate_timestamp += 1;
                    }
                }
                _ => stored.push(sample),
            }
        }
        let added = &stored[before..];
        if let (Some(first), Some(last)) = (added.first(), added.last()) {
            stats.outcome.appended += added.len();
            stats.min_t = stats.min_t.min(first.t);
            stats.max_t = stats.max_t.max(last.t);
            if before == 0 {
                self.min_time.store(first.t, Ordering::Release);
            }
            self.max_time.store(last.t, Ordering::Release);
        }
        Ok(())
    }

    /// Whether the series has a sample time span touching `[mint, maxt]`, without locking.
    /// A series still being created (no sample yet) overlaps nothing.
    pub(crate) fn overlaps(&self, mint: i64, maxt: i64) -> bool {
        let min = self.min_time.load(Ordering::Acquire);
        let max = self.max_time.load(Ordering::Acquire);
        // The empty sentinels would overlap a query over all time, so check for them first.
        min <= max && min <= maxt && mint <= max
    }

    /// The samples in `[mint, maxt]`, found by binary search.
    pub(crate) fn samples_in(&self, mint: i64, maxt: i64) -> Result<Vec<Sample>, StorageError> {
        let stored = self.samples.lock().map_err(|_| {
            StorageError::Other(format!(
                "series {} is unreadable after a panic",
                self.labels
            ))
        })?;
        let lo = stored.partition_point(|s| s.t < mint);
        let hi = stored.partition_point(|s| s.t <= maxt);
        Ok(stored
            .get(lo..hi)
            .map(<[Sample]>::to_vec)
            .unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(ts: &[i64]) -> Vec<Sample> {
        ts.iter().map(|&t| Sample { t, v: t as f64 }).collect()
    }

    #[test]
    fn bounds_follow_appended_samples() {
        let s = MemSeries::new(Arc::new(Labels::from_pairs([("a", "1")])));
        assert!(!s.overlaps(i64::MIN, i64::MAX), "no samples yet");
        let mut stats = BatchStats::default();
        s.append(&samples(&[10, 20, 5, 30]), &mut stats).unwrap();
        assert_eq!((stats.outcome.appended, stats.outcome.out_of_order), (3, 1));
        assert_eq!((stats.min_t, stats.max_t), (10, 30));
        assert!(s.overlaps(30, 40) && s.overlaps(0, 10) && s.overlaps(15, 16));
        assert!(!s.overlaps(31, 40) && !s.overlaps(0, 9));
        assert_eq!(s.samples_in(11, 30).unwrap(), samples(&[20, 30]));
        assert_eq!(s.samples_in(40, 0).unwrap(), vec![]);
    }
}
