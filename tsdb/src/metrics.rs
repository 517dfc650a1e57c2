//! The TSDB's own metrics, named as Prometheus 2.42 names them where it has them
//! (`prometheus_tsdb_*`, `{type="float"}` where Prometheus labels by sample type), and
//! rendered in the text format by [`crate::Tsdb::render_metrics`] for `/metrics`.
//!
//! Counters live where the events happen (the head's appends, the worker's compactions and
//! retention, the WAL's fsyncs); gauges are read from the store when rendered.

use crate::limits::Limits;
use crate::series::BatchStats;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Appended and refused samples, by reason.
#[derive(Debug, Default)]
pub(crate) struct AppendCounters {
    appended: AtomicU64,
    ooo_appended: AtomicU64,
    out_of_order: AtomicU64,
    out_of_bounds: AtomicU64,
    too_old: AtomicU64,
    /// Indexed as [`Limits::NAMES`].
    by_limit: [AtomicU64; 4],
}

impl AppendCounters {
    pub(crate) fn add(&self, stats: &BatchStats) {
        let add = |c: &AtomicU64, n: usize| {
            if n > 0 {
                c.fetch_add(n as u64, Ordering::Relaxed);
            }
        };
        add(&self.appended, stats.outcome.appended);
        add(&self.ooo_appended, stats.ooo_appended);
        add(&self.out_of_order, stats.out_of_order);
        add(&self.out_of_bounds, stats.out_of_bounds);
        add(&self.too_old, stats.too_old);
    }

    pub(crate) fn refused_by_limit(&self, limit: &str, samples: usize) {
        if let Some(i) = Limits::NAMES.iter().position(|n| *n == limit) {
            self.by_limit[i].fetch_add(samples as u64, Ordering::Relaxed);
        }
    }
}

/// Events of the store as a whole.
#[derive(Debug, Default)]
pub(crate) struct StoreCounters {
    pub(crate) compactions: AtomicU64,
    pub(crate) compactions_failed: AtomicU64,
    pub(crate) size_retentions: AtomicU64,
    pub(crate) time_retentions: AtomicU64,
}

impl StoreCounters {
    pub(crate) fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// Gauges read from the store when rendering.
pub(crate) struct Gauges {
    pub(crate) head_series: u64,
    pub(crate) head_chunks: u64,
    pub(crate) blocks_loaded: u64,
    pub(crate) blocks_bytes: u64,
    pub(crate) retention_limit_bytes: u64,
    pub(crate) wal_corruptions: u64,
    pub(crate) fsyncs: u64,
    pub(crate) fsync_seconds: f64,
}

pub(crate) fn render(app: &AppendCounters, store: &StoreCounters, g: &Gauges) -> String {
    let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, samples: &[(&str, String)]| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (suffix_and_labels, value) in samples {
            let _ = writeln!(out, "{name}{suffix_and_labels} {value}");
        }
    };
    let float = "{type=\"float\"}";
    family(
        "prometheus_tsdb_head_series",
        "gauge",
        "Total number of series in the head block.",
        &[("", g.head_series.to_string())],
    );
    family(
        "prometheus_tsdb_head_chunks",
        "gauge",
        "Total number of chunks in the head block.",
        &[("", g.head_chunks.to_string())],
    );
    family(
        "prometheus_tsdb_head_samples_appended_total",
        "counter",
        "Total number of appended samples.",
        &[(float, load(&app.appended).to_string())],
    );
    family(
        "prometheus_tsdb_head_out_of_order_samples_appended_total",
        "counter",
        "Total number of appended out of order samples.",
        &[("", load(&app.ooo_appended).to_string())],
    );
    family(
        "prometheus_tsdb_out_of_order_samples_total",
        "counter",
        "Total number of out of order samples ingestion failed attempts due to out of order being disabled.",
        &[(float, load(&app.out_of_order).to_string())],
    );
    family(
        "prometheus_tsdb_out_of_bound_samples_total",
        "counter",
        "Total number of out of bound samples ingestion failed attempts with out of order support disabled.",
        &[(float, load(&app.out_of_bounds).to_string())],
    );
    family(
        "prometheus_tsdb_too_old_samples_total",
        "counter",
        "Total number of out of order samples ingestion failed attempts with out of support enabled, but sample outside of time window.",
        &[(float, load(&app.too_old).to_string())],
    );
    let by_limit: Vec<(String, String)> = Limits::NAMES
        .iter()
        .zip(&app.by_limit)
        .map(|(name, c)| (format!("{{limit=\"{name}\"}}"), load(c).to_string()))
        .collect();
    let by_limit: Vec<(&str, String)> = by_limit
        .iter()
        .map(|(l, v)| (l.as_str(), v.clone()))
        .collect();
    family(
        "vigil_tsdb_limit_refused_samples_total",
        "counter",
        "Samples refused because their series broke an ingestion limit, by the limit's flag.",
        &by_limit,
    );
    family(
        "prometheus_tsdb_blocks_loaded",
        "gauge",
        "Number of currently loaded data blocks",
        &[("", g.blocks_loaded.to_string())],
    );
    family(
        "prometheus_tsdb_compactions_total",
        "counter",
        "Total number of compactions that were executed for the partition.",
        &[("", load(&store.compactions).to_string())],
    );
    family(
        "prometheus_tsdb_compactions_failed_total",
        "counter",
        "Total number of compactions that failed for the partition.",
        &[("", load(&store.compactions_failed).to_string())],
    );
    family(
        "prometheus_tsdb_storage_blocks_bytes",
        "gauge",
        "The number of bytes that are currently used for local storage by all blocks.",
        &[("", g.blocks_bytes.to_string())],
    );
    family(
        "prometheus_tsdb_retention_limit_bytes",
        "gauge",
        "Max number of bytes to be retained in the tsdb blocks, configured 0 means disabled",
        &[("", g.retention_limit_bytes.to_string())],
    );
    family(
        "prometheus_tsdb_size_retentions_total",
        "counter",
        "The number of times that blocks were deleted because the maximum number of bytes was exceeded.",
        &[("", load(&store.size_retentions).to_string())],
    );
    family(
        "prometheus_tsdb_time_retentions_total",
        "counter",
        "The number of times that blocks were deleted because the maximum time limit was exceeded.",
        &[("", load(&store.time_retentions).to_string())],
    );
    family(
        "prometheus_tsdb_wal_corruptions_total",
        "counter",
        "Total number of WAL corruptions.",
        &[("", g.wal_corruptions.to_string())],
    );
    // A summary without quantiles: sum and count are what rates and averages need, and
    // Prometheus's own quantiles are NaN until its first fsync anyway.
    family(
        "prometheus_tsdb_wal_fsync_duration_seconds",
        "summary",
        "Duration of write log fsync.",
        &[
            ("_sum", format!("{}", g.fsync_seconds)),
            ("_count", g.fsyncs.to_string()),
        ],
    );
    out
}
