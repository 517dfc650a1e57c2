//! Function calls: which functions exist, how their arguments are evaluated and what labels
//! their results carry. The arithmetic lives in the submodules as pure functions: `range`
//! (over a window of samples), `math`, `time` (calendar fields), `labels` and `histogram`.

mod histogram;
mod labels;
mod math;
pub(crate) mod range;
pub(crate) mod sliding;
mod time;

use crate::allsteps::{AllSteps, Grid, StepSeries};
use crate::annotations::looks_like_counter;
use crate::error::Error;
use crate::eval::{check_unique_labels, Evaluator};
use crate::selector::{duration_ms, pinned_time, reference_time, sample_at};
use crate::value::{Elem, StepValue, Window};
use model::{Labels, MatchOp, Sample, METRIC_NAME};
use promql_parser::parser::{Call, Expr};
use std::collections::HashMap;

/// A function of a window's samples and its bounds `(start, end]` in ms.
pub(crate) type RangeKernel = fn(&[Sample], i64, i64) -> Option<f64>;

/// The range functions that take nothing but the range vector.
fn range_kernel(name: &str) -> Option<RangeKernel> {
    Some(match name {
        "rate" => |s, a, b| range::extrapolated_rate(s, a, b, true, true),
        "increase" => |s, a, b| range::extrapolated_rate(s, a, b, true, false),
        "delta" => |s, a, b| range::extrapolated_rate(s, a, b, false, false),
        "irate" => |s, _, _| range::instant_delta(s, true),
        "idelta" => |s, _, _| range::instant_delta(s, false),
        "sum_over_time" => |s, _, _| range::sum_over_time(s),
        "avg_over_time" => |s, _, _| range::avg_over_time(s),
        "min_over_time" => |s, _, _| range::min_over_time(s),
        "max_over_time" => |s, _, _| range::max_over_time(s),
        "count_over_time" => |s, _, _| range::count_over_time(s),
        "last_over_time" => |s, _, _| range::last_over_time(s),
        "first_over_time" => |s, _, _| range::first_over_time(s),
        "present_over_time" => |s, _, _| range::present_over_time(s),
        "stddev_over_time" => |s, _, _| range::stddev_over_time(s),
        "stdvar_over_time" => |s, _, _| range::stdvar_over_time(s),
        "mad_over_time" => |s, _, _| range::mad_over_time(s),
        "ts_of_first_over_time" => |s, _, _| range::ts_of_first(s),
        "ts_of_last_over_time" => |s, _, _| range::ts_of_last(s),
        "ts_of_min_over_time" => |s, _, _| range::ts_of_extreme(s, false),
        "ts_of_max_over_time" => |s, _, _| range::ts_of_extreme(s, true),
        "changes" => |s, _, _| range::changes(s),
        "resets" => |s, _, _| range::resets(s),
        "deriv" => |s, _, _| range::deriv(s),
        _ => return None,
    })
}

/// How a range function is computed over all steps at once: the functions with a sliding
/// form of their own, and every other [`range_kernel`] on each step's window.
fn sliding_kind(name: &str) -> Option<sliding::Sliding> {
    use sliding::Sliding;
    Some(match name {
        "rate" | "increase" | "delta" => Sliding::Rate {
            is_counter: name != "delta",
            is_rate: name == "rate",
        },
        "sum_over_time" => Sliding::Sum,
        "avg_over_time" => Sliding::Avg,
        "min_over_time" => Sliding::Min,
        "max_over_time" => Sliding::Max,
        "changes" => Sliding::Changes,
        "resets" => Sliding::Resets,
        _ => Sliding::Window(range_kernel(name)?),
    })
}

/// A range function of a range selector (`rate(x[5m])`) evaluated for every step of `grid`
/// at once, series by series; `None` for any other call, which is evaluated step by step.
pub(crate) fn all_steps(
    ev: &mut Evaluator<'_>,
    call: &Call,
    grid: Grid,
) -> Result<Option<AllSteps>, Error> {
    let name = call.func.name;
    let Some(kind) = sliding_kind(name) else {
        return Ok(None);
    };
    let Expr::MatrixSelector(ms) = unparen(arg(call, 0)?) else {
        return Ok(None);
    };
    let range = duration_ms(ms.range);
    let times = ev.times();
    let ends: Vec<i64> = grid
        .times()
        .map(|t| reference_time(&ms.vs, t, times))
        .collect();
    let keep_name = keeps_metric_name(name);
    let counter_fn = matches!(name, "rate" | "increase");
    let mut out = Vec::new();
    for (i, s) in ev.fetched(&ms.vs)?.iter().enumerate() {
        if i % DEADLINE_EVERY_SERIES == 0 {
            ev.check_deadline()?;
        }
        let mut points = Vec::new();
        sliding::eval_steps(kind, &s.samples, &ends, range, &mut points);
        if points.is_empty() {
            continue;
        }
        if counter_fn {
            if let Some(metric) = s.labels.metric_name() {
                if !looks_like_counter(metric) {
                    ev.annotations.possible_non_counter(metric);
                }
            }
        }
        let labels = if keep_name {
            s.labels.clone()
        } else {
            s.labels.without_metric_name()
        };
        out.push(StepSeries { labels, points });
    }
    Ok(Some(AllSteps::new(grid, out)))
}

/// How many series a range function evaluates between two looks at the query's deadline.
const DEADLINE_EVERY_SERIES: usize = 256;

/// Whether a range function's result keeps the metric name of its input.
fn keeps_metric_name(name: &str) -> bool {
    matches!(name, "last_over_time" | "first_over_time")
}

/// Every function name evaluated here besides [`range_kernel`]'s.
const OTHER_FUNCTIONS: &[&str] = &[
    "quantile_over_time",
    "predict_linear",
    "double_exponential_smoothing",
    "absent_over_time",
    "time",
    "pi",
    "vector",
    "scalar",
    "timestamp",
    "absent",
    "round",
    "clamp",
    "clamp_min",
    "clamp_max",
    "sort",
    "sort_desc",
    "sort_by_label",
    "sort_by_label_desc",
    "label_replace",
    "label_join",
    "histogram_quantile",
    "histogram_fraction",
    "histogram_count",
    "histogram_sum",
    "histogram_avg",
    "histogram_stddev",
    "histogram_stdvar",
];

/// Refuses a function this engine does not evaluate, naming it.
pub(crate) fn check_name(name: &str) -> Result<(), Error> {
    if range_kernel(name).is_some()
        || math::unary(name).is_some()
        || time::date_function(name).is_some()
        || OTHER_FUNCTIONS.contains(&name)
    {
        Ok(())
    } else {
        Err(Error::unsupported(format_args!("function \"{name}\"")))
    }
}

/// Whether the instant vector a call returns is in a deliberate order that the engine must
/// not re-sort.
pub(crate) fn orders_result(name: &str) -> bool {
    matches!(
        name,
        "sort" | "sort_desc" | "sort_by_label" | "sort_by_label_desc"
    )
}

/// Evaluates a function call at step `ts`.
pub(crate) fn eval_call<'a>(
    ev: &mut Evaluator<'a>,
    call: &'a Call,
    ts: i64,
) -> Result<StepValue<'a>, Error> {
    let name = call.func.name;
    if let Some(kernel) = range_kernel(name) {
        let keep_name = keeps_metric_name(name);
        return range_function(ev, call, 0, ts, keep_name, kernel).map(StepValue::Vector);
    }
    if let Some(f) = math::unary(name) {
        return map_values(ev, call, ts, f);
    }
    if let Some(f) = time::date_function(name) {
        if call.args.args.is_empty() {
            return Ok(StepValue::Vector(vec![Elem {
                labels: Labels::empty(),
                v: f(ts as f64 / 1000.0),
            }]));
        }
        return map_values(ev, call, ts, f);
    }
    let out = match name {
        "time" => return Ok(StepValue::Scalar(ts as f64 / 1000.0)),
        "pi" => return Ok(StepValue::Scalar(std::f64::consts::PI)),
        "vector" => vec![Elem {
            labels: Labels::empty(),
            v: scalar_arg(ev, call, 0, ts)?,
        }],
        "scalar" => {
            let v = ev.eval_vector(arg(call, 0)?, ts)?;
            return Ok(StepValue::Scalar(match v.as_slice() {
                [only] => only.v,
                _ => f64::NAN,
            }));
        }
        "quantile_over_time" => {
            let q = scalar_arg(ev, call, 0, ts)?;
            warn_quantile(ev, q);
            range_function(ev, call, 1, ts, false, |s, _, _| {
                range::quantile_over_time(s, q)
            })?
        }
        "predict_linear" => {
            let seconds = scalar_arg(ev, call, 1, ts)?;
            range_function(ev, call, 0, ts, false, |s, _, _| {
                range::predict_linear(s, ts, seconds)
            })?
        }
        "double_exponential_smoothing" => {
            let sf = scalar_arg(ev, call, 1, ts)?;
            let tf = scalar_arg(ev, call, 2, ts)?;
            if !(sf > 0.0 && sf < 1.0) {
                return Err(Error::exec(format!(
                    "invalid smoothing factor. Expected: 0 < sf < 1, got: {sf}"
                )));
            }
            if !(tf > 0.0 && tf < 1.0) {
                return Err(Error::exec(format!(
                    "invalid trend factor. Expected: 0 < tf < 1, got: {tf}"
                )));
            }
            range_function(ev, call, 0, ts, false, |s, _, _| {
                range::double_exponential_smoothing(s, sf, tf)
            })?
        }
        "absent_over_time" => {
            let present = !matrix_arg(ev, call, 0, ts)?.is_empty();
            absent_result(present, arg(call, 0)?)
        }
        "absent" => {
            let present = !ev.eval_vector(arg(call, 0)?, ts)?.is_empty();
            absent_result(present, arg(call, 0)?)
        }
        "timestamp" => timestamp(ev, arg(call, 0)?, ts)?,
        "round" => {
            let to = match call.args.args.len() {
                1 => 1.0,
                _ => scalar_arg(ev, call, 1, ts)?,
            };
            return map_values(ev, call, ts, move |v| math::round(v, to));
        }
        "clamp" => {
            let (lo, hi) = (scalar_arg(ev, call, 1, ts)?, scalar_arg(ev, call, 2, ts)?);
            if hi < lo {
                Vec::new()
            } else {
                return map_values(ev, call, ts, move |v| math::go_max(lo, math::go_min(hi, v)));
            }
        }
        "clamp_min" => {
            let lo = scalar_arg(ev, call, 1, ts)?;
            return map_values(ev, call, ts, move |v| math::go_max(lo, v));
        }
        "clamp_max" => {
            let hi = scalar_arg(ev, call, 1, ts)?;
            return map_values(ev, call, ts, move |v| math::go_min(hi, v));
        }
        "sort" | "sort_desc" => {
            warn_sort_in_range(ev);
            let mut v = ev.eval_vector(arg(call, 0)?, ts)?;
            let desc = name == "sort_desc";
            // NaN sorts last either way.
            v.sort_by(|a, b| match (a.v.is_nan(), b.v.is_nan()) {
                (true, true) => std::cmp::Ordering::Equal,
                (true, false) => std::cmp::Ordering::Greater,
                (false, true) => std::cmp::Ordering::Less,
                _ if desc => b.v.total_cmp(&a.v),
                _ => a.v.total_cmp(&b.v),
            });
            v
        }
        "sort_by_label" | "sort_by_label_desc" => {
            warn_sort_in_range(ev);
            let mut v = ev.eval_vector(arg(call, 0)?, ts)?;
            let names = string_args(call, 1)?;
            v.sort_by(|a, b| labels::cmp_by_labels(&a.labels, &b.labels, &names));
            if name == "sort_by_label_desc" {
                v.reverse();
            }
            v
        }
        "label_replace" => {
            let v = ev.eval_vector(arg(call, 0)?, ts)?;
            let s = string_args(call, 1)?;
            let [dst, replacement, src, regex] = s.as_slice() else {
                return Err(Error::exec("label_replace needs five arguments"));
            };
            labels::label_replace(v, dst, replacement, src, regex)?
        }
        "label_join" => {
            let v = ev.eval_vector(arg(call, 0)?, ts)?;
            let s = string_args(call, 1)?;
            let [dst, sep, srcs @ ..] = s.as_slice() else {
                return Err(Error::exec(
                    "label_join needs a destination and a separator",
                ));
            };
            labels::label_join(v, dst, sep, srcs)?
        }
        "histogram_quantile" => {
            let q = scalar_arg(ev, call, 0, ts)?;
            warn_quantile(ev, q);
            let v = ev.eval_vector(arg(call, 1)?, ts)?;
            by_histogram(ev, v, |b| {
                let (value, repairs) = histogram::bucket_quantile(q, b);
                (value, repairs.forced_monotonic)
            })
        }
        "histogram_fraction" => {
            let lo = scalar_arg(ev, call, 0, ts)?;
            let hi = scalar_arg(ev, call, 1, ts)?;
            let v = ev.eval_vector(arg(call, 2)?, ts)?;
            by_histogram(ev, v, |b| (histogram::bucket_fraction(lo, hi, b), false))
        }
        // Native-histogram functions: Vigil stores floats only, so there is nothing to
        // give; float samples are ignored by these functions in Prometheus too.
        "histogram_count" | "histogram_sum" | "histogram_avg" | "histogram_stddev"
        | "histogram_stdvar" => {
            ev.eval_vector(arg(call, 0)?, ts)?;
            Vec::new()
        }
        _ => return Err(Error::unsupported(format_args!("function \"{name}\""))),
    };
    check_unique_labels(&out)?;
    Ok(StepValue::Vector(out))
}

fn arg(call: &Call, i: usize) -> Result<&Expr, Error> {
    call.args.args.get(i).map(|b| b.as_ref()).ok_or_else(|| {
        Error::exec(format!(
            "function \"{}\" needs argument {}",
            call.func.name,
            i + 1
        ))
    })
}

fn scalar_arg<'a>(ev: &mut Evaluator<'a>, call: &'a Call, i: usize, ts: i64) -> Result<f64, Error> {
    match ev.eval(arg(call, i)?, ts)? {
        StepValue::Scalar(v) => Ok(v),
        other => Err(Error::exec(format!(
            "function \"{}\" expects a scalar as argument {}, got {}",
            call.func.name,
            i + 1,
            other.type_name()
        ))),
    }
}

/// The string literals from argument `from` on.
fn string_args(call: &Call, from: usize) -> Result<Vec<String>, Error> {
    call.args.args[from.min(call.args.args.len())..]
        .iter()
        .map(|a| match unparen(a) {
            Expr::StringLiteral(s) => Ok(s.val.clone()),
            other => Err(Error::exec(format!(
                "function \"{}\" expects string arguments, got {}",
                call.func.name,
                other.value_type()
            ))),
        })
        .collect()
}

fn unparen(e: &Expr) -> &Expr {
    match e {
        Expr::Paren(p) => unparen(&p.expr),
        other => other,
    }
}

/// Applies `f` to every element of the first argument; the result loses the metric name.
fn map_values<'a>(
    ev: &mut Evaluator<'a>,
    call: &'a Call,
    ts: i64,
    f: impl Fn(f64) -> f64,
) -> Result<StepValue<'a>, Error> {
    let out: Vec<Elem> = ev
        .eval_vector(arg(call, 0)?, ts)?
        .into_iter()
        .map(|e| Elem {
            labels: e.labels.without_metric_name(),
            v: f(e.v),
        })
        .collect();
    check_unique_labels(&out)?;
    Ok(StepValue::Vector(out))
}

/// Evaluates argument `i`, which must be a range vector, and the bounds of its window.
fn matrix_arg<'a>(
    ev: &mut Evaluator<'a>,
    call: &'a Call,
    i: usize,
    ts: i64,
) -> Result<Vec<Window<'a>>, Error> {
    match ev.eval(arg(call, i)?, ts)? {
        StepValue::Matrix(m) => Ok(m),
        other => Err(Error::exec(format!(
            "function \"{}\" expects a range vector, got {}",
            call.func.name,
            other.type_name()
        ))),
    }
}

/// The window `(start, end]` a range argument covers at step `ts`.
fn window_bounds(ev: &Evaluator<'_>, e: &Expr, ts: i64) -> Result<(i64, i64), Error> {
    match unparen(e) {
        Expr::MatrixSelector(ms) => {
            let end = reference_time(&ms.vs, ts, ev.times());
            Ok((end.saturating_sub(duration_ms(ms.range)), end))
        }
        Expr::Subquery(sq) => {
            let end = pinned_time(sq.at.as_ref(), sq.offset.as_ref(), ts, ev.times());
            Ok((end.saturating_sub(duration_ms(sq.range)), end))
        }
        other => Err(Error::exec(format!(
            "expected a range vector argument, got {}",
            other.value_type()
        ))),
    }
}

/// A function over the range vector in argument `i`: `kernel` runs on each series' window.
/// Results lose the metric name (what they measure is no longer the metric) unless
/// `keep_name`.
fn range_function<'a>(
    ev: &mut Evaluator<'a>,
    call: &'a Call,
    i: usize,
    ts: i64,
    keep_name: bool,
    kernel: impl Fn(&[Sample], i64, i64) -> Option<f64>,
) -> Result<Vec<Elem>, Error> {
    let (start, end) = window_bounds(ev, arg(call, i)?, ts)?;
    let counter_fn = matches!(call.func.name, "rate" | "increase");
    let mut out = Vec::new();
    for w in matrix_arg(ev, call, i, ts)? {
        let Some(v) = kernel(&w.samples, start, end) else {
            continue;
        };
        if counter_fn {
            if let Some(name) = w.labels.metric_name() {
                if !looks_like_counter(name) {
                    ev.annotations.possible_non_counter(name);
                }
            }
        }
        let labels = if keep_name {
            w.labels.into_owned()
        } else {
            w.labels.without_metric_name()
        };
        out.push(Elem { labels, v });
    }
    check_unique_labels(&out)?;
    Ok(out)
}

/// `absent` / `absent_over_time`: one element valued 1 when the argument had nothing, labelled
/// with the selector's equality matchers (a label matched more than once is left out).
fn absent_result(present: bool, arg: &Expr) -> Vec<Elem> {
    if present {
        return Vec::new();
    }
    let vs = match unparen(arg) {
        Expr::VectorSelector(vs) => Some(vs),
        Expr::MatrixSelector(ms) => Some(&ms.vs),
        _ => None,
    };
    let mut labels = Labels::empty();
    if let Some(vs) = vs {
        let mut seen: HashMap<&str, bool> = HashMap::new();
        if let Ok(groups) = crate::selector::matcher_groups(vs) {
            if let [group] = groups.as_slice() {
                for m in group {
                    if m.name == METRIC_NAME {
                        continue;
                    }
                    let first = !seen.contains_key(m.name.as_str());
                    seen.insert(m.name.as_str(), true);
                    labels = if m.op == MatchOp::Equal && first {
                        labels.with(&m.name, &m.value)
                    } else {
                        labels.without(&[m.name.as_str()])
                    };
                }
            }
        }
    }
    vec![Elem { labels, v: 1.0 }]
}

/// `timestamp(v)`: of a plain selector, each sample's own time; of anything else, the
/// evaluation time.
fn timestamp<'a>(ev: &mut Evaluator<'a>, arg: &'a Expr, ts: i64) -> Result<Vec<Elem>, Error> {
    if let Expr::VectorSelector(vs) = unparen(arg) {
        let t = reference_time(vs, ts, ev.times());
        let lookback = ev.lookback();
        let series = ev.fetched(vs)?;
        return Ok(series
            .iter()
            .filter_map(|s| {
                sample_at(&s.samples, t, lookback)?;
                let idx = s.samples.partition_point(|p| p.t <= t).checked_sub(1)?;
                Some(Elem {
                    labels: s.labels.without_metric_name(),
                    v: s.samples[idx].t as f64 / 1000.0,
                })
            })
            .collect());
    }
    Ok(ev
        .eval_vector(arg, ts)?
        .into_iter()
        .map(|e| Elem {
            labels: e.labels.without_metric_name(),
            v: ts as f64 / 1000.0,
        })
        .collect())
}

/// A range query's result is ordered by labels whatever its steps' order, so sorting there
/// is wasted; Prometheus says so (for every sort function, in the same words).
fn warn_sort_in_range(ev: &mut Evaluator<'_>) {
    if ev.in_range() {
        ev.annotations.warning(
            "PromQL warning: sort is ineffective for range queries since results are always \
             ordered by labels"
                .to_string(),
        );
    }
}

fn warn_quantile(ev: &mut Evaluator<'_>, q: f64) {
    if !(0.0..=1.0).contains(&q) {
        ev.annotations.warning(format!(
            "PromQL warning: quantile value should be between 0 and 1, got {}",
            crate::annotations::go_float(q)
        ));
    }
}

/// Groups classic-histogram buckets by their labels without `le` and the name, and computes
/// one value per histogram.
fn by_histogram(
    ev: &mut Evaluator<'_>,
    input: Vec<Elem>,
    f: impl Fn(Vec<histogram::Bucket>) -> (f64, bool),
) -> Vec<Elem> {
    let mut order: Vec<Labels> = Vec::new();
    let mut groups: HashMap<Labels, (Vec<histogram::Bucket>, String)> = HashMap::new();
    for e in input {
        let name = e.labels.metric_name().unwrap_or("").to_string();
        let le = e.labels.get("le").unwrap_or("");
        let Ok(upper) = parse_le(le) else {
            ev.annotations.warning(format!(
                "PromQL warning: bucket label \"le\" is missing or has a malformed value of \
                 {le:?} for metric name {name:?}"
            ));
            continue;
        };
        let key = e.labels.without(&["le", METRIC_NAME]);
        let entry = groups.entry(key.clone()).or_insert_with(|| {
            order.push(key);
            (Vec::new(), name)
        });
        entry.0.push(histogram::Bucket { upper, count: e.v });
    }
    let mut out = Vec::with_capacity(order.len());
    for key in order {
        let Some((buckets, name)) = groups.remove(&key) else {
            continue;
        };
        let (v, fixed) = f(buckets);
        if fixed {
            ev.annotations.info(format!(
                "PromQL info: input to histogram_quantile needed to be fixed for monotonicity \
                 (see https://prometheus.io/docs/prometheus/latest/querying/functions/\
                 #histogram_quantile) for metric name {name:?}"
            ));
        }
        out.push(Elem { labels: key, v });
    }
    out
}

/// An `le` value as Go's `strconv.ParseFloat` reads it (`+Inf`, exponents).
fn parse_le(s: &str) -> Result<f64, ()> {
    match s {
        "+Inf" | "Inf" | "+inf" | "inf" => Ok(f64::INFINITY),
        "-Inf" | "-inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => s.parse::<f64>().map_err(|_| ()),
    }
}
