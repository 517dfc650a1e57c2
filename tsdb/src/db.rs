//! [`Tsdb`]: the durable store, a head whose every accepted sample is in the fsync'd WAL
//! before the append returns, rebuilt from that WAL on open.
//!
//! Layout of the data directory (`FORMAT.md`): `lock` is held with `flock` while the store
//! is open, `wal/` holds the segments. Blocks, cut from
//! the head every two hours, are the next slice and will sit beside it.

use crate::error::Error;
use crate::head::Head;
use crate::lock::DirLock;
use crate::postings::SeriesRef;
use crate::series::{BatchStats, MemSeries};
use crate::stats::HeadStatus;
use crate::wal::{self, Record, ReplayStats, SamplesEncoder, Wal};
use model::{
    AppendError, AppendOutcome, Appender, Labels, Matcher, Querier, Sample, Series, StorageError,
};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// How a [`Tsdb`] is opened.
#[derive(Clone, Debug)]
pub struct TsdbOptions {
    /// Size at which a WAL segment is closed and the next one started; default
    /// [`wal::DEFAULT_SEGMENT_BYTES`] (128 MiB, as Prometheus).
    pub wal_segment_bytes: u64,
}

impl Default for TsdbOptions {
    fn default() -> Self {
        TsdbOptions {
            wal_segment_bytes: wal::DEFAULT_SEGMENT_BYTES,
        }
    }
}

/// The durable time-series store: implements [`Querier`] and [`Appender`], and an
/// acknowledged append survives a crash of the process or the machine.
#[derive(Debug)]
pub struct Tsdb {
    dir: PathBuf,
    head: Head,
    wal: Wal,
    replay: ReplayStats,
    /// Declared last so it is dropped last: the directory stays locked until the WAL's
    /// files are closed.
    _lock: DirLock,
}

impl Tsdb {
    /// Opens the store in `dir` (created if missing), locking the directory and replaying
    /// its WAL. A torn or corrupt WAL tail is cut at the last good record with a warning;
    /// only I/O errors, files of another format version, and a directory another open
    /// store holds ([`Error::Locked`]) fail the open.
    pub fn open(dir: impl AsRef<Path>, options: TsdbOptions) -> Result<Tsdb, Error> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(Error::io("create", &dir))?;
        // Taken before the WAL is read: another process may be writing it.
        let lock = DirLock::acquire(&dir)?;
        let started = Instant::now();
        let head = Head::new();
        let mut replay = Replayer::new(&head);
        let (wal, stats) = Wal::open(
            &dir.join("wal"),
            options.wal_segment_bytes,
            |segment, rec| replay.record(segment, rec),
        )?;
        replay.finish();
        tracing::info!(
            dir = %dir.display(),
            segments = stats.segments,
            records = stats.records,
            repaired = stats.repaired,
            series = head.num_series(),
            samples = head.num_samples(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "tsdb opened, WAL replayed"
        );
        Ok(Tsdb {
            dir,
            head,
            wal,
            replay: stats,
            _lock: lock,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What the WAL replay at open found.
    pub fn replay_stats(&self) -> &ReplayStats {
        &self.replay
    }

    /// The head's totals and cardinality top lists, each at most `limit` long: what
    /// Prometheus's `/api/v1/status/tsdb` reports. Fails only if an earlier panic poisoned
    /// the index.
    pub fn status(&self, limit: usize) -> Result<HeadStatus, StorageError> {
        self.head.status(limit)
    }

    /// Series in the head.
    pub fn num_series(&self) -> usize {
        self.head.num_series()
    }

    /// Samples in the head.
    pub fn num_samples(&self) -> usize {
        self.head.num_samples()
    }

    /// The oldest sample's timestamp, if any sample is stored.
    pub fn min_time(&self) -> Option<i64> {
        self.head.min_time()
    }

    /// The newest sample's timestamp, if any sample is stored.
    pub fn max_time(&self) -> Option<i64> {
        self.head.max_time()
    }

    /// Chunks in the head, open ones included.
    pub fn num_chunks(&self) -> usize {
        self.head.num_chunks()
    }

    /// WAL fsyncs since open; with group commit, fewer than the appends they served.
    pub fn wal_fsyncs(&self) -> u64 {
        self.wal.fsyncs()
    }
}

impl Appender for Tsdb {
    /// Applies the batch to the head, logs what was accepted, and returns once it is
    /// fsync'd. The head shows the samples a moment before they are durable; if the WAL
    /// fails, the error is returned and the request is not acknowledged.
    fn append(&self, batch: &[Series]) -> Result<AppendOutcome, AppendError> {
        let mut records = SamplesEncoder::default();
        // Each series logged, with the time range of what was logged for it.
        let mut touched: Vec<(Arc<MemSeries>, i64, i64)> = Vec::new();
        let outcome = self.head.apply(batch, &mut |series, to_log| {
            if let (Some(a), Some(b)) = (to_log.first(), to_log.last()) {
                records.add(series.id, to_log);
                touched.push((Arc::clone(series), a.t, b.t));
            }
        })?;
        if touched.is_empty() {
            return Ok(outcome);
        }
        let series: Vec<Arc<MemSeries>> = touched.iter().map(|(s, _, _)| Arc::clone(s)).collect();
        let logged = self
            .wal
            .log(&series, &records.finish())
            .and_then(|pos| self.wal.wait_durable(pos));
        match logged {
            Ok(()) => {
                for (s, lo, hi) in &touched {
                    s.mark_synced(*lo, *hi);
                }
                Ok(outcome)
            }
            Err(e) => {
                // Marked before the error is returned, so a client's retry, which can only
                // come after, re-logs these samples instead of taking them as re-sends.
                for (s, lo, hi) in &touched {
                    s.mark_unsynced(*lo, *hi);
                }
                Err(AppendError::Io(e))
            }
        }
    }
}

impl Querier for Tsdb {
    fn select(
        &self,
        mint: i64,
        maxt: i64,
        matchers: &[Matcher],
    ) -> Result<Vec<Series>, StorageError> {
        self.head.select(mint, maxt, matchers)
    }

    fn series(
        &self,
        mint: i64,
        maxt: i64,
        matchers: &[Matcher],
    ) -> Result<Vec<Labels>, StorageError> {
        self.head.series(mint, maxt, matchers)
    }

    fn label_names(
        &self,
        mint: i64,
        maxt: i64,
        matchers: &[Matcher],
    ) -> Result<Vec<String>, StorageError> {
        self.head.label_names(mint, maxt, matchers)
    }

    fn label_values(
        &self,
        name: &str,
        mint: i64,
        maxt: i64,
        matchers: &[Matcher],
    ) -> Result<Vec<String>, StorageError> {
        self.head.label_values(name, mint, maxt, matchers)
    }
}

/// Rebuilds the head from WAL records.
struct Replayer<'a> {
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
    fn new(head: &'a Head) -> Self {
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

    fn record(&mut self, segment: u64, rec: Record) {
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
        let last = series.last_time();
        let split = samples.partition_point(|s| last.is_some_and(|l| s.t <= l));
        if split > 0 {
            self.late
                .entry(series.id)
                .or_insert_with(|| (Arc::clone(series), Vec::new()))
                .1
                .extend_from_slice(&samples[..split]);
        }
        if series
            .append(&samples[split..], &mut self.stats, &mut self.accepted)
            .is_err()
        {
            self.refused += 1;
        }
    }

    fn finish(mut self) {
        for (series, mut late) in self.late.into_values() {
            let (Some(lo), Some(hi)) = (
                late.iter().map(|s| s.t).min(),
                late.iter().map(|s| s.t).max(),
            ) else {
                continue;
            };
            if let Ok(added) = series.merge_late(&mut late) {
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

#[cfg(test)]
mod tests;
