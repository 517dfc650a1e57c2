//! The agent's on-disk log queue under the real `vigil agent`: while the Loki receiver is
//! down, lines are acknowledged into `<state.path>/logqueue` (so checkpoints move on), the
//! rotated files are deleted as kubelet would, the agent is SIGKILLed and restarted, and when
//! the receiver comes back every line still arrives, from the queue.

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

/// A Loki push receiver that answers 503 while `down`, and remembers every line it took.
#[derive(Default)]
struct Receiver {
    lines: Mutex<HashSet<String>>,
    down: AtomicBool,
    refused: AtomicU64,
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
    let mut lines = r.lines.lock().unwrap();
    for s in push.streams {
        lines.extend(s.entries.into_iter().map(|e| e.line));
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_line_arrives_after_an_outage_longer_than_the_rotated_files_stay() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let container = root.join("pods/prod_queue_uid-1/app");
    std::fs::create_dir_all(&container).unwrap();
    let receiver = Arc::new(Receiver::default());
    receiver.down.store(true, Ordering::SeqCst);
    let app = axum::Router::new()
        .fallback(receive)
        .with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let mut agent = Agent::start(root, &base, QUEUE_FLAGS);
    let mut logs = String::new();
    let live = container.join("0.log");
    for round in 0..ROUNDS {
        let mut f = std::fs::File::create(&live).unwrap();
        let mut text = String::new();
        for n in 0..LINES_PER_ROUND {
            let ts = chrono::DateTime::from_timestamp(1_704_164_645 + round as i64, n as u32)
                .unwrap()
                .format("%Y-%m-%dT%H:%M:%S%.9fZ");
            text.push_str(&format!("{ts} stdout F {}\n", line_of(round, n)));
        }
        f.write_all(text.as_bytes()).unwrap();
        f.sync_all().unwrap();
        let meta = std::fs::metadata(&live).unwrap();
        // The receiver is down, yet the checkpoint reaches the end: the lines are in the queue.
        let deadline = Instant::now() + Duration::from_secs(30);
        while checkpoint_of(&root.join("state"), meta.ino()) != Some(meta.len()) {
            assert!(
                Instant::now() < deadline,
                "round {round}: the checkpoint never reached the end while the receiver was \
                 down; log:\n{}",
                agent.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
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

    let total = ROUNDS * LINES_PER_ROUND;
    let deadline = Instant::now() + Duration::from_secs(60);
    while receiver.lines.lock().unwrap().len() < total && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    logs.push_str(&agent.log());
    let got = receiver.lines.lock().unwrap().clone();
    let missing: Vec<String> = (0..ROUNDS)
        .flat_map(|r| (0..LINES_PER_ROUND).map(move |n| line_of(r, n)))
        .filter(|l| !got.contains(l))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {total} lines never arrived, first {:?}; log:\n{logs}",
        missing.len(),
        missing.first()
    );
    assert!(
        receiver.refused.load(Ordering::Relaxed) > 0,
        "the outage was seen"
    );
    assert!(
        logs.contains("log queue replays"),
        "the restarted agent replayed the queue; log:\n{logs}"
    );
}
