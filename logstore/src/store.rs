//! [`LogStore`]: one tantivy index in a directory, one writer, and the query entry points.

use crate::fetch::distinct_streams;
use crate::plan::entries_query;
use crate::schema::{label_terms, parse_stream, Fields, LINE_TOKENIZER};
use crate::Error;
use model::{Labels, LogStream, MatchOp, Matcher};
use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Mutex;
use tantivy::directory::MmapDirectory;
use tantivy::query::BooleanQuery;
use tantivy::tokenizer::{TextAnalyzer, MAX_TOKEN_LEN};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, Searcher, TantivyDocument};

/// Indexing threads of the writer. One is enough at agent batch sizes and leaves the cores to
/// queries; more threads also mean more, smaller segments per commit.
const WRITER_THREADS: usize = 1;
/// The writer's memory budget, shared by its threads; tantivy needs at least 15 MB per thread.
const WRITER_MEMORY_BYTES: usize = 64 * 1024 * 1024;

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
    /// Distinct streams (label sets) that received entries.
    pub streams: usize,
}

/// A log store over one tantivy index. `Send + Sync`: share it in an `Arc`. Pushes are
/// serialised on the writer; queries run concurrently on the last committed state.
pub struct LogStore {
    dir: PathBuf,
    index: Index,
    pub(crate) fields: Fields,
    writer: Mutex<IndexWriter<TantivyDocument>>,
    pub(crate) reader: IndexReader,
}

impl fmt::Debug for LogStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogStore")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl LogStore {
    /// Opens the index in `dir`, creating the directory and an empty index if missing.
    ///
    /// Fails if another `LogStore` (in this or another process) holds the index's writer lock,
    /// or if the index was created with a different schema.
    pub fn open(dir: &Path) -> Result<LogStore, Error> {
        std::fs::create_dir_all(dir)?;
        let index = Index::open_or_create(MmapDirectory::open(dir)?, Fields::schema())?;
        let fields = Fields::from_schema(&index.schema())?;
        let writer = index.writer_with_num_threads(WRITER_THREADS, WRITER_MEMORY_BYTES)?;
        // Manual reloads give read-your-writes: `push` reloads before returning.
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        tracing::info!(dir = %dir.display(), docs = reader.searcher().num_docs(), "log store opened");
        Ok(LogStore {
            dir: dir.to_path_buf(),
            index,
            fields,
            writer: Mutex::new(writer),
            reader,
        })
    }

    /// Stores the streams; when this returns `Ok`, the entries are committed to disk and
    /// visible to queries.
    ///
    /// Streams without entries are skipped. The push is all or nothing: every stream is
    /// validated (non-empty label set, valid label names) before anything is written, and a
    /// failed write is rolled back so that no later commit publishes part of it.
    pub fn push(&self, streams: &[LogStream]) -> Result<PushOutcome, Error> {
        let mut docs = Vec::new();
        let mut distinct: HashSet<&Labels> = HashSet::new();
        for s in streams.iter().filter(|s| !s.entries.is_empty()) {
            let canonical = s.labels.to_string();
            validate_stream_labels(&s.labels, &canonical)?;
            distinct.insert(&s.labels);
            let terms = label_terms(&s.labels);
            for entry in &s.entries {
                docs.push(self.fields.document(&canonical, &terms, entry)?);
            }
        }
        let outcome = PushOutcome {
            entries: docs.len(),
            streams: distinct.len(),
        };
        if docs.is_empty() {
            return Ok(outcome);
        }

        let mut writer = self
            .writer
            .lock()
            .map_err(|_| Error::Index("index writer lock poisoned".to_string()))?;
        let written = docs
            .into_iter()
            .try_for_each(|doc| writer.add_document(doc).map(drop))
            .and_then(|()| writer.commit().map(drop));
        if let Err(e) = written {
            if let Err(rollback) = writer.rollback() {
                tracing::error!(error = %rollback, "rollback after a failed push failed");
            }
            return Err(e.into());
        }
        self.reader.reload()?;
        drop(writer);
        tracing::debug!(
            entries = outcome.entries,
            streams = outcome.streams,
            "push committed"
        );
        Ok(outcome)
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
        let searcher = self.reader.searcher();
        let Some(q) = self.selector_query(&searcher, matchers, start_ns, end_ns)? else {
            return Ok(Vec::new());
        };
        distinct_streams(&searcher, &q)?
            .iter()
            .map(|s| parse_stream(s))
            .collect()
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
        let mut analyzer = self.line_analyzer()?;
        entries_query(
            searcher,
            &self.fields,
            &mut analyzer,
            matchers,
            &[],
            start_ns,
            end_ns,
        )
    }

    pub(crate) fn line_analyzer(&self) -> Result<TextAnalyzer, Error> {
        self.index
            .tokenizers()
            .get(LINE_TOKENIZER)
            .ok_or_else(|| Error::Index(format!("tokenizer {LINE_TOKENIZER:?} is not registered")))
    }
}

/// Stream labels must be non-empty with valid names: the identity of a stream is its labels,
/// and the `labels` terms rely on names never holding `=`. The canonical form must also fit in
/// one index term: tantivy silently drops longer terms, which would make the stream unfindable.
/// (Loki's tighter per-label length limits belong to the ingestion limits, not to storage.)
fn validate_stream_labels(labels: &Labels, canonical: &str) -> Result<(), Error> {
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
mod tests;
