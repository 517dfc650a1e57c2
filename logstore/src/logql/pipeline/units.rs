//! The unit syntaxes label filters and `unwrap` read: Go durations (`1.5h`, `300ms`) and
//! humanized byte sizes (`42MB`, `1.5KiB`).

/// Parses a Go duration (`time.ParseDuration`): an optional sign, then one or more
/// `<decimal><unit>` with units `ns us µs ms s m h`. Returns seconds.
pub fn parse_go_duration(s: &str) -> Result<f64, String> {
    let bad = || format!("time: invalid duration {s:?}");
    let (neg, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Ok(0.0);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = 0.0;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num = &rest[..num_end];
        if num.is_empty() || num == "." {
            return Err(bad());
        }
        let n: f64 = num.parse().map_err(|_| bad())?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_end];
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => return Err(format!("time: missing unit in duration {s:?}")),
            _ => return Err(format!("time: unknown unit {unit:?} in duration {s:?}")),
        };
        total += n * scale;
        rest = &rest[unit_end..];
    }
    Ok(if neg { -total } else { total })
}

/// Parses a byte size as go-humanize's `ParseBytes` does: a decimal number, optional spaces,
/// and an optional case-insensitive unit, SI (`kB`, `MB`, `k`, `M`: powers of 1000) or IEC
/// (`KiB`, `Mi`: powers of 1024).
pub fn parse_bytes(s: &str) -> Result<f64, String> {
    let bad = || format!("strconv.ParseFloat: parsing {s:?}: invalid syntax");
    let t = s.trim();
    let num_end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ','))
        .unwrap_or(t.len());
    let num: String = t[..num_end].chars().filter(|&c| c != ',').collect();
    let n: f64 = num.parse().map_err(|_| bad())?;
    let unit = t[num_end..].trim().to_ascii_lowercase();
    let pow = |base: f64, e: i32| base.powi(e);
    let mult = match unit.as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => pow(1000.0, 1),
        "ki" | "kib" => pow(1024.0, 1),
        "m" | "mb" => pow(1000.0, 2),
        "mi" | "mib" => pow(1024.0, 2),
        "g" | "gb" => pow(1000.0, 3),
        "gi" | "gib" => pow(1024.0, 3),
        "t" | "tb" => pow(1000.0, 4),
        "ti" | "tib" => pow(1024.0, 4),
        "p" | "pb" => pow(1000.0, 5),
        "pi" | "pib" => pow(1024.0, 5),
        "e" | "eb" => pow(1000.0, 6),
        "ei" | "eib" => pow(1024.0, 6),
        _ => return Err(format!("unhandled size name: {unit}")),
    };
    Ok(n * mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("300ms").unwrap(), 0.3);
        assert_eq!(parse_go_duration("1.5h").unwrap(), 5400.0);
        assert_eq!(parse_go_duration("1h30m").unwrap(), 5400.0);
        assert_eq!(parse_go_duration("-2s").unwrap(), -2.0);
        assert_eq!(parse_go_duration("0").unwrap(), 0.0);
        assert!((parse_go_duration("10us").unwrap() - 1e-5).abs() < 1e-12);
        assert!(parse_go_duration("5").is_err());
        assert!(parse_go_duration("5d").is_err());
        assert!(parse_go_duration("").is_err());
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_bytes("42").unwrap(), 42.0);
        assert_eq!(parse_bytes("42MB").unwrap(), 42e6);
        assert_eq!(parse_bytes("1.5KiB").unwrap(), 1536.0);
        assert_eq!(parse_bytes("2 kb").unwrap(), 2000.0);
        assert_eq!(parse_bytes("1Gi").unwrap(), 1024.0 * 1024.0 * 1024.0);
        assert!(parse_bytes("MB").is_err());
        assert!(parse_bytes("3 parsecs").is_err());
    }
}
