//! Queries over blocks and head together: each source answers on its own, and the answers
//! are merged by label set, samples deduplicated by timestamp where sources meet.
//!
//! Sources never hold the same timestamp of a series with different values in normal
//! operation (a block cut drops from the head exactly what it wrote, and compaction
//! replaces its parents), but for an instant during a cut a sample can be in both; the
//! merge keeps the first, the older source's.

use crate::db::Tsdb;
use model::{Labels, Matcher, Querier, Sample, Series, StorageError};
use std::collections::{BTreeMap, BTreeSet};

/// Merges per-source selections (each sorted by labels; sources in time order) into one
/// sorted by labels, each series' samples ascending with no timestamp twice.
pub(crate) fn merge_series(parts: Vec<Vec<Series>>) -> Vec<Series> {
    let mut parts: Vec<Vec<Series>> = parts.into_iter().filter(|p| !p.is_empty()).collect();
    match parts.len() {
        0 => return Vec::new(),
        1 => return parts.pop().unwrap_or_default(),
        _ => {}
    }
    let mut merged: BTreeMap<Labels, Vec<Sample>> = BTreeMap::new();
    for part in parts {
        for s in part {
            merged.entry(s.labels).or_default().extend(s.samples);
        }
    }
    merged
        .into_iter()
        .map(|(labels, samples)| Series {
            labels,
            samples: sort_dedup(samples),
        })
        .collect()
}

/// Sorts samples by time, keeping the first of each timestamp. Sources are concatenated in
/// time order, so the sort is skipped unless they overlap.
fn sort_dedup(mut samples: Vec<Sample>) -> Vec<Sample> {
    if samples.windows(2).all(|w| w[0].t < w[1].t) {
        return samples;
    }
    samples.sort_by_key(|s| s.t);
    samples.dedup_by_key(|s| s.t);
    samples
}

/// Merges sorted label-set lists into one sorted list without repeats.
pub(crate) fn merge_labels(parts: Vec<Vec<Labels>>) -> Vec<Labels> {
    let mut parts: Vec<Vec<Labels>> = parts.into_iter().filter(|p| !p.is_empty()).collect();
    if parts.len() <= 1 {
        return parts.pop().unwrap_or_default();
    }
    let set: BTreeSet<Labels> = parts.into_iter().flatten().collect();
    set.into_iter().collect()
}

impl Querier for Tsdb {
    fn select(
        &self,
        mint: i64,
        maxt: i64,
        matchers: &[Matcher],
    ) -> Result<Vec<Series>, StorageError> {
        let blocks = self.read_blocks()?;
        let mut parts = Vec::new();
        for b in blocks.iter().filter(|b| b.overlaps(mint, maxt)) {
            parts.push(b.select(mint, maxt, matchers)?);
        }
        parts.push(self.head().select(mint, maxt, matchers)?);
        drop(blocks);
        Ok(merge_series(parts))
    }

    fn series(
        &self,
        mint: i64,
        maxt: i64,
        matchers: &[Matcher],
    ) -> Result<Vec<Labels>, StorageError> {
        let blocks = self.read_blocks()?;
        let mut parts = Vec::new();
        for b in blocks.iter().filter(|b| b.overlaps(mint, maxt)) {
            parts.push(b.series(mint, maxt, matchers)?);
        }
        parts.push(self.head().series(mint, maxt, matchers)?);
        drop(blocks);
        Ok(merge_labels(parts))
    }

    fn label_names(
        &self,
        mint: i64,
        maxt: i64,
        matchers: &[Matcher],
    ) -> Result<Vec<String>, StorageError> {
        let blocks = self.read_blocks()?;
        let mut names: BTreeSet<String> = self
            .head()
            .label_names(mint, maxt, matchers)?
            .into_iter()
            .collect();
        for b in blocks.iter().filter(|b| b.overlaps(mint, maxt)) {
            names.extend(b.label_names(mint, maxt, matchers)?);
        }
        Ok(names.into_iter().collect())
    }

    fn label_values(
        &self,
        name: &str,
        mint: i64,
        maxt: i64,
        matchers: &[Matcher],
    ) -> Result<Vec<String>, StorageError> {
        let blocks = self.read_blocks()?;
        let mut values: BTreeSet<String> = self
            .head()
            .label_values(name, mint, maxt, matchers)?
            .into_iter()
            .collect();
        for b in blocks.iter().filter(|b| b.overlaps(mint, maxt)) {
            values.extend(b.label_values(name, mint, maxt, matchers)?);
        }
        Ok(values.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(name: &str, ts: &[(i64, f64)]) -> Series {
        Series {
            labels: Labels::from_pairs([("a", name)]),
            samples: ts.iter().map(|&(t, v)| Sample { t, v }).collect(),
        }
    }

    #[test]
    fn series_merge_by_labels_and_dedup_at_the_seam() {
        let block = vec![s("x", &[(1, 1.0), (2, 2.0)]), s("y", &[(1, 1.0)])];
        let head = vec![s("w", &[(5, 5.0)]), s("x", &[(2, 9.0), (3, 3.0)])];
        let got = merge_series(vec![block, Vec::new(), head]);
        assert_eq!(
            got,
            vec![
                s("w", &[(5, 5.0)]),
                s("x", &[(1, 1.0), (2, 2.0), (3, 3.0)]),
                s("y", &[(1, 1.0)]),
            ]
        );
        let one = vec![s("x", &[(1, 1.0)])];
        assert_eq!(merge_series(vec![one.clone()]), one);
    }

    #[test]
    fn label_sets_merge_sorted_without_repeats() {
        let l = |v: &str| Labels::from_pairs([("a", v)]);
        let got = merge_labels(vec![vec![l("b"), l("c")], vec![l("a"), l("c")]]);
        assert_eq!(got, vec![l("a"), l("b"), l("c")]);
    }
}
