//! `vigil-bench tsdb`: the same remote-write stream into Vigil and Prometheus, then per
//! server: CPU per ingested sample, resident memory per active series, bytes per sample in
//! persisted blocks, the query set's latency, and WAL replay time after `kill -9`.

use crate::blocks::{self, Blocks};
use crate::gen::Spec;
use crate::http::Client;
use crate::ingest::{ingest, Ingested};
use crate::procfs::{cpu_seconds, rss_bytes};
use crate::queries::{eval_time, geometric_mean, time_query, Query, Timed};
use crate::report::{num, ratio, Table};
use crate::server::Server;
use crate::setup::{now_ms, Common};
use clap::Args;
use std::time::{Duration, Instant};

/// Prometheus's block range, to which blocks are aligned (2 h).
const BLOCK_MS: i64 = 2 * 3_600_000;
/// Prometheus cuts a block once the head spans 1.5 block ranges.
const HEAD_SPAN_FOR_BLOCK_MS: i64 = 3 * BLOCK_MS / 2;
/// Longest the benchmark waits for the first block after ingest.
const BLOCK_WAIT: Duration = Duration::from_secs(300);
/// Once Prometheus has cut its block, how much longer Vigil gets to cut its own.
const VIGIL_BLOCK_GRACE: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Args)]
pub struct TsdbArgs {
    /// Series to generate.
    #[arg(long, default_value_t = 20_000)]
    pub series: usize,

    /// Hours of data; above 3 Prometheus cuts a 2 h block.
    #[arg(long, default_value_t = 3.5)]
    pub hours: f64,

    /// Scrape interval of the generated data.
    #[arg(long, default_value = "15s", value_parser = model::parse_duration)]
    pub interval: Duration,

    /// Timed runs of each query per server, after one warm-up; the median is kept.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,

    /// Ingest into Vigil first and then into Prometheus, instead of both at once.
    #[arg(long)]
    pub sequential: bool,

    /// A quick run: 2,000 series and one run per query (overrides those flags).
    #[arg(long)]
    pub quick: bool,

    #[command(flatten)]
    pub common: Common,
}

/// One server's figures.
#[derive(Debug, Default)]
struct Figures {
    cpu_per_sample_us: f64,
    rss_per_series: f64,
    blocks: Blocks,
    replay: Duration,
    ingest_wall: Duration,
}

/// Runs the benchmark and returns its report.
pub async fn run(mut args: TsdbArgs) -> anyhow::Result<String> {
    if args.quick {
        (args.series, args.runs) = (2_000, 1);
    }
    let interval_ms = args.interval.as_millis() as i64;
    anyhow::ensure!(interval_ms >= 1000, "--interval must be at least 1s");
    anyhow::ensure!(args.hours >= 1.25, "--hours must be at least 1.25");
    let span_ms = (args.hours * 3_600_000.0) as i64;
    let scrapes = (span_ms / interval_ms) as usize;
    // The data starts just after a block boundary and ends at most one block range before
    // now, so the block Prometheus cuts holds two full hours rather than a sliver: bytes per
    // sample is then a figure of the encoding, not of where "now" fell.
    let start_ms = (now_ms() - span_ms).div_euclid(BLOCK_MS) * BLOCK_MS;
    let spec = Spec {
        series: args.series,
        start_ms,
        interval_ms,
        scrapes,
        seed: args.common.seed,
    };
    let mut pair = args.common.start_pair().await?;
    let client = Client::new()?;
    // Let both settle after startup before the idle baseline.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = [
        rss_bytes(pair.vigil.pid())?,
        rss_bytes(pair.prometheus.pid())?,
    ];

    eprintln!(
        "ingesting {} samples of {} series ({})",
        spec.samples(),
        spec.series,
        if args.sequential {
            "Vigil, then Prometheus"
        } else {
            "both servers at once"
        }
    );
    let opts = args.common.ingest_options();
    let servers = [&pair.vigil, &pair.prometheus];
    let mut figures = [Figures::default(), Figures::default()];
    let batches: Vec<Vec<usize>> = if args.sequential {
        vec![vec![0], vec![1]]
    } else {
        vec![vec![0, 1]]
    };
    let mut sent: Option<Ingested> = None;
    for batch in batches {
        let before: Vec<f64> = batch
            .iter()
            .map(|&i| cpu_seconds(servers[i].pid()))
            .collect::<Result<_, _>>()?;
        let bases: Vec<String> = batch.iter().map(|&i| servers[i].base()).collect();
        let done = ingest(&client, spec, &bases, opts).await?;
        for (k, &i) in batch.iter().enumerate() {
            let cpu = cpu_seconds(servers[i].pid())? - before[k];
            figures[i].cpu_per_sample_us = cpu * 1e6 / done.samples as f64;
            figures[i].ingest_wall = done.wall;
        }
        sent = Some(done);
    }
    let sent = sent.ok_or_else(|| anyhow::anyhow!("nothing was ingested"))?;

    let head_span = spec.end_ms() - spec.start_ms;
    if head_span > HEAD_SPAN_FOR_BLOCK_MS {
        eprintln!("waiting for blocks");
        let found = wait_for_blocks(&pair.vigil, &pair.prometheus).await?;
        figures[0].blocks = found[0];
        figures[1].blocks = found[1];
    }
    for (i, s) in [&pair.vigil, &pair.prometheus].into_iter().enumerate() {
        let rss = rss_bytes(s.pid())?;
        figures[i].rss_per_series = (rss as f64 - idle[i] as f64) / spec.series as f64;
    }

    eprintln!("timing queries");
    let at = eval_time(spec.end_ms());
    let mut timed: Vec<Timed> = Vec::new();
    let (vb, pb) = (pair.vigil.base(), pair.prometheus.base());
    for q in Query::all() {
        timed.push(time_query(&client, &vb, &pb, &q, at, args.runs).await?);
    }

    eprintln!("kill -9 and restart: Vigil");
    figures[0].replay = pair.vigil.kill9_and_restart().await?;
    eprintln!("kill -9 and restart: Prometheus");
    figures[1].replay = pair.prometheus.kill9_and_restart().await?;

    Ok(render(&args, spec, sent, &figures, &timed))
}

/// Polls both TSDB directories until each holds a block, or Prometheus has had one for
/// [`VIGIL_BLOCK_GRACE`], or [`BLOCK_WAIT`] passed.
async fn wait_for_blocks(vigil: &Server, prometheus: &Server) -> anyhow::Result<[Blocks; 2]> {
    let started = Instant::now();
    let mut prometheus_done: Option<Instant> = None;
    loop {
        let v = blocks::scan(&vigil.tsdb_dir())?;
        let p = blocks::scan(&prometheus.tsdb_dir())?;
        if p.count > 0 && prometheus_done.is_none() {
            prometheus_done = Some(Instant::now());
        }
        let grace_over = prometheus_done.is_some_and(|t| t.elapsed() > VIGIL_BLOCK_GRACE);
        if (v.count > 0 && p.count > 0) || grace_over || started.elapsed() > BLOCK_WAIT {
            return Ok([v, p]);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn render(
    args: &TsdbArgs,
    spec: Spec,
    sent: Ingested,
    f: &[Figures; 2],
    timed: &[Timed],
) -> String {
    let mut t = Table::new(&["metric", "Vigil", "Prometheus", "ratio", "target"]);
    let both = |get: &dyn Fn(&Figures) -> f64| (get(&f[0]), get(&f[1]));
    let mut row = |name: &str, (v, p): (f64, f64), target: &str| {
        t.row(vec![
            name.to_string(),
            num(v),
            num(p),
            ratio(Some(v), Some(p)),
            target.to_string(),
        ]);
    };
    row(
        "CPU per ingested sample (µs)",
        both(&|x| x.cpu_per_sample_us),
        "≤ 0.5",
    );
    row(
        "RSS above idle per active series (bytes)",
        both(&|x| x.rss_per_series),
        "≤ 0.33",
    );
    let bps = [
        f[0].blocks.bytes_per_sample(),
        f[1].blocks.bytes_per_sample(),
    ];
    let cell = |b: Option<f64>| b.map_or_else(|| "n/a: no blocks".to_string(), num);
    t.row(vec![
        "bytes per sample in blocks".to_string(),
        cell(bps[0]),
        cell(bps[1]),
        ratio(bps[0], bps[1]),
        "≤ 0.5".to_string(),
    ]);
    t.row(vec![
        "samples in blocks".to_string(),
        f[0].blocks.samples.to_string(),
        f[1].blocks.samples.to_string(),
        String::new(),
        String::new(),
    ]);
    let replay = both(&|x| x.replay.as_secs_f64());
    t.row(vec![
        "WAL replay after kill -9 until /-/ready (s)".to_string(),
        num(replay.0),
        num(replay.1),
        ratio(Some(replay.0), Some(replay.1)),
        "≤ 0.5".to_string(),
    ]);
    let v_ms = geometric_mean(timed.iter().map(|q| q.vigil.as_secs_f64() * 1e3));
    let p_ms = geometric_mean(timed.iter().map(|q| q.prometheus.as_secs_f64() * 1e3));
    t.row(vec![
        format!("query latency, geomean of {} medians (ms)", timed.len()),
        num(v_ms),
        num(p_ms),
        num(geometric_mean(timed.iter().map(Timed::ratio))),
        "≤ 0.5".to_string(),
    ]);
    t.row(vec![
        "ingest wall time (s)".to_string(),
        num(f[0].ingest_wall.as_secs_f64()),
        num(f[1].ingest_wall.as_secs_f64()),
        String::new(),
        String::new(),
    ]);
    let mut text = format!(
        "TSDB: {} series, {} h at {} s: {} samples in {} remote-write requests per server ({})\n\n",
        spec.series,
        args.hours,
        spec.interval_ms / 1000,
        sent.samples,
        sent.requests,
        if args.sequential {
            "one server after the other"
        } else {
            "both servers at once"
        }
    );
    text.push_str(&t.render());
    let differ: Vec<&Timed> = timed.iter().filter(|q| q.mismatch.is_some()).collect();
    text.push_str(&format!(
        "\nquery answers: {} of {} match\n",
        timed.len() - differ.len(),
        timed.len()
    ));
    for q in differ {
        if let Some(m) = &q.mismatch {
            text.push_str(&format!(
                "  DIFFER {} {}: {m}\n",
                q.query.kind(),
                q.query.expr
            ));
        }
    }
    text
}
