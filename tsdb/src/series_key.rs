//! How the head finds a series from its labels without building a `Labels`: label sets are
//! looked up by an XXH64 of their bytes, and a hit is confirmed by comparing the series' stored
//! labels pair by pair, so two label sets sharing a hash still get two series.
//!
//! A lookup costs one hash over the label bytes (copied into a scratch buffer the batch
//! reuses) and one comparison; neither allocates. Keyed by `Arc<Labels>` and SipHash, the
//! registry's lookups were a tenth of ingest's CPU, and remote write had to build every
//! series' `Labels` to make them.

use crate::postings::SeriesRef;
use model::{xxh64, Labels, METRIC_NAME};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A label set as an append names it: owned [`Labels`], or pairs borrowed from a request in
/// the same form (sorted by name, no name twice, no empty value).
pub(crate) trait LabelKey {
    /// The pairs in name order.
    fn pairs(&self) -> impl Iterator<Item = (&str, &str)>;

    fn len(&self) -> usize;

    /// The owned form, built only for a new series or an error message.
    fn to_labels(&self) -> Labels;

    fn metric_name(&self) -> &str {
        self.pairs()
            .find(|(n, _)| *n == METRIC_NAME)
            .map_or("", |(_, v)| v)
    }

    /// Whether `labels` is this label set.
    fn matches(&self, labels: &Labels) -> bool {
        self.len() == labels.len()
            && self
                .pairs()
                .zip(labels.iter())
                .all(|((n, v), l)| n == l.name && v == l.value)
    }

    /// The registry's hash: XXH64 over each name and value followed by 0xff (Prometheus's
    /// `labels.Hash` bytes, though nothing depends on that), built in `scratch`.
    fn key_hash(&self, scratch: &mut Vec<u8>) -> u64 {
        scratch.clear();
        for (n, v) in self.pairs() {
            scratch.extend_from_slice(n.as_bytes());
            scratch.push(0xff);
            scratch.extend_from_slice(v.as_bytes());
            scratch.push(0xff);
        }
        xxh64(scratch)
    }
}

impl LabelKey for Labels {
    fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.iter().map(|l| (l.name.as_str(), l.value.as_str()))
    }

    fn len(&self) -> usize {
        Labels::len(self)
    }

    fn to_labels(&self) -> Labels {
        self.clone()
    }
}

impl LabelKey for [(&str, &str)] {
    fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.iter().copied()
    }

    fn len(&self) -> usize {
        <[_]>::len(self)
    }

    fn to_labels(&self) -> Labels {
        Labels::from_pairs(self.iter().copied())
    }
}

/// A hasher for keys that are already hashes or small sequential ids: one multiply, which
/// spreads sequential ids over the table's high bits (hashbrown's tag) and low bits alike.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct MixHasher(u64);

impl Hasher for MixHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
}

pub(crate) type MixState = BuildHasherDefault<MixHasher>;

/// Label-set hashes to series ids. Almost every hash names one series, held inline; the
/// series whose hash another already holds wait in `more`, looked at only after the first
/// one's labels did not match.
#[derive(Debug, Default)]
pub(crate) struct SeriesIds {
    first: HashMap<u64, SeriesRef, MixState>,
    more: HashMap<u64, Vec<SeriesRef>, MixState>,
}

impl SeriesIds {
    /// The id under `hash` for which `is_it` holds.
    pub(crate) fn find(&self, hash: u64, is_it: impl Fn(SeriesRef) -> bool) -> Option<SeriesRef> {
        let first = *self.first.get(&hash)?;
        if is_it(first) {
            return Some(first);
        }
        self.more.get(&hash)?.iter().copied().find(|&id| is_it(id))
    }

    pub(crate) fn insert(&mut self, hash: u64, id: SeriesRef) {
        if let Some(&first) = self.first.get(&hash) {
            if first != id {
                self.more.entry(hash).or_default().push(id);
            }
        } else {
            self.first.insert(hash, id);
        }
    }

    pub(crate) fn remove(&mut self, hash: u64, id: SeriesRef) {
        if self.first.get(&hash) == Some(&id) {
            self.first.remove(&hash);
            // A colliding series takes the inline place, so `find` still reaches it.
            if let Some(mut rest) = self.more.remove(&hash) {
                if let Some(next) = rest.pop() {
                    self.first.insert(hash, next);
                }
                if !rest.is_empty() {
                    self.more.insert(hash, rest);
                }
            }
        } else if let Some(rest) = self.more.get_mut(&hash) {
            rest.retain(|&x| x != id);
            if rest.is_empty() {
                self.more.remove(&hash);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn borrowed_and_owned_label_sets_hash_and_match_alike() {
        let owned = Labels::from_pairs([("__name__", "up"), ("job", "node")]);
        let pairs: &[(&str, &str)] = &[("__name__", "up"), ("job", "node")];
        let mut scratch = Vec::new();
        assert_eq!(owned.key_hash(&mut scratch), pairs.key_hash(&mut scratch));
        assert_eq!(owned.key_hash(&mut scratch), model::labels_hash(&owned));
        assert!(pairs.matches(&owned));
        assert_eq!(pairs.metric_name(), "up");
        let other: &[(&str, &str)] = &[("__name__", "up"), ("job", "nod")];
        assert!(!other.matches(&owned));
        // A prefix does not match: lengths differ.
        assert!(!pairs[..1].matches(&owned));
        // The separator keeps name/value boundaries apart.
        let shifted: &[(&str, &str)] = &[("__name__", "upj"), ("ob", "node")];
        assert_ne!(shifted.key_hash(&mut scratch), pairs.key_hash(&mut scratch));
    }

    #[test]
    fn colliding_hashes_keep_every_series_reachable() {
        let mut ids = SeriesIds::default();
        ids.insert(7, 1);
        ids.insert(7, 2);
        ids.insert(7, 3);
        ids.insert(8, 4);
        for id in [1, 2, 3] {
            assert_eq!(ids.find(7, |x| x == id), Some(id));
        }
        assert_eq!(ids.find(7, |x| x == 4), None);
        // Removing the inline one promotes a colliding one.
        ids.remove(7, 1);
        assert_eq!(ids.find(7, |x| x == 1), None);
        assert_eq!(ids.find(7, |x| x == 2), Some(2));
        assert_eq!(ids.find(7, |x| x == 3), Some(3));
        ids.remove(7, 3);
        ids.remove(7, 2);
        assert_eq!(ids.find(7, |_| true), None);
        assert!(ids.more.is_empty());
        assert_eq!(ids.find(8, |_| true), Some(4));
    }
}
