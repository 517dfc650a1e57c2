//! Metric families as collectors produce them: a name, HELP, TYPE and labelled values, turned
//! into model [`Series`] (one sample each) plus remote-write metadata at the edge.

use model::wire::prom::MetricMetadata;
use model::{Label, Labels, Sample, Series, METRIC_NAME};

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
    pub(crate) fn wire(self) -> i32 {
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

impl Point {
    /// Every label of the point, borrowed.
    #[cfg(test)]
    pub fn all_labels(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.labels.iter().map(|(n, v)| (*n, v.as_str()))
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
    #[cfg(test)]
    pub fn into_series(self, target: &[(&str, &str)], t: i64) -> Vec<Series> {
        let mut out = Vec::with_capacity(self.points.len());
        self.append_series(target, t, &mut out);
        out
    }

    /// [`Family::into_series`] appended to `out`. A point's own label values move into its
    /// series, and each label set is allocated once at its final size (growing buffers here
    /// left the agent's heap fragmented: +20 MiB RSS).
    fn append_series(self, target: &[(&str, &str)], t: i64, out: &mut Vec<Series>) {
        let name = self.name;
        out.extend(self.points.into_iter().map(|p| Series {
            labels: series_labels(target, p.labels, &name),
            samples: vec![Sample { t, v: p.value }],
        }));
    }
}

/// The labels of one series: `target`, the point's `own`, then `__name__` — what
/// [`Labels::from_pairs`] makes of them chained in that order: a later group's label wins
/// over an earlier one's of the same name, and empty values are dropped.
///
/// The target labels come sorted and a point's own are sorted here, so the groups are merged
/// in one pass straight into the label set, without from_pairs's copy of every pair and sort
/// (node collectors emit thousands of series a collection). A group with a name twice takes
/// the from_pairs path, so the result never depends on how a collector ordered its pairs.
fn series_labels(
    target: &[(&str, &str)],
    mut own: Vec<(&'static str, String)>,
    name: &str,
) -> Labels {
    // Own labels are few and often written in any order; sorting them in place is cheap, and
    // stable, so a repeated name still keeps its last value on the fallback path.
    own.sort_by(|a, b| a.0.cmp(b.0));
    if !(strictly_sorted(target) && strictly_sorted(&own)) {
        return Labels::from_pairs(
            target
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .chain(own.into_iter().map(|(n, v)| (n.to_string(), v)))
                .chain(std::iter::once((METRIC_NAME.to_string(), name.to_string()))),
        );
    }
    let kept = |pick: Pick, own: &[(&'static str, String)]| -> bool {
        match pick {
            Pick::Target(i) => !target[i].1.is_empty(),
            Pick::Own(i) => !own[i].1.is_empty(),
            Pick::Name => !name.is_empty(),
        }
    };
    // A first pass counts the labels that stay, so the set is allocated at its size.
    let mut merge = Merge::default();
    let mut len = 0;
    while let Some((_, pick)) = merge.next(target, &own) {
        len += usize::from(kept(pick, &own));
    }
    let mut labels = Vec::with_capacity(len);
    let mut merge = Merge::default();
    while let Some((label, pick)) = merge.next(target, &own) {
        if !kept(pick, &own) {
            continue;
        }
        let value = match pick {
            Pick::Target(i) => target[i].1.to_string(),
            Pick::Own(i) => std::mem::take(&mut own[i].1),
            Pick::Name => name.to_string(),
        };
        labels.push(Label {
            name: label.to_string(),
            value,
        });
    }
    Labels::from_sorted_unique(labels)
}

/// True when the names of `pairs` ascend with none repeated.
fn strictly_sorted<V>(pairs: &[(&str, V)]) -> bool {
    pairs.windows(2).all(|w| w[0].0 < w[1].0)
}

/// Which group a merged label's value comes from, by index into it.
#[derive(Clone, Copy, Debug)]
enum Pick {
    Target(usize),
    Own(usize),
    Name,
}

/// A walk over the union of [`series_labels`]'s sorted groups in name order: the next
/// position in each group, and whether `__name__` was passed.
#[derive(Debug, Default)]
struct Merge {
    target: usize,
    own: usize,
    name_done: bool,
}

impl Merge {
    /// The next name and the group whose value it takes (the latest group holding it), or
    /// None when every group is walked. The groups are passed anew at each step, so the
    /// caller may move values out of `own` between steps.
    fn next<'a>(
        &mut self,
        target: &[(&'a str, &str)],
        own: &[(&'static str, String)],
    ) -> Option<(&'a str, Pick)> {
        let heads: [Option<&'a str>; 3] = [
            target.get(self.target).map(|l| l.0),
            own.get(self.own).map(|l| l.0),
            (!self.name_done).then_some(METRIC_NAME),
        ];
        let min = heads.into_iter().flatten().min()?;
        let at = heads.map(|h| h == Some(min));
        let pick = if at[2] {
            Pick::Name
        } else if at[1] {
            Pick::Own(self.own)
        } else {
            Pick::Target(self.target)
        };
        // Every group holding the name moves past it; only the latest's value is kept.
        self.target += usize::from(at[0]);
        self.own += usize::from(at[1]);
        self.name_done |= at[2];
        Some((min, pick))
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

    /// A point's labels, in any order, give what `Labels::from_pairs` gives over the target's
    /// and then the point's pairs, overrides and empty values included.
    #[test]
    fn into_series_matches_from_pairs_on_overrides_and_empty_values() {
        let own = |extra: (&'static str, &str)| {
            vec![
                ("pod", String::new()),
                ("id", "/a".to_string()),
                ("job", "override".to_string()),
                ("zone", "z1".to_string()),
                (extra.0, extra.1.to_string()),
            ]
        };
        let mut f = Family::new("x", "X.", MetricType::Gauge);
        f.push(own(("device", "sda")), 1.0);
        f.push(own(("id", "")), 2.0);
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
            r#"{__name__="x", instance="n1", job="override", zone="z1"}"#
        );
        assert_eq!(got[2].to_string(), r#"{__name__="x", a="b", job="node"}"#);
    }

    /// The merge of sorted groups gives exactly what `Labels::from_pairs` gives over the
    /// chained pairs, on a few thousand generated groups: names that collide across groups,
    /// sort before `__name__` (upper case) or after it, empty values that hide an earlier
    /// group's value, and groups out of order or with a name twice (the fallback path).
    #[test]
    fn series_labels_match_from_pairs_on_generated_groups() {
        const NAMES: [&str; 7] = ["A", "__name__", "a", "id", "job", "pod", "zz"];
        const VALUES: [&str; 3] = ["", "v", "w"];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |n: usize| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) as usize % n
        };
        let mut merged = 0;
        for round in 0..3000 {
            let mut group = |sorted: bool| {
                let mut g: Vec<(&'static str, String)> = (0..next(4))
                    .map(|_| {
                        (
                            NAMES[next(NAMES.len())],
                            VALUES[next(VALUES.len())].to_string(),
                        )
                    })
                    .collect();
                if sorted {
                    g.sort_by(|a, b| a.0.cmp(b.0));
                    g.dedup_by(|a, b| a.0 == b.0);
                }
                g
            };
            // Most rounds use sorted groups, as the collectors build them.
            let target = group(round % 5 != 0);
            let own = group(round % 3 != 0);
            let name = ["", "m"][next(2)];
            let target: Vec<(&str, &str)> = target.iter().map(|(n, v)| (*n, v.as_str())).collect();
            let expected = Labels::from_pairs(
                target
                    .iter()
                    .copied()
                    .chain(own.iter().map(|(n, v)| (*n, v.as_str())))
                    .chain([(METRIC_NAME, name)]),
            );
            let own_sorted = {
                let mut names: Vec<&str> = own.iter().map(|(n, _)| *n).collect();
                names.sort_unstable();
                names.windows(2).all(|w| w[0] < w[1])
            };
            let got = series_labels(&target, own, name);
            assert_eq!(got, expected, "round {round}");
            merged += usize::from(strictly_sorted(&target) && own_sorted);
        }
        assert!(merged > 1500, "the merge path ran {merged} times");
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
