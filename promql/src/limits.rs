//! The per-query budget: how many samples a query may hold and when it must give up.

use crate::error::{Error, CANCELED, TIMEOUT, TOO_MANY_SAMPLES};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// When a query must stop: at its deadline, or as soon as whoever asked for it has gone away
/// (the flag is set when the HTTP request is dropped).
#[derive(Clone, Debug)]
pub(crate) struct Stop {
    deadline: Instant,
    canceled: Option<Arc<AtomicBool>>,
}

impl Stop {
    pub fn at(deadline: Instant) -> Self {
        Stop {
            deadline,
            canceled: None,
        }
    }

    /// Also stops once `flag` is set.
    pub fn or_when(mut self, flag: Option<Arc<AtomicBool>>) -> Self {
        self.canceled = flag;
        self
    }

    /// Fails once the query was canceled or its deadline has passed. Called between units of
    /// work (a fetch, a step, a block of series), so a query overruns by at most one unit.
    pub fn check(&self) -> Result<(), Error> {
        if self
            .canceled
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Relaxed))
        {
            return Err(Error::Canceled(CANCELED.to_string()));
        }
        if Instant::now() >= self.deadline {
            return Err(Error::Timeout(TIMEOUT.to_string()));
        }
        Ok(())
    }
}

/// Counts the samples a query has loaded or produced and knows its deadline.
///
/// The count is cumulative rather than Prometheus's peak-in-memory figure: the engine keeps
/// every fetched sample for the whole query, so what it loaded is what it holds.
#[derive(Debug)]
pub(crate) struct Limits {
    max_samples: usize,
    samples: usize,
    stop: Stop,
}

impl Limits {
    pub fn new(max_samples: usize, stop: Stop) -> Self {
        Limits {
            max_samples,
            samples: 0,
            stop,
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
    pub fn stop(&self) -> Stop {
        self.stop.clone()
    }

    /// Fails once the query was canceled or its deadline has passed (see [`Stop::check`]).
    pub fn check_deadline(&self) -> Result<(), Error> {
        self.stop.check()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn sample_limit_is_inclusive() {
        let mut l = Limits::new(10, Stop::at(Instant::now() + Duration::from_secs(60)));
        l.add_samples(10).unwrap();
        let err = l.add_samples(1).unwrap_err();
        assert!(matches!(err, Error::Execution(m) if m == TOO_MANY_SAMPLES));
    }

    #[test]
    fn past_deadline_is_a_timeout() {
        let l = Limits::new(10, Stop::at(Instant::now()));
        assert!(matches!(l.check_deadline(), Err(Error::Timeout(_))));
    }

    #[test]
    fn a_set_flag_cancels_before_the_deadline() {
        let flag = Arc::new(AtomicBool::new(false));
        let stop = Stop::at(Instant::now() + Duration::from_secs(60)).or_when(Some(flag.clone()));
        assert!(stop.check().is_ok());
        flag.store(true, Ordering::Relaxed);
        assert!(matches!(stop.check(), Err(Error::Canceled(m)) if m == CANCELED));
    }
}
