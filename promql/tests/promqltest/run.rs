//! Runs parsed commands against Vigil's engine the way Prometheus's `promqltest` runs them
//! against its own: every instant eval is also run with `@` pinned at other times
//! (step invariance) and as a range query whose middle step must agree.

use crate::script::{Eval, EvalTime, Expected, TextMatch};
use crate::series::{Point, SeriesLine};
use model::{Labels, Series};
use promql::{Engine, QueryResult, Value};
use promql_parser::parser::{self, AtModifier, Expr};
use std::time::{Duration, SystemTime};

const MINUTE: i64 = 60_000;

/// Functions whose result depends on the evaluation time even when every selector is pinned
/// with `@`; queries calling them skip the step-invariance check (Prometheus's
/// `AtModifierUnsafeFunctions`).
const AT_UNSAFE_FUNCTIONS: &[&str] = &[
    "days_in_month",
    "day_of_month",
    "day_of_week",
    "day_of_year",
    "end",
    "hour",
    "minute",
    "month",
    "year",
    "predict_linear",
    "range",
    "start",
    "step",
    "time",
    "timestamp",
];

/// Runs one eval; `Err` says how it failed.
pub fn run_eval(engine: &Engine, ev: &Eval) -> Result<(), String> {
    match ev.time {
        EvalTime::Instant(t) => {
            run_instant(engine, ev, &ev.query, t)?;
            for (query, at) in at_modifier_cases(&ev.query, t)? {
                run_instant(engine, ev, &query, at)?;
            }
            Ok(())
        }
        EvalTime::Range { start, end, step } => {
            match engine.range_query(&ev.query, start, end, step) {
                Err(e) => check_failure(ev, &e.to_string()),
                Ok(_) if ev.fail.is_some() => Err("expected an error, got none".into()),
                Ok(res) => {
                    check_annotations(ev, &res)?;
                    compare(ev, &res.value, (start, end, step))
                }
            }
        }
    }
}

fn check_failure(ev: &Eval, err: &str) -> Result<(), String> {
    match &ev.fail {
        Some(m) if m.matches(err) => Ok(()),
        Some(m) => Err(format!("error {err:?} does not match {m:?}")),
        None => Err(format!("unexpected error: {err}")),
    }
}

fn run_instant(engine: &Engine, ev: &Eval, query: &str, t: i64) -> Result<(), String> {
    let res = match engine.instant_query(query, t) {
        Err(e) => {
            return check_failure(ev, &e.to_string()).map_err(|m| format!("{query} @{t}: {m}"))
        }
        Ok(_) if ev.fail.is_some() => {
            return Err(format!("{query} @{t}: expected an error, got none"))
        }
        Ok(res) => res,
    };
    check_annotations(ev, &res).map_err(|m| format!("{query} @{t}: {m}"))?;
    let grid = ev.range_vector.unwrap_or((t, t, 0));
    compare(ev, &res.value, grid).map_err(|m| format!("{query} @{t}: {m}"))?;
    if ev.range_vector.is_some() || matches!(ev.expected, Expected::String(_)) {
        return Ok(());
    }
    if ["start()", "end()", "range()", "step()"]
        .iter()
        .any(|f| query.contains(f))
    {
        return Ok(());
    }
    let range = engine
        .range_query(query, t - MINUTE, t + MINUTE, MINUTE)
        .map_err(|e| format!("{query} @{t} in range mode: {e}"))?;
    if ev.ordered {
        return Ok(());
    }
    let Value::Matrix(m) = &range.value else {
        return Err(format!("{query} @{t}: range query gave no matrix"));
    };
    check_sorted(m)?;
    let at_t: Vec<(Labels, f64)> = m
        .iter()
        .filter_map(|s| {
            s.samples
                .iter()
                .find(|p| p.t == t)
                .map(|p| (s.labels.clone(), p.v))
        })
        .collect();
    let as_instant = match res.value {
        Value::Scalar { .. } => match at_t.first() {
            Some((_, v)) => Value::Scalar { t, v: *v },
            None => return Err(format!("{query} @{t}: range mode has no point at {t}")),
        },
        _ => Value::Vector(
            at_t.into_iter()
                .map(|(labels, v)| promql::VectorElement { labels, t, v })
                .collect(),
        ),
    };
    // The range query's vector comes sorted by labels, so order is not checked again.
    compare(ev, &as_instant, (t, t, 0)).map_err(|m| format!("{query} @{t} range mode: {m}"))
}

/// Prometheus renders an annotation with the position of the expression it is about,
/// `... (1:6)`. Vigil's parser gives no positions, so Vigil reports the message alone, and
/// expectations are compared without that trailing position.
fn strip_position(expected: &TextMatch) -> TextMatch {
    match expected {
        TextMatch::Exact(m) => {
            let trimmed = match m.rfind(" (") {
                Some(i)
                    if m.ends_with(')')
                        && m[i + 2..m.len() - 1]
                            .chars()
                            .all(|c| c.is_ascii_digit() || c == ':') =>
                {
                    &m[..i]
                }
                _ => m.as_str(),
            };
            TextMatch::Exact(trimmed.to_string())
        }
        TextMatch::Regex(r) => TextMatch::Regex(r.clone()),
        TextMatch::Any => TextMatch::Any,
    }
}

fn check_annotations(ev: &Eval, res: &QueryResult) -> Result<(), String> {
    check_level("warn", &ev.warn, ev.no_warn, &res.warnings)?;
    check_level("info", &ev.info, ev.no_info, &res.infos)
}

fn check_level(
    level: &str,
    expected: &[TextMatch],
    refused: bool,
    got: &[String],
) -> Result<(), String> {
    if refused && !got.is_empty() {
        return Err(format!("unexpected {level} annotations: {got:?}"));
    }
    if expected.is_empty() {
        return Ok(());
    }
    if got.is_empty() {
        return Err(format!("expected {level} annotations, got none"));
    }
    let expected: Vec<TextMatch> = expected.iter().map(strip_position).collect();
    for e in &expected {
        if !got.iter().any(|g| e.matches(g)) {
            return Err(format!("no {level} annotation matches {e:?}; got {got:?}"));
        }
    }
    for g in got {
        if !expected.iter().any(|e| e.matches(g)) {
            return Err(format!("unexpected {level} annotation {g:?}"));
        }
    }
    Ok(())
}

fn check_sorted(m: &[Series]) -> Result<(), String> {
    if m.windows(2).any(|w| w[0].labels > w[1].labels) {
        return Err("matrix is not sorted by labels".into());
    }
    Ok(())
}

/// Prometheus's `almost.Equal` with its 1e-6 relative tolerance: NaNs equal each other, and
/// a zero must be matched (almost) exactly.
pub fn almost_equal(a: f64, b: f64) -> bool {
    const EPSILON: f64 = 1e-6;
    const MIN_NORMAL: f64 = f64::MIN_POSITIVE;
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || a.abs() + b.abs() < MIN_NORMAL {
        return diff < EPSILON * MIN_NORMAL;
    }
    diff / (a.abs() + b.abs()).min(f64::MAX) < EPSILON
}

fn find<'e>(expected: &'e [SeriesLine], labels: &Labels) -> Option<(usize, &'e SeriesLine)> {
    expected
        .iter()
        .enumerate()
        .find(|(_, s)| &s.labels == labels)
}

/// Compares a result with the expectation; `(start, end, step)` maps expected points to
/// times for matrices.
fn compare(ev: &Eval, value: &Value, (start, end, step): (i64, i64, i64)) -> Result<(), String> {
    let none: [SeriesLine; 0] = [];
    let expected_series: &[SeriesLine] = match &ev.expected {
        Expected::Series(s) => s,
        _ => &none,
    };
    match value {
        Value::Matrix(m) => {
            if ev.ordered {
                return Err("expected an ordered vector, got a matrix".into());
            }
            if let Expected::Scalar(_) = ev.expected {
                return Err("expected a scalar, got a matrix".into());
            }
            check_sorted(m)?;
            for s in m {
                let Some((_, exp)) = find(expected_series, &s.labels) else {
                    return Err(format!("unexpected series {} {:?}", s.labels, s.samples));
                };
                let mut want = Vec::new();
                for (i, p) in exp.points.iter().enumerate() {
                    let t = start + i as i64 * step;
                    if t > end {
                        return Err(format!("{}: more expected points than steps", s.labels));
                    }
                    if let Point::Float(v) = p {
                        want.push((t, *v));
                    }
                }
                let got: Vec<(i64, f64)> = s.samples.iter().map(|p| (p.t, p.v)).collect();
                let same = want.len() == got.len()
                    && want
                        .iter()
                        .zip(&got)
                        .all(|(w, g)| w.0 == g.0 && almost_equal(w.1, g.1));
                if !same {
                    return Err(format!("{}: expected {want:?}, got {got:?}", s.labels));
                }
            }
            for e in expected_series {
                if !m.iter().any(|s| s.labels == e.labels) {
                    return Err(format!("expected series {} not found", e.labels));
                }
            }
            Ok(())
        }
        Value::Vector(v) => {
            if let Expected::Scalar(_) = ev.expected {
                return Err("expected a scalar, got a vector".into());
            }
            for (pos, e) in v.iter().enumerate() {
                let Some((exp_pos, exp)) = find(expected_series, &e.labels) else {
                    return Err(format!("unexpected series {} {}", e.labels, e.v));
                };
                if ev.ordered && exp_pos != pos {
                    return Err(format!(
                        "{} at position {pos}, expected {exp_pos}",
                        e.labels
                    ));
                }
                match exp.points.first() {
                    Some(Point::Float(want)) if almost_equal(*want, e.v) => {}
                    want => return Err(format!("{}: expected {want:?}, got {}", e.labels, e.v)),
                }
            }
            for e in expected_series {
                if !v.iter().any(|x| x.labels == e.labels) {
                    return Err(format!("expected series {} not found", e.labels));
                }
            }
            Ok(())
        }
        Value::Scalar { v, .. } => match ev.expected {
            Expected::Scalar(want) if almost_equal(want, *v) => Ok(()),
            _ => Err(format!("expected {:?}, got scalar {v}", ev.expected)),
        },
        Value::String { s, .. } => match &ev.expected {
            Expected::String(want) if want == s => Ok(()),
            other => Err(format!("expected {other:?}, got string {s:?}")),
        },
    }
}

/// The step-invariance variants of an instant eval: every selector and subquery without `@`
/// pinned at `t`, evaluated at other times, must give the same answer. As in Prometheus,
/// nothing below a subquery is pinned (the subquery itself is), and queries calling a
/// time-dependent function outside subqueries are skipped.
fn at_modifier_cases(query: &str, t: i64) -> Result<Vec<(String, i64)>, String> {
    let mut expr = match parser::parse(query) {
        Ok(e) => e,
        // The plain eval already reported (or expected) the parse error.
        Err(_) => return Ok(Vec::new()),
    };
    let Ok(ms) = u64::try_from(t) else {
        return Ok(Vec::new());
    };
    let at = AtModifier::At(SystemTime::UNIX_EPOCH + Duration::from_millis(ms));
    let mut unsafe_call = false;
    pin(&mut expr, &at, &mut unsafe_call);
    if unsafe_call {
        return Ok(Vec::new());
    }
    let text = expr.to_string();
    let times: Vec<i64> = if t == 0 {
        vec![-1000, 0, 1000]
    } else {
        vec![-10 * t, 0, t / 5, t, 10 * t]
    };
    Ok(times.into_iter().map(|et| (text.clone(), et)).collect())
}

fn pin(expr: &mut Expr, at: &AtModifier, unsafe_call: &mut bool) {
    match expr {
        Expr::VectorSelector(vs) => {
            vs.at.get_or_insert_with(|| at.clone());
        }
        Expr::MatrixSelector(ms) => {
            ms.vs.at.get_or_insert_with(|| at.clone());
        }
        Expr::Subquery(sq) => {
            sq.at.get_or_insert_with(|| at.clone());
        }
        Expr::Aggregate(a) => {
            pin(&mut a.expr, at, unsafe_call);
            if let Some(p) = &mut a.param {
                pin(p, at, unsafe_call);
            }
        }
        Expr::Unary(u) => pin(&mut u.expr, at, unsafe_call),
        Expr::Binary(b) => {
            pin(&mut b.lhs, at, unsafe_call);
            pin(&mut b.rhs, at, unsafe_call);
        }
        Expr::Paren(p) => pin(&mut p.expr, at, unsafe_call),
        Expr::Call(c) => {
            if AT_UNSAFE_FUNCTIONS.contains(&c.func.name) {
                *unsafe_call = true;
            }
            for a in &mut c.args.args {
                pin(a, at, unsafe_call);
            }
        }
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}
