//! Prometheus's duration syntax (`1h30m`, `5m`, `250ms`, `2w`), as prometheus/common's
//! `model.ParseDuration` reads it: rule files, Alertmanager configs and the HTTP APIs all use it.

use std::time::Duration;

/// The units of a Prometheus duration, largest first, with their length in milliseconds.
pub const DURATION_UNITS: [(&str, u64); 7] = [
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
        let (offset, (unit, ms)) = DURATION_UNITS
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_durations() {
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_duration("1d2h"), Ok(Duration::from_secs(26 * 3600)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        for bad in ["", "30s1m", "1x", "1.5h", "h", "1h1h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
