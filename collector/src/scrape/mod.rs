//! Scraping: Prometheus-style pull of `/metrics` endpoints, configured with Prometheus's own
//! `scrape_configs` and shipped through the agent's remote-write sink.
//!
//! ```text
//!  ScrapeFile ──▶ Scraper ── one pool per job ── one loop per target ──▶ MetricBatch
//!  (config.rs)  (manager.rs)   ▲ relabel_configs   (scrape_loop.rs)       (to the sink)
//!                              │ (target.rs)        fetch.rs → process.rs
//!  discovery ── GroupUpdate ───┘                    metric_relabel_configs, staleness
//! ```
//!
//! - `config.rs`: the file (`global`, `scrape_configs`) with Prometheus's defaults.
//! - `target.rs`: discovered labels → target labels and URL; the jittered phase.
//! - `fetch.rs`: the GET with Prometheus's `Accept`, gzip, timeout and body bound, through
//!   the job's own client (`http_config`: TLS, proxy, credentials, built by `httpconf`).
//! - `process.rs`: body → series, `honor_labels`, limits, staleness, report series.
//! - `scrape_loop.rs`: the timing of one target and its end-of-run staleness.
//! - `manager.rs`: pools and target sync; `api.rs`: `/api/v1/targets`.
//! - `metrics.rs`: the scraper's own `prometheus_target_*` and `prometheus_sd_*` metrics.

mod api;
mod config;
mod fetch;
mod manager;
mod metrics;
mod process;
mod scrape_loop;
mod target;

pub use api::targets_router;
pub use config::{
    GlobalConfig, PoolConfig, ScrapeConfig, ScrapeFile, StaticConfig,
    DEFAULT_GLOBAL_SCRAPE_INTERVAL, DEFAULT_METRICS_PATH, DEFAULT_SCHEME, DEFAULT_SCRAPE_TIMEOUT,
    MAX_BODY_SIZE,
};
pub use fetch::ACCEPT_HEADER;
pub use manager::{GroupUpdate, Scraper, TargetsView};
pub use metrics::ScrapeMetrics;
pub use target::TargetGroup;

/// Why a scrape configuration could not be used.
#[derive(thiserror::Error, Debug)]
pub enum ScrapeError {
    /// The file is not valid YAML, has an unknown key, or a value out of range.
    #[error("scrape config: {0}")]
    Config(String),
    /// The file could not be read.
    #[error("reading scrape config {path}")]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A job's `http_config` could not be turned into a client (an unreadable or invalid
    /// PEM file, a bad proxy URL).
    #[error("scrape config: job {job:?}: {error}")]
    Http {
        job: String,
        error: crate::httpconf::HttpConfigError,
    },
}

impl ScrapeFile {
    /// Reads and validates a config file; relative file paths in it (CA, certificates,
    /// credentials) are taken from the file's directory.
    pub fn load(path: &std::path::Path) -> Result<ScrapeFile, ScrapeError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScrapeError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut file = ScrapeFile::parse(&text)?;
        file.resolve_paths(path.parent().unwrap_or(std::path::Path::new(".")));
        Ok(file)
    }
}

#[cfg(test)]
mod http_tests;
#[cfg(test)]
mod tests;
