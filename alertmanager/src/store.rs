//! The alert store: every alert the Alertmanager currently knows, by fingerprint, with
//! Alertmanager's rules for filling in missing times and merging re-posted alerts.

use crate::alert::{fingerprint, Alert, PostableAlert};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

#[derive(Debug, Default)]
pub(crate) struct AlertStore {
    alerts: Mutex<HashMap<u64, Alert>>,
}

impl AlertStore {
    /// Fills in missing times, validates, merges with the stored alert of the same labels and
    /// stores the result, which is returned for dispatch.
    pub fn put(
        &self,
        posted: PostableAlert,
        now: DateTime<Utc>,
        resolve_timeout: Duration,
    ) -> Result<Alert, String> {
        if posted.labels.is_empty() {
            return Err("at least one label pair required".into());
        }
        for l in &posted.labels {
            if !is_label_name(&l.name) {
                return Err(format!("invalid label set: invalid name {:?}", l.name));
            }
        }
        let starts_at = posted.starts_at.or(posted.ends_at).unwrap_or(now);
        let (ends_at, timeout) = match posted.ends_at {
            Some(e) => (e, false),
            None => {
                let timeout =
                    chrono::Duration::from_std(resolve_timeout).unwrap_or(chrono::Duration::MAX);
                (
                    now.checked_add_signed(timeout)
                        .unwrap_or(DateTime::<Utc>::MAX_UTC),
                    true,
                )
            }
        };
        if ends_at < starts_at {
            return Err("start time must be before end time".into());
        }
        let mut alert = Alert {
            fingerprint: fingerprint(&posted.labels),
            labels: posted.labels,
            annotations: posted.annotations,
            starts_at,
            ends_at,
            generator_url: posted.generator_url,
            updated_at: now,
            timeout,
        };
        let mut alerts = match self.alerts.lock() {
            Ok(a) => a,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(old) = alerts.get(&alert.fingerprint) {
            if old.overlaps(&alert) {
                alert = old.merge(&alert, now);
            }
        }
        alerts.insert(alert.fingerprint, alert.clone());
        Ok(alert)
    }

    /// The alerts that have not ended at `now`, ordered by fingerprint.
    pub fn unresolved(&self, now: DateTime<Utc>) -> Vec<Alert> {
        let alerts = match self.alerts.lock() {
            Ok(a) => a,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut out: Vec<Alert> = alerts
            .values()
            .filter(|a| !a.resolved_at(now))
            .cloned()
            .collect();
        out.sort_by_key(|a| a.fingerprint);
        out
    }

    /// Every alert kept, resolved ones too until the next GC, ordered by fingerprint.
    pub fn all(&self) -> Vec<Alert> {
        let alerts = match self.alerts.lock() {
            Ok(a) => a,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut out: Vec<Alert> = alerts.values().cloned().collect();
        out.sort_by_key(|a| a.fingerprint);
        out
    }

    /// Drops alerts that have ended (Alertmanager's periodic alert GC).
    pub fn gc(&self, now: DateTime<Utc>) -> usize {
        let mut alerts = match self.alerts.lock() {
            Ok(a) => a,
            Err(poisoned) => poisoned.into_inner(),
        };
        let before = alerts.len();
        alerts.retain(|_, a| !a.resolved_at(now));
        before - alerts.len()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.alerts.lock().map(|a| a.len()).unwrap_or(0)
    }
}

pub(crate) fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use model::Labels;

    fn posted(starts: Option<i64>, ends: Option<i64>) -> PostableAlert {
        let t = |s: i64| Utc.timestamp_opt(s, 0).unwrap();
        PostableAlert {
            labels: Labels::from_pairs([("alertname", "A")]),
            annotations: Labels::empty(),
            starts_at: starts.map(t),
            ends_at: ends.map(t),
            generator_url: String::new(),
        }
    }

    #[test]
    fn missing_times_are_filled_like_alertmanager() {
        let store = AlertStore::default();
        let now = Utc.timestamp_opt(1000, 0).unwrap();
        let a = store
            .put(posted(None, None), now, Duration::from_secs(300))
            .unwrap();
        assert_eq!(a.starts_at, now);
        assert_eq!(a.ends_at.timestamp(), 1300);
        assert!(a.timeout);
        let a = store
            .put(posted(None, Some(900)), now, Duration::from_secs(300))
            .unwrap();
        assert_eq!(a.starts_at.timestamp(), 900, "startsAt defaults to endsAt");
        assert!(store
            .put(posted(Some(900), Some(800)), now, Duration::ZERO)
            .is_err());
        assert_eq!(store.gc(now), 1);
        assert_eq!(store.len(), 0);
    }

    #[test]
    fn reposts_merge_to_the_earliest_start() {
        let store = AlertStore::default();
        let now = Utc.timestamp_opt(1000, 0).unwrap();
        store
            .put(posted(Some(900), Some(1200)), now, Duration::ZERO)
            .unwrap();
        let later = Utc.timestamp_opt(1010, 0).unwrap();
        let a = store
            .put(posted(Some(950), Some(1250)), later, Duration::ZERO)
            .unwrap();
        assert_eq!(a.starts_at.timestamp(), 900);
        assert_eq!(a.ends_at.timestamp(), 1250);
    }
}
