//! Head chunk files (`chunks_head/NNNNNN`): full head chunks written to disk by a
//! checkpoint and read back through a read-only mmap, so they need not stay in memory.
//!
//! A checkpoint (`checkpoint.rs`) writes the chunks that closed since the previous one into
//! one new file, fsyncs it, and only then refers to them; a file is never appended to after
//! it is finished. Frames are the block chunk files' (`uvarint len | chunk | CRC-32`), so a
//! torn or damaged file is found by the checkpoint that refers into it, which is then not
//! used (the WAL covers what it held).

use crate::block::chunks::frame;
use crate::error::Error;
use crate::mmap::Mmap;
use crate::varint::put_uvarint;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// The directory under the data directory that holds head chunk files.
pub(crate) const DIR: &str = "chunks_head";

const MAGIC: [u8; 4] = *b"VHCK";

/// The head chunk file format version this build writes and reads (`FORMAT.md`).
pub(crate) const VERSION: u32 = 1;

const HEADER_LEN: u64 = 8;

/// A file stops taking chunks before this size, so every offset fits in 32 bits; chunks
/// that do not fit stay in memory until the next checkpoint.
const MAX_FILE_BYTES: u64 = 1 << 31;

pub(crate) fn path(dir: &Path, number: u32) -> PathBuf {
    dir.join(DIR).join(format!("{number:06}"))
}

/// The head chunk files under the data directory `dir`, ascending by number.
pub(crate) fn list(dir: &Path) -> Result<Vec<(u32, PathBuf)>, Error> {
    let dir = dir.join(DIR);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("list", &dir)(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(Error::io("list", &dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.len() == 6 && name.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(n) = name.parse::<u32>() {
                out.push((n, entry.path()));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// A finished head chunk file, mapped.
#[derive(Debug)]
pub(crate) struct HeadChunkFile {
    number: u32,
    path: PathBuf,
    map: Mmap,
}

impl HeadChunkFile {
    /// Maps a finished file and checks its header. A file of an unknown version fails
    /// with [`Error::UnsupportedVersion`]; any other damage is an [`Error::CorruptCheckpoint`].
    pub(crate) fn open(dir: &Path, number: u32) -> Result<HeadChunkFile, Error> {
        let path = path(dir, number);
        let map = Mmap::open(&path).map_err(Error::io("map", &path))?;
        let header = map
            .bytes()
            .get(..HEADER_LEN as usize)
            .ok_or_else(|| corrupt(&path, "shorter than its header".to_string()))?;
        if header[..4] != MAGIC {
            return Err(corrupt(&path, "bad magic bytes".to_string()));
        }
        let version = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if version != VERSION {
            return Err(Error::UnsupportedVersion {
                path,
                found: version,
                supported: VERSION,
            });
        }
        Ok(HeadChunkFile { number, path, map })
    }

    pub(crate) fn number(&self) -> u32 {
        self.number
    }

    /// Checks the frame at `offset` (its length and CRC) and returns where its chunk's
    /// bytes start and how long they are.
    pub(crate) fn frame_at(&self, offset: u32) -> Result<(u32, u32), Error> {
        let bytes = self.map.bytes();
        if u64::from(offset) < HEADER_LEN {
            return Err(corrupt(
                &self.path,
                format!("chunk offset {offset} is in the header"),
            ));
        }
        let rest = bytes
            .get(offset as usize..)
            .filter(|r| !r.is_empty())
            .ok_or_else(|| corrupt(&self.path, format!("chunk offset {offset} is past the end")))?;
        let (chunk, whole) = frame(rest)
            .map_err(|reason| corrupt(&self.path, format!("chunk at offset {offset}: {reason}")))?;
        // `whole` = varint + chunk + 4; the chunk starts after the varint.
        let start = offset as usize + whole - chunk.len() - 4;
        Ok((start as u32, chunk.len() as u32))
    }

    /// The chunk bytes at `start..start + len`, as [`HeadChunkFile::frame_at`] found them;
    /// empty (which decodes as a truncated chunk, never a panic) if out of range.
    pub(crate) fn bytes(&self, start: u32, len: u32) -> &[u8] {
        let (start, len) = (start as usize, len as usize);
        self.map
            .bytes()
            .get(start..start.saturating_add(len))
            .unwrap_or_default()
    }
}

fn corrupt(path: &Path, reason: String) -> Error {
    Error::CorruptCheckpoint {
        path: path.to_path_buf(),
        reason,
    }
}

/// Writes one head chunk file, start to finish.
pub(crate) struct HeadChunkWriter {
    dir: PathBuf,
    number: u32,
    path: PathBuf,
    out: BufWriter<File>,
    len: u64,
    frame: Vec<u8>,
}

impl HeadChunkWriter {
    /// Creates file `number` under the data directory `dir`.
    pub(crate) fn create(dir: &Path, number: u32) -> Result<HeadChunkWriter, Error> {
        let chunks_dir = dir.join(DIR);
        std::fs::create_dir_all(&chunks_dir).map_err(Error::io("create", &chunks_dir))?;
        let path = path(dir, number);
        let file = File::create(&path).map_err(Error::io("create", &path))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        out.write_all(&MAGIC)
            .and_then(|()| out.write_all(&VERSION.to_le_bytes()))
            .map_err(Error::io("write", &path))?;
        Ok(HeadChunkWriter {
            dir: dir.to_path_buf(),
            number,
            path,
            out,
            len: HEADER_LEN,
            frame: Vec::new(),
        })
    }

    /// Appends a chunk; the offset of its frame, or `None` when the file is full (the chunk
    /// then waits for the next file).
    pub(crate) fn write(&mut self, chunk: &[u8]) -> Result<Option<u32>, Error> {
        self.frame.clear();
        put_uvarint(&mut self.frame, chunk.len() as u64);
        self.frame.extend_from_slice(chunk);
        self.frame
            .extend_from_slice(&crc32fast::hash(chunk).to_le_bytes());
        if self.len + self.frame.len() as u64 > MAX_FILE_BYTES {
            return Ok(None);
        }
        let offset = self.len as u32;
        self.out
            .write_all(&self.frame)
            .map_err(Error::io("write", &self.path))?;
        self.len += self.frame.len() as u64;
        Ok(Some(offset))
    }

    /// Flushes and fsyncs the file and its directory entry, and maps it.
    pub(crate) fn finish(self) -> Result<HeadChunkFile, Error> {
        let path = self.path;
        let file = self
            .out
            .into_inner()
            .map_err(|e| Error::io("write", &path)(e.into_error()))?;
        file.sync_all().map_err(Error::io("sync", &path))?;
        let chunks_dir = self.dir.join(DIR);
        File::open(&chunks_dir)
            .and_then(|d| d.sync_all())
            .map_err(Error::io("sync", &chunks_dir))?;
        HeadChunkFile::open(&self.dir, self.number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_written_are_read_back_and_damage_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = HeadChunkWriter::create(dir.path(), 7).unwrap();
        let a = w.write(b"first chunk").unwrap().unwrap();
        let b = w.write(&[9u8; 300]).unwrap().unwrap();
        let file = w.finish().unwrap();
        assert_eq!(file.number(), 7);
        let (start, len) = file.frame_at(a).unwrap();
        assert_eq!(file.bytes(start, len), b"first chunk");
        let (start, len) = file.frame_at(b).unwrap();
        assert_eq!(file.bytes(start, len), &[9u8; 300][..]);
        assert!(file.frame_at(0).is_err(), "inside the header");
        assert!(file.frame_at(a + 1).is_err(), "not a frame boundary");
        assert!(file.frame_at(10_000).is_err(), "past the end");
        assert_eq!(file.bytes(10_000, 5), b"");
        assert_eq!(list(dir.path()).unwrap().len(), 1);

        // Cut the file inside the second frame: the first still reads, the second is torn.
        let p = path(dir.path(), 7);
        let full = std::fs::read(&p).unwrap();
        std::fs::write(&p, &full[..full.len() - 3]).unwrap();
        let file = HeadChunkFile::open(dir.path(), 7).unwrap();
        assert!(file.frame_at(a).is_ok());
        assert!(matches!(
            file.frame_at(b),
            Err(Error::CorruptCheckpoint { .. })
        ));
        // A flipped byte fails the CRC.
        let mut flipped = full.clone();
        flipped[a as usize + 3] ^= 0x40;
        std::fs::write(&p, &flipped).unwrap();
        let file = HeadChunkFile::open(dir.path(), 7).unwrap();
        assert!(file.frame_at(a).is_err() && file.frame_at(b).is_ok());
        // A torn header and an unknown version.
        std::fs::write(&p, &full[..5]).unwrap();
        assert!(HeadChunkFile::open(dir.path(), 7).is_err());
        let mut v2 = full;
        v2[4] = 2;
        std::fs::write(&p, &v2).unwrap();
        assert!(matches!(
            HeadChunkFile::open(dir.path(), 7),
            Err(Error::UnsupportedVersion { found: 2, .. })
        ));
    }
}
