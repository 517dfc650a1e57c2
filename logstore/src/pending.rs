//! Entries added to a partition since its last tantivy commit: kept in memory, where the
//! duplicate check finds them and queries search them beside the committed index.
//!
//! tantivy makes documents searchable only at a commit, which writes segment files and syncs
//! them (tens of milliseconds). Rather than commit before every query to see the latest
//! pushes, the store keeps each partition's uncommitted entries here — they are already
//! durable in the WAL — and a query takes a [`PendingSnapshot`] together with the index's
//! searcher, under the partitions lock: every entry is then in exactly one of the two, and a
//! push acknowledged before the query started is in one of them. The background commit moves
//! entries from here into the index (commit, reload, clear, all under that same lock).
//!
//! Entries are sealed into shared batches, one per push, so that a snapshot costs a clone of
//! the batch list, not of the entries.

use crate::dedup::{Candidate, Identity};
use model::{Labels, Matcher};
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::Arc;

/// One uncommitted entry, with what queries read of it.
#[derive(Debug, Clone)]
pub(crate) struct PendingEntry {
    /// The canonical label string of the stream.
    pub stream: Arc<str>,
    pub labels: Arc<Labels>,
    pub ts_ns: i64,
    pub line: Arc<str>,
    pub metadata: Vec<(String, String)>,
}

/// Where an entry is: its batch (`batches.len()` for the open one) and its place in it.
type Slot = (u32, u32);

/// The uncommitted entries of one partition.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    batches: Vec<Arc<Vec<PendingEntry>>>,
    /// Entries of the push being indexed, sealed into a batch when it ends.
    open: Vec<PendingEntry>,
    /// Entries by identity hash, for the duplicate check: the first entry with a hash (the
    /// hashes are uniform already, so they index the map as they are).
    by_hash: HashMap<u64, Slot, BuildHasherDefault<Identity>>,
    /// Entries after the first with the same hash: distinct entries whose hashes collide,
    /// practically never, so the common case allocates nothing per entry.
    colliding: HashMap<u64, Vec<Slot>>,
}

impl Pending {
    fn get(&self, (batch, i): Slot) -> Option<&PendingEntry> {
        match self.batches.get(batch as usize) {
            Some(b) => b.get(i as usize),
            None => self.open.get(i as usize),
        }
    }

    /// Whether an entry identical to `c` (stream, timestamp, line) is pending; the hash only
    /// narrows, the comparison is exact.
    pub fn contains(&self, c: &Candidate<'_>) -> bool {
        let Some(first) = self.by_hash.get(&c.hash) else {
            return false;
        };
        let more = self.colliding.get(&c.hash).map_or(&[][..], Vec::as_slice);
        std::iter::once(first)
            .chain(more)
            .filter_map(|s| self.get(*s))
            .any(|e| e.ts_ns == c.ts_ns && &*e.stream == c.stream && &*e.line == c.line)
    }

    /// Adds an entry to the open batch; [`Pending::seal`] ends the batch.
    pub fn insert(&mut self, hash: u64, entry: PendingEntry) {
        let slot = (self.batches.len() as u32, self.open.len() as u32);
        self.open.push(entry);
        match self.by_hash.entry(hash) {
            Entry::Vacant(v) => {
                v.insert(slot);
            }
            Entry::Occupied(_) => self.colliding.entry(hash).or_default().push(slot),
        }
    }

    /// Forgets the open batch's entries from the `n`th on: they did not reach the index
    /// writer, so a retry must not find them here as duplicates.
    pub fn truncate_open(&mut self, n: usize) {
        if n >= self.open.len() {
            return;
        }
        self.open.truncate(n);
        let batch = self.batches.len() as u32;
        let gone = |&(b, i): &Slot| b == batch && i as usize >= n;
        // A hash's later slots are in `colliding`, so one whose first slot goes has only
        // open ones there, which go too.
        self.by_hash.retain(|_, s| !gone(s));
        self.colliding.retain(|_, slots| {
            slots.retain(|s| !gone(s));
            !slots.is_empty()
        });
    }

    /// Turns the open batch into a shared one that snapshots can hold.
    pub fn seal(&mut self) {
        if !self.open.is_empty() {
            self.batches.push(Arc::new(std::mem::take(&mut self.open)));
        }
    }

    /// The entries pending now, for one query; cheap (one `Arc` per push).
    pub fn snapshot(&mut self) -> PendingSnapshot {
        self.seal();
        PendingSnapshot {
            batches: self.batches.clone(),
        }
    }

    /// The identity hashes of the pending entries (each once).
    pub fn hashes(&self) -> impl Iterator<Item = u64> + '_ {
        self.by_hash.keys().copied()
    }

    pub fn len(&self) -> usize {
        self.batches.iter().map(|b| b.len()).sum::<usize>() + self.open.len()
    }

    /// Forgets every entry: they were committed (or rolled back, and stay in the WAL).
    pub fn clear(&mut self) {
        *self = Pending::default();
    }
}

/// The uncommitted entries of a partition as one query sees them.
#[derive(Debug, Clone, Default)]
pub(crate) struct PendingSnapshot {
    batches: Vec<Arc<Vec<PendingEntry>>>,
}

impl PendingSnapshot {
    /// The entries of the streams matching every matcher (an absent label is the empty value,
    /// as in the index) with timestamps in `[start_ns, end_ns)`, in push order. Each stream's
    /// labels are matched once per push, not once per entry.
    pub fn matching<'a>(
        &'a self,
        matchers: &'a [Matcher],
        start_ns: i64,
        end_ns: i64,
    ) -> impl Iterator<Item = &'a PendingEntry> + 'a {
        let mut verdict: Option<(*const Labels, bool)> = None;
        self.batches
            .iter()
            .flat_map(|b| b.iter())
            .filter(move |e| e.ts_ns >= start_ns && e.ts_ns < end_ns)
            .filter(move |e| {
                let key = Arc::as_ptr(&e.labels);
                match verdict {
                    Some((k, v)) if k == key => v,
                    _ => {
                        let v = matchers.iter().all(|m| m.matches_labels(&e.labels));
                        verdict = Some((key, v));
                        v
                    }
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::MatchOp;

    fn entry(labels: &Arc<Labels>, ts_ns: i64, line: &str) -> PendingEntry {
        PendingEntry {
            stream: labels.to_string().into(),
            labels: labels.clone(),
            ts_ns,
            line: line.into(),
            metadata: Vec::new(),
        }
    }

    #[test]
    fn contains_compares_exactly_across_open_and_sealed_batches() {
        let labels = Arc::new(Labels::from_pairs([("a", "b")]));
        let stream = labels.to_string();
        let c = |ts, line| Candidate {
            hash: 42, // every candidate collides on purpose
            stream: &stream,
            ts_ns: ts,
            line,
        };
        let mut p = Pending::default();
        p.insert(42, entry(&labels, 1, "x"));
        assert!(p.contains(&c(1, "x")), "found in the open batch");
        p.seal();
        p.insert(42, entry(&labels, 2, "y"));
        assert!(p.contains(&c(1, "x")), "found in a sealed batch");
        assert!(p.contains(&c(2, "y")));
        assert!(!p.contains(&c(1, "y")));
        assert!(!p.contains(&c(3, "x")));
        assert_eq!(p.len(), 2);
        p.clear();
        assert!(!p.contains(&c(1, "x")));
        assert_eq!(p.len(), 0);
    }

    #[test]
    fn truncating_the_open_batch_forgets_exactly_its_later_entries() {
        let labels = Arc::new(Labels::from_pairs([("a", "b")]));
        let stream = labels.to_string();
        let c = |hash, ts, line| Candidate {
            hash,
            stream: &stream,
            ts_ns: ts,
            line,
        };
        let mut p = Pending::default();
        p.insert(1, entry(&labels, 1, "sealed"));
        p.seal();
        p.insert(7, entry(&labels, 2, "kept"));
        p.insert(8, entry(&labels, 3, "dropped"));
        p.insert(1, entry(&labels, 4, "collides with sealed, dropped"));
        p.insert(7, entry(&labels, 5, "collides with kept, dropped"));
        p.truncate_open(1);
        assert!(p.contains(&c(1, 1, "sealed")));
        assert!(p.contains(&c(7, 2, "kept")));
        assert!(!p.contains(&c(8, 3, "dropped")));
        assert!(!p.contains(&c(1, 4, "collides with sealed, dropped")));
        assert!(!p.contains(&c(7, 5, "collides with kept, dropped")));
        assert_eq!(p.len(), 2);
        p.insert(8, entry(&labels, 3, "dropped"));
        assert!(p.contains(&c(8, 3, "dropped")), "can be added again");
    }

    #[test]
    fn a_snapshot_keeps_its_entries_after_clear_and_matches_like_the_index() {
        let api = Arc::new(Labels::from_pairs([("app", "api")]));
        let db = Arc::new(Labels::from_pairs([("app", "db"), ("env", "prod")]));
        let mut p = Pending::default();
        p.insert(1, entry(&api, 10, "a"));
        p.insert(2, entry(&db, 20, "b"));
        let snap = p.snapshot();
        p.insert(3, entry(&api, 30, "c"));
        p.clear();
        let lines = |matchers: &[Matcher], start, end| -> Vec<String> {
            snap.matching(matchers, start, end)
                .map(|e| e.line.to_string())
                .collect()
        };
        let m = |op, n: &str, v: &str| Matcher::new(op, n, v).unwrap();
        assert_eq!(
            lines(&[], 0, 100),
            ["a", "b"],
            "later entries are not in the snapshot"
        );
        assert_eq!(lines(&[m(MatchOp::Equal, "app", "api")], 0, 100), ["a"]);
        assert_eq!(lines(&[m(MatchOp::Equal, "env", "")], 0, 100), ["a"]);
        assert_eq!(lines(&[m(MatchOp::Regex, "app", "d.")], 0, 100), ["b"]);
        assert_eq!(lines(&[], 10, 20), ["a"], "the end is exclusive");
        assert_eq!(
            Pending::default().snapshot().matching(&[], 0, 100).count(),
            0
        );
    }
}
