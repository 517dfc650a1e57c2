//! `vigil-bench footprint`: what the node agent costs, against what it replaces, in one run
//! (issue 6). On 127.0.0.1 only:
//!
//! - the Vigil agent (`vigil agent`) collects node metrics from the real /proc and /sys, the
//!   containers of a fake cgroup v2 tree (`cgroups.rs`; pod names from a fake API server's
//!   pod list; one idle `sleep` process per container, counted on neither side), and scrapes the benchmark's app targets (`targets.rs`), every 15 s;
//! - the pair, Prometheus 2.42 in agent mode and node_exporter 1.5, scrapes the same app
//!   targets, node_exporter, and a `/metrics/cadvisor` target replaying the container series
//!   the Vigil agent shipped (Prometheus reads no cgroups; on a real node the kubelet serves
//!   them, and its cost is counted on neither side);
//! - both remote-write to one counting sink (`sink.rs`), which answers 204.
//!
//! From 20 s after every process is ready, the window runs for `--minutes`: CPU is utime+stime over
//! the window scaled to one hour, memory is VmRSS at its end and VmHWM (peak), the pair's
//! figures are Prometheus's plus node_exporter's, and samples per minute are those stamped
//! inside the window that reached the sink, so neither side wins by collecting less.

mod cgroups;
mod loopback;
mod sink;
mod targets;

use crate::procfs::cpu_seconds;
use crate::report::{num, ratio, Table};
use crate::setup::{now_ms, Common};
use anyhow::{bail, Context};
use clap::Args;
use loopback::{Handler, Request, Response};
use sink::{Sink, Stack};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// Where Debian's `prometheus-node-exporter` package installs node_exporter 1.5.
pub const NODE_EXPORTER: &str = "/usr/bin/prometheus-node-exporter";
/// Collection and scrape interval on both sides.
const INTERVAL: Duration = Duration::from_secs(15);
/// The agent's node name (`instance` of its node and container metrics).
const NODE_NAME: &str = "bench-node";
/// Longest a process may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest the benchmark waits for the agent's first container collection with pod names.
const CAPTURE_TIMEOUT: Duration = Duration::from_secs(90);
/// Time from the last process being ready to the window's start: Prometheus scrapes a
/// target first at a hashed offset up to one interval after start, and the window should
/// hold whole intervals of every target on both sides.
const WARMUP: Duration = Duration::from_secs(20);
/// A container collection has reached the sink whole once its requests stopped for this
/// long (the agent ships one collection in several requests within a second or two).
const COLLECTION_QUIET: Duration = Duration::from_secs(5);
/// How long after the window the sink keeps counting late deliveries of in-window samples.
const DELIVERY_GRACE: Duration = Duration::from_secs(30);
const MIB: f64 = 1024.0 * 1024.0;

#[derive(Debug, Clone, Args)]
pub struct FootprintArgs {
    /// Minutes measured once everything is running.
    #[arg(long, default_value_t = 5.0)]
    pub minutes: f64,

    /// A quick run: one minute (overrides --minutes).
    #[arg(long)]
    pub quick: bool,

    /// App targets scraped by both sides (about 200 series each).
    #[arg(long, default_value_t = 10)]
    pub targets: usize,

    /// Pods in the fake cgroup tree, two container cgroups each (the app and its sandbox).
    #[arg(long, default_value_t = 100)]
    pub pods: usize,

    /// The vigil binary. Default: target/release/vigil of this workspace (or of
    /// $CARGO_TARGET_DIR).
    #[arg(long)]
    pub vigil: Option<PathBuf>,

    /// Prometheus 2.42, run with --enable-feature=agent.
    #[arg(long, default_value = crate::server::PROMETHEUS)]
    pub prometheus: PathBuf,

    /// node_exporter 1.5.
    #[arg(long = "node-exporter", default_value = NODE_EXPORTER)]
    pub node_exporter: PathBuf,

    /// Directory under which the run's files are created (and removed after it).
    #[arg(long = "work-dir", default_value_os_t = std::env::temp_dir())]
    pub work_dir: PathBuf,

    /// Seed of the fake pods and cgroup sizes.
    #[arg(long, default_value_t = crate::gen::DEFAULT_SEED)]
    pub seed: u64,
}

/// A measured process, killed on drop, its output in a log file.
#[derive(Debug)]
struct Proc {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    fn spawn(name: &'static str, bin: &Path, args: &[String], dir: &Path) -> anyhow::Result<Proc> {
        if !bin.is_file() {
            bail!(
                "{} not found: install it or pass its flag (see --help)",
                bin.display()
            );
        }
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log)?;
        let child = Command::new(bin)
            .args(args)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("start {}", bin.display()))?;
        Ok(Proc { name, child, log })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn failure(&mut self, what: &str) -> anyhow::Error {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        anyhow::anyhow!(
            "{} {what}; log tail:\n{}",
            self.name,
            lines[lines.len().saturating_sub(20)..].join("\n")
        )
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Polls `url` until it answers 2xx.
    async fn wait_ready(&mut self, url: &str) -> anyhow::Result<()> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(r) = client.get(url).send().await {
                if r.status().is_success() {
                    return Ok(());
                }
            }
            if !self.alive() || Instant::now() > deadline {
                return Err(self.failure("did not become ready"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// CPU and memory of one process over the window.
#[derive(Debug, Clone, Copy, Default)]
struct Usage {
    cpu_per_hour: f64,
    rss: f64,
    hwm: f64,
}

impl std::ops::Add for Usage {
    type Output = Usage;
    fn add(self, o: Usage) -> Usage {
        Usage {
            cpu_per_hour: self.cpu_per_hour + o.cpu_per_hour,
            rss: self.rss + o.rss,
            hwm: self.hwm + o.hwm,
        }
    }
}

/// A `kB` field of `/proc/<pid>/status` (`VmRSS`, `VmHWM`) in bytes.
fn status_bytes(pid: u32, field: &str) -> anyhow::Result<f64> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
    parse_status_kb(&text, field).with_context(|| format!("{field} in {path}"))
}

fn parse_status_kb(status: &str, field: &str) -> anyhow::Result<f64> {
    let value = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .context("no such line")?;
    let kb: u64 = value.trim().trim_end_matches("kB").trim().parse()?;
    Ok(kb as f64 * 1024.0)
}

fn free_addr() -> anyhow::Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// The `scrape_configs` entry both sides share: the app targets.
fn app_job(targets: &[SocketAddr]) -> String {
    let list: Vec<String> = targets.iter().map(|a| format!("'{a}'")).collect();
    format!(
        "  - job_name: app\n    static_configs:\n      - targets: [{}]\n",
        list.join(", ")
    )
}

/// Serves target `i`'s exposition, counting its scrapes.
fn app_handler(i: usize, started: Instant) -> Handler {
    let scrapes = AtomicU64::new(0);
    Arc::new(move |req: Request| match req.path() {
        "/metrics" => {
            let n = scrapes.fetch_add(1, Ordering::Relaxed);
            let text = targets::app_exposition(i, started.elapsed().as_secs_f64(), n);
            Response::ok("text/plain; version=0.0.4", text.into_bytes())
        }
        _ => Response::status(404),
    })
}

/// The fake API server: this node's pod list, and watches on which nothing happens.
fn api_handler(pod_list: Vec<u8>) -> Handler {
    Arc::new(move |req: Request| {
        if req.path() != "/api/v1/pods" {
            return Response::status(404);
        }
        if req.query("watch") == Some("1") {
            let secs = req
                .query("timeoutSeconds")
                .and_then(|s| s.parse().ok())
                .unwrap_or(300);
            return Response::Hold(Duration::from_secs(secs));
        }
        Response::ok("application/json", pod_list.clone())
    })
}

/// The replayed `/metrics/cadvisor`; 503 until the replay is captured.
fn cadvisor_handler(replay: Arc<RwLock<Option<targets::Replay>>>) -> Handler {
    let scrapes = AtomicU64::new(0);
    Arc::new(move |req: Request| {
        if req.path() != "/metrics/cadvisor" {
            return Response::status(404);
        }
        let guard = replay.read().unwrap_or_else(|p| p.into_inner());
        match guard.as_ref() {
            Some(r) => {
                let n = scrapes.fetch_add(1, Ordering::Relaxed);
                Response::ok("text/plain; version=0.0.4", r.render(n).into_bytes())
            }
            None => Response::status(503),
        }
    })
}

/// Runs the benchmark and returns its report.
pub async fn run(mut args: FootprintArgs) -> anyhow::Result<String> {
    if args.quick {
        args.minutes = 1.0;
    }
    anyhow::ensure!(args.minutes > 0.0, "--minutes must be positive");
    anyhow::ensure!(args.targets > 0, "--targets must be at least 1");
    let vigil_bin = Common {
        vigil: args.vigil.clone(),
        prometheus: args.prometheus.clone(),
        work_dir: args.work_dir.clone(),
        seed: args.seed,
        concurrency: 1,
        batch: 1,
        window: 1,
    }
    .vigil_bin()?;
    let root = tempfile::Builder::new()
        .prefix("vigil-bench-footprint-")
        .tempdir_in(&args.work_dir)
        .with_context(|| format!("temp dir in {}", args.work_dir.display()))?;
    let dir = root.path();
    eprintln!("files under {}", dir.display());

    // The node, its pods and the API server that lists them.
    let node = cgroups::Node::create(dir, NODE_NAME, args.pods, args.seed)?;
    let containers = node.containers();
    let api = loopback::spawn(
        "api-server",
        api_handler(serde_json::to_vec(&node.pod_list)?),
    )
    .await?;
    let sysfs = node.sysfs.clone();
    let node = Arc::new(Mutex::new(node));
    let ticker = {
        let node = node.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(INTERVAL);
            tick.tick().await;
            loop {
                tick.tick().await;
                let node = node.clone();
                let moved = tokio::task::spawn_blocking(move || {
                    node.lock().unwrap_or_else(|p| p.into_inner()).tick()
                })
                .await;
                if let Ok(Err(e)) = moved {
                    eprintln!("cgroup tick: {e:#}");
                }
            }
        })
    };

    // The sink and the targets.
    let sink = Sink::capturing(COLLECTION_QUIET);
    let sink_addr = {
        let sink = sink.clone();
        loopback::spawn("sink", Arc::new(move |r: Request| sink.handle(r))).await?
    };
    let started = Instant::now();
    let mut app_targets = Vec::with_capacity(args.targets);
    for i in 0..args.targets {
        app_targets.push(loopback::spawn("target", app_handler(i, started)).await?);
    }
    let replay: Arc<RwLock<Option<targets::Replay>>> = Arc::default();
    let cadvisor = loopback::spawn("cadvisor", cadvisor_handler(replay.clone())).await?;

    // Vigil first: its container series are what the pair's cAdvisor target replays.
    std::fs::write(
        dir.join("vigil.yml"),
        format!(
            "global:\n  scrape_interval: 15s\nscrape_configs:\n{}",
            app_job(&app_targets)
        ),
    )?;
    std::fs::create_dir_all(dir.join("pod-logs"))?;
    let vigil_addr = free_addr()?;
    let mut vigil = Proc::spawn(
        "vigil",
        &vigil_bin,
        &[
            "agent".into(),
            format!("--web.listen-address={vigil_addr}"),
            format!(
                "--remote-write.url=http://{sink_addr}{}/api/v1/write",
                Stack::Vigil.prefix()
            ),
            format!(
                "--logs.push-url=http://{sink_addr}{}/loki/api/v1/push",
                Stack::Vigil.prefix()
            ),
            "--targets.push-url=".into(),
            format!("--config.file={}", dir.join("vigil.yml").display()),
            format!("--path.sysfs={}", sysfs.display()),
            format!("--kubernetes.api-server=http://{api}"),
            format!("--node-name={NODE_NAME}"),
            format!("--state.path={}", dir.join("vigil-state").display()),
            format!("--logs.path={}", dir.join("pod-logs").display()),
            "--metrics.interval=15s".into(),
        ],
        dir,
    )?;
    vigil
        .wait_ready(&format!("http://{vigil_addr}/-/ready"))
        .await?;
    let deadline = Instant::now() + CAPTURE_TIMEOUT;
    let captured = loop {
        if let Some(r) = sink.take_replay() {
            break r;
        }
        if !vigil.alive() {
            return Err(vigil.failure("exited"));
        }
        if Instant::now() > deadline {
            return Err(vigil.failure("shipped no container metrics with pod names"));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let replayed = captured.series();
    *replay.write().unwrap_or_else(|p| p.into_inner()) = Some(captured);
    eprintln!("replaying {replayed} container series for Prometheus");

    // The pair.
    let exporter_addr = free_addr()?;
    let mut exporter = Proc::spawn(
        "node_exporter",
        &args.node_exporter,
        &[format!("--web.listen-address={exporter_addr}")],
        dir,
    )?;
    exporter
        .wait_ready(&format!("http://{exporter_addr}/metrics"))
        .await?;
    std::fs::write(
        dir.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 15s\nscrape_configs:\n{}  - job_name: node\n    static_configs:\n      - targets: ['{exporter_addr}']\n  - job_name: kubelet\n    metrics_path: /metrics/cadvisor\n    static_configs:\n      - targets: ['{cadvisor}']\n    relabel_configs:\n      - target_label: instance\n        replacement: {NODE_NAME}\n      - source_labels: [__metrics_path__]\n        target_label: metrics_path\nremote_write:\n  - url: http://{sink_addr}{}/api/v1/write\n",
            app_job(&app_targets),
            Stack::Pair.prefix()
        ),
    )?;
    let prom_addr = free_addr()?;
    let mut prometheus = Proc::spawn(
        "prometheus",
        &args.prometheus,
        &[
            "--enable-feature=agent".into(),
            format!("--config.file={}", dir.join("prometheus.yml").display()),
            format!(
                "--storage.agent.path={}",
                dir.join("prometheus-agent").display()
            ),
            format!("--web.listen-address={prom_addr}"),
        ],
        dir,
    )?;
    prometheus
        .wait_ready(&format!("http://{prom_addr}/-/ready"))
        .await?;

    // The window, once every collection and scrape runs at its steady pace.
    eprintln!("warming up for {WARMUP:?}");
    tokio::time::sleep(WARMUP).await;
    let window = Duration::from_secs_f64(args.minutes * 60.0);
    let from_ms = now_ms();
    sink.set_window(from_ms, from_ms + window.as_millis() as i64);
    let t0 = Instant::now();
    let procs = [vigil.pid(), prometheus.pid(), exporter.pid()];
    let cpu0: Vec<f64> = procs
        .iter()
        .map(|&p| cpu_seconds(p))
        .collect::<Result<_, _>>()?;
    eprintln!("measuring for {} min", args.minutes);
    while t0.elapsed() < window {
        tokio::time::sleep((window - t0.elapsed()).min(Duration::from_secs(30))).await;
        for p in [&mut vigil, &mut prometheus, &mut exporter] {
            if !p.alive() {
                return Err(p.failure("exited during the run"));
            }
        }
        let (v, p) = (sink.tally(Stack::Vigil), sink.tally(Stack::Pair));
        eprintln!(
            "{:>4.0} s: samples delivered so far: Vigil {}, pair {}",
            t0.elapsed().as_secs_f64(),
            v.samples(),
            p.samples()
        );
    }
    let wall = t0.elapsed().as_secs_f64();
    let mut usage = Vec::with_capacity(procs.len());
    for (&pid, before) in procs.iter().zip(&cpu0) {
        usage.push(Usage {
            cpu_per_hour: (cpu_seconds(pid)? - before) / wall * 3600.0,
            rss: status_bytes(pid, "VmRSS")?,
            hwm: status_bytes(pid, "VmHWM")?,
        });
    }
    eprintln!("waiting {DELIVERY_GRACE:?} for in-window samples still in flight");
    tokio::time::sleep(DELIVERY_GRACE).await;
    let tallies = [sink.tally(Stack::Vigil), sink.tally(Stack::Pair)];
    for (stack, t) in [Stack::Vigil, Stack::Pair].iter().zip(&tallies) {
        if t.bad > 0 {
            bail!(
                "{} of {:?}'s {} writes could not be decoded",
                t.bad,
                stack,
                t.requests
            );
        }
    }
    drop((vigil, prometheus, exporter));
    // A tick still writing would race the removal of the tree: stop under the lock, so one
    // in progress finishes first and none starts after.
    ticker.abort();
    node.lock().unwrap_or_else(|p| p.into_inner()).stop();

    let setup = Setup {
        minutes: wall / 60.0,
        targets: args.targets,
        pods: args.pods,
        containers,
        replayed,
    };
    Ok(report(&setup, &usage, &tallies))
}

/// What the run was, for the report's heading.
#[derive(Debug)]
struct Setup {
    minutes: f64,
    targets: usize,
    pods: usize,
    containers: usize,
    replayed: usize,
}

/// The report: the headline against the target, per process, and samples per job.
/// `usage` is Vigil, Prometheus, node_exporter; `tallies` is Vigil, pair.
fn report(s: &Setup, usage: &[Usage], tallies: &[sink::Tally; 2]) -> String {
    let vigil = usage.first().copied().unwrap_or_default();
    let pair = usage.iter().skip(1).fold(Usage::default(), |a, &b| a + b);
    let per_min = |t: &sink::Tally| t.samples() as f64 / s.minutes;
    let mut head = Table::new(&[
        "measure",
        "Vigil agent",
        "Prometheus agent + node_exporter",
        "Vigil/pair",
        "target",
        "met",
    ]);
    let mut row = |name: &str, v: f64, p: f64, target: Option<f64>| {
        let r = if p > 0.0 { v / p } else { f64::NAN };
        head.row(vec![
            name.to_string(),
            num(v),
            num(p),
            ratio(Some(v), Some(p)),
            target.map_or("—".into(), |t| format!("≤ {t}")),
            target.map_or(
                "".into(),
                |t| if r <= t { "yes".into() } else { "no".into() },
            ),
        ]);
    };
    row(
        "resident memory at the end (MiB)",
        vigil.rss / MIB,
        pair.rss / MIB,
        Some(0.5),
    );
    row(
        "peak resident memory, VmHWM (MiB)",
        vigil.hwm / MIB,
        pair.hwm / MIB,
        Some(0.5),
    );
    row(
        "CPU seconds per hour",
        vigil.cpu_per_hour,
        pair.cpu_per_hour,
        Some(0.5),
    );
    row(
        "samples delivered per minute",
        per_min(&tallies[0]),
        per_min(&tallies[1]),
        None,
    );
    row(
        "series delivered",
        tallies[0].series() as f64,
        tallies[1].series() as f64,
        None,
    );

    let mut procs = Table::new(&["process", "RSS at end (MiB)", "VmHWM (MiB)", "CPU s/h"]);
    for (name, u) in [
        "vigil agent",
        "prometheus --enable-feature=agent",
        "prometheus-node-exporter",
    ]
    .iter()
    .zip(usage)
    {
        procs.row(vec![
            name.to_string(),
            num(u.rss / MIB),
            num(u.hwm / MIB),
            num(u.cpu_per_hour),
        ]);
    }

    let mut jobs = Table::new(&["job", "Vigil samples/min", "pair samples/min"]);
    let mut names: Vec<&String> = tallies.iter().flat_map(|t| t.by_job.keys()).collect();
    names.sort();
    names.dedup();
    for job in names {
        let cell =
            |t: &sink::Tally| num(t.by_job.get(job).copied().unwrap_or(0) as f64 / s.minutes);
        jobs.row(vec![job.clone(), cell(&tallies[0]), cell(&tallies[1])]);
    }
    format!(
        "Footprint over {:.1} min at 15 s: {} app targets (~200 series each), real /proc and /sys, {} pods = {} container cgroups in a fake cgroup v2 tree, one process each. \
         Prometheus scrapes node_exporter for node metrics and a /metrics/cadvisor target replaying the {} container series Vigil shipped.\n\n{}\n{}\n{}",
        s.minutes,
        s.targets,
        s.pods,
        s.containers,
        s.replayed,
        head.render(),
        procs.render(),
        jobs.render()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields_in_bytes() {
        let status = "Name:\tvigil\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n";
        assert_eq!(parse_status_kb(status, "VmHWM").unwrap(), 2048.0 * 1024.0);
        assert_eq!(parse_status_kb(status, "VmRSS").unwrap(), 1024.0 * 1024.0);
        assert!(parse_status_kb(status, "VmSwap").is_err());
        assert!(status_bytes(std::process::id(), "VmHWM").unwrap() > 0.0);
    }

    #[test]
    fn report_sums_the_pair_and_checks_the_target() {
        let u = |cpu: f64, mib: f64| Usage {
            cpu_per_hour: cpu,
            rss: mib * MIB,
            hwm: 2.0 * mib * MIB,
        };
        let setup = Setup {
            minutes: 2.0,
            targets: 10,
            pods: 100,
            containers: 200,
            replayed: 9000,
        };
        let sink = Sink::default();
        let tallies = [sink.tally(Stack::Vigil), sink.tally(Stack::Pair)];
        let text = report(
            &setup,
            &[u(10.0, 20.0), u(30.0, 60.0), u(10.0, 20.0)],
            &tallies,
        );
        assert!(text.contains("| CPU seconds per hour"), "{text}");
        // Vigil 20 MiB against 60 + 20: 0.25, within the target.
        let rss = text
            .lines()
            .find(|l| l.starts_with("| resident memory at the end"))
            .unwrap();
        assert!(rss.contains("0.250") && rss.contains("yes"), "{rss}");
        let cpu = text
            .lines()
            .find(|l| l.starts_with("| CPU seconds per hour"))
            .unwrap();
        assert!(cpu.contains("0.250"), "{cpu}");
    }
}
