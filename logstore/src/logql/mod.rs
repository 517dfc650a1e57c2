//! LogQL front end: lexer, parser, AST and line filter semantics. Pure code: nothing here
//! touches the index, so the store and any future in-memory engine share the same semantics.

mod ast;
mod error;
mod lexer;
mod line_filter;
mod parser;

pub use ast::LogQuery;
pub use error::{Pos, QueryError};
pub use line_filter::{matches_all, LineFilter, LineFilterOp};
pub use parser::parse;
