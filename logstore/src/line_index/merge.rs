//! Merging the line indexes of segments tantivy merges into one.
//!
//! Tantivy stacks the merged segments' documents in the order of its readers, leaving out
//! deleted ones (it only reorders documents for a sorted index, which partitions never are).
//! So each source's document `d` becomes `base + d` minus the deleted documents before it,
//! and the merged postings of a term are its sources' postings, renumbered, in source order:
//! ascending again. Each source's terms are already in layout order (by length, then bytes),
//! so merging them in that order needs no sort. The terms go first (to build the layout), the
//! postings second, each term's straight to the file, so a merge holds the terms but never
//! all postings in memory.

use super::format::{IndexWriter, LineIndex};
use super::{component, layout_of, query};
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

/// A source's next term in the merge: ordered by (length, bytes), then by source.
struct Head<'a> {
    term: &'a [u8],
    source: usize,
    index: usize,
}

impl Ord for Head<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.term.len(), self.term, self.source).cmp(&(other.term.len(), other.term, other.source))
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

/// Calls `each` with every distinct term of `sources` in layout order, and the (source, term
/// index) pairs holding it in source order.
fn merged_terms<E>(
    sources: &[LineIndex],
    mut each: impl FnMut(&[u8], &[(usize, usize)]) -> Result<(), E>,
) -> Result<(), E> {
    let head = |source: usize, index: usize| {
        let terms = sources[source].terms();
        (index < terms.num_terms()).then(|| {
            Reverse(Head {
                term: terms.term(index),
                source,
                index,
            })
        })
    };
    let mut heap: BinaryHeap<Reverse<Head<'_>>> =
        (0..sources.len()).filter_map(|s| head(s, 0)).collect();
    let mut holders: Vec<(usize, usize)> = Vec::new();
    while let Some(Reverse(first)) = heap.pop() {
        holders.clear();
        holders.push((first.source, first.index));
        heap.extend(head(first.source, first.index + 1));
        while heap.peek().is_some_and(|Reverse(h)| h.term == first.term) {
            if let Some(Reverse(same)) = heap.pop() {
                holders.push((same.source, same.index));
                heap.extend(head(same.source, same.index + 1));
            }
        }
        // Popped in (term, source) order, so holders are in source order.
        each(first.term, &holders)?;
    }
    Ok(())
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

    let mut all: Vec<u8> = Vec::new();
    let mut ends: Vec<usize> = Vec::new();
    merged_terms(&sources, |term, _| -> std::io::Result<()> {
        all.extend_from_slice(term);
        ends.push(all.len());
        Ok(())
    })?;
    let layout = layout_of((0..ends.len()).map(|i| {
        let start = if i == 0 { 0 } else { ends[i - 1] };
        &all[start..ends[i]]
    }))?;
    drop((all, ends));

    let mut out = IndexWriter::new(ctx.target_segment.open_write(component())?, &layout)?;
    let mut docs_of_term: Vec<DocId> = Vec::new();
    merged_terms(&sources, |_, holders| {
        docs_of_term.clear();
        for &(source, index) in holders {
            let r = &renumber[source];
            docs_of_term.extend(sources[source].postings(index).filter_map(|d| r.get(d)));
        }
        out.add(docs_of_term.iter().copied())
    })?;
    out.finish(docs)?.terminate()?;
    Ok(())
}
