//! The on-disk format of the sinks' queue segment files, and their recovery at start.
//!
//! # FORMAT (version 2)
//!
//! A queue is a directory (`<state.path>/logqueue/` for Loki pushes,
//! `<state.path>/wal-remote-write/` for remote-write requests) of segment files named
//! `<seq>.seg`, `seq` a zero-padded decimal that grows by one per new segment; records are
//! delivered in `seq` order, then in file order.
//!
//! A segment starts with an 8-byte header: the magic `VLGQ`, the version byte (`2`) and three
//! zero bytes. Records follow, each framed as
//!
//! ```text
//! len: u32 LE | crc32: u32 LE | payload (len bytes)
//! payload = entries: u32 LE | text_bytes: u32 LE | lane: u32 LE | meta_len: u32 LE | meta | body
//! ```
//!
//! where `crc32` is the IEEE CRC of the payload, `entries` and `text_bytes` are what the body
//! holds, for the sink's counters (log lines and their text size; samples and the body's
//! size), `lane` is the record's delivery lane (records of one lane are delivered one at a
//! time, in queue order; different lanes in parallel), `meta` is the sink's note about the record, handed back once it is delivered (the
//! Loki sink's: the file positions its lines end at; remote write's: empty), and `body` is the
//! request body exactly as sent: a snappy-compressed protobuf `PushRequest` or
//! `WriteRequest`, or empty for a record that only carries `meta` (nothing is sent for it).
//! Each record is fsync'd before the collector that made it goes on.
//!
//! Version 1 segments (written before lanes and `meta`: `payload = entries | text_bytes |
//! body`) are still read, their records in lane 0 with empty `meta`; new segments are always
//! version 2.
//!
//! A crash can leave the last record torn (short, or with a CRC that does not match). Opening
//! truncates the segment at the last good record with a warning; nothing before it is lost,
//! and the torn record's lines are not in any checkpoint, so the tailer reads them again (a
//! torn remote-write record's samples were being appended at the crash: they are lost). A
//! header with another magic or an unknown version is a clear error: a newer agent's queue is
//! not silently discarded by an older one.
//!
//! Beside the segments, the file `delivered` records how far delivery got (`marks.rs`).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The magic at the start of every segment.
const MAGIC: &[u8; 4] = b"VLGQ";
/// The format version this agent writes; it also reads [`VERSION_1`].
pub(crate) const VERSION: u8 = 2;
/// The first format: no `meta` in the payload.
const VERSION_1: u8 = 1;
/// Bytes of the segment header.
pub(crate) const HEADER_LEN: u64 = 8;
/// Bytes of a frame's `len` and `crc32`.
const FRAME_HEAD: usize = 8;
/// Bytes of the payload's `entries` and `text_bytes` (and, from version 2, `lane` and
/// `meta_len`).
const COUNTS_LEN_V1: usize = 8;
const COUNTS_LEN: usize = 16;
/// The largest payload a frame may declare: far above any push body (a few MiB), so a
/// corrupt length is caught before it allocates.
const MAX_PAYLOAD: u32 = 256 << 20;

/// Why a segment could not be opened.
#[derive(thiserror::Error, Debug)]
pub enum SegmentError {
    #[error("queue segment {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("queue segment {path} is not a Vigil queue segment (bad magic)")]
    BadMagic { path: PathBuf },
    #[error(
        "queue segment {path} has format version {found}; this agent reads versions 1 to {VERSION} \
         (move the queue directory away to start with an empty queue)"
    )]
    UnknownVersion { path: PathBuf, found: u8 },
}

/// One record: a request body, what it holds, and the sink's note about it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Record {
    pub entries: u32,
    pub text_bytes: u32,
    /// Records of one lane are sent one at a time, in order.
    pub lane: u32,
    /// Handed back by the sender once the record is delivered, in queue order.
    pub meta: Vec<u8>,
    /// The request body; empty when the record only carries `meta`.
    pub body: Vec<u8>,
}

impl Record {
    /// Bytes the record takes in its segment, framing included.
    pub fn framed_len(&self) -> u64 {
        (FRAME_HEAD + COUNTS_LEN + self.meta.len() + self.body.len()) as u64
    }

    /// The framed bytes of the record, in the current version.
    pub fn encode(&self) -> Vec<u8> {
        let mut payload = Vec::with_capacity(COUNTS_LEN + self.meta.len() + self.body.len());
        payload.extend_from_slice(&self.entries.to_le_bytes());
        payload.extend_from_slice(&self.text_bytes.to_le_bytes());
        payload.extend_from_slice(&self.lane.to_le_bytes());
        payload.extend_from_slice(&(self.meta.len() as u32).to_le_bytes());
        payload.extend_from_slice(&self.meta);
        payload.extend_from_slice(&self.body);
        let mut out = Vec::with_capacity(FRAME_HEAD + payload.len());
        out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        out.extend_from_slice(&payload);
        out
    }
}

/// The file name of segment `seq`.
pub(crate) fn file_name(seq: u64) -> String {
    format!("{seq:020}.seg")
}

/// The sequence number of a segment file name, or none for another file.
pub(crate) fn parse_name(name: &str) -> Option<u64> {
    name.strip_suffix(".seg")?.parse().ok()
}

/// Creates segment `path` with its header, synced.
pub(crate) fn create(path: &Path) -> std::io::Result<File> {
    let mut f = File::options().create_new(true).append(true).open(path)?;
    let mut header = [0u8; HEADER_LEN as usize];
    header[..4].copy_from_slice(MAGIC);
    header[4] = VERSION;
    f.write_all(&header)?;
    f.sync_data()?;
    Ok(f)
}

/// What a segment holds after recovery.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Recovered {
    /// Records in the segment.
    pub records: u64,
    /// Lines in those records.
    pub entries: u64,
    /// The segment's length once any torn tail is cut off.
    pub len: u64,
    /// Of the first `prefix` records asked to be skipped: how many the segment holds, and
    /// the offset of the record after them (where reading starts).
    pub prefix: u64,
    pub skip_offset: u64,
    /// Records finished already (the prefix and the runs), and their lines.
    pub skipped: u64,
    pub skipped_entries: u64,
    /// The non-empty `meta` of the finished records, and of the others, each in order.
    pub skipped_metas: Vec<Vec<u8>>,
    pub metas: Vec<Vec<u8>>,
}

/// Reads segment `path` through, truncating a torn tail, and finds where its record
/// `prefix` starts; the records before it and those in `runs` (first record to the one after
/// the last) are counted finished. `None` when even the header is incomplete (a crash right
/// after creating it: the segment holds nothing).
pub(crate) fn recover(
    path: &Path,
    prefix: u64,
    runs: &[(u64, u64)],
) -> Result<Option<Recovered>, SegmentError> {
    let io = |source| SegmentError::Io {
        path: path.to_path_buf(),
        source,
    };
    let bytes = std::fs::read(path).map_err(io)?;
    if bytes.len() < HEADER_LEN as usize {
        return Ok(None);
    }
    let version = check_header(path, &bytes)?;
    let mut at = HEADER_LEN as usize;
    let (mut records, mut entries) = (0u64, 0u64);
    let (mut skipped, mut skipped_entries, mut skip_offset) = (0u64, 0u64, at as u64);
    let (mut skipped_metas, mut metas) = (Vec::new(), Vec::new());
    while let Some((record, next)) = decode_at(&bytes, at, version) {
        let nth = records;
        records += 1;
        entries += u64::from(record.entries);
        at = next;
        let meta = (!record.meta.is_empty()).then_some(record.meta);
        if nth < prefix {
            skip_offset = at as u64;
        }
        if nth < prefix || runs.iter().any(|&(first, end)| (first..end).contains(&nth)) {
            skipped += 1;
            skipped_entries += u64::from(record.entries);
            skipped_metas.extend(meta);
        } else {
            metas.extend(meta);
        }
    }
    if at < bytes.len() {
        tracing::warn!(
            path = %path.display(),
            good_bytes = at,
            torn_bytes = bytes.len() - at,
            "queue segment has a torn tail, truncating at the last good record"
        );
        let f = File::options().write(true).open(path).map_err(io)?;
        f.set_len(at as u64).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    Ok(Some(Recovered {
        records,
        entries,
        len: at as u64,
        prefix: records.min(prefix),
        skip_offset,
        skipped,
        skipped_entries,
        skipped_metas,
        metas,
    }))
}

/// The format version of a segment whose first bytes are `header`, or why it is not one.
fn check_header(path: &Path, header: &[u8]) -> Result<u8, SegmentError> {
    if header.get(..4) != Some(MAGIC.as_slice()) {
        return Err(SegmentError::BadMagic {
            path: path.to_path_buf(),
        });
    }
    match header.get(4).copied() {
        Some(v @ (VERSION_1 | VERSION)) => Ok(v),
        found => Err(SegmentError::UnknownVersion {
            path: path.to_path_buf(),
            found: found.unwrap_or(0),
        }),
    }
}

/// Opens segment `path` for reading and returns it with its format version.
pub(crate) fn open_for_read(path: &Path) -> std::io::Result<(File, u8)> {
    let mut f = File::open(path)?;
    let mut header = [0u8; HEADER_LEN as usize];
    f.read_exact(&mut header)?;
    let version = check_header(path, &header)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
    Ok((f, version))
}

/// The record framed at `at` in `bytes` and the offset after it; none when the frame is
/// incomplete or its CRC does not match.
fn decode_at(bytes: &[u8], at: usize, version: u8) -> Option<(Record, usize)> {
    let head = bytes.get(at..at.checked_add(FRAME_HEAD)?)?;
    let len = u32::from_le_bytes(head[..4].try_into().ok()?);
    let crc = u32::from_le_bytes(head[4..].try_into().ok()?);
    if len > MAX_PAYLOAD {
        return None;
    }
    let start = at + FRAME_HEAD;
    let payload = bytes.get(start..start.checked_add(len as usize)?)?;
    if crc32fast::hash(payload) != crc {
        return None;
    }
    Some((decode_payload(payload, version)?, start + len as usize))
}

/// A payload of the given format version; none when it is shorter than its counts say.
fn decode_payload(payload: &[u8], version: u8) -> Option<Record> {
    let word = |at: usize| -> Option<u32> {
        Some(u32::from_le_bytes(
            payload.get(at..at + 4)?.try_into().ok()?,
        ))
    };
    let (lane, meta, body_at) = if version == VERSION_1 {
        (0, Vec::new(), COUNTS_LEN_V1)
    } else {
        let meta_end = COUNTS_LEN.checked_add(word(12)? as usize)?;
        (
            word(8)?,
            payload.get(COUNTS_LEN..meta_end)?.to_vec(),
            meta_end,
        )
    };
    Some(Record {
        entries: word(0)?,
        text_bytes: word(4)?,
        lane,
        meta,
        body: payload.get(body_at..)?.to_vec(),
    })
}

/// Reads the record at `offset` of an open segment of format `version`; returns it and the
/// offset after it. An error means the segment changed under the queue (corruption after it
/// was opened).
pub(crate) fn read_at(f: &mut File, offset: u64, version: u8) -> std::io::Result<(Record, u64)> {
    let corrupt =
        |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    f.seek(SeekFrom::Start(offset))?;
    let mut head = [0u8; FRAME_HEAD];
    f.read_exact(&mut head)?;
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
    let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    if len > MAX_PAYLOAD {
        return Err(corrupt("record length out of range"));
    }
    let mut payload = vec![0u8; len as usize];
    f.read_exact(&mut payload)?;
    if crc32fast::hash(&payload) != crc {
        return Err(corrupt("record checksum mismatch"));
    }
    let record = decode_payload(&payload, version).ok_or_else(|| corrupt("record too short"))?;
    Ok((record, offset + (FRAME_HEAD as u64) + u64::from(len)))
}
