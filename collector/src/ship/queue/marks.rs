//! The queue's delivery mark: how far delivery got, kept in the file `delivered` beside the
//! segments so that a restart (a crash included) does not send a partly delivered segment
//! again whole.
//!
//! # FORMAT (version 1)
//!
//! ```text
//! magic "VLGD" | version: u8 (1) | 3 zero bytes | seq: u64 LE | records: u64 LE | crc32: u32 LE
//! ```
//!
//! `crc32` is the IEEE CRC of the 24 bytes before it. The mark says: every record of every
//! segment before `seq`, and the first `records` records of segment `seq`, are finished
//! (delivered or rejected for good). It is the contiguous prefix only: with several requests
//! in flight a later record can finish first, and it is counted in the mark once everything
//! before it has finished too, so records after the mark may be sent again (at-least-once),
//! never records before it lost.
//!
//! The file is replaced atomically (written to `delivered.tmp`, fsync'd, renamed). A missing,
//! short or corrupt file reads as "nothing delivered": the queue replays everything, as
//! before marks existed.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

/// The file name of the mark inside the queue directory.
pub(crate) const FILE_NAME: &str = "delivered";
/// Where a new mark is written before it replaces the old one.
const TMP_NAME: &str = "delivered.tmp";
const MAGIC: &[u8; 4] = b"VLGD";
const VERSION: u8 = 1;
const BODY_LEN: usize = 24;
const FILE_LEN: usize = BODY_LEN + 4;

/// A position in the queue: every record before record `records` of segment `seq` is
/// finished. Ordered as the queue delivers, so a later mark compares greater.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Mark {
    pub seq: u64,
    pub records: u64,
}

impl Mark {
    fn encode(self) -> [u8; FILE_LEN] {
        let mut out = [0u8; FILE_LEN];
        out[..4].copy_from_slice(MAGIC);
        out[4] = VERSION;
        out[8..16].copy_from_slice(&self.seq.to_le_bytes());
        out[16..24].copy_from_slice(&self.records.to_le_bytes());
        let crc = crc32fast::hash(&out[..BODY_LEN]);
        out[BODY_LEN..].copy_from_slice(&crc.to_le_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Option<Mark> {
        if bytes.len() != FILE_LEN || &bytes[..4] != MAGIC || bytes[4] != VERSION {
            return None;
        }
        let crc = u32::from_le_bytes(bytes[BODY_LEN..].try_into().ok()?);
        if crc32fast::hash(&bytes[..BODY_LEN]) != crc {
            return None;
        }
        Some(Mark {
            seq: u64::from_le_bytes(bytes[8..16].try_into().ok()?),
            records: u64::from_le_bytes(bytes[16..24].try_into().ok()?),
        })
    }
}

/// Reads the mark in `dir`; none when there is none or it cannot be trusted (logged), which
/// means nothing is known to be delivered.
pub(crate) fn load(dir: &Path) -> Option<Mark> {
    let path = dir.join(FILE_NAME);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "queue delivery mark unreadable, replaying the whole queue");
            return None;
        }
    };
    let mark = Mark::decode(&bytes);
    if mark.is_none() {
        tracing::warn!(
            path = %path.display(),
            bytes = bytes.len(),
            "queue delivery mark corrupt, replaying the whole queue"
        );
    }
    mark
}

/// Writes marks to one queue directory, newest wins: a mark older than the last one written
/// is skipped, so callers finishing out of order need no ordering of their own.
#[derive(Debug)]
pub(crate) struct MarkFile {
    dir: PathBuf,
    /// The last mark made durable (or found at open).
    written: Mutex<Mark>,
}

impl MarkFile {
    pub fn new(dir: PathBuf, written: Mark) -> Self {
        MarkFile {
            dir,
            written: Mutex::new(written),
        }
    }

    /// Makes `mark` durable unless a later one already is. Blocking (fsync): call it off the
    /// async workers. The lock serializes writers, so the temporary file has one writer.
    pub fn store(&self, mark: Mark) -> std::io::Result<()> {
        let mut written = self.written.lock().unwrap_or_else(PoisonError::into_inner);
        if mark <= *written {
            return Ok(());
        }
        let tmp = self.dir.join(TMP_NAME);
        let mut f = File::create(&tmp)?;
        f.write_all(&mark.encode())?;
        f.sync_data()?;
        // Without a directory fsync the rename may be lost in a power cut: the older mark
        // then stands, which only means records sent again, never records lost.
        std::fs::rename(&tmp, self.dir.join(FILE_NAME))?;
        *written = mark;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_round_trips_and_a_damaged_one_reads_as_none() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()), None, "no file: nothing delivered");
        let file = MarkFile::new(dir.path().to_path_buf(), Mark::default());
        let mark = Mark { seq: 7, records: 3 };
        file.store(mark).unwrap();
        assert_eq!(load(dir.path()), Some(mark));
        // An older mark does not replace a newer one.
        file.store(Mark { seq: 7, records: 2 }).unwrap();
        assert_eq!(load(dir.path()), Some(mark));

        let path = dir.path().join(FILE_NAME);
        let good = std::fs::read(&path).unwrap();
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 0x40;
            std::fs::write(&path, &bad).unwrap();
            assert_eq!(load(dir.path()), None, "byte {at} flipped");
        }
        std::fs::write(&path, &good[..10]).unwrap();
        assert_eq!(load(dir.path()), None, "short file");
    }

    /// What one durable mark costs on this disk (the price of writing one per delivered
    /// request rather than coalescing): `cargo test -p collector --lib mark_store_cost --
    /// --ignored --nocapture`, run in the crate directory so the file is on a real disk.
    #[test]
    #[ignore]
    fn mark_store_cost() {
        let dir = tempfile::tempdir_in(".").unwrap();
        let file = MarkFile::new(dir.path().to_path_buf(), Mark::default());
        let n = 500;
        let start = std::time::Instant::now();
        for records in 1..=n {
            file.store(Mark { seq: 1, records }).unwrap();
        }
        let each = start.elapsed() / n as u32;
        println!("{n} marks stored, {each:?} each");
    }
}
