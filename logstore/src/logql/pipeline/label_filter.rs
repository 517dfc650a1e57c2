//! Label filter expressions: string matchers, numeric, duration and byte-size comparisons,
//! combined with `and` (also written `,` or a space) and `or`, with parentheses.

use super::units::{parse_bytes, parse_go_duration};
use super::{Row, LABEL_FILTER_ERR};
use crate::logql::ip::IpFilter;
use model::Matcher;
use std::fmt;

/// Comparison operators of numeric label filters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

impl CmpOp {
    pub fn apply(self, a: f64, b: f64) -> bool {
        match self {
            CmpOp::Eq => a == b,
            CmpOp::Ne => a != b,
            CmpOp::Gt => a > b,
            CmpOp::Ge => a >= b,
            CmpOp::Lt => a < b,
            CmpOp::Le => a <= b,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
        }
    }
}

/// A label filter expression.
#[derive(Clone, Debug)]
pub enum LabelFilter {
    And(Box<LabelFilter>, Box<LabelFilter>),
    Or(Box<LabelFilter>, Box<LabelFilter>),
    /// `name op "value"`; an absent label is the empty string.
    Str(Matcher),
    /// `name op 42.5`
    Number {
        name: String,
        op: CmpOp,
        value: f64,
    },
    /// `name op 1.5s`; both sides in seconds.
    Duration {
        name: String,
        op: CmpOp,
        secs: f64,
        text: String,
    },
    /// `name op 10KB`; both sides in bytes.
    Bytes {
        name: String,
        op: CmpOp,
        bytes: f64,
        text: String,
    },
    /// `name = ip("...")` or `name != ip("...")`: the value holds an address in the pattern.
    Ip {
        name: String,
        negated: bool,
        filter: IpFilter,
    },
}

impl LabelFilter {
    /// Whether the row passes. Numeric filters follow Loki: a row that already carries an
    /// error passes (only string filters such as `__error__=""` may remove it), a row without
    /// the label is dropped, and a value that does not convert sets `LabelFilterErr` and passes.
    pub fn process(&self, row: &mut Row) -> bool {
        match self {
            LabelFilter::And(a, b) => a.process(row) && b.process(row),
            LabelFilter::Or(a, b) => a.process(row) || b.process(row),
            LabelFilter::Str(m) => m.matches(row.get(&m.name).unwrap_or_default()),
            LabelFilter::Number { name, op, value } => numeric(row, name, *op, *value, |s| {
                s.parse::<f64>()
                    .map_err(|_| format!("strconv.ParseFloat: parsing {s:?}: invalid syntax"))
            }),
            LabelFilter::Duration { name, op, secs, .. } => {
                numeric(row, name, *op, *secs, parse_go_duration)
            }
            LabelFilter::Bytes {
                name, op, bytes, ..
            } => numeric(row, name, *op, *bytes, parse_bytes),
            // As Loki: a row with an error passes, a row without the label is dropped (by
            // `!=` too), otherwise the value is searched for addresses like a line.
            LabelFilter::Ip {
                name,
                negated,
                filter,
            } => {
                if row.has_error() {
                    return true;
                }
                row.get(name).is_some_and(|v| filter.matches(v) != *negated)
            }
        }
    }
}

fn numeric(
    row: &mut Row,
    name: &str,
    op: CmpOp,
    want: f64,
    convert: fn(&str) -> Result<f64, String>,
) -> bool {
    if row.has_error() {
        return true;
    }
    let Some(v) = row.get(name) else {
        return false;
    };
    match convert(v) {
        Ok(got) => op.apply(got, want),
        Err(e) => {
            row.set_error(LABEL_FILTER_ERR, e);
            true
        }
    }
}

impl fmt::Display for LabelFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LabelFilter::And(a, b) => write!(f, "( {a} and {b} )"),
            LabelFilter::Or(a, b) => write!(f, "( {a} or {b} )"),
            LabelFilter::Str(m) => write!(f, "{m}"),
            LabelFilter::Number { name, op, value } => write!(f, "{name}{}{value}", op.as_str()),
            LabelFilter::Duration { name, op, text, .. }
            | LabelFilter::Bytes { name, op, text, .. } => {
                write!(f, "{name}{}{text}", op.as_str())
            }
            LabelFilter::Ip {
                name,
                negated,
                filter,
            } => write!(f, "{name}{}{filter}", if *negated { "!=" } else { "=" }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logql::pipeline::ERROR_LABEL;
    use model::{Labels, MatchOp};

    fn row(pairs: &[(&str, &str)]) -> Row {
        let mut r = Row::new(0, "line", &Labels::from_pairs([("app", "a")]), &[]);
        for (k, v) in pairs {
            r.labels.insert(k.to_string(), v.to_string());
        }
        r
    }

    fn num(name: &str, op: CmpOp, value: f64) -> LabelFilter {
        LabelFilter::Number {
            name: name.into(),
            op,
            value,
        }
    }

    #[test]
    fn numeric_comparisons_and_errors() {
        assert!(num("status", CmpOp::Ge, 500.0).process(&mut row(&[("status", "503")])));
        assert!(!num("status", CmpOp::Ge, 500.0).process(&mut row(&[("status", "200")])));
        assert!(!num("status", CmpOp::Ge, 500.0).process(&mut row(&[])));
        let mut r = row(&[("status", "abc")]);
        assert!(num("status", CmpOp::Ge, 500.0).process(&mut r));
        assert_eq!(r.get(ERROR_LABEL), Some(LABEL_FILTER_ERR));
    }

    #[test]
    fn ip_label_filters() {
        let ip = |negated| LabelFilter::Ip {
            name: "addr".into(),
            negated,
            filter: IpFilter::parse("10.0.0.0/8").unwrap(),
        };
        assert!(ip(false).process(&mut row(&[("addr", "10.1.2.3")])));
        assert!(!ip(false).process(&mut row(&[("addr", "11.1.2.3")])));
        assert!(ip(true).process(&mut row(&[("addr", "11.1.2.3")])));
        assert!(!ip(true).process(&mut row(&[("addr", "10.1.2.3:443")])));
        // A missing label drops the row for both operators; an errored row passes.
        assert!(!ip(false).process(&mut row(&[])));
        assert!(!ip(true).process(&mut row(&[])));
        assert!(ip(false).process(&mut row(&[(ERROR_LABEL, "JSONParserErr")])));
        assert_eq!(ip(true).to_string(), r#"addr!=ip("10.0.0.0/8")"#);
    }

    #[test]
    fn durations_and_bytes() {
        let d = LabelFilter::Duration {
            name: "took".into(),
            op: CmpOp::Gt,
            secs: 1.0,
            text: "1s".into(),
        };
        assert!(d.process(&mut row(&[("took", "1.5s")])));
        assert!(!d.process(&mut row(&[("took", "900ms")])));
        let b = LabelFilter::Bytes {
            name: "size".into(),
            op: CmpOp::Le,
            bytes: 1024.0,
            text: "1KiB".into(),
        };
        assert!(b.process(&mut row(&[("size", "1000B")])));
        assert!(!b.process(&mut row(&[("size", "2KB")])));
    }

    #[test]
    fn and_or() {
        let s = |n: &str, v: &str| LabelFilter::Str(Matcher::new(MatchOp::Equal, n, v).unwrap());
        let f = LabelFilter::Or(
            Box::new(LabelFilter::And(
                Box::new(s("a", "1")),
                Box::new(s("b", "2")),
            )),
            Box::new(s("c", "3")),
        );
        assert!(f.process(&mut row(&[("a", "1"), ("b", "2")])));
        assert!(f.process(&mut row(&[("c", "3")])));
        assert!(!f.process(&mut row(&[("a", "1")])));
        // An absent label is the empty string for string filters.
        assert!(s("missing", "").process(&mut row(&[])));
    }
}
