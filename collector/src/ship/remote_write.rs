//! The remote-write sink: Prometheus remote write 1.0 (protobuf `WriteRequest`, snappy block
//! compression) from a bounded in-memory queue.
//!
//! The queue sits between the sources and the sender. The sink keeps taking batches from its
//! input while a request is in flight or waiting to retry, so sources never block on a slow
//! server; when the queue is over capacity the oldest samples are dropped and counted, since
//! fresh samples are worth more than old ones to alerting. (The on-disk queue that survives
//! a restart is a later step.)

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use model::wire::prom::{MetricMetadata, TimeSeries, WriteRequest};
use model::Series;
use prost::Message;
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_ENCODING, CONTENT_TYPE};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::retry::{deliver, Backoff, Delivery, Request};
use super::{check_url, http_client, SinkStats, DEFAULT_REQUEST_TIMEOUT};
use crate::Error;

/// Samples per request: Prometheus's `max_samples_per_send`.
pub const DEFAULT_MAX_SAMPLES_PER_SEND: usize = 2000;
/// Samples held in memory while the server is away. A node's ~150 series every 15 s fill
/// this in about two hours.
pub const DEFAULT_QUEUE_CAPACITY: usize = 100_000;
/// How often metric metadata (HELP, TYPE) rides along: Prometheus's `metadata_config.send_interval`.
pub const DEFAULT_METADATA_INTERVAL: Duration = Duration::from_secs(60);

/// What a metrics source sends downstream: series and the metadata of their families.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MetricBatch {
    pub series: Vec<Series>,
    pub metadata: Vec<MetricMetadata>,
}

/// The remote-write sink's settings.
#[derive(Clone, Debug)]
pub struct RemoteWriteConfig {
    /// The receiver, e.g. `http://vigil:9090/api/v1/write`.
    pub url: String,
    /// Upper bound of samples per request; default [`DEFAULT_MAX_SAMPLES_PER_SEND`].
    pub max_samples_per_send: usize,
    /// Samples the queue holds before dropping the oldest; default [`DEFAULT_QUEUE_CAPACITY`].
    pub queue_capacity: usize,
    /// Retry policy; default [`Backoff::default`] (30 ms doubling to 5 s).
    pub backoff: Backoff,
    /// Timeout of one HTTP request; default [`DEFAULT_REQUEST_TIMEOUT`].
    pub request_timeout: Duration,
    /// Interval between metadata sends; default [`DEFAULT_METADATA_INTERVAL`].
    pub metadata_interval: Duration,
}

impl RemoteWriteConfig {
    pub fn new(url: impl Into<String>) -> Self {
        RemoteWriteConfig {
            url: url.into(),
            max_samples_per_send: DEFAULT_MAX_SAMPLES_PER_SEND,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            backoff: Backoff::default(),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            metadata_interval: DEFAULT_METADATA_INTERVAL,
        }
    }

    pub fn build(self) -> Result<RemoteWriteSink, Error> {
        check_url("remote_write_url", &self.url)?;
        if self.max_samples_per_send == 0 || self.queue_capacity == 0 {
            return Err(Error::Config {
                field: "remote_write",
                reason: "max_samples_per_send and queue_capacity must be positive".into(),
            });
        }
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static("snappy"));
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-protobuf"),
        );
        headers.insert(
            "X-Prometheus-Remote-Write-Version",
            HeaderValue::from_static("0.1.0"),
        );
        Ok(RemoteWriteSink {
            client: http_client(self.request_timeout)?,
            headers,
            queue: SampleQueue::new(self.queue_capacity),
            metadata: BTreeMap::new(),
            metadata_sent: None,
            metadata_changed: false,
            stats: Arc::default(),
            cfg: self,
        })
    }
}

/// A request being delivered; resolves to how it ended, its sample count and body size.
type InFlight = Pin<Box<dyn Future<Output = (Delivery, usize, usize)> + Send>>;

/// The running remote-write sink; see the module docs.
#[derive(Debug)]
pub struct RemoteWriteSink {
    cfg: RemoteWriteConfig,
    client: reqwest::Client,
    headers: HeaderMap,
    queue: SampleQueue,
    /// The latest metadata of every family seen, by family name.
    metadata: BTreeMap<String, MetricMetadata>,
    metadata_sent: Option<Instant>,
    /// A family's metadata arrived that the receiver has not been sent yet.
    metadata_changed: bool,
    stats: Arc<SinkStats>,
}

impl RemoteWriteSink {
    pub fn stats(&self) -> Arc<SinkStats> {
        self.stats.clone()
    }

    /// Sends what arrives on `input` until it closes and the queue is empty, or `abort` fires.
    pub async fn run(mut self, mut input: mpsc::Receiver<MetricBatch>, abort: CancellationToken) {
        let mut in_flight: Option<InFlight> = None;
        // The samples of the request in flight, already taken off the queue.
        let mut in_flight_samples = 0;
        let mut input_open = true;
        loop {
            if in_flight.is_none() {
                in_flight_samples = 0;
                match self.next_request() {
                    Some((req, samples)) => {
                        in_flight_samples = samples;
                        let client = self.client.clone();
                        let (backoff, abort) = (self.cfg.backoff, abort.clone());
                        let stats = self.stats.clone();
                        let bytes = req.body.len();
                        in_flight = Some(Box::pin(async move {
                            let on_retry = || stats.failed(samples as u64);
                            let delivery = deliver(client, req, backoff, abort, on_retry).await;
                            (delivery, samples, bytes)
                        }));
                    }
                    None if !input_open => break,
                    None => {}
                }
            }
            SinkStats::set(
                &self.stats.queued_items,
                (self.queue.samples + in_flight_samples) as u64,
            );
            tokio::select! {
                _ = abort.cancelled() => break,
                batch = input.recv(), if input_open => match batch {
                    Some(batch) => self.enqueue(batch),
                    None => input_open = false,
                },
                (delivery, samples, bytes) = poll_in_flight(&mut in_flight) => {
                    in_flight = None;
                    self.record(delivery, samples, bytes);
                }
            }
        }
        // Whatever is left now is counted as aborted below; nothing waits any more.
        SinkStats::set(&self.stats.queued_items, 0);
        if in_flight.is_some() || !self.queue.is_empty() {
            SinkStats::add(&self.stats.aborted_requests, u64::from(in_flight.is_some()));
            let in_flight_samples = in_flight.as_ref().map_or(0, |_| in_flight_samples);
            SinkStats::add(
                &self.stats.aborted_items,
                (self.queue.samples + in_flight_samples) as u64,
            );
            tracing::warn!(
                queued_samples = self.queue.samples,
                "remote write stopped before the queue drained"
            );
        }
    }

    fn enqueue(&mut self, batch: MetricBatch) {
        for m in batch.metadata {
            // A family not sent before (or whose help or type changed) goes out with the next
            // request rather than a whole interval later, so `/api/v1/metadata` knows it as
            // soon as its samples are queryable.
            if self.metadata.get(&m.metric_family_name) != Some(&m) {
                self.metadata_changed = true;
                self.metadata.insert(m.metric_family_name.clone(), m);
            }
        }
        let dropped = self.queue.push(batch.series);
        if dropped > 0 {
            SinkStats::add(&self.stats.dropped_samples, dropped as u64);
            tracing::warn!(
                dropped_samples = dropped,
                capacity = self.cfg.queue_capacity,
                "remote write queue full, dropped the oldest samples"
            );
        }
    }

    /// The next request from the head of the queue, with its sample count.
    fn next_request(&mut self) -> Option<(Request, usize)> {
        let series = self.queue.pop_batch(self.cfg.max_samples_per_send);
        if series.is_empty() {
            return None;
        }
        let samples = series.iter().map(|s| s.samples.len()).sum();
        let metadata_due = self.metadata_changed
            || self
                .metadata_sent
                .is_none_or(|t| t.elapsed() >= self.cfg.metadata_interval);
        let metadata = if metadata_due {
            self.metadata_sent = Some(Instant::now());
            self.metadata_changed = false;
            self.metadata.values().cloned().collect()
        } else {
            Vec::new()
        };
        let body = encode(&series, metadata);
        let req = Request {
            url: self.cfg.url.clone(),
            headers: self.headers.clone(),
            body,
            retry_429: true,
        };
        Some((req, samples))
    }

    fn record(&mut self, delivery: Delivery, samples: usize, bytes: usize) {
        match delivery {
            Delivery::Delivered { attempts } => {
                SinkStats::add(&self.stats.delivered_requests, 1);
                SinkStats::add(&self.stats.sent_items, samples as u64);
                SinkStats::add(&self.stats.sent_bytes, bytes as u64);
                tracing::debug!(samples, attempts, "remote write delivered");
            }
            Delivery::Rejected { status, body } => {
                SinkStats::add(&self.stats.rejected_requests, 1);
                SinkStats::add(&self.stats.rejected_items, samples as u64);
                tracing::error!(status, samples, %body, "remote write rejected, batch dropped");
            }
            Delivery::Aborted => {
                SinkStats::add(&self.stats.aborted_requests, 1);
                SinkStats::add(&self.stats.aborted_items, samples as u64);
            }
        }
    }
}

/// Awaits the request in flight, or never when there is none (so `select!` can poll it).
async fn poll_in_flight(in_flight: &mut Option<InFlight>) -> (Delivery, usize, usize) {
    match in_flight.as_mut() {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}

/// The snappy-compressed protobuf body of one request.
pub(crate) fn encode(series: &[Series], metadata: Vec<MetricMetadata>) -> Vec<u8> {
    let req = WriteRequest {
        timeseries: series.iter().map(TimeSeries::from_series).collect(),
        metadata,
    };
    model::wire::snappy_compress(&req.encode_to_vec())
}

/// Series waiting to be sent, bounded by their total sample count.
#[derive(Debug)]
struct SampleQueue {
    series: VecDeque<Series>,
    samples: usize,
    capacity: usize,
}

impl SampleQueue {
    fn new(capacity: usize) -> Self {
        SampleQueue {
            series: VecDeque::new(),
            samples: 0,
            capacity,
        }
    }

    fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// Appends `series`, then drops from the front until within capacity; returns the number
    /// of samples dropped.
    fn push(&mut self, series: Vec<Series>) -> usize {
        for s in series {
            self.samples += s.samples.len();
            self.series.push_back(s);
        }
        let mut dropped = 0;
        while self.samples > self.capacity {
            let Some(old) = self.series.pop_front() else {
                break;
            };
            self.samples -= old.samples.len();
            dropped += old.samples.len();
        }
        dropped
    }

    /// Takes series from the front up to `max` samples (at least one series, so a series
    /// larger than `max` still goes out).
    fn pop_batch(&mut self, max: usize) -> Vec<Series> {
        let mut out = Vec::new();
        let mut taken = 0;
        while let Some(front) = self.series.front() {
            let n = front.samples.len();
            if !out.is_empty() && taken + n > max {
                break;
            }
            taken += n;
            self.samples -= n;
            if let Some(s) = self.series.pop_front() {
                out.push(s);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ship::test_server::TestServer;
    use model::{Labels, Sample};
    use std::sync::atomic::Ordering;

    fn series(name: &str, t: i64) -> Series {
        Series {
            labels: Labels::from_pairs([("__name__", name), ("job", "node")]),
            samples: vec![Sample { t, v: t as f64 }],
        }
    }

    fn batch(n: usize) -> MetricBatch {
        MetricBatch {
            series: (0..n).map(|i| series("up", i as i64)).collect(),
            metadata: vec![MetricMetadata {
                r#type: 2,
                metric_family_name: "up".into(),
                help: "Up.".into(),
                unit: String::new(),
            }],
        }
    }

    fn decode(body: &[u8]) -> WriteRequest {
        let raw = model::wire::snappy_decompress(body, 1 << 24).unwrap();
        WriteRequest::decode(raw.as_slice()).unwrap()
    }

    async fn run_sink(cfg: RemoteWriteConfig, batches: Vec<MetricBatch>) -> Arc<SinkStats> {
        let sink = cfg.build().unwrap();
        let stats = sink.stats();
        let (tx, rx) = mpsc::channel(16);
        for b in batches {
            tx.send(b).await.unwrap();
        }
        drop(tx);
        tokio::time::timeout(
            Duration::from_secs(5),
            sink.run(rx, CancellationToken::new()),
        )
        .await
        .unwrap();
        stats
    }

    #[test]
    fn queue_drops_oldest_over_capacity() {
        let mut q = SampleQueue::new(3);
        assert_eq!(q.push((0..5).map(|i| series("a", i)).collect()), 2);
        let out = q.pop_batch(2);
        assert_eq!(
            out.iter().map(|s| s.samples[0].t).collect::<Vec<_>>(),
            [2, 3]
        );
        assert_eq!(q.pop_batch(2).len(), 1);
        assert!(q.is_empty() && q.samples == 0);
    }

    #[tokio::test]
    async fn sends_protobuf_snappy_with_headers_in_batches_of_max_samples() {
        let server = TestServer::start(&[]).await;
        let mut cfg = RemoteWriteConfig::new(&server.url);
        cfg.max_samples_per_send = 2000;
        let stats = run_sink(cfg, vec![batch(2500)]).await;

        let reqs = server.requests();
        assert_eq!(reqs.len(), 2);
        let h = &reqs[0].headers;
        assert_eq!(h["content-encoding"], "snappy");
        assert_eq!(h["content-type"], "application/x-protobuf");
        assert_eq!(h["x-prometheus-remote-write-version"], "0.1.0");
        assert!(h["user-agent"]
            .to_str()
            .unwrap()
            .starts_with("vigil-agent/"));
        let first = decode(&reqs[0].body);
        let second = decode(&reqs[1].body);
        assert_eq!(
            (first.timeseries.len(), second.timeseries.len()),
            (2000, 500)
        );
        assert_eq!(first.metadata[0].metric_family_name, "up");
        assert!(
            second.metadata.is_empty(),
            "metadata goes once per interval"
        );
        let s = first.timeseries[7].to_series().unwrap();
        assert_eq!(s, series("up", 7));
        assert_eq!(stats.delivered_requests.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn a_new_familys_metadata_goes_with_the_next_request_not_an_interval_later() {
        let server = TestServer::start(&[]).await;
        let mut cfg = RemoteWriteConfig::new(&server.url);
        cfg.max_samples_per_send = 1;
        let mut second = batch(1);
        second.series = vec![series("load", 1)];
        second.metadata.push(MetricMetadata {
            r#type: 2,
            metric_family_name: "load".into(),
            help: "Load.".into(),
            unit: String::new(),
        });
        run_sink(cfg, vec![batch(1), second, batch(1)]).await;
        let names = |r: &WriteRequest| {
            let mut n: Vec<_> = r
                .metadata
                .iter()
                .map(|m| m.metric_family_name.clone())
                .collect();
            n.sort();
            n
        };
        let reqs: Vec<_> = server.requests().iter().map(|r| decode(&r.body)).collect();
        assert_eq!(reqs.len(), 3);
        assert_eq!(names(&reqs[0]), ["up"]);
        assert_eq!(names(&reqs[1]), ["load", "up"], "load is new");
        assert!(reqs[2].metadata.is_empty(), "nothing changed since");
    }

    #[tokio::test]
    async fn a_500_is_retried_and_delivered_once() {
        let server = TestServer::start(&[500]).await;
        let stats = run_sink(RemoteWriteConfig::new(&server.url), vec![batch(3)]).await;
        let reqs = server.requests();
        assert_eq!(reqs.len(), 2, "one failure, one retry");
        assert_eq!(
            reqs[0].body, reqs[1].body,
            "the retry resends the same batch"
        );
        assert_eq!(reqs[1].headers["retry-attempt"], "1");
        assert_eq!(stats.delivered_requests.load(Ordering::Relaxed), 1);
        let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        assert_eq!(load(&stats.failed_attempts), 1);
        assert_eq!(
            load(&stats.failed_items),
            3,
            "the failed attempt held 3 samples"
        );
        assert_eq!(load(&stats.sent_items), 3);
        assert_eq!(load(&stats.sent_bytes), reqs[1].body.len() as u64);
        assert_eq!(load(&stats.queued_items), 0, "nothing left waiting");
    }

    #[tokio::test]
    async fn a_429_is_retried_but_a_400_is_not() {
        let server = TestServer::start(&[429, 400]).await;
        let mut cfg = RemoteWriteConfig::new(&server.url);
        cfg.max_samples_per_send = 1;
        let stats = run_sink(cfg, vec![batch(2)]).await;
        let reqs = server.requests();
        // Batch 1: 429 then 400 (dropped, not retried); batch 2: 204.
        assert_eq!(reqs.len(), 3);
        assert_eq!(reqs[1].body, reqs[0].body);
        assert_ne!(reqs[2].body, reqs[1].body);
        assert_eq!(stats.rejected_requests.load(Ordering::Relaxed), 1);
        assert_eq!(stats.delivered_requests.load(Ordering::Relaxed), 1);
        assert_eq!(stats.rejected_items.load(Ordering::Relaxed), 1);
        assert_eq!(stats.failed_items.load(Ordering::Relaxed), 1, "the 429");
        assert_eq!(stats.sent_items.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn abort_stops_retrying_against_a_dead_server() {
        // Port 9 (discard) on localhost refuses connections: every attempt is a network error.
        let sink = RemoteWriteConfig::new("http://127.0.0.1:9/api/v1/write")
            .build()
            .unwrap();
        let stats = sink.stats();
        let (tx, rx) = mpsc::channel(1);
        tx.send(batch(1)).await.unwrap();
        let abort = CancellationToken::new();
        let task = tokio::spawn(sink.run(rx, abort.clone()));
        tokio::time::sleep(Duration::from_millis(100)).await;
        abort.cancel();
        tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stats.delivered_requests.load(Ordering::Relaxed), 0);
        assert_eq!(stats.aborted_requests.load(Ordering::Relaxed), 1);
        assert_eq!(
            stats.aborted_items.load(Ordering::Relaxed),
            1,
            "the sample in flight is counted as dropped at shutdown, once"
        );
        assert!(stats.failed_attempts.load(Ordering::Relaxed) >= 1);
    }
}
