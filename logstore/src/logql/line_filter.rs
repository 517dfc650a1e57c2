//! Line filters (`|=`, `!=`, `|~`, `!~`) and their exact semantics, as pure functions over a line.
//!
//! These are the source of truth for whether a line passes: the store may use its text index to
//! narrow the candidates, but every candidate is re-checked here on the raw stored line.

use super::error::{regex_error_message, QueryError};
use regex::{Regex, RegexBuilder};
use std::fmt;

/// The four line filter operators.
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
}

impl LineFilterOp {
    pub fn as_str(self) -> &'static str {
        match self {
            LineFilterOp::Contains => "|=",
            LineFilterOp::NotContains => "!=",
            LineFilterOp::Regex => "|~",
            LineFilterOp::NotRegex => "!~",
        }
    }
}

/// One line filter, with its regex compiled once at parse time.
#[derive(Clone, Debug)]
pub struct LineFilter {
    op: LineFilterOp,
    pattern: String,
    regex: Option<Regex>,
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
            LineFilterOp::Contains | LineFilterOp::NotContains => None,
        };
        Ok(LineFilter {
            op,
            pattern: pattern.to_string(),
            regex,
        })
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
        match (self.op, &self.regex) {
            (LineFilterOp::Contains, _) => line.contains(self.pattern.as_str()),
            (LineFilterOp::NotContains, _) => !line.contains(self.pattern.as_str()),
            (LineFilterOp::Regex, Some(re)) => re.is_match(line),
            (LineFilterOp::NotRegex, Some(re)) => !re.is_match(line),
            // `new` always compiles a regex for the regex operators.
            (LineFilterOp::Regex | LineFilterOp::NotRegex, None) => false,
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
        write!(f, "{} {:?}", self.op.as_str(), self.pattern)
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
}
