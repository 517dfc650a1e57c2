//! Vigil's PromQL engine: Prometheus 3.x query semantics over [`model::Querier`].
//!
//! - [`Engine`] runs instant and range queries; build it with a store and [`EngineOptions`]
//!   (lookback delta, sample limit, timeout) and share it in an `Arc`.
//! - [`QueryResult`] holds the [`Value`] (scalar, string, instant vector of
//!   [`VectorElement`]s, or matrix of [`model::Series`]) plus Prometheus's warning and info
//!   annotations.
//! - [`Error`] says whose fault a failure is: the query's ([`Error::Parse`]), the evaluation's
//!   ([`Error::Execution`]), the clock's ([`Error::Timeout`]) or the store's
//!   ([`Error::Storage`]); the HTTP layer maps each to one Prometheus `errorType`.
//!
//! ```
//! use model::{Appender, Labels, MemStorage, Sample, Series};
//! use promql::{Engine, EngineOptions, Value};
//! use std::sync::Arc;
//!
//! let store = Arc::new(MemStorage::new());
//! let labels = Labels::from_pairs([("__name__", "requests_total"), ("job", "api")]);
//! let samples = (0..=10).map(|i| Sample { t: i * 15_000, v: i as f64 * 30.0 }).collect();
//! store.append(&[Series { labels, samples }]).unwrap();
//!
//! let engine = Engine::new(store, EngineOptions::default());
//! let result = engine.instant_query("sum by (job) (rate(requests_total[1m]))", 150_000).unwrap();
//! let Value::Vector(v) = result.value else { panic!("expected a vector") };
//! assert_eq!(v[0].labels.to_string(), r#"{job="api"}"#);
//! assert!((v[0].v - 2.0).abs() < 1e-9);
//! ```
//!
//! How a query runs: the text is parsed by the `promql-parser` crate; `prepare` walks the
//! tree, refuses what this engine does not evaluate and reads each selector's samples from
//! storage once for every step it will be evaluated at (subqueries widen that span); the
//! evaluator then computes the tree step by step from those samples (`eval` for nodes and
//! subqueries, `aggregate/` and `binary` for the operators, `functions/` for calls, with the
//! pure kernels in `functions/range.rs`, `math.rs`, `time.rs`, `labels.rs`, `histogram.rs`),
//! except that some nodes are computed for all their steps at once, series by series
//! (`allsteps`): range functions of range selectors (the sliding kernels of
//! `functions/sliding.rs`), instant selectors (one cursor per series), and the folding
//! aggregations and `topk`/`bottomk`/`limitk` of those (`aggregate/fold.rs`, `select.rs`:
//! group keys once per series), with the same bits as step by step.
//!
//! Supported: the float language of Prometheus 3.x — selectors with all matcher types,
//! `offset` and `@`, range selectors, subqueries aligned to their step, every aggregation
//! (`limit_ratio` with Prometheus's label hash), every binary operator with vector matching,
//! and the float functions (`info` and the experimental duration functions excepted).
//! Anything else fails with an [`Error::Execution`] that names it. Native histograms are not
//! stored, so the `histogram_*` functions of native histograms return nothing.
//!
//! `promql/tests/promqltest/` runs Prometheus's promqltest files against this engine.

mod aggregate;
mod allsteps;
mod annotations;
mod binary;
mod engine;
mod error;
mod eval;
mod functions;
mod limits;
mod parse;
mod prepare;
mod selector;
mod summation;
mod value;

pub use engine::{
    Engine, EngineOptions, DEFAULT_LOOKBACK_DELTA, DEFAULT_MAX_SAMPLES, DEFAULT_TIMEOUT,
    MAX_POINTS_PER_SERIES,
};
pub use error::Error;
pub use parse::{check, parse_selector};
pub use value::{QueryResult, Value, VectorElement};
