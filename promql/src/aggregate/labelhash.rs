//! Prometheus's hash of a label set (`labels.Labels.Hash`): XXH64 with seed 0 over every
//! label's name and value, each followed by the byte 0xff, in label order. `limit_ratio` keeps
//! a series by where this hash falls in `[0, 2^64)`, so matching it bit for bit is what makes
//! Vigil pick the same series as Prometheus.

use model::Labels;

const P1: u64 = 0x9E37_79B1_85EB_CA87;
const P2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const P3: u64 = 0x1656_67B1_9E37_79F9;
const P4: u64 = 0x85EB_CA77_C2B2_AE63;
const P5: u64 = 0x27D4_EB2F_1656_67C5;

/// The separator Prometheus writes after every name and value.
const SEP: u8 = 0xff;

/// The hash of `labels` as Prometheus computes it.
pub(crate) fn label_hash(labels: &Labels) -> u64 {
    let mut bytes = Vec::with_capacity(256);
    for l in labels {
        bytes.extend_from_slice(l.name.as_bytes());
        bytes.push(SEP);
        bytes.extend_from_slice(l.value.as_bytes());
        bytes.push(SEP);
    }
    xxh64(&bytes)
}

fn round(acc: u64, input: u64) -> u64 {
    acc.wrapping_add(input.wrapping_mul(P2))
        .rotate_left(31)
        .wrapping_mul(P1)
}

fn merge(acc: u64, v: u64) -> u64 {
    (acc ^ round(0, v)).wrapping_mul(P1).wrapping_add(P4)
}

fn read_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

fn read_u32(b: &[u8]) -> u64 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u64::from(u32::from_le_bytes(a))
}

/// XXH64 of `input` with seed 0, per the xxHash specification.
pub(crate) fn xxh64(input: &[u8]) -> u64 {
    let mut rest = input;
    let mut h = if input.len() >= 32 {
        let mut v = [P1.wrapping_add(P2), P2, 0, 0u64.wrapping_sub(P1)];
        while rest.len() >= 32 {
            for (i, lane) in v.iter_mut().enumerate() {
                *lane = round(*lane, read_u64(&rest[i * 8..]));
            }
            rest = &rest[32..];
        }
        let mut h = v[0]
            .rotate_left(1)
            .wrapping_add(v[1].rotate_left(7))
            .wrapping_add(v[2].rotate_left(12))
            .wrapping_add(v[3].rotate_left(18));
        for lane in v {
            h = merge(h, lane);
        }
        h
    } else {
        P5
    };
    h = h.wrapping_add(input.len() as u64);
    while rest.len() >= 8 {
        h ^= round(0, read_u64(rest));
        h = h.rotate_left(27).wrapping_mul(P1).wrapping_add(P4);
        rest = &rest[8..];
    }
    if rest.len() >= 4 {
        h ^= read_u32(rest).wrapping_mul(P1);
        h = h.rotate_left(23).wrapping_mul(P2).wrapping_add(P3);
        rest = &rest[4..];
    }
    for &b in rest {
        h ^= u64::from(b).wrapping_mul(P5);
        h = h.rotate_left(11).wrapping_mul(P1);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(P2);
    h ^= h >> 29;
    h = h.wrapping_mul(P3);
    h ^ (h >> 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference values of XXH64 (seed 0) from the xxHash project, covering each tail path
    /// and the 32-byte stripe loop.
    #[test]
    fn xxh64_matches_reference_values() {
        assert_eq!(xxh64(b""), 0xEF46_DB37_51D8_E999);
        assert_eq!(xxh64(b"a"), 0xD24E_C4F1_A98C_6E5B);
        assert_eq!(xxh64(b"abc"), 0x44BC_2CF5_AD77_0999);
        assert_eq!(
            xxh64(b"Nobody inspects the spammish repetition"),
            0xFBCE_A83C_8A37_8BF1
        );
    }

    #[test]
    fn label_hash_separates_names_and_values() {
        let a = Labels::from_pairs([("a", "bc")]);
        let b = Labels::from_pairs([("ab", "c")]);
        assert_ne!(label_hash(&a), label_hash(&b));
        let mut bytes = b"a\xffbc\xff".to_vec();
        assert_eq!(label_hash(&a), xxh64(&bytes));
        bytes.clear();
        assert_eq!(label_hash(&Labels::empty()), xxh64(&bytes));
    }
}
