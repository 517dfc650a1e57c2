//! Selectors: turning a parsed selector into [`model::Matcher`]s, fetching each selector's
//! samples once for the whole query, and reading them at one step.
//!
//! Fetching is a separate pass before evaluation (Prometheus's `populateSeries`): a range query
//! of 1000 steps reads storage once per selector, not once per step. The evaluator then finds
//! each step's samples by binary search in the fetched series, or, for an instant selector
//! evaluated at every step of a range query, with one forward cursor per series
//! ([`instant_steps`]).

use crate::error::Error;
use crate::functions::sliding::StepPoint;
use crate::limits::Limits;
use model::{is_stale_nan, Labels, MatchOp, Matcher, Querier, Sample, Series, METRIC_NAME};
use promql_parser::label::{MatchOp as ParsedOp, Matcher as ParsedMatcher};
use promql_parser::parser::{AtModifier, Offset, VectorSelector};
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::time::{Duration, SystemTime};

/// The time range a query is evaluated over; `@ start()` and `@ end()` refer to it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct QueryTimes {
    pub start: i64,
    pub end: i64,
}

/// What one selector needs fetched: how far back of its reference time a step looks (the
/// lookback delta for an instant selector, the range for a range selector), whether it is a
/// range selector, and the steps it is evaluated at.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FetchPlan {
    pub window: i64,
    pub is_range: bool,
    pub span: EvalSpan,
}

/// The first and last step at which one node of the tree is evaluated: the query's range at
/// the root, wider inside a subquery (whose inner steps reach back by its range).
#[derive(Clone, Copy, Debug)]
pub(crate) struct EvalSpan {
    pub start: i64,
    pub end: i64,
}

/// The series every selector of a query fetched, keyed by the selector's node in the syntax
/// tree. The address is a sound key because the tree is borrowed, unmoved, from the fetch until
/// evaluation ends, and two selectors with the same text must still be two entries (they can
/// differ in offset or range).
#[derive(Debug, Default)]
pub(crate) struct Fetched {
    series: HashMap<*const VectorSelector, Vec<Series>>,
}

impl Fetched {
    /// The series fetched for `vs`. Missing only if the fetch pass skipped a node the evaluator
    /// reached, which is a bug, reported as an error rather than a panic.
    pub fn get(&self, vs: &VectorSelector) -> Result<&[Series], Error> {
        self.series
            .get(&std::ptr::from_ref(vs))
            .map(Vec::as_slice)
            .ok_or_else(|| Error::exec(format!("internal error: selector {vs} was not fetched")))
    }

    /// Reads storage for one selector as `plan` says.
    /// Range selectors drop staleness markers here, as Prometheus does: they end a series'
    /// lookback but are not samples.
    pub fn fetch(
        &mut self,
        querier: &dyn Querier,
        vs: &VectorSelector,
        plan: FetchPlan,
        times: QueryTimes,
        limits: &mut Limits,
    ) -> Result<(), Error> {
        let key = std::ptr::from_ref(vs);
        if self.series.contains_key(&key) {
            return Ok(());
        }
        // Both ends are inclusive for the store; the left end of every window is open.
        let mint = reference_time(vs, plan.span.start, times)
            .saturating_sub(plan.window)
            .saturating_add(1);
        let maxt = reference_time(vs, plan.span.end, times);
        let mut merged: BTreeMap<Labels, Vec<Sample>> = BTreeMap::new();
        for group in matcher_groups(vs)? {
            for s in querier.select(mint, maxt, &group)? {
                merged.entry(s.labels).or_insert(s.samples);
            }
            limits.check_deadline()?;
        }
        let mut series = Vec::with_capacity(merged.len());
        for (labels, mut samples) in merged {
            if plan.is_range {
                samples.retain(|s| !is_stale_nan(s.v));
            }
            limits.add_samples(samples.len())?;
            series.push(Series { labels, samples });
        }
        self.series.insert(key, series);
        Ok(())
    }
}

/// The sets of matchers to select with; a series matching any set is selected. Plain PromQL
/// has one set; promql-parser also accepts `{a="1" or b="2"}`, which gives several.
pub(crate) fn matcher_groups(vs: &VectorSelector) -> Result<Vec<Vec<Matcher>>, Error> {
    let mut name = Vec::new();
    if let Some(n) = &vs.name {
        name.push(to_model(METRIC_NAME, &ParsedOp::Equal, n)?);
    }
    let convert = |ms: &[ParsedMatcher]| -> Result<Vec<Matcher>, Error> {
        let mut out = name.clone();
        for m in ms {
            out.push(to_model(&m.name, &m.op, &m.value)?);
        }
        Ok(out)
    };
    let mut groups = Vec::new();
    if !vs.matchers.matchers.is_empty() || vs.matchers.or_matchers.is_empty() {
        groups.push(convert(&vs.matchers.matchers)?);
    }
    for g in &vs.matchers.or_matchers {
        groups.push(convert(g)?);
    }
    Ok(groups)
}

fn to_model(name: &str, op: &ParsedOp, value: &str) -> Result<Matcher, Error> {
    let op = match op {
        ParsedOp::Equal => MatchOp::Equal,
        ParsedOp::NotEqual => MatchOp::NotEqual,
        ParsedOp::Re(_) => MatchOp::Regex,
        ParsedOp::NotRe(_) => MatchOp::NotRegex,
    };
    // The parser compiled the regex already, so this fails only on a syntax the two regex
    // engines disagree on; that is still the query's fault.
    Matcher::new(op, name, value).map_err(|e| Error::Parse(e.to_string()))
}

/// The time a selector reads at when the query evaluates step `ts`: `@` pins it, `offset`
/// shifts it back (or forward, when negative).
pub(crate) fn reference_time(vs: &VectorSelector, ts: i64, times: QueryTimes) -> i64 {
    pinned_time(vs.at.as_ref(), vs.offset.as_ref(), ts, times)
}

/// The time a selector or subquery with these `@` and `offset` modifiers reads at when the
/// query evaluates step `ts`.
pub(crate) fn pinned_time(
    at: Option<&AtModifier>,
    offset: Option<&Offset>,
    ts: i64,
    times: QueryTimes,
) -> i64 {
    let base = match at {
        None => ts,
        Some(AtModifier::Start) => times.start,
        Some(AtModifier::End) => times.end,
        Some(AtModifier::At(t)) => system_time_ms(*t),
    };
    let offset = match offset {
        None => 0,
        Some(Offset::Pos(d)) => duration_ms(*d),
        Some(Offset::Neg(d)) => -duration_ms(*d),
    };
    base.saturating_sub(offset)
}

/// A duration in whole milliseconds, saturating.
pub(crate) fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn system_time_ms(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => duration_ms(d),
        Err(e) => -duration_ms(e.duration()),
    }
}

/// An instant selector's value at `t`: the latest sample in `(t - lookback, t]`, unless that
/// sample is a staleness marker.
pub(crate) fn sample_at(samples: &[Sample], t: i64, lookback: i64) -> Option<f64> {
    let idx = samples.partition_point(|s| s.t <= t).checked_sub(1)?;
    let s = samples[idx];
    (s.t > t.saturating_sub(lookback) && !is_stale_nan(s.v)).then_some(s.v)
}

/// An instant selector's values at the steps in `steps`, where `ends[step]` is a step's
/// reference time: for each, the point [`sample_at`] gives, appended to `out` in step order.
/// One cursor moves forward over `samples` as the steps do, so a series costs one pass, not
/// a search per step; a reference time that moves back (never, for a range query's steps)
/// is found by search.
pub(crate) fn instant_steps(
    samples: &[Sample],
    ends: &[i64],
    steps: Range<usize>,
    lookback: i64,
    out: &mut Vec<StepPoint>,
) {
    let first = steps.start;
    let Some(ends) = ends.get(steps) else {
        return;
    };
    let Some(&start) = ends.first() else {
        return;
    };
    // `samples[..hi]` are those at or before the current reference time.
    let mut hi = samples.partition_point(|s| s.t <= start);
    let mut last = start;
    for (k, &end) in ends.iter().enumerate() {
        if end < last {
            hi = samples.partition_point(|s| s.t <= end);
        } else {
            while samples.get(hi).is_some_and(|s| s.t <= end) {
                hi += 1;
            }
        }
        last = end;
        let Some(s) = hi.checked_sub(1).and_then(|j| samples.get(j)) else {
            continue;
        };
        if s.t > end.saturating_sub(lookback) && !is_stale_nan(s.v) {
            out.push(StepPoint {
                step: first + k,
                v: s.v,
            });
        }
    }
}

/// A range selector's samples at `t`: those in `(t - range, t]`.
pub(crate) fn window(samples: &[Sample], t: i64, range: i64) -> &[Sample] {
    let lo = samples.partition_point(|s| s.t <= t.saturating_sub(range));
    let hi = samples.partition_point(|s| s.t <= t);
    &samples[lo..hi.max(lo)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::STALE_NAN_BITS;

    fn samples(pts: &[(i64, f64)]) -> Vec<Sample> {
        pts.iter().map(|&(t, v)| Sample { t, v }).collect()
    }

    #[test]
    fn lookback_is_left_open() {
        let s = samples(&[(0, 1.0), (10, 2.0)]);
        assert_eq!(sample_at(&s, 10, 5), Some(2.0));
        assert_eq!(sample_at(&s, 14, 5), Some(2.0));
        assert_eq!(
            sample_at(&s, 15, 5),
            None,
            "a sample exactly lookback old is gone"
        );
        assert_eq!(sample_at(&s, 9, 10), Some(1.0));
        assert_eq!(sample_at(&s, -1, 10), None);
    }

    #[test]
    fn staleness_marker_hides_the_series() {
        let s = samples(&[(0, 1.0), (10, f64::from_bits(STALE_NAN_BITS)), (20, 3.0)]);
        assert_eq!(sample_at(&s, 5, 100), Some(1.0));
        assert_eq!(sample_at(&s, 15, 100), None);
        assert_eq!(sample_at(&s, 20, 100), Some(3.0));
    }

    #[test]
    fn instant_steps_agree_with_a_search_per_step() {
        let s = samples(&[
            (0, 1.0),
            (10, 2.0),
            (25, f64::from_bits(STALE_NAN_BITS)),
            (30, 3.0),
            (80, 4.0),
            (81, 5.0),
        ]);
        // Forward, standing still (`@`), backwards, before and after the data.
        let ends = [
            -5, 0, 9, 10, 24, 25, 29, 30, 30, 45, 79, 81, 95, 120, 40, 5, 200,
        ];
        for lookback in [1, 10, 15, 50] {
            for steps in [0..ends.len(), 3..9, 12..17, 4..4] {
                let mut out = Vec::new();
                instant_steps(&s, &ends, steps.clone(), lookback, &mut out);
                let want: Vec<StepPoint> = steps
                    .filter_map(|step| {
                        sample_at(&s, ends[step], lookback).map(|v| StepPoint { step, v })
                    })
                    .collect();
                assert_eq!(out, want, "lookback {lookback}");
            }
        }
        let mut out = Vec::new();
        instant_steps(&s, &ends, 10..40, 10, &mut out);
        assert!(out.is_empty(), "steps past the end give nothing");
    }

    #[test]
    fn window_is_left_open() {
        let s = samples(&[(0, 1.0), (10, 2.0), (20, 3.0)]);
        assert_eq!(window(&s, 20, 20), &s[1..]);
        assert_eq!(window(&s, 20, 21), &s[..]);
        assert!(window(&s, -5, 3).is_empty());
    }
}
