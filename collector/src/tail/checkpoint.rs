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

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::fingerprint::{FileId, Fingerprint, Head};
use crate::Error;

/// The checkpoint file's name inside the state directory.
pub const POSITIONS_FILE: &str = "positions.json";
const FORMAT_VERSION: u64 = 2;

/// How far one file (identified by device and inode, found at `path`) has been delivered:
/// every line before `offset` was acknowledged by the server. This is what a batch carries to
/// the sink and what the sink hands back once the server acknowledged it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Position {
    pub path: PathBuf,
    pub dev: u64,
    pub inode: u64,
    pub offset: u64,
}

impl Position {
    pub(crate) fn id(&self) -> FileId {
        FileId {
            dev: self.dev,
            inode: self.inode,
        }
    }
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

/// The checkpoints of every file.
#[derive(Debug)]
pub(crate) struct Checkpoints {
    file: PathBuf,
    list: Vec<Checkpoint>,
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
        Ok(Checkpoints { file, list })
    }

    pub fn iter(&self) -> impl Iterator<Item = &Checkpoint> {
        self.list.iter()
    }

    /// Records an acknowledged checkpoint. It replaces the checkpoint of the same file: same
    /// inode, unless both fingerprints are full and differ — then the inode was reused, and
    /// the old checkpoint still stands for the old file's gzipped copy.
    pub fn record(&mut self, new: Checkpoint) {
        self.list
            .retain(|c| c.id != new.id || (c.fp.is_full() && new.fp.is_full() && c.fp != new.fp));
        self.list.push(new);
    }

    /// Keeps only the checkpoints `keep` says are still needed (a file that matches them
    /// still exists). Without this the file would grow forever as pods and rotations come
    /// and go.
    pub fn retain(&mut self, keep: impl FnMut(&Checkpoint) -> bool) {
        self.list.retain(keep);
    }

    pub fn file(&self) -> &Path {
        &self.file
    }

    pub fn to_json(&self) -> Vec<u8> {
        let positions: Vec<Value> = self
            .list
            .iter()
            .filter_map(|c| {
                Some(json!({
                    "path": c.path.to_str()?,
                    "dev": c.id.dev,
                    "inode": c.id.inode,
                    "fingerprint_bytes": c.fp.len,
                    "fingerprint": format!("{:016x}", c.fp.hash),
                    "offset": c.offset,
                    "done": c.done,
                }))
            })
            .collect();
        let doc = json!({ "version": FORMAT_VERSION, "positions": positions });
        serde_json::to_vec_pretty(&doc).unwrap_or_default()
    }
}

/// Positions sent and not yet acknowledged, per file, with what identified the file when each
/// was sent: an ack names only the inode and the offset, and the fingerprint may have changed
/// since (the file grew past a short fingerprint, or was truncated and rewritten).
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    by_id: HashMap<FileId, VecDeque<Sent>>,
}

#[derive(Debug)]
struct Sent {
    offset: u64,
    fp: Fingerprint,
    /// The file's last position: once acknowledged, the file is done.
    last: bool,
}

impl InFlight {
    pub fn sent(&mut self, id: FileId, offset: u64, fp: Fingerprint, last: bool) {
        self.by_id
            .entry(id)
            .or_default()
            .push_back(Sent { offset, fp, last });
    }

    /// The checkpoint an acknowledged position stands for. Acks come in the order positions
    /// were sent; one that matches nothing sent (its file's identity is unknown) yields none
    /// rather than a checkpoint that could match a stranger reusing the inode.
    pub fn acked(&mut self, p: Position) -> Option<Checkpoint> {
        let id = p.id();
        let queue = self.by_id.get_mut(&id)?;
        let at = queue.iter().position(|s| s.offset == p.offset)?;
        let sent = queue.drain(..=at).next_back()?;
        if queue.is_empty() {
            self.by_id.remove(&id);
        }
        Some(Checkpoint {
            path: p.path,
            id,
            fp: sent.fp,
            offset: p.offset,
            done: sent.last,
        })
    }
}

/// Parses a version 2 file, or a version 1 file (no fingerprint, never done).
fn from_json(bytes: &[u8]) -> Option<Vec<Checkpoint>> {
    let doc: Value = serde_json::from_slice(bytes).ok()?;
    let version = doc.get("version")?.as_u64()?;
    if version != 1 && version != FORMAT_VERSION {
        return None;
    }
    let mut out = Vec::new();
    for p in doc.get("positions")?.as_array()? {
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
        let c = Checkpoint {
            path: PathBuf::from(p.get("path")?.as_str()?),
            id,
            fp,
            offset: p.get("offset")?.as_u64()?,
            done,
        };
        out.push(c);
    }
    Some(out)
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
    fn acks_become_checkpoints_with_the_fingerprint_they_were_sent_with() {
        let log = PathBuf::from("/l/0.log");
        let id = FileId { dev: 1, inode: 2 };
        let pos = |offset| Position {
            path: log.clone(),
            dev: 1,
            inode: 2,
            offset,
        };
        let mut f = InFlight::default();
        f.sent(id, 10, Fingerprint::of(b"old"), false);
        f.sent(id, 4, Fingerprint::of(b"new"), false);
        f.sent(id, 8, Fingerprint::of(b"new"), true);
        assert_eq!(f.acked(pos(10)).unwrap().fp, Fingerprint::of(b"old"));
        let c = f.acked(pos(8)).unwrap();
        assert_eq!((c.fp, c.offset, c.done), (Fingerprint::of(b"new"), 8, true));
        assert!(f.acked(pos(4)).is_none(), "already passed");
        assert!(f.by_id.is_empty());
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
