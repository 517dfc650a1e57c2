//! The head's cardinality report: totals plus the top-N lists Prometheus's
//! `/api/v1/status/tsdb` shows (series per metric name, values per label name, bytes of
//! values per label name, series per label pair), computed from the postings index.
//!
//! The types here are the TSDB's own; the HTTP layer converts them to its JSON shape, so the
//! TSDB does not depend on the API crate.

use crate::index::MemPostings;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// The label whose values are metric names.
const METRIC_NAME: &str = "__name__";

/// A snapshot of the head's size and cardinality ([`crate::Tsdb::status`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeadStatus {
    pub num_series: u64,
    /// Distinct `name=value` pairs over all series.
    pub num_label_pairs: u64,
    /// Chunks held, open ones included.
    pub num_chunks: u64,
    /// `None` while the head holds no sample.
    pub min_time: Option<i64>,
    pub max_time: Option<i64>,
    /// Series per metric name, largest first.
    pub series_count_by_metric_name: Vec<Stat>,
    /// Distinct values per label name, largest first.
    pub label_value_count_by_label_name: Vec<Stat>,
    /// Bytes of the distinct values of each label name (each value counted once, as
    /// Prometheus 2.42 counts it), largest first.
    pub memory_in_bytes_by_label_name: Vec<Stat>,
    /// Series per `name=value` pair, largest first.
    pub series_count_by_label_value_pair: Vec<Stat>,
}

/// One entry of a top list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stat {
    pub name: String,
    pub value: u64,
}

/// The index part of [`HeadStatus`]: everything but the sample totals.
pub(crate) struct PostingsStats {
    pub(crate) num_label_pairs: u64,
    pub(crate) by_metric_name: Vec<Stat>,
    pub(crate) values_by_label_name: Vec<Stat>,
    pub(crate) bytes_by_label_name: Vec<Stat>,
    pub(crate) series_by_pair: Vec<Stat>,
}

/// One pass over the index, keeping only the `limit` largest entries of each list, so a
/// head with millions of label pairs allocates a name only for the pairs that make the list.
pub(crate) fn postings_stats(postings: &MemPostings, limit: usize) -> PostingsStats {
    let mut by_metric = TopN::new(limit);
    let mut values_by_name = TopN::new(limit);
    let mut bytes_by_name = TopN::new(limit);
    let mut by_pair = TopN::new(limit);
    let mut num_label_pairs = 0u64;
    for (name, values) in postings.pair_counts() {
        values_by_name.offer(values.len() as u64, || name.to_string());
        num_label_pairs += values.len() as u64;
        let mut bytes = 0u64;
        for (value, series) in values {
            if name == METRIC_NAME {
                by_metric.offer(series, || value.to_string());
            }
            by_pair.offer(series, || format!("{name}={value}"));
            bytes += value.len() as u64;
        }
        bytes_by_name.offer(bytes, || name.to_string());
    }
    PostingsStats {
        num_label_pairs,
        by_metric_name: by_metric.into_sorted(),
        values_by_label_name: values_by_name.into_sorted(),
        bytes_by_label_name: bytes_by_name.into_sorted(),
        series_by_pair: by_pair.into_sorted(),
    }
}

/// The `limit` largest values offered, ties going to the smaller name so the answer is the
/// same on every call (Prometheus leaves tie order to its heap).
struct TopN {
    limit: usize,
    /// A min-heap on (value, reversed name): its top is the entry to evict next.
    heap: BinaryHeap<Reverse<(u64, Reverse<String>)>>,
}

impl TopN {
    fn new(limit: usize) -> TopN {
        TopN {
            limit,
            heap: BinaryHeap::with_capacity(limit.min(1024) + 1),
        }
    }

    /// Offers an entry; `name` is only called when the entry may make the list.
    fn offer(&mut self, value: u64, name: impl FnOnce() -> String) {
        if self.limit == 0 {
            return;
        }
        if self.heap.len() == self.limit {
            if let Some(Reverse((worst, _))) = self.heap.peek() {
                if value < *worst {
                    return;
                }
            }
        }
        self.heap.push(Reverse((value, Reverse(name()))));
        if self.heap.len() > self.limit {
            self.heap.pop();
        }
    }

    /// Largest value first, then by name.
    fn into_sorted(self) -> Vec<Stat> {
        // Ascending order of `Reverse(key)` is descending order of the key.
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|Reverse((value, Reverse(name)))| Stat { name, value })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::Labels;

    fn stat(name: &str, value: u64) -> Stat {
        Stat {
            name: name.to_string(),
            value,
        }
    }

    #[test]
    fn top_n_keeps_the_largest_and_breaks_ties_by_name() {
        let mut top = TopN::new(3);
        for (name, v) in [("e", 1), ("d", 5), ("c", 2), ("b", 5), ("a", 2), ("f", 9)] {
            top.offer(v, || name.to_string());
        }
        assert_eq!(
            top.into_sorted(),
            vec![stat("f", 9), stat("b", 5), stat("d", 5)]
        );
        let mut none = TopN::new(0);
        none.offer(1, || unreachable!("a zero limit never builds a name"));
        assert!(none.into_sorted().is_empty());
    }

    #[test]
    fn postings_stats_count_series_values_and_bytes() {
        let mut p = MemPostings::default();
        let sets: [&[(&str, &str)]; 4] = [
            &[("__name__", "up"), ("job", "node"), ("instance", "a:1")],
            &[("__name__", "up"), ("job", "node"), ("instance", "bb:1")],
            &[("__name__", "up"), ("job", "api"), ("instance", "a:1")],
            &[("__name__", "http_requests"), ("job", "api")],
        ];
        for (id, pairs) in sets.iter().enumerate() {
            p.add(id as u32, &Labels::from_pairs(pairs.iter().copied()));
        }
        let s = postings_stats(&p, 2);
        // __name__: 2 values, job: 2, instance: 2.
        assert_eq!(s.num_label_pairs, 6);
        assert_eq!(
            s.by_metric_name,
            vec![stat("up", 3), stat("http_requests", 1)]
        );
        assert_eq!(
            s.values_by_label_name,
            vec![stat("__name__", 2), stat("instance", 2)]
        );
        // __name__: "up" + "http_requests"; instance: "a:1" + "bb:1"; job: "node" + "api".
        assert_eq!(
            s.bytes_by_label_name,
            vec![stat("__name__", 15), stat("instance", 7)]
        );
        assert_eq!(
            s.series_by_pair,
            vec![stat("__name__=up", 3), stat("instance=a:1", 2)]
        );
    }
}
