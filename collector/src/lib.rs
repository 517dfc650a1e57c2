//! Vigil's agent: collects node metrics and container logs on a Kubernetes node and ships
//! them to a Vigil server (or anything that speaks Prometheus remote write and Loki push).
//!
//! The agent is a set of components wired by channels, each built from a config struct and
//! run as a task that takes a shutdown signal (Vector's source/sink model):
//!
//! ```text
//!  NodeSource ──MetricBatch──▶ RemoteWriteSink ──remote write 1.0──▶ /api/v1/write
//!  Tailer ──────LogBatch─────▶ LokiSink ─────────Loki push─────────▶ /loki/api/v1/push
//!     ▲                           │
//!     └──── acked Positions ◀─────┘   (checkpoints advance only after a 2xx)
//! ```
//!
//! - [`NodeConfig`] → [`NodeSource`]: node_exporter 1.5's dashboard collectors ([`NODE_COLLECTORS`]:
//!   cpu, stat, meminfo, loadavg, filesystem, diskstats, netdev, netstat, sockstat, pressure,
//!   vmstat, filefd, time, uname, os) over procfs, sysfs and rootfs paths, with
//!   node_exporter's names, HELP texts, types and labels.
//! - [`TailConfig`] → [`Tailer`]: container logs under `/var/log/pods` (CRI format, partial
//!   lines joined) and plain files from globs, followed by inode through truncation and
//!   replacement, with checkpoints in `positions.json`.
//! - [`RemoteWriteConfig`] → [`RemoteWriteSink`] and [`LokiConfig`] → [`LokiSink`]: batching,
//!   snappy-compressed protobuf, bounded on-disk queues under the state directory that
//!   survive an outage and a restart, retries with backoff on network errors, 5xx and 429.
//! - [`ScrapeFile`] → [`Scraper`]: Prometheus's `scrape_configs` (static targets and this
//!   node's pods from [`KubernetesSdConfig`], `relabel_configs`, `metric_relabel_configs`,
//!   `honor_labels`, limits), scraped at a jittered phase with the report series and
//!   staleness markers, target health served by [`targets_router`] at `/api/v1/targets`.
//! - [`HttpClientConfig`] → [`HttpClient`]: Prometheus's `http_config` (`tls_config`,
//!   `basic_auth`/`authorization`/`bearer_token[_file]` re-read per request, `proxy_url`),
//!   shared by scrape jobs and remote-write queues.
//! - [`expo`]: the exposition parser for text format 0.0.4 and OpenMetrics 1.0, pure
//!   functions from a scraped body to families and samples, with a line-numbered error.
//! - [`run_agent`] wires them from one [`AgentConfig`] and stops them in order on shutdown;
//!   with a `web_listen_address` it also serves `/-/healthy`, `/-/ready` and its own
//!   `/metrics` (sent, failed and dropped samples, queue depth, log lines and bytes shipped,
//!   files tailed, node collection time, process memory and CPU; names in [`selfmetrics`]).
//!
//! ```no_run
//! # async fn example() -> Result<(), collector::Error> {
//! use collector::{run_agent, AgentConfig};
//! use tokio_util::sync::CancellationToken;
//!
//! let mut cfg = AgentConfig::new(
//!     "http://vigil:9090/api/v1/write",
//!     "http://vigil:9090/loki/api/v1/push",
//! );
//! cfg.node_name = "node-1".into();
//! cfg.log_files = vec!["/var/log/*.log".into()];
//! run_agent(cfg, CancellationToken::new()).await
//! # }
//! ```

mod agent;
mod cadvisor;
mod discovery;
mod error;
pub mod expo;
mod family;
mod http;
mod httpconf;
mod node;
mod scrape;
pub mod selfmetrics;
mod ship;
mod tail;

pub use agent::{
    run_agent, AgentConfig, DEFAULT_STATE_PATH, DEFAULT_WEB_LISTEN_ADDRESS, SHUTDOWN_FLUSH_TIMEOUT,
};
pub use cadvisor::{
    CadvisorConfig, CadvisorSource, CadvisorStats, PodIndex, PodMeta, SharedPods,
    CADVISOR_METRICS_PATH, DEFAULT_CADVISOR_JOB,
};
pub use discovery::{KubernetesSdConfig, Selector, ANNOTATED_PODS_JOB, SERVICE_ACCOUNT_DIR};
pub use error::Error;
pub use httpconf::{
    HttpClient, HttpClientConfig, HttpConfigError, ProxyConfig, TlsConfig, TlsVersion,
};
pub use node::{
    NodeConfig, NodeSource, NodeStats, DEFAULT_DISKSTATS_EXCLUDE, DEFAULT_FS_TYPES_EXCLUDE,
    DEFAULT_JOB, DEFAULT_MOUNT_POINTS_EXCLUDE, DEFAULT_NETDEV_EXCLUDE, DEFAULT_NETSTAT_FIELDS,
    DEFAULT_PROCFS, DEFAULT_ROOTFS, DEFAULT_SCRAPE_INTERVAL, DEFAULT_SYSFS, DEFAULT_UDEV_DATA,
    DEFAULT_VMSTAT_FIELDS, NODE_COLLECTORS,
};
pub use scrape::{
    targets_router, GlobalConfig, GroupUpdate, PoolConfig, ScrapeConfig, ScrapeError, ScrapeFile,
    ScrapeMetrics, Scraper, StaticConfig, TargetGroup, TargetsView, ACCEPT_HEADER,
    DEFAULT_GLOBAL_SCRAPE_INTERVAL, DEFAULT_METRICS_PATH, DEFAULT_SCHEME, DEFAULT_SCRAPE_TIMEOUT,
    MAX_BODY_SIZE,
};
pub use ship::{
    default_targets_push_url, TargetsPushConfig, TargetsPusher, DEFAULT_TARGETS_PUSH_INTERVAL,
    TARGETS_PUSH_PATH,
};
pub use ship::{
    render_forward_metrics, Auth, ForwardConfig, ForwardingAppender, QueueConfig, RemoteWriteQueue,
    Secret,
};
pub use ship::{
    Backoff, LogBatch, LokiConfig, LokiSink, MetricBatch, RecoveredPositions, RemoteWriteConfig,
    RemoteWriteSink, SinkStats, DEFAULT_BATCH_BYTES, DEFAULT_BATCH_WAIT, DEFAULT_MAX_BACKOFF,
    DEFAULT_MAX_SAMPLES_PER_SEND, DEFAULT_METADATA_INTERVAL, DEFAULT_MIN_BACKOFF,
    DEFAULT_REMOTE_WRITE_QUEUE_MAX_BYTES, DEFAULT_REMOTE_WRITE_SHARDS, DEFAULT_REQUEST_TIMEOUT,
    MAX_RETRY_AFTER, REMOTE_WRITE_QUEUE_DIR, USER_AGENT,
};
pub use ship::{
    LogQueueConfig, LogQueueError, WhenFull, DEFAULT_MAX_IN_FLIGHT, DEFAULT_QUEUE_MAX_BYTES,
    DEFAULT_SEGMENT_BYTES, LOG_QUEUE_DIR,
};
pub use tail::{
    expand_glob, Position, TailConfig, TailStats, Tailer, APP_LABEL, DEFAULT_MAX_LINE_BYTES,
    DEFAULT_PODS_PATH, DEFAULT_RESCAN_INTERVAL, MIN_MAX_LINE_BYTES, PLAIN_FILE_JOB, POSITIONS_FILE,
    SPLIT_METADATA,
};
