//! The log tailer: finds container logs and plain files, follows each by identity, turns its
//! complete lines into log entries, and keeps checkpoints of what the server acknowledged.
//!
//! - `discover.rs` lists the files every rescan (each second; inotify is a later step).
//! - `follow.rs` reads complete lines from a file and notices truncation and replacement.
//! - `cri.rs` and `docker.rs` parse the two container log formats, detected per file;
//!   `join.rs` joins the pieces of a split line; `glob.rs` expands plain-file patterns.
//! - `checkpoint.rs` keeps `positions.json`.
//!
//! Delivery is at-least-once: each [`LogBatch`] carries the position its lines end at, the
//! Loki sink acknowledges it after a 2xx, and only then is the position recorded. While the
//! pieces of a split line are waiting for their end, the recorded position stays before the
//! first of them, so a restart re-reads the whole line.

mod checkpoint;
mod cri;
mod discover;
mod docker;
mod follow;
mod glob;
mod join;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use model::{Labels, LogEntry, LogStream};
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

pub use checkpoint::{Position, POSITIONS_FILE};
pub use discover::PLAIN_FILE_JOB;
pub use glob::expand as expand_glob;

use crate::ship::LogBatch;
use crate::Error;
use checkpoint::Positions;
use discover::{Format, Target};
use follow::{Follower, PathState, READ_CHUNK_BYTES};
use join::{Joined, Joiner};

/// Where kubelet keeps container logs unless configured.
pub const DEFAULT_PODS_PATH: &str = "/var/log/pods";
/// How long a file whose path vanished is still read before it counts as finished: the
/// rename-to-reopen window of kubelet's rotation, and its rename back when the reopen fails.
const GONE_GRACE: Duration = Duration::from_secs(2);
/// How often the file list is refreshed and files are polled for new lines.
pub const DEFAULT_RESCAN_INTERVAL: Duration = Duration::from_secs(1);

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
}

impl TailConfig {
    pub fn new(node: impl Into<String>, state_path: impl Into<PathBuf>) -> Self {
        TailConfig {
            pods_path: PathBuf::from(DEFAULT_PODS_PATH),
            globs: Vec::new(),
            node: node.into(),
            state_path: state_path.into(),
            rescan_interval: DEFAULT_RESCAN_INTERVAL,
        }
    }

    /// Loads the checkpoints; fails when the state directory cannot be created or read.
    pub fn build(self) -> Result<Tailer, Error> {
        for g in self.globs.iter().filter(|g| !glob::is_supported(g)) {
            tracing::warn!(glob = %g, "wildcards are only expanded in the last path component; this glob matches nothing");
        }
        Ok(Tailer {
            positions: Positions::load(&self.state_path)?,
            files: BTreeMap::new(),
            stats: Arc::default(),
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
    positions: Positions,
    files: BTreeMap<PathBuf, Tracked>,
    stats: Arc<TailStats>,
}

/// A file being followed and what its lines need to become entries.
#[derive(Debug)]
struct Tracked {
    target: Target,
    follower: Follower,
    joiner: Joiner,
    /// A container log's format, once a line showed it; `None` before and for plain files.
    framing: Option<Framing>,
    /// The position sent with the last batch, so an unchanged position is not re-sent.
    sent: Option<Position>,
    /// When the path was first seen naming nothing, while this file is still read.
    gone_since: Option<Instant>,
}

/// The result of one read step on a file.
#[derive(Debug)]
struct Step {
    batch: LogBatch,
    /// More may be readable right away.
    more: bool,
    /// The file is gone and fully read: stop following it.
    finished: bool,
}

impl Tailer {
    /// The counters [`Tailer::run`] keeps.
    pub fn stats(&self) -> Arc<TailStats> {
        self.stats.clone()
    }

    /// Polls every rescan interval and sends batches to `out` until `shutdown` fires; records
    /// the positions that arrive on `acks`. After shutdown it keeps recording acks until the
    /// sink closes the channel (the sink is flushing what was sent before), then writes the
    /// final checkpoint.
    pub async fn run(
        mut self,
        shutdown: CancellationToken,
        out: mpsc::Sender<LogBatch>,
        mut acks: mpsc::UnboundedReceiver<Vec<Position>>,
    ) {
        let mut tick = tokio::time::interval(self.cfg.rescan_interval);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                Some(acked) = acks.recv() => {
                    self.positions.apply(acked);
                    self.save().await;
                }
                _ = tick.tick() => {
                    if !self.poll(&shutdown, &out, &mut acks).await {
                        break;
                    }
                }
            }
        }
        drop(out);
        while let Some(acked) = acks.recv().await {
            self.positions.apply(acked);
        }
        self.save().await;
        tracing::debug!("tailer stopped");
    }

    /// Rescans, then reads every file until it has nothing more. False when shutdown fired
    /// or the sink is gone.
    async fn poll(
        &mut self,
        shutdown: &CancellationToken,
        out: &mpsc::Sender<LogBatch>,
        acks: &mut mpsc::UnboundedReceiver<Vec<Position>>,
    ) -> bool {
        self.rescan().await;
        let followed = self.files.len() as u64;
        self.stats.files.store(followed, Ordering::Relaxed);
        let paths: Vec<PathBuf> = self.files.keys().cloned().collect();
        for path in paths {
            let Some(mut tracked) = self.files.remove(&path) else {
                continue;
            };
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
                        self.files.insert(path.clone(), tracked);
                        break;
                    }
                };
                let (more, finished) = (step.more, step.finished);
                let has_news = !step.batch.streams.is_empty() || !step.batch.positions.is_empty();
                if has_news && !self.send(step.batch, shutdown, out, acks).await {
                    self.files.insert(path.clone(), tracked);
                    return false;
                }
                if finished {
                    tracing::info!(path = %path.display(), "stopped following removed file");
                    break;
                }
                if !more {
                    self.files.insert(path.clone(), tracked);
                    break;
                }
            }
        }
        true
    }

    /// Starts following files that appeared. Files that disappeared are finished by their
    /// follower, which still holds them open.
    async fn rescan(&mut self) {
        let (pods, globs, node) = (
            self.cfg.pods_path.clone(),
            self.cfg.globs.clone(),
            self.cfg.node.clone(),
        );
        let targets = tokio::task::spawn_blocking(move || discover::discover(&pods, &globs, &node))
            .await
            .unwrap_or_default();
        let known: HashSet<PathBuf> = self.files.keys().cloned().collect();
        for target in targets.into_iter().filter(|t| !known.contains(&t.path)) {
            match Follower::open(&target.path, self.positions.get(&target.path)) {
                Ok(follower) => {
                    tracing::info!(
                        path = %target.path.display(),
                        offset = follower.offset(),
                        "following log file"
                    );
                    self.files.insert(
                        target.path.clone(),
                        Tracked {
                            target,
                            follower,
                            joiner: Joiner::default(),
                            framing: None,
                            sent: None,
                            gone_since: None,
                        },
                    );
                }
                Err(error) => {
                    tracing::debug!(path = %target.path.display(), %error, "cannot open log file yet")
                }
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
                    self.positions.apply(acked);
                    self.save().await;
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

    /// Writes the checkpoint file, logging (not failing) on error: the next ack retries.
    async fn save(&mut self) {
        self.positions.prune_missing();
        let (path, bytes) = (
            self.positions.file().to_path_buf(),
            self.positions.to_json(),
        );
        let written =
            tokio::task::spawn_blocking(move || checkpoint::write_atomic(&path, &bytes)).await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "writing checkpoints failed"),
            Err(error) => tracing::warn!(%error, "writing checkpoints panicked"),
        }
    }
}

impl Tracked {
    /// Reads one chunk and turns it into a batch. At the end of the data, checks whether the
    /// path still names this file: when it was replaced, or removed for [`GONE_GRACE`], the
    /// rest of this file (a last unterminated line, unfinished partials) is flushed, and a
    /// replacement is then followed from its start.
    fn step(&mut self) -> std::io::Result<Step> {
        let read_ns = now_ns();
        let chunk = self.follower.read(READ_CHUNK_BYTES, false)?;
        if chunk.truncated {
            tracing::info!(path = %self.follower.path().display(), "file truncated, reading from the start");
            self.joiner.reset();
        }
        let mut entries = self.entries_of(chunk.lines, read_ns);
        let mut more = chunk.more;
        let state = if more {
            PathState::Same
        } else {
            self.follower.path_state()
        };
        let moved_on = match state {
            PathState::Same => {
                self.gone_since = None;
                false
            }
            // The runtime creates the new file when it reopens its log, so it writes no more
            // to this one.
            PathState::Replaced => true,
            // Between kubelet's rename and the runtime's reopen the runtime still writes to
            // this file, and a failed reopen renames it back: only a file gone for a while is
            // done.
            PathState::Gone => {
                let since = *self.gone_since.get_or_insert_with(Instant::now);
                since.elapsed() >= GONE_GRACE
            }
        };
        let mut done_with_file = false;
        if moved_on {
            // The writer has moved on, so whatever it left is final: read it with its last
            // unterminated line, one chunk at a time, before letting go of the file.
            let rest = self.follower.read(READ_CHUNK_BYTES, true)?;
            entries.extend(self.entries_of(rest.lines, read_ns));
            more = rest.more;
            if !more {
                entries.extend(self.joiner.drain().into_iter().map(|j| {
                    let labels = self.target.labels.with("stream", &j.stream);
                    (labels, entry(j.ts_ns, j.text))
                }));
                done_with_file = true;
            }
        }
        let mut step = Step {
            batch: LogBatch {
                streams: group(entries),
                positions: Vec::new(),
            },
            more,
            finished: false,
        };
        self.push_position(&mut step.batch);
        if done_with_file {
            match (state, Follower::open(&self.target.path, None)) {
                (PathState::Replaced, Ok(f)) => {
                    tracing::info!(path = %self.target.path.display(), "file replaced, following the new one");
                    self.follower = f;
                    self.joiner.reset();
                    self.framing = None;
                    self.sent = None;
                    self.gone_since = None;
                    step.more = true;
                }
                _ => step.finished = true,
            }
        }
        Ok(step)
    }

    /// Adds this file's checkpointable position to `batch` when it moved.
    fn push_position(&mut self, batch: &mut LogBatch) {
        let id = self.follower.id();
        let pos = Position {
            path: self.target.path.clone(),
            dev: id.dev,
            inode: id.inode,
            offset: self.joiner.holds_from().unwrap_or(self.follower.offset()),
        };
        if self.sent.as_ref() != Some(&pos) {
            self.sent = Some(pos.clone());
            batch.positions.push(pos);
        }
    }

    /// Turns raw lines into labelled entries: container lines are parsed and joined (an
    /// unparseable one is kept whole, stamped with the read time); plain lines are stamped
    /// with the read time. Invalid UTF-8 is replaced, never dropped.
    fn entries_of(&mut self, lines: Vec<follow::RawLine>, read_ns: i64) -> Vec<(Labels, LogEntry)> {
        let mut out = Vec::new();
        for raw in lines {
            let text = String::from_utf8_lossy(&raw.bytes);
            let joined = match self.target.format {
                Format::Plain => None,
                Format::Container => self.join_container_line(&text, raw.start),
            };
            match joined {
                Some(done) => out.extend(done.into_iter().map(|j| {
                    let labels = self.target.labels.with("stream", &j.stream);
                    (labels, entry(j.ts_ns, j.text))
                })),
                None => out.push((
                    self.target.labels.clone(),
                    entry(read_ns, text.into_owned()),
                )),
            }
        }
        out
    }

    /// Parses a container log line in this file's format and feeds it to the joiner; `None`
    /// when it does not parse. Until a line has shown the format, CRI is tried first and
    /// then docker json-file, the order kubelet's `getParseFunc` tries them.
    fn join_container_line(&mut self, text: &str, start: u64) -> Option<Vec<Joined>> {
        let joiner = &mut self.joiner;
        match self.framing {
            Some(Framing::Cri) => cri::parse_line(text).map(|p| joiner.push(p, start)),
            Some(Framing::Docker) => {
                docker::parse_line(text).map(|d| joiner.push(d.piece(), start))
            }
            None => {
                if let Some(p) = cri::parse_line(text) {
                    self.framing = Some(Framing::Cri);
                    Some(joiner.push(p, start))
                } else if let Some(d) = docker::parse_line(text) {
                    self.framing = Some(Framing::Docker);
                    Some(joiner.push(d.piece(), start))
                } else {
                    None
                }
            }
        }
    }
}

/// How a container log frames its lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    /// `<time> <stream> <P|F> <msg>` (containerd, CRI-O).
    Cri,
    /// `{"log":…,"stream":…,"time":…}` (docker's json-file).
    Docker,
}

fn entry(ts_ns: i64, line: String) -> LogEntry {
    LogEntry {
        ts_ns,
        line,
        metadata: Vec::new(),
    }
}

/// Groups entries into streams by labels, keeping each stream's entries in file order.
fn group(entries: Vec<(Labels, LogEntry)>) -> Vec<LogStream> {
    let mut by_labels: BTreeMap<Labels, Vec<LogEntry>> = BTreeMap::new();
    for (labels, e) in entries {
        by_labels.entry(labels).or_default().push(e);
    }
    by_labels
        .into_iter()
        .map(|(labels, entries)| LogStream { labels, entries })
        .collect()
}

fn now_ns() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests;
