//! Reading results out of the index: entries in time order with line filters re-checked, the
//! distinct streams of a query, and grouping entries into streams.

use crate::logql::{matches_all, LineFilter};
use crate::schema::{parse_stream, Fields, StoredEntry, STREAM, TS};
use crate::{Direction, Error};
use model::{LogEntry, LogStream};
use std::collections::{BTreeSet, HashMap};
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

/// The first `limit` entries matching `query` and `filters`, in `direction` order, with their
/// timestamps.
///
/// Hits are ranked on the `ts` fast field and only then loaded from the doc store, so without
/// line filters exactly `limit` documents are loaded (in pages of at most [`MAX_PAGE`]). With
/// filters, pages grow (each twice the last) until `limit` lines pass or the hits run out.
///
/// Pages continue from the last timestamp seen (keyset paging) rather than from an offset, so a
/// late page costs no more than the first. tantivy breaks timestamp ties by doc address in both
/// directions, so the hits at the boundary timestamp come back in the same order and the ones
/// already seen are skipped by count.
pub(crate) fn ordered_entries(
    searcher: &Searcher,
    fields: &Fields,
    query: &dyn Query,
    filters: &[LineFilter],
    limit: usize,
    direction: Direction,
) -> Result<Vec<(i64, StoredEntry)>, Error> {
    let order = match direction {
        Direction::Forward => Order::Asc,
        Direction::Backward => Order::Desc,
    };
    let mut out = Vec::new();
    if limit == 0 {
        return Ok(out);
    }
    let mut page = if filters.is_empty() {
        limit
    } else {
        limit.max(MIN_FILTERED_PAGE)
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
            let entry = fields.decode(&doc)?;
            if matches_all(filters, &entry.line) {
                out.push((ts, entry));
                if out.len() == limit {
                    return Ok(out);
                }
            }
        }
        if exhausted {
            return Ok(out);
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

/// Groups entries by stream, keeping their order within each stream; streams come out sorted
/// by labels so that responses are deterministic.
pub(crate) fn group_by_stream(entries: Vec<(i64, StoredEntry)>) -> Result<Vec<LogStream>, Error> {
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut streams: Vec<LogStream> = Vec::new();
    for (ts_ns, stored) in entries {
        let i = match index.get(&stored.stream) {
            Some(&i) => i,
            None => {
                streams.push(LogStream {
                    labels: parse_stream(&stored.stream)?,
                    entries: Vec::new(),
                });
                index.insert(stored.stream, streams.len() - 1);
                streams.len() - 1
            }
        };
        streams[i].entries.push(LogEntry {
            ts_ns,
            line: stored.line,
            metadata: stored.metadata,
        });
    }
    streams.sort_by(|a, b| a.labels.cmp(&b.labels));
    Ok(streams)
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
