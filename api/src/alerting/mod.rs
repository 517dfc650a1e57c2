//! The alerting HTTP surface: Prometheus's `/api/v1/rules` and `/api/v1/alerts` over the
//! [`alertmanager::RuleManager`], and Alertmanager's API v2 (`/api/v2/alerts`,
//! `/api/v2/receivers`, `/api/v2/status`, `/api/v2/silences`, `/api/v2/silence/{id}`) over the
//! in-process [`alertmanager::Alertmanager`], so a real Prometheus can send its alerts to Vigil
//! and `amtool` can manage its silences.
//!
//! Without rule files the v1 endpoints answer empty lists, as a Prometheus without rules does.
//! Without an Alertmanager config the v2 endpoints answer 404 with a sentence saying why:
//! there is no Alertmanager to talk to, and pretending to accept alerts would lose them.

mod gofmt;
mod rules;
mod silences;
mod v2;

use crate::state::AppState;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::Router;
use std::sync::Arc;

/// The routes of the rules API and of Alertmanager's API v2.
pub fn routes(state: &AppState) -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v1/rules", get(rules::rules))
        .route("/api/v1/alerts", get(rules::alerts))
        .route(
            "/api/v2/alerts",
            get(v2::get_alerts)
                .post(v2::post_alerts)
                .layer(DefaultBodyLimit::max(state.limits.max_body_bytes)),
        )
        .route("/api/v2/alerts/groups", get(v2::get_alert_groups))
        .route("/api/v2/receivers", get(v2::receivers))
        .route("/api/v2/status", get(v2::status))
        .route("/api/v2/silences", get(silences::list).post(silences::post))
        .route(
            "/api/v2/silence/{id}",
            get(silences::get).delete(silences::delete),
        )
}
