//! Container metrics in the kubelet's `/metrics/cadvisor` shape, read from the cgroup tree
//! (`<sysfs>/fs/cgroup`, v2 or v1) without cAdvisor:
//!
//! - `cgroup.rs` lists every cgroup and reads its CPU, CFS, memory, OOM, block I/O, pids,
//!   pressure (PSI) and spec files, per cgroup version;
//! - `spec.rs` keeps each cgroup's spec (limits) between collections, re-read every few;
//! - `procs.rs` counts the open files and sockets of a cgroup's processes;
//! - `naming.rs` recognises pod and container cgroups of the systemd and cgroupfs drivers and
//!   containerd, CRI-O and docker naming;
//! - `pods.rs` holds this node's pods ([`PodIndex`]) for pod, namespace, container and image;
//! - `families.rs` turns the readings into cAdvisor's families and labels;
//! - `cache.rs` keeps each series' labels between collections and fills them with samples.
//!
//! Every cgroup is reported, as the kubelet reports everything under `/`: pod and container
//! cgroups with their pod's names, the others with only `id`. Network counters are per pod
//! (containers share the pod's network namespace): read from `<procfs>/<pid>/net/dev` of a
//! process in the pod and reported on the pod's cgroup, once, so sums by pod are right.
//! Series are labelled `job="kubelet"`, `metrics_path="/metrics/cadvisor"` and `instance`,
//! so kube-prometheus's recording rules and dashboards select them unchanged.

mod cache;
mod cgroup;
mod families;
mod naming;
mod pods;
mod procs;
mod spec;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::ship::MetricBatch;
use crate::Error;

use cache::SeriesCache;
use cgroup::{Reader, Tree};
use families::{Base, Container};
use naming::{Identity, Namer, Runtime};
pub use pods::{PodIndex, PodMeta, SharedPods};
use spec::Specs;

/// The `job` label of container metrics unless configured: the kubelet's, whose
/// `/metrics/cadvisor` these series replace.
pub const DEFAULT_CADVISOR_JOB: &str = "kubelet";
/// The `metrics_path` label kube-prometheus's rules select container metrics by.
pub const CADVISOR_METRICS_PATH: &str = "/metrics/cadvisor";

/// The container collector's settings.
#[derive(Clone, Debug)]
pub struct CadvisorConfig {
    /// The sysfs root; the cgroup tree is `<sysfs>/fs/cgroup`. Default [`crate::DEFAULT_SYSFS`].
    pub sysfs: PathBuf,
    /// The procfs root, for pods' network counters. Default [`crate::DEFAULT_PROCFS`].
    pub procfs: PathBuf,
    /// The `instance` label (the node's name).
    pub instance: String,
    /// The `job` label; default [`DEFAULT_CADVISOR_JOB`].
    pub job: String,
    /// Time between collections; default [`crate::DEFAULT_SCRAPE_INTERVAL`].
    pub interval: Duration,
    /// This node's pods, kept current by whoever watches them; default an empty index, which
    /// reports every cgroup with its path alone, as outside Kubernetes.
    pub pods: SharedPods,
}

impl CadvisorConfig {
    /// The defaults, for a node called `instance`.
    pub fn new(instance: impl Into<String>) -> Self {
        CadvisorConfig {
            sysfs: PathBuf::from(crate::DEFAULT_SYSFS),
            procfs: PathBuf::from(crate::DEFAULT_PROCFS),
            instance: instance.into(),
            job: DEFAULT_CADVISOR_JOB.to_string(),
            interval: crate::DEFAULT_SCRAPE_INTERVAL,
            pods: SharedPods::default(),
        }
    }

    /// Builds the source; the cgroup tree is looked for at each collection, so an agent
    /// started before its mounts are ready recovers.
    pub fn build(self) -> Result<CadvisorSource, Error> {
        let namer = Namer::new().map_err(|e| Error::Config {
            field: "cadvisor",
            reason: e.to_string(),
        })?;
        let target = vec![
            ("instance", self.instance.clone()),
            ("job", self.job.clone()),
            ("metrics_path", CADVISOR_METRICS_PATH.to_string()),
        ];
        Ok(CadvisorSource {
            cache: SeriesCache::new(target),
            cfg: self,
            namer,
            warned: false,
            stats: Arc::default(),
            reader: Reader::default(),
            specs: Specs::default(),
        })
    }
}

/// What the container collector reports about itself.
#[derive(Debug, Default)]
pub struct CadvisorStats {
    /// Collections run.
    pub collections: AtomicU64,
    /// Cgroups read by the last collection.
    pub cgroups: AtomicU64,
}

/// The running container collector.
#[derive(Debug)]
pub struct CadvisorSource {
    cfg: CadvisorConfig,
    namer: Namer,
    /// Whether a missing cgroup tree was logged already.
    warned: bool,
    stats: Arc<CadvisorStats>,
    /// The buffer every cgroup file is read into, kept between collections.
    reader: Reader,
    /// Each cgroup's spec files, read every few collections rather than every one.
    specs: Specs,
    /// Each series' labels, kept from one collection to the next.
    cache: SeriesCache,
}

impl CadvisorSource {
    /// The counters [`CadvisorSource::run`] keeps.
    pub fn stats(&self) -> Arc<CadvisorStats> {
        self.stats.clone()
    }

    /// Reads every cgroup once, in path order.
    fn read(&mut self) -> Vec<Container> {
        let root = self.cfg.sysfs.join("fs/cgroup");
        let Some(tree) = Tree::detect(&root, &self.cfg.procfs) else {
            if !std::mem::replace(&mut self.warned, true) {
                tracing::warn!(path = %root.display(), "no cgroup tree found, container metrics off");
            }
            return Vec::new();
        };
        let paths = tree.list();
        self.stats
            .cgroups
            .store(paths.len() as u64, Ordering::Relaxed);
        let pods = match self.cfg.pods.read() {
            Ok(p) => p.clone(),
            // A writer panicked mid-update: the last complete index is still in there.
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        let mut devices: HashMap<(u32, u32), String> = HashMap::new();
        let mut containers: Vec<Container> = Vec::with_capacity(paths.len());
        let mut pod_cgroups: Vec<usize> = Vec::new();
        self.specs.begin();
        for path in &paths {
            let mut stats = tree.stats(path, &mut self.reader, &mut self.specs);
            if stats.processes.is_some() {
                let (fds, sockets) = procs::open_files(&self.cfg.procfs, &stats.pids);
                stats.fds = Some(fds);
                stats.sockets = Some(sockets);
            }
            let identity = self.namer.identify(path);
            if matches!(identity, Identity::Pod { .. }) {
                pod_cgroups.push(containers.len());
            }
            let mut c = Container {
                base: base(path, &identity, &pods),
                stats,
                ..Container::default()
            };
            for io in &c.stats.io {
                let dev = (io.major, io.minor);
                let name = devices
                    .entry(dev)
                    .or_insert_with(|| device_name(&self.cfg.sysfs, dev));
                c.devices.push((dev, name.clone()));
            }
            containers.push(c);
        }
        self.specs.end();
        for i in pod_cgroups {
            // The pod's own cgroup holds no process; its containers' do, and they share the
            // pod's network namespace. A process may exit between listing and reading, so
            // each container's first process is tried in turn. Paths are sorted, so the
            // pod's descendants follow it.
            let prefix = format!("{}/", containers[i].base.id);
            let pids: Vec<u32> = std::iter::once(&containers[i])
                .chain(
                    containers[i + 1..]
                        .iter()
                        .take_while(|c| c.base.id.starts_with(&prefix)),
                )
                .filter_map(|c| c.stats.first_pid())
                .collect();
            let net_dev = pids.iter().find_map(|pid| {
                std::fs::read_to_string(self.cfg.procfs.join(pid.to_string()).join("net/dev")).ok()
            });
            if let Some(text) = net_dev {
                containers[i].interfaces = families::parse_net_dev(&text);
            }
        }
        containers
    }

    /// One collection's families as the exposition shows them, labelled afresh without the
    /// cache: the golden files' shape, and what the cached series are checked against.
    #[cfg(test)]
    pub(crate) fn families(&mut self, now_s: f64) -> Vec<crate::family::Family> {
        families::families(&self.read(), now_s)
    }

    /// One collection as a batch stamped `t_ms`.
    pub fn collect(&mut self, t_ms: i64) -> MetricBatch {
        let containers = self.read();
        self.cache.collect(&containers, t_ms)
    }

    /// Collects every interval (the first at once) until `shutdown` or the receiver is gone.
    ///
    /// Hundreds of cgroups mean thousands of small reads, so collections run off the async
    /// workers, on one thread kept for the collector's life. A blocking-pool thread per
    /// collection (idle ones exit after 10 s, the interval is 15 s) started each collection
    /// in a fresh or recycled malloc arena, and every arena that had held a collection's
    /// ~20 MiB of labels stayed that large: the agent's RSS moved between one and three times
    /// that with scheduling luck. One thread keeps one arena, warm from the last collection.
    pub async fn run(self, shutdown: CancellationToken, out: mpsc::Sender<MetricBatch>) {
        let mut tick = tokio::time::interval(self.cfg.interval);
        tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let stats = self.stats.clone();
        let (collect, mut done) = match spawn_collector(self) {
            Ok(channels) => channels,
            Err(error) => {
                tracing::error!(%error, "cannot start the container collector's thread");
                return;
            }
        };
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            let began = Instant::now();
            if collect.send(()).is_err() {
                tracing::error!("container collection failed");
                return;
            }
            let batch = tokio::select! {
                _ = shutdown.cancelled() => break,
                batch = done.recv() => match batch {
                    Some(batch) => batch,
                    // The thread is gone: a collection panicked.
                    None => {
                        tracing::error!("container collection failed");
                        return;
                    }
                },
            };
            stats.collections.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(series = batch.series.len(), took = ?began.elapsed(), "container metrics collected");
            tokio::select! {
                _ = shutdown.cancelled() => break,
                sent = out.send(batch) => if sent.is_err() { break },
            }
        }
        tracing::debug!("container collector stopped");
    }
}

/// Starts the thread that collects `source` once per message on the first channel and sends
/// each batch on the second. It ends when either channel's other end is dropped.
fn spawn_collector(
    mut source: CadvisorSource,
) -> std::io::Result<(std::sync::mpsc::Sender<()>, mpsc::Receiver<MetricBatch>)> {
    let (collect, requests) = std::sync::mpsc::channel::<()>();
    let (finished, done) = mpsc::channel(1);
    std::thread::Builder::new()
        .name("cadvisor".to_string())
        .spawn(move || {
            while requests.recv().is_ok() {
                let batch = source.collect(chrono::Utc::now().timestamp_millis());
                if finished.blocking_send(batch).is_err() {
                    break;
                }
            }
        })?;
    Ok((collect, done))
}

/// The six labels of the cgroup at `path`.
fn base(path: &str, identity: &Identity, pods: &PodIndex) -> Base {
    let mut b = Base {
        id: path.to_string(),
        ..Base::default()
    };
    match identity {
        Identity::Raw => {}
        Identity::Pod { uid } => {
            if let Some(pod) = pods.pod(uid) {
                b.pod = pod.name.clone();
                b.namespace = pod.namespace.clone();
            }
        }
        Identity::Container { uid, id, runtime } => {
            b.name = id.clone();
            let Some(pod) = pods.pod(uid) else {
                return b;
            };
            b.pod = pod.name.clone();
            b.namespace = pod.namespace.clone();
            // An id no status names is the pod's sandbox (pause) container.
            let (container, image, restarts) = match pod.containers.get(id) {
                Some(c) => (c.name.as_str(), c.image.as_str(), c.restart_count),
                None => ("", "", 0),
            };
            b.container = container.to_string();
            b.image = image.to_string();
            // CRI-O and docker name containers as the kubelet's dockershim did.
            if matches!(runtime, Runtime::Crio | Runtime::Docker) {
                let ctr = if container.is_empty() {
                    "POD"
                } else {
                    container
                };
                b.name = format!("k8s_{ctr}_{}_{}_{uid}_{restarts}", pod.name, pod.namespace);
            }
        }
    }
    b
}

/// `/dev/<name>` of a block device from `<sysfs>/dev/block/MAJ:MIN/uevent`, "" if unknown.
fn device_name(sysfs: &std::path::Path, (major, minor): (u32, u32)) -> String {
    std::fs::read_to_string(sysfs.join(format!("dev/block/{major}:{minor}/uevent")))
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("DEVNAME=").map(|n| format!("/dev/{n}")))
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
