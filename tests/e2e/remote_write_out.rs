//! Remote write out against a real Prometheus 2.42 receiver: what Vigil accepts (remote
//! write in, recording-rule results) arrives at Prometheus unchanged, with external labels
//! added and `write_relabel_configs` applied, and a receiver failing with 500 for a while
//! loses nothing.

use crate::harness::*;
use crate::peers::Prometheus;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Starts `vigil server` with `config` (its rule file, if any, beside it).
fn vigil_with_config(config: &str, rules: Option<&str>) -> (Vigil, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vigil.yml");
    std::fs::write(&path, config).unwrap();
    if let Some(rules) = rules {
        std::fs::write(dir.path().join("rules.yml"), rules).unwrap();
    }
    let v = Vigil::server(&[&format!("--config.file={}", path.display())]);
    (v, dir)
}

/// The `(t_ms, value)` pairs Prometheus holds for `selector` over the last hour, with the
/// series' labels; empty when it has none.
async fn prom_samples(p: &Prometheus, selector: &str) -> Vec<(Value, Vec<(i64, f64)>)> {
    let url = format!(
        "http://{}/api/v1/query?query={}&time={}",
        p.addr,
        enc(&format!("{selector}[1h]")),
        now_ms() as f64 / 1000.0 + 60.0
    );
    let body: Value = client()
        .get(url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["status"], "success", "{body}");
    body["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let values = s["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|pair| {
                    let t = (pair[0].as_f64().unwrap() * 1000.0).round() as i64;
                    let v: f64 = pair[1].as_str().unwrap().parse().unwrap();
                    (t, v)
                })
                .collect();
            (s["metric"].clone(), values)
        })
        .collect()
}

/// Waits until Prometheus holds `want` samples for `selector`, then returns them.
async fn wait_for(p: &Prometheus, selector: &str, want: usize) -> Vec<(Value, Vec<(i64, f64)>)> {
    let got = eventually(Duration::from_secs(20), || async {
        let s = prom_samples(p, selector).await;
        let n: usize = s.iter().map(|(_, v)| v.len()).sum();
        (n >= want).then_some(s)
    })
    .await;
    got.unwrap_or_else(|| panic!("prometheus never held {want} samples of {selector}"))
}

fn samples(start: i64, n: usize) -> Vec<(i64, f64)> {
    (0..n as i64)
        .map(|i| (start + i * 1000, i as f64 * 1.5))
        .collect()
}

#[tokio::test]
async fn accepted_samples_and_rule_results_reach_prometheus_relabeled() {
    let Some(prom) = Prometheus::receiver("remote write out").await else {
        return;
    };
    let config = format!(
        "global:\n  evaluation_interval: 1s\n  external_labels: {{cluster: e2e}}\n\
         rule_files: [rules.yml]\n\
         remote_write:\n  - url: http://{}/api/v1/write\n    name: prom\n    \
         write_relabel_configs:\n      - {{source_labels: [__name__], regex: 'secret_.*', action: drop}}\n    \
         queue_config: {{batch_send_deadline: 200ms, max_samples_per_send: 40, min_shards: 2}}\n",
        prom.addr
    );
    let rules = "groups:\n  - name: out\n    rules:\n      - record: job:rw_out:sum\n        expr: sum(rw_out_total)\n";
    let (vigil, _dir) = vigil_with_config(&config, Some(rules));

    let start = now_ms() - 300_000;
    let a = samples(start, 100);
    let b = samples(start + 500, 60);
    let body = write_body(&[
        (&[("__name__", "rw_out_total"), ("job", "a")], a.clone()),
        (&[("__name__", "rw_out_total"), ("job", "b")], b.clone()),
        (
            &[("__name__", "secret_token"), ("job", "a")],
            samples(start, 10),
        ),
    ]);
    assert_eq!(remote_write(&vigil, body).await.0, 204);

    let got = wait_for(&prom, "rw_out_total", 160).await;
    assert_eq!(got.len(), 2, "{got:?}");
    for (metric, values) in &got {
        assert_eq!(metric["cluster"], "e2e", "external label added: {metric}");
        let want = if metric["job"] == "a" { &a } else { &b };
        assert_eq!(values, want, "same samples for {metric}");
    }
    // The rule's results are forwarded too.
    let rule = wait_for(&prom, "job:rw_out:sum", 1).await;
    assert_eq!(rule[0].0["cluster"], "e2e");
    // write_relabel_configs dropped the secret series before it left.
    assert!(prom_samples(&prom, "secret_token").await.is_empty());
    let metrics = vigil.metrics().await;
    let dropped = metrics
        .lines()
        .find(|l| {
            l.starts_with("prometheus_remote_storage_samples_dropped_total{remote_name=\"prom\"")
        })
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!(dropped.ends_with(" 10"), "{dropped}");
    assert!(
        metrics.contains("prometheus_remote_storage_samples_total{remote_name=\"prom\""),
        "{metrics}"
    );
    // The shown config keeps the section, secrets aside.
    let (_, cfg) = get_json(&vigil, "/api/v1/status/config").await;
    assert!(cfg["data"]["yaml"]
        .as_str()
        .unwrap()
        .contains("write_relabel_configs"));
}

/// A proxy in front of Prometheus that answers 500 to its first `failures` requests.
async fn flaky_proxy(target: String, failures: usize) -> (String, Arc<AtomicUsize>) {
    #[derive(Clone)]
    struct Proxy {
        target: String,
        failures: usize,
        seen: Arc<AtomicUsize>,
    }
    async fn handle(State(p): State<Proxy>, headers: HeaderMap, body: Bytes) -> StatusCode {
        if p.seen.fetch_add(1, Ordering::SeqCst) < p.failures {
            return StatusCode::INTERNAL_SERVER_ERROR;
        }
        let mut req = client().post(&p.target).body(body);
        for name in [
            "content-encoding",
            "content-type",
            "x-prometheus-remote-write-version",
        ] {
            if let Some(v) = headers.get(name) {
                req = req.header(name, v.as_bytes());
            }
        }
        match req.send().await {
            Ok(r) => StatusCode::from_u16(r.status().as_u16()).unwrap(),
            Err(_) => StatusCode::BAD_GATEWAY,
        }
    }
    let seen = Arc::new(AtomicUsize::new(0));
    let app = axum::Router::new().fallback(handle).with_state(Proxy {
        target,
        failures,
        seen: seen.clone(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/api/v1/write", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

#[tokio::test]
async fn a_receiver_failing_with_500_then_recovering_loses_nothing() {
    let Some(prom) = Prometheus::receiver("remote write out retries").await else {
        return;
    };
    let (proxy, seen) = flaky_proxy(format!("http://{}/api/v1/write", prom.addr), 6).await;
    let config = format!(
        "remote_write:\n  - url: {proxy}\n    \
         queue_config: {{batch_send_deadline: 100ms, max_samples_per_send: 25, min_backoff: 50ms, max_backoff: 200ms}}\n"
    );
    let (vigil, _dir) = vigil_with_config(&config, None);

    let start = now_ms() - 120_000;
    let mut want = Vec::new();
    // Several writes while the receiver fails, so batches queue up behind the retries.
    for chunk in 0..4 {
        let s = samples(start + chunk * 20_000, 20);
        want.extend(s.clone());
        let body = write_body(&[(&[("__name__", "flaky_total")], s)]);
        assert_eq!(remote_write(&vigil, body).await.0, 204);
    }
    let got = wait_for(&prom, "flaky_total", 80).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1, want, "every sample once, in order");
    assert!(seen.load(Ordering::SeqCst) > 6, "the failures were retried");
    let metrics = vigil.metrics().await;
    let retried = metrics
        .lines()
        .find(|l| l.starts_with("prometheus_remote_storage_samples_retried_total{"))
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!(!retried.ends_with(" 0"), "{retried}");
}
