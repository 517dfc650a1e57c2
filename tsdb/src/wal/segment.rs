//! WAL segment files: naming, the versioned header, creation, and reading records back with
//! torn and corrupt tails detected.
//!
//! A segment is `dir/NNNNNNNN` (eight decimal digits, ascending) holding the 8-byte header
//! `"VWAL" | version: u32 LE` and then frames (`record.rs`). Segments are never rewritten,
//! only appended to and, after a crash, truncated at the first bad frame.

use super::record::{self, Record, FRAME_HEADER, MAX_PAYLOAD};
use crate::error::Error;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, ErrorKind, Read, Write};
use std::path::{Path, PathBuf};

const MAGIC: [u8; 4] = *b"VWAL";

/// The WAL format version this build writes and reads (`FORMAT.md`).
pub(crate) const VERSION: u32 = 1;

/// Bytes of the segment header.
pub(crate) const HEADER_LEN: u64 = 8;

pub(crate) fn path(dir: &Path, index: u64) -> PathBuf {
    dir.join(format!("{index:08}"))
}

/// The segments in `dir`, ascending. Files whose names are not eight digits are not ours
/// and are left alone.
pub(crate) fn list(dir: &Path) -> Result<Vec<(u64, PathBuf)>, Error> {
    let entries = std::fs::read_dir(dir).map_err(Error::io("list", dir))?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(Error::io("list", dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.len() == 8 && name.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(index) = name.parse::<u64>() {
                out.push((index, entry.path()));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Creates segment `index` with its header, durable (file and directory entry) before it
/// is returned, so records acknowledged in it are found after a crash.
///
/// A file this call created but could not finish (a full disk failing the header write) is
/// removed again: it is created exclusively, so a leftover would make every later attempt
/// at the same index fail, and the WAL would stay broken after the disk had room again.
pub(crate) fn create(dir: &Path, index: u64) -> std::io::Result<File> {
    let p = path(dir, index);
    let mut file = OpenOptions::new().append(true).create_new(true).open(&p)?;
    let mut header = [0u8; HEADER_LEN as usize];
    header[..4].copy_from_slice(&MAGIC);
    header[4..].copy_from_slice(&VERSION.to_le_bytes());
    let finished = file
        .write_all(&header)
        .and_then(|()| file.sync_all())
        .and_then(|()| File::open(dir)?.sync_all());
    if let Err(e) = finished {
        drop(file);
        let _ = std::fs::remove_file(&p);
        return Err(e);
    }
    Ok(file)
}

/// How reading a segment ended.
#[derive(Debug, PartialEq)]
pub(crate) enum End {
    /// Every byte belonged to a good frame.
    Clean,
    /// The header itself is incomplete: the process died while creating the segment, so it
    /// holds no records.
    TornHeader,
    /// The frame at `offset` is incomplete or damaged; everything before it is good.
    Corrupt { offset: u64, reason: String },
}

/// Reads every good record of a segment in order, handing each to `on_record`, and says how
/// the segment ended. Errors are reserved for I/O failures and for headers that are not ours
/// or of another version; damage to frames is an [`End::Corrupt`], never an error or a panic.
pub(crate) fn read(path: &Path, mut on_record: impl FnMut(Record)) -> Result<End, Error> {
    let file = File::open(path).map_err(Error::io("open", path))?;
    let mut r = BufReader::with_capacity(1 << 20, file);
    let mut header = [0u8; HEADER_LEN as usize];
    match read_full(&mut r, &mut header).map_err(Error::io("read", path))? {
        n if n < header.len() => return Ok(End::TornHeader),
        _ => {}
    }
    if header[..4] != MAGIC {
        return Err(Error::BadMagic { path: path.into() });
    }
    let version = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if version != VERSION {
        return Err(Error::UnsupportedVersion {
            path: path.into(),
            found: version,
            supported: VERSION,
        });
    }
    let mut offset = HEADER_LEN;
    let mut payload = Vec::new();
    loop {
        let corrupt = |reason: String| Ok(End::Corrupt { offset, reason });
        let mut frame = [0u8; FRAME_HEADER];
        match read_full(&mut r, &mut frame).map_err(Error::io("read", path))? {
            0 => return Ok(End::Clean),
            n if n < FRAME_HEADER => return corrupt(format!("torn frame header ({n} bytes)")),
            _ => {}
        }
        let len = u32::from_le_bytes([frame[0], frame[1], frame[2], frame[3]]) as usize;
        let crc = u32::from_le_bytes([frame[4], frame[5], frame[6], frame[7]]);
        if len == 0 || len > MAX_PAYLOAD {
            return corrupt(format!("impossible record length {len}"));
        }
        payload.resize(len, 0);
        let got = read_full(&mut r, &mut payload).map_err(Error::io("read", path))?;
        if got < len {
            return corrupt(format!("torn record: {got} of {len} bytes"));
        }
        if record::checksum(&payload) != crc {
            return corrupt("checksum mismatch".to_string());
        }
        match record::decode(&payload) {
            Ok(rec) => on_record(rec),
            Err(e) => return corrupt(e.to_string()),
        }
        offset += (FRAME_HEADER + len) as u64;
    }
}

/// Reads until `buf` is full or the input ends; the number of bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Cuts a segment at `offset`, durably.
pub(crate) fn truncate(path: &Path, offset: u64) -> Result<(), Error> {
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(Error::io("open", path))?;
    file.set_len(offset).map_err(Error::io("truncate", path))?;
    file.sync_all().map_err(Error::io("sync", path))
}
