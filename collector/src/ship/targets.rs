//! The target report: every [`DEFAULT_TARGETS_PUSH_INTERVAL`] the agent posts its scrape
//! targets to the server's `POST /api/v1/agent/targets` (a Vigil endpoint), so the server's
//! `/api/v1/targets` and Targets page show each target's health, last scrape, duration and last
//! error without reaching every agent.
//!
//! The body is the agent's own `/api/v1/targets` answer (`activeTargets` exactly as
//! [`crate::targets_router`] renders them, so the two cannot drift), plus the agent's `node`,
//! its push interval (the server forgets an agent after three missed pushes) and each dropped
//! target's `scrapePool` (Prometheus's dropped entries lack it; the server needs it for its
//! `scrapePool` filter):
//!
//! ```json
//! {"node": "node-1", "intervalSeconds": 10,
//!  "activeTargets": [{"scrapePool": "node", "health": "up", "lastError": "", …}],
//!  "droppedTargets": [{"scrapePool": "node", "discoveredLabels": {…}}]}
//! ```
//!
//! A server that does not take reports (Prometheus, Mimir) answers 404; that is logged once
//! and the agent keeps trying, cheaply, in case the server is upgraded.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::{check_url, http_client};
use crate::scrape::{targets_router, TargetsView};
use crate::Error;

/// How often the agent reports its targets unless configured.
pub const DEFAULT_TARGETS_PUSH_INTERVAL: Duration = Duration::from_secs(10);
/// The server's endpoint for target reports, relative to its origin.
pub const TARGETS_PUSH_PATH: &str = "/api/v1/agent/targets";
/// The remote-write path that marks a server as Vigil (or Prometheus) rather than a
/// differently laid out receiver such as Mimir's `/api/v1/push`.
const REMOTE_WRITE_PATH: &str = "/api/v1/write";
/// How long one report may take; a report is small, and the next one replaces it anyway.
const PUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// The report URL derived from a remote-write URL: the same origin with
/// [`TARGETS_PUSH_PATH`], only when the remote-write path ends in `/api/v1/write`. Any other
/// receiver (Mimir, Thanos, a proxy with its own layout) gets no report unless the user sets
/// one, since guessing a path there would post to an endpoint that means something else.
pub fn default_targets_push_url(remote_write_url: &str) -> Option<String> {
    let mut url = reqwest::Url::parse(remote_write_url).ok()?;
    let prefix = url.path().strip_suffix(REMOTE_WRITE_PATH)?.to_string();
    url.set_path(&format!("{prefix}{TARGETS_PUSH_PATH}"));
    url.set_query(None);
    url.set_fragment(None);
    Some(url.to_string())
}

/// Where and how often to report the targets.
#[derive(Clone, Debug)]
pub struct TargetsPushConfig {
    /// The server's report endpoint, e.g. `http://vigil:9090/api/v1/agent/targets`.
    pub url: String,
    /// This node's name, the key the server keeps the report under.
    pub node_name: String,
    /// Time between reports; default [`DEFAULT_TARGETS_PUSH_INTERVAL`].
    pub interval: Duration,
}

impl TargetsPushConfig {
    pub fn new(url: impl Into<String>, node_name: impl Into<String>) -> Self {
        TargetsPushConfig {
            url: url.into(),
            node_name: node_name.into(),
            interval: DEFAULT_TARGETS_PUSH_INTERVAL,
        }
    }

    /// Checks the settings and builds the pusher over the scraper's view.
    pub fn build(self, view: Arc<TargetsView>) -> Result<TargetsPusher, Error> {
        check_url("targets_push_url", &self.url)?;
        if self.interval.is_zero() {
            return Err(Error::Config {
                field: "targets_push_interval",
                reason: "must be positive".to_string(),
            });
        }
        Ok(TargetsPusher {
            client: http_client(PUSH_TIMEOUT)?,
            router: targets_router(view.clone()),
            view,
            cfg: self,
        })
    }
}

/// Reports the targets until shutdown; see the module docs.
#[derive(Debug)]
pub struct TargetsPusher {
    cfg: TargetsPushConfig,
    client: reqwest::Client,
    view: Arc<TargetsView>,
    router: axum::Router,
}

impl TargetsPusher {
    /// Reports at once (the server learns of the agent before the first scrape ends), then
    /// every interval, until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut ticker = tokio::time::interval(self.cfg.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Logged on a change of outcome only, so a server without the endpoint is one line.
        let mut last_failure: Option<String> = None;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticker.tick() => {}
            }
            let outcome = match self.report().await {
                Ok(body) => self.send(body).await,
                Err(e) => Err(e),
            };
            match outcome {
                Ok(()) => {
                    if last_failure.take().is_some() {
                        tracing::info!(url = %self.cfg.url, "target report accepted again");
                    }
                }
                Err(reason) => {
                    if last_failure.as_deref() != Some(reason.as_str()) {
                        tracing::warn!(url = %self.cfg.url, %reason, "target report failed");
                    }
                    last_failure = Some(reason);
                }
            }
        }
    }

    /// The report body: the agent's `/api/v1/targets` active list plus the fields in the
    /// module docs.
    pub async fn report(&self) -> Result<Value, String> {
        let request = Request::get("/api/v1/targets?state=active")
            .body(Body::empty())
            .map_err(|e| format!("build targets request: {e}"))?;
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .map_err(|e| format!("render targets: {e}"))?;
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .map_err(|e| format!("read targets: {e}"))?;
        let answer: Value =
            serde_json::from_slice(&bytes).map_err(|e| format!("decode targets: {e}"))?;
        let active = answer
            .pointer("/data/activeTargets")
            .cloned()
            .unwrap_or_else(|| json!([]));
        Ok(json!({
            "node": self.cfg.node_name,
            "intervalSeconds": self.cfg.interval.as_secs_f64(),
            "activeTargets": active,
            "droppedTargets": dropped(&self.view),
        }))
    }

    async fn send(&self, body: Value) -> Result<(), String> {
        let response = self
            .client
            .post(&self.cfg.url)
            .json(&body)
            .send()
            .await
            .map_err(|e| format!("{e}"))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let text = response.text().await.unwrap_or_default();
        Err(format!("server answered {status}: {}", text.trim()))
    }
}

/// The dropped targets with the pool that dropped each.
fn dropped(view: &TargetsView) -> Value {
    let mut out = Vec::new();
    for (job, pool) in view.snapshot() {
        for labels in &pool.dropped {
            let map: Map<String, Value> = labels
                .iter()
                .map(|l| (l.name.clone(), Value::String(l.value.clone())))
                .collect();
            out.push(json!({ "scrapePool": job, "discoveredLabels": map }));
        }
    }
    Value::Array(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scrape::{ScrapeFile, Scraper};
    use crate::ship::test_server::TestServer;

    #[test]
    fn the_push_url_is_derived_only_from_a_vigil_style_write_path() {
        let derived = |u: &str| default_targets_push_url(u);
        assert_eq!(
            derived("http://vigil:9090/api/v1/write").as_deref(),
            Some("http://vigil:9090/api/v1/agent/targets")
        );
        // A server behind a path prefix keeps it.
        assert_eq!(
            derived("https://h/prom/api/v1/write?x=1").as_deref(),
            Some("https://h/prom/api/v1/agent/targets")
        );
        // Mimir's receiver and anything else get no report.
        assert_eq!(derived("http://mimir/api/v1/push"), None);
        assert_eq!(derived("http://h/api/v1/writer"), None);
        assert_eq!(derived("not a url"), None);
    }

    fn scraper(yaml: &str) -> Scraper {
        let file = ScrapeFile::parse(yaml).unwrap();
        Scraper::new(&file, "node-1").unwrap()
    }

    #[tokio::test]
    async fn the_report_carries_the_agents_targets_and_dropped_ones_with_their_pool() {
        let s = scraper(
            "scrape_configs:\n  - job_name: web\n    static_configs:\n      - targets: ['127.0.0.1:1', 'drop.me:80']\n    relabel_configs:\n      - source_labels: [__address__]\n        regex: drop.*\n        action: drop\n",
        );
        let pusher = TargetsPushConfig::new("http://127.0.0.1:9/x", "node-1")
            .build(s.targets())
            .unwrap();
        // The view fills once the scraper has synced its pools.
        let (tx, _rx) = tokio::sync::mpsc::channel(8);
        let stop = CancellationToken::new();
        let running = tokio::spawn(s.run(stop.clone(), tx));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let body = loop {
            let body = pusher.report().await.unwrap();
            if body["activeTargets"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
            {
                break body;
            }
            assert!(tokio::time::Instant::now() < deadline, "no targets: {body}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        stop.cancel();
        running.await.unwrap();
        assert_eq!(body["node"], "node-1");
        assert_eq!(body["intervalSeconds"], 10.0);
        let active = body["activeTargets"].as_array().unwrap();
        assert_eq!(active.len(), 1, "{body}");
        assert_eq!(active[0]["scrapePool"], "web");
        assert_eq!(active[0]["scrapeUrl"], "http://127.0.0.1:1/metrics");
        assert!(["unknown", "down"].contains(&active[0]["health"].as_str().unwrap()));
        let dropped = body["droppedTargets"].as_array().unwrap();
        assert_eq!(dropped.len(), 1, "{body}");
        assert_eq!(dropped[0]["scrapePool"], "web");
        assert_eq!(dropped[0]["discoveredLabels"]["__address__"], "drop.me:80");
    }

    #[tokio::test]
    async fn the_pusher_posts_at_once_and_again_after_a_rejection() {
        let server = TestServer::start(&[404]).await;
        let s = scraper("scrape_configs: []\n");
        let pusher = TargetsPushConfig {
            interval: Duration::from_millis(50),
            ..TargetsPushConfig::new(&server.url, "node-7")
        }
        .build(s.targets())
        .unwrap();
        let stop = CancellationToken::new();
        let task = tokio::spawn(pusher.run(stop.clone()));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while server.requests().len() < 2 {
            assert!(tokio::time::Instant::now() < deadline, "no second push");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.cancel();
        task.await.unwrap();
        let first = &server.requests()[0];
        assert_eq!(first.headers["content-type"], "application/json");
        let body: Value = serde_json::from_slice(&first.body).unwrap();
        assert_eq!(body["node"], "node-7");
        assert_eq!(body["activeTargets"], json!([]));
    }

    #[test]
    fn a_bad_url_or_interval_fails_at_build() {
        let view = scraper("scrape_configs: []\n").targets();
        assert!(TargetsPushConfig::new("ftp://x", "n")
            .build(view.clone())
            .is_err());
        let zero = TargetsPushConfig {
            interval: Duration::ZERO,
            ..TargetsPushConfig::new("http://x/y", "n")
        };
        assert!(zero.build(view).is_err());
    }
}
