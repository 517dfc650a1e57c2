//! The Loki sink: batches log lines (up to 1 MiB or 1 s, Promtail's `batchsize` and
//! `batchwait`) into protobuf `PushRequest`s, snappy-compressed, and puts each into the
//! bounded on-disk queue (`queue/`) under the agent's state directory.
//!
//! Each [`LogBatch`] carries the file positions its lines end at. The sink hands those
//! positions back on its `acks` channel once the push holding the lines is fsync'd in the
//! queue, so the tailer's checkpoint never runs ahead of what is kept: a restart finds the
//! lines either in the queue or still in the files. The senders (`send.rs`) drain the
//! queue with several pushes in flight; a record leaves the queue only after a 2xx or a
//! permanent rejection.
//!
//! While the server is away the queue fills, up to `--logs.queue-max-bytes`; then the sink
//! waits to append, stops reading its input, the bounded input channel fills and the tailer
//! stops reading: backpressure reaches the reader, not memory. Rotated files deleted during a
//! long outage lose nothing that already reached the queue.

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

use super::queue::{QueueConfig, QueueReader, QueueWriter, Record};
use super::retry::Backoff;
use super::send::{send_all, Pusher, DEFAULT_MAX_IN_FLIGHT};
use super::{check_url, http_client, SinkStats, DEFAULT_REQUEST_TIMEOUT};
use crate::tail::Position;
use crate::Error;

/// Bytes of log text per push: Promtail's `batchsize`.
pub const DEFAULT_BATCH_BYTES: usize = 1 << 20;
/// Longest a line waits for its batch to fill: Promtail's `batchwait`.
pub const DEFAULT_BATCH_WAIT: Duration = Duration::from_secs(1);
/// What an entry costs in a batch beyond its text: timestamp and protobuf framing.
const ENTRY_OVERHEAD: usize = 16;
/// The wait before trying again to append to the queue after an I/O error (a full disk).
const QUEUE_RETRY: Duration = Duration::from_secs(1);

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
    /// The on-disk queue: its directory (`<state.path>/logqueue`) and size bound.
    pub queue: QueueConfig,
    /// Pushes in flight at once, at least 1; default [`DEFAULT_MAX_IN_FLIGHT`].
    pub max_in_flight: usize,
}

impl LokiConfig {
    /// The defaults, pushing to `url` through a queue in `queue_dir`.
    pub fn new(url: impl Into<String>, queue_dir: impl Into<std::path::PathBuf>) -> Self {
        LokiConfig {
            url: url.into(),
            batch_bytes: DEFAULT_BATCH_BYTES,
            batch_wait: DEFAULT_BATCH_WAIT,
            backoff: Backoff::default(),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            queue: QueueConfig::new(queue_dir),
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
        }
    }

    /// Opens the queue (recovering what a previous run left); fails on a bad URL or setting,
    /// an unusable queue directory, or a queue segment of an unknown format.
    pub fn build(self) -> Result<LokiSink, Error> {
        check_url("logs_push_url", &self.url)?;
        if self.max_in_flight == 0 {
            return Err(Error::Config {
                field: "logs_max_in_flight",
                reason: "must be at least 1".to_string(),
            });
        }
        if self.queue.max_bytes == 0 || self.queue.segment_bytes == 0 {
            return Err(Error::Config {
                field: "logs_queue_max_bytes",
                reason: "must be positive".to_string(),
            });
        }
        let (writer, reader, queue) = self.queue.open_for_sink()?;
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-protobuf"),
        );
        let stats: Arc<SinkStats> = Arc::default();
        let pusher = Arc::new(Pusher {
            sink: "loki",
            url: self.url.clone(),
            client: http_client(self.request_timeout)?,
            headers,
            backoff: self.backoff,
            stats: stats.clone(),
            queue,
        });
        pusher.update_gauge(0);
        Ok(LokiSink {
            cfg: self,
            pusher,
            writer,
            reader,
            stats,
        })
    }
}

/// The running Loki sink; see the module docs.
#[derive(Debug)]
pub struct LokiSink {
    cfg: LokiConfig,
    pusher: Arc<Pusher>,
    writer: QueueWriter,
    reader: QueueReader,
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

    /// Queues what arrives on `input` until it closes, then closes `acks` and sends what
    /// the queue holds; or until `abort` fires, when lines still gathering are dropped
    /// unacknowledged (read again after a restart) and queued ones stay on disk.
    pub async fn run(
        self,
        mut input: mpsc::Receiver<LogBatch>,
        acks: mpsc::UnboundedSender<Vec<Position>>,
        abort: CancellationToken,
    ) {
        let LokiSink {
            cfg,
            pusher,
            mut writer,
            reader,
            stats,
        } = self;
        let senders = tokio::spawn(send_all(
            pusher.clone(),
            reader,
            cfg.max_in_flight,
            abort.clone(),
        ));
        let mut batcher = Batcher {
            writer: &mut writer,
            pusher: &pusher,
            acks: &acks,
            abort: &abort,
        };
        let mut pending = Pending::default();
        let mut closed = false;
        loop {
            let deadline = pending.since.map(|t| t + cfg.batch_wait);
            tokio::select! {
                _ = abort.cancelled() => break,
                batch = input.recv() => match batch {
                    Some(batch) => {
                        let size = batch.bytes();
                        // Flush first when this batch would push the request over its size.
                        let overflows = !pending.is_empty() && pending.bytes + size > cfg.batch_bytes;
                        if overflows && !batcher.flush(std::mem::take(&mut pending)).await {
                            break;
                        }
                        pending.add(batch);
                        pusher.update_gauge(pending.entries() as u64);
                        if pending.bytes >= cfg.batch_bytes
                            && !batcher.flush(std::mem::take(&mut pending)).await
                        {
                            break;
                        }
                    }
                    None => {
                        closed = batcher.flush(std::mem::take(&mut pending)).await;
                        break;
                    }
                },
                _ = sleep_until(deadline) => {
                    if !batcher.flush(std::mem::take(&mut pending)).await {
                        break;
                    }
                }
            }
        }
        // Lines still gathering when the abort came are read again after a restart.
        SinkStats::add(&stats.aborted_items, pending.entries() as u64);
        // The tailer writes its final checkpoint once the acks channel closes.
        drop(acks);
        if closed {
            writer.close();
        }
        if let Err(error) = senders.await {
            tracing::error!(%error, "loki senders failed");
        }
        pusher.update_gauge(0);
        tracing::debug!("loki sink stopped");
    }
}

/// The batching side's handles, for [`Batcher::flush`].
struct Batcher<'a> {
    writer: &'a mut QueueWriter,
    pusher: &'a Pusher,
    acks: &'a mpsc::UnboundedSender<Vec<Position>>,
    abort: &'a CancellationToken,
}

impl Batcher<'_> {
    /// Appends `pending` to the queue (waiting while it is full) and acknowledges its
    /// positions; false when aborted first.
    async fn flush(&mut self, pending: Pending) -> bool {
        let entries = pending.entries();
        if entries > 0 {
            let text_bytes: usize = pending
                .streams
                .values()
                .flatten()
                .map(|e| e.line.len())
                .sum();
            let record = Record {
                entries: u32::try_from(entries).unwrap_or(u32::MAX),
                text_bytes: u32::try_from(text_bytes).unwrap_or(u32::MAX),
                body: encode(pending.streams),
            };
            loop {
                let pushed = tokio::select! {
                    _ = self.abort.cancelled() => {
                        SinkStats::add(&self.pusher.stats.aborted_items, entries as u64);
                        return false;
                    }
                    pushed = self.writer.push(record.clone()) => pushed,
                };
                match pushed {
                    Ok(()) => break,
                    Err(error) => {
                        tracing::error!(%error, "appending to the log queue failed, will retry");
                        tokio::select! {
                            _ = self.abort.cancelled() => return false,
                            _ = tokio::time::sleep(QUEUE_RETRY) => {}
                        }
                    }
                }
            }
            self.pusher.update_gauge(0);
        }
        if !pending.positions.is_empty() {
            // The tailer may have stopped listening; then its checkpoint is already final.
            let _ = self.acks.send(pending.positions);
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
        let dir = tempfile::tempdir().unwrap();
        let sink = LokiConfig::new(&server.url, dir.path()).build().unwrap();
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
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = LokiConfig::new(&server.url, dir.path());
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

    /// A receiver that answers after `delay`, counting the most requests it held at once.
    async fn slow_server(delay: Duration) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::AtomicUsize;
        let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let state = (now, most.clone());
        let app = axum::Router::new()
            .fallback(
                move |axum::extract::State((now, most)): axum::extract::State<(
                    Arc<AtomicUsize>,
                    Arc<AtomicUsize>,
                )>| async move {
                    let delay = delay;
                    let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(n, Ordering::SeqCst);
                    tokio::time::sleep(delay).await;
                    now.fetch_sub(1, Ordering::SeqCst);
                    axum::http::StatusCode::NO_CONTENT
                },
            )
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}/push"), most)
    }

    #[tokio::test]
    async fn up_to_max_in_flight_pushes_are_sent_at_once() {
        let (url, most) = slow_server(Duration::from_millis(300)).await;
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = LokiConfig::new(&url, dir.path());
        cfg.batch_bytes = 10;
        let sink = cfg.build().unwrap();
        let stats = sink.stats();
        let (tx, rx) = mpsc::channel(16);
        let (ack_tx, _ack_rx) = mpsc::unbounded_channel();
        for k in 0..8 {
            tx.send(batch(&"z".repeat(20), k + 1)).await.unwrap();
        }
        drop(tx);
        tokio::time::timeout(
            Duration::from_secs(10),
            sink.run(rx, ack_tx, CancellationToken::new()),
        )
        .await
        .unwrap();
        assert_eq!(stats.delivered_requests.load(Ordering::Relaxed), 8);
        assert_eq!(
            most.load(Ordering::SeqCst),
            DEFAULT_MAX_IN_FLIGHT,
            "8 slow pushes overlap up to the bound"
        );
        assert!(
            !std::fs::read_dir(dir.path()).unwrap().any(|e| e
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "seg")),
            "a drained queue leaves no segment"
        );
    }

    #[tokio::test]
    async fn lines_are_acked_once_queued_and_delivered_by_the_next_run() {
        // A port nothing listens on: every push fails with a network error.
        let dead = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}/push", l.local_addr().unwrap())
        };
        let dir = tempfile::tempdir().unwrap();
        let sink = LokiConfig::new(&dead, dir.path()).build().unwrap();
        let (tx, rx) = mpsc::channel(16);
        let (ack_tx, mut ack_rx) = mpsc::unbounded_channel();
        let abort = CancellationToken::new();
        let running = tokio::spawn(sink.run(rx, ack_tx, abort.clone()));
        tx.send(batch("kept", 5)).await.unwrap();
        let acked = tokio::time::timeout(Duration::from_secs(5), ack_rx.recv())
            .await
            .expect("acked while the server is away")
            .unwrap();
        assert_eq!(acked[0].offset, 5);
        abort.cancel();
        running.await.unwrap();

        let server = TestServer::start(&[]).await;
        let sink = LokiConfig::new(&server.url, dir.path()).build().unwrap();
        let (tx, rx) = mpsc::channel(16);
        let (ack_tx, _ack_rx) = mpsc::unbounded_channel();
        drop(tx);
        tokio::time::timeout(
            Duration::from_secs(5),
            sink.run(rx, ack_tx, CancellationToken::new()),
        )
        .await
        .unwrap();
        let reqs = server.requests();
        assert_eq!(reqs.len(), 1, "the queued push is replayed once");
        assert_eq!(decode(&reqs[0].body).streams[0].entries[0].line, "kept");
    }

    #[tokio::test]
    async fn a_queue_segment_of_an_unknown_version_fails_the_build() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("00000000000000000001.seg"),
            b"VLGQ\x09\0\0\0",
        )
        .unwrap();
        let err = LokiConfig::new("http://127.0.0.1:1/push", dir.path())
            .build()
            .unwrap_err();
        let chain = format!("{err}: {}", std::error::Error::source(&err).unwrap());
        assert!(chain.contains("format version 9"), "{chain}");
    }
}
