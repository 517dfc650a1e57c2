//! Each container series' labels, kept between collections: a collection fills the kept label
//! sets with its samples instead of building every series' labels anew.
//!
//! A node with 200 containers ships some 15,000 container series every interval, each with
//! ten labels. Built per collection, those were ~150,000 strings allocated on the collector's
//! thread and freed on the remote-write sink's, the agent's largest CPU cost (the malloc family
//! was a third of it). The label sets change only when a container's metadata does (its pod
//! is named, restarted, renamed) or a family's own labels do (a device or an interface
//! appears), so they are kept per cgroup path, family and extra-label values; a series then
//! costs one reference count and its one sample. `model::Labels` shares its pairs, so the
//! sink's copy of a series and the kept one are the same allocation.

use model::wire::prom::MetricMetadata;
use model::{Labels, Sample, Series, METRIC_NAME};

use super::families::{self, Base, Container, Extra, FAMILIES};
use crate::ship::MetricBatch;

/// The label sets of every container series of the last collection.
#[derive(Debug, Default)]
pub(crate) struct SeriesCache {
    /// The labels every series carries (`instance`, `job`, `metrics_path`).
    target: Vec<(&'static str, String)>,
    /// One entry per cgroup of the last collection, in path order.
    entries: Vec<Entry>,
    /// The series of the last collection, to size the next batch at once.
    last_len: usize,
}

/// One cgroup's series.
#[derive(Debug)]
struct Entry {
    /// The six labels the series were built with; when they change, every series is rebuilt.
    base: Base,
    /// Per family (as `families::visit` numbers them), the series of the last collection in
    /// the order the family gave its values.
    series: Vec<Vec<Kept>>,
}

/// One series' labels and the extra-label values they were built from.
#[derive(Debug)]
struct Kept {
    extra: Vec<(&'static str, String)>,
    labels: Labels,
}

impl Kept {
    fn matches(&self, extra: &Extra<'_>) -> bool {
        let pairs = extra.pairs();
        self.extra.len() == pairs.len()
            && self
                .extra
                .iter()
                .zip(pairs)
                .all(|((n, v), (m, w))| n == m && v == w)
    }
}

impl Entry {
    fn new(base: Base) -> Self {
        Entry {
            base,
            series: (0..FAMILIES).map(|_| Vec::new()).collect(),
        }
    }
}

impl SeriesCache {
    /// An empty cache for series labelled with `target` besides their own labels.
    pub fn new(target: Vec<(&'static str, String)>) -> Self {
        SeriesCache {
            target,
            ..SeriesCache::default()
        }
    }

    /// How many cgroups have series kept.
    #[cfg(test)]
    pub fn cgroups(&self) -> usize {
        self.entries.len()
    }

    /// How many series have labels kept.
    #[cfg(test)]
    pub fn series(&self) -> usize {
        self.entries
            .iter()
            .flat_map(|e| &e.series)
            .map(Vec::len)
            .sum()
    }

    /// The batch of one collection over `containers` (sorted by path, as `Tree::list` gives
    /// them), stamped `t_ms`: the series of every family in name order, each family's series
    /// container by container — what labelling every value afresh would give, in the same
    /// order. Cgroups no longer listed are forgotten.
    pub fn collect(&mut self, containers: &[Container], t_ms: i64) -> MetricBatch {
        self.align(containers);
        let mut series = Vec::with_capacity(self.last_len);
        let mut metadata = Vec::new();
        let SeriesCache {
            target, entries, ..
        } = self;
        families::visit(containers, t_ms as f64 / 1000.0, |family, i, values| {
            let meta = families::meta(family);
            let kept = &mut entries[i].series[family];
            for (k, (extra, v)) in values.iter().enumerate() {
                if !kept.get(k).is_some_and(|s| s.matches(extra)) {
                    // A device or an interface that came or went shifts the ones after it:
                    // their series are further on, not gone.
                    match kept.iter().skip(k + 1).position(|s| s.matches(extra)) {
                        Some(j) => kept.swap(k, k + 1 + j),
                        None => {
                            let built = Kept {
                                extra: extra
                                    .pairs()
                                    .iter()
                                    .map(|(n, v)| (*n, v.to_string()))
                                    .collect(),
                                labels: labels(target, &containers[i].base, extra, meta.name),
                            };
                            kept.insert(k.min(kept.len()), built);
                        }
                    }
                }
                if metadata
                    .last()
                    .is_none_or(|m: &MetricMetadata| m.metric_family_name != meta.name)
                {
                    metadata.push(MetricMetadata {
                        r#type: meta.kind.wire(),
                        metric_family_name: meta.name.to_string(),
                        help: meta.help.to_string(),
                        unit: String::new(),
                    });
                }
                // `k` holds the match now: it was there, swapped in or inserted.
                if let Some(s) = kept.get(k) {
                    series.push(Series {
                        labels: s.labels.clone(),
                        samples: vec![Sample { t: t_ms, v: *v }],
                    });
                }
            }
            // Series the family no longer gives (a device gone) are forgotten.
            kept.truncate(values.len());
        });
        self.last_len = series.len();
        MetricBatch { series, metadata }
    }

    /// Lines the entries up with `containers`, one each, in the same order: a cgroup kept
    /// from the last collection keeps its series unless its six labels changed, a new one
    /// starts empty, and one no longer listed is dropped. Both lists are sorted by path, so
    /// one walk pairs them; were they not, series would only be built again, never wrong.
    fn align(&mut self, containers: &[Container]) {
        let mut old = std::mem::take(&mut self.entries).into_iter().peekable();
        self.entries = Vec::with_capacity(containers.len());
        for c in containers {
            while old.next_if(|e| e.base.id < c.base.id).is_some() {}
            let entry = match old.next_if(|e| e.base.id == c.base.id) {
                Some(mut e) => {
                    if e.base != c.base {
                        e = Entry::new(c.base.clone());
                    }
                    e
                }
                None => Entry::new(c.base.clone()),
            };
            self.entries.push(entry);
        }
    }
}

/// The labels of one series: the target's, the container's six, the family's own, then
/// `__name__`, a later one winning over an earlier one of the same name and empty values
/// left out, as `family::into_series` labels a point.
fn labels(target: &[(&'static str, String)], base: &Base, extra: &Extra<'_>, name: &str) -> Labels {
    Labels::from_pairs(
        target
            .iter()
            .map(|(n, v)| (*n, v.as_str()))
            .chain(base.pairs())
            .chain(extra.pairs().iter().copied())
            .chain([(METRIC_NAME, name)]),
    )
}
