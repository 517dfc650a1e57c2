//! Metric families as collectors produce them: a name, HELP, TYPE and labelled values, turned
//! into model [`Series`] (one sample each) plus remote-write metadata at the edge.

use std::sync::Arc;

use model::wire::prom::MetricMetadata;
use model::{Labels, Sample, Series, METRIC_NAME};

/// Labels shared by many points, such as a container's six base labels: built once per
/// collection and referenced by every point instead of cloned into each.
pub(crate) type SharedLabels = Arc<[(&'static str, String)]>;

/// The TYPE of a family, as the exposition format and remote-write metadata name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MetricType {
    Counter,
    Gauge,
    /// No declared type: node_exporter's `netstat` and `vmstat` fields.
    Untyped,
}

impl MetricType {
    /// `MetricMetadata.MetricType`: UNKNOWN=0, COUNTER=1, GAUGE=2.
    fn wire(self) -> i32 {
        match self {
            MetricType::Untyped => 0,
            MetricType::Counter => 1,
            MetricType::Gauge => 2,
        }
    }
}

/// One labelled value of a family: its `shared` labels, then its own `labels` (which win
/// over a shared label of the same name).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Point {
    pub shared: Option<SharedLabels>,
    pub labels: Vec<(&'static str, String)>,
    pub value: f64,
}

impl Point {
    /// Every label of the point, shared ones first.
    #[cfg(test)]
    pub fn all_labels(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.shared
            .iter()
            .flat_map(|s| s.iter())
            .chain(&self.labels)
            .map(|(n, v)| (*n, v.as_str()))
    }
}

/// A metric family: every point shares the name, HELP text and type.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Family {
    pub name: String,
    pub help: String,
    pub kind: MetricType,
    pub points: Vec<Point>,
}

impl Family {
    pub fn new(name: impl Into<String>, help: impl Into<String>, kind: MetricType) -> Self {
        Family {
            name: name.into(),
            help: help.into(),
            kind,
            points: Vec::new(),
        }
    }

    /// A family holding one unlabelled value, the shape of `node_load1`.
    pub fn single(
        name: impl Into<String>,
        help: impl Into<String>,
        kind: MetricType,
        value: f64,
    ) -> Self {
        let mut f = Family::new(name, help, kind);
        f.push(Vec::new(), value);
        f
    }

    pub fn push(&mut self, labels: Vec<(&'static str, String)>, value: f64) {
        self.points.push(Point {
            shared: None,
            labels,
            value,
        });
    }

    /// A point labelled with `shared` (not copied) plus its own `labels`.
    pub fn push_shared(
        &mut self,
        shared: &SharedLabels,
        labels: Vec<(&'static str, String)>,
        value: f64,
    ) {
        self.points.push(Point {
            shared: Some(shared.clone()),
            labels,
            value,
        });
    }

    /// The remote-write metadata record of this family.
    pub fn metadata(&self) -> MetricMetadata {
        MetricMetadata {
            r#type: self.kind.wire(),
            metric_family_name: self.name.clone(),
            help: self.help.clone(),
            unit: String::new(),
        }
    }

    /// One series per point, each labelled with `target` (e.g. `instance` and `job`) and
    /// holding a single sample at `t` (milliseconds). A point's own label wins over a target
    /// label of the same name, as `honor_labels: true` would have it.
    #[cfg(test)]
    pub fn into_series(self, target: &[(&str, &str)], t: i64) -> Vec<Series> {
        let mut out = Vec::with_capacity(self.points.len());
        self.append_series(target, t, &mut out);
        out
    }

    /// [`Family::into_series`] appended to `out`. A point's own label values move into its
    /// series; every pair iterator has an exact length, so each label set is allocated at its
    /// size (growing buffers here left the agent's heap fragmented: +20 MiB RSS).
    fn append_series(self, target: &[(&str, &str)], t: i64, out: &mut Vec<Series>) {
        let name = self.name;
        out.extend(self.points.into_iter().map(|p| {
            let shared: &[(&'static str, String)] = p.shared.as_deref().unwrap_or_default();
            let pairs = target
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .chain(shared.iter().map(|(n, v)| (n.to_string(), v.clone())))
                .chain(p.labels.into_iter().map(|(n, v)| (n.to_string(), v)))
                .chain(std::iter::once((METRIC_NAME.to_string(), name.clone())));
            Series {
                labels: Labels::from_pairs(pairs),
                samples: vec![Sample { t, v: p.value }],
            }
        }));
    }
}

/// The series of every family in `families` (see [`Family::into_series`]), in one vector
/// allocated once at its final size.
pub(crate) fn into_series(families: Vec<Family>, target: &[(&str, &str)], t: i64) -> Vec<Series> {
    let mut out = Vec::with_capacity(families.iter().map(|f| f.points.len()).sum());
    for f in families {
        f.append_series(target, t, &mut out);
    }
    out
}

/// True for a valid classic metric name, `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub(crate) fn is_valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn into_series_adds_target_labels_and_name() {
        let mut f = Family::new("node_x_total", "X.", MetricType::Counter);
        f.push(vec![("device", "eth0".into())], 3.0);
        let s = f.into_series(&[("instance", "n1"), ("job", "node")], 1_000);
        assert_eq!(
            s[0].labels.to_string(),
            r#"{__name__="node_x_total", device="eth0", instance="n1", job="node"}"#
        );
        assert_eq!(s[0].samples, vec![Sample { t: 1_000, v: 3.0 }]);
    }

    /// Shared labels merge as a point's own would: what `Labels::from_pairs` gives over all of
    /// a point's pairs, overrides and empty values included.
    #[test]
    fn into_series_matches_from_pairs_on_overrides_and_empty_values() {
        let shared: SharedLabels = vec![
            ("pod", String::new()),
            ("id", "/a".to_string()),
            ("job", "override".to_string()),
            ("zone", "z1".to_string()),
        ]
        .into();
        let mut f = Family::new("x", "X.", MetricType::Gauge);
        f.push_shared(&shared, vec![("device", "sda".into())], 1.0);
        f.push_shared(&shared, vec![("zone", String::new())], 2.0);
        f.push(vec![("instance", String::new()), ("a", "b".into())], 3.0);
        f.push(Vec::new(), 4.0);
        let target = [("instance", "n1"), ("job", "node"), ("empty", "")];
        let expected: Vec<Labels> = f
            .points
            .iter()
            .map(|p| {
                Labels::from_pairs(
                    target
                        .iter()
                        .copied()
                        .chain(p.all_labels())
                        .chain([(METRIC_NAME, "x")]),
                )
            })
            .collect();
        let got: Vec<Labels> = f
            .into_series(&target, 5)
            .into_iter()
            .map(|s| s.labels)
            .collect();
        assert_eq!(got, expected);
        assert_eq!(
            got[1].to_string(),
            r#"{__name__="x", id="/a", instance="n1", job="override"}"#
        );
        assert_eq!(got[2].to_string(), r#"{__name__="x", a="b", job="node"}"#);
    }

    #[test]
    fn series_of_many_families_keep_family_then_point_order() {
        let mut a = Family::new("a", "A.", MetricType::Gauge);
        a.push(vec![("k", "1".into())], 1.0);
        a.push(vec![("k", "2".into())], 2.0);
        let b = Family::new("b", "B.", MetricType::Gauge);
        let mut c = Family::new("c", "C.", MetricType::Counter);
        c.push(Vec::new(), 3.0);
        let expected: Vec<Series> = [a.clone(), b.clone(), c.clone()]
            .into_iter()
            .flat_map(|f| f.into_series(&[("job", "j")], 7))
            .collect();
        let got = into_series(vec![a, b, c], &[("job", "j")], 7);
        assert_eq!(got, expected);
        assert_eq!(got.len(), 3);
        assert_eq!(got.capacity(), 3, "allocated once at its size");
    }

    #[test]
    fn metric_name_charset() {
        assert!(is_valid_metric_name("node_memory_Active_anon_bytes"));
        assert!(!is_valid_metric_name("node_memory_Active(anon)"));
        assert!(!is_valid_metric_name("1abc"));
        assert!(!is_valid_metric_name(""));
    }
}
