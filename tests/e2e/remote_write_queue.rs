//! The agent's remote-write queue under the real `vigil agent` (issue 6's outage proof): the
//! receiver is stopped for a minute while the agent collects every second, the agent is
//! SIGKILLed and restarted in the middle of it, and when the receiver returns on the same port
//! every sample collected meanwhile arrives, in order, and none twice. Then (issue 7's
//! delivery mark) the agent is killed halfway through sending a backlog: the restarted agent
//! sends only the rest of it.

use crate::harness::{now_ms, Vigil};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use model::wire::prom::WriteRequest;
use prost::Message;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How long the receiver stays away.
const OUTAGE: Duration = Duration::from_secs(60);
/// The agent's collection interval.
const INTERVAL_MS: i64 = 1000;

/// Every sample the receiver took: the series' labels rendered, and the timestamp. By
/// default it takes every write at once.
#[derive(Default)]
struct Receiver {
    samples: Mutex<Vec<(String, i64)>>,
    /// Answer writes 503 (retry later) without taking them.
    refuse: AtomicBool,
    /// How long a write waits before it is answered (a slow receiver).
    delay_ms: AtomicU64,
    flow: Mutex<Flow>,
}

/// Writes taken, and whether one arrived since the last was taken: then, since the agent
/// sends one write at a time, it has finished with every write taken so far.
#[derive(Default)]
struct Flow {
    taken: u64,
    arrived_since_taken: bool,
}

impl Receiver {
    /// The timestamps of `node_load1`, in arrival order.
    fn load1(&self) -> Vec<i64> {
        let samples = self.samples.lock().unwrap();
        samples
            .iter()
            .filter(|(series, _)| series.starts_with("__name__=node_load1,"))
            .map(|(_, t)| *t)
            .collect()
    }
}

async fn receive(State(r): State<Arc<Receiver>>, uri: Uri, body: Bytes) -> StatusCode {
    // Target reports and log pushes are answered and forgotten.
    if uri.path() != "/api/v1/write" {
        return StatusCode::NO_CONTENT;
    }
    r.flow.lock().unwrap().arrived_since_taken = true;
    let delay = r.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let Ok(raw) = model::wire::snappy_decompress(&body, 1 << 28) else {
        return StatusCode::BAD_REQUEST;
    };
    let Ok(req) = WriteRequest::decode(raw.as_slice()) else {
        return StatusCode::BAD_REQUEST;
    };
    // Refused or taken under the flow lock, so that a test that sets `refuse` under it knows
    // no write is taken afterwards.
    let mut flow = r.flow.lock().unwrap();
    if r.refuse.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let mut samples = r.samples.lock().unwrap();
    for ts in req.timeseries {
        let series: String = ts
            .labels
            .iter()
            .map(|l| format!("{}={},", l.name, l.value))
            .collect();
        samples.extend(ts.samples.iter().map(|s| (series.clone(), s.timestamp)));
    }
    flow.taken += 1;
    flow.arrived_since_taken = false;
    StatusCode::NO_CONTENT
}

/// Serves `receiver` on `addr` until the returned token is cancelled; then the listener is
/// closed and idle connections with it, so the agent sees connection refused.
async fn serve(
    addr: SocketAddr,
    receiver: Arc<Receiver>,
) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let app = axum::Router::new().fallback(receive).with_state(receiver);
    let stop = CancellationToken::new();
    let signal = stop.clone().cancelled_owned();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(signal)
            .await
            .unwrap();
    });
    (stop, task)
}

/// Starts `vigil agent` shipping to `base`, with its state in `state` (shared across restarts
/// through a symlink, since each harness process owns its own temp dir).
fn agent(state: &Path, logs: &Path, base: &str, extra: &[&str]) -> Vigil {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(state, dir.path().join("agent")).unwrap();
    let flags = [
        format!("--remote-write.url={base}/api/v1/write"),
        format!("--logs.push-url={base}/loki/api/v1/push"),
        format!("--logs.path={}", logs.display()),
        "--metrics.interval=1s".to_string(),
        "--collector.cadvisor=false".to_string(),
        "--node-name=outage".to_string(),
    ];
    let mut args: Vec<&str> = flags.iter().map(String::as_str).collect();
    args.extend_from_slice(extra);
    Vigil::agent(dir, &args)
}

/// One remote-write request in flight, for the test that reasons about the one request a kill
/// can cut off (with several shards, one per shard).
const ONE_SHARD: &[&str] = &["--remote-write.shards=1"];

/// A counter or gauge of the agent's own `/metrics`.
async fn self_metric(agent: &Vigil, name: &str) -> f64 {
    let text = agent.metrics().await;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
}

const COLLECTIONS: &str = "vigil_agent_node_collection_duration_seconds_count";

/// The largest step between consecutive timestamps.
fn widest_gap(ts: &[i64]) -> i64 {
    ts.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sample_collected_during_a_one_minute_outage_arrives_once_across_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let (state, logs) = (dir.path().join("state"), dir.path().join("pods"));
    std::fs::create_dir_all(&state).unwrap();
    std::fs::create_dir_all(&logs).unwrap();
    let receiver = Arc::new(Receiver::default());
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let base = format!("http://{addr}");
    let (stop, serving) = serve(addr, receiver.clone()).await;

    let first = agent(&state, &logs, &base, &[]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while receiver.load1().len() < 3 {
        assert!(
            Instant::now() < deadline,
            "no samples arrived; log:\n{}",
            first.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The receiver goes away.
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(10), serving)
        .await
        .expect("the receiver stops")
        .unwrap();
    let outage_start = Instant::now();
    let outage_start_ms = now_ms();
    tokio::time::sleep(OUTAGE / 3).await;

    // kill -9 just after a collection was queued: every collection it counted is on disk.
    let before = self_metric(&first, COLLECTIONS).await;
    while self_metric(&first, COLLECTIONS).await == before {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let first_collections = self_metric(&first, COLLECTIONS).await as usize;
    let killed_ms = now_ms();
    let mut log = first.log();
    first.kill9();
    assert!(
        std::fs::read_dir(state.join("wal-remote-write"))
            .unwrap()
            .any(|e| e.unwrap().path().extension().is_some_and(|x| x == "seg")),
        "the samples wait in segment files"
    );

    let second_ms = now_ms();
    let second = agent(&state, &logs, &base, &[]);
    tokio::time::sleep(OUTAGE.saturating_sub(outage_start.elapsed())).await;
    assert!(
        self_metric(&second, "vigil_agent_remote_write_failures_total").await > 0.0,
        "the restarted agent met the outage too"
    );

    // The receiver returns on the same port.
    let receiver_back_ms = now_ms();
    let (stop, _serving) = serve(addr, receiver.clone()).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let collected = self_metric(&second, COLLECTIONS).await as usize;
        let arrived = receiver.load1().iter().filter(|t| **t >= second_ms).count();
        if arrived >= collected {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{arrived} of {collected} collections of the restarted agent arrived; log:\n{}",
            second.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.cancel();
    log.push_str(&second.log());

    let twice = twice(&receiver);
    assert!(
        twice.is_empty(),
        "{} samples arrived twice, first {:?}",
        twice.len(),
        twice.first()
    );

    let load1 = receiver.load1();
    assert!(
        load1.windows(2).all(|w| w[0] < w[1]),
        "node_load1 arrived out of order: {load1:?}"
    );
    let (first_run, second_run): (Vec<i64>, Vec<i64>) =
        load1.iter().partition(|t| **t <= killed_ms);
    assert_eq!(
        first_run.len(),
        first_collections,
        "every collection of the killed agent arrived; log:\n{log}"
    );
    assert!(
        second_run.iter().all(|t| *t >= second_ms),
        "no sample between the kill and the restart"
    );
    // Collected every second across the outage: no step wider than a late tick.
    for (run, ts) in [("killed", &first_run), ("restarted", &second_run)] {
        assert!(
            widest_gap(ts) < 5 * INTERVAL_MS / 2,
            "the {run} agent's node_load1 has a gap: {ts:?}"
        );
    }
    let in_outage =
        |ts: &[i64], from: i64, to: i64| ts.iter().filter(|t| (from..to).contains(*t)).count();
    assert!(
        in_outage(&first_run, outage_start_ms, killed_ms) >= 15,
        "the killed agent's outage samples arrived: {first_run:?}"
    );
    assert!(
        in_outage(&second_run, second_ms, receiver_back_ms) >= 30,
        "the restarted agent's outage samples arrived: {second_run:?}"
    );
    assert!(
        log.contains("remote write queue replays what a previous run left"),
        "the restarted agent replayed the queue; log:\n{log}"
    );
}

/// The samples that arrived more than once.
fn twice(receiver: &Receiver) -> Vec<(String, i64)> {
    let samples = receiver.samples.lock().unwrap();
    let mut seen = HashSet::new();
    samples
        .iter()
        .filter(|s| !seen.insert(*s))
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_halfway_through_a_backlog_resends_none_of_what_was_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let (state, logs) = (dir.path().join("state"), dir.path().join("pods"));
    std::fs::create_dir_all(&state).unwrap();
    std::fs::create_dir_all(&logs).unwrap();
    let receiver = Arc::new(Receiver::default());
    receiver.refuse.store(true, Ordering::SeqCst);
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let base = format!("http://{addr}");
    let (stop, _serving) = serve(addr, receiver.clone()).await;

    // A backlog builds up in one segment while the receiver refuses (503).
    let first = agent(&state, &logs, &base, ONE_SHARD);
    let deadline = Instant::now() + Duration::from_secs(30);
    while self_metric(&first, COLLECTIONS).await < 8.0 {
        assert!(Instant::now() < deadline, "log:\n{}", first.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Then takes it slowly, a write every 300 ms.
    receiver.delay_ms.store(300, Ordering::SeqCst);
    receiver.refuse.store(false, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(30);
    while receiver.flow.lock().unwrap().taken < 3 {
        assert!(Instant::now() < deadline, "log:\n{}", first.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Kill once the agent has moved past every write taken (it sent the next one), so that
    // every write the receiver took was acknowledged to the agent; the write in flight is
    // refused, as one whose answer a crash cut off would be sent again anyway.
    {
        let _flow = receiver.flow.lock().unwrap();
        receiver.refuse.store(true, Ordering::SeqCst);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while !receiver.flow.lock().unwrap().arrived_since_taken {
        assert!(Instant::now() < deadline, "log:\n{}", first.log());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let killed_ms = now_ms();
    let mut log = first.log();
    first.kill9();
    let taken_before_kill = receiver.flow.lock().unwrap().taken;
    let load1_before_kill = receiver.load1().len();
    assert!(
        load1_before_kill > 0,
        "part of the backlog arrived before the kill"
    );

    let second = agent(&state, &logs, &base, ONE_SHARD);
    receiver.delay_ms.store(0, Ordering::SeqCst);
    receiver.refuse.store(false, Ordering::SeqCst);
    // Everything the killed agent collected arrives: the rest of its backlog.
    let first_collections = {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let load1 = receiver.load1();
            let old = load1.iter().filter(|t| **t <= killed_ms).count();
            let new = load1.iter().filter(|t| **t > killed_ms).count();
            if new >= 2 {
                break old;
            }
            assert!(Instant::now() < deadline, "log:\n{}", second.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    stop.cancel();
    log.push_str(&second.log());

    let twice = twice(&receiver);
    assert!(
        twice.is_empty(),
        "{} samples arrived twice (first {:?}); {taken_before_kill} writes were taken before \
         the kill; log:\n{log}",
        twice.len(),
        twice.first(),
    );
    assert!(
        first_collections > load1_before_kill,
        "the restarted agent sent the rest of the backlog ({load1_before_kill} of \
         {first_collections} collections had arrived before the kill)"
    );
    assert!(
        log.contains("skipping what a previous run delivered"),
        "the restarted agent skipped the delivered part; log:\n{log}"
    );
    let load1 = receiver.load1();
    assert!(
        load1.windows(2).all(|w| w[0] < w[1]),
        "node_load1 arrived out of order: {load1:?}"
    );
}
