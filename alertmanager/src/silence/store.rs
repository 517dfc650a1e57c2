//! The silence store: every silence by id with its compiled matchers; creating, updating and
//! expiring them by Alertmanager's rules; which active silences mute a label set; and the JSON
//! snapshot in the data directory.
//!
//! Alertmanager snapshots silences every 15 minutes and on shutdown, so a crash loses the
//! recent ones. Here every change is written (to a temporary file, fsync'd, renamed over the
//! snapshot) before it takes effect: silences change rarely, and one that vanishes after a
//! restart pages someone at night.

use super::{
    can_update, new_id, validate, PostableSilence, Silence, SilenceError, SilenceState,
    SILENCE_RETENTION,
};
use chrono::{DateTime, Utc};
use model::{Labels, Matcher};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// The snapshot's name inside the data directory.
const SNAPSHOT_FILE: &str = "silences.json";
/// Bumped when the snapshot's layout changes; a file of another version is refused.
const SNAPSHOT_VERSION: u32 = 1;

/// The snapshot file's content.
#[derive(Serialize, Deserialize)]
struct Snapshot {
    version: u32,
    silences: Vec<Silence>,
}

#[derive(Clone, Debug)]
struct Entry {
    silence: Silence,
    /// Compiled once when stored, so muting a label set runs no regex compiler.
    matchers: Vec<Matcher>,
}

type State = BTreeMap<String, Entry>;

#[derive(Debug, Default)]
pub(crate) struct Silences {
    state: Mutex<State>,
    /// Where the snapshot lives; `None` keeps silences in memory only.
    file: Option<PathBuf>,
}

impl Silences {
    /// Silences kept in `dir/silences.json`, loaded from it when it exists. A snapshot that
    /// cannot be read is an error: starting without the silences would notify what they mute.
    pub fn open(dir: &Path) -> Result<Silences, SilenceError> {
        let file = dir.join(SNAPSHOT_FILE);
        let load = |message: String| SilenceError::Load {
            path: file.clone(),
            message,
        };
        std::fs::create_dir_all(dir).map_err(|source| SilenceError::Persist {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut state = State::new();
        match std::fs::read(&file) {
            Ok(bytes) => {
                let snapshot: Snapshot =
                    serde_json::from_slice(&bytes).map_err(|e| load(e.to_string()))?;
                if snapshot.version != SNAPSHOT_VERSION {
                    return Err(load(format!(
                        "snapshot version {} is not {SNAPSHOT_VERSION}",
                        snapshot.version
                    )));
                }
                for silence in snapshot.silences {
                    let matchers = validate(&silence)
                        .map_err(|e| load(format!("silence {}: {e}", silence.id)))?;
                    state.insert(silence.id.clone(), Entry { silence, matchers });
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(load(e.to_string())),
        }
        Ok(Silences {
            state: Mutex::new(state),
            file: Some(file),
        })
    }

    /// `open` for the Alertmanager, which cannot fail to start over its silences: an unreadable
    /// snapshot is logged and renamed to `silences.json.corrupt`, kept for a person to look at,
    /// and the store starts empty.
    pub fn open_or_empty(dir: Option<&Path>) -> Silences {
        let Some(dir) = dir else {
            return Silences::default();
        };
        match Silences::open(dir) {
            Ok(s) => s,
            Err(error) => {
                let file = dir.join(SNAPSHOT_FILE);
                let aside = dir.join(format!("{SNAPSHOT_FILE}.corrupt"));
                let moved = std::fs::rename(&file, &aside).is_ok();
                tracing::error!(%error, moved_to = %aside.display(), moved, "silences not loaded; starting without them");
                Silences {
                    state: Mutex::new(State::new()),
                    file: Some(file),
                }
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Creates a silence, or updates the one `post.id` names: in place when Alertmanager's
    /// `canUpdate` allows it, otherwise by expiring the old one and creating a new one. Returns
    /// the id of the silence now in force. Nothing changes unless everything is valid.
    pub fn set(&self, post: PostableSilence, now: DateTime<Utc>) -> Result<String, SilenceError> {
        if post.starts_at >= post.ends_at {
            return Err(SilenceError::BadTimes("start time must be before end time"));
        }
        if post.ends_at < now {
            return Err(SilenceError::BadTimes("end time can't be in the past"));
        }
        let mut state = self.lock();
        let prev = match post.id.as_deref().filter(|id| !id.is_empty()) {
            Some(id) => Some(
                state
                    .get(id)
                    .map(|e| e.silence.clone())
                    .ok_or(SilenceError::NotFound)?,
            ),
            None => None,
        };
        let in_place = prev.as_ref().filter(|p| can_update(p, &post, now));
        let mut silence = Silence {
            id: String::new(),
            starts_at: post.starts_at,
            ends_at: post.ends_at,
            updated_at: now,
            created_by: post.created_by,
            comment: post.comment,
            matchers: post.matchers,
        };
        match in_place {
            Some(p) => silence.id = p.id.clone(),
            None => {
                silence.id = new_id();
                // A new silence never starts in the past: history stays as it was.
                silence.starts_at = silence.starts_at.max(now);
            }
        }
        let matchers = validate(&silence)?;
        let mut next = state.clone();
        if in_place.is_none() {
            if let Some(old) = prev.as_ref().and_then(|p| next.get_mut(&p.id)) {
                expire(&mut old.silence, now);
            }
        }
        let id = silence.id.clone();
        next.insert(id.clone(), Entry { silence, matchers });
        self.persist(&next)?;
        *state = next;
        Ok(id)
    }

    /// Expires a silence now; an already expired one is left as it is.
    pub fn expire(&self, id: &str, now: DateTime<Utc>) -> Result<(), SilenceError> {
        let mut state = self.lock();
        let entry = state.get(id).ok_or(SilenceError::NotFound)?;
        if entry.silence.state(now) == SilenceState::Expired {
            return Ok(());
        }
        let mut next = state.clone();
        if let Some(e) = next.get_mut(id) {
            expire(&mut e.silence, now);
        }
        self.persist(&next)?;
        *state = next;
        Ok(())
    }

    pub fn get(&self, id: &str, now: DateTime<Utc>) -> Option<(Silence, SilenceState)> {
        self.lock()
            .get(id)
            .map(|e| (e.silence.clone(), e.silence.state(now)))
    }

    /// Every silence with its state, in `GET /api/v2/silences` order: active ones ending
    /// soonest first, then pending ones starting soonest, then expired ones latest first.
    pub fn list(&self, now: DateTime<Utc>) -> Vec<(Silence, SilenceState)> {
        let mut out: Vec<(Silence, SilenceState)> = self
            .lock()
            .values()
            .map(|e| (e.silence.clone(), e.silence.state(now)))
            .collect();
        out.sort_by(|(a, sa), (b, sb)| {
            let within = match sa {
                SilenceState::Active => a.ends_at.cmp(&b.ends_at),
                SilenceState::Pending => a.starts_at.cmp(&b.starts_at),
                SilenceState::Expired => b.ends_at.cmp(&a.ends_at),
            };
            sa.cmp(sb).then(within).then_with(|| a.id.cmp(&b.id))
        });
        out
    }

    /// The ids, sorted, of the active silences whose every matcher matches `labels`.
    pub fn silenced_by(&self, labels: &Labels, now: DateTime<Utc>) -> Vec<String> {
        // The map is ordered by id, so the result is too.
        self.lock()
            .values()
            .filter(|e| e.silence.state(now) == SilenceState::Active)
            .filter(|e| e.matchers.iter().all(|m| m.matches_labels(labels)))
            .map(|e| e.silence.id.clone())
            .collect()
    }

    /// Drops silences that ended more than [`SILENCE_RETENTION`] ago; returns how many.
    pub fn gc(&self, now: DateTime<Utc>) -> usize {
        let retention = chrono::Duration::from_std(SILENCE_RETENTION).unwrap_or_default();
        let mut state = self.lock();
        let mut next = state.clone();
        next.retain(|_, e| e.silence.ends_at + retention > now);
        let dropped = state.len() - next.len();
        if dropped > 0 {
            if let Err(error) = self.persist(&next) {
                // Keeping them a while longer is harmless; the next GC tries again.
                tracing::warn!(%error, "silence garbage collection not written");
                return 0;
            }
            *state = next;
        }
        dropped
    }

    /// Writes `state` as the snapshot (temporary file, fsync, rename), when there is a file.
    fn persist(&self, state: &State) -> Result<(), SilenceError> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        let snapshot = Snapshot {
            version: SNAPSHOT_VERSION,
            silences: state.values().map(|e| e.silence.clone()).collect(),
        };
        let err = |source| SilenceError::Persist {
            path: file.clone(),
            source,
        };
        let bytes = serde_json::to_vec_pretty(&snapshot).map_err(|e| err(e.into()))?;
        let tmp = file.with_extension("json.tmp");
        let write = || -> std::io::Result<()> {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, file)?;
            if let Some(dir) = file.parent() {
                // The rename is durable only once the directory is synced.
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        };
        write().map_err(err)
    }
}

/// Ends a silence at `now`: an active one stops now, a pending one never starts.
fn expire(s: &mut Silence, now: DateTime<Utc>) {
    match s.state(now) {
        SilenceState::Expired => return,
        SilenceState::Active => s.ends_at = now,
        SilenceState::Pending => {
            s.starts_at = now;
            s.ends_at = now;
        }
    }
    s.updated_at = now;
}

#[cfg(test)]
mod tests {
    use super::super::tests::{m, t};
    use super::*;

    fn post(id: Option<&str>, starts: i64, ends: i64, value: &str) -> PostableSilence {
        PostableSilence {
            id: id.map(str::to_string),
            matchers: vec![m("pod", "cart-.*", true, true), m("ns", value, false, true)],
            starts_at: t(starts),
            ends_at: t(ends),
            created_by: "me".into(),
            comment: "maintenance".into(),
        }
    }

    fn labels(pod: &str, ns: &str) -> Labels {
        Labels::from_pairs([("alertname", "Down"), ("pod", pod), ("ns", ns)])
    }

    #[test]
    fn active_silences_mute_matching_labels_only() {
        let s = Silences::default();
        let id = s.set(post(None, 100, 200, "shop"), t(100)).unwrap();
        assert_eq!(s.silenced_by(&labels("cart-1", "shop"), t(150)), vec![id]);
        assert!(s.silenced_by(&labels("cart-1", "other"), t(150)).is_empty());
        assert!(
            s.silenced_by(&labels("xcart-1", "shop"), t(150)).is_empty(),
            "regex is anchored"
        );
        assert!(
            s.silenced_by(&labels("cart-1", "shop"), t(201)).is_empty(),
            "expired"
        );
        let pending = s.set(post(None, 300, 400, "shop"), t(150)).unwrap();
        assert_eq!(s.get(&pending, t(150)).unwrap().1, SilenceState::Pending);
        assert!(s.silenced_by(&labels("cart-1", "shop"), t(250)).is_empty());
    }

    #[test]
    fn update_rules_keep_or_replace_the_id() {
        let s = Silences::default();
        // A start in the past is clamped to now for a new silence.
        let id = s.set(post(None, 50, 200, "shop"), t(100)).unwrap();
        assert_eq!(s.get(&id, t(100)).unwrap().0.starts_at, t(100));

        // Extending an active silence keeps its id.
        let same = s.set(post(Some(&id), 100, 300, "shop"), t(150)).unwrap();
        assert_eq!(same, id);
        assert_eq!(s.get(&id, t(150)).unwrap().0.ends_at, t(300));

        // Changing a matcher expires the old one and creates a new id.
        let new = s.set(post(Some(&id), 100, 300, "shop2"), t(160)).unwrap();
        assert_ne!(new, id);
        let (old, state) = s.get(&id, t(161)).unwrap();
        assert_eq!(state, SilenceState::Expired);
        assert_eq!(old.ends_at, t(160));
        assert_eq!(s.get(&new, t(161)).unwrap().1, SilenceState::Active);

        // Unknown ids, bad times and invalid matchers change nothing.
        assert!(matches!(
            s.set(post(Some("nope"), 100, 300, "x"), t(170)),
            Err(SilenceError::NotFound)
        ));
        assert!(matches!(
            s.set(post(None, 300, 300, "x"), t(170)),
            Err(SilenceError::BadTimes(_))
        ));
        assert!(matches!(
            s.set(post(None, 100, 120, "x"), t(170)),
            Err(SilenceError::BadTimes(_))
        ));
        let mut bad = post(Some(&new), 100, 300, "shop3");
        bad.matchers = vec![m("ns", "", false, true)];
        assert!(matches!(s.set(bad, t(170)), Err(SilenceError::Invalid(_))));
        assert_eq!(
            s.get(&new, t(171)).unwrap().1,
            SilenceState::Active,
            "a refused replacement leaves the old silence in force"
        );
        assert_eq!(s.list(t(171)).len(), 2);
    }

    #[test]
    fn expiring_and_listing_order() {
        let s = Silences::default();
        let a = s.set(post(None, 100, 500, "a"), t(100)).unwrap();
        let b = s.set(post(None, 100, 400, "b"), t(100)).unwrap();
        let p = s.set(post(None, 600, 700, "p"), t(100)).unwrap();
        s.expire(&a, t(150)).unwrap();
        s.expire(&p, t(150)).unwrap();
        s.expire(&p, t(160)).unwrap(); // idempotent
        assert!(matches!(
            s.expire("nope", t(160)),
            Err(SilenceError::NotFound)
        ));
        let (pending_expired, _) = s.get(&p, t(160)).unwrap();
        assert_eq!(
            (pending_expired.starts_at, pending_expired.ends_at),
            (t(150), t(150))
        );
        let order: Vec<(String, SilenceState)> = s
            .list(t(160))
            .into_iter()
            .map(|(s, st)| (s.id, st))
            .collect();
        // Both expired at 150: tie broken by id, after the active one.
        let mut expired = [a.clone(), p.clone()];
        expired.sort();
        assert_eq!(
            order,
            vec![
                (b.clone(), SilenceState::Active),
                (expired[0].clone(), SilenceState::Expired),
                (expired[1].clone(), SilenceState::Expired),
            ]
        );
        // Retention: gone 120h after they ended.
        let retention = chrono::Duration::from_std(SILENCE_RETENTION).unwrap();
        assert_eq!(s.gc(t(151) + retention), 2);
        assert_eq!(s.list(t(151) + retention).len(), 1);
    }

    #[test]
    fn snapshot_round_trip_and_corrupt_file() {
        let dir = tempfile::tempdir().unwrap();
        let s = Silences::open(dir.path()).unwrap();
        let a = s.set(post(None, 100, 500, "a"), t(100)).unwrap();
        let b = s.set(post(None, 100, 500, "b"), t(100)).unwrap();
        s.expire(&b, t(120)).unwrap();
        let before = s.list(t(130));

        let reopened = Silences::open(dir.path()).unwrap();
        assert_eq!(reopened.list(t(130)), before);
        assert_eq!(
            reopened.silenced_by(&labels("cart-9", "a"), t(130)),
            vec![a]
        );

        std::fs::write(dir.path().join(SNAPSHOT_FILE), b"{not json").unwrap();
        assert!(matches!(
            Silences::open(dir.path()),
            Err(SilenceError::Load { .. })
        ));
        let fresh = Silences::open_or_empty(Some(dir.path()));
        assert!(fresh.list(t(130)).is_empty());
        assert!(
            dir.path().join("silences.json.corrupt").exists(),
            "the bad file is kept aside"
        );
    }
}
