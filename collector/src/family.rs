//! Metric families as collectors produce them: a name, HELP, TYPE and labelled values, turned
//! into model [`Series`] (one sample each) plus remote-write metadata at the edge.

use model::wire::prom::MetricMetadata;
use model::{Labels, Sample, Series, METRIC_NAME};

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

/// One labelled value of a family.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Point {
    pub labels: Vec<(&'static str, String)>,
    pub value: f64,
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
        self.points.push(Point { labels, value });
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
    pub fn into_series(self, target: &[(&str, &str)], t: i64) -> Vec<Series> {
        let name = self.name;
        self.points
            .into_iter()
            .map(|p| {
                let pairs = target
                    .iter()
                    .map(|(n, v)| (n.to_string(), v.to_string()))
                    .chain(p.labels.into_iter().map(|(n, v)| (n.to_string(), v)))
                    .chain(std::iter::once((METRIC_NAME.to_string(), name.clone())));
                Series {
                    labels: Labels::from_pairs(pairs),
                    samples: vec![Sample { t, v: p.value }],
                }
            })
            .collect()
    }
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

    #[test]
    fn metric_name_charset() {
        assert!(is_valid_metric_name("node_memory_Active_anon_bytes"));
        assert!(!is_valid_metric_name("node_memory_Active(anon)"));
        assert!(!is_valid_metric_name("1abc"));
        assert!(!is_valid_metric_name(""));
    }
}
