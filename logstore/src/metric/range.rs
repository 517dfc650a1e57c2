//! Range aggregation kernels: pure functions over the samples of one window, oldest first.

use crate::logql::RangeOp;

/// The value of `op` over the samples `points` (timestamps in ns, ascending) of a window of
/// `range_ns` ending at `t_ns`. `None` when the window yields nothing.
pub(crate) fn aggregate(
    op: RangeOp,
    param: Option<f64>,
    points: &[(i64, f64)],
    range_ns: i64,
    t_ns: i64,
) -> Option<f64> {
    if points.is_empty() {
        return None;
    }
    let secs = range_ns as f64 / 1e9;
    let values = || points.iter().map(|p| p.1);
    let sum = || values().sum::<f64>();
    Some(match op {
        RangeOp::CountOverTime => points.len() as f64,
        RangeOp::Rate | RangeOp::BytesRate => sum() / secs,
        RangeOp::BytesOverTime | RangeOp::SumOverTime => sum(),
        // Handled by the caller: it depends on every series at once.
        RangeOp::AbsentOverTime => return None,
        RangeOp::AvgOverTime => mean(points),
        RangeOp::MinOverTime => {
            values().fold(
                f64::INFINITY,
                |a, b| if b < a || b.is_nan() { b } else { a },
            )
        }
        RangeOp::MaxOverTime => {
            values().fold(
                f64::NEG_INFINITY,
                |a, b| if b > a || b.is_nan() { b } else { a },
            )
        }
        RangeOp::StdvarOverTime => variance(points),
        RangeOp::StddevOverTime => variance(points).sqrt(),
        RangeOp::QuantileOverTime => {
            let mut v: Vec<f64> = values().collect();
            quantile(param.unwrap_or(f64::NAN), &mut v)
        }
        RangeOp::FirstOverTime => points[0].1,
        RangeOp::LastOverTime => points[points.len() - 1].1,
        RangeOp::RateCounter => extrapolated_counter_rate(points, range_ns, t_ns)?,
    })
}

fn mean(points: &[(i64, f64)]) -> f64 {
    // Kahan-free incremental mean, as Prometheus computes avg_over_time.
    let mut m = 0.0;
    for (i, (_, v)) in points.iter().enumerate() {
        m += (v - m) / (i as f64 + 1.0);
    }
    m
}

/// Population variance, Welford's method.
fn variance(points: &[(i64, f64)]) -> f64 {
    let (mut n, mut mean, mut m2) = (0.0, 0.0, 0.0);
    for (_, v) in points {
        n += 1.0;
        let d = v - mean;
        mean += d / n;
        m2 += d * (v - mean);
    }
    m2 / n
}

/// Prometheus's quantile: linear interpolation between the closest ranks.
pub(crate) fn quantile(q: f64, v: &mut [f64]) -> f64 {
    if v.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0) as usize;
    let upper = (lower + 1).min(v.len() - 1);
    let w = rank - rank.floor();
    v[lower] * (1.0 - w) + v[upper] * w
}

/// Prometheus's `rate()` over counter samples: resets compensated, then the increase is
/// extrapolated toward the window's edges (by at most half an average sample interval past
/// the first and last sample, and never below zero at the start).
fn extrapolated_counter_rate(points: &[(i64, f64)], range_ns: i64, t_ns: i64) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let (first_t, first_v) = points[0];
    let (last_t, last_v) = points[points.len() - 1];
    let mut increase = last_v - first_v;
    for w in points.windows(2) {
        if w[1].1 < w[0].1 {
            increase += w[0].1;
        }
    }
    let range_start = t_ns - range_ns;
    let secs = |ns: i64| ns as f64 / 1e9;
    let sampled = secs(last_t - first_t);
    let avg_interval = sampled / (points.len() - 1) as f64;
    let mut to_start = secs(first_t - range_start);
    let to_end = secs(t_ns - last_t);
    if increase > 0.0 && first_v >= 0.0 {
        let to_zero = sampled * (first_v / increase);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    let threshold = avg_interval * 1.1;
    let mut extrapolate = sampled;
    extrapolate += if to_start < threshold {
        to_start
    } else {
        avg_interval / 2.0
    };
    extrapolate += if to_end < threshold {
        to_end
    } else {
        avg_interval / 2.0
    };
    Some(increase * (extrapolate / sampled) / secs(range_ns))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pts(v: &[f64]) -> Vec<(i64, f64)> {
        v.iter()
            .enumerate()
            .map(|(i, &x)| ((i as i64 + 1) * 10_000_000_000, x))
            .collect()
    }

    #[test]
    fn kernels() {
        let p = pts(&[1.0, 4.0, 2.0, 3.0]);
        let r = 60_000_000_000;
        let t = 60_000_000_000;
        let a = |op, param| aggregate(op, param, &p, r, t).unwrap();
        assert_eq!(a(RangeOp::CountOverTime, None), 4.0);
        assert_eq!(a(RangeOp::SumOverTime, None), 10.0);
        assert_eq!(a(RangeOp::Rate, None), 10.0 / 60.0);
        assert_eq!(a(RangeOp::AvgOverTime, None), 2.5);
        assert_eq!(a(RangeOp::MinOverTime, None), 1.0);
        assert_eq!(a(RangeOp::MaxOverTime, None), 4.0);
        assert_eq!(a(RangeOp::StdvarOverTime, None), 1.25);
        assert_eq!(a(RangeOp::FirstOverTime, None), 1.0);
        assert_eq!(a(RangeOp::LastOverTime, None), 3.0);
        assert_eq!(a(RangeOp::QuantileOverTime, Some(0.5)), 2.5);
        assert_eq!(a(RangeOp::QuantileOverTime, Some(1.0)), 4.0);
        assert!(aggregate(RangeOp::CountOverTime, None, &[], r, t).is_none());
    }

    #[test]
    fn counter_rate_handles_resets() {
        // 10s apart, 0 → 10 → 20, reset, 5: increase 25 over a window that the samples fill.
        let p = vec![
            (10_000_000_000, 0.0),
            (20_000_000_000, 10.0),
            (30_000_000_000, 20.0),
            (40_000_000_000, 5.0),
        ];
        let rate = aggregate(
            RangeOp::RateCounter,
            None,
            &p,
            40_000_000_000,
            40_000_000_000,
        )
        .unwrap();
        // Extrapolated to the window start (first value 0: no extrapolation below zero).
        assert!((rate - 25.0 / 30.0 * 30.0 / 40.0).abs() < 1e-9, "{rate}");
        assert!(aggregate(RangeOp::RateCounter, None, &p[..1], 1, 1).is_none());
    }
}
