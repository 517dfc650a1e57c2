//! `vigil agent`'s own endpoint: the probes answer, and `/metrics` follows what happens to the
//! shipping — failures counted while a receiver refuses, then samples, lines and bytes sent
//! once it accepts.

use crate::harness::*;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use collector::selfmetrics as m;
use model::wire::loki::PushRequest;
use prost::Message;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A remote-write and Loki receiver that answers 500 until told to accept, then 204.
#[derive(Default)]
struct Receiver {
    accept: AtomicBool,
    refused: AtomicU64,
    writes: AtomicU64,
    log_lines: AtomicU64,
}

async fn receive(State(r): State<Arc<Receiver>>, uri: Uri, body: Bytes) -> StatusCode {
    if !r.accept.load(Ordering::SeqCst) {
        r.refused.fetch_add(1, Ordering::SeqCst);
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    if uri.path() == "/loki/api/v1/push" {
        let raw = model::wire::snappy_decompress(&body, 1 << 24).unwrap();
        let push = PushRequest::decode(raw.as_slice()).unwrap();
        let lines: usize = push.streams.iter().map(|s| s.entries.len()).sum();
        r.log_lines.fetch_add(lines as u64, Ordering::SeqCst);
    } else {
        r.writes.fetch_add(1, Ordering::SeqCst);
    }
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

/// The value of the sample written `series` (name and labels as rendered) in a scrape.
fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

async fn scrape(v: &Vigil) -> String {
    let resp = client().get(v.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    resp.text().await.unwrap()
}

/// Scrapes until `done` holds for the body, or fails with the last body and the agent's log.
async fn scrape_until(v: &Vigil, what: &str, done: impl Fn(&str) -> bool) -> String {
    let last = std::sync::Mutex::new(String::new());
    let body = eventually(Duration::from_secs(30), || async {
        let body = scrape(v).await;
        let ok = done(&body);
        *last.lock().unwrap() = body.clone();
        ok.then_some(body)
    })
    .await;
    body.unwrap_or_else(|| {
        let last = last.lock().unwrap();
        panic!("{what}; last scrape:\n{last}\nlog:\n{}", v.log())
    })
}

#[tokio::test]
async fn agent_endpoint_counts_failures_then_deliveries() {
    let (base, receiver) = start_receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let text = "first line\nsecond line\nthird line\n";
    std::fs::write(logs.join("app.log"), text).unwrap();
    let pods = dir.path().join("no-pods");
    let v = Vigil::agent(
        dir,
        &[
            &format!("--remote-write.url={base}/api/v1/write"),
            &format!("--logs.push-url={base}/loki/api/v1/push"),
            &format!("--logs.files={}/*.log", logs.display()),
            &format!("--logs.path={}", pods.display()),
            "--metrics.interval=1s",
            "--node-name=agent-http-test",
        ],
    );

    let get = |path: &'static str| client().get(v.url(path)).send();
    assert_eq!(get("/-/healthy").await.unwrap().status(), 200);
    let ready = eventually(Duration::from_secs(10), || async {
        (get("/-/ready").await.ok()?.status() == 200).then_some(())
    })
    .await;
    assert!(ready.is_some(), "never ready; log:\n{}", v.log());

    // While the receiver refuses, failures are counted and nothing is sent.
    let failing = scrape_until(&v, "no failures counted while refused", |b| {
        sample(b, m::SAMPLES_FAILED).unwrap_or(0.0) > 0.0
            && sample(b, m::REMOTE_WRITE_FAILURES).unwrap_or(0.0) > 0.0
            && sample(b, m::LOG_PUSH_FAILURES).unwrap_or(0.0) > 0.0
            && sample(b, m::QUEUE_SAMPLES).unwrap_or(0.0) > 0.0
    })
    .await;
    assert_eq!(sample(&failing, m::SAMPLES_SENT), Some(0.0), "{failing}");
    assert_eq!(sample(&failing, m::LOG_LINES_SENT), Some(0.0), "{failing}");
    assert_eq!(sample(&failing, m::FILES_TAILED), Some(1.0), "{failing}");
    assert!(receiver.refused.load(Ordering::SeqCst) >= 2);

    // Once it accepts, the queued samples and the three lines arrive and are counted.
    receiver.accept.store(true, Ordering::SeqCst);
    let sent = scrape_until(&v, "deliveries never counted", |b| {
        sample(b, m::SAMPLES_SENT).unwrap_or(0.0) > 0.0 && sample(b, m::LOG_LINES_SENT) == Some(3.0)
    })
    .await;
    assert_eq!(
        sample(&sent, m::LOG_BYTES_SENT),
        Some((text.len() - 3) as f64),
        "the text of three lines, without their newlines:\n{sent}"
    );
    assert_eq!(receiver.log_lines.load(Ordering::SeqCst), 3);
    assert!(receiver.writes.load(Ordering::SeqCst) >= 1);
    assert!(sample(&sent, m::REMOTE_WRITE_BYTES_SENT).unwrap() > 0.0);
    for reason in [m::REASON_QUEUE_FULL, m::REASON_REJECTED, m::REASON_SHUTDOWN] {
        let series = format!("{}{{reason=\"{reason}\"}}", m::SAMPLES_DROPPED);
        assert_eq!(sample(&sent, &series), Some(0.0), "{series}:\n{sent}");
    }
    let count = format!("{}_count", m::NODE_COLLECTION_DURATION);
    assert!(sample(&sent, &count).unwrap() >= 1.0, "{sent}");
    let rss = sample(&sent, m::PROCESS_RESIDENT_MEMORY).unwrap();
    assert!(rss > 1e6, "rss {rss}");
    let started = sample(&sent, m::PROCESS_START_TIME).unwrap();
    let now = now_ms() as f64 / 1000.0;
    assert!(
        started <= now + 1.0 && started > now - 120.0,
        "start {started}, now {now}"
    );
}
