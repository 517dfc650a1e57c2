//! The log tailer under the real `vigil agent`, shipping to a Loki push receiver in the test:
//! `--logs.max-line-size` splitting an over-long line, and the proof that every container
//! line arrives exactly once through kubelet-style rotation (rename every 1 MiB, older files
//! gzipped) while the agent is SIGKILLed and restarted three times and the receiver answers
//! 503 for a while.
//!
//! "Exactly once" is what a Loki-compatible store keeps: an entry the agent re-sends after a
//! SIGKILL (its push answered by the receiver, the agent killed before the queue's delivery
//! mark or the checkpoint recorded it) has the same stream, timestamp and line, which Loki and
//! Vigil's log store drop as duplicates. The test checks that every re-sent entry is such an
//! identical copy, that whole pushes are re-sent only when a kill cut them off (they are among
//! the last pushes of the killed run, and the next run re-sends them), and counts them.

use crate::harness::BIN;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use model::wire::loki::PushRequest;
use prost::Message;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The agent's Loki pushes in flight at once.
const PUSHES_IN_FLIGHT: u64 = collector::DEFAULT_MAX_IN_FLIGHT as u64;

/// One entry as the receiver got it.
#[derive(Clone, Debug)]
struct Received {
    /// The `pod` label: the stress test's pods have one container each.
    pod: String,
    ts_ns: i64,
    line: String,
    split: Option<String>,
    /// Which push brought it (counted from 0) and which agent run was up then (0 before the
    /// first restart): what a re-sent copy is traced back by.
    push: u64,
    run: u64,
}

/// A Loki push receiver (and a remote-write sink that accepts everything) that can be told
/// to answer 503 for a while.
#[derive(Default)]
struct Receiver {
    entries: Mutex<Vec<Received>>,
    /// `(pod, timestamp)` of every entry: one per line written.
    distinct: Mutex<std::collections::HashSet<(String, i64)>>,
    down: AtomicBool,
    refused: AtomicU64,
    pushes: AtomicU64,
    /// Agent restarts so far.
    run: AtomicU64,
}

async fn receive(State(r): State<Arc<Receiver>>, uri: Uri, body: Bytes) -> StatusCode {
    if uri.path() != "/loki/api/v1/push" {
        return StatusCode::NO_CONTENT;
    }
    if r.down.load(Ordering::SeqCst) {
        r.refused.fetch_add(1, Ordering::Relaxed);
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let Ok(raw) = model::wire::snappy_decompress(&body, 1 << 28) else {
        return StatusCode::BAD_REQUEST;
    };
    let Ok(push) = PushRequest::decode(raw.as_slice()) else {
        return StatusCode::BAD_REQUEST;
    };
    let mut got = Vec::new();
    let (push_no, run) = (
        r.pushes.fetch_add(1, Ordering::SeqCst),
        r.run.load(Ordering::SeqCst),
    );
    for s in push.streams {
        let Ok(labels) = model::parse_label_set(&s.labels) else {
            return StatusCode::BAD_REQUEST;
        };
        let pod = labels.get("pod").unwrap_or_default().to_string();
        for e in s.entries {
            got.push(Received {
                pod: pod.clone(),
                ts_ns: e.timestamp.map_or(0, |t| t.to_nanos()),
                line: e.line,
                split: e
                    .structured_metadata
                    .iter()
                    .find(|m| m.name == "split")
                    .map(|m| m.value.clone()),
                push: push_no,
                run,
            });
        }
    }
    {
        let mut distinct = r.distinct.lock().unwrap();
        for e in &got {
            distinct.insert((e.pod.clone(), e.ts_ns));
        }
    }
    r.entries.lock().unwrap().extend(got);
    StatusCode::NO_CONTENT
}

async fn start_receiver() -> (String, Arc<Receiver>) {
    let r = Arc::new(Receiver::default());
    let app = axum::Router::new().fallback(receive).with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, r)
}

/// A `vigil agent` on state and pod directories the test owns (so they outlive it), killed
/// with SIGKILL on drop (also used by `log_queue.rs`).
pub(crate) struct Agent {
    child: Child,
    log: Arc<Mutex<String>>,
    /// Where its web endpoint listens (`host:port`).
    address: String,
}

impl Agent {
    /// The value of the unlabelled sample `name` on its `/metrics`, if it has one.
    pub(crate) async fn metric(&self, name: &str) -> Option<f64> {
        let url = format!("http://{}/metrics", self.address);
        let text = crate::harness::client()
            .get(url)
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    }

    pub(crate) fn start(root: &Path, receiver: &str, extra: &[&str]) -> Agent {
        Agent::start_under(&[], root, receiver, extra)
    }

    /// [`Agent::start`] through `wrapper`, a command that runs the binary it is given last
    /// (e.g. `prlimit --fsize=N --`, which execs it: the agent keeps the wrapper's pid).
    pub(crate) fn start_under(
        wrapper: &[&str],
        root: &Path,
        receiver: &str,
        extra: &[&str],
    ) -> Agent {
        let mut args = vec![
            "agent".to_string(),
            "--web.listen-address=127.0.0.1:0".to_string(),
            format!("--state.path={}", root.join("state").display()),
            format!("--logs.path={}", root.join("pods").display()),
            format!("--logs.push-url={receiver}/loki/api/v1/push"),
            format!("--remote-write.url={receiver}/api/v1/write"),
            "--metrics.interval=1h".to_string(),
            "--node-name=stress".to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        // `VIGIL_BIN` runs another build (a release one, for the memory measurement).
        let bin = std::env::var("VIGIL_BIN").unwrap_or_else(|_| BIN.to_string());
        let (program, args) = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut all: Vec<String> = rest.iter().map(|s| s.to_string()).collect();
                all.push(bin);
                all.extend(args);
                (first.to_string(), all)
            }
            None => (bin, args),
        };
        let mut child = Command::new(program)
            .args(&args)
            .env("VIGIL_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start vigil agent");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let log_w = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("listening") {
                    let address = line
                        .split_whitespace()
                        .find_map(|w| w.strip_prefix("address="))
                        .unwrap_or_default()
                        .to_string();
                    let _ = tx.send(address);
                }
                let mut l = log_w.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let Ok(address) = rx.recv_timeout(Duration::from_secs(30)) else {
            let _ = child.kill();
            panic!("agent did not start; log:\n{}", log.lock().unwrap());
        };
        Agent {
            child,
            log,
            address,
        }
    }

    /// The agent's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        // `Child::kill` is SIGKILL: no flush, no final checkpoint.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A CRI timestamp (RFC 3339 with nanoseconds) for `ns` since the epoch.
fn cri_time(ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns)
        .format("%Y-%m-%dT%H:%M:%S%.9fZ")
        .to_string()
}

/// 2024-01-02T03:04:05Z: the lines' own timestamps start here.
const BASE_NS: i64 = 1_704_164_645_000_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1_mib_line_with_a_256kb_bound_arrives_in_4_numbered_pieces() {
    let dir = tempfile::tempdir().unwrap();
    let container = dir.path().join("pods/prod_big_uid-1/app");
    std::fs::create_dir_all(&container).unwrap();
    // containerd writes a long line as 16 KiB `P` pieces and a last `F` piece.
    let ts = cri_time(BASE_NS);
    let mut text = format!("{ts} stdout F before\n");
    let mut body = String::new();
    for k in 0..64u8 {
        let piece: String = std::iter::repeat_n(char::from(b'a' + k % 26), 16 * 1024).collect();
        let tag = if k == 63 { 'F' } else { 'P' };
        text.push_str(&format!("{ts} stdout {tag} {piece}\n"));
        body.push_str(&piece);
    }
    text.push_str(&format!("{ts} stdout F after\n"));
    std::fs::write(container.join("0.log"), text).unwrap();

    let (base, receiver) = start_receiver().await;
    let agent = Agent::start(dir.path(), &base, &["--logs.max-line-size=256KB"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !receiver
        .entries
        .lock()
        .unwrap()
        .iter()
        .any(|e| e.line == "after")
    {
        assert!(
            Instant::now() < deadline,
            "the lines never arrived; log:\n{}",
            agent.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got = receiver.entries.lock().unwrap().clone();
    assert_eq!(got.first().map(|e| e.line.as_str()), Some("before"));
    assert_eq!(got.last().map(|e| e.line.as_str()), Some("after"));
    let pieces = &got[1..got.len() - 1];
    let splits: Vec<Option<&str>> = pieces.iter().map(|e| e.split.as_deref()).collect();
    assert_eq!(splits, [Some("1"), Some("2"), Some("3"), Some("4")]);
    for p in pieces {
        assert_eq!(p.line.len(), 256 * 1024);
        assert_eq!(p.ts_ns, BASE_NS, "each piece keeps the line's time");
    }
    let joined: String = pieces.iter().map(|p| p.line.as_str()).collect();
    assert!(joined == body, "the pieces make up the line in order");
    assert!(got[0].split.is_none() && got[got.len() - 1].split.is_none());
}

/// The size and schedule of one stress run.
struct Scale {
    /// Containers written concurrently, one file each (plus its rotated files).
    containers: usize,
    /// Lines per container.
    lines: usize,
    /// Padding in each line's message, which sets how often a container rotates.
    pad: usize,
    /// How long the writers take, so that the kills and the outage land while they write.
    write_time: Duration,
    /// Seconds from the start at which the agent is SIGKILLed (and restarted a second later).
    kills: [u64; 3],
    /// Seconds from the start during which the receiver answers 503.
    outage: std::ops::Range<u64>,
    /// How long the lines may take to arrive after the writers finished.
    catch_up: Duration,
}

/// The run in CI: 10 containers × 20,000 lines of about 130 bytes (2.6 MiB each, so every
/// container rotates twice and its first rotated file is gzipped), a 5 s outage.
const CI_SCALE: Scale = Scale {
    containers: 10,
    lines: 20_000,
    pad: 80,
    write_time: Duration::from_secs(16),
    kills: [3, 7, 12],
    outage: 7..13,
    catch_up: Duration::from_secs(35),
};

/// The full proof: 200 containers × 5,000 lines of about
/// 500 bytes (1,000,000 lines, 2.4 MiB per container: two rotations, one gzip each) and a
/// 30 s outage.
const FULL_SCALE: Scale = Scale {
    containers: 200,
    lines: 5_000,
    pad: 450,
    write_time: Duration::from_secs(60),
    kills: [10, 24, 45],
    outage: 24..54,
    catch_up: Duration::from_secs(600),
};

/// kubelet's `containerLogMaxSize` in this test.
const ROTATE_BYTES: u64 = 1 << 20;
/// Lines each container writes per step.
const LINES_PER_STEP: usize = 250;

/// Line `seq` of container `c` and its timestamp: unique per container and recognisable.
fn line_of(c: usize, seq: usize, pad: usize) -> (i64, String) {
    let ts = BASE_NS + (seq as i64) * 1_000;
    (ts, format!("c{c:03} n{seq:07} {:x<pad$}", "payload"))
}

/// One container's writer: appends CRI lines like a runtime (one open file), and rotates like
/// kubelet: at [`ROTATE_BYTES`] the file is renamed to `0.log.<stamp>` and a new one created;
/// the rotated file before it is gzipped (`.gz.tmp`, renamed, the original removed).
struct Writer {
    dir: PathBuf,
    file: File,
    size: u64,
    rotations: usize,
}

impl Writer {
    fn new(dir: PathBuf) -> Writer {
        std::fs::create_dir_all(&dir).unwrap();
        let file = File::create(dir.join("0.log")).unwrap();
        Writer {
            dir,
            file,
            size: 0,
            rotations: 0,
        }
    }

    fn rotated(&self, k: usize) -> PathBuf {
        self.dir.join(format!("0.log.20240102-{k:06}"))
    }

    fn write(&mut self, c: usize, seqs: std::ops::Range<usize>, pad: usize) {
        let mut buf = String::new();
        for seq in seqs {
            let (ts, line) = line_of(c, seq, pad);
            buf.push_str(&format!("{} stdout F {line}\n", cri_time(ts)));
        }
        self.file.write_all(buf.as_bytes()).unwrap();
        self.size += buf.len() as u64;
        if self.size >= ROTATE_BYTES {
            self.rotate();
        }
    }

    fn rotate(&mut self) {
        let k = self.rotations;
        std::fs::rename(self.dir.join("0.log"), self.rotated(k)).unwrap();
        self.file = File::create(self.dir.join("0.log")).unwrap();
        self.size = 0;
        self.rotations += 1;
        if k > 0 {
            let older = self.rotated(k - 1);
            let gz = PathBuf::from(format!("{}.gz", older.display()));
            let tmp = PathBuf::from(format!("{}.gz.tmp", older.display()));
            // gzip(1), the format kubelet writes (flate2 is not a dependency of these tests).
            let status = Command::new("gzip")
                .arg("-c")
                .arg(&older)
                .stdout(File::create(&tmp).unwrap())
                .status()
                .expect("run gzip");
            assert!(status.success(), "gzip failed");
            std::fs::rename(&tmp, &gz).unwrap();
            std::fs::remove_file(&older).unwrap();
        }
    }
}

/// Writes every container's lines, paced over the scale's write time; returns the rotations
/// done.
fn write_all(pods: PathBuf, scale: &Scale) -> usize {
    let mut writers: Vec<Writer> = (0..scale.containers)
        .map(|c| Writer::new(pods.join(format!("stress_pod-{c:03}_uid-{c:03}/app"))))
        .collect();
    let steps = scale.lines.div_ceil(LINES_PER_STEP);
    let start = Instant::now();
    for step in 0..steps {
        let due = start + scale.write_time.mul_f64(step as f64 / steps as f64);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let seqs = step * LINES_PER_STEP..((step + 1) * LINES_PER_STEP).min(scale.lines);
        for (c, w) in writers.iter_mut().enumerate() {
            w.write(c, seqs.clone(), scale.pad);
        }
    }
    writers.iter().map(|w| w.rotations).sum()
}

/// Distinct `(pod, timestamp)` received so far: one per line written.
fn distinct(r: &Receiver) -> usize {
    r.distinct.lock().unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_line_arrives_once_through_rotation_gzip_sigkill_and_an_outage() {
    println!("{}", stress(&CI_SCALE).await);
}

/// The full scale, in CI too (about two minutes: the writers take one, the 30 s outage
/// is inside it): `cargo test --test e2e -- --nocapture tail_stress::full_scale`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_scale_every_line_of_200_files_arrives_once_through_kills_and_a_30_s_outage() {
    println!("{}", stress(&FULL_SCALE).await);
}

/// Runs one stress test at `scale`; its summary line.
async fn stress(scale: &'static Scale) -> String {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let pods = root.join("pods");
    std::fs::create_dir_all(&pods).unwrap();
    let (base, receiver) = start_receiver().await;
    let started = Instant::now();

    let writer = std::thread::spawn({
        let pods = pods.clone();
        move || write_all(pods, scale)
    });
    let mut agent = Agent::start(&root, &base, &[]);
    let mut logs = String::new();
    // Three SIGKILLs, each a second before its restart, and an outage starting at the second,
    // all while the writers write.
    for at in scale.kills {
        tokio::time::sleep_until((started + Duration::from_secs(at)).into()).await;
        if at == scale.outage.start {
            receiver.down.store(true, Ordering::SeqCst);
        }
        logs.push_str(&agent.log());
        drop(agent);
        tokio::time::sleep(Duration::from_secs(1)).await;
        receiver.run.fetch_add(1, Ordering::SeqCst);
        agent = Agent::start(&root, &base, &[]);
    }
    tokio::time::sleep_until((started + Duration::from_secs(scale.outage.end)).into()).await;
    receiver.down.store(false, Ordering::SeqCst);
    let rotations = tokio::task::spawn_blocking(move || writer.join().unwrap())
        .await
        .unwrap();
    assert!(
        rotations >= 2 * scale.containers,
        "every container rotated twice"
    );

    let total = scale.containers * scale.lines;
    let deadline = Instant::now() + scale.catch_up;
    while distinct(&receiver) < total && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let elapsed = started.elapsed();
    logs.push_str(&agent.log());
    drop(agent);

    let entries = receiver.entries.lock().unwrap().clone();
    let mut by_pod: BTreeMap<String, BTreeMap<i64, Received>> = BTreeMap::new();
    let (mut resent, mut out_of_order) = (0usize, 0usize);
    // Re-sent copies by (first push, its run, the re-sending push, its run): whether they
    // are the pushes in flight at a kill, or something else.
    let mut resends: BTreeMap<(u64, u64, u64, u64), usize> = BTreeMap::new();
    // The newest first arrival of each pod so far, for the order check and its message.
    let mut last_seen: BTreeMap<String, Received> = BTreeMap::new();
    let mut disorder: Vec<String> = Vec::new();
    for e in &entries {
        let lines = by_pod.entry(e.pod.clone()).or_default();
        match lines.get(&e.ts_ns) {
            Some(first) => {
                assert_eq!(first.line, e.line, "a re-sent entry is an identical copy");
                resent += 1;
                *resends
                    .entry((first.push, first.run, e.push, e.run))
                    .or_default() += 1;
            }
            None => {
                if let Some(last) = last_seen.get(&e.pod).filter(|l| e.ts_ns < l.ts_ns) {
                    out_of_order += 1;
                    if disorder.len() < 5 {
                        disorder.push(format!(
                            "{}: line {:?} (push {}, run {}) after line {:?} (push {}, run {})",
                            e.pod,
                            e.line.get(..13).unwrap_or(&e.line),
                            e.push,
                            e.run,
                            last.line.get(..13).unwrap_or(&last.line),
                            last.push,
                            last.run
                        ));
                    }
                }
                last_seen.insert(e.pod.clone(), e.clone());
                lines.insert(e.ts_ns, e.clone());
            }
        }
    }
    let missing = total.saturating_sub(distinct(&receiver));
    assert_eq!(
        missing,
        0,
        "{missing} of {total} lines never arrived after {elapsed:?}; missing per pod: {}\nlog:\n{logs}",
        missing_ranges(&by_pod, scale)
    );
    assert_eq!(by_pod.len(), scale.containers);
    for c in 0..scale.containers {
        let lines = &by_pod[&format!("pod-{c:03}")];
        let got = lines
            .values()
            .fold(0u64, |s, e| s.wrapping_add(fnv(e.line.as_bytes())));
        let want = (0..scale.lines).fold(0u64, |s, seq| {
            s.wrapping_add(fnv(line_of(c, seq, scale.pad).1.as_bytes()))
        });
        assert_eq!(
            (lines.len(), got),
            (scale.lines, want),
            "pod {c}: count and checksum of the lines received"
        );
    }
    assert!(
        receiver.refused.load(Ordering::Relaxed) > 0,
        "the outage was seen"
    );
    assert_eq!(
        out_of_order,
        0,
        "each file's lines arrive in order (first arrivals; re-sent copies aside); first \
         cases:\n{}\nlog:\n{logs}",
        disorder.join("\n")
    );
    // The last push of each run, to tell the pushes in flight at a kill from others.
    let mut last_push: BTreeMap<u64, u64> = BTreeMap::new();
    for e in &entries {
        let last = last_push.entry(e.run).or_default();
        *last = (*last).max(e.push);
    }
    // A push is sent again only when a kill cut it off: the receiver took it but the agent
    // died before its delivery mark was durable. Those are among the last pushes the run
    // made (no more than the pushes in flight at once), and only a later run re-sends them.
    for &(first, first_run, again, again_run) in resends.keys() {
        let last = last_push[&first_run];
        assert!(
            first + PUSHES_IN_FLIGHT > last && again_run > first_run,
            "push {first} of run {first_run} (whose last push was {last}) was sent again in \
             push {again} of run {again_run}: only a push a kill cut off may be"
        );
    }
    let mut resends: Vec<String> = resends
        .iter()
        .map(|((first, first_run, again, again_run), n)| {
            format!("{n} of push {first} (run {first_run}) again in push {again} (run {again_run})")
        })
        .collect();
    if !resends.is_empty() {
        resends.push(format!("last push of each run {last_push:?}"));
    }
    format!(
        "tail stress: {total} lines in {} containers, {rotations} rotations, all \
         arrived in {elapsed:?}; {resent} re-sent identical entries, {out_of_order} first \
         arrivals out of order, {} pushes refused{}{}",
        scale.containers,
        receiver.refused.load(Ordering::Relaxed),
        if resends.is_empty() {
            ""
        } else {
            "; re-sent: "
        },
        resends.join(", ")
    )
}

/// The line numbers missing per pod, as ranges, for the failure message.
fn missing_ranges(by_pod: &BTreeMap<String, BTreeMap<i64, Received>>, scale: &Scale) -> String {
    let mut out = String::new();
    for c in 0..scale.containers {
        let pod = format!("pod-{c:03}");
        let got = by_pod.get(&pod);
        let mut ranges: Vec<(usize, usize)> = Vec::new();
        for seq in 0..scale.lines {
            let ts = line_of(c, seq, scale.pad).0;
            if got.is_some_and(|g| g.contains_key(&ts)) {
                continue;
            }
            match ranges.last_mut() {
                Some(r) if r.1 + 1 == seq => r.1 = seq,
                _ => ranges.push((seq, seq)),
            }
        }
        if !ranges.is_empty() {
            out.push_str(&format!("\n  {pod}: {ranges:?}"));
        }
    }
    out
}

/// FNV-1a, for the order-independent checksum of the lines of a container.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The agent's resident memory while it follows 500 container files (the bound is
/// 50 MiB), printed: `cargo test --test e2e -- --ignored --nocapture tail_stress::resident`
/// (the debug build; `VIGIL_BIN=<release vigil>` in front measures what a node runs).
/// Each file gets 2,000 lines first, then the agent keeps following all 500 while writers
/// append to them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, run by hand"]
async fn resident_memory_while_following_500_files() {
    const FILES: usize = 500;
    const LINES: usize = 2_000;
    let dir = tempfile::tempdir().unwrap();
    let pods = dir.path().join("pods");
    let mut writers: Vec<Writer> = (0..FILES)
        .map(|c| Writer::new(pods.join(format!("mem_pod-{c:03}_uid-{c:03}/app"))))
        .collect();
    for (c, w) in writers.iter_mut().enumerate() {
        w.write(c, 0..LINES, 80);
    }
    let (base, receiver) = start_receiver().await;
    let agent = Agent::start(dir.path(), &base, &[]);
    let deadline = Instant::now() + Duration::from_secs(300);
    while distinct(&receiver) < FILES * LINES {
        assert!(Instant::now() < deadline, "lines did not arrive");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Keep appending for a while so the agent follows 500 live files, not idle ones.
    for round in 1..=10 {
        for (c, w) in writers.iter_mut().enumerate() {
            w.write(c, LINES * round..LINES * round + 50, 80);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let status = std::fs::read_to_string(format!("/proc/{}/status", agent.child.id())).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .map(|l| l.split_whitespace().nth(1).unwrap_or("?").to_string())
            .unwrap_or_default()
    };
    println!(
        "tail memory: {FILES} files followed, {} lines received; agent VmRSS {} kB, VmHWM {} kB",
        distinct(&receiver),
        field("VmRSS:"),
        field("VmHWM:")
    );
}
