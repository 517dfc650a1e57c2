//! The Targets page with a real scrape: `vigil agent` scraping Debian's node_exporter and a
//! dead port on loopback, reporting its targets to `vigil server` (`POST
//! /api/v1/agent/targets`), whose `/api/v1/targets` and Targets page list both with their
//! health, last scrape, duration and the dead one's last error; and the report endpoint's
//! answers to bad and oversized bodies.
//!
//! Skip rule: without `/usr/bin/prometheus-node-exporter` the test prints that it skipped,
//! unless `CI=true`, where a missing exporter fails it.

use super::chromium::artifact;
use super::spawn::*;
use super::webdriver::Driver;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const NODE_EXPORTER: &str = "/usr/bin/prometheus-node-exporter";

/// A node_exporter on a free loopback port, killed on drop.
struct NodeExporter {
    child: Child,
    addr: String,
}

impl NodeExporter {
    /// Starts it and waits for `/metrics` to answer; `None` (after saying so) when it is not
    /// installed outside CI.
    async fn start(test: &str) -> Option<NodeExporter> {
        if !Path::new(NODE_EXPORTER).exists() {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("{NODE_EXPORTER} is missing and CI=true: apt-get install prometheus-node-exporter");
            }
            eprintln!("skipped {test}: {NODE_EXPORTER} is not installed");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let addr = format!("127.0.0.1:{port}");
        // A few cheap collectors keep each scrape quick on a busy machine.
        let child = Command::new(NODE_EXPORTER)
            .arg(format!("--web.listen-address={addr}"))
            .args([
                "--collector.disable-defaults",
                "--collector.loadavg",
                "--collector.meminfo",
                "--collector.uname",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start node_exporter");
        let exporter = NodeExporter { child, addr };
        let deadline = Instant::now() + Duration::from_secs(20);
        while client()
            .get(format!("http://{}/metrics", exporter.addr))
            .send()
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "node_exporter did not come up");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Some(exporter)
    }
}

impl Drop for NodeExporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The server's `/api/v1/targets` answer's active list for `query`.
async fn active_targets(server: &Vigil, query: &str) -> serde_json::Value {
    let answer: serde_json::Value = client()
        .get(server.url(&format!("/api/v1/targets{query}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["status"], "success", "{answer}");
    answer["data"]["activeTargets"].clone()
}

fn by_pool<'a>(targets: &'a serde_json::Value, pool: &str) -> Option<&'a serde_json::Value> {
    targets.as_array()?.iter().find(|t| t["scrapePool"] == pool)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_targets_page_shows_the_agents_reported_targets_with_a_down_ones_last_error() {
    const TEST: &str =
        "the_targets_page_shows_the_agents_reported_targets_with_a_down_ones_last_error";
    let Some(exporter) = NodeExporter::start(TEST).await else {
        return;
    };
    // A port that was free a moment ago: connecting to it is refused.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port");
    let server = Vigil::server();
    let target = exporter.addr.clone();
    let agent = Vigil::agent(&server, |dir| {
        let config = dir.join("agent.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: node-exporter\n    static_configs:\n      - targets: ['{target}']\n  - job_name: dead\n    static_configs:\n      - targets: ['{dead}']\n"
            ),
        )
        .unwrap();
        vec![
            format!("--config.file={}", config.display()),
            "--targets.push-interval=1s".into(),
        ]
    });

    // The server's /api/v1/targets, from the agent's reports, once both were scraped.
    let deadline = Instant::now() + Duration::from_secs(30);
    let targets = loop {
        let targets = active_targets(&server, "").await;
        let scraped = |pool| by_pool(&targets, pool).is_some_and(|t| t["health"] != "unknown");
        if scraped("node-exporter") && scraped("dead") {
            break targets;
        }
        assert!(
            Instant::now() < deadline,
            "the targets never showed scraped: {targets}\nagent log:\n{}",
            agent.log()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let up = by_pool(&targets, "node-exporter").unwrap();
    assert_eq!(up["health"], "up", "{up}");
    assert_eq!(up["lastError"], "", "{up}");
    assert_eq!(up["scrapeUrl"], format!("http://{target}/metrics"));
    assert_eq!(up["labels"]["instance"], target);
    assert!(
        up["lastScrapeDuration"].as_f64().is_some_and(|d| d > 0.0),
        "{up}"
    );
    let down = by_pool(&targets, "dead").unwrap();
    assert_eq!(down["health"], "down", "{down}");
    let error = down["lastError"].as_str().unwrap_or_default().to_string();
    assert!(
        error.to_ascii_lowercase().contains("connection refused"),
        "lastError: {error:?}"
    );
    // Prometheus's filters: a pool, and a state that leaves the active list out.
    let only_dead = active_targets(&server, "?scrapePool=dead").await;
    assert_eq!(only_dead.as_array().map(Vec::len), Some(1), "{only_dead}");
    assert_eq!(
        active_targets(&server, "?state=dropped").await,
        serde_json::Value::Null
    );

    let Some(d) = Driver::start(TEST).await else {
        return;
    };
    d.goto(&server.url("/targets")).await;
    d.wait_for(".status-body table").await;
    d.screenshot(&artifact("targets.png")).await;
    let head = d
        .script(
            "return [...document.querySelectorAll('.group .section-head')].map(h => h.textContent)",
        )
        .await;
    let heads = head.as_array().cloned().unwrap_or_default();
    for want in ["dead (0/1 up)", "node-exporter (1/1 up)"] {
        assert!(heads.iter().any(|h| h == want), "{want} in {head}");
    }
    let cells = |url: String| {
        let d = &d;
        async move {
            let cells: Vec<String> = serde_json::from_value(
                d.script(&format!(
                    "const tr = [...document.querySelectorAll('tr.target[data-source=api]')].find(r => r.querySelector('.scrape-url').textContent === {});
                     return tr ? [...tr.querySelectorAll('td')].map(td => td.textContent) : []",
                    serde_json::Value::String(url)
                ))
                .await,
            )
            .unwrap();
            cells
        }
    };
    let up_row = cells(format!("http://{target}/metrics")).await;
    let [_, state, labels, last, took, error_cell] = &up_row[..] else {
        panic!("six cells for the node_exporter target: {up_row:?}");
    };
    assert_eq!(state, "up");
    assert!(labels.contains(r#"job="node-exporter""#), "{labels}");
    // Scraped every second: the last scrape is seconds old.
    let age = super::query::duration_ms(
        last.strip_suffix(" ago")
            .unwrap_or_else(|| panic!("last scrape: {last}")),
    );
    assert!(age < 30_000, "last scrape: {last}");
    assert!(!took.is_empty(), "a measured duration");
    assert_eq!(error_cell, "");
    let down_row = cells(format!("http://{dead}/metrics")).await;
    let [_, state, _, _, _, error_cell] = &down_row[..] else {
        panic!("six cells for the dead target: {down_row:?}");
    };
    assert_eq!(state, "down");
    // The page shows what the server knew at load: the same refusal, perhaps a later one.
    assert!(
        error_cell
            .to_ascii_lowercase()
            .contains("connection refused"),
        "error cell: {error_cell:?}"
    );
    // Every target came from the reports: no row made from the up series.
    let from_series = d
        .script("return document.querySelectorAll('tr.target[data-source=series]').length")
        .await;
    assert_eq!(from_series, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_target_report_endpoint_answers_bad_and_oversized_bodies_in_prometheus_envelope() {
    let server = Vigil::server();
    let post = |body: Vec<u8>| {
        client()
            .post(server.url("/api/v1/agent/targets"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let r = post(b"{\"node\":".to_vec()).await.unwrap();
    assert_eq!(r.status(), 400);
    let e: serde_json::Value = r.json().await.unwrap();
    assert_eq!(e["status"], "error");
    assert_eq!(e["errorType"], "bad_data");
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .contains("invalid target report"),
        "{e}"
    );

    // An oversized body is refused from its declared length, before it is read (so a client
    // sending it whole could see the connection close under it: only the head is sent here).
    let mut conn = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    conn.write_all(
        format!(
            "POST /api/v1/agent/targets HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            server.addr,
            9 << 20
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains(r#""errorType":"bad_data""#), "{answer}");

    // A good report is listed, and nothing of the refused ones is.
    let report = serde_json::json!({
        "node": "node-a",
        "intervalSeconds": 10,
        "activeTargets": [{
            "discoveredLabels": {"__address__": "10.0.0.1:80"},
            "labels": {"instance": "10.0.0.1:80", "job": "web"},
            "scrapePool": "web",
            "scrapeUrl": "http://10.0.0.1:80/metrics",
            "globalUrl": "http://10.0.0.1:80/metrics",
            "lastError": "",
            "lastScrape": "0001-01-01T00:00:00Z",
            "lastScrapeDuration": 0,
            "health": "unknown",
            "scrapeInterval": "10s",
            "scrapeTimeout": "10s"
        }],
        "droppedTargets": []
    });
    let r = post(serde_json::to_vec(&report).unwrap()).await.unwrap();
    assert_eq!(r.status(), 204);
    let active = active_targets(&server, "").await;
    assert_eq!(active, report["activeTargets"]);
}
