//! Compensated summation and averaging, shared by `sum`/`avg` and `sum_over_time`/
//! `avg_over_time` so that both give the same digits Prometheus does.

/// Kahan–Babuška–Neumaier summation: a running sum plus the rounding error it lost, so that
/// adding many values of different magnitude does not drift.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct KahanSum {
    sum: f64,
    compensation: f64,
}

impl KahanSum {
    pub fn add(&mut self, x: f64) {
        let t = self.sum + x;
        if t.is_infinite() {
            // Once the sum overflows the compensation is meaningless; keeping it would turn
            // an infinite result into NaN.
            self.compensation = 0.0;
        } else if self.sum.abs() >= x.abs() {
            self.compensation += (self.sum - t) + x;
        } else {
            self.compensation += (x - t) + self.sum;
        }
        self.sum = t;
    }

    pub fn value(&self) -> f64 {
        self.sum + self.compensation
    }

    fn raw_sum(&self) -> f64 {
        self.sum
    }
}

/// An arithmetic mean. It divides a compensated sum by the count, which is the most accurate
/// way, until the sum would overflow; from then on it keeps an incremental mean, which cannot.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Mean {
    sum: KahanSum,
    count: f64,
    /// `Some` once the direct sum overflowed; the incremental mean and its compensation.
    incremental: Option<KahanSum>,
}

impl Mean {
    pub fn add(&mut self, x: f64) {
        self.count += 1.0;
        if let Some(mean) = &mut self.incremental {
            let current = mean.value();
            mean.add(x / self.count - current / self.count);
            return;
        }
        let mut next = self.sum;
        next.add(x);
        if next.raw_sum().is_infinite() && x.is_finite() && self.sum.raw_sum().is_finite() {
            // Switch to the incremental form, seeded with the mean so far.
            let previous = self.count - 1.0;
            let mut mean = KahanSum::default();
            if previous > 0.0 {
                mean.add(self.sum.value() / previous);
            }
            let current = mean.value();
            mean.add(x / self.count - current / self.count);
            self.incremental = Some(mean);
        } else {
            self.sum = next;
        }
    }

    /// The mean, or `None` when nothing was added.
    pub fn value(&self) -> Option<f64> {
        if self.count == 0.0 {
            return None;
        }
        Some(match &self.incremental {
            Some(mean) => mean.value(),
            None => self.sum.value() / self.count,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kahan_keeps_small_terms() {
        let mut k = KahanSum::default();
        for x in [1e16, 1.0, -1e16] {
            k.add(x);
        }
        assert_eq!(k.value(), 1.0);
    }

    #[test]
    fn mean_survives_overflowing_sum() {
        let mut m = Mean::default();
        for x in [f64::MAX, f64::MAX, f64::MAX] {
            m.add(x);
        }
        let v = m.value().unwrap();
        assert!((v - f64::MAX).abs() / f64::MAX < 1e-12, "{v}");
        let mut m = Mean::default();
        for x in [1.0, 2.0, 4.0] {
            m.add(x);
        }
        assert_eq!(m.value(), Some(7.0 / 3.0));
        assert_eq!(Mean::default().value(), None);
    }
}
