//! One shard of a remote-write queue: a bounded buffer of samples and the task that sends
//! them, one request at a time, so the samples of a series (always hashed to the same shard)
//! reach the receiver in order even across retries.
//!
//! A request leaves when `max_samples_per_send` samples are waiting or the oldest waiting
//! sample has waited `batch_send_deadline`. When the buffer holds `capacity` samples, the
//! oldest are dropped and counted: ingestion never waits for a receiver (see the module docs
//! of `forward` for why).

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use model::{Labels, Sample, Series};
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use super::{QueueShared, Timing};
use crate::ship::remote_write::encode;
use crate::ship::retry::{deliver, Delivery, Request};

/// Samples waiting in one shard, oldest first, with the series they belong to.
#[derive(Debug, Default)]
struct Buffer {
    entries: VecDeque<(Arc<Labels>, Sample)>,
    /// When the oldest waiting sample arrived; the batch deadline counts from here.
    oldest_at: Option<Instant>,
}

/// A shard's buffer and the signal that wakes its sender.
#[derive(Debug)]
pub(crate) struct Shard {
    buffer: Mutex<Buffer>,
    wake: Notify,
    capacity: usize,
    max_per_send: usize,
}

impl Shard {
    pub(crate) fn new(capacity: usize, max_per_send: usize) -> Self {
        Shard {
            buffer: Mutex::default(),
            wake: Notify::new(),
            capacity,
            max_per_send,
        }
    }

    /// Appends the samples of one series; returns how many old samples were dropped to make
    /// room.
    pub(crate) fn push(&self, labels: Arc<Labels>, samples: &[Sample]) -> usize {
        let Ok(mut buf) = self.buffer.lock() else {
            return samples.len();
        };
        let was_empty = buf.entries.is_empty();
        if was_empty {
            buf.oldest_at = Some(Instant::now());
        }
        buf.entries
            .extend(samples.iter().map(|s| (labels.clone(), *s)));
        let over = buf.entries.len().saturating_sub(self.capacity);
        buf.entries.drain(..over);
        let len = buf.entries.len();
        drop(buf);
        // Wake the sender when a batch is full, or when the first sample starts the deadline.
        if len >= self.max_per_send || was_empty {
            self.wake.notify_one();
        }
        over
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.buffer.lock().map_or(0, |b| b.entries.len())
    }

    /// Takes up to `max_per_send` samples if a batch is due (`flush` makes any waiting sample
    /// due); otherwise says how long until the deadline makes it due.
    fn take_due(&self, timing: &Timing, flush: bool) -> Result<Vec<Series>, Option<Instant>> {
        let Ok(mut buf) = self.buffer.lock() else {
            return Err(None);
        };
        let Some(oldest) = buf.oldest_at.filter(|_| !buf.entries.is_empty()) else {
            return Err(None);
        };
        let due_at = oldest + timing.batch_send_deadline;
        if !flush && buf.entries.len() < self.max_per_send && Instant::now() < due_at {
            return Err(Some(due_at));
        }
        let n = buf.entries.len().min(self.max_per_send);
        let taken: Vec<_> = buf.entries.drain(..n).collect();
        buf.oldest_at = (!buf.entries.is_empty()).then(Instant::now);
        Ok(group_by_series(taken))
    }
}

/// Groups consecutive samples of the same series into one `TimeSeries` each, keeping order.
fn group_by_series(entries: Vec<(Arc<Labels>, Sample)>) -> Vec<Series> {
    let mut out: Vec<Series> = Vec::new();
    for (labels, sample) in entries {
        match out.last_mut() {
            Some(last) if last.labels == *labels => last.samples.push(sample),
            _ => out.push(Series {
                labels: (*labels).clone(),
                samples: vec![sample],
            }),
        }
    }
    out
}

/// Sends what `shard` holds until `stop` says so and the shard is empty, or `abort` fires.
/// `gate` holds the first send back until the shards this one replaces have drained, so a
/// series moved by resharding stays in order.
pub(crate) async fn run_sender(
    shard: Arc<Shard>,
    queue: Arc<QueueShared>,
    mut gate: watch::Receiver<bool>,
    stop: CancellationToken,
    abort: CancellationToken,
) {
    if gate.wait_for(|open| *open).await.is_err() {
        return;
    }
    loop {
        let flush = stop.is_cancelled();
        let series = match shard.take_due(&queue.timing, flush) {
            Ok(series) => series,
            Err(_) if flush => return,
            Err(due_at) => {
                let sleep = async {
                    match due_at {
                        Some(at) => tokio::time::sleep_until(at.into()).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = abort.cancelled() => return,
                    _ = stop.cancelled() => {}
                    _ = shard.wake.notified() => {}
                    _ = sleep => {}
                }
                continue;
            }
        };
        let samples: usize = series.iter().map(|s| s.samples.len()).sum();
        let body = encode(&series, Vec::new());
        let bytes = body.len();
        let req = Request {
            url: queue.url.clone(),
            headers: queue.headers.current(),
            body,
            retry_429: queue.timing.retry_on_http_429,
        };
        let started = Instant::now();
        let stats = &queue.stats;
        let on_retry = || {
            stats.retried.fetch_add(samples as u64, Ordering::Relaxed);
            stats.failing.store(true, Ordering::Relaxed);
        };
        let delivery = deliver(
            queue.client.clone(),
            req,
            queue.timing.backoff,
            abort.clone(),
            on_retry,
        )
        .await;
        stats.pending.fetch_sub(samples as u64, Ordering::Relaxed);
        match delivery {
            Delivery::Delivered { .. } => {
                stats.failing.store(false, Ordering::Relaxed);
                stats.sent.fetch_add(samples as u64, Ordering::Relaxed);
                stats.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
                stats.send_nanos.fetch_add(
                    u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX),
                    Ordering::Relaxed,
                );
                stats.batches.fetch_add(1, Ordering::Relaxed);
            }
            Delivery::Rejected { status, body } => {
                stats.failed.fetch_add(samples as u64, Ordering::Relaxed);
                tracing::error!(
                    remote_name = %queue.name,
                    status,
                    samples,
                    %body,
                    "remote write rejected a batch, dropped it"
                );
            }
            Delivery::Aborted => {
                stats.dropped.fetch_add(samples as u64, Ordering::Relaxed);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(name: &str) -> Arc<Labels> {
        Arc::new(Labels::from_pairs([("__name__", name)]))
    }

    fn samples(ts: std::ops::Range<i64>) -> Vec<Sample> {
        ts.map(|t| Sample { t, v: t as f64 }).collect()
    }

    #[test]
    fn over_capacity_drops_the_oldest_samples() {
        let shard = Shard::new(3, 10);
        assert_eq!(shard.push(labels("a"), &samples(0..2)), 0);
        assert_eq!(shard.push(labels("b"), &samples(2..5)), 2);
        assert_eq!(shard.len(), 3);
        let timing = Timing::for_tests();
        let batch = shard.take_due(&timing, true).unwrap();
        assert_eq!(batch.len(), 1, "a's samples were dropped");
        assert_eq!(batch[0].samples, samples(2..5));
    }

    #[test]
    fn a_batch_is_due_when_full_or_at_the_deadline() {
        let shard = Shard::new(100, 3);
        let mut timing = Timing::for_tests();
        timing.batch_send_deadline = std::time::Duration::from_secs(3600);
        shard.push(labels("a"), &samples(0..2));
        assert!(matches!(shard.take_due(&timing, false), Err(Some(_))));
        shard.push(labels("b"), &samples(0..2));
        let batch = shard.take_due(&timing, false).unwrap();
        let sizes: Vec<_> = batch.iter().map(|s| s.samples.len()).collect();
        assert_eq!(sizes, [2, 1], "max_samples_per_send splits a series");
        assert_eq!(shard.len(), 1);
        timing.batch_send_deadline = std::time::Duration::ZERO;
        assert_eq!(shard.take_due(&timing, false).unwrap()[0].samples.len(), 1);
        assert!(matches!(shard.take_due(&timing, false), Err(None)));
    }
}
