//! LogQL front end and the pure half of its engine: lexer, parser, AST, the pipeline stages
//! and line filter semantics. Nothing here touches the index, so the store and any other
//! evaluator (the tests' naive one included) share the same semantics.

mod ast;
mod error;
mod ip;
mod lexer;
mod line_filter;
mod parser;
pub mod pipeline;

pub use ast::{
    BinOp, Cardinality, Expr, Grouping, LabelReplace, LogQuery, LogRange, MetricExpr, RangeOp,
    Unwrap, VectorMatching, VectorOp,
};
pub use error::{Pos, QueryError};
pub use ip::IpFilter;
pub use line_filter::{matches_all, LineFilter, LineFilterOp};
pub use parser::{parse, parse_expr, parse_selector};
