//! Remote write out: the server forwards every sample it accepts to the receivers in its
//! `remote_write` config, with Prometheus's queue semantics.
//!
//! - [`ForwardingAppender`] wraps the store: what the store accepts is handed to every
//!   [`RemoteWriteQueue`], in order per series.
//! - A queue adds the external labels, applies `write_relabel_configs`, and hashes each
//!   series to one of its shards (`shard.rs`); each shard sends batches of
//!   `max_samples_per_send` or what `batch_send_deadline` gathered, one request at a time,
//!   retrying network errors, 5xx (and 429 with `retry_on_http_429`) with backoff, and
//!   dropping a batch any other 4xx refuses, as Prometheus does.
//! - Every ten seconds the queue computes the shards it needs from its input rate, its
//!   backlog and the time a sample takes to send, and reshards between `min_shards` and
//!   `max_shards`: the old shards drain before the new ones send, so no series goes out of
//!   order.
//!
//! Each queue's client carries the entry's `tls_config` and proxy (`httpconf`); its
//! credentials are re-read per request by `auth.rs`.
//!
//! Memory is bounded by `capacity` samples per shard. When a shard is full its oldest
//! samples are dropped and counted (`prometheus_remote_storage_samples_dropped_total`).
//! Prometheus instead stops reading its WAL, which it can because the WAL keeps the samples;
//! here the queue is fed by ingestion itself, and blocking it would turn a slow receiver into
//! failed writes and stalled rule evaluation on this server, which stays the source of truth.

mod appender;
mod auth;
mod metrics;
mod shard;

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use model::{Labels, RelabelConfig, Sample};
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_ENCODING, CONTENT_TYPE};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use crate::httpconf::{Auth, Secret};
pub use appender::ForwardingAppender;
pub use metrics::render_metrics;

use super::check_url;
use super::retry::Backoff;
use crate::httpconf::{HttpClientConfig, ProxyConfig, TlsConfig};
use crate::Error;
use auth::RequestHeaders;
use shard::Shard;

/// Samples buffered per shard: Prometheus 2.42's `queue_config.capacity`.
pub const DEFAULT_SHARD_CAPACITY: usize = 2500;
/// Prometheus 2.42's `queue_config.max_shards`.
pub const DEFAULT_MAX_SHARDS: usize = 200;
/// Prometheus 2.42's `queue_config.min_shards`.
pub const DEFAULT_MIN_SHARDS: usize = 1;
/// Samples per request: Prometheus 2.42's `queue_config.max_samples_per_send`.
pub const DEFAULT_FORWARD_MAX_SAMPLES_PER_SEND: usize = 500;
/// Longest a sample waits for its batch to fill: `queue_config.batch_send_deadline`.
pub const DEFAULT_BATCH_SEND_DEADLINE: Duration = Duration::from_secs(5);
/// Timeout of one request: `remote_timeout`.
pub const DEFAULT_REMOTE_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the shard count is reconsidered (Prometheus's `shardUpdateDuration`).
pub const RESHARD_INTERVAL: Duration = Duration::from_secs(10);
/// A new shard count must differ from the current one by more than this fraction.
const RESHARD_TOLERANCE: f64 = 0.3;
/// How long shutdown waits for the queues to drain before dropping what is left.
pub const SHUTDOWN_FLUSH_DEADLINE: Duration = Duration::from_secs(10);
/// The `User-Agent` of forwarded requests.
pub const SERVER_USER_AGENT: &str = concat!("vigil/", env!("CARGO_PKG_VERSION"));

/// `queue_config`.
#[derive(Clone, Debug, PartialEq)]
pub struct QueueConfig {
    /// Samples buffered per shard; default [`DEFAULT_SHARD_CAPACITY`].
    pub capacity: usize,
    /// Default [`DEFAULT_MAX_SHARDS`].
    pub max_shards: usize,
    /// Shards at start and never fewer; default [`DEFAULT_MIN_SHARDS`].
    pub min_shards: usize,
    /// Default [`DEFAULT_FORWARD_MAX_SAMPLES_PER_SEND`].
    pub max_samples_per_send: usize,
    /// Default [`DEFAULT_BATCH_SEND_DEADLINE`].
    pub batch_send_deadline: Duration,
    /// `min_backoff` and `max_backoff`; default 30 ms and 5 s.
    pub backoff: Backoff,
    /// Retry 429 instead of dropping the batch; default false, as in Prometheus 2.42.
    pub retry_on_http_429: bool,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            capacity: DEFAULT_SHARD_CAPACITY,
            max_shards: DEFAULT_MAX_SHARDS,
            min_shards: DEFAULT_MIN_SHARDS,
            max_samples_per_send: DEFAULT_FORWARD_MAX_SAMPLES_PER_SEND,
            batch_send_deadline: DEFAULT_BATCH_SEND_DEADLINE,
            backoff: Backoff::default(),
            retry_on_http_429: false,
        }
    }
}

/// One `remote_write` entry.
#[derive(Clone, Debug)]
pub struct ForwardConfig {
    /// The `remote_name` label of the queue's metrics; defaults to a hash of the URL.
    pub name: Option<String>,
    pub url: String,
    /// Default [`DEFAULT_REMOTE_TIMEOUT`].
    pub remote_timeout: Duration,
    /// Extra headers on every request; the protocol's own headers cannot be overridden.
    pub headers: Vec<(String, String)>,
    pub auth: Option<Auth>,
    /// `tls_config`: the receiver's CA, a client certificate, `insecure_skip_verify`.
    pub tls: TlsConfig,
    /// `proxy_url`, `no_proxy`, `proxy_from_environment`; by default no proxy, as in
    /// Prometheus.
    pub proxy: ProxyConfig,
    pub write_relabel_configs: Vec<RelabelConfig>,
    /// `global.external_labels`, added to every series that lacks them, before relabeling.
    pub external_labels: Labels,
    pub queue: QueueConfig,
}

impl ForwardConfig {
    pub fn new(url: impl Into<String>) -> Self {
        ForwardConfig {
            name: None,
            url: url.into(),
            remote_timeout: DEFAULT_REMOTE_TIMEOUT,
            headers: Vec::new(),
            auth: None,
            tls: TlsConfig::default(),
            proxy: ProxyConfig::default(),
            write_relabel_configs: Vec::new(),
            external_labels: Labels::empty(),
            queue: QueueConfig::default(),
        }
    }

    /// Checks the settings, reads the credentials once, and builds the queue; it sends
    /// nothing until [`RemoteWriteQueue::run`] is spawned.
    pub fn build(self) -> Result<Arc<RemoteWriteQueue>, Error> {
        check_url("remote_write.url", &self.url)?;
        let q = &self.queue;
        let bad = |reason: &str| Error::Config {
            field: "remote_write.queue_config",
            reason: reason.to_string(),
        };
        if q.capacity == 0 || q.max_samples_per_send == 0 || q.min_shards == 0 {
            return Err(bad(
                "capacity, max_samples_per_send and min_shards must be positive",
            ));
        }
        if q.max_shards < q.min_shards {
            return Err(bad("max_shards must not be less than min_shards"));
        }
        if q.backoff.max < q.backoff.min {
            return Err(bad("max_backoff must not be less than min_backoff"));
        }
        let mut base = HeaderMap::new();
        base.insert(CONTENT_ENCODING, HeaderValue::from_static("snappy"));
        base.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-protobuf"),
        );
        base.insert(
            "X-Prometheus-Remote-Write-Version",
            HeaderValue::from_static("0.1.0"),
        );
        let headers = RequestHeaders::new(base, &self.headers, self.auth.clone())?;
        // Credentials stay with `headers`, which keeps the last value read when a secret
        // file goes missing; the client carries TLS and the proxy.
        let http = HttpClientConfig {
            auth: None,
            tls: self.tls.clone(),
            proxy: self.proxy.clone(),
            follow_redirects: true,
        };
        let builder = reqwest::Client::builder()
            .user_agent(SERVER_USER_AGENT)
            .timeout(self.remote_timeout);
        let client = http
            .build(builder)
            .map_err(|e| Error::Config {
                field: "remote_write",
                reason: e.to_string(),
            })?
            .client()
            .clone();
        let name = self.name.clone().unwrap_or_else(|| {
            let mut h = DefaultHasher::new();
            self.url.hash(&mut h);
            format!("{:06x}", h.finish() & 0xff_ffff)
        });
        let shared = Arc::new(QueueShared {
            name,
            url: self.url.clone(),
            client,
            headers,
            timing: Timing {
                batch_send_deadline: q.batch_send_deadline,
                backoff: q.backoff,
                retry_on_http_429: q.retry_on_http_429,
            },
            stats: QueueStats::default(),
        });
        shared
            .stats
            .shards
            .store(q.min_shards as u64, Ordering::Relaxed);
        Ok(Arc::new(RemoteWriteQueue {
            shards: RwLock::new(new_shards(q.min_shards, q)),
            flush_deadline: SHUTDOWN_FLUSH_DEADLINE,
            shared,
            cfg: self,
        }))
    }
}

/// What a shard's sender needs to know about sending.
#[derive(Clone, Debug)]
pub(crate) struct Timing {
    pub batch_send_deadline: Duration,
    pub backoff: Backoff,
    pub retry_on_http_429: bool,
}

#[cfg(test)]
impl Timing {
    pub(crate) fn for_tests() -> Timing {
        Timing {
            batch_send_deadline: Duration::from_millis(10),
            backoff: Backoff {
                min: Duration::from_millis(5),
                max: Duration::from_millis(20),
            },
            retry_on_http_429: false,
        }
    }
}

/// A queue's counters, in samples unless named otherwise; read by [`render_metrics`].
#[derive(Debug, Default)]
pub(crate) struct QueueStats {
    /// Handed to the queue, before relabeling.
    pub samples_in: AtomicU64,
    /// Delivered (2xx).
    pub sent: AtomicU64,
    /// Refused for good by the receiver (a 4xx, or 429 without `retry_on_http_429`).
    pub failed: AtomicU64,
    /// In attempts that failed and were retried, once per attempt.
    pub retried: AtomicU64,
    /// Dropped before sending: by relabeling, a full shard, or shutdown.
    pub dropped: AtomicU64,
    /// The part of `dropped` that a full shard pushed out.
    pub overflowed: AtomicU64,
    /// Buffered or in flight.
    pub pending: AtomicU64,
    /// Compressed bytes delivered.
    pub bytes: AtomicU64,
    /// Time spent in delivered requests, and their count, for the shard calculation.
    pub send_nanos: AtomicU64,
    pub batches: AtomicU64,
    pub shards: AtomicU64,
    pub desired_shards: AtomicU64,
    /// True while the last attempt of some shard failed; resharding waits it out.
    pub failing: AtomicBool,
}

/// What every shard of a queue shares.
#[derive(Debug)]
pub(crate) struct QueueShared {
    pub name: String,
    pub url: String,
    pub client: reqwest::Client,
    pub headers: RequestHeaders,
    pub timing: Timing,
    pub stats: QueueStats,
}

fn new_shards(n: usize, q: &QueueConfig) -> Arc<Vec<Arc<Shard>>> {
    Arc::new(
        (0..n)
            .map(|_| Arc::new(Shard::new(q.capacity, q.max_samples_per_send)))
            .collect(),
    )
}

/// One remote-write destination; see the module docs.
#[derive(Debug)]
pub struct RemoteWriteQueue {
    cfg: ForwardConfig,
    shared: Arc<QueueShared>,
    /// The current shards. Pushes hold the read lock while they push, so once a reshard has
    /// swapped in new shards (under the write lock) nothing reaches the old ones.
    shards: RwLock<Arc<Vec<Arc<Shard>>>>,
    /// [`SHUTDOWN_FLUSH_DEADLINE`]; shorter in tests.
    flush_deadline: Duration,
}

impl RemoteWriteQueue {
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    pub fn url(&self) -> &str {
        &self.shared.url
    }

    /// Samples buffered or in flight.
    pub fn pending(&self) -> u64 {
        self.shared.stats.pending.load(Ordering::Relaxed)
    }

    /// Queues the samples of one series: external labels, relabeling, then its shard.
    /// Never blocks on the receiver.
    pub fn push(&self, labels: &Labels, samples: &[Sample]) {
        if samples.is_empty() {
            return;
        }
        let stats = &self.shared.stats;
        let n = samples.len() as u64;
        stats.samples_in.fetch_add(n, Ordering::Relaxed);
        let mut labels = labels.clone();
        for l in self.cfg.external_labels.iter() {
            if labels.get(&l.name).is_none() {
                labels = labels.with(&l.name, &l.value);
            }
        }
        let kept = model::relabel(&self.cfg.write_relabel_configs, labels);
        let Some(labels) = kept.filter(|l| !l.is_empty()) else {
            stats.dropped.fetch_add(n, Ordering::Relaxed);
            return;
        };
        let mut h = DefaultHasher::new();
        labels.hash(&mut h);
        let hash = h.finish();
        let Ok(shards) = self.shards.read() else {
            return;
        };
        // The modulus of a u64 by a usize shard count always fits a usize.
        let i = (hash % shards.len() as u64) as usize;
        stats.pending.fetch_add(n, Ordering::Relaxed);
        let over = shards[i].push(Arc::new(labels), samples) as u64;
        if over > 0 {
            stats.pending.fetch_sub(over, Ordering::Relaxed);
            stats.dropped.fetch_add(over, Ordering::Relaxed);
            stats.overflowed.fetch_add(over, Ordering::Relaxed);
        }
    }

    /// Sends until `shutdown`, resharding as the load asks; then drains for up to
    /// [`SHUTDOWN_FLUSH_DEADLINE`] and counts what is left as dropped.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let abort = CancellationToken::new();
        let current = self.shards.read().map(|s| s.clone()).unwrap_or_default();
        let mut generation = self.spawn_senders(current, None, &abort);
        let mut load = LoadSample::now(&self.shared.stats);
        let mut overflowed = 0;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(RESHARD_INTERVAL) => {}
            }
            let now = LoadSample::now(&self.shared.stats);
            let total = self.shared.stats.overflowed.load(Ordering::Relaxed);
            if total > overflowed {
                tracing::warn!(
                    remote_name = %self.shared.name,
                    dropped_samples = total - overflowed,
                    "remote write queue full, dropped the oldest samples"
                );
                overflowed = total;
            }
            let current = generation.shards.len();
            let desired = self.desired_shards(&load, &now, current);
            load = now;
            if desired != current {
                tracing::info!(remote_name = %self.shared.name, from = current, to = desired, "resharding");
                generation = self.reshard(generation, desired, &abort, &shutdown).await;
            }
        }
        generation.stop.cancel();
        if tokio::time::timeout(self.flush_deadline, generation.join())
            .await
            .is_err()
        {
            abort.cancel();
        }
        generation.join().await;
        let left = self.shared.stats.pending.swap(0, Ordering::Relaxed);
        if left > 0 {
            self.shared.stats.dropped.fetch_add(left, Ordering::Relaxed);
            tracing::warn!(remote_name = %self.shared.name, dropped_samples = left, "remote write stopped before its queue drained");
        }
    }

    /// Prometheus's rule: shards = time per sample × (input rate + backlog per interval),
    /// within `[min_shards, max_shards]`, unchanged while sends fail (more connections to a
    /// failing receiver do not help) or when within the tolerance of the current count.
    fn desired_shards(&self, before: &LoadSample, now: &LoadSample, current: usize) -> usize {
        let q = &self.cfg.queue;
        let secs = now.at.duration_since(before.at).as_secs_f64().max(1e-3);
        let sent = now.sent.saturating_sub(before.sent);
        if sent == 0 || self.shared.stats.failing.load(Ordering::Relaxed) {
            return current;
        }
        let time_per_sample =
            now.send_nanos.saturating_sub(before.send_nanos) as f64 / 1e9 / sent as f64;
        let in_rate = now.samples_in.saturating_sub(before.samples_in) as f64 / secs;
        let backlog = self.shared.stats.pending.load(Ordering::Relaxed) as f64
            / RESHARD_INTERVAL.as_secs_f64();
        let desired = (time_per_sample * (in_rate + backlog)).ceil();
        self.shared
            .stats
            .desired_shards
            .store(desired as u64, Ordering::Relaxed);
        let lower = current as f64 * (1.0 - RESHARD_TOLERANCE);
        let upper = current as f64 * (1.0 + RESHARD_TOLERANCE);
        if desired >= lower && desired <= upper {
            return current;
        }
        (desired as usize).clamp(q.min_shards, q.max_shards)
    }

    /// Swaps in `n` new shards whose senders wait until the old ones have drained.
    async fn reshard(
        &self,
        old: Generation,
        n: usize,
        abort: &CancellationToken,
        shutdown: &CancellationToken,
    ) -> Generation {
        let shards = new_shards(n, &self.cfg.queue);
        let (gate_tx, gate_rx) = watch::channel(false);
        let new = self.spawn_senders(shards.clone(), Some(gate_rx), abort);
        if let Ok(mut current) = self.shards.write() {
            *current = shards;
        }
        old.stop.cancel();
        tokio::select! {
            _ = old.join() => {}
            // On shutdown the old shards get the flush deadline like the rest.
            _ = shutdown.cancelled() => {
                if tokio::time::timeout(self.flush_deadline, old.join()).await.is_err() {
                    abort.cancel();
                }
            }
        }
        let _ = gate_tx.send(true);
        self.shared.stats.shards.store(n as u64, Ordering::Relaxed);
        new
    }

    fn spawn_senders(
        &self,
        shards: Arc<Vec<Arc<Shard>>>,
        gate: Option<watch::Receiver<bool>>,
        abort: &CancellationToken,
    ) -> Generation {
        let stop = CancellationToken::new();
        let gate = gate.unwrap_or_else(|| watch::channel(true).1);
        let tasks = shards
            .iter()
            .map(|shard| {
                tokio::spawn(shard::run_sender(
                    shard.clone(),
                    self.shared.clone(),
                    gate.clone(),
                    stop.clone(),
                    abort.clone(),
                ))
            })
            .collect();
        Generation {
            shards,
            stop,
            tasks: tokio::sync::Mutex::new(tasks),
        }
    }
}

/// A set of shards and their senders.
struct Generation {
    shards: Arc<Vec<Arc<Shard>>>,
    /// Tells the senders to send what they hold and exit.
    stop: CancellationToken,
    tasks: tokio::sync::Mutex<Vec<JoinHandle<()>>>,
}

impl Generation {
    /// Waits for every sender; safe to call again after a timeout cut it short.
    async fn join(&self) {
        let mut tasks = self.tasks.lock().await;
        while let Some(task) = tasks.last_mut() {
            if let Err(error) = task.await {
                tracing::error!(%error, "remote write shard failed");
            }
            tasks.pop();
        }
    }
}

/// Counters at one moment, for rates between two reshard checks.
struct LoadSample {
    at: Instant,
    samples_in: u64,
    sent: u64,
    send_nanos: u64,
}

impl LoadSample {
    fn now(stats: &QueueStats) -> Self {
        LoadSample {
            at: Instant::now(),
            samples_in: stats.samples_in.load(Ordering::Relaxed),
            sent: stats.sent.load(Ordering::Relaxed),
            send_nanos: stats.send_nanos.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests;
