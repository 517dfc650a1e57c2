//! Metric query evaluation, independent of storage: the store turns each range aggregation's
//! log lines into a [`SeriesSet`] with an [`Extractor`], then [`eval_instant`] or
//! [`eval_range`] computes the result step by step from those samples.
//!
//! Range windows are left-open and right-closed, `(t - range - offset, t - offset]`.

mod binary;
mod extract;
mod range;
mod vector;

pub use extract::{Extractor, SeriesSet};

use crate::logql::{MetricExpr, RangeOp};
use model::{Labels, MatchOp};
use std::collections::{BTreeMap, HashMap};

/// A failure while evaluating (a pipeline error, a matching conflict, a limit).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EvalError(pub String);

/// An intermediate or final value at one instant.
#[derive(Debug, Clone)]
pub enum Value {
    Scalar(f64),
    Vector(Vec<(Labels, f64)>),
}

/// One series of a range query result; timestamps in nanoseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSeries {
    pub labels: Labels,
    pub points: Vec<(i64, f64)>,
}

/// The samples of every range aggregation of a query, by range id.
pub type Inputs = HashMap<usize, SeriesSet>;

/// The value of `expr` at `t_ns`.
pub fn eval_instant(expr: &MetricExpr, inputs: &Inputs, t_ns: i64) -> Result<Value, EvalError> {
    eval(expr, inputs, t_ns)
}

/// The value of `expr` at every step from `start_ns` to `end_ns` inclusive, as series. A
/// scalar expression becomes one series without labels, as Prometheus and Loki answer.
pub fn eval_range(
    expr: &MetricExpr,
    inputs: &Inputs,
    start_ns: i64,
    end_ns: i64,
    step_ns: i64,
) -> Result<Vec<MetricSeries>, EvalError> {
    if step_ns <= 0 {
        return Err(EvalError("zero or negative query resolution step widths are not accepted. Try a positive integer".into()));
    }
    let mut out: BTreeMap<Labels, Vec<(i64, f64)>> = BTreeMap::new();
    let mut t = start_ns;
    while t <= end_ns {
        match eval(expr, inputs, t)? {
            Value::Scalar(v) => out.entry(Labels::empty()).or_default().push((t, v)),
            Value::Vector(samples) => {
                for (l, v) in samples {
                    out.entry(l).or_default().push((t, v));
                }
            }
        }
        t = match t.checked_add(step_ns) {
            Some(n) => n,
            None => break,
        };
    }
    Ok(out
        .into_iter()
        .map(|(labels, points)| MetricSeries { labels, points })
        .collect())
}

fn eval(expr: &MetricExpr, inputs: &Inputs, t: i64) -> Result<Value, EvalError> {
    Ok(match expr {
        MetricExpr::Literal(v) => Value::Scalar(*v),
        MetricExpr::VectorLiteral(v) => Value::Vector(vec![(Labels::empty(), *v)]),
        MetricExpr::Range {
            id,
            op,
            param,
            range,
            ..
        } => {
            let empty = SeriesSet::default();
            let set = inputs.get(id).unwrap_or(&empty);
            let end = t - range.offset_ns;
            let start = end - range.range_ns;
            let mut out = Vec::new();
            let mut any = false;
            for (labels, points) in &set.series {
                let lo = points.partition_point(|p| p.0 <= start);
                let hi = points.partition_point(|p| p.0 <= end);
                let window = &points[lo..hi];
                any |= !window.is_empty();
                if let Some(v) = range::aggregate(*op, *param, window, range.range_ns, end) {
                    out.push((labels.clone(), v));
                }
            }
            if *op == RangeOp::AbsentOverTime {
                out.clear();
                if !any {
                    out.push((absent_labels(&range.query.matchers), 1.0));
                }
            }
            Value::Vector(out)
        }
        MetricExpr::Vector {
            op,
            param,
            grouping,
            expr,
        } => match eval(expr, inputs, t)? {
            Value::Vector(v) => Value::Vector(vector::aggregate(*op, *param, grouping.as_ref(), v)),
            Value::Scalar(_) => {
                return Err(EvalError(
                    "vector aggregations need a vector argument, not a scalar".into(),
                ))
            }
        },
        MetricExpr::LabelReplace { expr, replace } => match eval(expr, inputs, t)? {
            Value::Vector(v) => Value::Vector(
                v.into_iter()
                    .map(|(labels, value)| (replace.apply(&labels), value))
                    .collect(),
            ),
            Value::Scalar(_) => {
                return Err(EvalError(
                    "label_replace needs a vector argument, not a scalar".into(),
                ))
            }
        },
        MetricExpr::Binary {
            op,
            bool_modifier,
            matching,
            lhs,
            rhs,
        } => {
            let l = eval(lhs, inputs, t)?;
            let r = eval(rhs, inputs, t)?;
            binary::binary(*op, *bool_modifier, matching, l, r)?
        }
    })
}

/// `absent_over_time`'s labels: the selector's equality matchers, as Prometheus's `absent`.
fn absent_labels(matchers: &[model::Matcher]) -> Labels {
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    for m in matchers.iter().filter(|m| m.op == MatchOp::Equal) {
        if pairs.iter().any(|(n, _)| *n == m.name) {
            // The same name twice: the label is ambiguous and left out.
            pairs.retain(|(n, _)| *n != m.name);
            continue;
        }
        pairs.push((&m.name, &m.value));
    }
    Labels::from_pairs(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logql::{parse_expr, Expr};
    use model::{LogEntry, LogStream};

    const S: i64 = 1_000_000_000;

    fn run_range(
        query: &str,
        streams: &[LogStream],
        start: i64,
        end: i64,
        step: i64,
    ) -> Result<Vec<MetricSeries>, EvalError> {
        let Ok(Expr::Metric(m)) = parse_expr(query) else {
            panic!("{query}")
        };
        let mut inputs = Inputs::new();
        let mut err = None;
        m.for_each_range(&mut |id, op, range| {
            let grouping = None;
            let mut ex = Extractor::new(op, range, grouping, 1_000_000);
            for s in streams {
                if range
                    .query
                    .matchers
                    .iter()
                    .all(|mm| mm.matches_labels(&s.labels))
                {
                    for e in &s.entries {
                        if let Err(e) = ex.push(&s.labels, e) {
                            err = Some(e);
                        }
                    }
                }
            }
            inputs.insert(id, ex.finish());
        });
        if let Some(e) = err {
            return Err(e);
        }
        eval_range(&m, &inputs, start, end, step)
    }

    fn stream(app: &str, lines: &[(i64, &str)]) -> LogStream {
        LogStream {
            labels: Labels::from_pairs([("app", app)]),
            entries: lines
                .iter()
                .map(|&(t, l)| LogEntry {
                    ts_ns: t * S,
                    line: l.into(),
                    metadata: vec![],
                })
                .collect(),
        }
    }

    #[test]
    fn windows_are_left_open_right_closed() {
        let s = [stream("a", &[(20, "x"), (40, "x"), (60, "x"), (80, "x")])];
        let r = run_range(
            r#"count_over_time({app="a"}[1m])"#,
            &s,
            60 * S,
            80 * S,
            20 * S,
        )
        .unwrap();
        assert_eq!(r[0].points, [(60 * S, 3.0), (80 * S, 3.0)]);
        let r = run_range(
            r#"count_over_time({app="a"}[1m] offset 20s)"#,
            &s,
            80 * S,
            80 * S,
            S,
        )
        .unwrap();
        assert_eq!(r[0].points, [(80 * S, 3.0)]);
    }

    #[test]
    fn pipeline_errors_fail_the_query_unless_filtered() {
        let s = [stream("a", &[(10, "{\"x\":1}"), (20, "not json")])];
        let e = run_range(
            r#"count_over_time({app="a"} | json [1m])"#,
            &s,
            30 * S,
            30 * S,
            S,
        )
        .unwrap_err();
        assert!(e.0.starts_with("pipeline error: 'JSONParserErr'"), "{e}");
        let r = run_range(
            r#"count_over_time({app="a"} | json | __error__="" [1m])"#,
            &s,
            30 * S,
            30 * S,
            S,
        )
        .unwrap();
        assert_eq!(r[0].points, [(30 * S, 1.0)]);
        assert_eq!(r[0].labels, Labels::from_pairs([("app", "a"), ("x", "1")]));
    }

    #[test]
    fn unwrap_removes_the_label_and_absent_fills_gaps() {
        let s = [stream("a", &[(10, "t=2s"), (20, "t=500ms")])];
        let r = run_range(
            r#"sum_over_time({app="a"} | logfmt | unwrap duration(t) [1m])"#,
            &s,
            30 * S,
            30 * S,
            S,
        )
        .unwrap();
        assert_eq!(r[0].labels, Labels::from_pairs([("app", "a")]));
        assert_eq!(r[0].points, [(30 * S, 2.5)]);
        let r = run_range(
            r#"absent_over_time({app="a"}[10s])"#,
            &s,
            10 * S,
            40 * S,
            10 * S,
        )
        .unwrap();
        assert_eq!(r[0].points, [(30 * S, 1.0), (40 * S, 1.0)]);
    }

    #[test]
    fn label_replace_rewrites_matching_series_only() {
        let s = [
            stream("api-7", &[(10, "x"), (20, "x")]),
            stream("db", &[(10, "x")]),
        ];
        let labels = |q: &str| -> Vec<(Labels, f64)> {
            run_range(q, &s, 30 * S, 30 * S, S)
                .unwrap()
                .into_iter()
                .map(|m| (m.labels, m.points[0].1))
                .collect()
        };
        let got = labels(
            r#"label_replace(count_over_time({app=~".+"}[1m]), "svc", "$1-svc", "app", "api-(.*)")"#,
        );
        assert_eq!(
            got,
            [
                (
                    Labels::from_pairs([("app", "api-7"), ("svc", "7-svc")]),
                    2.0
                ),
                (Labels::from_pairs([("app", "db")]), 1.0),
            ]
        );
        // An empty result removes the destination; a named group expands by name; an absent
        // source label is the empty value.
        let got =
            labels(r#"label_replace(count_over_time({app="db"}[1m]), "app", "", "app", "db")"#);
        assert_eq!(got, [(Labels::empty(), 1.0)]);
        let got = labels(
            r#"label_replace(count_over_time({app="db"}[1m]), "n", "${x}!", "missing", "(?P<x>)")"#,
        );
        assert_eq!(
            got,
            [(Labels::from_pairs([("app", "db"), ("n", "!")]), 1.0)]
        );
    }
}
