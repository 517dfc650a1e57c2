//! The Targets page with a real scrape: `vigil agent` scraping Debian's node_exporter on
//! loopback and shipping to `vigil server`, whose page lists the target with its health, last
//! scrape and duration (from the report series the agent writes).
//!
//! Skip rule: without `/usr/bin/prometheus-node-exporter` the test prints that it skipped,
//! unless `CI=true`, where a missing exporter fails it.

use super::chromium::artifact;
use super::spawn::*;
use super::webdriver::Driver;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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

#[tokio::test(flavor = "multi_thread")]
async fn the_targets_page_lists_an_agents_node_exporter_target_as_up() {
    const TEST: &str = "the_targets_page_lists_an_agents_node_exporter_target_as_up";
    let Some(exporter) = NodeExporter::start(TEST).await else {
        return;
    };
    let Some(d) = Driver::start(TEST).await else {
        return;
    };
    let server = Vigil::server();
    let target = exporter.addr.clone();
    let agent = Vigil::agent(&server, |dir| {
        let config = dir.join("agent.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: node-exporter\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        vec![format!("--config.file={}", config.display())]
    });

    // The page shows what the server knew when it loaded: reload until the target is there.
    let row = ".target[data-source=series] .label-chip".to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        d.goto(&server.url("/targets")).await;
        d.wait_for(".status-body :is(table, p)").await;
        let found = d
            .script(&format!(
                "return [...document.querySelectorAll({})].some(c => c.textContent === {})",
                serde_json::Value::String(row.clone()),
                serde_json::Value::String(format!("instance=\"{target}\""))
            ))
            .await;
        if found == serde_json::Value::Bool(true) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the target never showed; agent log:\n{}",
            agent.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    d.screenshot(&artifact("targets.png")).await;

    let head = d
        .script(
            "return [...document.querySelectorAll('.group .section-head')].map(h => h.textContent)",
        )
        .await;
    assert!(
        head.as_array()
            .is_some_and(|a| a.iter().any(|h| h == "node-exporter (1/1 up)")),
        "{head}"
    );
    let cells: Vec<String> = serde_json::from_value(
        d.script(&format!(
            "const tr = [...document.querySelectorAll('tr.target')].find(r => r.textContent.includes({}));
             return [...tr.querySelectorAll('td')].map(td => td.textContent)",
            serde_json::Value::String(format!("instance=\"{target}\""))
        ))
        .await,
    )
    .unwrap();
    let [endpoint, state, labels, last, took, error] = &cells[..] else {
        panic!("six cells: {cells:?}");
    };
    assert_eq!(endpoint, &target);
    assert_eq!(state, "up");
    assert!(labels.contains(r#"job="node-exporter""#), "{labels}");
    // Scraped every second: the last scrape is seconds old.
    let age = super::query::duration_ms(
        last.strip_suffix(" ago")
            .unwrap_or_else(|| panic!("last scrape: {last}")),
    );
    assert!(age < 30_000, "last scrape: {last}");
    // node_exporter answers within a second or so, and the agent measured it.
    let (num, scale) = if let Some(n) = took.strip_suffix("µs") {
        (n, 1e-6)
    } else if let Some(n) = took.strip_suffix("ms") {
        (n, 1e-3)
    } else {
        (
            took.strip_suffix('s')
                .unwrap_or_else(|| panic!("duration: {took:?}")),
            1.0,
        )
    };
    let secs = num.parse::<f64>().unwrap() * scale;
    assert!(secs > 0.0 && secs < 10.0, "duration: {took:?}");
    assert_eq!(error, "", "no error column text for a reported target");
}
