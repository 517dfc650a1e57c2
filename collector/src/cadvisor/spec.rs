//! A cgroup's spec — its CPU quota, period and weight, memory limit and pids limit, the values
//! of `container_spec_*` and `container_threads_max` — kept between collections.
//!
//! Limits change only when a pod's resources are updated, yet reading them was four or five
//! of the ~17 files each cgroup costs a collection. So [`Specs`] keeps each cgroup's spec and
//! the collector re-reads it every [`SPEC_REFRESH_COLLECTIONS`] collections, spread over the
//! cgroups so no collection re-reads them all, and at once when the cgroup's directory is a
//! different one (another inode: removed and created again at the same path). A changed
//! limit therefore shows within [`SPEC_REFRESH_COLLECTIONS`] collections (one minute at the
//! default 15 s), as the kubelet's cAdvisor, which also re-reads specs on its own schedule,
//! lags as well.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

/// Collections a spec reading is used for: a changed limit is reported at most this many
/// collections after the change.
pub(crate) const SPEC_REFRESH_COLLECTIONS: u64 = 4;

/// The spec files of one cgroup, as reported; `None` where a file was absent or unreadable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Spec {
    pub cpu_period: Option<u64>,
    /// Only when a quota is set.
    pub cpu_quota: Option<u64>,
    pub cpu_shares: Option<u64>,
    /// 0 when unlimited, as cAdvisor reports it.
    pub memory_limit: Option<u64>,
    /// `pids.max`, 0 for `max`.
    pub threads_max: Option<u64>,
}

/// Each cgroup's last spec reading, by cgroup path.
#[derive(Debug, Default)]
pub(crate) struct Specs {
    /// The collection under way, counted from 1.
    collection: u64,
    entries: HashMap<String, Entry>,
}

#[derive(Debug)]
struct Entry {
    /// The cgroup directories' inodes when the spec was read.
    identity: u64,
    /// The first collection that reads the spec again.
    due: u64,
    /// The last collection that listed the cgroup.
    seen: u64,
    spec: Spec,
}

impl Specs {
    /// Starts a collection.
    pub fn begin(&mut self) {
        self.collection += 1;
    }

    /// The kept spec of `cgroup`, if read for the directories `identity` names and not due;
    /// either way the cgroup counts as listed by this collection.
    pub fn get(&mut self, cgroup: &str, identity: u64) -> Option<Spec> {
        let e = self.entries.get_mut(cgroup)?;
        e.seen = self.collection;
        (e.identity == identity && self.collection < e.due).then_some(e.spec)
    }

    /// Keeps `spec`, just read, for `cgroup`. A cgroup seen for the first time is due again
    /// after a share of the refresh period taken from its path, so the cgroups present at
    /// start (all read by the first collection) are re-read over the next collections rather
    /// than all in one.
    pub fn put(&mut self, cgroup: &str, identity: u64, spec: Spec) {
        let collection = self.collection;
        if let Some(e) = self.entries.get_mut(cgroup) {
            *e = Entry {
                identity,
                due: collection + SPEC_REFRESH_COLLECTIONS,
                seen: collection,
                spec,
            };
            return;
        }
        let mut h = std::collections::hash_map::DefaultHasher::new();
        cgroup.hash(&mut h);
        let due = collection + 1 + h.finish() % SPEC_REFRESH_COLLECTIONS;
        self.entries.insert(
            cgroup.to_string(),
            Entry {
                identity,
                due,
                seen: collection,
                spec,
            },
        );
    }

    /// Ends a collection: cgroups it did not list are gone, and so are their specs.
    pub fn end(&mut self) {
        let collection = self.collection;
        self.entries.retain(|_, e| e.seen == collection);
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(limit: u64) -> Spec {
        Spec {
            memory_limit: Some(limit),
            ..Spec::default()
        }
    }

    /// A reading is used until due, which is never more than the refresh period after it was
    /// read; another identity is read at once; cgroups not listed are forgotten.
    #[test]
    fn kept_until_due_or_identity_changes_and_dropped_when_gone() {
        let mut specs = Specs::default();
        specs.begin();
        assert_eq!(specs.get("/a", 7), None);
        specs.put("/a", 7, spec(1));
        specs.end();
        // First reading: due within the refresh period, at a point taken from the path.
        let mut used = 0;
        loop {
            specs.begin();
            match specs.get("/a", 7) {
                Some(s) => {
                    assert_eq!(s, spec(1));
                    used += 1;
                }
                None => break,
            }
            specs.end();
        }
        assert!(used < SPEC_REFRESH_COLLECTIONS, "{used}");
        // Later readings: used for exactly the refresh period.
        specs.put("/a", 7, spec(2));
        specs.end();
        for _ in 1..SPEC_REFRESH_COLLECTIONS {
            specs.begin();
            assert_eq!(specs.get("/a", 7), Some(spec(2)));
            specs.end();
        }
        specs.begin();
        assert_eq!(specs.get("/a", 7), None, "due again");
        specs.put("/a", 7, spec(3));
        specs.end();
        specs.begin();
        assert_eq!(
            specs.get("/a", 8),
            None,
            "another directory at the same path"
        );
        specs.put("/a", 8, spec(4));
        specs.end();
        specs.begin();
        assert_eq!(specs.get("/a", 8), Some(spec(4)));
        specs.end();
        specs.begin();
        specs.end();
        assert_eq!(specs.len(), 0, "a cgroup not listed is forgotten");
    }
}
