//! The tantivy query a `|=` needle becomes on [`Layout::V4`](crate::schema::Layout::V4)
//! partitions: the documents whose lines hold the tokens the needle guarantees, read from
//! each segment's line index file.
//!
//! It proves what `plan.rs` describes for tantivy's terms, with the same rules: the tokens a
//! needle holds whole are each required exactly; a needle without any requires, for each token
//! at its edges or without separators, one of the terms it fits (found in the layout by
//! `line_terms.rs`'s [`TokenFinder`]) or the long-token marker. A token fitting more than
//! [`MAX_EXPANSION`] terms narrows nothing. The caller re-checks every line.

use super::format::LineIndex;
use crate::line_terms::TokenFinder;
use crate::plan::MAX_EXPANSION;
use crate::tokens::{Fit, NeedleToken, LONG_TOKEN};
use crate::Error;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tantivy::directory::error::OpenReadError;
use tantivy::directory::OwnedBytes;
use tantivy::index::SegmentId;
use tantivy::query::{ConstScorer, EnableScoring, Explanation, Query, Scorer, Weight};
use tantivy::{
    DocId, DocSet, Score, Searcher, SearcherGeneration, SegmentReader, TantivyError, Warmer,
    TERMINATED,
};

/// Line indexes opened, by segment. Segment ids are random 128-bit ids, unique across
/// indexes, and a segment's files never change, so an index is opened and its CRCs checked
/// once, not at every query: tantivy's directory unmaps a file once nothing holds it, and
/// mapping it again at each query cost more page faults than the query's own work.
///
/// An index must be opened while its segment's files exist. tantivy opens a searcher's segment
/// files under its meta lock, so the garbage collection that follows a merge cannot delete
/// them halfway; a file opened later, by a query, may already be gone when the segment was
/// merged away and the searcher is older than the merge. So each partition's reader has a
/// [`LineIndexWarmer`], which opens the line index of every segment of each new searcher
/// (a moment after tantivy's lock, which is why [`open`] still copes with a missing file) and
/// keeps it pinned here for as long as a searcher that has the segment lives. An index a query
/// opened itself is dropped after [`IDLE`] unused ([`forget_idle`]).
static OPENED: Mutex<Option<Opened>> = Mutex::new(None);
type Opened = HashMap<SegmentId, OpenedIndex>;
pub(crate) const IDLE: Duration = Duration::from_secs(60);

struct OpenedIndex {
    index: Arc<LineIndex>,
    /// The whole file, for the CRC check a warmer's open leaves to the first query.
    file: OwnedBytes,
    /// Whether its CRCs were checked.
    verified: bool,
    /// When a query last used it.
    used: Instant,
    /// Whether a warmer keeps it: a live searcher has its segment.
    pinned: bool,
}

fn opened() -> std::sync::MutexGuard<'static, Option<Opened>> {
    OPENED.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The line index of the segment `reader` reads, its CRCs checked when first opened; `None`
/// when its file is gone (the segment was merged away and collected, see [`OPENED`]).
pub(crate) fn open(reader: &SegmentReader) -> Result<Option<Arc<LineIndex>>, Error> {
    open_with(reader, false)
}

/// Opens (or finds open) the index of `reader`'s segment; `pin` for a warmer's open, which
/// checks no CRC: a store opens every segment of every partition, and reading all of their
/// line indexes at start would cost a restart its whole size. The first query to use an index
/// checks it.
fn open_with(reader: &SegmentReader, pin: bool) -> Result<Option<Arc<LineIndex>>, Error> {
    let id = reader.segment_id();
    let now = Instant::now();
    {
        let mut opened = opened();
        if let Some(o) = opened.get_or_insert_with(HashMap::new).get_mut(&id) {
            if !pin && !o.verified {
                o.index = Arc::new(LineIndex::parse(o.file.clone(), true)?);
                o.verified = true;
            }
            o.used = now;
            o.pinned |= pin;
            return Ok(Some(o.index.clone()));
        }
    }
    let Some(file) = file_of(reader)? else {
        return Ok(None);
    };
    let index = Arc::new(LineIndex::parse(file.clone(), !pin)?);
    let mut opened = opened();
    let o = opened
        .get_or_insert_with(HashMap::new)
        .entry(id)
        .or_insert_with(|| OpenedIndex {
            index,
            file,
            verified: !pin,
            used: now,
            pinned: false,
        });
    // Opened meanwhile by a warmer: this open checked the same file.
    o.verified |= !pin;
    o.pinned |= pin;
    Ok(Some(o.index.clone()))
}

/// Drops the indexes no warmer pins that are unused for [`IDLE`] at `now`. The store's
/// background task calls it every commit interval, so the file of a segment merged away or
/// of a partition retention deleted is unmapped (its disk space freed) even when no query
/// comes.
pub(crate) fn forget_idle(now: Instant) {
    if let Some(opened) = opened().as_mut() {
        opened.retain(|_, o| o.pinned || now.saturating_duration_since(o.used) < IDLE);
    }
}

/// Lets the indexes of `ids` go: no live searcher has their segments.
fn unpin(ids: impl IntoIterator<Item = SegmentId>) {
    if let Some(opened) = opened().as_mut() {
        for id in ids {
            opened.remove(&id);
        }
    }
}

/// Whether the index of segment `id` is kept open.
#[cfg(test)]
pub(crate) fn is_open(id: SegmentId) -> bool {
    opened().as_ref().is_some_and(|o| o.contains_key(&id))
}

/// Opens the line index of each segment of every new searcher of one index, and keeps it
/// open while a searcher that has the segment lives (see [`OPENED`]). tantivy holds warmers
/// weakly: the partition owns it.
#[derive(Debug, Default)]
pub(crate) struct LineIndexWarmer {
    /// The segments whose indexes this warmer pins.
    pinned: Mutex<HashSet<SegmentId>>,
}

impl Warmer for LineIndexWarmer {
    fn warm(&self, searcher: &Searcher) -> tantivy::Result<()> {
        let mut pinned = self.pinned.lock().unwrap_or_else(PoisonError::into_inner);
        for reader in searcher.segment_readers() {
            match open_with(reader, true) {
                Ok(Some(_)) => {
                    pinned.insert(reader.segment_id());
                }
                // Merged away as the searcher loaded: queries search it without its index.
                Ok(None) => {}
                // Not the reload's failure: the query that needs the index reports it.
                Err(error) => tracing::warn!(
                    segment = %reader.segment_id().uuid_string(),
                    %error,
                    "cannot open a segment's line index"
                ),
            }
        }
        Ok(())
    }

    fn garbage_collect(&self, live: &[&SearcherGeneration]) {
        let live: HashSet<SegmentId> = live
            .iter()
            .flat_map(|g| g.segments().keys().copied())
            .collect();
        let mut pinned = self.pinned.lock().unwrap_or_else(PoisonError::into_inner);
        let gone: Vec<SegmentId> = pinned.difference(&live).copied().collect();
        pinned.retain(|id| live.contains(id));
        unpin(gone);
    }
}

impl Drop for LineIndexWarmer {
    fn drop(&mut self) {
        let pinned = self
            .pinned
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        unpin(pinned.drain());
    }
}

/// Reads the line index of the segment `reader` reads, checking its CRCs (a merge reads its
/// sources this way: they are about to go, so they are not kept open).
pub(crate) fn read(reader: &SegmentReader) -> Result<LineIndex, Error> {
    let file = file_of(reader)?
        .ok_or_else(|| Error::Index("line index: the segment's file does not exist".into()))?;
    LineIndex::parse(file, true)
}

/// The bytes of the line index file of `reader`'s segment; `None` when it does not exist.
fn file_of(reader: &SegmentReader) -> Result<Option<OwnedBytes>, Error> {
    match reader.open_read(super::component()) {
        Ok(file) => Ok(Some(file.read_bytes()?)),
        Err(OpenReadError::FileDoesNotExist(_)) => Ok(None),
        Err(e) => Err(Error::Index(format!("line index: {e}"))),
    }
}

/// The documents holding the tokens that the `|=` needles' tokens require; see the module
/// docs.
#[derive(Clone, Debug)]
pub(crate) struct LineTokensQuery {
    /// Tokens the needles hold whole: each is required.
    whole: Vec<String>,
    /// Used when there are none: tokens at a needle's edge or without separators.
    edges: Vec<NeedleToken>,
}

impl LineTokensQuery {
    /// `None` when the tokens prove nothing (no whole token and no edge token).
    pub fn new(whole: Vec<String>, edges: Vec<NeedleToken>) -> Option<LineTokensQuery> {
        (!whole.is_empty() || !edges.is_empty()).then_some(LineTokensQuery { whole, edges })
    }
}

impl Query for LineTokensQuery {
    fn weight(&self, _scoring: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        let finder = |text: &str, fit: Fit| {
            TokenFinder::new(text, fit).map_err(|e| TantivyError::InvalidArgument(e.to_string()))
        };
        let (required, edges) = if self.whole.is_empty() {
            let finders = self
                .edges
                .iter()
                .map(|t| finder(&t.text, t.fit))
                .collect::<Result<Vec<_>, _>>()?;
            (finders, true)
        } else {
            let finders = self
                .whole
                .iter()
                .map(|t| finder(t, Fit::Whole))
                .collect::<Result<Vec<_>, _>>()?;
            (finders, false)
        };
        Ok(Box::new(LineTokensWeight {
            required,
            long: edges.then(|| finder(LONG_TOKEN, Fit::Whole)).transpose()?,
        }))
    }
}

struct LineTokensWeight {
    /// A line must hold a term each of these fits.
    required: Vec<TokenFinder>,
    /// For edge tokens: the long-token marker, which any of them may sit in.
    long: Option<TokenFinder>,
}

/// A set of a segment's documents.
struct Bits(Vec<u64>);

impl Bits {
    fn new(docs: DocId) -> Bits {
        Bits(vec![0; (docs as usize).div_ceil(64)])
    }

    fn all(docs: DocId) -> Bits {
        let mut b = Bits(vec![u64::MAX; (docs as usize).div_ceil(64)]);
        let rest = docs % 64;
        if let (Some(last), true) = (b.0.last_mut(), rest != 0) {
            *last = (1u64 << rest) - 1;
        }
        b
    }

    /// Adds `doc`; one past the segment is ignored (a sound file has none).
    fn insert(&mut self, doc: DocId) {
        if let Some(word) = self.0.get_mut(doc as usize / 64) {
            *word |= 1 << (doc % 64);
        }
    }

    fn and(&mut self, other: &Bits) {
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a &= b;
        }
    }

    fn docs(&self) -> Vec<DocId> {
        let mut out = Vec::new();
        for (i, &word) in self.0.iter().enumerate() {
            let mut w = word;
            while w != 0 {
                out.push(i as DocId * 64 + w.trailing_zeros());
                w &= w - 1;
            }
        }
        out
    }
}

/// Documents found, ascending, as a tantivy doc set (which starts on its first document).
struct Docs {
    docs: Vec<DocId>,
    at: usize,
}

impl DocSet for Docs {
    fn advance(&mut self) -> DocId {
        self.at = (self.at + 1).min(self.docs.len());
        self.doc()
    }

    fn seek(&mut self, target: DocId) -> DocId {
        let rest = self.docs.get(self.at..).unwrap_or(&[]);
        self.at += rest.partition_point(|&d| d < target);
        self.doc()
    }

    fn doc(&self) -> DocId {
        self.docs.get(self.at).copied().unwrap_or(TERMINATED)
    }

    fn size_hint(&self) -> u32 {
        u32::try_from(self.docs.len() - self.at).unwrap_or(u32::MAX)
    }
}

impl LineTokensWeight {
    /// The segment's documents that may hold the needles, ascending.
    fn docs(&self, reader: &SegmentReader) -> tantivy::Result<Vec<DocId>> {
        let max = reader.max_doc();
        let index = open(reader).map_err(|e| TantivyError::InternalError(e.to_string()))?;
        // A segment whose index is gone (see `OPENED`) is searched whole: the line decides.
        let Some(index) = index else {
            return Ok(Bits::all(max).docs());
        };
        if index.docs() > max {
            return Err(TantivyError::InternalError(format!(
                "line index of segment {} covers {} documents, the segment has {max}",
                reader.segment_id().uuid_string(),
                index.docs()
            )));
        }
        let mut found: Option<Bits> = None;
        for finder in &self.required {
            let mut bits = Bits::new(max);
            let mut fitting = 0;
            finder.each_fitting(index.terms(), |i, _| {
                fitting += 1;
                index.postings(i).for_each(|d| bits.insert(d));
                fitting <= MAX_EXPANSION
            });
            if fitting > MAX_EXPANSION {
                continue;
            }
            if let Some(long) = &self.long {
                long.each_fitting(index.terms(), |i, _| {
                    index.postings(i).for_each(|d| bits.insert(d));
                    true
                });
            }
            match &mut found {
                Some(f) => f.and(&bits),
                None => found = Some(bits),
            }
        }
        Ok(found.unwrap_or_else(|| Bits::all(max)).docs())
    }
}

impl Weight for LineTokensWeight {
    fn scorer(&self, reader: &SegmentReader, boost: Score) -> tantivy::Result<Box<dyn Scorer>> {
        let docs = Docs {
            docs: self.docs(reader)?,
            at: 0,
        };
        Ok(Box::new(ConstScorer::new(docs, boost)))
    }

    fn explain(&self, reader: &SegmentReader, doc: DocId) -> tantivy::Result<Explanation> {
        if self.docs(reader)?.binary_search(&doc).is_ok() {
            Ok(Explanation::new("holds the needles' line tokens", 1.0))
        } else {
            Err(TantivyError::InvalidArgument(format!(
                "document {doc} does not hold the needles' line tokens"
            )))
        }
    }
}
