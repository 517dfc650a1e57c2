//! Ingestion limits: the shape of a series' label set (labels per series, label name and
//! value length) and the number of series per metric name. Each is off at 0.
//!
//! A series that breaks a limit is refused whole: none of its samples is stored, the rest
//! of the batch is, and the append's outcome counts the refused samples and names the first
//! limit broken (by the flag that sets it), which remote write answers with a 400. Series
//! already in the head (replayed from the WAL, say) are not re-counted against the series
//! limit, but their label sets are checked on every append, so a tighter limit applies
//! from the next start on.

use crate::series_key::LabelKey;
use model::Labels;

/// Flag names, which are also the limits' names in outcomes and metrics.
pub const MAX_LABELS_PER_SERIES: &str = "storage.tsdb.max-labels-per-series";
pub const MAX_LABEL_NAME_LENGTH: &str = "storage.tsdb.max-label-name-length";
pub const MAX_LABEL_VALUE_LENGTH: &str = "storage.tsdb.max-label-value-length";
pub const MAX_SERIES_PER_METRIC: &str = "storage.tsdb.max-series-per-metric";

/// The limits a [`crate::Tsdb`] (or [`crate::Head`]) enforces on appends; 0 turns one off.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// Most labels on one series, `__name__` included.
    pub max_labels_per_series: usize,
    /// Longest label name, in bytes.
    pub max_label_name_length: usize,
    /// Longest label value, in bytes.
    pub max_label_value_length: usize,
    /// Most series in the head with one `__name__`; a new series beyond it is refused.
    pub max_series_per_metric: usize,
}

/// The limit a series broke: its name and its value.
pub type Broken = (&'static str, usize);

impl Limits {
    /// The first shape limit `labels` breaks, if any.
    pub fn check_labels(&self, labels: &Labels) -> Option<Broken> {
        self.check_key(labels)
    }

    /// [`Limits::check_labels`] for owned or borrowed label sets alike.
    pub(crate) fn check_key<K: LabelKey + ?Sized>(&self, labels: &K) -> Option<Broken> {
        let over = |limit: usize, n: usize| limit > 0 && n > limit;
        if over(self.max_labels_per_series, labels.len()) {
            return Some((MAX_LABELS_PER_SERIES, self.max_labels_per_series));
        }
        for (name, value) in labels.pairs() {
            if over(self.max_label_name_length, name.len()) {
                return Some((MAX_LABEL_NAME_LENGTH, self.max_label_name_length));
            }
            if over(self.max_label_value_length, value.len()) {
                return Some((MAX_LABEL_VALUE_LENGTH, self.max_label_value_length));
            }
        }
        None
    }

    /// Whether a new series may join `existing` series of its metric name.
    pub(crate) fn series_allowed(&self, existing: usize) -> Result<(), Broken> {
        if self.max_series_per_metric > 0 && existing >= self.max_series_per_metric {
            return Err((MAX_SERIES_PER_METRIC, self.max_series_per_metric));
        }
        Ok(())
    }

    /// The names of every limit, in the order metrics list them.
    pub(crate) const NAMES: [&'static str; 4] = [
        MAX_LABELS_PER_SERIES,
        MAX_LABEL_NAME_LENGTH,
        MAX_LABEL_VALUE_LENGTH,
        MAX_SERIES_PER_METRIC,
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_shape_limit_is_named_and_zero_is_off() {
        let labels = Labels::from_pairs([("__name__", "up"), ("job", "node-exporter")]);
        assert_eq!(Limits::default().check_labels(&labels), None);
        let limits = |a, b, c| Limits {
            max_labels_per_series: a,
            max_label_name_length: b,
            max_label_value_length: c,
            max_series_per_metric: 0,
        };
        assert_eq!(limits(2, 8, 13).check_labels(&labels), None, "at the limit");
        assert_eq!(
            limits(1, 0, 0).check_labels(&labels),
            Some((MAX_LABELS_PER_SERIES, 1))
        );
        assert_eq!(
            limits(0, 7, 0).check_labels(&labels),
            Some((MAX_LABEL_NAME_LENGTH, 7))
        );
        assert_eq!(
            limits(0, 0, 12).check_labels(&labels),
            Some((MAX_LABEL_VALUE_LENGTH, 12))
        );
        let per_metric = Limits {
            max_series_per_metric: 2,
            ..Limits::default()
        };
        assert_eq!(per_metric.series_allowed(1), Ok(()));
        assert_eq!(
            per_metric.series_allowed(2),
            Err((MAX_SERIES_PER_METRIC, 2))
        );
        assert_eq!(Limits::default().series_allowed(1 << 40), Ok(()));
    }
}
