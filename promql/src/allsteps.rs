//! Nodes evaluated per series over all the steps of their grid at once.
//!
//! A range query evaluates its tree step by step, but some nodes can be computed for every
//! step they will be evaluated at ([`Grid`]) in one pass per input series: a range function of
//! a range selector (`rate(x[5m])`: the window slides over the sorted samples,
//! `functions::sliding`), an instant selector (a cursor resolves the lookback of every step,
//! `selector::instant_steps`) and a folding aggregation of either (`aggregate::fold`: group
//! keys once per series, per-group per-step accumulators). Output labels are built once per
//! series instead of once per step. The result is an [`AllSteps`]; later steps read their
//! elements from it, and a range query whose root is such a node takes the whole matrix from
//! it without per-step work. A [`Source`] is what an aggregation folds: an instant vector read
//! series by series, in the order the step-by-step path lists it.

use crate::error::Error;
use crate::eval::check_unique_labels;
use crate::functions::sliding::StepPoint;
use crate::selector::{duration_ms, instant_steps, pinned_time, QueryTimes};
use crate::value::Elem;
use model::{Labels, Sample, Series};
use promql_parser::parser::SubqueryExpr;
use std::collections::HashSet;
use std::ops::Range;

/// The steps one node of the tree is evaluated at: `first`, `first + step`, ... (`count` of
/// them). The query's steps at the root; a subquery's inner steps (multiples of its step)
/// inside it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Grid {
    pub first: i64,
    pub step: i64,
    pub count: usize,
}

impl Grid {
    /// The steps of a query from `start` to `end` (inclusive) every `step` ms.
    pub fn of_query(start: i64, end: i64, step: i64) -> Grid {
        Grid::spanning(start, end, step)
    }

    /// `first`, `first + step`, ... up to `last`; empty when `last < first` or the numbers do
    /// not fit.
    fn spanning(first: i64, last: i64, step: i64) -> Grid {
        let count = if step <= 0 || last < first {
            0
        } else {
            (i128::from(last) - i128::from(first))
                .checked_div(i128::from(step))
                .and_then(|n| usize::try_from(n + 1).ok())
                .unwrap_or(0)
        };
        Grid { first, step, count }
    }

    /// The grid's step index of time `ts`, if `ts` is one of its steps.
    pub fn index(&self, ts: i64) -> Option<usize> {
        let offset = ts.checked_sub(self.first)?;
        if offset < 0 || self.step <= 0 || offset % self.step != 0 {
            return None;
        }
        usize::try_from(offset / self.step)
            .ok()
            .filter(|&i| i < self.count)
    }

    /// The time of step `i`.
    pub fn time(&self, i: usize) -> i64 {
        let i = i64::try_from(i).unwrap_or(i64::MAX);
        self.first.saturating_add(i.saturating_mul(self.step))
    }

    /// Every step's time, in order.
    pub fn times(&self) -> impl Iterator<Item = i64> + '_ {
        (0..self.count).map(|i| self.time(i))
    }

    /// The inner steps of subquery `sq` over all of this grid's steps: the multiples of its
    /// step inside `(t - range, t]` for any step `t`, moved by `@` and `offset` (the same
    /// alignment `Evaluator::subquery` uses step by step).
    pub fn subquery(&self, sq: &SubqueryExpr, step: i64, times: QueryTimes) -> Grid {
        if self.count == 0 {
            return Grid {
                first: 0,
                step,
                count: 0,
            };
        }
        let at = sq.at.as_ref();
        let offset = sq.offset.as_ref();
        let start =
            pinned_time(at, offset, self.first, times).saturating_sub(duration_ms(sq.range));
        let end = pinned_time(at, offset, self.time(self.count - 1), times);
        let first = start
            .div_euclid(step)
            .saturating_add(1)
            .saturating_mul(step);
        Grid::spanning(first, end, step)
    }
}

/// One output series of a range call: its labels (computed once) and its points by step.
#[derive(Debug)]
pub(crate) struct StepSeries {
    pub labels: Labels,
    pub points: Vec<StepPoint>,
}

/// A range call's output over its whole grid.
#[derive(Debug)]
pub(crate) struct AllSteps {
    pub grid: Grid,
    pub series: Vec<StepSeries>,
    /// Whether no two output series share a label set. When they do (the metric name was
    /// dropped from `a_total{x="1"}` and `b_total{x="1"}`), a step where both have a point is
    /// an error, as in Prometheus, so those steps are checked.
    distinct: bool,
    /// Where each point of each series (same shape as `points`) goes in its step's vector,
    /// smallest first, when that is not the order of `series`: an aggregation lists a step's
    /// groups in the order their first input element came in.
    ranks: Option<Vec<Vec<u32>>>,
}

impl AllSteps {
    pub fn new(grid: Grid, series: Vec<StepSeries>) -> AllSteps {
        let mut seen = HashSet::with_capacity(series.len());
        let distinct = series.iter().all(|s| seen.insert(&s.labels));
        AllSteps {
            grid,
            series,
            distinct,
            ranks: None,
        }
    }

    /// Like [`AllSteps::new`], with each point's place in its step's vector.
    pub fn ranked(grid: Grid, series: Vec<StepSeries>, ranks: Vec<Vec<u32>>) -> AllSteps {
        AllSteps {
            ranks: Some(ranks),
            ..AllSteps::new(grid, series)
        }
    }

    /// Whether a consumer that reads the series one after the other sees each step's
    /// elements in the order the step-by-step path gives them: the series list them in that
    /// order and no two share a label set.
    pub fn reads_in_step_order(&self) -> bool {
        self.ranks.is_none() && self.distinct
    }

    /// The instant vector at step `i`.
    pub fn at(&self, i: usize) -> Result<Vec<Elem>, Error> {
        let mut out = Vec::new();
        let mut order = Vec::new();
        for (k, s) in self.series.iter().enumerate() {
            let found = s.points.binary_search_by(|p| p.step.cmp(&i));
            if let Ok(at) = found {
                if let Some(ranks) = &self.ranks {
                    order.push(ranks.get(k).and_then(|r| r.get(at)).copied());
                }
                out.push(Elem {
                    labels: s.labels.clone(),
                    v: s.points[at].v,
                });
            }
        }
        if !order.is_empty() {
            let mut ranked: Vec<(Option<u32>, Elem)> = order.into_iter().zip(out).collect();
            ranked.sort_by_key(|(rank, _)| *rank);
            out = ranked.into_iter().map(|(_, e)| e).collect();
        }
        if !self.distinct {
            check_unique_labels(&out)?;
        }
        Ok(out)
    }

    /// The whole result as a matrix sorted by labels, or `self` back when two output series
    /// share a label set (then the caller evaluates step by step, which finds the steps where
    /// that is an error).
    pub fn into_matrix(self) -> Result<Vec<Series>, AllSteps> {
        if !self.distinct {
            return Err(self);
        }
        let grid = self.grid;
        let mut out: Vec<Series> = self
            .series
            .into_iter()
            .filter(|s| !s.points.is_empty())
            .map(|s| Series {
                labels: s.labels,
                samples: s
                    .points
                    .iter()
                    .map(|p| Sample {
                        t: grid.time(p.step),
                        v: p.v,
                    })
                    .collect(),
            })
            .collect();
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(out)
    }
}

/// An instant vector over a block of steps, read series by series: each series' points in
/// step order, and at every step the series in the order the step-by-step path lists them.
pub(crate) enum Source<'a> {
    /// An instant selector: each series' value at each step is found as it is read, with no
    /// per-step vectors built.
    Selector {
        series: &'a [Series],
        /// Each step's reference time (the step moved by `@` and `offset`).
        ends: Vec<i64>,
        lookback: i64,
    },
    /// A node computed for all steps that [`AllSteps::reads_in_step_order`].
    Computed(AllSteps),
}

impl Source<'_> {
    pub fn len(&self) -> usize {
        match self {
            Source::Selector { series, .. } => series.len(),
            Source::Computed(all) => all.series.len(),
        }
    }

    /// The labels of series `i`, which it has at every step.
    pub fn labels(&self, i: usize) -> &Labels {
        match self {
            Source::Selector { series, .. } => &series[i].labels,
            Source::Computed(all) => &all.series[i].labels,
        }
    }

    /// The points of series `i` at the steps in `steps`, in step order; `scratch` holds them
    /// when they are computed as they are read.
    pub fn points<'s>(
        &'s self,
        i: usize,
        steps: Range<usize>,
        scratch: &'s mut Vec<StepPoint>,
    ) -> &'s [StepPoint] {
        match self {
            Source::Selector {
                series,
                ends,
                lookback,
            } => {
                scratch.clear();
                instant_steps(&series[i].samples, ends, steps, *lookback, scratch);
                scratch
            }
            Source::Computed(all) => {
                let points = &all.series[i].points;
                let lo = points.partition_point(|p| p.step < steps.start);
                let hi = points.partition_point(|p| p.step < steps.end).max(lo);
                &points[lo..hi]
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_index_is_exact() {
        let g = Grid::of_query(100, 160, 20);
        assert_eq!(g.count, 4);
        assert_eq!(g.index(100), Some(0));
        assert_eq!(g.index(160), Some(3));
        assert_eq!(g.index(150), None);
        assert_eq!(g.index(180), None);
        assert_eq!(g.index(80), None);
        assert_eq!(g.times().collect::<Vec<_>>(), vec![100, 120, 140, 160]);
        assert_eq!(Grid::of_query(10, 0, 5).count, 0);
        assert_eq!(Grid::of_query(i64::MIN, i64::MAX, 1).count, 0);
    }

    #[test]
    fn duplicate_labels_fail_only_where_they_meet() {
        let labels = Labels::from_pairs([("x", "1")]);
        let all = AllSteps::new(
            Grid::of_query(0, 20, 10),
            vec![
                StepSeries {
                    labels: labels.clone(),
                    points: vec![StepPoint { step: 0, v: 1.0 }, StepPoint { step: 1, v: 2.0 }],
                },
                StepSeries {
                    labels,
                    points: vec![StepPoint { step: 1, v: 4.0 }, StepPoint { step: 2, v: 3.0 }],
                },
            ],
        );
        assert_eq!(all.at(0).unwrap().len(), 1);
        assert!(all.at(1).is_err());
        assert!(!all.reads_in_step_order());
        assert!(all.into_matrix().is_err());
    }

    #[test]
    fn ranked_steps_list_their_series_by_rank() {
        let series = |name: &str, points: &[(usize, f64)]| StepSeries {
            labels: Labels::from_pairs([("g", name)]),
            points: points
                .iter()
                .map(|&(step, v)| StepPoint { step, v })
                .collect(),
        };
        let all = AllSteps::ranked(
            Grid::of_query(0, 20, 10),
            vec![
                series("a", &[(0, 1.0), (1, 2.0)]),
                series("b", &[(0, 3.0), (1, 4.0), (2, 5.0)]),
            ],
            vec![vec![0, 7], vec![2, 5, 0]],
        );
        let names = |i| -> Vec<String> {
            all.at(i)
                .unwrap()
                .iter()
                .map(|e| e.labels.to_string())
                .collect()
        };
        assert_eq!(names(0), [r#"{g="a"}"#, r#"{g="b"}"#]);
        assert_eq!(names(1), [r#"{g="b"}"#, r#"{g="a"}"#]);
        assert_eq!(names(2), [r#"{g="b"}"#]);
        assert!(!all.reads_in_step_order());
    }
}
