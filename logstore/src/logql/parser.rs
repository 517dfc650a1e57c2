//! A recursive-descent parser for LogQL log queries.
//!
//! Grammar of this slice (a subset of Loki's `syntax.y`):
//!
//! ```text
//! query     := logExpr $end
//! logExpr   := selector lineFilter* | '(' logExpr ')'
//! selector  := '{' matcher (',' matcher)* '}' | '{' '}'
//! matcher   := IDENTIFIER ('=' | '!=' | '=~' | '!~') STRING
//! lineFilter:= ('|=' | '!=' | '|~' | '!~') STRING
//! ```
//!
//! Everything else Loki accepts (metric queries, parser and formatting stages, label filters,
//! `or` alternatives, pattern filters, `ip()`) is recognised far enough to be refused with
//! [`QueryError::Unsupported`] naming it, rather than with a misleading syntax error.

use super::ast::LogQuery;
use super::error::{regex_error_message, QueryError};
use super::lexer::{Lexer, Tok, Token};
use super::line_filter::{LineFilter, LineFilterOp};
use model::{MatchOp, Matcher};

/// Loki's text for a selector that would match every stream.
pub(crate) const EMPTY_COMPATIBLE_SELECTOR: &str = "queries require at least one regexp or \
     equality matcher that does not have an empty-compatible value. For instance, app=~\".*\" \
     does not meet this requirement, but app=~\".+\" will";

/// Functions that start a metric query: range aggregations, vector aggregations and the rest.
const METRIC_FUNCTIONS: &[&str] = &[
    "rate",
    "rate_counter",
    "count_over_time",
    "bytes_over_time",
    "bytes_rate",
    "avg_over_time",
    "sum_over_time",
    "min_over_time",
    "max_over_time",
    "stdvar_over_time",
    "stddev_over_time",
    "quantile_over_time",
    "first_over_time",
    "last_over_time",
    "absent_over_time",
    "sum",
    "avg",
    "min",
    "max",
    "count",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "sort",
    "sort_desc",
    "approx_topk",
    "label_replace",
    "vector",
];

const PARSER_STAGES: &[&str] = &["json", "logfmt", "regexp", "pattern", "unpack"];
const FORMAT_STAGES: &[&str] = &["line_format", "label_format", "drop", "keep", "decolorize"];

/// Parses a LogQL log query.
pub fn parse(text: &str) -> Result<LogQuery, QueryError> {
    let mut p = Parser {
        lexer: Lexer::new(text),
        peeked: None,
    };
    let query = p.log_expr()?;
    let t = p.next()?;
    match t.tok {
        Tok::End => Ok(query),
        _ => Err(unexpected(&t, &[])),
    }
}

struct Parser<'a> {
    lexer: Lexer<'a>,
    peeked: Option<Token>,
}

impl Parser<'_> {
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

    fn next(&mut self) -> Result<Token, QueryError> {
        match self.peeked.take() {
            Some(t) => Ok(t),
            None => self.lexer.next_token(),
        }
    }

    fn log_expr(&mut self) -> Result<LogQuery, QueryError> {
        let t = self.peek()?.clone();
        match &t.tok {
            Tok::OpenParen => {
                self.next()?;
                let inner = self.log_expr()?;
                let close = self.next()?;
                if close.tok != Tok::CloseParen {
                    return Err(unexpected(&close, &[")"]));
                }
                Ok(inner)
            }
            Tok::Ident(name) if METRIC_FUNCTIONS.contains(&name.as_str()) => Err(
                QueryError::unsupported(format!("metric queries (`{name}`) are")),
            ),
            Tok::Number(_) | Tok::Operator("-") => Err(QueryError::unsupported(
                "metric queries (literals and binary operations) are",
            )),
            _ => {
                let matchers = self.selector()?;
                let line_filters = self.pipeline()?;
                Ok(LogQuery {
                    matchers,
                    line_filters,
                })
            }
        }
    }

    fn selector(&mut self) -> Result<Vec<Matcher>, QueryError> {
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
        let t = self.next()?;
        let Tok::Ident(name) = t.tok else {
            return Err(unexpected(&t, &["IDENTIFIER"]));
        };
        let t = self.next()?;
        let op = match t.tok {
            Tok::Eq => MatchOp::Equal,
            Tok::Neq => MatchOp::NotEqual,
            Tok::Re => MatchOp::Regex,
            Tok::Nre => MatchOp::NotRegex,
            _ => return Err(unexpected(&t, &["=", "=~", "!~", "!="])),
        };
        let t = self.next()?;
        let Tok::Str(value) = t.tok else {
            return Err(unexpected(&t, &["STRING"]));
        };
        Matcher::new(op, &name, &value)
            .map_err(|e| QueryError::whole_query(regex_error_message(&e.pattern, &e.reason)))
    }

    /// Zero or more pipeline stages; only line filters are executable in this slice.
    fn pipeline(&mut self) -> Result<Vec<LineFilter>, QueryError> {
        let mut filters = Vec::new();
        loop {
            let t = self.peek()?.clone();
            let op = match &t.tok {
                Tok::PipeExact => LineFilterOp::Contains,
                Tok::Neq => LineFilterOp::NotContains,
                Tok::PipeMatch => LineFilterOp::Regex,
                Tok::Nre => LineFilterOp::NotRegex,
                Tok::PipePattern | Tok::NotPipePattern => {
                    return Err(QueryError::unsupported(
                        "pattern line filters (`|>` and `!>`) are",
                    ))
                }
                Tok::Pipe => {
                    self.next()?;
                    return Err(self.unsupported_stage()?);
                }
                // The end of the query, or of a parenthesised log expression: the caller checks.
                _ => return Ok(filters),
            };
            self.next()?;
            let arg = self.next()?;
            match arg.tok {
                Tok::Str(pattern) => filters.push(LineFilter::new(op, &pattern)?),
                Tok::Ident(ref f) if f == "ip" => {
                    return Err(QueryError::unsupported("`ip()` line filters are"))
                }
                _ => return Err(unexpected(&arg, &["STRING", "ip"])),
            }
            if matches!(&self.peek()?.tok, Tok::Ident(w) if w == "or") {
                return Err(QueryError::unsupported(
                    "line filter alternatives (`or`) are",
                ));
            }
        }
    }

    /// What follows a lone `|`: a parser, a formatting stage or a label filter, none of which
    /// this slice runs. Returns the error to report.
    fn unsupported_stage(&mut self) -> Result<QueryError, QueryError> {
        let t = self.next()?;
        Ok(match &t.tok {
            Tok::Ident(name) if PARSER_STAGES.contains(&name.as_str()) => {
                QueryError::unsupported(format!("the `{name}` parser stage is"))
            }
            Tok::Ident(name) if FORMAT_STAGES.contains(&name.as_str()) => {
                QueryError::unsupported(format!("the `{name}` stage is"))
            }
            Tok::Ident(_) | Tok::OpenParen => {
                QueryError::unsupported("label filter expressions are")
            }
            _ => unexpected(&t, &[]),
        })
    }
}

/// Loki's yacc wording: `syntax error: unexpected X[, expecting A or B]`.
fn unexpected(t: &Token, expecting: &[&str]) -> QueryError {
    let mut msg = format!("syntax error: unexpected {}", t.tok);
    if !expecting.is_empty() {
        msg.push_str(", expecting ");
        msg.push_str(&expecting.join(" or "));
    }
    QueryError::syntax(t.pos, msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> LogQuery {
        parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn err(text: &str) -> String {
        match parse(text) {
            Ok(q) => panic!("{text} parsed as {q}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn selectors() {
        let q = ok(r#"{app="api", env!="dev", pod=~"api-.*", ns!~"kube-.+"}"#);
        assert_eq!(q.matchers.len(), 4);
        assert_eq!(q.matchers[2].op, MatchOp::Regex);
        assert_eq!(q.matchers[3].value, "kube-.+");
        assert!(q.line_filters.is_empty());
        assert_eq!(
            q.to_string(),
            r#"{app="api", env!="dev", pod=~"api-.*", ns!~"kube-.+"}"#
        );
        // Not empty-compatible: `!= ""` and `!~ ""` reject the empty value.
        ok(r#"{app!=""}"#);
        ok(r#"{app=~".+"}"#);
        ok("{app=`raw`}");
        ok("  (  {a=\"b\"} |= \"x\" )  ");
    }

    #[test]
    fn line_filters() {
        let q = ok(r#"{app="api"} |= "error" != `debug` |~ "time(out)?" !~ "(?i)health""#);
        let ops: Vec<_> = q.line_filters.iter().map(|f| f.op()).collect();
        assert_eq!(
            ops,
            [
                LineFilterOp::Contains,
                LineFilterOp::NotContains,
                LineFilterOp::Regex,
                LineFilterOp::NotRegex
            ]
        );
        assert_eq!(q.line_filters[1].pattern(), "debug");
        let q = ok("{app=\"api\"} |= \"a\\\"b\" # trailing comment");
        assert_eq!(q.line_filters[0].pattern(), "a\"b");
    }

    #[test]
    fn syntax_errors_carry_positions() {
        let cases = [
            (
                r#"{foo="bar""#,
                "parse error at line 1, col 11: syntax error: unexpected $end, expecting } or ,",
            ),
            (
                r#"{foo="bar"} |~"#,
                "parse error at line 1, col 15: syntax error: unexpected $end, expecting STRING or ip",
            ),
            (
                r#"{foo="bar"} "foo""#,
                "parse error at line 1, col 13: syntax error: unexpected STRING",
            ),
            (
                r#"{foo="bar"} foo"#,
                "parse error at line 1, col 13: syntax error: unexpected IDENTIFIER",
            ),
            (
                r#"{foo="bar}"#,
                "parse error at line 1, col 6: literal not terminated",
            ),
            (
                r#"{a b="c"}"#,
                "parse error at line 1, col 4: syntax error: unexpected IDENTIFIER, expecting = or =~ or !~ or !=",
            ),
            (
                r#"{a=b}"#,
                "parse error at line 1, col 4: syntax error: unexpected IDENTIFIER, expecting STRING",
            ),
            (
                r#"{a="b",}"#,
                "parse error at line 1, col 8: syntax error: unexpected }, expecting IDENTIFIER",
            ),
            ("", "parse error at line 1, col 1: syntax error: unexpected $end"),
            (
                "{a=\"b\"}\n  |= 5",
                "parse error at line 2, col 6: syntax error: unexpected NUMBER, expecting STRING or ip",
            ),
            (
                r#"({a="b"}"#,
                "parse error at line 1, col 9: syntax error: unexpected $end, expecting )",
            ),
            (
                r#"{a="b"} @"#,
                "parse error at line 1, col 9: syntax error: unexpected character '@'",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(err(text), want, "{text}");
        }
    }

    #[test]
    fn empty_compatible_selectors_are_refused() {
        let want = format!("parse error : {EMPTY_COMPATIBLE_SELECTOR}");
        for text in [
            r#"{}"#,
            r#"{app=~".*"}"#,
            r#"{a!="x"}"#,
            r#"{a="", b!~"y"}"#,
        ] {
            assert_eq!(err(text), want, "{text}");
        }
    }

    #[test]
    fn bad_regexes_are_parse_errors() {
        assert_eq!(
            err(r#"{a=~"("}"#),
            "parse error : error parsing regexp: unclosed group: `(`"
        );
        assert_eq!(
            err(r#"{a="b"} |~ "x[""#),
            "parse error : error parsing regexp: unclosed character class: `x[`"
        );
    }

    #[test]
    fn unsupported_constructs_are_named() {
        let cases = [
            (
                r#"count_over_time({a="b"}[5m])"#,
                "metric queries (`count_over_time`) are",
            ),
            (
                r#"sum by (level) (rate({a="b"}[1m]))"#,
                "metric queries (`sum`) are",
            ),
            ("vector(1)+vector(1)", "metric queries (`vector`) are"),
            (
                "1 + 1",
                "metric queries (literals and binary operations) are",
            ),
            (r#"{a="b"} | json"#, "the `json` parser stage is"),
            (
                r#"{a="b"} |= "x" | logfmt | level="error""#,
                "the `logfmt` parser stage is",
            ),
            (
                r#"{a="b"} | line_format "{{.a}}""#,
                "the `line_format` stage is",
            ),
            (r#"{a="b"} | level="error""#, "label filter expressions are"),
            (
                r#"{a="b"} |= "x" or "y""#,
                "line filter alternatives (`or`) are",
            ),
            (
                r#"{a="b"} |> "<_> x""#,
                "pattern line filters (`|>` and `!>`) are",
            ),
            (r#"{a="b"} |= ip("10.0.0.0/8")"#, "`ip()` line filters are"),
        ];
        for (text, what) in cases {
            match parse(text) {
                Err(QueryError::Unsupported { what: got }) => assert_eq!(got, what, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
        assert_eq!(
            parse(r#"{a="b"} | json"#).unwrap_err().to_string(),
            "the `json` parser stage is not supported by this log store yet"
        );
    }
}
