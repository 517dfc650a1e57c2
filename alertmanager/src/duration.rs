//! Prometheus's duration syntax (`1h30m`, `5m`, `250ms`, `2w`), shared by rule files and the
//! Alertmanager config, which both use prometheus/common's `model.Duration`.

use serde::{Deserialize, Deserializer};
use std::time::Duration;

/// A duration written in Prometheus's syntax: units `y w d h m s ms`, each at most once, in that
/// order, integers only; `0` alone is allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct PromDuration(pub Duration);

const UNITS: [(&str, u64); 7] = [
    ("y", 365 * 24 * 3600 * 1000),
    ("w", 7 * 24 * 3600 * 1000),
    ("d", 24 * 3600 * 1000),
    ("h", 3600 * 1000),
    ("m", 60 * 1000),
    ("s", 1000),
    ("ms", 1),
];

/// Parses a Prometheus duration; the error text is Prometheus's.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = || format!("not a valid duration string: {text:?}");
    if text.is_empty() {
        return Err("empty duration string".to_string());
    }
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = text;
    let mut next_unit = 0;
    let mut total_ms: u64 = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(invalid());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| invalid())?;
        rest = &rest[digits..];
        // "m" is a prefix of "ms", so the longest unit that matches here wins.
        let (offset, (unit, ms)) = UNITS
            .iter()
            .enumerate()
            .skip(next_unit)
            .filter(|(_, (u, _))| rest.starts_with(u))
            .max_by_key(|(_, (u, _))| u.len())
            .ok_or_else(invalid)?;
        rest = &rest[unit.len()..];
        next_unit = offset + 1;
        total_ms = n
            .checked_mul(*ms)
            .and_then(|v| total_ms.checked_add(v))
            .ok_or_else(|| format!("duration out of range: {text:?}"))?;
    }
    Ok(Duration::from_millis(total_ms))
}

impl<'de> Deserialize<'de> for PromDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse_duration(&text)
            .map(PromDuration)
            .map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for PromDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(self.0))
    }
}

/// Formats like `model.Duration.String()`: largest units first, `0s` for zero.
pub fn format_duration(d: Duration) -> String {
    let mut ms = d.as_millis() as u64;
    if ms == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for (unit, size) in UNITS {
        if ms >= size {
            out.push_str(&format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prometheus_forms() {
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(
            parse_duration("1m500ms").unwrap(),
            Duration::from_millis(60_500)
        );
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(
            parse_duration("2w").unwrap(),
            Duration::from_secs(14 * 86400)
        );
    }

    #[test]
    fn rejects_bad_forms() {
        for bad in ["", "5", "5x", "m", "1m1h", "1.5h", "5m5m", "-1s", " 5m"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn formats_like_model_duration() {
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1s500ms");
    }
}
