//! Parsing metric expressions: binary operations by precedence climbing, range and vector
//! aggregations, `vector()`, number literals, and log ranges with `offset` and `unwrap`.

use super::{parse_range, unexpected, Parser};
use crate::logql::ast::{
    BinOp, Cardinality, Expr, Grouping, LabelReplace, LogQuery, LogRange, MetricExpr, RangeOp,
    VectorMatching, VectorOp,
};
use crate::logql::error::QueryError;
use crate::logql::lexer::Tok;

impl Parser<'_> {
    pub(crate) fn expr(&mut self) -> Result<Expr, QueryError> {
        self.binary(0)
    }

    fn binary(&mut self, min_prec: u8) -> Result<Expr, QueryError> {
        let mut lhs = self.unary()?;
        loop {
            let Some(op) = self.peek_binop()? else {
                return Ok(lhs);
            };
            let prec = op.precedence();
            if prec < min_prec {
                return Ok(lhs);
            }
            let op_tok = self.next()?;
            let bool_modifier = if self.peek_ident("bool")? {
                self.next()?;
                true
            } else {
                false
            };
            if bool_modifier && !op.is_comparison() {
                return Err(QueryError::syntax(
                    op_tok.pos,
                    "bool modifier can only be used on comparison operators",
                ));
            }
            let matching = self.vector_matching()?;
            // `^` is right-associative; every other operator is left-associative.
            let next_min = if op == BinOp::Pow { prec } else { prec + 1 };
            let rhs = self.binary(next_min)?;
            let (Expr::Metric(l), Expr::Metric(r)) = (lhs, rhs) else {
                return Err(QueryError::syntax(
                    op_tok.pos,
                    "unexpected log query in a binary operation: only metric queries combine",
                ));
            };
            if op.is_set() && (l.is_scalar() || r.is_scalar()) {
                return Err(QueryError::whole_query(
                    "set operations (and, or, unless) are only allowed between vectors",
                ));
            }
            if op.is_comparison() && l.is_scalar() && r.is_scalar() && !bool_modifier {
                return Err(QueryError::whole_query(
                    "comparisons between scalars must use BOOL modifier",
                ));
            }
            lhs = Expr::Metric(MetricExpr::Binary {
                op,
                bool_modifier,
                matching,
                lhs: Box::new(l),
                rhs: Box::new(r),
            });
        }
    }

    fn peek_binop(&mut self) -> Result<Option<BinOp>, QueryError> {
        Ok(Some(match self.peek_tok()? {
            Tok::Operator("+") => BinOp::Add,
            Tok::Operator("-") => BinOp::Sub,
            Tok::Operator("*") => BinOp::Mul,
            Tok::Operator("/") => BinOp::Div,
            Tok::Operator("%") => BinOp::Mod,
            Tok::Operator("^") => BinOp::Pow,
            Tok::Operator("==") => BinOp::Eq,
            Tok::Neq => BinOp::Ne,
            Tok::Operator(">") => BinOp::Gt,
            Tok::Operator(">=") => BinOp::Ge,
            Tok::Operator("<") => BinOp::Lt,
            Tok::Operator("<=") => BinOp::Le,
            Tok::Ident(w) if w == "and" => BinOp::And,
            Tok::Ident(w) if w == "or" => BinOp::Or,
            Tok::Ident(w) if w == "unless" => BinOp::Unless,
            _ => return Ok(None),
        }))
    }

    fn vector_matching(&mut self) -> Result<VectorMatching, QueryError> {
        let mut m = VectorMatching {
            on: None,
            card: Cardinality::OneToOne,
        };
        if self.peek_ident("on")? || self.peek_ident("ignoring")? {
            let on = self.ident()? == "on";
            m.on = Some((on, self.label_list()?));
        }
        if self.peek_ident("group_left")? || self.peek_ident("group_right")? {
            let left = self.ident()? == "group_left";
            let extra = if self.peek()?.tok == Tok::OpenParen {
                self.label_list()?
            } else {
                Vec::new()
            };
            m.card = if left {
                Cardinality::ManyToOne(extra)
            } else {
                Cardinality::OneToMany(extra)
            };
        }
        Ok(m)
    }

    /// `(a, b)`, possibly empty.
    fn label_list(&mut self) -> Result<Vec<String>, QueryError> {
        self.expect(Tok::OpenParen, "(")?;
        let mut out = Vec::new();
        if self.peek()?.tok == Tok::CloseParen {
            self.next()?;
            return Ok(out);
        }
        loop {
            out.push(self.ident()?);
            let t = self.next()?;
            match t.tok {
                Tok::Comma => continue,
                Tok::CloseParen => return Ok(out),
                _ => return Err(unexpected(&t, &[",", ")"])),
            }
        }
    }

    fn grouping(&mut self) -> Result<Option<Grouping>, QueryError> {
        if self.peek_ident("by")? || self.peek_ident("without")? {
            let without = self.ident()? == "without";
            return Ok(Some(Grouping {
                without,
                labels: self.label_list()?,
            }));
        }
        Ok(None)
    }

    fn number(&mut self) -> Result<f64, QueryError> {
        let t = self.next()?;
        match &t.tok {
            Tok::Number(n) => n
                .parse::<f64>()
                .map_err(|_| QueryError::syntax(t.pos, format!("invalid number {n:?}"))),
            Tok::Operator("-") => Ok(-self.number()?),
            _ => Err(unexpected(&t, &["NUMBER"])),
        }
    }

    fn unary(&mut self) -> Result<Expr, QueryError> {
        let t = self.peek()?.clone();
        match &t.tok {
            Tok::OpenParen => {
                self.next()?;
                let inner = self.expr()?;
                self.expect(Tok::CloseParen, ")")?;
                Ok(inner)
            }
            Tok::Number(_) | Tok::Operator("-") => {
                Ok(Expr::Metric(MetricExpr::Literal(self.number()?)))
            }
            Tok::Ident(name) => {
                let name = name.clone();
                if name == "vector" {
                    self.next()?;
                    self.expect(Tok::OpenParen, "(")?;
                    let v = self.number()?;
                    self.expect(Tok::CloseParen, ")")?;
                    return Ok(Expr::Metric(MetricExpr::VectorLiteral(v)));
                }
                if let Some(op) = RangeOp::from_name(&name) {
                    self.next()?;
                    return self.range_aggregation(op).map(Expr::Metric);
                }
                if let Some(op) = VectorOp::from_name(&name) {
                    self.next()?;
                    return self.vector_aggregation(op).map(Expr::Metric);
                }
                if name == "label_replace" {
                    self.next()?;
                    return self.label_replace().map(Expr::Metric);
                }
                if name == "approx_topk" {
                    return Err(QueryError::unsupported(format!("`{name}` is")));
                }
                let t = self.next()?;
                Err(unexpected(&t, &[]))
            }
            _ => Ok(Expr::Log(self.log_expr()?)),
        }
    }

    /// `label_replace(expr, "dst", "replacement", "src", "regex")`, after the name.
    fn label_replace(&mut self) -> Result<MetricExpr, QueryError> {
        self.expect(Tok::OpenParen, "(")?;
        let inner = self.expr()?;
        let Expr::Metric(expr) = inner else {
            return Err(QueryError::whole_query(
                "label_replace needs a metric query, not a log query",
            ));
        };
        let mut args = Vec::new();
        for _ in 0..4 {
            self.expect(Tok::Comma, ",")?;
            args.push(self.string()?);
        }
        self.expect(Tok::CloseParen, ")")?;
        let [dst, replacement, src, regex] = <[String; 4]>::try_from(args)
            .map_err(|_| QueryError::whole_query("label_replace takes five arguments"))?;
        // Loki checks the regex when it parses the query, and the destination only when it
        // evaluates; an invalid destination is refused here, where the message can say why.
        let regex = regex::Regex::new(&format!("^(?:{regex})$"))
            .map_err(|e| QueryError::whole_query(format!("invalid regex in label_replace: {e}")))?;
        if model::Labels::try_from_pairs([(dst.as_str(), "x")]).is_err() {
            return Err(QueryError::whole_query(format!(
                "invalid destination label name in label_replace: {dst}"
            )));
        }
        Ok(MetricExpr::LabelReplace {
            expr: Box::new(expr),
            replace: LabelReplace {
                dst,
                replacement,
                src,
                regex,
            },
        })
    }

    fn range_aggregation(&mut self, op: RangeOp) -> Result<MetricExpr, QueryError> {
        self.expect(Tok::OpenParen, "(")?;
        let param = if op == RangeOp::QuantileOverTime {
            let p = self.number()?;
            self.expect(Tok::Comma, ",")?;
            Some(p)
        } else {
            None
        };
        let range = self.log_range()?;
        self.expect(Tok::CloseParen, ")")?;
        let grouping = self.grouping()?;
        let name = range_op_name(op);
        match (op.needs_unwrap(), range.unwrap.is_some()) {
            (Some(true), false) => {
                return Err(QueryError::whole_query(format!(
                    "invalid aggregation {name} without unwrap"
                )))
            }
            (Some(false), true) => {
                return Err(QueryError::whole_query(format!(
                    "invalid aggregation {name} with unwrap"
                )))
            }
            _ => {}
        }
        if grouping.is_some() && range.unwrap.is_none() {
            return Err(QueryError::whole_query(format!(
                "grouping not allowed for {name} aggregation"
            )));
        }
        let id = self.next_range_id;
        self.next_range_id += 1;
        Ok(MetricExpr::Range {
            id,
            op,
            param,
            range: Box::new(range),
            grouping,
        })
    }

    /// The argument of a range aggregation: a selector, a pipeline and a range in either
    /// order, an optional `offset`, and an optional `| unwrap`.
    fn log_range(&mut self) -> Result<LogRange, QueryError> {
        let (query, range_first) = if self.peek()?.tok == Tok::OpenParen {
            // `({a="b"} |= "x")[5m]`
            self.next()?;
            let q = self.log_expr()?;
            self.expect(Tok::CloseParen, ")")?;
            (q, false)
        } else {
            let matchers = self.selector()?;
            let range_first = self.peek()?.tok == Tok::OpenBracket;
            (
                LogQuery {
                    matchers,
                    pipeline: Vec::new(),
                },
                range_first,
            )
        };
        let mut query = query;
        let mut unwrap = None;
        let mut post_unwrap = Vec::new();
        let mut take_pipeline = |p: &mut Self, query: &mut LogQuery| -> Result<(), QueryError> {
            let (stages, u) = p.pipeline(true)?;
            query.pipeline.extend(stages);
            if let Some((u, post)) = u {
                unwrap = Some(u);
                post_unwrap = post;
            }
            Ok(())
        };
        let (range_ns, offset_ns);
        if range_first {
            range_ns = self.range()?;
            offset_ns = self.offset()?;
            take_pipeline(self, &mut query)?;
        } else {
            take_pipeline(self, &mut query)?;
            range_ns = self.range()?;
            offset_ns = self.offset()?;
        }
        Ok(LogRange {
            query,
            range_ns,
            offset_ns,
            unwrap,
            post_unwrap,
        })
    }

    fn range(&mut self) -> Result<i64, QueryError> {
        self.expect(Tok::OpenBracket, "[")?;
        let t = self.next()?;
        let Tok::Number(text) = &t.tok else {
            return Err(unexpected(&t, &["DURATION"]));
        };
        let ns = parse_range(text)
            .filter(|&ns| ns > 0)
            .ok_or_else(|| QueryError::syntax(t.pos, format!("invalid range {text:?}")))?;
        self.expect(Tok::CloseBracket, "]")?;
        Ok(ns)
    }

    fn offset(&mut self) -> Result<i64, QueryError> {
        if !self.peek_ident("offset")? {
            return Ok(0);
        }
        self.next()?;
        let t = self.next()?;
        let Tok::Number(text) = &t.tok else {
            return Err(unexpected(&t, &["DURATION"]));
        };
        parse_range(text)
            .ok_or_else(|| QueryError::syntax(t.pos, format!("invalid offset {text:?}")))
    }

    fn vector_aggregation(&mut self, op: VectorOp) -> Result<MetricExpr, QueryError> {
        let mut grouping = self.grouping()?;
        self.expect(Tok::OpenParen, "(")?;
        let param = if matches!(op, VectorOp::Topk | VectorOp::Bottomk) {
            let k = self.number()?;
            if k.fract() != 0.0 || k < 1.0 {
                return Err(QueryError::whole_query(
                    format!("invalid parameter for {op:?}: must be a positive integer, got {k}")
                        .to_lowercase(),
                ));
            }
            self.expect(Tok::Comma, ",")?;
            Some(k)
        } else {
            None
        };
        let inner = self.expr()?;
        self.expect(Tok::CloseParen, ")")?;
        if grouping.is_none() {
            grouping = self.grouping()?;
        }
        let Expr::Metric(inner) = inner else {
            return Err(QueryError::whole_query(
                "a vector aggregation needs a metric query, not a log query",
            ));
        };
        if matches!(op, VectorOp::Sort | VectorOp::SortDesc) && grouping.is_some() {
            return Err(QueryError::whole_query(
                "sort and sort_desc take no grouping",
            ));
        }
        Ok(MetricExpr::Vector {
            op,
            param,
            grouping,
            expr: Box::new(inner),
        })
    }
}

pub(crate) fn range_op_name(op: RangeOp) -> &'static str {
    match op {
        RangeOp::CountOverTime => "count_over_time",
        RangeOp::Rate => "rate",
        RangeOp::RateCounter => "rate_counter",
        RangeOp::BytesOverTime => "bytes_over_time",
        RangeOp::BytesRate => "bytes_rate",
        RangeOp::AbsentOverTime => "absent_over_time",
        RangeOp::SumOverTime => "sum_over_time",
        RangeOp::AvgOverTime => "avg_over_time",
        RangeOp::MinOverTime => "min_over_time",
        RangeOp::MaxOverTime => "max_over_time",
        RangeOp::StddevOverTime => "stddev_over_time",
        RangeOp::StdvarOverTime => "stdvar_over_time",
        RangeOp::QuantileOverTime => "quantile_over_time",
        RangeOp::FirstOverTime => "first_over_time",
        RangeOp::LastOverTime => "last_over_time",
    }
}
