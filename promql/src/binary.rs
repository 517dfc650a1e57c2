//! Binary operators: arithmetic, comparisons (filtering or `bool`) and the set operators
//! `and`/`or`/`unless`, between scalars and instant vectors, with Prometheus's vector matching
//! (`on`/`ignoring`, `group_left`/`group_right`).

use crate::error::Error;
use crate::value::Elem;
use model::{Labels, METRIC_NAME};
use promql_parser::parser::token::{self, TokenType};
use promql_parser::parser::{BinModifier, BinaryExpr, LabelModifier, VectorMatchCardinality};
use std::collections::{HashMap, HashSet};

/// The binary operators this engine evaluates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Atan2,
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    And,
    Or,
    Unless,
}

impl BinOp {
    fn from_token(op: TokenType) -> Result<BinOp, Error> {
        Ok(match op.id() {
            token::T_ADD => BinOp::Add,
            token::T_SUB => BinOp::Sub,
            token::T_MUL => BinOp::Mul,
            token::T_DIV => BinOp::Div,
            token::T_MOD => BinOp::Mod,
            token::T_POW => BinOp::Pow,
            token::T_ATAN2 => BinOp::Atan2,
            token::T_EQLC => BinOp::Eq,
            token::T_NEQ => BinOp::Ne,
            token::T_GTR => BinOp::Gt,
            token::T_LSS => BinOp::Lt,
            token::T_GTE => BinOp::Ge,
            token::T_LTE => BinOp::Le,
            token::T_LAND => BinOp::And,
            token::T_LOR => BinOp::Or,
            token::T_LUNLESS => BinOp::Unless,
            _ => return Err(Error::unsupported(format_args!("binary operator \"{op}\""))),
        })
    }

    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinOp::Eq | BinOp::Ne | BinOp::Gt | BinOp::Lt | BinOp::Ge | BinOp::Le
        )
    }

    pub fn is_set(self) -> bool {
        matches!(self, BinOp::And | BinOp::Or | BinOp::Unless)
    }

    /// Arithmetic changes what a value measures, so the result loses the metric name; a
    /// filtering comparison passes the sample through unchanged and keeps it.
    fn drops_metric_name(self) -> bool {
        !self.is_comparison() && !self.is_set()
    }
}

/// Resolves a binary expression's operator, refusing what parses but is not evaluated yet.
pub(crate) fn check(b: &BinaryExpr) -> Result<BinOp, Error> {
    let op = BinOp::from_token(b.op)?;
    if let Some(m) = &b.modifier {
        if m.fill_values.lhs.is_some() || m.fill_values.rhs.is_some() {
            return Err(Error::unsupported("the fill/fill_left/fill_right modifier"));
        }
    }
    Ok(op)
}

/// Applies an arithmetic or comparison operator: the result value and whether a filtering
/// comparison keeps the element. A comparison's value is its left operand. Set operators
/// never combine values; [`vector_vector`] routes them to [`set_operation`] first.
fn apply(op: BinOp, l: f64, r: f64) -> (f64, bool) {
    match op {
        BinOp::Add => (l + r, true),
        BinOp::Sub => (l - r, true),
        BinOp::Mul => (l * r, true),
        BinOp::Div => (l / r, true),
        // Rust's `%` on floats is C's fmod, like Go's math.Mod: the sign follows the dividend.
        BinOp::Mod => (l % r, true),
        BinOp::Pow => (l.powf(r), true),
        BinOp::Atan2 => (l.atan2(r), true),
        BinOp::Eq => (l, l == r),
        BinOp::Ne => (l, l != r),
        BinOp::Gt => (l, l > r),
        BinOp::Lt => (l, l < r),
        BinOp::Ge => (l, l >= r),
        BinOp::Le => (l, l <= r),
        BinOp::And | BinOp::Or | BinOp::Unless => (l, true),
    }
}

fn bool_value(keep: bool) -> f64 {
    if keep {
        1.0
    } else {
        0.0
    }
}

/// Scalar op scalar. Comparisons between scalars always need `bool` (the parser enforces it)
/// and give 0 or 1.
pub(crate) fn scalar_scalar(op: BinOp, l: f64, r: f64) -> f64 {
    let (v, keep) = apply(op, l, r);
    if op.is_comparison() {
        bool_value(keep)
    } else {
        v
    }
}

/// Vector op scalar, or scalar op vector when `scalar_left`. A filtering comparison keeps the
/// vector element's own value whichever side it is on.
pub(crate) fn vector_scalar(
    op: BinOp,
    vector: Vec<Elem>,
    scalar: f64,
    scalar_left: bool,
    return_bool: bool,
) -> Vec<Elem> {
    let mut out = Vec::with_capacity(vector.len());
    for e in vector {
        let (l, r) = if scalar_left {
            (scalar, e.v)
        } else {
            (e.v, scalar)
        };
        let (mut v, mut keep) = apply(op, l, r);
        if op.is_comparison() {
            v = e.v;
        }
        if return_bool {
            v = bool_value(keep);
            keep = true;
        }
        if keep {
            let labels = if op.drops_metric_name() || return_bool {
                e.labels.without_metric_name()
            } else {
                e.labels
            };
            out.push(Elem { labels, v });
        }
    }
    out
}

/// How two vectors' elements are paired, from the `on`/`ignoring` and `group_*` modifiers.
#[derive(Debug)]
struct Matching<'m> {
    /// `on(...)`: match on the listed labels only; otherwise on all labels except the listed
    /// ones and the metric name.
    on: bool,
    names: Vec<&'m str>,
    card: Card,
    /// The `group_left(...)`/`group_right(...)` labels copied from the "one" side.
    include: Vec<&'m str>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Card {
    OneToOne,
    ManyToOne,
    OneToMany,
}

impl<'m> Matching<'m> {
    fn new(modifier: Option<&'m BinModifier>) -> Matching<'m> {
        let strs = |ls: &'m promql_parser::label::Labels| -> Vec<&'m str> {
            ls.labels.iter().map(String::as_str).collect()
        };
        let (on, names) = match modifier.and_then(|m| m.matching.as_ref()) {
            Some(LabelModifier::Include(ls)) => (true, strs(ls)),
            Some(LabelModifier::Exclude(ls)) => (false, strs(ls)),
            None => (false, Vec::new()),
        };
        let (card, include) = match modifier.map(|m| &m.card) {
            Some(VectorMatchCardinality::ManyToOne(ls)) => (Card::ManyToOne, strs(ls)),
            Some(VectorMatchCardinality::OneToMany(ls)) => (Card::OneToMany, strs(ls)),
            _ => (Card::OneToOne, Vec::new()),
        };
        Matching {
            on,
            names,
            card,
            include,
        }
    }

    /// The labels two elements must agree on to be paired; also how Prometheus prints the
    /// match group in its errors.
    fn signature(&self, labels: &Labels) -> Labels {
        if self.on {
            labels.only(&self.names)
        } else {
            let mut drop = self.names.clone();
            drop.push(METRIC_NAME);
            labels.without(&drop)
        }
    }

    /// The labels of a result element, built from the "many" side (the left side for
    /// one-to-one) and the "one" side.
    fn result_labels(&self, many: &Labels, one: &Labels, op: BinOp, return_bool: bool) -> Labels {
        let mut labels = if op.drops_metric_name() || return_bool {
            many.without_metric_name()
        } else {
            many.clone()
        };
        if self.card == Card::OneToOne {
            labels = if self.on {
                labels.only(&self.names)
            } else {
                labels.without(&self.names)
            };
        }
        for name in &self.include {
            labels = labels.with(name, one.get(name).unwrap_or(""));
        }
        labels
    }
}

/// Vector op vector.
pub(crate) fn vector_vector(
    op: BinOp,
    lhs: Vec<Elem>,
    rhs: Vec<Elem>,
    modifier: Option<&BinModifier>,
) -> Result<Vec<Elem>, Error> {
    let matching = Matching::new(modifier);
    if op.is_set() {
        return Ok(set_operation(op, lhs, rhs, &matching));
    }
    if lhs.is_empty() || rhs.is_empty() {
        return Ok(Vec::new());
    }
    let return_bool = modifier.is_some_and(|m| m.return_bool);
    let one_to_many = matching.card == Card::OneToMany;
    let (many, one) = if one_to_many { (rhs, lhs) } else { (lhs, rhs) };

    let mut one_by_sig: HashMap<Labels, usize> = HashMap::with_capacity(one.len());
    for (i, e) in one.iter().enumerate() {
        let sig = matching.signature(&e.labels);
        if let Some(&earlier) = one_by_sig.get(&sig) {
            let side = if one_to_many { "left" } else { "right" };
            return Err(Error::exec(format!(
                "found duplicate series for the match group {sig} on the {side} hand-side of the \
                 operation: [{}, {}];many-to-many matching not allowed: matching labels must be \
                 unique on one side",
                one[earlier].labels, e.labels
            )));
        }
        one_by_sig.insert(sig, i);
    }

    // One-to-one: the match groups already used. Many-to-one: per group, the result label
    // sets already produced, which the group_* labels must keep apart.
    let mut matched: HashMap<Labels, HashSet<Labels>> = HashMap::new();
    let mut out = Vec::new();
    for e in &many {
        let sig = matching.signature(&e.labels);
        let Some(&j) = one_by_sig.get(&sig) else {
            continue;
        };
        let partner = &one[j];
        // A second match of a one-to-one group is an error even when the comparison would
        // filter either element out: whether a query fails must not depend on the values.
        if matching.card == Card::OneToOne {
            let seen = matched.entry(sig.clone()).or_default();
            if !seen.is_empty() {
                return Err(Error::exec(
                    "multiple matches for labels: many-to-one matching must be explicit \
                     (group_left/group_right)",
                ));
            }
            seen.insert(Labels::empty());
        }
        let (l, r) = if one_to_many {
            (partner.v, e.v)
        } else {
            (e.v, partner.v)
        };
        let (mut v, keep) = apply(op, l, r);
        if return_bool {
            v = bool_value(keep);
        } else if !keep {
            continue;
        }
        let labels = matching.result_labels(&e.labels, &partner.labels, op, return_bool);
        if matching.card != Card::OneToOne
            && !matched.entry(sig).or_default().insert(labels.clone())
        {
            return Err(Error::exec(
                "multiple matches for labels: grouping labels must ensure unique matches",
            ));
        }
        out.push(Elem { labels, v });
    }
    Ok(out)
}

/// `and`, `or`, `unless`: elements pass through unchanged, selected by whether their match
/// group exists on the other side.
fn set_operation(op: BinOp, lhs: Vec<Elem>, rhs: Vec<Elem>, matching: &Matching) -> Vec<Elem> {
    match op {
        BinOp::And | BinOp::Unless => {
            let rhs_sigs: HashSet<Labels> =
                rhs.iter().map(|e| matching.signature(&e.labels)).collect();
            let want = op == BinOp::And;
            lhs.into_iter()
                .filter(|e| rhs_sigs.contains(&matching.signature(&e.labels)) == want)
                .collect()
        }
        _ => {
            let lhs_sigs: HashSet<Labels> =
                lhs.iter().map(|e| matching.signature(&e.labels)).collect();
            let mut out = lhs;
            out.extend(
                rhs.into_iter()
                    .filter(|e| !lhs_sigs.contains(&matching.signature(&e.labels))),
            );
            out
        }
    }
}

#[cfg(test)]
mod tests {
    //! Kernel tests; matching with `on`/`ignoring`/`group_*` is tested through queries in
    //! `eval_tests.rs`, where the parser builds the modifiers.
    use super::*;

    fn elem(pairs: &[(&str, &str)], v: f64) -> Elem {
        Elem {
            labels: Labels::from_pairs(pairs.iter().copied()),
            v,
        }
    }

    #[test]
    fn scalar_arithmetic_follows_ieee_and_go() {
        assert_eq!(scalar_scalar(BinOp::Mod, -7.0, 3.0), -1.0);
        assert_eq!(scalar_scalar(BinOp::Pow, 2.0, 10.0), 1024.0);
        assert_eq!(scalar_scalar(BinOp::Div, 1.0, 0.0), f64::INFINITY);
        assert!(scalar_scalar(BinOp::Mod, 1.0, 0.0).is_nan());
        assert_eq!(scalar_scalar(BinOp::Gt, 2.0, 1.0), 1.0);
        assert_eq!(scalar_scalar(BinOp::Eq, f64::NAN, f64::NAN), 0.0);
    }

    #[test]
    fn scalar_on_the_left_of_a_comparison_keeps_the_vector_value() {
        let v = vec![
            elem(&[("__name__", "m"), ("a", "1")], 1.0),
            elem(&[("__name__", "m"), ("a", "2")], 5.0),
        ];
        // 3 < m keeps only the element whose value is above 3, with its own value and name.
        let out = vector_scalar(BinOp::Lt, v.clone(), 3.0, true, false);
        assert_eq!(out, vec![elem(&[("__name__", "m"), ("a", "2")], 5.0)]);
        // With bool every element stays, valued 0/1, without the name.
        let out = vector_scalar(BinOp::Lt, v.clone(), 3.0, true, true);
        assert_eq!(
            out,
            vec![elem(&[("a", "1")], 0.0), elem(&[("a", "2")], 1.0)]
        );
        // 10 - m: the scalar is the minuend, the name is dropped.
        let out = vector_scalar(BinOp::Sub, v, 10.0, true, false);
        assert_eq!(
            out,
            vec![elem(&[("a", "1")], 9.0), elem(&[("a", "2")], 5.0)]
        );
    }

    #[test]
    fn set_operators_match_on_labels_without_name() {
        let lhs = vec![
            elem(&[("__name__", "x"), ("a", "1")], 1.0),
            elem(&[("__name__", "x"), ("a", "2")], 2.0),
        ];
        let rhs = vec![
            elem(&[("__name__", "y"), ("a", "2")], 20.0),
            elem(&[("__name__", "y"), ("a", "3")], 30.0),
        ];
        let vals = |v: Vec<Elem>| v.iter().map(|e| e.v).collect::<Vec<_>>();
        let run = |op| vector_vector(op, lhs.clone(), rhs.clone(), None).unwrap();
        assert_eq!(vals(run(BinOp::And)), [2.0]);
        assert_eq!(vals(run(BinOp::Unless)), [1.0]);
        assert_eq!(vals(run(BinOp::Or)), [1.0, 2.0, 30.0]);
    }
}
