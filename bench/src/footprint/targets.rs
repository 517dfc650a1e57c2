//! What the benchmark's scrape targets serve, in the text format 0.0.4:
//!
//! - [`app_exposition`]: an instrumented Go web service (request counters, latency
//!   histograms, a GC summary, runtime and process gauges, queues and caches), about 200
//!   series whose counters grow with time and whose gauges move on every scrape;
//! - [`Replay`]: the container series the Vigil agent shipped for the fake cgroup tree,
//!   served back as the kubelet's `/metrics/cadvisor` would serve them, so Prometheus ships
//!   the same container series Vigil collects (Prometheus cannot read cgroups itself).

use std::collections::BTreeMap;
use std::fmt::Write as _;

const HANDLERS: &[&str] = &[
    "/api/v1/orders",
    "/api/v1/users",
    "/api/v1/cart",
    "/healthz",
    "/metrics",
];
const METHODS: &[&str] = &["GET", "POST"];
const CODES: &[&str] = &["200", "404", "500"];
const BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A well-mixed number in `[0, 1)` from a few integers (SplitMix64's finaliser).
fn mix(parts: &[u64]) -> f64 {
    let mut z = parts.iter().fold(0x9E37_79B9_7F4A_7C15u64, |acc, p| {
        acc.rotate_left(17) ^ p.wrapping_mul(0xD6E8_FEB8_6659_FD93)
    });
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
}

/// Target `target`'s exposition `elapsed` seconds into the run, at its `scrape`-th scrape.
pub fn app_exposition(target: usize, elapsed: f64, scrape: u64) -> String {
    let t = target as u64;
    let mut out = String::with_capacity(24 << 10);
    out.push_str("# HELP http_requests_total Requests served, by method, handler and status code.\n# TYPE http_requests_total counter\n");
    for (h, handler) in HANDLERS.iter().enumerate() {
        for (m, method) in METHODS.iter().enumerate() {
            for (c, code) in CODES.iter().enumerate() {
                let share = [0.95, 0.04, 0.01][c];
                let rate = (1.0 + 40.0 * mix(&[t, h as u64, m as u64])) * share;
                let v = (10_000.0 * share + rate * elapsed).floor();
                let _ = writeln!(
                    out,
                    "http_requests_total{{code=\"{code}\",handler=\"{handler}\",method=\"{method}\"}} {v}"
                );
            }
        }
    }
    out.push_str("# HELP http_request_duration_seconds Time to serve a request.\n# TYPE http_request_duration_seconds histogram\n");
    for (h, handler) in HANDLERS.iter().enumerate() {
        for (m, method) in METHODS.iter().enumerate() {
            let rate = 1.0 + 40.0 * mix(&[t, h as u64, m as u64]);
            let count = (10_000.0 + rate * elapsed).floor();
            let mean = 0.01 + 0.2 * mix(&[t, h as u64, m as u64, 1]);
            let labels = format!("handler=\"{handler}\",method=\"{method}\"");
            for le in BUCKETS {
                let cumulative = (count * (1.0 - (-le / mean).exp())).floor();
                let _ = writeln!(
                    out,
                    "http_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(
                out,
                "http_request_duration_seconds_sum{{{labels}}} {}",
                count * mean
            );
            let _ = writeln!(
                out,
                "http_request_duration_seconds_count{{{labels}}} {count}"
            );
        }
    }
    let gcs = (100.0 + elapsed / 7.0).floor();
    out.push_str("# HELP go_gc_duration_seconds A summary of the pause duration of garbage collection cycles.\n# TYPE go_gc_duration_seconds summary\n");
    for (i, q) in ["0", "0.25", "0.5", "0.75", "1"].iter().enumerate() {
        let v = 2e-5 * (1.0 + i as f64) * (1.0 + mix(&[t, scrape, i as u64]));
        let _ = writeln!(out, "go_gc_duration_seconds{{quantile=\"{q}\"}} {v}");
    }
    let _ = writeln!(
        out,
        "go_gc_duration_seconds_sum {}\ngo_gc_duration_seconds_count {gcs}",
        gcs * 6e-5
    );
    let heap = 40e6 * (1.0 + 0.3 * mix(&[t, scrape, 10]));
    let gauges: [(&str, &str, f64); 6] = [
        (
            "go_goroutines",
            "Number of goroutines that currently exist.",
            (40.0 + 30.0 * mix(&[t, scrape, 11])).floor(),
        ),
        (
            "go_threads",
            "Number of OS threads created.",
            12.0 + (t % 4) as f64,
        ),
        (
            "go_memstats_alloc_bytes",
            "Number of bytes allocated and still in use.",
            heap.floor(),
        ),
        (
            "go_memstats_heap_inuse_bytes",
            "Number of heap bytes that are in use.",
            (heap * 1.2).floor(),
        ),
        (
            "go_memstats_heap_objects",
            "Number of allocated objects.",
            (heap / 90.0).floor(),
        ),
        (
            "go_memstats_sys_bytes",
            "Number of bytes obtained from system.",
            (heap * 1.9).floor(),
        ),
    ];
    for (name, help, v) in gauges {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
    }
    let process: [(&str, &str, &str, f64); 6] = [
        (
            "process_cpu_seconds_total",
            "Total user and system CPU time spent in seconds.",
            "counter",
            (50.0 + 0.02 * elapsed * (1.0 + t as f64 / 10.0) * 100.0).round() / 100.0,
        ),
        (
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            "gauge",
            (heap * 2.1).floor(),
        ),
        (
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            "gauge",
            1.2e9 + (t * 4096) as f64,
        ),
        (
            "process_open_fds",
            "Number of open file descriptors.",
            "gauge",
            (20.0 + 10.0 * mix(&[t, scrape, 12])).floor(),
        ),
        (
            "process_max_fds",
            "Maximum number of open file descriptors.",
            "gauge",
            1_048_576.0,
        ),
        (
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            "gauge",
            1.7e9 + t as f64,
        ),
    ];
    for (name, help, kind, v) in process {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
        );
    }
    out.push_str("# HELP app_queue_depth Jobs waiting, by queue.\n# TYPE app_queue_depth gauge\n");
    for (i, q) in ["emails", "invoices", "exports", "webhooks", "thumbnails"]
        .iter()
        .enumerate()
    {
        let v = (50.0 * mix(&[t, scrape, 20 + i as u64])).floor();
        let _ = writeln!(out, "app_queue_depth{{queue=\"{q}\"}} {v}");
    }
    for (name, share) in [
        ("app_cache_hits_total", 0.9),
        ("app_cache_misses_total", 0.1),
    ] {
        let _ = writeln!(
            out,
            "# HELP {name} Cache lookups, by cache.\n# TYPE {name} counter"
        );
        for (i, cache) in ["sessions", "catalog"].iter().enumerate() {
            let v = (share * (5e4 + 80.0 * elapsed * (1.0 + i as f64))).floor();
            let _ = writeln!(out, "{name}{{cache=\"{cache}\"}} {v}");
        }
    }
    out
}

/// One family of replayed series.
#[derive(Debug, Clone)]
struct Family {
    /// Remote write's metadata type: 1 counter, 2 gauge, anything else untyped.
    kind: i32,
    help: String,
    /// Labels (without the name, `job`, `instance` and `metrics_path`) and the shipped value.
    series: Vec<(Vec<(String, String)>, f64)>,
}

/// Series shipped by the agent, served back as a scrape target.
#[derive(Debug, Clone, Default)]
pub struct Replay {
    families: BTreeMap<String, Family>,
}

impl Replay {
    /// Adds one shipped series (`labels` include `__name__`); `kind` and `help` come from
    /// the shipped metadata of its family, if any.
    pub fn add(&mut self, labels: &[(String, String)], value: f64, kind: i32, help: &str) {
        let Some(name) = labels
            .iter()
            .find_map(|(n, v)| (n == "__name__").then_some(v))
        else {
            return;
        };
        let rest = labels
            .iter()
            .filter(|(n, _)| {
                !matches!(n.as_str(), "__name__" | "job" | "instance" | "metrics_path")
            })
            .cloned()
            .collect();
        self.families
            .entry(name.clone())
            .or_insert_with(|| Family {
                kind,
                help: help.to_string(),
                series: Vec::new(),
            })
            .series
            .push((rest, value));
    }

    pub fn series(&self) -> usize {
        self.families.values().map(|f| f.series.len()).sum()
    }

    /// The exposition at the `scrape`-th scrape: counters advance, memory gauges wobble, the
    /// rest (limits, start times) stay.
    pub fn render(&self, scrape: u64) -> String {
        let mut out = String::with_capacity(self.series() * 200);
        for (name, f) in &self.families {
            let kind = match f.kind {
                1 => "counter",
                2 => "gauge",
                _ => "untyped",
            };
            let help = f.help.replace('\\', "\\\\").replace('\n', "\\n");
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (i, (labels, value)) in f.series.iter().enumerate() {
                let v = if f.kind == 1 {
                    value + scrape as f64 * (0.5 + (i % 10) as f64 * 0.1)
                } else if name.starts_with("container_memory") {
                    (value * (1.0 + 0.03 * ((scrape as f64 + i as f64) * 0.7).sin())).round()
                } else {
                    *value
                };
                out.push_str(name);
                if !labels.is_empty() {
                    out.push('{');
                    for (j, (n, lv)) in labels.iter().enumerate() {
                        if j > 0 {
                            out.push(',');
                        }
                        let escaped = lv
                            .replace('\\', "\\\\")
                            .replace('"', "\\\"")
                            .replace('\n', "\\n");
                        let _ = write!(out, "{n}=\"{escaped}\"");
                    }
                    out.push('}');
                }
                let _ = writeln!(out, " {v}");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (name with labels, value) of every sample line.
    fn samples(text: &str) -> Vec<(String, f64)> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| {
                let (series, v) = l.rsplit_once(' ').unwrap();
                (series.to_string(), v.parse().unwrap())
            })
            .collect()
    }

    #[test]
    fn app_targets_serve_about_200_series_that_move() {
        let first = samples(&app_exposition(3, 100.0, 7));
        let later = samples(&app_exposition(3, 115.0, 8));
        assert!((190..=210).contains(&first.len()), "{} series", first.len());
        let names: Vec<&String> = first.iter().map(|(s, _)| s).collect();
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "no duplicate series");
        assert_eq!(later.len(), first.len());
        let changed = first.iter().zip(&later).filter(|(a, b)| a.1 != b.1).count();
        assert!(changed > first.len() / 2, "only {changed} values moved");
        for ((s, a), (_, b)) in first.iter().zip(&later) {
            if s.starts_with("http_requests_total") || s.contains("_bucket") {
                assert!(b >= a, "{s} went down");
            }
        }
        // Histogram buckets are cumulative.
        let buckets: Vec<f64> = first
            .iter()
            .filter(|(s, _)| {
                s.starts_with(
                    "http_request_duration_seconds_bucket{handler=\"/healthz\",method=\"GET\"",
                )
            })
            .map(|(_, v)| *v)
            .collect();
        assert_eq!(buckets.len(), BUCKETS.len() + 1);
        assert!(buckets.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn replay_serves_shipped_series_with_their_metadata() {
        let labels = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect()
        };
        let mut r = Replay::default();
        r.add(
            &labels(&[
                ("__name__", "container_cpu_usage_seconds_total"),
                ("cpu", "total"),
                ("id", "/a\"b"),
                ("job", "kubelet"),
                ("instance", "n"),
            ]),
            2.5,
            1,
            "Cumulative cpu time consumed in seconds.",
        );
        r.add(
            &labels(&[("__name__", "container_memory_rss"), ("id", "/")]),
            1000.0,
            2,
            "rss",
        );
        assert_eq!(r.series(), 2);
        let text = r.render(2);
        assert!(
            text.contains("# TYPE container_cpu_usage_seconds_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("container_cpu_usage_seconds_total{cpu=\"total\",id=\"/a\\\"b\"} 3.5\n"),
            "{text}"
        );
        assert!(
            !text.contains("job="),
            "the scraper adds job and instance: {text}"
        );
        assert!(text.contains("# TYPE container_memory_rss gauge\ncontainer_memory_rss{id=\"/\"} "));
    }
}
