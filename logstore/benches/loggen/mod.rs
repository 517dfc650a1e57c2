//! The container logs Vigil's log benchmarks ingest, generated with a fixed seed so every run
//! and every benchmark sees the same bytes: nginx access lines, kubelet's klog lines and JSON
//! application logs, over 10 namespaces × 6 pods and six hours of timestamps, with one line in
//! [`NEEDLE_ONE_IN`] carrying the trace id [`NEEDLE`].
//!
//! One copy serves two benchmarks: `logstore/benches/grep.rs` (`mod loggen;`, the store in
//! process against `grep`) and `vigil-bench logs` (`#[path] mod loggen;`, the push API of a
//! running server). It lives in a folder of its own so that cargo does not take it for a bench
//! target. What happens to the lines (raw files, a store, push bodies) is the includer's.

use model::Labels;

const SEED: u64 = 0x5eed_1095;
const NAMESPACES: [&str; 10] = [
    "payments",
    "checkout",
    "search",
    "auth",
    "ingress-nginx",
    "kube-system",
    "monitoring",
    "orders",
    "catalog",
    "web",
];
const PODS_PER_NAMESPACE: usize = 6;
/// The trace id the selective queries look for: about one line in [`NEEDLE_ONE_IN`] carries
/// it, in every namespace.
pub const NEEDLE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const NEEDLE_ONE_IN: u32 = 20_000;
/// 2024-06-12T00:00:00Z; the first line comes one interval later.
pub const START_NS: i64 = 1_718_150_400_000_000_000;
/// The span the lines' timestamps cover, whatever their volume: the interval between lines
/// shrinks as the target grows.
const SPAN_NS: i64 = 6 * 3600 * 1_000_000_000;

/// What a container writes, by the kind of workload in its namespace.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Nginx,
    Klog,
    Json,
}

/// One container's log stream.
#[derive(Debug)]
pub struct Stream {
    pub labels: Labels,
    kind: Kind,
    pub namespace: &'static str,
    pub pod: String,
}

/// The 60 streams, in the order the generator numbers them.
pub fn streams() -> Vec<Stream> {
    let mut out = Vec::new();
    for ns in NAMESPACES {
        let (kind, app) = match ns {
            "ingress-nginx" | "web" => (Kind::Nginx, "nginx"),
            "kube-system" => (Kind::Klog, "kubelet"),
            _ => (Kind::Json, ns),
        };
        for p in 0..PODS_PER_NAMESPACE {
            let pod = format!("{app}-7d9f8b{p}c5-x{p}q{p}z");
            out.push(Stream {
                labels: Labels::from_pairs([
                    ("namespace", ns),
                    ("pod", pod.as_str()),
                    ("container", app),
                    ("app", app),
                ]),
                kind,
                namespace: ns,
                pod,
            });
        }
    }
    out
}

/// One generated line: the index of its stream in what [`streams`] returns, its timestamp and
/// its text (without the newline).
#[derive(Debug)]
pub struct Line {
    pub stream: usize,
    pub ts_ns: i64,
    pub text: String,
}

/// The lines, in time order across all streams (so in time order within each), until their
/// raw bytes (each line plus its newline) reach the target.
#[derive(Debug)]
pub struct Generator {
    streams: Vec<Stream>,
    lines: Lines,
    interval_ns: i64,
    ts_ns: i64,
    raw_bytes: u64,
    target: u64,
}

impl Generator {
    /// About `target` raw bytes spread over six hours.
    pub fn new(target: u64) -> Generator {
        let streams = streams();
        let interval_ns = interval_ns(&streams, target);
        Generator {
            streams,
            lines: Lines {
                rng: fastrand::Rng::with_seed(SEED),
            },
            interval_ns,
            ts_ns: START_NS,
            raw_bytes: 0,
            target,
        }
    }
}

impl Iterator for Generator {
    type Item = Line;

    fn next(&mut self) -> Option<Line> {
        if self.raw_bytes >= self.target {
            return None;
        }
        self.ts_ns += self.interval_ns;
        let stream = self.lines.rng.usize(..self.streams.len());
        let text = self.lines.line(&self.streams[stream], self.ts_ns);
        self.raw_bytes += text.len() as u64 + 1;
        Some(Line {
            stream,
            ts_ns: self.ts_ns,
            text,
        })
    }
}

/// Seeded line generator.
#[derive(Debug)]
struct Lines {
    rng: fastrand::Rng,
}

const PATHS: [&str; 8] = [
    "/api/v1/orders",
    "/api/v1/cart/items",
    "/api/v2/search?q=shoes&page=2",
    "/healthz",
    "/api/v1/users/me",
    "/static/js/app.9f3c2.js",
    "/api/v1/payments/authorize",
    "/metrics",
];
const MESSAGES: [&str; 8] = [
    "request completed",
    "cache miss, loading from database",
    "upstream call finished",
    "token refreshed",
    "order state changed",
    "message published to queue",
    "slow query detected",
    "connection pool stats",
];
const KLOG: [&str; 6] = [
    "\"SyncLoop (PLEG): event for pod\" event={\"Type\":\"ContainerStarted\"}",
    "\"Probe succeeded\" probeType=\"Readiness\"",
    "\"RemoveContainer\" containerID=\"containerd://",
    "\"Volume attached\" volumeName=\"kubernetes.io/projected/kube-api-access\"",
    "\"Pod status updated\" status=\"Running\"",
    "\"Started container\" containerName=\"app\"",
];

impl Lines {
    fn hex(&mut self, out: &mut String, n: usize) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for _ in 0..n {
            out.push(HEX[self.rng.usize(..16)] as char);
        }
    }

    fn trace(&mut self, out: &mut String) {
        if self.rng.u32(..NEEDLE_ONE_IN) == 0 {
            out.push_str(NEEDLE);
        } else {
            self.hex(out, 32);
        }
    }

    fn line(&mut self, s: &Stream, ts_ns: i64) -> String {
        let secs = ts_ns / 1_000_000_000;
        let (h, m, sec) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
        let micros = (ts_ns / 1000) % 1_000_000;
        let mut l = String::with_capacity(256);
        use std::fmt::Write as _;
        match s.kind {
            Kind::Nginx => {
                let status = match self.rng.u32(..100) {
                    0 => 502,
                    1 => 404,
                    2..=4 => 301,
                    _ => 200,
                };
                let _ = write!(
                    l,
                    "10.{}.{}.{} - - [12/Jun/2024:{h:02}:{m:02}:{sec:02} +0000] \"{} {} HTTP/1.1\" {status} {} \"-\" \"Mozilla/5.0 (X11; Linux x86_64) Chrome/125.0\" {}.{:03} ",
                    self.rng.u8(..),
                    self.rng.u8(..),
                    self.rng.u8(..),
                    if self.rng.u8(..8) == 0 { "POST" } else { "GET" },
                    PATHS[self.rng.usize(..PATHS.len())],
                    self.rng.u32(100..90_000),
                    self.rng.u32(..2),
                    self.rng.u32(..1000),
                );
                self.trace(&mut l);
                if status == 502 {
                    l.push_str(" upstream error: connection refused");
                }
            }
            Kind::Klog => {
                let error = self.rng.u32(..100) < 3;
                let _ = write!(
                    l,
                    "{}0612 {h:02}:{m:02}:{sec:02}.{micros:06}    {} kubelet.go:{}] ",
                    if error { 'E' } else { 'I' },
                    self.rng.u32(1000..3000),
                    self.rng.u32(100..3000),
                );
                if error {
                    l.push_str("\"Error syncing pod, skipping\" err=\"failed to \\\"StartContainer\\\": back-off\" error=\"context deadline exceeded\"");
                } else {
                    l.push_str(KLOG[self.rng.usize(..KLOG.len())]);
                }
                let _ = write!(l, " pod=\"{}/{}\" traceID=\"", s.namespace, s.pod);
                self.trace(&mut l);
                l.push('"');
            }
            Kind::Json => {
                let level = match self.rng.u32(..100) {
                    0..=1 => "error",
                    2..=6 => "warn",
                    7..=16 => "debug",
                    _ => "info",
                };
                let _ = write!(
                    l,
                    "{{\"level\":\"{level}\",\"ts\":\"2024-06-12T{h:02}:{m:02}:{sec:02}.{micros:06}Z\",\"logger\":\"{}\",\"msg\":\"{}\",\"path\":\"{}\",\"status\":{},\"duration_ms\":{}.{:02},\"trace_id\":\"",
                    s.namespace,
                    MESSAGES[self.rng.usize(..MESSAGES.len())],
                    PATHS[self.rng.usize(..PATHS.len())],
                    if level == "error" { 500 } else { 200 },
                    self.rng.u32(..400),
                    self.rng.u32(..100),
                );
                self.trace(&mut l);
                let _ = write!(l, "\",\"user_id\":{}", self.rng.u32(..100_000));
                if level == "error" {
                    l.push_str(",\"error\":\"pq: deadlock detected\"");
                }
                l.push('}');
            }
        }
        l
    }
}

/// Average line length, from a sample drawn with another seed: it sets the time between
/// lines so that `target` bytes span six hours.
fn interval_ns(streams: &[Stream], target: u64) -> i64 {
    let mut g = Lines {
        rng: fastrand::Rng::with_seed(SEED ^ 1),
    };
    let n = 20_000;
    let bytes: usize = (0..n)
        .map(|i| g.line(&streams[i % streams.len()], START_NS).len() + 1)
        .sum();
    let lines = target as f64 / (bytes as f64 / n as f64);
    ((SPAN_NS as f64 / lines) as i64).max(1)
}
