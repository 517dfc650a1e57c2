//! The evaluator: computes one expression node at one step from the data the fetch pass
//! loaded. A range query calls it once per step on the root; nothing here reads storage.
//! Range functions of range selectors are the exception that makes range queries fast: they
//! are computed for all their steps at once on first use (`allsteps`).

use crate::aggregate::eval_aggregate;
use crate::allsteps::{AllSteps, Grid};
use crate::annotations::Annotations;
use crate::binary::{self, BinOp};
use crate::error::{Error, TIMEOUT};
use crate::functions;
use crate::prepare::subquery_step;
use crate::selector::{
    duration_ms, pinned_time, reference_time, sample_at, window, Fetched, QueryTimes,
};
use crate::value::{Elem, StepValue, Window};
use model::{Labels, Sample, Series};
use promql_parser::parser::{Call, Expr, MatrixSelector, SubqueryExpr, VectorSelector};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

/// A subquery's inner results by inner step, so that the steps of a range query, whose
/// subquery windows overlap, compute each inner step once.
type SubqueryCache = HashMap<*const Expr, HashMap<i64, Vec<Elem>>>;

/// Evaluation state for one query: the fetched data, the query's time range, the steps the
/// node being evaluated runs at, results computed for all steps, and the annotations
/// gathered so far.
#[derive(Debug)]
pub(crate) struct Evaluator<'a> {
    data: &'a Fetched,
    times: QueryTimes,
    lookback: i64,
    /// The steps the current node is evaluated at: the query's, or inside a subquery its
    /// inner steps.
    grid: Grid,
    deadline: Instant,
    subqueries: SubqueryCache,
    /// Range calls computed for every step of their grid, by node.
    range_calls: HashMap<*const Call, AllSteps>,
    pub annotations: Annotations,
}

impl<'a> Evaluator<'a> {
    /// An evaluator for a query over `times` whose root is evaluated at the steps of `grid`,
    /// giving up at `deadline`.
    pub fn new(
        data: &'a Fetched,
        times: QueryTimes,
        lookback: i64,
        grid: Grid,
        deadline: Instant,
    ) -> Self {
        Evaluator {
            data,
            times,
            lookback,
            grid,
            deadline,
            subqueries: SubqueryCache::new(),
            range_calls: HashMap::new(),
            annotations: Annotations::default(),
        }
    }

    /// Fails once the query's deadline has passed; called inside long loops (series of a
    /// range function, steps of a subquery) so a query cannot outrun its timeout by much.
    pub fn check_deadline(&self) -> Result<(), Error> {
        if Instant::now() >= self.deadline {
            return Err(Error::Timeout(TIMEOUT.to_string()));
        }
        Ok(())
    }

    /// Whether the current node is evaluated at more than one step.
    pub fn in_range(&self) -> bool {
        self.grid.count > 1
    }

    /// The value at `ts` of the range call `call`, read from its result for all steps
    /// (computed on first use). `None` when the call is not evaluated that way: it is not a
    /// range function of a range selector, or `ts` is not a step of the current grid.
    pub fn all_steps_at(&mut self, call: &'a Call, ts: i64) -> Result<Option<Vec<Elem>>, Error> {
        let key = std::ptr::from_ref(call);
        if let Some(all) = self.range_calls.get(&key) {
            return match all.grid.index(ts) {
                Some(i) => all.at(i).map(Some),
                None => Ok(None),
            };
        }
        // A single step gains nothing from the sliding pass.
        let grid = self.grid;
        let Some(i) = grid.index(ts).filter(|_| grid.count > 1) else {
            return Ok(None);
        };
        let Some(all) = functions::all_steps(self, call, grid)? else {
            return Ok(None);
        };
        let out = all.at(i)?;
        self.range_calls.insert(key, all);
        Ok(Some(out))
    }

    /// The whole result of a range query whose root is a range call that can be computed for
    /// all steps at once, without evaluating step by step; `None` for any other root.
    pub fn root_matrix(&mut self, expr: &'a Expr) -> Result<Option<Vec<Series>>, Error> {
        let Expr::Call(call) = unparen(expr) else {
            return Ok(None);
        };
        let grid = self.grid;
        let Some(all) = functions::all_steps(self, call, grid)? else {
            return Ok(None);
        };
        // `into_matrix` refuses when output series collide; the step-by-step path then
        // finds the steps where that is an error, from the result kept here.
        let kept = std::ptr::from_ref(call);
        match all.into_matrix() {
            Ok(m) => Ok(Some(m)),
            Err(all) => {
                self.range_calls.insert(kept, all);
                Ok(None)
            }
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
            Expr::Aggregate(a) => eval_aggregate(self, a, ts),
            Expr::Binary(b) => {
                let op = binary::check(b)?;
                let lhs = self.eval(&b.lhs, ts)?;
                let rhs = self.eval(&b.rhs, ts)?;
                binary_values(op, lhs, rhs, b.modifier.as_ref())
            }
            Expr::Call(c) => functions::eval_call(self, c, ts),
            Expr::Subquery(sq) => Ok(StepValue::Matrix(self.subquery(sq, ts)?)),
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

    pub fn lookback(&self) -> i64 {
        self.lookback
    }

    /// The data fetched for `vs`.
    pub fn fetched(&self, vs: &VectorSelector) -> Result<&'a [model::Series], Error> {
        self.data.get(vs)
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
                    labels: Cow::Borrowed(&s.labels),
                    samples: Cow::Borrowed(samples),
                })
            })
            .collect())
    }
}

impl<'a> Evaluator<'a> {
    /// A subquery at `ts`: the inner expression evaluated at every multiple of the subquery's
    /// step inside `(t - range, t]`, where `t` is `ts` moved by `@` and `offset`. Aligning the
    /// inner steps to multiples of the step (not to `ts`) is Prometheus's rule, and it is what
    /// lets consecutive outer steps share inner results.
    pub fn subquery(&mut self, sq: &'a SubqueryExpr, ts: i64) -> Result<Vec<Window<'a>>, Error> {
        let step = subquery_step(sq)?;
        let end = pinned_time(sq.at.as_ref(), sq.offset.as_ref(), ts, self.times);
        let start = end.saturating_sub(duration_ms(sq.range));
        let first = start
            .div_euclid(step)
            .saturating_add(1)
            .saturating_mul(step);
        let key = std::ptr::from_ref(sq.expr.as_ref());
        let mut series: BTreeMap<Labels, Vec<Sample>> = BTreeMap::new();
        // The inner expression runs at the subquery's steps over the whole of the outer
        // grid; range calls inside compute all of those at once.
        let outer = self.grid;
        let inner = outer.subquery(sq, step, self.times);
        let mut t = first;
        while t <= end {
            let cached = self.subqueries.get(&key).and_then(|m| m.get(&t)).cloned();
            let elems = match cached {
                Some(v) => v,
                None => {
                    self.check_deadline()?;
                    self.grid = inner;
                    let v = self.eval_vector(&sq.expr, t);
                    self.grid = outer;
                    let v = v?;
                    self.subqueries.entry(key).or_default().insert(t, v.clone());
                    v
                }
            };
            for e in elems {
                series
                    .entry(e.labels)
                    .or_default()
                    .push(Sample { t, v: e.v });
            }
            t = t.saturating_add(step);
        }
        Ok(series
            .into_iter()
            .map(|(labels, samples)| Window {
                labels: Cow::Owned(labels),
                samples: Cow::Owned(samples),
            })
            .collect())
    }
}

fn unparen(e: &Expr) -> &Expr {
    match e {
        Expr::Paren(p) => unparen(&p.expr),
        other => other,
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
