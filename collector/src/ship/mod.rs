//! Shipping: the sinks that deliver what the sources produce.
//!
//! - [`RemoteWriteSink`] sends [`MetricBatch`]es as Prometheus remote write 1.0 through a
//!   bounded on-disk queue (`queue/`, `<state.path>/wal-remote-write`), one request per shard
//!   of the series in flight, each series in order; when the queue is full its oldest samples
//!   are dropped and counted.
//! - [`LokiSink`] sends [`LogBatch`]es as Loki pushes, batched by size and time, through the
//!   same kind of queue (`<state.path>/logqueue`), which makes the tailer wait when full: it
//!   acknowledges each batch's file positions once the receiver took the push and every push
//!   before it, and sends several pushes in flight, one per lane of containers.
//! - `send.rs` drains either queue, marking a record done after a 2xx or a permanent 4xx.
//! - [`RemoteWriteQueue`] (`forward/`) is the server's remote write out: sharded queues fed by
//!   [`ForwardingAppender`] with what the store accepted, configured like Prometheus's
//!   `remote_write`.
//! - All of them retry through one policy ([`Backoff`], `retry.rs`): network errors and 5xx are
//!   retried with backoff and jitter, and 429 too (the forward queue only with
//!   `retry_on_http_429`, as Prometheus); any other 4xx drops the batch.
//!
//! A sink runs until its input channel closes (its sources stopped), flushes what it holds,
//! and returns; `abort` cuts a flush short when the server does not come back in time.

mod forward;
mod loki;
mod queue;
mod remote_write;
mod retry;
mod send;
mod targets;
mod wire;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub use forward::{
    render_metrics as render_forward_metrics, Auth, ForwardConfig, ForwardingAppender, QueueConfig,
    RemoteWriteQueue, Secret,
};
pub use loki::{
    LogBatch, LokiConfig, LokiSink, RecoveredPositions, DEFAULT_BATCH_BYTES, DEFAULT_BATCH_WAIT,
};
pub use queue::{
    QueueConfig as LogQueueConfig, SegmentError as LogQueueError, WhenFull,
    DEFAULT_QUEUE_MAX_BYTES, DEFAULT_SEGMENT_BYTES, LOG_QUEUE_DIR,
};
pub use remote_write::{
    MetricBatch, RemoteWriteConfig, RemoteWriteSink, DEFAULT_MAX_SAMPLES_PER_SEND,
    DEFAULT_METADATA_INTERVAL, DEFAULT_REMOTE_WRITE_QUEUE_MAX_BYTES, DEFAULT_REMOTE_WRITE_SHARDS,
    REMOTE_WRITE_QUEUE_DIR,
};
pub use retry::{Backoff, DEFAULT_MAX_BACKOFF, DEFAULT_MIN_BACKOFF, MAX_RETRY_AFTER};
pub use send::DEFAULT_MAX_IN_FLIGHT;
pub use targets::{
    default_targets_push_url, TargetsPushConfig, TargetsPusher, DEFAULT_TARGETS_PUSH_INTERVAL,
    TARGETS_PUSH_PATH,
};

use crate::Error;

/// The `User-Agent` of every request the agent sends.
pub const USER_AGENT: &str = concat!("vigil-agent/", env!("CARGO_PKG_VERSION"));
/// How long one HTTP request may take before it counts as a network error and is retried.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Counters a sink keeps about its deliveries; shared with whoever wants to read them (the
/// agent's `/metrics`). An *item* is a sample for remote write and a log line for Loki; every
/// item ends up either sent or dropped (queue full, rejected, or aborted).
#[derive(Debug, Default)]
pub struct SinkStats {
    /// Requests the server accepted (2xx).
    pub delivered_requests: AtomicU64,
    /// Requests the server rejected for good (4xx other than 429); their data is dropped.
    pub rejected_requests: AtomicU64,
    /// Samples dropped from the on-disk queue because it was full, or because appending to
    /// it failed (remote write only).
    pub dropped_samples: AtomicU64,
    /// Requests abandoned undelivered when the sink was aborted.
    pub aborted_requests: AtomicU64,
    /// Items in requests the server accepted.
    pub sent_items: AtomicU64,
    /// Bytes in requests the server accepted: the compressed body for remote write, the log
    /// text for Loki.
    pub sent_bytes: AtomicU64,
    /// Attempts that failed with a retryable error (network, 5xx, 429) and were retried.
    pub failed_attempts: AtomicU64,
    /// Items in those failed attempts, counted once per attempt.
    pub failed_items: AtomicU64,
    /// Items in requests the server rejected for good.
    pub rejected_items: AtomicU64,
    /// Items abandoned when the sink was aborted before they reached its on-disk queue
    /// (queued items stay there for the next run).
    pub aborted_items: AtomicU64,
    /// Items waiting in the sink's on-disk queue (in flight included), plus the Loki batch
    /// being filled.
    pub queued_items: AtomicU64,
    /// Items waiting in the on-disk queue alone (durable, in flight included).
    pub disk_items: AtomicU64,
    /// Bytes of the on-disk queue's segment files.
    pub disk_bytes: AtomicU64,
}

impl SinkStats {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn set(gauge: &AtomicU64, n: u64) {
        gauge.store(n, Ordering::Relaxed);
    }

    /// Counts a retryable failure of a request holding `items` items.
    fn failed(&self, items: u64) {
        SinkStats::add(&self.failed_attempts, 1);
        SinkStats::add(&self.failed_items, items);
    }
}

fn http_client(timeout: Duration) -> Result<reqwest::Client, Error> {
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .timeout(timeout)
        .build()
        .map_err(Error::HttpClient)
}

/// Checks that `url` is an absolute http(s) URL, so a typo fails at start, not at first push.
fn check_url(field: &'static str, url: &str) -> Result<(), Error> {
    let parsed = reqwest::Url::parse(url).map_err(|e| Error::Config {
        field,
        reason: format!("{url:?}: {e}"),
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(Error::Config {
            field,
            reason: format!("{url:?}: scheme must be http or https"),
        });
    }
    Ok(())
}

/// A local HTTP server for sink tests: answers with scripted statuses (then 204) and records
/// every request.
#[cfg(test)]
pub(crate) mod test_server {
    use std::sync::{Arc, Mutex};

    use axum::body::Bytes;
    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode};

    #[derive(Clone, Debug)]
    pub(crate) struct Recorded {
        pub headers: HeaderMap,
        pub body: Vec<u8>,
    }

    #[derive(Default)]
    struct Shared {
        script: Mutex<Vec<u16>>,
        requests: Mutex<Vec<Recorded>>,
    }

    pub(crate) struct TestServer {
        pub url: String,
        shared: Arc<Shared>,
    }

    impl TestServer {
        /// Starts a server on 127.0.0.1:0 whose first responses have `statuses`.
        pub async fn start(statuses: &[u16]) -> TestServer {
            let shared = Arc::new(Shared {
                script: Mutex::new(statuses.iter().rev().copied().collect()),
                requests: Mutex::default(),
            });
            let app = axum::Router::new()
                .fallback(handle)
                .with_state(shared.clone());
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move { axum::serve(listener, app).await });
            TestServer {
                url: format!("http://{addr}/push"),
                shared,
            }
        }

        pub fn requests(&self) -> Vec<Recorded> {
            self.shared.requests.lock().unwrap().clone()
        }
    }

    async fn handle(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> StatusCode {
        s.requests.lock().unwrap().push(Recorded {
            headers,
            body: body.to_vec(),
        });
        let status = s.script.lock().unwrap().pop().unwrap_or(204);
        StatusCode::from_u16(status).unwrap()
    }
}
