//! The agent: one [`AgentConfig`] wired into the node collector, the tailer and the two
//! sinks, run until shutdown and stopped in order.
//!
//! Shutdown order: the sources stop (the tailer stops reading, the node collector stops
//! collecting) and close their output channels; the sinks then flush what they hold; the
//! tailer records the receiver's acknowledgements of that flush and writes its final
//! checkpoint. A server that does not answer would hold the flush forever, so after
//! [`SHUTDOWN_FLUSH_TIMEOUT`] the sinks are aborted: queued metrics and log lines stay in
//! their on-disk queues for the next start (which resumes tailing after the queued lines),
//! lines not yet queued are read again.
//!
//! With a [`AgentConfig::web_listen_address`], the agent also serves `/-/healthy`, `/-/ready`,
//! its own `/metrics` (`http.rs`) and the scraper's `/api/v1/targets`; it is ready once every
//! component has started, and stops answering when shutdown begins.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::cadvisor::{CadvisorConfig, CadvisorSource, SharedPods};
use crate::http::{self, WebState};
use crate::node::{NodeConfig, DEFAULT_JOB, DEFAULT_PROCFS, DEFAULT_SCRAPE_INTERVAL};
use crate::scrape::{targets_router, ScrapeFile, Scraper};
use crate::selfmetrics::AgentMetrics;
use crate::ship::{LokiConfig, RemoteWriteConfig, DEFAULT_QUEUE_MAX_BYTES, LOG_QUEUE_DIR};
use crate::ship::{TargetsPushConfig, TargetsPusher};
use crate::ship::{
    DEFAULT_REMOTE_WRITE_QUEUE_MAX_BYTES, DEFAULT_REMOTE_WRITE_SHARDS, REMOTE_WRITE_QUEUE_DIR,
};
use crate::tail::{TailConfig, DEFAULT_MAX_LINE_BYTES, DEFAULT_PODS_PATH};
use crate::Error;

/// Where checkpoints live unless configured.
pub const DEFAULT_STATE_PATH: &str = "/var/lib/vigil-agent";
/// Where `vigil agent` serves its probes and metrics unless told otherwise. Not node_exporter's
/// 9100: the agent runs in the host's network namespace, where a node_exporter DaemonSet often
/// still runs during a migration. 9091, next to the server's 9090, is the Pushgateway's
/// default, which runs as an ordinary pod and never shares the node's namespace.
pub const DEFAULT_WEB_LISTEN_ADDRESS: &str = "0.0.0.0:9091";
/// How long the sinks may take to flush after shutdown before they are aborted.
pub const SHUTDOWN_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);
/// Batches in flight between a source and its sink. Small: the sinks have their own queues
/// (remote write) or want back-pressure on the source (Loki).
const CHANNEL_CAPACITY: usize = 8;

/// Everything the agent needs to run on one node.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// The remote-write receiver, e.g. `http://127.0.0.1:9090/api/v1/write`.
    pub remote_write_url: String,
    /// The Loki push endpoint, e.g. `http://127.0.0.1:9090/loki/api/v1/push`.
    pub logs_push_url: String,
    /// This node's name: the `node` label of log lines and the `instance` label of node
    /// metrics. Default: the `NODE_NAME` or `HOSTNAME` environment variable, else `localhost`.
    pub node_name: String,
    /// The procfs root; default [`DEFAULT_PROCFS`] (`/proc`).
    pub procfs: PathBuf,
    /// The sysfs root; default [`crate::DEFAULT_SYSFS`] (`/sys`).
    pub sysfs: PathBuf,
    /// The host's root filesystem (mounts measured, os-release read); default `/`.
    pub rootfs: PathBuf,
    /// kubelet's pod log directory; default [`DEFAULT_PODS_PATH`] (`/var/log/pods`).
    pub logs_path: PathBuf,
    /// Plain-file globs such as `/var/log/*.log`; default none.
    pub log_files: Vec<String>,
    /// The longest log line shipped whole, in bytes; default [`DEFAULT_MAX_LINE_BYTES`]
    /// (256 KiB), at least [`crate::MIN_MAX_LINE_BYTES`].
    pub max_line_bytes: usize,
    /// The directory of `positions.json`; default [`DEFAULT_STATE_PATH`].
    pub state_path: PathBuf,
    /// The most bytes of log pushes waiting in `<state_path>/logqueue` while the server is
    /// away, before the tailer waits; default [`DEFAULT_QUEUE_MAX_BYTES`] (1 GiB).
    pub logs_queue_max_bytes: u64,
    /// The most bytes of remote-write requests waiting in `<state_path>/wal-remote-write`
    /// while the receiver is away, before the oldest are dropped; default
    /// [`DEFAULT_REMOTE_WRITE_QUEUE_MAX_BYTES`] (256 MiB).
    pub remote_write_queue_max_bytes: u64,
    /// Remote-write requests in flight, one per shard of the series; default
    /// [`DEFAULT_REMOTE_WRITE_SHARDS`].
    pub remote_write_shards: usize,
    /// Time between node metric collections; default [`DEFAULT_SCRAPE_INTERVAL`] (15 s).
    pub scrape_interval: Duration,
    /// The `job` label of node metrics; default [`DEFAULT_JOB`] (`node`).
    pub job: String,
    /// Where to serve `/-/healthy`, `/-/ready` and `/metrics`; default none (no listener, as
    /// in `vigil up`, whose server already answers). `vigil agent` sets
    /// [`DEFAULT_WEB_LISTEN_ADDRESS`]. Port 0 picks a free port, logged as `listening`.
    pub web_listen_address: Option<SocketAddr>,
    /// Targets to scrape, in Prometheus's `scrape_configs` format; default none. Their
    /// samples ship with the node metrics; their health is at `/api/v1/targets`.
    pub scrape: ScrapeFile,
    /// Whether container metrics are read from the cgroup tree under `<sysfs>/fs/cgroup`, as
    /// the kubelet's `/metrics/cadvisor` reports them; default true.
    pub cadvisor: bool,
    /// The Kubernetes API server this node's pods are watched on (for the pod, namespace,
    /// container and image of container metrics); default none: the in-cluster API server,
    /// or no pod watch outside a cluster.
    pub kubernetes_api_server: Option<String>,
    /// Where the scrape targets are reported (`ship/targets.rs`); default derived from
    /// `remote_write_url` by [`crate::default_targets_push_url`], `None` reports nothing.
    pub targets_push_url: Option<String>,
    /// Time between target reports; default [`crate::DEFAULT_TARGETS_PUSH_INTERVAL`] (10 s).
    pub targets_push_interval: Duration,
}

impl AgentConfig {
    /// The defaults, shipping to the two given URLs.
    pub fn new(remote_write_url: impl Into<String>, logs_push_url: impl Into<String>) -> Self {
        let node_name = ["NODE_NAME", "HOSTNAME"]
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
            .unwrap_or_else(|| "localhost".to_string());
        let remote_write_url = remote_write_url.into();
        AgentConfig {
            targets_push_url: crate::default_targets_push_url(&remote_write_url),
            targets_push_interval: crate::DEFAULT_TARGETS_PUSH_INTERVAL,
            remote_write_url,
            logs_push_url: logs_push_url.into(),
            node_name,
            procfs: PathBuf::from(DEFAULT_PROCFS),
            sysfs: PathBuf::from(crate::DEFAULT_SYSFS),
            rootfs: PathBuf::from(crate::DEFAULT_ROOTFS),
            logs_path: PathBuf::from(DEFAULT_PODS_PATH),
            log_files: Vec::new(),
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            state_path: PathBuf::from(DEFAULT_STATE_PATH),
            logs_queue_max_bytes: DEFAULT_QUEUE_MAX_BYTES,
            remote_write_queue_max_bytes: DEFAULT_REMOTE_WRITE_QUEUE_MAX_BYTES,
            remote_write_shards: DEFAULT_REMOTE_WRITE_SHARDS,
            scrape_interval: DEFAULT_SCRAPE_INTERVAL,
            job: DEFAULT_JOB.to_string(),
            web_listen_address: None,
            scrape: ScrapeFile::default(),
            cadvisor: true,
            kubernetes_api_server: None,
        }
    }

    fn validate(&self) -> Result<(), Error> {
        let bad = |field, reason: &str| {
            Err(Error::Config {
                field,
                reason: reason.to_string(),
            })
        };
        if self.node_name.is_empty() {
            return bad("node_name", "must not be empty");
        }
        if self.job.is_empty() {
            return bad("job", "must not be empty");
        }
        if self.scrape_interval.is_zero() {
            return bad("scrape_interval", "must be positive");
        }
        Ok(())
    }
}

/// Runs the agent until `shutdown` fires, then flushes (see the module docs). Fails at start
/// on a bad setting or an unusable state directory; once running, trouble is logged and
/// retried, and only a panicking component makes it return an error.
pub async fn run_agent(cfg: AgentConfig, shutdown: CancellationToken) -> Result<(), Error> {
    cfg.validate()?;
    let mut remote_write = RemoteWriteConfig::new(
        &cfg.remote_write_url,
        cfg.state_path.join(REMOTE_WRITE_QUEUE_DIR),
    );
    remote_write.queue_max_bytes = cfg.remote_write_queue_max_bytes;
    remote_write.shards = cfg.remote_write_shards;
    let remote_write = remote_write.build()?;
    let mut loki = LokiConfig::new(&cfg.logs_push_url, cfg.state_path.join(LOG_QUEUE_DIR));
    loki.queue.max_bytes = cfg.logs_queue_max_bytes;
    let loki = loki.build()?;
    let node = NodeConfig {
        procfs: cfg.procfs.clone(),
        sysfs: cfg.sysfs.clone(),
        rootfs: cfg.rootfs.clone(),
        instance: cfg.node_name.clone(),
        job: cfg.job.clone(),
        interval: cfg.scrape_interval,
        ..NodeConfig::new(&cfg.node_name)
    }
    .build()?;
    // This node's pods, kept current by the scraper's pod watch, read by the container
    // collector (and the tailer, for pod labels).
    let pods = SharedPods::default();
    let cadvisor = match cfg.cadvisor {
        true => Some(
            CadvisorConfig {
                sysfs: cfg.sysfs.clone(),
                procfs: cfg.procfs.clone(),
                interval: cfg.scrape_interval,
                pods: pods.clone(),
                ..CadvisorConfig::new(&cfg.node_name)
            }
            .build()?,
        ),
        false => None,
    };
    let recovered = loki.recovered_positions();
    let tailer = TailConfig {
        pods_path: cfg.logs_path.clone(),
        globs: cfg.log_files.clone(),
        max_line_bytes: cfg.max_line_bytes,
        pods: Some(pods.clone()),
        // Lines a previous run queued are not read again: those still queued are sent from
        // the queue, those delivered after its last checkpoint write are checkpointed now.
        queued: recovered.queued,
        delivered: recovered.delivered,
        ..TailConfig::new(&cfg.node_name, &cfg.state_path)
    }
    .build()?;
    let scraper = Scraper::new(&cfg.scrape, &cfg.node_name).map_err(|e| Error::Config {
        field: "scrape_configs",
        reason: e.to_string(),
    })?;
    let scraper = scraper.with_pod_index(pods.clone(), cfg.kubernetes_api_server.clone());
    let targets = scraper.targets();
    let targets_pusher = match &cfg.targets_push_url {
        Some(url) => Some(
            TargetsPushConfig {
                interval: cfg.targets_push_interval,
                ..TargetsPushConfig::new(url, &cfg.node_name)
            }
            .build(targets.clone())?,
        ),
        None => None,
    };
    let web = Arc::new(WebState {
        metrics: AgentMetrics {
            remote_write: remote_write.stats(),
            loki: loki.stats(),
            node: node.stats(),
            tail: tailer.stats(),
            scrape: scraper.metrics(),
        },
        ready: AtomicBool::new(false),
    });
    let listener = match cfg.web_listen_address {
        Some(address) => Some(bind(address).await?),
        None => None,
    };
    tracing::info!(
        node = %cfg.node_name,
        remote_write = %cfg.remote_write_url,
        logs_push = %cfg.logs_push_url,
        "agent starting"
    );

    let (metrics_tx, metrics_rx) = mpsc::channel(CHANNEL_CAPACITY);
    let (logs_tx, logs_rx) = mpsc::channel(CHANNEL_CAPACITY);
    let (acks_tx, acks_rx) = mpsc::unbounded_channel();
    let abort = CancellationToken::new();

    let tasks: Vec<(&'static str, JoinHandle<()>)> = vec![
        (
            "scrape",
            tokio::spawn(scraper.run(shutdown.clone(), metrics_tx.clone())),
        ),
        (
            "targets",
            tokio::spawn(targets_task(targets_pusher, shutdown.clone())),
        ),
        (
            "cadvisor",
            tokio::spawn(cadvisor_task(
                cadvisor,
                shutdown.clone(),
                metrics_tx.clone(),
            )),
        ),
        ("node", tokio::spawn(node.run(shutdown.clone(), metrics_tx))),
        (
            "tailer",
            tokio::spawn(tailer.run(shutdown.clone(), logs_tx, acks_rx)),
        ),
        (
            "remote_write",
            tokio::spawn(remote_write.run(metrics_rx, abort.clone())),
        ),
        (
            "loki",
            tokio::spawn(loki.run(logs_rx, acks_tx, abort.clone())),
        ),
    ];
    let serving = match listener {
        Some((listener, address)) => {
            tracing::info!(%address, "listening");
            let app = http::router(web.clone()).merge(targets_router(targets));
            Some(tokio::spawn(http::serve(listener, app, shutdown.clone())))
        }
        None => None,
    };
    web.ready.store(true, Ordering::Release);

    shutdown.cancelled().await;
    web.ready.store(false, Ordering::Release);
    tracing::info!("agent stopping, flushing");
    let flush_deadline = tokio::time::sleep(SHUTDOWN_FLUSH_TIMEOUT);
    tokio::pin!(flush_deadline);
    let mut result = Ok(());
    for (component, mut handle) in tasks {
        let joined = tokio::select! {
            joined = &mut handle => joined,
            _ = &mut flush_deadline, if !abort.is_cancelled() => {
                tracing::warn!("flush deadline passed, abandoning unsent data");
                abort.cancel();
                handle.await
            }
        };
        if let Err(source) = joined {
            tracing::error!(component, error = %source, "agent component failed");
            if result.is_ok() {
                result = Err(Error::Task { component, source });
            }
        }
    }
    // The endpoint stopped accepting at shutdown; a scrape still hanging on it is cut off.
    if let Some(serving) = serving {
        serving.abort();
        let _ = serving.await;
    }
    tracing::info!("agent stopped");
    result
}

/// The container collector's task; with the collector off it ends at once, dropping its
/// sender so the remote-write sink still sees the channel close.
async fn cadvisor_task(
    source: Option<CadvisorSource>,
    shutdown: CancellationToken,
    out: mpsc::Sender<crate::ship::MetricBatch>,
) {
    if let Some(source) = source {
        source.run(shutdown, out).await;
    }
}

/// The target reporter's task; it ends at once when reports are off.
async fn targets_task(pusher: Option<TargetsPusher>, shutdown: CancellationToken) {
    if let Some(pusher) = pusher {
        pusher.run(shutdown).await;
    }
}

/// Binds the HTTP endpoint's listener; returns it with the address it got (port 0 resolved).
async fn bind(address: SocketAddr) -> Result<(tokio::net::TcpListener, SocketAddr), Error> {
    let listen_error = |source| Error::Listen { address, source };
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(listen_error)?;
    let bound = listener.local_addr().map_err(listen_error)?;
    Ok((listener, bound))
}
