//! A recursive-descent parser for LogQL, with Loki's positioned error messages.
//!
//! Grammar (a subset of Loki's `syntax.y`; `pipeline.rs` and `metric.rs` hold the rules for
//! stages and metric expressions):
//!
//! ```text
//! query     := expr $end
//! expr      := unary (binop [bool] [on|ignoring (labels)] [group_left|group_right [(labels)]] unary)*
//! unary     := '(' expr ')' | NUMBER | '-' NUMBER | vector '(' NUMBER ')'
//!            | rangeOp '(' [NUMBER ','] logRange ')' [grouping]
//!            | vectorOp [grouping] '(' [NUMBER ','] expr ')' [grouping]
//!            | logExpr
//! logExpr   := selector pipeline | '(' logExpr ')'
//! logRange  := selector (pipeline range | range [offset d] pipeline) [offset d] [unwrap]
//! selector  := '{' matcher (',' matcher)* '}'
//! ```
//!
//! What Loki accepts but this engine does not run (`approx_topk`) is refused with
//! [`QueryError::Unsupported`] naming it.

mod metric;
mod pipeline;

use super::ast::{Expr, LogQuery};
use super::error::{regex_error_message, QueryError};
use super::lexer::{Lexer, Tok, Token};
use model::{MatchOp, Matcher};

#[cfg(test)]
mod tests;

/// Loki's text for a selector that would match every stream.
pub(crate) const EMPTY_COMPATIBLE_SELECTOR: &str = "queries require at least one regexp or \
     equality matcher that does not have an empty-compatible value. For instance, app=~\".*\" \
     does not meet this requirement, but app=~\".+\" will";

/// Parses any LogQL query: a log query or a metric query.
pub fn parse_expr(text: &str) -> Result<Expr, QueryError> {
    let mut p = Parser::new(text);
    let expr = p.expr()?;
    p.expect_end()?;
    Ok(expr)
}

/// Parses a LogQL log query; a metric query is an error.
pub fn parse(text: &str) -> Result<LogQuery, QueryError> {
    match parse_expr(text)? {
        Expr::Log(q) => Ok(q),
        Expr::Metric(_) => Err(QueryError::whole_query(
            "a log query was expected, this is a metric query",
        )),
    }
}

/// Parses a bare stream selector, as `match[]` and `query=` on the metadata endpoints take.
pub fn parse_selector(text: &str) -> Result<Vec<Matcher>, QueryError> {
    let mut p = Parser::new(text);
    let m = p.selector()?;
    p.expect_end()?;
    Ok(m)
}

pub(crate) struct Parser<'a> {
    lexer: Lexer<'a>,
    peeked: Option<Token>,
    /// The next id for a range aggregation.
    next_range_id: usize,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Self {
        Parser {
            lexer: Lexer::new(text),
            peeked: None,
            next_range_id: 0,
        }
    }

    fn peek(&mut self) -> Result<&Token, QueryError> {
        if self.peeked.is_none() {
            self.peeked = Some(self.lexer.next_token()?);
        }
        match &self.peeked {
            Some(t) => Ok(t),
            // Filled just above.
            None => Err(QueryError::whole_query("internal parser error")),
        }
    }

    fn peek_tok(&mut self) -> Result<Tok, QueryError> {
        Ok(self.peek()?.tok.clone())
    }

    fn next(&mut self) -> Result<Token, QueryError> {
        match self.peeked.take() {
            Some(t) => Ok(t),
            None => self.lexer.next_token(),
        }
    }

    fn peek_ident(&mut self, word: &str) -> Result<bool, QueryError> {
        Ok(matches!(&self.peek()?.tok, Tok::Ident(w) if w == word))
    }

    fn expect(&mut self, want: Tok, name: &str) -> Result<Token, QueryError> {
        let t = self.next()?;
        if t.tok == want {
            Ok(t)
        } else {
            Err(unexpected(&t, &[name]))
        }
    }

    fn expect_end(&mut self) -> Result<(), QueryError> {
        let t = self.next()?;
        match t.tok {
            Tok::End => Ok(()),
            _ => Err(unexpected(&t, &[])),
        }
    }

    fn string(&mut self) -> Result<String, QueryError> {
        let t = self.next()?;
        match t.tok {
            Tok::Str(s) => Ok(s),
            _ => Err(unexpected(&t, &["STRING"])),
        }
    }

    fn ident(&mut self) -> Result<String, QueryError> {
        let t = self.next()?;
        match t.tok {
            Tok::Ident(s) => Ok(s),
            _ => Err(unexpected(&t, &["IDENTIFIER"])),
        }
    }

    /// `{a="b", ...}`, refusing selectors every stream satisfies.
    pub(crate) fn selector(&mut self) -> Result<Vec<Matcher>, QueryError> {
        let open = self.next()?;
        if open.tok != Tok::OpenBrace {
            return Err(unexpected(&open, &[]));
        }
        let mut matchers = Vec::new();
        if self.peek()?.tok == Tok::CloseBrace {
            self.next()?;
        } else {
            loop {
                matchers.push(self.matcher()?);
                let t = self.next()?;
                match t.tok {
                    Tok::Comma => continue,
                    Tok::CloseBrace => break,
                    _ => return Err(unexpected(&t, &["}", ","])),
                }
            }
        }
        // Loki refuses selectors that every stream could satisfy: they would scan everything.
        if matchers.iter().all(Matcher::matches_empty) {
            return Err(QueryError::whole_query(EMPTY_COMPATIBLE_SELECTOR));
        }
        Ok(matchers)
    }

    fn matcher(&mut self) -> Result<Matcher, QueryError> {
        let name = self.ident()?;
        let t = self.next()?;
        let op = match t.tok {
            Tok::Eq => MatchOp::Equal,
            Tok::Neq => MatchOp::NotEqual,
            Tok::Re => MatchOp::Regex,
            Tok::Nre => MatchOp::NotRegex,
            _ => return Err(unexpected(&t, &["=", "=~", "!~", "!="])),
        };
        let value = self.string()?;
        new_matcher(op, &name, &value)
    }

    /// A log expression: a selector and its pipeline, possibly in parentheses.
    pub(crate) fn log_expr(&mut self) -> Result<LogQuery, QueryError> {
        if self.peek()?.tok == Tok::OpenParen {
            self.next()?;
            let inner = self.log_expr()?;
            self.expect(Tok::CloseParen, ")")?;
            return Ok(inner);
        }
        let matchers = self.selector()?;
        let (pipeline, unwrap) = self.pipeline(false)?;
        debug_assert!(unwrap.is_none());
        Ok(LogQuery { matchers, pipeline })
    }
}

pub(crate) fn new_matcher(op: MatchOp, name: &str, value: &str) -> Result<Matcher, QueryError> {
    Matcher::new(op, name, value)
        .map_err(|e| QueryError::whole_query(regex_error_message(&e.pattern, &e.reason)))
}

/// Loki's yacc wording: `syntax error: unexpected X[, expecting A or B]`.
pub(crate) fn unexpected(t: &Token, expecting: &[&str]) -> QueryError {
    let mut msg = format!("syntax error: unexpected {}", t.tok);
    if !expecting.is_empty() {
        msg.push_str(", expecting ");
        msg.push_str(&expecting.join(" or "));
    }
    QueryError::syntax(t.pos, msg)
}

/// A range or offset duration: Go's syntax (`1.5h`, `300ms`) or Prometheus's units (`1d`,
/// `2w`, `1y`). Returns nanoseconds.
pub(crate) fn parse_range(text: &str) -> Option<i64> {
    if let Ok(secs) = super::pipeline::parse_go_duration(text) {
        return Some((secs * 1e9).round() as i64);
    }
    let mut total: i64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        let n: i64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (unit, scale) = [
            ("ms", 1_000_000i64),
            ("s", 1_000_000_000),
            ("m", 60_000_000_000),
            ("h", 3_600_000_000_000),
            ("d", 86_400_000_000_000),
            ("w", 604_800_000_000_000),
            ("y", 31_536_000_000_000_000),
        ]
        .into_iter()
        .find(|(u, _)| rest.starts_with(u))?;
        total = total.checked_add(n.checked_mul(scale)?)?;
        rest = &rest[unit.len()..];
    }
    Some(total)
}
