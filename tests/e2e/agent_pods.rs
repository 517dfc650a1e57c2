//! `vigil agent` on a fake node: a cgroup v2 tree (systemd driver, containerd) under
//! `--path.sysfs` and a fake API server under `--kubernetes.api-server`. The container
//! metrics that reach `vigil server` carry the pod, namespace, container and image of the
//! pod list, and of a pod that only the watch announced.

use crate::harness::*;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const WEB_UID: &str = "6f1d2c3b-4a5e-4f60-8a7b-9c0d1e2f3a4b";
const DB_UID: &str = "11111111-2222-4333-8444-555555555555";
const WEB_ID: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const DB_ID: &str = "3333333333333333333333333333333333333333333333333333333333333333";

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// One containerd container of pod `uid` in a systemd-driver v2 tree.
fn container(cgroup: &Path, uid: &str, id: &str, usage_usec: u64) {
    let pod = cgroup.join(format!(
        "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice",
        uid.replace('-', "_")
    ));
    let c = pod.join(format!("cri-containerd-{id}.scope"));
    write(
        &c.join("cpu.stat"),
        &format!("usage_usec {usage_usec}\nuser_usec {usage_usec}\nsystem_usec 0\n"),
    );
    write(&c.join("memory.current"), "10485760\n");
    write(
        &c.join("memory.stat"),
        "anon 4194304\nfile 0\ninactive_file 0\n",
    );
}

fn pod(
    name: &str,
    namespace: &str,
    uid: &str,
    id: &str,
    image: &str,
    rv: &str,
) -> serde_json::Value {
    serde_json::json!({
        "metadata": {"name": name, "namespace": namespace, "uid": uid, "resourceVersion": rv},
        "spec": {"nodeName": "e2e-node", "containers": [{"name": "app", "image": image}]},
        "status": {"phase": "Running", "containerStatuses": [{
            "name": "app", "image": image, "restartCount": 0,
            "containerID": format!("containerd://{id}")
        }]}
    })
}

#[derive(Default)]
struct FakeApi {
    field_selectors: Mutex<Vec<String>>,
    watched: Mutex<bool>,
}

async fn fake_api() -> (String, Arc<FakeApi>) {
    use axum::extract::{Query, State};
    use axum::response::IntoResponse;
    let api = Arc::new(FakeApi::default());
    let handler = |State(api): State<Arc<FakeApi>>,
                   Query(q): Query<std::collections::BTreeMap<String, String>>| async move {
        let selector = q.get("fieldSelector").cloned().unwrap_or_default();
        api.field_selectors.lock().unwrap().push(selector);
        if q.get("watch").map(String::as_str) != Some("1") {
            let list = serde_json::json!({
                "kind": "PodList", "apiVersion": "v1",
                "metadata": {"resourceVersion": "100"},
                "items": [pod("web-0", "shop", WEB_UID, WEB_ID, "nginx:1.25", "100")],
            });
            return axum::Json(list).into_response();
        }
        if std::mem::replace(&mut *api.watched.lock().unwrap(), true) {
            // Later watches stay open and quiet.
            tokio::time::sleep(Duration::from_secs(60)).await;
            return String::new().into_response();
        }
        let added = pod("db-0", "data", DB_UID, DB_ID, "postgres:16", "101");
        format!(
            "{}\n",
            serde_json::json!({"type": "ADDED", "object": added})
        )
        .into_response()
    };
    let app = axum::Router::new()
        .route("/api/v1/pods", axum::routing::get(handler))
        .with_state(api.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), api)
}

async fn first(v: &Vigil, query: &str) -> Option<serde_json::Value> {
    let (_, j) = get_json(v, &format!("/api/v1/query?query={}", enc(query))).await;
    j["data"]["result"].as_array()?.first().cloned()
}

#[tokio::test]
async fn container_metrics_carry_pod_labels_from_the_list_and_the_watch() {
    let server = Vigil::server(&[]);
    let (api_url, api) = fake_api().await;
    let dir = tempfile::tempdir().unwrap();
    let sysfs = dir.path().join("sys");
    let cgroup = sysfs.join("fs/cgroup");
    write(&cgroup.join("cgroup.controllers"), "cpu memory pids\n");
    write(
        &cgroup.join("cpu.stat"),
        "usage_usec 9000000\nuser_usec 6000000\nsystem_usec 3000000\n",
    );
    container(&cgroup, WEB_UID, WEB_ID, 2_000_000);
    container(&cgroup, DB_UID, DB_ID, 3_000_000);
    let procfs = dir.path().join("proc");
    write(
        &procfs.join("stat"),
        "cpu  2 0 2 8\ncpu0 2 0 2 8 1 0 0 0 0 0\n",
    );
    write(
        &procfs.join("meminfo"),
        "MemTotal: 2048 kB\nMemFree: 1024 kB\n",
    );
    let (sysfs, procfs) = (sysfs.display().to_string(), procfs.display().to_string());
    let agent = Vigil::agent(
        dir,
        &[
            &format!("--path.sysfs={sysfs}"),
            &format!("--path.procfs={procfs}"),
            &format!("--kubernetes.api-server={api_url}"),
            &format!("--remote-write.url={}", server.url("/api/v1/write")),
            &format!("--logs.push-url={}", server.url("/loki/api/v1/push")),
            "--logs.path=/nonexistent/pods",
            "--metrics.interval=1s",
            "--node-name=e2e-node",
        ],
    );

    let web = eventually(Duration::from_secs(30), || {
        first(&server, r#"container_cpu_usage_seconds_total{pod="web-0"}"#)
    })
    .await
    .unwrap_or_else(|| panic!("no web-0 container metrics; agent log:\n{}", agent.log()));
    let m = &web["metric"];
    assert_eq!(m["namespace"], "shop", "{m}");
    assert_eq!(m["container"], "app", "{m}");
    assert_eq!(m["image"], "nginx:1.25", "{m}");
    assert_eq!(m["name"], WEB_ID, "{m}");
    assert_eq!(m["job"], "kubelet", "{m}");
    assert_eq!(web["value"][1], "2");

    // db-0 was never listed: only the watch's ADDED event names it.
    let db = eventually(Duration::from_secs(30), || {
        first(
            &server,
            r#"container_memory_working_set_bytes{pod="db-0",container="app"}"#,
        )
    })
    .await
    .unwrap_or_else(|| panic!("no db-0 container metrics; agent log:\n{}", agent.log()));
    assert_eq!(db["metric"]["namespace"], "data");
    assert_eq!(db["metric"]["image"], "postgres:16");

    let selectors = api.field_selectors.lock().unwrap().clone();
    assert!(
        selectors.iter().all(|s| s == "spec.nodeName=e2e-node"),
        "{selectors:?}"
    );
}
