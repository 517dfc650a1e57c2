//! Vigil's HTTP surface: one axum [`router`] that answers
//!
//! - the Prometheus HTTP API v1 in Prometheus's exact JSON, with its `errorType`s and status
//!   codes: `/api/v1/query` and `/api/v1/query_range` (with `timeout`, `limit`,
//!   `lookback_delta`, `stats`), `/api/v1/format_query`, `/api/v1/parse_query`,
//!   `/api/v1/query_exemplars`, `/api/v1/labels`, `/api/v1/label/<name>/values`,
//!   `/api/v1/series`, `/api/v1/metadata` (learned from remote write, [`MetadataStore`]),
//!   `/api/v1/targets` and `/api/v1/status/{buildinfo,runtimeinfo,config,flags,walreplay,tsdb}`
//!   ([`TsdbStatus`]);
//! - Prometheus remote write 1.0 at `/api/v1/write`, remote read (samples) at `/api/v1/read`,
//!   and `/federate` in the text exposition format;
//! - the alerting APIs: Prometheus's `/api/v1/rules` (filters `type`, `rule_name[]`,
//!   `rule_group[]`, `file[]`, `exclude_alerts`) and `/api/v1/alerts`, and Alertmanager's API v2
//!   `GET`/`POST /api/v2/alerts`, `/api/v2/receivers`, `/api/v2/status` over the in-process
//!   Alertmanager (404 when none is configured);
//! - the Loki API (`/loki/api/v1/push`, `query`, `query_range`, `labels`, `label/<name>/values`,
//!   `series`, `index/stats`, and 404s where Grafana probes for endpoints Vigil lacks);
//! - `/-/healthy`, `/-/ready`, `/-/reload` (with `--web.enable-lifecycle`) and the server's own
//!   metrics at `/metrics`.
//!
//! Handlers reach storage only through [`AppState`]: `model`'s `Querier` and `Appender`, the
//! PromQL [`promql::Engine`] and the [`logstore::LogStore`]. Blocking work (queries, appends
//! that wait for an fsync) runs on tokio's blocking pool, never on the async workers.
//!
//! ```no_run
//! # async fn run(state: api::AppState) -> std::io::Result<()> {
//! let app = api::router(std::sync::Arc::new(state));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9090").await?;
//! api::serve(listener, app, tokio_util::sync::CancellationToken::new()).await
//! # }
//! ```

mod alerting;
mod error;
mod loki;
mod params;
mod prom;
mod selfmetrics;
mod server;
mod state;
mod ui;

pub use error::{ApiError, ErrorType};
pub use params::{parse_duration, parse_prometheus_duration, parse_time};
pub use prom::encode::format_value;
pub use prom::metadata::{MetadataStore, MetricMeta};
pub use prom::status::{
    status_from_querier, HeadStats, TsdbStat, TsdbStatus, TsdbStatusFn, WalReplayFn,
    WalReplayStatus,
};
pub use selfmetrics::SelfMetrics;
pub use server::{router, serve};
pub use state::{AppState, CurrentRules, GaugeFn, Limits, ReloadFn, TextMetricsFn};
