//! `vigil agent --config.file` scraping a target on loopback into `vigil server`: the samples
//! and report series arrive, the agent's `/api/v1/targets` shows the target, and when the
//! target goes away its series end at once (staleness markers) instead of lingering for the
//! five-minute lookback.

use crate::harness::*;
use std::time::Duration;

/// Stops the exporter when sent to (or dropped).
type Stop = tokio::sync::oneshot::Sender<()>;

async fn exporter() -> (String, Stop) {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(|| async {
            (
                [("content-type", "text/plain; version=0.0.4")],
                "# TYPE e2e_requests_total counter\ne2e_requests_total{code=\"200\",job=\"inner\"} 42\n",
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
    });
    (addr, stop)
}

async fn instant(v: &Vigil, query: &str) -> serde_json::Value {
    let (_, j) = get_json(v, &format!("/api/v1/query?query={}", enc(query))).await;
    j["data"]["result"].clone()
}

#[tokio::test]
async fn agent_scrapes_a_static_target_and_marks_it_stale_when_it_goes_away() {
    let server = Vigil::server(&[]);
    let (target, stop) = exporter().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: e2e\n    static_configs:\n      - targets: ['{target}']\n        labels: {{env: test}}\n"
        ),
    )
    .unwrap();
    let agent = Vigil::agent(
        dir,
        &[
            &format!("--config.file={}", config.display()),
            &format!("--remote-write.url={}", server.url("/api/v1/write")),
            &format!("--logs.push-url={}", server.url("/loki/api/v1/push")),
            "--logs.path=/nonexistent/pods",
            "--metrics.interval=1s",
            "--node-name=e2e-node",
        ],
    );

    let sel = r#"e2e_requests_total{job="e2e"}"#;
    let found = eventually(Duration::from_secs(30), || async {
        let r = instant(&server, sel).await;
        r.as_array().filter(|a| !a.is_empty()).cloned()
    })
    .await
    .unwrap_or_else(|| panic!("scraped sample never arrived; agent log:\n{}", agent.log()));
    let m = &found[0]["metric"];
    assert_eq!(m["exported_job"], "inner", "{m}");
    assert_eq!(m["instance"], target.as_str());
    assert_eq!(m["env"], "test");
    assert_eq!(found[0]["value"][1], "42");
    let up = instant(&server, r#"up{job="e2e"}"#).await;
    assert_eq!(up[0]["value"][1], "1", "{up}");

    let (status, targets) = get_json(&agent, "/api/v1/targets").await;
    assert_eq!(status, 200);
    let t = &targets["data"]["activeTargets"][0];
    assert_eq!(t["health"], "up", "{targets}");
    assert_eq!(t["labels"]["job"], "e2e");

    stop.send(()).unwrap();
    let gone = eventually(Duration::from_secs(30), || async {
        let r = instant(&server, sel).await;
        let up = instant(&server, r#"up{job="e2e"}"#).await;
        (r.as_array().is_some_and(|a| a.is_empty()) && up[0]["value"][1] == "0").then_some(())
    })
    .await;
    assert!(
        gone.is_some(),
        "series did not end after the target went away; agent log:\n{}",
        agent.log()
    );
    let (_, targets) = get_json(&agent, "/api/v1/targets").await;
    let t = &targets["data"]["activeTargets"][0];
    assert_eq!(t["health"], "down", "{targets}");
    assert!(!t["lastError"].as_str().unwrap().is_empty(), "{targets}");
}
