//! Vector aggregations (`sum by (x) (...)`, `topk`, `sort`, ...) over one instant's samples.

use super::range::quantile;
use crate::logql::{Grouping, VectorOp};
use model::Labels;
use std::collections::BTreeMap;

/// The labels a sample is grouped under.
pub(crate) fn group_key(labels: &Labels, grouping: Option<&Grouping>) -> Labels {
    match grouping {
        None => Labels::empty(),
        Some(g) => {
            let names: Vec<&str> = g.labels.iter().map(String::as_str).collect();
            if g.without {
                labels.without(&names)
            } else {
                labels.only(&names)
            }
        }
    }
}

pub(crate) fn aggregate(
    op: VectorOp,
    param: Option<f64>,
    grouping: Option<&Grouping>,
    samples: Vec<(Labels, f64)>,
) -> Vec<(Labels, f64)> {
    match op {
        VectorOp::Sort | VectorOp::SortDesc => {
            let mut s = samples;
            s.sort_by(|a, b| {
                let o = a.1.total_cmp(&b.1);
                if op == VectorOp::SortDesc {
                    o.reverse()
                } else {
                    o
                }
            });
            return s;
        }
        VectorOp::Topk | VectorOp::Bottomk => {
            let k = param.unwrap_or(0.0).max(0.0) as usize;
            let mut groups: BTreeMap<Labels, Vec<(Labels, f64)>> = BTreeMap::new();
            for s in samples {
                groups.entry(group_key(&s.0, grouping)).or_default().push(s);
            }
            let mut out = Vec::new();
            for (_, mut g) in groups {
                // NaN sorts last for both, as in Prometheus.
                g.sort_by(|a, b| {
                    let (x, y) = (a.1, b.1);
                    match (x.is_nan(), y.is_nan()) {
                        (true, true) => std::cmp::Ordering::Equal,
                        (true, false) => std::cmp::Ordering::Greater,
                        (false, true) => std::cmp::Ordering::Less,
                        _ if op == VectorOp::Topk => y.total_cmp(&x),
                        _ => x.total_cmp(&y),
                    }
                });
                g.truncate(k);
                out.extend(g);
            }
            return out;
        }
        _ => {}
    }
    let mut groups: BTreeMap<Labels, Vec<f64>> = BTreeMap::new();
    for (l, v) in samples {
        groups.entry(group_key(&l, grouping)).or_default().push(v);
    }
    groups
        .into_iter()
        .map(|(k, mut vs)| {
            let n = vs.len() as f64;
            let v = match op {
                VectorOp::Sum => vs.iter().sum(),
                VectorOp::Avg => vs.iter().sum::<f64>() / n,
                VectorOp::Count => n,
                VectorOp::Min => {
                    vs.iter()
                        .copied()
                        .fold(f64::NAN, |a, b| if a.is_nan() || b < a { b } else { a })
                }
                VectorOp::Max => {
                    vs.iter()
                        .copied()
                        .fold(f64::NAN, |a, b| if a.is_nan() || b > a { b } else { a })
                }
                VectorOp::Stdvar | VectorOp::Stddev => {
                    let mean = vs.iter().sum::<f64>() / n;
                    let var = vs.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
                    if op == VectorOp::Stddev {
                        var.sqrt()
                    } else {
                        var
                    }
                }
                // Kept for completeness: the median of a group.
                _ => quantile(0.5, &mut vs),
            };
            (k, v)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(pairs: &[(&str, &str)], v: f64) -> (Labels, f64) {
        (Labels::from_pairs(pairs.to_vec()), v)
    }

    fn by(labels: &[&str], without: bool) -> Grouping {
        Grouping {
            without,
            labels: labels.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn sum_by_and_without() {
        let v = vec![
            s(&[("a", "1"), ("b", "x")], 1.0),
            s(&[("a", "1"), ("b", "y")], 2.0),
            s(&[("a", "2"), ("b", "x")], 4.0),
        ];
        let got = aggregate(VectorOp::Sum, None, Some(&by(&["a"], false)), v.clone());
        assert_eq!(got, [s(&[("a", "1")], 3.0), s(&[("a", "2")], 4.0)]);
        let got = aggregate(VectorOp::Count, None, Some(&by(&["a"], true)), v.clone());
        assert_eq!(got, [s(&[("b", "x")], 2.0), s(&[("b", "y")], 1.0)]);
        let got = aggregate(VectorOp::Stddev, None, None, v.clone());
        assert!((got[0].1 - 1.247219128924647).abs() < 1e-12);
        let got = aggregate(
            VectorOp::Topk,
            Some(1.0),
            Some(&by(&["b"], false)),
            v.clone(),
        );
        assert_eq!(
            got,
            [
                s(&[("a", "2"), ("b", "x")], 4.0),
                s(&[("a", "1"), ("b", "y")], 2.0)
            ]
        );
        let got = aggregate(VectorOp::SortDesc, None, None, v);
        assert_eq!(got[0].1, 4.0);
        assert_eq!(got[2].1, 1.0);
    }
}
