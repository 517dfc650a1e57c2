//! The sinks' bounded on-disk queue: request bodies wait here, durable, between the side that
//! makes them (the Loki batcher, whose records also carry the tailer's file positions as their
//! `meta`; the remote-write batcher) and the senders (which deliver bodies in order, mark each
//! one done after a 2xx or a permanent rejection, and hand the `meta` of the delivered prefix
//! back). One record is one request body.
//!
//! - [`QueueWriter`] appends records to the open segment, fsyncing each, and rolls to a new
//!   segment past `segment_bytes`, or when every record of the open one is already done, so a
//!   drained queue keeps no delivered bytes to re-send after a restart. When the queue holds
//!   `max_bytes`, [`WhenFull`] decides: the Loki sink's writer waits (and so the tailer waits:
//!   the files are a buffer too); the remote-write sink's writer deletes the oldest segments,
//!   counting their records dropped, and never waits (a collector cannot pause, and fresh
//!   samples matter more to alerting than old ones).
//! - [`QueueReader`] hands out records in order, waiting for new ones.
//! - [`DiskQueue::done`] counts a record finished; a sealed segment whose records are all
//!   done is deleted, which frees space for the writer. What is finished — the unbroken
//!   prefix of the queue, and the runs of records that finished after a record still in
//!   flight — is made durable in the file `delivered` before `done` returns (`marks.rs`).
//!
//! Opening the queue skips what the mark says was finished, so a crash resends only the
//! records that were in flight (with one request in flight, as remote write sends per
//! shard, at most that one per shard), or whose 2xx the crash cut off. Delivery stays
//! at-least-once for those: the log store drops the copies (same stream, timestamp and
//! line), as a TSDB does an identical sample. The segment format is in `segment.rs`.
//!
//! The mark is written once per change, not coalesced: one small fsync per finished
//! request, next to the fsync the writer already does per record and a network round trip;
//! a sender that waits for `done` (remote write) so never starts request N+1 before request
//! N's delivery is durable.

mod marks;
mod segment;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;

use marks::{Mark, MarkFile, Run};
pub(crate) use segment::Record;
pub use segment::SegmentError;

/// The queue's directory inside the agent's state directory.
pub const LOG_QUEUE_DIR: &str = "logqueue";
/// The most bytes the queue holds before the tailer waits (`--logs.queue-max-bytes`): 1 GiB,
/// hours of a busy node's logs, and room on any node's disk.
pub const DEFAULT_QUEUE_MAX_BYTES: u64 = 1 << 30;
/// A segment is sealed once it holds this many bytes; it is deleted when all of it is done.
pub const DEFAULT_SEGMENT_BYTES: u64 = 8 << 20;

/// What the writer does with a record that does not fit under `max_bytes`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WhenFull {
    /// Wait until delivered segments are deleted: backpressure reaches whoever appends.
    Wait,
    /// Delete the oldest segments (whole, the one being read included) until the record
    /// fits, counting their unread records as dropped; never wait.
    DropOldest,
}

/// Where the queue lives, how large it may grow and what happens when it is full.
#[derive(Clone, Debug)]
pub struct QueueConfig {
    pub dir: PathBuf,
    /// Default [`DEFAULT_QUEUE_MAX_BYTES`]. A record larger than this is still taken when
    /// nothing else is waiting, so an outsized push cannot stop the queue for good.
    pub max_bytes: u64,
    /// Default [`DEFAULT_SEGMENT_BYTES`]. With [`WhenFull::DropOldest`] this is also how much
    /// is dropped at once, so keep it a small part of `max_bytes`.
    pub segment_bytes: u64,
    /// Default [`WhenFull::Wait`].
    pub when_full: WhenFull,
    /// What the queue is called in log messages; default `"log queue"`.
    pub name: &'static str,
}

impl QueueConfig {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        QueueConfig {
            dir: dir.into(),
            max_bytes: DEFAULT_QUEUE_MAX_BYTES,
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            when_full: WhenFull::Wait,
            name: "log queue",
        }
    }

    /// [`QueueConfig::open`] for a sink: a queue that cannot be opened is a state directory
    /// problem, with the reason kept.
    pub(crate) fn open_for_sink(
        &self,
    ) -> Result<(QueueWriter, QueueReader, DiskQueue), crate::Error> {
        self.open().map_err(|e| {
            let source = match e {
                SegmentError::Io { source, .. } => source,
                other => std::io::Error::new(std::io::ErrorKind::InvalidData, other.to_string()),
            };
            crate::Error::State {
                path: self.dir.clone(),
                source,
            }
        })
    }

    /// Opens the queue, recovering the segments a previous run left (their records are
    /// delivered first); fails on a segment of an unknown format.
    pub(crate) fn open(&self) -> Result<(QueueWriter, QueueReader, DiskQueue), SegmentError> {
        let io = |source| SegmentError::Io {
            path: self.dir.clone(),
            source,
        };
        std::fs::create_dir_all(&self.dir).map_err(io)?;
        let mark = marks::load(&self.dir).unwrap_or_default();
        let mut seqs = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(io)? {
            let entry = entry.map_err(io)?;
            if let Some(seq) = entry.file_name().to_str().and_then(segment::parse_name) {
                seqs.push(seq);
            }
        }
        seqs.sort_unstable();
        // New segments must sort after the mark, or a new one could be taken as delivered.
        let next_seq = seqs.last().map_or(1, |s| s + 1).max(mark.seq + 1);
        let mut index = Index {
            mark: mark.clone(),
            ..Index::default()
        };
        let mut skipped = (0u64, 0u64);
        let mut recovered_metas = RecoveredMetas::default();
        let mut cursor = Cursor {
            seq: 0,
            offset: segment::HEADER_LEN,
            read: 0,
        };
        for seq in seqs {
            let path = self.dir.join(segment::file_name(seq));
            if seq < mark.seq {
                // Delivered whole; its deletion was cut short by the stop or failed.
                std::fs::remove_file(&path).map_err(io)?;
                continue;
            }
            let prefix = if seq == mark.seq { mark.records } else { 0 };
            let runs: Vec<(u64, u64)> = mark.runs_of(seq).collect();
            match segment::recover(&path, prefix, &runs)? {
                Some(r) if r.records > r.skipped => {
                    recovered_metas.delivered.extend(r.skipped_metas);
                    recovered_metas.undelivered.extend(r.metas);
                    index.bytes += r.len;
                    index.unsent += r.records - r.skipped;
                    index.unsent_entries += r.entries - r.skipped_entries;
                    skipped.0 += r.skipped;
                    skipped.1 += r.skipped_entries;
                    if r.prefix > 0 {
                        cursor = Cursor {
                            seq,
                            offset: r.skip_offset,
                            read: r.prefix,
                        };
                    }
                    // The runs as the segment counts them: past the prefix, within the
                    // records the segment holds; one starting at the prefix joins it.
                    let mut s = Segment {
                        seq,
                        len: r.len,
                        records: r.records,
                        entries: r.entries,
                        read: r.skipped,
                        read_entries: r.skipped_entries,
                        done: r.skipped,
                        delivered: r.prefix,
                        finished_after: runs
                            .iter()
                            .map(|&(first, end)| (first.max(r.prefix), end.min(r.records)))
                            .filter(|(first, end)| first < end)
                            .collect(),
                        sealed: true,
                    };
                    s.join_finished_runs();
                    index.segs.push_back(s);
                }
                _ => std::fs::remove_file(&path).map_err(io)?,
            }
        }
        if skipped.0 > 0 {
            tracing::info!(
                seq = mark.seq,
                runs = mark.runs.len(),
                records = skipped.0,
                entries = skipped.1,
                queue = self.name,
                "skipping what a previous run delivered"
            );
        }
        if index.unsent > 0 {
            tracing::info!(
                records = index.unsent,
                entries = index.unsent_entries,
                bytes = index.bytes,
                dir = %self.dir.display(),
                "{} replays what a previous run left",
                self.name
            );
        }
        let shared = Arc::new(Shared {
            marks: MarkFile::new(self.dir.clone()),
            cfg: self.clone(),
            index: Mutex::new(index),
            space: Notify::new(),
            data: Notify::new(),
            recovered_metas: Mutex::new(recovered_metas),
        });
        let writer = QueueWriter {
            shared: shared.clone(),
            file: None,
            next_seq,
        };
        let reader = QueueReader {
            shared: shared.clone(),
            cursor,
            file: None,
        };
        Ok((writer, reader, DiskQueue { shared }))
    }
}

/// One segment as the queue knows it.
#[derive(Debug)]
struct Segment {
    seq: u64,
    /// Durable bytes, header included.
    len: u64,
    records: u64,
    /// Items (log lines, samples) in those records.
    entries: u64,
    /// Records, and their items, the reader has handed out: the rest are unread, which is
    /// what dropping the segment loses (a record handed out is finished by its sender).
    read: u64,
    read_entries: u64,
    /// Records finished, in any order.
    done: u64,
    /// Records finished from the start with no gap: the part of the delivery mark this
    /// segment holds.
    delivered: u64,
    /// Runs of records finished after a gap, first record to the one after the last; they
    /// join `delivered` once the gap closes.
    finished_after: BTreeMap<u64, u64>,
    /// No more records will be appended.
    sealed: bool,
}

impl Segment {
    /// Counts records `first` to `first + n` finished, merging them with the runs they
    /// touch, so the runs stay few (one per gap) however many records finish after a gap.
    fn finish(&mut self, first: u64, n: u64) {
        self.done += n;
        let (mut first, mut end) = (first, first + n);
        if let Some(next_end) = self.finished_after.remove(&end) {
            end = next_end;
        }
        if let Some((&before, &before_end)) = self.finished_after.range(..first).next_back() {
            if before_end == first {
                self.finished_after.remove(&before);
                first = before;
            }
        }
        self.finished_after.insert(first, end);
        self.join_finished_runs();
    }

    /// Moves `delivered` over the finished runs that now start where it ends.
    fn join_finished_runs(&mut self) {
        while let Some(end) = self.finished_after.remove(&self.delivered) {
            self.delivered = end;
        }
    }

    /// Whether record `nth` is finished (counted done).
    fn finished(&self, nth: u64) -> bool {
        nth < self.delivered
            || self
                .finished_after
                .range(..=nth)
                .next_back()
                .is_some_and(|(_, &end)| nth < end)
    }

    /// The records from `from` on that are not finished, as (first, count) runs.
    fn unfinished_from(&self, from: u64) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut at = from.max(self.delivered);
        for (&first, &end) in self.finished_after.range(at..) {
            if first > at {
                out.push((at, first - at));
            }
            at = at.max(end);
        }
        if at < self.records {
            out.push((at, self.records - at));
        }
        out
    }
}

#[derive(Debug, Default)]
struct Index {
    segs: VecDeque<Segment>,
    /// Bytes of every segment on disk.
    bytes: u64,
    /// Records and lines not yet done.
    unsent: u64,
    unsent_entries: u64,
    /// The writer is gone: once everything is read, the reader ends.
    closed: bool,
    /// Unread records, and their items, deleted by [`WhenFull::DropOldest`] and not yet
    /// taken by [`DiskQueue::take_dropped`].
    dropped: u64,
    dropped_entries: u64,
    /// What is finished, as last computed, and how many marks were computed (the
    /// generation that orders their writes); see `marks.rs`.
    mark: Mark,
    mark_generation: u64,
}

impl Index {
    /// The delivery mark of the queue as it stands: the front segment's unbroken prefix, and
    /// every other finished run.
    fn current_mark(&self) -> Mark {
        let mut segs = self.segs.iter();
        let Some(front) = segs.next() else {
            // Nothing on disk: what was marked stands (a restart deletes the segments it
            // covers and finds none after it).
            return Mark {
                runs: Vec::new(),
                ..self.mark.clone()
            };
        };
        let mut runs = Vec::new();
        let mut add = |seq: u64, first: u64, end: u64| runs.push(Run { seq, first, end });
        for (&first, &end) in &front.finished_after {
            add(front.seq, first, end);
        }
        for s in segs {
            if s.delivered > 0 {
                add(s.seq, 0, s.delivered);
            }
            for (&first, &end) in &s.finished_after {
                add(s.seq, first, end);
            }
        }
        Mark {
            seq: front.seq,
            records: front.delivered,
            runs,
        }
    }
}

#[derive(Debug)]
struct Shared {
    cfg: QueueConfig,
    marks: MarkFile,
    index: Mutex<Index>,
    /// Signalled when a segment is deleted (the writer may go on).
    space: Notify,
    /// Signalled when a record is appended or the writer closes (the reader may go on).
    data: Notify,
    /// The `meta` of the records a previous run left, until taken.
    recovered_metas: Mutex<RecoveredMetas>,
}

impl Shared {
    fn index(&self) -> MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn path(&self, seq: u64) -> PathBuf {
        self.cfg.dir.join(segment::file_name(seq))
    }

    /// Deletes segment `seq` when it is sealed and all done. Called with the index locked.
    fn collect(&self, index: &mut Index, seq: u64) {
        let Some(at) = index.segs.iter().position(|s| s.seq == seq) else {
            return;
        };
        let s = &index.segs[at];
        if !(s.sealed && s.done >= s.records) {
            return;
        }
        if let Err(error) = std::fs::remove_file(self.path(seq)) {
            // Left behind, it is replayed (duplicates, dropped by the store) after a restart.
            tracing::warn!(seq, %error, queue = self.cfg.name, "deleting a delivered queue segment failed");
        }
        index.bytes = index.bytes.saturating_sub(s.len);
        index.segs.remove(at);
        self.space.notify_waiters();
    }

    /// Deletes the oldest segment whatever its state, counting its unread records dropped;
    /// returns its sequence number, or none when the queue holds no segment. Called with the
    /// index locked. Records of it already handed out stay unsent until their sender marks
    /// them done, and the reader discards a record it read from it meanwhile.
    fn drop_oldest(&self, index: &mut Index) -> Option<u64> {
        let s = index.segs.pop_front()?;
        let (records, entries) = (s.records - s.read, s.entries - s.read_entries);
        if let Err(error) = std::fs::remove_file(self.path(s.seq)) {
            // It would be replayed after a restart; the bound holds for this run.
            tracing::warn!(seq = s.seq, %error, queue = self.cfg.name, "deleting a dropped queue segment failed");
        }
        index.bytes = index.bytes.saturating_sub(s.len);
        index.unsent = index.unsent.saturating_sub(records);
        index.unsent_entries = index.unsent_entries.saturating_sub(entries);
        index.dropped += records;
        index.dropped_entries += entries;
        tracing::warn!(
            seq = s.seq,
            records,
            entries,
            queue = self.cfg.name,
            "queue full, dropped its oldest segment"
        );
        Some(s.seq)
    }
}

/// What the records a previous run left say about themselves (their non-empty `meta`, in
/// queue order).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct RecoveredMetas {
    /// Records the delivery mark covers that are still on disk (the prefix in the mark's
    /// segment, and the runs finished after a gap).
    pub delivered: Vec<Vec<u8>>,
    /// Records not delivered, to be sent.
    pub undelivered: Vec<Vec<u8>>,
}

/// The handle that marks records done; cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct DiskQueue {
    shared: Arc<Shared>,
}

impl DiskQueue {
    /// Marks `n` records of segment `seq` from its record `first` on, holding `entries`
    /// lines, as finished (delivered or rejected for good). Returns once the delivery mark
    /// this moves is durable; a mark that cannot be written is logged, and only means those
    /// records are sent again after a restart.
    pub async fn done(&self, seq: u64, first: u64, n: u64, entries: u64) {
        let mark = {
            let mut index = self.shared.index();
            if let Some(s) = index.segs.iter_mut().find(|s| s.seq == seq) {
                s.finish(first, n);
            }
            index.unsent = index.unsent.saturating_sub(n);
            index.unsent_entries = index.unsent_entries.saturating_sub(entries);
            // The mark before deletion: a segment deleted all delivered is covered by the
            // mark either way, and this one holds even if its deletion fails.
            let mark = index.current_mark();
            self.shared.collect(&mut index, seq);
            if mark == index.mark {
                None
            } else {
                index.mark = mark.clone();
                index.mark_generation += 1;
                Some((index.mark_generation, mark))
            }
        };
        let Some((generation, mark)) = mark else {
            return;
        };
        let shared = self.shared.clone();
        let stored = tokio::task::spawn_blocking(move || shared.marks.store(generation, &mark))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        if let Err(error) = stored {
            tracing::warn!(
                %error,
                dir = %self.shared.cfg.dir.display(),
                queue = self.shared.cfg.name,
                "writing the queue's delivery mark failed; delivered records may be sent again after a restart"
            );
        }
    }

    /// Bytes on disk, and items waiting, for the counters.
    pub fn usage(&self) -> (u64, u64) {
        let index = self.shared.index();
        (index.bytes, index.unsent_entries)
    }

    /// Whether segment `seq` is still on disk: a record handed out from a segment dropped
    /// since is lost if its delivery is abandoned.
    pub fn holds(&self, seq: u64) -> bool {
        self.shared.index().segs.iter().any(|s| s.seq == seq)
    }

    /// The non-empty `meta` of the records a previous run left, in queue order; empty after
    /// the first call.
    pub fn take_recovered_metas(&self) -> RecoveredMetas {
        let mut metas = self
            .shared
            .recovered_metas
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        std::mem::take(&mut *metas)
    }

    /// Records, and items, dropped since the last call ([`WhenFull::DropOldest`]).
    pub fn take_dropped(&self) -> (u64, u64) {
        let mut index = self.shared.index();
        let taken = (index.dropped, index.dropped_entries);
        (index.dropped, index.dropped_entries) = (0, 0);
        taken
    }
}

/// Appends records; see the module docs.
#[derive(Debug)]
pub(crate) struct QueueWriter {
    shared: Arc<Shared>,
    /// The open segment and its sequence number.
    file: Option<(u64, File)>,
    next_seq: u64,
}

impl QueueWriter {
    /// Appends `record` once there is room, fsync'd before this returns; with
    /// [`WhenFull::DropOldest`] room is made at once. On an I/O error (disk full) nothing is
    /// appended and the caller may try again.
    pub async fn push(&mut self, record: Record) -> std::io::Result<()> {
        let need = record.framed_len();
        // Room for a new segment's header too, in case this record starts one.
        let room = need + segment::HEADER_LEN;
        loop {
            let notified = self.shared.space.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut index = self.shared.index();
                if index.unsent == 0 || index.bytes + room <= self.shared.cfg.max_bytes {
                    break;
                }
                if self.shared.cfg.when_full == WhenFull::DropOldest {
                    match self.shared.drop_oldest(&mut index) {
                        // The open segment is gone: the next record starts a new one.
                        Some(seq) if self.file.as_ref().is_some_and(|(open, _)| *open == seq) => {
                            self.file = None;
                        }
                        Some(_) => {}
                        None => break,
                    }
                    continue;
                }
            }
            notified.await;
        }
        let roll = match &self.file {
            None => true,
            Some((seq, _)) => {
                let index = self.shared.index();
                index.segs.iter().find(|s| s.seq == *seq).is_none_or(|s| {
                    s.sealed
                        || s.records > 0
                            && (s.len + need > self.shared.cfg.segment_bytes || s.done >= s.records)
                })
            }
        };
        if roll {
            self.seal();
            self.open_segment().await?;
        }
        let Some((seq, file)) = self.file.take() else {
            return Err(std::io::Error::other("no open queue segment"));
        };
        let bytes = record.encode();
        let (file, written) = tokio::task::spawn_blocking(move || {
            let mut file = file;
            let written = file.write_all(&bytes).and_then(|()| file.sync_data());
            (file, written)
        })
        .await
        .map_err(std::io::Error::other)?;
        let mut index = self.shared.index();
        let Some(s) = index.segs.iter_mut().find(|s| s.seq == seq) else {
            return Err(std::io::Error::other("open queue segment vanished"));
        };
        if let Err(error) = written {
            // Part of the record may be in the file: cut it off and write no more there.
            let _ = file.set_len(s.len);
            s.sealed = true;
            self.shared.collect(&mut index, seq);
            return Err(error);
        }
        s.len += need;
        s.records += 1;
        s.entries += u64::from(record.entries);
        index.bytes += need;
        index.unsent += 1;
        index.unsent_entries += u64::from(record.entries);
        drop(index);
        self.file = Some((seq, file));
        self.shared.data.notify_one();
        Ok(())
    }

    /// Creates the next segment and makes its name durable.
    async fn open_segment(&mut self) -> std::io::Result<()> {
        let seq = self.next_seq;
        let (path, dir) = (self.shared.path(seq), self.shared.cfg.dir.clone());
        let file = tokio::task::spawn_blocking(move || {
            let file = segment::create(&path)?;
            File::open(&dir)?.sync_all()?;
            Ok::<_, std::io::Error>(file)
        })
        .await
        .map_err(std::io::Error::other)??;
        self.next_seq += 1;
        let mut index = self.shared.index();
        index.bytes += segment::HEADER_LEN;
        index.segs.push_back(Segment {
            seq,
            len: segment::HEADER_LEN,
            records: 0,
            entries: 0,
            read: 0,
            read_entries: 0,
            done: 0,
            delivered: 0,
            finished_after: BTreeMap::new(),
            sealed: false,
        });
        self.file = Some((seq, file));
        Ok(())
    }

    /// Seals the open segment (deleting it when all done).
    fn seal(&mut self) {
        if let Some((seq, _)) = self.file.take() {
            let mut index = self.shared.index();
            if let Some(s) = index.segs.iter_mut().find(|s| s.seq == seq) {
                s.sealed = true;
            }
            self.shared.collect(&mut index, seq);
        }
    }

    /// No more records: the reader ends once it has read everything.
    pub fn close(mut self) {
        self.seal();
        self.shared.index().closed = true;
        self.shared.data.notify_one();
    }
}

/// Where the reader is: segment, byte offset, records read there.
#[derive(Clone, Copy, Debug)]
struct Cursor {
    seq: u64,
    offset: u64,
    read: u64,
}

/// One record handed out, with the segment it is in (for [`DiskQueue::done`]).
#[derive(Debug)]
pub(crate) struct Queued {
    pub seq: u64,
    /// The record's place in its segment, from 0.
    pub nth: u64,
    pub record: Record,
}

/// Reads records in order; see the module docs.
#[derive(Debug)]
pub(crate) struct QueueReader {
    shared: Arc<Shared>,
    cursor: Cursor,
    /// The segment being read: its sequence number, file and format version.
    file: Option<(u64, File, u8)>,
}

enum Step {
    Read(Cursor),
    Wait,
    End,
}

impl QueueReader {
    /// The next record, waiting for one; `None` once the writer closed and all was read.
    /// Cancel-safe: the cursor moves only when a record is returned.
    pub async fn next(&mut self) -> Option<Queued> {
        let shared = self.shared.clone();
        loop {
            let notified = shared.data.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.step() {
                Step::End => return None,
                Step::Wait => notified.await,
                Step::Read(at) => {
                    if let Some(q) = self.read(at).await {
                        return Some(q);
                    }
                }
            }
        }
    }

    /// Moves the cursor to the first segment with an unread record.
    fn step(&mut self) -> Step {
        let shared = self.shared.clone();
        let index = shared.index();
        let from = self.cursor.seq;
        for s in index.segs.iter().filter(|s| s.seq >= from) {
            if s.seq > self.cursor.seq {
                self.cursor = Cursor {
                    seq: s.seq,
                    offset: segment::HEADER_LEN,
                    read: 0,
                };
            }
            if self.cursor.read < s.records {
                return Step::Read(self.cursor);
            }
            if !s.sealed {
                return Step::Wait;
            }
        }
        if index.closed {
            Step::End
        } else {
            Step::Wait
        }
    }

    /// Reads the record at `at`; none when the segment turned out corrupt, which is logged
    /// and skipped (its remaining records counted done).
    async fn read(&mut self, at: Cursor) -> Option<Queued> {
        let file = match self.file.take() {
            Some((seq, f, version)) if seq == at.seq => Some((f, version)),
            _ => None,
        };
        let path = self.shared.path(at.seq);
        let (file, got) = tokio::task::spawn_blocking(move || {
            let (mut file, version) = match file {
                Some(open) => open,
                None => match segment::open_for_read(&path) {
                    Ok(open) => open,
                    Err(e) => return (None, Err(e)),
                },
            };
            let got = segment::read_at(&mut file, at.offset, version);
            (Some((file, version)), got)
        })
        .await
        .unwrap_or_else(|e| (None, Err(std::io::Error::other(e))));
        match got {
            Ok((record, next)) => {
                let mut index = self.shared.index();
                let Some(s) = index.segs.iter_mut().find(|s| s.seq == at.seq) else {
                    // Dropped while being read (its records are counted dropped): the next
                    // step moves on to the segment after it.
                    return None;
                };
                // Finished by a previous run after a gap (counted read and done at open):
                // passed over, not sent again.
                let finished = s.finished(at.read);
                if !finished {
                    s.read += 1;
                    s.read_entries += u64::from(record.entries);
                }
                drop(index);
                self.file = file.map(|(f, version)| (at.seq, f, version));
                self.cursor = Cursor {
                    seq: at.seq,
                    offset: next,
                    read: at.read + 1,
                };
                if finished {
                    return None;
                }
                Some(Queued {
                    seq: at.seq,
                    nth: at.read,
                    record,
                })
            }
            Err(error) => {
                // The guard in its own block: it must not be held across the await below.
                let (left, left_entries, unfinished, records) = self
                    .shared
                    .index()
                    .segs
                    .iter_mut()
                    .find(|s| s.seq == at.seq)
                    .map_or((0, 0, Vec::new(), 0), |s| {
                        // The writer appends no more to a segment it cannot be trusted with.
                        s.sealed = true;
                        let left = (
                            s.records - s.read,
                            s.entries - s.read_entries,
                            s.unfinished_from(at.read),
                            s.records,
                        );
                        // Handed to nobody, but finished here: not to be counted as dropped.
                        s.read = s.records;
                        s.read_entries = s.entries;
                        left
                    });
                // Past the segment's end, so the next step moves on.
                self.cursor.read = records.max(at.read);
                if left == 0 {
                    // The segment was dropped (or is done) under the reader: nothing to skip.
                    return None;
                }
                tracing::error!(
                    path = %Path::new(&self.shared.path(at.seq)).display(),
                    %error,
                    records = left,
                    queue = self.shared.cfg.name,
                    "queue segment unreadable, skipping its remaining records"
                );
                let queue = DiskQueue {
                    shared: self.shared.clone(),
                };
                // The lines are counted once, with the first run.
                let mut entries = left_entries;
                for (first, n) in unfinished {
                    queue
                        .done(at.seq, first, n, std::mem::take(&mut entries))
                        .await;
                }
                None
            }
        }
    }
}
