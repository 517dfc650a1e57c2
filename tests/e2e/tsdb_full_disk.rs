//! A write error during a WAL append, with the real binary and a real kernel error: the
//! server runs under a file-size limit (`prlimit --fsize`), so the WAL segment that reaches
//! it gets EFBIG mid-record, exactly as a full disk fails a write part-way. The failing
//! request must get a 5xx and leave nothing behind (not in queries, not on disk), every
//! acknowledged one must stay, the server must stay up, and a restart without the limit on
//! the same directory must return exactly the acknowledged samples and take new writes.
//!
//! `prlimit` (util-linux, essential on Debian) sets the limit rather than a `pre_exec`
//! `setrlimit`, which would need unsafe code (denied in this workspace) and rustix's
//! `process` feature (not enabled in the workspace).

use crate::harness::{enc, remote_write, write_body, TestSeries, Vigil};
use std::process::Command;
use std::time::Instant;

/// The file-size limit: the WAL segment reaches it after some dozens of requests.
const FSIZE: u64 = 2 << 20;
const SERIES: usize = 100;
/// Samples per series in each request, `STEP_MS` apart.
const PER_REQUEST: i64 = 20;
const STEP_MS: i64 = 100;
/// The run stops after this many failed requests (each one fills a segment)...
const WANTED_FAILURES: usize = 2;
/// ...or after this many requests, which fails the test.
const MAX_REQUESTS: i64 = 1500;

/// `vigil server` on `dir` under `prlimit --fsize`, killed on drop.
fn start_limited(dir: &std::path::Path) -> Vigil {
    let fsize = format!("--fsize={FSIZE}");
    Vigil::server_in_under(&["prlimit", &fsize, "--"], dir, &[])
}

/// The timestamp of sample `j` of request `k`; its value is `k·PER_REQUEST + j`.
fn t_of(base: i64, k: i64, j: i64) -> i64 {
    base + (k * PER_REQUEST + j) * STEP_MS
}

fn request(base: i64, k: i64) -> Vec<u8> {
    let names: Vec<String> = (0..SERIES).map(|i| format!("s{i}")).collect();
    let labels: Vec<[(&str, &str); 2]> = names
        .iter()
        .map(|n| [("__name__", "full_disk_test"), ("series", n.as_str())])
        .collect();
    let series: Vec<TestSeries> = labels
        .iter()
        .map(|l| {
            let samples = (0..PER_REQUEST)
                .map(|j| (t_of(base, k, j), (k * PER_REQUEST + j) as f64))
                .collect();
            (&l[..], samples)
        })
        .collect();
    write_body(&series)
}

async fn query(base_url: &str, q: &str, at_ms: i64) -> Vec<serde_json::Value> {
    let url = format!(
        "{base_url}/api/v1/query?query={}&time={}",
        enc(q),
        at_ms as f64 / 1000.0
    );
    let resp = reqwest::get(&url).await.expect("query");
    assert_eq!(resp.status().as_u16(), 200, "{url}");
    let j: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(j["status"], "success", "{j}");
    j["data"]["result"].as_array().unwrap().clone()
}

/// Checks that the server at `base_url` holds exactly the samples of the `acked` requests
/// among `0..sent`: per series, the count and the sum of the values of all of them (every
/// timestamp belongs to one request, so no sample can hide elsewhere), and raw samples
/// around each of the `failed` requests, whose own must be absent and whose neighbours'
/// present.
async fn assert_holds_exactly(base_url: &str, base: i64, acked: &[i64], failed: &[i64]) {
    let end = base + 3_600_000;
    let want_count = acked.len() as f64 * PER_REQUEST as f64;
    let want_sum: f64 = acked
        .iter()
        .flat_map(|k| (0..PER_REQUEST).map(move |j| (k * PER_REQUEST + j) as f64))
        .sum();
    for (q, want) in [
        ("count_over_time(full_disk_test[2h])", want_count),
        ("sum_over_time(full_disk_test[2h])", want_sum),
    ] {
        let got = query(base_url, q, end).await;
        assert_eq!(got.len(), SERIES, "{q}: {got:?}");
        for s in &got {
            let v: f64 = s["value"][1].as_str().unwrap().parse().unwrap();
            assert_eq!(v, want, "{q} for {}", s["metric"]["series"]);
        }
    }
    for &k in failed {
        // The failed request and one on each side, raw, for one series.
        let from = t_of(base, k - 1, 0);
        let to = t_of(base, k + 1, PER_REQUEST - 1);
        let range_ms = to - from + 1;
        let q = format!("full_disk_test{{series=\"s7\"}}[{range_ms}ms]");
        let got = query(base_url, &q, to).await;
        let ks: Vec<i64> = got
            .iter()
            .flat_map(|s| s["values"].as_array().unwrap().clone())
            .map(|v| v[1].as_str().unwrap().parse::<i64>().unwrap() / PER_REQUEST)
            .collect();
        assert!(!ks.contains(&k), "failed request {k} is visible: {ks:?}");
        for n in [k - 1, k + 1] {
            if acked.contains(&n) {
                let held = ks.iter().filter(|&&x| x == n).count() as i64;
                assert_eq!(held, PER_REQUEST, "acknowledged request {n} beside {k}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wal_write_error_fails_the_request_and_keeps_nothing_of_it() {
    if Command::new("prlimit").arg("--version").output().is_err() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "prlimit (util-linux) is missing"
        );
        eprintln!("skipped: prlimit (util-linux) is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Half an hour ago, so every sample lies inside the queries' two-hour window.
    let base = (crate::harness::now_ms() / 1000 - 1800) * 1000;
    let server = start_limited(dir.path());
    let client = crate::harness::client();
    let started = Instant::now();

    let mut acked = Vec::new();
    let mut failed = Vec::new();
    let mut k = 0;
    // Until the wanted failures are seen and a request after the last one went through.
    while failed.len() < WANTED_FAILURES || acked.last() < failed.last() {
        assert!(
            k < MAX_REQUESTS,
            "{} failures in {k} requests; log:\n{}",
            failed.len(),
            server.log()
        );
        let resp = client
            .post(server.url("/api/v1/write"))
            .header("Content-Encoding", "snappy")
            .header("Content-Type", "application/x-protobuf")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0")
            .body(request(base, k))
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "request {k}: no answer ({e}): did SIGXFSZ kill the server? log:\n{}",
                    server.log()
                )
            });
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        match status {
            200..=299 => acked.push(k),
            // Prometheus's receiver answers a storage error with 500, which senders retry.
            500 => {
                assert!(
                    text.contains("File too large") || text.contains("os error 27"),
                    "request {k}: the 500 names the write error: {text}"
                );
                failed.push(k);
                let health = client.get(server.url("/-/healthy")).send().await.unwrap();
                assert_eq!(
                    health.status().as_u16(),
                    200,
                    "healthy after a failed write"
                );
            }
            other => panic!("request {k}: status {other}: {text}"),
        }
        k += 1;
    }
    let sent = k;
    eprintln!(
        "full disk: {sent} requests, failed {failed:?}, in {:?}",
        started.elapsed()
    );
    assert!(
        failed.iter().all(|&f| f > 0),
        "the first request failed: {FSIZE} bytes is too small a limit"
    );

    // While the limit still holds: the failed requests left nothing in the head.
    let url = format!("http://{}", server.addr);
    assert_holds_exactly(&url, base, &acked, &failed).await;
    assert!(
        server.log().contains("WAL write failed"),
        "{}",
        server.log()
    );

    // Each segment that met the limit was cut back to its last whole record at once: a
    // partial record would leave it exactly at the limit.
    let wal = dir.path().join("tsdb").join("wal");
    let mut segments: Vec<(String, u64)> = std::fs::read_dir(&wal)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().len() == 8)
        .map(|e| {
            let len = e.metadata().unwrap().len();
            (e.file_name().to_string_lossy().into_owned(), len)
        })
        .collect();
    segments.sort();
    assert!(segments.len() > WANTED_FAILURES, "{segments:?}");
    assert!(
        segments.iter().all(|(_, len)| *len < FSIZE),
        "a segment holds a partial record up to the limit: {segments:?}"
    );

    // kill -9 and restart without the limit on the same directory.
    drop(server);
    let restarted = Vigil::server_in(dir.path(), &[]);
    let log = restarted.log();
    assert!(
        !log.contains("truncating WAL segment"),
        "the torn record was cut before the restart, so replay finds none: {log}"
    );
    assert_holds_exactly(&restarted.url(""), base, &acked, &failed).await;

    // New writes are taken and kept.
    let (status, text) = remote_write(&restarted, request(base, sent)).await;
    assert!((200..300).contains(&status), "{status}: {text}");
    acked.push(sent);
    assert_holds_exactly(&restarted.url(""), base, &acked, &failed).await;
}
