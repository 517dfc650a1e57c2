//! Prometheus's JSON encodings, written by hand: sample values as Go formats them
//! (`strconv.AppendFloat` with `'f'`, or `'e'` outside [1e-6, 1e21)), timestamps as seconds with
//! exactly the millisecond fraction, and the response envelope in Prometheus's key order.
//!
//! serde_json cannot write `1435781430` for a whole-second timestamp held as a float, and the
//! result encoder is on the query hot path, so the few shapes are written directly.

use model::Labels;
use promql::{Value, VectorElement};
use std::fmt::Write;

/// Formats a sample value as Prometheus does (without the surrounding quotes).
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let abs = v.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        return go_exponent(v);
    }
    // Rust's Display prints the shortest round-tripping digits without an exponent, which is
    // Go's 'f' format with precision -1.
    format!("{v}")
}

/// Go's `'e'` format with shortest digits: `1e-07`, `1.5e+21` (sign and at least two exponent
/// digits), where Rust's `{:e}` writes `1e-7`.
fn go_exponent(v: f64) -> String {
    let s = format!("{v:e}");
    let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let (sign, digits) = match exp.strip_prefix('-') {
        Some(d) => ('-', d),
        None => ('+', exp),
    };
    let pad = if digits.len() < 2 { "0" } else { "" };
    format!("{mantissa}e{sign}{pad}{digits}")
}

/// Writes a millisecond timestamp as Prometheus's seconds number: the sign, whole seconds, and
/// when the milliseconds are not zero a three-digit fraction (`1435781451.781`, `1.500`,
/// `1435781430`), which is what its `jsonutil.MarshalTimestamp` writes.
pub fn write_timestamp(out: &mut String, t_ms: i64) {
    let abs = t_ms.unsigned_abs();
    if t_ms < 0 {
        out.push('-');
    }
    let _ = write!(out, "{}", abs / 1000);
    let ms = abs % 1000;
    if ms != 0 {
        let _ = write!(out, ".{ms:03}");
    }
}

/// Writes `s` as a JSON string literal.
pub fn write_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // Go's encoder also escapes <, > and & for HTML safety; Prometheus turns that off,
            // so only control characters need \u escapes.
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Writes a label set as a JSON object, in label order.
pub fn write_labels(out: &mut String, labels: &Labels) {
    out.push('{');
    for (i, l) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_str(out, &l.name);
        out.push(':');
        write_str(out, &l.value);
    }
    out.push('}');
}

/// Writes `[<t>,"<v>"]`.
fn write_point(out: &mut String, t: i64, v: f64) {
    out.push('[');
    write_timestamp(out, t);
    out.push_str(",\"");
    out.push_str(&format_value(v));
    out.push_str("\"]");
}

/// Writes a query result's `data` object: `{"resultType":…,"result":…}`.
pub fn write_query_data(out: &mut String, value: &Value) {
    match value {
        Value::Scalar { t, v } => {
            out.push_str(r#"{"resultType":"scalar","result":"#);
            write_point(out, *t, *v);
        }
        Value::String { t, s } => {
            out.push_str(r#"{"resultType":"string","result":["#);
            write_timestamp(out, *t);
            out.push(',');
            write_str(out, s);
            out.push(']');
        }
        Value::Vector(elems) => {
            out.push_str(r#"{"resultType":"vector","result":["#);
            for (i, VectorElement { labels, t, v }) in elems.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(r#"{"metric":"#);
                write_labels(out, labels);
                out.push_str(r#","value":"#);
                write_point(out, *t, *v);
                out.push('}');
            }
            out.push(']');
        }
        Value::Matrix(series) => {
            out.push_str(r#"{"resultType":"matrix","result":["#);
            for (i, s) in series.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(r#"{"metric":"#);
                write_labels(out, &s.labels);
                out.push_str(r#","values":["#);
                for (j, p) in s.samples.iter().enumerate() {
                    if j > 0 {
                        out.push(',');
                    }
                    write_point(out, p.t, p.v);
                }
                out.push_str("]}");
            }
            out.push(']');
        }
    }
    out.push('}');
}

/// Writes the `"warnings"` and `"infos"` members (omitted when empty), each preceded by a comma.
pub fn write_annotations(out: &mut String, warnings: &[String], infos: &[String]) {
    for (key, list) in [("warnings", warnings), ("infos", infos)] {
        if list.is_empty() {
            continue;
        }
        let _ = write!(out, ",\"{key}\":[");
        for (i, w) in list.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            write_str(out, w);
        }
        out.push(']');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_format_like_go() {
        let cases = [
            (1.0, "1"),
            (0.1, "0.1"),
            (-2.5, "-2.5"),
            (1e-7, "1e-07"),
            (1.5e-7, "1.5e-07"),
            (1e21, "1e+21"),
            (123456789012.0, "123456789012"),
            (1e-6, "0.000001"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (0.0, "0"),
            (1e100, "1e+100"),
        ];
        for (v, want) in cases {
            assert_eq!(format_value(v), want, "{v}");
        }
    }

    #[test]
    fn timestamps_have_exactly_the_millisecond_fraction() {
        let cases = [
            (1_435_781_451_781, "1435781451.781"),
            (1_435_781_430_000, "1435781430"),
            (1_600_096_945_479, "1600096945.479"),
            (1_500, "1.500"),
            (1_005, "1.005"),
            (-1_500, "-1.500"),
            (i64::MIN, "-9223372036854775.808"),
            (-2_000, "-2"),
            (0, "0"),
        ];
        for (t, want) in cases {
            let mut s = String::new();
            write_timestamp(&mut s, t);
            assert_eq!(s, want, "{t}");
        }
    }

    #[test]
    fn strings_escape_quotes_and_controls() {
        let mut s = String::new();
        write_str(&mut s, "a\"b\\c\nd\u{1}é");
        assert_eq!(s, r#""a\"b\\c\nd\u0001é""#);
    }
}
