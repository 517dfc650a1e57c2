//! The queues' self-metrics in the text exposition format, under Prometheus's names and
//! labels (`remote_name`, `url`), so dashboards built for Prometheus's remote write work.

use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{QueueStats, RemoteWriteQueue};

/// Samples handed to the queues, before relabeling.
pub const SAMPLES_IN_TOTAL: &str = "prometheus_remote_storage_samples_in_total";

/// Per-queue metrics: name, help, type, and how to read the value.
type Reader = fn(&QueueStats) -> f64;
const PER_QUEUE: &[(&str, &str, &str, Reader)] = &[
    (
        "prometheus_remote_storage_samples_total",
        "Total number of samples sent to remote storage.",
        "counter",
        |s| s.sent.load(Ordering::Relaxed) as f64,
    ),
    (
        "prometheus_remote_storage_samples_failed_total",
        "Total number of samples which failed on send to remote storage, non-recoverable errors.",
        "counter",
        |s| s.failed.load(Ordering::Relaxed) as f64,
    ),
    (
        "prometheus_remote_storage_samples_retried_total",
        "Total number of samples which failed on send to remote storage but were retried because the send error was recoverable.",
        "counter",
        |s| s.retried.load(Ordering::Relaxed) as f64,
    ),
    (
        "prometheus_remote_storage_samples_dropped_total",
        "Total number of samples which were dropped before being sent to remote storage: by relabeling, a full queue, or shutdown.",
        "counter",
        |s| s.dropped.load(Ordering::Relaxed) as f64,
    ),
    (
        "vigil_remote_storage_samples_overflowed_total",
        "Samples dropped because a shard's queue was at capacity (part of prometheus_remote_storage_samples_dropped_total).",
        "counter",
        |s| s.overflowed.load(Ordering::Relaxed) as f64,
    ),
    (
        "prometheus_remote_storage_samples_pending",
        "The number of samples pending in the queues shards to be sent to the remote storage.",
        "gauge",
        |s| s.pending.load(Ordering::Relaxed) as f64,
    ),
    (
        "prometheus_remote_storage_bytes_total",
        "The total number of bytes of data (not metadata) sent by the queue after compression.",
        "counter",
        |s| s.bytes.load(Ordering::Relaxed) as f64,
    ),
    (
        "prometheus_remote_storage_shards",
        "The number of shards used for parallel sending to the remote storage.",
        "gauge",
        |s| s.shards.load(Ordering::Relaxed) as f64,
    ),
    (
        "prometheus_remote_storage_shards_desired",
        "The number of shards that the queues shard calculation wants to run based on the rate of samples in vs. samples out.",
        "gauge",
        |s| s.desired_shards.load(Ordering::Relaxed) as f64,
    ),
];

/// Renders every queue's metrics, each family once with one line per queue.
pub fn render_metrics(queues: &[Arc<RemoteWriteQueue>]) -> String {
    let mut out = String::new();
    if queues.is_empty() {
        return out;
    }
    let samples_in: u64 = queues
        .iter()
        .map(|q| q.shared.stats.samples_in.load(Ordering::Relaxed))
        .sum();
    let _ = writeln!(out, "# HELP {SAMPLES_IN_TOTAL} Samples in to remote storage, compare to samples out for queue managers.");
    let _ = writeln!(out, "# TYPE {SAMPLES_IN_TOTAL} counter");
    let _ = writeln!(out, "{SAMPLES_IN_TOTAL} {samples_in}");
    for (name, help, kind, read) in PER_QUEUE {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for q in queues {
            let _ = writeln!(
                out,
                "{name}{{remote_name=\"{}\",url=\"{}\"}} {}",
                escape(&q.shared.name),
                escape(&q.shared.url),
                read(&q.shared.stats)
            );
        }
    }
    out
}

/// Escapes a label value for the text format.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_each_family_once_with_queue_labels() {
        let mut cfg = super::super::ForwardConfig::new("http://127.0.0.1:9/api/v1/write");
        cfg.name = Some("mimir".into());
        let a = cfg.clone().build().unwrap();
        cfg.name = Some("thanos".into());
        let b = cfg.build().unwrap();
        a.shared.stats.sent.store(7, Ordering::Relaxed);
        let text = render_metrics(&[a, b]);
        assert_eq!(
            text.matches("# TYPE prometheus_remote_storage_samples_total counter")
                .count(),
            1
        );
        assert!(text.contains(
            "prometheus_remote_storage_samples_total{remote_name=\"mimir\",url=\"http://127.0.0.1:9/api/v1/write\"} 7\n"
        ), "{text}");
        assert!(text.contains("prometheus_remote_storage_shards{remote_name=\"thanos\""));
        let parsed = crate::expo::parse(&text, crate::expo::Format::Text);
        assert!(parsed.is_ok(), "{parsed:?}");
    }
}
