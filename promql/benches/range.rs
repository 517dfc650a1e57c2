//! Range-query evaluation of range functions through the public [`Engine`], on a store shaped
//! like a scrape of 1,000 targets: 4 h of samples at 15 s, queried over the last hour at 15 s
//! steps (241 steps) with a 5 m window: range functions, and aggregations of them and of instant
//! selectors.
//!
//! `cargo bench -p promql --bench range` prints criterion's timings per query. The data are
//! deterministic: integer-valued counters with an occasional reset, and fractional gauges.

// A bench is a harness: a panic is a failed run with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{criterion_group, criterion_main, Criterion};
use model::{Appender, Labels, MemStorage, Sample, Series};
use promql::{Engine, EngineOptions};
use std::hint::black_box;
use std::sync::Arc;

const SERIES: usize = 1_000;
const SCRAPE_MS: i64 = 15_000;
const HOURS: i64 = 4;
/// Samples sit 1.234 s after each 15 s boundary, as scrapes do, not on the steps.
const PHASE_MS: i64 = 1_234;

/// A small deterministic generator (xorshift64*), so every run measures the same data.
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

fn store() -> Arc<MemStorage> {
    let store = Arc::new(MemStorage::new());
    let points = HOURS * 3600 * 1000 / SCRAPE_MS;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut batch = Vec::new();
    for i in 0..SERIES {
        let instance = format!("10.0.{}.{}:9100", i / 250, i % 250);
        let job = format!("job-{}", i % 10);
        let mut counter = 0.0;
        let mut counter_samples = Vec::with_capacity(points as usize);
        let mut gauge_samples = Vec::with_capacity(points as usize);
        for p in 0..points {
            let t = p * SCRAPE_MS + PHASE_MS;
            // About one reset per series in the 4 h.
            if rng.below(1_000) == 0 {
                counter = 0.0;
            }
            counter += rng.below(100) as f64;
            counter_samples.push(Sample { t, v: counter });
            let gauge = 50.0 + (rng.below(10_000) as f64) / 97.0;
            gauge_samples.push(Sample { t, v: gauge });
        }
        batch.push(Series {
            labels: Labels::from_pairs([
                ("__name__", "http_requests_total"),
                ("instance", instance.as_str()),
                ("job", job.as_str()),
            ]),
            samples: counter_samples,
        });
        batch.push(Series {
            labels: Labels::from_pairs([
                ("__name__", "memory_used_ratio"),
                ("instance", instance.as_str()),
                ("job", job.as_str()),
            ]),
            samples: gauge_samples,
        });
        if batch.len() >= 200 {
            store.append(&batch).unwrap();
            batch.clear();
        }
    }
    store.append(&batch).unwrap();
    store
}

fn range_functions(c: &mut Criterion) {
    let engine = Engine::new(store(), EngineOptions::default());
    let end = HOURS * 3600 * 1000;
    let start = end - 3600 * 1000;
    let step = 15_000;
    let mut group = c.benchmark_group("range_1000x241");
    group.sample_size(10);
    for query in [
        "rate(http_requests_total[5m])",
        "sum_over_time(memory_used_ratio[5m])",
        "max_over_time(memory_used_ratio[5m])",
        "sum by (job) (rate(http_requests_total[5m]))",
        // Instant selectors aggregated at every step: the shapes that were slowest against
        // Prometheus in `vigil-bench promql`.
        r#"count by (job) (memory_used_ratio{job=~"job-[1-4]"})"#,
        r#"sum by (__name__, job) ({__name__=~"http_requests_total|memory_used_ratio"})"#,
        "sum by (job) (memory_used_ratio) / sum by (job) (http_requests_total)",
        "topk(5, rate(http_requests_total[5m]))",
    ] {
        // Fail loudly on a query that does not return the full matrix, rather than time it.
        let result = engine.range_query(query, start, end, step).unwrap();
        let promql::Value::Matrix(m) = &result.value else {
            panic!("{query}: expected a matrix")
        };
        let steps: std::collections::BTreeSet<i64> = m
            .iter()
            .flat_map(|s| s.samples.iter().map(|p| p.t))
            .collect();
        assert_eq!(steps.len(), 241, "{query}");
        group.bench_function(query, |b| {
            b.iter(|| black_box(engine.range_query(query, start, end, step).unwrap()))
        });
    }
    group.finish();
}

criterion_group!(benches, range_functions);
criterion_main!(benches);
