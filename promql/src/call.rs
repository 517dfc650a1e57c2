//! Function calls: which functions exist, how their arguments are evaluated, and what labels
//! their results carry. The arithmetic of range functions lives in [`crate::functions`].

use crate::annotations::looks_like_counter;
use crate::error::Error;
use crate::eval::{check_unique_labels, Evaluator};
use crate::functions as kernel;
use crate::selector::{duration_ms, reference_time};
use crate::value::{Elem, StepValue};
use model::{Labels, Sample};
use promql_parser::parser::{Call, Expr, MatrixSelector};

/// A range function's kernel: the window's samples and its bounds `(start, end]` in ms to the
/// output value, if any.
type RangeKernel = fn(&[Sample], i64, i64) -> Option<f64>;

/// The functions this engine evaluates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Func {
    Rate,
    Increase,
    Delta,
    Irate,
    Idelta,
    SumOverTime,
    AvgOverTime,
    MinOverTime,
    MaxOverTime,
    CountOverTime,
    LastOverTime,
    Time,
    Vector,
    Scalar,
    Abs,
}

impl Func {
    /// The function called `name`, or an error naming a function not supported yet.
    pub fn from_name(name: &str) -> Result<Func, Error> {
        Ok(match name {
            "rate" => Func::Rate,
            "increase" => Func::Increase,
            "delta" => Func::Delta,
            "irate" => Func::Irate,
            "idelta" => Func::Idelta,
            "sum_over_time" => Func::SumOverTime,
            "avg_over_time" => Func::AvgOverTime,
            "min_over_time" => Func::MinOverTime,
            "max_over_time" => Func::MaxOverTime,
            "count_over_time" => Func::CountOverTime,
            "last_over_time" => Func::LastOverTime,
            "time" => Func::Time,
            "vector" => Func::Vector,
            "scalar" => Func::Scalar,
            "abs" => Func::Abs,
            _ => return Err(Error::unsupported(format_args!("function \"{name}\""))),
        })
    }

    /// The kernel of a function over a range vector, `None` for other functions.
    fn range_kernel(self) -> Option<RangeKernel> {
        Some(match self {
            Func::Rate => |s, a, b| kernel::extrapolated_rate(s, a, b, true, true),
            Func::Increase => |s, a, b| kernel::extrapolated_rate(s, a, b, true, false),
            Func::Delta => |s, a, b| kernel::extrapolated_rate(s, a, b, false, false),
            Func::Irate => |s, _, _| kernel::instant_delta(s, true),
            Func::Idelta => |s, _, _| kernel::instant_delta(s, false),
            Func::SumOverTime => |s, _, _| kernel::sum_over_time(s),
            Func::AvgOverTime => |s, _, _| kernel::avg_over_time(s),
            Func::MinOverTime => |s, _, _| kernel::min_over_time(s),
            Func::MaxOverTime => |s, _, _| kernel::max_over_time(s),
            Func::CountOverTime => |s, _, _| kernel::count_over_time(s),
            Func::LastOverTime => |s, _, _| kernel::last_over_time(s),
            Func::Time | Func::Vector | Func::Scalar | Func::Abs => return None,
        })
    }
}

/// Evaluates a function call at step `ts`.
pub(crate) fn eval_call<'a>(
    ev: &mut Evaluator<'a>,
    call: &'a Call,
    ts: i64,
) -> Result<StepValue<'a>, Error> {
    let func = Func::from_name(call.func.name)?;
    if let Some(kernel) = func.range_kernel() {
        return range_function(ev, func, kernel, first_arg(call)?, ts).map(StepValue::Vector);
    }
    match func {
        Func::Time => Ok(StepValue::Scalar(ts as f64 / 1000.0)),
        Func::Vector => match ev.eval(first_arg(call)?, ts)? {
            StepValue::Scalar(v) => Ok(StepValue::Vector(vec![Elem {
                labels: Labels::empty(),
                v,
            }])),
            other => Err(wrong_type("vector", "scalar", &other)),
        },
        Func::Scalar => {
            let v = ev.eval_vector(first_arg(call)?, ts)?;
            Ok(StepValue::Scalar(match v.as_slice() {
                [only] => only.v,
                _ => f64::NAN,
            }))
        }
        Func::Abs => {
            let out: Vec<Elem> = ev
                .eval_vector(first_arg(call)?, ts)?
                .into_iter()
                .map(|e| Elem {
                    labels: e.labels.without_metric_name(),
                    v: e.v.abs(),
                })
                .collect();
            check_unique_labels(&out)?;
            Ok(StepValue::Vector(out))
        }
        _ => Err(Error::exec(format!(
            "internal error: function {:?} has no evaluation",
            call.func.name
        ))),
    }
}

/// A function over a range vector: the kernel runs on each series' window. Results lose the
/// metric name (what they measure is no longer the metric), except `last_over_time`, whose
/// result is a sample of the metric.
fn range_function<'a>(
    ev: &mut Evaluator<'a>,
    func: Func,
    kernel: RangeKernel,
    arg: &'a Expr,
    ts: i64,
) -> Result<Vec<Elem>, Error> {
    let ms = matrix_arg(arg)?;
    let end = reference_time(&ms.vs, ts, ev.times());
    let start = end.saturating_sub(duration_ms(ms.range));
    let mut out = Vec::new();
    for w in ev.matrix_selector(ms, ts)? {
        let Some(v) = kernel(w.samples, start, end) else {
            continue;
        };
        if matches!(func, Func::Rate | Func::Increase) {
            if let Some(name) = w.labels.metric_name() {
                if !looks_like_counter(name) {
                    ev.annotations.possible_non_counter(name);
                }
            }
        }
        let labels = if func == Func::LastOverTime {
            w.labels.clone()
        } else {
            w.labels.without_metric_name()
        };
        out.push(Elem { labels, v });
    }
    check_unique_labels(&out)?;
    Ok(out)
}

fn first_arg(call: &Call) -> Result<&Expr, Error> {
    call.args
        .args
        .first()
        .map(|b| b.as_ref())
        .ok_or_else(|| Error::exec(format!("function \"{}\" needs an argument", call.func.name)))
}

/// The range selector a range function reads; parentheses around it are allowed.
fn matrix_arg(arg: &Expr) -> Result<&MatrixSelector, Error> {
    match arg {
        Expr::MatrixSelector(ms) => Ok(ms),
        Expr::Paren(p) => matrix_arg(&p.expr),
        Expr::Subquery(_) => Err(Error::unsupported("subqueries")),
        other => Err(Error::exec(format!(
            "expected a range vector argument, got {}",
            other.value_type()
        ))),
    }
}

fn wrong_type(func: &str, want: &str, got: &StepValue<'_>) -> Error {
    Error::exec(format!(
        "function \"{func}\" expects a {want} argument, got {}",
        got.type_name()
    ))
}
