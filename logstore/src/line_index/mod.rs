//! Vigil's own index of line tokens: one file per tantivy segment, written and merged by a
//! tantivy segment plugin ([`LineIndexPlugin`]) along with the segment's other files.
//!
//! Why not tantivy's inverted index: container logs are full of near-unique tokens (trace
//! ids, request ids, timestamps' digits), so a second of logs adds tens of thousands of terms,
//! and tantivy builds a minimal FST of every segment's terms as it writes and merges it. A
//! profile of ingest put that FST building at a third of all ingest CPU. Needles do not need an
//! FST: they are looked up in a term layout ordered by length, then bytes (`term_layout.rs`),
//! which is what this file holds, built by a sort. So partitions of [`Layout::V4`] keep the
//! line stored but not indexed by tantivy, and this plugin indexes it:
//!
//! - while a segment is written, each document's line is tokenized with the line analyzer
//!   (`tokens.rs`, the same one needles are tokenized with) and each distinct token of a
//!   document adds the document to that token's postings;
//! - when the segment is written, its terms are sorted into the layout and the postings follow
//!   in layout order (`format.rs`);
//! - when segments merge, their terms are merged in layout order and the postings renumbered
//!   to the merged segment's documents (`merge.rs`);
//! - a needle's query reads the file of each segment it searches (`query.rs`).
//!
//! [`Layout::V4`]: crate::schema::Layout::V4

mod format;
mod merge;
mod query;

use crate::schema::LINE;
use crate::term_layout::SegmentTerms;
use crate::tokens::line_analyzer;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use tantivy::directory::TerminatingWrite;
use tantivy::index::SegmentComponent;
use tantivy::indexer::doc_id_mapping::DocIdMapping;
use tantivy::plugin::{PluginMergeContext, PluginWriter, PluginWriterContext, SegmentPlugin};
use tantivy::schema::document::ErasedDocument;
use tantivy::schema::{Field, Schema, Value};
use tantivy::tokenizer::TextAnalyzer;
use tantivy::{DocId, Segment, TantivyDocument, TantivyError};

pub(crate) use query::LineTokensQuery;

/// The extension of a segment's line index file.
pub(crate) const EXTENSION: &str = "vli";

fn component() -> SegmentComponent {
    SegmentComponent::Custom(EXTENSION.to_string())
}

/// The tantivy segment plugin that writes and merges line index files; registered on every
/// [`Layout::V4`](crate::schema::Layout::V4) partition's index.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LineIndexPlugin;

impl SegmentPlugin for LineIndexPlugin {
    fn extensions(&self) -> &[&str] {
        &[EXTENSION]
    }

    fn create_writer(&self, ctx: &PluginWriterContext) -> tantivy::Result<Box<dyn PluginWriter>> {
        let line = ctx.segment.schema().get_field(LINE)?;
        Ok(Box::new(SegmentLineWriter::new(line)))
    }

    fn merge(&self, ctx: PluginMergeContext) -> tantivy::Result<()> {
        merge::merge(ctx)
    }
}

/// A multiplicative hash for tokens: SipHash's collision resistance buys nothing for the
/// index's own map, and hashing every token of every line is a visible share of ingest.
#[derive(Default, Clone, Copy)]
struct TokenHasher(u64);

impl Hasher for TokenHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut h = self.0;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(c);
            h = (h.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            h = (h.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
        }
        self.0 = h;
    }

    fn write_usize(&mut self, n: usize) {
        self.0 = (self.0.rotate_left(5) ^ n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Heap a term costs beyond its bytes: map entry, key box, postings vector.
const TERM_OVERHEAD: usize = 80;

/// Gathers one segment's line tokens while it is written.
struct SegmentLineWriter {
    line: Field,
    analyzer: TextAnalyzer,
    /// Each distinct token's number, its index in `postings`.
    ids: HashMap<Box<[u8]>, u32, BuildHasherDefault<TokenHasher>>,
    /// By token number: the documents holding the token, ascending.
    postings: Vec<Vec<DocId>>,
    docs: u32,
    mem: usize,
}

impl SegmentLineWriter {
    fn new(line: Field) -> Self {
        SegmentLineWriter {
            line,
            analyzer: line_analyzer(),
            ids: HashMap::default(),
            postings: Vec::new(),
            docs: 0,
            mem: 0,
        }
    }

    /// Adds `doc` to the postings of each token of `text`.
    fn index_text(&mut self, doc: DocId, text: &str) {
        let SegmentLineWriter {
            analyzer,
            ids,
            postings,
            mem,
            ..
        } = self;
        analyzer.token_stream(text).process(&mut |token| {
            let key = token.text.as_bytes();
            match ids.get(key) {
                Some(&id) => {
                    let docs = &mut postings[id as usize];
                    // A token repeated in one line counts once.
                    if docs.last() != Some(&doc) {
                        docs.push(doc);
                        *mem += 4;
                    }
                }
                None => {
                    let id = postings.len() as u32;
                    ids.insert(key.into(), id);
                    postings.push(vec![doc]);
                    *mem += key.len() + TERM_OVERHEAD;
                }
            }
        });
    }
}

impl PluginWriter for SegmentLineWriter {
    fn add_document(
        &mut self,
        doc_id: DocId,
        doc: &dyn ErasedDocument,
        _schema: &Schema,
    ) -> tantivy::Result<()> {
        let Some(doc) = doc.as_any().downcast_ref::<TantivyDocument>() else {
            return Err(TantivyError::InvalidArgument(
                "the line index reads TantivyDocuments only".into(),
            ));
        };
        let line = self.line;
        for value in doc.get_all(line) {
            if let Some(text) = value.as_str() {
                self.index_text(doc_id, text);
            }
        }
        self.docs = self.docs.max(doc_id + 1);
        Ok(())
    }

    fn serialize(
        self: Box<Self>,
        segment: &Segment,
        doc_id_map: Option<&DocIdMapping>,
    ) -> tantivy::Result<()> {
        if doc_id_map.is_some() {
            return Err(TantivyError::InvalidArgument(
                "the line index does not support sorted indexes".into(),
            ));
        }
        let SegmentLineWriter {
            ids,
            postings,
            docs,
            ..
        } = *self;
        let mut terms: Vec<(Box<[u8]>, u32)> = ids.into_iter().collect();
        terms.sort_unstable_by(|a, b| a.0.len().cmp(&b.0.len()).then_with(|| a.0.cmp(&b.0)));
        let layout = layout_of(terms.iter().map(|(t, _)| &t[..]))?;
        let mut out = format::IndexWriter::new(segment.open_write(component())?, &layout)?;
        for (_, id) in &terms {
            out.add(postings[*id as usize].iter().copied())?;
        }
        out.finish(docs)?.terminate()?;
        Ok(())
    }

    fn mem_usage(&self) -> usize {
        self.mem
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

/// The layout of `terms`, given in layout order (by length, then bytes).
fn layout_of<'a>(terms: impl Iterator<Item = &'a [u8]>) -> tantivy::Result<SegmentTerms> {
    let mut all = Vec::new();
    let mut ends = Vec::new();
    for t in terms {
        all.extend_from_slice(t);
        ends.push(all.len());
    }
    // Each length's terms are in byte order, all `from_sorted` relies on; its stable sort by
    // length keeps the order given.
    SegmentTerms::from_sorted(&all, &ends).map_err(|e| TantivyError::InternalError(e.to_string()))
}

#[cfg(test)]
mod tests;
