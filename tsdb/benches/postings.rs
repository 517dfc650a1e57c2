//! Postings intersection, union and subtraction on list shapes a label index produces: a
//! metric name's list (large) against an instance's (small), and two mid-sized lists.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use std::hint::black_box;
use tsdb::postings::{intersect, subtract, union};
use tsdb::SeriesRef;

/// Every id below `n` kept with probability about `1/every`, deterministically.
fn sparse(n: u32, every: u32, seed: u32) -> Vec<SeriesRef> {
    (0..n)
        .filter(|&i| (i.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 7) % every == 0)
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("postings");
    let name = sparse(1_000_000, 4, 1); // ~250k: a common metric name
    let instance = sparse(1_000_000, 1_000, 2); // ~1k: one instance
    let job = sparse(1_000_000, 10, 3); // ~100k
    let cases: [(&str, Vec<&[SeriesRef]>); 3] = [
        ("name_x_instance", vec![&name, &instance]),
        ("name_x_job", vec![&name, &job]),
        ("name_x_job_x_instance", vec![&name, &job, &instance]),
    ];
    for (label, lists) in &cases {
        g.bench_with_input(BenchmarkId::new("intersect", label), lists, |b, l| {
            b.iter(|| intersect(black_box(l)))
        });
    }
    let values: Vec<Vec<SeriesRef>> = (0..20).map(|s| sparse(1_000_000, 200, s)).collect();
    let refs: Vec<&[SeriesRef]> = values.iter().map(Vec::as_slice).collect();
    g.bench_function("union_20_values", |b| b.iter(|| union(black_box(&refs))));
    g.bench_function("subtract_job_from_name", |b| {
        b.iter(|| subtract(black_box(&name), black_box(&job)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
