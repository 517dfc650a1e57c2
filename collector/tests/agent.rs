//! End to end: `run_agent` against a local HTTP server that decodes remote-write and Loki
//! push bodies, with a fake procfs and a CRI log directory in a temporary directory.

// The helpers below are test harness, like the tests themselves: a panic is a failed test
// (clippy.toml allows unwrap in `#[test]` functions only).
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use collector::{run_agent, AgentConfig, POSITIONS_FILE};
use model::wire::loki::PushRequest;
use model::wire::prom::WriteRequest;
use model::{LogStream, Series};
use prost::Message;
use tokio_util::sync::CancellationToken;

#[derive(Default)]
struct Received {
    series: Vec<Series>,
    streams: Vec<LogStream>,
    remote_write_headers: Option<HeaderMap>,
}

type Shared = Arc<Mutex<Received>>;

async fn remote_write(State(r): State<Shared>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let raw = model::wire::snappy_decompress(&body, 1 << 24).unwrap();
    let req = WriteRequest::decode(raw.as_slice()).unwrap();
    let mut r = r.lock().unwrap();
    r.series
        .extend(req.timeseries.iter().map(|t| t.to_series().unwrap()));
    r.remote_write_headers = Some(headers);
    StatusCode::NO_CONTENT
}

async fn loki_push(State(r): State<Shared>, body: Bytes) -> StatusCode {
    let raw = model::wire::snappy_decompress(&body, 1 << 24).unwrap();
    let req = PushRequest::decode(raw.as_slice()).unwrap();
    r.lock()
        .unwrap()
        .streams
        .extend(req.streams.iter().map(|s| s.to_stream().unwrap()));
    StatusCode::NO_CONTENT
}

/// Starts the fake server; returns the base URL and what it received.
async fn server() -> (String, Shared) {
    let shared = Shared::default();
    let app = axum::Router::new()
        .route("/api/v1/write", post(remote_write))
        .route("/loki/api/v1/push", post(loki_push))
        .with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), shared)
}

fn fake_procfs(dir: &Path) {
    std::fs::create_dir_all(dir.join("net")).unwrap();
    std::fs::write(dir.join("stat"), "cpu  2 0 2 8\ncpu0 2 0 2 8 1 0 0 0 0 0\n").unwrap();
    std::fs::write(dir.join("loadavg"), "1.50 0.25 0.10 1/100 42\n").unwrap();
    std::fs::write(dir.join("meminfo"), "MemTotal: 2048 kB\nMemFree: 1024 kB\n").unwrap();
    std::fs::write(
        dir.join("net/dev"),
        "Inter-|Receive|Transmit\n face |bytes packets errs drop fifo frame compressed multicast|bytes packets errs drop fifo colls carrier compressed\n  eth0: 10 1 0 0 0 0 0 0 20 2 0 0 0 0 0 0\n",
    )
    .unwrap();
}

fn lines(r: &Shared) -> Vec<String> {
    r.lock()
        .unwrap()
        .streams
        .iter()
        .flat_map(|s| s.entries.iter().map(|e| e.line.clone()))
        .collect()
}

/// Waits until `cond` holds, for at most five seconds.
async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn ships_node_metrics_and_logs_then_resumes_from_checkpoints() {
    let (base, received) = server().await;
    let dir = tempfile::tempdir().unwrap();
    let procfs = dir.path().join("proc");
    fake_procfs(&procfs);
    let container = dir.path().join("pods/prod_web-1_uid-1/nginx");
    std::fs::create_dir_all(&container).unwrap();
    let log = container.join("0.log");
    std::fs::write(
        &log,
        "2024-01-02T03:04:05.000000001Z stdout P hello \n2024-01-02T03:04:05.000000002Z stdout F world\n",
    )
    .unwrap();
    let varlog = dir.path().join("varlog");
    std::fs::create_dir_all(&varlog).unwrap();
    std::fs::write(varlog.join("syslog.log"), "boot ok\n").unwrap();

    let mut cfg = AgentConfig::new(
        format!("{base}/api/v1/write"),
        format!("{base}/loki/api/v1/push"),
    );
    cfg.node_name = "node-1".into();
    cfg.procfs = procfs;
    cfg.logs_path = dir.path().join("pods");
    cfg.log_files = vec![format!("{}/*.log", varlog.display())];
    cfg.state_path = dir.path().join("state");
    cfg.scrape_interval = Duration::from_millis(100);

    let shutdown = CancellationToken::new();
    let agent = tokio::spawn(run_agent(cfg.clone(), shutdown.clone()));
    wait_for("logs", || lines(&received).len() == 2).await;
    wait_for("metrics", || !received.lock().unwrap().series.is_empty()).await;
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), agent)
        .await
        .unwrap()
        .unwrap()
        .unwrap();

    {
        let r = received.lock().unwrap();
        let h = r.remote_write_headers.as_ref().unwrap();
        assert_eq!(h["content-encoding"], "snappy");
        assert_eq!(h["x-prometheus-remote-write-version"], "0.1.0");
        let load1 = r
            .series
            .iter()
            .find(|s| s.labels.metric_name() == Some("node_load1"))
            .unwrap();
        assert_eq!(
            load1.labels.to_string(),
            r#"{__name__="node_load1", instance="node-1", job="node"}"#
        );
        assert_eq!(load1.samples[0].v, 1.5);
        let cpu = r
            .series
            .iter()
            .find(|s| {
                s.labels.metric_name() == Some("node_cpu_seconds_total")
                    && s.labels.get("mode") == Some("iowait")
            })
            .unwrap();
        assert_eq!(cpu.samples[0].v, 0.01);
        assert!(r.series.iter().any(|s| {
            s.labels.metric_name() == Some("node_network_receive_bytes_total")
                && s.labels.get("device") == Some("eth0")
        }));

        let cri = r
            .streams
            .iter()
            .find(|s| s.labels.get("pod") == Some("web-1"))
            .unwrap();
        assert_eq!(
            cri.labels.to_string(),
            r#"{container="nginx", namespace="prod", node="node-1", pod="web-1", stream="stdout"}"#
        );
        assert_eq!(cri.entries[0].line, "hello world");
        assert_eq!(cri.entries[0].ts_ns, 1_704_164_645_000_000_001);
        let plain = r
            .streams
            .iter()
            .find(|s| s.labels.get("job") == Some("varlogs"))
            .unwrap();
        assert_eq!(plain.entries[0].line, "boot ok");
    }
    let saved = std::fs::read_to_string(dir.path().join("state").join(POSITIONS_FILE)).unwrap();
    assert!(saved.contains("0.log"), "{saved}");

    // A restart sends only what was appended since the acknowledged checkpoint.
    received.lock().unwrap().streams.clear();
    std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .and_then(|mut f| {
            std::io::Write::write_all(&mut f, b"2024-01-02T03:04:06Z stderr F again\n")
        })
        .unwrap();
    let shutdown = CancellationToken::new();
    let agent = tokio::spawn(run_agent(cfg, shutdown.clone()));
    wait_for("the appended line", || !lines(&received).is_empty()).await;
    // Give a wrongly restarted tailer the chance to re-send old lines before looking.
    tokio::time::sleep(Duration::from_millis(200)).await;
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), agent)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(lines(&received), ["again"]);
}

#[tokio::test]
async fn a_bad_url_fails_at_start() {
    let cfg = AgentConfig::new("not a url", "http://127.0.0.1:1/loki/api/v1/push");
    let err = run_agent(cfg, CancellationToken::new()).await.unwrap_err();
    assert!(err.to_string().contains("remote_write_url"), "{err}");
}
