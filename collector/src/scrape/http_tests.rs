//! Scrapes with an `http_config`: HTTPS against a real node_exporter 1.5 serving the test
//! certificates (CA file, `insecure_skip_verify`, a wrong CA, a required client certificate),
//! a bearer token file re-read at every scrape, and a job routed through `proxy_url`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{header, HeaderMap};
use axum::routing::get;
use axum::Router;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::httpconf::peers::{self, testdata};

/// Runs `yaml` until every job's targets have been scraped once; returns each job's
/// (health, last error), and stops the scraper.
async fn scrape_once(yaml: &str) -> BTreeMap<String, (String, String)> {
    let file = ScrapeFile::parse(yaml).unwrap();
    let scraper = Scraper::new(&file, "test-node").unwrap();
    let view = scraper.targets();
    let (tx, mut rx) = mpsc::channel(64);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(scraper.run(shutdown.clone(), tx));
    tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let out = loop {
        let snapshot = view.snapshot();
        let states: BTreeMap<String, (String, String)> = snapshot
            .iter()
            .flat_map(|(job, pool)| {
                pool.active.iter().map(move |t| {
                    let h = t.health.lock().unwrap().clone();
                    (job.clone(), (h.health.to_string(), h.last_error))
                })
            })
            .collect();
        if states.len() == file.scrape_configs.len() && states.values().all(|s| s.0 != "unknown") {
            break states;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not every job scraped: {states:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    shutdown.cancel();
    task.await.unwrap();
    out
}

fn job(name: &str, addr: &str, extra: &str) -> String {
    format!(
        "  - job_name: {name}\n    scheme: https\n    scrape_interval: 1s\n    static_configs: [{{targets: ['{addr}']}}]\n{extra}"
    )
}

#[tokio::test]
async fn https_targets_verified_by_ca_file_or_skipped_and_refused_with_a_wrong_ca() {
    if !peers::available(peers::NODE_EXPORTER) {
        return;
    }
    let peer = peers::node_exporter_tls(false);
    let ca = testdata("ca.crt");
    let other = testdata("other-ca.crt");
    let yaml = format!(
        "scrape_configs:\n{}{}{}{}",
        job(
            "ca_file",
            &peer.addr,
            &format!("    tls_config: {{ca_file: {}}}\n", ca.display())
        ),
        job(
            "skip_verify",
            &peer.addr,
            "    tls_config: {insecure_skip_verify: true}\n"
        ),
        job(
            "wrong_ca",
            &peer.addr,
            &format!("    tls_config: {{ca_file: {}}}\n", other.display())
        ),
        job("system_roots", &peer.addr, ""),
    );
    let states = scrape_once(&yaml).await;
    assert_eq!(states["ca_file"].0, "up", "{states:?}");
    assert_eq!(states["skip_verify"].0, "up", "{states:?}");
    for refused in ["wrong_ca", "system_roots"] {
        let (health, error) = &states[refused];
        assert_eq!(health, "down");
        assert!(
            error.contains("certificate") && error.contains(&peer.addr),
            "{refused}: {error}"
        );
    }
}

#[tokio::test]
async fn client_certificate_required_by_the_target() {
    if !peers::available(peers::NODE_EXPORTER) {
        return;
    }
    let peer = peers::node_exporter_tls(true);
    let ca = testdata("ca.crt").display().to_string();
    let cert = testdata("client.crt").display().to_string();
    let key = testdata("client.key").display().to_string();
    let yaml = format!(
        "scrape_configs:\n{}{}",
        job(
            "with_cert",
            &peer.addr,
            &format!("    tls_config: {{ca_file: {ca}, cert_file: {cert}, key_file: {key}}}\n"),
        ),
        job(
            "without_cert",
            &peer.addr,
            &format!("    tls_config: {{ca_file: {ca}}}\n")
        ),
    );
    let states = scrape_once(&yaml).await;
    assert_eq!(states["with_cert"].0, "up", "{states:?}");
    assert_eq!(states["without_cert"].0, "down", "{states:?}");
}

/// A target answering `/metrics`, recording each request's `Authorization` and `Host`.
async fn recording_target() -> (String, Arc<Mutex<Vec<HeaderMap>>>, CancellationToken) {
    let seen: Arc<Mutex<Vec<HeaderMap>>> = Arc::default();
    let record = seen.clone();
    let app = Router::new().route(
        "/metrics",
        get(move |headers: HeaderMap| {
            record.lock().unwrap().push(headers);
            async {
                (
                    [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                    "a 1\n",
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let stop = CancellationToken::new();
    let s = stop.clone();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { s.cancelled().await })
            .await
    });
    (addr, seen, stop)
}

fn authorizations(seen: &Mutex<Vec<HeaderMap>>) -> Vec<String> {
    seen.lock()
        .unwrap()
        .iter()
        .map(|h| {
            h.get(header::AUTHORIZATION)
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default()
        })
        .collect()
}

#[tokio::test]
async fn bearer_token_file_is_read_again_at_every_scrape() {
    let (addr, seen, _stop) = recording_target().await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "first\n").unwrap();
    let file = ScrapeFile::parse(&format!(
        "scrape_configs:\n  - job_name: a\n    scrape_interval: 100ms\n    bearer_token_file: {}\n    static_configs: [{{targets: ['{addr}']}}]\n",
        token.display()
    ))
    .unwrap();
    let scraper = Scraper::new(&file, "test-node").unwrap();
    let view = scraper.targets();
    let (tx, mut rx) = mpsc::channel(64);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(scraper.run(shutdown.clone(), tx));
    tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let wait_for = |want: &'static str| {
        let seen = seen.clone();
        async move {
            for _ in 0..100 {
                if authorizations(&seen).last().map(String::as_str) == Some(want) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("never saw {want:?}: {:?}", authorizations(&seen));
        }
    };
    wait_for("Bearer first").await;
    std::fs::write(&token, "second").unwrap();
    wait_for("Bearer second").await;
    // An unreadable token fails the scrape, as in Prometheus, rather than scraping without it.
    std::fs::remove_file(&token).unwrap();
    let mut error = String::new();
    for _ in 0..100 {
        let pools = view.snapshot();
        let health = pools["a"].active[0].health.lock().unwrap().clone();
        if health.health == "down" {
            error = health.last_error;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        error.contains("unable to read") && error.contains("token"),
        "{error:?}"
    );
    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn proxy_url_carries_the_scrape_and_basic_auth() {
    // The "proxy" is a plain HTTP server: a proxied request arrives in absolute form, so its
    // path still routes to `/metrics`, and its Host names the real target.
    let (proxy, seen, _stop) = recording_target().await;
    // Nothing listens on the target's port: only the proxy can answer.
    let target = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let states = scrape_once(&format!(
        "scrape_configs:\n  - job_name: proxied\n    scrape_interval: 1s\n    proxy_url: http://{proxy}\n    basic_auth: {{username: u, password: p}}\n    static_configs: [{{targets: ['{target}']}}]\n"
    ))
    .await;
    assert_eq!(states["proxied"].0, "up", "{states:?}");
    let requests = seen.lock().unwrap().clone();
    assert_eq!(requests[0][header::HOST], target.as_str());
    assert_eq!(requests[0][header::AUTHORIZATION], "Basic dTpw");
}

#[test]
fn http_config_errors_name_the_job_and_the_field() {
    for (extra, want) in [
        (
            "    bearer_token: a\n    bearer_token_file: b\n",
            "bearer_token & bearer_token_file",
        ),
        (
            "    tls_config: {ca_file: x, ca: y}\n",
            "at most one of ca and ca_file",
        ),
        (
            "    tls_config: {server_name: x}\n",
            "tls_config.server_name",
        ),
        ("    no_proxy: localhost\n", "no_proxy"),
        ("    tls_config: {ca_fil: x}\n", "ca_fil"),
        ("    oauth2: {client_id: x}\n", "oauth2"),
    ] {
        let yaml = format!("scrape_configs:\n  - job_name: j\n{extra}");
        let msg = ScrapeFile::parse(&yaml).unwrap_err().to_string();
        assert!(msg.contains(want), "{extra}: {msg}");
    }
    // Unreadable PEM files fail the load (building the scraper), naming the file.
    let file = ScrapeFile::parse(
        "scrape_configs:\n  - job_name: j\n    tls_config: {ca_file: /nonexistent/ca.pem}\n",
    )
    .unwrap();
    let msg = Scraper::new(&file, "n").unwrap_err().to_string();
    assert!(
        msg.contains("\"j\"") && msg.contains("/nonexistent/ca.pem"),
        "{msg}"
    );
}

#[test]
fn relative_paths_are_taken_from_the_config_file_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scrape.yml");
    std::fs::write(
        &path,
        "scrape_configs:\n  - job_name: j\n    bearer_token_file: tok\n    tls_config: {ca_file: certs/ca.pem}\n",
    )
    .unwrap();
    let file = ScrapeFile::load(&path).unwrap();
    let sc = &file.scrape_configs[0];
    assert_eq!(
        sc.bearer_token_file.as_deref(),
        Some(dir.path().join("tok").as_path())
    );
    assert_eq!(
        sc.tls_config.ca_file.as_deref(),
        Some(dir.path().join("certs/ca.pem").as_path())
    );
}
