//! Pod discovery against a fake API server on loopback: the list's annotated pod is scraped
//! through the annotated-pods job (relabeling from the annotations), the unannotated one is
//! dropped, and a `DELETED` watch event ends the target with staleness markers.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use model::{is_stale_nan, Series};
use serde_json::{json, Value};
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

use crate::scrape::{ScrapeConfig, ScrapeFile, Scraper};

#[derive(Default)]
struct FakeApi {
    pods: Vec<Value>,
    /// Released by the test: the first watch then answers with its events.
    release: Notify,
    watch_events: Mutex<Vec<Value>>,
    queries: Mutex<Vec<BTreeMap<String, String>>>,
}

async fn pods(
    State(api): State<Arc<FakeApi>>,
    Query(q): Query<BTreeMap<String, String>>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    api.queries.lock().unwrap().push(q.clone());
    if q.get("watch").map(String::as_str) != Some("1") {
        return Json(json!({
            "kind": "PodList", "apiVersion": "v1",
            "metadata": {"resourceVersion": "100"},
            "items": api.pods,
        }))
        .into_response();
    }
    let events = std::mem::take(&mut *api.watch_events.lock().unwrap());
    if events.is_empty() {
        // Later watches stay open, as a quiet API server's do.
        tokio::time::sleep(Duration::from_secs(60)).await;
        return String::new().into_response();
    }
    api.release.notified().await;
    let body: String = events.iter().map(|e| format!("{e}\n")).collect();
    body.into_response()
}

fn pod(name: &str, annotations: Value, port: u16) -> Value {
    json!({
        "metadata": {"name": name, "namespace": "shop", "uid": format!("uid-{name}"), "resourceVersion": "100",
                     "labels": {"app": name}, "annotations": annotations},
        "spec": {"nodeName": "test-node", "containers": [
            {"name": "main", "image": "img", "ports": [{"name": "metrics", "containerPort": port}]}
        ]},
        "status": {"phase": "Running", "podIP": "127.0.0.1", "hostIP": "127.0.0.1",
                   "conditions": [{"type": "Ready", "status": "True"}]}
    })
}

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[tokio::test]
async fn annotated_pods_are_scraped_and_deleted_pods_go_stale() {
    let exporter = serve(Router::new().route("/custom", get(|| async { "pod_metric 1\n" }))).await;
    let port: u16 = exporter.rsplit_once(':').unwrap().1.parse().unwrap();
    let web = pod(
        "web",
        json!({"prometheus.io/scrape": "true", "prometheus.io/port": port.to_string(), "prometheus.io/path": "/custom"}),
        port,
    );
    let quiet = pod("quiet", json!({}), port);
    let mut deleted = web.clone();
    deleted["metadata"]["resourceVersion"] = json!("101");
    let api = Arc::new(FakeApi {
        pods: vec![web, quiet],
        watch_events: Mutex::new(vec![json!({"type": "DELETED", "object": deleted})]),
        ..FakeApi::default()
    });
    let api_addr = serve(
        Router::new()
            .route("/api/v1/pods", get(pods))
            .with_state(api.clone()),
    )
    .await;

    let mut job = ScrapeConfig::annotated_pods().unwrap();
    job.scrape_interval = Some(Duration::from_millis(200));
    job.kubernetes_sd_configs[0].api_server = Some(format!("http://{api_addr}"));
    let file = ScrapeFile {
        scrape_configs: vec![job],
        ..ScrapeFile::default()
    };
    let scraper = Scraper::new(&file, "test-node").unwrap();
    let view = scraper.targets();
    let (tx, mut rx) = mpsc::channel(64);
    let shutdown = CancellationToken::new();
    tokio::spawn(scraper.run(shutdown.clone(), tx));

    let sel = format!(
        r#"{{__name__="pod_metric", app="web", instance="127.0.0.1:{port}", job="kubernetes-pods", namespace="shop", node="test-node", pod="web"}}"#
    );
    let mut got: Vec<Series> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let wait_for = |want_stale: bool| {
        let sel = sel.clone();
        move |got: &[Series]| {
            got.iter()
                .any(|s| s.labels.to_string() == sel && is_stale_nan(s.samples[0].v) == want_stale)
        }
    };
    let first = wait_for(false);
    while !first(&got) {
        let batch = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .expect("no scrape of the annotated pod")
            .unwrap();
        got.extend(batch.series);
    }
    let q = api.queries.lock().unwrap()[0].clone();
    assert_eq!(q["fieldSelector"], "spec.nodeName=test-node");
    let pools = view.snapshot();
    let pool = &pools["kubernetes-pods"];
    assert_eq!(pool.active.len(), 1);
    assert_eq!(
        pool.active[0].target.url.as_str(),
        format!("http://127.0.0.1:{port}/custom")
    );
    assert_eq!(pool.dropped.len(), 1, "the unannotated pod is dropped");
    assert_eq!(
        pool.dropped[0].get("__meta_kubernetes_pod_name"),
        Some("quiet")
    );

    api.release.notify_one();
    let stale = wait_for(true);
    while !stale(&got) {
        let batch = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .expect("no staleness after DELETED")
            .unwrap();
        got.extend(batch.series);
    }
    assert!(view.snapshot()["kubernetes-pods"].active.is_empty());
    shutdown.cancel();
}

/// Two jobs with the same API server and the node's pod index are served by one list and one
/// watch: the index gets the listed pods with their containers, then the watch's `ADDED` pod,
/// and loses the `DELETED` one.
#[tokio::test]
async fn jobs_and_the_pod_index_share_one_watch() {
    let mut web = pod("web", json!({"prometheus.io/scrape": "true"}), 9);
    web["status"]["containerStatuses"] = json!([{
        "name": "main", "image": "img:1", "restartCount": 1,
        "containerID": "containerd://0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    }]);
    let quiet = pod("quiet", json!({}), 10);
    let mut added = pod("late", json!({}), 11);
    added["metadata"]["resourceVersion"] = json!("101");
    let mut deleted = quiet.clone();
    deleted["metadata"]["resourceVersion"] = json!("102");
    let api = Arc::new(FakeApi {
        pods: vec![web, quiet],
        watch_events: Mutex::new(vec![
            json!({"type": "ADDED", "object": added}),
            json!({"type": "DELETED", "object": deleted}),
        ]),
        ..FakeApi::default()
    });
    api.release.notify_one();
    let api_addr = serve(
        Router::new()
            .route("/api/v1/pods", get(pods))
            .with_state(api.clone()),
    )
    .await;
    let api_url = format!("http://{api_addr}");
    let sd = format!("kubernetes_sd_configs: [{{role: pod, api_server: '{api_url}'}}]");
    let file = ScrapeFile::parse(&format!(
        "scrape_configs:\n  - job_name: a\n    {sd}\n  - job_name: b\n    {sd}\n"
    ))
    .unwrap();
    let index = crate::SharedPods::default();
    let scraper = Scraper::new(&file, "test-node")
        .unwrap()
        .with_pod_index(index.clone(), Some(api_url));
    let view = scraper.targets();
    let (tx, mut rx) = mpsc::channel(64);
    tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let shutdown = CancellationToken::new();
    tokio::spawn(scraper.run(shutdown.clone(), tx));

    let names = || {
        let i = index.read().unwrap();
        let mut n: Vec<String> = i.pods.values().map(|p| p.name.clone()).collect();
        n.sort();
        n
    };
    // Both jobs see the same pods as the index: the listed `web` and the added `late`.
    let job_pods = |job: &str| {
        let pools = view.snapshot();
        let mut pods: Vec<String> = pools
            .get(job)
            .map(|p| p.active.as_slice())
            .unwrap_or_default()
            .iter()
            .filter_map(|t| t.target.discovered.get("__meta_kubernetes_pod_name"))
            .map(str::to_string)
            .collect();
        pods.sort();
        pods
    };
    let want = ["late", "web"];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while names() != want || job_pods("a") != want || job_pods("b") != want {
        assert!(
            tokio::time::Instant::now() < deadline,
            "index {:?}, job a {:?}, job b {:?}",
            names(),
            job_pods("a"),
            job_pods("b")
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    {
        let i = index.read().unwrap();
        let web = i.pod("uid-web").unwrap();
        assert_eq!(web.namespace, "shop");
        assert_eq!(web.labels["app"], "web");
        let c = &web.containers["0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"];
        assert_eq!(
            (c.name.as_str(), c.image.as_str(), c.restart_count),
            ("main", "img:1", 1)
        );
    }
    let queries = api.queries.lock().unwrap().clone();
    let lists = queries.iter().filter(|q| !q.contains_key("watch")).count();
    assert_eq!(
        lists, 1,
        "one list for both jobs and the index: {queries:?}"
    );
    assert!(queries.iter().filter(|q| q.contains_key("watch")).count() >= 1);
    shutdown.cancel();
}

/// Without a job's pod discovery the index still gets a watch of its own.
#[tokio::test]
async fn the_pod_index_gets_its_own_watch_without_pod_jobs() {
    let api = Arc::new(FakeApi {
        pods: vec![pod("solo", json!({}), 9)],
        ..FakeApi::default()
    });
    let api_addr = serve(
        Router::new()
            .route("/api/v1/pods", get(pods))
            .with_state(api.clone()),
    )
    .await;
    let index = crate::SharedPods::default();
    let scraper = Scraper::new(&ScrapeFile::default(), "test-node")
        .unwrap()
        .with_pod_index(index.clone(), Some(format!("http://{api_addr}")));
    let (tx, _rx) = mpsc::channel(1);
    let shutdown = CancellationToken::new();
    tokio::spawn(scraper.run(shutdown.clone(), tx));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while index.read().unwrap().pod("uid-solo").is_none() {
        assert!(tokio::time::Instant::now() < deadline, "no pod indexed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let q = api.queries.lock().unwrap()[0].clone();
    assert_eq!(q["fieldSelector"], "spec.nodeName=test-node");
    shutdown.cancel();
}
