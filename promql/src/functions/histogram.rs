//! `histogram_quantile` and `histogram_fraction` over classic histograms: one series per
//! bucket, the upper bound in the `le` label, cumulative counts as values.

/// One cumulative bucket.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bucket {
    pub upper: f64,
    pub count: f64,
}

/// Differences smaller than this (relative) between neighbouring buckets are rounding noise
/// from summing rates, and are evened out silently.
const SMALL_DELTA: f64 = 1e-12;

/// What [`bucket_quantile`] had to repair.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Repairs {
    /// A bucket counted less than the one below it; the drop was removed.
    pub forced_monotonic: bool,
}

/// Sorts, merges equal bounds and makes the counts non-decreasing. `None` without a `+Inf`
/// bucket.
fn normalise(buckets: &mut Vec<Bucket>, repairs: &mut Repairs) -> Option<()> {
    buckets.sort_by(|a, b| a.upper.total_cmp(&b.upper));
    if buckets.last()?.upper != f64::INFINITY {
        return None;
    }
    // Merge buckets with the same bound (the same histogram reported twice).
    let mut merged: Vec<Bucket> = Vec::with_capacity(buckets.len());
    for b in buckets.iter() {
        match merged.last_mut() {
            Some(last) if last.upper == b.upper => last.count += b.count,
            _ => merged.push(*b),
        }
    }
    let mut prev = merged[0].count;
    for b in merged.iter_mut().skip(1) {
        if b.count == prev {
            continue;
        }
        if close(prev, b.count) {
            b.count = prev;
            continue;
        }
        if b.count < prev {
            b.count = prev;
            repairs.forced_monotonic = true;
            continue;
        }
        prev = b.count;
    }
    *buckets = merged;
    Some(())
}

fn close(a: f64, b: f64) -> bool {
    let diff = (a - b).abs();
    let sum = a.abs() + b.abs();
    if a == 0.0 || b == 0.0 || sum < f64::MIN_POSITIVE {
        return diff < SMALL_DELTA * f64::MIN_POSITIVE;
    }
    diff / sum < SMALL_DELTA
}

/// The `q`-quantile of a classic histogram, interpolating linearly inside the bucket that
/// holds it (and assuming the lowest bucket starts at 0 if its bound is positive).
pub(crate) fn bucket_quantile(q: f64, mut buckets: Vec<Bucket>) -> (f64, Repairs) {
    let mut repairs = Repairs::default();
    if q.is_nan() {
        return (f64::NAN, repairs);
    }
    if q < 0.0 {
        return (f64::NEG_INFINITY, repairs);
    }
    if q > 1.0 {
        return (f64::INFINITY, repairs);
    }
    if normalise(&mut buckets, &mut repairs).is_none() || buckets.len() < 2 {
        return (f64::NAN, repairs);
    }
    let observations = buckets[buckets.len() - 1].count;
    if observations == 0.0 {
        return (f64::NAN, repairs);
    }
    let mut rank = q * observations;
    let last = buckets.len() - 1;
    let b = buckets[..last].partition_point(|x| x.count < rank);
    if b == last {
        return (buckets[last - 1].upper, repairs);
    }
    if b == 0 && buckets[0].upper <= 0.0 {
        return (buckets[0].upper, repairs);
    }
    let (mut start, end, mut count) = (0.0, buckets[b].upper, buckets[b].count);
    if b > 0 {
        start = buckets[b - 1].upper;
        count -= buckets[b - 1].count;
        rank -= buckets[b - 1].count;
    }
    (start + (end - start) * (rank / count), repairs)
}

/// The estimated share of observations between `lower` and `upper`, interpolating linearly
/// inside buckets (the lowest bucket starts at 0 when its bound is positive). A bucket of
/// infinite width counts whole when the range reaches its infinite end, else not at all.
pub(crate) fn bucket_fraction(lower: f64, upper: f64, mut buckets: Vec<Bucket>) -> f64 {
    let mut repairs = Repairs::default();
    if lower.is_nan() || upper.is_nan() || normalise(&mut buckets, &mut repairs).is_none() {
        return f64::NAN;
    }
    let total = buckets[buckets.len() - 1].count;
    if total == 0.0 {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }
    // The cumulative count at `x`, interpolated.
    let rank_at = |x: f64| -> f64 {
        let mut prev_upper = 0.0;
        let mut prev_count = 0.0;
        for (i, b) in buckets.iter().enumerate() {
            if x <= b.upper {
                if b.upper == f64::INFINITY {
                    // Nothing is known inside the +Inf bucket.
                    return prev_count;
                }
                let start = if i == 0 && b.upper > 0.0 {
                    0.0
                } else if i == 0 {
                    // The lowest bucket reaches down to -Inf: nothing is known inside it, so
                    // all of it lies below `x`, as all of the +Inf bucket lies above.
                    return b.count;
                } else {
                    prev_upper
                };
                if x <= start {
                    return prev_count;
                }
                return prev_count + (b.count - prev_count) * (x - start) / (b.upper - start);
            }
            prev_upper = b.upper;
            prev_count = b.count;
        }
        total
    };
    let lo = if lower == f64::NEG_INFINITY {
        0.0
    } else {
        rank_at(lower)
    };
    let hi = if upper == f64::INFINITY {
        total
    } else {
        rank_at(upper)
    };
    (hi - lo) / total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(pairs: &[(f64, f64)]) -> Vec<Bucket> {
        pairs
            .iter()
            .map(|&(upper, count)| Bucket { upper, count })
            .collect()
    }

    #[test]
    fn quantile_interpolates_and_fixes_monotonicity() {
        let h = b(&[(0.1, 10.0), (0.2, 20.0), (f64::INFINITY, 20.0)]);
        assert_eq!(bucket_quantile(0.5, h.clone()).0, 0.1);
        assert!((bucket_quantile(0.75, h.clone()).0 - 0.15).abs() < 1e-12);
        assert!(
            bucket_quantile(0.5, b(&[(0.1, 1.0)])).0.is_nan(),
            "no +Inf bucket"
        );
        let broken = b(&[(0.1, 10.0), (0.2, 5.0), (f64::INFINITY, 20.0)]);
        let (_, repairs) = bucket_quantile(0.5, broken);
        assert!(repairs.forced_monotonic);
        assert_eq!(bucket_quantile(1.5, h).0, f64::INFINITY);
    }

    #[test]
    fn fraction_of_observations() {
        let h = b(&[(1.0, 10.0), (2.0, 20.0), (f64::INFINITY, 20.0)]);
        assert!((bucket_fraction(0.0, 1.0, h.clone()) - 0.5).abs() < 1e-12);
        assert!((bucket_fraction(1.0, 1.5, h.clone()) - 0.25).abs() < 1e-12);
        assert!((bucket_fraction(f64::NEG_INFINITY, f64::INFINITY, h) - 1.0).abs() < 1e-12);
    }
}
