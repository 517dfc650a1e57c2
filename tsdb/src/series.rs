//! One series in the head: its labels, its samples in compressed chunks behind a lock of its
//! own, and its time bounds readable without that lock.
//!
//! Samples are kept in strictly ascending time order: closed chunks of about
//! [`SAMPLES_PER_CHUNK`] samples, cut where Prometheus's head cuts them (never across a
//! block-range boundary), each re-encoded in the smaller encoding when it closes, and one open
//! XOR chunk that appends go to. `min_time`/`max_time` let a query skip the
//! series without touching its samples.

use crate::checkpoint::{CheckpointWriter, LocRef};
use crate::chunk::{self, XorAppender, SAMPLES_PER_CHUNK};
use crate::error::Error;
use crate::head_chunks::{HeadChunkFile, HeadChunkWriter};
use crate::postings::SeriesRef;
use model::{AppendOutcome, Labels, Sample, StorageError};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A series' time bounds while it has no sample: an empty range that no query overlaps.
const NO_MIN: i64 = i64::MAX;
const NO_MAX: i64 = i64::MIN;

#[derive(Debug)]
pub(crate) struct MemSeries {
    pub(crate) id: SeriesRef,
    /// Shared with the head's labels → id map, so each label set is stored once.
    pub(crate) labels: Arc<Labels>,
    data: Mutex<Chunks>,
    /// Written under the `data` lock, read without it.
    min_time: AtomicI64,
    max_time: AtomicI64,
    /// The WAL segment that holds this series' record (0: none yet); read and written by
    /// the WAL under its writer lock.
    pub(crate) wal_segment: AtomicU64,
}

/// A full chunk, in whichever encoding was smaller.
#[derive(Debug)]
struct ClosedChunk {
    min_t: i64,
    max_t: i64,
    bytes: ChunkBytes,
}

/// Where a closed chunk's bytes live: in memory until a checkpoint writes them to a head
/// chunk file, then in that file's read-only map, which the kernel pages in and out.
#[derive(Debug)]
enum ChunkBytes {
    Mem(Box<[u8]>),
    Mapped {
        file: Arc<HeadChunkFile>,
        start: u32,
        len: u32,
    },
}

impl ClosedChunk {
    fn bytes(&self) -> &[u8] {
        match &self.bytes {
            ChunkBytes::Mem(b) => b,
            ChunkBytes::Mapped { file, start, len } => file.bytes(*start, *len),
        }
    }
}

#[derive(Debug, Default)]
struct Chunks {
    closed: Vec<ClosedChunk>,
    open: XorAppender,
    open_min_t: i64,
    /// The newest sample, against which appends are checked.
    last: Option<Sample>,
    /// The time range of samples this series holds whose WAL write failed. They are
    /// logged again with the series' next append (see [`MemSeries::append`]).
    unsynced: Option<(i64, i64)>,
    /// Set when a block cut emptied the series and the head dropped it: an append that
    /// resolved the series just before must resolve its labels again rather than write
    /// here, where no query would find the samples.
    removed: bool,
    /// The block range (ms): a chunk never spans one of its boundaries. 0 means none.
    chunk_range: i64,
    /// When the open chunk is cut: the end of its block range, brought forward once it
    /// holds a quarter of [`SAMPLES_PER_CHUNK`] so the range's chunks come out even.
    next_at: i64,
}

impl Chunks {
    /// Appends `s` (newer than every sample held), cutting the open chunk first where
    /// Prometheus's head would (`appendPreprocessor`): at `next_at`, or at twice
    /// [`SAMPLES_PER_CHUNK`] when samples come faster than predicted. So chunks hold about
    /// 120 samples, end at block boundaries, and count as Prometheus's do on the same data.
    fn push(&mut self, s: Sample) {
        if !self.open.is_empty() {
            let n = self.open.len();
            if n == SAMPLES_PER_CHUNK / 4 {
                if let Some(last) = self.last {
                    self.next_at = chunk_end_time(self.open_min_t, last.t, self.next_at);
                }
            }
            if s.t >= self.next_at || n >= SAMPLES_PER_CHUNK * 2 {
                self.close_open();
            }
        }
        if self.open.is_empty() {
            self.open_min_t = s.t;
            self.next_at = range_end(s.t, self.chunk_range);
        }
        self.open.append(s.t, s.v);
        self.last = Some(s);
    }

    /// Closes the open chunk, re-encoded as decimal when that is smaller than its XOR bytes,
    /// and starts a new one.
    fn close_open(&mut self) {
        let open = std::mem::take(&mut self.open);
        let Some(last) = self.last else { return };
        // The open chunk was written by this process, so it decodes; were it not to, keeping
        // its XOR bytes as they are loses nothing.
        let decimal = chunk::decode(open.bytes())
            .ok()
            .and_then(|samples| chunk::encode_decimal(&samples))
            .filter(|d| d.len() < open.bytes().len());
        let bytes = decimal.unwrap_or_else(|| open.into_bytes());
        self.closed.push(ClosedChunk {
            min_t: self.open_min_t,
            max_t: last.t,
            bytes: ChunkBytes::Mem(bytes.into_boxed_slice()),
        });
    }

    /// Appends the samples in `[mint, maxt]` to `out`, decoding only the chunks that overlap.
    fn read(&self, mint: i64, maxt: i64, out: &mut Vec<Sample>) -> Result<(), crate::ChunkError> {
        let open_max = self.last.map_or(NO_MAX, |s| s.t);
        let closed = self.closed.iter().map(|c| (c.min_t, c.max_t, c.bytes()));
        let open = (!self.open.is_empty()).then(|| (self.open_min_t, open_max, self.open.bytes()));
        for (lo, hi, bytes) in closed.chain(open) {
            if hi < mint || lo > maxt {
                continue;
            }
            // Decoded straight into `out`; only a chunk that sticks out of the range is
            // trimmed, its samples being in time order.
            let start = out.len();
            chunk::decode_into(bytes, out)?;
            if lo < mint || hi > maxt {
                let decoded = &out[start..];
                let keep_from = start + decoded.partition_point(|s| s.t < mint);
                let keep_to = start + decoded.partition_point(|s| s.t <= maxt);
                // An empty range (`mint` > `maxt`) keeps nothing.
                out.truncate(keep_to.max(start));
                out.drain(start..keep_from.min(out.len()));
            }
        }
        Ok(())
    }

    fn num_chunks(&self) -> usize {
        self.closed.len() + usize::from(!self.open.is_empty())
    }

    /// Merges `late` (older than the newest sample, in any order) into place, appending
    /// the ones stored to `to_log`. Only the chunks from the first one that reaches the
    /// oldest late sample on are decoded and rebuilt, so the work is bounded by the
    /// out-of-order window, not by the series' length. A late sample at a timestamp
    /// already held is a re-send when its value has the same bits and a conflicting
    /// duplicate otherwise.
    fn insert(&mut self, mut late: Vec<Sample>, stats: &mut BatchStats, to_log: &mut Vec<Sample>) {
        late.sort_by_key(|s| s.t);
        let Some(oldest) = late.first().map(|s| s.t) else {
            return;
        };
        let from = self.closed.partition_point(|c| c.max_t < oldest);
        let mut tail = Vec::new();
        for c in &self.closed[from..] {
            // Chunks this process wrote decode; should one not, nothing is merged and the
            // late samples are refused as out of order rather than the chunk lost.
            if chunk::decode_into(c.bytes(), &mut tail).is_err() {
                stats.out_of_order += late.len();
                return;
            }
        }
        if !self.open.is_empty() && chunk::decode_into(self.open.bytes(), &mut tail).is_err() {
            stats.out_of_order += late.len();
            return;
        }
        let mut merged = Vec::with_capacity(tail.len() + late.len());
        let mut old = tail.into_iter().peekable();
        for s in late {
            while let Some(o) = old.next_if(|o| o.t < s.t) {
                merged.push(o);
            }
            let held = old.peek().filter(|o| o.t == s.t).copied();
            let merged_last = merged.last().filter(|m: &&Sample| m.t == s.t).copied();
            match held.or(merged_last) {
                Some(h) if h.v.to_bits() != s.v.to_bits() => stats.outcome.duplicate_timestamp += 1,
                Some(_) => {}
                None => {
                    merged.push(s);
                    to_log.push(s);
                }
            }
        }
        merged.extend(old);
        self.closed.truncate(from);
        self.open = XorAppender::new();
        let last = self.last;
        for s in merged {
            self.push(s);
        }
        // Every late sample is older than the newest, which is pushed last; this only
        // guards a series whose chunks were all rebuilt from nothing.
        self.last = self.last.or(last);
    }

    /// Removes exactly `failed` (ascending, each matched by timestamp and value bits) from
    /// the chunks; returns how many were found. The chunks from the one before the first
    /// that reaches the oldest failed sample on are decoded and rebuilt, so the rebuilt
    /// tail starts with a sample that stays and `last` comes out right. Samples appended
    /// meanwhile by other requests stay: they are theirs.
    fn remove(&mut self, failed: &[Sample]) -> Result<usize, crate::ChunkError> {
        let Some(oldest) = failed.first().map(|s| s.t) else {
            return Ok(0);
        };
        let from = self
            .closed
            .partition_point(|c| c.max_t < oldest)
            .saturating_sub(1);
        let mut tail = Vec::new();
        for c in &self.closed[from..] {
            chunk::decode_into(c.bytes(), &mut tail)?;
        }
        if !self.open.is_empty() {
            chunk::decode_into(self.open.bytes(), &mut tail)?;
        }
        let before = tail.len();
        let mut gone = failed.iter().peekable();
        tail.retain(|s| {
            while gone.next_if(|f| f.t < s.t).is_some() {}
            gone.next_if(|f| f.t == s.t && f.v.to_bits() == s.v.to_bits())
                .is_none()
        });
        let removed = before - tail.len();
        self.closed.truncate(from);
        self.open = XorAppender::new();
        self.last = None;
        for s in tail {
            self.push(s);
        }
        if self.last.is_none() {
            // Every sample of the series went; nothing is left to order appends against.
            self.closed.clear();
        }
        Ok(removed)
    }

    /// The oldest sample's timestamp.
    fn first_time(&self) -> Option<i64> {
        match self.closed.first() {
            Some(c) => Some(c.min_t),
            None => (!self.open.is_empty()).then_some(self.open_min_t),
        }
    }

    /// Drops every sample older than `t`; returns how many. Whole chunks go without being
    /// read; only the one chunk that straddles `t` is decoded and re-encoded.
    fn truncate_before(&mut self, t: i64) -> usize {
        let whole = self.closed.iter().take_while(|c| c.max_t < t).count();
        let mut dropped: usize = self.closed[..whole]
            .iter()
            .map(|c| chunk::header(c.bytes()).map_or(0, |(_, n)| n))
            .sum();
        self.closed.drain(..whole);
        if let Some(first) = self.closed.first_mut() {
            if first.min_t < t {
                // Chunks this process wrote decode; one that did not would be kept whole.
                if let Ok(samples) = chunk::decode(first.bytes()) {
                    let keep = samples.partition_point(|s| s.t < t);
                    dropped += keep;
                    let kept = &samples[keep..];
                    if let Some(min) = kept.first() {
                        first.min_t = min.t;
                        first.bytes = ChunkBytes::Mem(chunk::encode(kept).into_boxed_slice());
                    }
                }
            }
        } else if !self.open.is_empty() && self.open_min_t < t {
            if let Ok(samples) = chunk::decode(self.open.bytes()) {
                let keep = samples.partition_point(|s| s.t < t);
                dropped += keep;
                self.open = XorAppender::new();
                for s in &samples[keep..] {
                    if self.open.is_empty() {
                        self.open_min_t = s.t;
                    }
                    self.open.append(s.t, s.v);
                }
            }
        }
        self.unsynced = match self.unsynced {
            // Samples below `t` are in a block now, durable without the WAL.
            Some((_, hi)) if hi < t => None,
            Some((lo, hi)) => Some((lo.max(t), hi)),
            None => None,
        };
        dropped
    }
}

/// The end of the block range `t` falls in (`i64::MAX` without ranges).
fn range_end(t: i64, range: i64) -> i64 {
    if range <= 0 {
        return i64::MAX;
    }
    t.div_euclid(range)
        .saturating_mul(range)
        .saturating_add(range)
}

/// When to cut a chunk that began at `start` and reached `cur` after a quarter of its
/// samples, so that the chunks left until `max` (its range's end) hold about as many
/// samples each (Prometheus's `computeChunkEndTime`).
fn chunk_end_time(start: i64, cur: i64, max: i64) -> i64 {
    let per_quarter = (cur - start + 1).saturating_mul(4);
    if per_quarter <= 0 || max == i64::MAX {
        return max;
    }
    let n = (max - start) / per_quarter;
    if n <= 1 {
        return max;
    }
    start + (max - start) / n
}

/// A closed chunk read back from a checkpoint, its bytes checked.
#[derive(Debug)]
pub(crate) struct RestoredChunk {
    pub(crate) min_t: i64,
    pub(crate) max_t: i64,
    pub(crate) bytes: Restored,
}

#[derive(Debug)]
pub(crate) enum Restored {
    Mem(Vec<u8>),
    Mapped {
        file: Arc<HeadChunkFile>,
        start: u32,
        len: u32,
    },
}

/// What [`MemSeries::append`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Appended {
    Done,
    /// The series was dropped from the head; nothing was written.
    Removed,
}

/// How far back a series takes samples older than its newest: `window` milliseconds
/// behind the newer of its own newest sample and `head_max`, the head's newest when the
/// batch began (Prometheus measures the window from the head's newest sample). 0: none.
#[derive(Clone, Copy, Debug)]
pub(crate) struct OooWindow {
    pub(crate) window: i64,
    pub(crate) head_max: i64,
}

impl OooWindow {
    pub(crate) const OFF: OooWindow = OooWindow {
        window: 0,
        head_max: NO_MAX,
    };
}

/// What appending one batch did, summed over its series.
#[derive(Debug)]
pub(crate) struct BatchStats {
    /// What the caller is told. Its `out_of_order` counts every sample refused for its
    /// time, whichever of the three reasons below.
    pub(crate) outcome: AppendOutcome,
    /// Refused for being older than their series' newest sample, with no out-of-order
    /// window configured.
    pub(crate) out_of_order: usize,
    /// Refused for being older than the newest block's end (`min_valid`).
    pub(crate) out_of_bounds: usize,
    /// Refused for being older than the out-of-order window reaches.
    pub(crate) too_old: usize,
    /// Accepted older than their series' newest sample, inside the window.
    pub(crate) ooo_appended: usize,
    /// The oldest and newest timestamps appended; `NO_MIN`/`NO_MAX` when nothing was.
    pub(crate) min_t: i64,
    pub(crate) max_t: i64,
}

impl Default for BatchStats {
    fn default() -> Self {
        BatchStats {
            outcome: AppendOutcome::default(),
            out_of_order: 0,
            out_of_bounds: 0,
            too_old: 0,
            ooo_appended: 0,
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
    pub(crate) fn new(id: SeriesRef, labels: Arc<Labels>, chunk_range: i64) -> Self {
        MemSeries {
            id,
            labels,
            data: Mutex::new(Chunks {
                chunk_range,
                ..Chunks::default()
            }),
            min_time: AtomicI64::new(NO_MIN),
            max_time: AtomicI64::new(NO_MAX),
            wal_segment: AtomicU64::new(0),
        }
    }

    /// Appends with no out-of-order window: see [`MemSeries::append_with`].
    pub(crate) fn append(
        &self,
        samples: &[Sample],
        min_valid: &AtomicI64,
        stats: &mut BatchStats,
        to_log: &mut Vec<Sample>,
    ) -> Result<Appended, Poisoned> {
        self.append_with(samples, min_valid, OooWindow::OFF, stats, to_log)
    }

    /// Appends, refusing what the `AppendOutcome` docs say to refuse: a sample older than
    /// the newest is out of order unless `ooo` admits it (then it is merged into place, and
    /// one older than the window reaches is too old); one at an existing timestamp is a
    /// silent no-op when its value has the same bits (a re-send) and a conflicting
    /// duplicate otherwise. A sample older than `min_valid` (the end of the newest block,
    /// read under the series lock so a block cut sees every sample it must write) is out of
    /// bounds: its time is in a block already, which is immutable.
    ///
    /// `to_log` (cleared first) receives what the WAL must record, in time order: the
    /// samples stored and any whose earlier WAL write failed. Without the latter, a client
    /// retrying a failed request would have its samples taken as re-sends of what memory
    /// already holds, and acknowledged without ever reaching the disk.
    pub(crate) fn append_with(
        &self,
        samples: &[Sample],
        min_valid: &AtomicI64,
        ooo: OooWindow,
        stats: &mut BatchStats,
        to_log: &mut Vec<Sample>,
    ) -> Result<Appended, Poisoned> {
        to_log.clear();
        let mut data = self.data.lock().map_err(|_| Poisoned)?;
        if data.removed {
            return Ok(Appended::Removed);
        }
        let min_valid = min_valid.load(Ordering::SeqCst);
        if let Some((from, to)) = data.unsynced {
            // Chunks this process wrote decode; if they did not, there would be nothing to
            // re-log either.
            let _ = data.read(from, to, to_log);
        }
        let relogged = to_log.len();
        let mut late = Vec::new();
        for &sample in samples {
            match data.last {
                _ if sample.t < min_valid => stats.out_of_bounds += 1,
                Some(last) if sample.t < last.t => {
                    if ooo.window <= 0 {
                        stats.out_of_order += 1;
                    } else if sample.t < last.t.max(ooo.head_max).saturating_sub(ooo.window) {
                        stats.too_old += 1;
                    } else {
                        late.push(sample);
                    }
                }
                Some(last) if sample.t == last.t => {
                    if last.v.to_bits() != sample.v.to_bits() {
                        stats.outcome.duplicate_timestamp += 1;
                    }
                }
                _ => {
                    data.push(sample);
                    to_log.push(sample);
                }
            }
        }
        if !late.is_empty() {
            let before = to_log.len();
            data.insert(late, stats, to_log);
            stats.ooo_appended += to_log.len() - before;
        }
        let added = &to_log[relogged..];
        if let (Some(lo), Some(hi)) = (
            added.iter().map(|s| s.t).min(),
            added.iter().map(|s| s.t).max(),
        ) {
            stats.outcome.appended += added.len();
            stats.min_t = stats.min_t.min(lo);
            stats.max_t = stats.max_t.max(hi);
        }
        // In-order samples came first, merged late ones after; the WAL wants time order
        // (replay merges what is older than a series' newest, and the caller reads the
        // logged range off the first and last sample).
        to_log.sort_by_key(|s| s.t);
        if let Some(first) = data.first_time() {
            self.min_time.store(first, Ordering::Release);
        }
        if let Some(last) = data.last {
            self.max_time.store(last.t, Ordering::Release);
        }
        stats.outcome.out_of_order = stats.out_of_order + stats.out_of_bounds + stats.too_old;
        Ok(Appended::Done)
    }

    /// Drops the samples older than `t` (they are in a block now). When none is left (or
    /// there was none: a series whose WAL samples were all in blocks already) the series is
    /// marked removed and `true` returned; the head, holding its registry lock, then drops
    /// it. Also returns the number of samples dropped.
    pub(crate) fn truncate_before(&self, t: i64) -> Result<(usize, bool), Poisoned> {
        let mut data = self.data.lock().map_err(|_| Poisoned)?;
        if data.removed {
            return Ok((0, true));
        }
        let dropped = if data.first_time().is_some_and(|first| first < t) {
            data.truncate_before(t)
        } else {
            0
        };
        match data.first_time() {
            Some(first) => {
                self.min_time.store(first, Ordering::Release);
                Ok((dropped, false))
            }
            None => {
                *data = Chunks {
                    removed: true,
                    ..Chunks::default()
                };
                self.min_time.store(NO_MIN, Ordering::Release);
                self.max_time.store(NO_MAX, Ordering::Release);
                Ok((dropped, true))
            }
        }
    }

    /// The oldest sample's timestamp, without locking.
    pub(crate) fn first_time(&self) -> Option<i64> {
        Some(self.min_time.load(Ordering::Acquire)).filter(|&t| t != NO_MIN)
    }

    /// Records that the WAL write of this series' samples in `[lo, hi]` failed.
    pub(crate) fn mark_unsynced(&self, lo: i64, hi: i64) {
        if let Ok(mut data) = self.data.lock() {
            data.unsynced = Some(match data.unsynced {
                Some((a, b)) => (a.min(lo), b.max(hi)),
                None => (lo, hi),
            });
        }
    }

    /// Takes back samples whose WAL write failed, so a request that was not acknowledged
    /// leaves nothing a query could return, a checkpoint or block cut could persist, or a
    /// client's retry could be taken as a re-send of (Prometheus's `headAppender.Commit`
    /// rolls back on a WAL error for the same reason). `failed` is what this series handed
    /// the WAL, ascending. Returns how many samples went, or `None` when the series could
    /// not be changed (poisoned by a panic, or a chunk that does not decode); the caller
    /// then marks the range unsynced instead, so the samples are at least logged again.
    pub(crate) fn roll_back(&self, failed: &[Sample]) -> Option<usize> {
        let mut data = self.data.lock().ok()?;
        if data.removed {
            return Some(0);
        }
        let removed = data.remove(failed).ok()?;
        if let (Some((a, b)), Some(lo), Some(hi)) = (data.unsynced, failed.first(), failed.last()) {
            // What an earlier failure left was re-logged with these samples and went too.
            if lo.t <= a && b <= hi.t {
                data.unsynced = None;
            }
        }
        self.min_time
            .store(data.first_time().unwrap_or(NO_MIN), Ordering::Release);
        self.max_time
            .store(data.last.map_or(NO_MAX, |s| s.t), Ordering::Release);
        Some(removed)
    }

    /// Records that this series' samples in `[lo, hi]` are durable; clears the failed range
    /// if this covered it (a later failure may have widened it meanwhile).
    pub(crate) fn mark_synced(&self, lo: i64, hi: i64) {
        if let Ok(mut data) = self.data.lock() {
            if data.unsynced.is_some_and(|(a, b)| lo <= a && b <= hi) {
                data.unsynced = None;
            }
        }
    }

    /// Merges samples that WAL replay met after newer ones of the same series (two appends
    /// racing on one series may log in the other order than they were applied). Every one
    /// was accepted when it was appended, so the merged set is strictly ascending again;
    /// exact duplicates are dropped. Returns how many samples were added.
    pub(crate) fn merge_late(&self, late: Vec<Sample>) -> Result<usize, Poisoned> {
        let mut data = self.data.lock().map_err(|_| Poisoned)?;
        // `insert` rebuilds only the chunks from the oldest late sample on, so chunks
        // mapped from a head chunk file before that stay where they are.
        let mut stats = BatchStats::default();
        let mut added = Vec::new();
        data.insert(late, &mut stats, &mut added);
        if let Some(first) = data.first_time() {
            self.min_time.store(first, Ordering::Release);
        }
        if let Some(last) = data.last {
            self.max_time.store(last.t, Ordering::Release);
        }
        Ok(added.len())
    }

    /// Checkpoint, first pass: writes this series' closed chunks that are still in memory
    /// to `w`, noting each one's `(min_t, frame offset)` in `written`. They stay in memory
    /// until [`MemSeries::map_and_snapshot`] swaps them for the file's map, once the file is
    /// durable.
    pub(crate) fn spill(
        &self,
        w: &mut HeadChunkWriter,
        written: &mut Vec<(i64, u32)>,
    ) -> Result<(), Error> {
        let Ok(data) = self.data.lock() else {
            // A series a panic left half-written is not checkpointed; the WAL keeps it.
            return Ok(());
        };
        for c in &data.closed {
            if let ChunkBytes::Mem(bytes) = &c.bytes {
                match w.write(bytes)? {
                    Some(offset) => written.push((c.min_t, offset)),
                    None => break,
                }
            }
        }
        Ok(())
    }

    /// Checkpoint, second pass: replaces the chunks [`MemSeries::spill`] wrote to `file`
    /// with references into its map (those an out-of-order merge rebuilt since stay in
    /// memory), then adds the series to the checkpoint. A series without samples is left
    /// out.
    pub(crate) fn map_and_snapshot(
        &self,
        file: Option<&Arc<HeadChunkFile>>,
        written: &[(i64, u32)],
        cw: &mut CheckpointWriter,
    ) -> Result<(), Error> {
        let Ok(mut data) = self.data.lock() else {
            return Ok(());
        };
        if let Some(file) = file {
            let mut closed = data.closed.iter_mut().peekable();
            for &(min_t, offset) in written {
                let Some(c) = closed.find(|c| c.min_t == min_t) else {
                    break;
                };
                let (start, len) = file.frame_at(offset)?;
                if matches!(&c.bytes, ChunkBytes::Mem(b) if **b == *file.bytes(start, len)) {
                    c.bytes = ChunkBytes::Mapped {
                        file: Arc::clone(file),
                        start,
                        len,
                    };
                }
            }
        }
        if data.removed || data.last.is_none() {
            return Ok(());
        }
        let closed = data.closed.iter().map(|c| {
            let loc = match &c.bytes {
                ChunkBytes::Mem(b) => LocRef::Inline(b),
                ChunkBytes::Mapped { file, start, len } => LocRef::File {
                    number: file.number(),
                    // The frame starts before the chunk by its length's varint.
                    offset: start - crate::varint::uvarint_len(u64::from(*len)),
                },
            };
            (c.min_t, c.max_t, loc)
        });
        cw.add(&self.labels, closed, data.open.bytes());
        Ok(())
    }

    /// Loads a series from a checkpoint into this new, empty series: closed chunks as they
    /// are (mapped ones stay mapped), the open chunk's samples appended again.
    pub(crate) fn restore(&self, closed: Vec<RestoredChunk>, open: &[Sample]) {
        let Ok(mut data) = self.data.lock() else {
            return;
        };
        for c in closed {
            let bytes = match c.bytes {
                Restored::Mem(b) => ChunkBytes::Mem(b.into_boxed_slice()),
                Restored::Mapped { file, start, len } => ChunkBytes::Mapped { file, start, len },
            };
            data.closed.push(ClosedChunk {
                min_t: c.min_t,
                max_t: c.max_t,
                bytes,
            });
        }
        // Appends are checked against the newest sample, value included; with the open
        // chunk empty it is the last closed chunk's last (checked bytes, so this decodes).
        if open.is_empty() {
            data.last = data
                .closed
                .last()
                .and_then(|c| chunk::decode(c.bytes()).ok())
                .and_then(|samples| samples.last().copied());
        }
        for s in open {
            data.push(*s);
        }
        if let Some(first) = data.first_time() {
            self.min_time.store(first, Ordering::Release);
        }
        if let Some(last) = data.last {
            self.max_time.store(last.t, Ordering::Release);
        }
    }

    /// The newest sample's timestamp, without locking.
    pub(crate) fn last_time(&self) -> Option<i64> {
        Some(self.max_time.load(Ordering::Acquire)).filter(|&t| t != NO_MAX)
    }

    /// Closed chunks held in memory and mapped from head chunk files.
    #[cfg(test)]
    pub(crate) fn residency(&self) -> (usize, usize) {
        self.data.lock().map_or((0, 0), |d| {
            let mapped = d
                .closed
                .iter()
                .filter(|c| matches!(c.bytes, ChunkBytes::Mapped { .. }))
                .count();
            (d.closed.len() - mapped, mapped)
        })
    }

    /// Whether samples of this series await a WAL write that failed.
    #[cfg(test)]
    pub(crate) fn is_unsynced(&self) -> bool {
        self.data.lock().is_ok_and(|d| d.unsynced.is_some())
    }

    /// Whether the series has a sample time span touching `[mint, maxt]`, without locking.
    /// A series still being created (no sample yet) overlaps nothing.
    pub(crate) fn overlaps(&self, mint: i64, maxt: i64) -> bool {
        let min = self.min_time.load(Ordering::Acquire);
        let max = self.max_time.load(Ordering::Acquire);
        // The empty sentinels would overlap a query over all time, so check for them first.
        min <= max && min <= maxt && mint <= max
    }

    /// The samples in `[mint, maxt]`, decoding only the chunks that overlap it.
    pub(crate) fn samples_in(&self, mint: i64, maxt: i64) -> Result<Vec<Sample>, StorageError> {
        let data = self.data.lock().map_err(|_| {
            StorageError::Other(format!(
                "series {} is unreadable after a panic",
                self.labels
            ))
        })?;
        let mut out = Vec::new();
        data.read(mint, maxt, &mut out)
            .map_err(|e| StorageError::Other(format!("series {}: {e}", self.labels)))?;
        Ok(out)
    }

    /// Chunks held, the open one included.
    pub(crate) fn num_chunks(&self) -> usize {
        self.data.lock().map_or(0, |d| d.num_chunks())
    }
}

#[cfg(test)]
mod tests;
