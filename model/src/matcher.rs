//! Label matchers, as PromQL selectors, LogQL stream selectors and `match[]` parameters use them.

use crate::Labels;
use regex::Regex;

/// The four matcher operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MatchOp {
    Equal,
    NotEqual,
    Regex,
    NotRegex,
}

/// One matcher: `name op "value"`. Regexes are anchored at both ends, as in Prometheus.
#[derive(Clone, Debug)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
    regex: Option<Regex>,
}

/// A regex that does not compile.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid regular expression {pattern:?}: {reason}")]
pub struct MatcherError {
    pub pattern: String,
    pub reason: String,
}

/// The regex crate's reason in one line: a syntax error prints the anchored pattern with a
/// caret under the fault, then `error: <reason>`; only the reason means anything to someone
/// who wrote the unanchored pattern.
fn regex_reason(e: &regex::Error) -> String {
    let text = e.to_string();
    text.lines()
        .rev()
        .find_map(|l| l.strip_prefix("error: "))
        .map_or_else(|| text.clone(), str::to_string)
}

impl Matcher {
    pub fn new(op: MatchOp, name: &str, value: &str) -> Result<Self, MatcherError> {
        let regex = match op {
            MatchOp::Regex | MatchOp::NotRegex => Some(
                // (?s) makes `.` match newlines, as Prometheus's regexes do.
                Regex::new(&format!("^(?s:{value})$")).map_err(|e| MatcherError {
                    pattern: value.to_string(),
                    reason: regex_reason(&e),
                })?,
            ),
            _ => None,
        };
        Ok(Matcher {
            name: name.to_string(),
            op,
            value: value.to_string(),
            regex,
        })
    }

    /// Whether a label value (empty when the label is absent) satisfies this matcher.
    pub fn matches(&self, value: &str) -> bool {
        match (self.op, &self.regex) {
            (MatchOp::Equal, _) => value == self.value,
            (MatchOp::NotEqual, _) => value != self.value,
            (MatchOp::Regex, Some(r)) => r.is_match(value),
            (MatchOp::NotRegex, Some(r)) => !r.is_match(value),
            // `new` always compiles a regex for the regex operators.
            (MatchOp::Regex | MatchOp::NotRegex, None) => false,
        }
    }

    /// Whether a label set satisfies this matcher; an absent label counts as the empty value.
    pub fn matches_labels(&self, labels: &Labels) -> bool {
        self.matches(labels.get(&self.name).unwrap_or(""))
    }

    /// True when the matcher also selects series that lack the label entirely.
    pub fn matches_empty(&self) -> bool {
        self.matches("")
    }
}

impl std::fmt::Display for Matcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let op = match self.op {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        };
        write!(f, "{}{}{:?}", self.name, op, self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_regex_is_one_line_naming_the_pattern_and_the_fault() {
        let e = Matcher::new(MatchOp::Regex, "foo", "(").unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"invalid regular expression "(": unclosed group"#
        );
    }

    #[test]
    fn regex_is_anchored() {
        let m = Matcher::new(MatchOp::Regex, "job", "no.e").unwrap();
        assert!(m.matches("node"));
        assert!(!m.matches("a node"));
        assert!(!m.matches("nodes"));
        let n = Matcher::new(MatchOp::NotRegex, "job", "no.e").unwrap();
        assert!(n.matches("nodes"));
    }

    #[test]
    fn absent_label_is_empty_value() {
        let l = Labels::from_pairs([("a", "1")]);
        assert!(Matcher::new(MatchOp::Equal, "b", "")
            .unwrap()
            .matches_labels(&l));
        assert!(Matcher::new(MatchOp::NotEqual, "b", "x")
            .unwrap()
            .matches_labels(&l));
        assert!(!Matcher::new(MatchOp::Regex, "b", ".+")
            .unwrap()
            .matches_labels(&l));
    }

    #[test]
    fn bad_regex_is_an_error() {
        assert!(Matcher::new(MatchOp::Regex, "a", "(").is_err());
    }
}
