//! Parsing pipeline stages: line filters with `or`, parsers, label filters, formatting stages,
//! and `| unwrap` with the label filters that may follow it.

use super::{new_matcher, unexpected, Parser};
use crate::logql::ast::Unwrap;
use crate::logql::error::{regex_error_message, QueryError};
use crate::logql::ip::IpFilter;
use crate::logql::lexer::Tok;
use crate::logql::line_filter::{LineFilter, LineFilterOp};
use crate::logql::pipeline::{
    parse_bytes, parse_go_duration, CmpOp, JsonPath, LabelFilter, LabelFmt, LabelSel,
    LineFilterGroup, ParserStage, Pattern, Stage, Template,
};
use model::MatchOp;

/// The stages of a pipeline, and the `unwrap` that ended it with the label filters after it.
pub(crate) type Pipeline = (Vec<Stage>, Option<(Unwrap, Vec<Stage>)>);

impl Parser<'_> {
    /// Zero or more stages. With `allow_unwrap`, a `| unwrap` ends the pipeline and is
    /// returned with the label filters after it appended to the stages as `post` filters.
    pub(crate) fn pipeline(&mut self, allow_unwrap: bool) -> Result<Pipeline, QueryError> {
        let mut stages = Vec::new();
        loop {
            let t = self.peek()?.clone();
            let op = match &t.tok {
                Tok::PipeExact => LineFilterOp::Contains,
                Tok::Neq => LineFilterOp::NotContains,
                Tok::PipeMatch => LineFilterOp::Regex,
                Tok::Nre => LineFilterOp::NotRegex,
                Tok::PipePattern => LineFilterOp::Pattern,
                Tok::NotPipePattern => LineFilterOp::NotPattern,
                Tok::Pipe => {
                    self.next()?;
                    if self.peek_ident("unwrap")? {
                        if !allow_unwrap {
                            let t = self.next()?;
                            return Err(QueryError::syntax(
                                t.pos,
                                "syntax error: unexpected unwrap",
                            ));
                        }
                        self.next()?;
                        let unwrap = self.unwrap_expr()?;
                        let mut post = Vec::new();
                        while self.peek()?.tok == Tok::Pipe {
                            self.next()?;
                            post.push(Stage::LabelFilter(self.label_filter_or()?));
                        }
                        return Ok((stages, Some((unwrap, post))));
                    }
                    stages.push(self.stage()?);
                    continue;
                }
                _ => return Ok((stages, None)),
            };
            self.next()?;
            let mut alternatives = vec![self.line_filter_arg(op)?];
            while self.peek_ident("or")? {
                self.next()?;
                alternatives.push(self.line_filter_arg(op)?);
            }
            stages.push(Stage::LineFilter(LineFilterGroup { alternatives }));
        }
    }

    fn line_filter_arg(&mut self, op: LineFilterOp) -> Result<LineFilter, QueryError> {
        let arg = self.next()?;
        match arg.tok {
            Tok::Str(pattern) => LineFilter::new(op, &pattern),
            Tok::Ident(ref f) if f == "ip" => {
                let pattern = self.ip_argument()?;
                LineFilter::ip(op, &pattern)
            }
            _ => Err(unexpected(&arg, &["STRING", "ip"])),
        }
    }

    /// `("pattern")` after `ip`.
    fn ip_argument(&mut self) -> Result<String, QueryError> {
        let open = self.next()?;
        if open.tok != Tok::OpenParen {
            return Err(unexpected(&open, &["("]));
        }
        let arg = self.next()?;
        let Tok::Str(pattern) = arg.tok else {
            return Err(unexpected(&arg, &["STRING"]));
        };
        let close = self.next()?;
        if close.tok != Tok::CloseParen {
            return Err(unexpected(&close, &[")"]));
        }
        Ok(pattern)
    }

    /// What follows a lone `|`.
    fn stage(&mut self) -> Result<Stage, QueryError> {
        let t = self.peek()?.clone();
        let Tok::Ident(name) = &t.tok else {
            if t.tok == Tok::OpenParen {
                return Ok(Stage::LabelFilter(self.label_filter_or()?));
            }
            let t = self.next()?;
            return Err(unexpected(&t, &[]));
        };
        let bad = |m: String| QueryError::whole_query(m);
        let stage = match name.as_str() {
            "json" => {
                self.next()?;
                let mut paths = Vec::new();
                for (label, source) in self.extraction_list()? {
                    paths.push(JsonPath::parse(&label, &source).map_err(bad)?);
                }
                Stage::Parser(ParserStage::Json(paths))
            }
            "logfmt" => {
                self.next()?;
                let (mut strict, mut keep_empty) = (false, false);
                while let Tok::Flag(f) = self.peek_tok()? {
                    let t = self.next()?;
                    match f.as_str() {
                        "strict" => strict = true,
                        "keep-empty" => keep_empty = true,
                        _ => return Err(unexpected(&t, &[])),
                    }
                }
                Stage::Parser(ParserStage::Logfmt {
                    strict,
                    keep_empty,
                    selected: self.extraction_list()?,
                })
            }
            "regexp" => {
                self.next()?;
                let re = self.string()?;
                let compiled = regex::Regex::new(&re)
                    .map_err(|e| bad(regex_error_message(&re, &e.to_string())))?;
                if compiled.capture_names().flatten().next().is_none() {
                    return Err(bad(format!(
                        "invalid regexp {re:?}: at least one named capture is required"
                    )));
                }
                Stage::Parser(ParserStage::Regexp(compiled))
            }
            "pattern" => {
                self.next()?;
                let p = self.string()?;
                Stage::Parser(ParserStage::Pattern(Pattern::parse(&p).map_err(bad)?))
            }
            "unpack" => {
                self.next()?;
                Stage::Parser(ParserStage::Unpack)
            }
            "line_format" => {
                self.next()?;
                let t = self.string()?;
                Stage::LineFormat(Template::parse(&t).map_err(bad)?)
            }
            "label_format" => {
                self.next()?;
                Stage::LabelFormat(self.label_format_list()?)
            }
            "drop" | "keep" => {
                let drop = name == "drop";
                self.next()?;
                let sels = self.label_sel_list()?;
                if drop {
                    Stage::Drop(sels)
                } else {
                    Stage::Keep(sels)
                }
            }
            "decolorize" => {
                self.next()?;
                Stage::Decolorize
            }
            _ => Stage::LabelFilter(self.label_filter_or()?),
        };
        Ok(stage)
    }

    /// `a, b="c.d"` after `json` or `logfmt`: (label, source). A bare name is its own source.
    /// The list is optional: it stops at anything that is not an identifier.
    fn extraction_list(&mut self) -> Result<Vec<(String, String)>, QueryError> {
        let mut out = Vec::new();
        while let Tok::Ident(label) = self.peek_tok()? {
            self.next()?;
            let source = if self.peek()?.tok == Tok::Eq {
                self.next()?;
                self.string()?
            } else {
                label.clone()
            };
            out.push((label, source));
            if self.peek()?.tok != Tok::Comma {
                break;
            }
            self.next()?;
        }
        Ok(out)
    }

    fn label_format_list(&mut self) -> Result<Vec<LabelFmt>, QueryError> {
        let mut out: Vec<LabelFmt> = Vec::new();
        loop {
            let t = self.peek()?.clone();
            let dst = self.ident()?;
            self.expect(Tok::Eq, "=")?;
            let f = match self.next()? {
                Token {
                    tok: Tok::Ident(src),
                    ..
                } => LabelFmt::Rename {
                    dst: dst.clone(),
                    src,
                },
                Token {
                    tok: Tok::Str(tpl), ..
                } => LabelFmt::Template {
                    dst: dst.clone(),
                    template: Template::parse(&tpl).map_err(QueryError::whole_query)?,
                },
                other => return Err(unexpected(&other, &["IDENTIFIER", "STRING"])),
            };
            let taken = out.iter().any(|o| match o {
                LabelFmt::Rename { dst: d, .. } | LabelFmt::Template { dst: d, .. } => *d == dst,
            });
            if taken {
                return Err(QueryError::syntax(
                    t.pos,
                    format!("multiple label name '{dst}' not allowed in a single format operation"),
                ));
            }
            out.push(f);
            if self.peek()?.tok != Tok::Comma {
                return Ok(out);
            }
            self.next()?;
        }
    }

    fn label_sel_list(&mut self) -> Result<Vec<LabelSel>, QueryError> {
        let mut out = Vec::new();
        loop {
            let name = self.ident()?;
            let op = match self.peek_tok()? {
                Tok::Eq => Some(MatchOp::Equal),
                Tok::Neq => Some(MatchOp::NotEqual),
                Tok::Re => Some(MatchOp::Regex),
                Tok::Nre => Some(MatchOp::NotRegex),
                _ => None,
            };
            out.push(match op {
                Some(op) => {
                    self.next()?;
                    let v = self.string()?;
                    LabelSel::Matcher(new_matcher(op, &name, &v)?)
                }
                None => LabelSel::Name(name),
            });
            if self.peek()?.tok != Tok::Comma {
                return Ok(out);
            }
            self.next()?;
        }
    }

    /// `name`, `duration(name)`, `duration_seconds(name)`, `bytes(name)`.
    fn unwrap_expr(&mut self) -> Result<Unwrap, QueryError> {
        let name = self.ident()?;
        if self.peek()?.tok != Tok::OpenParen {
            return Ok(Unwrap::Number(name));
        }
        self.next()?;
        let label = self.ident()?;
        self.expect(Tok::CloseParen, ")")?;
        match name.as_str() {
            "duration" | "duration_seconds" => Ok(Unwrap::Duration(label)),
            "bytes" => Ok(Unwrap::Bytes(label)),
            other => Err(QueryError::whole_query(format!(
                "invalid unwrap conversion function {other:?}"
            ))),
        }
    }

    /// `a or b`, where `and` binds tighter.
    pub(crate) fn label_filter_or(&mut self) -> Result<LabelFilter, QueryError> {
        let mut left = self.label_filter_and()?;
        while self.peek_ident("or")? {
            self.next()?;
            let right = self.label_filter_and()?;
            left = LabelFilter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    /// Filters joined by `and`, `,` or mere juxtaposition.
    fn label_filter_and(&mut self) -> Result<LabelFilter, QueryError> {
        let mut left = self.label_filter_primary()?;
        loop {
            let joined = match self.peek_tok()? {
                Tok::Ident(w) if w == "and" => {
                    self.next()?;
                    true
                }
                Tok::Comma => {
                    self.next()?;
                    true
                }
                Tok::Ident(w) if w != "or" => true,
                Tok::OpenParen => true,
                _ => false,
            };
            if !joined {
                return Ok(left);
            }
            let right = self.label_filter_primary()?;
            left = LabelFilter::And(Box::new(left), Box::new(right));
        }
    }

    fn label_filter_primary(&mut self) -> Result<LabelFilter, QueryError> {
        if self.peek()?.tok == Tok::OpenParen {
            self.next()?;
            let inner = self.label_filter_or()?;
            self.expect(Tok::CloseParen, ")")?;
            return Ok(inner);
        }
        let name = self.ident()?;
        let t = self.next()?;
        let op = match t.tok {
            Tok::Eq => Some(CmpOp::Eq),
            Tok::Operator("==") => Some(CmpOp::Eq),
            Tok::Neq => Some(CmpOp::Ne),
            Tok::Operator(">") => Some(CmpOp::Gt),
            Tok::Operator(">=") => Some(CmpOp::Ge),
            Tok::Operator("<") => Some(CmpOp::Lt),
            Tok::Operator("<=") => Some(CmpOp::Le),
            Tok::Re | Tok::Nre => None,
            _ => {
                return Err(unexpected(
                    &t,
                    &["=", "!=", "=~", "!~", "==", ">", ">=", "<", "<="],
                ))
            }
        };
        let v = self.next()?;
        match (v.tok, op) {
            (Tok::Str(s), _) => {
                let mop = match t.tok {
                    Tok::Eq => MatchOp::Equal,
                    Tok::Neq => MatchOp::NotEqual,
                    Tok::Re => MatchOp::Regex,
                    Tok::Nre => MatchOp::NotRegex,
                    _ => return Err(QueryError::syntax(v.pos, "syntax error: unexpected STRING")),
                };
                Ok(LabelFilter::Str(new_matcher(mop, &name, &s)?))
            }
            (Tok::Number(n), Some(op)) => numeric_filter(name, op, &n)
                .ok_or_else(|| QueryError::syntax(v.pos, format!("invalid number {n:?}"))),
            (Tok::Ident(f), _) if f == "ip" => {
                let negated = match t.tok {
                    Tok::Eq => false,
                    Tok::Neq => true,
                    _ => return Err(QueryError::syntax(v.pos, "syntax error: unexpected ip")),
                };
                let pattern = self.ip_argument()?;
                let filter = IpFilter::parse(&pattern).map_err(QueryError::whole_query)?;
                Ok(LabelFilter::Ip {
                    name,
                    negated,
                    filter,
                })
            }
            (tok, _) => Err(unexpected(
                &crate::logql::lexer::Token { tok, pos: v.pos },
                &["STRING", "NUMBER"],
            )),
        }
    }
}

use crate::logql::lexer::Token;

/// A number, a duration or a byte size, whichever the literal is.
fn numeric_filter(name: String, op: CmpOp, text: &str) -> Option<LabelFilter> {
    if let Ok(value) = text.parse::<f64>() {
        return Some(LabelFilter::Number { name, op, value });
    }
    if let Ok(secs) = parse_go_duration(text) {
        return Some(LabelFilter::Duration {
            name,
            op,
            secs,
            text: text.to_string(),
        });
    }
    parse_bytes(text).ok().map(|bytes| LabelFilter::Bytes {
        name,
        op,
        bytes,
        text: text.to_string(),
    })
}
