//! Log volume (Loki's `index/volume` and `index/volume_range`): the bytes of the lines of the
//! streams a selector matches, summed by label set, read from fast fields only.
//!
//! Loki's rules, as its HTTP API documents them: by default (`aggregateBy=series`) volumes
//! are summed by the values of the labels named in the selector, or of `targetLabels` when
//! given (a stream without one of the target labels is left out); `aggregateBy=labels` sums
//! them by label name alone, a series `{name=""}` per label the streams carry (only the
//! target labels when given). The `limit` largest volumes are kept, per step for ranges, ties
//! broken by name.

use crate::scan::all_hits;
use crate::schema::parse_stream;
use crate::store::LogStore;
use crate::Error;
use model::{Labels, Matcher};
use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::sync::Arc;

/// Loki's default number of volumes returned.
pub const DEFAULT_VOLUME_LIMIT: usize = 100;

/// What volumes are summed by (Loki's `aggregateBy`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum VolumeBy {
    /// By label values: one result per distinct combination.
    #[default]
    Series,
    /// By label name: one result per label, with an empty value.
    Labels,
}

impl FromStr for VolumeBy {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "" | "series" => Ok(VolumeBy::Series),
            "labels" => Ok(VolumeBy::Labels),
            _ => Err(Error::Invalid("invalid aggregation option".into())),
        }
    }
}

/// The name of one volume: label pairs in name order. Not a [`Labels`], because the
/// `aggregateBy=labels` results have empty values, which a label set would drop.
pub type VolumeName = Vec<(String, String)>;

/// One `volume_range` series: its name and its (timestamp ns, bytes) points, oldest first.
pub type VolumeSeries = (VolumeName, Vec<(i64, u64)>);

/// One volume request: which streams, how to name the sums, how many to keep.
#[derive(Clone, Debug)]
pub struct VolumeRequest {
    pub matchers: Vec<Matcher>,
    pub start_ns: i64,
    pub end_ns: i64,
    /// `targetLabels`; empty means the selector's label names.
    pub target_labels: Vec<String>,
    pub by: VolumeBy,
    pub limit: usize,
}

impl VolumeRequest {
    /// The name a stream's bytes are summed under; `None` leaves the stream out.
    fn names(&self, stream: &Labels) -> Vec<VolumeName> {
        let selector: Vec<&str>;
        let wanted: &[&str] = if self.target_labels.is_empty() {
            let mut names: Vec<&str> = self.matchers.iter().map(|m| m.name.as_str()).collect();
            names.sort_unstable();
            names.dedup();
            selector = names;
            &selector
        } else {
            selector = self.target_labels.iter().map(String::as_str).collect();
            if selector.iter().any(|n| stream.get(n).is_none()) {
                return Vec::new();
            }
            &selector
        };
        match self.by {
            VolumeBy::Series => {
                let mut name: VolumeName = wanted
                    .iter()
                    .filter_map(|n| stream.get(n).map(|v| (n.to_string(), v.to_string())))
                    .collect();
                name.sort();
                name.dedup();
                vec![name]
            }
            VolumeBy::Labels => stream
                .iter()
                .filter(|l| self.target_labels.is_empty() || wanted.contains(&l.name.as_str()))
                .map(|l| vec![(l.name.clone(), String::new())])
                .collect(),
        }
    }
}

impl LogStore {
    /// The volume (line bytes) of every name over the whole range, largest first.
    pub fn volume(&self, req: &VolumeRequest) -> Result<Vec<(VolumeName, u64)>, Error> {
        let buckets = self.volume_buckets(req, req.end_ns.saturating_sub(req.start_ns).max(1))?;
        Ok(top(
            buckets.into_values().next().unwrap_or_default(),
            req.limit,
        ))
    }

    /// The volume of every name per step: buckets `[start + k·step, start + (k+1)·step)`,
    /// each stamped at its end minus a millisecond (the last at `end`), as Loki stamps its
    /// split queries. Each bucket keeps its `limit` largest names; a name's points are in
    /// time order.
    pub fn volume_range(
        &self,
        req: &VolumeRequest,
        step_ns: i64,
    ) -> Result<Vec<VolumeSeries>, Error> {
        if step_ns <= 0 {
            return Err(Error::Invalid(
                "zero or negative query resolution step widths are not accepted. Try a positive integer".into(),
            ));
        }
        let mut series: BTreeMap<VolumeName, Vec<(i64, u64)>> = BTreeMap::new();
        for (bucket, sums) in self.volume_buckets(req, step_ns)? {
            let bucket_end = req
                .start_ns
                .saturating_add((bucket + 1).saturating_mul(step_ns));
            let stamp = if bucket_end >= req.end_ns {
                req.end_ns
            } else {
                bucket_end - 1_000_000
            };
            for (name, bytes) in top(sums, req.limit) {
                series.entry(name).or_default().push((stamp, bytes));
            }
        }
        Ok(series.into_iter().collect())
    }

    /// Sums by bucket index, then by name.
    fn volume_buckets(
        &self,
        req: &VolumeRequest,
        step_ns: i64,
    ) -> Result<BTreeMap<i64, HashMap<VolumeName, u64>>, Error> {
        let mut out: BTreeMap<i64, HashMap<VolumeName, u64>> = BTreeMap::new();
        let mut names: HashMap<Arc<str>, Vec<VolumeName>> = HashMap::new();
        for view in self.views(req.start_ns, req.end_ns)? {
            for e in view
                .pending
                .matching(&req.matchers, req.start_ns, req.end_ns)
            {
                if !names.contains_key(&e.stream) {
                    names.insert(e.stream.clone(), req.names(&e.labels));
                }
                let Some(stream_names) = names.get(&e.stream) else {
                    continue;
                };
                let bucket = (e.ts_ns - req.start_ns).div_euclid(step_ns);
                let sums = out.entry(bucket).or_default();
                for name in stream_names {
                    *sums.entry(name.clone()).or_default() += e.line.len() as u64;
                }
            }
            let Some(q) =
                self.selector_query(&view.searcher, &req.matchers, req.start_ns, req.end_ns)?
            else {
                continue;
            };
            for hit in all_hits(&view.searcher, &q)? {
                if !names.contains_key(&hit.stream) {
                    let labels = parse_stream(&hit.stream)?;
                    names.insert(hit.stream.clone(), req.names(&labels));
                }
                let Some(stream_names) = names.get(&hit.stream) else {
                    continue;
                };
                let bucket = (hit.ts - req.start_ns).div_euclid(step_ns);
                let sums = out.entry(bucket).or_default();
                for name in stream_names {
                    *sums.entry(name.clone()).or_default() += hit.bytes;
                }
            }
        }
        Ok(out)
    }
}

/// The `limit` largest volumes, largest first, ties by name.
fn top(sums: HashMap<VolumeName, u64>, limit: usize) -> Vec<(VolumeName, u64)> {
    let mut v: Vec<(VolumeName, u64)> = sums.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.truncate(limit);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_selector;
    use model::{LogEntry, LogStream};

    fn pairs(p: &[(&str, &str)]) -> VolumeName {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The four streams of Loki's documentation, each with one line of a distinct length.
    fn store() -> (tempfile::TempDir, LogStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(dir.path()).unwrap();
        let streams = [
            (("foo", "prod", "alpha"), 10, 100),
            (("bar", "prod", "beta"), 20, 200),
            (("foo", "dev", "alpha"), 30, 300),
            (("bar", "dev", "beta"), 40, 400),
        ];
        for ((job, env, team), len, ts) in streams {
            store
                .push(&[LogStream {
                    labels: Labels::from_pairs([("job", job), ("env", env), ("team", team)]),
                    entries: vec![LogEntry {
                        ts_ns: ts,
                        line: "x".repeat(len),
                        metadata: vec![],
                    }],
                }])
                .unwrap();
        }
        (dir, store)
    }

    fn req(selector: &str, targets: &[&str], by: VolumeBy) -> VolumeRequest {
        VolumeRequest {
            matchers: parse_selector(selector).unwrap(),
            start_ns: 0,
            end_ns: 1000,
            target_labels: targets.iter().map(|s| s.to_string()).collect(),
            by,
            limit: DEFAULT_VOLUME_LIMIT,
        }
    }

    #[test]
    fn by_default_volumes_are_summed_by_the_selector_labels() {
        let (_d, store) = store();
        let v = store
            .volume(&req(r#"{job="foo", env=~".+"}"#, &[], VolumeBy::Series))
            .unwrap();
        assert_eq!(
            v,
            [
                (pairs(&[("env", "dev"), ("job", "foo")]), 30),
                (pairs(&[("env", "prod"), ("job", "foo")]), 10),
            ]
        );
    }

    #[test]
    fn target_labels_replace_the_selector_labels() {
        let (_d, store) = store();
        // The documentation's example: all non-dev jobs of team alpha, whatever their env.
        let v = store
            .volume(&req(
                r#"{team="alpha", env!="dev"}"#,
                &["team", "job"],
                VolumeBy::Series,
            ))
            .unwrap();
        assert_eq!(v, [(pairs(&[("job", "foo"), ("team", "alpha")]), 10)]);
        // A stream without a target label is left out.
        let v = store
            .volume(&req(r#"{job=~".+"}"#, &["missing"], VolumeBy::Series))
            .unwrap();
        assert!(v.is_empty());
    }

    #[test]
    fn aggregate_by_labels_sums_by_label_name() {
        let (_d, store) = store();
        let v = store
            .volume(&req(r#"{job=~".+"}"#, &[], VolumeBy::Labels))
            .unwrap();
        assert_eq!(
            v,
            [
                (pairs(&[("env", "")]), 100),
                (pairs(&[("job", "")]), 100),
                (pairs(&[("team", "")]), 100),
            ]
        );
        let v = store
            .volume(&req(r#"{job=~".+"}"#, &["team"], VolumeBy::Labels))
            .unwrap();
        assert_eq!(v, [(pairs(&[("team", "")]), 100)]);
        assert!("other".parse::<VolumeBy>().is_err());
    }

    #[test]
    fn limit_keeps_the_largest_and_ranges_bucket_by_step() {
        let (_d, store) = store();
        let mut r = req(r#"{job=~".+"}"#, &["job", "env"], VolumeBy::Series);
        r.limit = 2;
        let v = store.volume(&r).unwrap();
        assert_eq!(
            v,
            [
                (pairs(&[("env", "dev"), ("job", "bar")]), 40),
                (pairs(&[("env", "dev"), ("job", "foo")]), 30),
            ]
        );
        // Buckets [0, 1s) and [1s, 2s): the first stamped at its end minus 1 ms.
        r.limit = 100;
        r.end_ns = 2_000_000_000;
        let v = store.volume_range(&r, 1_000_000_000).unwrap();
        assert_eq!(v.len(), 4);
        assert!(v.iter().all(|(_, pts)| pts == &[(999_000_000, pts[0].1)]));
        // Within one step, the only bucket is the last: stamped at `end`.
        let r = VolumeRequest {
            end_ns: 500_000_000,
            ..req(r#"{job="bar"}"#, &[], VolumeBy::Series)
        };
        let v = store.volume_range(&r, 1_000_000_000).unwrap();
        assert_eq!(v, [(pairs(&[("job", "bar")]), vec![(500_000_000, 60)])]);
    }
}
