//! [`ViaBatch`]: a store adapter that sends every append through the borrowed batch path, so
//! the conformance checks hold that path to the owned one's behaviour.

use crate::{
    AppendError, AppendOutcome, Appender, Labels, Matcher, Querier, Series, SeriesBatch,
    StorageError,
};

/// A store whose appends all go through [`Appender::append_batch`], the borrowed path remote
/// write takes: `run_all(|| ViaBatch(make()))` holds that path to the same behaviour.
#[derive(Debug)]
pub struct ViaBatch<S>(pub S);

impl<S: Querier> Querier for ViaBatch<S> {
    fn select(&self, mint: i64, maxt: i64, ms: &[Matcher]) -> Result<Vec<Series>, StorageError> {
        self.0.select(mint, maxt, ms)
    }

    fn series(&self, mint: i64, maxt: i64, ms: &[Matcher]) -> Result<Vec<Labels>, StorageError> {
        self.0.series(mint, maxt, ms)
    }

    fn label_names(
        &self,
        mint: i64,
        maxt: i64,
        ms: &[Matcher],
    ) -> Result<Vec<String>, StorageError> {
        self.0.label_names(mint, maxt, ms)
    }

    fn label_values(
        &self,
        name: &str,
        mint: i64,
        maxt: i64,
        ms: &[Matcher],
    ) -> Result<Vec<String>, StorageError> {
        self.0.label_values(name, mint, maxt, ms)
    }
}

impl<S: Appender> Appender for ViaBatch<S> {
    fn append(&self, batch: &[Series]) -> Result<AppendOutcome, AppendError> {
        self.0.append_batch(&SeriesBatch::from_series(batch))
    }
}
