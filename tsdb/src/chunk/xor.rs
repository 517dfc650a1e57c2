//! The XOR value encoding (Gorilla, Prometheus's `XORChunk`), and the appender the head
//! writes its open chunks with.
//!
//! Each value is XORed with the previous one. Equal values cost one `0` bit. Otherwise a `1`
//! is followed either by `0` and the meaningful bits inside the previous window of leading
//! and trailing zeros, when the XOR fits in it, or by `1`, a new window (5 bits of leading
//! zeros, capped at 31, and 6 bits of length, 64 written as 0) and the bits inside it.

use super::bits::{BitReader, BitWriter};
use super::{set_count, start, Encoding, TimeDecoder, TimeEncoder};
use crate::error::ChunkError;
use model::Sample;

/// An open XOR chunk that samples are appended to one by one; its bytes are a valid chunk
/// after every append.
#[derive(Clone, Debug)]
pub struct XorAppender {
    w: BitWriter,
    count: u16,
    time: TimeEncoder,
    prev_bits: u64,
    /// The current window; `leading == u8::MAX` until the first window is written.
    leading: u8,
    trailing: u8,
}

impl Default for XorAppender {
    fn default() -> Self {
        XorAppender::new()
    }
}

impl XorAppender {
    pub fn new() -> XorAppender {
        XorAppender {
            w: start(Encoding::Xor),
            count: 0,
            time: TimeEncoder::default(),
            prev_bits: 0,
            leading: u8::MAX,
            trailing: 0,
        }
    }

    /// Appends a sample. The caller keeps timestamps ascending and the count below
    /// `u16::MAX`; the head closes chunks long before.
    pub fn append(&mut self, t: i64, v: f64) {
        let bits = v.to_bits();
        if self.count == 0 {
            self.time.first(&mut self.w, t);
            self.w.write_bits(bits, 64);
        } else {
            self.time.next(&mut self.w, t);
            self.write_value(bits);
        }
        self.prev_bits = bits;
        self.count = self.count.saturating_add(1);
        set_count(&mut self.w.bytes, self.count);
    }

    fn write_value(&mut self, bits: u64) {
        let xor = bits ^ self.prev_bits;
        if xor == 0 {
            self.w.write_bit(false);
            return;
        }
        self.w.write_bit(true);
        let leading = (xor.leading_zeros() as u8).min(31);
        let trailing = xor.trailing_zeros() as u8;
        if self.leading != u8::MAX && leading >= self.leading && trailing >= self.trailing {
            self.w.write_bit(false);
            let sig = 64 - self.leading - self.trailing;
            self.w.write_bits(xor >> self.trailing, sig);
            return;
        }
        self.leading = leading;
        self.trailing = trailing;
        let sig = 64 - leading - trailing;
        self.w.write_bit(true);
        self.w.write_bits(u64::from(leading), 5);
        // 64 does not fit in 6 bits; a window is never empty, so 0 stands for it.
        self.w.write_bits(u64::from(sig & 63), 6);
        self.w.write_bits(xor >> trailing, sig);
    }

    /// Samples appended.
    pub fn len(&self) -> usize {
        usize::from(self.count)
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The chunk as it stands.
    pub fn bytes(&self) -> &[u8] {
        &self.w.bytes
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.w.bytes
    }
}

/// Decodes `count` XOR-coded samples from the bit stream after the header.
pub(super) fn decode(stream: &[u8], count: usize, out: &mut Vec<Sample>) -> Result<(), ChunkError> {
    if count == 0 {
        return Ok(());
    }
    let mut r = BitReader::new(stream);
    let mut time = TimeDecoder::default();
    let t = time.first(&mut r)?;
    let mut bits = r.read_bits(64)?;
    out.push(Sample {
        t,
        v: f64::from_bits(bits),
    });
    let (mut leading, mut trailing) = (0u8, 0u8);
    for _ in 1..count {
        let t = time.next(&mut r)?;
        if r.read_bit()? {
            if r.read_bit()? {
                leading = r.read_bits(5)? as u8;
                let sig = match r.read_bits(6)? as u8 {
                    0 => 64,
                    n => n,
                };
                trailing = 64u8
                    .checked_sub(leading + sig)
                    .ok_or(ChunkError::Corrupt("XOR window wider than 64 bits"))?;
            }
            let sig = 64 - leading - trailing;
            bits ^= r.read_bits(sig)? << trailing;
        }
        out.push(Sample {
            t,
            v: f64::from_bits(bits),
        });
    }
    Ok(())
}
