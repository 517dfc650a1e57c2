//! The config sections that mute notifications: `inhibit_rules` (applied by the crate's
//! `inhibit` module) and `time_intervals` / `mute_time_intervals` (compiled by the
//! `timeinterval` module and applied in every flush of a route that names them).

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
/// `active_time_intervals`; compiled and applied by the crate's `timeinterval` module.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TimeIntervalConfig {
    /// Required; an empty name is refused by validation with Alertmanager's message.
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub time_intervals: Vec<TimeIntervalSpec>,
}

/// One time range; every field present must match, a missing field matches everything (and,
/// as in Alertmanager, a present but empty list matches nothing). Values stay as written so
/// the config prints back unchanged; `timeinterval` parses them.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TimeIntervalSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<Vec<TimeRange>>,
    /// `monday:friday`, `sunday`; names in any case.
    #[serde(default, with = "scalar_list", skip_serializing_if = "Option::is_none")]
    pub weekdays: Option<Vec<String>>,
    /// `1:5`, `-3:-1` (negative counts from the month's end).
    #[serde(default, with = "scalar_list", skip_serializing_if = "Option::is_none")]
    pub days_of_month: Option<Vec<String>>,
    /// `1:3`, `may:august`.
    #[serde(default, with = "scalar_list", skip_serializing_if = "Option::is_none")]
    pub months: Option<Vec<String>>,
    /// `2020:2022`.
    #[serde(default, with = "scalar_list", skip_serializing_if = "Option::is_none")]
    pub years: Option<Vec<String>>,
    /// An IANA zone name or `Local`; default UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

/// `HH:MM` start (inclusive) and end (exclusive; `24:00` allowed).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TimeRange {
    #[serde(default)]
    pub start_time: String,
    #[serde(default)]
    pub end_time: String,
}

/// A list of YAML scalars read as their text: Go's YAML decoder fills a string from `2024`
/// as readily as from `'2024'`, so `years: [2024]` and `days_of_month: [1]` are accepted.
mod scalar_list {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        Text(String),
        Int(i64),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
        let list: Option<Vec<Scalar>> = Option::deserialize(d)?;
        Ok(list.map(|l| {
            l.into_iter()
                .map(|s| match s {
                    Scalar::Text(t) => t,
                    Scalar::Int(i) => i.to_string(),
                })
                .collect()
        }))
    }

    pub fn serialize<S: Serializer>(v: &Option<Vec<String>>, s: S) -> Result<S::Ok, S::Error> {
        v.serialize(s)
    }
}
