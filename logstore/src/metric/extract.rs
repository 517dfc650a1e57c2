//! From log lines to samples: the value each line contributes to a range aggregation, and the
//! series (label sets) the samples are grouped into.

use super::vector::group_key;
use super::EvalError;
use crate::logql::pipeline::{
    self, parse_bytes, parse_go_duration, Row, ERROR_DETAILS_LABEL, ERROR_LABEL,
    SAMPLE_EXTRACTION_ERR,
};
use crate::logql::{LogRange, RangeOp, Unwrap};
use model::{Labels, LogEntry};
use std::collections::HashMap;

/// The samples of one log range, grouped into series, each sorted by time.
#[derive(Debug, Default)]
pub struct SeriesSet {
    pub series: Vec<(Labels, Vec<(i64, f64)>)>,
}

/// Builds the series of a range aggregation from entries one at a time.
pub struct Extractor<'a> {
    op: RangeOp,
    range: &'a LogRange,
    grouping: Option<&'a crate::logql::Grouping>,
    series: HashMap<Labels, Vec<(i64, f64)>>,
    samples: usize,
    max_samples: usize,
}

impl<'a> Extractor<'a> {
    pub fn new(
        op: RangeOp,
        range: &'a LogRange,
        grouping: Option<&'a crate::logql::Grouping>,
        max_samples: usize,
    ) -> Self {
        Extractor {
            op,
            range,
            grouping,
            series: HashMap::new(),
            samples: 0,
            max_samples,
        }
    }

    /// Runs one entry of a stream through the pipeline and records its sample, if any.
    pub fn push(&mut self, stream: &Labels, entry: &LogEntry) -> Result<(), EvalError> {
        let mut row = Row::new(entry.ts_ns, &entry.line, stream, &entry.metadata);
        if !pipeline::run(&self.range.query.pipeline, &mut row) {
            return Ok(());
        }
        let value = match &self.range.unwrap {
            None if matches!(self.op, RangeOp::BytesOverTime | RangeOp::BytesRate) => {
                row.line.len() as f64
            }
            None => 1.0,
            Some(u) => {
                let raw = row.get(u.label()).unwrap_or_default().to_string();
                let converted = match u {
                    Unwrap::Number(_) => raw.trim().parse::<f64>().map_err(|_| {
                        format!("strconv.ParseFloat: parsing {raw:?}: invalid syntax")
                    }),
                    Unwrap::Duration(_) => parse_go_duration(&raw),
                    Unwrap::Bytes(_) => parse_bytes(&raw),
                };
                row.labels.remove(u.label());
                match converted {
                    Ok(v) => v,
                    Err(e) => {
                        row.set_error(SAMPLE_EXTRACTION_ERR, e);
                        0.0
                    }
                }
            }
        };
        if !pipeline::run(&self.range.post_unwrap, &mut row) {
            return Ok(());
        }
        if let Some(kind) = row.get(ERROR_LABEL).map(str::to_string) {
            row.labels.remove(ERROR_DETAILS_LABEL);
            return Err(EvalError(pipeline_error(&kind, &row.label_set())));
        }
        let mut labels = row.label_set();
        if self.grouping.is_some() {
            labels = group_key(&labels, self.grouping);
        }
        self.samples += 1;
        if self.samples > self.max_samples {
            return Err(EvalError(format!(
                "the query reads more than {} log lines; narrow the selector or the time range",
                self.max_samples
            )));
        }
        self.series
            .entry(labels)
            .or_default()
            .push((entry.ts_ns, value));
        Ok(())
    }

    pub fn finish(self) -> SeriesSet {
        let mut series: Vec<_> = self.series.into_iter().collect();
        for (_, points) in &mut series {
            points.sort_by_key(|p| p.0);
        }
        series.sort_by(|a, b| a.0.cmp(&b.0));
        SeriesSet { series }
    }
}

/// Loki's text for a series that still carries `__error__` at a range aggregation.
fn pipeline_error(kind: &str, labels: &Labels) -> String {
    format!(
        "pipeline error: '{kind}' for series: '{labels}'.\nUse a label filter to intentionally skip this error. (e.g | __error__!=\"{kind}\").\nTo skip all potential errors you can match empty errors.(e.g __error__=\"\")\nThe label filter can also be specified after unwrap. (e.g | unwrap latency | __error__=\"\" )\n"
    )
}
