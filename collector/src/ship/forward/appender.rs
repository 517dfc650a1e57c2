//! The store wrapper that feeds the remote-write queues with what the store accepted.
//!
//! The store reports how many samples it refused (out of order, duplicate timestamps) but
//! not which, and a receiver that gets one such sample refuses its whole batch with 400. So
//! the wrapper keeps, per series, the newest timestamp it forwarded and forwards only newer
//! samples, mirroring the store's own ordering rule. Series silent for a while are forgotten
//! (two sweeps of [`SEEN_SWEEP_INTERVAL`]) so churn does not grow the map without bound.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use model::{AppendError, AppendOutcome, Appender, Sample, Series};

use super::RemoteWriteQueue;

/// How often series not written since the previous sweep are forgotten.
pub const SEEN_SWEEP_INTERVAL: Duration = Duration::from_secs(15 * 60);

/// An [`Appender`] that appends to `inner`, then queues the accepted samples on every
/// remote-write queue.
pub struct ForwardingAppender {
    inner: Arc<dyn Appender>,
    queues: Vec<Arc<RemoteWriteQueue>>,
    seen: Mutex<Seen>,
}

impl std::fmt::Debug for ForwardingAppender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForwardingAppender")
            .field("queues", &self.queues.len())
            .finish_non_exhaustive()
    }
}

impl ForwardingAppender {
    pub fn new(inner: Arc<dyn Appender>, queues: Vec<Arc<RemoteWriteQueue>>) -> Self {
        ForwardingAppender {
            inner,
            queues,
            seen: Mutex::new(Seen::new()),
        }
    }
}

impl Appender for ForwardingAppender {
    fn append(&self, batch: &[Series]) -> Result<AppendOutcome, AppendError> {
        let outcome = self.inner.append(batch)?;
        if self.queues.is_empty() || outcome.appended == 0 {
            return Ok(outcome);
        }
        // Held while queueing, so two appends of one series reach its shard in the order
        // their timestamps were checked.
        let Ok(mut seen) = self.seen.lock() else {
            return Ok(outcome);
        };
        seen.maybe_sweep();
        for series in batch {
            let fresh = seen.fresh(series);
            if fresh.is_empty() {
                continue;
            }
            for q in &self.queues {
                q.push(&series.labels, &fresh);
            }
        }
        Ok(outcome)
    }
}

/// The newest forwarded timestamp of each series, by label hash, with the sweep epoch in
/// which it was last written.
struct Seen {
    newest: HashMap<u64, (i64, u64)>,
    epoch: u64,
    epoch_started: Instant,
}

impl Seen {
    fn new() -> Self {
        Seen {
            newest: HashMap::new(),
            epoch: 0,
            epoch_started: Instant::now(),
        }
    }

    fn maybe_sweep(&mut self) {
        if self.epoch_started.elapsed() < SEEN_SWEEP_INTERVAL {
            return;
        }
        let epoch = self.epoch;
        self.newest.retain(|_, (_, e)| *e == epoch);
        self.epoch += 1;
        self.epoch_started = Instant::now();
    }

    /// The samples of `series` newer than any forwarded before, in order.
    fn fresh(&mut self, series: &Series) -> Vec<Sample> {
        let mut h = DefaultHasher::new();
        series.labels.hash(&mut h);
        let entry = self
            .newest
            .entry(h.finish())
            .or_insert((i64::MIN, self.epoch));
        entry.1 = self.epoch;
        let mut out = Vec::with_capacity(series.samples.len());
        for s in &series.samples {
            if s.t > entry.0 {
                entry.0 = s.t;
                out.push(*s);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::{Labels, MemStorage};

    fn series(t: &[i64]) -> Series {
        Series {
            labels: Labels::from_pairs([("__name__", "up")]),
            samples: t.iter().map(|&t| Sample { t, v: 1.0 }).collect(),
        }
    }

    #[test]
    fn only_samples_newer_than_the_last_forwarded_pass() {
        let mut seen = Seen::new();
        let ts = |s: Vec<Sample>| s.iter().map(|s| s.t).collect::<Vec<_>>();
        assert_eq!(ts(seen.fresh(&series(&[1, 2, 3]))), [1, 2, 3]);
        assert_eq!(
            ts(seen.fresh(&series(&[3, 2, 4]))),
            [4],
            "dup and older left out"
        );
        seen.epoch_started -= SEEN_SWEEP_INTERVAL;
        seen.maybe_sweep();
        assert_eq!(seen.newest.len(), 1, "written in the last epoch: kept");
        seen.epoch_started -= SEEN_SWEEP_INTERVAL;
        seen.maybe_sweep();
        assert!(
            seen.newest.is_empty(),
            "silent for a whole epoch: forgotten"
        );
    }

    #[tokio::test]
    async fn store_errors_and_refusals_forward_nothing() {
        let store = Arc::new(MemStorage::new());
        let queue = super::super::ForwardConfig::new("http://127.0.0.1:9/w")
            .build()
            .unwrap();
        let app = ForwardingAppender::new(store.clone(), vec![queue.clone()]);
        app.append(&[series(&[10, 20])]).unwrap();
        assert_eq!(queue.pending(), 2);
        // Everything refused as out of order by the store: nothing queued.
        let out = app.append(&[series(&[5])]).unwrap();
        assert_eq!(out.appended, 0);
        assert_eq!(queue.pending(), 2);
        app.append(&[series(&[30])]).unwrap();
        assert_eq!(queue.pending(), 3);
    }
}
