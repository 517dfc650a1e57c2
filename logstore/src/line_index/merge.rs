//! Merging the line indexes of segments tantivy merges into one.
//!
//! Tantivy stacks the merged segments' documents in the order of its readers, leaving out
//! deleted ones (it only reorders documents for a sorted index, which partitions never are).
//! So each source's document `d` becomes `base + d` minus the deleted documents before it,
//! and the merged postings of a term are its sources' postings, renumbered, in source order:
//! ascending again. Each source's terms are already in layout order (by length, then bytes),
//! so merging them in that order needs no sort. The terms are merged once, recording which
//! sources hold each; the layout is built from them, then each term's postings go straight
//! to the file, so a merge holds the terms but never all postings in memory.

use super::format::{IndexWriter, LineIndex};
use super::{component, layout_key, layout_of, query};
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use tantivy::directory::TerminatingWrite;
use tantivy::indexer::doc_id_mapping::MappingType;
use tantivy::plugin::PluginMergeContext;
use tantivy::{DocId, SegmentReader, TantivyError};

/// Where a source segment's documents go in the merged one.
enum Renumber {
    /// None deleted: shifted by the documents of the sources before.
    Shift(DocId),
    /// By old document: the new id, or `None` for a deleted one.
    Table(Vec<Option<DocId>>),
}

impl Renumber {
    fn of(reader: &SegmentReader, base: DocId) -> (Renumber, DocId) {
        match reader.alive_bitset() {
            None => (Renumber::Shift(base), base + reader.max_doc()),
            Some(alive) => {
                let mut next = base;
                let table = (0..reader.max_doc())
                    .map(|d| {
                        alive.is_alive(d).then(|| {
                            next += 1;
                            next - 1
                        })
                    })
                    .collect();
                (Renumber::Table(table), next)
            }
        }
    }

    fn get(&self, doc: DocId) -> Option<DocId> {
        match self {
            Renumber::Shift(base) => base.checked_add(doc),
            Renumber::Table(t) => t.get(doc as usize).copied().flatten(),
        }
    }
}

/// A source's next term in the merge: ordered by [`layout_key`], then bytes, then source.
struct Head<'a> {
    key: (usize, u64),
    term: &'a [u8],
    source: usize,
    index: usize,
}

impl Ord for Head<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key
            .cmp(&other.key)
            .then_with(|| self.term.cmp(other.term))
            .then(self.source.cmp(&other.source))
    }
}

impl PartialOrd for Head<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Head<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Head<'_> {}

/// The distinct terms of the sources in layout order, each with the (source, term index)
/// pairs holding it in source order.
#[derive(Default)]
struct MergedTerms {
    /// The terms' bytes back to back; term `i` ends at `ends[i]`.
    bytes: Vec<u8>,
    ends: Vec<usize>,
    /// Term `i`'s holders end at `holder_ends[i]`.
    holders: Vec<(u32, u32)>,
    holder_ends: Vec<usize>,
}

impl MergedTerms {
    fn of(sources: &[LineIndex]) -> MergedTerms {
        let head = |source: usize, index: usize| {
            let terms = sources[source].terms();
            (index < terms.num_terms()).then(|| {
                let term = terms.term(index);
                Reverse(Head {
                    key: layout_key(term),
                    term,
                    source,
                    index,
                })
            })
        };
        let mut heap: BinaryHeap<Reverse<Head<'_>>> =
            (0..sources.len()).filter_map(|s| head(s, 0)).collect();
        let mut out = MergedTerms::default();
        while let Some(Reverse(first)) = heap.pop() {
            out.holders.push((first.source as u32, first.index as u32));
            heap.extend(head(first.source, first.index + 1));
            while heap
                .peek()
                .is_some_and(|Reverse(h)| h.key == first.key && h.term == first.term)
            {
                if let Some(Reverse(same)) = heap.pop() {
                    out.holders.push((same.source as u32, same.index as u32));
                    heap.extend(head(same.source, same.index + 1));
                }
            }
            // Popped in (term, source) order, so holders are in source order.
            out.holder_ends.push(out.holders.len());
            out.bytes.extend_from_slice(first.term);
            out.ends.push(out.bytes.len());
        }
        out
    }

    fn term(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.bytes[start..self.ends[i]]
    }

    fn holders(&self, i: usize) -> &[(u32, u32)] {
        let start = if i == 0 { 0 } else { self.holder_ends[i - 1] };
        &self.holders[start..self.holder_ends[i]]
    }
}

pub(super) fn merge(ctx: PluginMergeContext) -> tantivy::Result<()> {
    if ctx.doc_id_mapping.mapping_type() == MappingType::Shuffled {
        return Err(TantivyError::InvalidArgument(
            "the line index does not support sorted indexes".into(),
        ));
    }
    let sources = ctx
        .readers
        .iter()
        .map(query::read)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TantivyError::InternalError(e.to_string()))?;
    let mut base = 0;
    let mut renumber = Vec::with_capacity(sources.len());
    for reader in ctx.readers {
        let (r, next) = Renumber::of(reader, base);
        renumber.push(r);
        base = next;
    }
    let docs = base;

    // The sources' terms merged once; the postings follow the holders it recorded.
    let merged = MergedTerms::of(&sources);
    let layout = layout_of((0..merged.ends.len()).map(|i| merged.term(i)))?;
    let mut out = IndexWriter::new(ctx.target_segment.open_write(component())?, &layout)?;
    let mut docs_of_term: Vec<DocId> = Vec::new();
    for i in 0..merged.ends.len() {
        docs_of_term.clear();
        for &(source, index) in merged.holders(i) {
            let r = &renumber[source as usize];
            docs_of_term.extend(
                sources[source as usize]
                    .postings(index as usize)
                    .filter_map(|d| r.get(d)),
            );
        }
        out.add(docs_of_term.iter().copied())?;
    }
    out.finish(docs)?.terminate()?;
    Ok(())
}
