//! The Loki sink: batches log lines (up to 1 MiB or 1 s, Promtail's `batchsize` and
//! `batchwait`) into protobuf `PushRequest`s, snappy-compressed.
//!
//! Each [`LogBatch`] carries the file positions its lines end at. The sink hands those
//! positions back on its `acks` channel only once the push holding the lines got a 2xx (or a
//! permanent rejection, after which retrying is pointless), so the tailer's checkpoint never
//! runs ahead of what the server has: at-least-once delivery.
//!
//! The sink pushes one request at a time and does not read its input meanwhile; while the
//! server is away, the bounded input channel fills and the tailer stops reading. The files
//! on disk are the buffer.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use model::wire::loki::{PushRequest, StreamAdapter};
use model::{Labels, LogEntry, LogStream};
use prost::Message;
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::retry::{deliver, Backoff, Delivery, Request};
use super::{check_url, http_client, SinkStats, DEFAULT_REQUEST_TIMEOUT};
use crate::tail::Position;
use crate::Error;

/// Bytes of log text per push: Promtail's `batchsize`.
pub const DEFAULT_BATCH_BYTES: usize = 1 << 20;
/// Longest a line waits for its batch to fill: Promtail's `batchwait`.
pub const DEFAULT_BATCH_WAIT: Duration = Duration::from_secs(1);
/// What an entry costs in a batch beyond its text: timestamp and protobuf framing.
const ENTRY_OVERHEAD: usize = 16;

/// What the tailer sends downstream: lines, and the positions reached once they are pushed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LogBatch {
    pub streams: Vec<LogStream>,
    pub positions: Vec<Position>,
}

impl LogBatch {
    fn bytes(&self) -> usize {
        self.streams
            .iter()
            .flat_map(|s| &s.entries)
            .map(|e| e.line.len() + ENTRY_OVERHEAD)
            .sum()
    }
}

/// The Loki sink's settings.
#[derive(Clone, Debug)]
pub struct LokiConfig {
    /// The push endpoint, e.g. `http://vigil:9090/loki/api/v1/push`.
    pub url: String,
    /// A push is sent once it holds this many bytes; default [`DEFAULT_BATCH_BYTES`].
    pub batch_bytes: usize,
    /// …or once its first line has waited this long; default [`DEFAULT_BATCH_WAIT`].
    pub batch_wait: Duration,
    /// Retry policy; default [`Backoff::default`].
    pub backoff: Backoff,
    /// Timeout of one HTTP request; default [`DEFAULT_REQUEST_TIMEOUT`].
    pub request_timeout: Duration,
}

impl LokiConfig {
    pub fn new(url: impl Into<String>) -> Self {
        LokiConfig {
            url: url.into(),
            batch_bytes: DEFAULT_BATCH_BYTES,
            batch_wait: DEFAULT_BATCH_WAIT,
            backoff: Backoff::default(),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }

    pub fn build(self) -> Result<LokiSink, Error> {
        check_url("logs_push_url", &self.url)?;
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-protobuf"),
        );
        Ok(LokiSink {
            client: http_client(self.request_timeout)?,
            headers,
            stats: Arc::default(),
            cfg: self,
        })
    }
}

/// The running Loki sink; see the module docs.
#[derive(Debug)]
pub struct LokiSink {
    cfg: LokiConfig,
    client: reqwest::Client,
    headers: HeaderMap,
    stats: Arc<SinkStats>,
}

/// Lines gathered for the next push, grouped by stream.
#[derive(Debug, Default)]
struct Pending {
    streams: BTreeMap<Labels, Vec<LogEntry>>,
    positions: Vec<Position>,
    bytes: usize,
    since: Option<Instant>,
}

impl Pending {
    fn add(&mut self, batch: LogBatch) {
        self.bytes += batch.bytes();
        for s in batch.streams {
            self.streams.entry(s.labels).or_default().extend(s.entries);
        }
        self.positions.extend(batch.positions);
        self.since.get_or_insert_with(Instant::now);
    }

    fn is_empty(&self) -> bool {
        self.streams.is_empty() && self.positions.is_empty()
    }

    fn entries(&self) -> usize {
        self.streams.values().map(Vec::len).sum()
    }
}

impl LokiSink {
    pub fn stats(&self) -> Arc<SinkStats> {
        self.stats.clone()
    }

    /// Pushes what arrives on `input` until it closes (then flushes) or `abort` fires (then
    /// what is pending is dropped unacknowledged, to be read again after a restart).
    pub async fn run(
        self,
        mut input: mpsc::Receiver<LogBatch>,
        acks: mpsc::UnboundedSender<Vec<Position>>,
        abort: CancellationToken,
    ) {
        let mut pending = Pending::default();
        loop {
            let deadline = pending.since.map(|t| t + self.cfg.batch_wait);
            tokio::select! {
                _ = abort.cancelled() => break,
                batch = input.recv() => match batch {
                    Some(batch) => {
                        let size = batch.bytes();
                        // Flush first when this batch would push the request over its size.
                        let overflows = !pending.is_empty() && pending.bytes + size > self.cfg.batch_bytes;
                        if overflows && !self.flush(std::mem::take(&mut pending), &acks, &abort).await {
                            break;
                        }
                        pending.add(batch);
                        SinkStats::set(&self.stats.queued_items, pending.entries() as u64);
                        if pending.bytes >= self.cfg.batch_bytes
                            && !self.flush(std::mem::take(&mut pending), &acks, &abort).await
                        {
                            break;
                        }
                    }
                    None => {
                        self.flush(std::mem::take(&mut pending), &acks, &abort).await;
                        break;
                    }
                },
                _ = sleep_until(deadline) => {
                    if !self.flush(std::mem::take(&mut pending), &acks, &abort).await {
                        break;
                    }
                }
            }
        }
        // Lines still gathering when the abort came are read again after a restart.
        SinkStats::add(&self.stats.aborted_items, pending.entries() as u64);
        SinkStats::set(&self.stats.queued_items, 0);
        tracing::debug!("loki sink stopped");
    }

    /// Pushes `pending` and acknowledges its positions; false when aborted.
    async fn flush(
        &self,
        pending: Pending,
        acks: &mpsc::UnboundedSender<Vec<Position>>,
        abort: &CancellationToken,
    ) -> bool {
        let entries = pending.entries();
        if entries > 0 {
            let text_bytes: usize = pending
                .streams
                .values()
                .flatten()
                .map(|e| e.line.len())
                .sum();
            let req = Request {
                url: self.cfg.url.clone(),
                headers: self.headers.clone(),
                body: encode(pending.streams),
                retry_429: true,
            };
            let on_retry = || self.stats.failed(entries as u64);
            let delivery = deliver(
                self.client.clone(),
                req,
                self.cfg.backoff,
                abort.clone(),
                on_retry,
            )
            .await;
            SinkStats::set(&self.stats.queued_items, 0);
            match delivery {
                Delivery::Delivered { attempts } => {
                    SinkStats::add(&self.stats.delivered_requests, 1);
                    SinkStats::add(&self.stats.sent_items, entries as u64);
                    SinkStats::add(&self.stats.sent_bytes, text_bytes as u64);
                    tracing::debug!(entries, attempts, "loki push delivered");
                }
                Delivery::Rejected { status, body } => {
                    SinkStats::add(&self.stats.rejected_requests, 1);
                    SinkStats::add(&self.stats.rejected_items, entries as u64);
                    tracing::error!(status, entries, %body, "loki push rejected, lines dropped");
                }
                Delivery::Aborted => {
                    SinkStats::add(&self.stats.aborted_requests, 1);
                    SinkStats::add(&self.stats.aborted_items, entries as u64);
                    return false;
                }
            }
        }
        if !pending.positions.is_empty() {
            // The tailer may have stopped listening; then its checkpoint is already final.
            let _ = acks.send(pending.positions);
        }
        true
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// The snappy-compressed protobuf body of one push.
pub(crate) fn encode(streams: BTreeMap<Labels, Vec<LogEntry>>) -> Vec<u8> {
    let req = PushRequest {
        streams: streams
            .into_iter()
            .map(|(labels, entries)| StreamAdapter::from_stream(&LogStream { labels, entries }))
            .collect(),
    };
    model::wire::snappy_compress(&req.encode_to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ship::test_server::TestServer;
    use std::path::PathBuf;
    use std::sync::atomic::Ordering;

    fn batch(line: &str, offset: u64) -> LogBatch {
        LogBatch {
            streams: vec![LogStream {
                labels: Labels::from_pairs([("job", "varlogs")]),
                entries: vec![LogEntry {
                    ts_ns: 1_700_000_000_000_000_000 + offset as i64,
                    line: line.into(),
                    metadata: Vec::new(),
                }],
            }],
            positions: vec![Position {
                path: PathBuf::from("/var/log/a.log"),
                dev: 1,
                inode: 2,
                offset,
            }],
        }
    }

    fn decode(body: &[u8]) -> PushRequest {
        let raw = model::wire::snappy_decompress(body, 1 << 24).unwrap();
        PushRequest::decode(raw.as_slice()).unwrap()
    }

    /// Runs a sink over `batches` with the input closed, returning the acks it sent.
    async fn run_sink(
        server: &TestServer,
        batches: Vec<LogBatch>,
    ) -> (Vec<Vec<Position>>, Arc<SinkStats>) {
        let sink = LokiConfig::new(&server.url).build().unwrap();
        let stats = sink.stats();
        let (tx, rx) = mpsc::channel(16);
        let (ack_tx, mut ack_rx) = mpsc::unbounded_channel();
        for b in batches {
            tx.send(b).await.unwrap();
        }
        drop(tx);
        tokio::time::timeout(
            Duration::from_secs(5),
            sink.run(rx, ack_tx, CancellationToken::new()),
        )
        .await
        .unwrap();
        let mut acks = Vec::new();
        while let Some(a) = ack_rx.recv().await {
            acks.push(a);
        }
        (acks, stats)
    }

    #[tokio::test]
    async fn batches_lines_into_one_push_and_acks_after_delivery() {
        let server = TestServer::start(&[]).await;
        let (acks, _) = run_sink(&server, vec![batch("one", 4), batch("two", 8)]).await;
        let reqs = server.requests();
        assert_eq!(reqs.len(), 1);
        assert_eq!(reqs[0].headers["content-type"], "application/x-protobuf");
        let push = decode(&reqs[0].body);
        assert_eq!(push.streams.len(), 1);
        assert_eq!(push.streams[0].labels, r#"{job="varlogs"}"#);
        let lines: Vec<&str> = push.streams[0]
            .entries
            .iter()
            .map(|e| e.line.as_str())
            .collect();
        assert_eq!(lines, ["one", "two"]);
        let offsets: Vec<u64> = acks.concat().iter().map(|p| p.offset).collect();
        assert_eq!(offsets, [4, 8]);
    }

    #[tokio::test]
    async fn a_500_is_retried_then_acked_once() {
        let server = TestServer::start(&[500]).await;
        let (acks, stats) = run_sink(&server, vec![batch("x", 2)]).await;
        assert_eq!(server.requests().len(), 2);
        assert_eq!(acks.len(), 1);
        assert_eq!(stats.delivered_requests.load(Ordering::Relaxed), 1);
        assert_eq!(stats.failed_attempts.load(Ordering::Relaxed), 1);
        assert_eq!(stats.sent_items.load(Ordering::Relaxed), 1);
        assert_eq!(
            stats.sent_bytes.load(Ordering::Relaxed),
            1,
            "the line \"x\""
        );
        assert_eq!(stats.queued_items.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn a_400_is_not_retried_and_its_positions_move_on() {
        let server = TestServer::start(&[400]).await;
        let (acks, stats) = run_sink(&server, vec![batch("x", 2)]).await;
        assert_eq!(server.requests().len(), 1);
        assert_eq!(stats.rejected_requests.load(Ordering::Relaxed), 1);
        assert_eq!(stats.rejected_items.load(Ordering::Relaxed), 1);
        assert_eq!(acks.concat()[0].offset, 2);
    }

    #[tokio::test]
    async fn a_full_batch_goes_out_without_waiting() {
        let server = TestServer::start(&[]).await;
        let mut cfg = LokiConfig::new(&server.url);
        cfg.batch_bytes = 100;
        cfg.batch_wait = Duration::from_secs(3600);
        let sink = cfg.build().unwrap();
        let (tx, rx) = mpsc::channel(16);
        let (ack_tx, mut ack_rx) = mpsc::unbounded_channel();
        tokio::spawn(sink.run(rx, ack_tx, CancellationToken::new()));
        tx.send(batch(&"a".repeat(90), 91)).await.unwrap();
        tx.send(batch(&"b".repeat(90), 182)).await.unwrap();
        let first = tokio::time::timeout(Duration::from_secs(2), ack_rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(first[0].offset, 91, "the first line went out alone");
        drop(tx);
    }
}
