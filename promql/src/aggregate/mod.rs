//! Aggregation operators over one step's instant vector, with `by` / `without` grouping:
//! the folding ones (`sum`, `avg`, `min`, `max`, `count`, `group`, `stddev`, `stdvar`) here,
//! and over every step of a range query at once in [`fold`]; `quantile` and `count_values`
//! in [`values`], and the selecting ones (`topk`, `bottomk`, `limitk`, `limit_ratio`) in
//! [`select`], with `limit_ratio`'s label hash in [`labelhash`].

mod fold;
mod select;
mod values;

use crate::allsteps::{AllSteps, Grid};
use crate::annotations::go_float;
use crate::error::Error;
use crate::eval::Evaluator;
use crate::summation::{KahanSum, Mean};
use crate::value::{Elem, StepValue};
use model::{Labels, METRIC_NAME};
use promql_parser::parser::token::{self, TokenType};
use promql_parser::parser::{AggregateExpr, Expr, LabelModifier};
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
    Stddev,
    Stdvar,
    Topk,
    Bottomk,
    Quantile,
    CountValues,
    Limitk,
    LimitRatio,
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
            token::T_STDDEV => AggOp::Stddev,
            token::T_STDVAR => AggOp::Stdvar,
            token::T_TOPK => AggOp::Topk,
            token::T_BOTTOMK => AggOp::Bottomk,
            token::T_QUANTILE => AggOp::Quantile,
            token::T_COUNT_VALUES => AggOp::CountValues,
            token::T_LIMITK => AggOp::Limitk,
            token::T_LIMIT_RATIO => AggOp::LimitRatio,
            _ => return Err(Error::unsupported(format_args!("aggregation \"{op}\""))),
        })
    }
}

/// Whether the operator returns its elements in a deliberate order the engine must keep.
pub(crate) fn orders_result(op: TokenType) -> bool {
    matches!(op.id(), token::T_TOPK | token::T_BOTTOMK)
}

/// Evaluates an aggregation at step `ts`.
pub(crate) fn eval_aggregate<'a>(
    ev: &mut Evaluator<'a>,
    a: &'a AggregateExpr,
    ts: i64,
) -> Result<StepValue<'a>, Error> {
    let op = AggOp::from_token(a.op)?;
    let modifier = a.modifier.as_ref();
    let out = match op {
        AggOp::LimitRatio => {
            let ratio = scalar_param(ev, a, ts)?;
            if ratio.is_nan() {
                return Err(Error::exec("Ratio value is NaN"));
            }
            let capped = ratio.clamp(-1.0, 1.0);
            if capped != ratio {
                ev.annotations.warning(format!(
                    "PromQL warning: ratio value should be between -1 and 1, got {}, capping \
                     to {}",
                    go_float(ratio),
                    go_float(capped)
                ));
            }
            let input = ev.eval_vector(&a.expr, ts)?;
            select::limit_ratio(capped, input)
        }
        AggOp::Topk | AggOp::Bottomk | AggOp::Limitk => {
            let param = scalar_param(ev, a, ts)?;
            let input = ev.eval_vector(&a.expr, ts)?;
            select::select(op, param, modifier, input)?
        }
        AggOp::Quantile => {
            let q = scalar_param(ev, a, ts)?;
            let input = ev.eval_vector(&a.expr, ts)?;
            values::quantile(ev, q, modifier, input)
        }
        AggOp::CountValues => {
            let label = match a.param.as_deref().map(unparen) {
                Some(Expr::StringLiteral(s)) => s.val.clone(),
                _ => return Err(Error::exec("count_values needs a string parameter")),
            };
            let input = ev.eval_vector(&a.expr, ts)?;
            values::count_values(&label, modifier, input)?
        }
        _ => aggregate(op, modifier, ev.eval_vector(&a.expr, ts)?),
    };
    Ok(StepValue::Vector(out))
}

/// The aggregation `a` at every step of `grid` at once: the folding operators, and `topk`,
/// `bottomk` and `limitk` with a constant `k`. `None` for the others, or when the input
/// cannot be read series by series in step order; those are evaluated step by step.
pub(crate) fn all_steps<'a>(
    ev: &mut Evaluator<'a>,
    a: &'a AggregateExpr,
    grid: Grid,
) -> Result<Option<AllSteps>, Error> {
    let op = AggOp::from_token(a.op)?;
    let k = match op {
        AggOp::Topk | AggOp::Bottomk | AggOp::Limitk => {
            // A NaN `k` is an error at every step, which the step-by-step path reports.
            match a.param.as_deref().map(unparen) {
                Some(Expr::NumberLiteral(n)) => match select::limit(n.val) {
                    Ok(k) => Some(k),
                    Err(_) => return Ok(None),
                },
                _ => return Ok(None),
            }
        }
        _ if fold::folds(op) => None,
        _ => return Ok(None),
    };
    let Some(source) = ev.series_source(&a.expr, grid)? else {
        return Ok(None);
    };
    let modifier = a.modifier.as_ref();
    Ok(Some(match k {
        Some(k) => select::select_steps(ev, op, k, modifier, &source, grid)?,
        None => fold::fold_steps(ev, op, modifier, &source, grid)?,
    }))
}

fn unparen(e: &Expr) -> &Expr {
    match e {
        Expr::Paren(p) => unparen(&p.expr),
        other => other,
    }
}

fn scalar_param<'a>(ev: &mut Evaluator<'a>, a: &'a AggregateExpr, ts: i64) -> Result<f64, Error> {
    let Some(p) = a.param.as_deref() else {
        return Err(Error::exec(format!("{} needs a parameter", a.op)));
    };
    match ev.eval(p, ts)? {
        StepValue::Scalar(v) => Ok(v),
        other => Err(Error::exec(format!(
            "expected a scalar parameter for {}, got {}",
            a.op,
            other.type_name()
        ))),
    }
}

/// One group's running state.
enum Acc {
    Sum(KahanSum),
    Avg(Mean),
    /// Min or max so far; NaN loses to any number, as in Prometheus.
    Extreme(f64),
    Count(f64),
    /// Welford's running mean and sum of squared deviations, for `stddev`/`stdvar`.
    Spread {
        count: f64,
        mean: f64,
        m2: f64,
    },
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
            // An infinite or NaN input makes the spread NaN, as in Prometheus.
            AggOp::Stddev | AggOp::Stdvar => Acc::Spread {
                count: 1.0,
                mean: first,
                m2: if first.is_finite() { 0.0 } else { f64::NAN },
            },
            _ => Acc::Count(1.0),
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
            Acc::Spread { count, m2, .. } if !v.is_finite() => {
                *count += 1.0;
                *m2 = f64::NAN;
            }
            Acc::Spread { count, mean, m2 } => {
                *count += 1.0;
                let delta = v - *mean;
                *mean += delta / *count;
                *m2 += delta * (v - *mean);
            }
        }
    }

    fn value(&self, op: AggOp) -> f64 {
        match self {
            Acc::Sum(s) => s.value(),
            Acc::Avg(m) => m.value().unwrap_or(f64::NAN),
            Acc::Extreme(v) => *v,
            Acc::Count(_) if op == AggOp::Group => 1.0,
            Acc::Count(c) => *c,
            Acc::Spread { count, m2, .. } if op == AggOp::Stddev => (m2 / count).sqrt(),
            Acc::Spread { count, m2, .. } => m2 / count,
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

pub(crate) fn group_labels(modifier: Option<&LabelModifier>, labels: &Labels) -> Labels {
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
        let err = AggOp::from_token(TokenType::new(token::T_ADD)).unwrap_err();
        assert!(err.to_string().contains("aggregation"), "{err}");
    }
}
