//! The store's background work, in the order one round does it: cutting the head's oldest
//! block-range window into a block (then truncating head and WAL), compacting three
//! adjacent blocks of one level into one (2h → 6h → 18h), and deleting blocks past the
//! retention limits, oldest first.
//!
//! Crash safety comes from ordering: a block is durable under its final name before the
//! head or WAL lets go of its samples (replay skips WAL samples older than the newest
//! block's end), and a compacted block is durable before its parents are deleted (open
//! deletes parents a finished compaction left behind).

use crate::block::meta::new_ulid;
use crate::block::writer::{self, NewBlock};
use crate::block::{Block, Compaction};
use crate::db::Inner;
use crate::error::Error;
use crate::metrics::StoreCounters;
use model::{Labels, Sample};
use std::iter::Peekable;
use std::sync::{Arc, MutexGuard, RwLockWriteGuard};

/// Compaction levels above the block range: 3× and 9× it.
const LEVELS: u32 = 3;
/// Blocks of one level merged into one of the next.
const FAN_IN: i64 = 3;

impl Inner {
    /// Whether the head spans more than one and a half block ranges (Prometheus's rule),
    /// so the oldest window can be cut with half a range left for late appends.
    pub(crate) fn cut_due(&self) -> bool {
        match (self.head.min_time(), self.head.max_time()) {
            (Some(lo), Some(hi)) => hi.saturating_sub(lo) > self.range_ms / 2 * 3,
            _ => false,
        }
    }

    pub(crate) fn compact(&self) -> Result<(), Error> {
        let result = self.compact_all();
        if result.is_err() {
            StoreCounters::inc(&self.counters.compactions_failed);
        }
        result
    }

    fn compact_all(&self) -> Result<(), Error> {
        let _one_at_a_time = self.lock(&self.compacting)?;
        while self.cut_due() {
            self.cut_head()?;
        }
        while self.compact_once()? {}
        self.apply_retention()
    }

    /// The worker's round: cuts, compaction and retention, then a checkpoint if the WAL
    /// grew past the threshold, or if `periodic` and anything was logged since the last
    /// one. After the cuts, so the checkpoint holds no series a cut is about to drop.
    pub(crate) fn background_round(&self, periodic: bool) -> Result<(), Error> {
        self.compact()?;
        let due = self.checkpoint_due(self.wal.written()) || (periodic && self.checkpoint_stale());
        if due {
            let _one_at_a_time = self.lock(&self.compacting)?;
            self.write_checkpoint()?;
        }
        Ok(())
    }

    fn lock<'a, T>(&self, m: &'a std::sync::Mutex<T>) -> Result<MutexGuard<'a, T>, Error> {
        m.lock().map_err(|_| self.poisoned())
    }

    fn write_blocks(&self) -> Result<RwLockWriteGuard<'_, Vec<Arc<Block>>>, Error> {
        self.blocks.write().map_err(|_| self.poisoned())
    }

    fn poisoned(&self) -> Error {
        Error::io("lock", &self.dir)(std::io::Error::other("lock poisoned by an earlier panic"))
    }

    /// Writes the head's oldest block-range window as a level-1 block, then drops those
    /// samples from head and WAL.
    pub(crate) fn cut_head(&self) -> Result<(), Error> {
        let Some(lo) = self.head.min_time() else {
            return Ok(());
        };
        let start = lo.div_euclid(self.range_ms) * self.range_ms;
        let end = start.saturating_add(self.range_ms);
        // From here on appends below `end` are refused, checked under each series' lock,
        // so the reads below see every sample the block must hold.
        self.head.set_min_valid_time(end);
        let series = self
            .head
            .sorted_series()
            .map_err(|e| Error::io("read head", &self.dir)(std::io::Error::other(e.to_string())))?;
        let dir = self.dir.clone();
        let samples = series.iter().map(|s| {
            let samples = s
                .samples_in(i64::MIN, end - 1)
                .map_err(|e| Error::io("read head", &dir)(std::io::Error::other(e.to_string())))?;
            Ok((Labels::clone(&s.labels), samples))
        });
        let ulid = new_ulid();
        let new = NewBlock {
            ulid: ulid.clone(),
            min_time: start,
            max_time: end,
            compaction: Compaction {
                level: 1,
                sources: vec![ulid],
                parents: Vec::new(),
            },
        };
        let block = match writer::write(&self.dir, new, samples)? {
            Some(meta) => Some(self.open_new(&meta.ulid)?),
            None => None,
        };
        let truncated = {
            let mut blocks = self.write_blocks()?;
            if let Some(b) = &block {
                blocks.push(Arc::clone(b));
                blocks.sort_by_key(|b| (b.meta.min_time, b.meta.max_time));
            }
            self.head.truncate(end).map_err(|e| {
                Error::io("truncate head", &self.dir)(std::io::Error::other(e.to_string()))
            })?
        };
        StoreCounters::inc(&self.counters.compactions);
        let segments = self.wal.truncate(end)?;
        tracing::info!(
            block = block.as_ref().map_or("none", |b| b.meta.ulid.as_str()),
            min_time = start,
            max_time = end,
            series = block.as_ref().map_or(0, |b| b.meta.stats.num_series),
            samples = block.as_ref().map_or(0, |b| b.meta.stats.num_samples),
            head_series_dropped = truncated.series,
            wal_segments_removed = segments,
            "head cut into a block"
        );
        Ok(())
    }

    /// Opens a block just written. If that fails the block is deleted again, so that the
    /// retry the failure leads to cannot leave two blocks holding the same samples.
    fn open_new(&self, ulid: &str) -> Result<Arc<Block>, Error> {
        let dir = self.dir.join(ulid);
        Block::open(&dir).map(Arc::new).inspect_err(|_| {
            if let Err(e) = writer::delete(&dir) {
                tracing::error!(block = %dir.display(), error = %e, "cannot delete a block that failed to open");
            }
        })
    }

    /// Finds three adjacent, aligned blocks of one level and merges them; `false` when no
    /// such group exists.
    fn compact_once(&self) -> Result<bool, Error> {
        let Some(parents) = self.plan_compaction()? else {
            return Ok(false);
        };
        let (Some(first), Some(last)) = (parents.first(), parents.last()) else {
            return Ok(false);
        };
        let ulid = new_ulid();
        let mut sources: Vec<String> = parents
            .iter()
            .flat_map(|b| b.meta.compaction.sources.iter().cloned())
            .collect();
        sources.sort();
        sources.dedup();
        let new = NewBlock {
            ulid,
            min_time: first.meta.min_time,
            max_time: last.meta.max_time,
            compaction: Compaction {
                level: parents
                    .iter()
                    .map(|b| b.meta.compaction.level)
                    .max()
                    .unwrap_or(1)
                    + 1,
                sources,
                parents: parents.iter().map(|b| b.meta.desc()).collect(),
            },
        };
        let merged = MergedSeries::new(parents.iter().map(|b| b.all_series()).collect());
        let written = writer::write(&self.dir, new, merged)?;
        let block = match &written {
            Some(meta) => Some(self.open_new(&meta.ulid)?),
            None => None,
        };
        {
            let mut blocks = self.write_blocks()?;
            blocks.retain(|b| !parents.iter().any(|p| Arc::ptr_eq(p, b)));
            if let Some(b) = &block {
                blocks.push(Arc::clone(b));
            }
            blocks.sort_by_key(|b| (b.meta.min_time, b.meta.max_time));
        }
        StoreCounters::inc(&self.counters.compactions);
        for p in &parents {
            writer::delete(p.dir())?;
        }
        tracing::info!(
            block = written.as_ref().map_or("none", |m| m.ulid.as_str()),
            parents = parents.len(),
            level = written.as_ref().map_or(0, |m| m.compaction.level),
            "blocks compacted"
        );
        Ok(true)
    }

    /// Three blocks that tile an aligned window of the next level exactly, each spanning
    /// one whole window of its own level.
    fn plan_compaction(&self) -> Result<Option<Vec<Arc<Block>>>, Error> {
        let blocks: Vec<Arc<Block>> = self.blocks.read().map_err(|_| self.poisoned())?.clone();
        let mut width = self.range_ms;
        for _ in 1..LEVELS {
            let target = width.saturating_mul(FAN_IN);
            let fits = |b: &Arc<Block>| {
                b.meta.max_time - b.meta.min_time == width && b.meta.min_time.rem_euclid(width) == 0
            };
            for w in blocks.windows(FAN_IN as usize) {
                let start = w[0].meta.min_time;
                let tiles = start.rem_euclid(target) == 0
                    && w.iter().all(fits)
                    && w.iter()
                        .enumerate()
                        .all(|(i, b)| b.meta.min_time == start + i as i64 * width);
                if tiles {
                    return Ok(Some(w.to_vec()));
                }
            }
            width = target;
        }
        Ok(None)
    }

    /// Deletes blocks past the retention time (every sample older than the newest sample
    /// minus the retention) and, while blocks and WAL exceed the size limit, the oldest.
    pub(crate) fn apply_retention(&self) -> Result<(), Error> {
        let retention = &self.options.retention;
        let mut doomed: Vec<(Arc<Block>, &'static str)> = Vec::new();
        {
            let blocks = self.blocks.read().map_err(|_| self.poisoned())?;
            let newest = self
                .head
                .max_time()
                .into_iter()
                .chain(blocks.last().map(|b| b.meta.max_time - 1))
                .max();
            if let (Some(keep), Some(newest)) = (retention.time, newest) {
                let keep = i64::try_from(keep.as_millis()).unwrap_or(i64::MAX);
                let cutoff = newest.saturating_sub(keep);
                for b in blocks.iter().filter(|b| b.meta.max_time <= cutoff) {
                    doomed.push((Arc::clone(b), "time"));
                }
            }
            if let Some(limit) = retention.size_bytes {
                let mut total: u64 = blocks.iter().map(|b| b.size()).sum::<u64>() + self.wal.size();
                for b in blocks.iter() {
                    if total <= limit {
                        break;
                    }
                    total = total.saturating_sub(b.size());
                    if !doomed.iter().any(|(d, _)| Arc::ptr_eq(d, b)) {
                        doomed.push((Arc::clone(b), "size"));
                    }
                }
            }
        }
        if doomed.is_empty() {
            return Ok(());
        }
        self.write_blocks()?
            .retain(|b| !doomed.iter().any(|(d, _)| Arc::ptr_eq(d, b)));
        // Prometheus counts a retention pass that deleted blocks, not the blocks.
        if doomed.iter().any(|(_, r)| *r == "time") {
            StoreCounters::inc(&self.counters.time_retentions);
        }
        if doomed.iter().any(|(_, r)| *r == "size") {
            StoreCounters::inc(&self.counters.size_retentions);
        }
        for (b, reason) in &doomed {
            tracing::info!(block = %b.meta.ulid, max_time = b.meta.max_time, reason, "deleting block past retention");
            writer::delete(b.dir())?;
        }
        Ok(())
    }

    pub(crate) fn disk_size(&self) -> u64 {
        let blocks: u64 = self
            .blocks
            .read()
            .map(|b| b.iter().map(|b| b.size()).sum())
            .unwrap_or(0);
        blocks + self.wal.size()
    }
}

type SeriesIter<'a> = Box<dyn Iterator<Item = Result<(Labels, Vec<Sample>), Error>> + 'a>;

/// The series of several blocks (in time order) merged by labels, in label order: each
/// input is in label order, so the merge holds one series per input at a time.
struct MergedSeries<'a> {
    inputs: Vec<Peekable<SeriesIter<'a>>>,
}

impl<'a> MergedSeries<'a> {
    fn new(inputs: Vec<impl Iterator<Item = Result<(Labels, Vec<Sample>), Error>> + 'a>) -> Self {
        MergedSeries {
            inputs: inputs
                .into_iter()
                .map(|i| (Box::new(i) as SeriesIter<'a>).peekable())
                .collect(),
        }
    }
}

impl Iterator for MergedSeries<'_> {
    type Item = Result<(Labels, Vec<Sample>), Error>;

    fn next(&mut self) -> Option<Self::Item> {
        // An error ends the merge: it is returned first, whichever input it came from.
        let mut smallest: Option<Labels> = None;
        for input in &mut self.inputs {
            match input.peek() {
                Some(Err(_)) => return input.next(),
                Some(Ok((labels, _))) if smallest.as_ref().is_none_or(|s| labels < s) => {
                    smallest = Some(labels.clone());
                }
                _ => {}
            }
        }
        let labels = smallest?;
        let mut samples = Vec::new();
        for input in &mut self.inputs {
            if let Some(Ok((l, _))) = input.peek() {
                if *l == labels {
                    if let Some(Ok((_, s))) = input.next() {
                        samples.extend(s);
                    }
                }
            }
        }
        // Inputs are time-ordered and disjoint; this only guards against a block list
        // that is not.
        if !samples.windows(2).all(|w| w[0].t < w[1].t) {
            samples.sort_by_key(|s| s.t);
            samples.dedup_by_key(|s| s.t);
        }
        Some(Ok((labels, samples)))
    }
}
