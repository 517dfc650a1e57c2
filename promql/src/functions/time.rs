//! The calendar functions (`year`, `month`, `day_of_week`, `hour`, ...): UTC fields of a Unix
//! time in seconds, by the civil-from-days algorithm, so no time-zone database is needed.

/// A UTC date and time of day.
struct Civil {
    year: i64,
    month: i64,
    day: i64,
    hour: i64,
    minute: i64,
    /// 0 = Sunday.
    weekday: i64,
    /// 1-based.
    day_of_year: i64,
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn civil(secs: i64) -> Civil {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy_mar = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy_mar + 2) / 153;
    let day = doy_mar - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let day_of_year = (1..month).map(|m| days_in(year, m)).sum::<i64>() + day;
    Civil {
        year,
        month,
        day,
        hour: rem / 3600,
        minute: rem % 3600 / 60,
        weekday: (days + 4).rem_euclid(7),
        day_of_year,
    }
}

/// The calendar function called `name` applied to a time in seconds, if `name` is one.
pub(crate) fn date_function(name: &str) -> Option<fn(f64) -> f64> {
    fn field(v: f64, f: fn(&Civil) -> i64) -> f64 {
        if !v.is_finite() {
            return f64::NAN;
        }
        // Go converts with int64(v): truncation toward zero.
        f(&civil(v.trunc() as i64)) as f64
    }
    Some(match name {
        "year" => |v| field(v, |c| c.year),
        "month" => |v| field(v, |c| c.month),
        "day_of_month" => |v| field(v, |c| c.day),
        "day_of_week" => |v| field(v, |c| c.weekday),
        "day_of_year" => |v| field(v, |c| c.day_of_year),
        "days_in_month" => |v| field(v, |c| days_in(c.year, c.month)),
        "hour" => |v| field(v, |c| c.hour),
        "minute" => |v| field(v, |c| c.minute),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        let f = |n: &str, v: f64| date_function(n).map(|f| f(v)).unwrap();
        // 2024-02-29T13:45:00Z, a Thursday, day 60 of a leap year.
        let t = 1_709_214_300.0;
        assert_eq!(f("year", t), 2024.0);
        assert_eq!(f("month", t), 2.0);
        assert_eq!(f("day_of_month", t), 29.0);
        assert_eq!(f("day_of_week", t), 4.0);
        assert_eq!(f("day_of_year", t), 60.0);
        assert_eq!(f("days_in_month", t), 29.0);
        assert_eq!(f("hour", t), 13.0);
        assert_eq!(f("minute", t), 45.0);
        // Before the epoch: 1969-12-31T23:59:59Z, a Wednesday.
        assert_eq!(f("year", -1.0), 1969.0);
        assert_eq!(f("day_of_week", -1.0), 3.0);
        assert!(f("year", f64::NAN).is_nan());
    }
}
