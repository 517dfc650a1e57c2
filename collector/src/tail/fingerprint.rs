//! What makes a log file the same file: its device and inode while it exists, and a
//! fingerprint of its first bytes that survives what an inode does not — kubelet gzipping a
//! rotated file (a new inode with the same content) and the filesystem handing a freed inode
//! to a new file (the same inode with other content).
//!
//! The fingerprint hashes the first [`FINGERPRINT_BYTES`] bytes (Vector's checksum
//! fingerprint reads 256 bytes too). A file shorter than that is fingerprinted over what it
//! has; such a short fingerprint is a weak identity, so it only counts together with the
//! inode, or when it covers a whole (gzipped) file byte for byte. The head of a `.gz` file is
//! read decompressed, so a gzipped file has the fingerprint of the file it was made from.

use std::fs::{File, Metadata};
use std::io::Read;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

/// How many leading bytes the fingerprint covers. CRI and docker lines start with a
/// nanosecond timestamp (CRI) or carry it within the first line (docker json-file), so two
/// log files that agree on their first 256 bytes are the same file.
pub(crate) const FINGERPRINT_BYTES: usize = 256;

/// A file's identity while it exists: it survives renames, and a new file at the same path
/// has a new one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct FileId {
    pub dev: u64,
    pub inode: u64,
}

impl FileId {
    pub fn of(meta: &Metadata) -> Self {
        FileId {
            dev: meta.dev(),
            inode: meta.ino(),
        }
    }
}

/// A hash of a file's first `len` bytes; `len` is [`FINGERPRINT_BYTES`] once the file is
/// that long.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Fingerprint {
    pub len: u32,
    pub hash: u64,
}

impl Fingerprint {
    /// The fingerprint of `head`, the first bytes of a file (at most [`FINGERPRINT_BYTES`]
    /// are used).
    pub fn of(head: &[u8]) -> Self {
        let head = &head[..head.len().min(FINGERPRINT_BYTES)];
        Fingerprint {
            len: head.len() as u32,
            hash: fnv1a(head),
        }
    }

    /// Covers the full [`FINGERPRINT_BYTES`]: strong enough to identify a file on its own.
    pub fn is_full(&self) -> bool {
        self.len as usize >= FINGERPRINT_BYTES
    }

    /// Whether a file starting with `head` starts with the bytes this fingerprint hashed.
    pub fn is_prefix_of(&self, head: &[u8]) -> bool {
        let len = self.len as usize;
        head.len() >= len && fnv1a(&head[..len]) == self.hash
    }
}

/// The first bytes of a file as its reader sees them (decompressed for `.gz`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Head {
    pub bytes: Vec<u8>,
    /// The file is gzipped: its inode says nothing about the file it was made from.
    pub gz: bool,
}

impl Head {
    /// Reads the head of the file at `path`; `gz` decompresses it first.
    pub fn read(path: &Path, gz: bool) -> std::io::Result<Head> {
        let file = File::open(path)?;
        let bytes = if gz {
            let mut out = Vec::with_capacity(FINGERPRINT_BYTES);
            flate2::read::MultiGzDecoder::new(file)
                .take(FINGERPRINT_BYTES as u64)
                .read_to_end(&mut out)?;
            out
        } else {
            read_head(&file)?
        };
        Ok(Head { bytes, gz })
    }
}

/// Reads up to [`FINGERPRINT_BYTES`] from the start of an open file without moving its
/// cursor, so a follower can refresh its fingerprint between reads.
pub(crate) fn read_head(file: &File) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0; FINGERPRINT_BYTES];
    let mut filled = 0;
    while filled < buf.len() {
        match file.read_at(&mut buf[filled..], filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(filled);
    Ok(buf)
}

/// 64-bit FNV-1a: stable across builds and releases, which a hash kept in a checkpoint file
/// must be (std's `DefaultHasher` promises neither), and plenty for telling 256-byte heads
/// apart — the identity is not a security boundary.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn fnv1a_matches_the_published_vectors() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn short_fingerprints_grow_and_stay_prefixes() {
        let short = Fingerprint::of(b"abc");
        assert!(!short.is_full());
        assert!(short.is_prefix_of(b"abcdef"));
        assert!(!short.is_prefix_of(b"ab"));
        assert!(!short.is_prefix_of(b"abX"));
        let long = vec![7u8; 1000];
        let full = Fingerprint::of(&long);
        assert!(full.is_full());
        assert_eq!(full.len as usize, FINGERPRINT_BYTES);
        assert!(full.is_prefix_of(&long[..FINGERPRINT_BYTES]));
    }

    #[test]
    fn a_gzipped_file_has_the_head_of_its_original() {
        let dir = tempfile::tempdir().unwrap();
        let text: Vec<u8> = (0..2000).map(|i| b'a' + (i % 26) as u8).collect();
        let plain = dir.path().join("0.log.1");
        std::fs::write(&plain, &text).unwrap();
        let gz = dir.path().join("0.log.1.gz");
        let mut enc =
            flate2::write::GzEncoder::new(File::create(&gz).unwrap(), flate2::Compression::fast());
        enc.write_all(&text).unwrap();
        enc.finish().unwrap();

        let a = Head::read(&plain, false).unwrap();
        let b = Head::read(&gz, true).unwrap();
        assert_eq!(a.bytes, b.bytes);
        assert_eq!(Fingerprint::of(&a.bytes), Fingerprint::of(&b.bytes));
        assert!(
            Head::read(&plain, true).is_err(),
            "not gzip: an error, no panic"
        );
    }
}
