//! Full scans for metric queries and index statistics: every hit of a query with its
//! timestamp, stream and line length read from fast fields, so that queries which do not
//! need the line text never touch the doc store.

use crate::schema::{BYTES, STREAM, TS};
use crate::Error;
use std::sync::Arc;
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::{Column, StrColumn};
use tantivy::query::Query;
use tantivy::{DocAddress, DocId, Score, Searcher, SegmentOrdinal, SegmentReader};

/// One matching entry, without its line.
#[derive(Clone, Debug)]
pub(crate) struct Hit {
    pub ts: i64,
    /// The canonical label string of the stream, shared by the hits of a stream.
    pub stream: Arc<str>,
    pub bytes: u64,
    pub address: DocAddress,
}

/// Every hit of `query`, in doc address order (which keeps doc store reads sequential).
pub(crate) fn all_hits(searcher: &Searcher, query: &dyn Query) -> Result<Vec<Hit>, Error> {
    Ok(searcher.search(query, &AllHits)?)
}

struct AllHits;

struct SegmentHits {
    segment: SegmentOrdinal,
    ts: Column<i64>,
    bytes: Column<u64>,
    stream: Option<StrColumn>,
    /// (doc, ts, stream ordinal, bytes)
    hits: Vec<(DocId, i64, u64, u64)>,
}

impl Collector for AllHits {
    type Fruit = Vec<Hit>;
    type Child = SegmentHits;

    fn for_segment(
        &self,
        segment: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<SegmentHits> {
        let ff = reader.fast_fields();
        Ok(SegmentHits {
            segment,
            ts: ff.i64(TS)?,
            bytes: ff.u64(BYTES)?,
            stream: ff.str(STREAM)?,
            hits: Vec::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<SegmentHits>) -> tantivy::Result<Vec<Hit>> {
        let mut out = Vec::with_capacity(fruits.iter().map(|f| f.hits.len()).sum());
        for fruit in fruits {
            let Some(column) = fruit.stream else { continue };
            // Each stream string is materialised once per segment.
            let mut names: Vec<Option<Arc<str>>> = vec![None; column.num_terms()];
            for (doc, ts, ord, bytes) in fruit.hits {
                let Some(slot) = names.get_mut(ord as usize) else {
                    continue;
                };
                let stream = match slot {
                    Some(s) => s.clone(),
                    None => {
                        let mut s = String::new();
                        column.ord_to_str(ord, &mut s)?;
                        let s: Arc<str> = s.into();
                        *slot = Some(s.clone());
                        s
                    }
                };
                out.push(Hit {
                    ts,
                    stream,
                    bytes,
                    address: DocAddress::new(fruit.segment, doc),
                });
            }
        }
        Ok(out)
    }
}

impl SegmentCollector for SegmentHits {
    type Fruit = SegmentHits;

    fn collect(&mut self, doc: DocId, _score: Score) {
        let (Some(ts), Some(stream)) = (
            self.ts.first(doc),
            self.stream.as_ref().and_then(|c| c.term_ords(doc).next()),
        ) else {
            return;
        };
        let bytes = self.bytes.first(doc).unwrap_or(0);
        self.hits.push((doc, ts, stream, bytes));
    }

    fn harvest(self) -> SegmentHits {
        self
    }
}
