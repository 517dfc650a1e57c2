//! The agent's own metrics: what its sinks, tailer and node collector report about themselves,
//! plus the process's memory, CPU and start time, rendered in text format 0.0.4 for the
//! agent's `/metrics` (see `http.rs`).
//!
//! Every name is a constant below, and every label value is one of a fixed set (`reason`), so
//! the number of series is fixed whatever the agent ships. The counters live in the
//! components ([`SinkStats`], [`NodeStats`], [`TailStats`]) as atomics; rendering reads them,
//! so a scrape never waits on a component.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::expo::TextWriter;
use crate::node::NodeStats;
use crate::ship::SinkStats;
use crate::tail::TailStats;

/// Samples the remote-write receiver accepted.
pub const SAMPLES_SENT: &str = "vigil_agent_samples_sent_total";
/// Samples in remote-write attempts that failed and were retried, once per attempt.
pub const SAMPLES_FAILED: &str = "vigil_agent_samples_failed_total";
/// Samples that will never arrive, by `reason`.
pub const SAMPLES_DROPPED: &str = "vigil_agent_samples_dropped_total";
/// Remote-write requests that failed with a retryable error.
pub const REMOTE_WRITE_FAILURES: &str = "vigil_agent_remote_write_failures_total";
/// Compressed bytes of accepted remote-write requests.
pub const REMOTE_WRITE_BYTES_SENT: &str = "vigil_agent_remote_write_bytes_sent_total";
/// Samples waiting to be sent, the request in flight included.
pub const QUEUE_SAMPLES: &str = "vigil_agent_queue_samples";
/// Log lines the Loki receiver accepted.
pub const LOG_LINES_SENT: &str = "vigil_agent_log_lines_sent_total";
/// Bytes of log text the Loki receiver accepted.
pub const LOG_BYTES_SENT: &str = "vigil_agent_log_bytes_sent_total";
/// Log lines given up on, by `reason`.
pub const LOG_LINES_DROPPED: &str = "vigil_agent_log_lines_dropped_total";
/// Loki pushes that failed with a retryable error.
pub const LOG_PUSH_FAILURES: &str = "vigil_agent_log_push_failures_total";
/// Log lines gathered for, or in, the push under way.
pub const LOG_LINES_PENDING: &str = "vigil_agent_log_lines_pending";
/// Log lines durable in the on-disk queue, waiting for the receiver.
pub const LOG_LINES_QUEUED: &str = "vigil_agent_log_lines_queued";
/// Bytes of the log queue's files under `--state.path`.
pub const LOG_QUEUE_BYTES: &str = "vigil_agent_log_queue_bytes";
/// Bytes of the remote-write queue's files under `--state.path`.
pub const REMOTE_WRITE_QUEUE_BYTES: &str = "vigil_agent_remote_write_queue_bytes";
/// Files followed by the tailer.
pub const FILES_TAILED: &str = "vigil_agent_files_tailed";
/// Time spent collecting node metrics, a summary without quantiles (`_sum`, `_count`).
pub const NODE_COLLECTION_DURATION: &str = "vigil_agent_node_collection_duration_seconds";
/// Resident memory of the agent process (client libraries' standard name).
pub const PROCESS_RESIDENT_MEMORY: &str = "process_resident_memory_bytes";
/// User and system CPU time of the agent process.
pub const PROCESS_CPU_SECONDS: &str = "process_cpu_seconds_total";
/// When the agent process started, in seconds since the epoch.
pub const PROCESS_START_TIME: &str = "process_start_time_seconds";

/// The `reason` of an item that was dropped because the queue was full.
pub const REASON_QUEUE_FULL: &str = "queue_full";
/// The `reason` of an item the receiver rejected for good (4xx other than 429).
pub const REASON_REJECTED: &str = "rejected";
/// The `reason` of an item still unsent when the shutdown flush deadline passed.
pub const REASON_SHUTDOWN: &str = "shutdown";

/// The kernel reports process times in ticks of `USER_HZ`, 100 on every Linux ABI whatever
/// the kernel's internal `HZ` (the same constant the cpu collector uses).
const USER_HZ: f64 = 100.0;

/// The handles the agent's `/metrics` reads.
#[derive(Clone, Debug)]
pub(crate) struct AgentMetrics {
    pub remote_write: Arc<SinkStats>,
    pub loki: Arc<SinkStats>,
    pub node: Arc<NodeStats>,
    pub tail: Arc<TailStats>,
    /// The scraper's `prometheus_target_*` and `prometheus_sd_*` families.
    pub scrape: Arc<crate::scrape::ScrapeMetrics>,
}

impl AgentMetrics {
    /// The text-format body of `/metrics`, reading process figures from `/proc/self`.
    pub fn render(&self) -> String {
        let mut out = TextWriter::default();
        self.render_components(&mut out);
        render_process(&mut out, Path::new("/proc"));
        out.text
    }

    fn render_components(&self, out: &mut TextWriter) {
        let (rw, loki) = (&self.remote_write, &self.loki);
        out.counter(SAMPLES_SENT, "Samples the remote-write receiver accepted.")
            .sample(&[], load(&rw.sent_items));
        out.counter(
            SAMPLES_FAILED,
            "Samples in remote-write attempts that failed (network error, 5xx, 429) and were retried, counted once per attempt.",
        )
        .sample(&[], load(&rw.failed_items));
        out.counter(
            SAMPLES_DROPPED,
            "Samples that will never arrive, by reason.",
        )
        .sample(&[("reason", REASON_QUEUE_FULL)], load(&rw.dropped_samples))
        .sample(&[("reason", REASON_REJECTED)], load(&rw.rejected_items))
        .sample(&[("reason", REASON_SHUTDOWN)], load(&rw.aborted_items));
        out.counter(
            REMOTE_WRITE_FAILURES,
            "Remote-write requests that failed with a retryable error.",
        )
        .sample(&[], load(&rw.failed_attempts));
        out.counter(
            REMOTE_WRITE_BYTES_SENT,
            "Compressed bytes of remote-write requests the receiver accepted.",
        )
        .sample(&[], load(&rw.sent_bytes));
        out.gauge(
            QUEUE_SAMPLES,
            "Samples waiting to be sent, the request in flight included.",
        )
        .sample(&[], load(&rw.queued_items));
        out.gauge(
            REMOTE_WRITE_QUEUE_BYTES,
            "Bytes of the remote-write queue's files under --state.path.",
        )
        .sample(&[], load(&rw.disk_bytes));

        out.counter(LOG_LINES_SENT, "Log lines the Loki receiver accepted.")
            .sample(&[], load(&loki.sent_items));
        out.counter(
            LOG_BYTES_SENT,
            "Bytes of log text the Loki receiver accepted.",
        )
        .sample(&[], load(&loki.sent_bytes));
        out.counter(LOG_LINES_DROPPED, "Log lines given up on, by reason.")
            .sample(&[("reason", REASON_REJECTED)], load(&loki.rejected_items))
            .sample(&[("reason", REASON_SHUTDOWN)], load(&loki.aborted_items));
        out.counter(
            LOG_PUSH_FAILURES,
            "Loki pushes that failed with a retryable error.",
        )
        .sample(&[], load(&loki.failed_attempts));
        out.gauge(
            LOG_LINES_PENDING,
            "Log lines gathered for, or in, the push under way.",
        )
        .sample(&[], load(&loki.queued_items));
        out.gauge(
            LOG_LINES_QUEUED,
            "Log lines durable in the on-disk queue, waiting for the receiver.",
        )
        .sample(&[], load(&loki.disk_items));
        out.gauge(
            LOG_QUEUE_BYTES,
            "Bytes of the log queue's files under --state.path.",
        )
        .sample(&[], load(&loki.disk_bytes));
        out.gauge(FILES_TAILED, "Files the tailer follows.")
            .sample(&[], load(&self.tail.files));
        self.scrape.render_into(out);

        let node = &self.node;
        out.family(
            NODE_COLLECTION_DURATION,
            "summary",
            "Time spent collecting node metrics.",
        );
        out.line(
            &format!("{NODE_COLLECTION_DURATION}_sum"),
            &[],
            load(&node.duration_ns) / 1e9,
        );
        out.line(
            &format!("{NODE_COLLECTION_DURATION}_count"),
            &[],
            load(&node.collections),
        );
    }
}

fn load(counter: &AtomicU64) -> f64 {
    counter.load(Ordering::Relaxed) as f64
}

/// Appends the process metrics that `procfs` has for this process; a figure that cannot be
/// read is left out rather than reported as zero.
fn render_process(out: &mut TextWriter, procfs: &Path) {
    let status = std::fs::read_to_string(procfs.join("self/status")).unwrap_or_default();
    if let Some(rss) = resident_bytes(&status) {
        out.gauge(PROCESS_RESIDENT_MEMORY, "Resident memory size in bytes.")
            .sample(&[], rss);
    }
    let stat = std::fs::read_to_string(procfs.join("self/stat")).unwrap_or_default();
    let Some(times) = process_times(&stat) else {
        return;
    };
    out.counter(
        PROCESS_CPU_SECONDS,
        "Total user and system CPU time spent in seconds.",
    )
    .sample(&[], times.cpu_seconds);
    let system = std::fs::read_to_string(procfs.join("stat")).unwrap_or_default();
    if let Some(boot) = boot_time(&system) {
        out.gauge(
            PROCESS_START_TIME,
            "Start time of the process since unix epoch in seconds.",
        )
        .sample(&[], boot + times.start_after_boot);
    }
}

/// `VmRSS` of `/proc/self/status`, in bytes.
fn resident_bytes(status: &str) -> Option<f64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024.0)
}

/// The CPU time and start time of a process, from its `stat` file.
#[derive(Debug, PartialEq)]
struct ProcessTimes {
    cpu_seconds: f64,
    /// Seconds between boot and the process's start.
    start_after_boot: f64,
}

/// Parses `/proc/<pid>/stat`. The command name (field 2) is in parentheses and may hold
/// spaces and parentheses itself, so fields are counted from its last `)`.
fn process_times(stat: &str) -> Option<ProcessTimes> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    // After the name come field 3 (state) onwards: utime is field 14, stime 15, starttime 22.
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    let field = |n: usize| -> Option<f64> { fields.get(n - 3)?.parse().ok() };
    Some(ProcessTimes {
        cpu_seconds: (field(14)? + field(15)?) / USER_HZ,
        start_after_boot: field(22)? / USER_HZ,
    })
}

/// `btime` of `/proc/stat`: the boot time in seconds since the epoch.
fn boot_time(stat: &str) -> Option<f64> {
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expo::{self, sample_value, Format, MetricKind};

    fn metrics() -> AgentMetrics {
        AgentMetrics {
            scrape: Arc::default(),
            remote_write: Arc::default(),
            loki: Arc::default(),
            node: Arc::default(),
            tail: Arc::default(),
        }
    }

    #[test]
    fn components_render_as_valid_text_format_with_their_values() {
        let m = metrics();
        m.remote_write.sent_items.store(2000, Ordering::Relaxed);
        m.remote_write.dropped_samples.store(7, Ordering::Relaxed);
        m.remote_write.rejected_items.store(3, Ordering::Relaxed);
        m.remote_write.queued_items.store(42, Ordering::Relaxed);
        m.loki.sent_items.store(5, Ordering::Relaxed);
        m.loki.disk_items.store(11, Ordering::Relaxed);
        m.loki.disk_bytes.store(4096, Ordering::Relaxed);
        m.remote_write.disk_bytes.store(8192, Ordering::Relaxed);
        m.loki.sent_bytes.store(123, Ordering::Relaxed);
        m.loki.failed_attempts.store(2, Ordering::Relaxed);
        m.tail.files.store(4, Ordering::Relaxed);
        m.node.collections.store(2, Ordering::Relaxed);
        m.node.duration_ns.store(1_500_000_000, Ordering::Relaxed);
        let body = m.render();

        let exp = expo::parse(&body, Format::Text).unwrap();
        let kind = |n: &str| exp.families.iter().find(|f| f.name == n).map(|f| f.kind);
        assert_eq!(kind(SAMPLES_SENT), Some(MetricKind::Counter));
        assert_eq!(kind(QUEUE_SAMPLES), Some(MetricKind::Gauge));
        assert_eq!(kind(NODE_COLLECTION_DURATION), Some(MetricKind::Summary));

        assert_eq!(sample_value(&body, SAMPLES_SENT, &[]), Some(2000.0));
        let dropped = |reason| sample_value(&body, SAMPLES_DROPPED, &[("reason", reason)]);
        assert_eq!(dropped(REASON_QUEUE_FULL), Some(7.0));
        assert_eq!(dropped(REASON_REJECTED), Some(3.0));
        assert_eq!(dropped(REASON_SHUTDOWN), Some(0.0));
        assert_eq!(sample_value(&body, QUEUE_SAMPLES, &[]), Some(42.0));
        assert_eq!(sample_value(&body, LOG_LINES_QUEUED, &[]), Some(11.0));
        assert_eq!(sample_value(&body, LOG_QUEUE_BYTES, &[]), Some(4096.0));
        assert_eq!(
            sample_value(&body, REMOTE_WRITE_QUEUE_BYTES, &[]),
            Some(8192.0)
        );
        assert_eq!(sample_value(&body, LOG_LINES_SENT, &[]), Some(5.0));
        assert_eq!(sample_value(&body, LOG_BYTES_SENT, &[]), Some(123.0));
        assert_eq!(sample_value(&body, LOG_PUSH_FAILURES, &[]), Some(2.0));
        assert_eq!(sample_value(&body, FILES_TAILED, &[]), Some(4.0));
        let sum = format!("{NODE_COLLECTION_DURATION}_sum");
        let count = format!("{NODE_COLLECTION_DURATION}_count");
        assert_eq!(sample_value(&body, &sum, &[]), Some(1.5));
        assert_eq!(sample_value(&body, &count, &[]), Some(2.0));
    }

    #[test]
    fn process_metrics_of_this_process_are_plausible() {
        let mut out = TextWriter::default();
        render_process(&mut out, Path::new("/proc"));
        let rss = sample_value(&out.text, PROCESS_RESIDENT_MEMORY, &[]).unwrap();
        assert!(rss > 1e5 && rss < 1e11, "rss {rss}");
        let start = sample_value(&out.text, PROCESS_START_TIME, &[]).unwrap();
        let now = chrono::Utc::now().timestamp() as f64;
        // This test process started at most an hour ago (the tick rounding is 10 ms).
        assert!(
            start <= now + 1.0 && start > now - 3600.0,
            "{start} vs {now}"
        );
        assert!(sample_value(&out.text, PROCESS_CPU_SECONDS, &[]).is_some());
    }

    #[test]
    fn stat_fields_are_counted_after_a_command_name_with_parentheses() {
        // A process named "a) (b" as the kernel writes it; utime 250, stime 50, starttime 1234.
        let stat = "42 (a) (b) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 1234 1000 10";
        assert_eq!(
            process_times(stat),
            Some(ProcessTimes {
                cpu_seconds: 3.0,
                start_after_boot: 12.34
            })
        );
        assert_eq!(process_times("garbage"), None);
        assert_eq!(process_times("1 (x) S 1 2"), None);
        assert_eq!(boot_time("cpu 1 2\nbtime 1700000000\n"), Some(1.7e9));
        assert_eq!(
            resident_bytes("Name:\tvigil\nVmRSS:\t    2048 kB\n"),
            Some(2_097_152.0)
        );
        assert_eq!(resident_bytes("Name:\tvigil\n"), None);
    }

    #[test]
    fn a_procfs_without_the_files_leaves_process_metrics_out() {
        let dir = tempfile::tempdir().unwrap();
        let mut out = TextWriter::default();
        render_process(&mut out, dir.path());
        assert!(out.text.is_empty(), "{}", out.text);
    }
}
