//! The log tailer: finds container logs and plain files, follows each by identity, turns its
//! complete lines into log entries, and keeps checkpoints of what the server acknowledged.
//!
//! - `discover.rs` lists the files every rescan: live logs, and kubelet's rotated files
//!   (`0.log.<timestamp>`, `.gz`) so a file rotated away before it was opened is still read.
//! - `fingerprint.rs` says which file a file is: inode, and a hash of its first bytes that
//!   survives gzip and tells a reused inode apart; `rescan.rs` matches what it finds to the
//!   files followed, the files finished and the checkpoints.
//! - `follow.rs` reads complete lines from a file (or a `.gz`, decompressed) and notices
//!   truncation (copytruncate) and its writer moving on; `tracked.rs` turns them into entries.
//! - `cri.rs` and `docker.rs` parse the two container log formats, detected per file;
//!   `join.rs` joins the pieces of a split line; `glob.rs` expands plain-file patterns.
//! - `checkpoint.rs` keeps `positions.json`, and the positions still queued.
//! - `watch.rs` watches the directories walked with inotify: a file created, renamed or
//!   written wakes the tailer at once; the periodic poll stays as the safety net.
//!
//! Delivery: each [`LogBatch`] carries the positions its lines end at; the Loki sink keeps
//! them in its on-disk queue with the lines and hands them back once the receiver answered 2xx
//! for those lines and for every line queued before them; only then is a position recorded in
//! `positions.json` (end-to-end acknowledgement). A restart resumes each file after the lines
//! its queue still holds ([`TailConfig::queued`]), so no line is read twice; if the queue is
//! lost, from the acknowledged checkpoint, so none is lost while the file exists. While the
//! pieces of a split line are waiting for their end, the recorded position stays before the
//! first of them, so a restart re-reads the whole line.
//! Files are read oldest first within a container (rotated before live), each to its end once
//! its writer moved on, so two rotations between polls lose nothing.

mod checkpoint;
mod cri;
mod discover;
mod docker;
mod fingerprint;
mod follow;
mod glob;
mod join;
mod rescan;
mod tracked;
mod watch;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

pub use checkpoint::{decode_positions, encode_positions, Position, POSITIONS_FILE};
pub use discover::PLAIN_FILE_JOB;
pub use glob::expand as expand_glob;
pub use tracked::{APP_LABEL, SPLIT_METADATA};

use crate::cadvisor::SharedPods;
use crate::ship::LogBatch;
use crate::Error;
use checkpoint::{Checkpoint, Checkpoints};
use fingerprint::FileId;
use tracked::Tracked;

/// Where kubelet keeps container logs unless configured.
pub const DEFAULT_PODS_PATH: &str = "/var/log/pods";
/// How often the file list is refreshed and files are polled for new lines even when inotify
/// reported nothing (the safety net for missed events and filesystems without inotify).
pub const DEFAULT_RESCAN_INTERVAL: Duration = Duration::from_secs(1);
/// The shortest time between two passes woken by inotify: a busy writer's stream of
/// `IN_MODIFY` events becomes at most one pass over the files this often, not one per write.
const WAKE_COALESCE: Duration = Duration::from_millis(50);
/// The longest line shipped whole (`--logs.max-line-size`): Loki's default `max_line_size`,
/// so a line the tailer ships is one Loki accepts. Longer lines are split (see
/// [`SPLIT_METADATA`]).
pub const DEFAULT_MAX_LINE_BYTES: usize = 256 * 1024;
/// The smallest accepted line bound: below this a CRI line's own prefix (about 40 bytes)
/// would dominate its pieces.
pub const MIN_MAX_LINE_BYTES: usize = 1024;
/// The shortest time between the starts of two writes of `positions.json` while
/// acknowledgements stream in; by default none. Writes run beside the reading, one at a time,
/// so the file trails the receiver's acknowledgements by about one write (an fsync), not by
/// an interval: a crash re-sends only what was acknowledged in that window (lines the store
/// drops as duplicates: same stream, timestamp and text). With a 100 ms interval, the full-scale
/// tail test re-sent 26,500 lines over three SIGKILLs; with none, 4,250.
pub const DEFAULT_CHECKPOINT_INTERVAL: Duration = Duration::ZERO;

/// The tailer's settings.
#[derive(Clone, Debug)]
pub struct TailConfig {
    /// kubelet's pod log directory; default [`DEFAULT_PODS_PATH`].
    pub pods_path: PathBuf,
    /// Plain-file globs (`*` and `?` in the last component), e.g. `/var/log/*.log`.
    pub globs: Vec<String>,
    /// The `node` label of every line.
    pub node: String,
    /// The directory holding `positions.json`.
    pub state_path: PathBuf,
    /// Time between rescans and polls; default [`DEFAULT_RESCAN_INTERVAL`].
    pub rescan_interval: Duration,
    /// The longest line shipped whole, in bytes; default [`DEFAULT_MAX_LINE_BYTES`], at
    /// least [`MIN_MAX_LINE_BYTES`].
    pub max_line_bytes: usize,
    /// The shortest time between two checkpoint writes; default
    /// [`DEFAULT_CHECKPOINT_INTERVAL`]. Shutdown always writes the last one.
    pub checkpoint_interval: Duration,
    /// This node's pods (kept current by the agent's pod watch), for the `app` label of
    /// container logs; none outside Kubernetes.
    pub pods: Option<SharedPods>,
    /// Positions of lines a previous run left undelivered in the Loki sink's queue
    /// (`LokiSink::recovered_positions`): reading resumes after them, and they are never
    /// written to `positions.json` until the receiver acknowledges them.
    pub queued: Vec<Position>,
    /// Positions of lines the receiver acknowledged that a previous run may have stopped
    /// before checkpointing (the queue's delivered records still on disk): recorded as
    /// checkpoints at start, where they are further than `positions.json`.
    pub delivered: Vec<Position>,
}

impl TailConfig {
    pub fn new(node: impl Into<String>, state_path: impl Into<PathBuf>) -> Self {
        TailConfig {
            pods_path: PathBuf::from(DEFAULT_PODS_PATH),
            globs: Vec::new(),
            node: node.into(),
            state_path: state_path.into(),
            rescan_interval: DEFAULT_RESCAN_INTERVAL,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            checkpoint_interval: DEFAULT_CHECKPOINT_INTERVAL,
            pods: None,
            queued: Vec::new(),
            delivered: Vec::new(),
        }
    }

    /// Loads the checkpoints; fails on a line bound below [`MIN_MAX_LINE_BYTES`] and when the
    /// state directory cannot be created or read.
    pub fn build(self) -> Result<Tailer, Error> {
        if self.max_line_bytes < MIN_MAX_LINE_BYTES {
            return Err(Error::Config {
                field: "max_line_bytes",
                reason: format!(
                    "{} is below the minimum of {MIN_MAX_LINE_BYTES} bytes",
                    self.max_line_bytes
                ),
            });
        }
        for g in self.globs.iter().filter(|g| !glob::is_supported(g)) {
            tracing::warn!(glob = %g, "wildcards are only expanded in the last path component; this glob matches nothing");
        }
        let mut checkpoints = Checkpoints::load(&self.state_path)?;
        for p in &self.delivered {
            checkpoints.record_if_further(p.clone().checkpoint());
        }
        checkpoints.add_queued(self.queued.iter().cloned());
        if !self.queued.is_empty() || !self.delivered.is_empty() {
            tracing::info!(
                queued = self.queued.len(),
                delivered = self.delivered.len(),
                "resuming after the positions the log queue holds"
            );
        }
        Ok(Tailer {
            checkpoints,
            files: HashMap::new(),
            watch_dirs: Vec::new(),
            finished: HashMap::new(),
            seen: HashMap::new(),
            listed_before: HashSet::new(),
            stats: Arc::default(),
            saved_at: None,
            unsaved: false,
            saving: None,
            cfg: self,
        })
    }
}

/// What the tailer reports about itself, for the agent's `/metrics`.
#[derive(Debug, Default)]
pub struct TailStats {
    /// Files followed after the latest rescan.
    pub files: AtomicU64,
}

/// The running tailer; see the module docs.
#[derive(Debug)]
pub struct Tailer {
    cfg: TailConfig,
    checkpoints: Checkpoints,
    /// The files followed, by identity.
    files: HashMap<FileId, Tracked>,
    /// The directories the latest rescan walked, for the inotify watches.
    watch_dirs: Vec<PathBuf>,
    /// Files finished in this run that still exist, as checkpoints marked done (their last
    /// ack may still be on its way), with their size on disk then.
    finished: HashMap<FileId, (Checkpoint, Option<u64>)>,
    /// Files found and not followed (copies of files read), with their size then and the
    /// checkpoint or file they matched; looked at again only when their size changes.
    seen: HashMap<FileId, rescan::Seen>,
    /// The files the previous rescan listed: a file missing from one listing is forgotten
    /// only when the next misses it too (see `rescan.rs`).
    listed_before: HashSet<FileId>,
    stats: Arc<TailStats>,
    /// When `positions.json` was last written, and whether acks arrived since.
    saved_at: Option<Instant>,
    unsaved: bool,
    /// The write of `positions.json` in flight, if any.
    saving: Option<JoinHandle<()>>,
}

impl Tailer {
    /// The counters [`Tailer::run`] keeps.
    pub fn stats(&self) -> Arc<TailStats> {
        self.stats.clone()
    }

    /// Polls when inotify reports a change in a watched directory and every rescan interval,
    /// and sends batches to `out` until `shutdown` fires; records the positions that arrive on
    /// `acks`. After shutdown it keeps recording acks until the sink closes the channel (the
    /// sink is flushing what was sent before), then writes the final checkpoint.
    pub async fn run(
        mut self,
        shutdown: CancellationToken,
        out: mpsc::Sender<LogBatch>,
        mut acks: mpsc::UnboundedReceiver<Vec<Position>>,
    ) {
        let mut watcher = match watch::Watcher::new() {
            Ok(w) => Some(w),
            Err(error) => {
                tracing::warn!(%error, "inotify unavailable, polling only");
                None
            }
        };
        let mut tick = tokio::time::interval(self.cfg.rescan_interval);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut quiet_until = Instant::now();
        let mut list_again = false;
        loop {
            let rescan = if std::mem::take(&mut list_again) {
                true
            } else {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    Some(acked) = acks.recv() => {
                        self.apply_acks(acked);
                        self.save_when_due();
                        continue;
                    }
                    // Acks held back by the interval or a write in flight are written here.
                    _ = tokio::time::sleep(self.cfg.checkpoint_interval), if self.unsaved => {
                        self.save_when_due();
                        continue;
                    }
                    _ = tick.tick() => true,
                    woken = woken(&mut watcher, quiet_until) => match woken {
                        Ok(wake) => {
                            quiet_until = Instant::now() + WAKE_COALESCE;
                            wake.rescan
                        }
                        Err(error) => {
                            tracing::warn!(%error, "inotify failed, polling only");
                            watcher = None;
                            continue;
                        }
                    },
                }
            };
            if !self.poll_files(rescan, &shutdown, &out, &mut acks).await {
                break;
            }
            if self.unsaved {
                self.save_when_due();
            }
            if let Some(w) = &mut watcher {
                // A directory that just got its watch may have gained files since it was
                // listed (a pod directory and its container directory are made one after
                // the other): list once more rather than wait for the periodic poll.
                list_again = rescan && w.sync(&self.watch_dirs);
            }
        }
        drop(out);
        while let Some(acked) = acks.recv().await {
            self.apply_acks(acked);
            self.save_when_due();
        }
        self.save().await;
        tracing::debug!("tailer stopped");
    }

    /// Rescans, then reads every file until it has nothing more; see [`Tailer::poll_files`].
    #[cfg(test)]
    async fn poll(
        &mut self,
        shutdown: &CancellationToken,
        out: &mpsc::Sender<LogBatch>,
        acks: &mut mpsc::UnboundedReceiver<Vec<Position>>,
    ) -> bool {
        self.poll_files(true, shutdown, out, acks).await
    }

    /// Rescans (when `rescan`: something appeared or moved), then reads every file until it
    /// has nothing more, oldest first within a container. When a file finished because its
    /// writer moved on, rescans once more so the writer's new file is read in the same poll.
    /// False when shutdown fired or the sink is gone.
    async fn poll_files(
        &mut self,
        mut rescan: bool,
        shutdown: &CancellationToken,
        out: &mpsc::Sender<LogBatch>,
        acks: &mut mpsc::UnboundedReceiver<Vec<Position>>,
    ) -> bool {
        for _ in 0..2 {
            if rescan {
                self.rescan().await;
                self.stats
                    .files
                    .store(self.files.len() as u64, Ordering::Relaxed);
            }
            match self.read_all(shutdown, out, acks).await {
                None => return false,
                Some(false) => break,
                Some(true) => rescan = true,
            }
        }
        true
    }

    /// Reads every followed file until it has nothing more. `None` when shutdown fired or
    /// the sink is gone, else whether a file finished.
    async fn read_all(
        &mut self,
        shutdown: &CancellationToken,
        out: &mpsc::Sender<LogBatch>,
        acks: &mut mpsc::UnboundedReceiver<Vec<Position>>,
    ) -> Option<bool> {
        let mut files: Vec<Tracked> = self.files.drain().map(|(_, t)| t).collect();
        // HashMap order is arbitrary: the sequence breaks ties so the older file goes first.
        files.sort_by_cached_key(|t| (rescan::read_order(&t.target), t.seq));
        let mut kept = HashMap::with_capacity(files.len());
        let mut keep = |t: Tracked| {
            kept.insert(t.follower.id(), t);
        };
        let mut any_finished = false;
        let mut files = files.into_iter();
        while let Some(mut tracked) = files.next() {
            tracked.start_poll(self.cfg.pods.as_ref());
            let path = tracked.follower.path().to_path_buf();
            loop {
                let stepped = tokio::task::spawn_blocking(move || {
                    let step = tracked.step();
                    (tracked, step)
                })
                .await;
                // A panic in a read loses this follower only; the file is found again on the
                // next rescan and resumes from its checkpoint.
                let Ok((t, step)) = stepped else {
                    tracing::error!(path = %path.display(), "file reader panicked");
                    break;
                };
                tracked = t;
                let step = match step {
                    Ok(s) => s,
                    Err(error) => {
                        tracing::warn!(path = %path.display(), %error, "reading log file failed");
                        keep(tracked);
                        break;
                    }
                };
                let id = tracked.follower.id();
                let has_news = !step.batch.streams.is_empty() || !step.batch.positions.is_empty();
                if has_news && !self.send(step.batch, shutdown, out, acks).await {
                    keep(tracked);
                    files.for_each(&mut keep);
                    self.files = kept;
                    return None;
                }
                if step.finished {
                    tracing::info!(path = %path.display(), "finished log file");
                    let size = std::fs::metadata(&path).ok().map(|m| m.len());
                    let mut done = tracked.as_checkpoint();
                    done.done = true;
                    self.finished.insert(id, (done, size));
                    any_finished = true;
                    break;
                }
                if !step.more {
                    keep(tracked);
                    break;
                }
            }
        }
        self.files = kept;
        Some(any_finished)
    }

    /// Turns acknowledged positions into checkpoints.
    fn apply_acks(&mut self, acked: Vec<Position>) {
        for p in acked {
            self.checkpoints.record(p.checkpoint());
            self.unsaved = true;
        }
    }

    /// Starts writing the checkpoint file when acks are unsaved, the last write started at
    /// least the checkpoint interval ago, and no write is in flight. The write runs on a
    /// blocking thread: the tailer reads on while it syncs.
    fn save_when_due(&mut self) {
        let idle = self.saving.as_ref().is_none_or(JoinHandle::is_finished);
        let due = self
            .saved_at
            .is_none_or(|at| at.elapsed() >= self.cfg.checkpoint_interval);
        if self.unsaved && due && idle {
            self.saving = Some(self.start_save());
        }
    }

    /// Waits for the checkpoint write in flight, if any.
    async fn settle(&mut self) {
        if let Some(write) = self.saving.take() {
            if let Err(error) = write.await {
                tracing::warn!(%error, "writing checkpoints panicked");
            }
        }
    }

    /// Sends `batch`, recording acks that arrive while the sink is busy. False when shutdown
    /// fired or the sink is gone.
    async fn send(
        &mut self,
        batch: LogBatch,
        shutdown: &CancellationToken,
        out: &mpsc::Sender<LogBatch>,
        acks: &mut mpsc::UnboundedReceiver<Vec<Position>>,
    ) -> bool {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return false,
                Some(acked) = acks.recv() => {
                    self.apply_acks(acked);
                    self.save_when_due();
                }
                // `reserve` is cancel-safe, unlike `send`: losing the race loses no batch.
                permit = out.reserve() => return match permit {
                    Ok(permit) => {
                        permit.send(batch);
                        true
                    }
                    Err(_) => false,
                },
            }
        }
    }

    /// Writes the checkpoint file now, after any write in flight; logs (does not fail) on
    /// error.
    async fn save(&mut self) {
        self.settle().await;
        self.saving = Some(self.start_save());
        self.settle().await;
    }

    /// Starts writing the checkpoint file in the background, logging (not failing) on error:
    /// the next ack retries.
    fn start_save(&mut self) -> JoinHandle<()> {
        self.saved_at = Some(Instant::now());
        self.unsaved = false;
        let (path, bytes) = (
            self.checkpoints.file().to_path_buf(),
            self.checkpoints.to_json(),
        );
        tokio::task::spawn_blocking(move || {
            if let Err(error) = checkpoint::write_atomic(&path, &bytes) {
                tracing::warn!(%error, "writing checkpoints failed");
            }
        })
    }
}

/// The next batch of inotify events, no sooner than `not_before`; never, without a watcher.
async fn woken(
    watcher: &mut Option<watch::Watcher>,
    not_before: Instant,
) -> std::io::Result<watch::Wake> {
    match watcher {
        Some(w) => {
            tokio::time::sleep_until(not_before.into()).await;
            w.wait().await
        }
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod rotation_tests;
#[cfg(test)]
mod tests;
