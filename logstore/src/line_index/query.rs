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
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tantivy::index::SegmentId;
use tantivy::query::{ConstScorer, EnableScoring, Explanation, Query, Scorer, Weight};
use tantivy::{DocId, DocSet, Score, SegmentReader, TantivyError, TERMINATED};

/// Line indexes opened lately, by segment. Segment ids are random 128-bit ids, unique
/// across indexes, and a segment's files never change, so an index is opened and its CRCs
/// checked once, not at every query: tantivy's directory unmaps a file once nothing holds it,
/// and mapping it again at each query cost more page faults than the query's own work. An
/// entry unused for [`IDLE`] is dropped ([`forget_idle`]; its file, if merged away, is then
/// unmapped).
static OPENED: Mutex<Option<Opened>> = Mutex::new(None);
/// Each opened index, and when a query last used it.
type Opened = HashMap<SegmentId, (Arc<LineIndex>, Instant)>;
pub(crate) const IDLE: Duration = Duration::from_secs(60);

/// The line index of the segment `reader` reads; its CRCs are checked when first opened.
pub(crate) fn open(reader: &SegmentReader) -> Result<Arc<LineIndex>, Error> {
    let id = reader.segment_id();
    let now = Instant::now();
    {
        let mut opened = OPENED.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((index, used)) = opened.get_or_insert_with(HashMap::new).get_mut(&id) {
            *used = now;
            return Ok(index.clone());
        }
    }
    let index = Arc::new(read(reader)?);
    let mut opened = OPENED.lock().unwrap_or_else(PoisonError::into_inner);
    opened
        .get_or_insert_with(HashMap::new)
        .insert(id, (index.clone(), now));
    Ok(index)
}

/// Drops the indexes unused for [`IDLE`] at `now`. The store's background task calls it every
/// commit interval, so the file of a segment merged away or of a partition retention deleted
/// is unmapped (its disk space freed) even when no query comes.
pub(crate) fn forget_idle(now: Instant) {
    let mut opened = OPENED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(opened) = opened.as_mut() {
        opened.retain(|_, (_, used)| now.saturating_duration_since(*used) < IDLE);
    }
}

/// Whether the index of segment `id` is kept open.
#[cfg(test)]
pub(crate) fn is_open(id: SegmentId) -> bool {
    OPENED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
        .is_some_and(|o| o.contains_key(&id))
}

/// Reads the line index of the segment `reader` reads, checking its CRCs (a merge reads its
/// sources this way: they are about to go, so they are not kept open).
pub(crate) fn read(reader: &SegmentReader) -> Result<LineIndex, Error> {
    let bytes = reader
        .open_read(super::component())
        .map_err(|e| Error::Index(format!("line index: {e}")))?
        .read_bytes()?;
    LineIndex::parse(bytes, true)
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
        let index = open(reader).map_err(|e| TantivyError::InternalError(e.to_string()))?;
        let max = reader.max_doc();
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
