//! Log tailer throughput: CRI files of 200-byte lines read by the real [`Tailer`] (discovery,
//! fingerprints, line splitting, CRI parsing, labels, batches, checkpoints) into a sink that
//! only counts and acknowledges, so what is measured is the tailer and not a receiver.
//!
//! Run: `cargo bench -p collector --bench tail`. Besides criterion's figures it prints one
//! summary line with lines/s, MiB/s and the process CPU time per MiB (user + system, all
//! threads, from `/proc/self/stat`), for comparison with Vector's published ~77 MiB/s for its
//! file source.

// Harness code: a panic here is a broken benchmark setup.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use collector::{LogBatch, TailConfig};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Container log files read at once.
const FILES: usize = 8;
/// Bytes per file: 32 MiB in all.
const FILE_BYTES: usize = 4 << 20;
/// Every line is this long, its CRI prefix and newline included.
const LINE_BYTES: usize = 200;

/// Writes the pods directory: `FILES` containers, each one CRI file of 200-byte lines.
/// Returns the number of lines.
fn write_pods(pods: &Path) -> usize {
    let prefix = "2024-01-02T03:04:05.123456789Z stdout F ";
    let lines_per_file = FILE_BYTES / LINE_BYTES;
    for c in 0..FILES {
        let dir = pods.join(format!("bench_pod-{c}_uid-{c}/app"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut f = std::io::BufWriter::new(std::fs::File::create(dir.join("0.log")).unwrap());
        for i in 0..lines_per_file {
            let msg = format!("level=info msg=\"request served\" line={i:08} container={c}");
            let pad = LINE_BYTES - prefix.len() - msg.len() - 1;
            writeln!(f, "{prefix}{msg}{}", "x".repeat(pad)).unwrap();
        }
    }
    FILES * lines_per_file
}

/// Runs a tailer with fresh checkpoints over `pods` until `lines` lines were counted; the
/// wall time it took.
fn tail_once(rt: &tokio::runtime::Runtime, pods: &Path, lines: usize) -> Duration {
    let state = tempfile::tempdir().unwrap();
    let mut cfg = TailConfig::new("bench", state.path());
    cfg.pods_path = pods.to_path_buf();
    let tailer = cfg.build().unwrap();
    rt.block_on(async move {
        let start = Instant::now();
        let shutdown = CancellationToken::new();
        let (tx, mut rx) = mpsc::channel::<LogBatch>(8);
        let (ack_tx, ack_rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(tailer.run(shutdown.clone(), tx, ack_rx));
        let mut counted = 0;
        while counted < lines {
            let batch = rx.recv().await.expect("the tailer stopped early");
            counted += batch.streams.iter().map(|s| s.entries.len()).sum::<usize>();
            let _ = ack_tx.send(batch.positions);
        }
        let elapsed = start.elapsed();
        shutdown.cancel();
        drop(ack_tx);
        drop(rx);
        task.await.unwrap();
        elapsed
    })
}

/// User + system CPU time of this process so far, all threads.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the command name (which may hold spaces) start at field 3, `state`.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // USER_HZ is 100 on every Linux ABI.
    Duration::from_millis(ticks * 10)
}

fn runtime() -> tokio::runtime::Runtime {
    // One core for the tailer's task; its reads run on the blocking pool, counted in CPU time.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn bench_tail(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let pods = dir.path().join("pods");
    let lines = write_pods(&pods);
    let bytes = (lines * LINE_BYTES) as u64;
    let mib = bytes as f64 / (1 << 20) as f64;
    let rt = runtime();

    // One measured pass for the summary, after a warm-up pass that fills the page cache.
    tail_once(&rt, &pods, lines);
    let cpu0 = cpu_time();
    let wall = tail_once(&rt, &pods, lines);
    let cpu = cpu_time() - cpu0;
    println!(
        "tail summary: {lines} lines, {mib:.0} MiB of 200-byte CRI lines in {FILES} files: \
         {:.0} lines/s, {:.1} MiB/s, {:.2} ms CPU per MiB ({:.2} s CPU for {:.2} s wall)",
        lines as f64 / wall.as_secs_f64(),
        mib / wall.as_secs_f64(),
        cpu.as_secs_f64() * 1000.0 / mib,
        cpu.as_secs_f64(),
        wall.as_secs_f64(),
    );

    let mut g = c.benchmark_group("tail");
    g.throughput(Throughput::Bytes(bytes));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    g.bench_function("cri_200b_lines_8_files", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| tail_once(&rt, &pods, lines)).sum())
    });
    g.finish();
}

criterion_group!(benches, bench_tail);
criterion_main!(benches);
