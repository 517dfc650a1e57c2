//! Alertmanager's matcher strings (`severity="critical"`, `team=~"a|b"`, several in one string,
//! braces optional), parsed as Alertmanager 0.25's `labels.ParseMatchers` does.

use model::{MatchOp, Matcher};
use regex::Regex;
use std::sync::OnceLock;

/// Parses one config entry of a `matchers:` list, which may hold several comma-separated
/// matchers, into model matchers.
pub fn parse_matchers(text: &str) -> Result<Vec<Matcher>, String> {
    let inner = text.trim();
    let inner = inner.strip_prefix('{').unwrap_or(inner);
    let inner = inner.strip_suffix('}').unwrap_or(inner);
    let mut tokens = Vec::new();
    let mut token = String::new();
    let (mut in_quotes, mut escaped) = (false, false);
    for c in inner.chars() {
        match c {
            ',' if !in_quotes => {
                tokens.push(std::mem::take(&mut token));
                continue;
            }
            '"' if !escaped => in_quotes = !in_quotes,
            '"' => escaped = false,
            '\\' => escaped = !escaped,
            _ => escaped = false,
        }
        token.push(c);
    }
    if !token.trim().is_empty() {
        tokens.push(token);
    }
    tokens.iter().map(|t| parse_matcher(t)).collect()
}

// A constant pattern, not outside data: it compiles or every matcher test fails.
#[allow(clippy::expect_used)]
fn matcher_regex() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(=~|=|!=|!~)\s*((?s).*?)\s*$")
            .expect("constant matcher regex")
    })
}

/// One `name op value` matcher; the value may be double-quoted with `\"`, `\\` and `\n`.
pub fn parse_matcher(text: &str) -> Result<Matcher, String> {
    let caps = matcher_regex()
        .captures(text)
        .ok_or_else(|| format!("bad matcher format: {text}"))?;
    let name = &caps[1];
    let op = match &caps[2] {
        "=" => MatchOp::Equal,
        "!=" => MatchOp::NotEqual,
        "=~" => MatchOp::Regex,
        _ => MatchOp::NotRegex,
    };
    let raw_full = &caps[3];
    let (raw, mut expect_quote) = match raw_full.strip_prefix('"') {
        Some(r) => (r, true),
        None => (raw_full, false),
    };
    let unescaped_quote = || format!("matcher value contains unescaped double quote: {raw_full}");
    let mut value = String::with_capacity(raw.len());
    let mut chars = raw.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let last = chars.peek().is_none();
        match c {
            '\\' if !last => {
                let (_, next) = chars.next().unwrap_or((i, '\\'));
                match next {
                    'n' => value.push('\n'),
                    '"' | '\\' => value.push(next),
                    other => {
                        value.push('\\');
                        value.push(other);
                    }
                }
            }
            '"' => {
                if !expect_quote || !last {
                    return Err(unescaped_quote());
                }
                expect_quote = false;
            }
            c => value.push(c),
        }
    }
    if expect_quote {
        return Err(unescaped_quote());
    }
    Matcher::new(op, name, &value).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_alertmanager_forms() {
        let m = parse_matchers(r#"severity=~"critical|warning""#).unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].op, MatchOp::Regex);
        assert_eq!(m[0].value, "critical|warning");
        let m = parse_matchers(r#"{a="b", c!="d,e"}"#).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[1].name, "c");
        assert_eq!(m[1].value, "d,e");
        let m = parse_matchers("foo = bar").unwrap();
        assert_eq!(m[0].value, "bar");
        let m = parse_matchers(r#"a="x\"y\\z\n""#).unwrap();
        assert_eq!(m[0].value, "x\"y\\z\n");
    }

    #[test]
    fn refuses_bad_matchers() {
        assert!(parse_matchers("a").is_err());
        assert!(parse_matchers(r#"a="b"c""#).is_err());
        assert!(parse_matchers(r#"a="b"#).is_err());
        assert!(parse_matchers(r#"a=~"(""#).is_err());
        assert!(parse_matchers("1a=b").is_err());
    }
}
