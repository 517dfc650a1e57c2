//! The command line: subcommands and every flag, with help texts that explain each one.
//! Flag names follow Prometheus's where the meaning is the same.

use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Observability for Kubernetes: metrics, logs and alerts in one binary.
///
/// `vigil server` stores metrics and logs and answers PromQL and LogQL through the Prometheus
/// and Loki HTTP APIs; `vigil agent` collects node metrics and container logs and ships them to
/// a server; `vigil up` runs both in one process, watching this machine.
#[derive(Debug, Parser)]
#[command(name = "vigil", version, propagate_version = true)]
pub struct Cli {
    /// Log filter (error, warn, info, debug, trace, or a tracing filter like `api=debug`);
    /// the VIGIL_LOG environment variable overrides it.
    #[arg(long = "log.level", default_value = "info", global = true)]
    pub log_level: String,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Server and agent in one process, watching this machine: the way to try Vigil.
    Up(Box<UpArgs>),
    /// The server: remote write and Loki push in, PromQL and LogQL out, rules and alerts.
    Server(ServerArgs),
    /// The agent: node metrics and container logs, shipped to a server.
    Agent(AgentArgs),
    /// Validates rule files and configs as promtool and amtool do (exit code 1 on failure).
    #[command(subcommand)]
    Check(crate::check::CheckCommand),
    /// Runs rule unit tests in promtool's format (exit code 1 on failure).
    #[command(subcommand)]
    Test(crate::check::TestCommand),
}

/// Flags of the server's storage, queries and alerting, shared by `server` and `up`.
#[derive(Debug, Clone, Args)]
pub struct ServerCore {
    /// Configuration file in Prometheus's format; `global.evaluation_interval`,
    /// `global.external_labels` and `rule_files` are applied.
    #[arg(long = "config.file")]
    pub config_file: Option<PathBuf>,

    /// Directory of the time-series database.
    #[arg(long = "storage.tsdb.path", default_value = "data/tsdb")]
    pub tsdb_path: PathBuf,

    /// How long samples are kept: blocks whose every sample is older than this (counted back
    /// from the newest sample) are deleted. Default 15d when no retention flag is given; 0
    /// sets no time limit.
    #[arg(long = "storage.tsdb.retention.time", value_parser = parse_duration)]
    pub tsdb_retention_time: Option<Duration>,

    /// Most bytes blocks and WAL may take (B, KB, MB, GB, TB, PB, EB, each 1024 times the
    /// last, as Prometheus); the oldest blocks are deleted beyond it. Unset sets no bound.
    #[arg(long = "storage.tsdb.retention.size", value_parser = tsdb::parse_bytes)]
    pub tsdb_retention_size: Option<u64>,

    /// Time range of a block cut from the head (Prometheus's flag of the same name); for
    /// tests, which need blocks within seconds.
    #[arg(long = "storage.tsdb.min-block-duration", default_value = "2h", value_parser = parse_duration, hide = true)]
    pub tsdb_min_block_duration: Duration,

    /// How far behind the newest sample an out-of-order sample is still stored; 0 (the
    /// default) refuses every sample older than its series' newest, as Prometheus does.
    #[arg(long = "storage.tsdb.out-of-order-time-window", default_value = "0s", value_parser = parse_duration)]
    pub tsdb_out_of_order_window: Duration,

    /// Most labels on one ingested series, `__name__` included; a series with more is
    /// refused (a 400 naming this flag, the rest of the request stored). 0: no limit.
    #[arg(long = "storage.tsdb.max-labels-per-series", default_value_t = 0)]
    pub tsdb_max_labels_per_series: usize,

    /// Longest label name of an ingested series, in bytes; longer is refused. 0: no limit.
    #[arg(long = "storage.tsdb.max-label-name-length", default_value_t = 0)]
    pub tsdb_max_label_name_length: usize,

    /// Longest label value of an ingested series, in bytes; longer is refused. 0: no limit.
    #[arg(long = "storage.tsdb.max-label-value-length", default_value_t = 0)]
    pub tsdb_max_label_value_length: usize,

    /// Most series in the head with one metric name; new series beyond it are refused.
    /// 0: no limit.
    #[arg(long = "storage.tsdb.max-series-per-metric", default_value_t = 0)]
    pub tsdb_max_series_per_metric: usize,

    /// Directory of the log store (tantivy indexes).
    #[arg(long = "storage.logs.path", default_value = "data/logs")]
    pub storage_logs_path: PathBuf,

    /// Time window of one log partition (one tantivy index). Queries open only the partitions
    /// overlapping their range, and retention deletes whole partitions.
    #[arg(long = "storage.logs.partition", default_value = "1h", value_parser = parse_duration)]
    pub storage_logs_partition: Duration,

    /// How long log lines are kept: partitions entirely older than this are deleted. Unset or
    /// 0 keeps them forever, as Loki does by default.
    #[arg(long = "storage.logs.retention.time", value_parser = parse_duration)]
    pub storage_logs_retention_time: Option<Duration>,

    /// Most bytes the log partitions may take (B, KB, MB, GB, TB, PB, EB, each 1024 times the
    /// last, as --storage.tsdb.retention.size); the oldest partitions are deleted beyond it,
    /// never the newest. Unset or 0B sets no bound.
    #[arg(long = "storage.logs.retention.size", value_parser = tsdb::parse_bytes)]
    pub storage_logs_retention_size: Option<u64>,

    /// Prometheus rule file to load; repeat the flag for several files. Added to the
    /// `rule_files` of --config.file.
    #[arg(long = "rules.file")]
    pub rule_files: Vec<PathBuf>,

    /// How often rule groups without their own `interval` are evaluated, unless the config
    /// file's `global.evaluation_interval` says otherwise.
    #[arg(long = "rules.evaluation-interval", default_value = "1m", value_parser = parse_duration)]
    pub evaluation_interval: Duration,

    /// Longest outage after which a pending or firing alert's `for` state is still restored
    /// from ALERTS_FOR_STATE when the server starts.
    #[arg(long = "rules.alert.for-outage-tolerance", default_value = "1h", value_parser = parse_duration)]
    pub for_outage_tolerance: Duration,

    /// Least time an alert whose `for` is at least this long stays pending after a restart
    /// (rules with a shorter `for` start over).
    #[arg(long = "rules.alert.for-grace-period", default_value = "10m", value_parser = parse_duration)]
    pub for_grace_period: Duration,

    /// Alertmanager configuration file (Alertmanager's format, unchanged): alerts that fire are
    /// routed, grouped and sent to its receivers by the server itself.
    #[arg(long = "alertmanager.config.file")]
    pub alertmanager_config: Option<PathBuf>,

    /// Directory where the in-process Alertmanager keeps its silences and notification log.
    /// Default: `alertmanager` beside --storage.tsdb.path (data/alertmanager by default).
    #[arg(long = "alertmanager.storage.path")]
    pub alertmanager_storage: Option<PathBuf>,

    /// The URL under which Vigil is reached from outside, used in alert links
    /// (`generatorURL`, `externalURL`). Defaults to http://<listen address>.
    #[arg(long = "web.external-url")]
    pub external_url: Option<String>,

    /// Enables `POST /-/reload` (and PUT), as Prometheus's flag does; SIGHUP reloads either way.
    #[arg(long = "web.enable-lifecycle")]
    pub enable_lifecycle: bool,

    /// How far back a PromQL instant selector looks for the latest sample.
    #[arg(long = "query.lookback-delta", default_value = "5m", value_parser = parse_duration)]
    pub lookback_delta: Duration,

    /// Longest a query may run before it is aborted with a timeout error.
    #[arg(long = "query.timeout", default_value = "2m", value_parser = parse_duration)]
    pub query_timeout: Duration,

    /// Most samples a single query may load into memory.
    #[arg(long = "query.max-samples", default_value_t = 50_000_000)]
    pub query_max_samples: usize,
}

#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// Address to listen on for the HTTP API (port 0 picks a free port, which is logged).
    #[arg(long = "web.listen-address", default_value = "0.0.0.0:9090")]
    pub listen: SocketAddr,

    #[command(flatten)]
    pub core: ServerCore,
}

/// Flags of what the agent collects, shared by `agent` and `up`.
#[derive(Debug, Clone, Args)]
pub struct AgentSources {
    /// Name of this node, put on log lines (`node`) and metrics (`instance`).
    #[arg(long = "node-name", env = "NODE_NAME", default_value_t = default_node_name())]
    pub node_name: String,

    /// Mount point of the proc filesystem (the host's /proc when running in a container).
    #[arg(long = "path.procfs", default_value = "/proc")]
    pub procfs: PathBuf,

    /// Mount point of the sys filesystem (the host's /sys when running in a container).
    #[arg(long = "path.sysfs", default_value = "/sys")]
    pub sysfs: PathBuf,

    /// The host's root filesystem, for filesystem sizes and os-release (e.g. /host/root when
    /// running in a container).
    #[arg(long = "path.rootfs", default_value = "/")]
    pub rootfs: PathBuf,

    /// Collect container metrics from the cgroup tree under --path.sysfs, with the kubelet's
    /// /metrics/cadvisor names and labels; --collector.cadvisor=false turns it off.
    #[arg(long = "collector.cadvisor", default_value_t = true, num_args = 0..=1,
          default_missing_value = "true", action = clap::ArgAction::Set)]
    pub cadvisor: bool,

    /// Kubernetes API server this node's pods are listed and watched on (pod, namespace,
    /// container and image of container metrics); default: the in-cluster API server with the
    /// pod's ServiceAccount, or none outside a cluster.
    #[arg(long = "kubernetes.api-server")]
    pub kubernetes_api_server: Option<String>,

    /// Directory of Kubernetes container logs (<namespace>_<pod>_<uid>/<container>/<n>.log).
    #[arg(long = "logs.path", default_value = "/var/log/pods")]
    pub logs_path: PathBuf,

    /// Plain log files to tail, as a glob over the last path component (e.g. /var/log/*.log);
    /// repeat the flag for several.
    #[arg(long = "logs.files")]
    pub log_files: Vec<String>,

    /// The longest log line shipped whole (Loki's default max_line_size); a longer line is
    /// shipped in pieces of at most this size, each with the structured metadata split=<n>.
    #[arg(long = "logs.max-line-size", default_value = "256KB", value_parser = tsdb::parse_bytes)]
    pub max_line_size: u64,

    /// Directory of the agent's state, which survives restarts: log positions (checkpoints)
    /// and the on-disk queues of log pushes and remote-write requests.
    #[arg(long = "state.path", default_value = "data/agent")]
    pub state_path: PathBuf,

    /// Most bytes of log pushes kept on disk (under --state.path) while the log receiver is
    /// away; when full, the tailer waits and the files are the buffer again.
    #[arg(long = "logs.queue-max-bytes", default_value = "1GiB", value_parser = tsdb::parse_bytes)]
    pub logs_queue_max_bytes: u64,

    /// Most bytes of remote-write requests kept on disk (under --state.path) while the
    /// receiver is away, sent in order when it returns; when full, the oldest samples are
    /// dropped and counted (vigil_agent_samples_dropped_total{reason="queue_full"}).
    #[arg(long = "remote-write.queue-max-bytes", default_value = "256MiB", value_parser = tsdb::parse_bytes)]
    pub remote_write_queue_max_bytes: u64,

    /// Remote-write requests in flight at once: the series are split into this many shards
    /// by a hash of their labels, one request per shard at a time, so each series' samples
    /// arrive in order.
    #[arg(long = "remote-write.shards", default_value_t = collector::DEFAULT_REMOTE_WRITE_SHARDS, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=64))]
    pub remote_write_shards: usize,

    /// How often node metrics are collected.
    #[arg(long = "metrics.interval", default_value = "15s", value_parser = parse_duration)]
    pub interval: Duration,
}

#[derive(Debug, Clone, Args)]
pub struct AgentArgs {
    /// Remote-write endpoint metrics are shipped to (a Vigil server, Prometheus, Mimir, …).
    #[arg(
        long = "remote-write.url",
        default_value = "http://127.0.0.1:9090/api/v1/write"
    )]
    pub remote_write_url: String,

    /// Loki push endpoint log lines are shipped to (a Vigil server or Loki).
    #[arg(
        long = "logs.push-url",
        default_value = "http://127.0.0.1:9090/loki/api/v1/push"
    )]
    pub logs_push_url: String,

    /// Address to serve /-/healthy, /-/ready and the agent's own /metrics on (port 0 picks a
    /// free port, which is logged). Not 9100, which node_exporter holds on many nodes.
    #[arg(
        long = "web.listen-address",
        default_value = collector::DEFAULT_WEB_LISTEN_ADDRESS
    )]
    pub listen: Option<SocketAddr>,

    /// Prometheus-format config file whose `global` scrape settings and `scrape_configs` the
    /// agent scrapes (static targets, relabeling, limits); their health is served at
    /// /api/v1/targets on --web.listen-address.
    #[arg(long = "config.file")]
    pub config_file: Option<PathBuf>,

    /// Also scrape this node's pods annotated prometheus.io/scrape: "true" (with
    /// prometheus.io/port, /path, /scheme), found through the Kubernetes API server with the
    /// pod's ServiceAccount; the job is named kubernetes-pods.
    #[arg(long = "scrape.kubernetes-pods")]
    pub kubernetes_pods: bool,

    /// Where the agent reports its scrape targets (POST, Vigil's /api/v1/agent/targets) so the
    /// server's /api/v1/targets and Targets page list them with their last error. Default:
    /// derived from --remote-write.url when its path ends in /api/v1/write; empty disables.
    #[arg(long = "targets.push-url")]
    pub targets_push_url: Option<String>,

    /// Time between target reports; the server forgets an agent after three missed ones.
    #[arg(long = "targets.push-interval", default_value = "10s", value_parser = parse_duration)]
    pub targets_push_interval: Duration,

    #[command(flatten)]
    pub sources: AgentSources,
}

#[derive(Debug, Clone, Args)]
pub struct UpArgs {
    /// Address to listen on for the HTTP API and web UI (port 0 picks a free port, which is
    /// logged).
    #[arg(long = "web.listen-address", default_value = "127.0.0.1:9090")]
    pub listen: SocketAddr,

    #[command(flatten)]
    pub core: ServerCore,

    #[command(flatten)]
    pub sources: AgentSources,
}

impl UpArgs {
    pub fn server_args(&self) -> ServerArgs {
        ServerArgs {
            listen: self.listen,
            core: self.core.clone(),
        }
    }

    /// The agent of `vigil up` ships to the server at `base` (e.g. http://127.0.0.1:9090).
    /// Outside Kubernetes (no --logs.path directory) and with no --logs.files, it tails
    /// /var/log/*.log so a first try shows logs.
    pub fn agent_args(&self, base: &str) -> AgentArgs {
        let mut sources = self.sources.clone();
        if sources.log_files.is_empty() && !sources.logs_path.is_dir() {
            sources.log_files.push("/var/log/*.log".to_string());
        }
        AgentArgs {
            remote_write_url: format!("{base}/api/v1/write"),
            logs_push_url: format!("{base}/loki/api/v1/push"),
            // The server of `vigil up` answers the probes; a second listener would only clash.
            listen: None,
            // The server of `vigil up` reads --config.file; it does not scrape yet.
            config_file: None,
            kubernetes_pods: false,
            // Derived from remote_write_url: the server of `vigil up` takes the reports.
            targets_push_url: None,
            targets_push_interval: collector::DEFAULT_TARGETS_PUSH_INTERVAL,
            sources,
        }
    }
}

impl ServerCore {
    /// The log store's options from the `--storage.logs.*` flags; zero means "no bound".
    pub fn log_store_options(&self) -> logstore::LogStoreOptions {
        logstore::LogStoreOptions {
            partition: self.storage_logs_partition,
            retention_time: self.storage_logs_retention_time.filter(|d| !d.is_zero()),
            retention_bytes: self.storage_logs_retention_size.filter(|b| *b > 0),
            ..logstore::LogStoreOptions::default()
        }
    }
}

/// A Prometheus duration (`30s`, `1m30s`) or float seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let ms = api::parse_duration(s)?;
    u64::try_from(ms)
        .map(Duration::from_millis)
        .map_err(|_| format!("duration {s:?} must not be negative"))
}

fn default_node_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn log_store_flags_become_its_options() {
        let cli = Cli::try_parse_from([
            "vigil",
            "server",
            "--storage.logs.partition=2h",
            "--storage.logs.retention.time=7d",
            "--storage.logs.retention.size=50GB",
        ])
        .unwrap();
        let Command::Server(server) = cli.command else {
            panic!("not the server command")
        };
        let options = server.core.log_store_options();
        assert_eq!(options.partition, Duration::from_secs(7200));
        assert_eq!(options.retention_time, Some(Duration::from_secs(7 * 86400)));
        assert_eq!(options.retention_bytes, Some(50 << 30));

        let cli =
            Cli::try_parse_from(["vigil", "server", "--storage.logs.retention.time=0s"]).unwrap();
        let Command::Server(server) = cli.command else {
            panic!("not the server command")
        };
        let options = server.core.log_store_options();
        assert_eq!(options.partition, logstore::DEFAULT_PARTITION);
        assert_eq!(
            (options.retention_time, options.retention_bytes),
            (None, None)
        );
        assert!(
            Cli::try_parse_from(["vigil", "server", "--storage.logs.retention.size=10XB"]).is_err()
        );
    }

    #[test]
    fn up_tails_var_log_when_not_on_a_kubernetes_node() {
        let cli = Cli::try_parse_from(["vigil", "up", "--logs.path=/nonexistent/pods"]).unwrap();
        let Command::Up(up) = cli.command else {
            panic!("expected up")
        };
        let agent = up.agent_args("http://127.0.0.1:9090");
        assert_eq!(agent.sources.log_files, vec!["/var/log/*.log".to_string()]);
        assert_eq!(agent.remote_write_url, "http://127.0.0.1:9090/api/v1/write");
        assert_eq!(
            agent.logs_push_url,
            "http://127.0.0.1:9090/loki/api/v1/push"
        );

        // On a node (the pods directory exists) or with explicit files, nothing is added.
        let dir = tempfile::tempdir().unwrap();
        let arg = format!("--logs.path={}", dir.path().display());
        let cli = Cli::try_parse_from(["vigil", "up", arg.as_str()]).unwrap();
        let Command::Up(up) = cli.command else {
            panic!("expected up")
        };
        assert!(up.agent_args("http://x").sources.log_files.is_empty());
        assert_eq!(up.agent_args("http://x").listen, None, "no second listener");
    }

    #[test]
    fn agent_serves_its_endpoint_on_9091_unless_told() {
        let cli = Cli::try_parse_from(["vigil", "agent"]).unwrap();
        let Command::Agent(agent) = cli.command else {
            panic!("expected agent")
        };
        assert_eq!(agent.listen, Some(SocketAddr::from(([0, 0, 0, 0], 9091))));
        let cli =
            Cli::try_parse_from(["vigil", "agent", "--web.listen-address=127.0.0.1:0"]).unwrap();
        let Command::Agent(agent) = cli.command else {
            panic!("expected agent")
        };
        assert_eq!(agent.listen, Some(SocketAddr::from(([127, 0, 0, 1], 0))));
        assert!(Cli::try_parse_from(["vigil", "agent", "--web.listen-address=nope"]).is_err());
    }

    #[test]
    fn every_flag_has_help() {
        fn walk(cmd: &clap::Command) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                assert!(
                    arg.get_help().is_some() || arg.get_long_help().is_some(),
                    "{} --{id} has no help",
                    cmd.get_name()
                );
            }
            for sub in cmd.get_subcommands() {
                walk(sub);
            }
        }
        walk(&Cli::command());
    }
}
