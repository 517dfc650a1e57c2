//! The parsed form of LogQL: log queries (a selector and a pipeline) and metric expressions
//! (range aggregations over log queries, vector aggregations, binary operations, literals).

use super::line_filter::LineFilter;
use super::pipeline::Stage;
use model::Matcher;
use std::fmt;

/// Any LogQL query.
#[derive(Clone, Debug)]
pub enum Expr {
    /// A log query: returns lines.
    Log(LogQuery),
    /// A metric query: returns samples.
    Metric(MetricExpr),
}

/// A log query: a stream selector and the pipeline stages that follow it, in query order.
///
/// The parser guarantees at least one matcher that rejects the empty value, so a query never
/// selects every stream.
#[derive(Clone, Debug)]
pub struct LogQuery {
    pub matchers: Vec<Matcher>,
    pub pipeline: Vec<Stage>,
}

impl LogQuery {
    /// The single-alternative line filters at the head of the pipeline. They see the raw stored
    /// line, so the store may use them to narrow candidates before running the pipeline (which
    /// checks them again). Filters after a parser still see the raw line, but a `line_format`
    /// or `decolorize` changes it, so the prefix stops at the first stage that is not a filter.
    pub fn leading_line_filters(&self) -> Vec<LineFilter> {
        let mut out = Vec::new();
        for stage in &self.pipeline {
            match stage {
                Stage::LineFilter(group) => {
                    if let [only] = group.alternatives.as_slice() {
                        out.push(only.clone());
                    }
                }
                _ => break,
            }
        }
        out
    }
}

/// LogQL form: `{app="api", env!="dev"} |= "error" | json`.
impl fmt::Display for LogQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, m) in self.matchers.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{m}")?;
        }
        f.write_str("}")?;
        for stage in &self.pipeline {
            write!(f, " {stage}")?;
        }
        Ok(())
    }
}

/// How the value of each line is taken in a range aggregation.
#[derive(Clone, Debug, PartialEq)]
pub enum Unwrap {
    /// `| unwrap name`: the label parsed as a float.
    Number(String),
    /// `| unwrap duration(name)` or `duration_seconds(name)`: a Go duration, in seconds.
    Duration(String),
    /// `| unwrap bytes(name)`: a byte size such as `1.5KiB`.
    Bytes(String),
}

impl Unwrap {
    pub fn label(&self) -> &str {
        match self {
            Unwrap::Number(l) | Unwrap::Duration(l) | Unwrap::Bytes(l) => l,
        }
    }
}

/// `selector pipeline [range] [offset d] [| unwrap x [| label filters]]`.
#[derive(Clone, Debug)]
pub struct LogRange {
    pub query: LogQuery,
    pub range_ns: i64,
    pub offset_ns: i64,
    pub unwrap: Option<Unwrap>,
    /// Label filters after `unwrap` (`| unwrap x | __error__=""`).
    pub post_unwrap: Vec<Stage>,
}

/// The range aggregation functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeOp {
    CountOverTime,
    Rate,
    RateCounter,
    BytesOverTime,
    BytesRate,
    AbsentOverTime,
    SumOverTime,
    AvgOverTime,
    MinOverTime,
    MaxOverTime,
    StddevOverTime,
    StdvarOverTime,
    QuantileOverTime,
    FirstOverTime,
    LastOverTime,
}

impl RangeOp {
    pub fn from_name(name: &str) -> Option<RangeOp> {
        Some(match name {
            "count_over_time" => RangeOp::CountOverTime,
            "rate" => RangeOp::Rate,
            "rate_counter" => RangeOp::RateCounter,
            "bytes_over_time" => RangeOp::BytesOverTime,
            "bytes_rate" => RangeOp::BytesRate,
            "absent_over_time" => RangeOp::AbsentOverTime,
            "sum_over_time" => RangeOp::SumOverTime,
            "avg_over_time" => RangeOp::AvgOverTime,
            "min_over_time" => RangeOp::MinOverTime,
            "max_over_time" => RangeOp::MaxOverTime,
            "stddev_over_time" => RangeOp::StddevOverTime,
            "stdvar_over_time" => RangeOp::StdvarOverTime,
            "quantile_over_time" => RangeOp::QuantileOverTime,
            "first_over_time" => RangeOp::FirstOverTime,
            "last_over_time" => RangeOp::LastOverTime,
            _ => return None,
        })
    }

    /// Whether the function needs `| unwrap` (true), refuses it (false), or takes either
    /// (`rate`, None).
    pub fn needs_unwrap(self) -> Option<bool> {
        match self {
            RangeOp::CountOverTime
            | RangeOp::BytesOverTime
            | RangeOp::BytesRate
            | RangeOp::AbsentOverTime => Some(false),
            RangeOp::Rate => None,
            _ => Some(true),
        }
    }
}

/// `by (a, b)` or `without (a, b)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grouping {
    pub without: bool,
    pub labels: Vec<String>,
}

/// The vector aggregation operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VectorOp {
    Sum,
    Avg,
    Min,
    Max,
    Count,
    Stddev,
    Stdvar,
    Topk,
    Bottomk,
    Sort,
    SortDesc,
}

impl VectorOp {
    pub fn from_name(name: &str) -> Option<VectorOp> {
        Some(match name {
            "sum" => VectorOp::Sum,
            "avg" => VectorOp::Avg,
            "min" => VectorOp::Min,
            "max" => VectorOp::Max,
            "count" => VectorOp::Count,
            "stddev" => VectorOp::Stddev,
            "stdvar" => VectorOp::Stdvar,
            "topk" => VectorOp::Topk,
            "bottomk" => VectorOp::Bottomk,
            "sort" => VectorOp::Sort,
            "sort_desc" => VectorOp::SortDesc,
            _ => return None,
        })
    }
}

/// Binary operators, arithmetic, comparison and set operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    And,
    Or,
    Unless,
}

impl BinOp {
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinOp::Eq | BinOp::Ne | BinOp::Gt | BinOp::Ge | BinOp::Lt | BinOp::Le
        )
    }

    pub fn is_set(self) -> bool {
        matches!(self, BinOp::And | BinOp::Or | BinOp::Unless)
    }

    /// Precedence, higher binds tighter (Loki's: `or` < `and unless` < comparisons < `+ -` <
    /// `* / %` < `^`).
    pub fn precedence(self) -> u8 {
        match self {
            BinOp::Or => 1,
            BinOp::And | BinOp::Unless => 2,
            BinOp::Eq | BinOp::Ne | BinOp::Gt | BinOp::Ge | BinOp::Lt | BinOp::Le => 3,
            BinOp::Add | BinOp::Sub => 4,
            BinOp::Mul | BinOp::Div | BinOp::Mod => 5,
            BinOp::Pow => 6,
        }
    }
}

/// Which side of a many-to-one match is the "many" side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cardinality {
    OneToOne,
    /// `group_left(extra labels)`
    ManyToOne(Vec<String>),
    /// `group_right(extra labels)`
    OneToMany(Vec<String>),
}

/// `on(...)`/`ignoring(...)` and `group_left/right`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VectorMatching {
    /// `Some(true, labels)` for `on`, `Some(false, labels)` for `ignoring`.
    pub on: Option<(bool, Vec<String>)>,
    pub card: Cardinality,
}

/// A metric expression.
#[derive(Clone, Debug)]
pub enum MetricExpr {
    /// A range aggregation; `id` numbers the log ranges of a query so the store can hand the
    /// evaluator each one's samples.
    Range {
        id: usize,
        op: RangeOp,
        param: Option<f64>,
        range: Box<LogRange>,
        grouping: Option<Grouping>,
    },
    Vector {
        op: VectorOp,
        param: Option<f64>,
        grouping: Option<Grouping>,
        expr: Box<MetricExpr>,
    },
    Binary {
        op: BinOp,
        bool_modifier: bool,
        matching: VectorMatching,
        lhs: Box<MetricExpr>,
        rhs: Box<MetricExpr>,
    },
    Literal(f64),
    /// `vector(x)`: one sample without labels.
    VectorLiteral(f64),
    /// `label_replace(expr, "dst", "replacement", "src", "regex")`.
    LabelReplace {
        expr: Box<MetricExpr>,
        replace: LabelReplace,
    },
}

/// The arguments of `label_replace`, the regex compiled anchored (`^(?:regex)$`) as Loki and
/// Prometheus compile it.
#[derive(Clone, Debug)]
pub struct LabelReplace {
    pub dst: String,
    pub replacement: String,
    pub src: String,
    pub regex: regex::Regex,
}

impl LabelReplace {
    /// The sample's labels after the replacement: unchanged when the regex does not match the
    /// source label's value (empty when absent); otherwise `dst` is set to the expanded
    /// replacement (`$1`, `${name}`), or removed when that is empty.
    pub fn apply(&self, labels: &model::Labels) -> model::Labels {
        let value = labels.get(&self.src).unwrap_or_default();
        let Some(caps) = self.regex.captures(value) else {
            return labels.clone();
        };
        let mut out = String::new();
        caps.expand(&self.replacement, &mut out);
        if out.is_empty() {
            labels.without(&[self.dst.as_str()])
        } else {
            labels.with(&self.dst, &out)
        }
    }
}

impl MetricExpr {
    /// Calls `f` on every range aggregation's log range, with its id.
    pub fn for_each_range<'a>(&'a self, f: &mut dyn FnMut(usize, RangeOp, &'a LogRange)) {
        match self {
            MetricExpr::Range { id, op, range, .. } => f(*id, *op, range),
            MetricExpr::Vector { expr, .. } | MetricExpr::LabelReplace { expr, .. } => {
                expr.for_each_range(f)
            }
            MetricExpr::Binary { lhs, rhs, .. } => {
                lhs.for_each_range(f);
                rhs.for_each_range(f);
            }
            MetricExpr::Literal(_) | MetricExpr::VectorLiteral(_) => {}
        }
    }

    /// Whether the expression yields a scalar (a number literal or arithmetic on them).
    pub fn is_scalar(&self) -> bool {
        match self {
            MetricExpr::Literal(_) => true,
            MetricExpr::Binary { lhs, rhs, .. } => lhs.is_scalar() && rhs.is_scalar(),
            _ => false,
        }
    }
}
