//! Node metrics: node_exporter's collectors re-implemented over a procfs root, so the agent
//! in a DaemonSet reads the host's `/proc` through a mount (`--path.procfs` in node_exporter).
//!
//! Each collector is a pure parser over the text of one file (`cpu` ← `stat`, `loadavg`,
//! `meminfo`, `netdev` ← `net/dev`) returning metric families with node_exporter's names,
//! HELP texts and types. [`NodeSource`] reads them every interval, adds `instance` and `job`,
//! reports `node_scrape_collector_success` / `_duration_seconds` per collector as
//! node_exporter does, and sends a [`MetricBatch`] downstream.

mod cpu;
mod loadavg;
mod meminfo;
mod netdev;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::family::{Family, MetricType};
use crate::ship::MetricBatch;

/// How often node metrics are collected unless configured: Prometheus's default scrape interval.
pub const DEFAULT_SCRAPE_INTERVAL: Duration = Duration::from_secs(15);
/// Where procfs is mounted unless configured.
pub const DEFAULT_PROCFS: &str = "/proc";
/// The `job` label of node metrics unless configured.
pub const DEFAULT_JOB: &str = "node";
/// Interfaces left out of `node_network_*`: node_exporter's default `--collector.netdev.device-exclude=^lo$`.
pub const DEFAULT_NETDEV_EXCLUDE: &[&str] = &["lo"];

/// The node collector's settings.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// The procfs root to read; default [`DEFAULT_PROCFS`].
    pub procfs: PathBuf,
    /// The `instance` label of every series (the node's name).
    pub instance: String,
    /// The `job` label of every series; default [`DEFAULT_JOB`].
    pub job: String,
    /// Time between collections; default [`DEFAULT_SCRAPE_INTERVAL`].
    pub interval: Duration,
    /// Interface names left out of the `netdev` collector; default [`DEFAULT_NETDEV_EXCLUDE`].
    pub netdev_exclude: Vec<String>,
}

impl NodeConfig {
    /// The defaults, for a node called `instance`.
    pub fn new(instance: impl Into<String>) -> Self {
        NodeConfig {
            procfs: PathBuf::from(DEFAULT_PROCFS),
            instance: instance.into(),
            job: DEFAULT_JOB.to_string(),
            interval: DEFAULT_SCRAPE_INTERVAL,
            netdev_exclude: DEFAULT_NETDEV_EXCLUDE
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }

    pub fn build(self) -> NodeSource {
        NodeSource {
            cfg: self,
            failing: HashSet::new(),
        }
    }
}

/// The collectors of this slice: node_exporter's name and the file under the procfs root.
const COLLECTORS: &[(&str, &str)] = &[
    ("cpu", "stat"),
    ("loadavg", "loadavg"),
    ("meminfo", "meminfo"),
    ("netdev", "net/dev"),
];

/// The running node collector; see the module docs.
#[derive(Debug)]
pub struct NodeSource {
    cfg: NodeConfig,
    /// Collectors whose last run failed, so a broken file is logged once, not every interval.
    failing: HashSet<&'static str>,
}

impl NodeSource {
    /// Runs every collector once, stamping samples with `t_ms`.
    ///
    /// The reads are synchronous: procfs files are generated in memory by the kernel, so they
    /// never wait on a disk, and the four of them take microseconds.
    pub fn collect(&mut self, t_ms: i64) -> MetricBatch {
        let mut families = Vec::new();
        let mut success = Family::new(
            "node_scrape_collector_success",
            "node_exporter: Whether a collector succeeded.",
            MetricType::Gauge,
        );
        let mut duration = Family::new(
            "node_scrape_collector_duration_seconds",
            "node_exporter: Duration of a collector scrape.",
            MetricType::Gauge,
        );
        for &(name, file) in COLLECTORS {
            let start = Instant::now();
            let result = read_and_parse(&self.cfg, name, &self.cfg.procfs.join(file));
            duration.push(
                vec![("collector", name.to_string())],
                start.elapsed().as_secs_f64(),
            );
            let ok = match result {
                Ok(f) => {
                    if self.failing.remove(name) {
                        tracing::info!(collector = name, "node collector recovered");
                    }
                    families.extend(f);
                    true
                }
                Err(error) => {
                    if self.failing.insert(name) {
                        tracing::warn!(collector = name, %error, "node collector failed");
                    }
                    false
                }
            };
            success.push(
                vec![("collector", name.to_string())],
                f64::from(u8::from(ok)),
            );
        }
        families.push(duration);
        families.push(success);

        let target = [
            ("instance", self.cfg.instance.as_str()),
            ("job", self.cfg.job.as_str()),
        ];
        let metadata = families.iter().map(Family::metadata).collect();
        let series = families
            .into_iter()
            .flat_map(|f| f.into_series(&target, t_ms))
            .collect();
        MetricBatch { series, metadata }
    }

    /// Collects every interval (the first at once) and sends each batch to `out`, until
    /// `shutdown` fires or the receiver is gone.
    pub async fn run(mut self, shutdown: CancellationToken, out: mpsc::Sender<MetricBatch>) {
        let mut tick = tokio::time::interval(self.cfg.interval);
        tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            let batch = self.collect(chrono::Utc::now().timestamp_millis());
            tracing::debug!(series = batch.series.len(), "node metrics collected");
            tokio::select! {
                _ = shutdown.cancelled() => break,
                sent = out.send(batch) => if sent.is_err() { break },
            }
        }
        tracing::debug!("node collector stopped");
    }
}

fn read_and_parse(cfg: &NodeConfig, collector: &str, path: &Path) -> Result<Vec<Family>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    match collector {
        "cpu" => cpu::collect(&text),
        "loadavg" => loadavg::collect(&text),
        "meminfo" => meminfo::collect(&text),
        "netdev" => netdev::collect(&text, &cfg.netdev_exclude),
        other => Err(format!("unknown collector {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes a minimal procfs with the four files this slice reads.
    pub(crate) fn fake_procfs(dir: &Path) {
        std::fs::create_dir_all(dir.join("net")).unwrap();
        std::fs::write(
            dir.join("stat"),
            "cpu  3 0 2 8 0 0 0 0 0 0\ncpu0 1 0 1 4 0 0 0 0 0 0\ncpu1 2 0 1 4 0 0 0 0 0 0\n",
        )
        .unwrap();
        std::fs::write(dir.join("loadavg"), "0.50 0.25 0.10 1/100 42\n").unwrap();
        std::fs::write(
            dir.join("meminfo"),
            "MemTotal: 1000 kB\nMemAvailable: 500 kB\nActive(anon): 10 kB\nHugePages_Total: 0\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("net/dev"),
            "Inter-| Receive | Transmit\n face |bytes packets errs drop fifo frame compressed multicast|bytes packets errs drop fifo colls carrier compressed\n lo: 1 1 0 0 0 0 0 0 1 1 0 0 0 0 0 0\neth0: 100 2 0 0 0 0 0 0 200 3 0 0 0 0 0 0\n",
        )
        .unwrap();
    }

    #[test]
    fn collects_from_a_fake_procfs() {
        let dir = tempfile::tempdir().unwrap();
        fake_procfs(dir.path());
        let mut cfg = NodeConfig::new("node-a");
        cfg.procfs = dir.path().to_path_buf();
        let batch = cfg.build().collect(1_700_000_000_000);

        let find = |name: &str, extra: &[(&str, &str)]| {
            batch.series.iter().find(|s| {
                s.labels.metric_name() == Some(name)
                    && extra.iter().all(|(n, v)| s.labels.get(n) == Some(v))
            })
        };
        let cpu = find("node_cpu_seconds_total", &[("cpu", "1"), ("mode", "user")]).unwrap();
        assert_eq!(
            cpu.labels.to_string(),
            r#"{__name__="node_cpu_seconds_total", cpu="1", instance="node-a", job="node", mode="user"}"#
        );
        assert_eq!(cpu.samples[0].v, 0.02);
        assert_eq!(cpu.samples[0].t, 1_700_000_000_000);
        assert_eq!(
            find("node_memory_MemTotal_bytes", &[]).unwrap().samples[0].v,
            1_024_000.0
        );
        assert!(find("node_memory_Active_anon_bytes", &[]).is_some());
        assert!(find("node_memory_HugePages_Total", &[]).is_some());
        assert_eq!(find("node_load5", &[]).unwrap().samples[0].v, 0.25);
        let rx = find("node_network_receive_bytes_total", &[("device", "eth0")]).unwrap();
        assert_eq!(rx.samples[0].v, 100.0);
        assert!(find("node_network_receive_bytes_total", &[("device", "lo")]).is_none());
        for c in ["cpu", "loadavg", "meminfo", "netdev"] {
            let s = find("node_scrape_collector_success", &[("collector", c)]).unwrap();
            assert_eq!(s.samples[0].v, 1.0, "{c}");
        }
        let meta = batch
            .metadata
            .iter()
            .find(|m| m.metric_family_name == "node_cpu_seconds_total")
            .unwrap();
        assert_eq!(
            (meta.r#type, meta.help.as_str()),
            (1, "Seconds the CPUs spent in each mode.")
        );
    }

    #[test]
    fn a_missing_file_fails_only_its_collector() {
        let dir = tempfile::tempdir().unwrap();
        fake_procfs(dir.path());
        std::fs::remove_file(dir.path().join("loadavg")).unwrap();
        let mut cfg = NodeConfig::new("n");
        cfg.procfs = dir.path().to_path_buf();
        let batch = cfg.build().collect(0);
        let success = |c: &str| {
            batch
                .series
                .iter()
                .find(|s| {
                    s.labels.metric_name() == Some("node_scrape_collector_success")
                        && s.labels.get("collector") == Some(c)
                })
                .unwrap()
                .samples[0]
                .v
        };
        assert_eq!(success("loadavg"), 0.0);
        assert_eq!(success("cpu"), 1.0);
        assert!(!batch
            .series
            .iter()
            .any(|s| s.labels.metric_name() == Some("node_load1")));
    }
}
