//! Time partitions: one tantivy index per window of time, each in its own directory.
//!
//! A partition covers `[start, end)` in nanoseconds and lives in `partitions/<start>_<end>`.
//! New partitions span one `--storage.logs.partition` window aligned to the epoch, clipped so
//! that no two partitions ever overlap (the window may have changed between runs). An entry
//! therefore belongs to exactly one partition, which is what lets duplicate checks, retention
//! and queries each look at partitions independently.
//!
//! A partition is opened (index, schema check, reader) when the store opens; one that fails is
//! moved to `corrupt/` with a warning so that the rest of the store still serves. Writers are
//! opened on the first write and closed once a partition has gone a checkpoint without writes,
//! so only the partitions being written hold a writer's threads and memory.

use crate::dedup::{self, Candidate, KnownHashes};
use crate::document::EntryDoc;
use crate::line_index::{LineIndexPlugin, LineIndexWarmer};
use crate::pending::{Pending, PendingSnapshot};
use crate::schema::{Fields, Layout};
use crate::tokens::{line_analyzer, LineIndexing, LINE_TOKENIZER};
use crate::Error;
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use tantivy::directory::MmapDirectory;
use tantivy::indexer::UserOperation;
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, Searcher, Warmer};

/// Indexing threads per partition writer. With one, pushes outran it under load and spent
/// their wait spinning in tantivy's channel (7% of ingest CPU in a profile); two keep up
/// (`cargo bench -p logstore --bench grep -- --mib 512`: 12.2 -> 14.1 MiB/s per core, 18.1 ->
/// 23.2 MiB/s wall, same query times) at the price of two segments per commit, which the line
/// index makes cheap to search and merge.
const WRITER_THREADS: usize = 2;
/// A writer's memory budget; tantivy needs at least 15 MB per thread.
const WRITER_MEMORY_BYTES: usize = 64 * 1024 * 1024;
/// Documents per message to tantivy's indexing threads. Its channel holds 10,000 messages,
/// so this also bounds the documents queued for indexing (160,000: tens of MiB of lines).
const DOCS_PER_SEND: usize = 16;

pub(crate) const PARTITIONS_DIR: &str = "partitions";
pub(crate) const CORRUPT_DIR: &str = "corrupt";
/// Prefix of a partition still being created; such a directory is removed on open.
const NEW_PREFIX: &str = ".new-";

/// One time partition: a tantivy index, its reader and, while written, its writer.
pub(crate) struct Partition {
    pub start: i64,
    pub end: i64,
    dir: PathBuf,
    index: Index,
    pub reader: IndexReader,
    /// Keeps the line index of each segment of the reader's searchers open
    /// ([`Layout::V4`]); the reader holds it weakly.
    _warmer: Option<Arc<LineIndexWarmer>>,
    /// The schema it was written with: how far `|=` needles narrow, how duplicates are found.
    layout: Layout,
    /// The hashes of the committed entries ([`Layout::V3`]), read on the first write and
    /// dropped with the writer, so that only partitions being written hold them.
    known: Option<KnownHashes>,
    writer: Option<IndexWriter<EntryDoc>>,
    /// Entries added since the last commit: the duplicate check and queries read them here.
    pub pending: Pending,
    /// Documents were added since the last commit.
    dirty: bool,
    /// Written since the last checkpoint; a writer idle for a whole checkpoint is closed.
    active: bool,
}

impl std::fmt::Debug for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Partition")
            .field("dir", &self.dir)
            .field("dirty", &self.dirty)
            .finish_non_exhaustive()
    }
}

impl Partition {
    fn open(dir: &Path, start: i64, end: i64) -> Result<Partition, Error> {
        let mut index = Index::open(MmapDirectory::open(dir)?)?;
        let Some(layout) = Layout::of(&index.schema()) else {
            return Err(Error::Index(
                "the index was written with a different schema".into(),
            ));
        };
        // The plugin writes and merges the line index files; tantivy refuses to write or merge
        // an index whose recorded plugins are not registered.
        if layout.line() == LineIndexing::Own {
            index.register_plugin(Arc::new(LineIndexPlugin));
        }
        // Indexing resolves the schema's tokenizer name here; tantivy knows `default` itself.
        index.tokenizers().register(LINE_TOKENIZER, line_analyzer());
        // Reloaded right after each commit, under the partitions lock, so that the searcher and
        // the pending entries a query takes never both hold an entry, nor both miss one.
        // Building the reader opens every segment, which is where most damage shows.
        let warmer = (layout.line() == LineIndexing::Own).then(Arc::<LineIndexWarmer>::default);
        let warmers: Vec<Weak<dyn Warmer>> = warmer
            .iter()
            .map(|w| Arc::downgrade(w) as Weak<dyn Warmer>)
            .collect();
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .warmers(warmers)
            .try_into()?;
        Ok(Partition {
            start,
            end,
            dir: dir.to_path_buf(),
            index,
            reader,
            _warmer: warmer,
            layout,
            known: None,
            writer: None,
            pending: Pending::default(),
            dirty: false,
            active: false,
        })
    }

    /// The partition's directory name.
    pub fn name(&self) -> String {
        name(self.start, self.end)
    }

    /// Adds documents; they are searchable after the next [`Partition::commit`]. They go to
    /// tantivy's indexing threads [`DOCS_PER_SEND`] at a time: one channel message (and
    /// wake-up) per document put ~5% of the server's samples in thread switches
    /// (`vigil-bench logs`). On failure,
    /// says how many of the documents, in order, the writer took.
    pub fn add(&mut self, docs: Vec<EntryDoc>) -> Result<(), (usize, Error)> {
        if docs.is_empty() {
            return Ok(());
        }
        let writer = match &mut self.writer {
            Some(w) => w,
            None => self.writer.insert(
                self.index
                    .writer_with_num_threads(WRITER_THREADS, WRITER_MEMORY_BYTES)
                    .map_err(|e| (0, e.into()))?,
            ),
        };
        let mut sent = 0;
        let mut docs = docs.into_iter().peekable();
        while docs.peek().is_some() {
            let batch: Vec<UserOperation<EntryDoc>> = docs
                .by_ref()
                .take(DOCS_PER_SEND)
                .map(UserOperation::Add)
                .collect();
            let n = batch.len();
            writer.run(batch).map_err(|e| (sent, e.into()))?;
            sent += n;
            self.dirty = true;
            self.active = true;
        }
        Ok(())
    }

    /// Commits the documents added since the last commit and makes them searchable. On
    /// failure they are rolled back (they stay in the WAL, which is then not trimmed).
    pub fn commit(&mut self) -> Result<(), Error> {
        if !self.dirty {
            return Ok(());
        }
        let Some(writer) = &mut self.writer else {
            return Ok(());
        };
        let committed = writer.commit().map(drop);
        self.dirty = false;
        if let Err(e) = committed {
            if let Err(rollback) = writer.rollback() {
                tracing::error!(partition = %self.name(), error = %rollback, "rollback after a failed commit failed");
            }
            self.pending.clear();
            return Err(e.into());
        }
        if let Err(e) = self.reader.reload() {
            // The index holds entries the known hashes may miss: read them afresh next time.
            self.known = None;
            return Err(e.into());
        }
        if let Some(known) = &mut self.known {
            known.extend(self.pending.hashes());
        }
        // Only now are the pending entries visible to searches of the index.
        self.pending.clear();
        Ok(())
    }

    /// For each candidate, whether an identical entry is committed in the partition (the
    /// pending ones are the caller's to check).
    pub fn committed(
        &mut self,
        fields: &Fields,
        candidates: &[Candidate<'_>],
    ) -> Result<Vec<bool>, Error> {
        let searcher = self.reader.searcher();
        if self.layout.hash_indexed() {
            return dedup::stored(&searcher, fields, candidates);
        }
        let known = match &mut self.known {
            Some(k) => k,
            None => self.known.insert(KnownHashes::read(&searcher)?),
        };
        dedup::stored_known(&searcher, fields, known, candidates)
    }

    /// The committed index and the pending entries, as one consistent view.
    fn view(&mut self) -> View {
        View {
            searcher: self.reader.searcher(),
            pending: self.pending.snapshot(),
            line: self.layout.line(),
            terms_dir: self.dir.join(crate::line_terms::TERMS_DIR),
        }
    }

    /// Closes the writer if nothing was written since the last call; call after a commit.
    /// Either way, follows the merges its writer finished.
    fn close_idle_writer(&mut self) {
        if self.writer.is_none() {
            return;
        }
        if !self.active && !self.dirty {
            self.writer = None;
            self.known = None;
        }
        self.active = false;
        self.follow_merges();
    }

    /// Reloads the reader when the index's segments are no longer the searcher's: a merge
    /// the writer finished after the last commit. A merge changes no entry, so queries see the
    /// same ones; but until the searcher is replaced it keeps the merged-away segments' files
    /// open (their line indexes pinned, their deleted files' disk space held), which for a
    /// partition no longer written would be until the next restart.
    fn follow_merges(&mut self) {
        let Ok(ids) = self.index.searchable_segment_ids() else {
            return;
        };
        let searcher = self.reader.searcher();
        let held = searcher.segment_readers();
        if ids.len() == held.len() && held.iter().all(|r| ids.contains(&r.segment_id())) {
            return;
        }
        if let Err(error) = self.reader.reload() {
            tracing::warn!(partition = %self.name(), %error, "cannot reload a log partition's reader after a merge");
        }
    }

    /// Bytes of the partition's files, its line term layouts included.
    fn disk_bytes(&self) -> u64 {
        files_bytes(&self.dir) + files_bytes(&self.dir.join(crate::line_terms::TERMS_DIR))
    }
}

/// Bytes of the files directly in `dir` (0 when it cannot be read).
fn files_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

fn name(start: i64, end: i64) -> String {
    format!("{start}_{end}")
}

fn parse_name(name: &str) -> Option<(i64, i64)> {
    let (start, end) = name.split_once('_')?;
    let (start, end) = (start.parse().ok()?, end.parse().ok()?);
    (start < end).then_some((start, end))
}

/// What one query reads of a partition: the searcher of its committed index and its pending
/// entries, taken together so that each entry is in exactly one of them.
pub(crate) struct View {
    pub searcher: Searcher,
    pub pending: PendingSnapshot,
    pub line: LineIndexing,
    /// Where the partition keeps its segments' line term layouts (`line_terms.rs`).
    pub terms_dir: PathBuf,
}

/// Every partition of a store, non-overlapping, by start.
#[derive(Debug)]
pub(crate) struct Partitions {
    root: PathBuf,
    aside: PathBuf,
    window_ns: i64,
    parts: BTreeMap<i64, Partition>,
    /// tantivy commits since open, of any partition.
    commits: u64,
}

impl Partitions {
    /// Opens every partition under `<dir>/partitions`, moving the ones that fail to open (or
    /// that overlap one already opened) to `<dir>/corrupt`.
    pub fn open(dir: &Path, window_ns: i64) -> Result<Partitions, Error> {
        let root = dir.join(PARTITIONS_DIR);
        std::fs::create_dir_all(&root)?;
        let mut found = Vec::new();
        for entry in std::fs::read_dir(&root)? {
            let entry = entry?;
            let file_name = entry.file_name();
            let Some(file_name) = file_name.to_str() else {
                continue;
            };
            if file_name.starts_with(NEW_PREFIX) {
                std::fs::remove_dir_all(entry.path())?;
                continue;
            }
            match parse_name(file_name) {
                Some((start, end)) => found.push((start, end, entry.path())),
                None => {
                    tracing::warn!(path = %entry.path().display(), "ignoring an entry of the partitions directory that is not a partition")
                }
            }
        }
        found.sort_by_key(|(start, end, _)| (*start, *end));
        let mut set = Partitions {
            root,
            aside: dir.join(CORRUPT_DIR),
            window_ns: window_ns.max(1),
            parts: BTreeMap::new(),
            commits: 0,
        };
        let mut covered_to = i64::MIN;
        for (start, end, path) in found {
            let opened = if start < covered_to {
                Err(Error::Index(
                    "it overlaps another partition's time range".into(),
                ))
            } else {
                Partition::open(&path, start, end)
            };
            match opened {
                Ok(p) => {
                    covered_to = end;
                    set.parts.insert(start, p);
                }
                Err(e) => set.move_aside(&path, &e)?,
            }
        }
        Ok(set)
    }

    fn move_aside(&self, path: &Path, why: &Error) -> Result<(), Error> {
        std::fs::create_dir_all(&self.aside)?;
        let base = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut target = self.aside.join(&base);
        let mut n = 1;
        while target.exists() {
            target = self.aside.join(format!("{base}.{n}"));
            n += 1;
        }
        tracing::warn!(partition = %path.display(), moved_to = %target.display(), error = %why, "log partition failed to open; moved aside, its entries are not served");
        std::fs::rename(path, &target)?;
        File::open(&self.root)?.sync_all()?;
        Ok(())
    }

    /// The start of the partition holding `ts`, created if none does.
    pub fn route(&mut self, ts: i64) -> Result<i64, Error> {
        if let Some((&start, p)) = self.parts.range(..=ts).next_back() {
            if ts < p.end {
                return Ok(start);
            }
        }
        let w = self.window_ns;
        let aligned = ts.div_euclid(w).saturating_mul(w);
        let mut start = aligned;
        let mut end = aligned.saturating_add(w);
        if let Some((_, prev)) = self.parts.range(..=ts).next_back() {
            start = start.max(prev.end);
        }
        if let Some((&next, _)) = self.parts.range(ts.saturating_add(1)..).next() {
            end = end.min(next);
        }
        if end <= ts {
            // Only at i64::MAX, where the window cannot extend past the entry.
            end = i64::MAX;
        }
        let p = self.create(start, end)?;
        self.parts.insert(start, p);
        Ok(start)
    }

    /// Creates a partition atomically: built under a temporary name, then renamed.
    fn create(&self, start: i64, end: i64) -> Result<Partition, Error> {
        let final_path = self.root.join(name(start, end));
        let tmp = self.root.join(format!("{NEW_PREFIX}{}", name(start, end)));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp)?;
        }
        std::fs::create_dir(&tmp)?;
        drop(
            Index::builder()
                .schema(Fields::schema())
                .register_plugin(Arc::new(LineIndexPlugin))
                .create_in_dir(&tmp)?,
        );
        std::fs::rename(&tmp, &final_path)?;
        File::open(&self.root)?.sync_all()?;
        tracing::info!(partition = %final_path.display(), "log partition created");
        Partition::open(&final_path, start, end)
    }

    pub fn get_mut(&mut self, start: i64) -> Option<&mut Partition> {
        self.parts.get_mut(&start)
    }

    /// Views of the partitions overlapping `[start_ns, end_ns)`, oldest first.
    pub fn views(&mut self, start_ns: i64, end_ns: i64) -> Vec<View> {
        self.parts
            .values_mut()
            .filter(|p| p.start < end_ns && start_ns < p.end)
            .map(Partition::view)
            .collect()
    }

    pub fn len(&self) -> usize {
        self.parts.len()
    }

    /// tantivy commits since open.
    pub fn commits(&self) -> u64 {
        self.commits
    }

    /// Entries added and not yet committed, in all partitions.
    pub fn pending_entries(&self) -> usize {
        self.parts.values().map(|p| p.pending.len()).sum()
    }

    /// Commits every partition with new entries. All are tried; the first error is returned.
    pub fn commit(&mut self) -> Result<(), Error> {
        let mut first_error = None;
        for p in self.parts.values_mut() {
            if p.dirty && p.writer.is_some() {
                self.commits += 1;
            }
            if let Err(e) = p.commit() {
                tracing::error!(partition = %p.name(), error = %e, "log partition commit failed");
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Closes the writers of partitions not written since the last call.
    pub fn close_idle_writers(&mut self) {
        for p in self.parts.values_mut() {
            p.close_idle_writer();
        }
    }

    /// Deletes whole partitions: those entirely older than `now_ns - keep_ns`, then the oldest
    /// while the partitions' files exceed `max_bytes` (never the newest partition, which is the
    /// one being written). Returns the names of the partitions deleted.
    pub fn apply_retention(
        &mut self,
        now_ns: i64,
        keep_ns: Option<i64>,
        max_bytes: Option<u64>,
    ) -> Result<Vec<String>, Error> {
        let mut doomed = Vec::new();
        if let Some(keep) = keep_ns {
            let cutoff = now_ns.saturating_sub(keep);
            doomed.extend(
                self.parts
                    .values()
                    .filter(|p| p.end <= cutoff)
                    .map(|p| p.start),
            );
        }
        if let Some(max) = max_bytes {
            let sizes: Vec<(i64, u64)> = self
                .parts
                .values()
                .filter(|p| !doomed.contains(&p.start))
                .map(|p| (p.start, p.disk_bytes()))
                .collect();
            let mut total: u64 = sizes.iter().map(|(_, b)| b).sum();
            for (start, bytes) in sizes.iter().take(sizes.len().saturating_sub(1)) {
                if total <= max {
                    break;
                }
                doomed.push(*start);
                total -= bytes;
            }
        }
        let mut removed = Vec::new();
        for start in doomed {
            if let Some(p) = self.parts.remove(&start) {
                let (name, dir) = (p.name(), p.dir.clone());
                // Queries holding the partition's searcher keep reading its mapped files;
                // dropping the writer first stops its threads writing into the directory.
                drop(p);
                std::fs::remove_dir_all(&dir)?;
                removed.push(name);
            }
        }
        if !removed.is_empty() {
            File::open(&self.root)?.sync_all()?;
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests;
