//! The agent's remote-write sink: Prometheus remote write 1.0 (protobuf `WriteRequest`, snappy
//! block compression) through a bounded on-disk queue under the agent's state directory
//! (`<state.path>/wal-remote-write/`, the queue of `queue/`).
//!
//! Each [`MetricBatch`] from the collectors is cut into requests of at most
//! `max_samples_per_send` samples (a burst of batches that are already waiting fills whole
//! requests), and each request body is appended, fsync'd, to the queue; metadata rides along
//! as it would be sent. Series are split into shards by a hash of their labels
//! (`--remote-write.shards`, default 4), each request holding one shard's series; the sender
//! (`send.rs`) delivers one request per shard at a time, shards in parallel, retrying network
//! errors, 5xx and 429 with backoff, so each series' samples collected while the receiver is
//! away arrive in order once it returns, even across an agent restart.
//!
//! The queue is bounded by `--remote-write.queue-max-bytes`. When it is full the oldest
//! segment is deleted and its samples counted dropped (reason `queue_full`): the collectors
//! never wait, and fresh samples are worth more than old ones to alerting. A record whose
//! append fails (a full disk) is dropped and counted the same way.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use model::wire::prom::MetricMetadata;
use model::Series;
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_ENCODING, CONTENT_TYPE};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::queue::{
    QueueConfig, QueueReader, QueueWriter, Record, WhenFull, DEFAULT_SEGMENT_BYTES,
};
use super::retry::Backoff;
use super::send::{send_all, Pusher};
use super::wire::encode_write_request;
use super::{check_url, http_client, SinkStats, DEFAULT_REQUEST_TIMEOUT};
use crate::Error;

/// Samples per request: Prometheus's `max_samples_per_send`.
pub const DEFAULT_MAX_SAMPLES_PER_SEND: usize = 2000;
/// The queue's directory inside the agent's state directory.
pub const REMOTE_WRITE_QUEUE_DIR: &str = "wal-remote-write";
/// The most bytes of requests the queue holds (`--remote-write.queue-max-bytes`): 256 MiB,
/// days of one node's metrics at 15 s (a request of 2000 samples is some 20–40 KiB).
pub const DEFAULT_REMOTE_WRITE_QUEUE_MAX_BYTES: u64 = 256 << 20;
/// Remote-write requests in flight at once, one per shard of the series.
pub const DEFAULT_REMOTE_WRITE_SHARDS: usize = 4;
/// How often metric metadata (HELP, TYPE) rides along: Prometheus's `metadata_config.send_interval`.
pub const DEFAULT_METADATA_INTERVAL: Duration = Duration::from_secs(60);
/// A segment holds at most this part of the queue's bound, so dropping the oldest segment
/// drops about a sixteenth of the queue, not all of it.
const SEGMENTS_PER_QUEUE: u64 = 16;

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
    /// The queue's directory; [`RemoteWriteConfig::new`] takes it (the agent uses
    /// `<state.path>/`[`REMOTE_WRITE_QUEUE_DIR`]).
    pub queue_dir: PathBuf,
    /// Bytes the queue holds before its oldest samples are dropped; default
    /// [`DEFAULT_REMOTE_WRITE_QUEUE_MAX_BYTES`].
    pub queue_max_bytes: u64,
    /// Retry policy; default [`Backoff::default`] (30 ms doubling to 5 s).
    pub backoff: Backoff,
    /// Timeout of one HTTP request; default [`DEFAULT_REQUEST_TIMEOUT`].
    pub request_timeout: Duration,
    /// Interval between metadata sends; default [`DEFAULT_METADATA_INTERVAL`].
    pub metadata_interval: Duration,
    /// Requests in flight at once, each for its own share of the series (by a hash of their
    /// labels); default [`DEFAULT_REMOTE_WRITE_SHARDS`].
    pub shards: usize,
}

impl RemoteWriteConfig {
    /// The defaults, writing to `url` through a queue in `queue_dir`.
    pub fn new(url: impl Into<String>, queue_dir: impl Into<PathBuf>) -> Self {
        RemoteWriteConfig {
            url: url.into(),
            max_samples_per_send: DEFAULT_MAX_SAMPLES_PER_SEND,
            queue_dir: queue_dir.into(),
            queue_max_bytes: DEFAULT_REMOTE_WRITE_QUEUE_MAX_BYTES,
            backoff: Backoff::default(),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            metadata_interval: DEFAULT_METADATA_INTERVAL,
            shards: DEFAULT_REMOTE_WRITE_SHARDS,
        }
    }

    /// The queue these settings describe.
    fn queue(&self) -> QueueConfig {
        QueueConfig {
            max_bytes: self.queue_max_bytes,
            segment_bytes: (self.queue_max_bytes / SEGMENTS_PER_QUEUE)
                .clamp(1, DEFAULT_SEGMENT_BYTES),
            when_full: WhenFull::DropOldest,
            name: "remote write queue",
            ..QueueConfig::new(&self.queue_dir)
        }
    }

    /// Opens the queue (recovering what a previous run left, sent first); fails on a bad URL
    /// or setting, an unusable queue directory, or a segment of an unknown format.
    pub fn build(self) -> Result<RemoteWriteSink, Error> {
        check_url("remote_write_url", &self.url)?;
        if self.max_samples_per_send == 0 || self.queue_max_bytes == 0 || self.shards == 0 {
            return Err(Error::Config {
                field: "remote_write",
                reason: "max_samples_per_send, queue_max_bytes and shards must be positive".into(),
            });
        }
        let (writer, reader, queue) = self.queue().open_for_sink()?;
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
        let stats: Arc<SinkStats> = Arc::default();
        let pusher = Arc::new(Pusher {
            sink: "remote_write",
            url: self.url.clone(),
            client: http_client(self.request_timeout)?,
            headers,
            backoff: self.backoff,
            stats: stats.clone(),
            queue,
        });
        pusher.update_gauge(0);
        Ok(RemoteWriteSink {
            batcher: Batcher::new(
                self.max_samples_per_send,
                self.metadata_interval,
                self.shards,
            ),
            shards: self.shards,
            pusher,
            writer,
            reader,
            stats,
        })
    }
}

/// The running remote-write sink; see the module docs.
#[derive(Debug)]
pub struct RemoteWriteSink {
    batcher: Batcher,
    shards: usize,
    pusher: Arc<Pusher>,
    writer: QueueWriter,
    reader: QueueReader,
    stats: Arc<SinkStats>,
}

impl RemoteWriteSink {
    pub fn stats(&self) -> Arc<SinkStats> {
        self.stats.clone()
    }

    /// Queues what arrives on `input` until it closes, then sends what the queue holds; or
    /// until `abort` fires, when what is queued stays on disk for the next run.
    pub async fn run(self, mut input: mpsc::Receiver<MetricBatch>, abort: CancellationToken) {
        let RemoteWriteSink {
            mut batcher,
            shards,
            pusher,
            mut writer,
            reader,
            stats,
        } = self;
        // One request per shard in flight: a series is always in the same shard, so the
        // receiver sees each series' samples in order.
        let sender = tokio::spawn(send_all(
            pusher.clone(),
            reader,
            shards,
            abort.clone(),
            |_| {},
        ));
        let mut closed = false;
        loop {
            let batch = tokio::select! {
                _ = abort.cancelled() => break,
                batch = input.recv() => batch,
            };
            let Some(batch) = batch else {
                closed = true;
                break;
            };
            let mut records = batcher.add(batch);
            // Batches already waiting (a scrape round, the node and container collectors at
            // the same tick) fill a request rather than one small request each; at most one
            // full request is gathered before it goes to disk, so memory stays bounded.
            while records.is_empty() {
                let Ok(batch) = input.try_recv() else { break };
                records.extend(batcher.add(batch));
            }
            records.extend(batcher.flush_all());
            for record in records {
                append(&mut writer, &pusher, record).await;
            }
        }
        if closed {
            writer.close();
        }
        if let Err(error) = sender.await {
            tracing::error!(%error, "remote write sender failed");
        }
        let (_, left) = pusher.queue.usage();
        if left > 0 {
            tracing::info!(
                samples = left,
                "remote write stopped with samples queued; the next run sends them"
            );
        }
        SinkStats::set(&stats.queued_items, left);
    }
}

/// The shard of series `s` among `shards`: a hash of its labels, so a series keeps its shard
/// and its samples arrive in order.
fn shard_of(s: &Series, shards: usize) -> usize {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    s.labels.hash(&mut h);
    (h.finish() % shards.max(1) as u64) as usize
}

/// Appends `record` to the queue, counting what the queue dropped to make room; a failed
/// append drops the record (the collectors do not wait for a disk).
async fn append(writer: &mut QueueWriter, pusher: &Pusher, record: Record) {
    let samples = u64::from(record.entries);
    if let Err(error) = writer.push(record).await {
        SinkStats::add(&pusher.stats.dropped_samples, samples);
        tracing::error!(%error, samples, "appending to the remote write queue failed, samples dropped");
    }
    let (_, dropped) = pusher.queue.take_dropped();
    SinkStats::add(&pusher.stats.dropped_samples, dropped);
    pusher.update_gauge(0);
}

/// Cuts batches into request bodies, one shard's series per request, and decides when
/// metadata rides along.
#[derive(Debug)]
struct Batcher {
    max_samples: usize,
    metadata_interval: Duration,
    /// The request being filled, per shard.
    shards: Vec<Shard>,
    /// The latest metadata of every family seen, by family name.
    metadata: BTreeMap<String, MetricMetadata>,
    metadata_sent: Option<Instant>,
    /// A family's metadata arrived that the receiver has not been sent yet.
    metadata_changed: bool,
}

/// The series gathered for one shard's next request.
#[derive(Debug, Default)]
struct Shard {
    pending: Vec<Series>,
    samples: usize,
}

impl Batcher {
    fn new(max_samples: usize, metadata_interval: Duration, shards: usize) -> Self {
        Batcher {
            max_samples,
            metadata_interval,
            shards: (0..shards.max(1)).map(|_| Shard::default()).collect(),
            metadata: BTreeMap::new(),
            metadata_sent: None,
            metadata_changed: false,
        }
    }

    /// Takes `batch`, returning the requests it filled.
    fn add(&mut self, batch: MetricBatch) -> Vec<Record> {
        for m in batch.metadata {
            // A family not sent before (or whose help or type changed) goes out with the next
            // request rather than a whole interval later, so `/api/v1/metadata` knows it as
            // soon as its samples are queryable.
            if self.metadata.get(&m.metric_family_name) != Some(&m) {
                self.metadata_changed = true;
                self.metadata.insert(m.metric_family_name.clone(), m);
            }
        }
        let mut out = Vec::new();
        for s in batch.series {
            let shard = shard_of(&s, self.shards.len());
            let n = s.samples.len();
            // A series larger than a request still goes out, alone.
            let sh = &self.shards[shard];
            if !sh.pending.is_empty() && sh.samples + n > self.max_samples {
                out.extend(self.flush(shard));
            }
            let sh = &mut self.shards[shard];
            sh.samples += n;
            sh.pending.push(s);
            if sh.samples >= self.max_samples {
                out.extend(self.flush(shard));
            }
        }
        out
    }

    /// The requests holding what every shard has pending.
    fn flush_all(&mut self) -> Vec<Record> {
        (0..self.shards.len())
            .filter_map(|shard| self.flush(shard))
            .collect()
    }

    /// The request holding what `shard` has pending, if anything.
    fn flush(&mut self, shard: usize) -> Option<Record> {
        let sh = &mut self.shards[shard];
        if sh.pending.is_empty() {
            return None;
        }
        let series = std::mem::take(&mut sh.pending);
        let samples = std::mem::take(&mut sh.samples);
        let metadata_due = self.metadata_changed
            || self
                .metadata_sent
                .is_none_or(|t| t.elapsed() >= self.metadata_interval);
        let metadata = if metadata_due {
            self.metadata_sent = Some(Instant::now());
            self.metadata_changed = false;
            self.metadata.values().cloned().collect()
        } else {
            Vec::new()
        };
        let body = encode(&series, metadata);
        Some(Record {
            entries: u32::try_from(samples).unwrap_or(u32::MAX),
            // Remote write counts compressed bytes sent, as Prometheus's
            // `prometheus_remote_storage_bytes_total`.
            text_bytes: u32::try_from(body.len()).unwrap_or(u32::MAX),
            lane: u32::try_from(shard).unwrap_or(0),
            meta: Vec::new(),
            body,
        })
    }
}

/// The snappy-compressed protobuf body of one request.
pub(crate) fn encode(series: &[Series], metadata: Vec<MetricMetadata>) -> Vec<u8> {
    model::wire::snappy_compress(&encode_write_request(series, &metadata))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ship::test_server::TestServer;
    use model::wire::prom::WriteRequest;
    use model::{Labels, Sample};
    use prost::Message;
    use std::path::Path;
    use std::sync::atomic::{AtomicU64, Ordering};

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

    /// One batch of one `load` sample at `t`.
    fn load_at(t: i64) -> MetricBatch {
        MetricBatch {
            series: vec![series("load", t)],
            metadata: Vec::new(),
        }
    }

    fn decode(body: &[u8]) -> WriteRequest {
        let raw = model::wire::snappy_decompress(body, 1 << 24).unwrap();
        WriteRequest::decode(raw.as_slice()).unwrap()
    }

    /// The timestamps of every sample the server received, in arrival order.
    fn received(server: &TestServer) -> Vec<i64> {
        server
            .requests()
            .iter()
            .flat_map(|r| decode(&r.body).timeseries)
            .flat_map(|ts| ts.samples.into_iter().map(|s| s.timestamp))
            .collect()
    }

    fn load(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    /// A URL on a port nothing listens on: every request fails with a network error.
    fn dead_url() -> String {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/api/v1/write", l.local_addr().unwrap())
    }

    /// Retries quickly, so tests against a dead server spin without waiting long.
    fn fast(mut cfg: RemoteWriteConfig) -> RemoteWriteConfig {
        cfg.backoff = Backoff {
            min: Duration::from_millis(5),
            max: Duration::from_millis(20),
        };
        cfg
    }

    /// Runs a sink over `batches` with the input closed, until the queue is drained.
    async fn run_sink(cfg: RemoteWriteConfig, batches: Vec<MetricBatch>) -> Arc<SinkStats> {
        let sink = cfg.build().unwrap();
        let stats = sink.stats();
        let (tx, rx) = mpsc::channel(batches.len().max(1));
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

    /// Runs a sink against a dead receiver until every batch is queued (or dropped), then
    /// aborts it, as a killed agent: what it queued stays in `dir`.
    async fn queue_while_away(cfg: RemoteWriteConfig, batches: Vec<MetricBatch>) -> Arc<SinkStats> {
        let sink = cfg.build().unwrap();
        let stats = sink.stats();
        let samples: u64 = batches
            .iter()
            .flat_map(|b| &b.series)
            .map(|s| s.samples.len() as u64)
            .sum();
        let (tx, rx) = mpsc::channel(16);
        let abort = CancellationToken::new();
        let running = tokio::spawn(sink.run(rx, abort.clone()));
        for b in batches {
            tx.send(b).await.unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        // Queued samples include the request being retried; dropped ones left the queue.
        while load(&stats.queued_items) + load(&stats.dropped_samples) < samples {
            assert!(Instant::now() < deadline, "the batches were never queued");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(load(&stats.failed_attempts) >= 1, "the receiver was away");
        abort.cancel();
        tokio::time::timeout(Duration::from_secs(5), running)
            .await
            .unwrap()
            .unwrap();
        stats
    }

    fn segments(dir: &Path) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "seg"))
            .collect();
        out.sort();
        out
    }

    #[tokio::test]
    async fn sends_protobuf_snappy_with_headers_in_batches_of_max_samples() {
        let server = TestServer::start(&[]).await;
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = RemoteWriteConfig::new(&server.url, dir.path());
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
        assert_eq!(load(&stats.delivered_requests), 2);
        assert!(
            segments(dir.path()).is_empty(),
            "a drained queue leaves no segment"
        );
    }

    #[tokio::test]
    async fn a_new_familys_metadata_goes_with_the_next_request_not_an_interval_later() {
        let server = TestServer::start(&[]).await;
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = RemoteWriteConfig::new(&server.url, dir.path());
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
    async fn batches_already_waiting_fill_one_request() {
        let server = TestServer::start(&[]).await;
        let dir = tempfile::tempdir().unwrap();
        let cfg = RemoteWriteConfig::new(&server.url, dir.path());
        run_sink(cfg, (0..5).map(load_at).collect()).await;
        assert_eq!(
            server.requests().len(),
            1,
            "five ready batches, one request"
        );
        assert_eq!(received(&server), [0, 1, 2, 3, 4]);
    }

    #[tokio::test]
    async fn shards_send_in_parallel_and_each_series_arrives_in_order() {
        use std::sync::atomic::AtomicUsize;
        use std::sync::Mutex;
        // A receiver that holds each request 50 ms, recording the most it held at once and
        // every (series, timestamp) in the order the requests were answered.
        #[derive(Default)]
        struct Slow {
            now: AtomicUsize,
            most: AtomicUsize,
            arrived: Mutex<Vec<(String, i64)>>,
        }
        let slow = Arc::new(Slow::default());
        let app = axum::Router::new()
            .fallback(
                |axum::extract::State(s): axum::extract::State<Arc<Slow>>,
                 body: axum::body::Bytes| async move {
                    let n = s.now.fetch_add(1, Ordering::SeqCst) + 1;
                    s.most.fetch_max(n, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    let mut arrived = s.arrived.lock().unwrap();
                    for ts in decode(&body).timeseries {
                        let name = format!("{:?}", ts.labels);
                        arrived.extend(ts.samples.iter().map(|x| (name.clone(), x.timestamp)));
                    }
                    s.now.fetch_sub(1, Ordering::SeqCst);
                    axum::http::StatusCode::NO_CONTENT
                },
            )
            .with_state(slow.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/api/v1/write", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });

        let dir = tempfile::tempdir().unwrap();
        let mut cfg = RemoteWriteConfig::new(&url, dir.path());
        cfg.max_samples_per_send = 4;
        // Ten collections of 32 series each: 80 requests over 4 shards.
        let batches: Vec<MetricBatch> = (0..10)
            .map(|t| MetricBatch {
                series: (0..32).map(|i| series(&format!("s{i}"), t)).collect(),
                metadata: Vec::new(),
            })
            .collect();
        let stats = run_sink(cfg, batches).await;
        assert_eq!(load(&stats.sent_items), 320);
        let most = slow.most.load(Ordering::SeqCst);
        assert!(
            most > 1 && most <= DEFAULT_REMOTE_WRITE_SHARDS,
            "requests overlap, at most one per shard: {most}"
        );
        let mut last: BTreeMap<String, i64> = BTreeMap::new();
        for (name, t) in slow.arrived.lock().unwrap().iter() {
            let before = last.insert(name.clone(), *t);
            assert!(
                before.is_none_or(|b| b < *t),
                "{name}: {t} after {before:?}"
            );
        }
        assert_eq!(last.len(), 32);
        assert!(
            last.values().all(|t| *t == 9),
            "every series got all ten samples"
        );
    }

    #[tokio::test]
    async fn a_500_is_retried_and_delivered_once() {
        let server = TestServer::start(&[500]).await;
        let dir = tempfile::tempdir().unwrap();
        let cfg = RemoteWriteConfig::new(&server.url, dir.path());
        let stats = run_sink(cfg, vec![batch(3)]).await;
        let reqs = server.requests();
        assert_eq!(reqs.len(), 2, "one failure, one retry");
        assert_eq!(
            reqs[0].body, reqs[1].body,
            "the retry resends the same batch"
        );
        assert_eq!(reqs[1].headers["retry-attempt"], "1");
        assert_eq!(load(&stats.delivered_requests), 1);
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
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = RemoteWriteConfig::new(&server.url, dir.path());
        cfg.max_samples_per_send = 1;
        let stats = run_sink(cfg, vec![batch(2)]).await;
        let reqs = server.requests();
        // Batch 1: 429 then 400 (dropped, not retried); batch 2: 204.
        assert_eq!(reqs.len(), 3);
        assert_eq!(reqs[1].body, reqs[0].body);
        assert_ne!(reqs[2].body, reqs[1].body);
        assert_eq!(load(&stats.rejected_requests), 1);
        assert_eq!(load(&stats.delivered_requests), 1);
        assert_eq!(load(&stats.rejected_items), 1);
        assert_eq!(load(&stats.failed_items), 1, "the 429");
        assert_eq!(load(&stats.sent_items), 1);
    }

    #[tokio::test]
    async fn requests_behind_a_failing_one_wait_and_follow_in_order() {
        // The first request meets 503, 429 and 500 before the receiver takes it; the others
        // were queued meanwhile and must neither overtake it nor be lost or sent twice.
        let server = TestServer::start(&[503, 429, 500]).await;
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = fast(RemoteWriteConfig::new(&server.url, dir.path()));
        cfg.max_samples_per_send = 1;
        let stats = run_sink(cfg, (0..20).map(load_at).collect()).await;
        let reqs = server.requests();
        assert_eq!(reqs.len(), 23, "20 requests and 3 failed attempts");
        assert!(
            reqs[..4].iter().all(|r| r.body == reqs[0].body),
            "retries first"
        );
        let delivered: Vec<i64> = reqs[3..]
            .iter()
            .flat_map(|r| decode(&r.body).timeseries)
            .map(|ts| ts.samples[0].timestamp)
            .collect();
        assert_eq!(delivered, (0..20).collect::<Vec<_>>());
        assert_eq!(load(&stats.sent_items), 20);
        assert_eq!(load(&stats.failed_attempts), 3);
    }

    #[tokio::test]
    async fn samples_queued_while_the_receiver_is_away_arrive_in_order_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = fast(RemoteWriteConfig::new(dead_url(), dir.path()));
        cfg.max_samples_per_send = 3;
        let first = queue_while_away(cfg, (0..50).map(load_at).collect()).await;
        assert_eq!(load(&first.delivered_requests), 0);
        assert_eq!(load(&first.dropped_samples), 0);
        assert_eq!(load(&first.aborted_items), 0, "all of it reached the disk");
        assert_eq!(load(&first.queued_items), 50, "kept for the next run");
        assert!(!segments(dir.path()).is_empty());

        // The next run, with the receiver back: the old requests go first, then new ones.
        let server = TestServer::start(&[]).await;
        let mut cfg = RemoteWriteConfig::new(&server.url, dir.path());
        cfg.max_samples_per_send = 3;
        let second = run_sink(cfg, (50..60).map(load_at).collect()).await;
        assert_eq!(received(&server), (0..60).collect::<Vec<_>>());
        assert_eq!(load(&second.sent_items), 60);
        assert_eq!(load(&second.queued_items), 0);
        assert!(
            segments(dir.path()).is_empty(),
            "delivered segments are deleted"
        );
    }

    #[tokio::test]
    async fn a_full_queue_drops_its_oldest_samples_and_counts_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = fast(RemoteWriteConfig::new(dead_url(), dir.path()));
        cfg.max_samples_per_send = 1;
        // Segments of 256 bytes, three or four requests each.
        cfg.queue_max_bytes = 4096;
        let first = queue_while_away(cfg, (0..300).map(load_at).collect()).await;
        let dropped = load(&first.dropped_samples);
        assert!(dropped > 200, "most of 300 did not fit: {dropped}");
        let on_disk: u64 = segments(dir.path())
            .iter()
            .map(|p| std::fs::metadata(p).unwrap().len())
            .sum();
        assert!(on_disk <= 4096, "the bound holds: {on_disk} bytes");

        let server = TestServer::start(&[]).await;
        let mut cfg = RemoteWriteConfig::new(&server.url, dir.path());
        cfg.queue_max_bytes = 4096;
        run_sink(cfg, Vec::new()).await;
        let got = received(&server);
        assert_eq!(
            got.len() as u64 + dropped,
            300,
            "every sample either arrives or is counted dropped"
        );
        let newest: Vec<i64> = (300 - got.len() as i64..300).collect();
        assert_eq!(got, newest, "the newest survive, in order");
    }

    #[tokio::test]
    async fn a_torn_last_request_is_cut_and_the_ones_before_it_are_sent() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = fast(RemoteWriteConfig::new(dead_url(), dir.path()));
        cfg.max_samples_per_send = 1;
        queue_while_away(cfg, (0..5).map(load_at).collect()).await;
        // A crash in the middle of the last append: its frame is cut short.
        let last = segments(dir.path()).pop().unwrap();
        let len = std::fs::metadata(&last).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&last)
            .unwrap()
            .set_len(len - 3)
            .unwrap();

        let server = TestServer::start(&[]).await;
        let cfg = RemoteWriteConfig::new(&server.url, dir.path());
        run_sink(cfg, vec![load_at(5)]).await;
        assert_eq!(received(&server), [0, 1, 2, 3, 5]);
    }

    #[tokio::test]
    async fn abort_stops_retrying_against_a_dead_server_and_keeps_the_request() {
        let dir = tempfile::tempdir().unwrap();
        let sink = RemoteWriteConfig::new(dead_url(), dir.path())
            .build()
            .unwrap();
        let stats = sink.stats();
        let (tx, rx) = mpsc::channel(1);
        tx.send(batch(1)).await.unwrap();
        let abort = CancellationToken::new();
        let task = tokio::spawn(sink.run(rx, abort.clone()));
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while load(&stats.failed_attempts) == 0 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        abort.cancel();
        tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(load(&stats.delivered_requests), 0);
        assert_eq!(load(&stats.aborted_requests), 1);
        assert_eq!(load(&stats.aborted_items), 0, "the sample is on disk");
        assert_eq!(load(&stats.queued_items), 1);
        assert!(load(&stats.failed_attempts) >= 1);
    }

    #[test]
    fn a_bad_url_or_a_zero_bound_fails_the_build() {
        let dir = tempfile::tempdir().unwrap();
        let err = RemoteWriteConfig::new("ftp://x/write", dir.path())
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("remote_write_url"), "{err}");
        let mut cfg = RemoteWriteConfig::new("http://127.0.0.1:1/api/v1/write", dir.path());
        cfg.queue_max_bytes = 0;
        assert!(cfg.build().is_err());
    }
}
