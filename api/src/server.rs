//! The router that joins every API, the request-metrics middleware, health endpoints, and the
//! serve loop with graceful shutdown.

use crate::state::AppState;
use crate::{loki, prom};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// Every route the server answers.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .merge(prom::routes(&state))
        .merge(loki::routes(&state))
        .merge(crate::ui::routes())
        .merge(crate::alerting::routes(&state))
        .route("/-/healthy", get(healthy).head(healthy))
        .route("/-/ready", get(ready).head(ready))
        .route("/-/reload", post(reload).put(reload))
        .route("/metrics", get(metrics))
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .with_state(state)
}

/// Serves `app` on `listener` until `shutdown` is cancelled, then finishes requests in flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

/// Counts each request by its matched route (never the raw path, which is unbounded).
async fn track(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let began = Instant::now();
    let resp = next.run(req).await;
    st.metrics.observe_http(
        &route,
        resp.status().as_u16(),
        began.elapsed().as_secs_f64(),
    );
    resp
}

async fn healthy() -> &'static str {
    "Vigil is Healthy.\n"
}

/// Prometheus's lifecycle endpoint: 200 once the new configuration and rules are in service,
/// 500 with the reason when they were refused (the old ones keep running), 403 when the
/// server was not started with `--web.enable-lifecycle`.
async fn reload(State(st): State<Arc<AppState>>) -> Response {
    let Some(reload) = st.reload.clone() else {
        return (StatusCode::FORBIDDEN, "Lifecycle API is not enabled.").into_response();
    };
    match reload().await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed to reload config: {e}"),
        )
            .into_response(),
    }
}

async fn ready(State(st): State<Arc<AppState>>) -> Response {
    if st.ready.load(Ordering::Acquire) {
        "Vigil is Ready.\n".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable\n").into_response()
    }
}

async fn metrics(State(st): State<Arc<AppState>>) -> Response {
    let gauges: Vec<_> = st.gauges.iter().flat_map(|g| g()).collect();
    let mut body = st.metrics.render(&gauges);
    body.extend(st.text_metrics.iter().map(|f| f()));
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}
