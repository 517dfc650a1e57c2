//! An in-memory store: the reference implementation of the storage traits, used by the PromQL
//! and rule tests so they run without the TSDB.

use crate::{AppendError, AppendOutcome, Appender, Labels, Matcher, Querier, Series, StorageError};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::RwLock;

/// Series in a sorted map, samples in plain vectors. Simple on purpose: it is the yardstick the
/// real stores are compared against, not a store to run in production.
#[derive(Debug, Default)]
pub struct MemStorage {
    series: RwLock<BTreeMap<Labels, Vec<crate::Sample>>>,
}

impl MemStorage {
    pub fn new() -> Self {
        Self::default()
    }

    fn read(
        &self,
    ) -> Result<std::sync::RwLockReadGuard<'_, BTreeMap<Labels, Vec<crate::Sample>>>, StorageError>
    {
        self.series
            .read()
            .map_err(|_| StorageError::Other("memory store lock poisoned".into()))
    }

    /// Calls `f` for every matching series that has a sample in range.
    fn each_match(
        &self,
        mint: i64,
        maxt: i64,
        matchers: &[Matcher],
        mut f: impl FnMut(&Labels, &[crate::Sample]),
    ) -> Result<(), StorageError> {
        let map = self.read()?;
        for (labels, samples) in map.iter() {
            if !matchers.iter().all(|m| m.matches_labels(labels)) {
                continue;
            }
            let lo = samples.partition_point(|s| s.t < mint);
            let hi = samples.partition_point(|s| s.t <= maxt);
            if lo < hi {
                f(labels, &samples[lo..hi]);
            }
        }
        Ok(())
    }
}

impl Querier for MemStorage {
    fn select(
        &self,
        mint: i64,
        maxt: i64,
        matchers: &[Matcher],
    ) -> Result<Vec<Series>, StorageError> {
        let mut out = Vec::new();
        self.each_match(mint, maxt, matchers, |labels, samples| {
            out.push(Series {
                labels: labels.clone(),
                samples: samples.to_vec(),
            })
        })?;
        Ok(out)
    }

    fn label_names(
        &self,
        mint: i64,
        maxt: i64,
        matchers: &[Matcher],
    ) -> Result<Vec<String>, StorageError> {
        let mut names = BTreeSet::new();
        self.each_match(mint, maxt, matchers, |labels, _| {
            names.extend(labels.iter().map(|l| l.name.clone()))
        })?;
        Ok(names.into_iter().collect())
    }

    fn label_values(
        &self,
        name: &str,
        mint: i64,
        maxt: i64,
        matchers: &[Matcher],
    ) -> Result<Vec<String>, StorageError> {
        let mut values = BTreeSet::new();
        self.each_match(mint, maxt, matchers, |labels, _| {
            if let Some(v) = labels.get(name) {
                values.insert(v.to_string());
            }
        })?;
        Ok(values.into_iter().collect())
    }
}

impl Appender for MemStorage {
    fn append(&self, batch: &[Series]) -> Result<AppendOutcome, AppendError> {
        let mut map = self
            .series
            .write()
            .map_err(|_| AppendError::Other("memory store lock poisoned".into()))?;
        let mut outcome = AppendOutcome::default();
        for s in batch {
            let stored = map.entry(s.labels.clone()).or_default();
            for sample in &s.samples {
                match stored.last() {
                    Some(last) if sample.t < last.t => outcome.out_of_order += 1,
                    Some(last) if sample.t == last.t => {
                        // Re-sending the same sample is how at-least-once delivery looks; it
                        // is accepted and stored once. A different value is a conflict.
                        if last.v.to_bits() != sample.v.to_bits() {
                            outcome.duplicate_timestamp += 1;
                        }
                    }
                    _ => {
                        stored.push(*sample);
                        outcome.appended += 1;
                    }
                }
            }
            if stored.is_empty() {
                map.remove(&s.labels);
            }
        }
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MatchOp, Sample};

    fn series(pairs: &[(&str, &str)], samples: &[(i64, f64)]) -> Series {
        Series {
            labels: Labels::from_pairs(pairs.iter().copied()),
            samples: samples.iter().map(|&(t, v)| Sample { t, v }).collect(),
        }
    }

    #[test]
    fn append_then_select_in_range() {
        let s = MemStorage::new();
        let out = s
            .append(&[
                series(
                    &[("__name__", "a"), ("x", "1")],
                    &[(10, 1.0), (20, 2.0), (30, 3.0)],
                ),
                series(&[("__name__", "a"), ("x", "2")], &[(40, 4.0)]),
            ])
            .unwrap();
        assert_eq!(out.appended, 4);
        let m = Matcher::new(MatchOp::Equal, "__name__", "a").unwrap();
        let got = s.select(15, 30, std::slice::from_ref(&m)).unwrap();
        assert_eq!(got.len(), 1, "series 2 has nothing in range");
        assert_eq!(got[0].samples.len(), 2);
        assert_eq!(s.label_values("x", 0, 100, &[m]).unwrap(), vec!["1", "2"]);
        assert_eq!(s.label_names(0, 100, &[]).unwrap(), vec!["__name__", "x"]);
    }

    #[test]
    fn out_of_order_and_conflicting_duplicates_are_counted_not_stored() {
        let s = MemStorage::new();
        s.append(&[series(&[("a", "1")], &[(10, 1.0), (20, 2.0)])])
            .unwrap();
        let out = s
            .append(&[series(
                &[("a", "1")],
                &[(5, 0.0), (20, 2.0), (20, 9.0), (30, 3.0)],
            )])
            .unwrap();
        assert_eq!(out.appended, 1);
        assert_eq!(out.out_of_order, 1);
        assert_eq!(out.duplicate_timestamp, 1);
        assert_eq!(s.select(0, 100, &[]).unwrap()[0].samples.len(), 3);
    }
}
