//! The scraper against real HTTP targets on loopback: formats and gzip, a slow target, a
//! sample limit, a target that goes away (staleness markers reach a remote-write receiver), a
//! target removed by discovery, and `/api/v1/targets`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{header, HeaderMap};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use model::{is_stale_nan, Series};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::ship::{MetricBatch, RemoteWriteConfig};

/// A target whose body can change, recording the headers of each request.
#[derive(Clone, Default)]
struct Exporter {
    body: Arc<Mutex<String>>,
    headers: Arc<Mutex<Vec<HeaderMap>>>,
}

/// Starts `app` on 127.0.0.1:0; returns its address and the token that stops it.
async fn serve(app: Router) -> (String, CancellationToken) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let stop = CancellationToken::new();
    let s = stop.clone();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { s.cancelled().await })
            .await
    });
    (addr, stop)
}

async fn exporter(body: &str) -> (String, Exporter, CancellationToken) {
    let e = Exporter::default();
    *e.body.lock().unwrap() = body.to_string();
    let state = e.clone();
    let app = Router::new().route(
        "/metrics",
        get(move |headers: HeaderMap| {
            let state = state.clone();
            async move {
                state.headers.lock().unwrap().push(headers);
                let body = state.body.lock().unwrap().clone();
                ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
            }
        }),
    );
    let (addr, stop) = serve(app).await;
    (addr, e, stop)
}

fn config(yaml: &str) -> ScrapeFile {
    ScrapeFile::parse(yaml).unwrap()
}

struct Running {
    rx: mpsc::Receiver<MetricBatch>,
    updates: mpsc::Sender<GroupUpdate>,
    view: Arc<TargetsView>,
    shutdown: CancellationToken,
}

fn start(file: &ScrapeFile) -> Running {
    let scraper = Scraper::new(file, "test-node").unwrap();
    let view = scraper.targets();
    let (tx, rx) = mpsc::channel(64);
    let updates = scraper.group_sender();
    let shutdown = CancellationToken::new();
    tokio::spawn(scraper.run(shutdown.clone(), tx));
    Running {
        rx,
        updates,
        view,
        shutdown,
    }
}

/// Receives batches until `done` holds for the series received so far (or 10 s pass).
async fn until(
    rx: &mut mpsc::Receiver<MetricBatch>,
    mut done: impl FnMut(&[Series]) -> bool,
) -> Vec<Series> {
    let mut all = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done(&all) {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(batch)) => all.extend(batch.series),
            _ => panic!("condition not met; got {all:#?}"),
        }
    }
    all
}

fn value(series: &[Series], sel: &str) -> Vec<f64> {
    series
        .iter()
        .filter(|s| s.labels.to_string() == sel)
        .map(|s| s.samples[0].v)
        .collect()
}

#[tokio::test]
async fn text_openmetrics_and_gzip_targets_with_report_series() {
    let (text_addr, text, _stop1) = exporter("# TYPE a counter\na_total{x=\"1\"} 3\n").await;
    let om = Router::new().route(
        "/metrics",
        get(|| async {
            let body = "# TYPE b gauge\nb 7\n# EOF\n";
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut gz, body.as_bytes()).unwrap();
            (
                [
                    (
                        header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    ),
                    (header::CONTENT_ENCODING, "gzip"),
                ],
                gz.finish().unwrap(),
            )
                .into_response()
        }),
    );
    let (om_addr, _stop2) = serve(om).await;
    let file = config(&format!(
        "scrape_configs:\n  - job_name: app\n    scrape_interval: 200ms\n    static_configs:\n      - targets: ['{text_addr}', '{om_addr}']\n        labels: {{team: t}}\n"
    ));
    let mut r = start(&file);
    let a =
        format!(r#"{{__name__="a_total", instance="{text_addr}", job="app", team="t", x="1"}}"#);
    let b = format!(r#"{{__name__="b", instance="{om_addr}", job="app", team="t"}}"#);
    let up_b = format!(r#"{{__name__="up", instance="{om_addr}", job="app", team="t"}}"#);
    let scraped_b = format!(
        r#"{{__name__="scrape_samples_scraped", instance="{om_addr}", job="app", team="t"}}"#
    );
    let all = until(&mut r.rx, |s| {
        !value(s, &a).is_empty() && !value(s, &b).is_empty()
    })
    .await;
    assert_eq!(value(&all, &a)[0], 3.0);
    assert_eq!(value(&all, &b)[0], 7.0);
    assert_eq!(value(&all, &up_b)[0], 1.0);
    assert_eq!(value(&all, &scraped_b)[0], 1.0);
    let headers = text.headers.lock().unwrap()[0].clone();
    assert_eq!(headers["accept"], ACCEPT_HEADER);
    assert_eq!(headers["accept-encoding"], "gzip");
    assert_eq!(headers["x-prometheus-scrape-timeout-seconds"], "0.2");
    r.shutdown.cancel();
}

#[tokio::test]
async fn slow_target_times_out_and_is_down() {
    let slow = Router::new().route(
        "/metrics",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            "late 1\n"
        }),
    );
    let (addr, _stop) = serve(slow).await;
    let file = config(&format!(
        "scrape_configs:\n  - job_name: slow\n    scrape_interval: 300ms\n    scrape_timeout: 100ms\n    static_configs: [{{targets: ['{addr}']}}]\n"
    ));
    let mut r = start(&file);
    let up = format!(r#"{{__name__="up", instance="{addr}", job="slow"}}"#);
    let dur = format!(r#"{{__name__="scrape_duration_seconds", instance="{addr}", job="slow"}}"#);
    let all = until(&mut r.rx, |s| !value(s, &up).is_empty()).await;
    assert_eq!(value(&all, &up), [0.0]);
    let d = value(&all, &dur)[0];
    assert!((0.09..1.0).contains(&d), "duration {d}");
    let view = r.view.snapshot();
    let h = view["slow"].active[0].health.lock().unwrap().clone();
    assert_eq!(h.health, "down");
    assert!(
        h.last_error.contains("context deadline exceeded"),
        "{}",
        h.last_error
    );
    r.shutdown.cancel();
}

#[tokio::test]
async fn sample_limit_fails_the_scrape() {
    let (addr, _e, _stop) = exporter("a 1\nb 2\nc 3\n").await;
    let file = config(&format!(
        "scrape_configs:\n  - job_name: lim\n    scrape_interval: 200ms\n    sample_limit: 2\n    static_configs: [{{targets: ['{addr}']}}]\n"
    ));
    let mut r = start(&file);
    let up = format!(r#"{{__name__="up", instance="{addr}", job="lim"}}"#);
    let all = until(&mut r.rx, |s| !value(s, &up).is_empty()).await;
    assert_eq!(value(&all, &up), [0.0]);
    assert!(all
        .iter()
        .all(|s| !s.labels.metric_name().unwrap().starts_with(['a', 'b', 'c'])));
    let view = r.view.snapshot();
    let err = view["lim"].active[0]
        .health
        .lock()
        .unwrap()
        .last_error
        .clone();
    assert_eq!(err, "sample limit exceeded (limit 2)");
    r.shutdown.cancel();
}

/// A receiver of remote write that keeps every series it is sent.
async fn receiver() -> (String, Arc<Mutex<Vec<Series>>>) {
    let got: Arc<Mutex<Vec<Series>>> = Arc::default();
    let g = got.clone();
    let app = Router::new().route(
        "/api/v1/write",
        axum::routing::post(move |body: axum::body::Bytes| {
            let g = g.clone();
            async move {
                let raw = model::wire::snappy_decompress(&body, 1 << 24).unwrap();
                let req =
                    <model::wire::prom::WriteRequest as prost::Message>::decode(&raw[..]).unwrap();
                let mut g = g.lock().unwrap();
                for ts in req.timeseries {
                    g.push(Series {
                        labels: model::Labels::from_pairs(
                            ts.labels.into_iter().map(|l| (l.name, l.value)),
                        ),
                        samples: ts
                            .samples
                            .into_iter()
                            .map(|s| model::Sample {
                                t: s.timestamp,
                                v: s.value,
                            })
                            .collect(),
                    });
                }
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let (addr, _stop) = serve(app).await;
    std::mem::forget(_stop);
    (format!("http://{addr}/api/v1/write"), got)
}

#[tokio::test]
async fn a_target_that_goes_away_is_marked_stale_at_the_receiver() {
    let (url, got) = receiver().await;
    let (addr, _e, stop_target) = exporter("foo{k=\"v\"} 1\n").await;
    let file = config(&format!(
        "scrape_configs:\n  - job_name: gone\n    scrape_interval: 200ms\n    static_configs: [{{targets: ['{addr}']}}]\n"
    ));
    let scraper = Scraper::new(&file, "n").unwrap();
    let (tx, rx) = mpsc::channel(8);
    let shutdown = CancellationToken::new();
    let queue = tempfile::tempdir().unwrap();
    let sink = RemoteWriteConfig::new(url, queue.path()).build().unwrap();
    tokio::spawn(sink.run(rx, CancellationToken::new()));
    tokio::spawn(scraper.run(shutdown.clone(), tx));

    let foo = format!(r#"{{__name__="foo", instance="{addr}", job="gone", k="v"}}"#);
    let up = format!(r#"{{__name__="up", instance="{addr}", job="gone"}}"#);
    let arrived = |pred: &dyn Fn(&[Series]) -> bool| pred(&got.lock().unwrap());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !arrived(&|s| value(s, &foo).contains(&1.0)) {
        assert!(tokio::time::Instant::now() < deadline, "foo never arrived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop_target.cancel();
    while !arrived(&|s| {
        value(s, &foo).iter().any(|v| is_stale_nan(*v)) && value(s, &up).contains(&0.0)
    }) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no staleness marker: {:?}",
            got.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shutdown.cancel();
}

#[tokio::test]
async fn a_removed_target_writes_end_of_run_staleness() {
    let (addr, _e, _stop) = exporter("foo 1\n").await;
    let file = config("scrape_configs:\n  - job_name: disc\n    scrape_interval: 200ms\n");
    let mut r = start(&file);
    let group = |targets: Vec<model::Labels>| GroupUpdate {
        job: "disc".into(),
        groups: vec![TargetGroup {
            source: "pod/a".into(),
            targets,
            labels: model::Labels::from_pairs([("pod", "a")]),
        }],
    };
    r.updates
        .send(group(vec![model::Labels::from_pairs([(
            "__address__",
            addr.as_str(),
        )])]))
        .await
        .unwrap();
    let foo = format!(r#"{{__name__="foo", instance="{addr}", job="disc", pod="a"}}"#);
    let up = format!(r#"{{__name__="up", instance="{addr}", job="disc", pod="a"}}"#);
    until(&mut r.rx, |s| value(s, &foo).contains(&1.0)).await;
    let removed = tokio::time::Instant::now();
    r.updates.send(group(Vec::new())).await.unwrap();
    let all = until(&mut r.rx, |s| {
        value(s, &foo).iter().any(|v| is_stale_nan(*v))
    })
    .await;
    // Two intervals and a tenth pass before the markers are written.
    assert!(
        removed.elapsed() >= Duration::from_millis(400),
        "{:?}",
        removed.elapsed()
    );
    assert!(
        value(&all, &up).iter().any(|v| is_stale_nan(*v)),
        "report series marked too"
    );
    assert!(r.view.snapshot()["disc"].active.is_empty());
    r.shutdown.cancel();
}

#[tokio::test]
async fn targets_api_shows_active_and_dropped_targets() {
    let (addr, _e, _stop) = exporter("foo 1\n").await;
    let file = config(&format!(
        "scrape_configs:\n  - job_name: api\n    scrape_interval: 200ms\n    static_configs:\n      - targets: ['{addr}', 'dropme:1']\n    relabel_configs:\n      - {{source_labels: [__address__], regex: 'dropme.*', action: drop}}\n"
    ));
    let mut r = start(&file);
    let up = format!(r#"{{__name__="up", instance="{addr}", job="api"}}"#);
    until(&mut r.rx, |s| !value(s, &up).is_empty()).await;
    let (base, _stop_api) = serve(targets_router(r.view.clone())).await;
    let j: serde_json::Value = reqwest::get(format!("http://{base}/api/v1/targets"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(j["status"], "success");
    let t = &j["data"]["activeTargets"][0];
    assert_eq!(t["health"], "up");
    assert_eq!(t["scrapePool"], "api");
    assert_eq!(t["scrapeUrl"], format!("http://{addr}/metrics"));
    assert_eq!(
        t["labels"],
        serde_json::json!({"instance": addr, "job": "api"})
    );
    assert_eq!(t["discoveredLabels"]["__address__"], addr);
    assert_eq!(t["scrapeInterval"], "200ms");
    assert_eq!(t["lastError"], "");
    assert!(t["lastScrape"].as_str().unwrap().ends_with('Z'));
    assert!(t["lastScrapeDuration"].as_f64().unwrap() > 0.0);
    assert_eq!(
        j["data"]["droppedTargets"][0]["discoveredLabels"]["__address__"],
        "dropme:1"
    );
    let active_only: serde_json::Value =
        reqwest::get(format!("http://{base}/api/v1/targets?state=active"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(active_only["data"]["droppedTargets"], serde_json::json!([]));
    r.shutdown.cancel();
}
