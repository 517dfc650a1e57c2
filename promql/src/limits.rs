//! The per-query budget: how many samples a query may hold and when it must give up.

use crate::error::{Error, TIMEOUT, TOO_MANY_SAMPLES};
use std::time::Instant;

/// Counts the samples a query has loaded or produced and knows its deadline.
///
/// The count is cumulative rather than Prometheus's peak-in-memory figure: the engine keeps
/// every fetched sample for the whole query, so what it loaded is what it holds.
#[derive(Debug)]
pub(crate) struct Limits {
    max_samples: usize,
    samples: usize,
    deadline: Instant,
}

impl Limits {
    pub fn new(max_samples: usize, deadline: Instant) -> Self {
        Limits {
            max_samples,
            samples: 0,
            deadline,
        }
    }

    /// Charges `n` samples to the query; fails once the total passes the limit.
    pub fn add_samples(&mut self, n: usize) -> Result<(), Error> {
        self.samples = self.samples.saturating_add(n);
        if self.samples > self.max_samples {
            return Err(Error::exec(TOO_MANY_SAMPLES));
        }
        Ok(())
    }

    /// When the query must give up.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Fails once the deadline has passed. Called between units of work (a fetch, a step), so
    /// a query overruns by at most one unit.
    pub fn check_deadline(&self) -> Result<(), Error> {
        if Instant::now() >= self.deadline {
            return Err(Error::Timeout(TIMEOUT.to_string()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn sample_limit_is_inclusive() {
        let mut l = Limits::new(10, Instant::now() + Duration::from_secs(60));
        l.add_samples(10).unwrap();
        let err = l.add_samples(1).unwrap_err();
        assert!(matches!(err, Error::Execution(m) if m == TOO_MANY_SAMPLES));
    }

    #[test]
    fn past_deadline_is_a_timeout() {
        let l = Limits::new(10, Instant::now());
        assert!(matches!(l.check_deadline(), Err(Error::Timeout(_))));
    }
}
