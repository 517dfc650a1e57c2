//! Line-level lexing shared by both formats: metric and label names, quoted label values
//! with their escapes, label sets, numbers and the rest of a sample line.
//!
//! `strict` selects OpenMetrics's rules (one space between tokens, no trailing comma in a
//! label set, float-second timestamps) over text 0.0.4's (blank and tab runs, a trailing
//! comma allowed, integer millisecond timestamps).

use std::borrow::Cow;

use super::{Exemplar, Label};

/// The most code points an exemplar's label names and values may hold together (OpenMetrics
/// §4.6.1 "Exemplars").
const EXEMPLAR_LABELS_MAX: usize = 128;

/// A position in one line.
pub(super) struct Cursor<'a> {
    s: &'a str,
    pos: usize,
    strict: bool,
}

/// A sample's timestamp as written.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Stamp {
    /// Text 0.0.4: integer milliseconds.
    Millis(i64),
    /// OpenMetrics: seconds.
    Seconds(f64),
}

impl Stamp {
    pub fn millis(self) -> i64 {
        match self {
            Stamp::Millis(ms) => ms,
            Stamp::Seconds(s) => seconds_to_millis(s),
        }
    }
}

/// What follows a sample's name and labels.
pub(super) struct Tail<'a> {
    pub value: f64,
    pub timestamp: Option<Stamp>,
    pub exemplar: Option<Exemplar<'a>>,
}

pub(super) fn is_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b == b':'
}

pub(super) fn is_metric_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && is_name_start(b[0])
        && b[1..]
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'_' || c == b':')
}

fn is_label_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b[1..]
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'_')
}

impl<'a> Cursor<'a> {
    pub fn new(s: &'a str, strict: bool) -> Self {
        Cursor { s, pos: 0, strict }
    }

    pub fn rest(&self) -> &'a str {
        &self.s[self.pos..]
    }

    pub fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Skips blanks and tabs (text only; OpenMetrics has no optional whitespace).
    fn skip_blanks(&mut self) {
        if !self.strict {
            while matches!(self.peek(), Some(b' ' | b'\t')) {
                self.pos += 1;
            }
        }
    }

    /// One separator: exactly one space in OpenMetrics, a run of blanks and tabs in text.
    fn separator(&mut self, what: &str) -> Result<(), String> {
        if self.strict {
            return if self.eat(b' ') {
                Ok(())
            } else {
                Err(format!("expected a space before {what}"))
            };
        }
        let start = self.pos;
        self.skip_blanks();
        if self.pos == start {
            return Err(format!("expected whitespace before {what}"));
        }
        Ok(())
    }

    /// A run of name characters; the caller checks the charset of its kind of name.
    fn word(&mut self) -> &'a str {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
        {
            self.pos += 1;
        }
        &self.s[start..self.pos]
    }

    pub fn metric_name(&mut self) -> Result<&'a str, String> {
        let name = self.word();
        if !is_metric_name(name) {
            return Err(match self.rest().chars().next() {
                Some(c) if name.is_empty() => format!("expected a metric name, found {c:?}"),
                _ if name.is_empty() => "expected a metric name".into(),
                _ => format!("invalid metric name {name:?}"),
            });
        }
        Ok(name)
    }

    /// A double-quoted label value; `\\`, `\"` and `\n` are unescaped and any other escape
    /// is kept as written (both Prometheus's and the OpenMetrics reference parsers do so).
    fn quoted(&mut self) -> Result<Cow<'a, str>, String> {
        if !self.eat(b'"') {
            return Err("expected '\"' to open a label value".into());
        }
        let start = self.pos;
        let bytes = self.s.as_bytes();
        let mut escaped = false;
        while let Some(&b) = bytes.get(self.pos) {
            match b {
                b'"' => {
                    let raw = &self.s[start..self.pos];
                    self.pos += 1;
                    return Ok(if escaped {
                        Cow::Owned(unescape(raw, true))
                    } else {
                        Cow::Borrowed(raw)
                    });
                }
                b'\\' => {
                    escaped = true;
                    self.pos += 2;
                }
                _ => self.pos += 1,
            }
        }
        self.pos = self.s.len();
        Err("unterminated label value".into())
    }

    /// Text only: blanks, then a label set.
    pub fn labels_after_blanks(&mut self) -> Result<Vec<Label<'a>>, String> {
        self.skip_blanks();
        self.labels()
    }

    /// A `{name="value",...}` set, the opening brace not yet consumed.
    pub fn labels(&mut self) -> Result<Vec<Label<'a>>, String> {
        let mut labels: Vec<Label<'a>> = Vec::new();
        if !self.eat(b'{') {
            return Err("expected '{'".into());
        }
        loop {
            self.skip_blanks();
            if self.eat(b'}') {
                return Ok(labels);
            }
            let name = self.word();
            if !is_label_name(name) {
                return Err(if name.is_empty() {
                    format!(
                        "expected a label name, found {:?}",
                        self.rest().chars().next().unwrap_or(' ')
                    )
                } else {
                    format!("invalid label name {name:?}")
                });
            }
            self.skip_blanks();
            if !self.eat(b'=') {
                return Err(format!("expected '=' after label name {name:?}"));
            }
            self.skip_blanks();
            let value = self.quoted()?;
            if labels.iter().any(|(n, _)| *n == name) {
                return Err(format!("duplicate label name {name:?}"));
            }
            labels.push((name, value));
            self.skip_blanks();
            if self.eat(b'}') {
                return Ok(labels);
            }
            if !self.eat(b',') {
                return Err("expected ',' or '}' after a label".into());
            }
            if self.strict && self.peek() == Some(b'}') {
                return Err("trailing ',' in label set".into());
            }
        }
    }

    /// A token up to the next separator (or the end).
    fn token(&mut self) -> &'a str {
        let start = self.pos;
        let bytes = self.s.as_bytes();
        while let Some(&b) = bytes.get(self.pos) {
            if b == b' ' || (!self.strict && b == b'\t') {
                break;
            }
            self.pos += 1;
        }
        &self.s[start..self.pos]
    }

    /// The value, timestamp and exemplar after a sample's name and labels.
    pub fn tail(&mut self) -> Result<Tail<'a>, String> {
        self.separator("the value")?;
        let value = parse_value(self.token(), self.strict)?;
        let mut out = Tail {
            value,
            timestamp: None,
            exemplar: None,
        };
        if !self.strict {
            self.skip_blanks();
            if !self.at_end() {
                out.timestamp = Some(Stamp::Millis(parse_millis(self.token())?));
                self.skip_blanks();
            }
            if !self.at_end() {
                return Err(format!(
                    "unexpected text after the sample: {:?}",
                    clip(self.rest())
                ));
            }
            return Ok(out);
        }
        if self.at_end() {
            return Ok(out);
        }
        self.separator("the timestamp")?;
        if !self.rest().starts_with('#') {
            out.timestamp = Some(Stamp::Seconds(parse_seconds(self.token())?));
            if self.at_end() {
                return Ok(out);
            }
            self.separator("the exemplar")?;
        }
        out.exemplar = Some(self.exemplar()?);
        Ok(out)
    }

    /// `# {labels} value [timestamp]` at the end of an OpenMetrics line.
    fn exemplar(&mut self) -> Result<Exemplar<'a>, String> {
        if !self.rest().starts_with("# {") {
            return Err("malformed exemplar: expected '# {'".into());
        }
        self.pos += 2;
        let labels = self.labels()?;
        let size: usize = labels
            .iter()
            .map(|(n, v)| n.chars().count() + v.chars().count())
            .sum();
        if size > EXEMPLAR_LABELS_MAX {
            return Err(format!(
                "exemplar labels have {size} code points, more than {EXEMPLAR_LABELS_MAX}"
            ));
        }
        self.separator("the exemplar value")?;
        let value = parse_value(self.token(), true)?;
        let mut timestamp_ms = None;
        if !self.at_end() {
            self.separator("the exemplar timestamp")?;
            timestamp_ms = Some(seconds_to_millis(parse_seconds(self.token())?));
        }
        if !self.at_end() {
            return Err(format!(
                "unexpected text after the exemplar: {:?}",
                clip(self.rest())
            ));
        }
        Ok(Exemplar {
            labels,
            value,
            timestamp_ms,
        })
    }
}

/// Unescapes a label value (`\\`, `\"`, `\n`) or a HELP text (`\\`, `\n`; `quotes` false).
/// Unknown escapes stay as written.
pub(super) fn unescape(raw: &str, quotes: bool) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('"') if quotes => out.push('"'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// A HELP text, borrowed unless it has escapes.
pub(super) fn help_text(raw: &str) -> Cow<'_, str> {
    if raw.contains('\\') {
        Cow::Owned(unescape(raw, false))
    } else {
        Cow::Borrowed(raw)
    }
}

/// A sample value. Both formats take decimal floats and `NaN`/`Inf` spellings (any case,
/// signed); OpenMetrics refuses anything else, text also takes Go's hexadecimal floats.
pub(super) fn parse_value(tok: &str, strict: bool) -> Result<f64, String> {
    if tok.is_empty() {
        return Err("missing value".into());
    }
    if let Some(v) = parse_decimal(tok) {
        return Ok(v);
    }
    if !strict {
        if let Some(v) = parse_hex_float(tok) {
            return Ok(v);
        }
    }
    Err(format!("invalid value {:?}", clip(tok)))
}

/// Rust's float grammar is the decimal one both formats use, minus the spellings it accepts
/// that they do not ("infinity" is fine, "1_0" never reaches it; ".5" and "5." are fine).
fn parse_decimal(tok: &str) -> Option<f64> {
    let ok = tok
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'e' | b'E'))
        || {
            let t = tok.trim_start_matches(['+', '-']).to_ascii_lowercase();
            t == "inf" || t == "infinity" || t == "nan"
        };
    if !ok {
        return None;
    }
    tok.parse::<f64>().ok()
}

/// Go's `0x1.8p3` form: hex mantissa, optional binary exponent.
fn parse_hex_float(tok: &str) -> Option<f64> {
    let (neg, t) = match tok.as_bytes().first()? {
        b'-' => (true, &tok[1..]),
        b'+' => (false, &tok[1..]),
        _ => (false, tok),
    };
    let t = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X"))?;
    let (mant, exp) = match t.find(['p', 'P']) {
        Some(i) => (&t[..i], t[i + 1..].parse::<i32>().ok()?),
        None => (t, 0),
    };
    let (int, frac) = mant.split_once('.').unwrap_or((mant, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let mut v = 0f64;
    for c in int.chars() {
        v = v * 16.0 + f64::from(c.to_digit(16)?);
    }
    let mut scale = 1.0 / 16.0;
    for c in frac.chars() {
        v += f64::from(c.to_digit(16)?) * scale;
        scale /= 16.0;
    }
    let v = v * 2f64.powi(exp);
    Some(if neg { -v } else { v })
}

/// A text 0.0.4 timestamp: an int64 of milliseconds.
fn parse_millis(tok: &str) -> Result<i64, String> {
    tok.parse::<i64>().map_err(|_| {
        format!(
            "invalid timestamp {:?}: want integer milliseconds",
            clip(tok)
        )
    })
}

/// An OpenMetrics timestamp: finite seconds.
fn parse_seconds(tok: &str) -> Result<f64, String> {
    match parse_decimal(tok) {
        Some(v) if v.is_finite() => Ok(v),
        _ => Err(format!("invalid timestamp {:?}", clip(tok))),
    }
}

/// Seconds to milliseconds, rounded; `as` saturates outside i64's range.
pub(super) fn seconds_to_millis(s: f64) -> i64 {
    (s * 1000.0).round() as i64
}

/// The start of a long token, for error messages that stay readable on 1 MiB lines.
pub(super) fn clip(s: &str) -> &str {
    match s.char_indices().nth(64) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values() {
        for (tok, want) in [
            ("1", 1.0),
            ("-1.5e3", -1500.0),
            ("+Inf", f64::INFINITY),
            ("-inf", f64::NEG_INFINITY),
            (".5", 0.5),
            ("00001.2e-1", 0.12),
        ] {
            assert_eq!(parse_value(tok, true).unwrap(), want, "{tok}");
        }
        assert!(parse_value("NaN", true).unwrap().is_nan());
        for bad in ["", "a", "1_2", "0x1p-3", "0b1", "0o1", "1 ", "Infx"] {
            assert!(parse_value(bad, true).is_err(), "{bad}");
        }
        assert_eq!(parse_value("0x1p-3", false).unwrap(), 0.125);
        assert_eq!(parse_value("-0x1.8p1", false).unwrap(), -3.0);
    }

    #[test]
    fn label_values_unescape() {
        let mut c = Cursor::new(r#"{a="x\"y\\z\nw",b="\q",c="}, {"}"#, true);
        let l = c.labels().unwrap();
        assert_eq!(l[0].1, "x\"y\\z\nw");
        assert_eq!(l[1].1, "\\q");
        assert_eq!(l[2].1, "}, {");
        assert!(matches!(l[2].1, Cow::Borrowed(_)));
        assert!(c.at_end());
    }
}
