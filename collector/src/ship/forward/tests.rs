//! Queue behaviour against a scripted local receiver: batching, sharding, retries, drops,
//! relabeling, resharding and shutdown.

use std::sync::atomic::Ordering;
use std::time::Duration;

use model::wire::prom::WriteRequest;
use model::{Labels, Sample};
use prost::Message;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::ship::test_server::TestServer;

fn fast(url: &str) -> ForwardConfig {
    let mut cfg = ForwardConfig::new(url);
    cfg.queue.batch_send_deadline = Duration::from_millis(20);
    cfg.queue.backoff = Backoff {
        min: Duration::from_millis(5),
        max: Duration::from_millis(20),
    };
    cfg
}

fn labels(name: &str, i: usize) -> Labels {
    Labels::from_pairs([("__name__", name.to_string()), ("i", i.to_string())])
}

fn samples(ts: std::ops::Range<i64>) -> Vec<Sample> {
    ts.map(|t| Sample { t, v: t as f64 }).collect()
}

fn decode(body: &[u8]) -> WriteRequest {
    let raw = model::wire::snappy_decompress(body, 1 << 24).unwrap();
    WriteRequest::decode(raw.as_slice()).unwrap()
}

/// Every (labels, t) the server accepted, in arrival order: the first `failed` requests got
/// the scripted error statuses.
fn accepted(server: &TestServer, failed: usize) -> Vec<(Labels, i64)> {
    let mut out = Vec::new();
    for r in server.requests().iter().skip(failed) {
        for ts in decode(&r.body).timeseries {
            let s = ts.to_series().unwrap();
            for sample in s.samples {
                out.push((s.labels.clone(), sample.t));
            }
        }
    }
    out
}

/// Runs `queue` until its pending count reaches zero, then shuts it down.
async fn drain(queue: Arc<RemoteWriteQueue>) {
    let stop = CancellationToken::new();
    let task = tokio::spawn(queue.clone().run(stop.clone()));
    tokio::time::timeout(Duration::from_secs(10), async {
        while queue.pending() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn batches_of_max_samples_with_protocol_headers_and_auth() {
    let server = TestServer::start(&[]).await;
    let mut cfg = fast(&server.url);
    cfg.queue.max_samples_per_send = 100;
    cfg.headers = vec![("X-Scope-OrgID".into(), "t1".into())];
    cfg.auth = Some(Auth::Credentials {
        scheme: "Bearer".into(),
        credentials: Secret::Inline("tok".into()),
    });
    cfg.external_labels = Labels::from_pairs([("cluster", "eu"), ("i", "ignored")]);
    let queue = cfg.build().unwrap();
    queue.push(&labels("up", 0), &samples(0..250));
    drain(queue.clone()).await;

    let reqs = server.requests();
    let sizes: Vec<usize> = reqs
        .iter()
        .map(|r| decode(&r.body).timeseries[0].samples.len())
        .collect();
    assert_eq!(sizes, [100, 100, 50]);
    let h = &reqs[0].headers;
    assert_eq!(h["content-encoding"], "snappy");
    assert_eq!(h["content-type"], "application/x-protobuf");
    assert_eq!(h["x-prometheus-remote-write-version"], "0.1.0");
    assert_eq!(h["authorization"], "Bearer tok");
    assert_eq!(h["x-scope-orgid"], "t1");
    let got = accepted(&server, 0);
    assert_eq!(got.len(), 250);
    assert_eq!(got[0].0.get("cluster"), Some("eu"), "external label added");
    assert_eq!(got[0].0.get("i"), Some("0"), "series label wins");
    assert!(got.windows(2).all(|w| w[0].1 < w[1].1), "in order");
    assert_eq!(queue.shared.stats.sent.load(Ordering::Relaxed), 250);
}

#[tokio::test]
async fn a_failing_receiver_loses_nothing_and_keeps_series_order() {
    let server = TestServer::start(&[500, 503, 500, 502]).await;
    let mut cfg = fast(&server.url);
    cfg.queue.min_shards = 4;
    cfg.queue.max_shards = 4;
    cfg.queue.max_samples_per_send = 7;
    let queue = cfg.build().unwrap();
    for t in 0..20 {
        for i in 0..5 {
            queue.push(&labels("m", i), &samples(t..t + 1));
        }
    }
    drain(queue.clone()).await;
    let got = accepted(&server, 4);
    assert_eq!(got.len(), 100, "every sample delivered once");
    for i in 0..5 {
        let ts: Vec<i64> = got
            .iter()
            .filter(|(l, _)| *l == labels("m", i))
            .map(|(_, t)| *t)
            .collect();
        assert_eq!(ts, (0..20).collect::<Vec<_>>(), "series {i} in order");
    }
    let stats = &queue.shared.stats;
    assert!(stats.retried.load(Ordering::Relaxed) >= 4);
    assert_eq!(stats.sent.load(Ordering::Relaxed), 100);
    assert_eq!(stats.dropped.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn a_400_drops_the_batch_and_429_is_dropped_unless_configured() {
    let server = TestServer::start(&[400, 429]).await;
    let mut cfg = fast(&server.url);
    cfg.queue.max_samples_per_send = 1;
    let queue = cfg.clone().build().unwrap();
    queue.push(&labels("m", 0), &samples(0..3));
    drain(queue.clone()).await;
    assert_eq!(server.requests().len(), 3, "no retries");
    assert_eq!(queue.shared.stats.failed.load(Ordering::Relaxed), 2);
    assert_eq!(queue.shared.stats.sent.load(Ordering::Relaxed), 1);

    let server = TestServer::start(&[429]).await;
    cfg.url = server.url.clone();
    cfg.queue.retry_on_http_429 = true;
    let queue = cfg.build().unwrap();
    queue.push(&labels("m", 0), &samples(0..1));
    drain(queue.clone()).await;
    assert_eq!(server.requests().len(), 2, "429 retried");
    assert_eq!(queue.shared.stats.sent.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn write_relabel_configs_drop_and_rewrite_series() {
    let server = TestServer::start(&[]).await;
    let mut cfg = fast(&server.url);
    cfg.write_relabel_configs = serde_yaml_steps(
        "- {source_labels: [__name__], regex: 'secret_.*', action: drop}\n\
         - {regex: i, action: labeldrop}",
    );
    let queue = cfg.build().unwrap();
    queue.push(&labels("secret_token", 0), &samples(0..2));
    queue.push(&labels("up", 1), &samples(0..1));
    drain(queue.clone()).await;
    let got = accepted(&server, 0);
    assert_eq!(got, [(Labels::from_pairs([("__name__", "up")]), 0)]);
    assert_eq!(queue.shared.stats.dropped.load(Ordering::Relaxed), 2);
}

fn serde_yaml_steps(yaml: &str) -> Vec<RelabelConfig> {
    // The collector has no YAML dependency: build the same steps through RelabelSpec.
    yaml.lines()
        .map(|line| {
            let body = line.trim().trim_start_matches("- {").trim_end_matches('}');
            let mut spec = model::RelabelSpec::default();
            for field in body.split(", ") {
                let (k, v) = field.split_once(": ").unwrap();
                let v = v.trim_matches('\'').to_string();
                match k {
                    "source_labels" => {
                        spec.source_labels = Some(vec![v.trim_matches(['[', ']']).to_string()])
                    }
                    "regex" => spec.regex = Some(v),
                    "action" => spec.action = Some(v),
                    other => panic!("{other}"),
                }
            }
            RelabelConfig::try_from(spec).unwrap()
        })
        .collect()
}

#[tokio::test]
async fn a_full_shard_drops_the_oldest_and_counts_them() {
    let mut cfg = fast("http://127.0.0.1:9/w");
    cfg.queue.capacity = 10;
    let queue = cfg.build().unwrap();
    queue.push(&labels("m", 0), &samples(0..25));
    let stats = &queue.shared.stats;
    assert_eq!(stats.overflowed.load(Ordering::Relaxed), 15);
    assert_eq!(stats.dropped.load(Ordering::Relaxed), 15);
    assert_eq!(queue.pending(), 10);
    let text = render_metrics(std::slice::from_ref(&queue));
    assert!(
        text.contains("prometheus_remote_storage_samples_pending{"),
        "{text}"
    );
}

#[tokio::test]
async fn shutdown_against_a_dead_receiver_counts_the_rest_as_dropped() {
    let mut queue = fast("http://127.0.0.1:9/w").build().unwrap();
    Arc::get_mut(&mut queue).unwrap().flush_deadline = Duration::from_millis(200);
    queue.push(&labels("m", 0), &samples(0..3));
    let stop = CancellationToken::new();
    let task = tokio::spawn(queue.clone().run(stop.clone()));
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(queue.pending(), 0);
    assert_eq!(queue.shared.stats.dropped.load(Ordering::Relaxed), 3);
    assert_eq!(queue.shared.stats.sent.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn reshards_up_under_backlog_and_keeps_order() {
    let server = TestServer::start(&[]).await;
    let mut cfg = fast(&server.url);
    cfg.queue.max_shards = 8;
    let queue = cfg.build().unwrap();
    let before = LoadSample::now(&queue.shared.stats);
    // Pretend 1000 samples took 1 s to send and 5000 wait: 1 ms/sample × 500/s backlog.
    let stats = &queue.shared.stats;
    stats.sent.store(1000, Ordering::Relaxed);
    stats.send_nanos.store(1_000_000_000, Ordering::Relaxed);
    stats.pending.store(5000, Ordering::Relaxed);
    let now = LoadSample::now(stats);
    assert_eq!(
        queue.desired_shards(&before, &now, 1),
        1,
        "0.5 shards: stay"
    );
    stats.pending.store(50_000, Ordering::Relaxed);
    assert_eq!(queue.desired_shards(&before, &now, 1), 5);
    stats.pending.store(500_000, Ordering::Relaxed);
    assert_eq!(
        queue.desired_shards(&before, &now, 1),
        8,
        "capped at max_shards"
    );
    stats.failing.store(true, Ordering::Relaxed);
    assert_eq!(
        queue.desired_shards(&before, &now, 1),
        1,
        "not while failing"
    );
    stats.failing.store(false, Ordering::Relaxed);
    stats.pending.store(0, Ordering::Relaxed);

    // A real reshard: samples pushed before and after arrive once, in order per series.
    let abort = CancellationToken::new();
    let shards = queue.shards.read().unwrap().clone();
    let gen = queue.spawn_senders(shards, None, &abort);
    for i in 0..10 {
        queue.push(&labels("m", i), &samples(0..5));
    }
    let gen = queue
        .reshard(gen, 4, &abort, &CancellationToken::new())
        .await;
    for i in 0..10 {
        queue.push(&labels("m", i), &samples(5..10));
    }
    assert_eq!(queue.shards.read().unwrap().len(), 4);
    gen.stop.cancel();
    gen.join().await;
    let got = accepted(&server, 0);
    assert_eq!(got.len(), 100);
    for i in 0..10 {
        let ts: Vec<i64> = got
            .iter()
            .filter(|(l, _)| *l == labels("m", i))
            .map(|(_, t)| *t)
            .collect();
        assert_eq!(ts, (0..10).collect::<Vec<_>>());
    }
}

#[tokio::test]
async fn remote_write_to_an_https_prometheus_verified_by_ca_file() {
    use crate::httpconf::peers::{self, testdata};
    if !peers::available(peers::PROMETHEUS) {
        return;
    }
    let peer = peers::prometheus_tls();
    let mut cfg = fast(&format!("https://{}/api/v1/write", peer.addr));
    cfg.tls.ca_file = Some(testdata("ca.crt"));
    let queue = cfg.build().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    queue.push(
        &Labels::from_pairs([("__name__", "vigil_tls_forwarded")]),
        &[Sample { t: now, v: 42.0 }],
    );
    drain(queue.clone()).await;
    assert_eq!(queue.shared.stats.failed.load(Ordering::Relaxed), 0);
    assert_eq!(queue.shared.stats.sent.load(Ordering::Relaxed), 1);
    // Read it back over HTTPS with the same CA: the receiver stored what was sent.
    let ca = reqwest::Certificate::from_pem(&std::fs::read(testdata("ca.crt")).unwrap()).unwrap();
    let client = reqwest::Client::builder()
        .tls_certs_only([ca])
        .no_proxy()
        .build()
        .unwrap();
    let url = format!(
        "https://{}/api/v1/query?query=vigil_tls_forwarded",
        peer.addr
    );
    let mut body = serde_json::Value::Null;
    for _ in 0..50 {
        body = client.get(&url).send().await.unwrap().json().await.unwrap();
        if body["data"]["result"][0]["value"][1] == "42" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("sample not found in the receiver: {body}");
}

#[test]
fn tls_and_proxy_problems_fail_the_build() {
    let mut cfg = ForwardConfig::new("https://127.0.0.1:1/api/v1/write");
    cfg.tls.ca_file = Some("/nonexistent/ca.pem".into());
    let msg = cfg.build().unwrap_err().to_string();
    assert!(msg.contains("/nonexistent/ca.pem"), "{msg}");
    let mut cfg = ForwardConfig::new("https://127.0.0.1:1/api/v1/write");
    cfg.proxy.no_proxy = Some("localhost".into());
    let msg = cfg.build().unwrap_err().to_string();
    assert!(msg.contains("no_proxy"), "{msg}");
}
