//! The server's own metrics, rendered in the Prometheus text format at `/metrics`.
//!
//! Label values are bounded: HTTP requests are labelled by the matched route, never the raw
//! path, and rejection reasons come from a fixed set.

use crate::prom::encode::format_value;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

pub const HTTP_REQUESTS_TOTAL: &str = "vigil_http_requests_total";
pub const HTTP_REQUEST_SECONDS_TOTAL: &str = "vigil_http_request_duration_seconds_total";
pub const REMOTE_WRITE_SAMPLES_TOTAL: &str = "vigil_remote_write_samples_total";
pub const REMOTE_WRITE_REJECTED_TOTAL: &str = "vigil_remote_write_rejected_samples_total";
pub const LOKI_PUSH_ENTRIES_TOTAL: &str = "vigil_loki_push_entries_total";
pub const QUERIES_CANCELED_TOTAL: &str = "vigil_engine_queries_canceled_total";
pub const PROCESS_START_TIME: &str = "process_start_time_seconds";
pub const PROCESS_RSS: &str = "process_resident_memory_bytes";

/// Counters owned by the API layer.
#[derive(Debug)]
pub struct SelfMetrics {
    /// (route, status code) → (count, total seconds).
    http: Mutex<BTreeMap<(String, u16), (u64, f64)>>,
    pub remote_write_samples: AtomicU64,
    pub remote_write_out_of_order: AtomicU64,
    pub remote_write_duplicate: AtomicU64,
    /// Samples of series over a storage limit (labels per series, name or value length,
    /// series per metric).
    pub remote_write_over_limit: AtomicU64,
    pub loki_entries: AtomicU64,
    /// PromQL queries stopped because their client went away.
    pub queries_canceled: AtomicU64,
    start_time: f64,
}

impl Default for SelfMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl SelfMetrics {
    pub fn new() -> Self {
        SelfMetrics {
            http: Mutex::new(BTreeMap::new()),
            remote_write_samples: AtomicU64::new(0),
            remote_write_out_of_order: AtomicU64::new(0),
            remote_write_duplicate: AtomicU64::new(0),
            remote_write_over_limit: AtomicU64::new(0),
            loki_entries: AtomicU64::new(0),
            queries_canceled: AtomicU64::new(0),
            start_time: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0),
        }
    }

    /// Counts one finished HTTP request.
    pub fn observe_http(&self, route: &str, code: u16, seconds: f64) {
        if let Ok(mut m) = self.http.lock() {
            let e = m.entry((route.to_string(), code)).or_insert((0, 0.0));
            e.0 += 1;
            e.1 += seconds;
        }
    }

    /// Renders every metric, plus `gauges` from other components, in text format 0.0.4.
    pub fn render(&self, gauges: &[(&'static str, &'static str, f64)]) -> String {
        let mut out = String::new();
        header(
            &mut out,
            HTTP_REQUESTS_TOTAL,
            "HTTP requests served, by matched route and status code.",
            "counter",
        );
        let http = self.http.lock().map(|m| m.clone()).unwrap_or_default();
        for ((route, code), (n, _)) in &http {
            let _ = writeln!(
                out,
                "{HTTP_REQUESTS_TOTAL}{{code=\"{code}\",handler=\"{route}\"}} {n}"
            );
        }
        header(
            &mut out,
            HTTP_REQUEST_SECONDS_TOTAL,
            "Time spent serving HTTP requests, by matched route and status code.",
            "counter",
        );
        for ((route, code), (_, secs)) in &http {
            let _ = writeln!(
                out,
                "{HTTP_REQUEST_SECONDS_TOTAL}{{code=\"{code}\",handler=\"{route}\"}} {}",
                format_value(*secs)
            );
        }
        header(
            &mut out,
            REMOTE_WRITE_SAMPLES_TOTAL,
            "Samples accepted through remote write.",
            "counter",
        );
        let _ = writeln!(
            out,
            "{REMOTE_WRITE_SAMPLES_TOTAL} {}",
            self.remote_write_samples.load(Ordering::Relaxed)
        );
        header(
            &mut out,
            REMOTE_WRITE_REJECTED_TOTAL,
            "Samples refused through remote write, by reason.",
            "counter",
        );
        let _ = writeln!(
            out,
            "{REMOTE_WRITE_REJECTED_TOTAL}{{reason=\"duplicate_timestamp\"}} {}",
            self.remote_write_duplicate.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "{REMOTE_WRITE_REJECTED_TOTAL}{{reason=\"out_of_order\"}} {}",
            self.remote_write_out_of_order.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "{REMOTE_WRITE_REJECTED_TOTAL}{{reason=\"over_limit\"}} {}",
            self.remote_write_over_limit.load(Ordering::Relaxed)
        );
        header(
            &mut out,
            QUERIES_CANCELED_TOTAL,
            "PromQL queries stopped because their client went away.",
            "counter",
        );
        let _ = writeln!(
            out,
            "{QUERIES_CANCELED_TOTAL} {}",
            self.queries_canceled.load(Ordering::Relaxed)
        );
        header(
            &mut out,
            LOKI_PUSH_ENTRIES_TOTAL,
            "Log entries accepted through the Loki push API.",
            "counter",
        );
        let _ = writeln!(
            out,
            "{LOKI_PUSH_ENTRIES_TOTAL} {}",
            self.loki_entries.load(Ordering::Relaxed)
        );
        header(
            &mut out,
            PROCESS_START_TIME,
            "Start time of the process since unix epoch in seconds.",
            "gauge",
        );
        let _ = writeln!(
            out,
            "{PROCESS_START_TIME} {}",
            format_value(self.start_time)
        );
        if let Some(rss) = resident_memory_bytes() {
            header(
                &mut out,
                PROCESS_RSS,
                "Resident memory size in bytes.",
                "gauge",
            );
            let _ = writeln!(out, "{PROCESS_RSS} {rss}");
        }
        for (name, help, v) in gauges {
            header(&mut out, name, help, "gauge");
            let _ = writeln!(out, "{name} {}", format_value(*v));
        }
        out
    }
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// The process's resident set size from `/proc/self/statm` (Linux only).
fn resident_memory_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // 4 KiB pages on every platform Vigil targets; reading the page size needs libc.
    Some(pages * 4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_text_format() {
        let m = SelfMetrics::new();
        m.observe_http("/api/v1/query", 200, 0.5);
        m.observe_http("/api/v1/query", 200, 0.25);
        let text = m.render(&[("vigil_head_series", "Series in the head.", 3.0)]);
        assert!(
            text.contains("vigil_http_requests_total{code=\"200\",handler=\"/api/v1/query\"} 2\n")
        );
        assert!(text.contains("vigil_http_request_duration_seconds_total{code=\"200\",handler=\"/api/v1/query\"} 0.75\n"));
        assert!(text.contains("# TYPE vigil_head_series gauge\nvigil_head_series 3\n"));
    }
}
