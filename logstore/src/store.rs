//! [`LogStore`]: the WAL and the time partitions of a directory, the push path, and the
//! selector helpers the query entry points share.
//!
//! ```text
//! <storage.logs.path>/
//!   lock                   flock'd while a store has the directory open
//!   wal/00000001 ...       log WAL segments (`FORMAT.md`)
//!   partitions/<start>_<end>/   one tantivy index per time window
//!   corrupt/               partitions that failed to open, moved aside
//! ```

mod background;
mod ingest;

use crate::fetch::distinct_streams;
use crate::line_terms::{TermCache, Terms, DEFAULT_TERM_CACHE_BYTES};
use crate::lock::DirLock;
use crate::partition::{Partitions, View};
use crate::plan::entries_query;
use crate::schema::{parse_stream, Fields};
use crate::tail::TailHub;
use crate::tokens::LineIndexing;
use crate::wal::{self, Wal, DEFAULT_WAL_SEGMENT_BYTES};
use crate::Error;
use background::Background;
use model::{Labels, LogStream, MatchOp, Matcher};
use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tantivy::query::BooleanQuery;
use tantivy::tokenizer::MAX_TOKEN_LEN;
use tantivy::Searcher;

const WAL_DIR: &str = "wal";

/// The order of entries in a log query result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Oldest first.
    Forward,
    /// Newest first, Loki's default.
    Backward,
}

/// Loki's `direction` parameter: `forward` or `backward`, in any case.
impl FromStr for Direction {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        if s.eq_ignore_ascii_case("forward") {
            Ok(Direction::Forward)
        } else if s.eq_ignore_ascii_case("backward") {
            Ok(Direction::Backward)
        } else {
            Err(Error::Invalid(format!(
                "invalid direction {s:?}: must be forward or backward"
            )))
        }
    }
}

/// What a push stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PushOutcome {
    /// Entries written.
    pub entries: usize,
    /// Entries not written because an identical one (stream, timestamp, line) is stored.
    pub duplicates: usize,
    /// Distinct streams (label sets) that received entries.
    pub streams: usize,
}

/// How a [`LogStore`] partitions, keeps and commits its data. Every default is a named
/// constant; `Default` gives them all.
#[derive(Debug, Clone)]
pub struct LogStoreOptions {
    /// The time window of one partition (one tantivy index); default [`DEFAULT_PARTITION`].
    pub partition: Duration,
    /// Partitions entirely older than this are deleted; `None` keeps them forever (Loki's
    /// default).
    pub retention_time: Option<Duration>,
    /// The oldest partitions are deleted while all of them take more bytes than this; `None`
    /// sets no bound.
    pub retention_bytes: Option<u64>,
    /// How often pending entries are committed to tantivy and the WAL trimmed; default
    /// [`DEFAULT_COMMIT_INTERVAL`]. Queries search pending entries in memory, so this bounds
    /// the WAL's size, the memory of pending entries and the replay after a crash, not what
    /// queries see.
    pub commit_interval: Duration,
    /// WAL segment size; default [`DEFAULT_WAL_SEGMENT_BYTES`].
    pub wal_segment_bytes: u64,
}

/// One partition per hour, as Loki cuts its index tables per period and Quickwit its splits.
pub const DEFAULT_PARTITION: Duration = Duration::from_secs(3600);
/// Commit to tantivy every second, the low end of what tantivy's docs advise.
pub const DEFAULT_COMMIT_INTERVAL: Duration = Duration::from_secs(1);
/// How often retention is applied, besides at open.
pub const RETENTION_CHECK_INTERVAL: Duration = Duration::from_secs(60);

impl Default for LogStoreOptions {
    fn default() -> Self {
        LogStoreOptions {
            partition: DEFAULT_PARTITION,
            retention_time: None,
            retention_bytes: None,
            commit_interval: DEFAULT_COMMIT_INTERVAL,
            wal_segment_bytes: DEFAULT_WAL_SEGMENT_BYTES,
        }
    }
}

/// A log store: a WAL and time-partitioned tantivy indexes in a directory. `Send + Sync`:
/// share it in an `Arc`. A push returns once its entries are fsync'd to the WAL; queries see
/// every push that returned (entries not yet committed to tantivy are searched in memory).
pub struct LogStore {
    pub(crate) core: Arc<Core>,
    background: Option<Background>,
    /// Cleared by tests that stop the store as a killed process would.
    checkpoint_on_drop: bool,
}

/// The state shared by the store's handle and its background thread.
pub(crate) struct Core {
    dir: PathBuf,
    options: LogStoreOptions,
    pub(crate) fields: Fields,
    /// The line terms of recently searched segments, for needles inside tokens.
    pub(crate) terms: TermCache,
    wal: Wal,
    parts: Mutex<Partitions>,
    /// The open live tails, which every push publishes its stored entries to.
    pub(crate) tail: TailHub,
    _lock: DirLock,
}

impl fmt::Debug for LogStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogStore")
            .field("dir", &self.core.dir)
            .finish_non_exhaustive()
    }
}

impl Drop for LogStore {
    fn drop(&mut self) {
        if let Some(bg) = self.background.take() {
            bg.stop();
        }
        // A clean stop leaves nothing to replay.
        if !self.checkpoint_on_drop {
            return;
        }
        if let Err(e) = self.core.checkpoint() {
            tracing::error!(error = %e, "final log store commit failed; the WAL keeps the entries");
        }
    }
}

impl LogStore {
    /// Opens the store in `dir` with default options; see [`LogStore::open_with`].
    pub fn open(dir: &Path) -> Result<LogStore, Error> {
        LogStore::open_with(dir, LogStoreOptions::default())
    }

    /// Opens the store in `dir`, creating it if missing: takes the directory's lock, opens
    /// every partition (moving aside, with a warning, any that fails), replays the WAL into
    /// them, commits, trims the WAL, applies retention and starts the background committer.
    ///
    /// Fails if another store holds the directory, or if the WAL cannot be read.
    pub fn open_with(dir: &Path, options: LogStoreOptions) -> Result<LogStore, Error> {
        if options.partition.is_zero() {
            return Err(Error::Invalid(
                "the log partition window must be longer than zero".into(),
            ));
        }
        std::fs::create_dir_all(dir)?;
        let lock = DirLock::acquire(dir)?;
        let window_ns = i64::try_from(options.partition.as_nanos()).unwrap_or(i64::MAX);
        let mut parts = Partitions::open(dir, window_ns)?;
        let fields = Fields::from_schema(&Fields::schema())?;
        let mut replay = ingest::Replay::default();
        let (wal, wal_stats) =
            Wal::open(&dir.join(WAL_DIR), options.wal_segment_bytes, |streams| {
                replay.record(&mut parts, &fields, &streams)
            })?;
        parts.commit()?;
        wal.remove_sealed()?;
        let core = Arc::new(Core {
            dir: dir.to_path_buf(),
            options,
            fields,
            terms: TermCache::new(DEFAULT_TERM_CACHE_BYTES),
            wal,
            parts: Mutex::new(parts),
            tail: TailHub::default(),
            _lock: lock,
        });
        core.apply_retention(unix_now_ns())?;
        tracing::info!(
            dir = %dir.display(),
            partitions = core.lock_parts()?.len(),
            wal_segments = wal_stats.segments,
            wal_records = wal_stats.records,
            wal_repaired = wal_stats.repaired,
            replayed_entries = replay.entries,
            replayed_duplicates = replay.duplicates,
            "log store opened"
        );
        let background = Some(Background::start(core.clone()));
        Ok(LogStore {
            core,
            background,
            checkpoint_on_drop: true,
        })
    }

    /// Stores the streams; when this returns `Ok`, the entries are fsync'd to the WAL and
    /// visible to queries. Entries identical to a stored one (stream, timestamp and line) are
    /// counted as duplicates and not stored again.
    ///
    /// Streams without entries are skipped. Every stream is validated (non-empty label set,
    /// valid label names) before anything is written, so an invalid push stores nothing.
    pub fn push(&self, streams: &[LogStream]) -> Result<PushOutcome, Error> {
        for s in streams.iter().filter(|s| !s.entries.is_empty()) {
            validate_stream_labels(&s.labels, &s.labels.to_string())?;
        }
        if streams.iter().all(|s| s.entries.is_empty()) {
            return Ok(PushOutcome::default());
        }
        let framed = wal::encode_push(streams).ok_or_else(|| {
            Error::Invalid("the push is too large for one WAL record; send smaller batches".into())
        })?;
        let ticket = self.core.wal.log(&framed)?;
        // Collected only while a tail is open: pushes pay nothing for tailing otherwise.
        let mut stored = self.core.tail.is_active().then(Vec::new);
        let indexed = match self.core.wal.wait_durable(ticket) {
            Err(e) => Err(Error::from(e)),
            Ok(()) => match self.core.lock_parts() {
                Err(e) => Err(e),
                Ok(mut parts) => {
                    let outcome =
                        ingest::index(&mut parts, &self.core.fields, streams, stored.as_mut());
                    // Released under the partitions lock, so a checkpoint never sees the
                    // segment released before its entries are indexed.
                    self.core.wal.finish(ticket);
                    drop(parts);
                    if let (Ok(_), Some(stored)) = (&outcome, &stored) {
                        self.core.tail.publish(stored);
                    }
                    return outcome.inspect(|o| {
                        tracing::debug!(
                            entries = o.entries,
                            duplicates = o.duplicates,
                            streams = o.streams,
                            "push logged"
                        );
                    });
                }
            },
        };
        // Not acknowledged: the record stays in the WAL (replay may still index it, which a
        // client's retry then finds as a duplicate) but no longer pins its segment.
        self.core.wal.finish(ticket);
        indexed
    }

    /// Commits pending entries to tantivy and trims the WAL of what they made redundant. The
    /// background thread does this every [`LogStoreOptions::commit_interval`].
    pub fn checkpoint(&self) -> Result<(), Error> {
        self.core.checkpoint()
    }

    /// Applies the retention options as of `now_ns`; the names of the deleted partitions. The
    /// background thread does this every [`RETENTION_CHECK_INTERVAL`].
    pub fn apply_retention(&self, now_ns: i64) -> Result<Vec<String>, Error> {
        self.core.apply_retention(now_ns)
    }

    /// Number of time partitions.
    pub fn partitions(&self) -> Result<usize, Error> {
        Ok(self.core.lock_parts()?.len())
    }

    /// WAL fsyncs since open: with group commit, fewer than the pushes when they overlap.
    pub fn wal_fsyncs(&self) -> u64 {
        self.core.wal.fsyncs()
    }

    /// tantivy commits since open, of any partition: the background thread's and
    /// [`LogStore::checkpoint`]'s, never a query's.
    pub fn index_commits(&self) -> Result<u64, Error> {
        Ok(self.core.lock_parts()?.commits())
    }

    /// Entries acknowledged but not yet committed to tantivy (queries find them in memory).
    pub fn pending_entries(&self) -> Result<usize, Error> {
        Ok(self.core.lock_parts()?.pending_entries())
    }

    /// The label names of the streams with entries in `[start_ns, end_ns)`, sorted, distinct;
    /// only of the streams matching `matchers` when there are any (Loki's `query=`).
    pub fn label_names(
        &self,
        matchers: &[Matcher],
        start_ns: i64,
        end_ns: i64,
    ) -> Result<Vec<String>, Error> {
        let mut names = BTreeSet::new();
        for labels in self.streams_in_range(matchers, start_ns, end_ns)? {
            names.extend(labels.iter().map(|l| l.name.clone()));
        }
        Ok(names.into_iter().collect())
    }

    /// The values of label `name` in the streams with entries in `[start_ns, end_ns)`, sorted,
    /// distinct; only of the streams matching `matchers` when there are any.
    pub fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        start_ns: i64,
        end_ns: i64,
    ) -> Result<Vec<String>, Error> {
        // A name that cannot be a label has no values; checking it also keeps a name holding
        // `=` from matching other labels' terms in the prefix walk.
        if Labels::try_from_pairs([(name, "x")]).is_err() {
            return Ok(Vec::new());
        }
        let has_label = Matcher::new(MatchOp::Regex, name, ".+")
            .map_err(|e| Error::Index(format!("building a matcher: {e}")))?;
        let mut all = matchers.to_vec();
        all.push(has_label);
        let mut values = BTreeSet::new();
        for labels in self.streams_in_range(&all, start_ns, end_ns)? {
            if let Some(v) = labels.get(name) {
                values.insert(v.to_string());
            }
        }
        Ok(values.into_iter().collect())
    }

    /// The label sets of the streams matching `matchers` with entries in the range.
    pub(crate) fn streams_in_range(
        &self,
        matchers: &[Matcher],
        start_ns: i64,
        end_ns: i64,
    ) -> Result<Vec<Labels>, Error> {
        let mut streams = BTreeSet::new();
        for view in self.views(start_ns, end_ns)? {
            if let Some(q) = self.selector_query(&view.searcher, matchers, start_ns, end_ns)? {
                streams.extend(distinct_streams(&view.searcher, &q)?);
            }
            for e in view.pending.matching(matchers, start_ns, end_ns) {
                if !streams.contains(&*e.stream) {
                    streams.insert(e.stream.to_string());
                }
            }
        }
        streams.iter().map(|s| parse_stream(s)).collect()
    }

    /// Views (committed index and pending entries) of the partitions overlapping
    /// `[start_ns, end_ns)`, oldest first. Every push acknowledged before this call is in one
    /// of them; nothing is committed here, so queries never wait for tantivy.
    pub(crate) fn views(&self, start_ns: i64, end_ns: i64) -> Result<Vec<View>, Error> {
        Ok(self.core.lock_parts()?.views(start_ns, end_ns))
    }

    /// Where a query of `view` finds its segments' line term layouts.
    pub(crate) fn terms_of<'a>(&'a self, view: &'a View) -> Terms<'a> {
        Terms {
            cache: &self.core.terms,
            dir: Some(&view.terms_dir),
        }
    }

    /// The query for every entry of the streams matching `matchers` in `[start_ns, end_ns)`,
    /// with no line filters; `None` when nothing can match (an empty range, or a matcher no
    /// stored stream satisfies).
    pub(crate) fn selector_query(
        &self,
        searcher: &Searcher,
        matchers: &[Matcher],
        start_ns: i64,
        end_ns: i64,
    ) -> Result<Option<BooleanQuery>, Error> {
        if start_ns >= end_ns {
            return Ok(None);
        }
        entries_query(
            searcher,
            &self.core.fields,
            // No line filters, so how lines were tokenized does not matter.
            LineIndexing::Marked,
            None,
            matchers,
            &[],
            start_ns,
            end_ns,
        )
    }
}

impl Core {
    fn lock_parts(&self) -> Result<MutexGuard<'_, Partitions>, Error> {
        self.parts
            .lock()
            .map_err(|_| Error::Index("log partitions lock poisoned".into()))
    }

    /// Seals the WAL's current segment, commits every partition, closes idle writers and
    /// deletes the WAL segments whose entries are now all committed. Under the partitions
    /// lock, so no push indexes between the commit and the trim.
    fn checkpoint(&self) -> Result<(), Error> {
        let mut parts = self.lock_parts()?;
        self.wal.rotate()?;
        parts.commit()?;
        parts.close_idle_writers();
        self.wal.remove_sealed()?;
        Ok(())
    }

    fn apply_retention(&self, now_ns: i64) -> Result<Vec<String>, Error> {
        let keep = self
            .options
            .retention_time
            .filter(|d| !d.is_zero())
            .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
        let max_bytes = self.options.retention_bytes.filter(|b| *b > 0);
        if keep.is_none() && max_bytes.is_none() {
            return Ok(Vec::new());
        }
        let removed = self
            .lock_parts()?
            .apply_retention(now_ns, keep, max_bytes)?;
        for name in &removed {
            tracing::info!(partition = %name, "log partition deleted by retention");
        }
        Ok(removed)
    }
}

/// Nanoseconds since the epoch, by the system clock.
pub(crate) fn unix_now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// Stream labels must be non-empty with valid names: the identity of a stream is its labels,
/// and the `labels` terms rely on names never holding `=`. The canonical form must also fit in
/// one index term: tantivy silently drops longer terms, which would make the stream unfindable.
/// (Loki's tighter per-label length limits belong to the ingestion limits, not to storage.)
pub(crate) fn validate_stream_labels(labels: &Labels, canonical: &str) -> Result<(), Error> {
    if labels.is_empty() {
        return Err(Error::Invalid(
            "error parsing labels: stream has no labels; at least one label is required"
                .to_string(),
        ));
    }
    Labels::try_from_pairs(labels.iter().map(|l| (l.name.as_str(), l.value.as_str())))
        .map_err(|e| Error::Invalid(format!("stream {labels}: {e}")))?;
    if canonical.len() > MAX_TOKEN_LEN {
        return Err(Error::Invalid(format!(
            "stream labels are {} bytes long, more than the {MAX_TOKEN_LEN} bytes allowed",
            canonical.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
impl LogStore {
    /// Stops the store as `kill -9` would: no final commit, pending entries only in the WAL.
    pub(crate) fn abandon(mut self) {
        if let Some(bg) = self.background.take() {
            bg.stop();
        }
        self.checkpoint_on_drop = false;
    }
}

#[cfg(test)]
mod durability_tests;
#[cfg(test)]
mod needle_tests;
#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod visibility_tests;
