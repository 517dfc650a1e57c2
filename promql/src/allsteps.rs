//! Range functions evaluated per series over all the steps of their grid at once.
//!
//! A range query evaluates its tree step by step, but a range function of a range selector
//! (`rate(x[5m])`, `max_over_time(x[1h])`, ...) does not depend on anything else that varies
//! by step. So the first time such a call is evaluated, it is computed for every step it will
//! be evaluated at ([`Grid`]): for each input series, one pass slides the window over the
//! sorted samples (`functions::sliding`), and the output labels are built once per series
//! instead of once per step. Later steps read their elements from that result, and a range
//! query whose root is such a call takes the whole matrix from it without per-step work.

use crate::error::Error;
use crate::eval::check_unique_labels;
use crate::functions::sliding::StepPoint;
use crate::selector::{duration_ms, pinned_time, QueryTimes};
use crate::value::Elem;
use model::{Labels, Sample, Series};
use promql_parser::parser::SubqueryExpr;
use std::collections::HashSet;

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
}

impl AllSteps {
    pub fn new(grid: Grid, series: Vec<StepSeries>) -> AllSteps {
        let mut seen = HashSet::with_capacity(series.len());
        let distinct = series.iter().all(|s| seen.insert(&s.labels));
        AllSteps {
            grid,
            series,
            distinct,
        }
    }

    /// The instant vector at step `i`.
    pub fn at(&self, i: usize) -> Result<Vec<Elem>, Error> {
        let mut out = Vec::new();
        for s in &self.series {
            let found = s.points.binary_search_by(|p| p.step.cmp(&i));
            if let Ok(at) = found {
                out.push(Elem {
                    labels: s.labels.clone(),
                    v: s.points[at].v,
                });
            }
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
        assert!(all.into_matrix().is_err());
    }
}
