//! WAL replay: rebuilding the head from the records of every segment, skipping samples
//! that blocks already hold.

use crate::head::Head;
use crate::postings::SeriesRef;
use crate::series::{BatchStats, MemSeries};
use crate::wal::Record;
use model::Sample;
use std::collections::HashMap;
use std::sync::Arc;

/// Rebuilds the head from WAL records.
pub(crate) struct Replayer<'a> {
    head: &'a Head,
    /// The segment being read; ids are local to a segment.
    segment: u64,
    ids: HashMap<u64, Arc<MemSeries>>,
    stats: BatchStats,
    /// Samples met after a newer sample of their series (see [`MemSeries::merge_late`]).
    late: HashMap<SeriesRef, (Arc<MemSeries>, Vec<Sample>)>,
    accepted: Vec<Sample>,
    /// Samples naming a series id no record of their segment defined, and series records
    /// the head refused: both mean damage the CRCs did not catch, so they are counted and
    /// logged rather than failing the start.
    orphaned: usize,
    refused: usize,
}

impl<'a> Replayer<'a> {
    pub(crate) fn new(head: &'a Head) -> Self {
        Replayer {
            head,
            segment: 0,
            ids: HashMap::new(),
            stats: BatchStats::default(),
            late: HashMap::new(),
            accepted: Vec::new(),
            orphaned: 0,
            refused: 0,
        }
    }

    pub(crate) fn record(&mut self, segment: u64, rec: Record) {
        if segment != self.segment {
            self.segment = segment;
            self.ids.clear();
        }
        match rec {
            Record::Series(list) => {
                for (id, labels) in list {
                    match self.head.get_or_create(&labels) {
                        Ok(s) => {
                            self.ids.insert(id, s);
                        }
                        Err(_) => self.refused += 1,
                    }
                }
            }
            Record::Samples(entries) => {
                for (id, samples) in entries {
                    match self.ids.get(&id) {
                        Some(series) => {
                            let series = Arc::clone(series);
                            self.samples(&series, &samples);
                        }
                        None => self.orphaned += samples.len(),
                    }
                }
            }
        }
    }

    fn samples(&mut self, series: &Arc<MemSeries>, samples: &[Sample]) {
        // Samples older than the newest block's end are in blocks already (the block cut
        // that wrote them removes WAL segments only afterwards, and maybe not all of them).
        let min_valid = self.head.min_valid_time();
        let samples = &samples[samples.partition_point(|s| s.t < min_valid)..];
        let last = series.last_time();
        let split = samples.partition_point(|s| last.is_some_and(|l| s.t <= l));
        if split > 0 {
            self.late
                .entry(series.id)
                .or_insert_with(|| (Arc::clone(series), Vec::new()))
                .1
                .extend_from_slice(&samples[..split]);
        }
        // The head cannot drop a series during replay: nothing truncates it until open ends.
        if series
            .append(
                &samples[split..],
                self.head.min_valid_atomic(),
                &mut self.stats,
                &mut self.accepted,
            )
            .is_err()
        {
            self.refused += 1;
        }
    }

    pub(crate) fn finish(mut self) {
        for (series, late) in self.late.into_values() {
            let (Some(lo), Some(hi)) = (
                late.iter().map(|s| s.t).min(),
                late.iter().map(|s| s.t).max(),
            ) else {
                continue;
            };
            if let Ok(added) = series.merge_late(late) {
                self.stats.outcome.appended += added;
                self.stats.min_t = self.stats.min_t.min(lo);
                self.stats.max_t = self.stats.max_t.max(hi);
            }
        }
        self.head.account(&self.stats);
        if self.orphaned > 0 || self.refused > 0 {
            tracing::warn!(
                orphaned_samples = self.orphaned,
                refused = self.refused,
                "WAL replay skipped damaged entries"
            );
        }
    }
}
