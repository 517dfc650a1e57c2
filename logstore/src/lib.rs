//! Vigil's log store: log streams indexed with tantivy, queried with LogQL.
//!
//! - [`LogStore`] owns one tantivy index in a directory. [`LogStore::push`] writes
//!   [`model::LogStream`]s and returns once they are committed to disk and visible;
//!   [`LogStore::query_range`] runs a LogQL log query; [`LogStore::label_names`] and
//!   [`LogStore::label_values`] answer Loki's metadata endpoints.
//! - [`logql`] is the query language front end: a hand-written parser with Loki's error
//!   messages, the AST ([`LogQuery`]) and the exact semantics of line filters.
//! - [`Error`] separates the caller's mistakes (`Parse`, `Unsupported`, `Invalid`: HTTP 400)
//!   from ours (`Index`, `Io`: 500); [`Error::http_status`] does the mapping.
//!
//! How a query runs: the stream selector and the time range become one tantivy query, every
//! label matcher pushed down exactly onto `name=value` terms (see `plan.rs`); `|=` needles add
//! token clauses that narrow the candidates; the hits are ranked on the timestamp fast field and
//! only the first ones are loaded, with every line filter re-checked on the stored line.
//!
//! ```
//! use logstore::{Direction, LogStore};
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
//! assert_eq!(store.label_values("app", 0, 10).unwrap(), ["api"]);
//! ```
//!
//! Not yet here (see DESIGN.md §5): the ingest WAL with group commit, time partitions and
//! retention, duplicate suppression, and LogQL beyond log queries with line filters.

mod error;
mod fetch;
pub mod logql;
mod plan;
mod schema;
mod store;

pub use error::Error;
pub use logql::{LineFilter, LineFilterOp, LogQuery, QueryError};
pub use store::{Direction, LogStore, PushOutcome};
