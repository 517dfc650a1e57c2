//! A block's chunk files (`chunks/000001`, …): chunks framed with their length and CRC,
//! addressed by a reference that names the file and the offset.

use crate::error::Error;
use crate::mmap::Mmap;
use crate::varint::{get_uvarint, put_uvarint};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

const MAGIC: [u8; 4] = *b"VCHK";
const HEADER_LEN: u64 = 8;

/// A chunk file is closed once it passes this size (Prometheus's segment size), so every
/// offset fits the 32 bits a reference gives it.
const MAX_FILE_BYTES: u64 = 512 << 20;

/// Where a chunk lives: file number (from 1) in the upper 32 bits, byte offset of its frame
/// in the lower.
pub(crate) type ChunkRef = u64;

fn file_name(n: u32) -> String {
    format!("{n:06}")
}

/// Writes chunk files into `<block>/chunks/`.
pub(crate) struct ChunkWriter {
    dir: PathBuf,
    file: Option<(u32, BufWriter<File>, u64)>,
    written: Vec<PathBuf>,
}

impl ChunkWriter {
    pub(crate) fn new(block_dir: &Path) -> Result<ChunkWriter, Error> {
        let dir = block_dir.join("chunks");
        std::fs::create_dir_all(&dir).map_err(Error::io("create", &dir))?;
        Ok(ChunkWriter {
            dir,
            file: None,
            written: Vec::new(),
        })
    }

    /// Appends one encoded chunk and returns its reference.
    pub(crate) fn write(&mut self, chunk: &[u8]) -> Result<ChunkRef, Error> {
        let frame_len = 10 + chunk.len() as u64 + 4;
        if self
            .file
            .as_ref()
            .is_none_or(|(_, _, len)| *len + frame_len > MAX_FILE_BYTES)
        {
            self.start_file()?;
        }
        let dir = &self.dir;
        let Some((n, out, len)) = self.file.as_mut() else {
            return Err(Error::Io {
                op: "write",
                path: dir.clone(),
                source: std::io::Error::other("no chunk file open"),
            });
        };
        let path = dir.join(file_name(*n));
        let reference = (u64::from(*n) << 32) | *len;
        let mut frame = Vec::with_capacity(chunk.len() + 14);
        put_uvarint(&mut frame, chunk.len() as u64);
        frame.extend_from_slice(chunk);
        frame.extend_from_slice(&crc32fast::hash(chunk).to_le_bytes());
        out.write_all(&frame).map_err(Error::io("write", &path))?;
        *len += frame.len() as u64;
        Ok(reference)
    }

    fn start_file(&mut self) -> Result<(), Error> {
        self.finish_file()?;
        let n = self.written.len() as u32 + 1;
        let path = self.dir.join(file_name(n));
        let file = File::create(&path).map_err(Error::io("create", &path))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        out.write_all(&MAGIC).map_err(Error::io("write", &path))?;
        out.write_all(&super::meta::BLOCK_VERSION.to_le_bytes())
            .map_err(Error::io("write", &path))?;
        self.written.push(path);
        self.file = Some((n, out, HEADER_LEN));
        Ok(())
    }

    fn finish_file(&mut self) -> Result<(), Error> {
        if let Some((n, out, _)) = self.file.take() {
            let path = self.dir.join(file_name(n));
            let file = out
                .into_inner()
                .map_err(|e| Error::io("write", &path)(e.into_error()))?;
            file.sync_all().map_err(Error::io("sync", &path))?;
        }
        Ok(())
    }

    /// Flushes and fsyncs every file, and the directory.
    pub(crate) fn finish(mut self) -> Result<(), Error> {
        self.finish_file()?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(Error::io("sync", &self.dir))
    }
}

/// A block's chunk files, mapped.
#[derive(Debug)]
pub(crate) struct ChunkReader {
    files: Vec<(PathBuf, Mmap)>,
}

impl ChunkReader {
    /// Maps every chunk file of the block and checks each: its header, and every frame's
    /// length and CRC, so a damaged file is found when the block opens, not by a query.
    pub(crate) fn open(block_dir: &Path) -> Result<ChunkReader, Error> {
        let dir = block_dir.join("chunks");
        let mut names: Vec<(u32, PathBuf)> = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(Error::io("list", &dir))? {
            let entry = entry.map_err(Error::io("list", &dir))?;
            let name = entry.file_name();
            if let Some(n) = name.to_str().and_then(|s| s.parse::<u32>().ok()) {
                names.push((n, entry.path()));
            }
        }
        names.sort();
        let mut files = Vec::with_capacity(names.len());
        for (i, (n, path)) in names.into_iter().enumerate() {
            if n as usize != i + 1 {
                return Err(Error::CorruptBlock {
                    path,
                    reason: format!("chunk file {n} where {} was expected", i + 1),
                });
            }
            let map = Mmap::open(&path).map_err(Error::io("map", &path))?;
            check_file(&path, map.bytes())?;
            files.push((path, map));
        }
        Ok(ChunkReader { files })
    }

    /// The chunk at `reference`, its CRC checked; an error names the file and the reason.
    pub(crate) fn chunk(&self, reference: ChunkRef) -> Result<&[u8], Error> {
        let n = (reference >> 32) as usize;
        let offset = (reference & 0xffff_ffff) as usize;
        let Some((path, map)) = n.checked_sub(1).and_then(|i| self.files.get(i)) else {
            return Err(Error::CorruptBlock {
                path: PathBuf::from(file_name(n as u32)),
                reason: format!("chunk reference {reference:#x} names a missing chunk file"),
            });
        };
        let bytes = map.bytes();
        match bytes.get(offset..).map(frame) {
            Some(Ok((chunk, _))) if offset as u64 >= HEADER_LEN => Ok(chunk),
            Some(Err(reason)) => Err(Error::CorruptBlock {
                path: path.clone(),
                reason: format!("chunk at offset {offset}: {reason}"),
            }),
            _ => Err(Error::CorruptBlock {
                path: path.clone(),
                reason: format!("chunk offset {offset} is out of range"),
            }),
        }
    }

    /// Whether `reference` points inside one of the files (a cheap open-time check of the
    /// index's references; the frame itself is checked when read).
    pub(crate) fn in_range(&self, reference: ChunkRef) -> bool {
        let n = (reference >> 32) as usize;
        let offset = reference & 0xffff_ffff;
        n.checked_sub(1)
            .and_then(|i| self.files.get(i))
            .is_some_and(|(_, m)| offset >= HEADER_LEN && offset < m.bytes().len() as u64)
    }

    /// Bytes of every chunk file.
    pub(crate) fn size(&self) -> u64 {
        self.files.iter().map(|(_, m)| m.bytes().len() as u64).sum()
    }
}

/// Splits the frame at the front of `bytes`: the chunk and the frame's whole length. Head
/// chunk files (`head_chunks.rs`) frame their chunks the same way.
pub(crate) fn frame(bytes: &[u8]) -> Result<(&[u8], usize), String> {
    let mut rest = bytes;
    let len = get_uvarint(&mut rest).ok_or("torn frame length")? as usize;
    let start = bytes.len() - rest.len();
    let chunk = rest.get(..len).ok_or("torn chunk")?;
    let crc = rest.get(len..len + 4).ok_or("torn checksum")?;
    if crc32fast::hash(chunk).to_le_bytes() != crc {
        return Err("checksum mismatch".to_string());
    }
    Ok((chunk, start + len + 4))
}

fn check_file(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let corrupt = |reason: String| Error::CorruptBlock {
        path: path.to_path_buf(),
        reason,
    };
    let header = bytes
        .get(..HEADER_LEN as usize)
        .ok_or_else(|| corrupt("shorter than its header".to_string()))?;
    if header[..4] != MAGIC {
        return Err(corrupt("bad magic bytes".to_string()));
    }
    let version = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if version != super::meta::BLOCK_VERSION {
        return Err(Error::UnsupportedVersion {
            path: path.to_path_buf(),
            found: version,
            supported: super::meta::BLOCK_VERSION,
        });
    }
    let mut offset = HEADER_LEN as usize;
    while offset < bytes.len() {
        let (_, len) = frame(&bytes[offset..])
            .map_err(|reason| corrupt(format!("chunk at offset {offset}: {reason}")))?;
        offset += len;
    }
    Ok(())
}
