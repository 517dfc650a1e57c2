//! `vigil-bench promql`: the same data in Vigil and Prometheus, then the query set as range
//! queries over the last hour (15 s and 60 s steps) and as instant queries, timed on both;
//! per-query ratios, the geometric mean Vigil/Prometheus, and every answer that differs.

use crate::gen::Spec;
use crate::http::Client;
use crate::queries::{eval_time, geometric_mean, time_query, Query, Timed};
use crate::report::{num, Table};
use crate::setup::{now_ms, Common};
use clap::Args;
use std::time::Duration;

#[derive(Debug, Clone, Args)]
pub struct PromqlArgs {
    /// Series to generate.
    #[arg(long, default_value_t = 10_000)]
    pub series: usize,

    /// Hours of data, ending now (at least 1.25: the range queries cover the last hour with
    /// windows up to 15 minutes).
    #[arg(long, default_value_t = 3.0)]
    pub hours: f64,

    /// Scrape interval of the generated data.
    #[arg(long, default_value = "15s", value_parser = model::parse_duration)]
    pub interval: Duration,

    /// Timed runs of each query per server, after one warm-up; the median is kept.
    #[arg(long, default_value_t = 5)]
    pub runs: usize,

    /// A quick run: 1,000 series, 1.5 hours, 2 runs per query (overrides those flags).
    #[arg(long)]
    pub quick: bool,

    #[command(flatten)]
    pub common: Common,
}

/// Runs the benchmark and returns its report.
pub async fn run(mut args: PromqlArgs) -> anyhow::Result<String> {
    if args.quick {
        (args.series, args.hours, args.runs) = (1_000, 1.5, 2);
    }
    anyhow::ensure!(args.hours >= 1.25, "--hours must be at least 1.25");
    let interval_ms = args.interval.as_millis() as i64;
    anyhow::ensure!(interval_ms >= 1000, "--interval must be at least 1s");
    let scrapes = (args.hours * 3_600_000.0 / interval_ms as f64) as usize;
    let spec = Spec {
        series: args.series,
        start_ms: now_ms() - scrapes as i64 * interval_ms,
        interval_ms,
        scrapes,
        seed: args.common.seed,
    };
    let pair = args.common.start_pair().await?;
    let client = Client::new()?;
    let bases = [pair.vigil.base(), pair.prometheus.base()];
    eprintln!(
        "ingesting {} samples of {} series into both servers",
        spec.samples(),
        spec.series
    );
    crate::ingest::ingest(&client, spec, &bases, args.common.ingest_options()).await?;

    let at = eval_time(spec.end_ms());
    let mut timed: Vec<Timed> = Vec::new();
    for q in Query::all() {
        eprintln!("  {} {}", q.kind(), q.expr);
        timed.push(time_query(&client, &bases[0], &bases[1], &q, at, args.runs).await?);
    }
    Ok(render(&args, spec, &timed))
}

fn render(args: &PromqlArgs, spec: Spec, timed: &[Timed]) -> String {
    let mut table = Table::new(&[
        "query",
        "kind",
        "Vigil ms",
        "Prometheus ms",
        "ratio",
        "series",
        "answers",
    ]);
    for t in timed {
        table.row(vec![
            format!("`{}`", t.query.expr),
            t.query.kind(),
            num(t.vigil.as_secs_f64() * 1e3),
            num(t.prometheus.as_secs_f64() * 1e3),
            num(t.ratio()),
            t.series.to_string(),
            if t.mismatch.is_some() {
                "DIFFER"
            } else {
                "match"
            }
            .to_string(),
        ]);
    }
    let geomean = geometric_mean(timed.iter().map(Timed::ratio));
    let mismatches: Vec<&Timed> = timed.iter().filter(|t| t.mismatch.is_some()).collect();
    let mut text = format!(
        "PromQL: {} series, {} h at {} s ({} samples), median of {} runs after a warm-up\n\n",
        spec.series,
        args.hours,
        spec.interval_ms / 1000,
        spec.samples(),
        args.runs
    );
    text.push_str(&table.render());
    text.push_str(&format!(
        "\ngeometric mean of ratios Vigil/Prometheus over {} queries: {} (target ≤ 0.5)\n",
        timed.len(),
        num(geomean)
    ));
    text.push_str(&format!(
        "answers: {} of {} match\n",
        timed.len() - mismatches.len(),
        timed.len()
    ));
    for t in &mismatches {
        if let Some(m) = &t.mismatch {
            text.push_str(&format!(
                "  DIFFER {} {}: {m}\n",
                t.query.kind(),
                t.query.expr
            ));
        }
    }
    text
}
