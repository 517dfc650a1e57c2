//! Vigil's time-series database.
//!
//! - [`Tsdb`] is the durable store: [`Tsdb::open`] replays the write-ahead log in its
//!   directory into the head, and every append returns only once the samples it accepted
//!   are fsync'd in the WAL (group commit: one fsync serves all appends in flight). It
//!   implements [`model::Querier`] and [`model::Appender`] and passes the shared storage
//!   suite ([`model::conformance`]).
//! - Blocks: once the head spans 1.5 block ranges ([`TsdbOptions::block_range`], 2h by
//!   default), its oldest window is written as an immutable block (`<ULID>/` with a
//!   Prometheus-shaped `meta.json` ([`BlockMeta`]), an index of symbols, series and
//!   postings, and CRC-framed chunk files), and head and WAL let go of those samples. A
//!   background worker cuts, compacts three adjacent blocks into one (2h → 6h → 18h) and
//!   applies [`Retention`] by time and size; [`Tsdb::compact`] does the same on demand.
//!   Queries merge blocks (read through mmap) and head by label set. A block that fails its
//!   checks on open is moved into `corrupted/` and the store opens without it.
//! - Checkpoints: every [`TsdbOptions::checkpoint_bytes`] of WAL (and each minute something
//!   was logged), closed head chunks are written to `chunks_head/` files read back through
//!   mmap (so they leave memory) and a checkpoint of every series (labels, chunk
//!   references, open chunk) is written atomically; replay loads it and reads only the WAL
//!   after it. A checkpoint or head chunk file that fails its checks makes the store replay
//!   the whole WAL instead ([`Tsdb::checkpoint`] takes one on demand).
//! - [`Head`] is the in-memory part on its own (no WAL), for tests and tools. Series get
//!   stable [`SeriesRef`] ids; an inverted index (label name → value → sorted ids) resolves
//!   label matchers with the pure set operations of [`postings`].
//! - Ingestion: a series breaking one of the [`Limits`] (labels per series, label name or
//!   value length, series per metric name) is refused whole and the outcome names the limit;
//!   with [`TsdbOptions::out_of_order_window`] set, samples older than their series' newest
//!   but within the window behind the head's newest are merged into place (and logged, and
//!   cut into blocks, like any other). [`Tsdb::render_metrics`] gives the counters by
//!   reason and the store's gauges under Prometheus's `prometheus_tsdb_*` names.
//! - The data directory is locked (`flock` on `<dir>/lock`) for as long as a [`Tsdb`] is
//!   open, so a second server on the same directory fails to start with [`Error::Locked`].
//! - [`Tsdb::status`] reports the head's totals and cardinality top lists ([`HeadStatus`]),
//!   the figures of Prometheus's `/api/v1/status/tsdb`; [`Tsdb::replay_stats`] what the WAL
//!   replay at open read.
//! - [`chunk`] holds the compressed chunk encodings samples live in: Gorilla
//!   delta-of-delta timestamps with XOR values, or with decimal-scaled integers when that
//!   is smaller — as pure encode/decode functions over slices.
//!
//! The on-disk formats are written down, with their version numbers, in `tsdb/FORMAT.md`.
//!
//! ```
//! use model::{Appender, Labels, MatchOp, Matcher, Querier, Sample, Series};
//! use tsdb::{Tsdb, TsdbOptions};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let labels = Labels::from_pairs([("__name__", "up"), ("job", "node")]);
//! let batch = [Series { labels, samples: vec![Sample { t: 1_000, v: 1.0 }] }];
//! {
//!     let db = Tsdb::open(dir.path(), TsdbOptions::default()).unwrap();
//!     assert_eq!(db.append(&batch).unwrap().appended, 1); // fsync'd when this returns
//! }
//! let db = Tsdb::open(dir.path(), TsdbOptions::default()).unwrap(); // replays the WAL
//! let job = Matcher::new(MatchOp::Equal, "job", "node").unwrap();
//! let series = db.select(0, 2_000, &[job]).unwrap();
//! assert_eq!(series[0].samples, vec![Sample { t: 1_000, v: 1.0 }]);
//! assert_eq!((db.num_series(), db.min_time()), (1, Some(1_000)));
//! ```
//!
//! *Architecture Invariant*: the TSDB knows nothing of PromQL; queries reach it only
//! through the `Querier` trait, so the engine can be tested on `model::MemStorage` and run
//! on this.

mod block;
mod checkpoint;
pub mod chunk;
mod compact;
mod db;
mod error;
mod head;
mod head_chunks;
mod index;
mod limits;
mod lock;
mod metrics;
mod mmap;
pub mod postings;
mod querier;
mod replay;
mod retention;
mod series;
mod series_key;
mod stats;
mod varint;
mod wal;

pub use block::{BlockDesc, BlockMeta, BlockStats, Compaction};
pub use checkpoint::DEFAULT_CHECKPOINT_BYTES;
pub use db::{Tsdb, TsdbOptions, DEFAULT_BLOCK_RANGE, DEFAULT_COMPACTION_INTERVAL};
pub use error::{ChunkError, Error};
pub use head::Head;
pub use limits::{
    Limits, MAX_LABELS_PER_SERIES, MAX_LABEL_NAME_LENGTH, MAX_LABEL_VALUE_LENGTH,
    MAX_SERIES_PER_METRIC,
};
pub use postings::SeriesRef;
pub use retention::{format_bytes, parse_bytes, Retention, DEFAULT_RETENTION_TIME};
pub use stats::{HeadStatus, Stat};
pub use wal::{ReplayStats, DEFAULT_SEGMENT_BYTES};
