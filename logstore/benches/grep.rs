//! The log store against `grep` on the same raw lines, in one run (issue 8's speed targets).
//!
//! Generates container logs with a fixed seed (`loggen`: nginx access lines, kubelet's klog
//! lines and JSON application logs, over 10 namespaces × 6 pods, six hours of timestamps — the
//! same lines `vigil-bench logs` pushes to a server) and writes each stream's raw lines to
//! `raw/<namespace>/<pod>.log`, as a node keeps them. The same
//! lines are pushed into a [`LogStore`] in 1 MiB batches (as Promtail batches) by two pushers,
//! then:
//!
//! - ingest: MiB of raw lines per CPU-second of the store (all its threads: WAL, indexing,
//!   commits, merges; the generator's own thread is subtracted), and per wall second;
//! - the selective query `{namespace="payments"} |= "<trace id>"` over the whole span against
//!   `grep -rF <trace id>` over `raw/payments` and over all of `raw/`, and its first run after
//!   the store opens (which opens each segment's line index; on partitions of tantivy line
//!   terms, layouts 2–3, it lays out the segments' terms and writes them) and after a restart;
//! - `sum by (pod) (count_over_time({namespace="payments"} |= "error" [5m]))` over the whole
//!   span at a 5-minute step against `grep -rcF error` over `raw/payments` and over `raw/`;
//! - disk bytes of the store (partitions and WAL) per raw byte;
//! - query latency while a writer pushes 100 lines every 10 ms into the newest partition,
//!   against the same queries with no ingest, and against committing before each query (what
//!   the store did before it searched uncommitted entries in memory).
//!
//! Answers are checked: the query's line count must equal grep's on the namespace, and the
//! count query's sum must equal `grep -c`'s. Timings are medians of 5 runs (grep's of 3), page
//! cache warm for both (one unmeasured run first), `LC_ALL=C` for grep.
//!
//! Run: `cargo bench -p logstore --bench grep` (2 GiB; `-- --mib 256` for a quick run,
//! `-- --keep` to leave the data directory in place and print its path, `-- --spin SECS` to
//! repeat the selective query that long for a profiler, `-- --commit-ms N` to ingest with
//! another commit interval).

// Harness code: a panic here is a broken benchmark setup, and the table is its product.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod loggen;

use loggen::{streams, Generator, Line, NEEDLE, START_NS};
use logstore::{Direction, LogStore, QueryResult, RangeParams};
use model::{LogEntry, LogStream};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// The namespace the selective queries select.
const SELECTED: &str = "payments";
const STEP_NS: i64 = 5 * 60 * 1_000_000_000;
const BATCH_BYTES: usize = 1 << 20;
const PUSHERS: usize = 2;
const QUERY_RUNS: usize = 5;
const GREP_RUNS: usize = 3;
const LIMIT: usize = 5000;

struct Args {
    mib: u64,
    keep: bool,
    /// Seconds to repeat the selective query for before the rest, for a profiler to attach.
    spin: u64,
    /// The store's commit interval during ingest (default: the store's).
    commit_ms: Option<u64>,
}

fn args() -> Args {
    let mut a = Args {
        mib: 2048,
        keep: false,
        spin: 0,
        commit_ms: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--mib" => a.mib = it.next().and_then(|v| v.parse().ok()).expect("--mib N"),
            "--keep" => a.keep = true,
            "--spin" => a.spin = it.next().and_then(|v| v.parse().ok()).expect("--spin SECS"),
            "--commit-ms" => a.commit_ms = it.next().and_then(|v| v.parse().ok()),
            _ => {} // cargo's --bench and filters
        }
    }
    a
}

/// Generates `target` raw bytes, writes them under `raw/` and sends 1 MiB batches; returns
/// (raw bytes, lines, last timestamp, this thread's CPU time).
fn generate(
    raw: &Path,
    target: u64,
    tx: mpsc::SyncSender<Vec<LogStream>>,
) -> (u64, u64, i64, Duration) {
    let streams = streams();
    let mut files: Vec<BufWriter<File>> = streams
        .iter()
        .map(|s| {
            let dir = raw.join(s.namespace);
            std::fs::create_dir_all(&dir).unwrap();
            BufWriter::with_capacity(
                1 << 16,
                File::create(dir.join(format!("{}.log", s.pod))).unwrap(),
            )
        })
        .collect();
    let (mut bytes, mut lines, mut ts) = (0u64, 0u64, START_NS);
    let mut batch: Vec<Vec<LogEntry>> = vec![Vec::new(); streams.len()];
    let mut batch_bytes = 0usize;
    let flush = |batch: &mut Vec<Vec<LogEntry>>| {
        let out: Vec<LogStream> = batch
            .iter_mut()
            .zip(&streams)
            .filter(|(e, _)| !e.is_empty())
            .map(|(e, s)| LogStream {
                labels: s.labels.clone(),
                entries: std::mem::take(e),
            })
            .collect();
        tx.send(out).unwrap();
    };
    for Line {
        stream: i,
        ts_ns,
        text: line,
    } in Generator::new(target)
    {
        ts = ts_ns;
        files[i].write_all(line.as_bytes()).unwrap();
        files[i].write_all(b"\n").unwrap();
        bytes += line.len() as u64 + 1;
        lines += 1;
        batch_bytes += line.len();
        batch[i].push(LogEntry {
            ts_ns,
            line,
            metadata: Vec::new(),
        });
        if batch_bytes >= BATCH_BYTES {
            flush(&mut batch);
            batch_bytes = 0;
        }
    }
    flush(&mut batch);
    for f in &mut files {
        f.flush().unwrap();
    }
    (bytes, lines, ts, thread_cpu())
}

/// User + system CPU time from a `/proc/.../stat` file.
fn cpu_from(path: &str) -> Duration {
    let stat = std::fs::read_to_string(path).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // USER_HZ is 100 on every Linux ABI.
    Duration::from_millis(ticks * 10)
}

fn process_cpu() -> Duration {
    cpu_from("/proc/self/stat")
}

fn thread_cpu() -> Duration {
    cpu_from("/proc/thread-self/stat")
}

fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let m = e.metadata().unwrap();
        total += if m.is_dir() {
            dir_bytes(&e.path())
        } else {
            m.len()
        };
    }
    total
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn percentile(mut v: Vec<Duration>, p: f64) -> Duration {
    v.sort();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Runs `grep` (`LC_ALL=C`) `runs` times after a warm-up run; its median wall time and stdout.
fn grep(args: &[&str], dir: &Path, runs: usize) -> (Duration, String) {
    let run = || {
        let started = Instant::now();
        let out = Command::new("grep")
            .env("LC_ALL", "C")
            .args(args)
            .arg(dir)
            .stderr(Stdio::inherit())
            .output()
            .expect("run grep");
        (started.elapsed(), String::from_utf8(out.stdout).unwrap())
    };
    let (_, stdout) = run();
    (median((0..runs).map(|_| run().0).collect()), stdout)
}

/// Runs `query` `runs` times after a warm-up run: the median wall time and the last answer.
fn timed<T>(runs: usize, mut query: impl FnMut() -> T) -> (Duration, T) {
    let mut answer = query();
    let mut times = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        answer = query();
        times.push(started.elapsed());
    }
    (median(times), answer)
}

fn selective_query() -> String {
    format!("{{namespace=\"{SELECTED}\"}} |= \"{NEEDLE}\"")
}

fn count_query() -> String {
    format!("sum by (pod) (count_over_time({{namespace=\"{SELECTED}\"}} |= \"error\" [5m]))")
}

fn log_lines(store: &LogStore, end_ns: i64) -> usize {
    let streams = store
        .query_range(
            &selective_query(),
            START_NS,
            end_ns,
            LIMIT,
            Direction::Backward,
        )
        .unwrap();
    streams.iter().map(|s| s.entries.len()).sum()
}

/// The count query at 5-minute steps whose windows tile `[START_NS, last]`; the sum of all
/// points.
fn error_count(store: &LogStore, last_ns: i64) -> f64 {
    let steps = (last_ns - START_NS) / STEP_NS + 1;
    let p = RangeParams {
        start_ns: START_NS + STEP_NS - 1,
        end_ns: START_NS + steps * STEP_NS - 1,
        step_ns: STEP_NS,
        limit: LIMIT,
        direction: Direction::Backward,
    };
    match store.range_query(&count_query(), p).unwrap() {
        QueryResult::Matrix(m) => m.iter().flat_map(|s| &s.points).map(|(_, v)| v).sum(),
        other => panic!("not a matrix: {other:?}"),
    }
}

fn main() {
    let args = args();
    let tmp = tempfile::Builder::new()
        .prefix("vigil-grep-bench")
        .tempdir()
        .unwrap();
    let (raw, store_dir) = (tmp.path().join("raw"), tmp.path().join("store"));
    let target = args.mib << 20;
    eprintln!(
        "generating and ingesting {} MiB under {}",
        args.mib,
        tmp.path().display()
    );

    // Ingest: a generator thread, two pushers.
    let mut options = logstore::LogStoreOptions::default();
    if let Some(ms) = args.commit_ms {
        options.commit_interval = Duration::from_millis(ms);
    }
    let store = Arc::new(LogStore::open_with(&store_dir, options).unwrap());
    let (tx, rx) = mpsc::sync_channel::<Vec<LogStream>>(4);
    let rx = Arc::new(Mutex::new(rx));
    let cpu0 = process_cpu();
    let started = Instant::now();
    let generator = {
        let raw = raw.clone();
        std::thread::spawn(move || generate(&raw, target, tx))
    };
    let pushers: Vec<_> = (0..PUSHERS)
        .map(|_| {
            let (store, rx) = (store.clone(), rx.clone());
            std::thread::spawn(move || loop {
                let batch = rx.lock().unwrap().recv();
                match batch {
                    Ok(b) => drop(store.push(&b).unwrap()),
                    Err(_) => return,
                }
            })
        })
        .collect();
    let (raw_bytes, lines, last_ts, generator_cpu) = generator.join().unwrap();
    for p in pushers {
        p.join().unwrap();
    }
    drop(Arc::into_inner(store).expect("pushers are done")); // final commit
    let ingest_wall = started.elapsed();
    let ingest_cpu = process_cpu()
        .saturating_sub(cpu0)
        .saturating_sub(generator_cpu);
    let raw_mib = raw_bytes as f64 / (1 << 20) as f64;
    let disk = dir_bytes(&store_dir);

    // Queries on the reopened store against grep on the raw files.
    let mut store = LogStore::open(&store_dir).unwrap();
    let end = last_ts + 1;
    // The first query after open also opens each segment's line index (or, on partitions of
    // tantivy line terms, lays their terms out and writes the layouts).
    let started = Instant::now();
    let cold_lines = log_lines(&store, end);
    let sel_cold = started.elapsed();
    let (sel_t, sel_lines) = timed(QUERY_RUNS, || log_lines(&store, end));
    assert_eq!(cold_lines, sel_lines);
    if args.spin > 0 {
        eprintln!(
            "repeating the selective query for {} s: attach with `perf record -g -p {}`",
            args.spin,
            std::process::id()
        );
        let until = Instant::now() + Duration::from_secs(args.spin);
        let mut runs = 0u64;
        while Instant::now() < until {
            log_lines(&store, end);
            runs += 1;
        }
        eprintln!("{runs} runs");
    }
    let (count_t, count_sum) = timed(QUERY_RUNS, || error_count(&store, last_ts));
    // Queries on partitions of tantivy line terms write term layouts beside the segments.
    let disk_with_terms = dir_bytes(&store_dir);
    // A restart maps the line index files (or the layouts written before).
    drop(store);
    store = LogStore::open(&store_dir).unwrap();
    let started = Instant::now();
    assert_eq!(log_lines(&store, end), sel_lines);
    let sel_restarted = started.elapsed();
    let ns_dir = raw.join(SELECTED);
    let (grep_ns_t, out) = grep(&["-rhF", NEEDLE], &ns_dir, GREP_RUNS);
    let grep_ns_lines = out.lines().count();
    let (grep_all_t, out) = grep(&["-rhF", NEEDLE], &raw, GREP_RUNS);
    let grep_all_lines = out.lines().count();
    let sum_counts = |out: &str| -> u64 {
        out.lines()
            .map(|l| l.rsplit(':').next().unwrap().parse::<u64>().unwrap())
            .sum()
    };
    let (grepc_ns_t, out) = grep(&["-rcF", "error"], &ns_dir, GREP_RUNS);
    let grepc_ns = sum_counts(&out);
    let (grepc_all_t, out) = grep(&["-rcF", "error"], &raw, GREP_RUNS);
    let grepc_all = sum_counts(&out);
    assert_eq!(
        sel_lines, grep_ns_lines,
        "the selective query disagrees with grep"
    );
    assert_eq!(
        count_sum as u64, grepc_ns,
        "count_over_time disagrees with grep -c"
    );

    // Query latency with and without a steady writer into the newest partition.
    let lat = latency_under_ingest(store, last_ts);

    let ratio = |grep: Duration, vigil: Duration| grep.as_secs_f64() / vigil.as_secs_f64();
    println!(
        "\n## Log store vs grep ({raw_mib:.0} MiB raw, {lines} lines, {} streams)\n",
        streams().len()
    );
    println!("| measure | Vigil | grep | grep / Vigil |");
    println!("|---|---|---|---|");
    println!(
        "| ingest, MiB/s per core (CPU {:.1} s) | {:.1} | | |",
        ingest_cpu.as_secs_f64(),
        raw_mib / ingest_cpu.as_secs_f64()
    );
    println!(
        "| ingest, MiB/s wall ({PUSHERS} pushers, {:.1} s) | {:.1} | | |",
        ingest_wall.as_secs_f64(),
        raw_mib / ingest_wall.as_secs_f64()
    );
    println!(
        "| `{}` ({sel_lines} lines) vs `grep -rF` on raw/{SELECTED} | {} | {} | {:.1}x |",
        selective_query(),
        ms(sel_t),
        ms(grep_ns_t),
        ratio(grep_ns_t, sel_t)
    );
    println!(
        "| same, first run after open (opens the segments' line indexes) | {} | {} | {:.1}x |",
        ms(sel_cold),
        ms(grep_ns_t),
        ratio(grep_ns_t, sel_cold)
    );
    println!(
        "| same, first run after a restart | {} | {} | {:.1}x |",
        ms(sel_restarted),
        ms(grep_ns_t),
        ratio(grep_ns_t, sel_restarted)
    );
    println!(
        "| same, vs `grep -rF` on all of raw/ ({grep_all_lines} lines) | {} | {} | {:.1}x |",
        ms(sel_t),
        ms(grep_all_t),
        ratio(grep_all_t, sel_t)
    );
    println!(
        "| `{}` at 5m steps (sum {count_sum}) vs `grep -rcF error` on raw/{SELECTED} | {} | {} | {:.1}x |",
        count_query(),
        ms(count_t),
        ms(grepc_ns_t),
        ratio(grepc_ns_t, count_t)
    );
    println!(
        "| same, vs `grep -rcF error` on all of raw/ ({grepc_all}) | {} | {} | {:.1}x |",
        ms(count_t),
        ms(grepc_all_t),
        ratio(grepc_all_t, count_t)
    );
    println!(
        "| disk bytes per raw byte ({:.0} MiB on disk) | {:.3} | | |",
        disk as f64 / (1 << 20) as f64,
        disk as f64 / raw_bytes as f64
    );
    println!(
        "| same, after the queries (term layouts they wrote, on layouts 2–3) ({:.0} MiB) | {:.3} | | |",
        disk_with_terms as f64 / (1 << 20) as f64,
        disk_with_terms as f64 / raw_bytes as f64
    );
    let row = |what: &str, v: &[Duration]| {
        println!(
            "| {what} | {} / {} / {} | | |",
            ms(median(v.to_vec())),
            ms(percentile(v.to_vec(), 0.9)),
            ms(percentile(v.to_vec(), 1.0))
        );
    };
    row(
        "selective query over the last hour, median / p90 / max, no ingest",
        &lat.idle,
    );
    row(
        &format!(
            "same, while 100 lines are pushed every 10 ms ({} pushes in all)",
            lat.pushes
        ),
        &lat.busy,
    );
    row(
        "same under ingest, committing before each query (the former read-your-writes path)",
        &lat.committing,
    );
    if args.keep {
        let kept = tmp.keep();
        println!("\ndata kept in {}", kept.display());
    }
}

/// Latencies of the selective query over the last hour (the newest partition): 30 runs with no
/// ingest, then 30 while a writer pushes 100 lines every 10 ms at ever newer timestamps. Also
/// checks read-your-writes on the way: the writer's needle lines must be seen.
fn latency_under_ingest(store: LogStore, last_ts: i64) -> Latencies {
    const RUNS: usize = 30;
    let store = Arc::new(store);
    let from = last_ts - 3_600_000_000_000;
    let horizon = last_ts + 3_600_000_000_000;
    let query = selective_query();
    let run = |store: &LogStore| {
        let started = Instant::now();
        let n: usize = store
            .query_range(&query, from, horizon, LIMIT, Direction::Backward)
            .unwrap()
            .iter()
            .map(|s| s.entries.len())
            .sum();
        (started.elapsed(), n)
    };
    let base = run(&store).1;
    let idle: Vec<Duration> = (0..RUNS)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(20));
            run(&store).0
        })
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (store, stop) = (store.clone(), stop.clone());
        std::thread::spawn(move || {
            let labels = streams().remove(0).labels;
            let (mut ts, mut pushes) = (last_ts, 0u64);
            while !stop.load(Ordering::Relaxed) {
                let entries = (0..100)
                    .map(|i| {
                        ts += 1000;
                        let line = if i == 0 {
                            format!("{{\"level\":\"info\",\"msg\":\"live\",\"trace_id\":\"{NEEDLE}\",\"n\":{pushes}}}")
                        } else {
                            format!("{{\"level\":\"info\",\"msg\":\"live line {i}\",\"n\":{pushes}}}")
                        };
                        LogEntry {
                            ts_ns: ts,
                            line,
                            metadata: Vec::new(),
                        }
                    })
                    .collect();
                store
                    .push(&[LogStream {
                        labels: labels.clone(),
                        entries,
                    }])
                    .unwrap();
                pushes += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            pushes
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    let mut busy = Vec::new();
    let mut seen = 0;
    for _ in 0..RUNS {
        std::thread::sleep(Duration::from_millis(20));
        let (t, n) = run(&store);
        assert!(n >= seen, "a query lost lines an earlier one saw");
        seen = n;
        busy.push(t);
    }
    // The path queries took before pending entries were searched in memory: commit what is
    // pending, then search (a checkpoint also seals the WAL segment, which costs little).
    let mut committing = Vec::new();
    for _ in 0..RUNS {
        std::thread::sleep(Duration::from_millis(20));
        let started = Instant::now();
        store.checkpoint().unwrap();
        let n = run(&store).1;
        committing.push(started.elapsed());
        assert!(n >= seen, "a query lost lines an earlier one saw");
        seen = n;
    }
    stop.store(true, Ordering::Relaxed);
    let pushes = writer.join().unwrap();
    assert_eq!(
        run(&store).1 as u64,
        base as u64 + pushes,
        "every acknowledged needle line is visible"
    );
    Latencies {
        idle,
        busy,
        committing,
        pushes,
    }
}

/// Selective-query latencies: with no ingest, under ingest, and under ingest with a commit
/// before each query.
struct Latencies {
    idle: Vec<Duration>,
    busy: Vec<Duration>,
    committing: Vec<Duration>,
    pushes: u64,
}
