//! Checkpoints: how far each tailed file has been delivered, kept in
//! `<state_path>/positions.json` so a restarted agent resumes where the server's
//! acknowledgements left off.
//!
//! The file is rewritten whole (to a temporary file, synced, then renamed over the old one),
//! so a crash leaves either the old or the new checkpoint, never a torn one. Paths that are not
//! UTF-8 are not recorded: after a restart such a file is read again from the start, which
//! duplicates lines but loses none.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::Error;

/// The checkpoint file's name inside the state directory.
pub const POSITIONS_FILE: &str = "positions.json";
const FORMAT_VERSION: u64 = 1;

/// How far one file (identified by device and inode, found at `path`) has been delivered:
/// every line before `offset` was acknowledged by the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Position {
    pub path: PathBuf,
    pub dev: u64,
    pub inode: u64,
    pub offset: u64,
}

/// The checkpoints of every file, by path.
#[derive(Debug)]
pub(crate) struct Positions {
    file: PathBuf,
    by_path: BTreeMap<PathBuf, Position>,
}

impl Positions {
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
        let by_path = match std::fs::read(&file) {
            Ok(bytes) => match from_json(&bytes) {
                Some(p) => p,
                None => {
                    tracing::warn!(path = %file.display(), "corrupt checkpoint file, starting over");
                    let _ = std::fs::rename(&file, file.with_extension("json.corrupt"));
                    BTreeMap::new()
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(state_err(e)),
        };
        Ok(Positions { file, by_path })
    }

    pub fn get(&self, path: &Path) -> Option<&Position> {
        self.by_path.get(path)
    }

    /// Records acknowledged positions, in the order they were acknowledged.
    pub fn apply(&mut self, positions: Vec<Position>) {
        for p in positions {
            self.by_path.insert(p.path.clone(), p);
        }
    }

    /// Forgets files whose path is gone: they cannot be resumed, and keeping them would grow
    /// the file forever as pods come and go.
    pub fn prune_missing(&mut self) {
        self.by_path.retain(|path, _| path.exists());
    }

    pub fn file(&self) -> &Path {
        &self.file
    }

    pub fn to_json(&self) -> Vec<u8> {
        let positions: Vec<Value> = self
            .by_path
            .values()
            .filter_map(|p| {
                Some(json!({
                    "path": p.path.to_str()?,
                    "dev": p.dev,
                    "inode": p.inode,
                    "offset": p.offset,
                }))
            })
            .collect();
        let doc = json!({ "version": FORMAT_VERSION, "positions": positions });
        serde_json::to_vec_pretty(&doc).unwrap_or_default()
    }
}

fn from_json(bytes: &[u8]) -> Option<BTreeMap<PathBuf, Position>> {
    let doc: Value = serde_json::from_slice(bytes).ok()?;
    if doc.get("version")?.as_u64()? != FORMAT_VERSION {
        return None;
    }
    let mut out = BTreeMap::new();
    for p in doc.get("positions")?.as_array()? {
        let pos = Position {
            path: PathBuf::from(p.get("path")?.as_str()?),
            dev: p.get("dev")?.as_u64()?,
            inode: p.get("inode")?.as_u64()?,
            offset: p.get("offset")?.as_u64()?,
        };
        out.insert(pos.path.clone(), pos);
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

    fn pos(path: &Path, offset: u64) -> Position {
        Position {
            path: path.to_path_buf(),
            dev: 7,
            inode: 42,
            offset,
        }
    }

    #[test]
    fn round_trips_through_the_state_dir() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let log = dir.path().join("a.log");
        std::fs::write(&log, "x\n").unwrap();

        let mut p = Positions::load(&state).unwrap();
        assert!(p.get(&log).is_none());
        p.apply(vec![pos(&log, 1), pos(&log, 2)]);
        write_atomic(p.file(), &p.to_json()).unwrap();

        let back = Positions::load(&state).unwrap();
        assert_eq!(back.get(&log), Some(&pos(&log, 2)), "the last ack wins");
        assert!(!state.join("positions.json.tmp").exists());
    }

    #[test]
    fn prunes_files_that_are_gone() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = Positions::load(dir.path()).unwrap();
        let gone = dir.path().join("gone.log");
        p.apply(vec![pos(&gone, 5)]);
        p.prune_missing();
        assert!(p.get(&gone).is_none());
    }

    #[test]
    fn a_corrupt_file_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(POSITIONS_FILE), "{not json").unwrap();
        let p = Positions::load(dir.path()).unwrap();
        assert!(p.by_path.is_empty());
        assert!(dir.path().join("positions.json.corrupt").exists());
    }
}
