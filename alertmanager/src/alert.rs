//! Alerts as they travel between the rule evaluator and the Alertmanager: the API v2 postable
//! shape ([`PostableAlert`]), the stored alert with its merge rules, its fingerprint, and the
//! order Alertmanager sorts alerts in.

use crate::goformat;
use chrono::{DateTime, Utc};
use model::Labels;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;

/// One alert in Alertmanager API v2's `postableAlert` shape, as Prometheus POSTs it to
/// `/api/v2/alerts`. Fields are declared in go-openapi's order so the serialized bytes match
/// what Prometheus sends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PostableAlert {
    #[serde(default, with = "labels_map")]
    pub annotations: Labels,
    /// When the alert stops being active; absent means "until `resolve_timeout` after now".
    #[serde(
        rename = "endsAt",
        default,
        skip_serializing_if = "Option::is_none",
        with = "millis_time"
    )]
    pub ends_at: Option<DateTime<Utc>>,
    /// When the alert started firing; absent means "now".
    #[serde(
        rename = "startsAt",
        default,
        skip_serializing_if = "Option::is_none",
        with = "millis_time"
    )]
    pub starts_at: Option<DateTime<Utc>>,
    #[serde(
        rename = "generatorURL",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub generator_url: String,
    #[serde(with = "labels_map")]
    pub labels: Labels,
}

/// An alert as the Alertmanager stores it (`types.Alert`): both ends set, with the time it was
/// last updated so a flush can tell whether it changed underneath.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Alert {
    pub labels: Labels,
    pub annotations: Labels,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub generator_url: String,
    pub updated_at: DateTime<Utc>,
    /// True when `ends_at` was not given and came from `resolve_timeout`.
    pub timeout: bool,
    pub fingerprint: u64,
}

impl Alert {
    /// Whether the alert has ended at `t` (an alert ending exactly at `t` has).
    pub fn resolved_at(&self, t: DateTime<Utc>) -> bool {
        self.ends_at <= t
    }

    /// Merges a newer post of the same alert into this one, as `types.Alert.Merge` does: the
    /// younger alert wins except that the earliest start is kept, and an explicit later end wins
    /// over a timeout-derived one.
    pub fn merge(&self, other: &Alert, now: DateTime<Utc>) -> Alert {
        if other.updated_at < self.updated_at {
            return other.merge(self, now);
        }
        let mut res = other.clone();
        if self.starts_at < other.starts_at {
            res.starts_at = self.starts_at;
        }
        if other.resolved_at(now) {
            if self.resolved_at(now) && self.ends_at > other.ends_at {
                res.ends_at = self.ends_at;
            }
        } else if self.ends_at > other.ends_at && !self.timeout {
            res.ends_at = self.ends_at;
        }
        res
    }

    /// Whether a new post of this alert overlaps the stored one, so the two are merged rather
    /// than the new one replacing it (the memory provider's rule).
    pub fn overlaps(&self, newer: &Alert) -> bool {
        (newer.ends_at > self.starts_at && newer.ends_at < self.ends_at)
            || (newer.starts_at > self.starts_at && newer.starts_at < self.ends_at)
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
const SEPARATOR: u8 = 0xff;

/// `model.LabelSet.Fingerprint()`: FNV-1a 64 over sorted `name 0xff value 0xff`.
pub fn fingerprint(labels: &Labels) -> u64 {
    let mut h = FNV_OFFSET;
    let mut add = |bytes: &[u8]| {
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(FNV_PRIME);
        }
    };
    for l in labels {
        add(l.name.as_bytes());
        add(&[SEPARATOR]);
        add(l.value.as_bytes());
        add(&[SEPARATOR]);
    }
    h
}

/// `Fingerprint.String()`: 16 lowercase hex digits.
pub fn fingerprint_hex(fp: u64) -> String {
    format!("{fp:016x}")
}

/// `types.AlertSlice.Less`: by `job`, then `instance` (an alert that has the label sorts first),
/// then `LabelSet.Before`, which puts smaller label sets first.
pub(crate) fn alert_order(a: &Labels, b: &Labels) -> Ordering {
    for key in ["job", "instance"] {
        match (a.get(key), b.get(key)) {
            (None, None) => continue,
            (Some(_), None) => return Ordering::Less,
            (None, Some(_)) => return Ordering::Greater,
            (Some(x), Some(y)) if x != y => return x.cmp(y),
            _ => {}
        }
    }
    if a.len() != b.len() {
        return a.len().cmp(&b.len());
    }
    let mut names: Vec<&str> = a.iter().chain(b.iter()).map(|l| l.name.as_str()).collect();
    names.sort_unstable();
    for name in names {
        match (a.get(name), b.get(name)) {
            (None, _) => return Ordering::Less,
            (_, None) => return Ordering::Greater,
            (Some(x), Some(y)) if x != y => return x.cmp(y),
            _ => {}
        }
    }
    Ordering::Equal
}

/// Serializes [`Labels`] as a JSON/YAML map (sorted keys, as Go's encoder writes maps).
pub(crate) mod labels_map {
    use model::Labels;
    use serde::ser::SerializeMap;
    use serde::{Deserialize, Deserializer, Serializer};
    use std::collections::BTreeMap;

    pub fn serialize<S: Serializer>(labels: &Labels, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(labels.len()))?;
        for l in labels {
            map.serialize_entry(&l.name, &l.value)?;
        }
        map.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Labels, D::Error> {
        let map = Option::<BTreeMap<String, String>>::deserialize(d)?.unwrap_or_default();
        Ok(Labels::from_pairs(map))
    }
}

/// Optional times written as go-openapi's `strfmt.DateTime` and read as any RFC 3339 time.
mod millis_time {
    use super::goformat;
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&goformat::rfc3339_millis(t)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(s) if s.is_empty() => Ok(None),
            Some(s) => DateTime::parse_from_rfc3339(&s)
                .map(|t| {
                    let t = t.with_timezone(&Utc);
                    // Go's zero time means "not set", as the API treats it.
                    (t.timestamp() > -62_135_596_800).then_some(t)
                })
                .map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn fingerprints_match_alertmanager_captures() {
        // 004_webhook.json: two alerts and the fingerprints Alertmanager 0.25 sent for them.
        let cart = Labels::from_pairs([
            ("alertname", "KubePodCrashLooping"),
            ("namespace", "shop"),
            ("pod", "cart-5c6b"),
            ("service", "cart"),
            ("severity", "warning"),
        ]);
        assert_eq!(fingerprint_hex(fingerprint(&cart)), "b41aa3c701cf1f1a");
        let checkout = Labels::from_pairs([
            ("alertname", "KubePodCrashLooping"),
            ("namespace", "shop"),
            ("pod", "checkout-7d9f"),
            ("service", "checkout"),
            ("severity", "critical"),
        ]);
        assert_eq!(fingerprint_hex(fingerprint(&checkout)), "650d4feaa18ae3bb");
    }

    #[test]
    fn postable_alert_serializes_like_prometheus() {
        let a = PostableAlert {
            labels: Labels::from_pairs([("alertname", "X")]),
            annotations: Labels::from_pairs([("summary", "s")]),
            starts_at: Some(Utc.timestamp_millis_opt(1_795_804_119_568).unwrap()),
            ends_at: Some(Utc.timestamp_millis_opt(1_795_804_122_568).unwrap()),
            generator_url: "http://p/graph?g0.expr=up&g0.tab=1".into(),
        };
        let body = String::from_utf8(goformat::to_json_go(&a).unwrap()).unwrap();
        assert_eq!(
            body,
            "{\"annotations\":{\"summary\":\"s\"},\"endsAt\":\"2026-11-27T18:28:42.568Z\",\"startsAt\":\"2026-11-27T18:28:39.568Z\",\"generatorURL\":\"http://p/graph?g0.expr=up\\u0026g0.tab=1\",\"labels\":{\"alertname\":\"X\"}}\n"
        );
        let back: PostableAlert = serde_json::from_str(&body).unwrap();
        assert_eq!(back, a);
    }

    #[test]
    fn sort_order_prefers_job_then_smaller_sets() {
        let a = Labels::from_pairs([("job", "a"), ("x", "1"), ("y", "1")]);
        let b = Labels::from_pairs([("job", "b")]);
        assert_eq!(alert_order(&a, &b), Ordering::Less);
        let c = Labels::from_pairs([("x", "1")]);
        assert_eq!(
            alert_order(&b, &c),
            Ordering::Less,
            "having job sorts first"
        );
        let d = Labels::from_pairs([("x", "1"), ("z", "1")]);
        assert_eq!(alert_order(&c, &d), Ordering::Less, "fewer labels first");
    }

    #[test]
    fn merge_keeps_earliest_start_and_explicit_end() {
        let t = |s: i64| Utc.timestamp_opt(s, 0).unwrap();
        let old = Alert {
            labels: Labels::from_pairs([("a", "1")]),
            annotations: Labels::empty(),
            starts_at: t(100),
            ends_at: t(400),
            generator_url: String::new(),
            updated_at: t(100),
            timeout: false,
            fingerprint: 0,
        };
        let newer = Alert {
            starts_at: t(200),
            ends_at: t(300),
            updated_at: t(200),
            ..old.clone()
        };
        assert!(old.overlaps(&newer));
        let m = old.merge(&newer, t(250));
        assert_eq!(m.starts_at, t(100));
        assert_eq!(m.ends_at, t(400));
        assert_eq!(m.updated_at, t(200));
    }
}
