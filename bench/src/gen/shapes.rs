//! What one scrape target exposes and how each of its values moves: the node_exporter,
//! cAdvisor and application (classic histogram) targets of one Kubernetes node, with the
//! metric names and label sets those exporters use.
//!
//! Values are kept as integers of a fixed unit (bytes, hundredths of a CPU second, pages) and
//! converted on output, so a "2-decimal" counter really only ever holds two decimals, as
//! node_exporter's CPU seconds do.

use super::rng::Rng;

/// How one series' value evolves from scrape to scrape.
#[derive(Debug, Clone)]
enum Shape {
    /// Never changes: spec limits, boot time, info metrics.
    Constant(f64),
    /// A counter of `units`, each worth `unit`; every scrape adds about `mean` units
    /// (uniformly 0.5–1.5 times it, rounded).
    Counter { units: i64, mean: f64, unit: Unit },
    /// A gauge walking by at most `step` units per scrape within `[lo, hi]`, unchanged on
    /// about a third of the scrapes.
    Gauge {
        units: i64,
        lo: i64,
        hi: i64,
        step: i64,
        unit: Unit,
    },
    /// The scrape time in seconds: with milliseconds (`node_time_seconds`) or whole
    /// (`container_last_seen`).
    Clock { whole_seconds: bool },
    /// Cumulative bucket `index` of the target's histogram `hist`.
    Bucket { hist: usize, index: usize },
    /// `_sum` of histogram `hist`.
    HistSum { hist: usize },
    /// `_count` of histogram `hist`.
    HistCount { hist: usize },
}

/// What one integer unit is worth: `times / per` (bytes are `1/1`, pages `4096/1`,
/// hundredths `1/100`). Dividing last keeps `0.07` exactly `0.07`.
#[derive(Debug, Clone, Copy)]
struct Unit {
    times: f64,
    per: f64,
}

const BYTES: Unit = Unit {
    times: 1.0,
    per: 1.0,
};
const PAGES: Unit = Unit {
    times: 4096.0,
    per: 1.0,
};
const HUNDREDTHS: Unit = Unit {
    times: 1.0,
    per: 100.0,
};

impl Unit {
    fn value(self, units: i64) -> f64 {
        units as f64 * self.times / self.per
    }
}

/// A classic histogram: cumulative bucket counts under `bounds` (the last is `+Inf`).
#[derive(Debug, Clone)]
struct Histogram {
    bounds: Vec<f64>,
    counts: Vec<u64>,
    sum: f64,
    /// Mean of the exponentially distributed observations, in seconds.
    scale: f64,
    /// Most observations per scrape.
    per_scrape: u64,
}

/// Upper bounds of the request-duration histograms (client_golang's defaults).
const LATENCY_BOUNDS: [f64; 11] = [
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    10.0,
    f64::INFINITY,
];

/// How many observations a histogram holds before the first scrape, so every bucket starts
/// far above one scrape's increase (Prometheus 2.42 and 3.x extrapolate `rate` differently
/// only when a counter's zero point is within one interval of its first sample).
const HISTOGRAM_HISTORY: f64 = 200_000.0;

impl Histogram {
    fn new(rng: &mut Rng) -> Histogram {
        let scale = rng.range(0.02, 0.4);
        let counts = LATENCY_BOUNDS
            .iter()
            .map(|&b| (HISTOGRAM_HISTORY * (1.0 - (-b / scale).exp())).round() as u64)
            .collect();
        Histogram {
            bounds: LATENCY_BOUNDS.to_vec(),
            counts,
            sum: HISTOGRAM_HISTORY * scale,
            scale,
            per_scrape: 20 + rng.below(200),
        }
    }

    fn observe_scrape(&mut self, rng: &mut Rng) {
        for _ in 0..rng.below(self.per_scrape) {
            let x = self.scale * -rng.unit().max(1e-12).ln();
            self.sum += x;
            // The last bound is +Inf, so every observation finds a bucket.
            let first = self
                .bounds
                .iter()
                .position(|&b| x <= b)
                .unwrap_or(self.bounds.len() - 1);
            for c in &mut self.counts[first..] {
                *c += 1;
            }
        }
    }
}

/// One series of a target: its label pairs, sorted by name as remote write requires.
#[derive(Debug, Clone)]
pub struct SeriesDef {
    pub labels: Vec<(String, String)>,
    shape: Shape,
}

/// One scrape target: its series, its histograms and its scrape phase.
#[derive(Debug, Clone)]
pub struct Target {
    pub series: Vec<SeriesDef>,
    histograms: Vec<Histogram>,
    /// Offset of this target's scrapes within the interval: whole seconds plus 100–400 ms,
    /// so no timestamp falls on a whole second or on a query step (`.750`).
    pub phase_ms: i64,
    rng: Rng,
}

/// Per-scrape timing jitter, at most this many milliseconds either way.
pub const JITTER_MS: i64 = 20;

impl Target {
    fn new(rng: &mut Rng, interval_ms: i64) -> Target {
        let whole_seconds = (interval_ms / 1000).max(1) as u64;
        let phase_ms = 1000 * rng.below(whole_seconds) as i64 + 100 + rng.below(301) as i64;
        Target {
            series: Vec::new(),
            histograms: Vec::new(),
            phase_ms,
            rng: rng.fork(),
        }
    }

    /// The timestamp of this target's scrape `i`, jittered by at most [`JITTER_MS`].
    pub fn scrape_time(&mut self, start_ms: i64, interval_ms: i64, i: usize) -> i64 {
        let jitter = self.rng.below(2 * JITTER_MS as u64 + 1) as i64 - JITTER_MS;
        start_ms + i as i64 * interval_ms + self.phase_ms + jitter
    }

    /// Advances every series by one scrape at `t_ms` and appends their values to `out`.
    pub fn scrape(&mut self, t_ms: i64, out: &mut Vec<f64>) {
        for h in &mut self.histograms {
            h.observe_scrape(&mut self.rng);
        }
        for s in &mut self.series {
            let v = match &mut s.shape {
                Shape::Constant(v) => *v,
                Shape::Counter { units, mean, unit } => {
                    *units += (*mean * self.rng.range(0.5, 1.5)).round() as i64;
                    unit.value(*units)
                }
                Shape::Gauge {
                    units,
                    lo,
                    hi,
                    step,
                    unit,
                } => {
                    if self.rng.below(3) != 0 {
                        let delta = self.rng.below(2 * *step as u64 + 1) as i64 - *step;
                        *units = (*units + delta).clamp(*lo, *hi);
                    }
                    unit.value(*units)
                }
                Shape::Clock { whole_seconds } => {
                    if *whole_seconds {
                        (t_ms / 1000) as f64
                    } else {
                        t_ms as f64 / 1000.0
                    }
                }
                Shape::Bucket { hist, index } => self.histograms[*hist].counts[*index] as f64,
                Shape::HistSum { hist } => self.histograms[*hist].sum,
                Shape::HistCount { hist } => {
                    self.histograms[*hist].counts.last().copied().unwrap_or(0) as f64
                }
            };
            out.push(v);
        }
    }

    fn push(&mut self, base: &[(&str, &str)], name: &str, extra: &[(&str, &str)], shape: Shape) {
        let mut labels: Vec<(String, String)> = base
            .iter()
            .chain(extra)
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        labels.push(("__name__".to_string(), name.to_string()));
        labels.sort();
        self.series.push(SeriesDef { labels, shape });
    }
}

fn counter(rng: &mut Rng, start_lo: f64, start_hi: f64, mean: f64, unit: Unit) -> Shape {
    Shape::Counter {
        units: rng.range(start_lo, start_hi) as i64,
        mean,
        unit,
    }
}

fn gauge(rng: &mut Rng, lo: i64, hi: i64, step: i64, unit: Unit) -> Shape {
    Shape::Gauge {
        units: lo + rng.below((hi - lo).max(1) as u64) as i64,
        lo,
        hi,
        step,
        unit,
    }
}

/// node_exporter 1.5 on host `h`: CPU seconds per mode (2 decimals), memory and filesystem
/// gauges in bytes, network and disk byte counters, load averages, boot time and clock —
/// 96 series.
pub fn node_exporter(rng: &mut Rng, h: usize, interval_ms: i64) -> Target {
    let mut t = Target::new(rng, interval_ms);
    let instance = host_ip(h, 9100);
    let base = [("instance", instance.as_str()), ("job", "node")];
    let secs = interval_ms as f64 / 1000.0;
    // Hundredths of a second each mode gains per scrape, per CPU.
    let modes = [
        ("idle", 80.0),
        ("iowait", 0.6),
        ("irq", 0.0),
        ("nice", 0.0),
        ("softirq", 0.4),
        ("steal", 0.0),
        ("system", 6.0),
        ("user", 13.0),
    ];
    for cpu in ["0", "1", "2", "3"] {
        for (mode, per_second) in modes {
            let shape = counter(rng, 1e7, 9e7, per_second * secs, HUNDREDTHS);
            t.push(
                &base,
                "node_cpu_seconds_total",
                &[("cpu", cpu), ("mode", mode)],
                shape,
            );
        }
    }
    let mem_total = 4 * 1024 * 1024; // pages: 16 GiB
    t.push(
        &base,
        "node_memory_MemTotal_bytes",
        &[],
        Shape::Constant(PAGES.value(mem_total)),
    );
    for (name, lo, hi, step) in [
        ("node_memory_MemFree_bytes", 200_000, 900_000, 400),
        ("node_memory_MemAvailable_bytes", 1_500_000, 2_500_000, 600),
        ("node_memory_Buffers_bytes", 20_000, 40_000, 8),
        ("node_memory_Cached_bytes", 800_000, 1_600_000, 300),
        ("node_memory_Active_bytes", 1_000_000, 2_000_000, 300),
        ("node_memory_Inactive_bytes", 500_000, 900_000, 200),
        ("node_memory_Dirty_bytes", 0, 3_000, 40),
    ] {
        let shape = gauge(rng, lo, hi, step, PAGES);
        t.push(&base, name, &[], shape);
    }
    t.push(
        &base,
        "node_memory_SwapTotal_bytes",
        &[],
        Shape::Constant(0.0),
    );
    t.push(
        &base,
        "node_memory_SwapFree_bytes",
        &[],
        Shape::Constant(0.0),
    );
    for name in ["node_load1", "node_load5", "node_load15"] {
        let shape = gauge(rng, 10, 400, 8, HUNDREDTHS);
        t.push(&base, name, &[], shape);
    }
    for device in ["cni0", "eth0", "lo"] {
        let d = [("device", device)];
        let bytes_mean = rng.range(2e4, 2e6) * secs;
        for (name, mean) in [
            ("node_network_receive_bytes_total", bytes_mean),
            ("node_network_transmit_bytes_total", bytes_mean * 0.7),
            ("node_network_receive_packets_total", bytes_mean / 900.0),
            ("node_network_transmit_packets_total", bytes_mean / 1100.0),
            ("node_network_receive_errs_total", 0.0),
            ("node_network_transmit_errs_total", 0.0),
            ("node_network_receive_drop_total", 0.0),
            ("node_network_transmit_drop_total", 0.0),
        ] {
            let shape = counter(rng, 1e9, 5e11, mean, BYTES);
            t.push(&base, name, &d, shape);
        }
    }
    for device in ["nvme0n1", "nvme1n1"] {
        let d = [("device", device)];
        for (name, mean, unit) in [
            ("node_disk_read_bytes_total", 4e5 * secs, BYTES),
            ("node_disk_written_bytes_total", 2e6 * secs, BYTES),
            ("node_disk_reads_completed_total", 20.0 * secs, BYTES),
            ("node_disk_writes_completed_total", 90.0 * secs, BYTES),
            ("node_disk_io_time_seconds_total", 3.0 * secs, HUNDREDTHS),
        ] {
            let shape = counter(rng, 1e8, 1e11, mean, unit);
            t.push(&base, name, &d, shape);
        }
    }
    for (device, mountpoint, fstype, size) in [
        ("/dev/nvme0n1p1", "/", "ext4", 25_000_000i64),
        ("/dev/nvme1n1", "/var/lib/containerd", "xfs", 50_000_000),
    ] {
        let l = [
            ("device", device),
            ("fstype", fstype),
            ("mountpoint", mountpoint),
        ];
        let used = size / 3 + rng.below(size as u64 / 3) as i64;
        let avail = Shape::Gauge {
            units: size - used,
            lo: size / 10,
            hi: size,
            step: 50,
            unit: PAGES,
        };
        t.push(&base, "node_filesystem_avail_bytes", &l, avail.clone());
        t.push(&base, "node_filesystem_free_bytes", &l, avail);
        let total = Shape::Constant(PAGES.value(size));
        t.push(&base, "node_filesystem_size_bytes", &l, total);
        let files = size / 16;
        t.push(
            &base,
            "node_filesystem_files",
            &l,
            Shape::Constant(files as f64),
        );
        let free = gauge(rng, files / 2, files, 30, BYTES);
        t.push(&base, "node_filesystem_files_free", &l, free);
    }
    let boot = Shape::Constant(1_690_000_000.0 + rng.below(5_000_000) as f64);
    t.push(&base, "node_boot_time_seconds", &[], boot);
    for (name, mean) in [
        ("node_context_switches_total", 9e3 * secs),
        ("node_intr_total", 6e3 * secs),
        ("node_forks_total", 15.0 * secs),
    ] {
        let shape = counter(rng, 1e8, 1e10, mean, BYTES);
        t.push(&base, name, &[], shape);
    }
    let procs = gauge(rng, 1, 12, 2, BYTES);
    t.push(&base, "node_procs_running", &[], procs);
    let node = format!("node-{h:03}");
    let uname = [
        ("machine", "x86_64"),
        ("nodename", node.as_str()),
        ("release", "6.1.0-18-cloud-amd64"),
        ("sysname", "Linux"),
    ];
    t.push(&base, "node_uname_info", &uname, Shape::Constant(1.0));
    let clock = Shape::Clock {
        whole_seconds: false,
    };
    t.push(&base, "node_time_seconds", &[], clock);
    t
}

/// An application on host `h` with a classic request-duration histogram per handler
/// (11 buckets, `_sum`, `_count`): 26 series.
pub fn application(rng: &mut Rng, h: usize, interval_ms: i64) -> Target {
    let mut t = Target::new(rng, interval_ms);
    let instance = host_ip(h, 8080);
    let base = [("instance", instance.as_str()), ("job", "app")];
    for handler in ["/api/v1/query", "/api/v1/write"] {
        let hist = t.histograms.len();
        t.histograms.push(Histogram::new(rng));
        let hl = [("handler", handler)];
        for (index, bound) in LATENCY_BOUNDS.iter().enumerate() {
            let le = if bound.is_infinite() {
                "+Inf".to_string()
            } else {
                bound.to_string()
            };
            let l = [("handler", handler), ("le", le.as_str())];
            let shape = Shape::Bucket { hist, index };
            t.push(&base, "http_request_duration_seconds_bucket", &l, shape);
        }
        let sum = Shape::HistSum { hist };
        t.push(&base, "http_request_duration_seconds_sum", &hl, sum);
        let count = Shape::HistCount { hist };
        t.push(&base, "http_request_duration_seconds_count", &hl, count);
    }
    t
}

/// Namespaces and deployments of the pods a node runs.
const WORKLOADS: [(&str, &str, &str); 12] = [
    (
        "kube-system",
        "coredns",
        "registry.k8s.io/coredns/coredns:v1.11.1",
    ),
    (
        "kube-system",
        "kube-proxy",
        "registry.k8s.io/kube-proxy:v1.29.2",
    ),
    ("kube-system", "cilium", "quay.io/cilium/cilium:v1.15.1"),
    ("monitoring", "vigil-agent", "ghcr.io/vigil/vigil:0.1.0"),
    ("monitoring", "grafana", "docker.io/grafana/grafana:10.3.3"),
    ("default", "api", "registry.example.com/shop/api:2024.03.1"),
    ("default", "web", "registry.example.com/shop/web:2024.03.1"),
    (
        "default",
        "worker",
        "registry.example.com/shop/worker:2024.03.1",
    ),
    (
        "payments",
        "ledger",
        "registry.example.com/payments/ledger:1.8.0",
    ),
    (
        "payments",
        "gateway",
        "registry.example.com/payments/gateway:1.8.0",
    ),
    (
        "search",
        "indexer",
        "registry.example.com/search/indexer:0.9.4",
    ),
    ("search", "query", "registry.example.com/search/query:0.9.4"),
];

/// The kubelet's cAdvisor endpoint on host `h`: 16 series for each of 12 containers, with
/// cAdvisor's label set (`container id image name namespace pod`).
pub fn cadvisor(rng: &mut Rng, h: usize, interval_ms: i64) -> Target {
    let mut t = Target::new(rng, interval_ms);
    let node = format!("node-{h:03}");
    let base = [
        ("instance", node.as_str()),
        ("job", "kubelet"),
        ("metrics_path", "/metrics/cadvisor"),
    ];
    let secs = interval_ms as f64 / 1000.0;
    for (namespace, deployment, image) in WORKLOADS {
        let pod = format!("{deployment}-{}-{}", hex(rng, 9), hex(rng, 5));
        let id = format!("/kubepods/burstable/pod{}/{}", hex(rng, 32), hex(rng, 64));
        let name = format!("k8s_{deployment}_{pod}_{namespace}_{}_0", hex(rng, 8));
        let c = [
            ("container", deployment),
            ("id", id.as_str()),
            ("image", image),
            ("name", name.as_str()),
            ("namespace", namespace),
            ("pod", pod.as_str()),
        ];
        let cores = rng.range(0.5, 40.0); // hundredths of a core in use
        for (cpu_name, share) in [
            ("container_cpu_usage_seconds_total", 1.0),
            ("container_cpu_user_seconds_total", 0.7),
            ("container_cpu_system_seconds_total", 0.3),
        ] {
            let shape = counter(rng, 1e5, 1e8, cores * share * secs, HUNDREDTHS);
            let extra: &[(&str, &str)] = if share == 1.0 {
                &[("cpu", "total")]
            } else {
                &[]
            };
            let labels: Vec<(&str, &str)> = c.iter().chain(extra).copied().collect();
            t.push(&base, cpu_name, &labels, shape);
        }
        let periods = counter(rng, 1e5, 1e7, 10.0 * secs, BYTES);
        t.push(&base, "container_cpu_cfs_periods_total", &c, periods);
        let throttled = counter(rng, 1e3, 1e5, 0.2 * secs, BYTES);
        t.push(
            &base,
            "container_cpu_cfs_throttled_periods_total",
            &c,
            throttled,
        );
        let limit_pages = 1 << (15 + rng.below(4)); // 128 MiB – 1 GiB
        let working = gauge(rng, limit_pages / 4, limit_pages * 3 / 4, 16, PAGES);
        t.push(
            &base,
            "container_memory_working_set_bytes",
            &c,
            working.clone(),
        );
        t.push(&base, "container_memory_usage_bytes", &c, working);
        let rss = gauge(rng, limit_pages / 5, limit_pages / 2, 8, PAGES);
        t.push(&base, "container_memory_rss", &c, rss);
        let cache = gauge(rng, 0, limit_pages / 4, 8, PAGES);
        t.push(&base, "container_memory_cache", &c, cache);
        let limit = Shape::Constant(PAGES.value(limit_pages));
        t.push(&base, "container_spec_memory_limit_bytes", &c, limit);
        let shares = Shape::Constant(f64::from(1u32 << (6 + rng.below(5) as u32)));
        t.push(&base, "container_spec_cpu_shares", &c, shares);
        let dev: Vec<(&str, &str)> = c
            .iter()
            .copied()
            .chain([("device", "/dev/nvme1n1")])
            .collect();
        let reads = counter(rng, 1e6, 1e9, 2e3 * secs, BYTES);
        t.push(&base, "container_fs_reads_bytes_total", &dev, reads);
        let writes = counter(rng, 1e6, 1e9, 8e3 * secs, BYTES);
        t.push(&base, "container_fs_writes_bytes_total", &dev, writes);
        let eth: Vec<(&str, &str)> = c.iter().copied().chain([("interface", "eth0")]).collect();
        let rx_mean = rng.range(1e3, 1e5) * secs;
        let rx = counter(rng, 1e7, 1e10, rx_mean, BYTES);
        t.push(&base, "container_network_receive_bytes_total", &eth, rx);
        let tx_mean = rng.range(1e3, 1e5) * secs;
        let tx = counter(rng, 1e7, 1e10, tx_mean, BYTES);
        t.push(&base, "container_network_transmit_bytes_total", &eth, tx);
        let seen = Shape::Clock {
            whole_seconds: true,
        };
        t.push(&base, "container_last_seen", &c, seen);
    }
    t
}

fn host_ip(h: usize, port: u16) -> String {
    format!("10.0.{}.{}:{port}", h / 250, h % 250 + 1)
}

fn hex(rng: &mut Rng, len: usize) -> String {
    (0..len)
        .map(|_| char::from(b"0123456789abcdef"[rng.below(16) as usize]))
        .collect()
}
