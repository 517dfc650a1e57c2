//! Go's textual conventions that Prometheus and Alertmanager put on the wire, reproduced so our
//! payloads are byte-compatible: RFC3339Nano times, `%q` quoting, `%g` floats,
//! `url.QueryEscape`, `regexp.QuoteMeta` and `encoding/json`'s HTML-safe string escaping.

use chrono::{DateTime, Utc};
use serde::Serialize;
use std::io;

/// Go's zero `time.Time`, which Alertmanager sends as the `endsAt` of firing alerts.
pub const GO_ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// `time.RFC3339Nano` in UTC: fractional seconds with trailing zeros trimmed, none when zero.
pub fn rfc3339_nano(t: &DateTime<Utc>) -> String {
    let base = t.format("%Y-%m-%dT%H:%M:%S");
    let nanos = t.timestamp_subsec_nanos() % 1_000_000_000;
    if nanos == 0 {
        return format!("{base}Z");
    }
    let frac = format!("{nanos:09}");
    format!("{base}.{}Z", frac.trim_end_matches('0'))
}

/// go-openapi's `strfmt.DateTime` form (what Prometheus posts to `/api/v2/alerts`): always
/// three fractional digits.
pub fn rfc3339_millis(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// Go's `%q` for a string: double-quoted with Go escapes, as `model.LabelSet.String()` and
/// Alertmanager's matcher strings print values.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `url.QueryEscape`: unreserved bytes kept, space as `+`, everything else `%XX`.
pub fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `regexp.QuoteMeta`, which Alertmanager applies to the receiver name in template data (and
/// therefore in the webhook's `receiver` field).
pub fn quote_meta(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Go's `%g` for a float64: `None` is the shortest form `%v` prints, `Some(p)` is `%.{p}g`.
pub fn format_g(v: f64, precision: Option<usize>) -> String {
    if v.is_nan() {
        return "NaN".to_string();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    let sign = if v.is_sign_negative() { "-" } else { "" };
    if v == 0.0 {
        return format!("{sign}0");
    }
    let sci = match precision {
        None => format!("{:e}", v.abs()),
        Some(p) => format!("{:.*e}", p.max(1) - 1, v.abs()),
    };
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let mut digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    while digits.len() > 1 && digits.ends_with('0') {
        digits.pop();
    }
    let nd = digits.len() as i32;
    let dp = exp + 1;
    // Go switches to exponent form when the exponent reaches the precision; the shortest form
    // decides with precision 6, and an explicit precision shrinks to the digits actually needed.
    let eprec = match precision {
        None => 6,
        Some(p) => {
            let p = p.max(1) as i32;
            if p > nd && nd >= dp {
                nd
            } else {
                p
            }
        }
    };
    if exp < -4 || exp >= eprec {
        let mantissa = if digits.len() > 1 {
            format!("{}.{}", &digits[..1], &digits[1..])
        } else {
            digits
        };
        let esign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{mantissa}e{esign}{:02}", exp.abs());
    }
    let body = if dp <= 0 {
        format!("0.{}{digits}", "0".repeat((-dp) as usize))
    } else if dp >= nd {
        format!("{digits}{}", "0".repeat((dp - nd) as usize))
    } else {
        format!("{}.{}", &digits[..dp as usize], &digits[dp as usize..])
    };
    format!("{sign}{body}")
}

/// Serializes like Go's `json.Encoder`: struct fields in declaration order (serde's too), `<`,
/// `>`, `&`, U+2028 and U+2029 escaped, control characters as `\u00XX`, and a trailing newline.
pub fn to_json_go(value: &impl Serialize) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, GoJsonFormatter);
    value.serialize(&mut ser)?;
    out.push(b'\n');
    Ok(out)
}

struct GoJsonFormatter;

impl serde_json::ser::Formatter for GoJsonFormatter {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            let escaped = match c {
                '<' => "\\u003c",
                '>' => "\\u003e",
                '&' => "\\u0026",
                '\u{2028}' => "\\u2028",
                '\u{2029}' => "\\u2029",
                _ => continue,
            };
            writer.write_all(&fragment.as_bytes()[start..i])?;
            writer.write_all(escaped.as_bytes())?;
            start = i + c.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }

    fn write_char_escape<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        escape: serde_json::ser::CharEscape,
    ) -> io::Result<()> {
        use serde_json::ser::CharEscape;
        // Go (as built into Alertmanager 0.25) writes \b and \f as \u escapes.
        let s = match escape {
            CharEscape::Quote => "\\\"".to_string(),
            CharEscape::ReverseSolidus => "\\\\".to_string(),
            CharEscape::LineFeed => "\\n".to_string(),
            CharEscape::CarriageReturn => "\\r".to_string(),
            CharEscape::Tab => "\\t".to_string(),
            CharEscape::Solidus => "/".to_string(),
            CharEscape::Backspace => "\\u0008".to_string(),
            CharEscape::FormFeed => "\\u000c".to_string(),
            CharEscape::AsciiControl(b) => format!("\\u{b:04x}"),
        };
        writer.write_all(s.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn rfc3339_nano_trims_like_go() {
        let t = Utc.timestamp_millis_opt(1_795_804_119_568).unwrap();
        assert_eq!(rfc3339_nano(&t), "2026-11-27T18:28:39.568Z");
        let t = Utc.timestamp_opt(1_795_803_961, 0).unwrap();
        assert_eq!(rfc3339_nano(&t), "2026-11-27T18:26:01Z");
        let t = Utc.timestamp_opt(1_795_803_961, 273_133_125).unwrap();
        assert_eq!(rfc3339_nano(&t), "2026-11-27T18:26:01.273133125Z");
        let t = Utc.timestamp_opt(1_795_803_961, 500_000_000).unwrap();
        assert_eq!(rfc3339_nano(&t), "2026-11-27T18:26:01.5Z");
        assert_eq!(rfc3339_millis(&t), "2026-11-27T18:26:01.500Z");
    }

    #[test]
    fn format_g_matches_go() {
        let cases: &[(f64, Option<usize>, &str)] = &[
            (0.0, None, "0"),
            (1.0, None, "1"),
            (0.5, None, "0.5"),
            (1234567.0, None, "1.234567e+06"),
            (100000.0, None, "100000"),
            (0.0001, None, "0.0001"),
            (0.00001, None, "1e-05"),
            (-2.5, None, "-2.5"),
            (1e21, None, "1e+21"),
            (1.2345670, Some(4), "1.235"),
            (1.0, Some(4), "1"),
            (1000.0, Some(4), "1000"),
            (12.5, Some(4), "12.5"),
            (123456.0, Some(4), "1.235e+05"),
            (12.34, Some(4), "12.34"),
        ];
        for &(v, p, want) in cases {
            assert_eq!(format_g(v, p), want, "{v} {p:?}");
        }
        assert_eq!(format_g(f64::NAN, None), "NaN");
        assert_eq!(format_g(f64::INFINITY, Some(4)), "+Inf");
    }

    #[test]
    fn escapes_like_go() {
        assert_eq!(query_escape("rate(x[5m]) > 0"), "rate%28x%5B5m%5D%29+%3E+0");
        assert_eq!(go_quote("a\"b\\c\n"), r#""a\"b\\c\n""#);
        assert_eq!(quote_meta("team.a+b"), r"team\.a\+b");
        let json = to_json_go(&serde_json::json!({"u": "a&b<c>\u{8}"})).unwrap();
        assert_eq!(
            String::from_utf8(json).unwrap(),
            "{\"u\":\"a\\u0026b\\u003cc\\u003e\\u0008\"}\n"
        );
    }
}
