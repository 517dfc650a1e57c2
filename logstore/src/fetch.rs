//! Reading results out of the index: entries in time order with line filters re-checked, the
//! distinct streams of a query, and grouping entries into streams.

use crate::schema::{Fields, StoredEntry, STREAM, TS};
use crate::{Direction, Error};
use std::collections::BTreeSet;
use std::ops::Bound;
use tantivy::collector::{Collector, SegmentCollector, TopDocs};
use tantivy::columnar::StrColumn;
use tantivy::query::{BooleanQuery, Occur, Query, RangeQuery};
use tantivy::{
    DocId, Order, Score, Searcher, SegmentOrdinal, SegmentReader, TantivyDocument, Term,
};

/// With line filters, the first page fetches at least this many hits: filters often reject most
/// candidates, and each further page re-runs the query.
const MIN_FILTERED_PAGE: usize = 128;
/// Pages double up to this size; tantivy's top-k buffer is sized by the page, so this also
/// bounds the memory of a query whatever its `limit`.
const MAX_PAGE: usize = 16_384;

/// What the consumer of [`ordered_entries`] did with an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Taken {
    /// Kept: it counts towards `limit`.
    Kept,
    /// Dropped (the pipeline filtered it out).
    Dropped,
    /// The consumer has all it needs (it also takes entries from elsewhere, such as the
    /// pending ones): stop reading.
    Done,
}

/// Feeds the entries matching `query` to `accept` in `direction` order until it has kept
/// `limit` of them, or says it is done.
///
/// Hits are ranked on the `ts` fast field and only then loaded from the doc store. Pages grow
/// (each twice the last, from `limit`, or [`MIN_FILTERED_PAGE`] when `filtered`) until `limit`
/// entries are kept or the hits run out.
///
/// Pages continue from the last timestamp seen (keyset paging) rather than from an offset, so a
/// late page costs no more than the first. tantivy breaks timestamp ties by doc address in both
/// directions, so the hits at the boundary timestamp come back in the same order and the ones
/// already seen are skipped by count.
pub(crate) fn ordered_entries(
    searcher: &Searcher,
    fields: &Fields,
    query: &dyn Query,
    filtered: bool,
    limit: usize,
    direction: Direction,
    accept: &mut dyn FnMut(i64, StoredEntry) -> Result<Taken, Error>,
) -> Result<(), Error> {
    let order = match direction {
        Direction::Forward => Order::Asc,
        Direction::Backward => Order::Desc,
    };
    if limit == 0 {
        return Ok(());
    }
    let mut accepted = 0usize;
    let mut page = if filtered {
        limit.max(MIN_FILTERED_PAGE)
    } else {
        limit
    }
    .min(MAX_PAGE);
    // The last timestamp seen, and how many hits at exactly that timestamp were seen.
    let mut boundary: Option<(i64, usize)> = None;
    loop {
        let (page_query, skip) = match boundary {
            None => (query.box_clone(), 0),
            Some((ts, seen)) => (continue_from(query, fields, ts, direction), seen),
        };
        let collector = TopDocs::with_limit(page)
            .and_offset(skip)
            .order_by_fast_field::<i64>(TS, order);
        let hits = searcher.search(&page_query, &collector)?;
        let exhausted = hits.len() < page;
        for (ts, address) in hits {
            let ts = ts.ok_or_else(|| Error::Index("document without a timestamp".into()))?;
            boundary = match boundary {
                Some((b, seen)) if b == ts => Some((b, seen + 1)),
                _ => Some((ts, 1)),
            };
            let doc: TantivyDocument = searcher.doc(address)?;
            match accept(ts, fields.decode(&doc)?)? {
                Taken::Kept => {
                    accepted += 1;
                    if accepted == limit {
                        return Ok(());
                    }
                }
                Taken::Dropped => {}
                Taken::Done => return Ok(()),
            }
        }
        if exhausted {
            return Ok(());
        }
        page = (page * 2).min(MAX_PAGE);
    }
}

/// `query` narrowed to the timestamps not yet passed: `ts <= boundary` going backward,
/// `ts >= boundary` going forward (inclusive, for the ties at the boundary).
fn continue_from(
    query: &dyn Query,
    fields: &Fields,
    boundary: i64,
    dir: Direction,
) -> Box<dyn Query> {
    let term = Term::from_field_i64(fields.ts, boundary);
    let range = match dir {
        Direction::Backward => RangeQuery::new(Bound::Unbounded, Bound::Included(term)),
        Direction::Forward => RangeQuery::new(Bound::Included(term), Bound::Unbounded),
    };
    Box::new(BooleanQuery::new(vec![
        (Occur::Must, query.box_clone()),
        (Occur::Must, Box::new(range)),
    ]))
}

/// The canonical label strings of the streams that have a document matching `query`, read
/// from the `stream` fast field: no stored document is loaded.
pub(crate) fn distinct_streams(
    searcher: &Searcher,
    query: &dyn Query,
) -> Result<BTreeSet<String>, Error> {
    Ok(searcher.search(query, &DistinctStreams)?)
}

/// Collects the distinct `stream` values of the matching documents. Each segment marks the
/// dictionary ordinals it sees; they are turned into strings once per segment, at merge time.
struct DistinctStreams;

struct SegmentStreams {
    column: Option<StrColumn>,
    seen: Vec<bool>,
}

impl Collector for DistinctStreams {
    type Fruit = BTreeSet<String>;
    type Child = SegmentStreams;

    fn for_segment(
        &self,
        _segment: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<SegmentStreams> {
        let column = reader.fast_fields().str(STREAM)?;
        let terms = column.as_ref().map_or(0, |c| c.num_terms());
        Ok(SegmentStreams {
            column,
            seen: vec![false; terms],
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<SegmentStreams>) -> tantivy::Result<BTreeSet<String>> {
        let mut out = BTreeSet::new();
        for fruit in fruits {
            let Some(column) = fruit.column else { continue };
            for (ord, _) in fruit.seen.iter().enumerate().filter(|(_, seen)| **seen) {
                let mut s = String::new();
                if column.ord_to_str(ord as u64, &mut s)? {
                    out.insert(s);
                }
            }
        }
        Ok(out)
    }
}

impl SegmentCollector for SegmentStreams {
    type Fruit = SegmentStreams;

    fn collect(&mut self, doc: DocId, _score: Score) {
        if let Some(column) = &self.column {
            for ord in column.term_ords(doc) {
                if let Some(seen) = self.seen.get_mut(ord as usize) {
                    *seen = true;
                }
            }
        }
    }

    fn harvest(self) -> SegmentStreams {
        self
    }
}
