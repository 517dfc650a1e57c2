//! Exposition parsing throughput: a real node_exporter 1.5 scrape (text 0.0.4, 1,073 lines)
//! and a generated 10,000-series OpenMetrics body with histograms and exemplars, the shape a
//! busy application's `/metrics` has.
//!
//! Run: `cargo bench -p collector --bench expo`.

// Harness code: a panic here is a broken benchmark setup.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write;
use std::hint::black_box;
use std::path::PathBuf;

use collector::expo::{parse, Format};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn node_exporter_scrape() -> Option<String> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/reference/node_exporter-1.5-scrape.txt");
    std::fs::read_to_string(p).ok()
}

/// 1,000 histogram series × (8 buckets + sum + count) in OpenMetrics, every `+Inf` bucket
/// with an exemplar, labels with escapes every tenth series.
fn openmetrics_body() -> String {
    let mut b = String::new();
    b.push_str("# TYPE http_request_duration_seconds histogram\n");
    b.push_str("# UNIT http_request_duration_seconds seconds\n");
    b.push_str("# HELP http_request_duration_seconds Request latency.\n");
    let les = ["0.005", "0.01", "0.05", "0.1", "0.5", "1.0", "5.0", "+Inf"];
    for i in 0..1000 {
        let path = if i % 10 == 0 {
            format!("/a\\\"{i}\\\\")
        } else {
            format!("/api/v1/items/{i}")
        };
        for (j, le) in les.iter().enumerate() {
            write!(b, "http_request_duration_seconds_bucket{{method=\"GET\",path=\"{path}\",le=\"{le}\"}} {}", j * 10).unwrap();
            if *le == "+Inf" {
                b.push_str(" # {trace_id=\"4bf92f3577b34da6a3ce929d0e0e4736\"} 0.67 1520879606.5");
            }
            b.push('\n');
        }
        writeln!(
            b,
            "http_request_duration_seconds_sum{{method=\"GET\",path=\"{path}\"}} 123.5"
        )
        .unwrap();
        writeln!(
            b,
            "http_request_duration_seconds_count{{method=\"GET\",path=\"{path}\"}} 70"
        )
        .unwrap();
    }
    b.push_str("# EOF\n");
    b
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("expo");
    if let Some(text) = node_exporter_scrape() {
        assert!(parse(&text, Format::Text).is_ok());
        g.throughput(Throughput::Bytes(text.len() as u64));
        g.bench_function("text_node_exporter_1073_lines", |b| {
            b.iter(|| parse(black_box(&text), Format::Text).unwrap().samples.len())
        });
    }
    let om = openmetrics_body();
    assert_eq!(
        parse(&om, Format::OpenMetrics).unwrap().samples.len(),
        10_000
    );
    g.throughput(Throughput::Bytes(om.len() as u64));
    g.bench_function("openmetrics_10k_histogram_samples", |b| {
        b.iter(|| {
            parse(black_box(&om), Format::OpenMetrics)
                .unwrap()
                .samples
                .len()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
