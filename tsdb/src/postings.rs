//! Postings-list kernels: set operations over sorted, duplicate-free lists of series ids.
//!
//! These are plain functions over slices so they can be tested and benchmarked alone; the
//! head's index ([`crate::Head`]) combines them to answer label matchers. Every input must be
//! sorted ascending without duplicates, and every output is too.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

/// The id of a series in the head, stable for the series' life. Ids are handed out in
/// creation order, so appending a new series to a postings list keeps it sorted.
pub type SeriesRef = u32;

/// When one list is this many times longer than the other, [`intersect`] binary-searches the
/// long one instead of walking it: an `Equal` matcher on a rare value against a label every
/// series has is the common case this serves.
const GALLOP_RATIO: usize = 16;

/// The ids present in every list, intersecting smallest-first so the running result only
/// shrinks. The intersection of no lists is empty (callers decide what "no matchers" means).
pub fn intersect(lists: &[&[SeriesRef]]) -> Vec<SeriesRef> {
    let mut by_len: Vec<&[SeriesRef]> = lists.to_vec();
    by_len.sort_by_key(|l| l.len());
    let Some((first, rest)) = by_len.split_first() else {
        return Vec::new();
    };
    let mut acc = first.to_vec();
    for other in rest {
        if acc.is_empty() {
            break;
        }
        acc = intersect_two(&acc, other);
    }
    acc
}

/// Intersects a short list with a longer one.
fn intersect_two(short: &[SeriesRef], long: &[SeriesRef]) -> Vec<SeriesRef> {
    let mut out = Vec::with_capacity(short.len());
    if long.len() >= short.len().saturating_mul(GALLOP_RATIO) {
        let mut rest = long;
        for &x in short {
            rest = &rest[gallop(rest, x)..];
            match rest.first() {
                None => break,
                Some(&y) if y == x => {
                    out.push(x);
                    rest = &rest[1..];
                }
                Some(_) => {}
            }
        }
        return out;
    }
    let (mut i, mut j) = (0, 0);
    while i < short.len() && j < long.len() {
        match short[i].cmp(&long[j]) {
            Ordering::Less => i += 1,
            Ordering::Greater => j += 1,
            Ordering::Equal => {
                out.push(short[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

/// The index of the first element `>= x`, found by doubling a bound from the front and then
/// binary-searching inside it, so a match near the front costs O(log distance).
fn gallop(list: &[SeriesRef], x: SeriesRef) -> usize {
    let mut bound = 1;
    while bound < list.len() && list[bound - 1] < x {
        bound *= 2;
    }
    let lo = bound / 2;
    let hi = bound.min(list.len());
    lo + list[lo..hi].partition_point(|&y| y < x)
}

/// The ids present in any list. Two lists merge directly; more go through a heap of list
/// heads, so the cost is O(n log k) for n ids in k lists.
pub fn union(lists: &[&[SeriesRef]]) -> Vec<SeriesRef> {
    match lists {
        [] => Vec::new(),
        [one] => one.to_vec(),
        [a, b] => union_two(a, b),
        _ => union_many(lists),
    }
}

fn union_two(a: &[SeriesRef], b: &[SeriesRef]) -> Vec<SeriesRef> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            Ordering::Less => {
                out.push(a[i]);
                i += 1;
            }
            Ordering::Greater => {
                out.push(b[j]);
                j += 1;
            }
            Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

fn union_many(lists: &[&[SeriesRef]]) -> Vec<SeriesRef> {
    let total = lists.iter().map(|l| l.len()).sum();
    let mut out: Vec<SeriesRef> = Vec::with_capacity(total);
    // Each heap entry is (next id, which list, position in that list).
    let mut heap: BinaryHeap<Reverse<(SeriesRef, usize, usize)>> = lists
        .iter()
        .enumerate()
        .filter_map(|(k, l)| l.first().map(|&x| Reverse((x, k, 0))))
        .collect();
    while let Some(Reverse((x, k, pos))) = heap.pop() {
        if out.last() != Some(&x) {
            out.push(x);
        }
        if let Some(&next) = lists[k].get(pos + 1) {
            heap.push(Reverse((next, k, pos + 1)));
        }
    }
    out
}

/// The ids of `from` that are not in `remove`.
pub fn subtract(from: &[SeriesRef], remove: &[SeriesRef]) -> Vec<SeriesRef> {
    let mut out = Vec::with_capacity(from.len());
    let mut j = 0;
    for &x in from {
        while j < remove.len() && remove[j] < x {
            j += 1;
        }
        if remove.get(j) != Some(&x) {
            out.push(x);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// A deterministic pseudo-random sorted list: every id below `n` kept with probability
    /// about 1/`every`.
    fn sparse(n: u32, every: u32, seed: u32) -> Vec<SeriesRef> {
        (0..n)
            .filter(|&i| (i.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 7) % every == 0)
            .collect()
    }

    fn set(l: &[SeriesRef]) -> BTreeSet<SeriesRef> {
        l.iter().copied().collect()
    }

    #[test]
    fn intersect_small_cases() {
        assert_eq!(intersect(&[]), Vec::<SeriesRef>::new());
        assert_eq!(intersect(&[&[1, 2, 3]]), vec![1, 2, 3]);
        assert_eq!(intersect(&[&[1, 2, 3], &[]]), Vec::<SeriesRef>::new());
        assert_eq!(intersect(&[&[1, 3, 5, 7], &[3, 4, 5, 6, 7]]), vec![3, 5, 7]);
        assert_eq!(intersect(&[&[1, 3, 5, 7], &[3, 5, 7], &[0, 5, 9]]), vec![5]);
    }

    #[test]
    fn intersect_gallops_over_a_long_list() {
        let long: Vec<SeriesRef> = (0..100_000).collect();
        assert_eq!(intersect(&[&long, &[0, 17, 99_999]]), vec![0, 17, 99_999]);
        assert_eq!(
            intersect(&[&long, &[100_000, 200_000]]),
            Vec::<SeriesRef>::new()
        );
        let evens: Vec<SeriesRef> = (0..100_000).map(|i| i * 2).collect();
        assert_eq!(
            intersect(&[&evens, &[1, 2, 3, 4, 199_998]]),
            vec![2, 4, 199_998]
        );
    }

    #[test]
    fn kernels_agree_with_btreeset() {
        for (every_a, every_b, every_c) in [(2, 3, 5), (1, 50, 7), (40, 1, 1), (3, 3, 300)] {
            let a = sparse(20_000, every_a, 1);
            let b = sparse(20_000, every_b, 2);
            let c = sparse(20_000, every_c, 3);
            let (sa, sb, sc) = (set(&a), set(&b), set(&c));

            let want: Vec<SeriesRef> = sa
                .iter()
                .filter(|x| sb.contains(x) && sc.contains(x))
                .copied()
                .collect();
            assert_eq!(intersect(&[&a, &b, &c]), want);

            let want: Vec<SeriesRef> = sa.union(&sb).copied().collect();
            assert_eq!(union(&[&a, &b]), want);
            let want: Vec<SeriesRef> = sa
                .union(&sb)
                .copied()
                .collect::<BTreeSet<_>>()
                .union(&sc)
                .copied()
                .collect();
            assert_eq!(union(&[&a, &b, &c]), want);

            let want: Vec<SeriesRef> = sa.difference(&sb).copied().collect();
            assert_eq!(subtract(&a, &b), want);
        }
    }

    #[test]
    fn union_and_subtract_edges() {
        assert_eq!(union(&[]), Vec::<SeriesRef>::new());
        assert_eq!(union(&[&[], &[2], &[], &[1, 2]]), vec![1, 2]);
        assert_eq!(subtract(&[1, 2, 3], &[]), vec![1, 2, 3]);
        assert_eq!(subtract(&[], &[1]), Vec::<SeriesRef>::new());
        assert_eq!(subtract(&[1, 2, 3, 4], &[0, 2, 4, 9]), vec![1, 3]);
    }

    #[test]
    fn gallop_finds_the_lower_bound() {
        let l = [2, 4, 6, 8, 10];
        for (x, want) in [(0, 0), (2, 0), (3, 1), (10, 4), (11, 5)] {
            assert_eq!(gallop(&l, x), want, "x={x}");
        }
        assert_eq!(gallop(&[], 1), 0);
    }
}
