//! Parsing entry points for callers that need an answer before any evaluation: series
//! selectors as `match[]` parameters carry them, and rule expressions checked at load time.

use crate::error::Error;
use crate::prepare;
use crate::selector::matcher_groups;
use model::Matcher;
use promql_parser::parser::{self, Expr};

/// Parses a series selector (`up{job="api"}`, `{__name__=~"node_.*"}`) into its matchers.
/// Like Prometheus, refuses a selector whose every matcher also matches the empty value,
/// since it would select every series.
pub fn parse_selector(text: &str) -> Result<Vec<Matcher>, Error> {
    let vs = match parser::parse(text).map_err(Error::Parse)? {
        Expr::VectorSelector(vs) => vs,
        _ => {
            return Err(Error::Parse(format!(
                "{text:?} is not a series selector: expected a metric name and/or label matchers"
            )))
        }
    };
    let mut groups = matcher_groups(&vs)?;
    if groups.len() != 1 {
        return Err(Error::Parse(format!(
            "{text:?}: `or` between matcher sets is not accepted in a series selector"
        )));
    }
    let matchers = groups.remove(0);
    if matchers.iter().all(Matcher::matches_empty) {
        return Err(Error::Parse(
            "match[] must contain at least one non-empty matcher".into(),
        ));
    }
    Ok(matchers)
}

/// Checks that `query` parses and that this engine can evaluate everything in it, without
/// reading storage: what a rule loader calls so a bad rule fails at load, not at its first
/// evaluation.
pub fn check(query: &str) -> Result<(), Error> {
    let expr = parser::parse(query).map_err(Error::Parse)?;
    prepare::check(&expr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::MatchOp;

    #[test]
    fn selectors_become_matchers() {
        let m = parse_selector(r#"up{job="api", instance=~"a.*"}"#).unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!((m[0].name.as_str(), m[0].op), ("__name__", MatchOp::Equal));
        assert!(m
            .iter()
            .any(|x| x.name == "instance" && x.op == MatchOp::Regex));
        assert_eq!(parse_selector(r#"{job!="x", a="b"}"#).unwrap().len(), 2);
    }

    #[test]
    fn bad_selectors_are_parse_errors() {
        for bad in ["up{", "sum(up)", "1", r#"{job=~".*"}"#, r#"{a=""}"#] {
            assert!(matches!(parse_selector(bad), Err(Error::Parse(_))), "{bad}");
        }
    }

    #[test]
    fn check_refuses_bad_and_unsupported_queries() {
        assert!(check("sum by (job) (rate(x[5m])) > 1").is_ok());
        assert!(matches!(check("up =="), Err(Error::Parse(_))));
        assert!(matches!(check("info(x)"), Err(Error::Execution(_))));
    }
}
