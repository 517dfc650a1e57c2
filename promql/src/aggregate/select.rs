//! The aggregations that select elements rather than fold them: `topk`, `bottomk`, `limitk`
//! and `limit_ratio`. Selected elements keep all their labels, the metric name included.

use super::labelhash::label_hash;
use super::{group_labels, AggOp};
use crate::error::Error;
use crate::value::Elem;
use model::Labels;
use promql_parser::parser::LabelModifier;
use std::cmp::Ordering;
use std::collections::HashMap;

/// Selects up to `param` elements per group. `topk` returns each group's largest values in
/// descending order and `bottomk` the smallest ascending, NaN always last (it loses to every
/// number); `limitk` the first elements in input order.
pub(super) fn select(
    op: AggOp,
    param: f64,
    modifier: Option<&LabelModifier>,
    input: Vec<Elem>,
) -> Result<Vec<Elem>, Error> {
    if param.is_nan() {
        return Err(Error::exec("Parameter value is NaN"));
    }
    // Go converts with int64(): truncation, saturating here.
    let k = if param >= usize::MAX as f64 {
        usize::MAX
    } else if param < 1.0 {
        return Ok(Vec::new());
    } else {
        param as usize
    };
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
        match op {
            AggOp::Topk => g.sort_by(|a, b| nan_last(b.v, a.v, a.v, b.v)),
            AggOp::Bottomk => g.sort_by(|a, b| nan_last(a.v, b.v, a.v, b.v)),
            _ => {}
        }
        g.truncate(k);
        out.extend(g);
    }
    Ok(out)
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
            let offset = label_hash(&e.labels) as f64 / u64::MAX as f64;
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
