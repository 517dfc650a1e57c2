//! The evaluator: computes one expression node at one step from the data the fetch pass
//! loaded. A range query calls it once per step on the root; nothing here reads storage.

use crate::aggregate::{aggregate, AggOp};
use crate::annotations::Annotations;
use crate::binary::{self, BinOp};
use crate::call;
use crate::error::Error;
use crate::selector::{duration_ms, reference_time, sample_at, window, Fetched, QueryTimes};
use crate::value::{Elem, StepValue, Window};
use promql_parser::parser::{Expr, MatrixSelector, VectorSelector};
use std::collections::HashSet;

/// Evaluation state for one query: the fetched data, the query's time range, and the
/// annotations gathered so far.
#[derive(Debug)]
pub(crate) struct Evaluator<'a> {
    data: &'a Fetched,
    times: QueryTimes,
    lookback: i64,
    pub annotations: Annotations,
}

impl<'a> Evaluator<'a> {
    pub fn new(data: &'a Fetched, times: QueryTimes, lookback: i64) -> Self {
        Evaluator {
            data,
            times,
            lookback,
            annotations: Annotations::default(),
        }
    }

    pub fn times(&self) -> QueryTimes {
        self.times
    }

    /// The value of `expr` at step `ts` (ms).
    pub fn eval(&mut self, expr: &'a Expr, ts: i64) -> Result<StepValue<'a>, Error> {
        match expr {
            Expr::NumberLiteral(n) => Ok(StepValue::Scalar(n.val)),
            Expr::StringLiteral(s) => Ok(StepValue::String(s.val.clone())),
            Expr::Paren(p) => self.eval(&p.expr, ts),
            Expr::Unary(u) => negate(self.eval(&u.expr, ts)?),
            Expr::VectorSelector(vs) => Ok(StepValue::Vector(self.vector_selector(vs, ts)?)),
            Expr::MatrixSelector(ms) => Ok(StepValue::Matrix(self.matrix_selector(ms, ts)?)),
            Expr::Aggregate(a) => {
                let op = AggOp::from_token(a.op)?;
                let input = self.eval_vector(&a.expr, ts)?;
                Ok(StepValue::Vector(aggregate(op, a.modifier.as_ref(), input)))
            }
            Expr::Binary(b) => {
                let op = binary::check(b)?;
                let lhs = self.eval(&b.lhs, ts)?;
                let rhs = self.eval(&b.rhs, ts)?;
                binary_values(op, lhs, rhs, b.modifier.as_ref())
            }
            Expr::Call(c) => call::eval_call(self, c, ts),
            Expr::Subquery(_) => Err(Error::unsupported("subqueries")),
            Expr::Extension(_) => Err(Error::unsupported("extension expressions")),
        }
    }

    /// Evaluates an expression that must give an instant vector.
    pub fn eval_vector(&mut self, expr: &'a Expr, ts: i64) -> Result<Vec<Elem>, Error> {
        match self.eval(expr, ts)? {
            StepValue::Vector(v) => Ok(v),
            other => Err(Error::exec(format!(
                "expected an instant vector, got {}",
                other.type_name()
            ))),
        }
    }

    /// An instant selector at `ts`: each series' latest sample within the lookback window.
    fn vector_selector(&self, vs: &'a VectorSelector, ts: i64) -> Result<Vec<Elem>, Error> {
        let t = reference_time(vs, ts, self.times);
        let series = self.data.get(vs)?;
        Ok(series
            .iter()
            .filter_map(|s| {
                sample_at(&s.samples, t, self.lookback).map(|v| Elem {
                    labels: s.labels.clone(),
                    v,
                })
            })
            .collect())
    }

    /// A range selector at `ts`: each series' samples in `(t - range, t]`; series with none
    /// are left out.
    pub fn matrix_selector(
        &self,
        ms: &'a MatrixSelector,
        ts: i64,
    ) -> Result<Vec<Window<'a>>, Error> {
        let t = reference_time(&ms.vs, ts, self.times);
        let range = duration_ms(ms.range);
        let series = self.data.get(&ms.vs)?;
        Ok(series
            .iter()
            .filter_map(|s| {
                let samples = window(&s.samples, t, range);
                (!samples.is_empty()).then_some(Window {
                    labels: &s.labels,
                    samples,
                })
            })
            .collect())
    }
}

/// Unary minus. On a vector it drops the metric name, as arithmetic does.
fn negate(v: StepValue<'_>) -> Result<StepValue<'_>, Error> {
    match v {
        StepValue::Scalar(x) => Ok(StepValue::Scalar(-x)),
        StepValue::Vector(v) => {
            let out: Vec<Elem> = v
                .into_iter()
                .map(|e| Elem {
                    labels: e.labels.without_metric_name(),
                    v: -e.v,
                })
                .collect();
            check_unique_labels(&out)?;
            Ok(StepValue::Vector(out))
        }
        other => Err(Error::exec(format!(
            "unary expression only allowed on expressions of type scalar or instant vector, \
             got {}",
            other.type_name()
        ))),
    }
}

fn binary_values<'a>(
    op: BinOp,
    lhs: StepValue<'a>,
    rhs: StepValue<'a>,
    modifier: Option<&promql_parser::parser::BinModifier>,
) -> Result<StepValue<'a>, Error> {
    let return_bool = modifier.is_some_and(|m| m.return_bool);
    let out = match (lhs, rhs) {
        (StepValue::Vector(l), StepValue::Vector(r)) => binary::vector_vector(op, l, r, modifier)?,
        (StepValue::Scalar(_), StepValue::Vector(_))
        | (StepValue::Vector(_), StepValue::Scalar(_))
            if op.is_set() =>
        {
            return Err(Error::exec(
                "set operators are not allowed between a scalar and a vector",
            ));
        }
        (StepValue::Scalar(l), StepValue::Scalar(r)) => {
            return Ok(StepValue::Scalar(binary::scalar_scalar(op, l, r)));
        }
        (StepValue::Vector(v), StepValue::Scalar(s)) => {
            binary::vector_scalar(op, v, s, false, return_bool)
        }
        (StepValue::Scalar(s), StepValue::Vector(v)) => {
            binary::vector_scalar(op, v, s, true, return_bool)
        }
        (l, r) => {
            return Err(Error::exec(format!(
                "binary expression must contain only scalar and instant vector types, got {} \
                 and {}",
                l.type_name(),
                r.type_name()
            )))
        }
    };
    check_unique_labels(&out)?;
    Ok(StepValue::Vector(out))
}

/// Dropping the metric name can make two series one: `rate({__name__=~"a_total|b_total"}[5m])`
/// over `a_total{x="1"}` and `b_total{x="1"}`. Prometheus refuses such a vector rather than
/// return two series with the same identity.
pub(crate) fn check_unique_labels(v: &[Elem]) -> Result<(), Error> {
    if v.len() < 2 {
        return Ok(());
    }
    let mut seen = HashSet::with_capacity(v.len());
    if v.iter().all(|e| seen.insert(&e.labels)) {
        Ok(())
    } else {
        Err(Error::exec(
            "vector cannot contain metrics with the same labelset",
        ))
    }
}
