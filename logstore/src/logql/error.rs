//! Errors of the LogQL front end, worded the way Loki words them so that Grafana and logcli
//! users see the text they already know.

use std::fmt;

/// A position in the query text: 1-based line, and 1-based column counted in characters
/// (Loki's lexer counts columns the same way).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

/// Why a query string was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// Not valid LogQL. `pos` is `None` for errors about the query as a whole (an empty-compatible
    /// selector, a bad regular expression), which Loki prints without a position.
    #[error("{}", render_parse_error(*.pos, .message))]
    Parse { pos: Option<Pos>, message: String },
    /// Valid LogQL that this engine cannot run yet; `what` names the construct.
    #[error("{what} not supported by this log store yet")]
    Unsupported { what: String },
}

impl QueryError {
    pub(crate) fn syntax(pos: Pos, message: impl Into<String>) -> Self {
        QueryError::Parse {
            pos: Some(pos),
            message: message.into(),
        }
    }

    pub(crate) fn whole_query(message: impl Into<String>) -> Self {
        QueryError::Parse {
            pos: None,
            message: message.into(),
        }
    }

    pub(crate) fn unsupported(what: impl Into<String>) -> Self {
        QueryError::Unsupported { what: what.into() }
    }
}

/// Loki's `ParseError` format: `parse error at line L, col C: msg`, or `parse error : msg` when
/// the error has no position (the odd space before the colon is Loki's, kept for fidelity).
fn render_parse_error(pos: Option<Pos>, message: &str) -> String {
    match pos {
        Some(p) => format!("parse error at line {}, col {}: {message}", p.line, p.col),
        None => format!("parse error : {message}"),
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// Shortens a `regex` crate error to its one-line reason, formatted as Go's regexp package
/// reports it (`error parsing regexp: <reason>: `pattern``), since the crate's own message is a
/// multi-line diagram that reads badly in an HTTP 400 body.
pub(crate) fn regex_error_message(pattern: &str, reason: &str) -> String {
    let short = reason
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .unwrap_or_else(|| reason.lines().last().unwrap_or(reason).trim());
    format!("error parsing regexp: {short}: `{pattern}`")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_loki() {
        let e = QueryError::syntax(Pos { line: 1, col: 11 }, "syntax error: unexpected $end");
        assert_eq!(
            e.to_string(),
            "parse error at line 1, col 11: syntax error: unexpected $end"
        );
        assert_eq!(
            QueryError::whole_query("boom").to_string(),
            "parse error : boom"
        );
    }

    #[test]
    fn regex_errors_are_one_line() {
        // Built at run time so that clippy does not flag the deliberately bad literal.
        let pattern = String::from("(");
        let err = regex::Regex::new(&pattern).unwrap_err().to_string();
        assert_eq!(
            regex_error_message("(", &err),
            "error parsing regexp: unclosed group: `(`"
        );
    }
}
