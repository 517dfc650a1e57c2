//! The senders of the queued sinks (Loki push, agent remote write): drain the on-disk queue
//! in order with up to `max_in_flight` requests at once, each retried with backoff on network
//! errors, 5xx and 429 (`retry.rs`), and mark each record done in the queue once it got a 2xx
//! or a permanent rejection. Marking waits for the queue's delivery mark to be durable, so
//! with one request in flight the next is sent only once a crash can no longer resend the
//! last one. The records' `meta` goes back to the sink in queue order as the finished prefix
//! grows: for the Loki sink, the file positions the tailer may now checkpoint.
//!
//! Requests of different lanes may land in any order; those of one lane land in queue order.
//! Remote write's lanes are shards of the series (a receiver refuses a sample older than the
//! newest of its series, so each series' requests must land in the order they were made); the
//! Loki sink's are groups of containers, so each file's lines arrive in order (Loki would take
//! them out of order since 2.4, but the tailer promises order per file).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use reqwest::header::HeaderMap;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::queue::{DiskQueue, QueueReader, Queued};
use super::retry::{deliver, Backoff, Delivery, Request};
use super::SinkStats;

/// Loki pushes in flight at once unless configured.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 4;

/// What every request of one sink shares.
#[derive(Debug)]
pub(super) struct Pusher {
    /// The sink, for log lines: `"loki"` or `"remote_write"`.
    pub sink: &'static str,
    pub url: String,
    pub client: reqwest::Client,
    pub headers: HeaderMap,
    pub backoff: Backoff,
    pub stats: Arc<SinkStats>,
    pub queue: DiskQueue,
}

impl Pusher {
    /// Sets the queue gauges from the queue, plus `gathering` items not queued yet.
    pub fn update_gauge(&self, gathering: u64) {
        let (bytes, waiting) = self.queue.usage();
        SinkStats::set(&self.stats.queued_items, waiting + gathering);
        SinkStats::set(&self.stats.disk_items, waiting);
        SinkStats::set(&self.stats.disk_bytes, bytes);
    }
}

/// Sends what `reader` hands out until it ends (the writer closed and everything was sent) or
/// `abort` fires; records still in flight then stay in the queue for the next run.
///
/// At most `max_in_flight` requests are in flight, and at most one per lane: the records of a
/// lane (one series shard, one container's logs) reach the receiver in queue order. A record
/// whose lane is busy waits, and the records after it wait behind it.
///
/// The non-empty `meta` of each finished record goes to `delivered` in queue order, once it
/// and every record handed out before it are finished: with several requests in flight a later
/// one can finish first, and its meta waits for the earlier ones. A record aborted unfinished
/// holds back every meta after it. `delivered` is dropped when this returns.
pub(super) async fn send_all(
    pusher: Arc<Pusher>,
    mut reader: QueueReader,
    max_in_flight: usize,
    abort: CancellationToken,
    delivered: impl Fn(Vec<u8>) + Send,
) {
    let mut in_flight = JoinSet::new();
    // The lane of each task in flight.
    let mut lanes: HashMap<tokio::task::Id, u32> = HashMap::new();
    // Records handed out, oldest first: their meta, and whether they are finished.
    let mut order: VecDeque<(u64, Vec<u8>, bool)> = VecDeque::new();
    // A record read whose lane was busy.
    let mut waiting: Option<Queued> = None;
    let mut next_ticket = 0u64;
    let mut reading = true;
    loop {
        if let Some(q) = waiting.take_if(|q| {
            in_flight.len() < max_in_flight && !lanes.values().any(|l| *l == q.record.lane)
        }) {
            let ticket = next_ticket;
            next_ticket += 1;
            let lane = q.record.lane;
            let (q, meta) = take_meta(q);
            order.push_back((ticket, meta, false));
            let task = in_flight.spawn(push_one(pusher.clone(), q, abort.clone(), ticket));
            lanes.insert(task.id(), lane);
        }
        if !reading && waiting.is_none() && in_flight.is_empty() {
            break;
        }
        tokio::select! {
            _ = abort.cancelled() => break,
            next = reader.next(), if reading && waiting.is_none() => match next {
                // Started at the top of the loop once its lane and a slot are free.
                Some(q) => waiting = Some(q),
                None => reading = false,
            },
            Some(joined) = in_flight.join_next_with_id() => {
                let finished = match joined {
                    Ok((id, finished)) => {
                        lanes.remove(&id);
                        finished
                    }
                    Err(error) => {
                        lanes.remove(&error.id());
                        tracing::error!(sink = pusher.sink, %error, "push task failed; its record is sent again after a restart");
                        None
                    }
                };
                if let Some(ticket) = finished {
                    if let Some(entry) = order.iter_mut().find(|(t, _, _)| *t == ticket) {
                        entry.2 = true;
                    }
                    while order.front().is_some_and(|(_, _, finished)| *finished) {
                        if let Some((_, meta, _)) = order.pop_front() {
                            if !meta.is_empty() {
                                delivered(meta);
                            }
                        }
                    }
                }
            }
        }
    }
    if let Some(q) = waiting {
        abandoned(&pusher, q.seq, u64::from(q.record.entries));
    }
    // The tasks see the same abort and end on their own; wait so their counts are final.
    while in_flight.join_next().await.is_some() {}
    tracing::debug!(sink = pusher.sink, "senders stopped");
}

/// Leaves a record handed out but not finished: it stays on disk and is sent after a restart,
/// unless the full queue dropped its segment meanwhile; then it is lost here, and counted.
fn abandoned(pusher: &Pusher, seq: u64, entries: u64) {
    if !pusher.queue.holds(seq) {
        SinkStats::add(&pusher.stats.dropped_samples, entries);
    }
}

/// Splits the meta off a queued record: it stays with the sender, the body goes out.
fn take_meta(mut q: Queued) -> (Queued, Vec<u8>) {
    let meta = std::mem::take(&mut q.record.meta);
    (q, meta)
}

/// Delivers one queued record and marks it done unless aborted; returns `ticket` once the
/// record is finished (delivered, or rejected for good). A record without a body only
/// carries its meta: it is finished without a request.
async fn push_one(
    pusher: Arc<Pusher>,
    q: Queued,
    abort: CancellationToken,
    ticket: u64,
) -> Option<u64> {
    let entries = u64::from(q.record.entries);
    if q.record.body.is_empty() {
        pusher.queue.done(q.seq, q.nth, 1, entries).await;
        return Some(ticket);
    }
    let req = Request {
        url: pusher.url.clone(),
        headers: pusher.headers.clone(),
        body: q.record.body,
        retry_429: true,
    };
    let on_retry = || pusher.stats.failed(entries);
    let delivery = deliver(pusher.client.clone(), req, pusher.backoff, abort, on_retry).await;
    let (stats, sink) = (&pusher.stats, pusher.sink);
    match delivery {
        Delivery::Delivered { attempts } => {
            SinkStats::add(&stats.delivered_requests, 1);
            SinkStats::add(&stats.sent_items, entries);
            SinkStats::add(&stats.sent_bytes, u64::from(q.record.text_bytes));
            tracing::debug!(sink, entries, attempts, "push delivered");
        }
        Delivery::Rejected { status, body } => {
            SinkStats::add(&stats.rejected_requests, 1);
            SinkStats::add(&stats.rejected_items, entries);
            tracing::error!(sink, status, entries, %body, "push rejected, its items dropped");
        }
        Delivery::Aborted => {
            SinkStats::add(&stats.aborted_requests, 1);
            abandoned(&pusher, q.seq, entries);
            return None;
        }
    }
    pusher.queue.done(q.seq, q.nth, 1, entries).await;
    pusher.update_gauge(0);
    Some(ticket)
}
