//! The checkpoint file (`wal/checkpoint.NNNNNNNN`): encoding, decoding, and the atomic
//! write (temporary name, fsync, rename, directory fsync).
//!
//! `"VCKP" | version: u32 | body_len: u64 | body | CRC-32 of the body` (`FORMAT.md`
//! §Checkpoints). The CRC covers the body whole, so a damaged checkpoint is refused as a
//! unit and the store replays the whole WAL instead.

use crate::error::Error;
use crate::varint::{get_uvarint, put_uvarint, unzigzag, zigzag};
use model::Labels;
use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

const MAGIC: [u8; 4] = *b"VCKP";

/// The checkpoint format version this build writes and reads.
pub(crate) const VERSION: u32 = 1;

const HEADER_LEN: usize = 16;

pub(crate) const PREFIX: &str = "checkpoint.";
pub(crate) const TMP_SUFFIX: &str = ".tmp";

pub(crate) fn path(wal_dir: &Path, first_segment: u64) -> PathBuf {
    wal_dir.join(format!("{PREFIX}{first_segment:08}"))
}

/// Finished checkpoints (first segment, path) and temporary files.
pub(crate) type Listing = (Vec<(u64, PathBuf)>, Vec<PathBuf>);

/// The finished checkpoints in `wal_dir`, ascending by first segment, and the temporary
/// files of checkpoints a crash interrupted.
pub(crate) fn list(wal_dir: &Path) -> Result<Listing, Error> {
    let mut done = Vec::new();
    let mut tmp = Vec::new();
    let entries = match std::fs::read_dir(wal_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((done, tmp)),
        Err(e) => return Err(Error::io("list", wal_dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(Error::io("list", wal_dir))?;
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(PREFIX)) else {
            continue;
        };
        if rest.ends_with(TMP_SUFFIX) {
            tmp.push(entry.path());
        } else if let Ok(n) = rest.parse::<u64>() {
            done.push((n, entry.path()));
        }
    }
    done.sort();
    Ok((done, tmp))
}

/// Where a closed chunk's bytes are.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Loc {
    /// In the checkpoint itself (a chunk that closed while the checkpoint was taken).
    Inline(Vec<u8>),
    /// In head chunk file `number`, in the frame at `offset`.
    File { number: u32, offset: u32 },
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct SnapChunk {
    pub(crate) min_t: i64,
    pub(crate) max_t: i64,
    pub(crate) loc: Loc,
}

/// One series as the checkpoint holds it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct SnapSeries {
    pub(crate) labels: Labels,
    /// Closed chunks, oldest first.
    pub(crate) closed: Vec<SnapChunk>,
    /// The open chunk's bytes (an XOR chunk), empty when it holds no sample.
    pub(crate) open: Vec<u8>,
}

/// A decoded checkpoint.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Checkpoint {
    /// The first WAL segment not covered: replay reads from this one on.
    pub(crate) first_segment: u64,
    /// The newest sample time of each earlier segment still on disk, so block cuts can
    /// delete them without replay having read them.
    pub(crate) max_times: Vec<(u64, i64)>,
    pub(crate) series: Vec<SnapSeries>,
}

/// Builds a checkpoint body series by series.
#[derive(Debug, Default)]
pub(crate) struct CheckpointWriter {
    series: Vec<u8>,
    count: u64,
    /// Head chunk files the series added so far refer to.
    files: BTreeSet<u32>,
}

impl CheckpointWriter {
    /// Adds a series: its labels, its closed chunks (oldest first) and its open chunk.
    pub(crate) fn add<'a>(
        &mut self,
        labels: &Labels,
        closed: impl ExactSizeIterator<Item = (i64, i64, LocRef<'a>)>,
        open: &[u8],
    ) {
        let b = &mut self.series;
        put_uvarint(b, labels.len() as u64);
        for l in labels {
            put_bytes(b, l.name.as_bytes());
            put_bytes(b, l.value.as_bytes());
        }
        put_uvarint(b, closed.len() as u64);
        for (min_t, max_t, loc) in closed {
            put_uvarint(b, zigzag(min_t));
            put_uvarint(b, max_t.wrapping_sub(min_t) as u64);
            match loc {
                LocRef::Inline(bytes) => {
                    put_uvarint(b, 0);
                    put_bytes(b, bytes);
                }
                LocRef::File { number, offset } => {
                    self.files.insert(number);
                    put_uvarint(b, u64::from(number));
                    put_uvarint(b, u64::from(offset));
                }
            }
        }
        put_bytes(b, open);
        self.count += 1;
    }

    /// The head chunk files the checkpoint refers to.
    pub(crate) fn files(&self) -> &BTreeSet<u32> {
        &self.files
    }

    /// Writes the checkpoint for WAL segments from `first_segment` on into `wal_dir`,
    /// durably: a temporary file, fsync'd, renamed, and the directory fsync'd. A crash at
    /// any point leaves either no checkpoint (a temporary file open removes) or this one.
    pub(crate) fn write(
        self,
        wal_dir: &Path,
        first_segment: u64,
        max_times: &[(u64, i64)],
    ) -> Result<PathBuf, Error> {
        let mut body = Vec::with_capacity(self.series.len() + 64 + 16 * max_times.len());
        put_uvarint(&mut body, first_segment);
        put_uvarint(&mut body, max_times.len() as u64);
        for &(index, t) in max_times {
            put_uvarint(&mut body, index);
            put_uvarint(&mut body, zigzag(t));
        }
        put_uvarint(&mut body, self.count);
        body.extend_from_slice(&self.series);
        let mut file_bytes = Vec::with_capacity(body.len() + HEADER_LEN + 4);
        file_bytes.extend_from_slice(&MAGIC);
        file_bytes.extend_from_slice(&VERSION.to_le_bytes());
        file_bytes.extend_from_slice(&(body.len() as u64).to_le_bytes());
        file_bytes.extend_from_slice(&body);
        file_bytes.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());

        let dest = path(wal_dir, first_segment);
        let tmp = wal_dir.join(format!("{PREFIX}{first_segment:08}{TMP_SUFFIX}"));
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(Error::io("create", &tmp))?;
        f.write_all(&file_bytes).map_err(Error::io("write", &tmp))?;
        f.sync_all().map_err(Error::io("sync", &tmp))?;
        std::fs::rename(&tmp, &dest).map_err(Error::io("rename", &tmp))?;
        File::open(wal_dir)
            .and_then(|d| d.sync_all())
            .map_err(Error::io("sync", wal_dir))?;
        Ok(dest)
    }
}

/// A closed chunk's place, as a writer passes it.
#[derive(Clone, Copy, Debug)]
pub(crate) enum LocRef<'a> {
    Inline(&'a [u8]),
    File { number: u32, offset: u32 },
}

/// Reads and decodes the checkpoint at `path`. Damage of any kind is an
/// [`Error::CorruptCheckpoint`]; an unknown version an [`Error::UnsupportedVersion`].
pub(crate) fn read(path: &Path) -> Result<Checkpoint, Error> {
    let bytes = std::fs::read(path).map_err(Error::io("read", path))?;
    let corrupt = |reason: &str| Error::CorruptCheckpoint {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    let header = bytes
        .get(..HEADER_LEN)
        .ok_or_else(|| corrupt("shorter than its header"))?;
    if header[..4] != MAGIC {
        return Err(corrupt("bad magic bytes"));
    }
    let version = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if version != VERSION {
        return Err(Error::UnsupportedVersion {
            path: path.to_path_buf(),
            found: version,
            supported: VERSION,
        });
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&header[8..16]);
    let len = usize::try_from(u64::from_le_bytes(len)).map_err(|_| corrupt("impossible length"))?;
    let rest = &bytes[HEADER_LEN..];
    if rest.len() != len.saturating_add(4) {
        return Err(corrupt("length does not match the file (torn or padded)"));
    }
    let (body, crc) = rest.split_at(len);
    if crc32fast::hash(body).to_le_bytes() != crc {
        return Err(corrupt("checksum mismatch"));
    }
    decode(body).map_err(corrupt)
}

fn decode(mut body: &[u8]) -> Result<Checkpoint, &'static str> {
    let b = &mut body;
    let first_segment = uvarint(b)?;
    let n = uvarint(b)?;
    let mut max_times = Vec::new();
    for _ in 0..n {
        max_times.push((uvarint(b)?, unzigzag(uvarint(b)?)));
    }
    let n = uvarint(b)?;
    let mut series = Vec::new();
    for _ in 0..n {
        let n_labels = uvarint(b)?;
        let mut pairs = Vec::new();
        for _ in 0..n_labels {
            pairs.push((get_str(b)?, get_str(b)?));
        }
        let labels = Labels::try_from_pairs(pairs).map_err(|_| "invalid labels")?;
        let n_closed = uvarint(b)?;
        let mut closed = Vec::new();
        for _ in 0..n_closed {
            let min_t = unzigzag(uvarint(b)?);
            let max_t = min_t.wrapping_add(uvarint(b)? as i64);
            let loc = match uvarint(b)? {
                0 => Loc::Inline(get_bytes(b)?.to_vec()),
                number => Loc::File {
                    number: u32::try_from(number).map_err(|_| "file number out of range")?,
                    offset: u32::try_from(uvarint(b)?).map_err(|_| "offset out of range")?,
                },
            };
            closed.push(SnapChunk { min_t, max_t, loc });
        }
        let open = get_bytes(b)?.to_vec();
        series.push(SnapSeries {
            labels,
            closed,
            open,
        });
    }
    if !b.is_empty() {
        return Err("bytes after the last series");
    }
    Ok(Checkpoint {
        first_segment,
        max_times,
        series,
    })
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_uvarint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn uvarint(buf: &mut &[u8]) -> Result<u64, &'static str> {
    get_uvarint(buf).ok_or("truncated varint")
}

fn get_bytes<'a>(buf: &mut &'a [u8]) -> Result<&'a [u8], &'static str> {
    let len = usize::try_from(uvarint(buf)?).map_err(|_| "length out of range")?;
    if len > buf.len() {
        return Err("truncated bytes");
    }
    let (s, rest) = buf.split_at(len);
    *buf = rest;
    Ok(s)
}

fn get_str(buf: &mut &[u8]) -> Result<String, &'static str> {
    String::from_utf8(get_bytes(buf)?.to_vec()).map_err(|_| "label is not UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_checkpoint(dir: &Path) -> (PathBuf, Checkpoint) {
        let mut w = CheckpointWriter::default();
        let a = Labels::from_pairs([("__name__", "up"), ("job", "a")]);
        let b = Labels::from_pairs([("__name__", "up"), ("job", "b")]);
        w.add(
            &a,
            [
                (
                    -5,
                    100,
                    LocRef::File {
                        number: 3,
                        offset: 8,
                    },
                ),
                (101, 200, LocRef::Inline(b"xyz")),
            ]
            .into_iter(),
            b"open",
        );
        w.add(&b, std::iter::empty(), b"");
        let p = w.write(dir, 42, &[(40, 7), (41, -3)]).unwrap();
        let want = Checkpoint {
            first_segment: 42,
            max_times: vec![(40, 7), (41, -3)],
            series: vec![
                SnapSeries {
                    labels: a,
                    closed: vec![
                        SnapChunk {
                            min_t: -5,
                            max_t: 100,
                            loc: Loc::File {
                                number: 3,
                                offset: 8,
                            },
                        },
                        SnapChunk {
                            min_t: 101,
                            max_t: 200,
                            loc: Loc::Inline(b"xyz".to_vec()),
                        },
                    ],
                    open: b"open".to_vec(),
                },
                SnapSeries {
                    labels: b,
                    closed: vec![],
                    open: vec![],
                },
            ],
        };
        (p, want)
    }

    #[test]
    fn a_checkpoint_reads_back_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let (p, want) = sample_checkpoint(dir.path());
        assert_eq!(p, path(dir.path(), 42));
        assert_eq!(read(&p).unwrap(), want);
        let (done, tmp) = list(dir.path()).unwrap();
        assert_eq!((done, tmp), (vec![(42, p)], vec![]));
    }

    #[test]
    fn every_truncation_and_every_flipped_byte_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (p, _) = sample_checkpoint(dir.path());
        let full = std::fs::read(&p).unwrap();
        for cut in 0..full.len() {
            std::fs::write(&p, &full[..cut]).unwrap();
            assert!(
                matches!(read(&p), Err(Error::CorruptCheckpoint { .. })),
                "cut at {cut} must be refused"
            );
        }
        for i in 0..full.len() {
            let mut bad = full.clone();
            bad[i] ^= 0x10;
            std::fs::write(&p, &bad).unwrap();
            // Byte 4 is the version: a changed version is refused as unsupported.
            assert!(read(&p).is_err(), "flipped byte {i} must be refused");
        }
        std::fs::write(&p, [full.as_slice(), b"x"].concat()).unwrap();
        assert!(read(&p).is_err(), "trailing bytes");
    }
}
