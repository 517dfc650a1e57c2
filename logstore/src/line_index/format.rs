//! The line index file of one segment (`<segment id>.vli`): the segment's line terms, laid
//! out for needle searches, and the documents holding each.
//!
//! # FORMAT (version 1)
//!
//! ```text
//! layout:   layout_len bytes       a term layout (`term_layout.rs`): terms by length, then
//!                                  bytes, with its own header and CRC
//! postings: postings_len bytes     per term, in layout order, its documents ascending: the
//!                                  first id, then each one's distance from the one before,
//!                                  as LEB128 varints
//! offsets:  (terms + 1) × u64 LE   where each term's postings start in `postings`; the last
//!                                  is postings_len
//! footer:   magic "VLIX" | version: u8 (1) | 3 zero bytes | docs: u32 LE |
//!           layout_len: u64 LE | postings_len: u64 LE | crc32: u32 LE     (32 bytes)
//! ```
//!
//! `crc32` is the IEEE CRC of the postings, the offsets and the footer before it. The footer comes last so that a merge
//! can stream postings out before it knows how long they are. Reading checks every length
//! against the file's size; a file that fails is an error, not fewer documents: the index
//! decides which lines a needle reads, so a damaged one would lose lines silently.

use crate::term_layout::SegmentTerms;
use crate::Error;
use std::io::Write;
use tantivy::directory::OwnedBytes;

const MAGIC: &[u8; 4] = b"VLIX";
const VERSION: u8 = 1;
const FOOTER_LEN: usize = 32;

fn damaged(what: &str) -> Error {
    Error::Index(format!("line index file damaged: {what}"))
}

/// One segment's line index, read from its file's bytes (mapped by tantivy's directory).
pub(crate) struct LineIndex {
    terms: SegmentTerms,
    postings: OwnedBytes,
    offsets: OwnedBytes,
    docs: u32,
}

impl std::fmt::Debug for LineIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LineIndex")
            .field("terms", &self.terms)
            .field("postings", &self.postings.len())
            .field("docs", &self.docs)
            .finish()
    }
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

impl LineIndex {
    /// Reads the file in `bytes`; its CRCs are checked when `verify`.
    pub fn parse(bytes: OwnedBytes, verify: bool) -> Result<LineIndex, Error> {
        let len = bytes.len();
        let footer_at = len
            .checked_sub(FOOTER_LEN)
            .ok_or_else(|| damaged("shorter than its footer"))?;
        let footer = &bytes.as_slice()[footer_at..];
        if &footer[..4] != MAGIC || footer[4] != VERSION || footer[5..8] != [0; 3] {
            return Err(damaged("unknown magic or version"));
        }
        let field = |at: usize| u64_at(footer, at).and_then(|v| usize::try_from(v).ok());
        let docs = u32::from_le_bytes([footer[8], footer[9], footer[10], footer[11]]);
        let (Some(layout_len), Some(postings_len)) = (field(12), field(20)) else {
            return Err(damaged("lengths out of range"));
        };
        let crc = u32::from_le_bytes([footer[28], footer[29], footer[30], footer[31]]);
        let postings_at = layout_len;
        let offsets_at = postings_at
            .checked_add(postings_len)
            .filter(|&at| at <= footer_at)
            .ok_or_else(|| damaged("sections longer than the file"))?;
        if verify && crc32fast::hash(&bytes.as_slice()[postings_at..len - 4]) != crc {
            return Err(damaged("postings CRC mismatch"));
        }
        let terms = SegmentTerms::from_segment(bytes.slice(0..layout_len), verify)
            .ok_or_else(|| damaged("term layout"))?;
        if footer_at - offsets_at != 8 * (terms.num_terms() + 1) {
            return Err(damaged("offsets do not match the terms"));
        }
        let offsets = bytes.slice(offsets_at..footer_at);
        if u64_at(offsets.as_slice(), 8 * terms.num_terms()) != Some(postings_len as u64) {
            return Err(damaged("offsets do not end at the postings' end"));
        }
        Ok(LineIndex {
            terms,
            postings: bytes.slice(postings_at..offsets_at),
            offsets,
            docs,
        })
    }

    /// The segment's line terms.
    pub fn terms(&self) -> &SegmentTerms {
        &self.terms
    }

    /// Documents of the segment the index was written for.
    pub fn docs(&self) -> u32 {
        self.docs
    }

    /// The documents holding term `i` (of [`LineIndex::terms`]), ascending. Bytes a sound file
    /// never has (an offset past the end, a varint cut short) end the list early.
    pub fn postings(&self, i: usize) -> Postings<'_> {
        let at = |i: usize| u64_at(self.offsets.as_slice(), 8 * i).and_then(|v| v.try_into().ok());
        let bytes = match (at(i), at(i + 1)) {
            (Some(start), Some(end)) if start <= end => {
                self.postings.as_slice().get(start..end).unwrap_or(&[])
            }
            _ => &[],
        };
        Postings {
            bytes,
            doc: 0,
            first: true,
        }
    }
}

/// A term's documents, decoded as they are read.
pub(crate) struct Postings<'a> {
    bytes: &'a [u8],
    doc: u32,
    first: bool,
}

impl Iterator for Postings<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        let mut value = 0u32;
        let mut shift = 0;
        loop {
            let (&byte, rest) = self.bytes.split_first()?;
            self.bytes = rest;
            value |= u32::from(byte & 0x7f).checked_shl(shift)?;
            if byte & 0x80 == 0 {
                break;
            }
            shift += 7;
        }
        self.doc = if self.first {
            value
        } else {
            self.doc.checked_add(value)?
        };
        self.first = false;
        Some(self.doc)
    }
}

/// Postings bytes [`IndexWriter`] buffers before it writes them.
const FLUSH_BYTES: usize = 64 << 10;

/// Writes a line index file: the layout, then each term's postings in layout order, then
/// [`IndexWriter::finish`].
pub(crate) struct IndexWriter<W: Write> {
    out: W,
    crc: crc32fast::Hasher,
    layout_len: u64,
    postings_len: u64,
    offsets: Vec<u64>,
    terms: usize,
    buf: Vec<u8>,
}

impl<W: Write> IndexWriter<W> {
    /// Starts the file with `layout`, whose terms the postings added next are for.
    pub fn new(mut out: W, layout: &SegmentTerms) -> std::io::Result<Self> {
        let bytes = layout.file_bytes();
        out.write_all(bytes)?;
        Ok(IndexWriter {
            out,
            crc: crc32fast::Hasher::new(),
            layout_len: bytes.len() as u64,
            postings_len: 0,
            offsets: Vec::with_capacity(layout.num_terms() + 1),
            terms: layout.num_terms(),
            buf: Vec::new(),
        })
    }

    /// The postings of the next term: its documents, ascending. They are buffered and
    /// written (and checksummed) [`FLUSH_BYTES`] at a time: most terms' postings are a byte
    /// or two, and a write and a CRC update for each were ~3% of the server's samples through
    /// the push API (`vigil-bench logs`).
    pub fn add(&mut self, docs: impl IntoIterator<Item = u32>) -> std::io::Result<()> {
        self.offsets.push(self.postings_len);
        let before = self.buf.len();
        let mut prev = None;
        for doc in docs {
            let delta = match prev {
                None => doc,
                Some(p) if doc > p => doc - p,
                Some(_) => {
                    self.buf.truncate(before);
                    return Err(std::io::Error::other(
                        "line index postings must be strictly ascending",
                    ));
                }
            };
            put_varint(&mut self.buf, delta);
            prev = Some(doc);
        }
        self.postings_len += (self.buf.len() - before) as u64;
        if self.buf.len() >= FLUSH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.crc.update(&self.buf);
        self.out.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }

    /// Writes the offsets and the footer; fails unless every term got its postings.
    pub fn finish(mut self, docs: u32) -> std::io::Result<W> {
        if self.offsets.len() != self.terms {
            return Err(std::io::Error::other(format!(
                "line index: postings for {} of {} terms",
                self.offsets.len(),
                self.terms
            )));
        }
        self.flush()?;
        self.offsets.push(self.postings_len);
        let mut offsets = Vec::with_capacity(8 * self.offsets.len());
        for o in &self.offsets {
            offsets.extend_from_slice(&o.to_le_bytes());
        }
        self.crc.update(&offsets);
        self.out.write_all(&offsets)?;
        let mut footer = Vec::with_capacity(FOOTER_LEN);
        footer.extend_from_slice(MAGIC);
        footer.extend_from_slice(&[VERSION, 0, 0, 0]);
        footer.extend_from_slice(&docs.to_le_bytes());
        footer.extend_from_slice(&self.layout_len.to_le_bytes());
        footer.extend_from_slice(&self.postings_len.to_le_bytes());
        self.crc.update(&footer);
        footer.extend_from_slice(&self.crc.finalize().to_le_bytes());
        self.out.write_all(&footer)?;
        Ok(self.out)
    }
}

fn put_varint(buf: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::term_layout::tests::layout;

    fn file(terms: &[&str], postings: &[&[u32]], docs: u32) -> Vec<u8> {
        let layout = layout(terms);
        let mut w = IndexWriter::new(Vec::new(), &layout).unwrap();
        for p in postings {
            w.add(p.iter().copied()).unwrap();
        }
        w.finish(docs).unwrap()
    }

    fn read(bytes: &[u8], verify: bool) -> Result<LineIndex, Error> {
        LineIndex::parse(OwnedBytes::new(bytes.to_vec()), verify)
    }

    #[test]
    fn postings_round_trip_in_layout_order() {
        // Layout order: "a", "c", "bb" (by length, then bytes).
        let big = [0, 127, 128, 300, 16_383, 16_384, 2_000_000, u32::MAX];
        let bytes = file(&["a", "bb", "c"], &[&[0, 5], &[], &big], u32::MAX);
        let index = read(&bytes, true).unwrap();
        assert_eq!(index.docs(), u32::MAX);
        assert_eq!(index.terms().term(2), b"bb");
        assert_eq!(index.postings(0).collect::<Vec<_>>(), [0, 5]);
        assert!(index.postings(1).next().is_none());
        assert_eq!(index.postings(2).collect::<Vec<_>>(), big);
        assert!(index.postings(3).next().is_none(), "past the last term");
    }

    #[test]
    fn every_flipped_byte_and_every_cut_is_refused_when_verified() {
        let bytes = file(&["alpha", "beta"], &[&[1, 2, 3], &[7]], 9);
        assert!(read(&bytes, true).is_ok());
        for at in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[at] ^= 0x10;
            assert!(read(&bad, true).is_err(), "byte {at} flipped");
        }
        for len in 0..bytes.len() {
            assert!(read(&bytes[..len], true).is_err(), "cut at {len}");
            // Unverified, a cut still never reads out of bounds.
            if let Ok(index) = read(&bytes[..len], false) {
                for i in 0..3 {
                    index.postings(i).for_each(drop);
                }
            }
        }
    }

    #[test]
    fn the_writer_refuses_unsorted_postings_and_missing_terms() {
        let l = layout(&["x", "y"]);
        let mut w = IndexWriter::new(Vec::new(), &l).unwrap();
        assert!(w.add([3, 3]).is_err());
        let mut w = IndexWriter::new(Vec::new(), &l).unwrap();
        w.add([1]).unwrap();
        assert!(w.finish(2).is_err());
    }
}
