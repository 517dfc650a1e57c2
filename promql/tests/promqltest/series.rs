//! The series notation of promqltest files: `metric{label="value"} 1+2x3 _ stale` in `load`
//! blocks and expected results, and the numbers, durations and label sets inside it.

use anyhow::{anyhow, bail, Context, Result};
use model::{Labels, STALE_NAN_BITS};

/// One position of an expanded value sequence.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Point {
    /// `_`: no sample at this position.
    Omitted,
    /// A float sample; `stale` is the staleness-marker NaN.
    Float(f64),
    /// A native histogram (`{{...}}`); Vigil has no native histograms, so only the fact that
    /// one was here is kept, which makes the eval that relies on it excluded, not wrong.
    Histogram,
}

/// A parsed `<series> <values>` line.
#[derive(Debug)]
pub struct SeriesLine {
    pub labels: Labels,
    pub points: Vec<Point>,
}

/// Parses `<series> <values>`; the series is `name`, `name{...}` or `{...}`.
pub fn parse_series_line(line: &str) -> Result<SeriesLine> {
    let (labels, rest) = parse_series_labels(line)?;
    Ok(SeriesLine {
        labels,
        points: parse_values(rest)?,
    })
}

/// Reads the series part of a line and returns its labels and the text after it.
pub fn parse_series_labels(line: &str) -> Result<(Labels, &str)> {
    let line = line.trim_start();
    let name_end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(line.len());
    let name = &line[..name_end];
    let mut pairs: Vec<(String, String)> = Vec::new();
    if !name.is_empty() {
        pairs.push(("__name__".into(), name.into()));
    }
    let mut rest = &line[name_end..];
    if let Some(body) = rest.strip_prefix('{') {
        let (more, after) = parse_label_body(body)?;
        pairs.extend(more);
        rest = after;
    } else if name.is_empty() {
        bail!("expected a metric name or label set in {line:?}");
    }
    let labels = Labels::try_from_pairs(pairs).map_err(|e| anyhow!("{line:?}: {e}"))?;
    Ok((labels, rest))
}

/// Parses label pairs up to the closing brace. A quoted string not followed by `=` is the
/// metric name, as in `{"my.metric", a="b"}`.
fn parse_label_body(mut s: &str) -> Result<(Vec<(String, String)>, &str)> {
    let mut out = Vec::new();
    loop {
        s = s.trim_start();
        if let Some(after) = s.strip_prefix('}') {
            return Ok((out, after));
        }
        let (name, after) = if let Some(q) = s.strip_prefix('"') {
            read_quoted(q)?
        } else {
            let end = s
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(s.len());
            if end == 0 {
                bail!("expected a label name at {s:?}");
            }
            (s[..end].to_string(), &s[end..])
        };
        let after = after.trim_start();
        if let Some(v) = after.strip_prefix('=') {
            let v = v.trim_start();
            let v = v
                .strip_prefix('"')
                .ok_or_else(|| anyhow!("expected a quoted label value at {v:?}"))?;
            let (value, after) = read_quoted(v)?;
            out.push((name, value));
            s = after;
        } else {
            out.push(("__name__".into(), name));
            s = after;
        }
        s = s.trim_start();
        if let Some(after) = s.strip_prefix(',') {
            s = after;
        } else if !s.starts_with('}') {
            bail!("expected ',' or '}}' at {s:?}");
        }
    }
}

/// Reads a Go-style double-quoted string body; returns the text and what follows the quote.
fn read_quoted(s: &str) -> Result<(String, &str)> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, &s[i + 1..])),
            '\\' => match chars.next().map(|(_, c)| c) {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(other) => out.push(other),
                None => break,
            },
            c => out.push(c),
        }
    }
    bail!("unterminated string {s:?}")
}

/// Expands the value items of a line.
pub fn parse_values(text: &str) -> Result<Vec<Point>> {
    let mut out = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let item_end = if rest.starts_with("{{") {
            histogram_item_end(rest)?
        } else {
            rest.find(char::is_whitespace).unwrap_or(rest.len())
        };
        expand_item(&rest[..item_end], &mut out).with_context(|| format!("in {text:?}"))?;
        rest = rest[item_end..].trim_start();
    }
    Ok(out)
}

/// Where a histogram item (`{{...}}`, `{{...}}xN`, `{{a}}+{{b}}xN`) ends.
fn histogram_item_end(s: &str) -> Result<usize> {
    let mut i = 0;
    loop {
        let close = s[i..]
            .find("}}")
            .ok_or_else(|| anyhow!("unterminated histogram {s:?}"))?;
        i += close + 2;
        let tail = &s[i..];
        if tail.starts_with("+{{") || tail.starts_with("-{{") {
            i += 1;
            continue;
        }
        let word = tail.find(char::is_whitespace).unwrap_or(tail.len());
        return Ok(i + word);
    }
}

fn expand_item(item: &str, out: &mut Vec<Point>) -> Result<()> {
    if item.starts_with("{{") {
        let n = match item.rfind("}}x") {
            Some(i) => 1 + item[i + 3..].parse::<usize>()?,
            None => 1,
        };
        out.extend(std::iter::repeat_n(Point::Histogram, n));
        return Ok(());
    }
    if item == "_" {
        out.push(Point::Omitted);
        return Ok(());
    }
    if let Some(n) = item.strip_prefix("_x") {
        out.extend(std::iter::repeat_n(Point::Omitted, n.parse::<usize>()?));
        return Ok(());
    }
    if item == "stale" {
        out.push(Point::Float(f64::from_bits(STALE_NAN_BITS)));
        return Ok(());
    }
    // Hexadecimal is not allowed here (as in Prometheus's lexer): `0x10` is zero, 11 times.
    let Some(x) = item.rfind('x').filter(|&i| i > 0) else {
        out.push(Point::Float(parse_number(item)?));
        return Ok(());
    };
    let times: i64 = item[x + 1..]
        .parse()
        .with_context(|| format!("bad repeat count in {item:?}"))?;
    let head = &item[..x];
    // `a+bxN` / `a-bxN`: the operator is the first sign after the first character that is not
    // an exponent's.
    let bytes = head.as_bytes();
    let split = (1..bytes.len())
        .find(|&i| (bytes[i] == b'+' || bytes[i] == b'-') && !matches!(bytes[i - 1], b'e' | b'E'));
    let (start, step) = match split {
        Some(i) => {
            let step = parse_number(&head[i + 1..])?;
            let step = if bytes[i] == b'-' { -step } else { step };
            (parse_number(&head[..i])?, step)
        }
        None => (parse_number(head)?, 0.0),
    };
    let mut v = start;
    for _ in 0..=times {
        out.push(Point::Float(v));
        v += step;
    }
    Ok(())
}

/// A number as Go's `strconv` reads it: integers with base prefixes, then floats, `Inf`, `NaN`.
pub fn parse_number(s: &str) -> Result<f64> {
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let radix = [("0x", 16), ("0X", 16), ("0o", 8), ("0b", 2)]
        .iter()
        .find_map(|(prefix, r)| body.strip_prefix(prefix).map(|d| (d, *r)));
    let v = match radix {
        Some((digits, r)) => i64::from_str_radix(digits, r)? as f64,
        None => {
            let lower = body.to_ascii_lowercase();
            if lower == "inf" || lower == "infinity" {
                f64::INFINITY
            } else if lower == "nan" {
                f64::NAN
            } else if body
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_digit() || c == '.')
            {
                body.parse::<f64>()
                    .with_context(|| format!("not a number: {s:?}"))?
            } else {
                bail!("not a number: {s:?}")
            }
        }
    };
    Ok(if neg { -v } else { v })
}

/// A Prometheus duration (`1h30m`, `10s`, `0`, `1d`) in milliseconds; a bare number is seconds.
pub fn parse_duration_ms(s: &str) -> Result<i64> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        return Ok((secs * 1000.0).round() as i64);
    }
    let mut total: i64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(|| anyhow!("duration {s:?} lacks a unit"))?;
        if digits == 0 {
            bail!("bad duration {s:?}");
        }
        let n: i64 = rest[..digits].parse()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit_ms = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            "y" => 365 * 86_400_000,
            other => bail!("unknown duration unit {other:?} in {s:?}"),
        };
        total += n * unit_ms;
        rest = &rest[unit_len..];
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn floats(text: &str) -> Vec<Option<f64>> {
        parse_values(text)
            .unwrap()
            .into_iter()
            .map(|p| match p {
                Point::Float(v) => Some(v),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn expanding_notation() {
        assert_eq!(
            floats("-2+4x3"),
            [Some(-2.0), Some(2.0), Some(6.0), Some(10.0)]
        );
        assert_eq!(
            floats("1x2 _ 5-1x1"),
            [Some(1.0); 3]
                .into_iter()
                .chain([None, Some(5.0), Some(4.0)])
                .collect::<Vec<_>>()
        );
        assert_eq!(floats("_x2"), [None, None]);
        assert_eq!(floats("0x10"), vec![Some(0.0); 11]);
        assert_eq!(floats("1e3"), [Some(1000.0)]);
        assert!(floats("-Inf")[0] == Some(f64::NEG_INFINITY));
        assert_eq!(parse_values("{{schema:0 sum:1}}x2 1").unwrap().len(), 4);
    }

    #[test]
    fn series_labels() {
        let (l, rest) = parse_series_labels(r#"m{a="x y}", b="\"q\""} 1"#).unwrap();
        assert_eq!(l.get("a"), Some("x y}"));
        assert_eq!(l.get("b"), Some("\"q\""));
        assert_eq!(l.metric_name(), Some("m"));
        assert_eq!(rest.trim(), "1");
        assert_eq!(parse_duration_ms("1h30m").unwrap(), 5_400_000);
        assert_eq!(parse_duration_ms("20s500ms").unwrap(), 20_500);
    }
}
