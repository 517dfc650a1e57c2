//! Vigil's log store: log streams indexed with tantivy, queried with LogQL.
//!
//! - [`LogStore`] owns a directory: a write-ahead log and one tantivy index per time partition
//!   ([`LogStoreOptions::partition`], default an hour). [`LogStore::push`] returns once the
//!   entries are fsync'd to the WAL (group commit: one fsync for all pushes in flight); they
//!   reach tantivy at the next background commit (every second) and are searched in memory
//!   until then, so a query never waits for a commit yet sees every acknowledged push; replay
//!   after a crash re-indexes what was not committed. An entry identical to a stored one (stream,
//!   timestamp, line) is stored once. Retention deletes whole partitions by age and size; a
//!   partition that fails to open is moved aside and the store still opens. On-disk formats
//!   are in `FORMAT.md`.
//! - Queries: [`LogStore::range_query`] answers any LogQL query over a range (streams for log
//!   queries, a matrix for metric queries), [`LogStore::instant_query`] metric queries at one
//!   instant, [`LogStore::query_range`] log queries alone; [`LogStore::label_names`],
//!   [`LogStore::label_values`], [`LogStore::series`], [`LogStore::index_stats`] and
//!   [`LogStore::volume`]/[`LogStore::volume_range`] answer Loki's metadata endpoints.
//! - [`LogStore::tail`] opens a live [`Tail`] of a log query: pushes hand their stored entries
//!   to every open tail whose selector matches, into a bounded queue (a slow reader loses
//!   entries, reported as [`DroppedEntry`]s, never memory); the tail runs the pipeline and
//!   releases entries with Loki's `delay_for` and response size.
//! - [`logql`] is the query language front end and the pure half of the engine: the parser
//!   with Loki's error messages, the AST ([`Expr`]), and the pipeline stages (parsers, label
//!   filters, templates) as functions over one line.
//! - `metric` evaluates metric expressions over samples, independently of storage.
//! - [`Error`] separates the caller's mistakes (`Parse`, `Unsupported`, `Invalid`, `Eval`:
//!   HTTP 400) from ours (`Index`, `Io`, `Locked`, `Wal`: 500); [`Error::http_status`] maps them.
//!
//! How a query runs: the stream selector and the time range become one tantivy query, every
//! label matcher pushed down exactly onto `name=value` terms (see `plan.rs`); `|=` needles at
//! the head of the pipeline add token clauses that narrow the candidates. Log queries rank hits
//! on the timestamp fast field and load lines until `limit` of them pass the whole pipeline;
//! metric queries read every hit's timestamp, stream and length from fast fields, load the line
//! only when a stage needs it, and evaluate step by step.
//!
//! ```
//! use logstore::{Direction, LogStore, QueryResult};
//! use model::{Labels, LogEntry, LogStream};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let store = LogStore::open(dir.path()).unwrap();
//! let entry = |ts_ns, line: &str| LogEntry { ts_ns, line: line.into(), metadata: vec![] };
//! store.push(&[LogStream {
//!     labels: Labels::from_pairs([("app", "api")]),
//!     entries: vec![entry(1, "GET /a 200"), entry(2, "GET /b 500")],
//! }]).unwrap();
//!
//! let result = store
//!     .query_range(r#"{app="api"} |~ " 5\\d\\d$""#, 0, 10, 100, Direction::Backward)
//!     .unwrap();
//! assert_eq!(result[0].entries[0].line, "GET /b 500");
//! let count = store.instant_query(r#"count_over_time({app="api"}[1s])"#, 2).unwrap();
//! assert_eq!(count, QueryResult::Vector(vec![(Labels::from_pairs([("app", "api")]), 2.0)]));
//! assert_eq!(store.label_values("app", &[], 0, 10).unwrap(), ["api"]);
//! ```
//!
mod dedup;
mod document;
mod error;
mod fetch;
mod line_index;
mod line_terms;
mod lock;
pub mod logql;
mod metric;
mod partition;
mod pending;
mod plan;
mod query;
mod scan;
mod schema;
mod store;
mod tail;
mod term_layout;
mod tokens;
mod volume;
mod wal;

pub use error::Error;
pub use logql::{parse_expr, parse_selector, Expr, LineFilter, LineFilterOp, LogQuery, QueryError};
pub use metric::{EvalError, MetricSeries};
pub use query::{IndexStats, QueryResult, RangeParams, INSTANT_LOG_QUERY, MAX_SAMPLES_PER_QUERY};
pub use store::{
    Direction, LogStore, LogStoreOptions, PushOutcome, DEFAULT_COMMIT_INTERVAL, DEFAULT_PARTITION,
    RETENTION_CHECK_INTERVAL,
};
pub use tail::{
    DroppedEntry, Tail, TailResponse, MAX_BUFFERED_TAIL_BYTES, MAX_BUFFERED_TAIL_ENTRIES,
    MAX_CONCURRENT_TAILS, MAX_DROPPED_ENTRIES_PER_TAIL_RESPONSE, MAX_ENTRIES_PER_TAIL_RESPONSE,
    MAX_TAIL_DELAY_SECONDS,
};
pub use volume::{VolumeBy, VolumeName, VolumeRequest, VolumeSeries, DEFAULT_VOLUME_LIMIT};
pub use wal::DEFAULT_WAL_SEGMENT_BYTES;
