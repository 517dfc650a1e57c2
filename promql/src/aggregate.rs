//! Aggregation operators (`sum`, `avg`, `min`, `max`, `count`, `group`) over one step's
//! instant vector, with `by` / `without` grouping.

use crate::error::Error;
use crate::summation::{KahanSum, Mean};
use crate::value::Elem;
use model::{Labels, METRIC_NAME};
use promql_parser::parser::token::{self, TokenType};
use promql_parser::parser::LabelModifier;
use std::collections::HashMap;

/// The aggregation operators this engine evaluates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AggOp {
    Sum,
    Avg,
    Min,
    Max,
    Count,
    Group,
}

impl AggOp {
    /// The operator for a parsed token, or an error naming an operator not supported yet.
    pub fn from_token(op: TokenType) -> Result<AggOp, Error> {
        Ok(match op.id() {
            token::T_SUM => AggOp::Sum,
            token::T_AVG => AggOp::Avg,
            token::T_MIN => AggOp::Min,
            token::T_MAX => AggOp::Max,
            token::T_COUNT => AggOp::Count,
            token::T_GROUP => AggOp::Group,
            _ => return Err(Error::unsupported(format_args!("aggregation \"{op}\""))),
        })
    }
}

/// One group's running state.
enum Acc {
    Sum(KahanSum),
    Avg(Mean),
    /// Min or max so far; NaN loses to any number, as in Prometheus.
    Extreme(f64),
    Count(f64),
}

impl Acc {
    fn new(op: AggOp, first: f64) -> Acc {
        match op {
            AggOp::Sum => {
                let mut s = KahanSum::default();
                s.add(first);
                Acc::Sum(s)
            }
            AggOp::Avg => {
                let mut m = Mean::default();
                m.add(first);
                Acc::Avg(m)
            }
            AggOp::Min | AggOp::Max => Acc::Extreme(first),
            AggOp::Count | AggOp::Group => Acc::Count(1.0),
        }
    }

    fn add(&mut self, op: AggOp, v: f64) {
        match self {
            Acc::Sum(s) => s.add(v),
            Acc::Avg(m) => m.add(v),
            Acc::Extreme(cur) => {
                let better = match op {
                    AggOp::Min => v < *cur,
                    _ => v > *cur,
                };
                if better || cur.is_nan() {
                    *cur = v;
                }
            }
            Acc::Count(c) => *c += 1.0,
        }
    }

    fn value(&self, op: AggOp) -> f64 {
        match self {
            Acc::Sum(s) => s.value(),
            Acc::Avg(m) => m.value().unwrap_or(f64::NAN),
            Acc::Extreme(v) => *v,
            Acc::Count(_) if op == AggOp::Group => 1.0,
            Acc::Count(c) => *c,
        }
    }
}

/// Aggregates one step's vector. Output labels follow Prometheus: `by` keeps only the listed
/// labels, `without` drops the listed labels and the metric name, no clause keeps none. Groups
/// come out in the order their first element was seen.
pub(crate) fn aggregate(
    op: AggOp,
    modifier: Option<&LabelModifier>,
    input: Vec<Elem>,
) -> Vec<Elem> {
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut groups: Vec<(Labels, Acc)> = Vec::new();
    for e in input {
        let key = group_labels(modifier, &e.labels);
        match index.get(&key) {
            Some(&i) => groups[i].1.add(op, e.v),
            None => {
                index.insert(key.clone(), groups.len());
                groups.push((key, Acc::new(op, e.v)));
            }
        }
    }
    groups
        .into_iter()
        .map(|(labels, acc)| Elem {
            v: acc.value(op),
            labels,
        })
        .collect()
}

fn group_labels(modifier: Option<&LabelModifier>, labels: &Labels) -> Labels {
    match modifier {
        None => Labels::empty(),
        Some(LabelModifier::Include(names)) => {
            let names: Vec<&str> = names.labels.iter().map(String::as_str).collect();
            labels.only(&names)
        }
        Some(LabelModifier::Exclude(names)) => {
            let mut names: Vec<&str> = names.labels.iter().map(String::as_str).collect();
            names.push(METRIC_NAME);
            labels.without(&names)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elem(pairs: &[(&str, &str)], v: f64) -> Elem {
        Elem {
            labels: Labels::from_pairs(pairs.iter().copied()),
            v,
        }
    }

    fn input() -> Vec<Elem> {
        vec![
            elem(&[("__name__", "m"), ("job", "a"), ("inst", "1")], 1.0),
            elem(&[("__name__", "m"), ("job", "a"), ("inst", "2")], 4.0),
            elem(&[("__name__", "m"), ("job", "b"), ("inst", "1")], f64::NAN),
            elem(&[("__name__", "m"), ("job", "b"), ("inst", "2")], 2.0),
        ]
    }

    fn render(v: &[Elem]) -> Vec<String> {
        v.iter().map(|e| format!("{} {}", e.labels, e.v)).collect()
    }

    #[test]
    fn by_keeps_only_listed_labels() {
        let by = LabelModifier::include(vec!["job"]);
        assert_eq!(
            render(&aggregate(AggOp::Max, Some(&by), input())),
            [r#"{job="a"} 4"#, r#"{job="b"} 2"#]
        );
        assert_eq!(
            render(&aggregate(AggOp::Min, Some(&by), input())),
            [r#"{job="a"} 1"#, r#"{job="b"} 2"#]
        );
    }

    #[test]
    fn without_drops_listed_labels_and_name() {
        let without = LabelModifier::exclude(vec!["job"]);
        assert_eq!(
            render(&aggregate(AggOp::Count, Some(&without), input())),
            [r#"{inst="1"} 2"#, r#"{inst="2"} 2"#]
        );
        assert_eq!(
            render(&aggregate(AggOp::Avg, Some(&without), input())),
            [r#"{inst="1"} NaN"#, r#"{inst="2"} 3"#]
        );
    }

    #[test]
    fn no_clause_aggregates_everything() {
        let finite: Vec<Elem> = input().into_iter().filter(|e| !e.v.is_nan()).collect();
        assert_eq!(render(&aggregate(AggOp::Sum, None, finite)), ["{} 7"]);
        assert_eq!(render(&aggregate(AggOp::Group, None, input())), ["{} 1"]);
        assert!(aggregate(AggOp::Sum, None, Vec::new()).is_empty());
    }

    #[test]
    fn unsupported_operator_is_named() {
        let err = AggOp::from_token(TokenType::new(token::T_TOPK)).unwrap_err();
        assert!(err.to_string().contains("topk"), "{err}");
    }
}
