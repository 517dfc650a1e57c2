//! The storage traits between query and storage (Prometheus's `storage.Querier` and
//! `storage.Appender`, shaped for batches).
//!
//! *API Boundary*: the PromQL engine, the rule evaluator and the HTTP API see storage only
//! through these traits; every store passes the same behaviour tests.

use crate::{Labels, Matcher, Sample};

/// A series with its samples in ascending time order.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub labels: Labels,
    pub samples: Vec<Sample>,
}

/// Reads series. All time bounds are inclusive milliseconds.
pub trait Querier: Send + Sync {
    /// The series that satisfy every matcher, with their samples in `[mint, maxt]`, sorted by
    /// labels. Series with no sample in the range are left out.
    fn select(
        &self,
        mint: i64,
        maxt: i64,
        matchers: &[Matcher],
    ) -> Result<Vec<Series>, StorageError>;

    /// The label sets of the series that satisfy every matcher and have a sample in range,
    /// sorted. Stores override this when they can answer without reading samples.
    fn series(
        &self,
        mint: i64,
        maxt: i64,
        matchers: &[Matcher],
    ) -> Result<Vec<Labels>, StorageError> {
        Ok(self
            .select(mint, maxt, matchers)?
            .into_iter()
            .map(|s| s.labels)
            .collect())
    }

    /// The sorted, distinct label names of the matching series (all series when `matchers`
    /// is empty) that have a sample in range.
    fn label_names(
        &self,
        mint: i64,
        maxt: i64,
        matchers: &[Matcher],
    ) -> Result<Vec<String>, StorageError>;

    /// The sorted, distinct values of label `name` among the matching series (all series when
    /// `matchers` is empty) that have a sample in range.
    fn label_values(
        &self,
        name: &str,
        mint: i64,
        maxt: i64,
        matchers: &[Matcher],
    ) -> Result<Vec<String>, StorageError>;
}

/// Writes series.
pub trait Appender: Send + Sync {
    /// Appends a batch. When this returns `Ok`, every sample counted in
    /// [`AppendOutcome::appended`] is as durable as the store promises (the TSDB: in its
    /// fsync'd WAL). Samples the store refuses are counted, not appended, and do not fail the
    /// batch; an `Err` means nothing of the batch may be assumed stored.
    fn append(&self, batch: &[Series]) -> Result<AppendOutcome, AppendError>;
}

/// What an append did with a batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AppendOutcome {
    /// Samples stored.
    pub appended: usize,
    /// Samples older than the newest one of their series, refused.
    pub out_of_order: usize,
    /// Samples at an existing timestamp with a different value, refused.
    pub duplicate_timestamp: usize,
    /// Samples refused because their series breaks a limit the store is configured with
    /// (labels per series, label name or value length, series per metric name).
    pub over_limit: usize,
    /// The first limit broken: its name (the flag that sets it) and its value.
    pub limit: Option<(&'static str, usize)>,
}

impl AppendOutcome {
    /// Samples refused for any reason.
    pub fn rejected(&self) -> usize {
        self.out_of_order + self.duplicate_timestamp + self.over_limit
    }
}

/// A store failed to read.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("storage is not ready: {0}")]
    NotReady(String),
    #[error("storage error: {0}")]
    Other(String),
}

/// A store failed to write: nothing of the batch may be assumed stored.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("write-ahead log I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("storage is not ready: {0}")]
    NotReady(String),
    #[error("storage error: {0}")]
    Other(String),
}
