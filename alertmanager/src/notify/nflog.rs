//! The notification log: what each integration of each group was last told, so a flush sends
//! only when something changed or the repeat interval has passed (Alertmanager's `nflog` and
//! its `DedupStage.needsUpdate`). With a data directory, the log is kept in `nflog.json`,
//! rewritten atomically (temporary file, fsync, rename) after every successful notification,
//! so a restart — even a `kill -9` — neither re-sends within `repeat_interval` nor forgets
//! what it told a receiver.

use crate::alert::fingerprint_hex;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// The snapshot's file name under the data directory.
pub(crate) const NFLOG_FILE: &str = "nflog.json";
/// The snapshot format; bumped on an incompatible change.
const NFLOG_VERSION: u32 = 1;

/// Identifies one integration of one group: `(group key, receiver, integration, index)`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) struct LogKey {
    pub group_key: String,
    pub receiver: String,
    pub integration: String,
    pub index: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Entry {
    /// Fingerprints (16 hex digits, as Alertmanager prints them) of the alerts notified firing.
    #[serde(with = "fingerprint_set")]
    firing: BTreeSet<u64>,
    #[serde(with = "fingerprint_set")]
    resolved: BTreeSet<u64>,
    timestamp: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

/// `nflog.json`.
#[derive(Serialize, Deserialize)]
struct Snapshot {
    version: u32,
    entries: Vec<SnapshotEntry>,
}

#[derive(Serialize, Deserialize)]
struct SnapshotEntry {
    #[serde(flatten)]
    key: LogKey,
    #[serde(flatten)]
    entry: Entry,
}

mod fingerprint_set {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(set: &BTreeSet<u64>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(set.iter().map(|fp| fingerprint_hex(*fp)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeSet<u64>, D::Error> {
        let hex: Vec<String> = Vec::deserialize(d)?;
        hex.iter()
            .map(|h| u64::from_str_radix(h, 16).map_err(serde::de::Error::custom))
            .collect()
    }
}

#[derive(Debug, Default)]
pub(crate) struct NotificationLog {
    entries: Mutex<HashMap<LogKey, Entry>>,
    /// Where the snapshot lives; `None` keeps the log in memory only.
    file: Option<PathBuf>,
}

impl NotificationLog {
    /// The log kept in `dir/nflog.json`, loaded from it when it exists. An unreadable snapshot
    /// is logged and moved aside to `nflog.json.corrupt`; the log then starts empty, which at
    /// worst repeats notifications once (never loses one).
    pub fn open_or_empty(dir: Option<&Path>) -> NotificationLog {
        let Some(dir) = dir else {
            return NotificationLog::default();
        };
        let file = dir.join(NFLOG_FILE);
        let entries = match load(&file) {
            Ok(entries) => entries,
            Err(error) => {
                let aside = dir.join(format!("{NFLOG_FILE}.corrupt"));
                let moved = std::fs::rename(&file, &aside).is_ok();
                tracing::error!(%error, moved_to = %aside.display(), moved, "notification log not loaded; starting empty");
                HashMap::new()
            }
        };
        if let Err(error) = std::fs::create_dir_all(dir) {
            tracing::error!(%error, dir = %dir.display(), "cannot create the notification log directory");
        }
        NotificationLog {
            entries: Mutex::new(entries),
            file: Some(file),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<LogKey, Entry>> {
        match self.entries.lock() {
            Ok(e) => e,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

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
        let entries = self.lock();
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

    /// Records a successful notification; the entry lives `2 × repeat_interval`. With a data
    /// directory the snapshot is rewritten before this returns; a failed write is logged (the
    /// notification was sent; the log in memory still holds it).
    pub fn log(
        &self,
        key: LogKey,
        firing: BTreeSet<u64>,
        resolved: BTreeSet<u64>,
        repeat_interval: Duration,
        now: DateTime<Utc>,
    ) {
        let ttl = chrono::Duration::from_std(repeat_interval * 2).unwrap_or(chrono::Duration::MAX);
        let mut entries = self.lock();
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
        self.persist(&entries);
    }

    /// Drops expired entries.
    pub fn gc(&self, now: DateTime<Utc>) {
        let mut entries = self.lock();
        let before = entries.len();
        entries.retain(|_, e| e.expires_at > now);
        if entries.len() != before {
            self.persist(&entries);
        }
    }

    /// Writes the snapshot (temporary file, fsync, rename, directory fsync), under the lock so
    /// snapshots land in the order of the changes.
    fn persist(&self, entries: &HashMap<LogKey, Entry>) {
        let Some(file) = &self.file else {
            return;
        };
        let mut list: Vec<SnapshotEntry> = entries
            .iter()
            .map(|(k, e)| SnapshotEntry {
                key: k.clone(),
                entry: e.clone(),
            })
            .collect();
        list.sort_by(|a, b| {
            (
                &a.key.group_key,
                &a.key.receiver,
                &a.key.integration,
                a.key.index,
            )
                .cmp(&(
                    &b.key.group_key,
                    &b.key.receiver,
                    &b.key.integration,
                    b.key.index,
                ))
        });
        let snapshot = Snapshot {
            version: NFLOG_VERSION,
            entries: list,
        };
        let write = || -> std::io::Result<()> {
            use std::io::Write;
            let bytes = serde_json::to_vec_pretty(&snapshot)?;
            let tmp = file.with_extension("json.tmp");
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, file)?;
            if let Some(dir) = file.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        };
        if let Err(error) = write() {
            tracing::error!(%error, file = %file.display(), "writing the notification log failed");
        }
    }
}

/// Reads a snapshot; a missing file is an empty log.
fn load(file: &Path) -> Result<HashMap<LogKey, Entry>, String> {
    let bytes = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(e) => return Err(format!("reading {}: {e}", file.display())),
    };
    let snapshot: Snapshot =
        serde_json::from_slice(&bytes).map_err(|e| format!("parsing {}: {e}", file.display()))?;
    if snapshot.version != NFLOG_VERSION {
        return Err(format!(
            "{}: snapshot version {} is not {NFLOG_VERSION}",
            file.display(),
            snapshot.version
        ));
    }
    Ok(snapshot
        .entries
        .into_iter()
        .map(|e| (e.key, e.entry))
        .collect())
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
            integration: "webhook".into(),
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

    #[test]
    fn the_snapshot_survives_a_restart_and_a_corrupt_one_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let key = LogKey {
            group_key: "{}:{alertname=\"A\"}".into(),
            receiver: "r".into(),
            integration: "slack".into(),
            index: 1,
        };
        let t = |s: i64| Utc.timestamp_opt(s, 0).unwrap();
        let set = |v: &[u64]| v.iter().copied().collect::<BTreeSet<u64>>();
        let repeat = Duration::from_secs(3600);
        let log = NotificationLog::open_or_empty(Some(dir.path()));
        log.log(
            key.clone(),
            set(&[0x650d4feaa18ae3bb]),
            set(&[7]),
            repeat,
            t(0),
        );
        drop(log);
        let text = std::fs::read_to_string(dir.path().join(NFLOG_FILE)).unwrap();
        assert!(text.contains("\"650d4feaa18ae3bb\""), "{text}");

        let log = NotificationLog::open_or_empty(Some(dir.path()));
        assert!(!log.needs_update(
            &key,
            &set(&[0x650d4feaa18ae3bb]),
            &set(&[7]),
            true,
            repeat,
            t(60)
        ));
        assert!(log.needs_update(
            &key,
            &set(&[0x650d4feaa18ae3bb]),
            &set(&[7]),
            true,
            repeat,
            t(3601)
        ));
        log.gc(t(7201));
        drop(log);
        let log = NotificationLog::open_or_empty(Some(dir.path()));
        assert!(log.lock().is_empty(), "gc is persisted");

        std::fs::write(dir.path().join(NFLOG_FILE), "{not json").unwrap();
        let log = NotificationLog::open_or_empty(Some(dir.path()));
        assert!(log.lock().is_empty());
        assert!(dir.path().join("nflog.json.corrupt").exists());
    }
}
