//! The write-ahead log: every accepted sample is written here and fsync'd before its append
//! is acknowledged, and replayed into the head on start.
//!
//! Segments (`segment.rs`) hold CRC-framed records (`record.rs`). Each segment is
//! self-describing: a series' record is written into a segment before that series' first
//! samples in it, so replay maps the ids of each segment on its own and a damaged segment
//! cannot orphan the samples of a later one. On open a new segment is always started.
//!
//! Durability uses group commit: [`Wal::log`] writes a batch's records under the writer lock
//! and returns its end position; [`Wal::wait_durable`] then either finds that position
//! already fsync'd, waits for the fsync in flight, or becomes the leader that fsyncs for
//! every append written so far. One fsync thus serves all appends in flight.
//!
//! Failures: a write that fails is cut back off the segment (or, if even that fails or the
//! segment is at the file-size limit, the segment is abandoned for a new one), and an fsync that fails fails every append it
//! covered and retires the segment, because after a failed fsync the kernel may have dropped
//! those pages; nothing unacknowledged is ever reported durable.

mod record;
mod segment;

pub(crate) use record::{Record, SamplesEncoder};

use crate::error::Error;
use crate::series::MemSeries;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// The default segment size, Prometheus's `wlog.DefaultSegmentSize`.
pub const DEFAULT_SEGMENT_BYTES: u64 = 128 << 20;

pub(crate) struct Wal {
    dir: PathBuf,
    segment_bytes: u64,
    writer: Mutex<Writer>,
    sync: Mutex<SyncState>,
    synced: Condvar,
    fsyncs: AtomicU64,
    /// Time spent in fsync, summed, for `prometheus_tsdb_wal_fsync_duration_seconds`.
    fsync_nanos: AtomicU64,
}

struct Writer {
    file: Arc<File>,
    /// The current segment's index.
    index: u64,
    /// Bytes in the current segment, header included.
    len: u64,
    /// Record bytes written since open, over all segments: the position `log` returns.
    written: u64,
    /// Set when the current segment can no longer be trusted; the next write starts a new
    /// one first.
    retire: bool,
    /// The newest sample timestamp logged in each segment that holds samples: a segment
    /// whose newest sample is older than the end of the newest block is all in blocks and
    /// can go ([`Wal::truncate`]).
    max_times: BTreeMap<u64, i64>,
    /// Makes the next write fail, to test the failure path.
    #[cfg(test)]
    fail_next_write: bool,
}

#[derive(Default)]
struct SyncState {
    /// Everything written up to this position is on disk.
    durable: u64,
    /// An fsync is in flight; its leader will wake the others.
    syncing: bool,
    /// Position ranges `(after, upto]` whose fsync failed, with the error.
    failed: Vec<(u64, u64, String)>,
}

/// What [`Wal::seal`] returns: the new segment's index, the newest sample time of each
/// earlier segment, and the position written so far.
pub(crate) type Sealed = (u64, Vec<(u64, i64)>, u64);

/// What replay found, for the start-up log line and the tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplayStats {
    pub segments: usize,
    /// Index of the first and the last segment read; `None` when the WAL was empty.
    /// Replay reads them all in order, so once open returns, the last is also the
    /// current one (Prometheus's `/status/walreplay` `min`, `max`, `current`).
    pub first_segment: Option<u64>,
    pub last_segment: Option<u64>,
    pub records: usize,
    /// Segments cut back at a torn or corrupt frame, or removed for a torn header.
    pub repaired: usize,
    /// The first segment of the checkpoint replay started from (segments before it were
    /// not read); `None` when there was none or it failed its checks.
    pub checkpoint: Option<u64>,
    /// Series the checkpoint held, and their closed chunks mapped from head chunk files.
    pub checkpoint_series: usize,
    pub mapped_chunks: usize,
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal")
            .field("dir", &self.dir)
            .field("fsyncs", &self.fsyncs.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

fn poisoned() -> std::io::Error {
    std::io::Error::other("WAL lock poisoned by an earlier panic")
}

impl Wal {
    /// Opens the WAL in `dir` (created if missing): replays every segment from
    /// `from.0` on in order through `on_record` (with the segment's index), repairs a
    /// damaged tail, and starts a new segment for writing. Earlier segments, which a
    /// checkpoint covers, are not read; `from.1` gives their newest sample times.
    pub(crate) fn open(
        dir: &Path,
        segment_bytes: u64,
        from: (u64, &[(u64, i64)]),
        mut on_record: impl FnMut(u64, Record),
    ) -> Result<(Wal, ReplayStats), Error> {
        std::fs::create_dir_all(dir).map_err(Error::io("create", dir))?;
        let mut stats = ReplayStats::default();
        let mut max_times: BTreeMap<u64, i64> = from.1.iter().copied().collect();
        let segments = segment::list(dir)?;
        max_times.retain(|i, _| segments.iter().any(|(s, _)| s == i));
        for (index, path) in segments.iter().filter(|(i, _)| *i >= from.0) {
            stats.segments += 1;
            stats.first_segment.get_or_insert(*index);
            stats.last_segment = Some(*index);
            let end = segment::read(path, |rec| {
                stats.records += 1;
                if let Record::Samples(entries) = &rec {
                    let newest = entries
                        .iter()
                        .filter_map(|(_, s)| s.iter().map(|s| s.t).max());
                    if let Some(t) = newest.max() {
                        let slot = max_times.entry(*index).or_insert(t);
                        *slot = (*slot).max(t);
                    }
                }
                on_record(*index, rec);
            })?;
            match end {
                segment::End::Clean => {}
                segment::End::TornHeader => {
                    tracing::warn!(segment = %path.display(), "removing WAL segment with a torn header (the process died creating it)");
                    std::fs::remove_file(path).map_err(Error::io("remove", path))?;
                    stats.repaired += 1;
                }
                segment::End::Corrupt { offset, reason } => {
                    tracing::warn!(segment = %path.display(), offset, %reason, "truncating WAL segment at its last good record");
                    segment::truncate(path, offset)?;
                    stats.repaired += 1;
                }
            }
        }
        let index = segments.last().map_or(1, |(i, _)| i + 1);
        let file =
            segment::create(dir, index).map_err(Error::io("create", segment::path(dir, index)))?;
        let wal = Wal {
            dir: dir.to_path_buf(),
            segment_bytes: segment_bytes.max(segment::HEADER_LEN + 1),
            writer: Mutex::new(Writer {
                file: Arc::new(file),
                index,
                len: segment::HEADER_LEN,
                written: 0,
                retire: false,
                max_times,
                #[cfg(test)]
                fail_next_write: false,
            }),
            sync: Mutex::new(SyncState::default()),
            synced: Condvar::new(),
            fsyncs: AtomicU64::new(0),
            fsync_nanos: AtomicU64::new(0),
        };
        Ok((wal, stats))
    }

    fn lock_writer(&self) -> std::io::Result<MutexGuard<'_, Writer>> {
        self.writer.lock().map_err(|_| poisoned())
    }

    fn lock_sync(&self) -> std::io::Result<MutexGuard<'_, SyncState>> {
        self.sync.lock().map_err(|_| poisoned())
    }

    /// fsyncs performed, for self-metrics and the group-commit test.
    pub(crate) fn fsyncs(&self) -> u64 {
        self.fsyncs.load(Ordering::Relaxed)
    }

    /// Seconds spent in fsync since open.
    pub(crate) fn fsync_seconds(&self) -> f64 {
        self.fsync_nanos.load(Ordering::Relaxed) as f64 / 1e9
    }

    /// fsyncs `file`, counting the call and its time.
    fn timed_sync(&self, file: &File) -> std::io::Result<()> {
        let started = std::time::Instant::now();
        let result = file.sync_data();
        let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.fsyncs.fetch_add(1, Ordering::Relaxed);
        self.fsync_nanos.fetch_add(nanos, Ordering::Relaxed);
        result
    }

    /// Writes `samples` (framed samples records, whose newest timestamp is `max_t`) preceded
    /// by a series record for each of `series` not yet recorded in the current segment, and
    /// returns the position to pass to [`Wal::wait_durable`]. Nothing is durable yet when
    /// this returns.
    pub(crate) fn log(
        &self,
        series: &[Arc<MemSeries>],
        samples: &[u8],
        max_t: i64,
    ) -> std::io::Result<u64> {
        let mut w = self.lock_writer()?;
        if w.retire
            || (w.len > segment::HEADER_LEN && w.len + samples.len() as u64 > self.segment_bytes)
        {
            self.start_segment(&mut w)?;
        }
        let index = w.index;
        let fresh: Vec<&Arc<MemSeries>> = series
            .iter()
            .filter(|s| s.wal_segment.swap(index, Ordering::Relaxed) != index)
            .collect();
        let mut buf = Vec::with_capacity(samples.len() + 64 * fresh.len());
        if !fresh.is_empty() {
            record::encode_series(&mut buf, fresh.iter().map(|s| (s.id, &*s.labels)));
        }
        buf.extend_from_slice(samples);
        if let Err(e) = self.write(&mut w, &buf) {
            // Those series records did not make it; log them again next time.
            for s in fresh {
                s.wal_segment.store(0, Ordering::Relaxed);
            }
            // Cut the partial frame off so records written later stay reachable; if the
            // segment cannot even be cut, abandon it. A segment at the file-size limit
            // (EFBIG) takes no more bytes, so it is closed too: the limit is per file, and
            // the next append succeeds in a new segment.
            if w.file.set_len(w.len).is_err() || e.kind() == std::io::ErrorKind::FileTooLarge {
                w.retire = true;
            }
            tracing::error!(error = %e, segment = w.index, "WAL write failed");
            return Err(e);
        }
        w.len += buf.len() as u64;
        w.written += buf.len() as u64;
        let slot = w.max_times.entry(index).or_insert(max_t);
        *slot = (*slot).max(max_t);
        Ok(w.written)
    }

    /// Seals the current segment and deletes every segment whose samples are all older
    /// than `t` (all in blocks, the newest of which ends at `t`); returns how many went.
    ///
    /// Segments are self-describing, so the ones that stay replay without those that
    /// went (a checkpoint only lets replay skip segments; it deletes none). Samples older than `t` in the segments that stay
    /// are skipped on replay (the blocks hold them).
    pub(crate) fn truncate(&self, t: i64) -> Result<usize, Error> {
        let mut w = self
            .lock_writer()
            .map_err(Error::io("lock", self.dir.clone()))?;
        if w.len > segment::HEADER_LEN || w.max_times.contains_key(&w.index) {
            self.start_segment(&mut w)
                .map_err(Error::io("create", segment::path(&self.dir, w.index + 1)))?;
        }
        let current = w.index;
        let mut removed = 0;
        for (index, path) in segment::list(&self.dir)? {
            let all_in_blocks = w.max_times.get(&index).is_none_or(|&newest| newest < t);
            if index < current && all_in_blocks {
                std::fs::remove_file(&path).map_err(Error::io("remove", &path))?;
                w.max_times.remove(&index);
                removed += 1;
            }
        }
        if removed > 0 {
            File::open(&self.dir)
                .and_then(|d| d.sync_all())
                .map_err(Error::io("sync", &self.dir))?;
        }
        Ok(removed)
    }

    /// Seals the current segment (if it holds anything) so that the next record goes to a
    /// new one. Returns that new segment's index, the newest sample time of each earlier
    /// segment, and the position written so far.
    pub(crate) fn seal(&self) -> std::io::Result<Sealed> {
        let mut w = self.lock_writer()?;
        if w.len > segment::HEADER_LEN || w.max_times.contains_key(&w.index) {
            self.start_segment(&mut w)?;
        }
        let index = w.index;
        let below = w.max_times.range(..index).map(|(i, t)| (*i, *t)).collect();
        Ok((index, below, w.written))
    }

    /// Record bytes written since open.
    pub(crate) fn written(&self) -> u64 {
        self.lock_writer().map_or(0, |w| w.written)
    }

    /// Bytes of every segment, for size-based retention.
    pub(crate) fn size(&self) -> u64 {
        segment::list(&self.dir)
            .map(|list| {
                list.iter()
                    .filter_map(|(_, p)| std::fs::metadata(p).ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    }

    fn write(&self, w: &mut Writer, buf: &[u8]) -> std::io::Result<()> {
        #[cfg(test)]
        if std::mem::take(&mut w.fail_next_write) {
            // Half the bytes land, as when a disk fills up mid-write.
            (&*w.file).write_all(&buf[..buf.len() / 2])?;
            return Err(std::io::Error::other("injected write failure"));
        }
        (&*w.file).write_all(buf)
    }

    /// Makes the current segment durable and starts the next one.
    fn start_segment(&self, w: &mut Writer) -> std::io::Result<()> {
        // Whatever was written to the old segment must be durable (or reported failed)
        // before the writer moves on, since leaders fsync only the current file.
        let synced = self.timed_sync(&w.file);
        {
            let mut st = self.lock_sync()?;
            match &synced {
                Ok(()) => st.durable = st.durable.max(w.written),
                Err(e) if st.durable < w.written => {
                    let after = st.durable;
                    st.failed.push((after, w.written, e.to_string()));
                }
                Err(_) => {}
            }
        }
        self.synced.notify_all();
        let file = segment::create(&self.dir, w.index + 1)?;
        w.file = Arc::new(file);
        w.index += 1;
        w.len = segment::HEADER_LEN;
        w.retire = false;
        Ok(())
    }

    /// Returns once everything up to `pos` is fsync'd, fsyncing as the leader if no fsync is
    /// in flight, or with the error of the fsync that should have covered `pos`.
    pub(crate) fn wait_durable(&self, pos: u64) -> std::io::Result<()> {
        let mut st = self.lock_sync()?;
        loop {
            if let Some((_, _, e)) = st.failed.iter().find(|(a, b, _)| *a < pos && pos <= *b) {
                return Err(std::io::Error::other(format!("WAL fsync failed: {e}")));
            }
            if st.durable >= pos {
                return Ok(());
            }
            if st.syncing {
                st = self.synced.wait(st).map_err(|_| poisoned())?;
                continue;
            }
            st.syncing = true;
            drop(st);
            let result = self.sync_current();
            st = self.lock_sync()?;
            st.syncing = false;
            match result {
                Ok(upto) => st.durable = st.durable.max(upto),
                Err((upto, e)) => {
                    if st.durable < upto {
                        let after = st.durable;
                        st.failed.push((after, upto, e.to_string()));
                    }
                }
            }
            self.synced.notify_all();
        }
    }

    /// fsyncs the current segment; the position it covers, or that position and the error.
    fn sync_current(&self) -> Result<u64, (u64, std::io::Error)> {
        let (file, upto) = match self.lock_writer() {
            Ok(w) => (Arc::clone(&w.file), w.written),
            Err(e) => return Err((u64::MAX, e)),
        };
        match self.timed_sync(&file) {
            Ok(()) => Ok(upto),
            Err(e) => {
                tracing::error!(error = %e, "WAL fsync failed; starting a new segment");
                if let Ok(mut w) = self.lock_writer() {
                    w.retire = true;
                }
                Err((upto, e))
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn fail_next_write(&self) {
        if let Ok(mut w) = self.writer.lock() {
            w.fail_next_write = true;
        }
    }
}

/// The segment files in `dir`, ascending.
#[cfg(test)]
pub(crate) fn segment_paths(dir: &Path) -> Vec<PathBuf> {
    segment::list(dir)
        .map(|l| l.into_iter().map(|(_, p)| p).collect())
        .unwrap_or_default()
}
