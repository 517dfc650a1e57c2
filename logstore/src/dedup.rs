//! Duplicate suppression: an entry identical to a stored one in stream, timestamp and line is
//! not stored again, whether it arrives twice in one push, in two pushes, or again from WAL
//! replay after a crash (which re-reads entries that may already be committed).
//!
//! Every document carries `hash`, a 64-bit hash of (stream, timestamp, line). A push looks its
//! entries' hashes up in the partition's index (one term each, in one query), loads the few
//! documents that match and compares them exactly: a hash collision never drops a line.
//! Entries added since the partition's last commit are not in the index yet; the partition
//! keeps them in memory (`pending.rs`) until that commit, and the check looks there too.
//!
//! Structured metadata is not part of the identity: Loki too treats a line at the same
//! timestamp in the same stream as the same entry.

use crate::schema::{Fields, TS};
use crate::Error;
use std::collections::{HashMap, HashSet};
use tantivy::collector::DocSetCollector;
use tantivy::query::TermSetQuery;
use tantivy::{Searcher, TantivyDocument, Term};

/// The 64-bit identity hash of an entry: FNV-1a over the stream, a separator no label string
/// contains unescaped, the timestamp and the line, then a final avalanche so that the index
/// terms spread evenly. It is stored on disk, so it must never change (`FORMAT.md`).
pub(crate) fn entry_hash(stream: &str, ts_ns: i64, line: &str) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    let mut feed = |bytes: &[u8]| {
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(PRIME);
        }
    };
    feed(stream.as_bytes());
    feed(&[0xff]);
    feed(&ts_ns.to_le_bytes());
    feed(line.as_bytes());
    // splitmix64's finaliser.
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// One entry to check, borrowed from the push.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Candidate<'a> {
    pub hash: u64,
    pub stream: &'a str,
    pub ts_ns: i64,
    pub line: &'a str,
}

/// For each candidate, whether an identical entry is stored in the index `searcher` reads.
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
    if addresses.is_empty() {
        return Ok(vec![false; candidates.len()]);
    }
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
            found.get(&c.hash).is_some_and(|v| {
                v.iter()
                    .any(|(s, t, l)| *t == c.ts_ns && s == c.stream && l == c.line)
            })
        })
        .collect())
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
}
