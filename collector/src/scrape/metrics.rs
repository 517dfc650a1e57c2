//! The scraper's own metrics, with Prometheus 2.42's names, HELP texts, types and labels, so
//! dashboards and alerts written for a Prometheus agent (`PrometheusTargetSyncFailure`, the
//! "Prometheus / Overview" dashboard's scrape panels) read the agent unchanged:
//!
//! - `prometheus_target_interval_length_seconds{interval}`: the time between a target's
//!   scrape starts, a summary over the last ten minutes (quantiles 0.01 … 0.99);
//! - `prometheus_target_scrapes_exceeded_{sample,body_size}_limit_total`,
//!   `prometheus_target_scrape_pool_exceeded_{target,label}_limit(s)_total`;
//! - per job: `prometheus_target_scrape_pool_targets`, `prometheus_target_scrape_pool_sync_total`,
//!   `prometheus_target_sync_length_seconds` (summary), `prometheus_sd_discovered_targets`.
//!
//! Label values are job names and interval strings from the config, so the series count is
//! bounded by the config. Loops and the manager write; [`ScrapeMetrics::render`] reads.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::scrape_loop::lock;
use super::target::format_duration;
use crate::expo::TextWriter;

/// How long a summary keeps observations for its quantiles (client_golang's `DefMaxAge`).
const SUMMARY_MAX_AGE: Duration = Duration::from_secs(600);
/// Observations kept per summary at most, whatever the rate.
const SUMMARY_MAX_OBSERVATIONS: usize = 4096;
/// The quantiles Prometheus declares for its scrape summaries.
const QUANTILES: [f64; 5] = [0.01, 0.05, 0.5, 0.9, 0.99];

pub const INTERVAL_LENGTH: &str = "prometheus_target_interval_length_seconds";
pub const EXCEEDED_SAMPLE_LIMIT: &str = "prometheus_target_scrapes_exceeded_sample_limit_total";
pub const EXCEEDED_BODY_SIZE_LIMIT: &str =
    "prometheus_target_scrapes_exceeded_body_size_limit_total";
pub const EXCEEDED_TARGET_LIMIT: &str = "prometheus_target_scrape_pool_exceeded_target_limit_total";
pub const EXCEEDED_LABEL_LIMITS: &str = "prometheus_target_scrape_pool_exceeded_label_limits_total";
pub const POOL_TARGETS: &str = "prometheus_target_scrape_pool_targets";
pub const POOL_SYNCS: &str = "prometheus_target_scrape_pool_sync_total";
pub const SYNC_LENGTH: &str = "prometheus_target_sync_length_seconds";
pub const DISCOVERED_TARGETS: &str = "prometheus_sd_discovered_targets";

/// A summary: cumulative sum and count, quantiles over a sliding window.
#[derive(Debug, Default)]
struct Summary {
    window: VecDeque<(Instant, f64)>,
    sum: f64,
    count: u64,
}

impl Summary {
    fn observe(&mut self, now: Instant, v: f64) {
        self.sum += v;
        self.count += 1;
        if self.window.len() == SUMMARY_MAX_OBSERVATIONS {
            self.window.pop_front();
        }
        self.window.push_back((now, v));
    }

    /// The quantiles over the window (NaN when it is empty, as client_golang writes them).
    fn quantiles(&mut self, now: Instant) -> [f64; QUANTILES.len()] {
        while let Some((t, _)) = self.window.front() {
            if now.duration_since(*t) <= SUMMARY_MAX_AGE {
                break;
            }
            self.window.pop_front();
        }
        let mut values: Vec<f64> = self.window.iter().map(|(_, v)| *v).collect();
        values.sort_by(f64::total_cmp);
        QUANTILES.map(|q| match values.len() {
            0 => f64::NAN,
            n => values[((q * n as f64).ceil() as usize).clamp(1, n) - 1],
        })
    }
}

/// One job's figures.
#[derive(Debug, Default)]
struct PoolFigures {
    targets: u64,
    discovered: u64,
    syncs: u64,
    sync_length: Summary,
}

/// The scraper's counters; shared by the manager, every loop and the `/metrics` handler.
#[derive(Debug, Default)]
pub struct ScrapeMetrics {
    exceeded_sample_limit: AtomicU64,
    exceeded_body_size_limit: AtomicU64,
    exceeded_target_limit: AtomicU64,
    exceeded_label_limits: AtomicU64,
    /// By the configured interval, formatted as Prometheus does (`15s`, `1m30s`).
    intervals: Mutex<BTreeMap<String, Summary>>,
    pools: Mutex<BTreeMap<String, PoolFigures>>,
}

/// Which limit failed a scrape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Limit {
    Sample,
    BodySize,
    Label,
}

impl Limit {
    /// The limit a scrape's error names, from the messages `process.rs` and `fetch.rs` write
    /// (Prometheus's wording, which `/api/v1/targets` shows).
    pub(crate) fn of_error(error: &str) -> Option<Limit> {
        if error.starts_with("sample limit exceeded") {
            Some(Limit::Sample)
        } else if error.starts_with("body size limit exceeded") {
            Some(Limit::BodySize)
        } else if error.starts_with("label_") && error.contains("limit exceeded") {
            Some(Limit::Label)
        } else {
            None
        }
    }
}

impl ScrapeMetrics {
    /// One scrape started `actual` after the previous one of a target scraped every `interval`.
    pub(crate) fn observe_interval(&self, interval: Duration, actual: Duration) {
        let key = format_duration(interval);
        lock(&self.intervals)
            .entry(key)
            .or_default()
            .observe(Instant::now(), actual.as_secs_f64());
    }

    /// A scrape failed on `limit`.
    pub(crate) fn limit_exceeded(&self, limit: Limit) {
        let counter = match limit {
            Limit::Sample => &self.exceeded_sample_limit,
            Limit::BodySize => &self.exceeded_body_size_limit,
            Limit::Label => &self.exceeded_label_limits,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Job `job` synced: `discovered` label sets came from discovery, `targets` survived
    /// relabeling, in `took`; `over_target_limit` when they were more than `target_limit`.
    pub(crate) fn synced(
        &self,
        job: &str,
        discovered: u64,
        targets: u64,
        took: Duration,
        over_target_limit: bool,
    ) {
        if over_target_limit {
            self.exceeded_target_limit.fetch_add(1, Ordering::Relaxed);
        }
        let mut pools = lock(&self.pools);
        let pool = pools.entry(job.to_string()).or_default();
        pool.targets = targets;
        pool.discovered = discovered;
        pool.syncs += 1;
        pool.sync_length.observe(Instant::now(), took.as_secs_f64());
    }

    /// The text-format families, for tests; the agent's `/metrics` uses [`Self::render_into`].
    #[cfg(test)]
    pub fn render(&self) -> String {
        let mut out = TextWriter::default();
        self.render_into(&mut out);
        out.text
    }

    /// Appends the text-format families to the agent's `/metrics` body.
    pub(crate) fn render_into(&self, out: &mut TextWriter) {
        let now = Instant::now();
        let mut pools = lock(&self.pools);
        out.family(
            DISCOVERED_TARGETS,
            "gauge",
            "Current number of discovered targets.",
        );
        for (job, p) in pools.iter() {
            let labels = [("config", job.as_str()), ("name", "scrape")];
            out.line(DISCOVERED_TARGETS, &labels, p.discovered as f64);
        }
        let mut intervals = lock(&self.intervals);
        summary(
            out,
            (
                INTERVAL_LENGTH,
                "Actual intervals between scrapes.",
                "interval",
            ),
            intervals.iter_mut().map(|(k, s)| (k.as_str(), s)),
            now,
        );
        counter(
            out,
            EXCEEDED_LABEL_LIMITS,
            "Total number of times scrape pools hit the label limits, during sync or config reload.",
            &self.exceeded_label_limits,
        );
        counter(
            out,
            EXCEEDED_TARGET_LIMIT,
            "Total number of times scrape pools hit the target limit, during sync or config reload.",
            &self.exceeded_target_limit,
        );
        out.family(
            POOL_SYNCS,
            "counter",
            "Total number of syncs that were executed on a scrape pool.",
        );
        for (job, p) in pools.iter() {
            out.line(POOL_SYNCS, &[("scrape_job", job)], p.syncs as f64);
        }
        out.family(
            POOL_TARGETS,
            "gauge",
            "Current number of targets in this scrape pool.",
        );
        for (job, p) in pools.iter() {
            out.line(POOL_TARGETS, &[("scrape_job", job)], p.targets as f64);
        }
        counter(
            out,
            EXCEEDED_BODY_SIZE_LIMIT,
            "Total number of scrapes that hit the body size limit",
            &self.exceeded_body_size_limit,
        );
        counter(
            out,
            EXCEEDED_SAMPLE_LIMIT,
            "Total number of scrapes that hit the sample limit and were rejected.",
            &self.exceeded_sample_limit,
        );
        summary(
            out,
            (
                SYNC_LENGTH,
                "Actual interval to sync the scrape pool.",
                "scrape_job",
            ),
            pools
                .iter_mut()
                .map(|(k, p)| (k.as_str(), &mut p.sync_length)),
            now,
        );
    }
}

fn counter(out: &mut TextWriter, name: &str, help: &str, value: &AtomicU64) {
    out.counter(name, help)
        .sample(&[], value.load(Ordering::Relaxed) as f64);
}

/// A summary family: `(name, help, label)` and each labelled summary's quantiles, sum and count.
fn summary<'a>(
    out: &mut TextWriter,
    (name, help, label): (&str, &str, &str),
    summaries: impl Iterator<Item = (&'a str, &'a mut Summary)>,
    now: Instant,
) {
    out.family(name, "summary", help);
    for (value, s) in summaries {
        for (q, v) in QUANTILES.iter().zip(s.quantiles(now)) {
            out.line(name, &[(label, value), ("quantile", &q.to_string())], v);
        }
        out.line(&format!("{name}_sum"), &[(label, value)], s.sum);
        out.line(&format!("{name}_count"), &[(label, value)], s.count as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expo::{self, sample_value as value, Format, MetricKind};

    #[test]
    fn renders_prometheus_families_with_their_values() {
        let m = ScrapeMetrics::default();
        for ms in [900, 1000, 1000, 1100] {
            m.observe_interval(Duration::from_secs(1), Duration::from_millis(ms));
        }
        m.observe_interval(Duration::from_secs(90), Duration::from_secs(90));
        m.limit_exceeded(Limit::Sample);
        m.limit_exceeded(Limit::Sample);
        m.limit_exceeded(Limit::BodySize);
        m.synced("node", 3, 2, Duration::from_millis(5), false);
        m.synced("node", 4, 3, Duration::from_millis(7), true);
        m.synced("we\"ird", 0, 0, Duration::ZERO, false);
        let body = m.render();

        let exp = expo::parse(&body, Format::Text).unwrap();
        let kind = |n: &str| exp.families.iter().find(|f| f.name == n).map(|f| f.kind);
        assert_eq!(kind(INTERVAL_LENGTH), Some(MetricKind::Summary));
        assert_eq!(kind(SYNC_LENGTH), Some(MetricKind::Summary));
        assert_eq!(kind(POOL_TARGETS), Some(MetricKind::Gauge));
        assert_eq!(kind(EXCEEDED_SAMPLE_LIMIT), Some(MetricKind::Counter));

        let interval = |q: &str| {
            value(
                &body,
                INTERVAL_LENGTH,
                &[("interval", "1s"), ("quantile", q)],
            )
        };
        assert_eq!(interval("0.01"), Some(0.9));
        assert_eq!(interval("0.5"), Some(1.0));
        assert_eq!(interval("0.99"), Some(1.1));
        let count = format!("{INTERVAL_LENGTH}_count");
        assert_eq!(value(&body, &count, &[("interval", "1s")]), Some(4.0));
        assert_eq!(value(&body, &count, &[("interval", "1m30s")]), Some(1.0));
        let sum = value(
            &body,
            &format!("{INTERVAL_LENGTH}_sum"),
            &[("interval", "1s")],
        )
        .unwrap();
        assert!((sum - 4.0).abs() < 1e-9, "{sum}");

        assert_eq!(value(&body, EXCEEDED_SAMPLE_LIMIT, &[]), Some(2.0));
        assert_eq!(value(&body, EXCEEDED_BODY_SIZE_LIMIT, &[]), Some(1.0));
        assert_eq!(value(&body, EXCEEDED_LABEL_LIMITS, &[]), Some(0.0));
        assert_eq!(value(&body, EXCEEDED_TARGET_LIMIT, &[]), Some(1.0));
        assert_eq!(
            value(&body, POOL_TARGETS, &[("scrape_job", "node")]),
            Some(3.0)
        );
        assert_eq!(
            value(&body, POOL_SYNCS, &[("scrape_job", "node")]),
            Some(2.0)
        );
        assert_eq!(
            value(&body, POOL_TARGETS, &[("scrape_job", "we\"ird")]),
            Some(0.0)
        );
        assert_eq!(
            value(
                &body,
                DISCOVERED_TARGETS,
                &[("config", "node"), ("name", "scrape")]
            ),
            Some(4.0)
        );
        assert_eq!(
            value(
                &body,
                &format!("{SYNC_LENGTH}_count"),
                &[("scrape_job", "node")]
            ),
            Some(2.0)
        );
        // Rendering twice keeps the sync summaries.
        let again = m.render();
        assert_eq!(
            value(
                &again,
                &format!("{SYNC_LENGTH}_count"),
                &[("scrape_job", "node")]
            ),
            Some(2.0)
        );
    }

    #[test]
    fn summary_window_forgets_old_observations_but_not_the_count() {
        let mut s = Summary::default();
        let start = Instant::now();
        s.observe(start, 5.0);
        let later = start + SUMMARY_MAX_AGE + Duration::from_secs(1);
        s.observe(later, 1.0);
        assert_eq!(s.quantiles(later), [1.0; 5]);
        assert_eq!((s.count, s.sum), (2, 6.0));
        let empty = Summary::default().quantiles(later);
        assert!(empty.iter().all(|q| q.is_nan()));
        for i in 0..(SUMMARY_MAX_OBSERVATIONS + 10) {
            s.observe(later, i as f64);
        }
        assert_eq!(s.window.len(), SUMMARY_MAX_OBSERVATIONS);
    }
}
