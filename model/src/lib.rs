//! The data model every Vigil crate shares.
//!
//! - [`Labels`] is a sorted set of label pairs, the identity of a series or a log stream.
//! - [`Sample`] is one timestamped float (milliseconds since the epoch).
//! - [`Matcher`] is one label matcher (`=`, `!=`, `=~`, `!~`), with regexes fully anchored.
//! - [`Querier`] and [`Appender`] are the storage traits: the PromQL engine and the rule
//!   evaluator read through `Querier`, ingestion writes through `Appender`, and every store
//!   (the in-memory [`MemStorage`] used by tests, the TSDB) implements both.
//! - [`wire`] holds the protobuf messages of Prometheus remote write and Loki push, and the
//!   bounded snappy codec both protocols use.
//! - [`labels_hash`] is Prometheus's hash of a label set (XXH64 via [`xxh64`]), for behaviour
//!   Prometheus derives from it, such as a rule group's evaluation phase.
//! - [`LogStream`] and [`LogEntry`] carry log lines from the agent to the log store.
//!
//! ```
//! use model::{Labels, Matcher, MatchOp, MemStorage, Appender, Querier, Sample, Series};
//!
//! let store = MemStorage::new();
//! let labels = Labels::from_pairs([("__name__", "up"), ("job", "node")]);
//! store.append(&[Series { labels, samples: vec![Sample { t: 1_000, v: 1.0 }] }]).unwrap();
//! let m = Matcher::new(MatchOp::Equal, "job", "node").unwrap();
//! let series = store.select(0, 2_000, &[m]).unwrap();
//! assert_eq!(series[0].samples[0].v, 1.0);
//! ```

pub mod conformance;
mod duration;
mod labels;
mod logs;
mod matcher;
mod memstore;
pub mod relabel;
mod sample;
mod storage;
pub mod wire;
mod xxhash;

pub use duration::{parse_duration, DURATION_UNITS};
pub use labels::{parse_label_set, Label, Labels, LabelsError, METRIC_NAME};
pub use logs::{LogEntry, LogStream};
pub use matcher::{MatchOp, Matcher, MatcherError};
pub use memstore::MemStorage;
pub use relabel::{relabel, RelabelConfig, RelabelError, RelabelSpec};
pub use sample::{is_stale_nan, Sample, STALE_NAN_BITS};
pub use storage::{
    AppendError, AppendOutcome, Appender, BorrowedSeries, Querier, Series, SeriesBatch,
    StorageError,
};
pub use xxhash::{label_pairs_hash, labels_hash, xxh64};
