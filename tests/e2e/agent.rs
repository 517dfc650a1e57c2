//! Agent path, through `vigil up`: node metrics from /proc by remote write, container log
//! lines (CRI) and plain log files by Loki push, all read back through the query APIs.

use crate::harness::*;
use std::io::Write;
use std::time::Duration;

#[tokio::test]
async fn up_ships_node_metrics_and_container_logs() {
    let dir = tempfile::tempdir().unwrap();
    let pod_dir = dir.path().join("pods/shop_cart-7d9f_0b5e-11ee/server");
    std::fs::create_dir_all(&pod_dir).unwrap();
    let cri = pod_dir.join("0.log");
    std::fs::write(
        &cri,
        "2026-11-27T10:00:00.000000001Z stdout F started cart service\n\
         2026-11-27T10:00:01.5Z stderr P partial line, \n\
         2026-11-27T10:00:01.6Z stderr F joined\n",
    )
    .unwrap();
    let plain = dir.path().join("plain");
    std::fs::create_dir_all(&plain).unwrap();
    std::fs::write(plain.join("app.log"), "plain file line one\n").unwrap();

    let pods = dir.path().join("pods").display().to_string();
    let files = format!("{}/*.log", plain.display());
    let v = Vigil::up(
        dir,
        &[
            &format!("--logs.path={pods}"),
            &format!("--logs.files={files}"),
            "--metrics.interval=1s",
            "--node-name=test-node",
        ],
    );

    // Node metrics from the real /proc arrive by remote write.
    let found = eventually(Duration::from_secs(30), || async {
        let (_, j) = get_json(
            &v,
            &format!(
                "/api/v1/query?query={}",
                enc(r#"node_load1{instance="test-node"}"#)
            ),
        )
        .await;
        j["data"]["result"]
            .as_array()
            .filter(|r| !r.is_empty())
            .cloned()
    })
    .await;
    assert!(
        found.is_some(),
        "node_load1 never arrived; log:\n{}",
        v.log()
    );
    let (_, j) = get_json(
        &v,
        &format!(
            "/api/v1/query?query={}",
            enc(r#"count(node_cpu_seconds_total{mode="idle"})"#)
        ),
    )
    .await;
    let cpus: f64 = j["data"]["result"][0]["value"][1]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(cpus >= 1.0, "{j}");
    // The families' metadata rides along with the samples: /api/v1/metadata answers with
    // node_exporter's type and help, as Prometheus answers for what it scrapes.
    let meta = eventually(Duration::from_secs(30), || async {
        let (_, j) = get_json(&v, "/api/v1/metadata?metric=node_cpu_seconds_total").await;
        let entry = j["data"]["node_cpu_seconds_total"].clone();
        (!entry.is_null()).then_some(entry)
    })
    .await;
    assert_eq!(
        meta,
        Some(serde_json::json!([{
            "type": "counter",
            "help": "Seconds the CPUs spent in each mode.",
            "unit": ""
        }])),
        "log:\n{}",
        v.log()
    );

    // Container lines, with the labels from the path and partial lines joined.
    let start = "1795000000000000000"; // 2026-11-19, before the lines' timestamps
    let lines = eventually(Duration::from_secs(30), || async {
        let (_, j) = get_json(
            &v,
            &format!(
                "/loki/api/v1/query_range?query={}&start={start}&direction=forward",
                enc(r#"{namespace="shop"}"#)
            ),
        )
        .await;
        let r = j["data"]["result"].as_array()?.clone();
        (r.iter()
            .map(|s| s["values"].as_array().map_or(0, |v| v.len()))
            .sum::<usize>()
            >= 2)
            .then_some(r)
    })
    .await
    .unwrap_or_else(|| panic!("container lines never arrived; log:\n{}", v.log()));
    let mut by_stream: Vec<(String, Vec<String>)> = lines
        .iter()
        .map(|s| {
            (
                s["stream"]["stream"].as_str().unwrap().to_string(),
                s["values"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e[1].as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect();
    by_stream.sort();
    assert_eq!(
        by_stream[0],
        (
            "stderr".to_string(),
            vec!["partial line, joined".to_string()]
        )
    );
    assert_eq!(
        by_stream[1],
        (
            "stdout".to_string(),
            vec!["started cart service".to_string()]
        )
    );
    let labels = &lines[0]["stream"];
    assert_eq!(labels["pod"], "cart-7d9f");
    assert_eq!(labels["container"], "server");
    assert_eq!(labels["node"], "test-node");

    // A line appended later is picked up.
    let mut f = std::fs::OpenOptions::new().append(true).open(&cri).unwrap();
    writeln!(f, "2026-11-27T10:00:05Z stdout F order placed").unwrap();
    drop(f);
    let appended = eventually(Duration::from_secs(30), || async {
        let (_, j) = get_json(
            &v,
            &format!(
                "/loki/api/v1/query_range?query={}&start={start}",
                enc(r#"{pod="cart-7d9f"} |= "order""#)
            ),
        )
        .await;
        j["data"]["result"]
            .as_array()
            .filter(|r| !r.is_empty())
            .cloned()
    })
    .await;
    assert!(
        appended.is_some(),
        "appended line never arrived; log:\n{}",
        v.log()
    );

    // Plain files: labelled by job and filename, stamped with the time they were read.
    let plain_lines = eventually(Duration::from_secs(30), || async {
        let (_, j) = get_json(
            &v,
            &format!(
                "/loki/api/v1/query_range?query={}",
                enc(r#"{job="varlogs"}"#)
            ),
        )
        .await;
        j["data"]["result"]
            .as_array()
            .filter(|r| !r.is_empty())
            .cloned()
    })
    .await
    .unwrap_or_else(|| panic!("plain file lines never arrived; log:\n{}", v.log()));
    assert!(plain_lines[0]["stream"]["filename"]
        .as_str()
        .unwrap()
        .ends_with("app.log"));
    assert_eq!(plain_lines[0]["values"][0][1], "plain file line one");
}
