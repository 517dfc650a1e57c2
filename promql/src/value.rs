//! Query results (the public [`Value`] and [`QueryResult`]) and the values the evaluator passes
//! between nodes while it evaluates one step ([`StepValue`]).

use model::{Labels, Sample, Series};
use std::borrow::Cow;

/// What a query returns, with the annotations Prometheus reports beside the data.
#[derive(Clone, Debug, PartialEq)]
pub struct QueryResult {
    pub value: Value,
    /// `PromQL warning: ...` annotations: the result may be wrong or incomplete.
    pub warnings: Vec<String>,
    /// `PromQL info: ...` annotations: the result is right but the query may not be.
    pub infos: Vec<String>,
}

/// A query's result value. Times are milliseconds since the Unix epoch.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Scalar {
        t: i64,
        v: f64,
    },
    String {
        t: i64,
        s: String,
    },
    /// The result of an instant query of an instant vector, sorted by labels.
    Vector(Vec<VectorElement>),
    /// The result of a range query (a scalar becomes one series with empty labels), or of an
    /// instant query of a range selector such as `up[5m]`. Series are sorted by labels.
    Matrix(Vec<Series>),
}

/// One element of an instant vector: a series' labels and its value at time `t`.
#[derive(Clone, Debug, PartialEq)]
pub struct VectorElement {
    pub labels: Labels,
    pub t: i64,
    pub v: f64,
}

/// One element of an instant vector while a step is evaluated; the step's time is implicit.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Elem {
    pub labels: Labels,
    pub v: f64,
}

/// The samples of one series inside a range selector's or subquery's window at the current
/// step. A range selector's window borrows from the data fetched for the whole query, so a step
/// copies no samples; a subquery's window owns the points it computed.
#[derive(Clone, Debug)]
pub(crate) struct Window<'a> {
    pub labels: Cow<'a, Labels>,
    pub samples: Cow<'a, [Sample]>,
}

/// The value of one expression node at one evaluation step.
#[derive(Debug)]
pub(crate) enum StepValue<'a> {
    Scalar(f64),
    String(String),
    Vector(Vec<Elem>),
    Matrix(Vec<Window<'a>>),
}

impl StepValue<'_> {
    /// The PromQL type name, as error messages spell it.
    pub fn type_name(&self) -> &'static str {
        match self {
            StepValue::Scalar(_) => "scalar",
            StepValue::String(_) => "string",
            StepValue::Vector(_) => "instant vector",
            StepValue::Matrix(_) => "range vector",
        }
    }
}
