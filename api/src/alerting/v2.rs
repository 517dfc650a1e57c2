//! Alertmanager API v2 over the in-process Alertmanager: `GET`/`POST /api/v2/alerts`,
//! `GET /api/v2/alerts/groups`, `GET /api/v2/receivers` and `GET /api/v2/status` (silences are
//! in `silences.rs`), in Alertmanager 0.25's JSON (field order of go-swagger's models,
//! `strfmt.DateTime` times, errors as a JSON string with status 400).

use super::gofmt::{openapi_time, LabelMap};
use crate::params::Params;
use crate::state::AppState;
use alertmanager::{
    fingerprint_hex, parse_matcher, redacted_config_yaml, AlertView, AlertViewState, Alertmanager,
    PostableAlert,
};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use model::{MatchOp, Matcher};
use serde::Serialize;
use std::sync::Arc;

/// What the v2 endpoints answer when the server runs without `--alertmanager.config.file`.
const NO_ALERTMANAGER: &str = "no Alertmanager is configured on this server: start vigil server \
with --alertmanager.config.file to use the Alertmanager API v2\n";

/// Why an API v2 request was refused.
#[derive(Debug, thiserror::Error)]
pub(super) enum V2Error {
    #[error("{NO_ALERTMANAGER}")]
    NotConfigured,
    /// A bad parameter or refused alerts: go-swagger's 400 with a string payload.
    #[error("{0}")]
    BadRequest(String),
    /// A body that is not a list of alerts: go-swagger's `{code, message}` parse error.
    #[error("parsing alerts body from \"\" failed, because {0}")]
    BadBody(String),
    /// A body that is not a silence, the same parse error for `POST /api/v2/silences`.
    #[error("parsing silence body from \"\" failed, because {0}")]
    BadSilenceBody(String),
    /// A request breaking the OpenAPI spec (a missing field, a path id that is no UUID):
    /// go-openapi's 422 with its numeric validation code.
    #[error("{message}")]
    Unprocessable { code: u16, message: String },
    /// No such object: 404 with an empty body, as go-swagger answers.
    #[error("not found")]
    NotFound,
    /// 404 with a reason (`POST /api/v2/silences` naming an unknown id).
    #[error("{0}")]
    NotFoundReason(String),
    /// A failure the server answers 500 for, with the reason as a JSON string.
    #[error("{0}")]
    Internal(String),
}

impl IntoResponse for V2Error {
    fn into_response(self) -> Response {
        match &self {
            V2Error::NotConfigured => (
                StatusCode::NOT_FOUND,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                self.to_string(),
            )
                .into_response(),
            V2Error::BadRequest(message) => json(StatusCode::BAD_REQUEST, message),
            V2Error::BadBody(_) | V2Error::BadSilenceBody(_) => json(
                StatusCode::BAD_REQUEST,
                &ParseError {
                    code: 400,
                    message: self.to_string(),
                },
            ),
            V2Error::Unprocessable { code, message } => json(
                StatusCode::UNPROCESSABLE_ENTITY,
                &ParseError {
                    code: *code,
                    message: message.clone(),
                },
            ),
            V2Error::NotFound => StatusCode::NOT_FOUND.into_response(),
            V2Error::NotFoundReason(message) => json(StatusCode::NOT_FOUND, message),
            V2Error::Internal(message) => json(StatusCode::INTERNAL_SERVER_ERROR, message),
        }
    }
}

/// The Alertmanager, or the 404 that says there is none.
pub(super) fn alertmanager(st: &AppState) -> Result<&Arc<Alertmanager>, V2Error> {
    st.alertmanager.as_ref().ok_or(V2Error::NotConfigured)
}

pub(super) fn json(status: StatusCode, body: &impl Serialize) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (status, [(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encode response: {e}"),
        )
            .into_response(),
    }
}

/// `GET /api/v2/alerts` query parameters after validation.
struct AlertFilter {
    active: bool,
    silenced: bool,
    inhibited: bool,
    unprocessed: bool,
    matchers: Vec<Matcher>,
    receiver: Option<Matcher>,
}

impl AlertFilter {
    fn parse(params: &Params) -> Result<Self, V2Error> {
        let flag = |name: &str| -> Result<bool, V2Error> {
            match params.get(name) {
                None => Ok(true),
                Some(v) => parse_swagger_bool(v).ok_or_else(|| {
                    V2Error::BadRequest(format!("{name} in query must be of type boolean: {v:?}"))
                }),
            }
        };
        let matchers = params
            .all("filter")
            .into_iter()
            .map(parse_matcher)
            .collect::<Result<Vec<_>, _>>()
            .map_err(V2Error::BadRequest)?;
        // Alertmanager anchors the receiver regex: `^(?:<receiver>)$`, as `Matcher::new` does.
        let receiver = params
            .get("receiver")
            .map(|r| Matcher::new(MatchOp::Regex, "receiver", r))
            .transpose()
            .map_err(|e| V2Error::BadRequest(format!("failed to parse receiver param: {e}")))?;
        Ok(AlertFilter {
            active: flag("active")?,
            silenced: flag("silenced")?,
            inhibited: flag("inhibited")?,
            unprocessed: flag("unprocessed")?,
            matchers,
            receiver,
        })
    }

    fn keeps(&self, a: &AlertView) -> bool {
        self.keeps_ignoring_receiver(a)
            && self
                .receiver
                .as_ref()
                .is_none_or(|r| a.receivers.iter().any(|name| r.matches(name)))
    }

    /// The state, silence, inhibition and label filters, without the receiver one.
    fn keeps_ignoring_receiver(&self, a: &AlertView) -> bool {
        let state_ok = match a.state {
            AlertViewState::Active => self.active,
            AlertViewState::Unprocessed => self.unprocessed,
            AlertViewState::Suppressed => true,
        };
        state_ok
            && (self.silenced || a.silenced_by.is_empty())
            && (self.inhibited || a.inhibited_by.is_empty())
            && self.matchers.iter().all(|m| m.matches_labels(&a.labels))
    }
}

/// go-openapi's `swag.ConvertBool`: the words it takes for true and false.
fn parse_swagger_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "ok" | "y" | "on" | "selected" | "checked" | "t" | "enabled" => {
            Some(true)
        }
        "false" | "0" | "no" | "n" | "off" | "f" | "disabled" | "" => Some(false),
        _ => None,
    }
}

/// API v2's `gettableAlert`, fields in go-swagger's order.
#[derive(Serialize)]
struct GettableAlert<'a> {
    annotations: LabelMap<'a>,
    #[serde(rename = "endsAt")]
    ends_at: String,
    fingerprint: String,
    receivers: Vec<Receiver<'a>>,
    #[serde(rename = "startsAt")]
    starts_at: String,
    status: AlertStatus<'a>,
    #[serde(rename = "updatedAt")]
    updated_at: String,
    #[serde(rename = "generatorURL", skip_serializing_if = "str::is_empty")]
    generator_url: &'a str,
    labels: LabelMap<'a>,
}

#[derive(Serialize)]
struct AlertStatus<'a> {
    #[serde(rename = "inhibitedBy")]
    inhibited_by: &'a [String],
    #[serde(rename = "silencedBy")]
    silenced_by: &'a [String],
    state: &'static str,
}

#[derive(Serialize)]
struct Receiver<'a> {
    name: &'a str,
}

fn gettable(a: &AlertView) -> GettableAlert<'_> {
    GettableAlert {
        annotations: LabelMap(&a.annotations),
        ends_at: openapi_time(&a.ends_at),
        fingerprint: fingerprint_hex(a.fingerprint),
        receivers: a.receivers.iter().map(|name| Receiver { name }).collect(),
        starts_at: openapi_time(&a.starts_at),
        status: AlertStatus {
            inhibited_by: &a.inhibited_by,
            silenced_by: &a.silenced_by,
            state: a.state.as_str(),
        },
        updated_at: openapi_time(&a.updated_at),
        generator_url: &a.generator_url,
        labels: LabelMap(&a.labels),
    }
}

pub async fn get_alerts(
    State(st): State<Arc<AppState>>,
    params: Params,
) -> Result<Response, V2Error> {
    let am = alertmanager(&st)?;
    let filter = AlertFilter::parse(&params)?;
    let mut views: Vec<AlertView> = am
        .alerts()
        .into_iter()
        .filter(|a| filter.keeps(a))
        .collect();
    // Alertmanager sorts by the fingerprint's hex string, which is numeric order.
    views.sort_by_key(|a| a.fingerprint);
    let body: Vec<GettableAlert> = views.iter().map(gettable).collect();
    Ok(json(StatusCode::OK, &body))
}

/// API v2's `alertGroup`, fields in go-swagger's order.
#[derive(Serialize)]
struct AlertGroup<'a> {
    alerts: Vec<GettableAlert<'a>>,
    labels: LabelMap<'a>,
    receiver: Receiver<'a>,
}

/// `GET /api/v2/alerts/groups`: the alerts in the aggregation groups the router puts them in.
/// The alert filters apply to each alert; `receiver` applies to the group's route, and a group
/// left without alerts is not shown, as in Alertmanager 0.25.
pub async fn get_alert_groups(
    State(st): State<Arc<AppState>>,
    params: Params,
) -> Result<Response, V2Error> {
    let am = alertmanager(&st)?;
    let filter = AlertFilter::parse(&params)?;
    let groups = am.alert_groups(
        |a| filter.keeps_ignoring_receiver(a),
        |name| filter.receiver.as_ref().is_none_or(|r| r.matches(name)),
    );
    let body: Vec<AlertGroup> = groups
        .iter()
        .map(|g| AlertGroup {
            alerts: g.alerts.iter().map(gettable).collect(),
            labels: LabelMap(&g.labels),
            receiver: Receiver { name: &g.receiver },
        })
        .collect();
    Ok(json(StatusCode::OK, &body))
}

/// go-swagger's answer to a body it cannot decode.
#[derive(Serialize)]
struct ParseError {
    code: u16,
    message: String,
}

/// Stores every valid alert and answers 200 with an empty body, or 400 with the reasons the
/// invalid ones were refused (the valid ones are stored all the same, as Alertmanager does).
pub async fn post_alerts(
    State(st): State<Arc<AppState>>,
    body: Bytes,
) -> Result<Response, V2Error> {
    let am = alertmanager(&st)?;
    let alerts: Vec<PostableAlert> =
        serde_json::from_slice(&body).map_err(|e| V2Error::BadBody(e.to_string()))?;
    let refused = am.put_alerts(alerts);
    if refused.is_empty() {
        Ok(StatusCode::OK.into_response())
    } else {
        Err(V2Error::BadRequest(refused.join("; ")))
    }
}

pub async fn receivers(State(st): State<Arc<AppState>>) -> Result<Response, V2Error> {
    let names = alertmanager(&st)?.receiver_names();
    let body: Vec<Receiver> = names.iter().map(|name| Receiver { name }).collect();
    Ok(json(StatusCode::OK, &body))
}

#[derive(Serialize)]
struct Status {
    cluster: Cluster,
    config: ConfigOriginal,
    uptime: String,
    #[serde(rename = "versionInfo")]
    version_info: VersionInfo,
}

/// Vigil's Alertmanager is not clustered: `status` is `disabled` and `name` is absent, as
/// Alertmanager answers with `--cluster.listen-address=`.
#[derive(Serialize)]
struct Cluster {
    peers: [(); 0],
    status: &'static str,
}

#[derive(Serialize)]
struct ConfigOriginal {
    original: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct VersionInfo {
    branch: &'static str,
    build_date: &'static str,
    build_user: &'static str,
    go_version: &'static str,
    revision: &'static str,
    version: &'static str,
}

pub async fn status(State(st): State<Arc<AppState>>) -> Result<Response, V2Error> {
    let am = alertmanager(&st)?;
    Ok(json(
        StatusCode::OK,
        &Status {
            cluster: Cluster {
                peers: [],
                status: "disabled",
            },
            config: ConfigOriginal {
                original: redacted_config_yaml(&am.config()),
            },
            uptime: openapi_time(&am.started_at()),
            version_info: VersionInfo {
                branch: option_env!("VIGIL_GIT_BRANCH").unwrap_or("unknown"),
                build_date: "",
                build_user: "",
                go_version: "",
                revision: option_env!("VIGIL_GIT_REVISION").unwrap_or("unknown"),
                version: env!("CARGO_PKG_VERSION"),
            },
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use model::Labels;

    fn view(state: AlertViewState, silenced: bool, receivers: &[&str]) -> AlertView {
        let now = Utc::now();
        AlertView {
            labels: Labels::from_pairs([("alertname", "A"), ("severity", "page")]),
            annotations: Labels::empty(),
            starts_at: now,
            ends_at: now,
            updated_at: now,
            generator_url: String::new(),
            fingerprint: 1,
            receivers: receivers.iter().map(|r| r.to_string()).collect(),
            state,
            silenced_by: if silenced { vec!["s1".into()] } else { vec![] },
            inhibited_by: vec![],
        }
    }

    fn filter(query: &str) -> AlertFilter {
        AlertFilter::parse(&Params::from_query(query)).unwrap_or_else(|_| panic!("{query}"))
    }

    #[test]
    fn filters_apply_as_alertmanager_applies_them() {
        let active = view(AlertViewState::Active, false, &["slack", "webhook"]);
        let silenced = view(AlertViewState::Suppressed, true, &["slack"]);
        assert!(filter("").keeps(&active) && filter("").keeps(&silenced));
        assert!(!filter("active=false").keeps(&active));
        assert!(!filter("silenced=false").keeps(&silenced));
        assert!(filter("silenced=false").keeps(&active));
        assert!(filter("filter=severity%3D%22page%22").keeps(&active));
        assert!(!filter("filter=severity%3D%22info%22").keeps(&active));
        assert!(filter("receiver=web.*").keeps(&active));
        assert!(
            !filter("receiver=web").keeps(&active),
            "the receiver regex is anchored"
        );
        assert!(!filter("receiver=web.*").keeps(&silenced));
    }

    #[test]
    fn bad_filters_are_refused() {
        assert!(AlertFilter::parse(&Params::from_query("filter=%7B%7D%3D")).is_err());
        assert!(AlertFilter::parse(&Params::from_query("receiver=(")).is_err());
        assert!(AlertFilter::parse(&Params::from_query("active=maybe")).is_err());
    }
}
