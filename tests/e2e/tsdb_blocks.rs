//! TSDB blocks with the real binary: remote write across several block ranges (a one-minute
//! `--storage.tsdb.min-block-duration`), so the server cuts and compacts blocks while it
//! ingests; `kill -9`; restart on the same directory; every acknowledged sample must come
//! back exactly once, from blocks and head together.

use crate::harness::{enc, write_body, TestSeries, Vigil};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

const SERIES: usize = 10;
/// Samples 5 s apart; 72 steps are six minutes, six block ranges.
const STEP_MS: i64 = 5_000;
const STEPS_PER_ROUND: i64 = 72;

/// A server on `dir` with one-minute blocks and both retention flags set.
fn start(dir: &Path) -> Vigil {
    Vigil::server_in(
        dir,
        &[
            "--storage.tsdb.min-block-duration=1m",
            "--storage.tsdb.retention.time=30d",
            "--storage.tsdb.retention.size=1GB",
        ],
    )
}

/// Writes steps `from..to` (one request per step, one sample per series), all of which
/// must be acknowledged.
async fn write_steps(addr: SocketAddr, base: i64, from: i64, to: i64) {
    let client = crate::harness::client();
    let names: Vec<String> = (0..SERIES).map(|i| format!("s{i}")).collect();
    for k in from..to {
        let labels: Vec<[(&str, &str); 2]> = names
            .iter()
            .map(|n| [("__name__", "blocks_test"), ("series", n.as_str())])
            .collect();
        let series: Vec<TestSeries> = labels
            .iter()
            .map(|l| (&l[..], vec![(base + k * STEP_MS, k as f64)]))
            .collect();
        let resp = client
            .post(format!("http://{addr}/api/v1/write"))
            .header("Content-Encoding", "snappy")
            .header("Content-Type", "application/x-protobuf")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0")
            .body(write_body(&series))
            .send()
            .await
            .expect("remote write");
        assert!(resp.status().is_success(), "step {k}: {}", resp.status());
    }
}

/// Every step stored for each series, in the order returned.
async fn stored(addr: SocketAddr, base: i64, steps: i64) -> Vec<(String, Vec<i64>)> {
    let at = (base + steps * STEP_MS) as f64 / 1000.0;
    let url = format!(
        "http://{addr}/api/v1/query?query={}&time={at}",
        enc("blocks_test[1h]")
    );
    let j: serde_json::Value = reqwest::get(url).await.unwrap().json().await.unwrap();
    assert_eq!(j["status"], "success", "{j}");
    let mut out = Vec::new();
    for s in j["data"]["result"].as_array().unwrap() {
        let name = s["metric"]["series"].as_str().unwrap().to_string();
        let ks: Vec<i64> = s["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                let t = (v[0].as_f64().unwrap() * 1000.0).round() as i64;
                let k = (t - base) / STEP_MS;
                assert_eq!(v[1].as_str().unwrap(), k.to_string(), "{name} at {k}");
                k
            })
            .collect();
        out.push((name, ks));
    }
    out.sort();
    out
}

fn block_dirs(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir.join("tsdb"))
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .filter(|n| n.len() == 26 && n.bytes().all(|b| b.is_ascii_alphanumeric()))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

async fn assert_exactly_once(server: &Vigil, base: i64, steps: i64, when: &str) {
    let want: Vec<i64> = (0..steps).collect();
    let got = stored(server.addr, base, steps).await;
    assert_eq!(got.len(), SERIES, "{when}: series; log:\n{}", server.log());
    for (name, ks) in &got {
        assert_eq!(
            ks,
            &want,
            "{when}: samples of {name}; log:\n{}",
            server.log()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn samples_across_block_cuts_survive_kill_9_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    // Two hours ago, on a minute boundary, so block windows start at step 0.
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let base = (now_s - 7200) / 60 * 60 * 1000;

    let server = start(dir.path());
    let info: serde_json::Value =
        reqwest::get(format!("http://{}/api/v1/status/runtimeinfo", server.addr))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(info["data"]["storageRetention"], "30d or 1GiB");
    write_steps(server.addr, base, 0, STEPS_PER_ROUND).await;
    // The writes woke the background worker: six minutes of samples make blocks.
    let cut = crate::harness::eventually(Duration::from_secs(30), || async {
        (block_dirs(dir.path()).len() >= 2).then_some(())
    })
    .await;
    assert!(cut.is_some(), "no blocks were cut; log:\n{}", server.log());
    assert_exactly_once(&server, base, STEPS_PER_ROUND, "before the kill").await;
    drop(server); // SIGKILL

    let server = start(dir.path());
    assert_exactly_once(&server, base, STEPS_PER_ROUND, "after the first kill").await;
    // A second round, killed right after its last acknowledgement, likely mid-cut.
    write_steps(server.addr, base, STEPS_PER_ROUND, 2 * STEPS_PER_ROUND).await;
    drop(server);

    let server = start(dir.path());
    assert_exactly_once(&server, base, 2 * STEPS_PER_ROUND, "after the second kill").await;
    let blocks = block_dirs(dir.path());
    assert!(!blocks.is_empty(), "blocks survive restarts");
    let log = server.log();
    assert!(
        !log.contains("moved aside"),
        "no block was damaged; log:\n{log}"
    );
}
