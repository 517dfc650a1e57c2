//! `quantile` and `count_values`: aggregations that look at the values of a group as a whole.

use super::group_labels;
use crate::annotations::go_float;
use crate::error::Error;
use crate::eval::Evaluator;
use crate::functions::range::quantile as quantile_of;
use crate::value::Elem;
use model::Labels;
use promql_parser::parser::LabelModifier;
use std::collections::HashMap;

/// Groups `input`'s values, in first-seen group order.
fn grouped(modifier: Option<&LabelModifier>, input: Vec<Elem>) -> Vec<(Labels, Vec<f64>)> {
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut groups: Vec<(Labels, Vec<f64>)> = Vec::new();
    for e in input {
        let key = group_labels(modifier, &e.labels);
        match index.get(&key) {
            Some(&i) => groups[i].1.push(e.v),
            None => {
                index.insert(key.clone(), groups.len());
                groups.push((key, vec![e.v]));
            }
        }
    }
    groups
}

/// `quantile(q, v)`: the `q`-quantile of each group's values.
pub(super) fn quantile(
    ev: &mut Evaluator<'_>,
    q: f64,
    modifier: Option<&LabelModifier>,
    input: Vec<Elem>,
) -> Vec<Elem> {
    if !(0.0..=1.0).contains(&q) && !input.is_empty() {
        ev.annotations.warning(format!(
            "PromQL warning: quantile value should be between 0 and 1, got {}",
            go_float(q)
        ));
    }
    grouped(modifier, input)
        .into_iter()
        .map(|(labels, mut values)| Elem {
            labels,
            v: quantile_of(q, &mut values),
        })
        .collect()
}

/// `count_values("label", v)`: per group and distinct value, how many elements have it; the
/// value goes into `label`, formatted as Go's `strconv.FormatFloat(v, 'f', -1, 64)`.
pub(super) fn count_values(
    label: &str,
    modifier: Option<&LabelModifier>,
    input: Vec<Elem>,
) -> Result<Vec<Elem>, Error> {
    if label.is_empty()
        || std::str::from_utf8(label.as_bytes()).is_err()
        || label.contains('\u{FFFD}')
    {
        return Err(Error::exec(format!("invalid label name {label:?}")));
    }
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut out: Vec<Elem> = Vec::new();
    for e in input {
        let key = group_labels(modifier, &e.labels).with(label, &format_value(e.v));
        match index.get(&key) {
            Some(&i) => out[i].v += 1.0,
            None => {
                index.insert(key.clone(), out.len());
                out.push(Elem {
                    labels: key,
                    v: 1.0,
                });
            }
        }
    }
    Ok(out)
}

fn format_value(v: f64) -> String {
    if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}
