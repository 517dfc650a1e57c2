//! [`Tsdb`]: the durable store. A head whose every accepted sample is in the fsync'd WAL
//! before the append returns, immutable blocks the head's older samples are cut into, and a
//! background worker that cuts, compacts and applies retention.
//!
//! Layout of the data directory (`FORMAT.md`): `lock` is held with `flock` while the store
//! is open, `wal/` holds the segments, `<ULID>/` the blocks, `corrupted/` the blocks that
//! failed their checks. Queries (`querier.rs`) merge blocks and head; cuts, compaction and
//! retention are in `compact.rs`, WAL replay in `replay.rs`.

use crate::block::writer::TMP_SUFFIX;
use crate::block::{meta, writer, Block, BlockMeta};
use crate::checkpoint::{self, DEFAULT_CHECKPOINT_BYTES};
use crate::error::Error;
use crate::head::{self, Head};
use crate::limits::Limits;
use crate::lock::DirLock;
use crate::metrics::{self, Gauges, StoreCounters};
use crate::replay::Replayer;
use crate::retention::Retention;
use crate::series::MemSeries;
use crate::series_key::LabelKey;
use crate::stats::HeadStatus;
use crate::wal::{self, ReplayStats, SamplesEncoder, Wal};
use model::{AppendError, AppendOutcome, Appender, Sample, Series, SeriesBatch, StorageError};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Condvar, Mutex, RwLock, RwLockReadGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Prometheus's block range (`--storage.tsdb.min-block-duration`): two hours.
pub const DEFAULT_BLOCK_RANGE: Duration = Duration::from_secs(2 * 3600);

/// How often the background worker looks for work without being woken (Prometheus runs
/// its compaction check every minute).
pub const DEFAULT_COMPACTION_INTERVAL: Duration = Duration::from_secs(60);

/// How a [`Tsdb`] is opened.
#[derive(Clone, Debug)]
pub struct TsdbOptions {
    /// Size at which a WAL segment is closed and the next one started; default
    /// [`wal::DEFAULT_SEGMENT_BYTES`] (128 MiB, as Prometheus).
    pub wal_segment_bytes: u64,
    /// The time range of a block cut from the head; default [`DEFAULT_BLOCK_RANGE`]. The
    /// head is cut once it spans one and a half of these; compaction merges three adjacent
    /// blocks into one of three times the range, twice (2h → 6h → 18h).
    pub block_range: Duration,
    /// Which blocks are deleted; default 15 days, no size limit.
    pub retention: Retention,
    /// How often the background worker runs when nothing wakes it; `None` starts no worker,
    /// leaving cuts, compaction and retention to [`Tsdb::compact`] (tests do this).
    pub compaction_interval: Option<Duration>,
    /// Series a batch may not write ([`Limits`]); default none.
    pub limits: Limits,
    /// How far behind the head's newest sample a sample older than its series' newest is
    /// still taken (`--storage.tsdb.out-of-order-time-window`); default 0: refused. Samples
    /// older than the newest block's end are refused whatever the window.
    pub out_of_order_window: Duration,
    /// WAL bytes after which a checkpoint is taken (head chunks written to disk, WAL
    /// replay starting after it); default [`DEFAULT_CHECKPOINT_BYTES`]. The background
    /// worker also takes one on each round when anything was logged since the last.
    pub checkpoint_bytes: u64,
}

impl Default for TsdbOptions {
    fn default() -> Self {
        TsdbOptions {
            wal_segment_bytes: wal::DEFAULT_SEGMENT_BYTES,
            block_range: DEFAULT_BLOCK_RANGE,
            retention: Retention::default(),
            compaction_interval: Some(DEFAULT_COMPACTION_INTERVAL),
            limits: Limits::default(),
            out_of_order_window: Duration::ZERO,
            checkpoint_bytes: DEFAULT_CHECKPOINT_BYTES,
        }
    }
}

/// The durable time-series store: implements [`model::Querier`] and [`Appender`], and an
/// acknowledged append survives a crash of the process or the machine.
#[derive(Debug)]
pub struct Tsdb {
    pub(crate) inner: Arc<Inner>,
    worker: Option<JoinHandle<()>>,
}

/// Wakes and stops the background worker.
#[derive(Debug, Default)]
pub(crate) struct Signal {
    state: Mutex<(bool, bool)>,
    cond: Condvar,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) dir: PathBuf,
    pub(crate) head: Head,
    pub(crate) wal: Wal,
    replay: ReplayStats,
    pub(crate) options: TsdbOptions,
    /// Block range in milliseconds.
    pub(crate) range_ms: i64,
    /// Open blocks, ascending by time. A query holds the read side while it reads blocks
    /// and head, and a cut holds the write side while it adds a block and truncates the
    /// head, so a query sees every sample exactly once (or, merged away, twice).
    pub(crate) blocks: RwLock<Vec<Arc<Block>>>,
    /// Serializes cuts, compactions and retention.
    pub(crate) compacting: Mutex<()>,
    pub(crate) counters: StoreCounters,
    /// The WAL position the newest checkpoint covers.
    pub(crate) checkpointed: AtomicU64,
    signal: Signal,
    /// Declared last so it is dropped last: the directory stays locked until the WAL's
    /// and blocks' files are closed.
    _lock: DirLock,
}

impl Tsdb {
    /// Opens the store in `dir` (created if missing): locks the directory, opens its blocks
    /// (moving any that fail their checks into `corrupted/` with a warning), and replays its
    /// WAL, skipping samples the blocks hold. A torn or corrupt WAL tail is cut at the last
    /// good record with a warning; only I/O errors, files of another format version, and a
    /// directory another open store holds ([`Error::Locked`]) fail the open.
    pub fn open(dir: impl AsRef<Path>, options: TsdbOptions) -> Result<Tsdb, Error> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(Error::io("create", &dir))?;
        // Taken before anything is read: another process may be writing.
        let lock = DirLock::acquire(&dir)?;
        let started = Instant::now();
        let blocks = open_blocks(&dir)?;
        let head = Head::with_options(
            options.limits,
            options.out_of_order_window,
            options.block_range,
        );
        if let Some(end) = blocks.iter().map(|b| b.meta.max_time).max() {
            head.set_min_valid_time(end);
        }
        // The newest checkpoint's series and head chunks first; then only the WAL after it.
        let loaded = checkpoint::load(&dir, &head)?;
        let from = loaded
            .as_ref()
            .map_or((0, &[][..]), |l| (l.first_segment, l.max_times.as_slice()));
        let mut replay = Replayer::new(&head);
        let (wal, mut stats) = Wal::open(
            &dir.join("wal"),
            options.wal_segment_bytes,
            from,
            |segment, rec| replay.record(segment, rec),
        )?;
        replay.finish();
        if let Some(l) = &loaded {
            stats.checkpoint = Some(l.first_segment);
            stats.checkpoint_series = l.series;
            stats.mapped_chunks = l.mapped_chunks;
        }
        if !blocks.is_empty() {
            // Series whose WAL samples were all in blocks were created empty; drop them.
            head.truncate(head.min_valid_time())
                .map_err(|e| Error::io("replay", &dir)(std::io::Error::other(e.to_string())))?;
        }
        tracing::info!(
            dir = %dir.display(),
            blocks = blocks.len(),
            segments = stats.segments,
            records = stats.records,
            repaired = stats.repaired,
            checkpoint = stats.checkpoint,
            mapped_chunks = stats.mapped_chunks,
            series = head.num_series(),
            samples = head.num_samples(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "tsdb opened, WAL replayed"
        );
        let range_ms = i64::try_from(options.block_range.as_millis())
            .unwrap_or(i64::MAX)
            .max(1);
        let inner = Arc::new(Inner {
            dir,
            head,
            wal,
            replay: stats,
            range_ms,
            blocks: RwLock::new(blocks),
            compacting: Mutex::new(()),
            counters: StoreCounters::default(),
            checkpointed: AtomicU64::new(0),
            signal: Signal::default(),
            options,
            _lock: lock,
        });
        let worker = match inner.options.compaction_interval {
            Some(every) => Some(spawn_worker(Arc::clone(&inner), every)?),
            None => None,
        };
        Ok(Tsdb { inner, worker })
    }

    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    pub(crate) fn head(&self) -> &Head {
        &self.inner.head
    }

    pub(crate) fn read_blocks(&self) -> Result<RwLockReadGuard<'_, Vec<Arc<Block>>>, StorageError> {
        self.inner
            .blocks
            .read()
            .map_err(|_| StorageError::Other("block list lock poisoned by an earlier panic".into()))
    }

    /// What the WAL replay at open found.
    pub fn replay_stats(&self) -> &ReplayStats {
        &self.inner.replay
    }

    /// The head's totals and cardinality top lists, each at most `limit` long: what
    /// Prometheus's `/api/v1/status/tsdb` reports. Fails only if an earlier panic poisoned
    /// the index.
    pub fn status(&self, limit: usize) -> Result<HeadStatus, StorageError> {
        self.inner.head.status(limit)
    }

    /// Series in the head.
    pub fn num_series(&self) -> usize {
        self.inner.head.num_series()
    }

    /// Samples in the head.
    pub fn num_samples(&self) -> usize {
        self.inner.head.num_samples()
    }

    /// The oldest sample's timestamp in the head and blocks, if any sample is stored.
    pub fn min_time(&self) -> Option<i64> {
        let blocks = self.read_blocks().ok()?;
        blocks
            .first()
            .map(|b| b.meta.min_time)
            .or_else(|| self.inner.head.min_time())
    }

    /// The newest sample's timestamp, if any sample is stored.
    pub fn max_time(&self) -> Option<i64> {
        let from_blocks = self
            .read_blocks()
            .ok()
            .and_then(|b| b.last().map(|b| b.meta.max_time - 1));
        self.inner.head.max_time().or(from_blocks)
    }

    /// Chunks in the head, open ones included.
    pub fn num_chunks(&self) -> usize {
        self.inner.head.num_chunks()
    }

    /// WAL fsyncs since open; with group commit, fewer than the appends they served.
    pub fn wal_fsyncs(&self) -> u64 {
        self.inner.wal.fsyncs()
    }

    /// The blocks, oldest first.
    pub fn blocks(&self) -> Vec<BlockMeta> {
        self.read_blocks()
            .map(|b| b.iter().map(|b| b.meta.clone()).collect())
            .unwrap_or_default()
    }

    /// Bytes of blocks and WAL on disk: what size-based retention counts.
    pub fn disk_size(&self) -> u64 {
        self.inner.disk_size()
    }

    /// The store's metrics in the Prometheus text format, named as Prometheus names its
    /// TSDB's (`prometheus_tsdb_head_series`, `prometheus_tsdb_compactions_total`, …), for
    /// `/metrics`.
    pub fn render_metrics(&self) -> String {
        let blocks = self.read_blocks();
        let (blocks_loaded, blocks_bytes) = blocks
            .as_deref()
            .map(|b| (b.len() as u64, b.iter().map(|b| b.size()).sum()))
            .unwrap_or_default();
        drop(blocks);
        let gauges = Gauges {
            head_series: self.num_series() as u64,
            head_chunks: self.num_chunks() as u64,
            blocks_loaded,
            blocks_bytes,
            retention_limit_bytes: self.inner.options.retention.size_bytes.unwrap_or(0),
            wal_corruptions: self.inner.replay.repaired as u64,
            fsyncs: self.inner.wal.fsyncs(),
            fsync_seconds: self.inner.wal.fsync_seconds(),
        };
        metrics::render(&self.inner.head.counters, &self.inner.counters, &gauges)
    }

    /// Runs now what the background worker runs: cuts the head into blocks while it spans
    /// more than one and a half block ranges, compacts, and applies retention.
    pub fn compact(&self) -> Result<(), Error> {
        self.inner.compact()
    }

    /// Takes a WAL checkpoint now: closed head chunks go to disk (and out of memory), and
    /// a restart replays only the WAL logged after this.
    pub fn checkpoint(&self) -> Result<(), Error> {
        let _one_at_a_time = self.inner.compacting.lock().map_err(|_| {
            Error::io("lock", &self.inner.dir)(std::io::Error::other(
                "lock poisoned by an earlier panic",
            ))
        })?;
        self.inner.write_checkpoint()
    }
}

impl Drop for Tsdb {
    fn drop(&mut self) {
        if let Some(worker) = self.worker.take() {
            self.inner.signal.send(true);
            // A worker that panicked has nothing left to clean up.
            let _ = worker.join();
        }
    }
}

impl Signal {
    /// Wakes the worker; with `stop`, for good.
    fn send(&self, stop: bool) {
        if let Ok(mut st) = self.state.lock() {
            st.0 |= stop;
            st.1 = true;
        }
        self.cond.notify_all();
    }

    /// Waits for a wake-up or `every`; `false` once stopped.
    fn wait(&self, every: Duration) -> bool {
        let Ok(mut st) = self.state.lock() else {
            return false;
        };
        let deadline = Instant::now() + every;
        while !st.1 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            st = match self.cond.wait_timeout(st, left) {
                Ok((st, _)) => st,
                Err(_) => return false,
            };
        }
        st.1 = false;
        !st.0
    }
}

fn spawn_worker(inner: Arc<Inner>, every: Duration) -> Result<JoinHandle<()>, Error> {
    let dir = inner.dir.clone();
    std::thread::Builder::new()
        .name("tsdb-compact".into())
        .spawn(move || {
            // A first round right away: a replayed head may be due a cut. Checkpoints by
            // time come at most once per `every`; by WAL bytes whenever due.
            let mut last_periodic = Instant::now();
            loop {
                let periodic = last_periodic.elapsed() >= every;
                if periodic {
                    last_periodic = Instant::now();
                }
                if let Err(e) = inner.background_round(periodic) {
                    tracing::error!(error = %e, "tsdb compaction or checkpoint failed; retrying later");
                }
                if !inner.signal.wait(every) {
                    return;
                }
            }
        })
        .map_err(Error::io("spawn compaction thread for", dir))
}

/// Opens every block in `dir`: removes the leftovers of interrupted writes and deletions,
/// moves blocks that fail their checks into `corrupted/`, and deletes blocks a finished
/// compaction replaced (a crash can come between writing the new block and deleting its
/// parents). Blocks of an unknown format version fail the open.
fn open_blocks(dir: &Path) -> Result<Vec<Arc<Block>>, Error> {
    let mut blocks = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(Error::io("list", dir))? {
        let entry = entry.map_err(Error::io("list", dir))?;
        let path = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if !path.is_dir() {
            continue;
        }
        if name.ends_with(TMP_SUFFIX) || name.ends_with(".tmp-for-deletion") {
            tracing::info!(dir = %path.display(), "removing an unfinished block directory");
            std::fs::remove_dir_all(&path).map_err(Error::io("remove", &path))?;
            continue;
        }
        if !meta::is_ulid(&name) {
            continue;
        }
        match Block::open(&path) {
            Ok(b) => blocks.push(Arc::new(b)),
            Err(e @ Error::UnsupportedVersion { .. }) => return Err(e),
            Err(e) => move_aside(dir, &path, &name, &e)?,
        }
    }
    let replaced: HashSet<String> = blocks
        .iter()
        .flat_map(|b| b.meta.compaction.parents.iter().map(|p| p.ulid.clone()))
        .collect();
    let (gone, mut kept): (Vec<_>, Vec<_>) = blocks
        .into_iter()
        .partition(|b| replaced.contains(&b.meta.ulid));
    for b in gone {
        tracing::info!(block = %b.meta.ulid, "deleting a block that a compaction replaced");
        writer::delete(b.dir())?;
    }
    kept.sort_by_key(|b| (b.meta.min_time, b.meta.max_time));
    Ok(kept)
}

fn move_aside(dir: &Path, path: &Path, name: &str, why: &Error) -> Result<(), Error> {
    let aside = dir.join("corrupted");
    std::fs::create_dir_all(&aside).map_err(Error::io("create", &aside))?;
    let dest = aside.join(name);
    tracing::warn!(
        block = %path.display(),
        moved_to = %dest.display(),
        error = %why,
        "block failed its checks; moved aside, the store opens without it"
    );
    if dest.exists() {
        std::fs::remove_dir_all(&dest).map_err(Error::io("remove", &dest))?;
    }
    std::fs::rename(path, &dest).map_err(Error::io("rename", path))?;
    writer::sync_dir(dir)
}

impl Appender for Tsdb {
    /// Applies the batch to the head, logs what was accepted, and returns once it is
    /// fsync'd. The head shows the samples a moment before they are durable; if the WAL
    /// fails, they are taken back out, the error is returned and the request is not
    /// acknowledged.
    fn append(&self, batch: &[Series]) -> Result<AppendOutcome, AppendError> {
        self.append_entries(&head::owned_entries(batch))
    }

    /// As [`Tsdb::append`], finding series from the borrowed label bytes: only a new series
    /// costs a `Labels`.
    fn append_batch(&self, batch: &SeriesBatch<'_>) -> Result<AppendOutcome, AppendError> {
        self.append_entries(&head::borrowed_entries(batch))
    }
}

impl Tsdb {
    fn append_entries<K: LabelKey + ?Sized>(
        &self,
        batch: &[head::Entry<'_, K>],
    ) -> Result<AppendOutcome, AppendError> {
        let (outcome, wal_pos) = self.inner.append(batch)?;
        if self.inner.cut_due() || self.inner.checkpoint_due(wal_pos) {
            self.inner.signal.send(false);
        }
        Ok(outcome)
    }
}

impl Inner {
    /// Appends, returning the outcome and the WAL position reached (0 when nothing was
    /// logged).
    fn append<K: LabelKey + ?Sized>(
        &self,
        batch: &[head::Entry<'_, K>],
    ) -> Result<(AppendOutcome, u64), AppendError> {
        let mut records = SamplesEncoder::default();
        // Each series logged, with the time range of what was logged for it and where its
        // samples start in `logged` (kept to take them back should the WAL fail).
        let mut touched: Vec<(Arc<MemSeries>, i64, i64, usize)> = Vec::new();
        let mut logged_samples: Vec<Sample> = Vec::new();
        let outcome = self.head.apply(batch, &mut |series, to_log| {
            if let (Some(a), Some(b)) = (to_log.first(), to_log.last()) {
                records.add(series.id, to_log);
                touched.push((Arc::clone(series), a.t, b.t, logged_samples.len()));
                logged_samples.extend_from_slice(to_log);
            }
        })?;
        if touched.is_empty() {
            return Ok((outcome, 0));
        }
        let series: Vec<Arc<MemSeries>> = touched.iter().map(|(s, ..)| Arc::clone(s)).collect();
        let max_t = touched
            .iter()
            .map(|(_, _, hi, _)| *hi)
            .max()
            .unwrap_or(i64::MIN);
        let logged = self
            .wal
            .log(&series, &records.finish(), max_t)
            .and_then(|pos| self.wal.wait_durable(pos).map(|()| pos));
        match logged {
            Ok(pos) => {
                for (s, lo, hi, _) in &touched {
                    s.mark_synced(*lo, *hi);
                }
                Ok((outcome, pos))
            }
            Err(e) => {
                // The request is not acknowledged, so nothing of it may stay: its samples
                // are taken back out of the head before the error is returned, and a
                // client's retry, which can only come after, appends them afresh. Where a
                // series cannot be changed, its range is marked unsynced instead, so the
                // retry at least re-logs the samples rather than taking them as re-sends.
                let ends = touched
                    .iter()
                    .skip(1)
                    .map(|t| t.3)
                    .chain([logged_samples.len()]);
                for ((s, lo, hi, start), end) in touched.iter().zip(ends) {
                    if s.roll_back(&logged_samples[*start..end]).is_none() {
                        s.mark_unsynced(*lo, *hi);
                    }
                }
                Err(AppendError::Io(e))
            }
        }
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod block_tests;

#[cfg(test)]
mod ingest_tests;

#[cfg(test)]
mod checkpoint_tests;

/// The finished and the temporary checkpoint files of the store in `dir`.
#[cfg(test)]
fn checkpoint_files(dir: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    checkpoint::files(&dir.join("wal"))
}
