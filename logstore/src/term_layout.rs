//! One segment's `line` terms laid out for needle searches ([`SegmentTerms`]), and the side
//! file that keeps the layout beside the segment so it is built once, not at every open.
//!
//! The layout is `\0term\0term\0…\0`, ordered by term length, then by ordinal (so each
//! length's terms are in byte order), with where each term starts and where each length
//! begins. `line_terms.rs` says how needles search it.
//!
//! # FORMAT (version 1), `<partition>/terms/<segment id>.vlt`
//!
//! ```text
//! magic "VLTX" | version: u8 (1) | 3 zero bytes
//! terms: u32 LE | lens: u32 LE | text_len: u64 LE | crc32: u32 LE | 4 zero bytes
//! by_len: lens × u32 LE    the index of the first term of n bytes or more, n = 0..lens
//! starts: terms × u32 LE   where each term starts in text
//! text: text_len bytes     \0, then each term followed by \0
//! ```
//!
//! `crc32` is the IEEE CRC of every byte after the 32-byte header. The same bytes are the
//! in-memory layout, so a file is used through a read-only map as it is. A file that is short,
//! of another version, or fails its CRC is not used (and is written again): the layout decides
//! which lines a needle reads, so a damaged one would lose lines, not just time.

use crate::Error;
use std::path::Path;
use tantivy::schema::Field;
use tantivy::SegmentReader;

/// Separates terms in the text.
pub(crate) const SEP: u8 = 0;
const MAGIC: &[u8; 4] = b"VLTX";
const VERSION: u8 = 1;
const HEADER_LEN: usize = 32;
/// How a layout being written ends its name until it is renamed into place.
pub(crate) const TMP_SUFFIX: &str = ".tmp";

/// Where a layout's bytes live.
enum Backing {
    Heap(Vec<u8>),
    Mapped(memmap2::Mmap),
    /// A section of a segment file, as tantivy's directory hands it out (mapped).
    Segment(tantivy::directory::OwnedBytes),
}

impl std::ops::Deref for Backing {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Backing::Heap(v) => v,
            Backing::Mapped(m) => m,
            Backing::Segment(b) => b.as_slice(),
        }
    }
}

/// The `line` terms of one segment as one searchable text, in the file format's bytes.
pub(crate) struct SegmentTerms {
    bytes: Backing,
    terms: usize,
    lens: usize,
    /// Offsets in `bytes` of `starts` and of the text.
    starts_at: usize,
    text_at: usize,
}

impl std::fmt::Debug for SegmentTerms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentTerms")
            .field("terms", &self.terms)
            .field("bytes", &self.bytes.len())
            .field("mapped", &self.is_mapped())
            .finish()
    }
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

impl SegmentTerms {
    /// Reads every term of `field` in `segment` and lays them out.
    pub fn read(segment: &SegmentReader, field: Field) -> Result<SegmentTerms, Error> {
        let inverted = segment.inverted_index(field)?;
        let dict = inverted.terms();
        // In ordinal order first: the terms' bytes back to back and where each ends.
        let mut all = Vec::new();
        let mut ends = Vec::with_capacity(dict.num_terms());
        let mut stream = dict.stream()?;
        while stream.advance() {
            all.extend_from_slice(stream.key());
            ends.push(all.len());
        }
        SegmentTerms::from_sorted(&all, &ends)
    }

    /// Lays out the terms `all[ends[i - 1]..ends[i]]`, given in ordinal (byte) order.
    pub fn from_sorted(all: &[u8], ends: &[usize]) -> Result<Self, Error> {
        let too_big = || Error::Index("a segment's line terms exceed 4 GiB".into());
        let span = |i: usize| (if i == 0 { 0 } else { ends[i - 1] })..ends[i];
        // Counting sort by length keeps each length's terms in ordinal order.
        let mut count: Vec<u32> = Vec::new();
        for i in 0..ends.len() {
            let len = span(i).len();
            if count.len() <= len {
                count.resize(len + 1, 0);
            }
            count[len] += 1;
        }
        let mut by_len = Vec::with_capacity(count.len() + 1);
        let mut first = 0u32;
        for c in &count {
            by_len.push(first);
            first += c;
        }
        by_len.push(first);
        let mut next = by_len.clone();
        let mut order = vec![0usize; ends.len()];
        for i in 0..ends.len() {
            let slot = &mut next[span(i).len()];
            order[*slot as usize] = i;
            *slot += 1;
        }
        let text_len = all.len() + ends.len() + 1;
        u32::try_from(text_len).map_err(|_| too_big())?;
        let starts_at = HEADER_LEN + 4 * by_len.len();
        let text_at = starts_at + 4 * ends.len();
        let mut out = Vec::with_capacity(text_at + text_len);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&[VERSION, 0, 0, 0]);
        out.extend_from_slice(
            &u32::try_from(ends.len())
                .map_err(|_| too_big())?
                .to_le_bytes(),
        );
        out.extend_from_slice(
            &u32::try_from(by_len.len())
                .map_err(|_| too_big())?
                .to_le_bytes(),
        );
        out.extend_from_slice(&(text_len as u64).to_le_bytes());
        out.extend_from_slice(&[0; 8]); // the CRC, once the rest is written, and padding
        for n in &by_len {
            out.extend_from_slice(&n.to_le_bytes());
        }
        // A term starts one byte past the separator before it.
        let mut start = 1u32;
        for &i in &order {
            out.extend_from_slice(&start.to_le_bytes());
            start += span(i).len() as u32 + 1;
        }
        out.push(SEP);
        for &i in &order {
            out.extend_from_slice(&all[span(i)]);
            out.push(SEP);
        }
        let crc = crc32fast::hash(&out[HEADER_LEN..]);
        out[24..28].copy_from_slice(&crc.to_le_bytes());
        SegmentTerms::parse(Backing::Heap(out), true)
            .ok_or_else(|| Error::Index("line term layout does not read back".into()))
    }

    /// The layout in `bytes`, a section of a segment's line index file (`line_index/`); the
    /// CRC is checked when `verify` (the caller checks each segment's file once).
    pub fn from_segment(bytes: tantivy::directory::OwnedBytes, verify: bool) -> Option<Self> {
        SegmentTerms::parse(Backing::Segment(bytes), verify)
    }

    /// The layout in `bytes`, if they are one: header and lengths checked, and the CRC when
    /// `verify`.
    fn parse(bytes: Backing, verify: bool) -> Option<SegmentTerms> {
        if bytes.get(..4)? != MAGIC
            || *bytes.get(4)? != VERSION
            || bytes.get(5..8)? != [0; 3]
            || bytes.get(28..32)? != [0; 4]
        {
            return None;
        }
        let terms = usize::try_from(u32_at(&bytes, 8)?).ok()?;
        let lens = usize::try_from(u32_at(&bytes, 12)?).ok()?;
        let text_len = u64::from_le_bytes(bytes.get(16..24)?.try_into().ok()?);
        let starts_at = HEADER_LEN.checked_add(lens.checked_mul(4)?)?;
        let text_at = starts_at.checked_add(terms.checked_mul(4)?)?;
        let end = text_at.checked_add(usize::try_from(text_len).ok()?)?;
        if bytes.len() != end || text_len == 0 || lens == 0 {
            return None;
        }
        if verify && crc32fast::hash(&bytes[HEADER_LEN..]) != u32_at(&bytes, 24)? {
            return None;
        }
        let t = SegmentTerms {
            bytes,
            terms,
            lens,
            starts_at,
            text_at,
        };
        // The last `by_len` entry counts every term.
        (t.by_len(lens - 1) == Some(terms)).then_some(t)
    }

    /// Maps the layout file at `path`; `None` when there is none or it is not a sound one.
    pub fn load(path: &Path) -> Option<SegmentTerms> {
        let file = std::fs::File::open(path).ok()?;
        // SAFETY: the file is only ever written whole under another name and renamed into
        // place, never modified, so the mapped bytes do not change under the map (a file
        // deleted by the partition's clean-up stays mapped until dropped).
        #[allow(unsafe_code)]
        let map = unsafe { memmap2::Mmap::map(&file) }.ok()?;
        let parsed = SegmentTerms::parse(Backing::Mapped(map), true);
        if parsed.is_none() {
            tracing::warn!(path = %path.display(), "line term layout file damaged, building it again");
        }
        parsed
    }

    /// Writes the layout to `path` (through a temporary file and a rename, so the name only
    /// ever holds a whole file) and maps it, leaving the heap; the layout stays on the heap
    /// when the file cannot be written or mapped.
    pub fn persist(self, path: &Path) -> Result<SegmentTerms, (SegmentTerms, std::io::Error)> {
        // A name of its own: two queries may lay out the same new segment at once.
        static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = path.with_extension(format!("vlt.{}-{n}{TMP_SUFFIX}", std::process::id()));
        let written = (|| {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(&tmp, &*self.bytes)?;
            std::fs::rename(&tmp, path)
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err((self, e));
        }
        match SegmentTerms::load(path) {
            Some(mapped) => Ok(mapped),
            None => Err((
                self,
                std::io::Error::other("the written layout file does not read back"),
            )),
        }
    }

    pub fn is_mapped(&self) -> bool {
        matches!(self.bytes, Backing::Mapped(_))
    }

    /// Heap memory held, for the cache's budget (a mapped layout is the kernel's to page).
    pub fn heap_bytes(&self) -> usize {
        match &self.bytes {
            Backing::Heap(v) => v.len(),
            Backing::Mapped(_) | Backing::Segment(_) => 0,
        }
    }

    /// The layout's bytes, as a file holds them.
    pub fn file_bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn num_terms(&self) -> usize {
        self.terms
    }

    /// `\0`, then every term followed by `\0`.
    pub fn text(&self) -> &[u8] {
        &self.bytes[self.text_at..]
    }

    /// Where term `i` starts in the text.
    pub fn start(&self, i: usize) -> Option<usize> {
        if i >= self.terms {
            return None;
        }
        u32_at(&self.bytes, self.starts_at + 4 * i).map(|s| s as usize)
    }

    fn by_len(&self, n: usize) -> Option<usize> {
        if n >= self.lens {
            return None;
        }
        u32_at(&self.bytes, HEADER_LEN + 4 * n).map(|i| i as usize)
    }

    /// The index of the first term of `len` bytes or more.
    pub fn first_of_len(&self, len: usize) -> usize {
        self.by_len(len).unwrap_or(self.terms).min(self.terms)
    }

    /// Term `i` (empty past the end: the CRC vouches for the offsets, this only keeps a bad
    /// index from panicking).
    pub fn term(&self, i: usize) -> &[u8] {
        let text = self.text();
        let Some(start) = self.start(i) else {
            return &[];
        };
        let end = self
            .start(i + 1)
            .map_or(text.len().saturating_sub(1), |next| next.saturating_sub(1));
        text.get(start..end).unwrap_or(&[])
    }

    /// The index of the term holding text offset `at`: the last one starting at or before it.
    pub fn term_at(&self, at: usize) -> Option<usize> {
        let (mut lo, mut hi) = (0, self.terms);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.start(mid).is_some_and(|s| s <= at) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo.checked_sub(1)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn layout(list: &[&str]) -> SegmentTerms {
        let mut all = Vec::new();
        let mut ends = Vec::new();
        for t in list {
            all.extend_from_slice(t.as_bytes());
            ends.push(all.len());
        }
        SegmentTerms::from_sorted(&all, &ends).unwrap()
    }

    fn all_terms(t: &SegmentTerms) -> Vec<String> {
        (0..t.num_terms())
            .map(|i| String::from_utf8(t.term(i).to_vec()).unwrap())
            .collect()
    }

    #[test]
    fn terms_are_ordered_by_length_then_bytes() {
        let t = layout(&["a", "ba", "bb", "c", "xyz"]);
        assert_eq!(all_terms(&t), ["a", "c", "ba", "bb", "xyz"]);
        assert_eq!(t.first_of_len(2), 2);
        assert_eq!(t.first_of_len(3), 4);
        assert_eq!(t.first_of_len(4), 5);
        assert_eq!(t.first_of_len(99), 5);
        assert_eq!(t.term_at(t.start(3).unwrap() + 1), Some(3));
        let empty = layout(&[]);
        assert_eq!(empty.num_terms(), 0);
        assert_eq!(empty.text(), [SEP]);
        assert_eq!(empty.term_at(0), None);
    }

    #[test]
    fn a_persisted_layout_maps_back_equal_and_a_damaged_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("terms").join("seg.vlt");
        let t = layout(&["alpha", "beta", "gamma"]);
        let want = t.file_bytes().to_vec();
        let mapped = t.persist(&path).unwrap();
        assert!(mapped.is_mapped());
        assert_eq!(mapped.heap_bytes(), 0);
        assert_eq!(mapped.file_bytes(), want);
        assert_eq!(all_terms(&mapped), ["beta", "alpha", "gamma"]);
        drop(mapped);
        assert!(SegmentTerms::load(&path).is_some());
        for at in 0..want.len() {
            let mut bad = want.clone();
            bad[at] ^= 0x10;
            std::fs::write(&path, &bad).unwrap();
            assert!(SegmentTerms::load(&path).is_none(), "byte {at} flipped");
        }
        for len in 0..want.len() {
            std::fs::write(&path, &want[..len]).unwrap();
            assert!(SegmentTerms::load(&path).is_none(), "cut at {len}");
        }
        assert!(SegmentTerms::load(&dir.path().join("missing.vlt")).is_none());
    }
}
