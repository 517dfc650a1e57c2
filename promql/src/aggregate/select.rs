//! The aggregations that select elements rather than fold them: `topk`, `bottomk` and
//! `limitk`. Selected elements keep all their labels, the metric name included.

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
    if op == AggOp::LimitRatio {
        return Err(Error::unsupported("limit_ratio"));
    }
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

/// Compares `x` with `y`, but puts NaN (judged on the unswapped `a`, `b`) last.
fn nan_last(x: f64, y: f64, a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ => x.total_cmp(&y),
    }
}
