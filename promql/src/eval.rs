//! The evaluator: computes one expression node at one step from the data the fetch pass
//! loaded. A range query calls it once per step on the root; nothing here reads storage.
//! The nodes that can be computed for all their steps at once (range functions of range
//! selectors, folding aggregations of those and of instant selectors, instant selectors at
//! the root) are the exception that makes range queries fast: they are computed that way on
//! first use (`allsteps`), and their steps are read from the result.

use crate::aggregate::{self, eval_aggregate};
use crate::allsteps::{AllSteps, Grid, Source, StepSeries};
use crate::annotations::Annotations;
use crate::binary::{self, BinOp};
use crate::error::Error;
use crate::functions;
use crate::limits::Stop;
use crate::prepare::subquery_step;
use crate::selector::{
    duration_ms, instant_steps, pinned_time, reference_time, sample_at, window, Fetched, QueryTimes,
};
use crate::value::{Elem, StepValue, Window};
use model::{Labels, Sample, Series};
use promql_parser::parser::{Expr, MatrixSelector, SubqueryExpr, VectorSelector};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};

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
    stop: Stop,
    subqueries: SubqueryCache,
    /// Nodes computed for every step of their grid, by node; `None` for a node that cannot
    /// be, so that it is not tried again at the next step.
    computed: HashMap<*const Expr, Option<AllSteps>>,
    /// Whether nodes may be computed for all steps at once; off only to check that path
    /// against the step-by-step one.
    all_steps: bool,
    /// How many nodes were computed for all steps at once.
    pub all_steps_nodes: usize,
    pub annotations: Annotations,
}

impl<'a> Evaluator<'a> {
    /// An evaluator for a query over `times` whose root is evaluated at the steps of `grid`,
    /// giving up when `stop` says so.
    pub fn new(
        data: &'a Fetched,
        times: QueryTimes,
        lookback: i64,
        grid: Grid,
        stop: Stop,
    ) -> Self {
        Evaluator {
            data,
            times,
            lookback,
            grid,
            stop,
            subqueries: SubqueryCache::new(),
            computed: HashMap::new(),
            all_steps: true,
            all_steps_nodes: 0,
            annotations: Annotations::default(),
        }
    }

    /// Evaluates every node step by step, as the reference the all-steps paths are checked
    /// against.
    pub fn step_by_step(mut self) -> Self {
        self.all_steps = false;
        self
    }

    /// Fails once the query was canceled or its deadline has passed; called inside long loops
    /// (series of a range function, steps of a subquery) so a query cannot outrun its timeout
    /// or its client by much.
    pub fn check_deadline(&self) -> Result<(), Error> {
        self.stop.check()
    }

    /// Whether the current node is evaluated at more than one step.
    pub fn in_range(&self) -> bool {
        self.grid.count > 1
    }

    /// The value at `ts` of `expr`, read from its result for all steps (computed on first
    /// use). `None` when the node is not evaluated that way: it cannot be, or `ts` is not a
    /// step of the current grid.
    fn steps_at(&mut self, expr: &'a Expr, ts: i64) -> Result<Option<Vec<Elem>>, Error> {
        let key = std::ptr::from_ref(expr);
        if let Some(computed) = self.computed.get(&key) {
            let Some(all) = computed else {
                return Ok(None);
            };
            return match all.grid.index(ts) {
                Some(i) => all.at(i).map(Some),
                None => Ok(None),
            };
        }
        // A single step gains nothing from the all-steps pass.
        let grid = self.grid;
        let Some(i) = grid.index(ts).filter(|_| grid.count > 1) else {
            return Ok(None);
        };
        let all = self.all_steps(expr, grid)?;
        let out = all.as_ref().map(|a| a.at(i)).transpose()?;
        self.computed.insert(key, all);
        Ok(out)
    }

    /// `expr` computed for every step of `grid` at once, if it is a node that can be.
    pub fn all_steps(&mut self, expr: &'a Expr, grid: Grid) -> Result<Option<AllSteps>, Error> {
        if !self.all_steps {
            return Ok(None);
        }
        let all = match expr {
            Expr::Paren(p) => return self.all_steps(&p.expr, grid),
            Expr::Call(c) => functions::all_steps(self, c, grid)?,
            Expr::Aggregate(a) => aggregate::all_steps(self, a, grid)?,
            Expr::VectorSelector(vs) => Some(self.selector_steps(vs, grid)?),
            _ => None,
        };
        self.all_steps_nodes += usize::from(all.is_some());
        Ok(all)
    }

    /// The instant vector `expr` as an aggregation folds it over all steps of `grid`, series
    /// by series; `None` when it cannot be read that way (it is then evaluated step by step,
    /// from the all-steps result kept here if there is one).
    pub fn series_source(
        &mut self,
        expr: &'a Expr,
        grid: Grid,
    ) -> Result<Option<Source<'a>>, Error> {
        if !self.all_steps {
            return Ok(None);
        }
        match expr {
            Expr::Paren(p) => self.series_source(&p.expr, grid),
            Expr::VectorSelector(vs) => Ok(Some(Source::Selector {
                series: self.data.get(vs)?,
                ends: self.selector_ends(vs, grid),
                lookback: self.lookback,
            })),
            _ => match self.all_steps(expr, grid)? {
                Some(all) if all.reads_in_step_order() => Ok(Some(Source::Computed(all))),
                all => {
                    self.computed.insert(std::ptr::from_ref(expr), all);
                    Ok(None)
                }
            },
        }
    }

    /// Each step's reference time for selector `vs`.
    fn selector_ends(&self, vs: &VectorSelector, grid: Grid) -> Vec<i64> {
        grid.times()
            .map(|t| reference_time(vs, t, self.times))
            .collect()
    }

    /// An instant selector at every step of `grid`.
    fn selector_steps(&self, vs: &'a VectorSelector, grid: Grid) -> Result<AllSteps, Error> {
        let ends = self.selector_ends(vs, grid);
        let mut out = Vec::new();
        for (i, s) in self.data.get(vs)?.iter().enumerate() {
            if i % DEADLINE_EVERY_SERIES == 0 {
                self.check_deadline()?;
            }
            let mut points = Vec::new();
            instant_steps(&s.samples, &ends, 0..grid.count, self.lookback, &mut points);
            if !points.is_empty() {
                out.push(StepSeries {
                    labels: s.labels.clone(),
                    points,
                });
            }
        }
        Ok(AllSteps::new(grid, out))
    }

    /// The whole result of a range query whose root can be computed for all steps at once,
    /// without evaluating step by step; `None` for any other root.
    pub fn root_matrix(&mut self, expr: &'a Expr) -> Result<Option<Vec<Series>>, Error> {
        let expr = unparen(expr);
        let key = std::ptr::from_ref(expr);
        let grid = self.grid;
        let Some(all) = self.all_steps(expr, grid)? else {
            self.computed.insert(key, None);
            return Ok(None);
        };
        // `into_matrix` refuses when output series collide; the step-by-step path then
        // finds the steps where that is an error, from the result kept here.
        match all.into_matrix() {
            Ok(m) => Ok(Some(m)),
            Err(all) => {
                self.computed.insert(key, Some(all));
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
            Expr::Aggregate(a) => match self.steps_at(expr, ts)? {
                Some(v) => Ok(StepValue::Vector(v)),
                None => eval_aggregate(self, a, ts),
            },
            Expr::Binary(b) => {
                let op = binary::check(b)?;
                let lhs = self.eval(&b.lhs, ts)?;
                let rhs = self.eval(&b.rhs, ts)?;
                binary_values(op, lhs, rhs, b.modifier.as_ref())
            }
            Expr::Call(c) => match self.steps_at(expr, ts)? {
                Some(v) => Ok(StepValue::Vector(v)),
                None => functions::eval_call(self, c, ts),
            },
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

/// How many series a node computed for all steps reads between two looks at the deadline.
const DEADLINE_EVERY_SERIES: usize = 256;

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
