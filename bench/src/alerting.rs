//! `vigil-bench alerting`: notification latency, Vigil against Prometheus 2.42 + Alertmanager
//! 0.25 in the same run (issue 9). A trial writes the one sample that makes an alert's
//! condition true (`for: 0`) by remote write and times until the Slack POST for that alert
//! reaches a local sink. Both stacks load the same rule file (evaluation_interval 1s) and the
//! same Alertmanager config (group_wait 0, one group per trial, so each trial is a new
//! group's first flush). Both evaluate the group at the same point of the second (the phase
//! comes from the group's name and file), so the trials are paired: trial `i` writes to each
//! stack at the same seeded random point of the second, and the two face the same wait for
//! the next evaluation. Unpaired random starts let 20 draws of that wait (0–1 s each) decide
//! the medians; paired, only the stacks' own work differs.

use crate::http::{write_body, Client};
use crate::report::{num, Table};
use crate::setup::{now_ms, Common};
use anyhow::{bail, Context};
use clap::Args;
use model::wire::prom::{Label, TimeSeries, WireSample};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

/// Where Debian's `prometheus-alertmanager` package installs Alertmanager 0.25.
pub const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";

/// Longest a trial may wait for its Slack POST before the benchmark fails.
const TRIAL_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest a process may take to answer `/-/ready`.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest request body the sink reads.
const MAX_BODY: usize = 1 << 20;

const RULES: &str = "groups:
  - name: bench
    rules:
      - alert: BenchTrigger
        expr: bench_trigger > 0
        labels:
          severity: critical
        annotations:
          summary: 'trial {{ $labels.trial }} is {{ $value }}'
";

#[derive(Debug, Clone, Args)]
pub struct AlertingArgs {
    /// Trials per stack.
    #[arg(long, default_value_t = 20)]
    pub trials: usize,

    /// The Alertmanager binary of the pair (0.25 from Debian's `prometheus-alertmanager`).
    #[arg(long, default_value = ALERTMANAGER)]
    pub alertmanager: PathBuf,

    #[command(flatten)]
    pub common: Common,
}

/// The two stacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stack {
    Vigil,
    Pair,
}

/// A POST the sink received: the stack that sent it (by User-Agent), its body and when.
#[derive(Debug)]
struct Post {
    stack: Option<Stack>,
    body: String,
    at: Instant,
}

/// A process killed on drop, its output in a log file.
#[derive(Debug)]
struct Process {
    name: &'static str,
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    fn spawn(
        name: &'static str,
        bin: &Path,
        args: Vec<String>,
        addr: SocketAddr,
        root: &Path,
    ) -> anyhow::Result<Process> {
        let log = root.join(format!("{name}.log"));
        let out = std::fs::File::create(&log)?;
        let child = Command::new(bin)
            .args(&args)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("start {}", bin.display()))?;
        Ok(Process {
            name,
            child,
            addr,
            log,
        })
    }

    fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(r) = client.get(format!("{}/-/ready", self.base())).send().await {
                if r.status().is_success() {
                    return Ok(());
                }
            }
            if !matches!(self.child.try_wait(), Ok(None)) || Instant::now() > deadline {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(20).collect();
                bail!(
                    "{} did not become ready; log tail:\n{}",
                    self.name,
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn free_addr() -> anyhow::Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// A minimal HTTP/1.1 sink: every request (keep-alive included) is answered 200 and handed
/// to the channel with its arrival time, taken when its body has been read.
async fn sink() -> anyhow::Result<(SocketAddr, mpsc::UnboundedReceiver<Post>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                if let Err(e) = serve_connection(conn, tx).await {
                    eprintln!("sink: {e:#}");
                }
            });
        }
    });
    Ok((addr, rx))
}

async fn serve_connection(
    conn: tokio::net::TcpStream,
    tx: mpsc::UnboundedSender<Post>,
) -> anyhow::Result<()> {
    let (read, mut write) = conn.into_split();
    let mut reader = BufReader::new(read);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(()); // The client closed the connection between requests.
        }
        let (mut length, mut agent) = (0usize, String::new());
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).await? == 0 {
                bail!("connection closed inside the headers");
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            let Some((name, value)) = header.split_once(':') else {
                bail!("malformed header {header:?}");
            };
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse()?,
                "user-agent" => agent = value.trim().to_string(),
                "transfer-encoding" => bail!("chunked bodies are not supported by the sink"),
                _ => {}
            }
        }
        if length > MAX_BODY {
            bail!("body of {length} bytes is over the sink's limit");
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).await?;
        let at = Instant::now();
        write
            .write_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok",
            )
            .await?;
        let stack = if agent.starts_with("Vigil-Alertmanager/") {
            Some(Stack::Vigil)
        } else if agent.starts_with("Alertmanager/") {
            Some(Stack::Pair)
        } else {
            None
        };
        let _ = tx.send(Post {
            stack,
            body: String::from_utf8_lossy(&body).into_owned(),
            at,
        });
    }
}

/// The three processes, on directories under one temp dir removed when this is dropped
/// (after the processes, declared first).
#[derive(Debug)]
struct Stacks {
    vigil: Process,
    prometheus: Process,
    _alertmanager: Process,
    _root: tempfile::TempDir,
}

async fn start(args: &AlertingArgs, sink: SocketAddr) -> anyhow::Result<Stacks> {
    let vigil_bin = args.common.vigil_bin()?;
    for bin in [&args.common.prometheus, &args.alertmanager] {
        if !bin.is_file() {
            bail!(
                "{} not found: install Debian's prometheus and prometheus-alertmanager packages or pass --prometheus/--alertmanager",
                bin.display()
            );
        }
    }
    let root = tempfile::Builder::new()
        .prefix("vigil-bench-alerting-")
        .tempdir_in(&args.common.work_dir)?;
    let r = root.path();
    eprintln!("data under {}", r.display());
    std::fs::write(r.join("rules.yml"), RULES)?;
    let am_config = format!(
        "route:\n  receiver: slack\n  group_by: [trial]\n  group_wait: 0s\n  group_interval: 1m\n  repeat_interval: 1h\n\
         receivers:\n  - name: slack\n    slack_configs:\n      - api_url: http://{sink}/slack\n        channel: '#bench'\n"
    );
    std::fs::write(r.join("alertmanager.yml"), &am_config)?;

    let am_addr = free_addr()?;
    let mut alertmanager = Process::spawn(
        "alertmanager",
        &args.alertmanager,
        vec![
            format!("--config.file={}", r.join("alertmanager.yml").display()),
            format!("--storage.path={}", r.join("am-data").display()),
            format!("--web.listen-address={am_addr}"),
            "--cluster.listen-address=".into(),
        ],
        am_addr,
        r,
    )?;
    alertmanager.wait_ready().await?;
    // One config file for both: Vigil accepts the `alerting` section and ignores it, its
    // Alertmanager being in-process.
    std::fs::write(
        r.join("prometheus.yml"),
        format!(
            "global:\n  evaluation_interval: 1s\nrule_files: ['{}']\n\
             alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['{am_addr}']\n",
            r.join("rules.yml").display()
        ),
    )?;
    let prom_addr = free_addr()?;
    let mut prometheus = Process::spawn(
        "prometheus",
        &args.common.prometheus,
        vec![
            "--web.enable-remote-write-receiver".into(),
            format!("--storage.tsdb.path={}", r.join("prom-data").display()),
            format!("--web.listen-address={prom_addr}"),
            format!("--config.file={}", r.join("prometheus.yml").display()),
        ],
        prom_addr,
        r,
    )?;
    prometheus.wait_ready().await?;
    let vigil_addr = free_addr()?;
    let mut vigil = Process::spawn(
        "vigil",
        &vigil_bin,
        vec![
            "server".into(),
            format!("--web.listen-address={vigil_addr}"),
            format!("--storage.tsdb.path={}", r.join("vigil/tsdb").display()),
            format!("--storage.logs.path={}", r.join("vigil/logs").display()),
            format!(
                "--alertmanager.storage.path={}",
                r.join("vigil/alertmanager").display()
            ),
            format!("--config.file={}", r.join("prometheus.yml").display()),
            format!(
                "--alertmanager.config.file={}",
                r.join("alertmanager.yml").display()
            ),
        ],
        vigil_addr,
        r,
    )?;
    vigil.wait_ready().await?;
    Ok(Stacks {
        vigil,
        prometheus,
        _alertmanager: alertmanager,
        _root: root,
    })
}

/// One trial: the sample that makes `trial`'s alert fire, written to `base`, then the time
/// until `stack`'s Slack POST naming it arrives. Posts for other trials (none are expected)
/// are dropped.
async fn trial(
    client: &Client,
    base: &str,
    stack: Stack,
    trial: &str,
    posts: &mut mpsc::UnboundedReceiver<Post>,
) -> anyhow::Result<Duration> {
    let body = write_body(vec![TimeSeries {
        labels: vec![
            Label {
                name: "__name__".into(),
                value: "bench_trigger".into(),
            },
            Label {
                name: "trial".into(),
                value: trial.into(),
            },
        ],
        samples: vec![WireSample {
            value: 1.0,
            timestamp: now_ms(),
        }],
        exemplars: Vec::new(),
    }]);
    let sent = Instant::now();
    client.write(base, body).await?;
    let deadline = tokio::time::Instant::now() + TRIAL_TIMEOUT;
    loop {
        let post = tokio::time::timeout_at(deadline, posts.recv())
            .await
            .with_context(|| {
                format!("{stack:?}: no Slack POST for {trial} within {TRIAL_TIMEOUT:?}")
            })?
            .context("the sink stopped")?;
        if post.stack == Some(stack) && post.body.contains(trial) {
            return Ok(post.at.duration_since(sent));
        }
        eprintln!(
            "ignored a POST from {:?} while waiting for {stack:?} {trial}",
            post.stack
        );
    }
}

/// Sleeps until the wall clock is `phase` milliseconds past a whole second, at least 500 ms
/// from now so the previous trial's notification has gone out.
async fn wait_for_phase(phase: i64) {
    let now = now_ms();
    let mut at = now - now.rem_euclid(1000) + phase;
    while at < now + 500 {
        at += 1000;
    }
    tokio::time::sleep(Duration::from_millis((at - now) as u64)).await;
}

/// The `q` quantile (nearest rank) of sorted durations, in milliseconds.
fn quantile_ms(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1000.0
}

/// A small deterministic generator (SplitMix64) for the trials' start points.
fn next_random(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Runs the benchmark and returns its report.
pub async fn run(args: AlertingArgs) -> anyhow::Result<String> {
    anyhow::ensure!(args.trials > 0, "--trials must be at least 1");
    let (sink_addr, mut posts) = sink().await?;
    let stacks = start(&args, sink_addr).await?;
    let client = Client::new()?;
    let (vigil_base, pair_base) = (stacks.vigil.base(), stacks.prometheus.base());
    let mut rng = args.common.seed;
    let mut latencies: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    // Both rule managers evaluate before the first trial, so none waits for a first tick.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for i in 0..args.trials {
        // Alternate which stack goes first, so neither always follows the other's work.
        let order = if i % 2 == 0 {
            [Stack::Vigil, Stack::Pair]
        } else {
            [Stack::Pair, Stack::Vigil]
        };
        let phase = (next_random(&mut rng) % 1000) as i64;
        for stack in order {
            wait_for_phase(phase).await;
            let (base, slot) = match stack {
                Stack::Vigil => (&vigil_base, 0),
                Stack::Pair => (&pair_base, 1),
            };
            let id = format!("trial-{i:04}-{}", slot);
            let took = trial(&client, base, stack, &id, &mut posts).await?;
            eprintln!("{stack:?} {id}: {:.1} ms", took.as_secs_f64() * 1000.0);
            latencies[slot].push(took);
        }
    }
    // Per trial, Vigil's latency minus the pair's at the same start phase (before sorting).
    let mut diffs: Vec<f64> = latencies[0]
        .iter()
        .zip(&latencies[1])
        .map(|(v, p)| (v.as_secs_f64() - p.as_secs_f64()) * 1000.0)
        .collect();
    diffs.sort_by(f64::total_cmp);
    for l in &mut latencies {
        l.sort();
    }
    let mut table = Table::new(&[
        "remote write → Slack POST",
        "Vigil",
        "Prometheus + Alertmanager",
        "Vigil / pair",
    ]);
    for (name, q) in [("median (ms)", 0.5), ("p90 (ms)", 0.9), ("min (ms)", 0.0)] {
        let (v, p) = (quantile_ms(&latencies[0], q), quantile_ms(&latencies[1], q));
        table.row(vec![name.into(), num(v), num(p), num(v / p)]);
    }
    let median_diff = diffs.get(diffs.len() / 2).copied().unwrap_or(f64::NAN);
    let vigil_faster = diffs.iter().filter(|d| **d < 0.0).count();
    Ok(format!(
        "Alert latency: {} trials per stack, `for: 0`, group_wait 0, evaluation_interval 1s; \
         trial i starts at the same random point of the second on both stacks, so both wait \
         alike for the next evaluation (about half a second on average).\n\n{}\n\
         Paired: median of (Vigil − pair) {} ms; Vigil faster in {vigil_faster} of {} trials.\n",
        args.trials,
        table.render(),
        num(median_diff),
        diffs.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_take_the_nearest_rank() {
        let d: Vec<Duration> = (1..=10).map(Duration::from_millis).collect();
        assert_eq!(quantile_ms(&d, 0.5), 5.0);
        assert_eq!(quantile_ms(&d, 0.9), 9.0);
        assert_eq!(quantile_ms(&d, 0.0), 1.0);
        assert!(quantile_ms(&[], 0.5).is_nan());
    }

    #[tokio::test]
    async fn the_sink_reads_keep_alive_requests_and_names_the_sender() {
        let (addr, mut rx) = sink().await.unwrap();
        let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
        for (agent, body) in [
            ("Alertmanager/0.25.0", "{\"a\":1}"),
            ("Vigil-Alertmanager/0.1.0", "xy"),
        ] {
            let req = format!(
                "POST /slack HTTP/1.1\r\nHost: x\r\nUser-Agent: {agent}\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            conn.write_all(req.as_bytes()).await.unwrap();
            // Read the whole answer (headers and the 2-byte body) before the next request.
            let mut answer = Vec::new();
            while !answer.ends_with(b"\r\n\r\nok") {
                let mut chunk = [0u8; 256];
                let n = conn.read(&mut chunk).await.unwrap();
                assert!(n > 0, "the sink closed the connection");
                answer.extend_from_slice(&chunk[..n]);
            }
            assert!(answer.starts_with(b"HTTP/1.1 200 OK"));
        }
        let first = rx.recv().await.unwrap();
        assert_eq!(
            (first.stack, first.body.as_str()),
            (Some(Stack::Pair), "{\"a\":1}")
        );
        let second = rx.recv().await.unwrap();
        assert_eq!(
            (second.stack, second.body.as_str()),
            (Some(Stack::Vigil), "xy")
        );
    }
}
