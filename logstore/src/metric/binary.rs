//! Binary operations between scalars and vectors, with Prometheus's vector matching
//! (`on`/`ignoring`, `group_left`/`group_right`) and comparison filtering or `bool`.

use super::{EvalError, Value};
use crate::logql::{BinOp, Cardinality, VectorMatching};
use model::Labels;
use std::collections::{HashMap, HashSet};

/// `op` on two numbers; for comparisons, `Some(lhs)` when true, else `None`.
fn scalar_op(op: BinOp, a: f64, b: f64) -> Option<f64> {
    let cmp = |keep: bool| keep.then_some(a);
    match op {
        BinOp::Add => Some(a + b),
        BinOp::Sub => Some(a - b),
        BinOp::Mul => Some(a * b),
        BinOp::Div => Some(a / b),
        BinOp::Mod => Some(a % b),
        BinOp::Pow => Some(a.powf(b)),
        BinOp::Eq => cmp(a == b),
        BinOp::Ne => cmp(a != b),
        BinOp::Gt => cmp(a > b),
        BinOp::Ge => cmp(a >= b),
        BinOp::Lt => cmp(a < b),
        BinOp::Le => cmp(a <= b),
        BinOp::And | BinOp::Or | BinOp::Unless => None,
    }
}

/// The value of a comparison under `bool` (1 or 0), or its filtering result.
fn apply(op: BinOp, bool_modifier: bool, a: f64, b: f64) -> Option<f64> {
    let r = scalar_op(op, a, b);
    if op.is_comparison() && bool_modifier {
        Some(if r.is_some() { 1.0 } else { 0.0 })
    } else {
        r
    }
}

pub(crate) fn binary(
    op: BinOp,
    bool_modifier: bool,
    matching: &VectorMatching,
    lhs: Value,
    rhs: Value,
) -> Result<Value, EvalError> {
    Ok(match (lhs, rhs) {
        (Value::Scalar(a), Value::Scalar(b)) => {
            Value::Scalar(apply(op, bool_modifier, a, b).unwrap_or(0.0))
        }
        (Value::Vector(v), Value::Scalar(b)) => Value::Vector(
            v.into_iter()
                .filter_map(|(l, a)| apply(op, bool_modifier, a, b).map(|r| (l, r)))
                .collect(),
        ),
        (Value::Scalar(a), Value::Vector(v)) => Value::Vector(
            v.into_iter()
                .filter_map(|(l, b)| {
                    // A comparison keeps the vector's value even with the scalar on the left.
                    let r = apply(op, bool_modifier, a, b)?;
                    Some((
                        l,
                        if op.is_comparison() && !bool_modifier {
                            b
                        } else {
                            r
                        },
                    ))
                })
                .collect(),
        ),
        (Value::Vector(l), Value::Vector(r)) if op.is_set() => {
            Value::Vector(set_op(op, matching, l, r))
        }
        (Value::Vector(l), Value::Vector(r)) => {
            Value::Vector(vector_op(op, bool_modifier, matching, l, r)?)
        }
    })
}

fn signature(labels: &Labels, matching: &VectorMatching) -> Labels {
    match &matching.on {
        None => labels.clone(),
        Some((on, names)) => {
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            if *on {
                labels.only(&names)
            } else {
                labels.without(&names)
            }
        }
    }
}

fn set_op(
    op: BinOp,
    matching: &VectorMatching,
    lhs: Vec<(Labels, f64)>,
    rhs: Vec<(Labels, f64)>,
) -> Vec<(Labels, f64)> {
    let rsigs: HashSet<Labels> = rhs.iter().map(|(l, _)| signature(l, matching)).collect();
    match op {
        BinOp::And => lhs
            .into_iter()
            .filter(|(l, _)| rsigs.contains(&signature(l, matching)))
            .collect(),
        BinOp::Unless => lhs
            .into_iter()
            .filter(|(l, _)| !rsigs.contains(&signature(l, matching)))
            .collect(),
        _ => {
            let lsigs: HashSet<Labels> = lhs.iter().map(|(l, _)| signature(l, matching)).collect();
            let mut out = lhs;
            out.extend(
                rhs.into_iter()
                    .filter(|(l, _)| !lsigs.contains(&signature(l, matching))),
            );
            out
        }
    }
}

fn vector_op(
    op: BinOp,
    bool_modifier: bool,
    matching: &VectorMatching,
    lhs: Vec<(Labels, f64)>,
    rhs: Vec<(Labels, f64)>,
) -> Result<Vec<(Labels, f64)>, EvalError> {
    // The "one" side is indexed by signature; `group_right` swaps the roles.
    let swapped = matches!(matching.card, Cardinality::OneToMany(_));
    let (many, one) = if swapped { (rhs, lhs) } else { (lhs, rhs) };
    let mut index: HashMap<Labels, (Labels, f64)> = HashMap::new();
    for (l, v) in one {
        let sig = signature(&l, matching);
        if index.insert(sig.clone(), (l, v)).is_some() {
            let side = if swapped { "left" } else { "right" };
            return Err(EvalError(format!(
                "found duplicate series for the match group {sig} on the {side} hand-side of the operation; many-to-many matching not allowed: matching labels must be unique on one side"
            )));
        }
    }
    let include: &[String] = match &matching.card {
        Cardinality::OneToOne => &[],
        Cardinality::ManyToOne(x) | Cardinality::OneToMany(x) => x,
    };
    let mut out = Vec::new();
    let mut seen: HashSet<Labels> = HashSet::new();
    for (ml, mv) in many {
        let sig = signature(&ml, matching);
        let Some((ol, ov)) = index.get(&sig) else {
            continue;
        };
        let (a, b) = if swapped { (*ov, mv) } else { (mv, *ov) };
        let Some(value) = apply(op, bool_modifier, a, b) else {
            continue;
        };
        let mut labels = match (&matching.card, &matching.on) {
            (Cardinality::OneToOne, _) => sig.clone(),
            _ => ml.clone(),
        };
        for name in include {
            labels = labels.with(name, ol.get(name).unwrap_or_default());
        }
        if matching.card == Cardinality::OneToOne && !seen.insert(labels.clone()) {
            return Err(EvalError(format!(
                "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right): {labels}"
            )));
        }
        out.push((labels, value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(pairs: &[(&str, &str)], v: f64) -> (Labels, f64) {
        (Labels::from_pairs(pairs.to_vec()), v)
    }

    fn plain() -> VectorMatching {
        VectorMatching {
            on: None,
            card: Cardinality::OneToOne,
        }
    }

    fn vec_of(v: Value) -> Vec<(Labels, f64)> {
        match v {
            Value::Vector(v) => v,
            Value::Scalar(x) => panic!("scalar {x}"),
        }
    }

    #[test]
    fn scalars_and_filters() {
        let m = plain();
        let r = binary(
            BinOp::Add,
            false,
            &m,
            Value::Scalar(1.0),
            Value::Scalar(1.0),
        )
        .unwrap();
        assert!(matches!(r, Value::Scalar(x) if x == 2.0));
        let v = Value::Vector(vec![s(&[("a", "1")], 5.0), s(&[("a", "2")], 1.0)]);
        let r = vec_of(binary(BinOp::Gt, false, &m, v.clone(), Value::Scalar(2.0)).unwrap());
        assert_eq!(r, [s(&[("a", "1")], 5.0)]);
        let r = vec_of(binary(BinOp::Gt, true, &m, v.clone(), Value::Scalar(2.0)).unwrap());
        assert_eq!(r, [s(&[("a", "1")], 1.0), s(&[("a", "2")], 0.0)]);
        let r = vec_of(binary(BinOp::Lt, false, &m, Value::Scalar(2.0), v).unwrap());
        assert_eq!(r, [s(&[("a", "1")], 5.0)], "the vector's value is kept");
    }

    #[test]
    fn matching_on_and_group_left() {
        let l = Value::Vector(vec![
            s(&[("job", "a"), ("pod", "1")], 10.0),
            s(&[("job", "a"), ("pod", "2")], 20.0),
        ]);
        let r = Value::Vector(vec![s(&[("job", "a"), ("team", "t")], 2.0)]);
        let on = |card| VectorMatching {
            on: Some((true, vec!["job".to_string()])),
            card,
        };
        let got = vec_of(
            binary(
                BinOp::Div,
                false,
                &on(Cardinality::ManyToOne(vec!["team".into()])),
                l.clone(),
                r.clone(),
            )
            .unwrap(),
        );
        assert_eq!(
            got,
            [
                s(&[("job", "a"), ("pod", "1"), ("team", "t")], 5.0),
                s(&[("job", "a"), ("pod", "2"), ("team", "t")], 10.0)
            ]
        );
        // Without group_left, two left series map to one result: an error.
        assert!(binary(
            BinOp::Div,
            false,
            &on(Cardinality::OneToOne),
            l.clone(),
            r.clone()
        )
        .is_err());
        // group_right with the "one" side on the left.
        let got =
            vec_of(binary(BinOp::Sub, false, &on(Cardinality::OneToMany(vec![])), r, l).unwrap());
        assert_eq!(got[0], s(&[("job", "a"), ("pod", "1")], -8.0));
    }

    #[test]
    fn set_operations() {
        let m = plain();
        let l = Value::Vector(vec![s(&[("a", "1")], 1.0), s(&[("a", "2")], 2.0)]);
        let r = Value::Vector(vec![s(&[("a", "2")], 9.0), s(&[("a", "3")], 3.0)]);
        assert_eq!(
            vec_of(binary(BinOp::And, false, &m, l.clone(), r.clone()).unwrap()),
            [s(&[("a", "2")], 2.0)]
        );
        assert_eq!(
            vec_of(binary(BinOp::Unless, false, &m, l.clone(), r.clone()).unwrap()),
            [s(&[("a", "1")], 1.0)]
        );
        assert_eq!(vec_of(binary(BinOp::Or, false, &m, l, r).unwrap()).len(), 3);
    }
}
