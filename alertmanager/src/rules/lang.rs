//! Which query language a rule's expression is written in. Rule groups may mix PromQL rules
//! with LogQL ones (as Loki's ruler reads them), in Prometheus's file format unchanged, so the
//! language is recognised from the expression itself:
//!
//! 1. An expression only the PromQL parser accepts is PromQL; one only the LogQL parser
//!    accepts as a *metric* query is LogQL (a log query returns lines, which no rule can compare
//!    or record).
//! 2. Some expressions parse in both: `sum(count_over_time({namespace="prod"}[5m]))` is the
//!    everyday Loki alert and also valid PromQL, where it would count the samples of every
//!    series of every metric carrying that label. Such an expression is LogQL when it reads log
//!    streams and none of its selectors names a metric (`__name__`): no Prometheus rule means
//!    "all metrics of this namespace", while every Loki rule selects streams that way. Anything
//!    else valid in both (`vector(1)`, `rate({__name__="x"}[5m])`) stays PromQL, keeping what
//!    Prometheus would do.
//! 3. An expression neither parser accepts is refused with both parsers' errors, since the
//!    file's author may have meant either.
//!
//! The parsers are handed in, keeping this crate free of both engines.

/// The language of a rule expression, and so the engine that evaluates it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QueryLanguage {
    PromQL,
    LogQL,
}

impl std::fmt::Display for QueryLanguage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            QueryLanguage::PromQL => "PromQL",
            QueryLanguage::LogQL => "LogQL",
        })
    }
}

/// Decides `expr`'s language by the rules above. `promql` answers whether the expression
/// parses as PromQL; `logql` whether it parses as a LogQL metric query, and if so whether it
/// selects log streams by labels alone (at least one stream selector, none naming a metric).
/// The error messages are the parsers'.
pub fn classify_expr(
    expr: &str,
    promql: impl Fn(&str) -> Result<(), String>,
    logql: impl Fn(&str) -> Result<bool, String>,
) -> Result<QueryLanguage, String> {
    match (promql(expr), logql(expr)) {
        (Ok(()), Ok(true)) | (Err(_), Ok(_)) => Ok(QueryLanguage::LogQL),
        (Ok(()), _) => Ok(QueryLanguage::PromQL),
        (Err(promql_error), Err(logql_error)) => Err(format!(
            "neither a PromQL expression ({promql_error}) nor a LogQL metric query ({logql_error})"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stand-ins for the parsers: PromQL refuses `|=`; LogQL wants a `{` selector and reads
    /// `__name__` as naming a metric.
    fn promql(e: &str) -> Result<(), String> {
        if e.contains("|=") || e.contains("???") {
            Err("unexpected character '|'".into())
        } else {
            Ok(())
        }
    }
    fn logql(e: &str) -> Result<bool, String> {
        if e.contains("???") || e.starts_with("up") {
            Err("syntax error: unexpected IDENTIFIER".into())
        } else {
            Ok(e.contains('{') && !e.contains("__name__"))
        }
    }

    #[test]
    fn one_parser_decides_and_both_prefer_logql_only_for_stream_selectors() {
        let lang = |e| classify_expr(e, promql, logql);
        assert_eq!(lang("up == 0"), Ok(QueryLanguage::PromQL));
        assert_eq!(
            lang(r#"count_over_time({app="x"} |= "panic" [5m]) > 0"#),
            Ok(QueryLanguage::LogQL)
        );
        // Valid in both languages.
        assert_eq!(
            lang(r#"sum(count_over_time({namespace="prod"}[5m]))"#),
            Ok(QueryLanguage::LogQL)
        );
        assert_eq!(lang("vector(1)"), Ok(QueryLanguage::PromQL));
        assert_eq!(
            lang(r#"rate({__name__="http_requests_total"}[5m])"#),
            Ok(QueryLanguage::PromQL)
        );
        assert_eq!(
            lang("up{???").unwrap_err(),
            "neither a PromQL expression (unexpected character '|') nor a LogQL metric query \
             (syntax error: unexpected IDENTIFIER)"
        );
    }
}
