//! XXH64 (seed 0) and Prometheus's label-set hash built on it (`labels.Labels.Hash`: every
//! name and value followed by the byte 0xff, in sorted label order). Prometheus derives
//! behaviour from this hash — a rule group's evaluation phase, `limit_ratio`'s sampling — so
//! Vigil must compute it bit for bit; the algorithm follows the xxHash specification
//! (`doc/xxhash_spec.md` in the xxHash project).

use crate::Labels;

const P1: u64 = 0x9E37_79B1_85EB_CA87;
const P2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const P3: u64 = 0x1656_67B1_9E37_79F9;
const P4: u64 = 0x85EB_CA77_C2B2_AE63;
const P5: u64 = 0x27D4_EB2F_1656_67C5;

/// The byte Prometheus writes after every label name and value.
const LABEL_SEP: u8 = 0xff;

/// XXH64 of `input` with seed 0.
pub fn xxh64(input: &[u8]) -> u64 {
    let mut stripes = input.chunks_exact(32);
    let mut acc = if input.len() >= 32 {
        let mut lanes = [P1.wrapping_add(P2), P2, 0, 0u64.wrapping_sub(P1)];
        for stripe in &mut stripes {
            for (lane, word) in lanes.iter_mut().zip(stripe.chunks_exact(8)) {
                *lane = round(*lane, le_u64(word));
            }
        }
        let mut acc = lanes[0]
            .rotate_left(1)
            .wrapping_add(lanes[1].rotate_left(7))
            .wrapping_add(lanes[2].rotate_left(12))
            .wrapping_add(lanes[3].rotate_left(18));
        for lane in lanes {
            acc = (acc ^ round(0, lane)).wrapping_mul(P1).wrapping_add(P4);
        }
        acc
    } else {
        P5
    };
    acc = acc.wrapping_add(input.len() as u64);
    // What the 32-byte stripes left over: 8-byte words, then at most one 4-byte word, then
    // single bytes.
    let tail = stripes.remainder();
    let mut words = tail.chunks_exact(8);
    for word in &mut words {
        acc ^= round(0, le_u64(word));
        acc = acc.rotate_left(27).wrapping_mul(P1).wrapping_add(P4);
    }
    let mut rest = words.remainder();
    if rest.len() >= 4 {
        let (word, after) = rest.split_at(4);
        acc ^= le_u32(word).wrapping_mul(P1);
        acc = acc.rotate_left(23).wrapping_mul(P2).wrapping_add(P3);
        rest = after;
    }
    for &byte in rest {
        acc ^= u64::from(byte).wrapping_mul(P5);
        acc = acc.rotate_left(11).wrapping_mul(P1);
    }
    avalanche(acc)
}

/// Prometheus's `labels.Labels.Hash` of `labels`.
pub fn labels_hash(labels: &Labels) -> u64 {
    label_pairs_hash(labels.iter().map(|l| (l.name.as_str(), l.value.as_str())))
}

/// Prometheus's label hash over `pairs` taken as they come: the caller sorts them by name.
/// Unlike [`labels_hash`] this keeps empty values, as a Go `labels.New` would.
pub fn label_pairs_hash<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> u64 {
    let mut bytes = Vec::with_capacity(128);
    for (name, value) in pairs {
        bytes.extend_from_slice(name.as_bytes());
        bytes.push(LABEL_SEP);
        bytes.extend_from_slice(value.as_bytes());
        bytes.push(LABEL_SEP);
    }
    xxh64(&bytes)
}

fn round(acc: u64, input: u64) -> u64 {
    acc.wrapping_add(input.wrapping_mul(P2))
        .rotate_left(31)
        .wrapping_mul(P1)
}

fn avalanche(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(P2);
    h ^= h >> 29;
    h = h.wrapping_mul(P3);
    h ^ (h >> 32)
}

/// `word` is exactly 8 bytes (a `chunks_exact(8)` item).
fn le_u64(word: &[u8]) -> u64 {
    word.iter()
        .rev()
        .fold(0, |acc, &b| (acc << 8) | u64::from(b))
}

/// `word` is exactly 4 bytes.
fn le_u32(word: &[u8]) -> u64 {
    word.iter()
        .rev()
        .fold(0, |acc, &b| (acc << 8) | u64::from(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference digests (seed 0), as the xxHash library itself (libxxhash 0.8) gives them;
    /// the inputs reach every path: empty, single bytes, a 4-byte word, 8-byte words, one and
    /// more 32-byte stripes with each kind of tail.
    #[test]
    fn xxh64_matches_the_reference_library() {
        let all_bytes: Vec<u8> = (0..=255).collect();
        let cases: [(&[u8], u64); 9] = [
            (b"", 0xEF46_DB37_51D8_E999),
            (b"a", 0xD24E_C4F1_A98C_6E5B),
            (b"as", 0x1C33_0FB2_D66B_E179),
            (b"abc", 0x44BC_2CF5_AD77_0999),
            (b"asdf", 0x4158_72F5_99CE_A71E),
            (b"abcdefghijklmnopqrstuvwxyz", 0xCFE1_F278_FA89_835C),
            (
                b"Nobody inspects the spammish repetition",
                0xFBCE_A83C_8A37_8BF1,
            ),
            (
                b"Call me Ishmael. Some years ago--never mind how long precisely-",
                0x02A2_E854_70D6_FD96,
            ),
            (&all_bytes, 0x1FAC_BE84_06CD_904B),
        ];
        for (input, want) in cases {
            assert_eq!(xxh64(input), want, "input of {} bytes", input.len());
        }
    }

    #[test]
    fn label_hash_ends_every_name_and_value_with_0xff() {
        let a = Labels::from_pairs([("a", "bc")]);
        let b = Labels::from_pairs([("ab", "c")]);
        assert_ne!(labels_hash(&a), labels_hash(&b));
        assert_eq!(labels_hash(&a), xxh64(b"a\xffbc\xff"));
        assert_eq!(labels_hash(&Labels::empty()), xxh64(b""));
        assert_eq!(label_pairs_hash([("a", "")]), xxh64(b"a\xff\xff"));
    }
}
