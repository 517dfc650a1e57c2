//! Vigil's time-series database.
//!
//! This slice is the **head**: the in-memory, appendable part that holds recent samples and
//! answers queries over them. Later slices add a write-ahead log behind it, Gorilla-compressed
//! chunks inside it, and immutable on-disk blocks cut from it; the API below stays.
//!
//! - [`Head`] implements [`model::Querier`] and [`model::Appender`], and passes the shared
//!   storage behaviour suite ([`model::conformance`]) like every other store.
//! - Series get stable [`SeriesRef`] ids; an inverted index (label name → value → sorted ids)
//!   resolves label matchers, and the [`postings`] module holds the pure set operations on
//!   those sorted id lists (`intersect`, `union`, `subtract`).
//!
//! ```
//! use model::{Appender, Labels, MatchOp, Matcher, Querier, Sample, Series};
//! use tsdb::Head;
//!
//! let head = Head::new();
//! let labels = Labels::from_pairs([("__name__", "up"), ("job", "node")]);
//! let outcome = head
//!     .append(&[Series { labels, samples: vec![Sample { t: 1_000, v: 1.0 }] }])
//!     .unwrap();
//! assert_eq!(outcome.appended, 1);
//!
//! let job = Matcher::new(MatchOp::Equal, "job", "node").unwrap();
//! let series = head.select(0, 2_000, &[job]).unwrap();
//! assert_eq!(series[0].samples, vec![Sample { t: 1_000, v: 1.0 }]);
//! assert_eq!((head.num_series(), head.min_time()), (1, Some(1_000)));
//! ```
//!
//! *Architecture Invariant*: the head knows nothing of PromQL; queries reach it only through
//! the `Querier` trait, so the engine can be tested on `model::MemStorage` and run on this.

mod head;
mod index;
pub mod postings;
mod series;

pub use head::Head;
pub use postings::SeriesRef;
