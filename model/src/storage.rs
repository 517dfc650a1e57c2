//! The storage traits between query and storage (Prometheus's `storage.Querier` and
//! `storage.Appender`, shaped for batches).
//!
//! *API Boundary*: the PromQL engine, the rule evaluator and the HTTP API see storage only
//! through these traits; every store passes the same behaviour tests.

use crate::{Label, Labels, Matcher, Sample};

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

    /// Appends a batch whose labels borrow from a request body, with the promises of
    /// [`Appender::append`]. Stores that can find a series from its label bytes override this
    /// so that only new series cost a [`Labels`]; the default builds owned [`Series`].
    fn append_batch(&self, batch: &SeriesBatch<'_>) -> Result<AppendOutcome, AppendError> {
        self.append(&batch.to_series())
    }
}

/// One series of a [`SeriesBatch`]: its label pairs, sorted by name with no name twice and no
/// empty value (the form of [`Labels`]), and its samples as sent.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BorrowedSeries<'b, 'a> {
    pub labels: &'b [(&'a str, &'a str)],
    pub samples: &'b [Sample],
}

/// A batch of series whose label names and values borrow from a buffer (a decoded request
/// body), kept in three flat vectors so a batch costs a few allocations however many series
/// it holds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SeriesBatch<'a> {
    pairs: Vec<(&'a str, &'a str)>,
    samples: Vec<Sample>,
    /// Where each series' pairs and samples end in the vectors above.
    ends: Vec<(usize, usize)>,
}

impl<'a> SeriesBatch<'a> {
    /// An empty batch.
    pub fn new() -> Self {
        SeriesBatch::default()
    }

    /// Adds a series. `labels` must already be in the form of [`Labels`] (sorted by name, no
    /// name twice, no empty value); checked in debug builds.
    pub fn push(
        &mut self,
        labels: impl IntoIterator<Item = (&'a str, &'a str)>,
        samples: impl IntoIterator<Item = Sample>,
    ) {
        let start = self.pairs.len();
        self.pairs.extend(labels);
        debug_assert!(
            self.pairs[start..].windows(2).all(|w| w[0].0 < w[1].0)
                && self.pairs[start..].iter().all(|(_, v)| !v.is_empty()),
            "labels not in the form of Labels"
        );
        self.samples.extend(samples);
        self.ends.push((self.pairs.len(), self.samples.len()));
    }

    /// A batch borrowing from owned series.
    pub fn from_series(batch: &'a [Series]) -> Self {
        let mut out = SeriesBatch::new();
        for s in batch {
            out.push(
                s.labels.iter().map(|l| (l.name.as_str(), l.value.as_str())),
                s.samples.iter().copied(),
            );
        }
        out
    }

    /// Series in the batch.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The series in the order they were pushed.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = BorrowedSeries<'_, 'a>> + '_ {
        (0..self.ends.len()).map(move |i| self.get(i))
    }

    /// The `i`th series pushed; panics past the end, as slice indexing does.
    fn get(&self, i: usize) -> BorrowedSeries<'_, 'a> {
        let (p0, s0) = match i.checked_sub(1) {
            Some(prev) => self.ends[prev],
            None => (0, 0),
        };
        let (p1, s1) = self.ends[i];
        BorrowedSeries {
            labels: &self.pairs[p0..p1],
            samples: &self.samples[s0..s1],
        }
    }

    /// The batch as owned series.
    pub fn to_series(&self) -> Vec<Series> {
        self.iter()
            .map(|s| Series {
                labels: Labels::from_sorted_unique(
                    s.labels
                        .iter()
                        .map(|&(name, value)| Label {
                            name: name.to_string(),
                            value: value.to_string(),
                        })
                        .collect(),
                ),
                samples: s.samples.to_vec(),
            })
            .collect()
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::{run_all, ViaBatch};
    use crate::MemStorage;

    #[test]
    fn memstore_passes_conformance_through_append_batch() {
        run_all(|| ViaBatch(MemStorage::new()));
    }

    #[test]
    fn batch_keeps_each_series_pairs_and_samples_apart() {
        let owned = vec![
            Series {
                labels: Labels::from_pairs([("a", "1"), ("b", "2")]),
                samples: vec![Sample { t: 1, v: 1.0 }, Sample { t: 2, v: 2.0 }],
            },
            Series {
                labels: Labels::from_pairs([("a", "3")]),
                samples: vec![],
            },
            Series {
                labels: Labels::from_pairs([("c", "4")]),
                samples: vec![Sample { t: 3, v: 3.0 }],
            },
        ];
        let batch = SeriesBatch::from_series(&owned);
        assert_eq!(batch.len(), 3);
        let got: Vec<_> = batch
            .iter()
            .map(|s| (s.labels.to_vec(), s.samples.len()))
            .collect();
        assert_eq!(
            got,
            [
                (vec![("a", "1"), ("b", "2")], 2),
                (vec![("a", "3")], 0),
                (vec![("c", "4")], 1)
            ]
        );
        assert_eq!(batch.to_series(), owned);
    }
}
