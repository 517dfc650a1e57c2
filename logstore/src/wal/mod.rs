//! The log WAL: every push is written here and fsync'd before it is acknowledged, replayed
//! into the partitions on start, and trimmed once the partitions have committed its entries.
//!
//! Durability uses group commit: [`Wal::log`] writes a push's record under the writer lock and
//! returns a [`Ticket`]; [`Wal::wait_durable`] then finds its position already fsync'd, waits
//! for the fsync in flight, or becomes the leader that fsyncs for every push written so far.
//! One fsync thus serves every push in flight.
//!
//! Trimming: a segment may be deleted only when every record in it is committed to tantivy.
//! The store indexes a record after its fsync, so between [`Wal::log`] and [`Wal::finish`] a
//! record is *in flight* and pins its segment; [`Wal::remove_sealed`] deletes only segments
//! older than both the current one and the oldest pinned one. The in-flight count is taken
//! under the writer lock, so a rotation can never seal a segment holding an uncounted record.
//!
//! Failures: a failed write is cut back off the segment (or, if even that fails, the segment
//! is abandoned); a failed fsync fails every push it covered and retires the segment, since the
//! kernel may have dropped those pages. Nothing unacknowledged is ever reported durable.

mod record;
mod segment;

pub(crate) use record::encode_push;

use crate::Error;
use model::LogStream;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// The default segment size. Segments are sealed at every periodic commit anyway, so this
/// only bounds a segment when commits fall behind.
pub const DEFAULT_WAL_SEGMENT_BYTES: u64 = 64 << 20;

pub(crate) struct Wal {
    dir: PathBuf,
    segment_bytes: u64,
    writer: Mutex<Writer>,
    sync: Mutex<SyncState>,
    synced: Condvar,
    /// Records logged but not yet indexed (or given up), per segment.
    in_flight: Mutex<BTreeMap<u64, usize>>,
    fsyncs: AtomicU64,
}

struct Writer {
    file: Arc<File>,
    index: u64,
    /// Bytes in the current segment, header included.
    len: u64,
    /// Record bytes written since open over all segments: the positions tickets carry.
    written: u64,
    /// The current segment can no longer be trusted; the next write starts a new one.
    retire: bool,
}

#[derive(Default)]
struct SyncState {
    /// Everything written up to this position is on disk.
    durable: u64,
    /// An fsync is in flight; its leader wakes the others.
    syncing: bool,
    /// Position ranges `(after, upto]` whose fsync failed, with the error.
    failed: Vec<(u64, u64, String)>,
}

/// A logged record: where it is, to wait for its fsync and to release its segment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket {
    segment: u64,
    pos: u64,
}

/// What replay found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WalReplay {
    pub segments: usize,
    pub records: usize,
    /// Segments cut back at a torn or corrupt frame, or removed for a torn header.
    pub repaired: usize,
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
    std::io::Error::other("log WAL lock poisoned by an earlier panic")
}

impl Wal {
    /// Opens the WAL in `dir` (created if missing): hands every good record of every segment,
    /// in order, to `on_record`, repairs damaged tails, and starts a new segment. The replayed
    /// segments stay until [`Wal::remove_sealed`] is called once their entries are committed.
    pub(crate) fn open(
        dir: &Path,
        segment_bytes: u64,
        mut on_record: impl FnMut(Vec<LogStream>) -> Result<(), Error>,
    ) -> Result<(Wal, WalReplay), Error> {
        std::fs::create_dir_all(dir)?;
        let mut stats = WalReplay::default();
        let segments = segment::list(dir)?;
        for (_, path) in &segments {
            stats.segments += 1;
            let end = segment::read(path, |streams| {
                stats.records += 1;
                on_record(streams)
            })?;
            match end {
                segment::End::Clean => {}
                segment::End::TornHeader => {
                    tracing::warn!(segment = %path.display(), "removing log WAL segment with a torn header (the process died creating it)");
                    std::fs::remove_file(path)?;
                    stats.repaired += 1;
                }
                segment::End::Corrupt { offset, reason } => {
                    tracing::warn!(segment = %path.display(), offset, %reason, "truncating log WAL segment at its last good record");
                    segment::truncate(path, offset)?;
                    stats.repaired += 1;
                }
            }
        }
        let index = segments.last().map_or(1, |(i, _)| i + 1);
        let file = segment::create(dir, index)?;
        let wal = Wal {
            dir: dir.to_path_buf(),
            segment_bytes: segment_bytes.max(segment::HEADER_LEN + 1),
            writer: Mutex::new(Writer {
                file: Arc::new(file),
                index,
                len: segment::HEADER_LEN,
                written: 0,
                retire: false,
            }),
            sync: Mutex::new(SyncState::default()),
            synced: Condvar::new(),
            in_flight: Mutex::new(BTreeMap::new()),
            fsyncs: AtomicU64::new(0),
        };
        Ok((wal, stats))
    }

    fn lock_writer(&self) -> std::io::Result<MutexGuard<'_, Writer>> {
        self.writer.lock().map_err(|_| poisoned())
    }

    fn lock_sync(&self) -> std::io::Result<MutexGuard<'_, SyncState>> {
        self.sync.lock().map_err(|_| poisoned())
    }

    fn lock_in_flight(&self) -> std::io::Result<MutexGuard<'_, BTreeMap<u64, usize>>> {
        self.in_flight.lock().map_err(|_| poisoned())
    }

    /// fsyncs performed since open.
    pub(crate) fn fsyncs(&self) -> u64 {
        self.fsyncs.load(Ordering::Relaxed)
    }

    /// Writes one framed record (from [`encode_push`]) and returns its ticket; nothing is
    /// durable yet. Every ticket must be handed back to [`Wal::finish`].
    pub(crate) fn log(&self, framed: &[u8]) -> std::io::Result<Ticket> {
        let mut w = self.lock_writer()?;
        if w.retire
            || (w.len > segment::HEADER_LEN && w.len + framed.len() as u64 > self.segment_bytes)
        {
            self.start_segment(&mut w)?;
        }
        if let Err(e) = (&*w.file).write_all(framed) {
            // Cut the partial frame off so later records stay reachable; if the segment cannot
            // even be cut, abandon it.
            if w.file.set_len(w.len).is_err() {
                w.retire = true;
            }
            tracing::error!(error = %e, segment = w.index, "log WAL write failed");
            return Err(e);
        }
        w.len += framed.len() as u64;
        w.written += framed.len() as u64;
        *self.lock_in_flight()?.entry(w.index).or_default() += 1;
        Ok(Ticket {
            segment: w.index,
            pos: w.written,
        })
    }

    /// Releases a ticket's hold on its segment: its entries are indexed (and will be trimmed
    /// only after the next commit), or its push failed.
    pub(crate) fn finish(&self, ticket: Ticket) {
        if let Ok(mut m) = self.lock_in_flight() {
            if let Some(n) = m.get_mut(&ticket.segment) {
                *n -= 1;
                if *n == 0 {
                    m.remove(&ticket.segment);
                }
            }
        }
    }

    /// Makes the current segment durable and starts the next one.
    fn start_segment(&self, w: &mut Writer) -> std::io::Result<()> {
        // Whatever was written to the old segment must be durable (or reported failed) before
        // the writer moves on, since leaders fsync only the current file.
        let synced = w.file.sync_data();
        self.fsyncs.fetch_add(1, Ordering::Relaxed);
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
        w.file = Arc::new(segment::create(&self.dir, w.index + 1)?);
        w.index += 1;
        w.len = segment::HEADER_LEN;
        w.retire = false;
        Ok(())
    }

    /// Seals the current segment if it holds records, so the next [`Wal::remove_sealed`] can
    /// delete it.
    pub(crate) fn rotate(&self) -> std::io::Result<()> {
        let mut w = self.lock_writer()?;
        if w.len > segment::HEADER_LEN || w.retire {
            self.start_segment(&mut w)?;
        }
        Ok(())
    }

    /// Deletes the sealed segments that no in-flight record pins. The caller guarantees that
    /// every record already finished is committed. Returns how many were deleted.
    pub(crate) fn remove_sealed(&self) -> Result<usize, Error> {
        let current = self.lock_writer()?.index;
        let keep_from = match self.lock_in_flight()?.keys().next() {
            Some(&oldest) => oldest.min(current),
            None => current,
        };
        let mut removed = 0;
        for (index, path) in segment::list(&self.dir)? {
            if index < keep_from {
                std::fs::remove_file(&path)?;
                removed += 1;
            }
        }
        if removed > 0 {
            File::open(&self.dir)?.sync_all()?;
        }
        Ok(removed)
    }

    /// Returns once the ticket's record is fsync'd, fsyncing as the leader if no fsync is in
    /// flight, or with the error of the fsync that should have covered it.
    pub(crate) fn wait_durable(&self, ticket: Ticket) -> std::io::Result<()> {
        let pos = ticket.pos;
        let mut st = self.lock_sync()?;
        loop {
            if let Some((_, _, e)) = st.failed.iter().find(|(a, b, _)| *a < pos && pos <= *b) {
                return Err(std::io::Error::other(format!("log WAL fsync failed: {e}")));
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

    /// fsyncs the current segment: the position it covers, or that position and the error.
    fn sync_current(&self) -> Result<u64, (u64, std::io::Error)> {
        let (file, upto) = match self.lock_writer() {
            Ok(w) => (Arc::clone(&w.file), w.written),
            Err(e) => return Err((u64::MAX, e)),
        };
        self.fsyncs.fetch_add(1, Ordering::Relaxed);
        match file.sync_data() {
            Ok(()) => Ok(upto),
            Err(e) => {
                tracing::error!(error = %e, "log WAL fsync failed; starting a new segment");
                if let Ok(mut w) = self.lock_writer() {
                    w.retire = true;
                }
                Err((upto, e))
            }
        }
    }
}

#[cfg(test)]
mod tests;
