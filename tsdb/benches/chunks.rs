//! Chunk encode/decode throughput, and bytes per sample on node_exporter-shaped data for the
//! XOR encoding alone and for the chosen (smaller of XOR and decimal) encoding.
//!
//! `cargo bench -p tsdb --bench chunks` prints the size table first, then criterion's timings.

// A bench is a harness: a panic is a failed run with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

#[allow(dead_code)] // each bench uses part of the shared workload
mod workload;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use tsdb::chunk::{self, SAMPLES_PER_CHUNK};
use workload::Shape;

/// Bytes per sample over 3.5 h of 15 s samples (840 per series, seven 120-sample chunks),
/// per shape and for the whole mix.
fn size_table() {
    let data = workload::mix(4, 840);
    println!("{:<14} {:>10} {:>10}", "shape", "xor B/s", "best B/s");
    let mut totals = (0usize, 0usize, 0usize);
    let mut by_shape: Vec<(String, usize, usize, usize)> = Vec::new();
    for (shape, samples) in &data {
        let (mut xor, mut best) = (0, 0);
        for c in samples.chunks(SAMPLES_PER_CHUNK) {
            xor += chunk::encode_xor(c).len();
            best += chunk::encode(c).len();
        }
        let name = format!("{shape:?}");
        match by_shape.iter_mut().find(|e| e.0 == name) {
            Some(e) => {
                e.1 += xor;
                e.2 += best;
                e.3 += samples.len();
            }
            None => by_shape.push((name, xor, best, samples.len())),
        }
        totals.0 += xor;
        totals.1 += best;
        totals.2 += samples.len();
    }
    for (name, xor, best, n) in by_shape {
        println!(
            "{name:<14} {:>10.3} {:>10.3}",
            xor as f64 / n as f64,
            best as f64 / n as f64
        );
    }
    println!(
        "{:<14} {:>10.3} {:>10.3}",
        "mix",
        totals.0 as f64 / totals.2 as f64,
        totals.1 as f64 / totals.2 as f64
    );
}

fn bench(c: &mut Criterion) {
    size_table();
    let mut g = c.benchmark_group("chunk");
    g.throughput(Throughput::Elements(SAMPLES_PER_CHUNK as u64));
    for shape in [Shape::IntCounter, Shape::CpuCounter, Shape::FloatGauge] {
        let samples = workload::series(shape, SAMPLES_PER_CHUNK, 7);
        let name = format!("{shape:?}");
        g.bench_with_input(BenchmarkId::new("encode_xor", &name), &samples, |b, s| {
            b.iter(|| chunk::encode_xor(black_box(s)))
        });
        g.bench_with_input(BenchmarkId::new("encode_best", &name), &samples, |b, s| {
            b.iter(|| chunk::encode(black_box(s)))
        });
        let bytes = chunk::encode(&samples);
        let mut out = Vec::with_capacity(SAMPLES_PER_CHUNK);
        g.bench_with_input(BenchmarkId::new("decode", &name), &bytes, |b, bytes| {
            b.iter(|| {
                out.clear();
                chunk::decode_into(black_box(bytes), &mut out).unwrap();
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
