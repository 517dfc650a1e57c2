//! A block's `index` file: the symbol table, one entry per series (labels as symbol
//! numbers, chunk references with their time bounds) and the postings lists, each section
//! behind its length and CRC (`FORMAT.md` §Blocks).
//!
//! Series are numbered by their position in label order, so a postings list of ascending
//! numbers is also a list in label order and a selection comes out sorted for free.

use super::chunks::{ChunkReader, ChunkRef};
use super::meta::BLOCK_VERSION;
use crate::error::Error;
use crate::index::MemPostings;
use crate::mmap::Mmap;
use crate::postings::SeriesRef;
use crate::varint::{get_uvarint, put_uvarint, unzigzag, zigzag};
use model::Labels;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

const MAGIC: [u8; 4] = *b"VIDX";
const HEADER_LEN: usize = 8;

/// A chunk as the index lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ChunkMeta {
    pub(crate) min_t: i64,
    pub(crate) max_t: i64,
    pub(crate) reference: ChunkRef,
}

/// Writes the index of `series`, which must be sorted by labels with no repeats.
pub(crate) fn write(path: &Path, series: &[(Labels, Vec<ChunkMeta>)]) -> Result<(), Error> {
    let mut symbols = BTreeSet::new();
    for (labels, _) in series {
        for l in labels {
            symbols.insert(l.name.as_str());
            symbols.insert(l.value.as_str());
        }
    }
    let numbers: HashMap<&str, u64> = symbols
        .iter()
        .enumerate()
        .map(|(i, s)| (*s, i as u64))
        .collect();
    let mut out = Vec::new();
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&BLOCK_VERSION.to_le_bytes());

    let mut body = Vec::new();
    put_uvarint(&mut body, symbols.len() as u64);
    for s in &symbols {
        put_uvarint(&mut body, s.len() as u64);
        body.extend_from_slice(s.as_bytes());
    }
    section(&mut out, &body);

    body.clear();
    let mut postings: BTreeMap<(&str, &str), Vec<SeriesRef>> = BTreeMap::new();
    put_uvarint(&mut body, series.len() as u64);
    let mut entry = Vec::new();
    for (id, (labels, chunks)) in series.iter().enumerate() {
        entry.clear();
        put_uvarint(&mut entry, labels.len() as u64);
        for l in labels {
            put_uvarint(&mut entry, numbers[l.name.as_str()]);
            put_uvarint(&mut entry, numbers[l.value.as_str()]);
            postings
                .entry((l.name.as_str(), l.value.as_str()))
                .or_default()
                .push(id as SeriesRef);
        }
        put_uvarint(&mut entry, chunks.len() as u64);
        let mut prev_max = 0i64;
        for (i, c) in chunks.iter().enumerate() {
            let from = if i == 0 { 0 } else { prev_max };
            put_uvarint(&mut entry, zigzag(c.min_t.wrapping_sub(from)));
            put_uvarint(&mut entry, zigzag(c.max_t.wrapping_sub(c.min_t)));
            put_uvarint(&mut entry, c.reference);
            prev_max = c.max_t;
        }
        put_uvarint(&mut body, entry.len() as u64);
        body.extend_from_slice(&entry);
    }
    section(&mut out, &body);

    body.clear();
    put_uvarint(&mut body, postings.len() as u64);
    for ((name, value), ids) in &postings {
        put_uvarint(&mut body, numbers[name]);
        put_uvarint(&mut body, numbers[value]);
        put_uvarint(&mut body, ids.len() as u64);
        let mut prev = 0;
        for &id in ids {
            put_uvarint(&mut body, u64::from(id - prev));
            prev = id;
        }
    }
    section(&mut out, &body);

    std::fs::write(path, &out).map_err(Error::io("write", path))?;
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(Error::io("sync", path))
}

fn section(out: &mut Vec<u8>, body: &[u8]) {
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(body);
    out.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
}

/// A block's index, mapped; symbols and postings decoded at open, series entries read from
/// the map when a query needs them.
#[derive(Debug)]
pub(crate) struct IndexReader {
    path: PathBuf,
    map: Mmap,
    symbols: Vec<String>,
    /// Offset in `map` of each series' entry, by series number.
    series: Vec<usize>,
    pub(crate) postings: MemPostings,
}

/// Decoding state over a byte slice, turning every shortfall into a corruption error.
struct Cursor<'a> {
    buf: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn uvarint(&mut self) -> Result<u64, String> {
        get_uvarint(&mut self.buf).ok_or_else(|| "truncated varint".to_string())
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], String> {
        if n > self.buf.len() {
            return Err(format!("{n} bytes wanted, {} left", self.buf.len()));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }
}

impl IndexReader {
    /// Maps and checks the index: header, version, every section's CRC, every symbol
    /// number and postings entry in range, and every chunk reference inside `chunks`.
    pub(crate) fn open(path: &Path, chunks: &ChunkReader) -> Result<IndexReader, Error> {
        let map = Mmap::open(path).map_err(Error::io("map", path))?;
        let corrupt = |reason: String| Error::CorruptBlock {
            path: path.to_path_buf(),
            reason,
        };
        let bytes = map.bytes();
        let header = bytes
            .get(..HEADER_LEN)
            .ok_or_else(|| corrupt("shorter than its header".to_string()))?;
        if header[..4] != MAGIC {
            return Err(corrupt("bad magic bytes".to_string()));
        }
        let version = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if version != BLOCK_VERSION {
            return Err(Error::UnsupportedVersion {
                path: path.to_path_buf(),
                found: version,
                supported: BLOCK_VERSION,
            });
        }
        let mut offset = HEADER_LEN;
        let mut sections = [(0usize, 0usize); 3];
        for (i, name) in ["symbols", "series", "postings"].iter().enumerate() {
            let (start, len) = read_section(bytes, offset)
                .map_err(|reason| corrupt(format!("{name} section: {reason}")))?;
            sections[i] = (start, len);
            offset = start + len + 4;
        }
        if offset != bytes.len() {
            return Err(corrupt(format!(
                "{} bytes after the last section",
                bytes.len() - offset
            )));
        }
        let range = |i: usize| sections[i].0..sections[i].0 + sections[i].1;
        let symbols = decode_symbols(&bytes[range(0)])
            .map_err(|r| corrupt(format!("symbols section: {r}")))?;
        let mut reader = IndexReader {
            path: path.to_path_buf(),
            map,
            symbols,
            series: Vec::new(),
            postings: MemPostings::default(),
        };
        let series = reader
            .check_series(range(1), chunks)
            .map_err(|r| corrupt(format!("series section: {r}")))?;
        reader.series = series;
        let postings = reader
            .decode_postings(&reader.map.bytes()[range(2)])
            .map_err(|r| corrupt(format!("postings section: {r}")))?;
        reader.postings = postings;
        Ok(reader)
    }

    fn check_series(
        &self,
        range: std::ops::Range<usize>,
        chunks: &ChunkReader,
    ) -> Result<Vec<usize>, String> {
        let base = range.start;
        let body = &self.map.bytes()[range];
        let mut c = Cursor { buf: body };
        let count = c.uvarint()? as usize;
        let mut offsets = Vec::with_capacity(count.min(body.len()));
        let mut prev: Option<Labels> = None;
        for _ in 0..count {
            let at = base + (body.len() - c.buf.len());
            let len = c.uvarint()? as usize;
            let entry = c.bytes(len)?;
            let (labels, metas) = self.decode_entry(entry)?;
            if prev.as_ref().is_some_and(|p| p >= &labels) {
                return Err(format!("series {labels} out of order"));
            }
            if let Some(bad) = metas.iter().find(|m| !chunks.in_range(m.reference)) {
                return Err(format!(
                    "series {labels}: chunk reference {:#x} out of range",
                    bad.reference
                ));
            }
            prev = Some(labels);
            offsets.push(at);
        }
        if !c.buf.is_empty() {
            return Err("bytes after the last series".to_string());
        }
        Ok(offsets)
    }

    fn decode_postings(&self, body: &[u8]) -> Result<MemPostings, String> {
        let mut c = Cursor { buf: body };
        let pairs = c.uvarint()?;
        let n = self.series.len() as u64;
        let mut lists: BTreeMap<String, BTreeMap<String, Vec<SeriesRef>>> = BTreeMap::new();
        for _ in 0..pairs {
            let name = self.symbol(c.uvarint()?)?;
            let value = self.symbol(c.uvarint()?)?;
            let len = c.uvarint()?;
            if len > n {
                return Err(format!("list of {name}={value} longer than the series"));
            }
            let mut ids = Vec::with_capacity(len as usize);
            let mut id = 0u64;
            for i in 0..len {
                let delta = c.uvarint()?;
                if i > 0 && delta == 0 {
                    return Err(format!("list of {name}={value} repeats an id"));
                }
                id = id.saturating_add(delta);
                if id >= n {
                    return Err(format!("list of {name}={value} names series {id} of {n}"));
                }
                ids.push(id as SeriesRef);
            }
            lists
                .entry(name.to_string())
                .or_default()
                .insert(value.to_string(), ids);
        }
        if !c.buf.is_empty() {
            return Err("bytes after the last list".to_string());
        }
        Ok(MemPostings::from_lists(
            (0..n as SeriesRef).collect(),
            lists,
        ))
    }

    fn symbol(&self, n: u64) -> Result<&str, String> {
        self.symbols
            .get(n as usize)
            .map(String::as_str)
            .ok_or_else(|| format!("symbol {n} of {}", self.symbols.len()))
    }

    fn decode_entry(&self, entry: &[u8]) -> Result<(Labels, Vec<ChunkMeta>), String> {
        let mut c = Cursor { buf: entry };
        let n = c.uvarint()?;
        let mut pairs = Vec::with_capacity(n.min(64) as usize);
        for _ in 0..n {
            let name = self.symbol(c.uvarint()?)?;
            let value = self.symbol(c.uvarint()?)?;
            pairs.push((name, value));
        }
        let labels = Labels::from_pairs(pairs);
        if labels.len() as u64 != n {
            return Err(format!("series {labels} has repeated or empty labels"));
        }
        let n = c.uvarint()?;
        let mut metas = Vec::with_capacity(n.min(1024) as usize);
        let mut prev_max = 0i64;
        for i in 0..n {
            let from = if i == 0 { 0 } else { prev_max };
            let min_t = from.wrapping_add(unzigzag(c.uvarint()?));
            let max_t = min_t.wrapping_add(unzigzag(c.uvarint()?));
            let reference = c.uvarint()?;
            if max_t < min_t || (i > 0 && min_t <= prev_max) {
                return Err(format!("series {labels}: chunk bounds out of order"));
            }
            metas.push(ChunkMeta {
                min_t,
                max_t,
                reference,
            });
            prev_max = max_t;
        }
        if !c.buf.is_empty() {
            return Err(format!("series {labels}: bytes after its chunks"));
        }
        Ok((labels, metas))
    }

    /// Number of series.
    pub(crate) fn len(&self) -> usize {
        self.series.len()
    }

    /// The labels and chunks of series `id`.
    pub(crate) fn series(&self, id: SeriesRef) -> Result<(Labels, Vec<ChunkMeta>), Error> {
        let corrupt = |reason: String| Error::CorruptBlock {
            path: self.path.clone(),
            reason,
        };
        let at = *self
            .series
            .get(id as usize)
            .ok_or_else(|| corrupt(format!("no series {id}")))?;
        let mut c = Cursor {
            buf: self.map.bytes().get(at..).unwrap_or_default(),
        };
        c.uvarint()
            .and_then(|len| c.bytes(len as usize))
            .and_then(|entry| self.decode_entry(entry))
            .map_err(corrupt)
    }

    pub(crate) fn size(&self) -> u64 {
        self.map.bytes().len() as u64
    }
}

/// The `(start, len)` of the body of the section at `offset`, its CRC checked.
fn read_section(bytes: &[u8], offset: usize) -> Result<(usize, usize), String> {
    let len_bytes = bytes
        .get(offset..offset + 8)
        .ok_or("missing (file truncated)")?;
    let len = u64::from_le_bytes(len_bytes.try_into().map_err(|_| "torn length")?);
    let start = offset + 8;
    let len = usize::try_from(len).map_err(|_| "impossible length")?;
    let end = start.checked_add(len).ok_or("impossible length")?;
    let body = bytes.get(start..end).ok_or("truncated")?;
    let crc = bytes.get(end..end + 4).ok_or("truncated checksum")?;
    if crc32fast::hash(body).to_le_bytes() != crc {
        return Err("checksum mismatch".to_string());
    }
    Ok((start, len))
}

fn decode_symbols(body: &[u8]) -> Result<Vec<String>, String> {
    let mut c = Cursor { buf: body };
    let n = c.uvarint()? as usize;
    let mut out: Vec<String> = Vec::with_capacity(n.min(body.len()));
    for _ in 0..n {
        let len = c.uvarint()? as usize;
        let s = std::str::from_utf8(c.bytes(len)?).map_err(|_| "symbol is not UTF-8")?;
        if out.last().is_some_and(|p| p.as_str() >= s) {
            return Err(format!("symbol {s:?} out of order"));
        }
        out.push(s.to_string());
    }
    if !c.buf.is_empty() {
        return Err("bytes after the last symbol".to_string());
    }
    Ok(out)
}
