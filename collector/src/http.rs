//! The agent's HTTP endpoint (`--web.listen-address` of `vigil agent`): `/-/healthy` (and
//! `/healthz`, the Kubernetes convention) for the liveness probe, `/-/ready` for the readiness
//! probe, and `/metrics` with the agent's own metrics (`selfmetrics.rs`) for whoever scrapes it.
//!
//! The paths and answers are Prometheus's, so probes and dashboards written for a Prometheus
//! agent work unchanged. The listener is bound by `run_agent` before the sources start, so a
//! port in use fails the start instead of leaving an agent nobody can probe.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio_util::sync::CancellationToken;

use crate::selfmetrics::AgentMetrics;

/// The `Content-Type` of `/metrics`: text format 0.0.4.
const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What the handlers read.
#[derive(Debug)]
pub(crate) struct WebState {
    pub metrics: AgentMetrics,
    /// Set once every source has started, cleared when shutdown begins.
    pub ready: AtomicBool,
}

/// Every route the agent answers.
pub(crate) fn router(state: Arc<WebState>) -> Router {
    Router::new()
        .route("/-/healthy", get(healthy).head(healthy))
        .route("/healthz", get(healthy).head(healthy))
        .route("/-/ready", get(ready).head(ready))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// Serves `app` (`router` plus other components' routes) on `listener` until `shutdown`
/// fires, then finishes requests in flight.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: CancellationToken,
) {
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await;
    if let Err(error) = served {
        tracing::error!(%error, "agent http endpoint failed");
    }
}

async fn healthy() -> &'static str {
    "Vigil Agent is Healthy.\n"
}

async fn ready(State(st): State<Arc<WebState>>) -> Response {
    if st.ready.load(Ordering::Acquire) {
        "Vigil Agent is Ready.\n".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable\n").into_response()
    }
}

async fn metrics(State(st): State<Arc<WebState>>) -> Response {
    (
        [(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
        st.metrics.render(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    async fn start(ready: bool) -> (String, Arc<WebState>, CancellationToken) {
        let state = Arc::new(WebState {
            metrics: AgentMetrics {
                remote_write: Arc::default(),
                loki: Arc::default(),
                node: Arc::default(),
                tail: Arc::default(),
                scrape: Arc::default(),
            },
            ready: AtomicBool::new(ready),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        tokio::spawn(serve(listener, router(state.clone()), shutdown.clone()));
        (base, state, shutdown)
    }

    #[tokio::test]
    async fn probes_answer_and_ready_follows_the_flag() {
        let (base, state, shutdown) = start(false).await;
        let client = reqwest::Client::new();
        let get = |path: &str| client.get(format!("{base}{path}")).send();
        assert_eq!(get("/-/healthy").await.unwrap().status(), 200);
        assert_eq!(get("/healthz").await.unwrap().status(), 200);
        assert_eq!(get("/-/ready").await.unwrap().status(), 503);
        state.ready.store(true, Ordering::Release);
        assert_eq!(get("/-/ready").await.unwrap().status(), 200);
        assert_eq!(get("/nope").await.unwrap().status(), 404);
        shutdown.cancel();
    }

    #[tokio::test]
    async fn metrics_are_served_as_text_format() {
        let (base, state, shutdown) = start(true).await;
        state
            .metrics
            .remote_write
            .sent_items
            .store(9, Ordering::Relaxed);
        let resp = reqwest::get(format!("{base}/metrics")).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], METRICS_CONTENT_TYPE);
        let body = resp.text().await.unwrap();
        assert!(
            body.contains("\nvigil_agent_samples_sent_total 9\n"),
            "{body}"
        );
        shutdown.cancel();
    }
}
