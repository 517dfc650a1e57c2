//! Range-function kernels: pure functions from one series' samples inside a range selector's
//! or subquery's window to one value, or `None` when the window yields no output element. They know nothing
//! of labels or evaluation, so they can be tested and benchmarked on plain slices.

use crate::summation::{KahanSum, Mean};
use model::Sample;

/// `rate`, `increase` and `delta`: the change over the window, extrapolated towards its
/// boundaries, per second when `is_rate`.
///
/// `range_start` (exclusive) and `range_end` (inclusive) are the window's bounds in ms. With
/// `is_counter`, a drop in value is taken as a counter reset: the value before the drop is added
/// back. The result is extrapolated to a boundary when the first (last) sample is within 110%
/// of the average sample spacing of it, otherwise by half a spacing only, on the assumption that
/// the series starts (ends) inside the window. A counter is never extrapolated below zero.
pub(crate) fn extrapolated_rate(
    samples: &[Sample],
    range_start: i64,
    range_end: i64,
    is_counter: bool,
    is_rate: bool,
) -> Option<f64> {
    let (first, last) = match samples {
        [first, .., last] => (*first, *last),
        _ => return None,
    };
    let mut result = last.v - first.v;
    if is_counter {
        for pair in samples.windows(2) {
            if pair[1].v < pair[0].v {
                result += pair[0].v;
            }
        }
    }
    extrapolate(samples, result, range_start, range_end, is_counter, is_rate)
}

/// The extrapolation step of [`extrapolated_rate`]: `result` is the change between the
/// window's first and last sample, counter resets already added back. `None` for fewer than
/// two samples.
pub(crate) fn extrapolate(
    samples: &[Sample],
    result: f64,
    range_start: i64,
    range_end: i64,
    is_counter: bool,
    is_rate: bool,
) -> Option<f64> {
    let (first, last) = match samples {
        [first, .., last] => (*first, *last),
        _ => return None,
    };
    let sampled_interval = (last.t - first.t) as f64 / 1000.0;
    let average_spacing = sampled_interval / (samples.len() - 1) as f64;
    let threshold = average_spacing * 1.1;
    let mut to_start = (first.t - range_start) as f64 / 1000.0;
    let mut to_end = (range_end - last.t) as f64 / 1000.0;

    if to_start >= threshold {
        to_start = average_spacing / 2.0;
    }
    if is_counter && result > 0.0 && first.v >= 0.0 {
        // Where the counter would have been zero, going back at the observed slope: the series
        // cannot have started before that.
        let to_zero = sampled_interval * (first.v / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    if to_end >= threshold {
        to_end = average_spacing / 2.0;
    }

    let mut factor = (sampled_interval + to_start + to_end) / sampled_interval;
    if is_rate {
        factor /= (range_end - range_start) as f64 / 1000.0;
    }
    Some(result * factor)
}

/// `irate` (`is_rate`) and `idelta`: the change between the last two samples, per second for
/// `irate`, where a drop counts as a counter reset.
pub(crate) fn instant_delta(samples: &[Sample], is_rate: bool) -> Option<f64> {
    let (prev, last) = match samples {
        [.., prev, last] => (*prev, *last),
        _ => return None,
    };
    let interval = last.t - prev.t;
    if interval == 0 {
        return None;
    }
    let change = if is_rate && last.v < prev.v {
        last.v
    } else {
        last.v - prev.v
    };
    Some(if is_rate {
        change / (interval as f64 / 1000.0)
    } else {
        change
    })
}

/// `sum_over_time`.
pub(crate) fn sum_over_time(samples: &[Sample]) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let mut sum = KahanSum::default();
    for s in samples {
        sum.add(s.v);
    }
    Some(sum.value())
}

/// `avg_over_time`.
pub(crate) fn avg_over_time(samples: &[Sample]) -> Option<f64> {
    let mut mean = Mean::default();
    for s in samples {
        mean.add(s.v);
    }
    mean.value()
}

/// `min_over_time`: NaN only when every sample is NaN.
pub(crate) fn min_over_time(samples: &[Sample]) -> Option<f64> {
    samples
        .iter()
        .map(|s| s.v)
        .reduce(|acc, v| if v < acc || acc.is_nan() { v } else { acc })
}

/// `max_over_time`: NaN only when every sample is NaN.
pub(crate) fn max_over_time(samples: &[Sample]) -> Option<f64> {
    samples
        .iter()
        .map(|s| s.v)
        .reduce(|acc, v| if v > acc || acc.is_nan() { v } else { acc })
}

/// `count_over_time`.
pub(crate) fn count_over_time(samples: &[Sample]) -> Option<f64> {
    (!samples.is_empty()).then_some(samples.len() as f64)
}

/// `last_over_time`.
pub(crate) fn last_over_time(samples: &[Sample]) -> Option<f64> {
    samples.last().map(|s| s.v)
}

/// `first_over_time`.
pub(crate) fn first_over_time(samples: &[Sample]) -> Option<f64> {
    samples.first().map(|s| s.v)
}

/// `present_over_time`: 1 for any sample.
pub(crate) fn present_over_time(samples: &[Sample]) -> Option<f64> {
    (!samples.is_empty()).then_some(1.0)
}

/// `ts_of_first_over_time` / `ts_of_last_over_time`: the sample's time in seconds.
pub(crate) fn ts_of_first(samples: &[Sample]) -> Option<f64> {
    samples.first().map(|s| s.t as f64 / 1000.0)
}

pub(crate) fn ts_of_last(samples: &[Sample]) -> Option<f64> {
    samples.last().map(|s| s.t as f64 / 1000.0)
}

/// `ts_of_max_over_time` (`max`) / `ts_of_min_over_time`: the time in seconds of the last
/// sample holding the window's largest (smallest) value. NaN loses to any number; a window of
/// NaNs only gives its last sample's time.
pub(crate) fn ts_of_extreme(samples: &[Sample], max: bool) -> Option<f64> {
    let first = samples.first()?;
    let (mut best, mut t) = (first.v, first.t);
    for s in samples {
        let better = if max { s.v >= best } else { s.v <= best };
        if better || best.is_nan() {
            best = s.v;
            t = s.t;
        }
    }
    Some(t as f64 / 1000.0)
}

/// `stdvar_over_time`: the population variance, by Welford's update with compensated sums so
/// that large offsets do not swallow small variances.
pub(crate) fn stdvar_over_time(samples: &[Sample]) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let mut count = 0.0;
    let mut mean = KahanSum::default();
    let mut aux = KahanSum::default();
    for s in samples {
        count += 1.0;
        let delta = s.v - mean.value();
        mean.add(delta / count);
        aux.add(delta * (s.v - mean.value()));
    }
    Some(aux.value() / count)
}

/// `stddev_over_time`.
pub(crate) fn stddev_over_time(samples: &[Sample]) -> Option<f64> {
    stdvar_over_time(samples).map(f64::sqrt)
}

/// `changes`: how often the value changed; NaN to NaN is no change.
pub(crate) fn changes(samples: &[Sample]) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let n = samples
        .windows(2)
        .filter(|w| !(w[0].v == w[1].v || (w[0].v.is_nan() && w[1].v.is_nan())))
        .count();
    Some(n as f64)
}

/// `resets`: how often the value dropped, as a counter does when it restarts.
pub(crate) fn resets(samples: &[Sample]) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    Some(samples.windows(2).filter(|w| w[1].v < w[0].v).count() as f64)
}

/// Least-squares fit of value over time, with time in seconds relative to `intercept_t` (ms):
/// `(slope, intercept)`. A constant series has slope 0 exactly (an infinite one NaN), which the
/// sums alone would not give.
pub(crate) fn linear_regression(samples: &[Sample], intercept_t: i64) -> (f64, f64) {
    let Some(first) = samples.first() else {
        return (f64::NAN, f64::NAN);
    };
    let (mut sum_x, mut sum_y, mut sum_xy, mut sum_x2) = (
        KahanSum::default(),
        KahanSum::default(),
        KahanSum::default(),
        KahanSum::default(),
    );
    let mut constant = true;
    let n = samples.len() as f64;
    for s in samples {
        if s.v != first.v {
            constant = false;
        }
        let x = (s.t - intercept_t) as f64 / 1000.0;
        sum_x.add(x);
        sum_y.add(s.v);
        sum_xy.add(x * s.v);
        sum_x2.add(x * x);
    }
    if constant {
        if first.v.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, first.v);
    }
    let (sx, sy) = (sum_x.value(), sum_y.value());
    let cov_xy = sum_xy.value() - sx * sy / n;
    let var_x = sum_x2.value() - sx * sx / n;
    let slope = cov_xy / var_x;
    (slope, sy / n - slope * sx / n)
}

/// `deriv`: the per-second slope of the least-squares fit.
pub(crate) fn deriv(samples: &[Sample]) -> Option<f64> {
    let first = samples.first()?;
    if samples.len() < 2 {
        return None;
    }
    Some(linear_regression(samples, first.t).0)
}

/// `predict_linear`: the fitted value `seconds` after the evaluation time `eval_t` (ms).
pub(crate) fn predict_linear(samples: &[Sample], eval_t: i64, seconds: f64) -> Option<f64> {
    if samples.len() < 2 {
        return None;
    }
    let (slope, intercept) = linear_regression(samples, eval_t);
    Some(slope * seconds + intercept)
}

/// `double_exponential_smoothing` (Holt's linear method) with smoothing factor `sf` and trend
/// factor `tf`, both already checked to lie in (0, 1).
pub(crate) fn double_exponential_smoothing(samples: &[Sample], sf: f64, tf: f64) -> Option<f64> {
    if samples.len() < 2 {
        return None;
    }
    let mut s0 = 0.0;
    let mut s1 = samples[0].v;
    let mut trend = samples[1].v - samples[0].v;
    for (i, s) in samples.iter().enumerate().skip(1) {
        if i > 1 {
            trend = tf * (s1 - s0) + (1.0 - tf) * trend;
        }
        let next = sf * s.v + (1.0 - sf) * (s1 + trend);
        s0 = s1;
        s1 = next;
    }
    Some(s1)
}

/// The `q`-quantile of `values` by linear interpolation between closest ranks, as PromQL's
/// `quantile` and `quantile_over_time` compute it. NaNs sort first. `q` outside [0, 1] gives
/// -Inf/+Inf; the caller warns about it.
pub(crate) fn quantile(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        (false, false) => a.total_cmp(b),
    });
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

/// `quantile_over_time`.
pub(crate) fn quantile_over_time(samples: &[Sample], q: f64) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let mut values: Vec<f64> = samples.iter().map(|s| s.v).collect();
    Some(quantile(q, &mut values))
}

/// `mad_over_time`: the median of the absolute deviations from the median.
pub(crate) fn mad_over_time(samples: &[Sample]) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let mut values: Vec<f64> = samples.iter().map(|s| s.v).collect();
    if values.iter().any(|v| v.is_nan()) {
        return Some(f64::NAN);
    }
    let median = quantile(0.5, &mut values);
    let mut deviations: Vec<f64> = values.iter().map(|v| (v - median).abs()).collect();
    Some(quantile(0.5, &mut deviations))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(pts: &[(i64, f64)]) -> Vec<Sample> {
        pts.iter().map(|&(t, v)| Sample { t, v }).collect()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9 * b.abs().max(1.0)
    }

    #[test]
    fn rate_extrapolates_to_both_boundaries() {
        // Samples every 15s at 15..=60, window (0, 60]: 15s to the start (< 16.5s threshold),
        // 0s to the end. Increase 1/s * 45s sampled, extrapolated to the full 60s.
        let s = samples(&[
            (15_000, 15.0),
            (30_000, 30.0),
            (45_000, 45.0),
            (60_000, 60.0),
        ]);
        let inc = extrapolated_rate(&s, 0, 60_000, true, false).unwrap();
        // The zero point is 15s before the first sample, exactly the distance to the start.
        assert!(close(inc, 60.0), "{inc}");
        let rate = extrapolated_rate(&s, 0, 60_000, true, true).unwrap();
        assert!(close(rate, 1.0), "{rate}");
    }

    #[test]
    fn rate_handles_counter_reset() {
        // 10, 20, 30, reset to 5, 15 at 10s spacing over window (0, 50]: raw increase
        // 15 - 10 + 30 (reset) = 35 over 40s sampled. Start gap 10s < 11s threshold, but the
        // zero point is 40 * 10/35 = 11.43s back, so 10s is used; end gap 0.
        let s = samples(&[
            (10_000, 10.0),
            (20_000, 20.0),
            (30_000, 30.0),
            (40_000, 5.0),
            (50_000, 15.0),
        ]);
        let inc = extrapolated_rate(&s, 0, 50_000, true, false).unwrap();
        assert!(close(inc, 35.0 * 50.0 / 40.0), "{inc}");
        let rate = extrapolated_rate(&s, 0, 50_000, true, true).unwrap();
        assert!(close(rate, 35.0 * 50.0 / 40.0 / 50.0), "{rate}");
    }

    #[test]
    fn rate_limits_extrapolation_to_zero_point_and_half_spacing() {
        // Counter 2 -> 4 -> 6 at 40,50,60s in window (0, 90]: the start gap (40s) and the end
        // gap (30s) are past the 11s threshold, so each extends by half a spacing (5s); the
        // zero point (20s * 2/4 = 10s back) is further away than that, so it does not bind.
        let s = samples(&[(40_000, 2.0), (50_000, 4.0), (60_000, 6.0)]);
        let inc = extrapolated_rate(&s, 0, 90_000, true, false).unwrap();
        assert!(close(inc, 4.0 * 30.0 / 20.0), "{inc}");
        // Counter 1 -> 11 -> 21: the zero point is 20 * 1/20 = 1s before the first sample.
        let s = samples(&[(5_000, 1.0), (15_000, 11.0), (25_000, 21.0)]);
        let inc = extrapolated_rate(&s, 0, 25_000, true, false).unwrap();
        assert!(close(inc, 20.0 * 21.0 / 20.0), "{inc}");
    }

    #[test]
    fn delta_is_not_a_counter() {
        // A gauge going down: no reset correction, no zero-point limit.
        let s = samples(&[(10_000, 10.0), (20_000, 4.0)]);
        let d = extrapolated_rate(&s, 0, 20_000, false, false).unwrap();
        assert!(close(d, -6.0 * 20.0 / 10.0), "{d}");
    }

    #[test]
    fn rate_needs_two_samples() {
        assert_eq!(
            extrapolated_rate(&samples(&[(1, 1.0)]), 0, 10, true, true),
            None
        );
        assert_eq!(extrapolated_rate(&[], 0, 10, true, true), None);
    }

    #[test]
    fn irate_and_idelta_use_last_two_samples() {
        let s = samples(&[(0, 1.0), (10_000, 50.0), (15_000, 60.0)]);
        assert_eq!(instant_delta(&s, true), Some(2.0));
        assert_eq!(instant_delta(&s, false), Some(10.0));
        let reset = samples(&[(0, 100.0), (10_000, 20.0)]);
        assert_eq!(instant_delta(&reset, true), Some(2.0));
        assert_eq!(instant_delta(&reset, false), Some(-80.0));
        assert_eq!(instant_delta(&s[..1], true), None);
    }

    #[test]
    fn over_time_aggregates() {
        let s = samples(&[(1, 3.0), (2, f64::NAN), (3, 1.0), (4, 2.0)]);
        let finite = samples(&[(1, 3.0), (3, 1.0), (4, 2.0)]);
        assert_eq!(sum_over_time(&finite), Some(6.0));
        assert_eq!(avg_over_time(&finite), Some(2.0));
        assert_eq!(min_over_time(&s), Some(1.0));
        assert_eq!(max_over_time(&s), Some(3.0));
        assert_eq!(count_over_time(&s), Some(4.0));
        assert_eq!(last_over_time(&s), Some(2.0));
        assert!(min_over_time(&samples(&[(1, f64::NAN)])).unwrap().is_nan());
        for f in [
            sum_over_time,
            avg_over_time,
            min_over_time,
            count_over_time,
            last_over_time,
        ] {
            assert_eq!(f(&[]), None);
        }
    }
}
