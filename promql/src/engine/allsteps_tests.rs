//! The all-steps paths (range functions, instant selectors and folding aggregations computed
//! for every step at once) against the step-by-step evaluator, on seeded data that has gaps,
//! staleness markers, NaN, infinities and values large enough to overflow a sum: every
//! folding aggregation and `topk`/`bottomk`/`limitk`, with every kind of modifier, must give
//! the same series, timestamps and bits, the same errors and the same annotations either way;
//! so must queries that read those results step by step (nested aggregations, binary
//! operators, subqueries), which also checks each step's order.

use super::*;
use model::{Appender, MemStorage, STALE_NAN_BITS};

/// xorshift64*, so every run checks the same data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A value of the kind `metric` holds; `c` also holds the awkward ones.
fn value(rng: &mut Rng, metric: &str, counter: &mut f64) -> f64 {
    match metric {
        "a_total" => {
            if rng.below(60) == 0 {
                *counter = 0.0;
            }
            *counter += rng.below(50) as f64;
            *counter
        }
        "b" => rng.below(10_000) as f64 / 7.0 - 500.0,
        _ => match rng.below(40) {
            0 => f64::NAN,
            1 => f64::INFINITY,
            2 => f64::NEG_INFINITY,
            3..=5 => f64::MAX / 2.0,
            6 => -f64::MAX,
            7 => 1e16,
            _ => rng.below(1_000) as f64 * 0.1,
        },
    }
}

/// 3 metrics × 3 jobs × 4 instances (some with a `mode` label), samples every 10–40 s with
/// gaps longer than the lookback and occasional staleness markers, from -200 s to 2000 s.
fn seeded_store(seed: u64) -> Arc<MemStorage> {
    let store = Arc::new(MemStorage::new());
    let mut rng = Rng(seed);
    let mut batch = Vec::new();
    for metric in ["a_total", "b", "c"] {
        for job in ["x", "y", "z"] {
            for instance in 0..4 {
                let mut pairs = vec![
                    ("__name__", metric.to_string()),
                    ("job", job.to_string()),
                    ("instance", instance.to_string()),
                ];
                if instance == 3 {
                    pairs.push(("mode", "idle".to_string()));
                }
                let mut samples = Vec::new();
                let mut t = -200_000 + rng.below(30_000) as i64;
                let mut counter = 0.0;
                while t < 2_000_000 {
                    let v = match rng.below(50) {
                        0 => f64::from_bits(STALE_NAN_BITS),
                        _ => value(&mut rng, metric, &mut counter),
                    };
                    samples.push(Sample { t, v });
                    t += 10_000 + rng.below(30_001) as i64;
                    if rng.below(40) == 0 {
                        t += 400_000;
                    }
                }
                batch.push(Series {
                    labels: Labels::from_pairs(pairs),
                    samples,
                });
            }
        }
    }
    store.append(&batch).unwrap();
    store
}

/// Every aggregation computed for all steps at once, with its parameter.
const OPS: [(&str, &str); 11] = [
    ("sum", ""),
    ("avg", ""),
    ("min", ""),
    ("max", ""),
    ("count", ""),
    ("group", ""),
    ("stddev", ""),
    ("stdvar", ""),
    ("topk", "2, "),
    ("bottomk", "3, "),
    ("limitk", "2, "),
];
const MODIFIERS: [&str; 7] = [
    "",
    " by (job)",
    " by (job, mode)",
    " without (instance)",
    " by (__name__, job)",
    " without ()",
    " by (nonexistent)",
];
const INPUTS: [&str; 7] = [
    "b",
    "c",
    r#"{__name__=~"b|c"}"#,
    "rate(a_total[1m])",
    "b offset 1m",
    "c @ 300",
    "max_over_time(c[2m])",
];

/// Queries whose nodes are not all folded at once, around ones that are: nested
/// aggregations, selecting aggregations, binary operators, subqueries, a name clash.
const OTHERS: [&str; 13] = [
    "sum(avg by (job) (b))",
    "max by (job) (sum without (instance) ({__name__=~\"b|c\"}))",
    "topk(scalar(count(b)) - 9, b)",
    "sum(topk by (job) (1, c))",
    "quantile(0.5, c)",
    "count_values(\"v\", count by (job) (b))",
    "sum by (job) (b) / count by (job) (b)",
    "1 - avg by (job) (rate(a_total[1m]))",
    "max_over_time(sum by (job) (c)[2m:20s])",
    "sum(rate({__name__=~\"a_total|b\"}[1m]))",
    "{__name__=~\"b|c\"}",
    "-b",
    "max by (job, instance) (c) * on (job) group_left sum by (job) (b)",
];

/// `(start, end, step)` in ms: aligned and not, steps shorter and longer than the sample
/// interval.
const GRIDS: [(i64, i64, i64); 3] = [
    (0, 1_800_000, 15_000),
    (7_000, 1_567_000, 60_000),
    (-100_000, 900_000, 7_000),
];

fn run(
    engine: &Engine,
    q: &str,
    grid: (i64, i64, i64),
    all_steps: bool,
) -> (Result<QueryResult, Error>, usize) {
    match engine.range_eval(q, grid.0, grid.1, grid.2, all_steps) {
        Ok((r, n)) => (Ok(r), n),
        Err(e) => (Err(e), 0),
    }
}

/// Compares the two paths' answers bit for bit; annotations as sets, since the order they
/// were first met in differs between series-major and step-major evaluation.
fn assert_same(
    q: &str,
    grid: (i64, i64, i64),
    fast: &Result<QueryResult, Error>,
    slow: &Result<QueryResult, Error>,
) {
    match (fast, slow) {
        (Ok(f), Ok(s)) => {
            let (Value::Matrix(fm), Value::Matrix(sm)) = (&f.value, &s.value) else {
                panic!("{q} {grid:?}: not a matrix")
            };
            assert_eq!(fm.len(), sm.len(), "{q} {grid:?}: series count");
            for (a, b) in fm.iter().zip(sm) {
                assert_eq!(a.labels, b.labels, "{q} {grid:?}");
                let bits = |s: &Series| -> Vec<(i64, u64)> {
                    s.samples.iter().map(|p| (p.t, p.v.to_bits())).collect()
                };
                assert_eq!(bits(a), bits(b), "{q} {grid:?} {}", a.labels);
            }
            let sorted = |v: &[String]| {
                let mut v = v.to_vec();
                v.sort();
                v
            };
            assert_eq!(sorted(&f.warnings), sorted(&s.warnings), "{q} {grid:?}");
            assert_eq!(sorted(&f.infos), sorted(&s.infos), "{q} {grid:?}");
        }
        (Err(f), Err(s)) => assert_eq!(f.to_string(), s.to_string(), "{q} {grid:?}"),
        (f, s) => panic!("{q} {grid:?}: all steps {f:?}, step by step {s:?}"),
    }
}

#[test]
fn aggregations_match_the_step_by_step_path_bit_for_bit() {
    let engine = Engine::new(
        seeded_store(0x9E37_79B9_7F4A_7C15),
        EngineOptions::default(),
    );
    for (op, param) in OPS {
        for modifier in MODIFIERS {
            for input in INPUTS {
                let q = format!("{op}{modifier} ({param}{input})");
                for grid in GRIDS {
                    let (fast, nodes) = run(&engine, &q, grid, true);
                    let (slow, _) = run(&engine, &q, grid, false);
                    assert_same(&q, grid, &fast, &slow);
                    // The comparison means something only if the fast path ran.
                    assert!(nodes > 0, "{q} {grid:?}: evaluated step by step");
                }
            }
        }
    }
}

#[test]
fn mixed_queries_match_the_step_by_step_path_bit_for_bit() {
    let engine = Engine::new(seeded_store(7), EngineOptions::default());
    let mut failed = 0;
    for q in OTHERS {
        for grid in GRIDS {
            let (fast, _) = run(&engine, q, grid, true);
            let (slow, _) = run(&engine, q, grid, false);
            failed += usize::from(slow.is_err());
            assert_same(q, grid, &fast, &slow);
        }
    }
    // The name clash must fail on every grid, the rest must not.
    assert_eq!(failed, GRIDS.len());
}

#[test]
fn instant_selector_at_every_step_matches_lookback_step_by_step() {
    let engine = Engine::new(seeded_store(3), EngineOptions::default());
    for q in [
        "b",
        "c offset -30s",
        "c @ 1000",
        r#"{__name__=~"a_total|b|c"}"#,
    ] {
        for grid in GRIDS {
            let (fast, nodes) = run(&engine, q, grid, true);
            let (slow, _) = run(&engine, q, grid, false);
            assert_same(q, grid, &fast, &slow);
            assert!(nodes > 0, "{q} {grid:?}: evaluated step by step");
        }
    }
}
