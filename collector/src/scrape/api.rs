//! `GET /api/v1/targets` on the agent's endpoint, in Prometheus's shape, so tools that read a
//! Prometheus's targets (its UI, Grafana, scripts) read the agent's alike.
//!
//! `state` (`active`, `dropped`, `any`, default any) and `scrapePool` filter as in Prometheus.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use model::Labels;
use serde_json::{json, Map, Value};

use super::manager::TargetsView;
use super::scrape_loop::lock;
use super::target::format_duration;

/// What `lastScrape` shows before the first scrape: Go's zero time.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// The router of `/api/v1/targets` over `view`.
pub fn targets_router(view: Arc<TargetsView>) -> Router {
    Router::new()
        .route("/api/v1/targets", get(targets))
        .with_state(view)
}

async fn targets(
    State(view): State<Arc<TargetsView>>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let state = q.get("state").map(|s| s.to_ascii_lowercase());
    let (show_active, show_dropped) = match state.as_deref() {
        None | Some("") | Some("any") => (true, true),
        Some("active") => (true, false),
        Some("dropped") => (false, true),
        // Prometheus answers an unknown state with an empty list of both.
        Some(_) => (false, false),
    };
    let pool_filter = q.get("scrapePool").filter(|p| !p.is_empty());
    let mut active = Vec::new();
    let mut dropped = Vec::new();
    for (job, pool) in view.snapshot() {
        if pool_filter.is_some_and(|p| *p != job) {
            continue;
        }
        if show_active {
            for a in &pool.active {
                let h = lock(&a.health).clone();
                let t = &a.target;
                active.push(json!({
                    "discoveredLabels": label_map(&t.discovered),
                    "labels": label_map(&t.labels),
                    "scrapePool": job,
                    "scrapeUrl": t.url.as_str(),
                    "globalUrl": t.url.as_str(),
                    "lastError": h.last_error,
                    "lastScrape": h.last_scrape.map_or_else(
                        || ZERO_TIME.to_string(),
                        |ts| ts.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
                    ),
                    "lastScrapeDuration": h.last_duration,
                    "health": h.health,
                    "scrapeInterval": format_duration(t.interval),
                    "scrapeTimeout": format_duration(t.timeout),
                }));
            }
        }
        if show_dropped {
            dropped.extend(
                pool.dropped
                    .iter()
                    .map(|d| json!({ "discoveredLabels": label_map(d) })),
            );
        }
    }
    Json(json!({
        "status": "success",
        "data": { "activeTargets": active, "droppedTargets": dropped },
    }))
    .into_response()
}

fn label_map(labels: &Labels) -> Value {
    Value::Object(
        labels
            .iter()
            .map(|l| (l.name.clone(), Value::String(l.value.clone())))
            .collect::<Map<_, _>>(),
    )
}
