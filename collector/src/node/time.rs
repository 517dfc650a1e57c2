//! The `time` collector: the system clock, the local time zone's offset and name, and the
//! kernel's clock sources from sysfs (node_exporter's `time.go` and `time_linux.go`).
//!
//! The offset comes from chrono's local zone (which follows `TZ` and `/etc/localtime` as Go
//! does); the zone's name (`UTC`, `CEST`) is the abbreviation the TZif file gives for that
//! offset, since chrono does not expose abbreviations.

use std::path::{Path, PathBuf};

use crate::family::{Family, MetricType};

/// The zone file Go and chrono read when `TZ` is unset.
const LOCALTIME: &str = "/etc/localtime";
/// Where named zones (`TZ=Europe/Paris`) live.
const ZONEINFO: &str = "/usr/share/zoneinfo";

/// The abbreviation of the local zone at its current offset, e.g. `("CET", 3600)`.
pub(crate) fn local_zone() -> (String, i32) {
    let offset = chrono::Local::now().offset().local_minus_utc();
    let tz = std::env::var("TZ").ok();
    let file: Option<PathBuf> = match tz.as_deref() {
        None => Some(PathBuf::from(LOCALTIME)),
        Some("") | Some("UTC") | Some(":UTC") => None,
        Some(name) => {
            let name = name.trim_start_matches(':');
            Some(if name.starts_with('/') {
                PathBuf::from(name)
            } else {
                Path::new(ZONEINFO).join(name)
            })
        }
    };
    let name = file
        .and_then(|f| std::fs::read(f).ok())
        .and_then(|data| tzif_abbreviation(&data, offset));
    (name.unwrap_or_else(|| fallback_name(offset)), offset)
}

/// Go names a zone without an abbreviation by its offset; UTC is `UTC`.
fn fallback_name(offset: i32) -> String {
    if offset == 0 {
        return "UTC".into();
    }
    let sign = if offset < 0 { '-' } else { '+' };
    let a = offset.unsigned_abs();
    format!("{sign}{:02}{:02}", a / 3600, (a % 3600) / 60)
}

/// The abbreviation of the last local time type in a TZif file (RFC 8536) whose UTC offset is
/// `offset`: the one in effect now, as long as the offset is right. Reads the 64-bit (v2+)
/// data block when present, else the v1 block; `None` on a malformed file.
pub(crate) fn tzif_abbreviation(data: &[u8], offset: i32) -> Option<String> {
    let header = |at: usize| -> Option<[usize; 6]> {
        if data.get(at..at + 4)? != b"TZif" {
            return None;
        }
        let mut counts = [0usize; 6];
        for (i, c) in counts.iter_mut().enumerate() {
            let b = data.get(at + 20 + 4 * i..at + 24 + 4 * i)?;
            *c = u32::from_be_bytes(b.try_into().ok()?) as usize;
        }
        Some(counts)
    };
    let block_len = |c: [usize; 6], time_size: usize| {
        let [isut, isstd, leap, time, typ, chars] = c;
        time * time_size + time + typ * 6 + chars + leap * (time_size + 4) + isstd + isut
    };
    let v1 = header(0)?;
    let version = *data.get(4)?;
    let (at, counts, time_size) = if version >= b'2' {
        let second = 44 + block_len(v1, 4);
        (second, header(second)?, 8)
    } else {
        (0, v1, 4)
    };
    let [_, _, _, time, typ, chars] = counts;
    let body = at + 44;
    let indices = data.get(body + time * time_size..body + time * time_size + time)?;
    let types_at = body + time * time_size + time;
    let types = data.get(types_at..types_at + typ * 6)?;
    let abbrevs = data.get(types_at + typ * 6..types_at + typ * 6 + chars)?;
    let ttinfo = |i: usize| -> Option<(i32, usize)> {
        let t = types.get(i * 6..i * 6 + 6)?;
        Some((
            i32::from_be_bytes(t[..4].try_into().ok()?),
            usize::from(t[5]),
        ))
    };
    let abbrev = |idx: usize| -> Option<String> {
        let rest = abbrevs.get(idx..)?;
        let end = rest.iter().position(|&b| b == 0)?;
        std::str::from_utf8(&rest[..end]).ok().map(str::to_string)
    };
    // The most recent transition to a type with this offset, else any type with it.
    let from_transitions = indices
        .iter()
        .rev()
        .filter_map(|&i| ttinfo(usize::from(i)))
        .find(|&(off, _)| off == offset);
    let any = (0..typ).filter_map(ttinfo).find(|&(off, _)| off == offset);
    from_transitions.or(any).and_then(|(_, a)| abbrev(a))
}

/// The clock sources under `<sysfs>/devices/system/clocksource/clocksource*`, in name order:
/// `(available, current)` per device.
pub(crate) fn clocksources(sysfs: &Path) -> Result<Vec<(Vec<String>, String)>, String> {
    let dir = sysfs.join("devices/system/clocksource");
    let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            n.strip_prefix("clocksource")
                .is_some_and(|d| d.starts_with(|c: char| c.is_ascii_digit()))
        })
        .collect();
    names.sort();
    names
        .iter()
        .map(|n| {
            let read = |f: &str| {
                let p = dir.join(n).join(f);
                std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))
            };
            let available = read("available_clocksource")?
                .split_ascii_whitespace()
                .map(str::to_string)
                .collect();
            Ok((available, read("current_clocksource")?.trim().to_string()))
        })
        .collect()
}

/// The families for the time `now` (seconds since the epoch), a zone and the clock sources.
pub(crate) fn families(
    now: f64,
    zone: (String, i32),
    sources: &[(Vec<String>, String)],
) -> Vec<Family> {
    let mut zone_f = Family::new(
        "node_time_zone_offset_seconds",
        "System time zone offset in seconds.",
        MetricType::Gauge,
    );
    zone_f.push(vec![("time_zone", zone.0)], f64::from(zone.1));
    let mut available = Family::new(
        "node_time_clocksource_available_info",
        "Available clocksources read from '/sys/devices/system/clocksource'.",
        MetricType::Gauge,
    );
    let mut current = Family::new(
        "node_time_clocksource_current_info",
        "Current clocksource read from '/sys/devices/system/clocksource'.",
        MetricType::Gauge,
    );
    for (i, (avail, cur)) in sources.iter().enumerate() {
        for a in avail {
            available.push(
                vec![("clocksource", a.clone()), ("device", i.to_string())],
                1.0,
            );
        }
        current.push(
            vec![("clocksource", cur.clone()), ("device", i.to_string())],
            1.0,
        );
    }
    vec![
        available,
        current,
        Family::single(
            "node_time_seconds",
            "System time in seconds since epoch (1970).",
            MetricType::Gauge,
            now,
        ),
        zone_f,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A v2 TZif file with two types, CET (+1h) and CEST (+2h), and transitions to each.
    fn tzif() -> Vec<u8> {
        let mut body = Vec::new();
        let counts = |b: &mut Vec<u8>, time: u32| {
            b.extend_from_slice(b"TZif2");
            b.extend_from_slice(&[0; 15]);
            for c in [0u32, 0, 0, time, 2, 10] {
                b.extend_from_slice(&c.to_be_bytes());
            }
        };
        // v1 block with no transitions but the same types.
        counts(&mut body, 0);
        let types = |b: &mut Vec<u8>| {
            b.extend_from_slice(&3600i32.to_be_bytes());
            b.extend_from_slice(&[0, 0]);
            b.extend_from_slice(&7200i32.to_be_bytes());
            b.extend_from_slice(&[1, 4]);
            b.extend_from_slice(b"CET\0CEST\0\0");
        };
        types(&mut body);
        counts(&mut body, 2);
        body.extend_from_slice(&100i64.to_be_bytes());
        body.extend_from_slice(&200i64.to_be_bytes());
        body.extend_from_slice(&[1, 0]);
        types(&mut body);
        body.extend_from_slice(b"\nCET-1CEST,M3.5.0,M10.5.0/3\n");
        body
    }

    #[test]
    fn abbreviation_for_the_offset() {
        let data = tzif();
        assert_eq!(tzif_abbreviation(&data, 3600).as_deref(), Some("CET"));
        assert_eq!(tzif_abbreviation(&data, 7200).as_deref(), Some("CEST"));
        assert_eq!(tzif_abbreviation(&data, 0), None);
        assert_eq!(tzif_abbreviation(&data[..30], 3600), None);
        assert_eq!(tzif_abbreviation(b"garbage", 0), None);
        assert_eq!(fallback_name(0), "UTC");
        assert_eq!(fallback_name(-12600), "-0330");
    }

    #[test]
    fn clocksources_from_a_fake_sysfs() {
        let dir = tempfile::tempdir().unwrap();
        let cs = dir.path().join("devices/system/clocksource/clocksource0");
        std::fs::create_dir_all(&cs).unwrap();
        std::fs::write(cs.join("available_clocksource"), "tsc hpet acpi_pm \n").unwrap();
        std::fs::write(cs.join("current_clocksource"), "tsc\n").unwrap();
        let sources = clocksources(dir.path()).unwrap();
        assert_eq!(
            sources,
            [(
                vec!["tsc".into(), "hpet".into(), "acpi_pm".into()],
                "tsc".into()
            )]
        );
        let f = families(1.5, ("UTC".into(), 0), &sources);
        assert_eq!(f[0].points.len(), 3);
        assert_eq!(
            f[1].points[0].labels,
            [
                ("clocksource", "tsc".to_string()),
                ("device", "0".to_string())
            ]
        );
        assert_eq!(f[2].points[0].value, 1.5);
        assert!(clocksources(&dir.path().join("nope")).is_err());
    }
}
