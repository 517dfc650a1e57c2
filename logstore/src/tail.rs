//! Live tailing: the hub every push publishes its stored entries to, and [`Tail`], one
//! subscriber's bounded view of them with Loki's tail semantics.
//!
//! The push path does as little as it can for tailers: it checks each pushed stream against
//! each subscriber's selector and appends the matching entries to that subscriber's queue,
//! which is bounded in entries and bytes. A subscriber whose reader falls behind loses entries
//! rather than holding memory: they are recorded (labels and timestamp, at most
//! [`MAX_DROPPED_ENTRIES_PER_TAIL_RESPONSE`]) and reported with the next response, as Loki's
//! `dropped_entries`. The pipeline runs on the reader's side, in [`Tail::next_response`], so a
//! costly query slows its own tail and never a push.
//!
//! As in Loki, an entry is released once the wall clock is past its timestamp plus
//! `delay_for` (entries from different pushes are released in timestamp order), responses
//! carry at most [`MAX_ENTRIES_PER_TAIL_RESPONSE`] entries, each in a stream object of its
//! own so that the order of entries across streams survives, and a tail starts with a
//! backfill: the newest `limit` entries since `start`, oldest first.

use crate::logql::pipeline::{self, Row};
use crate::logql::{parse_expr, Expr, LogQuery};
use crate::store::{Direction, LogStore};
use crate::Error;
use model::{Labels, LogEntry, LogStream, Matcher};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

/// Most entries in one tail response (Loki's `maxEntriesPerTailResponse`).
pub const MAX_ENTRIES_PER_TAIL_RESPONSE: usize = 100;
/// Most entries a subscriber buffers before new ones are dropped: ten responses, as Loki's
/// tailer buffers ten responses.
pub const MAX_BUFFERED_TAIL_ENTRIES: usize = 10 * MAX_ENTRIES_PER_TAIL_RESPONSE;
/// Most line bytes a subscriber buffers before new entries are dropped, so that long lines
/// cannot turn the entry bound into hundreds of megabytes.
pub const MAX_BUFFERED_TAIL_BYTES: usize = 4 << 20;
/// Most dropped entries remembered for the next response; later drops are not itemised
/// (Loki's `maxDroppedEntriesPerTailResponse`).
pub const MAX_DROPPED_ENTRIES_PER_TAIL_RESPONSE: usize = 1000;
/// Most tails open at once (Loki's `max_concurrent_tail_requests` default).
pub const MAX_CONCURRENT_TAILS: usize = 10;
/// Largest `delay_for`, in seconds (Loki's `maxDelayForInTailing`).
pub const MAX_TAIL_DELAY_SECONDS: u32 = 5;

/// An entry a tail lost because its reader was too slow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DroppedEntry {
    pub labels: Labels,
    pub ts_ns: i64,
}

/// What a tail sends next: entries in timestamp order, one per stream object (as Loki sends
/// them), and the entries dropped since the previous response.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TailResponse {
    pub streams: Vec<LogStream>,
    pub dropped: Vec<DroppedEntry>,
}

/// The subscribers of a store. Held by the store's core; pushes publish through it.
#[derive(Default)]
pub(crate) struct TailHub {
    subscribers: Mutex<Vec<Weak<Subscription>>>,
}

/// The store is closing: every open tail learns it (and wakes) so its reader can say goodbye
/// instead of waiting for pushes that will not come.
impl Drop for TailHub {
    fn drop(&mut self) {
        for sub in lock(&self.subscribers).iter().filter_map(Weak::upgrade) {
            sub.closed.store(true, Ordering::Release);
            (sub.wake)();
        }
    }
}

impl fmt::Debug for TailHub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TailHub").finish_non_exhaustive()
    }
}

/// A subscriber as the push path sees it: a selector and a bounded queue.
struct Subscription {
    matchers: Vec<Matcher>,
    queue: Mutex<Queue>,
    /// Called after entries were queued or dropped; the reader's wake-up (a tokio `Notify` in
    /// the API), so this crate stays free of any async runtime.
    wake: Box<dyn Fn() + Send + Sync>,
    /// Set when the store closes.
    closed: AtomicBool,
}

#[derive(Default)]
struct Queue {
    entries: VecDeque<(Arc<Labels>, LogEntry)>,
    bytes: usize,
    dropped: Vec<DroppedEntry>,
}

impl Queue {
    fn drop_entry(&mut self, labels: &Labels, ts_ns: i64) {
        if self.dropped.len() < MAX_DROPPED_ENTRIES_PER_TAIL_RESPONSE {
            self.dropped.push(DroppedEntry {
                labels: labels.clone(),
                ts_ns,
            });
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned queue only means a reader panicked mid-update; its data is still a queue.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl TailHub {
    /// Whether any tail is open; pushes skip collecting entries when none is.
    pub(crate) fn is_active(&self) -> bool {
        lock(&self.subscribers).iter().any(|w| w.strong_count() > 0)
    }

    /// Registers a subscriber, refusing more than [`MAX_CONCURRENT_TAILS`] at once.
    fn subscribe(&self, sub: &Arc<Subscription>) -> Result<(), Error> {
        let mut subs = lock(&self.subscribers);
        subs.retain(|w| w.strong_count() > 0);
        if subs.len() >= MAX_CONCURRENT_TAILS {
            return Err(Error::Invalid(format!(
                "max concurrent tail requests limit exceeded, count > limit ({} > {MAX_CONCURRENT_TAILS})",
                subs.len() + 1
            )));
        }
        subs.push(Arc::downgrade(sub));
        Ok(())
    }

    /// Hands the entries a push stored to every subscriber whose selector matches their
    /// stream; entries that do not fit a subscriber's queue are recorded as dropped.
    pub(crate) fn publish(&self, stored: &[(&Labels, &LogEntry)]) {
        if stored.is_empty() {
            return;
        }
        let subs: Vec<Arc<Subscription>> = {
            let mut subs = lock(&self.subscribers);
            subs.retain(|w| w.strong_count() > 0);
            subs.iter().filter_map(Weak::upgrade).collect()
        };
        for sub in subs {
            let mut touched = false;
            {
                let mut queue = lock(&sub.queue);
                let mut last: Option<(&Labels, Arc<Labels>, bool)> = None;
                for &(labels, entry) in stored {
                    // Entries of one stream come together, so the selector runs once a run.
                    let (shared, matches) = match &last {
                        Some((l, shared, m)) if std::ptr::eq(*l, labels) => (shared.clone(), *m),
                        _ => {
                            let m = sub.matchers.iter().all(|m| m.matches_labels(labels));
                            let shared = Arc::new(labels.clone());
                            last = Some((labels, shared.clone(), m));
                            (shared, m)
                        }
                    };
                    if !matches {
                        continue;
                    }
                    touched = true;
                    let len = entry.line.len();
                    if queue.entries.len() >= MAX_BUFFERED_TAIL_ENTRIES
                        || queue.bytes + len > MAX_BUFFERED_TAIL_BYTES
                    {
                        queue.drop_entry(labels, entry.ts_ns);
                        continue;
                    }
                    queue.bytes += len;
                    queue.entries.push_back((shared, entry.clone()));
                }
            }
            if touched {
                (sub.wake)();
            }
        }
    }
}

/// One pending entry of a tail, ordered by timestamp then arrival.
struct Held {
    ts_ns: i64,
    seq: u64,
    bytes: usize,
    item: HeldItem,
}

enum HeldItem {
    /// From the push path: the pipeline has not run yet.
    Live(Arc<Labels>, LogEntry),
    /// From the backfill query: already through the pipeline.
    Backfill(LogStream),
}

impl PartialEq for Held {
    fn eq(&self, other: &Self) -> bool {
        (self.ts_ns, self.seq) == (other.ts_ns, other.seq)
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Held {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.ts_ns, self.seq).cmp(&(other.ts_ns, other.seq))
    }
}

/// A live tail of a log query: created by [`LogStore::tail`], read with
/// [`Tail::next_response`]. Dropping it unsubscribes.
pub struct Tail {
    sub: Arc<Subscription>,
    query: LogQuery,
    delay_ns: i64,
    held: BinaryHeap<Reverse<Held>>,
    held_bytes: usize,
    seq: u64,
    /// The backfill's entries (labels after the pipeline, timestamp, line): a live entry
    /// pushed while the backfill ran is sent once, not twice.
    backfilled: HashSet<(Labels, i64, String)>,
    backfill_max_ts: i64,
}

impl fmt::Debug for Tail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tail")
            .field("query", &self.query.to_string())
            .field("held", &self.held.len())
            .finish_non_exhaustive()
    }
}

impl LogStore {
    /// Opens a live tail of the log query `query`: from now on, every entry pushed to a stream
    /// its selector matches is handed to the tail, which runs the pipeline and releases the
    /// entry once the clock passes its timestamp plus `delay_for_s` seconds. The tail starts
    /// with the newest `limit` entries at or after `start_ns`. `wake` is called whenever new
    /// entries reach the tail (or are dropped), from the pushing thread: keep it short.
    ///
    /// Refuses metric queries, a `delay_for` over [`MAX_TAIL_DELAY_SECONDS`], and more than
    /// [`MAX_CONCURRENT_TAILS`] open tails.
    pub fn tail(
        &self,
        query: &str,
        start_ns: i64,
        limit: usize,
        delay_for_s: u32,
        wake: Box<dyn Fn() + Send + Sync>,
    ) -> Result<Tail, Error> {
        let q = match parse_expr(query)? {
            Expr::Log(q) => q,
            Expr::Metric(_) => {
                return Err(Error::Invalid(
                    "tailing is only supported for log queries, not metric queries".into(),
                ))
            }
        };
        if delay_for_s > MAX_TAIL_DELAY_SECONDS {
            return Err(Error::Invalid(format!(
                "delay_for can't be greater than {MAX_TAIL_DELAY_SECONDS}"
            )));
        }
        let sub = Arc::new(Subscription {
            matchers: q.matchers.clone(),
            queue: Mutex::new(Queue::default()),
            wake,
            closed: AtomicBool::new(false),
        });
        // Subscribed before the backfill reads, so no entry falls between the two.
        self.core.tail.subscribe(&sub)?;
        let mut tail = Tail {
            sub,
            query: q,
            delay_ns: i64::from(delay_for_s) * 1_000_000_000,
            held: BinaryHeap::new(),
            held_bytes: 0,
            seq: 0,
            backfilled: HashSet::new(),
            backfill_max_ts: i64::MIN,
        };
        let now = crate::store::unix_now_ns();
        let backfill = self.log_query(&tail.query, start_ns, now, limit, Direction::Backward)?;
        for stream in backfill {
            for entry in stream.entries {
                tail.backfill_max_ts = tail.backfill_max_ts.max(entry.ts_ns);
                tail.backfilled
                    .insert((stream.labels.clone(), entry.ts_ns, entry.line.clone()));
                let one = LogStream {
                    labels: stream.labels.clone(),
                    entries: vec![entry],
                };
                tail.hold(HeldItem::Backfill(one));
            }
        }
        Ok(tail)
    }
}

impl Tail {
    fn hold(&mut self, item: HeldItem) {
        push_held(&mut self.held, &mut self.held_bytes, &mut self.seq, item);
    }

    /// Moves queued entries into the held set while it has room, and takes the record of
    /// dropped ones. What stays queued keeps the queue full, so further pushes are dropped
    /// rather than buffered without bound.
    fn take_queued(&mut self) -> Vec<DroppedEntry> {
        let mut queue = lock(&self.sub.queue);
        while self.held.len() < MAX_BUFFERED_TAIL_ENTRIES
            && self.held_bytes < MAX_BUFFERED_TAIL_BYTES
        {
            let Some((labels, entry)) = queue.entries.pop_front() else {
                break;
            };
            queue.bytes -= entry.line.len();
            let item = HeldItem::Live(labels, entry);
            push_held(&mut self.held, &mut self.held_bytes, &mut self.seq, item);
        }
        std::mem::take(&mut queue.dropped)
    }

    /// The next response as of `now_ns`: up to [`MAX_ENTRIES_PER_TAIL_RESPONSE`] released
    /// entries that pass the pipeline, oldest first, and what was dropped since the last
    /// response. `None` when there is nothing to send.
    pub fn next_response(&mut self, now_ns: i64) -> Option<TailResponse> {
        let dropped = self.take_queued();
        let mut streams = Vec::new();
        while streams.len() < MAX_ENTRIES_PER_TAIL_RESPONSE {
            let due = self
                .held
                .peek()
                .is_some_and(|Reverse(h)| now_ns > h.ts_ns.saturating_add(self.delay_ns));
            if !due {
                break;
            }
            let Some(Reverse(held)) = self.held.pop() else {
                break;
            };
            self.held_bytes -= held.bytes;
            match held.item {
                HeldItem::Backfill(s) => streams.push(s),
                HeldItem::Live(labels, entry) => {
                    if let Some(s) = self.process(&labels, entry) {
                        streams.push(s);
                    }
                }
            }
        }
        if streams.is_empty() && dropped.is_empty() {
            return None;
        }
        Some(TailResponse { streams, dropped })
    }

    /// Whether the store closed: no entry will arrive any more.
    pub fn is_closed(&self) -> bool {
        self.sub.closed.load(Ordering::Acquire)
    }

    /// When the earliest held entry is released, if any is held: the reader's next deadline
    /// when `delay_for` (or a timestamp ahead of the clock) holds entries back.
    pub fn next_release_ns(&self) -> Option<i64> {
        self.held
            .peek()
            .map(|Reverse(h)| h.ts_ns.saturating_add(self.delay_ns).saturating_add(1))
    }

    /// Runs the pipeline on a live entry; `None` when it drops the entry or the backfill sent
    /// it already.
    fn process(&mut self, labels: &Labels, entry: LogEntry) -> Option<LogStream> {
        let mut row = Row::new(entry.ts_ns, &entry.line, labels, &entry.metadata);
        if !pipeline::run(&self.query.pipeline, &mut row) {
            return None;
        }
        // Structured metadata stays on the entry, as in query results.
        for (k, v) in &entry.metadata {
            if labels.get(k).is_none() && row.get(k) == Some(v.as_str()) {
                row.labels.remove(k);
            }
        }
        let out_labels = row.label_set();
        if entry.ts_ns <= self.backfill_max_ts
            && self
                .backfilled
                .remove(&(out_labels.clone(), entry.ts_ns, row.line.clone()))
        {
            return None;
        }
        Some(LogStream {
            labels: out_labels,
            entries: vec![LogEntry {
                ts_ns: entry.ts_ns,
                line: row.line,
                metadata: entry.metadata,
            }],
        })
    }
}

/// Adds an entry to a tail's held set, in timestamp then arrival order.
fn push_held(
    held: &mut BinaryHeap<Reverse<Held>>,
    held_bytes: &mut usize,
    seq: &mut u64,
    item: HeldItem,
) {
    let (ts_ns, bytes) = match &item {
        HeldItem::Live(_, e) => (e.ts_ns, e.line.len()),
        HeldItem::Backfill(s) => s
            .entries
            .first()
            .map_or((0, 0), |e| (e.ts_ns, e.line.len())),
    };
    *seq += 1;
    *held_bytes += bytes;
    held.push(Reverse(Held {
        ts_ns,
        seq: *seq,
        bytes,
        item,
    }));
}

#[cfg(test)]
mod tests;
