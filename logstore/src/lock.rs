//! The log directory's lock: an exclusive `flock` on `<dir>/lock`, held as long as the
//! [`crate::LogStore`], so two servers never write one WAL or one partition.
//!
//! tantivy's own writer lock is not enough: writers are opened per partition and only while
//! the partition is written, so two stores could otherwise both replay and append the WAL.
//! `flock` locks belong to the open file description, so the kernel drops the lock when the
//! process dies, even by `kill -9`, and a leftover `lock` file never blocks a restart.

use crate::Error;
use rustix::fs::{flock, FlockOperation};
use std::fs::{File, OpenOptions};
use std::path::Path;

pub(crate) const LOCK_FILE: &str = "lock";

/// An exclusive lock on a log directory, released when dropped.
#[derive(Debug)]
pub(crate) struct DirLock {
    /// Holding the file holds the lock.
    _file: File,
}

impl DirLock {
    /// Takes the lock on `dir` (which must exist) without waiting.
    pub(crate) fn acquire(dir: &Path) -> Result<DirLock, Error> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(LOCK_FILE))?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(DirLock { _file: file }),
            Err(e) => {
                let e = std::io::Error::from(e);
                if e.kind() == std::io::ErrorKind::WouldBlock {
                    Err(Error::Locked {
                        dir: dir.to_path_buf(),
                    })
                } else {
                    Err(e.into())
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_fails_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = DirLock::acquire(dir.path()).unwrap();
        assert!(matches!(
            DirLock::acquire(dir.path()),
            Err(Error::Locked { .. })
        ));
        drop(first);
        DirLock::acquire(dir.path()).unwrap();
    }
}
