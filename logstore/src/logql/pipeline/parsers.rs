//! The parser stages: `json`, `logfmt`, `regexp`, `pattern`, `unpack`. Each extracts labels
//! from the line into the row; a line that does not parse gets `__error__`.

use super::json::{walk_object, Leaf};
use super::{Row, JSON_PARSER_ERR, LOGFMT_PARSER_ERR};
use regex::Regex;
use std::collections::HashSet;
use std::fmt;

/// One step of a `json` path expression: `a.b[0]["c d"]`.
#[derive(Clone, Debug, PartialEq)]
pub enum PathStep {
    Key(String),
    Index(usize),
}

/// `label="path"` in `json label="path", ...`.
#[derive(Clone, Debug)]
pub struct JsonPath {
    pub label: String,
    pub source: String,
    pub steps: Vec<PathStep>,
}

impl JsonPath {
    /// Parses Loki's JSON path syntax: keys separated by dots, `[n]` indexes, `["key"]`.
    pub fn parse(label: &str, source: &str) -> Result<JsonPath, String> {
        let bad = || format!("invalid JSON path {source:?}");
        let mut steps = Vec::new();
        let b = source.as_bytes();
        let mut i = 0;
        let mut key = String::new();
        let flush = |key: &mut String, steps: &mut Vec<PathStep>| {
            if !key.is_empty() {
                steps.push(PathStep::Key(std::mem::take(key)));
            }
        };
        while i < b.len() {
            match b[i] {
                b'.' => {
                    flush(&mut key, &mut steps);
                    i += 1;
                }
                b'[' => {
                    flush(&mut key, &mut steps);
                    let close = source[i..].find(']').ok_or_else(bad)? + i;
                    let inner = source[i + 1..close].trim();
                    if let Some(q) = inner.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
                        steps.push(PathStep::Key(q.to_string()));
                    } else {
                        steps.push(PathStep::Index(inner.parse().map_err(|_| bad())?));
                    }
                    i = close + 1;
                }
                _ => {
                    let c = source[i..].chars().next().ok_or_else(bad)?;
                    key.push(c);
                    i += c.len_utf8();
                }
            }
        }
        flush(&mut key, &mut steps);
        if steps.is_empty() {
            return Err(bad());
        }
        Ok(JsonPath {
            label: label.to_string(),
            source: source.to_string(),
            steps,
        })
    }

    fn extract(&self, doc: &serde_json::Value) -> Option<String> {
        let mut v = doc;
        for s in &self.steps {
            v = match s {
                PathStep::Key(k) => v.get(k.as_str())?,
                PathStep::Index(n) => v.get(*n)?,
            };
        }
        match v {
            serde_json::Value::Null => None,
            serde_json::Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        }
    }
}

/// A `pattern` expression: literals and `<name>` / `<_>` captures.
#[derive(Clone, Debug)]
pub struct Pattern {
    source: String,
    parts: Vec<PatternPart>,
}

#[derive(Clone, Debug, PartialEq)]
enum PatternPart {
    Literal(String),
    Capture(Option<String>),
}

/// Splits a pattern into literals and captures (`<name>` or `<_>`; any other `<` is literal
/// text); two captures in a row are an error, since nothing would separate them.
fn pattern_parts(source: &str) -> Result<Vec<PatternPart>, String> {
    let mut parts = Vec::new();
    let mut rest = source;
    let mut lit = String::new();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('<') {
            if let Some(end) = after.find('>') {
                let name = &after[..end];
                let valid = name == "_"
                    || (!name.is_empty()
                        && name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
                if valid {
                    if !lit.is_empty() {
                        parts.push(PatternPart::Literal(std::mem::take(&mut lit)));
                    }
                    if matches!(parts.last(), Some(PatternPart::Capture(_))) {
                        return Err(format!(
                            "invalid pattern {source:?}: consecutive captures are not allowed"
                        ));
                    }
                    parts.push(PatternPart::Capture(
                        (name != "_").then(|| name.to_string()),
                    ));
                    rest = &after[end + 1..];
                    continue;
                }
            }
        }
        let c = rest.chars().next().unwrap_or_default();
        lit.push(c);
        rest = &rest[c.len_utf8()..];
    }
    if !lit.is_empty() {
        parts.push(PatternPart::Literal(lit));
    }
    Ok(parts)
}

impl Pattern {
    /// A `| pattern` expression: at least one named capture, never two captures in a row.
    pub fn parse(source: &str) -> Result<Pattern, String> {
        let parts = pattern_parts(source)?;
        if !parts
            .iter()
            .any(|p| matches!(p, PatternPart::Capture(Some(_))))
        {
            return Err(format!(
                "invalid pattern {source:?}: at least one named capture is required"
            ));
        }
        Ok(Pattern {
            source: source.to_string(),
            parts,
        })
    }

    /// The pattern of a `|>` or `!>` line filter: only `<_>` captures, never two in a row; the
    /// empty pattern is allowed (it matches only the empty line).
    pub fn parse_line_filter(source: &str) -> Result<Pattern, String> {
        let parts = pattern_parts(source)?;
        if parts
            .iter()
            .any(|p| matches!(p, PatternPart::Capture(Some(_))))
        {
            return Err(format!(
                "invalid pattern {source:?}: named captures are not allowed"
            ));
        }
        Ok(Pattern {
            source: source.to_string(),
            parts,
        })
    }

    /// Whether `line` fits a line-filter pattern, as Loki's `|>` decides it: each literal is
    /// found after the previous one, every capture between them takes at least one byte, and
    /// the line ends with the last literal unless the pattern ends with a capture (which then
    /// must take a non-empty rest). Like Loki, a literal that starts the pattern is searched
    /// for, not anchored at the start of the line.
    pub fn test(&self, line: &str) -> bool {
        if line.is_empty() || self.parts.is_empty() {
            return line.is_empty() && self.parts.is_empty();
        }
        let mut at = 0;
        for (i, part) in self.parts.iter().enumerate() {
            let PatternPart::Literal(lit) = part else {
                continue;
            };
            let Some(found) = line[at..].find(lit.as_str()) else {
                return false;
            };
            if i > 0 && found == 0 {
                return false; // the capture before this literal would be empty
            }
            at += found + lit.len();
        }
        let ends_on_capture = matches!(self.parts.last(), Some(PatternPart::Capture(_)));
        ends_on_capture == (at < line.len())
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// The captures of `line`, or `None` when the line does not fit. A capture runs to the
    /// first occurrence of the literal that follows it; the last one takes the rest of the line.
    pub fn matches<'l>(&self, line: &'l str) -> Option<Vec<(&str, &'l str)>> {
        let mut out = Vec::new();
        let mut rest = line;
        let mut pending: Option<&Option<String>> = None;
        for part in &self.parts {
            match part {
                PatternPart::Literal(l) => match pending.take() {
                    None => rest = rest.strip_prefix(l.as_str())?,
                    Some(cap) => {
                        let at = rest.find(l.as_str())?;
                        if let Some(name) = cap {
                            out.push((name.as_str(), &rest[..at]));
                        }
                        rest = &rest[at + l.len()..];
                    }
                },
                PatternPart::Capture(c) => pending = Some(c),
            }
        }
        if let Some(Some(name)) = pending {
            out.push((name.as_str(), rest));
        }
        Some(out)
    }
}

/// A parser stage.
#[derive(Clone, Debug)]
pub enum ParserStage {
    /// `json`, or `json a="x.y", b` with selected paths.
    Json(Vec<JsonPath>),
    /// `logfmt [--strict] [--keep-empty] [a, b="c"]`; selected keys as (label, key).
    Logfmt {
        strict: bool,
        keep_empty: bool,
        selected: Vec<(String, String)>,
    },
    Regexp(Regex),
    Pattern(Pattern),
    Unpack,
}

impl ParserStage {
    pub fn process(&self, row: &mut Row) {
        match self {
            ParserStage::Json(paths) if paths.is_empty() => json_all(row),
            ParserStage::Json(paths) => {
                match serde_json::from_str::<serde_json::Value>(&row.line) {
                    Ok(doc) => {
                        for p in paths {
                            if let Some(v) = p.extract(&doc) {
                                row.set_parsed(p.label.clone(), v);
                            }
                        }
                    }
                    Err(e) => row.set_error(JSON_PARSER_ERR, e.to_string()),
                }
            }
            ParserStage::Logfmt {
                strict,
                keep_empty,
                selected,
            } => logfmt(row, *strict, *keep_empty, selected),
            ParserStage::Regexp(re) => {
                let line = row.line.clone();
                if let Some(caps) = re.captures(&line) {
                    for name in re.capture_names().flatten() {
                        if let Some(m) = caps.name(name) {
                            row.set_parsed(name.to_string(), m.as_str().to_string());
                        }
                    }
                }
            }
            ParserStage::Pattern(p) => {
                let line = row.line.clone();
                if let Some(caps) = p.matches(&line) {
                    for (name, value) in caps {
                        row.set_parsed(name.to_string(), value.to_string());
                    }
                }
            }
            ParserStage::Unpack => unpack(row),
        }
    }
}

/// Loki's label-name sanitising: every character outside `[A-Za-z0-9_]` becomes `_`, and a
/// name that would start with a digit gets a `_` prefix.
pub(crate) fn sanitize_key(key: &str) -> String {
    let mut out: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

fn json_all(row: &mut Row) {
    let line = row.line.clone();
    let mut found: Vec<(String, String)> = Vec::new();
    let mut seen = HashSet::new();
    let walked = walk_object(&line, &mut |path, leaf| {
        let key = path
            .iter()
            .map(|k| sanitize_key(k))
            .collect::<Vec<_>>()
            .join("_");
        if key.is_empty() || !seen.insert(key.clone()) {
            return;
        }
        if let Some(v) = leaf.into_string() {
            found.push((key, v));
        }
    });
    match walked {
        Ok(()) => {
            for (k, v) in found {
                row.set_parsed(k, v);
            }
        }
        Err(e) => row.set_error(JSON_PARSER_ERR, e),
    }
}

fn unpack(row: &mut Row) {
    let line = row.line.clone();
    let mut found: Vec<(String, String)> = Vec::new();
    let mut entry = None;
    let walked = walk_object(&line, &mut |path, leaf| {
        // Only the top-level string fields are packed labels.
        if let ([key], Leaf::Str(v)) = (path, leaf) {
            if *key == "_entry" {
                entry = Some(v);
            } else {
                found.push((sanitize_key(key), v));
            }
        }
    });
    match walked {
        Ok(()) => {
            for (k, v) in found {
                row.set_parsed(k, v);
            }
            if let Some(e) = entry {
                row.line = e;
            }
        }
        Err(e) => row.set_error(JSON_PARSER_ERR, e),
    }
}

fn logfmt(row: &mut Row, strict: bool, keep_empty: bool, selected: &[(String, String)]) {
    let line = row.line.clone();
    let mut seen = HashSet::new();
    let mut pairs = Vec::new();
    if let Err(e) = logfmt_pairs(&line, &mut |k, v| pairs.push((k.to_string(), v)), strict) {
        row.set_error(LOGFMT_PARSER_ERR, e);
        if strict {
            return;
        }
    }
    for (key, value) in pairs {
        if value.is_empty() && !keep_empty {
            continue;
        }
        let label = if selected.is_empty() {
            sanitize_key(&key)
        } else {
            match selected.iter().find(|(_, k)| *k == key) {
                Some((label, _)) => label.clone(),
                None => continue,
            }
        };
        if seen.insert(label.clone()) {
            row.set_parsed(label, value);
        }
    }
}

/// Splits a logfmt line into key/value pairs. Values may be bare or double-quoted with Go
/// escapes; a key without `=` has an empty value. Malformed input (a quote that does not
/// close, `=` without a key) is an error; in non-strict mode, pairs before it are still used.
fn logfmt_pairs(
    line: &str,
    emit: &mut dyn FnMut(&str, String),
    _strict: bool,
) -> Result<(), String> {
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && b[i] <= b' ' {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let start = i;
        while i < b.len() && b[i] > b' ' && b[i] != b'=' && b[i] != b'"' {
            i += 1;
        }
        if i == start {
            return Err(format!(
                "logfmt syntax error at pos {}: unexpected '{}'",
                i + 1,
                char::from(b[i])
            ));
        }
        let key = &line[start..i];
        if i >= b.len() || b[i] != b'=' {
            if i < b.len() && b[i] == b'"' {
                return Err(format!(
                    "logfmt syntax error at pos {}: unexpected '\"'",
                    i + 1
                ));
            }
            emit(key, String::new());
            continue;
        }
        i += 1;
        if i < b.len() && b[i] == b'"' {
            let vstart = i;
            i += 1;
            let mut escaped = false;
            loop {
                match b.get(i) {
                    None => {
                        return Err(format!(
                            "logfmt syntax error at pos {}: unterminated quoted value",
                            i + 1
                        ))
                    }
                    Some(b'\\') => {
                        escaped = true;
                        i += 2;
                    }
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(_) => i += 1,
                }
            }
            let raw = &line[vstart..i.min(line.len())];
            let value = if escaped {
                serde_json::from_str::<String>(raw)
                    .map_err(|_| format!("logfmt syntax error: invalid quoted value {raw}"))?
            } else {
                raw[1..raw.len() - 1].to_string()
            };
            emit(key, value);
        } else {
            let vstart = i;
            while i < b.len() && b[i] > b' ' {
                if b[i] == b'"' || b[i] == b'=' {
                    return Err(format!(
                        "logfmt syntax error at pos {}: unexpected '{}'",
                        i + 1,
                        char::from(b[i])
                    ));
                }
                i += 1;
            }
            emit(key, line[vstart..i].to_string());
        }
    }
    Ok(())
}

impl fmt::Display for ParserStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParserStage::Json(paths) => {
                f.write_str("json")?;
                for (i, p) in paths.iter().enumerate() {
                    f.write_str(if i == 0 { " " } else { "," })?;
                    write!(f, "{}={:?}", p.label, p.source)?;
                }
                Ok(())
            }
            ParserStage::Logfmt {
                strict,
                keep_empty,
                selected,
            } => {
                f.write_str("logfmt")?;
                if *strict {
                    f.write_str(" --strict")?;
                }
                if *keep_empty {
                    f.write_str(" --keep-empty")?;
                }
                for (i, (l, k)) in selected.iter().enumerate() {
                    f.write_str(if i == 0 { " " } else { "," })?;
                    write!(f, "{l}={k:?}")?;
                }
                Ok(())
            }
            ParserStage::Regexp(re) => write!(f, "regexp {:?}", re.as_str()),
            ParserStage::Pattern(p) => write!(f, "pattern {:?}", p.source),
            ParserStage::Unpack => f.write_str("unpack"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logql::pipeline::ERROR_LABEL;
    use model::Labels;

    fn run(stage: &ParserStage, line: &str) -> Row {
        let mut row = Row::new(0, line, &Labels::from_pairs([("app", "a")]), &[]);
        stage.process(&mut row);
        row
    }

    #[test]
    fn json_flattens_and_sanitizes() {
        let r = run(
            &ParserStage::Json(vec![]),
            r#"{"app":"x","a.b":{"c-d":2},"9x":true,"a_b_c_d":"dup","list":[1]}"#,
        );
        assert_eq!(r.get("app"), Some("a"));
        assert_eq!(r.get("app_extracted"), Some("x"));
        assert_eq!(r.get("a_b_c_d"), Some("2"));
        assert_eq!(r.get("_9x"), Some("true"));
        assert_eq!(r.get("list"), None);
        let bad = run(&ParserStage::Json(vec![]), "{not json");
        assert_eq!(bad.get(ERROR_LABEL), Some(JSON_PARSER_ERR));
    }

    #[test]
    fn json_selected_paths() {
        let paths = vec![
            JsonPath::parse("first", "servers[0]").unwrap(),
            JsonPath::parse("u", r#"req["user agent"]"#).unwrap(),
            JsonPath::parse("obj", "req").unwrap(),
        ];
        let r = run(
            &ParserStage::Json(paths),
            r#"{"servers":["a","b"],"req":{"user agent":"curl"}}"#,
        );
        assert_eq!(r.get("first"), Some("a"));
        assert_eq!(r.get("u"), Some("curl"));
        assert_eq!(r.get("obj"), Some(r#"{"user agent":"curl"}"#));
    }

    #[test]
    fn logfmt_modes() {
        let p = |strict, keep_empty| ParserStage::Logfmt {
            strict,
            keep_empty,
            selected: vec![],
        };
        let r = run(
            &p(false, false),
            r#"level=info msg="a \"b\"" empty= x.y=1 flag"#,
        );
        assert_eq!(r.get("level"), Some("info"));
        assert_eq!(r.get("msg"), Some("a \"b\""));
        assert_eq!(r.get("x_y"), Some("1"));
        assert_eq!(r.get("empty"), None);
        let r = run(&p(false, true), "empty= flag");
        assert_eq!(r.get("empty"), Some(""));
        assert_eq!(r.get("flag"), Some(""));
        let r = run(&p(true, false), r#"a=1 b="open"#);
        assert_eq!(r.get(ERROR_LABEL), Some(LOGFMT_PARSER_ERR));
        assert_eq!(r.get("a"), None, "strict fails the whole line");
        let r = run(&p(false, false), r#"a=1 b="open"#);
        assert_eq!(r.get("a"), Some("1"));
        let sel = ParserStage::Logfmt {
            strict: false,
            keep_empty: false,
            selected: vec![("lvl".into(), "level".into())],
        };
        let r = run(&sel, "level=warn other=1");
        assert_eq!(r.get("lvl"), Some("warn"));
        assert_eq!(r.get("other"), None);
    }

    #[test]
    fn pattern_captures() {
        let p = Pattern::parse(r#"<ip> - - [<_>] "<method> <path> <_>" <status> <size>"#).unwrap();
        let caps = p
            .matches(r#"1.2.3.4 - - [10/Oct/2000] "GET /a HTTP/1.1" 200 512"#)
            .unwrap();
        assert_eq!(
            caps,
            [
                ("ip", "1.2.3.4"),
                ("method", "GET"),
                ("path", "/a"),
                ("status", "200"),
                ("size", "512")
            ]
        );
        assert!(p.matches("garbage").is_none());
        assert!(Pattern::parse("<a><b>").is_err());
        assert!(Pattern::parse("<_> x").is_err());
    }

    #[test]
    fn unpack_restores_entry() {
        let r = run(
            &ParserStage::Unpack,
            r#"{"_entry":"the line","pod":"p1","n":3}"#,
        );
        assert_eq!(r.line, "the line");
        assert_eq!(r.get("pod"), Some("p1"));
        assert_eq!(r.get("n"), None);
    }
}
