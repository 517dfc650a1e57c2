//! Checkpoints: how far each tailed file has been delivered, kept in
//! `<state_path>/positions.json` so a restarted agent resumes where the server's
//! acknowledgements left off.
//!
//! A checkpoint names a file by its device and inode and by the [`Fingerprint`] of its first
//! bytes, and remembers the path it was last read at. A file found after a restart takes the
//! checkpoint it matches (see [`Checkpoint::matches`]): the live `0.log` by inode and
//! fingerprint, a rotated file that has since been gzipped by fingerprint alone. A checkpoint
//! whose file is finished (`done`) makes a later copy of that file — kubelet's `.gz` — be
//! skipped rather than read again.
//!
//! The file is rewritten whole (to a temporary file, synced, then renamed over the old one),
//! so a crash leaves either the old or the new checkpoint, never a torn one. Paths that are not
//! UTF-8 are not recorded: after a restart such a file is read again from the start, which
//! duplicates lines but loses none. Version 1 files (no fingerprint) still load; their
//! checkpoints match by inode only.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::fingerprint::{FileId, Fingerprint, Head};
use crate::Error;

/// The checkpoint file's name inside the state directory.
pub const POSITIONS_FILE: &str = "positions.json";
const FORMAT_VERSION: u64 = 2;

/// How far one file (identified by device and inode, found at `path`, with its first bytes'
/// fingerprint when the position was reached) has been read: every line before `offset` is in
/// the batch that carries it. The Loki sink keeps it with those lines in its queue and hands
/// it back once the receiver acknowledged them and every line queued before them; then it
/// becomes the file's checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Position {
    pub path: PathBuf,
    pub dev: u64,
    pub inode: u64,
    pub offset: u64,
    pub(crate) fp: Fingerprint,
    /// The file's last position: once acknowledged, the file is done.
    pub(crate) done: bool,
}

impl Position {
    pub(crate) fn id(&self) -> FileId {
        FileId {
            dev: self.dev,
            inode: self.inode,
        }
    }

    /// A position in a file whose fingerprint does not matter to the test.
    #[cfg(test)]
    pub(crate) fn for_test(path: PathBuf, inode: u64, offset: u64) -> Self {
        Position {
            path,
            dev: 1,
            inode,
            offset,
            fp: Fingerprint::default(),
            done: false,
        }
    }

    /// The checkpoint this position stands for.
    pub(crate) fn checkpoint(self) -> Checkpoint {
        Checkpoint {
            id: self.id(),
            path: self.path,
            fp: self.fp,
            offset: self.offset,
            done: self.done,
        }
    }
}

/// Positions as bytes, for the queue record that holds their lines (the JSON of
/// `positions.json`'s entries; a path that is not UTF-8 is left out, as there).
pub fn encode_positions(positions: &[Position]) -> Vec<u8> {
    let list: Vec<Value> = positions
        .iter()
        .filter_map(|p| to_value(&p.clone().checkpoint()))
        .collect();
    serde_json::to_vec(&list).unwrap_or_default()
}

/// The positions [`encode_positions`] wrote; none when `bytes` are not such a list.
pub fn decode_positions(bytes: &[u8]) -> Option<Vec<Position>> {
    let list: Vec<Value> = serde_json::from_slice(bytes).ok()?;
    list.iter()
        .map(|v| {
            let c = from_value(v, FORMAT_VERSION)?;
            Some(Position {
                path: c.path,
                dev: c.id.dev,
                inode: c.id.inode,
                offset: c.offset,
                fp: c.fp,
                done: c.done,
            })
        })
        .collect()
}

/// One file's checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Checkpoint {
    pub path: PathBuf,
    pub id: FileId,
    pub fp: Fingerprint,
    pub offset: u64,
    /// The file was read to its end after its writer moved on: nothing more will come.
    pub done: bool,
}

impl Checkpoint {
    /// Whether the file with identity `id` and first bytes `head`, found at `path`, is the file
    /// of this checkpoint. Only files in the same directory are compared. A full fingerprint
    /// decides alone; a short one (the file was short when checkpointed) needs the same inode,
    /// or, for a gzipped file, the whole decompressed content to be what was hashed.
    pub fn matches(&self, path: &Path, id: FileId, head: &Head) -> bool {
        if self.path.parent() != path.parent() || !self.fp.is_prefix_of(&head.bytes) {
            return false;
        }
        if self.fp.is_full() {
            return true;
        }
        if head.gz {
            self.fp.len > 0 && head.bytes.len() == self.fp.len as usize
        } else {
            self.id == id
        }
    }
}

/// The checkpoint a file found at `path` resumes from, among `candidates`: a finished one
/// first (the file is a copy of one already read), else the furthest.
pub(crate) fn best_match<'a>(
    candidates: impl Iterator<Item = &'a Checkpoint>,
    path: &Path,
    id: FileId,
    head: &Head,
) -> Option<&'a Checkpoint> {
    candidates
        .filter(|c| c.matches(path, id, head))
        .max_by_key(|c| (c.done, c.offset, c.id == id))
}

/// The checkpoints of every file: `list`, what the receiver acknowledged (kept in
/// `positions.json`), and `queued`, how far a previous run read into lines that still wait,
/// undelivered, in the Loki sink's queue. Reading resumes from the furthest of both, so the
/// queued lines are not read twice; `positions.json` never holds a queued position, so if the
/// queue is lost the lines are read again from the files.
#[derive(Debug)]
pub(crate) struct Checkpoints {
    file: PathBuf,
    list: Vec<Checkpoint>,
    queued: Vec<Checkpoint>,
}

impl Checkpoints {
    /// Loads `<state_dir>/positions.json`, creating the directory if needed. A missing file
    /// means a first start. A corrupt one is logged and set aside as `positions.json.corrupt`,
    /// and tailing starts over: duplicates are better than refusing to run.
    pub fn load(state_dir: &Path) -> Result<Self, Error> {
        let state_err = |source| Error::State {
            path: state_dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(state_dir).map_err(state_err)?;
        let file = state_dir.join(POSITIONS_FILE);
        let list = match std::fs::read(&file) {
            Ok(bytes) => match from_json(&bytes) {
                Some(p) => p,
                None => {
                    tracing::warn!(path = %file.display(), "corrupt checkpoint file, starting over");
                    let _ = std::fs::rename(&file, file.with_extension("json.corrupt"));
                    Vec::new()
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(state_err(e)),
        };
        Ok(Checkpoints {
            file,
            list,
            queued: Vec::new(),
        })
    }

    /// Adds positions whose lines wait in the sink's queue (a previous run's), to resume
    /// reading after them; the latest position of each file counts.
    pub fn add_queued(&mut self, positions: impl IntoIterator<Item = Position>) {
        for p in positions {
            let c = p.checkpoint();
            self.queued.retain(|q| !same_file(q, &c));
            self.queued.push(c);
        }
    }

    /// Acknowledged checkpoints, then queued ones.
    pub fn iter(&self) -> impl Iterator<Item = &Checkpoint> {
        self.list.iter().chain(&self.queued)
    }

    /// Records an acknowledged checkpoint. It replaces the checkpoint of the same file (see
    /// [`same_file`]); a checkpoint of another file that had the inode before still stands for
    /// that file's gzipped copy. A queued position of the file that it reaches is no longer
    /// needed.
    pub fn record(&mut self, new: Checkpoint) {
        self.list.retain(|c| !same_file(c, &new));
        self.queued
            .retain(|q| !(same_file(q, &new) && q.offset <= new.offset));
        self.list.push(new);
    }

    /// Records `new` unless the file's checkpoint is already past it.
    pub fn record_if_further(&mut self, new: Checkpoint) {
        let behind = self
            .list
            .iter()
            .any(|c| same_file(c, &new) && (c.offset > new.offset || c.done && !new.done));
        if !behind {
            self.record(new);
        }
    }

    /// Keeps only the checkpoints `keep` says are still needed (a file that matches them
    /// still exists). Without this the file would grow forever as pods and rotations come
    /// and go.
    pub fn retain(&mut self, mut keep: impl FnMut(&Checkpoint) -> bool) {
        self.list.retain(&mut keep);
        self.queued.retain(keep);
    }

    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The acknowledged checkpoints as `positions.json`'s bytes.
    pub fn to_json(&self) -> Vec<u8> {
        let positions: Vec<Value> = self.list.iter().filter_map(to_value).collect();
        let doc = json!({ "version": FORMAT_VERSION, "positions": positions });
        serde_json::to_vec_pretty(&doc).unwrap_or_default()
    }
}

/// Whether `new` is a later checkpoint of the file `old` is one of: the same inode, and,
/// when `old` has a full fingerprint, the same fingerprint. A file's fingerprint only grows
/// until it is full, so another one after a full one means the inode was reused by another
/// file (or the file was truncated), even when the new file is still too short for a full
/// fingerprint of its own.
fn same_file(old: &Checkpoint, new: &Checkpoint) -> bool {
    old.id == new.id && (!old.fp.is_full() || old.fp == new.fp)
}

/// One checkpoint as a `positions.json` entry; none when its path is not UTF-8.
fn to_value(c: &Checkpoint) -> Option<Value> {
    Some(json!({
        "path": c.path.to_str()?,
        "dev": c.id.dev,
        "inode": c.id.inode,
        "fingerprint_bytes": c.fp.len,
        "fingerprint": format!("{:016x}", c.fp.hash),
        "offset": c.offset,
        "done": c.done,
    }))
}

/// One `positions.json` entry of a file of format `version`.
fn from_value(p: &Value, version: u64) -> Option<Checkpoint> {
    let id = FileId {
        dev: p.get("dev")?.as_u64()?,
        inode: p.get("inode")?.as_u64()?,
    };
    let (fp, done) = if version == 1 {
        (Fingerprint::of(b""), false)
    } else {
        let len = u32::try_from(p.get("fingerprint_bytes")?.as_u64()?).ok()?;
        let hash = u64::from_str_radix(p.get("fingerprint")?.as_str()?, 16).ok()?;
        (Fingerprint { len, hash }, p.get("done")?.as_bool()?)
    };
    Some(Checkpoint {
        path: PathBuf::from(p.get("path")?.as_str()?),
        id,
        fp,
        offset: p.get("offset")?.as_u64()?,
        done,
    })
}

/// Parses a version 2 file, or a version 1 file (no fingerprint, never done).
fn from_json(bytes: &[u8]) -> Option<Vec<Checkpoint>> {
    let doc: Value = serde_json::from_slice(bytes).ok()?;
    let version = doc.get("version")?.as_u64()?;
    if version != 1 && version != FORMAT_VERSION {
        return None;
    }
    doc.get("positions")?
        .as_array()?
        .iter()
        .map(|p| from_value(p, version))
        .collect()
}

/// Writes `bytes` to `path` atomically: temporary file, fsync, rename.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(bytes: &[u8], gz: bool) -> Head {
        Head {
            bytes: bytes.to_vec(),
            gz,
        }
    }

    fn cp(path: &Path, inode: u64, head: &[u8], offset: u64) -> Checkpoint {
        Checkpoint {
            path: path.to_path_buf(),
            id: FileId { dev: 7, inode },
            fp: Fingerprint::of(head),
            offset,
            done: false,
        }
    }

    #[test]
    fn round_trips_through_the_state_dir() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let log = dir.path().join("a.log");

        let mut p = Checkpoints::load(&state).unwrap();
        p.record(cp(&log, 42, b"x\n", 1));
        let mut last = cp(&log, 42, b"x\n", 2);
        last.done = true;
        p.record(last.clone());
        write_atomic(p.file(), &p.to_json()).unwrap();

        let back = Checkpoints::load(&state).unwrap();
        assert_eq!(back.list, [last], "the last ack wins");
        assert!(!state.join("positions.json.tmp").exists());
    }

    #[test]
    fn version_1_files_load_and_match_by_inode() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("0.log");
        let v1 = json!({"version": 1, "positions": [
            {"path": log.to_str().unwrap(), "dev": 7, "inode": 42, "offset": 4}
        ]});
        std::fs::write(dir.path().join(POSITIONS_FILE), v1.to_string()).unwrap();
        let p = Checkpoints::load(dir.path()).unwrap();
        let find = |id| best_match(p.iter(), &log, id, &head(b"one\n", false));
        assert_eq!(find(FileId { dev: 7, inode: 42 }).unwrap().offset, 4);
        assert!(find(FileId { dev: 7, inode: 43 }).is_none());
    }

    #[test]
    fn matching_by_fingerprint_inode_and_directory() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("c/0.log");
        let rotated = dir.path().join("c/0.log.20240101-000000.gz");
        let full: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
        let id = FileId { dev: 7, inode: 1 };
        let other = FileId { dev: 7, inode: 2 };

        let c = cp(&log, 1, &full, 300);
        assert!(c.matches(&log, id, &head(&full, false)));
        assert!(
            c.matches(&rotated, other, &head(&full, true)),
            "full: any inode"
        );
        let mut changed = full.clone();
        changed[3] ^= 1;
        assert!(!c.matches(&log, id, &head(&changed, false)), "inode reused");
        let elsewhere = dir.path().join("d/0.log");
        assert!(!c.matches(&elsewhere, id, &head(&full, false)));

        let short = cp(&log, 1, b"short\n", 6);
        assert!(short.matches(&log, id, &head(b"short\nand more", false)));
        assert!(!short.matches(&log, other, &head(b"short\nand more", false)));
        assert!(
            short.matches(&rotated, other, &head(b"short\n", true)),
            "whole gz"
        );
        assert!(!short.matches(&rotated, other, &head(b"short\nmore", true)));
        let empty = cp(&log, 1, b"", 0);
        assert!(!empty.matches(&rotated, other, &head(b"", true)));
    }

    #[test]
    fn best_match_prefers_a_finished_checkpoint_then_the_furthest() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("0.log");
        let full = vec![b'z'; 300];
        let mut p = Checkpoints::load(dir.path()).unwrap();
        p.record(cp(&log, 1, &full, 100));
        p.record(cp(&log, 2, &full, 200));
        let gz = head(&full, true);
        let any = FileId { dev: 7, inode: 9 };
        assert_eq!(best_match(p.iter(), &log, any, &gz).unwrap().offset, 200);
        let mut done = cp(&log, 3, &full, 50);
        done.done = true;
        p.record(done);
        assert!(best_match(p.iter(), &log, any, &gz).unwrap().done);
        p.retain(|c| c.offset != 50);
        assert_eq!(p.iter().count(), 2);
    }

    #[test]
    fn a_reused_inode_does_not_overwrite_the_checkpoint_of_a_finished_file() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("0.log");
        let mut p = Checkpoints::load(dir.path()).unwrap();
        let mut old = cp(&log, 5, &[b'a'; 300], 300);
        old.done = true;
        p.record(old.clone());
        p.record(cp(&log, 5, &[b'b'; 300], 10));
        assert_eq!(p.iter().count(), 2);
        p.record(cp(&log, 5, &[b'b'; 300], 20));
        assert_eq!(p.iter().map(|c| c.offset).collect::<Vec<_>>(), [300, 20]);
        p.record(cp(&log, 6, b"short", 5));
        p.record(cp(&log, 6, b"short and now longer", 20));
        assert_eq!(
            p.iter().count(),
            3,
            "a grown fingerprint replaces the short one"
        );
    }

    #[test]
    fn a_reused_inode_with_a_short_head_does_not_overwrite_a_finished_file() {
        let dir = tempfile::tempdir().unwrap();
        let rotated = dir.path().join("0.log.20240101-000000");
        let mut p = Checkpoints::load(dir.path()).unwrap();
        let mut old = cp(&rotated, 5, &[b'a'; 300], 300);
        old.done = true;
        p.record(old.clone());
        // The rotated file was gzipped and removed; a new file got its inode and has a line.
        p.record(cp(&dir.path().join("0.log"), 5, b"new\n", 4));
        let gz = dir.path().join("0.log.20240101-000000.gz");
        let found = best_match(
            p.iter(),
            &gz,
            FileId { dev: 7, inode: 9 },
            &head(&[b'a'; 300], true),
        );
        assert_eq!(found, Some(&old), "the .gz is still known as read");
        p.record(cp(&dir.path().join("0.log"), 5, b"new\nand more\n", 13));
        assert_eq!(
            p.iter().count(),
            2,
            "the new file's own checkpoint moves on"
        );
    }

    fn pos(path: &Path, inode: u64, head: &[u8], offset: u64) -> Position {
        Position {
            path: path.to_path_buf(),
            dev: 7,
            inode,
            offset,
            fp: Fingerprint::of(head),
            done: false,
        }
    }

    #[test]
    fn positions_round_trip_through_queue_meta() {
        let mut last = pos(Path::new("/l/0.log.20240101-000000"), 2, &[b'a'; 300], 300);
        last.done = true;
        let positions = vec![pos(Path::new("/l/0.log"), 1, b"short\n", 6), last];
        let bytes = encode_positions(&positions);
        assert_eq!(decode_positions(&bytes).unwrap(), positions);
        assert!(decode_positions(b"{not a list").is_none());
        assert!(decode_positions(b"[{\"path\": 1}]").is_none());
    }

    #[test]
    fn queued_positions_resume_reading_but_are_never_written_as_checkpoints() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("0.log");
        let full = vec![b'q'; 300];
        let mut p = Checkpoints::load(dir.path()).unwrap();
        p.record(cp(&log, 1, &full, 100));
        p.add_queued([pos(&log, 1, &full, 150), pos(&log, 1, &full, 250)]);
        let found = |p: &Checkpoints| {
            best_match(
                p.iter(),
                &log,
                FileId { dev: 7, inode: 1 },
                &head(&full, false),
            )
            .map(|c| c.offset)
        };
        assert_eq!(
            found(&p),
            Some(250),
            "reading resumes after the queued lines"
        );
        let saved: Value = serde_json::from_slice(&p.to_json()).unwrap();
        assert_eq!(saved["positions"][0]["offset"], 100, "{saved}");
        assert_eq!(saved["positions"].as_array().unwrap().len(), 1);

        p.record(cp(&log, 1, &full, 200));
        assert_eq!(
            found(&p),
            Some(250),
            "an ack short of the queued position keeps it"
        );
        p.record(cp(&log, 1, &full, 250));
        assert_eq!(
            p.queued.len(),
            0,
            "reached: the queued position is not needed"
        );
        assert_eq!(found(&p), Some(250));

        p.record_if_further(cp(&log, 1, &full, 240));
        assert_eq!(
            found(&p),
            Some(250),
            "a delivered position behind the checkpoint"
        );
        p.record_if_further(cp(&log, 1, &full, 260));
        assert_eq!(found(&p), Some(260), "one past it");
    }

    #[test]
    fn a_corrupt_file_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(POSITIONS_FILE), "{not json").unwrap();
        let p = Checkpoints::load(dir.path()).unwrap();
        assert!(p.list.is_empty());
        assert!(dir.path().join("positions.json.corrupt").exists());
    }
}
