//! Compressed chunks: up to [`SAMPLES_PER_CHUNK`] samples of one series in a few bytes.
//!
//! Two encodings share one layout (`FORMAT.md` §Chunks): a byte naming the encoding, a
//! 16-bit sample count, then a bit stream in which timestamps are delta-of-delta coded
//! (Gorilla, as Prometheus does) and values are coded by the encoding:
//!
//! - [`Encoding::Xor`]: each value XORed with the previous one, only the meaningful bits
//!   kept (Gorilla). Exact for every `f64`, NaN payloads and the staleness marker included.
//! - [`Encoding::Decimal`]: when every value is an integer divided by `10^k` (`k` ≤ 4) and
//!   rebuilds to the same bits, the integers are stored delta-of-delta coded. Counters of
//!   bytes and packets (k = 0) and CPU seconds with two decimals (k = 2) shrink several
//!   times compared with XOR; [`encode`] keeps whichever encoding is smaller.
//!
//! The head appends to an open chunk with [`XorAppender`] and re-encodes it with [`encode`]
//! when it is full. Decoding never panics: chunk bytes come from disk.

mod bits;
mod decimal;
mod xor;

pub use xor::XorAppender;

use crate::error::ChunkError;
use bits::{BitReader, BitWriter};
use model::Sample;

/// The number of samples after which the head closes a chunk (Prometheus's
/// `DefaultSamplesPerChunk`): enough for compression to pay off, few enough that a query
/// decodes little beyond its range.
pub const SAMPLES_PER_CHUNK: usize = 120;

/// Bytes before the bit stream: the encoding and the sample count.
const HEADER_BYTES: usize = 3;

/// How a chunk's values are coded; the first byte of every chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Encoding {
    Xor = 1,
    Decimal = 2,
}

impl Encoding {
    fn from_byte(b: u8) -> Result<Encoding, ChunkError> {
        match b {
            1 => Ok(Encoding::Xor),
            2 => Ok(Encoding::Decimal),
            other => Err(ChunkError::UnknownEncoding(other)),
        }
    }
}

/// Encodes samples (ascending timestamps, at most `u16::MAX` of them) in the smaller of the
/// two encodings.
pub fn encode(samples: &[Sample]) -> Vec<u8> {
    let xor = encode_xor(samples);
    match decimal::encode(samples) {
        Some(dec) if dec.len() < xor.len() => dec,
        _ => xor,
    }
}

/// Encodes samples with [`Encoding::Decimal`], or `None` when some value is not an exact
/// scaled integer.
pub fn encode_decimal(samples: &[Sample]) -> Option<Vec<u8>> {
    decimal::encode(samples)
}

/// Encodes samples with [`Encoding::Xor`] only.
pub fn encode_xor(samples: &[Sample]) -> Vec<u8> {
    let mut app = XorAppender::new();
    for s in samples {
        app.append(s.t, s.v);
    }
    app.into_bytes()
}

/// The encoding and sample count of a chunk, from its header.
pub fn header(chunk: &[u8]) -> Result<(Encoding, usize), ChunkError> {
    match chunk {
        [enc, hi, lo, ..] => Ok((
            Encoding::from_byte(*enc)?,
            usize::from(u16::from_be_bytes([*hi, *lo])),
        )),
        _ => Err(ChunkError::Truncated),
    }
}

/// Decodes a chunk, appending its samples to `out`.
pub fn decode_into(chunk: &[u8], out: &mut Vec<Sample>) -> Result<(), ChunkError> {
    let (encoding, count) = header(chunk)?;
    let stream = chunk.get(HEADER_BYTES..).unwrap_or_default();
    out.reserve(count);
    match encoding {
        Encoding::Xor => xor::decode(stream, count, out),
        Encoding::Decimal => decimal::decode(stream, count, out),
    }
}

/// Decodes a chunk into a new vector.
pub fn decode(chunk: &[u8]) -> Result<Vec<Sample>, ChunkError> {
    let mut out = Vec::new();
    decode_into(chunk, &mut out)?;
    Ok(out)
}

/// A bit writer positioned after a header naming `encoding`, with the count left at zero.
fn start(encoding: Encoding) -> BitWriter {
    BitWriter::from_bytes(vec![encoding as u8, 0, 0])
}

/// Stores the sample count in the header of a chunk being written.
fn set_count(bytes: &mut [u8], count: u16) {
    if let Some(slot) = bytes.get_mut(1..HEADER_BYTES) {
        slot.copy_from_slice(&count.to_be_bytes());
    }
}

/// Delta-of-delta timestamp coding, shared by both encodings: the first timestamp in 64
/// bits, then each delta's change from the previous delta (the first delta counts from 0) in
/// the smallest of these buckets. At an exact scrape interval a sample costs the single `0`
/// bit. Real scrapes jitter by a few milliseconds; Prometheus's smallest bucket is 14 bits,
/// which makes jitter cost 16 bits a sample, so the first bucket here is 5 bits (±15 ms) and
/// jitter costs 7 (`benches/chunks.rs` measures it).
///
/// | prefix | payload |
/// |---|---|
/// | `0` | none: same delta |
/// | `10` | 5-bit signed |
/// | `110` | 14-bit signed |
/// | `1110` | 20-bit signed |
/// | `1111` | 64-bit |
const DOD_BUCKETS: [u8; 3] = [5, 14, 20];

#[derive(Clone, Debug, Default)]
struct TimeEncoder {
    prev_t: i64,
    prev_delta: i64,
}

impl TimeEncoder {
    fn first(&mut self, w: &mut BitWriter, t: i64) {
        w.write_bits(t as u64, 64);
        self.prev_t = t;
    }

    fn next(&mut self, w: &mut BitWriter, t: i64) {
        let delta = t.wrapping_sub(self.prev_t);
        let dod = delta.wrapping_sub(self.prev_delta);
        write_signed_buckets(w, dod, &DOD_BUCKETS);
        self.prev_t = t;
        self.prev_delta = delta;
    }
}

#[derive(Clone, Debug, Default)]
struct TimeDecoder {
    prev_t: i64,
    prev_delta: i64,
}

impl TimeDecoder {
    fn first(&mut self, r: &mut BitReader<'_>) -> Result<i64, ChunkError> {
        self.prev_t = r.read_bits(64)? as i64;
        Ok(self.prev_t)
    }

    fn next(&mut self, r: &mut BitReader<'_>) -> Result<i64, ChunkError> {
        let dod = read_signed_buckets(r, &DOD_BUCKETS)?;
        self.prev_delta = self.prev_delta.wrapping_add(dod);
        self.prev_t = self.prev_t.wrapping_add(self.prev_delta);
        Ok(self.prev_t)
    }
}

/// Writes `v` as `0` when zero, else as a prefix of ones naming the first bucket of signed
/// widths it fits (terminated by a zero unless it is the last, 64-bit bucket) and `v` in that
/// many bits.
fn write_signed_buckets(w: &mut BitWriter, v: i64, widths: &[u8]) {
    if v == 0 {
        w.write_bit(false);
        return;
    }
    for (i, &bits) in widths.iter().enumerate() {
        let half = 1i64 << (bits - 1);
        if (-half..half).contains(&v) {
            // `i + 1` ones then a zero.
            w.write_bits((1u64 << (i + 2)) - 2, (i + 2) as u8);
            w.write_bits(v as u64 & ((1u64 << bits) - 1), bits);
            return;
        }
    }
    let ones = (widths.len() + 1) as u8;
    w.write_bits((1u64 << ones) - 1, ones);
    w.write_bits(v as u64, 64);
}

fn read_signed_buckets(r: &mut BitReader<'_>, widths: &[u8]) -> Result<i64, ChunkError> {
    let ones = r.read_prefix((widths.len() + 1) as u8)?;
    let Some(i) = usize::from(ones).checked_sub(1) else {
        return Ok(0);
    };
    match widths.get(i) {
        Some(&bits) => {
            let raw = r.read_bits(bits)?;
            // Sign-extend from `bits` bits.
            let shift = 64 - u32::from(bits);
            Ok(((raw << shift) as i64) >> shift)
        }
        None => Ok(r.read_bits(64)? as i64),
    }
}

impl From<bits::EndOfStream> for ChunkError {
    fn from(_: bits::EndOfStream) -> Self {
        ChunkError::Truncated
    }
}

#[cfg(test)]
mod tests;
