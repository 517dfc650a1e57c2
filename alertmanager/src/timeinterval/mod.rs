//! Time intervals (`time_intervals` / `mute_time_intervals` in the config) compiled from their
//! text into ranges, and the test whether an instant lies inside one: Alertmanager 0.25's
//! `timeinterval` package, with its parse and validation messages.
//!
//! Every field present must match, a missing field matches everything, and a field matches when
//! any of its ranges does. `times` are minutes of the day (end exclusive, `24:00` allowed),
//! weekdays count from Sunday = 0, `days_of_month` may count back from the month's end (-1 is
//! the last day) and are clamped to the month, and everything is read in the interval's
//! `location` (default UTC).
//!
//! One deliberate difference: 0.25 derived a month's length from the hours between two month
//! starts, so in a zone whose March loses an hour to daylight saving `-1` meant March 30.
//! Alertmanager fixed that after 0.25 (prometheus/alertmanager#5447); Vigil counts calendar
//! days, as the fix does.

mod zone;

use crate::config::{TimeIntervalConfig, TimeIntervalSpec, TimeRange};
use chrono::{DateTime, Datelike, Timelike, Utc};
use regex::Regex;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
pub(crate) use zone::Zone;

/// One interval of a named set, ready to test instants against.
#[derive(Clone, Debug, Default)]
pub(crate) struct TimeInterval {
    /// `[start, end)` minutes of the day.
    times: Option<Vec<(u32, u32)>>,
    /// Inclusive, Sunday = 0.
    weekdays: Option<Vec<(i32, i32)>>,
    /// Inclusive; negative counts from the month's end.
    days_of_month: Option<Vec<(i32, i32)>>,
    months: Option<Vec<(i32, i32)>>,
    years: Option<Vec<(i32, i32)>>,
    location: Option<Arc<Zone>>,
}

/// The config's named intervals (both spellings), as the notification stages look them up.
#[derive(Clone, Debug, Default)]
pub(crate) struct TimeIntervals {
    by_name: HashMap<String, Vec<TimeInterval>>,
}

impl TimeIntervals {
    /// Compiles every named interval; the error is Alertmanager's message for the first bad
    /// field.
    pub fn compile(
        deprecated: &[TimeIntervalConfig],
        current: &[TimeIntervalConfig],
    ) -> Result<TimeIntervals, String> {
        let mut by_name = HashMap::new();
        for named in deprecated.iter().chain(current) {
            let specs = named
                .time_intervals
                .iter()
                .map(TimeInterval::compile)
                .collect::<Result<Vec<_>, _>>()?;
            by_name.insert(named.name.clone(), specs);
        }
        Ok(TimeIntervals { by_name })
    }

    /// Whether `now` lies in any interval of any of `names` (Alertmanager's
    /// `inTimeIntervals`). An unknown name is an error; config validation rules it out.
    pub fn contains_any(&self, names: &[String], now: DateTime<Utc>) -> Result<bool, String> {
        for name in names {
            let intervals = self
                .by_name
                .get(name)
                .ok_or_else(|| format!("time interval {name} doesn't exist in config"))?;
            if intervals.iter().any(|ti| ti.contains(now)) {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

impl TimeInterval {
    pub fn compile(spec: &TimeIntervalSpec) -> Result<TimeInterval, String> {
        let list = |v: &Option<Vec<String>>, parse: fn(&str) -> Result<(i32, i32), String>| {
            v.as_ref()
                .map(|v| v.iter().map(|s| parse(s)).collect::<Result<Vec<_>, _>>())
                .transpose()
        };
        Ok(TimeInterval {
            times: spec
                .times
                .as_ref()
                .map(|t| {
                    t.iter()
                        .map(parse_time_range)
                        .collect::<Result<Vec<_>, _>>()
                })
                .transpose()?,
            weekdays: list(&spec.weekdays, parse_weekday_range)?,
            days_of_month: list(&spec.days_of_month, parse_day_of_month_range)?,
            months: list(&spec.months, parse_month_range)?,
            years: list(&spec.years, parse_year_range)?,
            location: spec
                .location
                .as_deref()
                .map(|name| Zone::load(name).map(Arc::new))
                .transpose()?,
        })
    }

    /// Alertmanager's `ContainsTime`.
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        let offset = self
            .location
            .as_ref()
            .map_or(0, |z| z.offset_at(t.timestamp()));
        let local = t.naive_utc() + chrono::Duration::seconds(i64::from(offset));
        let in_any = |ranges: &Option<Vec<(i32, i32)>>, v: i32| {
            ranges
                .as_ref()
                .is_none_or(|r| r.iter().any(|(b, e)| *b <= v && v <= *e))
        };
        let minute = local.hour() * 60 + local.minute();
        if let Some(times) = &self.times {
            if !times.iter().any(|(s, e)| *s <= minute && minute < *e) {
                return false;
            }
        }
        if let Some(days) = &self.days_of_month {
            let len = zone::days_in_month(local.year(), local.month()) as i32;
            let day = local.day() as i32;
            let inside = days.iter().any(|(b, e)| {
                let begin = if *b < 0 { len + b + 1 } else { *b };
                let end = if *e < 0 { len + e + 1 } else { *e };
                // A range that starts after this month's last day does not apply this month;
                // one that ends after it stops at the last day.
                begin <= len && day >= begin.clamp(-len, len) && day <= end.clamp(-len, len)
            });
            if !inside {
                return false;
            }
        }
        in_any(&self.months, local.month() as i32)
            && in_any(
                &self.weekdays,
                local.weekday().num_days_from_sunday() as i32,
            )
            && in_any(&self.years, local.year())
    }
}

// A constant pattern: it compiles or every time-interval test fails.
#[allow(clippy::expect_used)]
fn time_regex() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"^((([01][0-9])|(2[0-3])):[0-5][0-9])$|(^24:00$)").expect("valid regex")
    })
}

/// `HH:MM` (two-digit hours) or `24:00`, in minutes of the day.
fn parse_time(text: &str) -> Result<u32, String> {
    let invalid = || format!("couldn't parse timestamp {text}, invalid format");
    if !time_regex().is_match(text) {
        return Err(invalid());
    }
    let (h, m) = text.split_once(':').ok_or_else(invalid)?;
    let (h, m): (u32, u32) = (
        h.parse().map_err(|_| invalid())?,
        m.parse().map_err(|_| invalid())?,
    );
    Ok(h * 60 + m)
}

fn parse_time_range(range: &TimeRange) -> Result<(u32, u32), String> {
    if range.start_time.is_empty() || range.end_time.is_empty() {
        return Err("both start and end times must be provided".into());
    }
    let start = parse_time(&range.start_time)?;
    let end = parse_time(&range.end_time)?;
    if start >= end {
        return Err("start time cannot be equal or greater than end time".into());
    }
    Ok((start, end))
}

/// `a:b` or `a`, lowercased, each member through `member` (Alertmanager's
/// `stringableRangeFromString`).
fn parse_range(
    text: &str,
    member: impl Fn(&str) -> Result<i32, String>,
) -> Result<(i32, i32), String> {
    let text = text.to_lowercase();
    if text.contains(':') {
        let parts: Vec<&str> = text.split(':').collect();
        let [begin, end] = parts[..] else {
            return Err(format!("couldn't parse range {text}, invalid format"));
        };
        return Ok((member(begin)?, member(end)?));
    }
    let v = member(&text)?;
    Ok((v, v))
}

/// Go's `strconv.Atoi`, with its error text.
fn atoi(s: &str) -> Result<i32, String> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("strconv.Atoi: parsing {s:?}: invalid syntax"));
    }
    s.parse()
        .map_err(|_| format!("strconv.Atoi: parsing {s:?}: value out of range"))
}

const WEEKDAYS: [&str; 7] = [
    "sunday",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
];
const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

fn parse_weekday_range(text: &str) -> Result<(i32, i32), String> {
    let (b, e) = parse_range(text, |s| {
        WEEKDAYS
            .iter()
            .position(|d| *d == s)
            .map(|i| i as i32)
            .ok_or_else(|| format!("{s} is not a valid weekday"))
    })?;
    if b > e {
        return Err("start day cannot be before end day".into());
    }
    Ok((b, e))
}

fn parse_day_of_month_range(text: &str) -> Result<(i32, i32), String> {
    let (b, e) = parse_range(text, atoi)?;
    for v in [b, e] {
        if v == 0 || !(-31..=31).contains(&v) {
            return Err(format!("{v} is not a valid day of the month: out of range"));
        }
    }
    if b < 0 && e > 0 {
        return Err("end day must be negative if start day is negative".into());
    }
    // Negative days can only be compared for the shortest month (28 days); that still catches
    // ranges that are empty in every month.
    let as_positive = |v: i32| if v < 0 { 28 + v } else { v };
    if as_positive(b) > as_positive(e) {
        return Err(format!("end day {e} is always before start day {b}"));
    }
    Ok((b, e))
}

fn parse_month_range(text: &str) -> Result<(i32, i32), String> {
    let (b, e) = parse_range(text, |s| match MONTHS.iter().position(|m| *m == s) {
        Some(i) => Ok(i as i32 + 1),
        None => atoi(s).map_err(|_| format!("{s} is not a valid month")),
    })?;
    if b > e {
        let name = |v: i32| {
            usize::try_from(v - 1)
                .ok()
                .and_then(|i| MONTHS.get(i))
                .copied()
                .unwrap_or("")
        };
        return Err(format!(
            "end month {} is before start month {}",
            name(e),
            name(b)
        ));
    }
    Ok((b, e))
}

fn parse_year_range(text: &str) -> Result<(i32, i32), String> {
    let (b, e) = parse_range(text, atoi)?;
    if b > e {
        return Err(format!("end year {e} is before start year {b}"));
    }
    Ok((b, e))
}

#[cfg(test)]
mod tests;
