//! `vigil check alertmanager-config` against the real `amtool check-config` (0.25) on a table
//! of configs with time intervals (issue 9): both named-interval spellings, every field, every
//! validation Alertmanager applies to them, and their use in routes. For each config both
//! tools must give the same exit code and print the same report, error text included.
//!
//! Needs `/usr/bin/amtool`; skips without it unless `CI=true`.

use crate::harness::BIN;
use std::path::Path;
use std::process::{Command, Output};

const AMTOOL: &str = "/usr/bin/amtool";

/// A config whose child route mutes with `mute` and is active in `active`, followed by the
/// interval definitions `defs` (YAML at the top level).
fn with_route(mute: &str, active: &str, defs: &str) -> String {
    format!(
        "route:\n  receiver: team\n  routes:\n  - receiver: team\n    matchers: [a=b]\n    \
         mute_time_intervals: [{mute}]\n    active_time_intervals: [{active}]\n\
         receivers:\n- name: team\n{defs}"
    )
}

/// One interval named `offhours` with the given `time_intervals` entries, used by the route.
fn offhours(entries: &str) -> String {
    with_route(
        "offhours",
        "offhours",
        &format!("time_intervals:\n- name: offhours\n  time_intervals:\n{entries}"),
    )
}

/// Each case's name (the file name both tools print) and config.
fn cases() -> Vec<(&'static str, String)> {
    vec![
        (
            "valid_every_field",
            offhours(
                "  - times:\n    - start_time: '09:00'\n      end_time: '17:30'\n    \
                 weekdays: ['monday:friday', saturday]\n    \
                 days_of_month: ['1:5', '-3:-1', '10', '5:-1']\n    \
                 months: ['january:march', '7', december]\n    years: ['2020:2025']\n    \
                 location: Europe/Berlin\n",
            ),
        ),
        (
            "valid_deprecated_spelling",
            with_route(
                "x",
                "x",
                "mute_time_intervals:\n- name: x\n  time_intervals:\n  - weekdays: [sunday]\n",
            ),
        ),
        (
            "valid_whole_day_local",
            offhours(
                "  - times:\n    - start_time: '00:00'\n      end_time: '24:00'\n    location: Local\n",
            ),
        ),
        ("valid_empty_interval", offhours("  - {}\n")),
        (
            "bad_hour",
            offhours("  - times:\n    - start_time: '25:00'\n      end_time: '26:00'\n"),
        ),
        (
            "bad_minute",
            offhours("  - times:\n    - start_time: '10:61'\n      end_time: '11:00'\n"),
        ),
        (
            "bad_time_format",
            offhours("  - times:\n    - start_time: '1000'\n      end_time: '11:00'\n"),
        ),
        (
            "bad_time_order",
            offhours("  - times:\n    - start_time: '10:00'\n      end_time: '09:00'\n"),
        ),
        (
            "bad_time_missing_end",
            offhours("  - times:\n    - start_time: '10:00'\n"),
        ),
        ("bad_weekday", offhours("  - weekdays: [funday]\n")),
        ("valid_weekday_capitalised", offhours("  - weekdays: [Monday]\n")),
        ("bad_weekday_order", offhours("  - weekdays: ['friday:monday']\n")),
        (
            "bad_range_of_three",
            offhours("  - weekdays: ['monday:tuesday:friday']\n"),
        ),
        ("bad_day_zero", offhours("  - days_of_month: ['0']\n")),
        ("bad_day_32", offhours("  - days_of_month: ['32']\n")),
        ("bad_day_minus_32", offhours("  - days_of_month: ['-32']\n")),
        ("bad_day_order", offhours("  - days_of_month: ['5:2']\n")),
        ("bad_day_negative_order", offhours("  - days_of_month: ['-1:-3']\n")),
        ("bad_day_mixed_signs", offhours("  - days_of_month: ['-1:5']\n")),
        // 0.25 takes any month number without a range check; so must Vigil.
        ("valid_month_13", offhours("  - months: ['13']\n")),
        ("bad_month_abbreviated", offhours("  - months: ['jan:mar']\n")),
        ("bad_month_order", offhours("  - months: ['december:january']\n")),
        ("bad_year_order", offhours("  - years: ['2025:2020']\n")),
        ("bad_year_word", offhours("  - years: [abc]\n")),
        ("bad_location", offhours("  - location: Mars/Olympus\n")),
        ("bad_unknown_interval_key", offhours("  - weekday: [monday]\n")),
        (
            "bad_unknown_time_range_key",
            offhours("  - times:\n    - start_time: '01:00'\n      end: '02:00'\n"),
        ),
        (
            "bad_unknown_named_key",
            with_route(
                "x",
                "x",
                "time_intervals:\n- name: x\n  bogus: 1\n  time_intervals: []\n",
            ),
        ),
        (
            "bad_undefined_mute",
            with_route(
                "nope",
                "x",
                "time_intervals:\n- name: x\n  time_intervals: []\n",
            ),
        ),
        (
            "bad_undefined_active",
            with_route(
                "x",
                "nope",
                "time_intervals:\n- name: x\n  time_intervals: []\n",
            ),
        ),
        (
            "bad_duplicate_name",
            with_route(
                "x",
                "x",
                "time_intervals:\n- name: x\n  time_intervals: []\n- name: x\n  time_intervals: []\n",
            ),
        ),
        (
            "bad_duplicate_across_spellings",
            with_route(
                "x",
                "x",
                "time_intervals:\n- name: x\n  time_intervals: []\n\
                 mute_time_intervals:\n- name: x\n  time_intervals: []\n",
            ),
        ),
        (
            "bad_empty_name",
            with_route(
                "x",
                "x",
                "time_intervals:\n- name: x\n  time_intervals: []\n- name: ''\n  time_intervals: []\n",
            ),
        ),
        (
            "bad_root_mute",
            "route:\n  receiver: team\n  mute_time_intervals: [x]\nreceivers:\n- name: team\n\
             time_intervals:\n- name: x\n  time_intervals: []\n"
                .to_string(),
        ),
    ]
}

/// Runs `program args` in `dir`, so both tools print the same relative path.
fn run(program: &str, args: &[&str], dir: &Path) -> Output {
    Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("VIGIL_LOG", "error")
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"))
}

/// `text` without the ` (line N)` Vigil adds after a message amtool prints without one.
fn without_line_hints(text: &str) -> String {
    text.lines()
        .map(|l| match l.rsplit_once(" (line ") {
            Some((head, n))
                if n.strip_suffix(')')
                    .is_some_and(|d| d.parse::<usize>().is_ok()) =>
            {
                head
            }
            _ => l,
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn time_interval_configs_get_amtool_verdicts_and_messages() {
    if !crate::peers::present(AMTOOL, "the time-interval check table") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut problems = Vec::new();
    let mut valid = 0;
    for (name, config) in cases() {
        let file = format!("{name}.yml");
        std::fs::write(dir.path().join(&file), &config).unwrap();
        let theirs = run(AMTOOL, &["check-config", &file], dir.path());
        let ours = run(BIN, &["check", "alertmanager-config", &file], dir.path());
        let (their_out, our_out) = (
            String::from_utf8_lossy(&theirs.stdout),
            without_line_hints(&String::from_utf8_lossy(&ours.stdout)),
        );
        // The table's names say which verdict amtool gives, so a case that drifts is seen.
        if theirs.status.success() != name.starts_with("valid") {
            problems.push(format!("{name}: amtool says {their_out}"));
        }
        valid += usize::from(theirs.status.success());
        if ours.status.code() != theirs.status.code() || our_out != their_out {
            problems.push(format!(
                "{name}: amtool exited {:?}:\n{their_out}Vigil exited {:?}:\n{our_out}",
                theirs.status.code(),
                ours.status.code()
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_eq!(
        valid, 6,
        "the table keeps valid configs beside the invalid ones"
    );
}
