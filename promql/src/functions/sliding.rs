//! Range functions over every step at once: one series' samples and the end of each step's
//! window, in one pass that slides the window `(end - range, end]` forward with two indices
//! instead of two binary searches per step.
//!
//! Where a function allows it, the pass also avoids rescanning the window: counts (`changes`,
//! `resets`, the resets that decide whether `rate` must look at its window) come from prefix
//! counts, `min`/`max_over_time` from a monotonic queue, and `sum`/`avg_over_time` from prefix
//! sums when those are exact (integer values whose magnitudes sum below 2^53, which every
//! request counter and most gauges are). Everything else calls the same window kernel as the
//! step-by-step path, so both paths give the same bits.

use super::range;
use super::RangeKernel;
use crate::summation::Mean;
use model::Sample;
use std::collections::VecDeque;

/// One output point: the index of the step it belongs to and the function's value there.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct StepPoint {
    pub step: usize,
    pub v: f64,
}

/// How a range function is computed over sliding windows.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Sliding {
    /// Any kernel of the window's samples and bounds, called on each step's window.
    Window(RangeKernel),
    /// `rate`, `increase`, `delta`.
    Rate {
        is_counter: bool,
        is_rate: bool,
    },
    Sum,
    Avg,
    Min,
    Max,
    Changes,
    Resets,
}

/// The largest integer up to which every integer is exact in an f64.
const EXACT_INT_LIMIT: f64 = 9_007_199_254_740_992.0;

/// Evaluates `kind` over `samples` (sorted by time) for every window `(end - range, end]` with
/// `end` from `ends`, appending a point for each step whose window gives a value.
///
/// `ends` is normally non-decreasing (steps move forward; `@` holds them still); a step that
/// moves backwards is found by binary search, so any order gives the right answer.
pub(crate) fn eval_steps(
    kind: Sliding,
    samples: &[Sample],
    ends: &[i64],
    range: i64,
    out: &mut Vec<StepPoint>,
) {
    let mut windows = Windows::new(samples, range);
    match kind {
        Sliding::Window(kernel) => {
            for (step, &end) in ends.iter().enumerate() {
                let (lo, hi) = windows.advance(end);
                if let Some(v) = kernel(&samples[lo..hi], end.saturating_sub(range), end) {
                    out.push(StepPoint { step, v });
                }
            }
        }
        Sliding::Rate {
            is_counter,
            is_rate,
        } => {
            // With no reset in the window (the usual case), the counter correction is zero
            // and the window need not be scanned.
            let resets = is_counter.then(|| prefix_count(samples, |a, b| b.v < a.v));
            for (step, &end) in ends.iter().enumerate() {
                let (lo, hi) = windows.advance(end);
                let window = &samples[lo..hi];
                let start = end.saturating_sub(range);
                let v = match (&resets, window) {
                    (Some(r), [first, .., last]) if r[hi] == r[lo + 1] => {
                        range::extrapolate(window, last.v - first.v, start, end, true, is_rate)
                    }
                    _ => range::extrapolated_rate(window, start, end, is_counter, is_rate),
                };
                if let Some(v) = v {
                    out.push(StepPoint { step, v });
                }
            }
        }
        Sliding::Changes | Sliding::Resets => {
            let counts = match kind {
                Sliding::Changes => prefix_count(samples, |a, b| {
                    !(a.v == b.v || (a.v.is_nan() && b.v.is_nan()))
                }),
                _ => prefix_count(samples, |a, b| b.v < a.v),
            };
            for (step, &end) in ends.iter().enumerate() {
                let (lo, hi) = windows.advance(end);
                if hi > lo {
                    let n = counts[hi] - counts[lo + 1];
                    out.push(StepPoint { step, v: n as f64 });
                }
            }
        }
        Sliding::Sum | Sliding::Avg => {
            let avg = matches!(kind, Sliding::Avg);
            let prefix = exact_prefix_sums(samples);
            for (step, &end) in ends.iter().enumerate() {
                let (lo, hi) = windows.advance(end);
                if hi == lo {
                    continue;
                }
                let v = match &prefix {
                    // Exact integers: the difference is the exact sum, which is also what
                    // compensated summation gives for such values.
                    Some(p) => {
                        let sum = p[hi] - p[lo];
                        if avg {
                            sum / (hi - lo) as f64
                        } else {
                            sum
                        }
                    }
                    None if avg => mean(&samples[lo..hi]),
                    None => range::sum_over_time(&samples[lo..hi]).unwrap_or(f64::NAN),
                };
                out.push(StepPoint { step, v });
            }
        }
        Sliding::Min | Sliding::Max => {
            extreme_steps(samples, ends, range, matches!(kind, Sliding::Max), out)
        }
    }
}

/// The window of each step in turn, as index bounds `lo..hi` into the samples.
struct Windows<'s> {
    samples: &'s [Sample],
    range: i64,
    lo: usize,
    hi: usize,
    last_end: i64,
}

impl<'s> Windows<'s> {
    fn new(samples: &'s [Sample], range: i64) -> Self {
        Windows {
            samples,
            range,
            lo: 0,
            hi: 0,
            last_end: i64::MIN,
        }
    }

    /// The bounds of the window ending at `end`.
    fn advance(&mut self, end: i64) -> (usize, usize) {
        let start = end.saturating_sub(self.range);
        if end < self.last_end {
            self.lo = self.samples.partition_point(|s| s.t <= start);
            self.hi = self.samples.partition_point(|s| s.t <= end).max(self.lo);
        } else {
            while self.hi < self.samples.len() && self.samples[self.hi].t <= end {
                self.hi += 1;
            }
            while self.lo < self.hi && self.samples[self.lo].t <= start {
                self.lo += 1;
            }
        }
        self.last_end = end;
        (self.lo, self.hi)
    }
}

/// `counts[k]`: how many of the pairs `(j - 1, j)` with `j < k` satisfy `pred`, so a window
/// `lo..hi` holds `counts[hi] - counts[lo + 1]` of them.
fn prefix_count(samples: &[Sample], pred: impl Fn(&Sample, &Sample) -> bool) -> Vec<usize> {
    let mut counts = Vec::with_capacity(samples.len() + 1);
    counts.push(0);
    let mut n = 0;
    for (j, s) in samples.iter().enumerate() {
        if j > 0 && pred(&samples[j - 1], s) {
            n += 1;
        }
        counts.push(n);
    }
    counts
}

/// Prefix sums of the values when every one of them is exact: all values integers and the sum
/// of their magnitudes below 2^53, so no partial sum of any window rounds. (The running
/// magnitude is exact while below 2^53 and cannot round below it once it gets there, so the
/// test is sound.)
fn exact_prefix_sums(samples: &[Sample]) -> Option<Vec<f64>> {
    let mut magnitude = 0.0;
    let mut prefix = Vec::with_capacity(samples.len() + 1);
    prefix.push(0.0);
    let mut sum = 0.0;
    for s in samples {
        if !s.v.is_finite() || s.v.fract() != 0.0 {
            return None;
        }
        magnitude += s.v.abs();
        if magnitude >= EXACT_INT_LIMIT {
            return None;
        }
        sum += s.v;
        prefix.push(sum);
    }
    Some(prefix)
}

fn mean(samples: &[Sample]) -> f64 {
    let mut m = Mean::default();
    for s in samples {
        m.add(s.v);
    }
    m.value().unwrap_or(f64::NAN)
}

/// `max_over_time` (`max`) or `min_over_time` with a monotonic queue of the window's non-NaN
/// samples. The queue keeps the earliest of equal values in front, which is the sample the
/// window kernel's left-to-right fold picks (it matters for -0 and +0); a window of NaNs only
/// gives NaN, as the fold does.
fn extreme_steps(
    samples: &[Sample],
    ends: &[i64],
    range: i64,
    max: bool,
    out: &mut Vec<StepPoint>,
) {
    let beats = |new: f64, old: f64| if max { new > old } else { new < old };
    let mut queue: VecDeque<usize> = VecDeque::new();
    let (mut lo, mut hi) = (0usize, 0usize);
    let mut last_end = i64::MIN;
    for (step, &end) in ends.iter().enumerate() {
        let start = end.saturating_sub(range);
        if end < last_end {
            // Steps never move backwards in practice; restart the queue if they do.
            queue.clear();
            lo = samples.partition_point(|s| s.t <= start);
            hi = lo;
        }
        last_end = end;
        while hi < samples.len() && samples[hi].t <= end {
            let v = samples[hi].v;
            if !v.is_nan() {
                while queue.back().is_some_and(|&b| beats(v, samples[b].v)) {
                    queue.pop_back();
                }
                queue.push_back(hi);
            }
            hi += 1;
        }
        while lo < hi && samples[lo].t <= start {
            lo += 1;
        }
        while queue.front().is_some_and(|&f| f < lo) {
            queue.pop_front();
        }
        if hi > lo {
            let v = queue.front().map_or(f64::NAN, |&f| samples[f].v);
            out.push(StepPoint { step, v });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::selector::window;

    /// xorshift64*, so the cases are the same on every run.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// A series with irregular spacing and the values that make kernels branch: counter
    /// resets, repeats, NaN, ±0, infinities, fractions, huge integers.
    fn series(rng: &mut Rng, n: usize) -> Vec<Sample> {
        let mut t = 0;
        let mut v = 0.0;
        (0..n)
            .map(|_| {
                t += 1 + rng.below(20) as i64;
                v = match rng.below(20) {
                    0 => 0.0,
                    1 => f64::NAN,
                    2 => -0.0,
                    3 => f64::INFINITY,
                    4 => v,
                    5 => 1e17 + rng.below(1000) as f64,
                    6 => v + rng.below(100) as f64 / 7.0,
                    _ => v + rng.below(10) as f64,
                };
                Sample { t, v }
            })
            .collect()
    }

    /// Integer-valued counters, the case the exact prefix sums serve.
    fn counter(rng: &mut Rng, n: usize) -> Vec<Sample> {
        let mut v = 0.0;
        (0..n)
            .map(|i| {
                v = if rng.below(30) == 0 {
                    0.0
                } else {
                    v + rng.below(50) as f64
                };
                Sample {
                    t: i as i64 * 10 + rng.below(3) as i64,
                    v,
                }
            })
            .collect()
    }

    fn same(a: f64, b: f64) -> bool {
        a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
    }

    /// Every sliding kind against its window kernel called step by step, bit for bit.
    #[test]
    fn sliding_matches_the_window_kernels_step_by_step() {
        let kinds: Vec<(&str, Sliding, RangeKernel)> = vec![
            (
                "rate",
                Sliding::Rate {
                    is_counter: true,
                    is_rate: true,
                },
                |s, a, b| range::extrapolated_rate(s, a, b, true, true),
            ),
            (
                "delta",
                Sliding::Rate {
                    is_counter: false,
                    is_rate: false,
                },
                |s, a, b| range::extrapolated_rate(s, a, b, false, false),
            ),
            ("sum", Sliding::Sum, |s, _, _| range::sum_over_time(s)),
            ("avg", Sliding::Avg, |s, _, _| range::avg_over_time(s)),
            ("min", Sliding::Min, |s, _, _| range::min_over_time(s)),
            ("max", Sliding::Max, |s, _, _| range::max_over_time(s)),
            ("changes", Sliding::Changes, |s, _, _| range::changes(s)),
            ("resets", Sliding::Resets, |s, _, _| range::resets(s)),
        ];
        let mut rng = Rng(0x1234_5678_9ABC_DEF1);
        for case in 0..60 {
            let n = 1 + rng.below(200) as usize;
            let samples = if case % 2 == 0 {
                series(&mut rng, n)
            } else {
                counter(&mut rng, n)
            };
            let range = 1 + rng.below(150) as i64;
            let step = 1 + rng.below(40) as i64;
            let mut ends: Vec<i64> = (0..80).map(|i| -50 + i * step).collect();
            if case % 7 == 0 {
                // `@` holds the window still; an odd order must still be right.
                ends = vec![500; 5];
                ends.extend([300, 900, 100]);
            }
            for (name, kind, kernel) in &kinds {
                let mut got = Vec::new();
                eval_steps(*kind, &samples, &ends, range, &mut got);
                let want: Vec<StepPoint> = ends
                    .iter()
                    .enumerate()
                    .filter_map(|(step, &end)| {
                        let w = window(&samples, end, range);
                        kernel(w, end - range, end).map(|v| StepPoint { step, v })
                    })
                    .collect();
                assert_eq!(got.len(), want.len(), "{name} case {case}");
                for (g, w) in got.iter().zip(&want) {
                    assert!(
                        g.step == w.step && same(g.v, w.v),
                        "{name} case {case}: got {g:?}, want {w:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn prefix_sums_refuse_inexact_values() {
        let s = |v: f64| Sample { t: 0, v };
        assert!(exact_prefix_sums(&[s(1.0), s(2.0)]).is_some());
        assert!(exact_prefix_sums(&[s(1.5)]).is_none());
        assert!(exact_prefix_sums(&[s(f64::NAN)]).is_none());
        assert!(exact_prefix_sums(&[s(EXACT_INT_LIMIT - 1.0), s(1.0)]).is_none());
        assert!(exact_prefix_sums(&[s(EXACT_INT_LIMIT - 2.0), s(1.0)]).is_some());
    }

    #[test]
    fn max_keeps_the_earliest_of_equal_zeros() {
        let s = [
            Sample { t: 1, v: -0.0 },
            Sample { t: 2, v: 0.0 },
            Sample { t: 3, v: f64::NAN },
        ];
        let mut out = Vec::new();
        eval_steps(Sliding::Max, &s, &[2, 3, 10], 2, &mut out);
        // (0, 2]: -0 first; (1, 3]: +0 then NaN; (8, 10]: nothing.
        assert!(out[0].v.is_sign_negative() && out[0].v == 0.0);
        assert!(out[1].v.is_sign_positive() && out[1].v == 0.0);
        assert_eq!(out.len(), 2);
    }
}
