//! `GET /api/v1/rules` and `GET /api/v1/alerts` in Prometheus's JSON: each group with its
//! rules' definitions, health and alerts (filtered by `type`, `rule_name[]`, `rule_group[]`,
//! `file[]`, `exclude_alerts`), and every pending or firing alert.

use super::gofmt::{format_exp, rfc3339_nano_ms, LabelMap};
use crate::error::ApiError;
use crate::params::Params;
use crate::prom::success;
use crate::state::AppState;
use alertmanager::{ActiveAlert, AlertState, GroupStatus, Rule, RuleStatus};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use model::Labels;
use serde::Serialize;
use std::collections::HashSet;
use std::sync::Arc;

/// Which rules a `/api/v1/rules` request asks for.
#[derive(Debug, Default)]
struct RuleFilter {
    alerting: bool,
    recording: bool,
    names: HashSet<String>,
    groups: HashSet<String>,
    files: HashSet<String>,
    exclude_alerts: bool,
}

impl RuleFilter {
    /// Reads the parameters as Prometheus does: `type` is `alert` or `record` in any case, the
    /// list parameters are sets (empty means no filter), `exclude_alerts` is a Go bool.
    fn parse(params: &Params) -> Result<Self, ApiError> {
        let typ = params.get("type").unwrap_or("").to_lowercase();
        if !matches!(typ.as_str(), "" | "alert" | "record") {
            return Err(ApiError::bad_param(
                "type",
                format!("not supported value {typ:?}"),
            ));
        }
        let set = |key: &str| -> HashSet<String> {
            params.all(key).into_iter().map(str::to_string).collect()
        };
        let exclude_alerts = match params.get("exclude_alerts") {
            None | Some("") => false,
            Some(v) => parse_go_bool(v).ok_or_else(|| {
                ApiError::bad_param(
                    "exclude_alerts",
                    format!("strconv.ParseBool: parsing {v:?}: invalid syntax"),
                )
            })?,
        };
        Ok(RuleFilter {
            alerting: typ != "record",
            recording: typ != "alert",
            names: set("rule_name[]"),
            groups: set("rule_group[]"),
            files: set("file[]"),
            exclude_alerts,
        })
    }

    fn wants_group(&self, g: &GroupStatus) -> bool {
        (self.groups.is_empty() || self.groups.contains(&g.name))
            && (self.files.is_empty() || self.files.contains(&g.file))
    }

    fn wants_rule(&self, r: &RuleStatus) -> bool {
        let kind = match r.rule {
            Rule::Alerting(_) => self.alerting,
            Rule::Recording(_) => self.recording,
        };
        kind && (self.names.is_empty() || self.names.contains(r.rule.name()))
    }
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

#[derive(Serialize)]
struct RuleDiscovery {
    groups: Vec<ApiGroup>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ApiGroup {
    name: String,
    file: String,
    rules: Vec<ApiRule>,
    interval: f64,
    limit: usize,
    evaluation_time: f64,
    last_evaluation: String,
}

/// Alerting and recording rules share the `rules` array, told apart by `type`.
#[derive(Serialize)]
#[serde(untagged)]
enum ApiRule {
    Alerting(AlertingRule),
    Recording(RecordingRule),
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AlertingRule {
    state: &'static str,
    name: String,
    query: String,
    duration: f64,
    keep_firing_for: f64,
    labels: OwnedLabelMap,
    annotations: OwnedLabelMap,
    /// `null` when `exclude_alerts` is set, as Prometheus's nil slice marshals.
    alerts: Option<Vec<ApiAlert>>,
    health: &'static str,
    #[serde(skip_serializing_if = "String::is_empty")]
    last_error: String,
    evaluation_time: f64,
    last_evaluation: String,
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RecordingRule {
    name: String,
    query: String,
    /// Omitted when empty, as Prometheus 2.42's slice-backed labels are.
    #[serde(skip_serializing_if = "OwnedLabelMap::is_empty")]
    labels: OwnedLabelMap,
    health: &'static str,
    #[serde(skip_serializing_if = "String::is_empty")]
    last_error: String,
    evaluation_time: f64,
    last_evaluation: String,
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ApiAlert {
    labels: OwnedLabelMap,
    annotations: OwnedLabelMap,
    state: &'static str,
    active_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    keep_firing_since: Option<String>,
    value: String,
}

/// A label set owned by the response, serialized as a JSON object.
struct OwnedLabelMap(Labels);

impl OwnedLabelMap {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn from_templates(m: &std::collections::BTreeMap<String, String>) -> Self {
        OwnedLabelMap(Labels::from_pairs(
            m.iter().map(|(k, v)| (k.clone(), v.clone())),
        ))
    }
}

impl Serialize for OwnedLabelMap {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        LabelMap(&self.0).serialize(s)
    }
}

pub async fn rules(State(st): State<Arc<AppState>>, params: Params) -> Response {
    let filter = match RuleFilter::parse(&params) {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    let statuses = st
        .rules
        .get()
        .map(|r| r.group_statuses())
        .unwrap_or_default();
    let groups = statuses
        .iter()
        .filter(|g| filter.wants_group(g))
        .filter_map(|g| {
            let rules: Vec<ApiRule> = g
                .rules
                .iter()
                .filter(|r| filter.wants_rule(r))
                .map(|r| api_rule(r, filter.exclude_alerts))
                .collect();
            // A group whose every rule was filtered out is left out, as Prometheus does.
            (!rules.is_empty()).then(|| ApiGroup {
                name: g.name.clone(),
                file: g.file.clone(),
                rules,
                interval: g.interval.as_secs_f64(),
                limit: g.limit,
                evaluation_time: g.evaluation_seconds,
                last_evaluation: rfc3339_nano_ms(g.last_evaluation_ms),
            })
        })
        .collect();
    json_success(&RuleDiscovery { groups })
}

#[derive(Serialize)]
struct AlertDiscovery {
    alerts: Vec<ApiAlert>,
}

pub async fn alerts(State(st): State<Arc<AppState>>) -> Response {
    let alerts = st
        .rules
        .get()
        .map(|r| r.active_alerts())
        .unwrap_or_default()
        .iter()
        .map(api_alert)
        .collect();
    json_success(&AlertDiscovery { alerts })
}

fn json_success(data: &impl Serialize) -> Response {
    match serde_json::to_string(data) {
        Ok(body) => success(&body, &[], &[]),
        Err(e) => ApiError::internal(format!("encode response: {e}")).into_response(),
    }
}

fn api_rule(r: &RuleStatus, exclude_alerts: bool) -> ApiRule {
    let last_error = r.last_error.clone().unwrap_or_default();
    let last_evaluation = rfc3339_nano_ms(r.last_evaluation_ms);
    match &r.rule {
        Rule::Alerting(a) => ApiRule::Alerting(AlertingRule {
            state: rule_state(&r.alerts),
            name: a.name.clone(),
            query: canonical_query(&a.expr),
            duration: a.hold.as_secs_f64(),
            keep_firing_for: a.keep_firing_for.as_secs_f64(),
            labels: OwnedLabelMap::from_templates(&a.labels),
            annotations: OwnedLabelMap::from_templates(&a.annotations),
            alerts: (!exclude_alerts).then(|| r.alerts.iter().map(api_alert).collect()),
            health: r.health.as_str(),
            last_error,
            evaluation_time: r.evaluation_seconds,
            last_evaluation,
            kind: "alerting",
        }),
        Rule::Recording(rec) => ApiRule::Recording(RecordingRule {
            name: rec.name.clone(),
            query: canonical_query(&rec.expr),
            labels: OwnedLabelMap::from_templates(&rec.labels),
            health: r.health.as_str(),
            last_error,
            evaluation_time: r.evaluation_seconds,
            last_evaluation,
            kind: "recording",
        }),
    }
}

/// The rule's state is its most advanced alert's: firing over pending over inactive.
fn rule_state(alerts: &[ActiveAlert]) -> &'static str {
    let state = alerts
        .iter()
        .map(|a| a.state)
        .fold(AlertState::Inactive, |acc, s| match (acc, s) {
            (AlertState::Firing, _) | (_, AlertState::Firing) => AlertState::Firing,
            (AlertState::Pending, _) | (_, AlertState::Pending) => AlertState::Pending,
            _ => AlertState::Inactive,
        });
    state.as_str()
}

/// Prometheus shows the parsed expression printed back (`rule.Query().String()`), not the
/// text as written; an expression that no longer parses is shown as written.
fn canonical_query(expr: &str) -> String {
    promql_parser::parser::parse(expr)
        .map(|e| e.to_string())
        .unwrap_or_else(|_| expr.to_string())
}

fn api_alert(a: &ActiveAlert) -> ApiAlert {
    ApiAlert {
        labels: OwnedLabelMap(a.labels.clone()),
        annotations: OwnedLabelMap(a.annotations.clone()),
        state: a.state.as_str(),
        active_at: rfc3339_nano_ms(Some(a.active_at_ms)),
        keep_firing_since: a.keep_firing_since_ms.map(|ms| rfc3339_nano_ms(Some(ms))),
        value: format_exp(a.value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_and_exclude_alerts_are_checked_like_prometheus() {
        let bad = RuleFilter::parse(&Params::from_query("type=alerts")).unwrap_err();
        assert_eq!(
            bad.message,
            r#"invalid parameter "type": not supported value "alerts""#
        );
        let bad = RuleFilter::parse(&Params::from_query("exclude_alerts=yes")).unwrap_err();
        assert!(
            bad.message
                .starts_with(r#"invalid parameter "exclude_alerts""#),
            "{}",
            bad.message
        );
        let f = RuleFilter::parse(&Params::from_query(
            "type=Record&exclude_alerts=1&rule_name[]=a&rule_name[]=b&file[]=f",
        ))
        .unwrap();
        assert!(f.recording && !f.alerting && f.exclude_alerts);
        assert_eq!(f.names.len(), 2);
        assert!(f.groups.is_empty());
        assert!(f.files.contains("f"));
    }

    #[test]
    fn rule_state_is_the_most_advanced_alert_state() {
        let alert = |state| ActiveAlert {
            rule: "r".into(),
            labels: Labels::empty(),
            annotations: Labels::empty(),
            state,
            active_at_ms: 0,
            fired_at_ms: None,
            value: 1.0,
            keep_firing_since_ms: None,
        };
        assert_eq!(rule_state(&[]), "inactive");
        assert_eq!(rule_state(&[alert(AlertState::Pending)]), "pending");
        assert_eq!(
            rule_state(&[alert(AlertState::Pending), alert(AlertState::Firing)]),
            "firing"
        );
    }
}
