//! The head: the in-memory, appendable part of the TSDB, and its implementation of the
//! storage traits.
//!
//! Series are found by a hash of their label bytes (`series_key.rs`), so an append of
//! borrowed labels builds a `Labels` only for a series it creates.
//!
//! Locking: one `RwLock` guards the series registry (labels → id, id → series, postings). An
//! append holds its read side only to look its series up, and its write side only to create
//! the ones that are new; samples are then written under each series' own lock, so appends to
//! different series run in parallel. A query takes the read side to resolve matchers to series,
//! releases it, then reads each series under that series' lock.

use crate::index::MemPostings;
use crate::limits::{Broken, Limits};
use crate::metrics::AppendCounters;
use crate::postings::SeriesRef;
use crate::series::{Appended, BatchStats, MemSeries, OooWindow, Poisoned};
use crate::series_key::{LabelKey, MixState, SeriesIds};
use crate::stats::{postings_stats, HeadStatus};
use model::{
    AppendError, AppendOutcome, Appender, Labels, Matcher, Querier, Sample, Series, SeriesBatch,
    StorageError,
};
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// The in-memory head block: every series and sample appended so far, indexed for label
/// matchers.
///
/// Series get stable [`SeriesRef`] ids in creation order; an inverted index maps each label
/// pair to the sorted ids carrying it, so a selection touches only the series its matchers
/// admit. Out-of-order (beyond the configured window) and conflicting samples, and series
/// over the configured [`Limits`], are refused and counted as the [`AppendOutcome`] docs
/// define.
pub struct Head {
    registry: RwLock<Registry>,
    num_series: AtomicUsize,
    num_samples: AtomicUsize,
    /// `i64::MAX` / `i64::MIN` while the head is empty.
    min_time: AtomicI64,
    max_time: AtomicI64,
    /// Samples older than this are refused: their time is covered by a block already.
    /// `i64::MIN` until the first block.
    min_valid_time: AtomicI64,
    limits: Limits,
    /// Milliseconds behind the newest sample within which older samples are still taken;
    /// 0 refuses every sample older than its series' newest.
    ooo_window: i64,
    /// Appended and refused samples since start, by reason, for `/metrics`.
    pub(crate) counters: AppendCounters,
}

/// One element of a batch: its label set and its samples.
pub(crate) type Entry<'b, K> = (&'b K, &'b [Sample]);

/// What an element of a batch is appended to.
enum Target {
    /// Nothing: the element has no samples, and must not create a series.
    Skip,
    Series(Arc<MemSeries>),
    /// The series breaks a limit; its samples are refused.
    Refused(Broken),
}

/// Everything that changes when a series is created, behind one lock so the three views
/// always agree.
#[derive(Debug, Default)]
struct Registry {
    /// Label-set hash → id; a hit is confirmed against the series' labels.
    refs: SeriesIds,
    series: HashMap<SeriesRef, Arc<MemSeries>, MixState>,
    postings: MemPostings,
    /// The id the next new series gets; ids are never reused, so postings stay sorted by
    /// a plain push after series are dropped.
    next_id: u64,
    /// The block range in milliseconds: no head chunk spans one of its boundaries.
    chunk_range: i64,
}

impl Registry {
    /// The series of `labels`, whose [`LabelKey::key_hash`] is `hash`.
    fn get<K: LabelKey + ?Sized>(&self, labels: &K, hash: u64) -> Option<&Arc<MemSeries>> {
        let id = self.refs.find(hash, |id| {
            self.series
                .get(&id)
                .is_some_and(|s| labels.matches(&s.labels))
        })?;
        self.series.get(&id)
    }

    /// The series for `labels`, created and indexed if new.
    fn get_or_create<K: LabelKey + ?Sized>(
        &mut self,
        labels: &K,
        hash: u64,
    ) -> Result<Arc<MemSeries>, AppendError> {
        match self.get(labels, hash) {
            Some(s) => Ok(Arc::clone(s)),
            None => self.create(labels, hash),
        }
    }

    /// The series for `labels`, created if new and `limits` let a new series of its metric
    /// name join the head.
    fn get_or_create_within<K: LabelKey + ?Sized>(
        &mut self,
        labels: &K,
        hash: u64,
        limits: &Limits,
    ) -> Result<Result<Arc<MemSeries>, AppendError>, Broken> {
        if let Some(s) = self.get(labels, hash) {
            return Ok(Ok(Arc::clone(s)));
        }
        let name = labels.metric_name();
        limits.series_allowed(self.postings.count("__name__", name))?;
        Ok(self.create(labels, hash))
    }

    /// Creates the series of `labels`: the one place an append builds a `Labels`.
    fn create<K: LabelKey + ?Sized>(
        &mut self,
        labels: &K,
        hash: u64,
    ) -> Result<Arc<MemSeries>, AppendError> {
        let labels = Arc::new(labels.to_labels());
        let id = SeriesRef::try_from(self.next_id).map_err(|_| {
            AppendError::Other(format!(
                "head is full: cannot create series {labels}, ids are exhausted"
            ))
        })?;
        let series = Arc::new(MemSeries::new(id, Arc::clone(&labels), self.chunk_range));
        self.postings.add(id, &labels);
        self.refs.insert(hash, id);
        self.series.insert(id, Arc::clone(&series));
        self.next_id += 1;
        Ok(series)
    }
}

impl std::fmt::Debug for Head {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Head")
            .field("num_series", &self.num_series())
            .field("num_samples", &self.num_samples())
            .field("min_time", &self.min_time())
            .field("max_time", &self.max_time())
            .finish_non_exhaustive()
    }
}

impl Default for Head {
    fn default() -> Self {
        Head::new()
    }
}

fn registry_poisoned() -> String {
    "head index lock poisoned by an earlier panic".to_string()
}

impl Head {
    /// A head without limits or out-of-order window, cutting chunks at 2 h boundaries.
    pub fn new() -> Head {
        Head::with_options(
            Limits::default(),
            std::time::Duration::ZERO,
            crate::DEFAULT_BLOCK_RANGE,
        )
    }

    /// A head that refuses series breaking `limits`, takes samples up to
    /// `out_of_order_window` older than the newest one, and cuts its chunks so that none
    /// spans a boundary of `block_range` (as Prometheus's head does).
    pub fn with_options(
        limits: Limits,
        out_of_order_window: std::time::Duration,
        block_range: std::time::Duration,
    ) -> Head {
        Head {
            registry: RwLock::new(Registry {
                chunk_range: i64::try_from(block_range.as_millis()).unwrap_or(i64::MAX),
                ..Registry::default()
            }),
            num_series: AtomicUsize::new(0),
            num_samples: AtomicUsize::new(0),
            min_time: AtomicI64::new(i64::MAX),
            max_time: AtomicI64::new(i64::MIN),
            min_valid_time: AtomicI64::new(i64::MIN),
            limits,
            ooo_window: i64::try_from(out_of_order_window.as_millis()).unwrap_or(i64::MAX),
            counters: AppendCounters::default(),
        }
    }

    /// Samples older than this are refused (the end of the newest block).
    pub(crate) fn min_valid_time(&self) -> i64 {
        self.min_valid_time.load(Ordering::SeqCst)
    }

    pub(crate) fn min_valid_atomic(&self) -> &AtomicI64 {
        &self.min_valid_time
    }

    /// Raises the time below which samples are refused. Called before a block's samples are
    /// read from the head: an append checks it under its series' lock, so every sample
    /// accepted below `t` is in the series when the block writer reads it.
    pub(crate) fn set_min_valid_time(&self, t: i64) {
        self.min_valid_time.fetch_max(t, Ordering::SeqCst);
    }

    /// Series created so far, counting those whose first sample is still being written.
    pub fn num_series(&self) -> usize {
        self.num_series.load(Ordering::Relaxed)
    }

    /// Samples stored.
    pub fn num_samples(&self) -> usize {
        self.num_samples.load(Ordering::Relaxed)
    }

    /// The oldest sample's timestamp, if any sample is stored.
    pub fn min_time(&self) -> Option<i64> {
        Some(self.min_time.load(Ordering::Acquire)).filter(|&t| t != i64::MAX)
    }

    /// The newest sample's timestamp, if any sample is stored.
    pub fn max_time(&self) -> Option<i64> {
        Some(self.max_time.load(Ordering::Acquire)).filter(|&t| t != i64::MIN)
    }

    fn read_registry(&self) -> Result<RwLockReadGuard<'_, Registry>, StorageError> {
        self.registry
            .read()
            .map_err(|_| StorageError::Other(registry_poisoned()))
    }

    fn write_registry(&self) -> Result<RwLockWriteGuard<'_, Registry>, AppendError> {
        self.registry
            .write()
            .map_err(|_| AppendError::Other(registry_poisoned()))
    }

    /// What each element of `batch` is appended to, in order, creating the new series the
    /// limits allow.
    fn resolve<K: LabelKey + ?Sized>(
        &self,
        batch: &[Entry<'_, K>],
    ) -> Result<Vec<Target>, AppendError> {
        let mut resolved = Vec::with_capacity(batch.len());
        let mut missing = false;
        // Hashed before the lock is taken, and kept for the write-locked pass.
        let mut scratch = Vec::with_capacity(256);
        let hashes: Vec<u64> = batch
            .iter()
            .map(|(labels, _)| labels.key_hash(&mut scratch))
            .collect();
        {
            let registry = self
                .registry
                .read()
                .map_err(|_| AppendError::Other(registry_poisoned()))?;
            for (&(labels, samples), &hash) in batch.iter().zip(&hashes) {
                let target = if samples.is_empty() {
                    Target::Skip
                } else if let Some(broken) = self.limits.check_key(labels) {
                    Target::Refused(broken)
                } else if let Some(found) = registry.get(labels, hash) {
                    Target::Series(Arc::clone(found))
                } else {
                    missing = true;
                    Target::Skip
                };
                resolved.push(target);
            }
        }
        if !missing {
            return Ok(resolved);
        }
        // Another append may create the same series between the two locks;
        // get_or_create_within looks again under the write lock, so each label set still
        // gets exactly one id, and the series-per-metric count is exact.
        let mut registry = self.write_registry()?;
        for ((slot, &(labels, samples)), &hash) in resolved.iter_mut().zip(batch).zip(&hashes) {
            if matches!(slot, Target::Skip) && !samples.is_empty() {
                let before = registry.series.len();
                *slot = match registry.get_or_create_within(labels, hash, &self.limits) {
                    Ok(series) => Target::Series(series?),
                    Err(broken) => Target::Refused(broken),
                };
                if registry.series.len() > before {
                    self.num_series.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        Ok(resolved)
    }

    /// The sorted ids the matchers admit, before any time filtering.
    #[cfg(test)]
    fn postings_for(&self, matchers: &[Matcher]) -> Result<Vec<SeriesRef>, StorageError> {
        Ok(self.read_registry()?.postings.for_matchers(matchers))
    }

    /// The series that satisfy every matcher and have a sample in `[mint, maxt]`, sorted by
    /// labels. Only the series the postings admit are looked at.
    fn matching(
        &self,
        mint: i64,
        maxt: i64,
        matchers: &[Matcher],
    ) -> Result<Vec<Arc<MemSeries>>, StorageError> {
        if mint > maxt {
            return Ok(Vec::new());
        }
        let mut out: Vec<Arc<MemSeries>> = {
            let registry = self.read_registry()?;
            registry
                .postings
                .for_matchers(matchers)
                .into_iter()
                .filter_map(|id| registry.series.get(&id))
                .filter(|s| s.overlaps(mint, maxt))
                .map(Arc::clone)
                .collect()
        };
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(out)
    }

    /// Whether `[mint, maxt]` covers every sample in the head, so that "has a sample in
    /// range" holds for every series and the index alone can answer label queries.
    ///
    /// Racing appends can make this answer stale for an instant (a series is indexed before
    /// its first sample lands, the head bounds move after the samples do); label queries
    /// tolerate that, as Prometheus's do.
    fn covers_everything(&self, mint: i64, maxt: i64) -> bool {
        match (self.min_time(), self.max_time()) {
            (Some(lo), Some(hi)) => mint <= lo && hi <= maxt,
            _ => true,
        }
    }
}

impl Querier for Head {
    fn select(
        &self,
        mint: i64,
        maxt: i64,
        matchers: &[Matcher],
    ) -> Result<Vec<Series>, StorageError> {
        let mut out = Vec::new();
        for s in self.matching(mint, maxt, matchers)? {
            let samples = s.samples_in(mint, maxt)?;
            if !samples.is_empty() {
                out.push(Series {
                    labels: Labels::clone(&s.labels),
                    samples,
                });
            }
        }
        Ok(out)
    }

    fn series(
        &self,
        mint: i64,
        maxt: i64,
        matchers: &[Matcher],
    ) -> Result<Vec<Labels>, StorageError> {
        Ok(self
            .matching(mint, maxt, matchers)?
            .iter()
            .map(|s| Labels::clone(&s.labels))
            .collect())
    }

    fn label_names(
        &self,
        mint: i64,
        maxt: i64,
        matchers: &[Matcher],
    ) -> Result<Vec<String>, StorageError> {
        if matchers.is_empty() && self.covers_everything(mint, maxt) {
            let registry = self.read_registry()?;
            return Ok(registry.postings.names().map(str::to_string).collect());
        }
        let mut names = BTreeSet::new();
        for s in self.matching(mint, maxt, matchers)? {
            for l in s.labels.iter() {
                if !names.contains(l.name.as_str()) {
                    names.insert(l.name.clone());
                }
            }
        }
        Ok(names.into_iter().collect())
    }

    fn label_values(
        &self,
        name: &str,
        mint: i64,
        maxt: i64,
        matchers: &[Matcher],
    ) -> Result<Vec<String>, StorageError> {
        if matchers.is_empty() && self.covers_everything(mint, maxt) {
            let registry = self.read_registry()?;
            return Ok(registry.postings.values(name).map(str::to_string).collect());
        }
        let mut values = BTreeSet::new();
        for s in self.matching(mint, maxt, matchers)? {
            if let Some(v) = s.labels.get(name) {
                if !values.contains(v) {
                    values.insert(v.to_string());
                }
            }
        }
        Ok(values.into_iter().collect())
    }
}

impl Appender for Head {
    fn append(&self, batch: &[Series]) -> Result<AppendOutcome, AppendError> {
        self.apply(&owned_entries(batch), &mut |_, _| {})
    }

    fn append_batch(&self, batch: &SeriesBatch<'_>) -> Result<AppendOutcome, AppendError> {
        self.apply(&borrowed_entries(batch), &mut |_, _| {})
    }
}

/// The entries of a batch of owned series.
pub(crate) fn owned_entries(batch: &[Series]) -> Vec<Entry<'_, Labels>> {
    batch
        .iter()
        .map(|s| (&s.labels, s.samples.as_slice()))
        .collect()
}

/// The entries of a batch of borrowed series.
pub(crate) fn borrowed_entries<'b>(
    batch: &'b SeriesBatch<'_>,
) -> Vec<Entry<'b, [(&'b str, &'b str)]>> {
    batch.iter().map(|s| (s.labels, s.samples)).collect()
}

impl Head {
    /// Appends a batch to memory, handing each series' samples to log (see
    /// `MemSeries::append`) to `sink`, the WAL encoder, so that what is logged for a series
    /// is exactly what it stored, in the order it stored it.
    pub(crate) fn apply<K: LabelKey + ?Sized>(
        &self,
        batch: &[Entry<'_, K>],
        sink: &mut dyn FnMut(&Arc<MemSeries>, &[Sample]),
    ) -> Result<AppendOutcome, AppendError> {
        let targets = self.resolve(batch)?;
        let mut stats = BatchStats::default();
        let mut to_log = Vec::new();
        let ooo = OooWindow {
            window: self.ooo_window,
            head_max: self.max_time.load(Ordering::Acquire),
        };
        for (&(labels, samples), target) in batch.iter().zip(targets) {
            let mut series = match target {
                Target::Skip => continue,
                Target::Series(series) => series,
                Target::Refused(broken) => {
                    stats.outcome.over_limit += samples.len();
                    stats.outcome.limit.get_or_insert(broken);
                    self.counters.refused_by_limit(broken.0, samples.len());
                    continue;
                }
            };
            let poisoned = |Poisoned| {
                AppendError::Other(format!(
                    "series {} is unwritable after a panic",
                    labels.to_labels()
                ))
            };
            // A block cut may drop the series between its lookup and this append; the
            // labels are then looked up (and the series created) again. The cut cannot
            // drop the fresh series before this append writes to it unless it races
            // another cut, so a few rounds always suffice.
            let mut rounds = 0;
            while series
                .append_with(samples, &self.min_valid_time, ooo, &mut stats, &mut to_log)
                .map_err(poisoned)?
                == Appended::Removed
            {
                rounds += 1;
                if rounds > 8 {
                    return Err(AppendError::Other(format!(
                        "series {} was dropped by block cuts {rounds} times in a row",
                        labels.to_labels()
                    )));
                }
                series = self.get_or_create(labels)?;
            }
            if !to_log.is_empty() {
                sink(&series, &to_log);
            }
        }
        self.account(&stats);
        self.counters.add(&stats);
        Ok(stats.outcome)
    }

    /// Adds what a batch stored to the head's counters and time bounds.
    pub(crate) fn account(&self, stats: &BatchStats) {
        if stats.outcome.appended > 0 {
            self.num_samples
                .fetch_add(stats.outcome.appended, Ordering::Relaxed);
            self.min_time.fetch_min(stats.min_t, Ordering::AcqRel);
            self.max_time.fetch_max(stats.max_t, Ordering::AcqRel);
        }
    }

    /// The series for `labels`, created if new: WAL replay's way in.
    pub(crate) fn get_or_create<K: LabelKey + ?Sized>(
        &self,
        labels: &K,
    ) -> Result<Arc<MemSeries>, AppendError> {
        let hash = labels.key_hash(&mut Vec::new());
        if let Some(s) = self
            .read_registry()
            .ok()
            .and_then(|r| r.get(labels, hash).map(Arc::clone))
        {
            return Ok(s);
        }
        let mut registry = self.write_registry()?;
        let before = registry.series.len();
        let series = registry.get_or_create(labels, hash)?;
        if registry.series.len() > before {
            self.num_series.fetch_add(1, Ordering::Relaxed);
        }
        Ok(series)
    }

    /// Every series, in id order.
    #[cfg(test)]
    pub(crate) fn all_for_test(&self) -> Vec<Arc<MemSeries>> {
        let mut all: Vec<Arc<MemSeries>> = self
            .read_registry()
            .map(|r| r.series.values().cloned().collect())
            .unwrap_or_default();
        all.sort_by_key(|s| s.id);
        all
    }

    /// Every series, in no particular order: what a checkpoint walks.
    pub(crate) fn series_list(&self) -> Result<Vec<Arc<MemSeries>>, StorageError> {
        Ok(self.read_registry()?.series.values().cloned().collect())
    }

    /// Every series, sorted by labels: what a block cut reads, one series at a time.
    pub(crate) fn sorted_series(&self) -> Result<Vec<Arc<MemSeries>>, StorageError> {
        let mut all: Vec<Arc<MemSeries>> = self.read_registry()?.series.values().cloned().collect();
        all.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(all)
    }

    /// Drops every sample older than `t` (now in a block), and every series left without
    /// samples, from the series, the postings and the counters. Holds the registry's write
    /// lock throughout, so no lookup finds a series being dropped; an append that found one
    /// earlier sees it marked removed and looks its labels up again.
    pub(crate) fn truncate(&self, t: i64) -> Result<Truncated, AppendError> {
        let mut registry = self.write_registry()?;
        let mut out = Truncated::default();
        let mut dead = Vec::new();
        let (mut lo, mut hi) = (i64::MAX, i64::MIN);
        for (id, s) in &registry.series {
            let (dropped, removed) = s.truncate_before(t).map_err(|Poisoned| {
                AppendError::Other(format!("series {} is unwritable after a panic", s.labels))
            })?;
            out.samples += dropped;
            if removed {
                dead.push(*id);
            } else if let (Some(a), Some(b)) = (s.first_time(), s.last_time()) {
                lo = lo.min(a);
                hi = hi.max(b);
            }
        }
        dead.sort_unstable();
        let mut scratch = Vec::new();
        for id in &dead {
            if let Some(s) = registry.series.remove(id) {
                registry.refs.remove(s.labels.key_hash(&mut scratch), *id);
            }
        }
        registry.postings.remove(&dead);
        out.series = dead.len();
        self.num_series.fetch_sub(out.series, Ordering::Relaxed);
        self.num_samples.fetch_sub(out.samples, Ordering::Relaxed);
        // An append to a surviving series racing this loop may have its fetch_min
        // overwritten here; its samples are at or after `t`, so the bound can only be late
        // by that race, and the bounds steer planning (cuts, index-only label queries),
        // never which samples a query returns.
        self.min_time.store(lo, Ordering::Release);
        if lo == i64::MAX {
            self.max_time.store(i64::MIN, Ordering::Release);
        } else {
            self.max_time.fetch_max(hi, Ordering::AcqRel);
        }
        Ok(out)
    }

    /// The head's totals and its cardinality top lists, each at most `limit` long. Holds the
    /// index's read lock for one pass over the postings, so appends of new series wait that
    /// long; appends to existing series do not.
    pub fn status(&self, limit: usize) -> Result<HeadStatus, StorageError> {
        let registry = self.read_registry()?;
        let postings = postings_stats(&registry.postings, limit);
        let num_chunks = registry
            .series
            .values()
            .map(|s| s.num_chunks() as u64)
            .sum();
        Ok(HeadStatus {
            num_series: registry.series.len() as u64,
            num_label_pairs: postings.num_label_pairs,
            num_chunks,
            min_time: self.min_time(),
            max_time: self.max_time(),
            series_count_by_metric_name: postings.by_metric_name,
            label_value_count_by_label_name: postings.values_by_label_name,
            memory_in_bytes_by_label_name: postings.bytes_by_label_name,
            series_count_by_label_value_pair: postings.series_by_pair,
        })
    }

    /// Chunks held over all series, open ones included.
    pub fn num_chunks(&self) -> usize {
        self.read_registry()
            .map(|r| r.series.values().map(|s| s.num_chunks()).sum())
            .unwrap_or(0)
    }
}

/// What [`Head::truncate`] dropped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Truncated {
    pub(crate) series: usize,
    pub(crate) samples: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::MatchOp;

    fn series(pairs: &[(&str, &str)], ts: &[i64]) -> Series {
        Series {
            labels: Labels::from_pairs(pairs.iter().copied()),
            samples: ts.iter().map(|&t| Sample { t, v: 1.0 }).collect(),
        }
    }

    #[test]
    fn head_passes_conformance() {
        model::conformance::run_all(Head::new);
    }

    #[test]
    fn head_passes_conformance_through_append_batch() {
        model::conformance::run_all(|| model::conformance::ViaBatch(Head::new()));
    }

    #[test]
    fn borrowed_and_owned_appends_share_series() {
        let head = Head::new();
        let owned = [series(&[("__name__", "up"), ("job", "a")], &[1])];
        head.append(&owned).unwrap();
        let later = [
            series(&[("__name__", "up"), ("job", "a")], &[2]),
            series(&[("__name__", "up"), ("job", "b")], &[2]),
        ];
        let out = head
            .append_batch(&SeriesBatch::from_series(&later))
            .unwrap();
        assert_eq!(out.appended, 2);
        assert_eq!(head.num_series(), 2);
        head.append(&later).unwrap();
        assert_eq!((head.num_series(), head.num_samples()), (2, 3));
        let ms = [Matcher::new(MatchOp::Equal, "job", "a").unwrap()];
        let got = head.select(0, 10, &ms).unwrap();
        assert_eq!(
            got[0].samples.iter().map(|s| s.t).collect::<Vec<_>>(),
            [1, 2]
        );
    }

    #[test]
    fn dropped_series_are_found_no_more_and_created_anew() {
        let head = Head::new();
        head.append(&[series(&[("a", "1")], &[1]), series(&[("a", "2")], &[5])])
            .unwrap();
        let dropped = head.truncate(3).unwrap();
        assert_eq!(dropped.series, 1);
        let out = head
            .append_batch(&SeriesBatch::from_series(&[series(&[("a", "1")], &[6])]))
            .unwrap();
        assert_eq!(out.appended, 1);
        assert_eq!(head.num_series(), 2);
        let ids: Vec<_> = head.all_for_test().iter().map(|s| s.id).collect();
        assert_eq!(ids, [1, 2], "the series of a=\"1\" got a new id");
    }

    #[test]
    fn equal_matcher_on_ten_thousand_series_visits_one() {
        let head = Head::new();
        let batch: Vec<Series> = (0..10_000)
            .map(|i| {
                let instance = format!("host-{i}");
                let job = format!("job-{}", i % 10);
                series(
                    &[("instance", instance.as_str()), ("job", job.as_str())],
                    &[1],
                )
            })
            .collect();
        head.append(&batch).unwrap();
        assert_eq!(head.num_series(), 10_000);

        let ms = [Matcher::new(MatchOp::Equal, "instance", "host-4242").unwrap()];
        // `matching` reads only the series the postings admit: one id, not ten thousand.
        assert_eq!(head.postings_for(&ms).unwrap().len(), 1);
        assert_eq!(head.matching(0, 10, &ms).unwrap().len(), 1);
        let got = head.select(0, 10, &ms).unwrap();
        assert_eq!(got[0].labels.get("instance"), Some("host-4242"));

        let ms = [
            Matcher::new(MatchOp::Equal, "job", "job-3").unwrap(),
            Matcher::new(MatchOp::Regex, "instance", "host-13|host-23|host-24").unwrap(),
        ];
        assert_eq!(head.postings_for(&ms).unwrap().len(), 2);
    }

    #[test]
    fn stats_track_series_samples_and_time() {
        let head = Head::new();
        assert_eq!((head.min_time(), head.max_time()), (None, None));
        let out = head
            .append(&[
                series(&[("a", "1")], &[10, 20]),
                series(&[("a", "2")], &[5]),
                series(&[("a", "3")], &[]),
            ])
            .unwrap();
        assert_eq!(out.appended, 3);
        head.append(&[series(&[("a", "1")], &[15, 30])]).unwrap();
        assert_eq!(
            head.num_series(),
            2,
            "a series sent without samples is not created"
        );
        assert_eq!(head.num_samples(), 4);
        assert_eq!((head.min_time(), head.max_time()), (Some(5), Some(30)));
    }

    #[test]
    fn label_queries_use_the_index_only_when_the_range_covers_the_head() {
        let head = Head::new();
        head.append(&[
            series(&[("a", "1"), ("old", "x")], &[10]),
            series(&[("a", "2")], &[100]),
        ])
        .unwrap();
        assert_eq!(head.label_names(0, 100, &[]).unwrap(), ["a", "old"]);
        assert_eq!(head.label_names(50, 100, &[]).unwrap(), ["a"]);
        assert_eq!(head.label_values("a", 0, 1000, &[]).unwrap(), ["1", "2"]);
        assert_eq!(head.label_values("a", 11, 1000, &[]).unwrap(), ["2"]);
    }

    #[test]
    fn head_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Head>();
    }
}
