//! Bit-level writing and reading, the substrate of the chunk encodings.
//!
//! Bits are packed most-significant first, so a stream reads in the order it was written and
//! a chunk's bytes compare the same on every platform.

/// Appends bits to a byte vector. The last byte may be partly filled; `bits_free` says how
/// many of its low bits are still unused.
#[derive(Clone, Debug, Default)]
pub(crate) struct BitWriter {
    pub(crate) bytes: Vec<u8>,
    /// Unused low bits in the last byte, 0 when it is full (or there is none).
    bits_free: u8,
}

impl BitWriter {
    pub(crate) fn from_bytes(bytes: Vec<u8>) -> BitWriter {
        BitWriter {
            bytes,
            bits_free: 0,
        }
    }

    pub(crate) fn write_bit(&mut self, bit: bool) {
        self.write_bits(u64::from(bit), 1);
    }

    /// Writes the low `n` bits of `value` (`n` ≤ 64), most significant first.
    pub(crate) fn write_bits(&mut self, value: u64, mut n: u8) {
        debug_assert!(n <= 64);
        while n > 0 {
            if self.bits_free == 0 {
                self.bytes.push(0);
                self.bits_free = 8;
            }
            let take = n.min(self.bits_free);
            // The `take` bits just below bit `n` of value.
            let chunk = (value >> (n - take)) & ((1u64 << take) - 1);
            if let Some(last) = self.bytes.last_mut() {
                *last |= (chunk as u8) << (self.bits_free - take);
            }
            self.bits_free -= take;
            n -= take;
        }
    }

    /// Bits written so far.
    #[cfg(test)]
    pub(crate) fn len_bits(&self) -> usize {
        self.bytes.len() * 8 - usize::from(self.bits_free)
    }
}

/// Reads bits written by [`BitWriter`]. Reading past the end is an error, never a panic,
/// because chunk bytes come from disk.
#[derive(Clone, Debug)]
pub(crate) struct BitReader<'a> {
    bytes: &'a [u8],
    /// Position in bits from the start of `bytes`.
    pos: usize,
}

/// The stream ended before the value being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EndOfStream;

impl<'a> BitReader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> BitReader<'a> {
        BitReader { bytes, pos: 0 }
    }

    pub(crate) fn read_bit(&mut self) -> Result<bool, EndOfStream> {
        let byte = *self.bytes.get(self.pos / 8).ok_or(EndOfStream)?;
        let bit = (byte >> (7 - (self.pos % 8))) & 1;
        self.pos += 1;
        Ok(bit == 1)
    }

    /// Reads `n` bits (`n` ≤ 64) as the low bits of the result.
    pub(crate) fn read_bits(&mut self, mut n: u8) -> Result<u64, EndOfStream> {
        debug_assert!(n <= 64);
        if self.pos + usize::from(n) > self.bytes.len() * 8 {
            return Err(EndOfStream);
        }
        let mut out: u64 = 0;
        while n > 0 {
            let byte = *self.bytes.get(self.pos / 8).ok_or(EndOfStream)?;
            let offset = (self.pos % 8) as u8;
            let avail = 8 - offset;
            let take = n.min(avail);
            let chunk = (byte >> (avail - take)) & (((1u16 << take) - 1) as u8);
            out = (out << take) | u64::from(chunk);
            self.pos += usize::from(take);
            n -= take;
        }
        Ok(out)
    }

    /// Counts leading one bits up to `max`, consuming them and the terminating zero (absent
    /// when `max` ones were read): the prefix codes of the chunk encodings.
    pub(crate) fn read_prefix(&mut self, max: u8) -> Result<u8, EndOfStream> {
        let mut ones = 0;
        while ones < max && self.read_bit()? {
            ones += 1;
        }
        Ok(ones)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_round_trip_across_byte_boundaries() {
        let mut w = BitWriter::default();
        let items: &[(u64, u8)] = &[
            (1, 1),
            (0b101, 3),
            (u64::MAX, 64),
            (0, 7),
            (0x1234_5678, 32),
            (1, 64),
            (0b10, 2),
        ];
        for &(v, n) in items {
            w.write_bits(v, n);
        }
        assert_eq!(w.len_bits(), 173);
        let mut r = BitReader::new(&w.bytes);
        for &(v, n) in items {
            assert_eq!(r.read_bits(n).unwrap(), v, "{n} bits");
        }
        // Three padding bits remain, then the stream ends.
        assert_eq!(r.read_bits(3), Ok(0));
        assert_eq!(r.read_bit(), Err(EndOfStream));
    }

    #[test]
    fn prefixes_stop_at_the_data_end() {
        assert_eq!(BitReader::new(&[0xFF]).read_prefix(8), Ok(8));
        // Eight ones then the end: a ninth prefix bit (or the terminating zero) is missing.
        assert_eq!(BitReader::new(&[0xFF]).read_prefix(9), Err(EndOfStream));
        let mut r = BitReader::new(&[0b1110_1100, 0x00]);
        assert_eq!(r.read_prefix(4), Ok(3));
        assert_eq!(r.read_prefix(4), Ok(2));
        assert_eq!(r.read_bits(9), Ok(0));
        assert_eq!(r.read_prefix(1), Err(EndOfStream));
        assert_eq!(r.read_bits(0), Ok(0));
    }
}
