//! The decimal value encoding: values that are integers scaled by a power of ten, stored as
//! delta-of-delta coded integers.
//!
//! Exporters print counters of bytes and packets as integers and CPU seconds with two
//! decimals; parsed back they are `n / 10^k` exactly. XOR coding spends 20–40 bits on such a
//! value because neighbouring mantissas differ in many low bits, while the integers differ by
//! a small, steady amount. A chunk uses this encoding only when every value rebuilds from its
//! integer to the identical bits, so the round trip is exact by construction (`-0.0`, NaN and
//! infinities never qualify).
//!
//! Layout after the common header: one byte `k`, the first timestamp and value (64 bits
//! each, the value as a two's-complement integer), then per sample the timestamp's
//! delta-of-delta and the integer's delta-of-delta in these buckets:
//!
//! | prefix | payload |
//! |---|---|
//! | `0` | none |
//! | `10` | 7-bit signed |
//! | `110` | 13-bit signed |
//! | `1110` | 24-bit signed |
//! | `1111` | 64-bit |

use super::bits::{BitReader, BitWriter};
use super::{
    read_signed_buckets, set_count, start, write_signed_buckets, Encoding, TimeDecoder, TimeEncoder,
};
use crate::error::ChunkError;
use model::Sample;

const VALUE_BUCKETS: [u8; 3] = [7, 13, 24];

/// The powers of ten tried, smallest first so integers stay as small as possible.
const SCALES: [f64; 5] = [1.0, 10.0, 100.0, 1_000.0, 10_000.0];

/// Integers beyond ±2^53 are not all representable as `f64`; such values stay XOR-coded.
const MAX_EXACT: f64 = 9_007_199_254_740_992.0;

/// The integer `n` with `n / scale == v` bit for bit, if there is one in range.
fn as_scaled(v: f64, scale: f64) -> Option<i64> {
    let n = (v * scale).round();
    if n.is_nan() || n.abs() > MAX_EXACT {
        return None;
    }
    let n = n as i64;
    ((n as f64 / scale).to_bits() == v.to_bits()).then_some(n)
}

/// The smallest scale at which every value is an exact scaled integer, with the integers.
fn find_scale(samples: &[Sample]) -> Option<(u8, Vec<i64>)> {
    let mut ints = Vec::with_capacity(samples.len());
    'scales: for (k, &scale) in SCALES.iter().enumerate() {
        ints.clear();
        for s in samples {
            match as_scaled(s.v, scale) {
                Some(n) => ints.push(n),
                None => continue 'scales,
            }
        }
        return Some((k as u8, ints));
    }
    None
}

/// Encodes samples with [`Encoding::Decimal`], or `None` when some value is not an exact
/// scaled integer (or there are no samples).
pub(super) fn encode(samples: &[Sample]) -> Option<Vec<u8>> {
    let first = samples.first()?;
    let count = u16::try_from(samples.len()).ok()?;
    let (k, ints) = find_scale(samples)?;
    let mut w: BitWriter = start(Encoding::Decimal);
    w.write_bits(u64::from(k), 8);
    let mut time = TimeEncoder::default();
    time.first(&mut w, first.t);
    let mut prev = *ints.first()?;
    w.write_bits(prev as u64, 64);
    let mut prev_delta = 0i64;
    for (s, &n) in samples.iter().zip(&ints).skip(1) {
        time.next(&mut w, s.t);
        let delta = n.wrapping_sub(prev);
        write_signed_buckets(&mut w, delta.wrapping_sub(prev_delta), &VALUE_BUCKETS);
        prev = n;
        prev_delta = delta;
    }
    let mut bytes = w.bytes;
    set_count(&mut bytes, count);
    Some(bytes)
}

/// Decodes `count` decimal-coded samples from the bit stream after the header.
pub(super) fn decode(stream: &[u8], count: usize, out: &mut Vec<Sample>) -> Result<(), ChunkError> {
    if count == 0 {
        return Ok(());
    }
    let mut r = BitReader::new(stream);
    let k = r.read_bits(8)? as u8;
    let scale = *SCALES
        .get(usize::from(k))
        .ok_or(ChunkError::Corrupt("decimal scale out of range"))?;
    let mut time = TimeDecoder::default();
    let t = time.first(&mut r)?;
    let mut n = r.read_bits(64)? as i64;
    out.push(Sample {
        t,
        v: n as f64 / scale,
    });
    let mut delta = 0i64;
    for _ in 1..count {
        let t = time.next(&mut r)?;
        delta = delta.wrapping_add(read_signed_buckets(&mut r, &VALUE_BUCKETS)?);
        n = n.wrapping_add(delta);
        out.push(Sample {
            t,
            v: n as f64 / scale,
        });
    }
    Ok(())
}
