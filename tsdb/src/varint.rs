//! LEB128 varints and zigzag coding, the integer format of WAL records.

/// Maps signed to unsigned so small magnitudes of either sign get small codes.
pub(crate) fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

pub(crate) fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

/// Appends `v` as an unsigned LEB128 varint.
pub(crate) fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Bytes [`put_uvarint`] writes for `v`.
pub(crate) fn uvarint_len(v: u64) -> u32 {
    (64 - (v | 1).leading_zeros()).div_ceil(7)
}

/// Reads an unsigned LEB128 varint from the front of `buf`, advancing it; `None` when it is
/// truncated or longer than ten bytes.
pub(crate) fn get_uvarint(buf: &mut &[u8]) -> Option<u64> {
    let mut out: u64 = 0;
    for i in 0..10 {
        let (&b, rest) = buf.split_first()?;
        *buf = rest;
        out |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            return Some(out);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_zigzag() {
        for v in [0i64, 1, -1, 63, -64, 1 << 40, i64::MIN, i64::MAX] {
            assert_eq!(unzigzag(zigzag(v)), v);
            let mut buf = Vec::new();
            put_uvarint(&mut buf, zigzag(v));
            let mut s = buf.as_slice();
            assert_eq!(get_uvarint(&mut s), Some(zigzag(v)));
            assert!(s.is_empty());
            assert_eq!(uvarint_len(zigzag(v)) as usize, buf.len());
        }
        assert_eq!(get_uvarint(&mut &[0x80u8, 0x80][..]), None);
    }
}
