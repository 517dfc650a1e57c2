//! The aggregations that select elements rather than fold them: `topk`, `bottomk`, `limitk`
//! and `limit_ratio`. Selected elements keep all their labels, the metric name included.
//! `topk`, `bottomk` and `limitk` with a constant `k` are also computed for every step of a
//! range query at once ([`select_steps`]).

use super::{group_labels, AggOp};
use crate::allsteps::{AllSteps, Grid, Source, StepSeries};
use crate::error::Error;
use crate::eval::Evaluator;
use crate::functions::sliding::StepPoint;
use crate::value::Elem;
use model::Labels;
use promql_parser::parser::LabelModifier;
use std::cmp::Ordering;
use std::collections::HashMap;

/// How many elements per group `topk(param, ...)` keeps: Go's `int64()` conversion
/// (truncation), saturating here; 0 below 1.
pub(super) fn limit(param: f64) -> Result<usize, Error> {
    if param.is_nan() {
        return Err(Error::exec("Parameter value is NaN"));
    }
    Ok(if param >= usize::MAX as f64 {
        usize::MAX
    } else if param < 1.0 {
        0
    } else {
        param as usize
    })
}

/// Selects up to `param` elements per group. `topk` returns each group's largest values in
/// descending order and `bottomk` the smallest ascending, NaN always last (it loses to every
/// number); `limitk` the first elements in input order.
pub(super) fn select(
    op: AggOp,
    param: f64,
    modifier: Option<&LabelModifier>,
    input: Vec<Elem>,
) -> Result<Vec<Elem>, Error> {
    let k = limit(param)?;
    if k == 0 {
        return Ok(Vec::new());
    }
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut groups: Vec<Vec<Elem>> = Vec::new();
    for e in input {
        let key = group_labels(modifier, &e.labels);
        let i = *index.entry(key).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[i].push(e);
    }
    let mut out = Vec::new();
    for mut g in groups {
        order(op, &mut g);
        g.truncate(k);
        out.extend(g);
    }
    Ok(out)
}

/// Puts one group's elements in the order `op` selects them in: a stable sort, so equal
/// values keep their input order.
fn order(op: AggOp, group: &mut [Elem]) {
    if op != AggOp::Limitk {
        group.sort_by(|a, b| compare(op, a.v, b.v));
    }
}

/// Whether `op` selects `a` before `b`: `topk` the larger, `bottomk` the smaller, NaN last
/// either way; `limitk` has no preference.
fn compare(op: AggOp, a: f64, b: f64) -> Ordering {
    match op {
        AggOp::Topk => nan_last(b, a, a, b),
        AggOp::Bottomk => nan_last(a, b, a, b),
        _ => Ordering::Equal,
    }
}

/// Adds `entry` to `best`, the first `k` so far of a group in the order [`order`] gives,
/// without sorting the whole group: it goes after every element it does not beat (which
/// includes the equal ones, that came before it), and drops out past `k`. So `best` ends as
/// the first `k` elements of the stable sort.
fn keep_best(op: AggOp, k: usize, best: &mut Vec<(usize, f64)>, entry: (usize, f64)) {
    let at = best.partition_point(|e| compare(op, e.1, entry.1) != Ordering::Greater);
    if at < k {
        best.insert(at, entry);
        best.truncate(k);
    }
}

/// `topk`, `bottomk` or `limitk` keeping `k` per group, at every step of `grid`. Group keys
/// are computed once per input series and each step selects among (series, value) pairs, so
/// a selected series' labels are copied once, not once per step. Each step's elements keep
/// the step-by-step order (groups by first element, each group in selection order).
pub(super) fn select_steps(
    ev: &Evaluator<'_>,
    op: AggOp,
    k: usize,
    modifier: Option<&LabelModifier>,
    source: &Source<'_>,
    grid: Grid,
) -> Result<AllSteps, Error> {
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let group_of: Vec<usize> = (0..source.len())
        .map(|i| {
            let key = group_labels(modifier, source.labels(i));
            let next = index.len();
            *index.entry(key).or_insert(next)
        })
        .collect();
    // Every step's (series, value) pairs, in series order.
    let mut by_step: Vec<Vec<(usize, f64)>> = vec![Vec::new(); grid.count];
    let mut scratch = Vec::new();
    for s in 0..source.len() {
        if s % super::fold::DEADLINE_EVERY_SERIES == 0 {
            ev.check_deadline()?;
        }
        for p in source.points(s, 0..grid.count, &mut scratch) {
            if let Some(step) = by_step.get_mut(p.step) {
                step.push((s, p.v));
            }
        }
    }
    let mut output_of: Vec<Option<usize>> = vec![None; source.len()];
    let mut series: Vec<StepSeries> = Vec::new();
    let mut ranks: Vec<Vec<u32>> = Vec::new();
    let mut best: Vec<Vec<(usize, f64)>> = vec![Vec::new(); index.len()];
    let mut seen: Vec<usize> = Vec::new();
    for (step, entries) in by_step.into_iter().enumerate() {
        seen.clear();
        for (s, v) in entries {
            let g = group_of[s];
            if best[g].is_empty() {
                seen.push(g);
            }
            keep_best(op, k, &mut best[g], (s, v));
        }
        let mut rank = 0u32;
        for &g in &seen {
            let group = &mut best[g];
            for &(s, v) in group.iter() {
                let o = *output_of[s].get_or_insert_with(|| {
                    series.push(StepSeries {
                        labels: source.labels(s).clone(),
                        points: Vec::new(),
                    });
                    ranks.push(Vec::new());
                    series.len() - 1
                });
                series[o].points.push(StepPoint { step, v });
                ranks[o].push(rank);
                rank = rank.saturating_add(1);
            }
            group.clear();
        }
    }
    Ok(AllSteps::ranked(grid, series, ranks))
}

/// `limit_ratio`: keeps each element whose label hash, as a fraction of 2^64, lies below
/// `ratio` (for a positive ratio) or at or above `1 + ratio` (for a negative one), so that
/// `limit_ratio(r, v)` and `limit_ratio(-(1 - r), v)` split `v` in two, and a series is kept
/// at every step or none. Grouping cannot change that choice, so it is ignored. `ratio` is
/// already capped to [-1, 1].
pub(super) fn limit_ratio(ratio: f64, input: Vec<Elem>) -> Vec<Elem> {
    input
        .into_iter()
        .filter(|e| {
            // Go converts both to float64 the same way, rounding included.
            let offset = model::labels_hash(&e.labels) as f64 / u64::MAX as f64;
            (ratio >= 0.0 && offset < ratio) || (ratio < 0.0 && offset >= 1.0 + ratio)
        })
        .collect()
}

/// Compares `x` with `y`, but puts NaN (judged on the unswapped `a`, `b`) last.
fn nan_last(x: f64, y: f64, a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ => x.total_cmp(&y),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeping_the_best_k_equals_a_stable_sort_cut_at_k() {
        // Ties, NaN and infinities, in an order that is neither sorted nor reversed.
        let values = [
            3.0,
            f64::NAN,
            1.0,
            3.0,
            f64::INFINITY,
            -2.0,
            f64::NAN,
            1.0,
            f64::NEG_INFINITY,
            3.0,
            0.0,
        ];
        let entries: Vec<(usize, f64)> = values.iter().copied().enumerate().collect();
        for op in [AggOp::Topk, AggOp::Bottomk, AggOp::Limitk] {
            for k in 0..values.len() + 2 {
                let mut best = Vec::new();
                for &e in &entries {
                    keep_best(op, k, &mut best, e);
                }
                let mut sorted = entries.clone();
                if op != AggOp::Limitk {
                    sorted.sort_by(|a, b| compare(op, a.1, b.1));
                }
                sorted.truncate(k);
                let ids = |v: &[(usize, f64)]| v.iter().map(|e| e.0).collect::<Vec<_>>();
                assert_eq!(ids(&best), ids(&sorted), "{op:?} k={k}");
            }
        }
    }
}
