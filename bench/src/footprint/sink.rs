//! The remote-write receiver both stacks ship to: it answers 204 at once and counts, per
//! stack (by path: `/vigil/...`, `/pair/...`), the samples whose timestamps fall in the
//! measured window, by `job`, and the distinct series they belong to. Counting by sample
//! time rather than arrival time makes "samples per minute" a figure of what was collected
//! in the window, whatever each stack's send delay.
//!
//! While asked to, it also keeps the latest container series (`job="kubelet"`) the Vigil
//! agent shipped, with their metadata, for [`super::targets::Replay`].

use super::loopback::{Request, Response};
use super::targets::Replay;
use model::wire::prom::WriteRequest;
use prost::Message;
use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Largest decompressed remote-write body accepted.
const MAX_DECODED: usize = 256 << 20;

/// The two stacks shipping here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stack {
    Vigil,
    Pair,
}

impl Stack {
    /// The path prefix the stack is told to write to.
    pub fn prefix(self) -> &'static str {
        match self {
            Stack::Vigil => "/vigil",
            Stack::Pair => "/pair",
        }
    }
}

/// What one stack delivered.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    /// Write requests received, whole run.
    pub requests: u64,
    /// Write requests that could not be decoded.
    pub bad: u64,
    /// Samples in the window, by the series' `job` label.
    pub by_job: BTreeMap<String, u64>,
    /// Hashes of the series with a sample in the window.
    series: HashSet<u64>,
}

impl Tally {
    pub fn samples(&self) -> u64 {
        self.by_job.values().sum()
    }

    pub fn series(&self) -> usize {
        self.series.len()
    }
}

/// Vigil's container series as last shipped: labels → (value, timestamp), and metadata.
#[derive(Debug)]
struct Capture {
    series: HashMap<Vec<(String, String)>, (f64, i64)>,
    metadata: HashMap<String, (i32, String)>,
    /// When the last container series arrived: a collection ships in several requests, and
    /// is whole once they stop coming.
    last_arrival: Instant,
    /// How long arrivals must have stopped.
    quiet: Duration,
}

#[derive(Debug, Default)]
struct State {
    /// `[from, to)` in milliseconds; samples outside are not counted.
    window: Option<(i64, i64)>,
    vigil: Tally,
    pair: Tally,
    capture: Option<Capture>,
}

/// The sink's shared state; [`Sink::handle`] is the HTTP handler.
#[derive(Debug, Default, Clone)]
pub struct Sink {
    state: Arc<Mutex<State>>,
}

impl Sink {
    /// A sink that keeps Vigil's container series until [`Sink::take_replay`] succeeds;
    /// a collection counts as whole once no container series arrived for `quiet`.
    pub fn capturing(quiet: Duration) -> Sink {
        let sink = Sink::default();
        sink.lock().capture = Some(Capture {
            series: HashMap::new(),
            metadata: HashMap::new(),
            last_arrival: Instant::now(),
            quiet,
        });
        sink
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking handler leaves counts that are still counts.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts samples stamped in `[from_ms, to_ms)` from now on.
    pub fn set_window(&self, from_ms: i64, to_ms: i64) {
        self.lock().window = Some((from_ms, to_ms));
    }

    pub fn tally(&self, stack: Stack) -> Tally {
        let s = self.lock();
        match stack {
            Stack::Vigil => s.vigil.clone(),
            Stack::Pair => s.pair.clone(),
        }
    }

    /// The last container collection Vigil shipped, once one carries pod names (the agent
    /// has loaded the pod list) and has arrived whole; capturing stops then.
    pub fn take_replay(&self) -> Option<Replay> {
        let mut s = self.lock();
        let capture = s.capture.as_ref()?;
        if capture.last_arrival.elapsed() < capture.quiet {
            return None;
        }
        let last = capture.series.values().map(|(_, t)| *t).max()?;
        let current = || capture.series.iter().filter(move |(_, (_, t))| *t == last);
        let named =
            current().any(|(labels, _)| labels.iter().any(|(n, v)| n == "pod" && !v.is_empty()));
        if !named {
            return None;
        }
        let mut replay = Replay::default();
        for (labels, (value, _)) in current() {
            let name = labels
                .iter()
                .find_map(|(n, v)| (n == "__name__").then_some(v.as_str()))
                .unwrap_or_default();
            let (kind, help) = capture.metadata.get(name).cloned().unwrap_or_default();
            replay.add(labels, *value, kind, &help);
        }
        s.capture = None;
        Some(replay)
    }

    /// The HTTP handler: remote writes under a stack's prefix are decoded and counted;
    /// any other POST (Vigil's log pushes) is accepted unread.
    pub fn handle(&self, req: Request) -> Response {
        if req.method != "POST" {
            return Response::status(404);
        }
        let path = req.path();
        let Some(stack) = [Stack::Vigil, Stack::Pair]
            .into_iter()
            .find(|s| path.strip_prefix(s.prefix()) == Some("/api/v1/write"))
        else {
            return Response::status(204);
        };
        let decoded = model::wire::snappy_decompress(&req.body, MAX_DECODED)
            .map_err(|e| e.to_string())
            .and_then(|raw| WriteRequest::decode(raw.as_slice()).map_err(|e| e.to_string()));
        match decoded {
            Ok(write) => {
                self.record(stack, write);
                Response::status(204)
            }
            Err(error) => {
                eprintln!("sink: undecodable write from {stack:?}: {error}");
                let mut s = self.lock();
                match stack {
                    Stack::Vigil => s.vigil.bad += 1,
                    Stack::Pair => s.pair.bad += 1,
                }
                Response::status(400)
            }
        }
    }

    fn record(&self, stack: Stack, write: WriteRequest) {
        let mut guard = self.lock();
        let s = &mut *guard;
        let window = s.window;
        let tally = match stack {
            Stack::Vigil => &mut s.vigil,
            Stack::Pair => &mut s.pair,
        };
        tally.requests += 1;
        for ts in &write.timeseries {
            let job = ts
                .labels
                .iter()
                .find_map(|l| (l.name == "job").then_some(l.value.as_str()))
                .unwrap_or("");
            if let Some((from, to)) = window {
                let n = ts
                    .samples
                    .iter()
                    .filter(|x| (from..to).contains(&x.timestamp))
                    .count() as u64;
                if n > 0 {
                    *tally.by_job.entry(job.to_string()).or_default() += n;
                    let mut h = DefaultHasher::new();
                    for l in &ts.labels {
                        (&l.name, &l.value).hash(&mut h);
                    }
                    tally.series.insert(h.finish());
                }
            }
        }
        let (Stack::Vigil, Some(capture)) = (stack, s.capture.as_mut()) else {
            return;
        };
        for m in write.metadata {
            capture
                .metadata
                .insert(m.metric_family_name, (m.r#type, m.help));
        }
        for ts in write.timeseries {
            if !ts
                .labels
                .iter()
                .any(|l| l.name == "job" && l.value == "kubelet")
            {
                continue;
            }
            let Some(last) = ts.samples.iter().max_by_key(|x| x.timestamp) else {
                continue;
            };
            let point = (last.value, last.timestamp);
            let labels = ts.labels.into_iter().map(|l| (l.name, l.value)).collect();
            capture.series.insert(labels, point);
            capture.last_arrival = Instant::now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::wire::prom::{Label, MetricMetadata, TimeSeries, WireSample};

    fn series(pairs: &[(&str, &str)], samples: &[(i64, f64)]) -> TimeSeries {
        TimeSeries {
            labels: pairs
                .iter()
                .map(|(n, v)| Label {
                    name: n.to_string(),
                    value: v.to_string(),
                })
                .collect(),
            samples: samples
                .iter()
                .map(|&(timestamp, value)| WireSample { value, timestamp })
                .collect(),
            exemplars: Vec::new(),
        }
    }

    fn post(sink: &Sink, path: &str, req: WriteRequest) -> Response {
        sink.handle(Request {
            method: "POST".into(),
            target: path.into(),
            body: model::wire::snappy_compress(&req.encode_to_vec()),
        })
    }

    #[test]
    fn counts_samples_in_the_window_per_stack_and_job() {
        let sink = Sink::default();
        sink.set_window(1000, 2000);
        let req = WriteRequest {
            timeseries: vec![
                series(
                    &[("__name__", "up"), ("job", "app")],
                    &[(999, 1.0), (1000, 1.0), (1999, 1.0), (2000, 1.0)],
                ),
                series(
                    &[("__name__", "node_load1"), ("job", "node")],
                    &[(1500, 0.5)],
                ),
            ],
            metadata: Vec::new(),
        };
        assert!(matches!(
            post(&sink, "/pair/api/v1/write", req.clone()),
            Response::Full { status: 204, .. }
        ));
        post(&sink, "/pair/api/v1/write", req);
        let pair = sink.tally(Stack::Pair);
        assert_eq!(pair.by_job["app"], 4);
        assert_eq!(pair.by_job["node"], 2);
        assert_eq!(pair.series(), 2, "the same series twice is one series");
        assert_eq!(pair.requests, 2);
        assert_eq!(sink.tally(Stack::Vigil).samples(), 0);
        let bad = sink.handle(Request {
            method: "POST".into(),
            target: "/vigil/api/v1/write".into(),
            body: b"nope".to_vec(),
        });
        assert!(matches!(bad, Response::Full { status: 400, .. }));
        assert_eq!(sink.tally(Stack::Vigil).bad, 1);
    }

    #[test]
    fn replays_the_last_container_collection_once_pods_are_named() {
        let sink = Sink::capturing(Duration::ZERO);
        let cpu = |pod: &str, t: i64| {
            series(
                &[
                    ("__name__", "container_cpu_usage_seconds_total"),
                    ("id", "/kubepods.slice/x"),
                    ("job", "kubelet"),
                    ("pod", pod),
                ],
                &[(t, 3.0)],
            )
        };
        let meta = MetricMetadata {
            r#type: 1,
            metric_family_name: "container_cpu_usage_seconds_total".into(),
            help: "Cumulative cpu time consumed in seconds.".into(),
            unit: String::new(),
        };
        post(
            &sink,
            "/vigil/api/v1/write",
            WriteRequest {
                timeseries: vec![cpu("", 1000)],
                metadata: vec![meta],
            },
        );
        assert!(sink.take_replay().is_none(), "no pod names yet");
        post(
            &sink,
            "/vigil/api/v1/write",
            WriteRequest {
                timeseries: vec![cpu("web-1", 16000)],
                metadata: Vec::new(),
            },
        );
        let replay = sink.take_replay().unwrap();
        assert_eq!(replay.series(), 1, "only the last collection");
        let text = replay.render(0);
        assert!(
            text.contains("# TYPE container_cpu_usage_seconds_total counter"),
            "{text}"
        );
        assert!(text.contains("pod=\"web-1\""), "{text}");
        assert!(sink.take_replay().is_none(), "capturing stopped");

        // While a collection's requests still arrive, it is not taken half-shipped.
        let waiting = Sink::capturing(Duration::from_secs(3600));
        post(
            &waiting,
            "/vigil/api/v1/write",
            WriteRequest {
                timeseries: vec![cpu("web-1", 16000)],
                metadata: Vec::new(),
            },
        );
        assert!(waiting.take_replay().is_none());
    }
}
