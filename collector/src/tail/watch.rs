//! inotify on the directories that hold log files, so the tailer reads a new file or new
//! lines as soon as they are written instead of at the next periodic poll.
//!
//! Directories are watched, not files: a directory's watch reports files created, renamed in
//! and out, deleted and written in it, and survives rotation (a file's own watch would follow
//! the renamed file). The watched set is what the latest rescan walked: the pods root, every
//! pod and container directory, and each glob's directory.
//!
//! Events only say *something changed*: what changed is found by the rescan and the reads,
//! so a missed event costs latency, never lines. The kernel queue overflowing
//! (`IN_Q_OVERFLOW`) asks for a full rescan; the periodic poll stays as the safety net for
//! filesystems without inotify (some network and FUSE mounts).
//!
//! The descriptor is non-blocking and driven by tokio's reactor ([`AsyncFd`]): no thread to
//! stop, and waiting is cancel-safe (events are drained without awaiting).

use std::collections::{HashMap, HashSet};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};
use tokio::io::unix::AsyncFd;

/// Room for a few hundred events per read; the kernel queues the rest.
const EVENT_BUFFER_BYTES: usize = 16 * 1024;

/// What a batch of events asks the tailer to do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Wake {
    /// A file or directory appeared, moved or went (or events were lost): list again.
    pub rescan: bool,
    /// A file was written: read the files followed.
    pub read: bool,
}

/// The inotify instance and the directories it watches.
#[derive(Debug)]
pub(crate) struct Watcher {
    fd: AsyncFd<OwnedFd>,
    by_dir: HashMap<PathBuf, i32>,
    buf: Vec<MaybeUninit<u8>>,
}

/// Changes in a directory that change which files exist or under which name.
fn structural() -> ReadFlags {
    ReadFlags::CREATE
        | ReadFlags::MOVED_TO
        | ReadFlags::MOVED_FROM
        | ReadFlags::DELETE
        | ReadFlags::DELETE_SELF
        | ReadFlags::MOVE_SELF
        | ReadFlags::IGNORED
        | ReadFlags::QUEUE_OVERFLOW
}

impl Watcher {
    /// A new inotify instance watching nothing yet; fails where inotify is unavailable (or
    /// the per-user instance limit is reached), and the tailer then polls only.
    pub fn new() -> io::Result<Watcher> {
        let fd = inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK)?;
        // tokio deprecated `new` for `register`, which is `unsafe` (the workspace denies
        // unsafe code) and asks that the descriptor stay open and the same while registered.
        // An `OwnedFd` moved into the `AsyncFd` is closed only when the `AsyncFd` drops it, so
        // the condition holds and the safe, deprecated constructor is sound here.
        #[allow(deprecated)]
        let fd = AsyncFd::new(fd)?;
        Ok(Watcher {
            fd,
            by_dir: HashMap::new(),
            buf: vec![MaybeUninit::uninit(); EVENT_BUFFER_BYTES],
        })
    }

    /// The directories watched now.
    #[cfg(test)]
    pub fn watched(&self) -> impl Iterator<Item = &std::path::Path> {
        self.by_dir.keys().map(PathBuf::as_path)
    }

    /// Watches exactly `dirs`: adds the new ones, drops the ones no longer listed. A directory
    /// that cannot be watched (gone already, or the watch limit reached) is logged and left to
    /// the periodic poll; the next call tries again. True when a watch was added: what
    /// appeared in that directory between its listing and its watch is seen only by listing
    /// it again.
    pub fn sync(&mut self, dirs: &[PathBuf]) -> bool {
        let wanted: HashSet<&PathBuf> = dirs.iter().collect();
        let stale: Vec<PathBuf> = self
            .by_dir
            .keys()
            .filter(|d| !wanted.contains(d))
            .cloned()
            .collect();
        for dir in stale {
            if let Some(wd) = self.by_dir.remove(&dir) {
                // Fails when the directory is gone, which removed the watch already.
                let _ = inotify::remove_watch(self.fd.get_ref(), wd);
            }
        }
        let mask = WatchFlags::CREATE
            | WatchFlags::MOVED_TO
            | WatchFlags::MOVED_FROM
            | WatchFlags::DELETE
            | WatchFlags::DELETE_SELF
            | WatchFlags::MOVE_SELF
            | WatchFlags::MODIFY
            | WatchFlags::ONLYDIR;
        let mut added = false;
        for dir in dirs {
            if self.by_dir.contains_key(dir) {
                continue;
            }
            match inotify::add_watch(self.fd.get_ref(), dir, mask) {
                Ok(wd) => {
                    self.by_dir.insert(dir.clone(), wd);
                    added = true;
                }
                Err(error) => {
                    tracing::debug!(dir = %dir.display(), %error, "cannot watch directory");
                }
            }
        }
        added
    }

    /// Waits for events and drains every one queued; what they ask for. Cancel-safe: the only
    /// await is for readiness, and events are consumed without awaiting.
    pub async fn wait(&mut self) -> io::Result<Wake> {
        loop {
            let mut guard = self.fd.readable().await?;
            let mut wake = Wake::default();
            let mut reader = inotify::Reader::new(guard.get_inner(), &mut self.buf);
            let drained = loop {
                match reader.next() {
                    Ok(event) => {
                        let flags = event.events();
                        if flags.intersects(structural()) {
                            wake.rescan = true;
                        }
                        if flags.contains(ReadFlags::MODIFY) {
                            wake.read = true;
                        }
                    }
                    Err(rustix::io::Errno::AGAIN) => break Ok(()),
                    Err(e) => break Err(io::Error::from(e)),
                }
            };
            guard.clear_ready();
            drained?;
            if wake.rescan {
                // The directory list changes: watches of removed directories went with them.
                self.forget_removed();
            }
            if wake != Wake::default() {
                return Ok(wake);
            }
        }
    }

    /// Drops the entries of watched directories that no longer exist, so a directory created
    /// again under the same name is watched again.
    fn forget_removed(&mut self) {
        self.by_dir.retain(|dir, _| dir.is_dir());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn next(w: &mut Watcher) -> Wake {
        tokio::time::timeout(Duration::from_secs(5), w.wait())
            .await
            .expect("an event within 5 s")
            .unwrap()
    }

    #[tokio::test]
    async fn creation_asks_for_a_rescan_and_writes_for_a_read() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Watcher::new().unwrap();
        w.sync(&[dir.path().to_path_buf()]);
        let file = dir.path().join("0.log");
        std::fs::write(&file, "one\n").unwrap();
        let wake = next(&mut w).await;
        assert!(wake.rescan, "{wake:?}");

        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&file)
            .unwrap();
        std::io::Write::write_all(&mut f, b"two\n").unwrap();
        assert_eq!(
            next(&mut w).await,
            Wake {
                rescan: false,
                read: true
            }
        );

        std::fs::rename(&file, dir.path().join("0.log.20240101-000000")).unwrap();
        assert!(next(&mut w).await.rescan, "rotation by rename");
    }

    #[tokio::test]
    async fn sync_adds_and_drops_watches_and_removed_directories_are_forgotten() {
        let root = tempfile::tempdir().unwrap();
        let (a, b) = (root.path().join("a"), root.path().join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        let mut w = Watcher::new().unwrap();
        assert!(w.sync(&[a.clone(), b.clone(), root.path().join("missing")]));
        assert!(!w.sync(&[a.clone(), b.clone()]), "nothing new");
        let mut watched: Vec<&std::path::Path> = w.watched().collect();
        watched.sort();
        assert_eq!(watched, [a.as_path(), b.as_path()]);

        assert!(!w.sync(std::slice::from_ref(&b)));
        assert_eq!(w.watched().collect::<Vec<_>>(), [b.as_path()]);
        std::fs::write(a.join("x.log"), "not watched\n").unwrap();
        std::fs::remove_dir_all(&b).unwrap();
        assert!(next(&mut w).await.rescan, "the watched directory went");
        assert_eq!(w.watched().count(), 0);
    }
}
