//! What every handler shares: the stores, the query engine, limits and self-metrics.

use crate::prom::agent_targets::AgentTargets;
use crate::prom::metadata::MetadataStore;
use crate::prom::status::{TsdbStatusFn, WalReplayFn};
use crate::selfmetrics::SelfMetrics;
use logstore::LogStore;
use model::{Appender, Querier};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// Default bound on a remote-write or Loki push body as sent (compressed).
pub const DEFAULT_MAX_BODY_BYTES: usize = 32 << 20;
/// Default bound on a body after decompression.
pub const DEFAULT_MAX_DECOMPRESSED_BYTES: usize = 128 << 20;
/// Default bound on one log line, Loki's `max_line_size`.
pub const DEFAULT_MAX_LINE_BYTES: usize = 256 << 10;
/// Default bound on the labels of one series or stream (Loki's `max_label_names_per_series`
/// is 15; Prometheus has no default, 30 leaves room for Kubernetes label sets).
pub const DEFAULT_MAX_LABELS: usize = 30;

/// Bounds on what a request may carry.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest body accepted as sent, in bytes; larger bodies get 413.
    pub max_body_bytes: usize,
    /// Largest body after decompression, in bytes; larger bodies get 413.
    pub max_decompressed_bytes: usize,
    /// Largest log line, in bytes; a push with a longer line gets 400 and stores nothing.
    pub max_line_bytes: usize,
    /// Most labels on one series or stream.
    pub max_labels: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_decompressed_bytes: DEFAULT_MAX_DECOMPRESSED_BYTES,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            max_labels: DEFAULT_MAX_LABELS,
        }
    }
}

/// A gauge read when `/metrics` is scraped: name, help, current value.
pub type GaugeFn = Arc<dyn Fn() -> Vec<(&'static str, &'static str, f64)> + Send + Sync>;

/// Metric families rendered by another component in the text format (with their own labels,
/// HELP and TYPE), appended to `/metrics` at scrape time.
pub type TextMetricsFn = Arc<dyn Fn() -> String + Send + Sync>;

/// The rule manager in service. `/-/reload` and SIGHUP put a new one in its place, so
/// handlers take the current one per request.
#[derive(Clone, Debug, Default)]
pub struct CurrentRules(Arc<std::sync::RwLock<Option<Arc<alertmanager::RuleManager>>>>);

impl CurrentRules {
    pub fn get(&self) -> Option<Arc<alertmanager::RuleManager>> {
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub fn set(&self, rules: Arc<alertmanager::RuleManager>) {
        *self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(rules);
    }
}

/// Reloads the configuration and rule files (`/-/reload`); the error says why the old ones
/// stay in service.
pub type ReloadFn = Arc<
    dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>>
        + Send
        + Sync,
>;

/// The server's shared state.
pub struct AppState {
    pub querier: Arc<dyn Querier>,
    pub appender: Arc<dyn Appender>,
    pub engine: Arc<promql::Engine>,
    pub logs: Arc<LogStore>,
    pub limits: Limits,
    pub metrics: SelfMetrics,
    /// Gauges owned by other components (head series, …), read at scrape time.
    pub gauges: Vec<GaugeFn>,
    /// Labelled families owned by other components (remote write queues, …).
    pub text_metrics: Vec<TextMetricsFn>,
    /// False until startup (WAL replay, rule loading) is done; `/-/ready` answers 503 until then.
    pub ready: AtomicBool,
    /// The options `engine` was built with; queries that carry `timeout`, `lookback_delta` or
    /// `stats` run on an engine derived from them. Set it together with `engine`.
    pub engine_options: promql::EngineOptions,
    /// Metric types, help and units learned from remote-write metadata, for `/api/v1/metadata`.
    pub metadata: MetadataStore,
    /// The server configuration as YAML with secrets written as `<secret>`, for
    /// `/api/v1/status/config`. Empty until the binary sets it.
    pub config_yaml: String,
    /// Cardinality statistics of the store for `/api/v1/status/tsdb`, given the top-N limit.
    /// When `None` the answer is computed from `querier`'s series, without chunk counts.
    pub tsdb_status: Option<TsdbStatusFn>,
    /// Progress of the write-ahead-log replay for `/api/v1/status/walreplay`; `None` means the
    /// store has no WAL to replay.
    pub wal_replay: Option<WalReplayFn>,
    /// How long samples are kept, as `/api/v1/status/runtimeinfo` reports it (`15d`, `1GiB`).
    pub storage_retention: String,
    /// When the server started, for `/api/v1/status/runtimeinfo`.
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// The rule manager behind `/api/v1/rules` and `/api/v1/alerts`; empty answers no rules.
    pub rules: CurrentRules,
    /// What `POST /-/reload` runs; `None` (the default, as Prometheus without
    /// `--web.enable-lifecycle`) answers 403.
    pub reload: Option<ReloadFn>,
    /// The in-process Alertmanager behind `/api/v2/*`; `None` makes those answer 404.
    pub alertmanager: Option<Arc<alertmanager::Alertmanager>>,
    /// The latest target report of every agent, merged into `/api/v1/targets`.
    pub agent_targets: AgentTargets,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl AppState {
    pub fn new(
        querier: Arc<dyn Querier>,
        appender: Arc<dyn Appender>,
        engine: Arc<promql::Engine>,
        logs: Arc<LogStore>,
    ) -> Self {
        AppState {
            querier,
            appender,
            engine,
            logs,
            limits: Limits::default(),
            metrics: SelfMetrics::new(),
            gauges: Vec::new(),
            text_metrics: Vec::new(),
            ready: AtomicBool::new(true),
            engine_options: promql::EngineOptions::default(),
            metadata: MetadataStore::default(),
            config_yaml: String::new(),
            tsdb_status: None,
            wal_replay: None,
            storage_retention: String::new(),
            started_at: chrono::Utc::now(),
            rules: CurrentRules::default(),
            reload: None,
            alertmanager: None,
            agent_targets: AgentTargets::default(),
        }
    }
}
