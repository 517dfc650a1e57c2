//! Time zones for `location:` without a time-zone crate: the system's compiled zoneinfo files
//! (TZif, RFC 8536, versions 1 to 4) read directly, with the POSIX `TZ` rule in the file's
//! footer for instants after the last listed transition. Names resolve as Go's
//! `time.LoadLocation` resolves them (the same directories, `UTC`, `Local`, the same errors),
//! since Alertmanager hands `location` to that function.

use chrono::{Datelike, NaiveDate};
use std::path::{Path, PathBuf};

/// Where Go's `time.LoadLocation` looks for zoneinfo files on Unix, in order (after the
/// directory named by `$ZONEINFO`).
const ZONEINFO_DIRS: [&str; 4] = [
    "/usr/share/zoneinfo/",
    "/usr/share/lib/zoneinfo/",
    "/usr/lib/locale/TZ/",
    "/etc/zoneinfo/",
];
/// Read limit for one zoneinfo file; real ones are a few kilobytes.
const MAX_TZIF_BYTES: u64 = 1 << 20;

/// A time zone: the UTC offset in force at any instant.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Zone {
    /// Transition instants (Unix seconds), ascending, each with the offset that starts there.
    transitions: Vec<(i64, i32)>,
    /// The offset before the first transition (or always, without transitions or rule).
    initial: i32,
    /// The footer's rule, for instants at or after the last transition.
    rule: Option<PosixRule>,
}

impl Zone {
    pub fn utc() -> Zone {
        Zone {
            transitions: Vec::new(),
            initial: 0,
            rule: None,
        }
    }

    /// Resolves a `location:` value as Go's `time.LoadLocation` does: `""` and `UTC` are UTC,
    /// `Local` is the machine's zone (`$TZ`, else `/etc/localtime`, else UTC), anything else an
    /// IANA name looked up under `$ZONEINFO` and the system zoneinfo directories.
    pub fn load(name: &str) -> Result<Zone, String> {
        match name {
            "" | "UTC" => return Ok(Zone::utc()),
            "Local" => return Ok(Zone::local()),
            _ => {}
        }
        if name.contains("..") || name.starts_with('/') || name.starts_with('\\') {
            return Err("time: invalid location name".into());
        }
        let zoneinfo = std::env::var_os("ZONEINFO").map(PathBuf::from);
        let dirs = zoneinfo
            .iter()
            .cloned()
            .chain(ZONEINFO_DIRS.iter().map(PathBuf::from));
        for dir in dirs {
            match read_tzif(&dir.join(name)) {
                Ok(Some(zone)) => return Ok(zone),
                Ok(None) => continue,
                Err(e) => return Err(format!("time: {e} for {name}")),
            }
        }
        Err(format!("unknown time zone {name}"))
    }

    /// Go's `time.Local`: `$TZ` when set (empty meaning UTC, a leading `:` ignored, an absolute
    /// path read as a file), else `/etc/localtime`; UTC when neither can be read.
    fn local() -> Zone {
        let from_file = |p: &Path| read_tzif(p).ok().flatten();
        match std::env::var("TZ") {
            Ok(tz) => {
                let tz = tz.strip_prefix(':').unwrap_or(&tz);
                if tz.is_empty() || tz == "UTC" {
                    return Zone::utc();
                }
                if tz.starts_with('/') {
                    return from_file(Path::new(tz)).unwrap_or_else(Zone::utc);
                }
                Zone::load(tz).unwrap_or_else(|_| Zone::utc())
            }
            Err(_) => from_file(Path::new("/etc/localtime")).unwrap_or_else(Zone::utc),
        }
    }

    /// The offset east of UTC, in seconds, in force at `unix` seconds.
    pub fn offset_at(&self, unix: i64) -> i32 {
        let after = self.transitions.partition_point(|(t, _)| *t <= unix);
        if after == self.transitions.len() {
            if let Some(rule) = &self.rule {
                return rule.offset_at(unix);
            }
        }
        match after {
            0 => self.initial,
            n => self.transitions[n - 1].1,
        }
    }

    /// Parses a TZif file's bytes.
    pub fn from_tzif(data: &[u8]) -> Result<Zone, String> {
        let malformed = || "malformed time zone information".to_string();
        let header = Header::read(data).ok_or_else(malformed)?;
        // Version 2+ files repeat the data with 64-bit times after the 32-bit block; the
        // footer with the POSIX rule follows that second block.
        let (header, block, time_size) = if header.version >= b'2' {
            let second = data.get(header.block_len(4)..).ok_or_else(malformed)?;
            let h2 = Header::read(second).ok_or_else(malformed)?;
            (h2, second, 8)
        } else {
            (header, data, 4)
        };
        let body = block.get(HEADER_LEN..).ok_or_else(malformed)?;
        let mut r = Reader { data: body, pos: 0 };
        let mut times = Vec::with_capacity(header.timecnt);
        for _ in 0..header.timecnt {
            let t = if time_size == 8 {
                r.i64()
            } else {
                r.i32().map(i64::from)
            };
            times.push(t.ok_or_else(malformed)?);
        }
        let mut indices = Vec::with_capacity(header.timecnt);
        for _ in 0..header.timecnt {
            indices.push(usize::from(r.u8().ok_or_else(malformed)?));
        }
        let mut types = Vec::with_capacity(header.typecnt);
        for _ in 0..header.typecnt {
            let offset = r.i32().ok_or_else(malformed)?;
            let _is_dst = r.u8().ok_or_else(malformed)?;
            let _designation = r.u8().ok_or_else(malformed)?;
            types.push(offset);
        }
        if types.is_empty() {
            return Err(malformed());
        }
        let transitions = times
            .into_iter()
            .zip(indices)
            .map(|(t, i)| types.get(i).map(|o| (t, *o)).ok_or_else(malformed))
            .collect::<Result<Vec<_>, _>>()?;
        let rest = header.charcnt
            + header.leapcnt * (time_size + 4)
            + header.ttisstdcnt
            + header.ttisutcnt;
        r.skip(rest).ok_or_else(malformed)?;
        let rule = if time_size == 8 {
            let footer = std::str::from_utf8(&body[r.pos..]).map_err(|_| malformed())?;
            let tz = footer
                .strip_prefix('\n')
                .and_then(|f| f.split('\n').next())
                .ok_or_else(malformed)?;
            (!tz.is_empty())
                .then(|| PosixRule::parse(tz).ok_or_else(malformed))
                .transpose()?
        } else {
            None
        };
        Ok(Zone {
            transitions,
            initial: types[0],
            rule,
        })
    }
}

/// Reads a zoneinfo file; `None` when it does not exist (or is a directory).
fn read_tzif(path: &Path) -> Result<Option<Zone>, String> {
    use std::io::Read;
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    if file.metadata().map(|m| m.is_dir()).unwrap_or(false) {
        return Ok(None);
    }
    let mut data = Vec::new();
    file.take(MAX_TZIF_BYTES)
        .read_to_end(&mut data)
        .map_err(|e| e.to_string())?;
    Zone::from_tzif(&data).map(Some)
}

const HEADER_LEN: usize = 44;

struct Header {
    version: u8,
    ttisutcnt: usize,
    ttisstdcnt: usize,
    leapcnt: usize,
    timecnt: usize,
    typecnt: usize,
    charcnt: usize,
}

impl Header {
    fn read(data: &[u8]) -> Option<Header> {
        if data.get(..4)? != b"TZif" {
            return None;
        }
        let mut r = Reader {
            data,
            pos: 20, // magic, version, 15 reserved bytes
        };
        let mut count = || r.i32().and_then(|n| usize::try_from(n).ok());
        Some(Header {
            version: *data.get(4)?,
            ttisutcnt: count()?,
            ttisstdcnt: count()?,
            leapcnt: count()?,
            timecnt: count()?,
            typecnt: count()?,
            charcnt: count()?,
        })
    }

    /// The length of the header plus its data block, with `time_size`-byte times.
    fn block_len(&self, time_size: usize) -> usize {
        HEADER_LEN
            + self.timecnt * time_size
            + self.timecnt
            + self.typecnt * 6
            + self.charcnt
            + self.leapcnt * (time_size + 4)
            + self.ttisstdcnt
            + self.ttisutcnt
    }
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let bytes = self.data.get(self.pos..self.pos + N)?;
        self.pos += N;
        bytes.try_into().ok()
    }
    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|b| b[0])
    }
    fn i32(&mut self) -> Option<i32> {
        self.take().map(i32::from_be_bytes)
    }
    fn i64(&mut self) -> Option<i64> {
        self.take().map(i64::from_be_bytes)
    }
    fn skip(&mut self, n: usize) -> Option<()> {
        (self.pos + n <= self.data.len()).then(|| self.pos += n)
    }
}

/// A POSIX `TZ` rule such as `CET-1CEST,M3.5.0,M10.5.0/3`: standard offset, and optionally a
/// daylight offset with the local times it starts and ends each year.
#[derive(Clone, Debug, PartialEq)]
struct PosixRule {
    std_offset: i32,
    dst: Option<DstRule>,
}

#[derive(Clone, Debug, PartialEq)]
struct DstRule {
    offset: i32,
    /// Starts at this date and local (standard) time.
    start: (RuleDate, i32),
    /// Ends at this date and local (daylight) time.
    end: (RuleDate, i32),
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum RuleDate {
    /// `Jn`: day 1..=365, February 29 never counted.
    Julian(u16),
    /// `n`: day 0..=365, February 29 counted.
    Zero(u16),
    /// `Mm.w.d`: weekday `d` (0 = Sunday) of week `w` (5 = last) of month `m`.
    Month(u32, u32, u32),
}

impl PosixRule {
    fn parse(text: &str) -> Option<PosixRule> {
        let mut p = PosixParser { s: text.as_bytes() };
        p.name()?;
        // POSIX offsets count west of UTC; ours count east.
        let std_offset = -p.offset()?;
        if p.s.is_empty() {
            return Some(PosixRule {
                std_offset,
                dst: None,
            });
        }
        p.name()?;
        let offset = match p.s.first() {
            Some(b',') | None => std_offset + 3600,
            _ => -p.offset()?,
        };
        // Without a rule, POSIX leaves the dates to the implementation; tzcode uses the US
        // rule, which zoneinfo footers never rely on (they always spell the rule out).
        let (start, end) = if p.s.is_empty() {
            (
                (RuleDate::Month(3, 2, 0), 7200),
                (RuleDate::Month(11, 1, 0), 7200),
            )
        } else {
            p.expect(b',')?;
            let start = p.date_time()?;
            p.expect(b',')?;
            let end = p.date_time()?;
            (start, end)
        };
        p.s.is_empty().then_some(PosixRule {
            std_offset,
            dst: Some(DstRule { offset, start, end }),
        })
    }

    fn offset_at(&self, unix: i64) -> i32 {
        let Some(dst) = &self.dst else {
            return self.std_offset;
        };
        // The year of the instant in standard time; transitions near New Year are computed
        // for that year, which is what tzcode does.
        let local = unix + i64::from(self.std_offset);
        let Some(year) = chrono::DateTime::from_timestamp(local, 0).map(|d| d.year()) else {
            return self.std_offset;
        };
        let start = dst.start.0.unix_day(year) * 86_400 + i64::from(dst.start.1)
            - i64::from(self.std_offset);
        let end = dst.end.0.unix_day(year) * 86_400 + i64::from(dst.end.1) - i64::from(dst.offset);
        let in_dst = if start < end {
            start <= unix && unix < end
        } else {
            // Southern hemisphere: daylight time spans New Year.
            !(end <= unix && unix < start)
        };
        if in_dst {
            dst.offset
        } else {
            self.std_offset
        }
    }
}

impl RuleDate {
    /// The day (days since 1970-01-01) this rule date falls on in `year`.
    fn unix_day(self, year: i32) -> i64 {
        let epoch_day = |d: NaiveDate| i64::from(d.num_days_from_ce()) - 719_163;
        let jan1 = NaiveDate::from_ymd_opt(year, 1, 1).map_or(0, epoch_day);
        let leap = NaiveDate::from_ymd_opt(year, 2, 29).is_some();
        match self {
            RuleDate::Julian(n) => {
                let n = i64::from(n);
                jan1 + n - 1 + i64::from(leap && n >= 60)
            }
            RuleDate::Zero(n) => jan1 + i64::from(n),
            RuleDate::Month(m, w, d) => {
                let Some(first) = NaiveDate::from_ymd_opt(year, m, 1) else {
                    return jan1;
                };
                let first_wd = first.weekday().num_days_from_sunday();
                let mut day = 1 + (d + 7 - first_wd) % 7 + (w - 1) * 7;
                let days = days_in_month(year, m);
                while day > days {
                    day -= 7;
                }
                epoch_day(first) + i64::from(day) - 1
            }
        }
    }
}

/// Calendar days in `month` of `year`.
pub(crate) fn days_in_month(year: i32, month: u32) -> u32 {
    let next = if month == 12 {
        NaiveDate::from_ymd_opt(year + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(year, month + 1, 1)
    };
    next.and_then(|d| d.pred_opt()).map_or(31, |d| d.day())
}

struct PosixParser<'a> {
    s: &'a [u8],
}

impl PosixParser<'_> {
    fn expect(&mut self, c: u8) -> Option<()> {
        let (&first, rest) = self.s.split_first()?;
        (first == c).then(|| self.s = rest)
    }

    /// A zone abbreviation: three or more letters, or anything within `<` `>`.
    fn name(&mut self) -> Option<()> {
        if self.expect(b'<').is_some() {
            let end = self.s.iter().position(|&c| c == b'>')?;
            self.s = &self.s[end + 1..];
            return Some(());
        }
        let n = self
            .s
            .iter()
            .take_while(|c| c.is_ascii_alphabetic())
            .count();
        (n >= 3).then(|| self.s = &self.s[n..])
    }

    fn number(&mut self) -> Option<i32> {
        let n = self.s.iter().take_while(|c| c.is_ascii_digit()).count();
        let digits = std::str::from_utf8(self.s.get(..n)?).ok()?;
        self.s = &self.s[n..];
        digits.parse().ok()
    }

    /// `[+-]hh[:mm[:ss]]` in seconds (RFC 8536 allows hours up to 167 in rule times).
    fn offset(&mut self) -> Option<i32> {
        let sign = match self.s.first() {
            Some(b'-') => {
                self.s = &self.s[1..];
                -1
            }
            Some(b'+') => {
                self.s = &self.s[1..];
                1
            }
            _ => 1,
        };
        let mut secs = self.number()? * 3600;
        for unit in [60, 1] {
            if self.expect(b':').is_none() {
                break;
            }
            secs += self.number()? * unit;
        }
        Some(sign * secs)
    }

    fn date_time(&mut self) -> Option<(RuleDate, i32)> {
        let date = match self.s.first()? {
            b'J' => {
                self.s = &self.s[1..];
                RuleDate::Julian(
                    u16::try_from(self.number()?)
                        .ok()
                        .filter(|n| (1..=365).contains(n))?,
                )
            }
            b'M' => {
                self.s = &self.s[1..];
                let m = u32::try_from(self.number()?)
                    .ok()
                    .filter(|m| (1..=12).contains(m))?;
                self.expect(b'.')?;
                let w = u32::try_from(self.number()?)
                    .ok()
                    .filter(|w| (1..=5).contains(w))?;
                self.expect(b'.')?;
                let d = u32::try_from(self.number()?).ok().filter(|d| *d <= 6)?;
                RuleDate::Month(m, w, d)
            }
            _ => RuleDate::Zero(u16::try_from(self.number()?).ok().filter(|n| *n <= 365)?),
        };
        let time = if self.expect(b'/').is_some() {
            self.offset()?
        } else {
            7200
        };
        Some((date, time))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn unix(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> i64 {
        chrono::Utc
            .with_ymd_and_hms(y, mo, d, h, mi, 0)
            .unwrap()
            .timestamp()
    }

    fn system_zone(name: &str) -> Option<Zone> {
        if !Path::new(ZONEINFO_DIRS[0]).join(name).exists() {
            println!("skipped: no {name} under {}", ZONEINFO_DIRS[0]);
            return None;
        }
        Some(Zone::load(name).unwrap())
    }

    #[test]
    fn berlin_switches_to_summer_time_on_the_last_sunday_of_march() {
        let Some(berlin) = system_zone("Europe/Berlin") else {
            return;
        };
        // 2024-03-31 01:00 UTC is 02:00 CET → 03:00 CEST.
        assert_eq!(berlin.offset_at(unix(2024, 3, 31, 0, 59)), 3600);
        assert_eq!(berlin.offset_at(unix(2024, 3, 31, 1, 0)), 7200);
        assert_eq!(berlin.offset_at(unix(2024, 10, 27, 0, 59)), 7200);
        assert_eq!(berlin.offset_at(unix(2024, 10, 27, 1, 0)), 3600);
        // Far past the file's listed transitions, the footer rule answers.
        assert_eq!(berlin.offset_at(unix(2090, 7, 1, 12, 0)), 7200);
        assert_eq!(berlin.offset_at(unix(2090, 1, 1, 12, 0)), 3600);
    }

    #[test]
    fn zones_without_dst_and_southern_ones() {
        if let Some(kolkata) = system_zone("Asia/Kolkata") {
            assert_eq!(kolkata.offset_at(unix(2024, 6, 1, 0, 0)), 5 * 3600 + 1800);
        }
        if let Some(sydney) = system_zone("Australia/Sydney") {
            assert_eq!(sydney.offset_at(unix(2024, 1, 15, 0, 0)), 11 * 3600);
            assert_eq!(sydney.offset_at(unix(2024, 7, 15, 0, 0)), 10 * 3600);
            assert_eq!(sydney.offset_at(unix(2095, 1, 15, 0, 0)), 11 * 3600);
            assert_eq!(sydney.offset_at(unix(2095, 7, 15, 0, 0)), 10 * 3600);
        }
        if let Some(ny) = system_zone("America/New_York") {
            // 2024-03-10 07:00 UTC is 02:00 EST → 03:00 EDT.
            assert_eq!(ny.offset_at(unix(2024, 3, 10, 6, 59)), -5 * 3600);
            assert_eq!(ny.offset_at(unix(2024, 3, 10, 7, 0)), -4 * 3600);
        }
    }

    #[test]
    fn footer_rules_parse_and_apply() {
        let rule = PosixRule::parse("CET-1CEST,M3.5.0,M10.5.0/3").unwrap();
        assert_eq!(rule.std_offset, 3600);
        assert_eq!(rule.offset_at(unix(2100, 3, 28, 0, 59)), 3600);
        assert_eq!(rule.offset_at(unix(2100, 3, 28, 1, 0)), 7200);
        let fixed = PosixRule::parse("<+0530>-5:30").unwrap();
        assert_eq!(fixed.offset_at(0), 19_800);
        let julian = PosixRule::parse("AAA3BBB,J60/0,J300/0").unwrap();
        assert_eq!(julian.std_offset, -3 * 3600);
        // J60 is March 1 even in a leap year; in standard time that is 03:00 UTC.
        assert_eq!(julian.offset_at(unix(2024, 3, 1, 2, 59)), -3 * 3600);
        assert_eq!(julian.offset_at(unix(2024, 3, 1, 3, 0)), -2 * 3600);
        for bad in ["", "C1", "CET-1CEST,M13.1.0,M10.5.0", "CET-1CEST,M3.5.0"] {
            assert_eq!(PosixRule::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn names_resolve_as_go_does() {
        assert_eq!(Zone::load("UTC").unwrap(), Zone::utc());
        assert_eq!(Zone::load("").unwrap(), Zone::utc());
        assert_eq!(
            Zone::load("Mars/Olympus_Mons").unwrap_err(),
            "unknown time zone Mars/Olympus_Mons"
        );
        assert_eq!(
            Zone::load("../etc/passwd").unwrap_err(),
            "time: invalid location name"
        );
        assert!(Zone::load("Local").is_ok());
    }

    #[test]
    fn truncated_or_foreign_files_are_malformed_not_a_panic() {
        let Some(bytes) = std::fs::read("/usr/share/zoneinfo/Europe/Berlin").ok() else {
            println!("skipped: no Europe/Berlin zoneinfo");
            return;
        };
        assert!(Zone::from_tzif(&bytes).is_ok());
        for cut in [0, 3, 43, 44, 100, bytes.len() / 2, bytes.len() - 30] {
            assert!(Zone::from_tzif(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        assert!(Zone::from_tzif(b"#!/bin/sh\necho hi\n").is_err());
    }

    #[test]
    fn days_in_month_is_calendar_days() {
        assert_eq!(days_in_month(2024, 2), 29);
        assert_eq!(days_in_month(2023, 2), 28);
        assert_eq!(days_in_month(2024, 3), 31);
        assert_eq!(days_in_month(2024, 12), 31);
        assert_eq!(days_in_month(2024, 4), 30);
    }
}
