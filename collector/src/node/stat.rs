//! The `stat` collector: the kernel-wide counters of `/proc/stat` (interrupts, context
//! switches, forks, boot time, runnable and blocked processes), as node_exporter's
//! `stat_linux.go` reports them.

use crate::family::{Family, MetricType};

/// One `/proc/stat` line this collector reports: its key, node_exporter's name, HELP and type.
const FIELDS: &[(&str, &str, &str, MetricType)] = &[
    (
        "intr",
        "node_intr_total",
        "Total number of interrupts serviced.",
        MetricType::Counter,
    ),
    (
        "ctxt",
        "node_context_switches_total",
        "Total number of context switches.",
        MetricType::Counter,
    ),
    (
        "processes",
        "node_forks_total",
        "Total number of forks.",
        MetricType::Counter,
    ),
    (
        "btime",
        "node_boot_time_seconds",
        "Node boot time, in unixtime.",
        MetricType::Gauge,
    ),
    (
        "procs_running",
        "node_procs_running",
        "Number of processes in runnable state.",
        MetricType::Gauge,
    ),
    (
        "procs_blocked",
        "node_procs_blocked",
        "Number of processes blocked waiting for I/O to complete.",
        MetricType::Gauge,
    ),
];

/// The value of the first number after `key` at the start of a line (`intr 1234 0 0 …` → the
/// total, which is the first number).
fn field(text: &str, key: &str) -> Result<f64, String> {
    let line = text
        .lines()
        .find(|l| l.split_ascii_whitespace().next() == Some(key))
        .ok_or_else(|| format!("no {key} line in stat"))?;
    let value = line
        .split_ascii_whitespace()
        .nth(1)
        .ok_or_else(|| format!("{key} line in stat has no value"))?;
    value
        .parse::<u64>()
        .map(|v| v as f64)
        .map_err(|e| format!("{key} value {value:?} in stat: {e}"))
}

/// Parses `/proc/stat` text into node_exporter's families. A missing or malformed line fails
/// the collector, as in node_exporter: every kernel since 2.6 writes all six.
pub(crate) fn collect(text: &str) -> Result<Vec<Family>, String> {
    FIELDS
        .iter()
        .map(|&(key, name, help, kind)| Ok(Family::single(name, help, kind, field(text, key)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "\
cpu  16241 0 2824 52894 320 0 50 73 0 0
cpu0 7799 0 1306 26923 121 0 23 35 0 0
intr 303712 0 9 0 0
ctxt 733637
btime 1795803621
processes 10256
procs_running 3
procs_blocked 1
softirq 1 2 3
";

    #[test]
    fn reports_node_exporter_names_and_values() {
        let fams = collect(STAT).unwrap();
        let got: Vec<(&str, f64, MetricType)> = fams
            .iter()
            .map(|f| (f.name.as_str(), f.points[0].value, f.kind))
            .collect();
        assert_eq!(
            got,
            [
                ("node_intr_total", 303712.0, MetricType::Counter),
                ("node_context_switches_total", 733637.0, MetricType::Counter),
                ("node_forks_total", 10256.0, MetricType::Counter),
                ("node_boot_time_seconds", 1795803621.0, MetricType::Gauge),
                ("node_procs_running", 3.0, MetricType::Gauge),
                ("node_procs_blocked", 1.0, MetricType::Gauge),
            ]
        );
    }

    #[test]
    fn a_missing_or_malformed_line_is_an_error() {
        let err = collect(&STAT.replace("ctxt 733637\n", "")).unwrap_err();
        assert!(err.contains("ctxt"), "{err}");
        let err = collect(&STAT.replace("btime 1795803621", "btime soon")).unwrap_err();
        assert!(err.contains("btime"), "{err}");
    }
}
