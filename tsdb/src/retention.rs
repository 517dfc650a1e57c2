//! Retention: how long, and how many bytes of, blocks are kept
//! (`--storage.tsdb.retention.time`, `--storage.tsdb.retention.size`), with byte sizes
//! parsed and printed as Prometheus does (`512MB` means 512 MiB; printed `512MiB`).

use std::fmt;
use std::time::Duration;

/// Prometheus's default retention time, used when neither limit is given.
pub const DEFAULT_RETENTION_TIME: Duration = Duration::from_secs(15 * 24 * 3600);

/// Which blocks are deleted, oldest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Blocks whose every sample is older than this, counted back from the newest sample,
    /// are deleted. `None` keeps blocks however old.
    pub time: Option<Duration>,
    /// While blocks and WAL together take more bytes than this, the oldest block is
    /// deleted. `None` sets no limit.
    pub size_bytes: Option<u64>,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            time: Some(DEFAULT_RETENTION_TIME),
            size_bytes: None,
        }
    }
}

impl fmt::Display for Retention {
    /// As `/api/v1/status/runtimeinfo` shows it: `15d`, `512MiB`, or `15d or 512MiB`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let time = self.time.map(|d| format_duration(d.as_millis() as u64));
        let size = self.size_bytes.map(format_bytes);
        match (time, size) {
            (Some(t), Some(s)) => write!(f, "{t} or {s}"),
            (Some(t), None) => f.write_str(&t),
            (None, Some(s)) => f.write_str(&s),
            (None, None) => Ok(()),
        }
    }
}

const BYTE_UNITS: [&str; 7] = ["B", "K", "M", "G", "T", "P", "E"];

/// Parses a byte size as Prometheus's `--storage.tsdb.retention.size`: an integer and a
/// unit, every unit a power of 1024 whether written `MB` or `MiB` (`512MB`, `10GiB`, `1TB`,
/// `100B`).
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("invalid size {text:?}: want a number and a unit, e.g. 512MB"))?;
    let prefix = unit
        .strip_suffix("iB")
        .or_else(|| unit.strip_suffix('B'))
        .filter(|p| !p.is_empty() || unit == "B")
        .ok_or_else(|| {
            format!("invalid size {text:?}: unknown unit {unit:?} (B, KB, MB, GB, TB, PB, EB)")
        })?;
    let power = match prefix {
        "" => 0,
        p => BYTE_UNITS
            .iter()
            .position(|u| *u == p)
            .filter(|&i| i > 0)
            .ok_or_else(|| format!("invalid size {text:?}: unknown unit {unit:?}"))?,
    };
    n.checked_mul(1u64 << (10 * power))
        .ok_or_else(|| format!("invalid size {text:?}: too large"))
}

/// Prints bytes as Go's `units.Base2Bytes`: each power of 1024 that has a part, largest
/// first (`512MiB`, `1GiB512MiB`, `100B`, `0B`).
pub fn format_bytes(mut n: u64) -> String {
    if n == 0 {
        return "0B".to_string();
    }
    let mut out = String::new();
    for power in (0..BYTE_UNITS.len()).rev() {
        let unit = 1u64 << (10 * power);
        if n >= unit {
            let suffix = if power == 0 {
                "B".to_string()
            } else {
                format!("{}iB", BYTE_UNITS[power])
            };
            out.push_str(&format!("{}{suffix}", n / unit));
            n %= unit;
        }
    }
    out
}

/// Prints milliseconds as Prometheus's `model.Duration` does (`15d`, `2h30m`, `2w`): years
/// and weeks only when they divide the whole, since `90d` reads better than `12w6d`.
fn format_duration(ms: u64) -> String {
    if ms == 0 {
        return "0s".to_string();
    }
    let units: [(&str, u64, bool); 7] = [
        ("y", 365 * 24 * 3600 * 1000, true),
        ("w", 7 * 24 * 3600 * 1000, true),
        ("d", 24 * 3600 * 1000, false),
        ("h", 3600 * 1000, false),
        ("m", 60 * 1000, false),
        ("s", 1000, false),
        ("ms", 1, false),
    ];
    let mut rest = ms;
    let mut out = String::new();
    for (name, unit, exact) in units {
        if rest >= unit && (!exact || rest.is_multiple_of(unit)) {
            out.push_str(&format!("{}{name}", rest / unit));
            rest %= unit;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_as_prometheus_base_two() {
        assert_eq!(parse_bytes("512MB"), Ok(512 << 20));
        assert_eq!(parse_bytes("512MiB"), Ok(512 << 20));
        assert_eq!(parse_bytes("10GB"), Ok(10 << 30));
        assert_eq!(parse_bytes("1TB"), Ok(1 << 40));
        assert_eq!(parse_bytes("100B"), Ok(100));
        for bad in [
            "",
            "MB",
            "12",
            "12XB",
            "1.5GB",
            "-1GB",
            "12iB",
            "99999999999EB",
        ] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn runtimeinfo_strings_match_prometheus() {
        assert_eq!(Retention::default().to_string(), "15d");
        let both = Retention {
            time: Some(Duration::from_secs(36 * 3600)),
            size_bytes: Some(512 << 20),
        };
        assert_eq!(both.to_string(), "1d12h or 512MiB");
        let size = Retention {
            time: None,
            size_bytes: Some((1 << 30) + (512 << 20)),
        };
        assert_eq!(size.to_string(), "1GiB512MiB");
        assert_eq!(format_duration(14 * 24 * 3600 * 1000), "2w");
    }
}
