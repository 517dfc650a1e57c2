//! The Loki sink: batches log lines (up to 1 MiB or 1 s, Promtail's `batchsize` and
//! `batchwait`) into protobuf `PushRequest`s, snappy-compressed, and puts each into the
//! bounded on-disk queue (`queue/`) under the agent's state directory.
//!
//! Each [`LogBatch`] carries the file positions its lines end at. The sink stores them in the
//! queue record of the push that holds the lines (its `meta`; positions that came without
//! lines get a record of their own with no body, which is never sent), and hands them back on
//! its `acks` channel only once the receiver answered 2xx (or a permanent 4xx) for that push
//! and for every push queued before it: the tailer's checkpoint never runs ahead of what the
//! receiver has. On a restart [`LokiSink::recovered_positions`] tells the tailer where the lines
//! still queued end, so it resumes after them instead of reading them again. The senders
//! (`send.rs`) drain the queue with several pushes in flight, one per lane: lines are gathered
//! per lane, a container's lines always in the same one, so each file's lines reach the
//! receiver in order; a record leaves the queue only after a 2xx or a permanent rejection.
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
use crate::tail::{decode_positions, encode_positions, Position};
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

/// File positions a previous run left in the queue.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RecoveredPositions {
    /// Of pushes the receiver acknowledged (the queue's delivery mark covers them) that the
    /// previous run may not have written to `positions.json` before it stopped.
    pub delivered: Vec<Position>,
    /// Of pushes still to be sent.
    pub queued: Vec<Position>,
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

    /// The positions of the lines a previous run left in the queue, in queue order, for the
    /// tailer ([`crate::tail::TailConfig::queued`] and `delivered`); empty after the first
    /// call. A record whose positions cannot be read is skipped with a warning: its files are
    /// then read again from their checkpoints, which duplicates lines but loses none.
    pub fn recovered_positions(&self) -> RecoveredPositions {
        let metas = self.pusher.queue.take_recovered_metas();
        let decode = |metas: Vec<Vec<u8>>| {
            let mut out = Vec::new();
            for meta in metas {
                match decode_positions(&meta) {
                    Some(positions) => out.extend(positions),
                    None => tracing::warn!("a queued push's file positions are unreadable"),
                }
            }
            out
        };
        RecoveredPositions {
            delivered: decode(metas.delivered),
            queued: decode(metas.undelivered),
        }
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
        // Acknowledgements come from the senders; `acks` closes once they have stopped.
        let delivered = move |meta: Vec<u8>| match decode_positions(&meta) {
            // The tailer may have stopped listening; then its checkpoint is already final.
            Some(positions) => drop(acks.send(positions)),
            None => tracing::warn!("a delivered push's file positions are unreadable"),
        };
        let senders = tokio::spawn(send_all(
            pusher.clone(),
            reader,
            cfg.max_in_flight,
            abort.clone(),
            delivered,
        ));
        let mut batcher = Batcher {
            writer: &mut writer,
            pusher: &pusher,
            abort: &abort,
        };
        // One request gathering per lane; a container's lines always take the same lane.
        let mut lanes: Vec<Pending> = (0..cfg.max_in_flight).map(|_| Pending::default()).collect();
        let gathering = |lanes: &[Pending]| lanes.iter().map(Pending::entries).sum::<usize>();
        let mut closed = false;
        'run: loop {
            let deadline = lanes
                .iter()
                .filter_map(|p| p.since)
                .min()
                .map(|t| t + cfg.batch_wait);
            tokio::select! {
                _ = abort.cancelled() => break,
                batch = input.recv() => match batch {
                    Some(batch) => {
                        let lane = lane_of(&batch, lanes.len());
                        let pending = &mut lanes[lane];
                        let size = batch.bytes();
                        // Flush first when this batch would push the request over its size.
                        let overflows = !pending.is_empty() && pending.bytes + size > cfg.batch_bytes;
                        if overflows && !batcher.flush(lane, std::mem::take(pending)).await {
                            break;
                        }
                        pending.add(batch);
                        let full = pending.bytes >= cfg.batch_bytes;
                        pusher.update_gauge(gathering(&lanes) as u64);
                        if full && !batcher.flush(lane, std::mem::take(&mut lanes[lane])).await {
                            break;
                        }
                    }
                    None => {
                        for (lane, pending) in lanes.iter_mut().enumerate() {
                            if !batcher.flush(lane, std::mem::take(pending)).await {
                                break 'run;
                            }
                        }
                        closed = true;
                        break;
                    }
                },
                _ = sleep_until(deadline) => {
                    let now = Instant::now();
                    for (lane, pending) in lanes.iter_mut().enumerate() {
                        let due = pending.since.is_some_and(|t| t + cfg.batch_wait <= now);
                        if due && !batcher.flush(lane, std::mem::take(pending)).await {
                            break 'run;
                        }
                    }
                }
            }
        }
        // Lines still gathering when the abort came are read again after a restart.
        SinkStats::add(&stats.aborted_items, gathering(&lanes) as u64);
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
    abort: &'a CancellationToken,
}

impl Batcher<'_> {
    /// Appends `pending` to the queue in `lane`, with its positions as the record's meta
    /// (waiting while the queue is full); false when aborted first.
    async fn flush(&mut self, lane: usize, pending: Pending) -> bool {
        let entries = pending.entries();
        if entries > 0 || !pending.positions.is_empty() {
            let text_bytes: usize = pending
                .streams
                .values()
                .flatten()
                .map(|e| e.line.len())
                .sum();
            let record = Record {
                entries: u32::try_from(entries).unwrap_or(u32::MAX),
                text_bytes: u32::try_from(text_bytes).unwrap_or(u32::MAX),
                lane: u32::try_from(lane).unwrap_or(0),
                meta: encode_positions(&pending.positions),
                body: if entries > 0 {
                    encode(pending.streams)
                } else {
                    Vec::new()
                },
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
        true
    }
}

/// The lane of `batch` among `lanes`: by the directory of the file its lines come from (a
/// container's live and rotated files share it), else by its first stream. The tailer sends
/// one file's lines per batch, so a file's lines always travel in one lane, in order.
fn lane_of(batch: &LogBatch, lanes: usize) -> usize {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    match (batch.positions.first(), batch.streams.first()) {
        (Some(p), _) => p.path.parent().hash(&mut h),
        (None, Some(s)) => s.labels.hash(&mut h),
        (None, None) => return 0,
    }
    (h.finish() % lanes.max(1) as u64) as usize
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
            positions: vec![Position::for_test(
                PathBuf::from("/var/log/a.log"),
                2,
                offset,
            )],
        }
    }

    /// A batch like [`batch`] from the file `0.log` of container directory `dir`.
    fn batch_in(dir: &str, line: &str, offset: u64) -> LogBatch {
        let mut b = batch(line, offset);
        b.positions[0].path = PathBuf::from(dir).join("0.log");
        b
    }

    /// `n` container directories whose lines take lane `lane` of [`DEFAULT_MAX_IN_FLIGHT`].
    fn dirs_in_lane(lane: usize, n: usize) -> Vec<String> {
        (0..)
            .map(|i| format!("/var/log/pods/ns_pod-{i}_uid/app"))
            .filter(|d| lane_of(&batch_in(d, "x", 1), DEFAULT_MAX_IN_FLIGHT) == lane)
            .take(n)
            .collect()
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
        run_sink_with(LokiConfig::new(&server.url, dir.path()), batches).await
    }

    /// Runs a sink of `cfg` over `batches` with the input closed, until its queue is drained;
    /// returns the acks it sent, in order, and its counters.
    async fn run_sink_with(
        cfg: LokiConfig,
        batches: Vec<LogBatch>,
    ) -> (Vec<Vec<Position>>, Arc<SinkStats>) {
        let sink = cfg.build().unwrap();
        let stats = sink.stats();
        let (tx, rx) = mpsc::channel(16);
        let (ack_tx, mut ack_rx) = mpsc::unbounded_channel();
        for b in batches {
            tx.send(b).await.unwrap();
        }
        drop(tx);
        tokio::time::timeout(
            Duration::from_secs(10),
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

    /// The offsets of every acknowledged position, in order.
    fn offsets(acks: &[Vec<Position>]) -> Vec<u64> {
        acks.iter().flatten().map(|p| p.offset).collect()
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
        // Two containers per lane, queued lane 0, 1, 2, 3, 0, 1, 2, 3.
        let lanes: Vec<Vec<String>> = (0..DEFAULT_MAX_IN_FLIGHT)
            .map(|l| dirs_in_lane(l, 2))
            .collect();
        let batches = (0..8)
            .map(|k| {
                let dir = &lanes[k % DEFAULT_MAX_IN_FLIGHT][k / DEFAULT_MAX_IN_FLIGHT];
                batch_in(dir, &"z".repeat(20), k as u64 + 1)
            })
            .collect();
        let (_, stats) = run_sink_with(cfg, batches).await;
        assert_eq!(stats.delivered_requests.load(Ordering::Relaxed), 8);
        assert_eq!(
            most.load(Ordering::SeqCst),
            DEFAULT_MAX_IN_FLIGHT,
            "8 slow pushes of different lanes overlap up to the bound"
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
    async fn one_containers_pushes_go_one_at_a_time_in_order() {
        let (url, most) = slow_server(Duration::from_millis(100)).await;
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = LokiConfig::new(&url, dir.path());
        cfg.batch_bytes = 10;
        let container = "/var/log/pods/ns_one_uid/app";
        let batches = (0..4)
            .map(|k| batch_in(container, &"z".repeat(20), k + 1))
            .collect();
        let (acks, stats) = run_sink_with(cfg, batches).await;
        assert_eq!(offsets(&acks), [1, 2, 3, 4]);
        assert_eq!(stats.delivered_requests.load(Ordering::Relaxed), 4);
        assert_eq!(
            most.load(Ordering::SeqCst),
            1,
            "never two of its pushes at once"
        );
    }

    #[tokio::test]
    async fn positions_are_acked_only_after_delivery_and_a_restart_knows_where_queued_lines_end() {
        // A port nothing listens on: every push fails with a network error.
        let dead = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}/push", l.local_addr().unwrap())
        };
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = LokiConfig::new(&dead, dir.path());
        cfg.batch_wait = Duration::from_millis(50);
        let sink = cfg.build().unwrap();
        let stats = sink.stats();
        let (tx, rx) = mpsc::channel(16);
        let (ack_tx, mut ack_rx) = mpsc::unbounded_channel();
        let abort = CancellationToken::new();
        let running = tokio::spawn(sink.run(rx, ack_tx, abort.clone()));
        tx.send(batch("kept", 5)).await.unwrap();
        // Queued (the gauge counts it) but not delivered: no ack may come.
        let deadline = Instant::now() + Duration::from_secs(5);
        while stats.queued_items.load(Ordering::Relaxed) == 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let early = tokio::time::timeout(Duration::from_millis(700), ack_rx.recv()).await;
        assert!(
            early.is_err(),
            "acked before the receiver had it: {early:?}"
        );
        abort.cancel();
        running.await.unwrap();
        assert!(
            ack_rx.recv().await.is_none(),
            "still nothing when the sink stops"
        );

        let server = TestServer::start(&[]).await;
        let sink = LokiConfig::new(&server.url, dir.path()).build().unwrap();
        let recovered = sink.recovered_positions();
        let offsets = |p: &[Position]| p.iter().map(|p| p.offset).collect::<Vec<_>>();
        assert_eq!(offsets(&recovered.queued), [5]);
        assert!(recovered.delivered.is_empty());
        assert_eq!(
            sink.recovered_positions(),
            RecoveredPositions::default(),
            "taken once"
        );
        let (tx, rx) = mpsc::channel(16);
        let (ack_tx, mut ack_rx) = mpsc::unbounded_channel();
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
        let acked = ack_rx.recv().await.expect("acked once delivered");
        assert_eq!(acked[0].offset, 5);
    }

    #[tokio::test]
    async fn a_push_answered_first_waits_for_the_pushes_queued_before_it() {
        use std::sync::Mutex;
        // The receiver holds the push with the line "slow" and answers the others at once,
        // recording the lines in the order it answered them.
        let answered = Arc::new(Mutex::new(Vec::<String>::new()));
        let app = axum::Router::new()
            .fallback(
                |axum::extract::State(answered): axum::extract::State<Arc<Mutex<Vec<String>>>>,
                 body: axum::body::Bytes| async move {
                    let line = decode(&body).streams[0].entries[0].line.clone();
                    if line == "slow" {
                        tokio::time::sleep(Duration::from_millis(600)).await;
                    }
                    answered.lock().unwrap().push(line);
                    axum::http::StatusCode::NO_CONTENT
                },
            )
            .with_state(answered.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/push", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });

        let dir = tempfile::tempdir().unwrap();
        let mut cfg = LokiConfig::new(&url, dir.path());
        cfg.batch_bytes = 1;
        // Two containers in different lanes, so both pushes are in flight at once.
        let batches = vec![
            batch_in(&dirs_in_lane(0, 1)[0], "slow", 10),
            batch_in(&dirs_in_lane(1, 1)[0], "fast", 20),
        ];
        let (acks, _) = run_sink_with(cfg, batches).await;
        assert_eq!(
            *answered.lock().unwrap(),
            ["fast", "slow"],
            "answered out of order"
        );
        assert_eq!(offsets(&acks), [10, 20], "acknowledged in queue order");
    }

    #[tokio::test]
    async fn positions_without_lines_are_acked_after_the_lines_before_them() {
        // The push of "x" fails once; the position after it, with no line of its own, is a
        // record without a body, finished at once, and still acknowledged after "x".
        let server = TestServer::start(&[503]).await;
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = LokiConfig::new(&server.url, dir.path());
        cfg.batch_bytes = 1;
        let mut only_position = batch("", 9);
        only_position.streams.clear();
        let (acks, _) = run_sink_with(cfg, vec![batch("x", 4), only_position]).await;
        assert_eq!(
            server.requests().len(),
            2,
            "a 503, then the line; nothing for the position"
        );
        assert_eq!(offsets(&acks), [4, 9]);
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
