//! The data directory's lock: an exclusive `flock` on `<dir>/lock`, held as long as the
//! [`crate::Tsdb`] that took it, so two processes never write one WAL (Prometheus's
//! `fileutil.Flock`).
//!
//! `flock` locks belong to the open file description, so the kernel drops the lock when the
//! process dies, even by `kill -9`: a stale `lock` file left behind never blocks a restart.

use crate::error::Error;
use rustix::fs::{flock, FlockOperation};
use std::fs::{File, OpenOptions};
use std::path::Path;

/// The lock file's name inside the data directory, as Prometheus names it.
pub(crate) const LOCK_FILE: &str = "lock";

/// An exclusive lock on a data directory, released when dropped.
#[derive(Debug)]
pub(crate) struct DirLock {
    /// Holding the file holds the lock; closing it releases it.
    _file: File,
}

impl DirLock {
    /// Takes the lock on `dir` (which must exist) without waiting: if another process, or
    /// another open store in this one, holds it, fails with [`Error::Locked`] at once.
    pub(crate) fn acquire(dir: &Path) -> Result<DirLock, Error> {
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(Error::io("open", &path))?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(DirLock { _file: file }),
            Err(e) => {
                let e = std::io::Error::from(e);
                if e.kind() == std::io::ErrorKind::WouldBlock {
                    Err(Error::Locked {
                        dir: dir.to_path_buf(),
                    })
                } else {
                    Err(Error::Io {
                        op: "lock",
                        path,
                        source: e,
                    })
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_on_a_directory_fails_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = DirLock::acquire(dir.path()).unwrap();
        match DirLock::acquire(dir.path()) {
            Err(Error::Locked { dir: d }) => assert_eq!(d, dir.path()),
            other => panic!("expected Locked, got {other:?}"),
        }
        drop(first);
        // The file stays behind; only the lock on it mattered.
        assert!(dir.path().join(LOCK_FILE).exists());
        DirLock::acquire(dir.path()).unwrap();
    }

    #[test]
    fn lock_in_a_missing_directory_is_an_io_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let err = DirLock::acquire(&missing).unwrap_err();
        assert!(matches!(err, Error::Io { op: "open", .. }), "{err:?}");
        assert!(err.to_string().contains("nope/lock"), "{err}");
    }
}
