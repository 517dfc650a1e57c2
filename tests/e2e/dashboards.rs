//! Every query of every shipped dashboard (`dashboards/grafana/*.json`, which the native
//! Dashboards page renders too) run against `vigil up` with data from its own agent: none may
//! fail, and the panels built on node metrics and logs must have data.

use crate::harness::*;
use serde_json::Value;
use std::time::Duration;

/// Grafana's variables as the native page fills them for a 15 s step.
fn substitute(expr: &str, vars: &[(String, String)]) -> String {
    let mut out = expr
        .replace("$__rate_interval", "1m")
        .replace("$__interval", "15s")
        .replace("$__auto", "15s");
    let mut vars = vars.to_vec();
    vars.sort_by_key(|(n, _)| std::cmp::Reverse(n.len()));
    for (name, value) in vars {
        out = out
            .replace(&format!("${{{name}}}"), &value)
            .replace(&format!("${name}"), &value);
    }
    out
}

fn dashboards() -> Vec<(String, Value)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/dashboards/grafana");
    let mut out: Vec<(String, Value)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            let name = p.file_stem().unwrap().to_str().unwrap().to_string();
            let text = std::fs::read_to_string(&p).unwrap();
            (name, serde_json::from_str(&text).unwrap())
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// `label_values(metric, label)` answered by the labels API, as Grafana's variable editor does.
async fn variable_values(v: &Vigil, query: &str) -> Vec<String> {
    let inner = query
        .trim()
        .strip_prefix("label_values(")
        .and_then(|q| q.strip_suffix(')'))
        .unwrap_or_else(|| panic!("unsupported variable query {query}"));
    let (matcher, label) = match inner.rsplit_once(',') {
        Some((m, l)) => (Some(m.trim()), l.trim()),
        None => (None, inner.trim()),
    };
    let mut path = format!("/api/v1/label/{label}/values");
    if let Some(m) = matcher {
        path.push_str(&format!("?match[]={}", enc(m)));
    }
    let (status, j) = get_json(v, &path).await;
    assert_eq!(status, 200, "{path}: {j}");
    j["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn every_dashboard_query_runs_against_agent_data() {
    let dir = tempfile::tempdir().unwrap();
    let pod_dir = dir.path().join("pods/shop_cart-7d9f_0b5e-11ee/server");
    std::fs::create_dir_all(&pod_dir).unwrap();
    let now = chrono::Utc::now();
    let mut lines = String::new();
    for i in 0..40 {
        let t = now - chrono::Duration::seconds(120 - i * 3);
        let level = if i % 4 == 0 { "error" } else { "info" };
        lines.push_str(&format!(
            "{} stdout F level={level} msg=\"order {i}\"\n",
            t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
        ));
    }
    std::fs::write(pod_dir.join("0.log"), lines).unwrap();
    let pods = dir.path().join("pods").display().to_string();
    let v = Vigil::up(
        dir,
        &[
            &format!("--logs.path={pods}"),
            "--metrics.interval=1s",
            "--node-name=dash-node",
        ],
    );
    // Enough node samples for a 1m rate, and the log lines.
    let ready = eventually(Duration::from_secs(40), || async {
        let (_, j) = get_json(
            &v,
            &format!(
                "/api/v1/query?query={}",
                enc(r#"count_over_time(node_load1{instance="dash-node"}[1m]) >= 4"#)
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
        ready.is_some(),
        "node metrics never arrived; log:\n{}",
        v.log()
    );
    let logs_in = eventually(Duration::from_secs(30), || async {
        let (_, j) = get_json(
            &v,
            &format!(
                "/loki/api/v1/query_range?query={}&limit=100&start={}",
                enc(r#"{namespace="shop"}"#),
                (now.timestamp() - 600) * 1_000_000_000
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
        logs_in.is_some(),
        "log lines never arrived; log:\n{}",
        v.log()
    );

    let end = chrono::Utc::now().timestamp();
    let start = end - 300;
    let mut ran = 0;
    let mut empty = Vec::new();
    for (name, d) in dashboards() {
        let mut vars = Vec::new();
        for var in d["templating"]["list"].as_array().unwrap() {
            if var["type"] != "query" {
                continue;
            }
            let q = var["query"]["query"].as_str().unwrap();
            let values = variable_values(&v, q).await;
            if var["name"] == "instance" {
                assert!(
                    values.contains(&"dash-node".to_string()),
                    "{name}: {q} gave {values:?}"
                );
            }
            let first = values.first().cloned().unwrap_or_default();
            vars.push((var["name"].as_str().unwrap().to_string(), first));
        }
        for panel in d["panels"].as_array().unwrap() {
            let loki = panel["datasource"]["type"] == "loki";
            let title = panel["title"].as_str().unwrap();
            let mut points = 0;
            for t in panel["targets"].as_array().unwrap() {
                let expr = substitute(t["expr"].as_str().unwrap(), &vars);
                let path = if loki {
                    format!(
                        "/loki/api/v1/query_range?query={}&start={}&end={}&step=15",
                        enc(&expr),
                        start * 1_000_000_000,
                        end * 1_000_000_000
                    )
                } else {
                    format!(
                        "/api/v1/query_range?query={}&start={start}&end={end}&step=15",
                        enc(&expr)
                    )
                };
                let (status, j) = get_json(&v, &path).await;
                assert_eq!(status, 200, "{name} / {title}: {expr}\n{j}");
                assert_eq!(j["status"], "success", "{name} / {title}: {expr}\n{j}");
                assert!(j["data"]["resultType"] == "matrix", "{name} / {title}: {j}");
                points += j["data"]["result"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s["values"].as_array().map_or(0, |v| v.len()))
                    .sum::<usize>();
                ran += 1;
            }
            if points == 0 {
                empty.push(format!("{name} / {title}"));
            }
        }
    }
    assert!(ran >= 25, "only {ran} queries in the shipped dashboards");
    // What the agent collects everywhere must show: CPU, memory, load, and the logs panels.
    for must in [
        "cluster-use / CPU utilisation",
        "cluster-use / Memory utilisation",
        "cluster-use / CPU saturation (load1 per CPU)",
        "node / Load average",
        "node / CPU by mode",
        "logs-volume / Lines per second by namespace",
        "logs-volume / Error lines per second by pod",
    ] {
        assert!(
            !empty.iter().any(|e| e == must),
            "{must} has no data; empty panels: {empty:?}"
        );
    }
}
