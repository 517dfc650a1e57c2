//! The queue's delivery mark: which records are finished, kept in the file `delivered` beside
//! the segments so that a restart (a crash included) sends again only what was in flight.
//!
//! # FORMAT (version 2)
//!
//! ```text
//! magic "VLGD" | version: u8 (2) | 3 zero bytes | seq: u64 LE | records: u64 LE
//!   | runs: u32 LE | runs × (seq: u64 LE | first: u64 LE | end: u64 LE) | crc32: u32 LE
//! ```
//!
//! `crc32` is the IEEE CRC of every byte before it. The mark says: every record of every
//! segment before `seq`, and the first `records` records of segment `seq`, are finished
//! (delivered or rejected for good) — the unbroken prefix; and so are records `first` up to
//! (not including) `end` of segment `seq` for each run. With several requests in flight a
//! later record can finish before an earlier one: a run records it, so a crash re-sends only
//! the records truly in flight, not everything queued after the oldest of them. Runs are
//! capped at [`MAX_RUNS`] (more cannot arise from a handful of senders); a run left out only
//! means its records are sent again, never records lost.
//!
//! Version 1 (the same first 24 bytes, no runs, then the CRC) is still read.
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
const VERSION_1: u8 = 1;
const VERSION: u8 = 2;
/// Magic, version, padding, `seq`, `records`.
const PREFIX_LEN: usize = 24;
const RUN_LEN: usize = 24;
/// The most runs a mark keeps.
pub(crate) const MAX_RUNS: usize = 1024;

/// Records `first` up to `end` of segment `seq`, finished after a record before them that
/// is not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Run {
    pub seq: u64,
    pub first: u64,
    pub end: u64,
}

/// What is finished: every record before record `records` of segment `seq`, and the records
/// of each run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Mark {
    pub seq: u64,
    pub records: u64,
    pub runs: Vec<Run>,
}

impl Mark {
    /// The unbroken prefix only.
    #[cfg(test)]
    pub fn prefix(seq: u64, records: u64) -> Mark {
        Mark {
            seq,
            records,
            runs: Vec::new(),
        }
    }

    /// The finished runs of segment `seq`, first record to the one after the last.
    pub fn runs_of(&self, seq: u64) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.runs
            .iter()
            .filter(move |r| r.seq == seq)
            .map(|r| (r.first, r.end))
    }

    fn encode(&self) -> Vec<u8> {
        let runs = &self.runs[..self.runs.len().min(MAX_RUNS)];
        let mut out = Vec::with_capacity(PREFIX_LEN + 4 + runs.len() * RUN_LEN + 4);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&[VERSION, 0, 0, 0]);
        out.extend_from_slice(&self.seq.to_le_bytes());
        out.extend_from_slice(&self.records.to_le_bytes());
        // At most MAX_RUNS, so the count fits.
        out.extend_from_slice(&(runs.len() as u32).to_le_bytes());
        for r in runs {
            for v in [r.seq, r.first, r.end] {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Option<Mark> {
        let (body, crc) = bytes.split_at_checked(bytes.len().checked_sub(4)?)?;
        if body.len() < PREFIX_LEN || &body[..4] != MAGIC {
            return None;
        }
        if crc32fast::hash(body) != u32::from_le_bytes(crc.try_into().ok()?) {
            return None;
        }
        let u64_at = |at: usize| Some(u64::from_le_bytes(body.get(at..at + 8)?.try_into().ok()?));
        let mut mark = Mark {
            seq: u64_at(8)?,
            records: u64_at(16)?,
            runs: Vec::new(),
        };
        match body[4] {
            VERSION_1 if body.len() == PREFIX_LEN => Some(mark),
            VERSION => {
                let n = u32::from_le_bytes(body.get(PREFIX_LEN..PREFIX_LEN + 4)?.try_into().ok()?);
                let n = usize::try_from(n).ok()?;
                if n > MAX_RUNS || body.len() != PREFIX_LEN + 4 + n * RUN_LEN {
                    return None;
                }
                for i in 0..n {
                    let at = PREFIX_LEN + 4 + i * RUN_LEN;
                    mark.runs.push(Run {
                        seq: u64_at(at)?,
                        first: u64_at(at + 8)?,
                        end: u64_at(at + 16)?,
                    });
                }
                Some(mark)
            }
            _ => None,
        }
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

/// Writes marks to one queue directory, newest wins: each mark comes with its generation
/// (counted where marks are made, under the queue's lock), and a mark older than the last one
/// written is skipped, so callers finishing out of order need no ordering of their own.
#[derive(Debug)]
pub(crate) struct MarkFile {
    dir: PathBuf,
    /// The generation of the last mark made durable (0: the one found at open).
    written: Mutex<u64>,
}

impl MarkFile {
    pub fn new(dir: PathBuf) -> Self {
        MarkFile {
            dir,
            written: Mutex::new(0),
        }
    }

    /// Makes `mark`, of generation `generation`, durable unless a later one already is.
    /// Blocking (fsync): call it off the async workers. The lock serializes writers, so the
    /// temporary file has one writer.
    pub fn store(&self, generation: u64, mark: &Mark) -> std::io::Result<()> {
        let mut written = self.written.lock().unwrap_or_else(PoisonError::into_inner);
        if generation <= *written {
            return Ok(());
        }
        let tmp = self.dir.join(TMP_NAME);
        let mut f = File::create(&tmp)?;
        f.write_all(&mark.encode())?;
        f.sync_data()?;
        // Without a directory fsync the rename may be lost in a power cut: the older mark
        // then stands, which only means records sent again, never records lost.
        std::fs::rename(&tmp, self.dir.join(FILE_NAME))?;
        *written = generation;
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
        let file = MarkFile::new(dir.path().to_path_buf());
        let mark = Mark {
            seq: 7,
            records: 3,
            runs: vec![
                Run {
                    seq: 7,
                    first: 5,
                    end: 9,
                },
                Run {
                    seq: 8,
                    first: 0,
                    end: 2,
                },
            ],
        };
        file.store(2, &mark).unwrap();
        assert_eq!(load(dir.path()), Some(mark.clone()));
        // An older generation does not replace a newer one.
        file.store(1, &Mark::prefix(7, 2)).unwrap();
        assert_eq!(load(dir.path()), Some(mark));

        let path = dir.path().join(FILE_NAME);
        let good = std::fs::read(&path).unwrap();
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 0x40;
            std::fs::write(&path, &bad).unwrap();
            assert_eq!(load(dir.path()), None, "byte {at} flipped");
        }
        for len in 0..good.len() {
            std::fs::write(&path, &good[..len]).unwrap();
            assert_eq!(load(dir.path()), None, "cut at {len}");
        }
    }

    #[test]
    fn a_version_1_mark_is_still_read() {
        let mut v1 = Vec::from(*MAGIC);
        v1.extend_from_slice(&[VERSION_1, 0, 0, 0]);
        v1.extend_from_slice(&7u64.to_le_bytes());
        v1.extend_from_slice(&3u64.to_le_bytes());
        let crc = crc32fast::hash(&v1);
        v1.extend_from_slice(&crc.to_le_bytes());
        assert_eq!(Mark::decode(&v1), Some(Mark::prefix(7, 3)));
    }

    #[test]
    fn runs_past_the_cap_are_left_out_and_the_mark_still_reads() {
        let runs = (0..MAX_RUNS as u64 + 5)
            .map(|i| Run {
                seq: 1,
                first: 2 * i + 1,
                end: 2 * i + 2,
            })
            .collect::<Vec<_>>();
        let mark = Mark {
            seq: 1,
            records: 0,
            runs: runs.clone(),
        };
        let read = Mark::decode(&mark.encode()).unwrap();
        assert_eq!(read.runs, runs[..MAX_RUNS]);
    }

    /// What one durable mark costs on this disk (the price of writing one per delivered
    /// request rather than coalescing): `cargo test -p collector --lib mark_store_cost --
    /// --ignored --nocapture`, run in the crate directory so the file is on a real disk.
    #[test]
    #[ignore]
    fn mark_store_cost() {
        let dir = tempfile::tempdir_in(".").unwrap();
        let file = MarkFile::new(dir.path().to_path_buf());
        let n = 500;
        let start = std::time::Instant::now();
        for records in 1..=n {
            file.store(records, &Mark::prefix(1, records)).unwrap();
        }
        let each = start.elapsed() / n as u32;
        println!("{n} marks stored, {each:?} each");
    }
}
