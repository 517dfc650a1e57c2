//! The pass before evaluation: walks the syntax tree once, refuses what this engine cannot
//! evaluate (before any storage is read), then fetches every selector's data for the whole
//! query range.

use crate::aggregate::AggOp;
use crate::binary;
use crate::call::Func;
use crate::error::Error;
use crate::limits::Limits;
use crate::selector::{duration_ms, Fetched, QueryTimes};
use model::Querier;
use promql_parser::parser::{Expr, VectorSelector};

/// One selector to fetch: how far back of its reference time a step looks, and whether it is
/// a range selector.
struct Wanted<'e> {
    vs: &'e VectorSelector,
    window: i64,
    is_range: bool,
}

/// Checks `expr` and fetches its selectors' data for evaluating it over `times`.
pub(crate) fn prepare(
    expr: &Expr,
    querier: &dyn Querier,
    times: QueryTimes,
    lookback: i64,
    limits: &mut Limits,
) -> Result<Fetched, Error> {
    let mut wanted = Vec::new();
    collect(expr, lookback, &mut wanted)?;
    let mut fetched = Fetched::default();
    for w in wanted {
        fetched.fetch(querier, w.vs, w.window, w.is_range, times, limits)?;
    }
    Ok(fetched)
}

/// Refuses what this engine cannot evaluate, without reading storage.
pub(crate) fn check(expr: &Expr) -> Result<(), Error> {
    // The lookback only sizes fetch windows, which a check does not use.
    collect(expr, 0, &mut Vec::new())
}

fn collect<'e>(expr: &'e Expr, lookback: i64, out: &mut Vec<Wanted<'e>>) -> Result<(), Error> {
    match expr {
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => Ok(()),
        Expr::Paren(p) => collect(&p.expr, lookback, out),
        Expr::Unary(u) => collect(&u.expr, lookback, out),
        Expr::VectorSelector(vs) => {
            out.push(Wanted {
                vs,
                window: lookback,
                is_range: false,
            });
            Ok(())
        }
        Expr::MatrixSelector(ms) => {
            out.push(Wanted {
                vs: &ms.vs,
                window: duration_ms(ms.range),
                is_range: true,
            });
            Ok(())
        }
        Expr::Aggregate(a) => {
            AggOp::from_token(a.op)?;
            if let Some(p) = &a.param {
                collect(p, lookback, out)?;
            }
            collect(&a.expr, lookback, out)
        }
        Expr::Binary(b) => {
            binary::check(b)?;
            collect(&b.lhs, lookback, out)?;
            collect(&b.rhs, lookback, out)
        }
        Expr::Call(c) => {
            Func::from_name(c.func.name)?;
            for arg in &c.args.args {
                collect(arg, lookback, out)?;
            }
            Ok(())
        }
        Expr::Subquery(_) => Err(Error::unsupported("subqueries")),
        Expr::Extension(_) => Err(Error::unsupported("extension expressions")),
    }
}
