//! Parsing and matching of time intervals, case by case against Alertmanager 0.25's behaviour.

use super::*;
use chrono::TimeZone;

fn spec(yaml: &str) -> Result<TimeInterval, String> {
    let spec: TimeIntervalSpec = serde_yaml::from_str(yaml).map_err(|e| e.to_string())?;
    TimeInterval::compile(&spec)
}

fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

#[test]
fn each_field_matches_as_alertmanager_does() {
    // (interval, instant, inside?) — 2024-03-04 is a Monday.
    let cases: &[(&str, DateTime<Utc>, bool)] = &[
        ("times: [{start_time: '09:00', end_time: '17:00'}]", at(2024, 3, 4, 9, 0), true),
        ("times: [{start_time: '09:00', end_time: '17:00'}]", at(2024, 3, 4, 16, 59), true),
        ("times: [{start_time: '09:00', end_time: '17:00'}]", at(2024, 3, 4, 17, 0), false),
        ("times: [{start_time: '09:00', end_time: '17:00'}]", at(2024, 3, 4, 8, 59), false),
        ("times: [{start_time: '22:00', end_time: '24:00'}]", at(2024, 3, 4, 23, 59), true),
        (
            "times: [{start_time: '00:00', end_time: '01:00'}, {start_time: '12:00', end_time: '13:00'}]",
            at(2024, 3, 4, 12, 30),
            true,
        ),
        ("weekdays: ['monday:friday']", at(2024, 3, 4, 0, 0), true),
        ("weekdays: ['monday:friday']", at(2024, 3, 9, 12, 0), false),
        ("weekdays: ['Saturday', 'sunday']", at(2024, 3, 10, 12, 0), true),
        ("weekdays: ['sunday']", at(2024, 3, 4, 12, 0), false),
        ("days_of_month: ['1:5']", at(2024, 3, 5, 23, 59), true),
        ("days_of_month: ['1:5']", at(2024, 3, 6, 0, 0), false),
        ("days_of_month: ['-1']", at(2024, 2, 29, 10, 0), true),
        ("days_of_month: ['-1']", at(2023, 2, 28, 10, 0), true),
        ("days_of_month: ['-3:-1']", at(2024, 4, 27, 10, 0), false),
        ("days_of_month: ['-3:-1']", at(2024, 4, 28, 10, 0), true),
        // 31 does not exist in April: a range ending there stops at the 30th…
        ("days_of_month: ['25:31']", at(2024, 4, 30, 10, 0), true),
        // …and one starting after the month's end does not apply at all.
        ("days_of_month: ['30:31']", at(2024, 2, 29, 10, 0), false),
        ("days_of_month: [7]", at(2024, 2, 7, 10, 0), true),
        ("months: ['may:august']", at(2024, 8, 31, 23, 59), true),
        ("months: ['may:august']", at(2024, 9, 1, 0, 0), false),
        ("months: ['1:3', 'december']", at(2024, 12, 1, 0, 0), true),
        ("months: [2]", at(2024, 2, 1, 0, 0), true),
        ("years: ['2020:2022']", at(2022, 12, 31, 23, 59), true),
        ("years: ['2020:2022']", at(2023, 1, 1, 0, 0), false),
        ("years: [2024]", at(2024, 6, 1, 0, 0), true),
        // Fields are ANDed.
        (
            "weekdays: ['monday:friday']\ntimes: [{start_time: '09:00', end_time: '17:00'}]",
            at(2024, 3, 9, 10, 0),
            false,
        ),
        ("{}", at(2024, 3, 9, 10, 0), true),
    ];
    for (yaml, t, want) in cases {
        let ti = spec(yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"));
        assert_eq!(ti.contains(*t), *want, "{yaml} at {t}");
    }
}

#[test]
fn an_empty_list_matches_nothing_as_in_go() {
    // yaml.v2 decodes `times: []` to a non-nil empty slice, which no instant is in.
    assert!(!spec("times: []").unwrap().contains(at(2024, 3, 4, 9, 0)));
}

#[test]
fn location_moves_the_wall_clock_including_across_a_dst_switch() {
    if !std::path::Path::new("/usr/share/zoneinfo/Europe/Berlin").exists() {
        println!("skipped: no Europe/Berlin zoneinfo");
        return;
    }
    let ti =
        spec("times: [{start_time: '09:00', end_time: '17:00'}]\nlocation: Europe/Berlin").unwrap();
    // Winter: 09:00 in Berlin is 08:00 UTC.
    assert!(!ti.contains(at(2024, 1, 15, 7, 59)));
    assert!(ti.contains(at(2024, 1, 15, 8, 0)));
    // Summer: 07:00 UTC.
    assert!(!ti.contains(at(2024, 7, 15, 6, 59)));
    assert!(ti.contains(at(2024, 7, 15, 7, 0)));
    assert!(!ti.contains(at(2024, 7, 15, 15, 0)));
    // The day itself moves too: 23:30 UTC on Sunday is Monday in Berlin.
    let monday = spec("weekdays: [monday]\nlocation: Europe/Berlin").unwrap();
    assert!(monday.contains(at(2024, 3, 3, 23, 30)));
    assert!(!spec("weekdays: [monday]")
        .unwrap()
        .contains(at(2024, 3, 3, 23, 30)));
    // The last day of a month that loses an hour to DST is still the 31st (see the module doc).
    let last = spec("days_of_month: ['-1']\nlocation: Europe/Berlin").unwrap();
    assert!(last.contains(at(2024, 3, 31, 12, 0)));
    assert!(!last.contains(at(2024, 3, 30, 12, 0)));
}

#[test]
fn invalid_fields_get_alertmanager_messages() {
    let cases = [
        (
            "times: [{start_time: '9:00', end_time: '17:00'}]",
            "couldn't parse timestamp 9:00, invalid format",
        ),
        (
            "times: [{start_time: '09:00', end_time: '24:01'}]",
            "couldn't parse timestamp 24:01, invalid format",
        ),
        (
            "times: [{start_time: '09:00', end_time: '09:00'}]",
            "start time cannot be equal or greater than end time",
        ),
        (
            "times: [{start_time: '09:00'}]",
            "both start and end times must be provided",
        ),
        (
            "weekdays: ['friday:monday']",
            "start day cannot be before end day",
        ),
        // Ranges do not wrap around the week's end, as in Go.
        (
            "weekdays: ['saturday:sunday']",
            "start day cannot be before end day",
        ),
        ("months: ['jan']", "jan is not a valid month"),
        ("weekdays: ['funday']", "funday is not a valid weekday"),
        (
            "weekdays: ['monday:tuesday:friday']",
            "couldn't parse range monday:tuesday:friday, invalid format",
        ),
        (
            "days_of_month: ['0']",
            "0 is not a valid day of the month: out of range",
        ),
        (
            "days_of_month: ['1:32']",
            "32 is not a valid day of the month: out of range",
        ),
        (
            "days_of_month: ['-5:5']",
            "end day must be negative if start day is negative",
        ),
        (
            "days_of_month: ['10:5']",
            "end day 5 is always before start day 10",
        ),
        (
            "days_of_month: ['-1:-5']",
            "end day -5 is always before start day -1",
        ),
        (
            "days_of_month: ['x']",
            "strconv.Atoi: parsing \"x\": invalid syntax",
        ),
        (
            "months: ['march:january']",
            "end month january is before start month march",
        ),
        ("months: ['smarch']", "smarch is not a valid month"),
        (
            "years: ['2022:2020']",
            "end year 2020 is before start year 2022",
        ),
        (
            "location: Mars/Olympus_Mons",
            "unknown time zone Mars/Olympus_Mons",
        ),
    ];
    for (yaml, want) in cases {
        let err = spec(yaml)
            .err()
            .unwrap_or_else(|| panic!("{yaml} accepted"));
        assert_eq!(err, want, "{yaml}");
    }
}

#[test]
fn named_sets_look_up_both_spellings() {
    let named = |name: &str, yaml: &str| TimeIntervalConfig {
        name: name.into(),
        time_intervals: vec![serde_yaml::from_str(yaml).unwrap()],
    };
    let set = TimeIntervals::compile(
        &[named("weekend", "weekdays: [saturday, sunday]")],
        &[named(
            "nights",
            "times: [{start_time: '00:00', end_time: '06:00'}]",
        )],
    )
    .unwrap();
    let saturday_noon = at(2024, 3, 9, 12, 0);
    let monday_night = at(2024, 3, 4, 3, 0);
    let both = ["weekend".to_string(), "nights".to_string()];
    assert!(set.contains_any(&both, saturday_noon).unwrap());
    assert!(set.contains_any(&both, monday_night).unwrap());
    assert!(!set.contains_any(&both[..1], monday_night).unwrap());
    assert!(!set.contains_any(&[], monday_night).unwrap());
    assert_eq!(
        set.contains_any(&["nope".to_string()], monday_night)
            .unwrap_err(),
        "time interval nope doesn't exist in config"
    );
}
