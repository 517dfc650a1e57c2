//! The notification log: what each integration of each group was last told, so a flush sends
//! only when something changed or the repeat interval has passed (Alertmanager's `nflog` and
//! its `DedupStage.needsUpdate`). In memory for now; persistence comes with silences.

use chrono::{DateTime, Utc};
use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

/// Identifies one integration of one group: `(group key, receiver, integration, index)`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct LogKey {
    pub group_key: String,
    pub receiver: String,
    pub integration: &'static str,
    pub index: usize,
}

#[derive(Clone, Debug)]
struct Entry {
    firing: BTreeSet<u64>,
    resolved: BTreeSet<u64>,
    timestamp: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

#[derive(Debug, Default)]
pub(crate) struct NotificationLog {
    entries: Mutex<HashMap<LogKey, Entry>>,
}

impl NotificationLog {
    /// Whether the integration must be notified about `firing` and `resolved` (fingerprints).
    pub fn needs_update(
        &self,
        key: &LogKey,
        firing: &BTreeSet<u64>,
        resolved: &BTreeSet<u64>,
        send_resolved: bool,
        repeat_interval: Duration,
        now: DateTime<Utc>,
    ) -> bool {
        let entries = match self.entries.lock() {
            Ok(e) => e,
            Err(poisoned) => poisoned.into_inner(),
        };
        let Some(entry) = entries.get(key) else {
            // Never notified: only firing alerts are worth a first message.
            return !firing.is_empty();
        };
        if !firing.is_subset(&entry.firing) {
            return true;
        }
        if firing.is_empty() {
            // "All resolved" is sent regardless of send_resolved, so the log forgets the
            // firing alerts; if the receiver never heard of them there is nothing to say.
            return !entry.firing.is_empty();
        }
        if send_resolved && !resolved.is_subset(&entry.resolved) {
            return true;
        }
        let repeat = chrono::Duration::from_std(repeat_interval).unwrap_or(chrono::Duration::MAX);
        entry.timestamp < now - repeat
    }

    /// Records a successful notification; the entry lives `2 × repeat_interval`.
    pub fn log(
        &self,
        key: LogKey,
        firing: BTreeSet<u64>,
        resolved: BTreeSet<u64>,
        repeat_interval: Duration,
        now: DateTime<Utc>,
    ) {
        let ttl = chrono::Duration::from_std(repeat_interval * 2).unwrap_or(chrono::Duration::MAX);
        let mut entries = match self.entries.lock() {
            Ok(e) => e,
            Err(poisoned) => poisoned.into_inner(),
        };
        entries.insert(
            key,
            Entry {
                firing,
                resolved,
                timestamp: now,
                expires_at: now
                    .checked_add_signed(ttl)
                    .unwrap_or(DateTime::<Utc>::MAX_UTC),
            },
        );
    }

    /// Drops expired entries.
    pub fn gc(&self, now: DateTime<Utc>) {
        let mut entries = match self.entries.lock() {
            Ok(e) => e,
            Err(poisoned) => poisoned.into_inner(),
        };
        entries.retain(|_, e| e.expires_at > now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn needs_update_follows_alertmanager() {
        let log = NotificationLog::default();
        let key = LogKey {
            group_key: "{}:{}".into(),
            receiver: "r".into(),
            integration: "webhook",
            index: 0,
        };
        let t = |s: i64| Utc.timestamp_opt(s, 0).unwrap();
        let set = |v: &[u64]| v.iter().copied().collect::<BTreeSet<u64>>();
        let repeat = Duration::from_secs(3600);
        assert!(!log.needs_update(&key, &set(&[]), &set(&[1]), true, repeat, t(0)));
        assert!(log.needs_update(&key, &set(&[1]), &set(&[]), true, repeat, t(0)));
        log.log(key.clone(), set(&[1]), set(&[]), repeat, t(0));
        assert!(
            !log.needs_update(&key, &set(&[1]), &set(&[]), true, repeat, t(60)),
            "unchanged"
        );
        assert!(
            log.needs_update(&key, &set(&[1, 2]), &set(&[]), true, repeat, t(60)),
            "new firing"
        );
        assert!(log.needs_update(&key, &set(&[2]), &set(&[1]), true, repeat, t(60)));
        assert!(!log.needs_update(&key, &set(&[1]), &set(&[3]), false, repeat, t(60)));
        assert!(log.needs_update(&key, &set(&[1]), &set(&[3]), true, repeat, t(60)));
        assert!(
            log.needs_update(&key, &set(&[]), &set(&[1]), false, repeat, t(60)),
            "all resolved"
        );
        assert!(
            log.needs_update(&key, &set(&[1]), &set(&[]), true, repeat, t(3601)),
            "repeat"
        );
        log.gc(t(7201));
        assert!(
            log.needs_update(&key, &set(&[1]), &set(&[]), true, repeat, t(7201)),
            "expired"
        );
    }
}
