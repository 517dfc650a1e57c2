//! Node metrics: node_exporter's collectors re-implemented over procfs, sysfs and a root
//! filesystem, so the agent in a DaemonSet reads the host's files through mounts
//! (`--path.procfs`, `--path.sysfs`, `--path.rootfs` in node_exporter).
//!
//! Each collector is a pure parser over the text of its files returning metric families with
//! node_exporter 1.5's names, HELP texts, types and labels:
//!
//! | collector | source |
//! |---|---|
//! | `cpu`, `stat` | `<procfs>/stat` |
//! | `diskstats` | `<procfs>/diskstats`, udev's database for `node_disk_info` |
//! | `filefd` | `<procfs>/sys/fs/file-nr` |
//! | `filesystem` | `<procfs>/1/mounts`, `statvfs(2)` under `<rootfs>` |
//! | `loadavg`, `meminfo`, `vmstat` | the procfs files of those names |
//! | `netdev` | `<procfs>/net/dev` |
//! | `netstat` | `<procfs>/net/{netstat,snmp,snmp6}` |
//! | `os` | `<rootfs>/etc/os-release` |
//! | `pressure` | `<procfs>/pressure/{cpu,io,memory}` |
//! | `sockstat` | `<procfs>/net/sockstat{,6}` |
//! | `time` | the clock, the local zone, `<sysfs>/devices/system/clocksource` |
//! | `uname` | `uname(2)` |
//!
//! [`NodeSource`] runs them every interval, adds `instance` and `job`, reports
//! `node_scrape_collector_success` / `_duration_seconds` per collector as node_exporter
//! does, and sends a [`MetricBatch`] downstream.

mod cpu;
mod diskstats;
mod filefd;
mod filesystem;
mod loadavg;
mod meminfo;
mod netdev;
mod netstat;
mod os;
mod pressure;
mod sockstat;
mod stat;
mod time;
mod uname;
mod vmstat;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use regex::Regex;
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::family::{Family, MetricType};
use crate::ship::MetricBatch;
use crate::Error;

pub use diskstats::{DEFAULT_DISKSTATS_EXCLUDE, DEFAULT_UDEV_DATA};
pub use filesystem::{DEFAULT_FS_TYPES_EXCLUDE, DEFAULT_MOUNT_POINTS_EXCLUDE};
pub use netstat::DEFAULT_NETSTAT_FIELDS;
pub use vmstat::DEFAULT_VMSTAT_FIELDS;

/// How often node metrics are collected unless configured: Prometheus's default scrape interval.
pub const DEFAULT_SCRAPE_INTERVAL: Duration = Duration::from_secs(15);
/// Where procfs is mounted unless configured.
pub const DEFAULT_PROCFS: &str = "/proc";
/// Where sysfs is mounted unless configured.
pub const DEFAULT_SYSFS: &str = "/sys";
/// The root filesystem unless configured; a DaemonSet mounts the host's at e.g. `/host/root`.
pub const DEFAULT_ROOTFS: &str = "/";
/// The `job` label of node metrics unless configured.
pub const DEFAULT_JOB: &str = "node";
/// Interfaces left out of `node_network_*`: node_exporter's default `--collector.netdev.device-exclude=^lo$`.
pub const DEFAULT_NETDEV_EXCLUDE: &[&str] = &["lo"];

/// Every collector, by node_exporter's name, in the order they run.
pub const NODE_COLLECTORS: &[&str] = &[
    "cpu",
    "diskstats",
    "filefd",
    "filesystem",
    "loadavg",
    "meminfo",
    "netdev",
    "netstat",
    "os",
    "pressure",
    "sockstat",
    "stat",
    "time",
    "uname",
    "vmstat",
];

/// The node collector's settings.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// The procfs root to read; default [`DEFAULT_PROCFS`].
    pub procfs: PathBuf,
    /// The sysfs root to read; default [`DEFAULT_SYSFS`].
    pub sysfs: PathBuf,
    /// The root filesystem whose mounts are measured and whose `os-release` is read; default
    /// [`DEFAULT_ROOTFS`].
    pub rootfs: PathBuf,
    /// udev's device database, for `node_disk_info` labels; default [`DEFAULT_UDEV_DATA`].
    pub udev_data: PathBuf,
    /// The `instance` label of every series (the node's name).
    pub instance: String,
    /// The `job` label of every series; default [`DEFAULT_JOB`].
    pub job: String,
    /// Time between collections; default [`DEFAULT_SCRAPE_INTERVAL`].
    pub interval: Duration,
    /// Interface names left out of the `netdev` collector; default [`DEFAULT_NETDEV_EXCLUDE`].
    pub netdev_exclude: Vec<String>,
    /// Regex of block devices left out of `diskstats`; default [`DEFAULT_DISKSTATS_EXCLUDE`].
    pub diskstats_exclude: String,
    /// Regex of mount points left out of `filesystem`; default [`DEFAULT_MOUNT_POINTS_EXCLUDE`].
    pub mount_points_exclude: String,
    /// Regex of filesystem types left out of `filesystem`; default [`DEFAULT_FS_TYPES_EXCLUDE`].
    pub fs_types_exclude: String,
    /// Regex of `<Proto>_<Field>` names `netstat` reports; default [`DEFAULT_NETSTAT_FIELDS`].
    pub netstat_fields: String,
    /// Regex of `/proc/vmstat` fields `vmstat` reports; default [`DEFAULT_VMSTAT_FIELDS`].
    pub vmstat_fields: String,
    /// The collectors to run, by node_exporter's names; default all of [`NODE_COLLECTORS`].
    pub collectors: Vec<String>,
}

impl NodeConfig {
    /// The defaults, for a node called `instance`.
    pub fn new(instance: impl Into<String>) -> Self {
        NodeConfig {
            procfs: PathBuf::from(DEFAULT_PROCFS),
            sysfs: PathBuf::from(DEFAULT_SYSFS),
            rootfs: PathBuf::from(DEFAULT_ROOTFS),
            udev_data: PathBuf::from(DEFAULT_UDEV_DATA),
            instance: instance.into(),
            job: DEFAULT_JOB.to_string(),
            interval: DEFAULT_SCRAPE_INTERVAL,
            netdev_exclude: DEFAULT_NETDEV_EXCLUDE
                .iter()
                .map(|s| s.to_string())
                .collect(),
            diskstats_exclude: DEFAULT_DISKSTATS_EXCLUDE.to_string(),
            mount_points_exclude: DEFAULT_MOUNT_POINTS_EXCLUDE.to_string(),
            fs_types_exclude: DEFAULT_FS_TYPES_EXCLUDE.to_string(),
            netstat_fields: DEFAULT_NETSTAT_FIELDS.to_string(),
            vmstat_fields: DEFAULT_VMSTAT_FIELDS.to_string(),
            collectors: NODE_COLLECTORS.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Checks the filters and collector names and builds the source.
    pub fn build(self) -> Result<NodeSource, Error> {
        let regex = |field: &'static str, pattern: &str| {
            Regex::new(pattern).map_err(|e| Error::Config {
                field,
                reason: e.to_string(),
            })
        };
        let mut collectors = Vec::new();
        for name in &self.collectors {
            match NODE_COLLECTORS.iter().find(|c| **c == name.as_str()) {
                Some(c) => collectors.push(*c),
                None => {
                    return Err(Error::Config {
                        field: "collectors",
                        reason: format!("unknown node collector {name:?}"),
                    })
                }
            }
        }
        Ok(NodeSource {
            filters: Filters {
                diskstats_exclude: regex("diskstats_exclude", &self.diskstats_exclude)?,
                mount_points_exclude: regex("mount_points_exclude", &self.mount_points_exclude)?,
                fs_types_exclude: regex("fs_types_exclude", &self.fs_types_exclude)?,
                netstat_fields: regex("netstat_fields", &self.netstat_fields)?,
                vmstat_fields: regex("vmstat_fields", &self.vmstat_fields)?,
            },
            collectors,
            cfg: self,
            failing: HashSet::new(),
            stuck_mounts: filesystem::StuckMounts::default(),
            stats: Arc::default(),
        })
    }
}

/// What the node collector reports about itself, for the agent's `/metrics`.
#[derive(Debug, Default)]
pub struct NodeStats {
    /// Collections run.
    pub collections: AtomicU64,
    /// Their summed duration, in nanoseconds.
    pub duration_ns: AtomicU64,
}

/// The compiled regexes of a [`NodeConfig`].
#[derive(Debug)]
struct Filters {
    diskstats_exclude: Regex,
    mount_points_exclude: Regex,
    fs_types_exclude: Regex,
    netstat_fields: Regex,
    vmstat_fields: Regex,
}

/// The running node collector; see the module docs.
#[derive(Debug)]
pub struct NodeSource {
    cfg: NodeConfig,
    filters: Filters,
    collectors: Vec<&'static str>,
    /// Collectors whose last run failed, so a broken file is logged once, not every interval.
    failing: HashSet<&'static str>,
    /// Mounts whose `statvfs` hangs, carried from one collection to the next.
    stuck_mounts: filesystem::StuckMounts,
    stats: Arc<NodeStats>,
}

impl NodeSource {
    /// The counters [`NodeSource::run`] keeps.
    pub fn stats(&self) -> Arc<NodeStats> {
        self.stats.clone()
    }

    /// Runs every collector once, stamping samples with `t_ms`.
    ///
    /// The reads are synchronous: procfs and sysfs files are generated in memory by the
    /// kernel, so they never wait on a disk. The one call that can hang, `statvfs` on a dead
    /// network mount, runs on its own thread with a deadline (see `filesystem`).
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
        for name in self.collectors.clone() {
            let start = Instant::now();
            let result = self.run_collector(name);
            duration.push(
                vec![("collector", name.to_string())],
                start.elapsed().as_secs_f64(),
            );
            let ok = match result {
                Ok(f) => {
                    if self.failing.remove(name) {
                        tracing::info!(collector = name, "node collector recovered");
                    }
                    families.extend(f.into_iter().filter(|f| !f.points.is_empty()));
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
        MetricBatch {
            series: crate::family::into_series(families, &target, t_ms),
            metadata,
        }
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
            let began = Instant::now();
            let batch = self.collect(chrono::Utc::now().timestamp_millis());
            let took = u64::try_from(began.elapsed().as_nanos()).unwrap_or(u64::MAX);
            self.stats.duration_ns.fetch_add(took, Ordering::Relaxed);
            self.stats.collections.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(series = batch.series.len(), "node metrics collected");
            tokio::select! {
                _ = shutdown.cancelled() => break,
                sent = out.send(batch) => if sent.is_err() { break },
            }
        }
        tracing::debug!("node collector stopped");
    }

    /// Reads one collector's files and parses them.
    fn run_collector(&self, collector: &str) -> Result<Vec<Family>, String> {
        let cfg = &self.cfg;
        let proc = |file: &str| read(&cfg.procfs.join(file));
        let f = &self.filters;
        match collector {
            "cpu" => cpu::collect(&proc("stat")?),
            "stat" => stat::collect(&proc("stat")?),
            "loadavg" => loadavg::collect(&proc("loadavg")?),
            "meminfo" => meminfo::collect(&proc("meminfo")?),
            "netdev" => netdev::collect(&proc("net/dev")?, &cfg.netdev_exclude),
            "vmstat" => vmstat::collect(&proc("vmstat")?, &f.vmstat_fields),
            "filefd" => filefd::collect(&proc("sys/fs/file-nr")?),
            "pressure" => pressure::collect(
                &proc("pressure/cpu")?,
                &proc("pressure/io")?,
                &proc("pressure/memory")?,
            ),
            "netstat" => {
                // A kernel without IPv6 has no snmp6; node_exporter then reports IPv4 only.
                let snmp6 = std::fs::read_to_string(cfg.procfs.join("net/snmp6")).ok();
                netstat::collect(
                    &proc("net/netstat")?,
                    &proc("net/snmp")?,
                    snmp6.as_deref(),
                    &f.netstat_fields,
                )
            }
            "sockstat" => {
                let page_size = sockstat::page_size(
                    &std::fs::read(cfg.procfs.join("self/auxv")).unwrap_or_default(),
                );
                let mut out = sockstat::families(&proc("net/sockstat")?, false, page_size)?;
                if let Ok(v6) = std::fs::read_to_string(cfg.procfs.join("net/sockstat6")) {
                    out.extend(sockstat::families(&v6, true, page_size)?);
                }
                Ok(out)
            }
            "diskstats" => {
                let text = proc("diskstats")?;
                let disks = diskstats::parse(&text)?;
                Ok(diskstats::families(
                    &disks,
                    &f.diskstats_exclude,
                    |maj, min| diskstats::udev_properties(&cfg.udev_data, maj, min),
                ))
            }
            "filesystem" => {
                // Init's mounts are the host's when the agent shares the host PID namespace.
                let text = match std::fs::read_to_string(cfg.procfs.join("1/mounts")) {
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => proc("self/mounts")?,
                    other => {
                        other.map_err(|e| format!("{}/1/mounts: {e}", cfg.procfs.display()))?
                    }
                };
                let mounts = filesystem::parse_mounts(&text, &cfg.rootfs)?;
                Ok(filesystem::families(
                    &mounts,
                    &cfg.rootfs,
                    &f.mount_points_exclude,
                    &f.fs_types_exclude,
                    &self.stuck_mounts,
                    filesystem::MOUNT_TIMEOUT,
                ))
            }
            "os" => {
                let text = os::OS_RELEASE_PATHS
                    .iter()
                    .find_map(|p| std::fs::read_to_string(cfg.rootfs.join(p)).ok())
                    .ok_or_else(|| format!("no os-release under {}", cfg.rootfs.display()))?;
                Ok(os::families(&os::parse(&text)?))
            }
            "time" => {
                let now = chrono::Utc::now();
                let secs = now.timestamp() as f64 + f64::from(now.timestamp_subsec_nanos()) / 1e9;
                Ok(time::families(
                    secs,
                    time::local_zone(),
                    &time::clocksources(&cfg.sysfs)?,
                ))
            }
            "uname" => Ok(uname::families(uname::uname())),
            other => Err(format!("unknown collector {other}")),
        }
    }
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
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
        let batch = cfg.build().unwrap().collect(1_700_000_000_000);

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
        let batch = cfg.build().unwrap().collect(0);
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
