//! The entry point: [`Engine`] runs instant and range queries with [`EngineOptions`], and
//! shapes the evaluator's per-step values into a [`QueryResult`].

use crate::allsteps::Grid;
use crate::error::Error;
use crate::eval::Evaluator;
use crate::limits::{Limits, Stop};
use crate::prepare::prepare;
use crate::selector::{duration_ms, QueryTimes};
use crate::value::{QueryResult, StepValue, Value, VectorElement};
use model::{Labels, Querier, Sample, Series};
use promql_parser::parser::{self, value::ValueType, Expr};
use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Default for [`EngineOptions::lookback_delta`], as Prometheus's `--query.lookback-delta`.
pub const DEFAULT_LOOKBACK_DELTA: Duration = Duration::from_secs(5 * 60);
/// Default for [`EngineOptions::max_samples`], as Prometheus's `--query.max-samples`.
pub const DEFAULT_MAX_SAMPLES: usize = 50_000_000;
/// Default for [`EngineOptions::timeout`], as Prometheus's `--query.timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2 * 60);
/// The longest a range query may be, in steps, as Prometheus's HTTP API allows: `(end -
/// start) / step` may not exceed it.
pub const MAX_POINTS_PER_SERIES: i64 = 11_000;

/// Limits and defaults that apply to every query of an [`Engine`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineOptions {
    /// How far back an instant selector looks for a series' latest sample. Default
    /// [`DEFAULT_LOOKBACK_DELTA`] (5m); zero also means the default, as in Prometheus.
    pub lookback_delta: Duration,
    /// The most samples one query may load and produce. Default [`DEFAULT_MAX_SAMPLES`].
    pub max_samples: usize,
    /// How long one query may run. Default [`DEFAULT_TIMEOUT`] (2m).
    pub timeout: Duration,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            lookback_delta: DEFAULT_LOOKBACK_DELTA,
            max_samples: DEFAULT_MAX_SAMPLES,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// Evaluates PromQL over a [`Querier`]. Holds no per-query state: share one in an `Arc`.
pub struct Engine {
    querier: Arc<dyn Querier>,
    opts: EngineOptions,
    /// Set when the query's client has gone away (see [`Engine::canceled_by`]).
    cancel: Option<Arc<AtomicBool>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

impl Engine {
    pub fn new(querier: Arc<dyn Querier>, mut opts: EngineOptions) -> Engine {
        if opts.lookback_delta.is_zero() {
            opts.lookback_delta = DEFAULT_LOOKBACK_DELTA;
        }
        Engine {
            querier,
            opts,
            cancel: None,
        }
    }

    /// The same engine for one query that stops with [`Error::Canceled`] once `flag` is set,
    /// at its next look at the clock: the HTTP layer sets it when the client disconnects, so
    /// an abandoned query frees its thread instead of running to its timeout.
    pub fn canceled_by(&self, flag: Arc<AtomicBool>) -> Engine {
        Engine {
            querier: Arc::clone(&self.querier),
            opts: self.opts.clone(),
            cancel: Some(flag),
        }
    }

    /// Evaluates `query` at `t_ms`. An instant vector comes back as [`Value::Vector`] sorted
    /// by labels, a range selector as [`Value::Matrix`].
    pub fn instant_query(&self, query: &str, t_ms: i64) -> Result<QueryResult, Error> {
        let _span = tracing::debug_span!("promql_query", kind = "instant", query, t_ms).entered();
        let expr = parse(query)?;
        let times = QueryTimes {
            start: t_ms,
            end: t_ms,
        };
        let mut limits = self.limits();
        let fetched = prepare(
            &expr,
            self.querier.as_ref(),
            times,
            self.lookback(),
            &mut limits,
        )?;
        let grid = Grid::of_query(t_ms, t_ms, 1);
        let mut ev = Evaluator::new(&fetched, times, self.lookback(), grid, limits.stop());
        let value = match ev.eval(&expr, t_ms)? {
            StepValue::Scalar(v) => Value::Scalar { t: t_ms, v },
            StepValue::String(s) => Value::String { t: t_ms, s },
            StepValue::Vector(v) => {
                let mut out: Vec<VectorElement> = v
                    .into_iter()
                    .map(|e| VectorElement {
                        labels: e.labels,
                        t: t_ms,
                        v: e.v,
                    })
                    .collect();
                // Prometheus leaves instant vectors unordered; sorting makes answers
                // reproducible, except where the query asked for an order.
                if !keeps_order(&expr) {
                    out.sort_by(|a, b| a.labels.cmp(&b.labels));
                }
                Value::Vector(out)
            }
            StepValue::Matrix(windows) => Value::Matrix(
                windows
                    .into_iter()
                    .map(|w| Series {
                        labels: w.labels.into_owned(),
                        samples: w.samples.into_owned(),
                    })
                    .collect(),
            ),
        };
        limits.check_deadline()?;
        Ok(QueryResult {
            value,
            warnings: ev.annotations.warnings,
            infos: ev.annotations.infos,
        })
    }

    /// Evaluates `query` at `start_ms`, `start_ms + step_ms`, ... up to `end_ms`. The result is
    /// always a [`Value::Matrix`] sorted by labels; a scalar expression gives one series with
    /// empty labels.
    pub fn range_query(
        &self,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<QueryResult, Error> {
        self.range_eval(query, start_ms, end_ms, step_ms, true)
            .map(|(result, _)| result)
    }

    /// A range query, with the nodes that can be computed for all steps at once computed so
    /// when `all_steps`; also says how many were.
    fn range_eval(
        &self,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
        all_steps: bool,
    ) -> Result<(QueryResult, usize), Error> {
        let _span = tracing::debug_span!(
            "promql_query",
            kind = "range",
            query,
            start_ms,
            end_ms,
            step_ms
        )
        .entered();
        check_range(start_ms, end_ms, step_ms)?;
        let expr = parse(query)?;
        match expr.value_type() {
            ValueType::Scalar | ValueType::Vector => {}
            other => {
                return Err(Error::Parse(format!(
                    "invalid expression type {:?} for range query, must be Scalar or instant \
                     Vector",
                    type_name(other)
                )))
            }
        }
        let times = QueryTimes {
            start: start_ms,
            end: end_ms,
        };
        let mut limits = self.limits();
        let fetched = prepare(
            &expr,
            self.querier.as_ref(),
            times,
            self.lookback(),
            &mut limits,
        )?;
        let grid = Grid::of_query(start_ms, end_ms, step_ms);
        let mut ev = Evaluator::new(&fetched, times, self.lookback(), grid, limits.stop());
        if !all_steps {
            ev = ev.step_by_step();
        }
        if let Some(matrix) = ev.root_matrix(&expr)? {
            limits.add_samples(matrix.iter().map(|s| s.samples.len()).sum())?;
            limits.check_deadline()?;
            return Ok((
                QueryResult {
                    value: Value::Matrix(matrix),
                    warnings: ev.annotations.warnings,
                    infos: ev.annotations.infos,
                },
                ev.all_steps_nodes,
            ));
        }
        let mut series: BTreeMap<Labels, Vec<Sample>> = BTreeMap::new();
        let mut ts = start_ms;
        while ts <= end_ms {
            limits.check_deadline()?;
            match ev.eval(&expr, ts)? {
                StepValue::Scalar(v) => {
                    limits.add_samples(1)?;
                    series
                        .entry(Labels::empty())
                        .or_default()
                        .push(Sample { t: ts, v });
                }
                StepValue::Vector(v) => {
                    limits.add_samples(v.len())?;
                    for e in v {
                        series
                            .entry(e.labels)
                            .or_default()
                            .push(Sample { t: ts, v: e.v });
                    }
                }
                other => {
                    return Err(Error::exec(format!(
                        "range query evaluated to a {}, expected a scalar or instant vector",
                        other.type_name()
                    )))
                }
            }
            let Some(next) = ts.checked_add(step_ms) else {
                break;
            };
            ts = next;
        }
        Ok((
            QueryResult {
                value: Value::Matrix(
                    series
                        .into_iter()
                        .map(|(labels, samples)| Series { labels, samples })
                        .collect(),
                ),
                warnings: ev.annotations.warnings,
                infos: ev.annotations.infos,
            },
            ev.all_steps_nodes,
        ))
    }

    fn lookback(&self) -> i64 {
        duration_ms(self.opts.lookback_delta)
    }

    fn limits(&self) -> Limits {
        let now = Instant::now();
        let deadline = now.checked_add(self.opts.timeout).unwrap_or(now);
        Limits::new(
            self.opts.max_samples,
            Stop::at(deadline).or_when(self.cancel.clone()),
        )
    }
}

fn parse(query: &str) -> Result<Expr, Error> {
    parser::parse(query).map_err(Error::Parse)
}

/// Whether the root of `expr` orders its result on purpose: `sort*()`, `topk`, `bottomk`.
fn keeps_order(expr: &Expr) -> bool {
    match expr {
        Expr::Paren(p) => keeps_order(&p.expr),
        Expr::Call(c) => crate::functions::orders_result(c.func.name),
        Expr::Aggregate(a) => crate::aggregate::orders_result(a.op),
        _ => false,
    }
}

/// Refuses range parameters Prometheus refuses, in its words.
fn check_range(start: i64, end: i64, step: i64) -> Result<(), Error> {
    if step <= 0 {
        return Err(Error::Parse(
            "zero or negative query resolution step widths are not accepted. Try a positive \
             integer"
                .into(),
        ));
    }
    if end < start {
        return Err(Error::Parse(
            "end timestamp must not be before start time".into(),
        ));
    }
    if (i128::from(end) - i128::from(start)) / i128::from(step) > i128::from(MAX_POINTS_PER_SERIES)
    {
        return Err(Error::Parse(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the \
             query resolution (?step=XX)"
                .into(),
        ));
    }
    Ok(())
}

/// PromQL's documented names of the value types.
fn type_name(t: ValueType) -> &'static str {
    match t {
        ValueType::Scalar => "scalar",
        ValueType::String => "string",
        ValueType::Vector => "instant vector",
        ValueType::Matrix => "range vector",
    }
}

#[cfg(test)]
mod allsteps_tests;
#[cfg(test)]
mod tests;
