//! Following one file by identity (device, inode) rather than by path: reading complete
//! lines from an offset, noticing truncation, and noticing when the path now names another
//! file (rotation by rename-and-create) or nothing (deletion).
//!
//! The reads are synchronous `std::fs` calls; the tailer runs them on the blocking pool.

use std::fs::{File, Metadata};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::checkpoint::Position;

/// Bytes read per step. A line longer than this is cut into pieces of this size, so one
/// runaway line cannot hold memory without bound or stall the file (the same bound as the
/// CRI joiner and Loki's default `max_line_size`).
pub(crate) const READ_CHUNK_BYTES: usize = super::join::MAX_JOINED_BYTES;

/// A file's identity: it survives renames, and a new file at the same path has a new one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FileId {
    pub dev: u64,
    pub inode: u64,
}

impl FileId {
    fn of(meta: &Metadata) -> Self {
        FileId {
            dev: meta.dev(),
            inode: meta.ino(),
        }
    }
}

/// One line read from the file, without its `\n`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RawLine {
    /// The offset of the line's first byte.
    pub start: u64,
    pub bytes: Vec<u8>,
}

/// What one read step found.
#[derive(Debug, Default)]
pub(crate) struct Chunk {
    pub lines: Vec<RawLine>,
    /// The file had shrunk below the offset and was read again from the start.
    pub truncated: bool,
    /// The read filled its buffer: there may be more to read right away.
    pub more: bool,
}

/// What the path names now, compared with the file being followed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PathState {
    Same,
    Replaced,
    Gone,
}

/// An open file and how far its complete lines have been read.
#[derive(Debug)]
pub(crate) struct Follower {
    path: PathBuf,
    file: File,
    id: FileId,
    offset: u64,
}

impl Follower {
    /// Opens `path`, resuming at `resume`'s offset when it is a checkpoint of this very file
    /// (same device and inode) and the file is still that long; otherwise from the start.
    pub fn open(path: &Path, resume: Option<&Position>) -> std::io::Result<Follower> {
        let file = File::open(path)?;
        let meta = file.metadata()?;
        let id = FileId::of(&meta);
        let offset = match resume {
            Some(p) if p.dev == id.dev && p.inode == id.inode && p.offset <= meta.len() => p.offset,
            _ => 0,
        };
        Ok(Follower {
            path: path.to_path_buf(),
            file,
            id,
            offset,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn id(&self) -> FileId {
        self.id
    }

    /// The offset just past the last complete line read.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Reads up to `max` bytes of complete lines from the offset. A trailing line without
    /// its `\n` is left for a later read, unless it fills the whole buffer (then it is cut)
    /// or `final_read` says the file will not grow again (then it is returned as is).
    pub fn read(&mut self, max: usize, final_read: bool) -> std::io::Result<Chunk> {
        let len = self.file.metadata()?.len();
        let mut chunk = Chunk::default();
        if len < self.offset {
            chunk.truncated = true;
            self.offset = 0;
        }
        self.file.seek(SeekFrom::Start(self.offset))?;
        let mut buf =
            Vec::with_capacity(max.min(usize::try_from(len - self.offset).unwrap_or(max)));
        (&mut self.file).take(max as u64).read_to_end(&mut buf)?;
        chunk.more = buf.len() == max;

        let mut pos = 0;
        while let Some(nl) = buf[pos..].iter().position(|&b| b == b'\n') {
            chunk.lines.push(RawLine {
                start: self.offset + pos as u64,
                bytes: buf[pos..pos + nl].to_vec(),
            });
            pos += nl + 1;
        }
        // A full buffer without any newline is cut; a final read ends the file, but only
        // once the buffer did not fill, or a line would be cut at the chunk boundary.
        let cut = chunk.lines.is_empty() && chunk.more;
        if pos < buf.len() && (cut || (final_read && !chunk.more)) {
            chunk.lines.push(RawLine {
                start: self.offset + pos as u64,
                bytes: buf[pos..].to_vec(),
            });
            pos = buf.len();
        }
        self.offset += pos as u64;
        Ok(chunk)
    }

    /// Whether `path` still names the file being followed.
    pub fn path_state(&self) -> PathState {
        match std::fs::metadata(&self.path) {
            Ok(meta) if FileId::of(&meta) == self.id => PathState::Same,
            Ok(_) => PathState::Replaced,
            Err(_) => PathState::Gone,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn texts(c: &Chunk) -> Vec<String> {
        c.lines
            .iter()
            .map(|l| String::from_utf8_lossy(&l.bytes).into_owned())
            .collect()
    }

    #[test]
    fn reads_complete_lines_and_waits_for_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, "one\ntwo\nthr").unwrap();
        let mut f = Follower::open(&path, None).unwrap();
        let c = f.read(1024, false).unwrap();
        assert_eq!(texts(&c), ["one", "two"]);
        assert_eq!((c.lines[1].start, f.offset()), (4, 8));

        let mut w = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        w.write_all(b"ee\nfour").unwrap();
        assert_eq!(texts(&f.read(1024, false).unwrap()), ["three"]);
        assert_eq!(
            texts(&f.read(1024, true).unwrap()),
            ["four"],
            "a final read flushes"
        );
    }

    #[test]
    fn truncation_rereads_from_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, "aaaa\nbbbb\n").unwrap();
        let mut f = Follower::open(&path, None).unwrap();
        f.read(1024, false).unwrap();
        std::fs::write(&path, "c\n").unwrap();
        let c = f.read(1024, false).unwrap();
        assert!(c.truncated);
        assert_eq!(texts(&c), ["c"]);
        assert_eq!(f.path_state(), PathState::Same);
    }

    #[test]
    fn an_overlong_line_is_cut_at_the_buffer_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, "abcdefgh\n").unwrap();
        let mut f = Follower::open(&path, None).unwrap();
        let c = f.read(4, false).unwrap();
        assert!(c.more);
        assert_eq!(texts(&c), ["abcd"]);
        assert_eq!(texts(&f.read(4, false).unwrap()), ["efgh"]);
        assert_eq!(texts(&f.read(4, false).unwrap()), [""]);
    }

    #[test]
    fn a_final_read_does_not_cut_at_the_chunk_boundary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, "ab\ncdef").unwrap();
        let mut f = Follower::open(&path, None).unwrap();
        let c = f.read(5, true).unwrap();
        assert!(c.more);
        assert_eq!(texts(&c), ["ab"]);
        assert_eq!(texts(&f.read(5, true).unwrap()), ["cdef"]);
    }

    #[test]
    fn resumes_only_a_checkpoint_of_the_same_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, "one\ntwo\n").unwrap();
        let id = Follower::open(&path, None).unwrap().id();
        let mut pos = Position {
            path: path.clone(),
            dev: id.dev,
            inode: id.inode,
            offset: 4,
        };
        assert_eq!(Follower::open(&path, Some(&pos)).unwrap().offset(), 4);
        pos.inode += 1;
        assert_eq!(Follower::open(&path, Some(&pos)).unwrap().offset(), 0);
    }

    #[test]
    fn notices_replacement_and_deletion() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, "one\n").unwrap();
        let f = Follower::open(&path, None).unwrap();
        std::fs::rename(&path, dir.path().join("a.log.1")).unwrap();
        assert_eq!(f.path_state(), PathState::Gone);
        std::fs::write(&path, "new\n").unwrap();
        assert_eq!(f.path_state(), PathState::Replaced);
    }
}
