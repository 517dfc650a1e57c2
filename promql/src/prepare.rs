//! The pass before evaluation: walks the syntax tree once, refuses what this engine cannot
//! evaluate (before any storage is read), then fetches every selector's data for all the steps
//! it will be evaluated at, subqueries included.

use crate::aggregate::AggOp;
use crate::binary;
use crate::error::Error;
use crate::functions;
use crate::limits::Limits;
use crate::selector::{duration_ms, pinned_time, EvalSpan, FetchPlan, Fetched, QueryTimes};
use model::Querier;
use promql_parser::parser::{Expr, SubqueryExpr, VectorSelector};
use std::time::Duration;

/// The step of a subquery written without one (`x[5m:]`). Prometheus uses the global rule
/// evaluation interval, whose default is one minute.
pub(crate) const DEFAULT_SUBQUERY_STEP: Duration = Duration::from_secs(60);

/// One selector to fetch, and how.
struct Wanted<'e> {
    vs: &'e VectorSelector,
    plan: FetchPlan,
}

/// What the walk needs to know besides the node.
struct Walk {
    lookback: i64,
    times: QueryTimes,
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
    let walk = Walk { lookback, times };
    let span = EvalSpan {
        start: times.start,
        end: times.end,
    };
    collect(expr, &walk, span, &mut wanted)?;
    let mut fetched = Fetched::default();
    for w in wanted {
        fetched.fetch(querier, w.vs, w.plan, times, limits)?;
    }
    Ok(fetched)
}

/// Refuses what this engine cannot evaluate, without reading storage.
pub(crate) fn check(expr: &Expr) -> Result<(), Error> {
    // Times and lookback only size fetch windows, which a check does not use.
    let walk = Walk {
        lookback: 0,
        times: QueryTimes { start: 0, end: 0 },
    };
    collect(expr, &walk, EvalSpan { start: 0, end: 0 }, &mut Vec::new())
}

/// The step of a subquery in ms, which must be positive.
pub(crate) fn subquery_step(sq: &SubqueryExpr) -> Result<i64, Error> {
    let step = duration_ms(sq.step.unwrap_or(DEFAULT_SUBQUERY_STEP));
    if step <= 0 {
        return Err(Error::Parse(
            "zero or negative subquery step widths are not accepted".into(),
        ));
    }
    Ok(step)
}

fn collect<'e>(
    expr: &'e Expr,
    walk: &Walk,
    span: EvalSpan,
    out: &mut Vec<Wanted<'e>>,
) -> Result<(), Error> {
    match expr {
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => Ok(()),
        Expr::Paren(p) => collect(&p.expr, walk, span, out),
        Expr::Unary(u) => collect(&u.expr, walk, span, out),
        Expr::VectorSelector(vs) => {
            out.push(Wanted {
                vs,
                plan: FetchPlan {
                    window: walk.lookback,
                    is_range: false,
                    span,
                },
            });
            Ok(())
        }
        Expr::MatrixSelector(ms) => {
            out.push(Wanted {
                vs: &ms.vs,
                plan: FetchPlan {
                    window: duration_ms(ms.range),
                    is_range: true,
                    span,
                },
            });
            Ok(())
        }
        Expr::Aggregate(a) => {
            AggOp::from_token(a.op)?;
            if let Some(p) = &a.param {
                collect(p, walk, span, out)?;
            }
            collect(&a.expr, walk, span, out)
        }
        Expr::Binary(b) => {
            binary::check(b)?;
            collect(&b.lhs, walk, span, out)?;
            collect(&b.rhs, walk, span, out)
        }
        Expr::Call(c) => {
            functions::check_name(c.func.name)?;
            for arg in &c.args.args {
                collect(arg, walk, span, out)?;
            }
            Ok(())
        }
        Expr::Subquery(sq) => {
            subquery_step(sq)?;
            let at = sq.at.as_ref();
            let offset = sq.offset.as_ref();
            let inner = EvalSpan {
                start: pinned_time(at, offset, span.start, walk.times)
                    .saturating_sub(duration_ms(sq.range)),
                end: pinned_time(at, offset, span.end, walk.times),
            };
            collect(&sq.expr, walk, inner, out)
        }
        Expr::Extension(_) => Err(Error::unsupported("extension expressions")),
    }
}
