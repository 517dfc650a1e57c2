//! The agent's on-disk log queue under the real `vigil agent`, with end-to-end
//! acknowledgement: while the Loki receiver is down, lines wait in `<state.path>/logqueue` and
//! the checkpoints in `positions.json` do not move past them (only the receiver's 2xx moves
//! them). Rotated files deleted during the outage and a SIGKILL lose nothing: the restarted
//! agent sends the queue and does not read the queued lines again. A queue lost with the crash
//! loses nothing either while the files exist: they are read again from the checkpoint. A
//! queue that cannot be written (a full disk, here a file-size limit) holds the tailer back,
//! and nothing is lost or sent twice once it can be written again.

use crate::tail_stress::Agent;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use model::wire::loki::PushRequest;
use prost::Message;
use std::collections::HashSet;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The agent's gauge of lines durable in its log queue.
const LINES_QUEUED: &str = "vigil_agent_log_lines_queued";

/// A Loki push receiver that answers 503 while `down`, and otherwise remembers every line it
/// took and how many it took in all (copies included).
#[derive(Default)]
struct Receiver {
    lines: Mutex<HashSet<String>>,
    received: AtomicU64,
    down: AtomicBool,
    refused: AtomicU64,
}

impl Receiver {
    /// Starts it on 127.0.0.1; returns its base URL.
    async fn serve(self: &Arc<Self>) -> String {
        let app = axum::Router::new()
            .fallback(receive)
            .with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        base
    }

    /// Waits until the agent's on-disk queue holds `want` lines (its own gauge) while the
    /// receiver is down, and none of them was taken.
    async fn wait_queued(&self, want: usize, agent: &Agent) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let queued = agent.metric(LINES_QUEUED).await.unwrap_or(0.0) as usize;
            if queued >= want {
                assert_eq!(queued, want, "more lines queued than written");
                assert!(self.lines.lock().unwrap().is_empty());
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{queued} of {want} lines reached the queue while the receiver was down; \
                 log:\n{}",
                agent.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until it took `want` distinct lines, at most a minute.
    async fn wait_lines(&self, want: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.lines.lock().unwrap().len() < want && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

async fn receive(State(r): State<Arc<Receiver>>, uri: Uri, body: Bytes) -> StatusCode {
    if uri.path() != "/loki/api/v1/push" {
        return StatusCode::NO_CONTENT;
    }
    let Ok(raw) = model::wire::snappy_decompress(&body, 1 << 28) else {
        return StatusCode::BAD_REQUEST;
    };
    let Ok(push) = PushRequest::decode(raw.as_slice()) else {
        return StatusCode::BAD_REQUEST;
    };
    let entries = push.streams.into_iter().flat_map(|s| s.entries);
    if r.down.load(Ordering::SeqCst) {
        r.refused.fetch_add(1, Ordering::Relaxed);
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let mut lines = r.lines.lock().unwrap();
    for e in entries {
        r.received.fetch_add(1, Ordering::Relaxed);
        lines.insert(e.line);
    }
    StatusCode::NO_CONTENT
}

/// The checkpoint offset `positions.json` holds for the file with inode `ino`.
fn checkpoint_of(state: &Path, ino: u64) -> Option<u64> {
    let text = std::fs::read(state.join("positions.json")).ok()?;
    let doc: serde_json::Value = serde_json::from_slice(&text).ok()?;
    doc["positions"]
        .as_array()?
        .iter()
        .find(|p| p["inode"].as_u64() == Some(ino))?["offset"]
        .as_u64()
}

/// The agent's flags beyond the stress test's: a small queue, so segments roll over.
const QUEUE_FLAGS: &[&str] = &["--logs.queue-max-bytes=64MB"];

const ROUNDS: usize = 3;
const LINES_PER_ROUND: usize = 2_000;

fn line_of(round: usize, n: usize) -> String {
    format!("round {round} line {n:05} {:x<60}", "payload")
}

/// Writes `LINES_PER_ROUND` CRI lines of `round` to `path` (a new file).
fn write_round(path: &Path, round: usize) {
    let mut f = std::fs::File::create(path).unwrap();
    let mut text = String::new();
    for n in 0..LINES_PER_ROUND {
        let ts = chrono::DateTime::from_timestamp(1_704_164_645 + round as i64, n as u32)
            .unwrap()
            .format("%Y-%m-%dT%H:%M:%S%.9fZ");
        text.push_str(&format!("{ts} stdout F {}\n", line_of(round, n)));
    }
    f.write_all(text.as_bytes()).unwrap();
    f.sync_all().unwrap();
}

/// Asserts every line of `rounds` arrived, and none twice.
fn assert_all_once(receiver: &Receiver, rounds: usize, logs: &str) {
    let total = rounds * LINES_PER_ROUND;
    let got = receiver.lines.lock().unwrap().clone();
    let missing: Vec<String> = (0..rounds)
        .flat_map(|r| (0..LINES_PER_ROUND).map(move |n| line_of(r, n)))
        .filter(|l| !got.contains(l))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {total} lines never arrived, first {:?}; log:\n{logs}",
        missing.len(),
        missing.first()
    );
    assert_eq!(
        receiver.received.load(Ordering::Relaxed),
        total as u64,
        "every line arrived exactly once (no push was answered before the crash, so none may \
         come twice); log:\n{logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_line_arrives_after_an_outage_longer_than_the_rotated_files_stay() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let container = root.join("pods/prod_queue_uid-1/app");
    std::fs::create_dir_all(&container).unwrap();
    let receiver = Arc::new(Receiver::default());
    receiver.down.store(true, Ordering::SeqCst);
    let base = receiver.serve().await;

    let mut agent = Agent::start(root, &base, QUEUE_FLAGS);
    let mut logs = String::new();
    let live = container.join("0.log");
    for round in 0..ROUNDS {
        write_round(&live, round);
        let ino = std::fs::metadata(&live).unwrap().ino();
        // Nothing is delivered while the receiver is down: the queue holds every round so far
        // (the restarted agent's too, replayed from disk).
        receiver
            .wait_queued((round + 1) * LINES_PER_ROUND, &agent)
            .await;
        // The lines are queued, not acknowledged: the checkpoint stays before them.
        assert_eq!(
            checkpoint_of(&root.join("state"), ino).unwrap_or(0),
            0,
            "round {round}: the checkpoint moved while the receiver was down"
        );
        // kubelet rotates, and later deletes the rotated file: its lines exist only in the
        // agent's queue now.
        let rotated = container.join(format!("0.log.20240102-00000{round}"));
        std::fs::rename(&live, &rotated).unwrap();
        std::fs::File::create(&live).unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        std::fs::remove_file(&rotated).unwrap();
        if round == 0 {
            // A crash in the middle of the outage: the queue is on disk, the files are gone.
            logs.push_str(&agent.log());
            drop(agent);
            agent = Agent::start(root, &base, QUEUE_FLAGS);
        }
    }
    assert!(
        std::fs::read_dir(root.join("state/logqueue"))
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().ends_with(".seg")),
        "the lines wait in segment files"
    );
    receiver.down.store(false, Ordering::SeqCst);
    receiver.wait_lines(ROUNDS * LINES_PER_ROUND).await;
    logs.push_str(&agent.log());
    assert_all_once(&receiver, ROUNDS, &logs);
    assert!(
        receiver.refused.load(Ordering::Relaxed) > 0,
        "the outage was seen"
    );
    assert!(
        logs.contains("log queue replays"),
        "the restarted agent replayed the queue; log:\n{logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_lost_in_a_crash_loses_no_line_the_files_still_hold() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let container = root.join("pods/prod_lost_uid-2/app");
    std::fs::create_dir_all(&container).unwrap();
    let receiver = Arc::new(Receiver::default());
    receiver.down.store(true, Ordering::SeqCst);
    let base = receiver.serve().await;

    let agent = Agent::start(root, &base, QUEUE_FLAGS);
    write_round(&container.join("0.log"), 0);
    receiver.wait_queued(LINES_PER_ROUND, &agent).await;
    // SIGKILL, and the queue's directory is gone with the crash (a lost volume, a corrupt
    // queue moved aside by hand): only positions.json and the log file remain.
    let mut logs = agent.log();
    drop(agent);
    std::fs::remove_dir_all(root.join("state/logqueue")).unwrap();
    receiver.down.store(false, Ordering::SeqCst);
    let agent = Agent::start(root, &base, QUEUE_FLAGS);
    receiver.wait_lines(LINES_PER_ROUND).await;
    logs.push_str(&agent.log());
    assert_all_once(&receiver, 1, &logs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_that_cannot_be_written_holds_the_lines_back_until_it_can() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let container = root.join("pods/prod_full_uid-3/app");
    std::fs::create_dir_all(&container).unwrap();
    let receiver = Arc::new(Receiver::default());
    let base = receiver.serve().await;

    // No file the agent writes may pass 4 KiB (the soft limit; the hard one stays, so the
    // limit can be lifted later without privileges): `positions.json` fits, a log queue
    // record of 2,000 lines does not (EFBIG, as from a full disk).
    let agent = Agent::start_under(
        &["prlimit", "--fsize=4096:unlimited", "--"],
        root,
        &base,
        QUEUE_FLAGS,
    );
    let live = container.join("0.log");
    write_round(&live, 0);
    let ino = std::fs::metadata(&live).unwrap().ino();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !agent.log().contains("appending to the log queue failed") {
        assert!(
            Instant::now() < deadline,
            "the queue never failed; log:\n{}",
            agent.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // It keeps failing, and keeps the lines: none was pushed, no checkpoint moved, and the
    // agent is up.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(receiver.received.load(Ordering::Relaxed), 0);
    assert_eq!(checkpoint_of(&root.join("state"), ino).unwrap_or(0), 0);
    assert!(
        agent.metric(LINES_QUEUED).await.is_some(),
        "the agent answers"
    );
    // The disk has room again: the retried append goes through.
    let lifted = std::process::Command::new("prlimit")
        .args([
            format!("--pid={}", agent.pid()),
            "--fsize=unlimited".to_string(),
        ])
        .output()
        .unwrap();
    assert!(
        lifted.status.success(),
        "prlimit: {}",
        String::from_utf8_lossy(&lifted.stderr)
    );
    write_round(&container.join("1.log"), 1);
    receiver.wait_lines(2 * LINES_PER_ROUND).await;
    let logs = agent.log();
    assert_all_once(&receiver, 2, &logs);
}
