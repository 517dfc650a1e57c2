//! The folding aggregations (`sum`, `avg`, `min`, `max`, `count`, `group`, `stddev`,
//! `stdvar`) computed for every step of their grid at once, series by series.
//!
//! Step by step, an aggregation rebuilds its input vector and recomputes each element's group
//! key (a new label set) at every step. Here the group key of each input series is computed
//! once, and each series' points are folded into per-group, per-step accumulators in one
//! pass. Each accumulator sees its values in input-series order, which is the order the
//! step-by-step path lists them in, and uses the same [`Acc`] arithmetic, so both paths give
//! the same bits (`engine::allsteps_tests` checks that on seeded data). The accumulators for
//! all groups are bounded ([`ACCUMULATOR_BUDGET`]): with many groups the steps are folded in
//! blocks, each block one more pass over the input.

use super::{group_labels, Acc, AggOp};
use crate::allsteps::{AllSteps, Grid, Source, StepSeries};
use crate::error::Error;
use crate::eval::Evaluator;
use crate::functions::sliding::StepPoint;
use model::Labels;
use promql_parser::parser::LabelModifier;
use std::collections::HashMap;

/// The most accumulators (groups × steps) held at once.
const ACCUMULATOR_BUDGET: usize = 1 << 17;

/// How many input series are folded between two looks at the query's deadline.
pub(super) const DEADLINE_EVERY_SERIES: usize = 256;

/// Whether `op` is one of the aggregations folded here.
pub(super) fn folds(op: AggOp) -> bool {
    matches!(
        op,
        AggOp::Sum
            | AggOp::Avg
            | AggOp::Min
            | AggOp::Max
            | AggOp::Count
            | AggOp::Group
            | AggOp::Stddev
            | AggOp::Stdvar
    )
}

/// One group's accumulator at one step, and the input series that opened it: the group's
/// place in the step's output, as the step-by-step path orders groups by first element.
struct Slot {
    first: u32,
    acc: Acc,
}

/// The folding aggregation `op` of `source` at every step of `grid`.
pub(super) fn fold_steps(
    ev: &Evaluator<'_>,
    op: AggOp,
    modifier: Option<&LabelModifier>,
    source: &Source<'_>,
    grid: Grid,
) -> Result<AllSteps, Error> {
    fold_in_blocks(ev, op, modifier, source, grid, ACCUMULATOR_BUDGET)
}

/// [`fold_steps`] holding at most `budget` accumulators (but at least one step's) at once.
fn fold_in_blocks(
    ev: &Evaluator<'_>,
    op: AggOp,
    modifier: Option<&LabelModifier>,
    source: &Source<'_>,
    grid: Grid,
    budget: usize,
) -> Result<AllSteps, Error> {
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut groups: Vec<StepSeries> = Vec::new();
    let mut group_of = Vec::with_capacity(source.len());
    for i in 0..source.len() {
        let key = group_labels(modifier, source.labels(i));
        let g = match index.get(&key) {
            Some(&g) => g,
            None => {
                index.insert(key.clone(), groups.len());
                groups.push(StepSeries {
                    labels: key,
                    points: Vec::new(),
                });
                groups.len() - 1
            }
        };
        group_of.push(g);
    }
    let mut ranks: Vec<Vec<u32>> = vec![Vec::new(); groups.len()];
    let block = (budget / groups.len().max(1)).clamp(1, grid.count.max(1));
    let mut slots: Vec<Option<Slot>> = Vec::new();
    let mut scratch: Vec<StepPoint> = Vec::new();
    let mut from = 0;
    while from < grid.count {
        let to = from.saturating_add(block).min(grid.count);
        let width = to - from;
        slots.clear();
        slots.resize_with(groups.len() * width, || None);
        for (s, &g) in group_of.iter().enumerate() {
            if s % DEADLINE_EVERY_SERIES == 0 {
                ev.check_deadline()?;
            }
            let first = u32::try_from(s).unwrap_or(u32::MAX);
            let row = &mut slots[g * width..(g + 1) * width];
            for p in source.points(s, from..to, &mut scratch) {
                match &mut row[p.step - from] {
                    Some(slot) => slot.acc.add(op, p.v),
                    empty => {
                        *empty = Some(Slot {
                            first,
                            acc: Acc::new(op, p.v),
                        })
                    }
                }
            }
        }
        for (g, group) in groups.iter_mut().enumerate() {
            let row = &slots[g * width..(g + 1) * width];
            for (k, slot) in row.iter().enumerate() {
                if let Some(slot) = slot {
                    group.points.push(StepPoint {
                        step: from + k,
                        v: slot.acc.value(op),
                    });
                    ranks[g].push(slot.first);
                }
            }
        }
        from = to;
    }
    Ok(AllSteps::ranked(grid, groups, ranks))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::aggregate;
    use crate::selector::{sample_at, Fetched, QueryTimes};
    use crate::value::Elem;
    use model::{Sample, Series};
    use std::time::{Duration, Instant};

    /// Six series in three groups with gaps, so groups come and go and change their order
    /// from step to step.
    fn series() -> Vec<Series> {
        (0..6)
            .map(|i: i64| Series {
                labels: Labels::from_pairs([
                    ("g", format!("{}", (i * 7) % 3)),
                    ("i", i.to_string()),
                ]),
                samples: (0..40)
                    .filter(|k| (k + i) % (i + 2) != 0)
                    .map(|k| Sample {
                        t: k * 10 + i,
                        v: (k * (i + 1)) as f64 / 3.0,
                    })
                    .collect(),
            })
            .collect()
    }

    #[test]
    fn folding_in_blocks_matches_each_step_folded_alone() {
        let data = series();
        let fetched = Fetched::default();
        let times = QueryTimes { start: 0, end: 400 };
        let grid = Grid::of_query(0, 400, 10);
        let deadline = Instant::now() + Duration::from_secs(60);
        let ev = Evaluator::new(&fetched, times, 15, grid, crate::limits::Stop::at(deadline));
        let source = Source::Selector {
            series: &data,
            ends: grid.times().collect(),
            lookback: 15,
        };
        let by = LabelModifier::include(vec!["g"]);
        for op in [
            AggOp::Sum,
            AggOp::Avg,
            AggOp::Max,
            AggOp::Count,
            AggOp::Stddev,
        ] {
            // One step per block, a few steps per block, all steps in one block.
            for budget in [1, 8, usize::MAX] {
                let all = fold_in_blocks(&ev, op, Some(&by), &source, grid, budget).unwrap();
                for (i, t) in grid.times().enumerate() {
                    let input: Vec<Elem> = data
                        .iter()
                        .filter_map(|s| {
                            let v = sample_at(&s.samples, t, 15)?;
                            Some(Elem {
                                labels: s.labels.clone(),
                                v,
                            })
                        })
                        .collect();
                    let want = aggregate(op, Some(&by), input);
                    let got = all.at(i).unwrap();
                    assert_eq!(got, want, "{op:?} budget {budget} step {i}");
                }
            }
        }
    }

    #[test]
    fn only_folding_operators_fold() {
        for op in [
            AggOp::Sum,
            AggOp::Avg,
            AggOp::Min,
            AggOp::Max,
            AggOp::Count,
            AggOp::Group,
            AggOp::Stddev,
            AggOp::Stdvar,
        ] {
            assert!(folds(op), "{op:?}");
        }
        for op in [
            AggOp::Topk,
            AggOp::Bottomk,
            AggOp::Quantile,
            AggOp::CountValues,
            AggOp::Limitk,
            AggOp::LimitRatio,
        ] {
            assert!(!folds(op), "{op:?}");
        }
    }
}
