//! Line filters (`|=`, `!=`, `|~`, `!~`, and the pattern filters `|>`, `!>`) and their exact
//! semantics, as pure functions over a line.
//!
//! These are the source of truth for whether a line passes: the store may use its text index to
//! narrow the candidates, but every candidate is re-checked here on the raw stored line.

use super::error::{regex_error_message, QueryError};
use super::ip::{IpFilter, INVALID_OPERATION};
use super::pipeline::Pattern;
use regex::{Regex, RegexBuilder};
use std::fmt;

/// The line filter operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LineFilterOp {
    /// `|= "s"`: the line contains `s` (case-sensitive, byte-wise).
    Contains,
    /// `!= "s"`: the line does not contain `s`.
    NotContains,
    /// `|~ "re"`: the regex matches somewhere in the line.
    Regex,
    /// `!~ "re"`: the regex matches nowhere in the line.
    NotRegex,
    /// `|> "<_> x <_>"`: the line fits the pattern (literals and `<_>`).
    Pattern,
    /// `!> "p"`: the line does not fit the pattern.
    NotPattern,
}

impl LineFilterOp {
    pub fn as_str(self) -> &'static str {
        match self {
            LineFilterOp::Contains => "|=",
            LineFilterOp::NotContains => "!=",
            LineFilterOp::Regex => "|~",
            LineFilterOp::NotRegex => "!~",
            LineFilterOp::Pattern => "|>",
            LineFilterOp::NotPattern => "!>",
        }
    }

    /// The operators that reject lines matching their argument; in an `or` group every
    /// alternative must then pass.
    pub fn is_negative(self) -> bool {
        matches!(
            self,
            LineFilterOp::NotContains | LineFilterOp::NotRegex | LineFilterOp::NotPattern
        )
    }
}

/// One line filter, with its regex or pattern compiled once at parse time.
#[derive(Clone, Debug)]
pub struct LineFilter {
    op: LineFilterOp,
    pattern: String,
    regex: Option<Regex>,
    line_pattern: Option<Pattern>,
    /// `|= ip("...")` and `!= ip("...")`: the line holds (or does not hold) an address in
    /// the pattern.
    ip: Option<IpFilter>,
}

impl LineFilter {
    /// Builds a filter; a regex that does not compile is a parse error, as in Loki.
    ///
    /// Regexes are unanchored and `.` matches a newline (Loki compiles line filters with Go's
    /// `DotNL` flag); `(?i)` and the other inline flags work as in RE2.
    pub fn new(op: LineFilterOp, pattern: &str) -> Result<Self, QueryError> {
        let regex = match op {
            LineFilterOp::Regex | LineFilterOp::NotRegex => Some(
                RegexBuilder::new(pattern)
                    .dot_matches_new_line(true)
                    .build()
                    .map_err(|e| {
                        QueryError::whole_query(regex_error_message(pattern, &e.to_string()))
                    })?,
            ),
            _ => None,
        };
        let line_pattern = match op {
            LineFilterOp::Pattern | LineFilterOp::NotPattern => {
                Some(Pattern::parse_line_filter(pattern).map_err(QueryError::whole_query)?)
            }
            _ => None,
        };
        Ok(LineFilter {
            op,
            pattern: pattern.to_string(),
            regex,
            line_pattern,
            ip: None,
        })
    }

    /// `op ip("pattern")`; only `|=` and `!=` take an `ip()`, as in Loki.
    pub fn ip(op: LineFilterOp, pattern: &str) -> Result<Self, QueryError> {
        if !matches!(op, LineFilterOp::Contains | LineFilterOp::NotContains) {
            return Err(QueryError::whole_query(INVALID_OPERATION.to_string()));
        }
        let ip = IpFilter::parse(pattern).map_err(QueryError::whole_query)?;
        Ok(LineFilter {
            op,
            pattern: pattern.to_string(),
            regex: None,
            line_pattern: None,
            ip: Some(ip),
        })
    }

    /// Whether this is an `ip()` filter (its pattern is then no substring of the line).
    pub fn is_ip(&self) -> bool {
        self.ip.is_some()
    }

    /// The argument as written after the operator: `"text"` or `ip("cidr")`.
    pub fn argument(&self) -> String {
        match &self.ip {
            Some(ip) => ip.to_string(),
            None => format!("{:?}", self.pattern),
        }
    }

    pub fn op(&self) -> LineFilterOp {
        self.op
    }

    /// The needle or regex, unquoted.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// Whether `line` passes this filter.
    pub fn matches(&self, line: &str) -> bool {
        if let Some(ip) = &self.ip {
            return ip.matches(line) == (self.op == LineFilterOp::Contains);
        }
        match (self.op, &self.regex, &self.line_pattern) {
            (LineFilterOp::Contains, _, _) => line.contains(self.pattern.as_str()),
            (LineFilterOp::NotContains, _, _) => !line.contains(self.pattern.as_str()),
            (LineFilterOp::Regex, Some(re), _) => re.is_match(line),
            (LineFilterOp::NotRegex, Some(re), _) => !re.is_match(line),
            (LineFilterOp::Pattern, _, Some(p)) => p.test(line),
            (LineFilterOp::NotPattern, _, Some(p)) => !p.test(line),
            // `new` always compiles a regex or pattern for the operators that need one.
            (
                LineFilterOp::Regex
                | LineFilterOp::NotRegex
                | LineFilterOp::Pattern
                | LineFilterOp::NotPattern,
                _,
                _,
            ) => false,
        }
    }
}

/// Whether `line` passes every filter of a chain (filters are ANDed, as stages of a pipeline).
pub fn matches_all(filters: &[LineFilter], line: &str) -> bool {
    filters.iter().all(|f| f.matches(line))
}

/// LogQL form, `|= "a\"b"`. The pattern is quoted with Rust's escapes, which agree with Go's
/// for quotes, backslashes and control characters.
impl fmt::Display for LineFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.op.as_str(), self.argument())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(op: LineFilterOp, p: &str) -> LineFilter {
        LineFilter::new(op, p).unwrap()
    }

    #[test]
    fn contains_is_case_sensitive_substring() {
        let c = f(LineFilterOp::Contains, "onnect");
        assert!(c.matches("connection refused"));
        assert!(!c.matches("CONNECTION refused"));
        let n = f(LineFilterOp::NotContains, "onnect");
        assert!(!n.matches("connection refused"));
        assert!(n.matches("timeout"));
    }

    #[test]
    fn empty_needle() {
        // Every line contains the empty string: `|= ""` keeps all, `!= ""` keeps none.
        assert!(f(LineFilterOp::Contains, "").matches("x"));
        assert!(f(LineFilterOp::Contains, "").matches(""));
        assert!(!f(LineFilterOp::NotContains, "").matches("x"));
    }

    #[test]
    fn regex_is_unanchored_and_dot_matches_newline() {
        let r = f(LineFilterOp::Regex, "err.r");
        assert!(r.matches("an error here"));
        assert!(r.matches("err\nr"));
        assert!(!r.matches("warning"));
        assert!(f(LineFilterOp::Regex, "^an").matches("an error"));
        assert!(!f(LineFilterOp::Regex, "^error").matches("an error"));
        assert!(f(LineFilterOp::Regex, "(?i)ERROR").matches("an error"));
        assert!(!f(LineFilterOp::NotRegex, "e.r").matches("an error"));
        assert!(f(LineFilterOp::NotRegex, "^e").matches("an error"));
    }

    #[test]
    fn bad_regex_is_a_parse_error() {
        let e = LineFilter::new(LineFilterOp::Regex, "a(").unwrap_err();
        assert_eq!(
            e.to_string(),
            "parse error : error parsing regexp: unclosed group: `a(`"
        );
    }

    #[test]
    fn chain_is_a_conjunction() {
        let chain = [
            f(LineFilterOp::Contains, "GET"),
            f(LineFilterOp::NotContains, "/health"),
            f(LineFilterOp::Regex, r"status=5\d\d"),
        ];
        assert!(matches_all(&chain, "GET /api status=503"));
        assert!(!matches_all(&chain, "GET /health status=503"));
        assert!(!matches_all(&chain, "GET /api status=200"));
        assert!(matches_all(&[], "anything"));
    }

    #[test]
    fn display_quotes_the_pattern() {
        assert_eq!(
            f(LineFilterOp::NotContains, "a\"b").to_string(),
            r#"!= "a\"b""#
        );
    }

    #[test]
    fn pattern_filters_follow_loki() {
        let p = |pat| f(LineFilterOp::Pattern, pat);
        // Loki's own examples: a trailing literal must end the line, a trailing capture must
        // take something, and captures are never empty.
        assert!(!p("<_> bar").matches("foo bar baz"));
        assert!(p("<_> baz").matches("foo bar baz"));
        assert!(p("foo <_>").matches("foo bar baz"));
        assert!(!p("<_> bar <_>").matches(" bar "));
        assert!(p("<_>bar<_>").matches(" bar "));
        assert!(p(r#"<_> level=error <_> status=<_>"#)
            .matches(r#"ts=1 level=error msg="x" status=500"#));
        assert!(!p(r#"<_> level=error <_> status=<_>"#).matches(r#"ts=1 level=info status=500"#));
        // A leading literal is searched for, not anchored, as in Loki.
        assert!(p("foo <_>").matches("xfoo bar"));
        // The empty pattern matches the empty line only.
        assert!(p("").matches(""));
        assert!(!p("").matches("x"));
        assert!(!p("<_> x").matches(""));
        let n = f(LineFilterOp::NotPattern, "<_> baz");
        assert!(!n.matches("foo bar baz"));
        assert!(n.matches("foo bar qux"));
    }

    #[test]
    fn pattern_filters_refuse_named_and_consecutive_captures() {
        let err = |pat| {
            LineFilter::new(LineFilterOp::Pattern, pat)
                .unwrap_err()
                .to_string()
        };
        assert!(
            err("<ip> x").contains("named captures are not allowed"),
            "{}",
            err("<ip> x")
        );
        assert!(
            err("<_><_> x").contains("consecutive captures"),
            "{}",
            err("<_><_> x")
        );
    }

    #[test]
    fn ip_filters_take_only_contains_and_not_contains() {
        let ip = LineFilter::ip(LineFilterOp::Contains, "10.0.0.0/8").unwrap();
        assert!(ip.matches("GET / from 10.2.3.4"));
        assert!(!ip.matches("GET / from 11.2.3.4"));
        assert_eq!(ip.to_string(), r#"|= ip("10.0.0.0/8")"#);
        let not = LineFilter::ip(LineFilterOp::NotContains, "10.0.0.0/8").unwrap();
        assert!(!not.matches("GET / from 10.2.3.4"));
        assert!(not.matches("no address here"));
        let err = |op, p| LineFilter::ip(op, p).unwrap_err().to_string();
        assert!(err(LineFilterOp::Regex, "10.0.0.0/8").contains("ip: invalid operation"));
        assert!(err(LineFilterOp::Contains, "10.0.0.0/x").contains("ip: invalid pattern"));
    }
}
