//! `vigil-bench`: benchmarks that run Vigil beside the real peer it replaces, on the same
//! input in one run, and print Vigil/peer ratios. Each subcommand is one benchmark named in
//! the README.
//!
//! - `tsdb`: ingest CPU, memory per series, bytes per sample on disk, WAL replay and query
//!   latency against Prometheus 2.42 (issue 3).
//! - `promql`: range and instant query latency against Prometheus 2.42, answers compared
//!   (issue 4).
//! - `alerting`: remote write → Slack POST latency against Prometheus 2.42 + Alertmanager
//!   0.25 (issue 9).
//! - `footprint`: the agent's memory and CPU against Prometheus 2.42 in agent mode +
//!   node_exporter 1.5 (issue 6).
//! - `logs`: log ingest MiB/s per core of a server receiving Loki pushes over HTTP (issue 8).
//!
//! Shared parts: [`gen`] (the data), [`server`] (the processes), [`procfs`] (what they
//! used), [`http`] and [`ingest`] (remote write), [`queries`] (the query set, timing and
//! answer comparison), [`blocks`] (on-disk size), [`report`] (tables).

// The benchmark's product is the table it prints.
#![allow(clippy::print_stdout)]

mod alerting;
mod blocks;
mod footprint;
mod gen;
mod http;
mod ingest;
mod logs_bench;
mod procfs;
mod promql_bench;
mod queries;
mod report;
mod server;
mod setup;
mod tsdb_bench;

use clap::Parser;

/// Vigil's same-run benchmarks against the peers it replaces.
#[derive(Debug, Parser)]
#[command(name = "vigil-bench")]
enum Bench {
    /// Storage: CPU per sample, memory per series, bytes per sample in blocks, WAL replay
    /// after kill -9 and query latency, Vigil against Prometheus 2.42 on the same stream.
    Tsdb(tsdb_bench::TsdbArgs),
    /// Query engine: range and instant query latency, Vigil against Prometheus 2.42 on the
    /// same data, with the answers compared.
    Promql(promql_bench::PromqlArgs),
    /// Alerting: latency from the remote write that makes an alert true to the Slack POST,
    /// Vigil against Prometheus 2.42 + Alertmanager 0.25 in the same run.
    Alerting(alerting::AlertingArgs),
    /// Agent footprint: resident memory and CPU per hour of the Vigil agent against
    /// Prometheus 2.42 in agent mode + node_exporter 1.5, collecting the same node, 200 container
    /// cgroups and 10 scrape targets at 15 s, with the samples each delivered.
    Footprint(footprint::FootprintArgs),
    /// Log ingest: raw MiB/s per server core of generated container logs pushed to the Loki
    /// push API (protobuf + snappy, or JSON), every line counted back by a query.
    Logs(logs_bench::LogsArgs),
}

fn main() -> anyhow::Result<()> {
    let bench = Bench::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let command: Vec<String> = std::env::args().collect();
    let report = runtime.block_on(async {
        match bench {
            Bench::Tsdb(args) => tsdb_bench::run(args).await,
            Bench::Promql(args) => promql_bench::run(args).await,
            Bench::Alerting(args) => alerting::run(args).await,
            Bench::Footprint(args) => footprint::run(args).await,
            Bench::Logs(args) => logs_bench::run(args).await,
        }
    })?;
    println!("$ {}\n\n{report}", command.join(" "));
    Ok(())
}
