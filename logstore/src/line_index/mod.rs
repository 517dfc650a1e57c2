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
mod table;

use crate::document::EntryDoc;
use crate::schema::LINE;
use crate::term_layout::SegmentTerms;
use crate::tokens::line_analyzer;
use table::TokenTable;
use tantivy::directory::TerminatingWrite;
use tantivy::index::SegmentComponent;
use tantivy::indexer::doc_id_mapping::DocIdMapping;
use tantivy::plugin::{PluginMergeContext, PluginWriter, PluginWriterContext, SegmentPlugin};
use tantivy::schema::document::ErasedDocument;
use tantivy::schema::{Field, Schema, Value};
use tantivy::tokenizer::TextAnalyzer;
use tantivy::{DocId, Segment, TantivyDocument, TantivyError};

pub(crate) use query::{forget_idle, LineIndexWarmer, LineTokensQuery};

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

/// Gathers one segment's line tokens while it is written.
struct SegmentLineWriter {
    line: Field,
    analyzer: TextAnalyzer,
    tokens: TokenTable,
    docs: u32,
}

impl SegmentLineWriter {
    fn new(line: Field) -> Self {
        SegmentLineWriter {
            line,
            analyzer: line_analyzer(),
            tokens: TokenTable::new(),
            docs: 0,
        }
    }
}

impl PluginWriter for SegmentLineWriter {
    fn add_document(
        &mut self,
        doc_id: DocId,
        doc: &dyn ErasedDocument,
        _schema: &Schema,
    ) -> tantivy::Result<()> {
        let any = doc.as_any();
        if let Some(doc) = any.downcast_ref::<EntryDoc>() {
            self.tokens
                .index_line(&mut self.analyzer, doc.line(), doc_id);
        } else if let Some(doc) = any.downcast_ref::<TantivyDocument>() {
            for value in doc.get_all(self.line) {
                if let Some(text) = value.as_str() {
                    self.tokens.index_line(&mut self.analyzer, text, doc_id);
                }
            }
        } else {
            return Err(TantivyError::InvalidArgument(
                "the line index reads log entry documents and TantivyDocuments only".into(),
            ));
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
        let mut this = *self;
        let postings = this.tokens.postings();
        let tokens = &this.tokens;
        let order = tokens.sorted();
        let layout = layout_of(order.iter().map(|&n| tokens.token(n)))?;
        let mut out = format::IndexWriter::new(segment.open_write(component())?, &layout)?;
        for &n in &order {
            out.add(postings.docs(n).iter().copied())?;
        }
        out.finish(this.docs)?.terminate()?;
        Ok(())
    }

    fn mem_usage(&self) -> usize {
        self.tokens.mem_usage()
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

/// A term's place in layout order as two integers: its length, then its first eight bytes
/// as a big-endian number (zero-padded), which orders like the bytes do. Terms equal in both
/// compare the rest of their bytes.
fn layout_key(term: &[u8]) -> (usize, u64) {
    let prefix = term
        .iter()
        .take(8)
        .fold(0u64, |p, &b| (p << 8) | u64::from(b))
        .checked_shl(8 * (8 - term.len().min(8)) as u32)
        .unwrap_or(0);
    (term.len(), prefix)
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
