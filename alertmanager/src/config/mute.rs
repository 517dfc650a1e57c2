//! The config sections that mute notifications: `inhibit_rules` (applied by the crate's
//! `inhibit` module) and `time_intervals` (parsed and validated; the time-interval stages come
//! later).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One inhibition rule: firing alerts matching the source mute alerts matching the target when
/// the `equal` labels agree.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InhibitRuleConfig {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub source_match: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub source_match_re: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_matchers: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub target_match: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub target_match_re: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_matchers: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub equal: Vec<String>,
}

/// A named set of time ranges, referenced by routes' `mute_time_intervals` and
/// `active_time_intervals`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TimeIntervalConfig {
    pub name: String,
    #[serde(default)]
    pub time_intervals: Vec<TimeIntervalSpec>,
}

/// One time range; every field present must match, a missing field matches everything.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TimeIntervalSpec {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub times: Vec<TimeRange>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub weekdays: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub days_of_month: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub months: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub years: Vec<String>,
    pub location: Option<String>,
}

/// `HH:MM` start (inclusive) and end (exclusive; `24:00` allowed).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TimeRange {
    pub start_time: String,
    pub end_time: String,
}

impl TimeRange {
    pub(crate) fn validate(&self) -> Result<(), String> {
        let minutes = |s: &str| -> Option<u32> {
            let (h, m) = s.split_once(':')?;
            if h.len() > 2 || m.len() != 2 {
                return None;
            }
            let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
            (m < 60 && (h < 24 || (h == 24 && m == 0))).then_some(h * 60 + m)
        };
        match (minutes(&self.start_time), minutes(&self.end_time)) {
            (Some(s), Some(e)) if s < e => Ok(()),
            (Some(_), Some(_)) => Err(format!(
                "start time {} cannot be equal or greater than end time {}",
                self.start_time, self.end_time
            )),
            _ => Err(format!(
                "couldn't parse timestamp {} - {}, invalid format",
                self.start_time, self.end_time
            )),
        }
    }
}
