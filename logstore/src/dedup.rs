//! Duplicate suppression: an entry identical to a stored one in stream, timestamp and line is
//! not stored again, whether it arrives twice in one push, in two pushes, or again from WAL
//! replay after a crash (which re-reads entries that may already be committed).
//!
//! Every document carries `hash`, a 64-bit hash of (stream, timestamp, line). A partition of
//! the current layout keeps the hashes of its committed documents in memory while it is
//! written ([`KnownHashes`], read from the `hash` fast field on the first write, extended at
//! each commit): an entry whose hash is not there is new, with no index access at all. Only
//! for the few whose hash is known (true duplicates, or a 64-bit collision) are the documents
//! with those timestamps loaded and compared exactly: a hash collision never drops a line.
//! Partitions of the earlier layouts index `hash` as a term instead, and are looked up by it.
//! Entries added since the partition's last commit are not in the index yet; the partition
//! keeps them in memory (`pending.rs`) until that commit, and the check looks there too.
//!
//! Structured metadata is not part of the identity: Loki too treats a line at the same
//! timestamp in the same stream as the same entry.

use crate::schema::{Fields, HASH, TS};
use crate::Error;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::ops::Bound;
use std::sync::Arc;
use tantivy::collector::{Collector, DocSetCollector, SegmentCollector};
use tantivy::columnar::Column;
use tantivy::query::{RangeQuery, TermSetQuery};
use tantivy::{
    DocAddress, DocId, Score, Searcher, SegmentOrdinal, SegmentReader, TantivyDocument, Term,
};

/// The 64-bit identity hash of an entry: FNV-1a over the stream, a separator no label string
/// contains unescaped, the timestamp and the line, then a final avalanche so that the index
/// terms spread evenly. It is stored on disk, so it must never change (`FORMAT.md`).
pub(crate) fn entry_hash(stream: &str, ts_ns: i64, line: &str) -> u64 {
    StreamHash::new(stream).entry(ts_ns, line)
}

/// [`entry_hash`] with the stream's part done once: the state after the stream and the
/// separator, from which every entry of the stream continues.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StreamHash(u64);

const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

impl StreamHash {
    pub fn new(stream: &str) -> StreamHash {
        const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
        StreamHash(fnv(fnv(OFFSET, stream.as_bytes()), &[0xff]))
    }

    /// The identity hash of the stream's entry at `ts_ns` with `line`.
    pub fn entry(self, ts_ns: i64, line: &str) -> u64 {
        let mut h = fnv(fnv(self.0, &ts_ns.to_le_bytes()), line.as_bytes());
        // splitmix64's finaliser.
        h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        h ^ (h >> 31)
    }
}

/// One entry to check, borrowed from the push.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Candidate<'a> {
    pub hash: u64,
    pub stream: &'a str,
    pub ts_ns: i64,
    pub line: &'a str,
}

/// For each candidate, whether an identical entry is stored in the index `searcher` reads,
/// looking hashes up as terms ([`crate::schema::Layout::V1`] and `V2`).
pub(crate) fn stored(
    searcher: &Searcher,
    fields: &Fields,
    candidates: &[Candidate<'_>],
) -> Result<Vec<bool>, Error> {
    if candidates.is_empty() || searcher.num_docs() == 0 {
        return Ok(vec![false; candidates.len()]);
    }
    let hashes: HashSet<u64> = candidates.iter().map(|c| c.hash).collect();
    let query = TermSetQuery::new(hashes.iter().map(|&h| Term::from_field_u64(fields.hash, h)));
    let addresses = searcher.search(&query, &DocSetCollector)?;
    compare(searcher, fields, addresses, candidates, |_| true)
}

/// The hashes of a partition's committed entries. They are uniformly distributed already
/// (the hash ends in a finaliser), so the set uses them as they are.
#[derive(Debug, Default)]
pub(crate) struct KnownHashes(HashSet<u64, BuildHasherDefault<Identity>>);

impl KnownHashes {
    /// Reads the `hash` column of every segment.
    pub fn read(searcher: &Searcher) -> Result<KnownHashes, Error> {
        let mut set = HashSet::with_capacity_and_hasher(
            usize::try_from(searcher.num_docs()).unwrap_or(0),
            BuildHasherDefault::default(),
        );
        for segment in searcher.segment_readers() {
            let column = segment.fast_fields().u64(HASH)?;
            set.extend((0..segment.max_doc()).filter_map(|doc| column.first(doc)));
        }
        Ok(KnownHashes(set))
    }

    pub fn extend(&mut self, hashes: impl IntoIterator<Item = u64>) {
        self.0.extend(hashes);
    }

    pub fn contains(&self, hash: u64) -> bool {
        self.0.contains(&hash)
    }
}

/// Passes a `u64` through as its own hash.
#[derive(Default)]
pub(crate) struct Identity(u64);

impl Hasher for Identity {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u64`s are hashed here; anything else still hashes soundly, if slowly.
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// For each candidate, whether an identical entry is stored in the index `searcher` reads,
/// whose committed hashes are `known` ([`crate::schema::Layout::V3`]).
pub(crate) fn stored_known(
    searcher: &Searcher,
    fields: &Fields,
    known: &KnownHashes,
    candidates: &[Candidate<'_>],
) -> Result<Vec<bool>, Error> {
    let suspects: Arc<HashSet<u64>> = Arc::new(
        candidates
            .iter()
            .map(|c| c.hash)
            .filter(|h| known.contains(*h))
            .collect(),
    );
    let (Some(min), Some(max)) = (
        candidates
            .iter()
            .filter(|c| suspects.contains(&c.hash))
            .map(|c| c.ts_ns)
            .min(),
        candidates
            .iter()
            .filter(|c| suspects.contains(&c.hash))
            .map(|c| c.ts_ns)
            .max(),
    ) else {
        return Ok(vec![false; candidates.len()]);
    };
    // The documents in the suspects' time span whose hash is a suspect's: read from fast
    // fields, so only those few are loaded.
    let span = RangeQuery::new(
        Bound::Included(Term::from_field_i64(fields.ts, min)),
        Bound::Included(Term::from_field_i64(fields.ts, max)),
    );
    let addresses = searcher.search(&span, &WithHashes(suspects.clone()))?;
    compare(searcher, fields, addresses, candidates, |c| {
        suspects.contains(&c.hash)
    })
}

/// Loads the documents at `addresses` and tells, for each candidate `eligible` allows, whether
/// one of them is identical to it.
fn compare(
    searcher: &Searcher,
    fields: &Fields,
    addresses: impl IntoIterator<Item = DocAddress>,
    candidates: &[Candidate<'_>],
    eligible: impl Fn(&Candidate<'_>) -> bool,
) -> Result<Vec<bool>, Error> {
    let mut found: HashMap<u64, Vec<(String, i64, String)>> = HashMap::new();
    let mut ts_columns = HashMap::new();
    for address in addresses {
        let ts_column = match ts_columns.entry(address.segment_ord) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => v.insert(
                searcher
                    .segment_reader(address.segment_ord)
                    .fast_fields()
                    .i64(TS)?,
            ),
        };
        let ts = ts_column
            .first(address.doc_id)
            .ok_or_else(|| Error::Index("document without a timestamp".into()))?;
        let doc: TantivyDocument = searcher.doc(address)?;
        let stored = fields.decode(&doc)?;
        found
            .entry(entry_hash(&stored.stream, ts, &stored.line))
            .or_default()
            .push((stored.stream, ts, stored.line));
    }
    Ok(candidates
        .iter()
        .map(|c| {
            eligible(c)
                && found.get(&c.hash).is_some_and(|v| {
                    v.iter()
                        .any(|(s, t, l)| *t == c.ts_ns && s == c.stream && l == c.line)
                })
        })
        .collect())
}

/// Collects the addresses of the matching documents whose `hash` is in the set.
struct WithHashes(Arc<HashSet<u64>>);

struct SegmentWithHashes {
    segment: SegmentOrdinal,
    hashes: Arc<HashSet<u64>>,
    column: Column<u64>,
    found: Vec<DocAddress>,
}

impl Collector for WithHashes {
    type Fruit = Vec<DocAddress>;
    type Child = SegmentWithHashes;

    fn for_segment(
        &self,
        segment: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<SegmentWithHashes> {
        Ok(SegmentWithHashes {
            segment,
            hashes: self.0.clone(),
            column: reader.fast_fields().u64(HASH)?,
            found: Vec::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Vec<DocAddress>>) -> tantivy::Result<Vec<DocAddress>> {
        Ok(fruits.into_iter().flatten().collect())
    }
}

impl SegmentCollector for SegmentWithHashes {
    type Fruit = Vec<DocAddress>;

    fn collect(&mut self, doc: DocId, _score: Score) {
        if self
            .column
            .first(doc)
            .is_some_and(|h| self.hashes.contains(&h))
        {
            self.found.push(DocAddress::new(self.segment, doc));
        }
    }

    fn harvest(self) -> Vec<DocAddress> {
        self.found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_stable_and_separates_fields() {
        // Stored on disk: a change here must come with a new format version.
        assert_eq!(
            entry_hash("{a=\"b\"}", 1, "x"),
            entry_hash("{a=\"b\"}", 1, "x")
        );
        assert_ne!(
            entry_hash("{a=\"b\"}", 1, "x"),
            entry_hash("{a=\"b\"}", 2, "x")
        );
        assert_ne!(
            entry_hash("{a=\"b\"}", 1, "x"),
            entry_hash("{a=\"c\"}", 1, "x")
        );
        assert_ne!(
            entry_hash("{a=\"b\"}", 1, "x"),
            entry_hash("{a=\"b\"}", 1, "y")
        );
        assert_eq!(entry_hash("", 0, ""), 0x80b1_ece3_5ca7_1072);
    }

    #[test]
    fn known_hashes_only_suspect_and_a_collision_never_drops_a_line() {
        let index = tantivy::Index::create_in_ram(Fields::schema());
        index.tokenizers().register(
            crate::tokens::LINE_TOKENIZER,
            crate::tokens::line_analyzer(),
        );
        let fields = Fields::from_schema(&index.schema()).unwrap();
        let mut writer: tantivy::IndexWriter<TantivyDocument> =
            index.writer_with_num_threads(1, 15_000_000).unwrap();
        let stream = "{a=\"b\"}";
        for (ts, line) in [(5, "x"), (6, "other")] {
            let entry = model::LogEntry {
                ts_ns: ts,
                line: line.into(),
                metadata: Vec::new(),
            };
            let doc = fields
                .document(stream, &[], &entry, entry_hash(stream, ts, line))
                .unwrap();
            writer.add_document(doc).unwrap();
        }
        writer.commit().unwrap();
        let searcher = index.reader().unwrap().searcher();
        let known = KnownHashes::read(&searcher).unwrap();
        let h = entry_hash(stream, 5, "x");
        assert!(known.contains(h) && known.contains(entry_hash(stream, 6, "other")));
        let c = |hash, ts_ns, line| Candidate {
            hash,
            stream,
            ts_ns,
            line,
        };
        let verdicts = stored_known(
            &searcher,
            &fields,
            &known,
            &[
                c(h, 5, "x"),
                // Claims the stored entry's hash: loaded, compared, found different.
                c(h, 5, "y"),
                c(entry_hash(stream, 7, "x"), 7, "x"),
            ],
        )
        .unwrap();
        assert_eq!(verdicts, [true, false, false]);
        // Nothing suspect: no document is loaded, nothing is a duplicate.
        let fresh = [c(entry_hash(stream, 9, "z"), 9, "z")];
        assert_eq!(
            stored_known(&searcher, &fields, &known, &fresh).unwrap(),
            [false]
        );
    }
}
