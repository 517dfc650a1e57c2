//! Log WAL segment files: naming, the versioned header, creation, and reading records back
//! with torn and corrupt tails detected.
//!
//! A segment is `wal/NNNNNNNN` (eight decimal digits, ascending) holding the 8-byte header
//! `"VLOG" | version: u32 LE` and then frames (`record.rs`). Segments are only appended to
//! and, after a crash, truncated at their first bad frame.

use super::record::{checksum, decode, FRAME_HEADER, MAX_PAYLOAD};
use crate::Error;
use model::LogStream;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, ErrorKind, Read, Write};
use std::path::{Path, PathBuf};

const MAGIC: [u8; 4] = *b"VLOG";

/// The WAL format version this build writes and reads (`FORMAT.md`).
pub(crate) const VERSION: u32 = 1;

/// Bytes of the segment header.
pub(crate) const HEADER_LEN: u64 = 8;

pub(crate) fn path(dir: &Path, index: u64) -> PathBuf {
    dir.join(format!("{index:08}"))
}

/// The segments in `dir`, ascending. Files not named with eight digits are left alone.
pub(crate) fn list(dir: &Path) -> Result<Vec<(u64, PathBuf)>, Error> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
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

/// Creates segment `index` with its header, durable (file and directory entry) before it is
/// returned, so that records acknowledged in it are found after a crash.
pub(crate) fn create(dir: &Path, index: u64) -> std::io::Result<File> {
    let mut file = OpenOptions::new()
        .append(true)
        .create_new(true)
        .open(path(dir, index))?;
    let mut header = [0u8; HEADER_LEN as usize];
    header[..4].copy_from_slice(&MAGIC);
    header[4..].copy_from_slice(&VERSION.to_le_bytes());
    file.write_all(&header)?;
    file.sync_all()?;
    File::open(dir)?.sync_all()?;
    Ok(file)
}

/// How reading a segment ended.
#[derive(Debug, PartialEq)]
pub(crate) enum End {
    /// Every byte belonged to a good frame.
    Clean,
    /// The header is incomplete: the process died creating the segment, which holds nothing.
    TornHeader,
    /// The frame at `offset` is incomplete or damaged; everything before it is good.
    Corrupt { offset: u64, reason: String },
}

/// Reads every good record of a segment in order, handing each to `on_record`, and says how
/// the segment ended. Errors are reserved for I/O, for headers that are not ours or of another
/// version, and for `on_record`'s own errors; damaged frames end the read as [`End::Corrupt`].
pub(crate) fn read(
    path: &Path,
    mut on_record: impl FnMut(Vec<LogStream>) -> Result<(), Error>,
) -> Result<End, Error> {
    let mut r = BufReader::with_capacity(1 << 20, File::open(path)?);
    let mut header = [0u8; HEADER_LEN as usize];
    if read_full(&mut r, &mut header)? < header.len() {
        return Ok(End::TornHeader);
    }
    if header[..4] != MAGIC {
        return Err(Error::Wal {
            path: path.into(),
            reason: "not a log WAL segment (bad magic)".into(),
        });
    }
    let version = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if version != VERSION {
        return Err(Error::Wal {
            path: path.into(),
            reason: format!("format version {version}; this build reads version {VERSION}"),
        });
    }
    let mut offset = HEADER_LEN;
    let mut payload = Vec::new();
    loop {
        let corrupt = |reason: String| Ok(End::Corrupt { offset, reason });
        let mut frame = [0u8; FRAME_HEADER];
        match read_full(&mut r, &mut frame)? {
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
        let got = read_full(&mut r, &mut payload)?;
        if got < len {
            return corrupt(format!("torn record: {got} of {len} bytes"));
        }
        if checksum(&payload) != crc {
            return corrupt("checksum mismatch".into());
        }
        match decode(&payload) {
            Ok(streams) => on_record(streams)?,
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
pub(crate) fn truncate(path: &Path, offset: u64) -> std::io::Result<()> {
    let file = OpenOptions::new().write(true).open(path)?;
    file.set_len(offset)?;
    file.sync_all()
}
