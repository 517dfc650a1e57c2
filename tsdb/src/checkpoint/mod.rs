//! WAL checkpoints: what lets a restart skip most of the WAL.
//!
//! A checkpoint is taken in three steps, serialized with block cuts:
//!
//! 1. Every closed head chunk still in memory is written to a new head chunk file
//!    (`head_chunks.rs`), which is fsync'd and mapped.
//! 2. The WAL's current segment is sealed: every sample logged before the seal was applied
//!    to the head before it was logged, so the head now holds all of it.
//! 3. Each series, under its own lock, swaps the chunks written in step 1 for the file's map
//!    and is added to the checkpoint: labels, closed chunks (as references into head chunk
//!    files), open chunk (inline). The checkpoint names the first segment after the seal
//!    and is written atomically.
//!
//! Replay then loads the newest checkpoint (series, mapped chunks, open chunks) and reads
//! only the segments from its first on. Samples appended while step 3 ran are both in the
//! checkpoint and in those segments; replay merges them as it merges racing appends,
//! dropping exact repeats. Checkpoints never delete WAL segments (block cuts do, as before),
//! so a checkpoint or head chunk file that fails its checks costs only time: the store
//! replays the whole WAL instead, with a warning.

mod format;

pub(crate) use format::{CheckpointWriter, LocRef};

use crate::chunk;
use crate::db::Inner;
use crate::error::Error;
use crate::head::Head;
use crate::head_chunks::{self, HeadChunkFile, HeadChunkWriter};
use crate::postings::SeriesRef;
use crate::series::{BatchStats, Restored, RestoredChunk};
use format::{Checkpoint, Loc};
use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

/// WAL bytes after which the next checkpoint is due (also taken on the background worker's
/// round whenever anything was logged since the last one).
pub const DEFAULT_CHECKPOINT_BYTES: u64 = 16 << 20;

/// What loading a checkpoint at open found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Loaded {
    /// The first WAL segment replay must read.
    pub(crate) first_segment: u64,
    /// Newest sample time of earlier segments still on disk.
    pub(crate) max_times: Vec<(u64, i64)>,
    pub(crate) series: usize,
    pub(crate) mapped_chunks: usize,
}

impl Inner {
    /// Whether the WAL grew by the checkpoint threshold since the last checkpoint, given the
    /// WAL position an append just reached.
    pub(crate) fn checkpoint_due(&self, wal_pos: u64) -> bool {
        wal_pos.saturating_sub(self.checkpointed.load(Ordering::Relaxed))
            >= self.options.checkpoint_bytes
    }

    /// Whether anything was logged since the last checkpoint.
    pub(crate) fn checkpoint_stale(&self) -> bool {
        self.wal.written() > self.checkpointed.load(Ordering::Relaxed)
    }

    /// Takes a checkpoint (see the module docs). The caller holds `compacting`, so no
    /// block cut drops series meanwhile and no other checkpoint writes files.
    pub(crate) fn write_checkpoint(&self) -> Result<(), Error> {
        let started = Instant::now();
        let head_err = |e: model::StorageError| {
            Error::io("read head", &self.dir)(std::io::Error::other(e.to_string()))
        };
        let number = head_chunks::list(&self.dir)?
            .last()
            .map_or(1, |(n, _)| n.saturating_add(1));
        let mut w = HeadChunkWriter::create(&self.dir, number)?;
        let mut written: HashMap<SeriesRef, Vec<(i64, u32)>> = HashMap::new();
        for s in self.head.series_list().map_err(head_err)? {
            let mut list = Vec::new();
            s.spill(&mut w, &mut list)?;
            if !list.is_empty() {
                written.insert(s.id, list);
            }
        }
        let file = if written.is_empty() {
            drop(w);
            let p = head_chunks::path(&self.dir, number);
            std::fs::remove_file(&p).map_err(Error::io("remove", &p))?;
            None
        } else {
            Some(Arc::new(w.finish()?))
        };
        let wal_dir = self.dir.join("wal");
        let (first_segment, max_times, pos) = self
            .wal
            .seal()
            .map_err(Error::io("seal", wal_dir.clone()))?;
        let mut cw = CheckpointWriter::default();
        let series = self.head.series_list().map_err(head_err)?;
        for s in &series {
            let list = written.get(&s.id).map_or(&[][..], Vec::as_slice);
            s.map_and_snapshot(file.as_ref(), list, &mut cw)?;
        }
        let keep = cw.files().clone();
        let path = cw.write(&wal_dir, first_segment, &max_times)?;
        self.checkpointed.fetch_max(pos, Ordering::Relaxed);
        let removed = remove_unreferenced(&self.dir, first_segment, &keep)?;
        tracing::info!(
            checkpoint = %path.display(),
            series = series.len(),
            chunks_written = written.values().map(Vec::len).sum::<usize>(),
            head_chunk_files = keep.len(),
            files_removed = removed,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "wal checkpoint written"
        );
        Ok(())
    }
}

/// The finished and the temporary checkpoint files in `wal_dir`.
#[cfg(test)]
pub(crate) fn files(wal_dir: &Path) -> (Vec<std::path::PathBuf>, Vec<std::path::PathBuf>) {
    let (done, tmp) = format::list(wal_dir).unwrap_or_default();
    (done.into_iter().map(|(_, p)| p).collect(), tmp)
}

/// Deletes checkpoints older than `first_segment` and head chunk files not in `keep`;
/// returns how many files went. Mapped files stay readable after their unlink.
fn remove_unreferenced(
    dir: &Path,
    first_segment: u64,
    keep: &BTreeSet<u32>,
) -> Result<usize, Error> {
    let mut removed = 0;
    let wal_dir = dir.join("wal");
    let (done, tmp) = format::list(&wal_dir)?;
    for (_, p) in done.iter().filter(|(n, _)| *n < first_segment) {
        std::fs::remove_file(p).map_err(Error::io("remove", p))?;
        removed += 1;
    }
    for p in &tmp {
        std::fs::remove_file(p).map_err(Error::io("remove", p))?;
    }
    for (n, p) in head_chunks::list(dir)? {
        if !keep.contains(&n) {
            std::fs::remove_file(&p).map_err(Error::io("remove", &p))?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Loads the newest checkpoint under the data directory `dir` into the empty `head`, after
/// checking it whole: its CRC, and every head chunk frame it refers to. A checkpoint that
/// fails is deleted with a warning and `None` returned: the caller replays the whole WAL.
/// Only a file of an unknown format version fails the open. Leftovers (older checkpoints,
/// temporary files, head chunk files nothing refers to) are deleted.
pub(crate) fn load(dir: &Path, head: &Head) -> Result<Option<Loaded>, Error> {
    let wal_dir = dir.join("wal");
    let (done, _) = format::list(&wal_dir)?;
    let Some((first_segment, path)) = done.last().cloned() else {
        remove_unreferenced(dir, 0, &BTreeSet::new())?;
        return Ok(None);
    };
    let checked = format::read(&path).and_then(|cp| check(dir, cp));
    let (cp, resolved, keep) = match checked {
        Ok(ok) => ok,
        Err(e @ Error::UnsupportedVersion { .. }) => return Err(e),
        Err(e) => {
            tracing::warn!(
                checkpoint = %path.display(),
                error = %e,
                "checkpoint unusable; replaying the whole WAL instead"
            );
            std::fs::remove_file(&path).map_err(Error::io("remove", &path))?;
            remove_unreferenced(dir, u64::MAX, &BTreeSet::new())?;
            return Ok(None);
        }
    };
    remove_unreferenced(dir, first_segment, &keep)?;
    let mut stats = BatchStats::default();
    let mut mapped_chunks = 0;
    let n_series = cp.series.len();
    for s in cp.series {
        let series = head
            .get_or_create(&s.labels)
            .map_err(|e| Error::CorruptCheckpoint {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        let mut restored = Vec::with_capacity(s.closed.len());
        for c in s.closed {
            let bytes = match c.loc {
                Loc::Inline(b) => Restored::Mem(b),
                Loc::File { number, offset } => {
                    // `check` resolved every reference, so this finds it.
                    let Some((file, start, len)) = resolved.get(&(number, offset)) else {
                        return Err(Error::CorruptCheckpoint {
                            path: path.clone(),
                            reason: format!("unresolved chunk reference {number}:{offset}"),
                        });
                    };
                    mapped_chunks += 1;
                    Restored::Mapped {
                        file: Arc::clone(file),
                        start: *start,
                        len: *len,
                    }
                }
            };
            restored.push((c.min_t, c.max_t, bytes));
        }
        let mut samples = 0;
        let mut chunks = Vec::with_capacity(restored.len());
        for (min_t, max_t, bytes) in restored {
            let count = match &bytes {
                Restored::Mem(b) => chunk::header(b).map_or(0, |(_, n)| n),
                Restored::Mapped { file, start, len } => {
                    chunk::header(file.bytes(*start, *len)).map_or(0, |(_, n)| n)
                }
            };
            samples += count;
            stats.min_t = stats.min_t.min(min_t);
            stats.max_t = stats.max_t.max(max_t);
            chunks.push(RestoredChunk {
                min_t,
                max_t,
                bytes,
            });
        }
        let open = chunk::decode(&s.open).unwrap_or_default();
        if let (Some(a), Some(b)) = (open.first(), open.last()) {
            stats.min_t = stats.min_t.min(a.t);
            stats.max_t = stats.max_t.max(b.t);
        }
        samples += open.len();
        stats.outcome.appended += samples;
        series.restore(chunks, &open);
    }
    head.account(&stats);
    Ok(Some(Loaded {
        first_segment: cp.first_segment,
        max_times: cp.max_times,
        series: n_series,
        mapped_chunks,
    }))
}

/// Where each file reference of a checkpoint points: the file, and the chunk's bytes in it.
type Resolved = HashMap<(u32, u32), (Arc<HeadChunkFile>, u32, u32)>;

/// Opens the head chunk files a checkpoint refers to and checks every frame it names and
/// every chunk it holds, so that loading cannot fail half-way.
fn check(dir: &Path, cp: Checkpoint) -> Result<(Checkpoint, Resolved, BTreeSet<u32>), Error> {
    let mut files: HashMap<u32, Arc<HeadChunkFile>> = HashMap::new();
    let mut resolved: Resolved = HashMap::new();
    let bad = |reason: String| Error::CorruptCheckpoint {
        path: dir.join("wal"),
        reason,
    };
    for s in &cp.series {
        for c in &s.closed {
            let bytes = match &c.loc {
                Loc::Inline(b) => b.as_slice(),
                Loc::File { number, offset } => {
                    let file = match files.get(number) {
                        Some(f) => Arc::clone(f),
                        None => {
                            let f = Arc::new(HeadChunkFile::open(dir, *number)?);
                            files.insert(*number, Arc::clone(&f));
                            f
                        }
                    };
                    let (start, len) = file.frame_at(*offset)?;
                    let entry = resolved
                        .entry((*number, *offset))
                        .or_insert((file, start, len));
                    entry.0.bytes(start, len)
                }
            };
            chunk::header(bytes).map_err(|e| bad(format!("series {}: {e}", s.labels)))?;
        }
        chunk::decode(&s.open).map_err(|e| bad(format!("series {}: open chunk: {e}", s.labels)))?;
    }
    let numbers = files.keys().copied().collect();
    Ok((cp, resolved, numbers))
}
