//! The scrape targets the agents report: `POST /api/v1/agent/targets` (a Vigil endpoint; the
//! agent's side is `collector/src/ship/targets.rs`) keeps each agent's latest report, and
//! `GET /api/v1/targets` answers all of them merged, in Prometheus's shape.
//!
//! A report is `{"node", "intervalSeconds", "activeTargets", "droppedTargets"}`, the active
//! entries as a Prometheus `/api/v1/targets` lists them. It replaces the node's previous one
//! whole. An agent that misses [`MISSED_REPORTS`] reports in a row (a deleted node, a crashed
//! agent) is forgotten, so its targets do not linger as healthy forever.
//!
//! Bounds, answered in Prometheus's error envelope: a body over [`MAX_REPORT_BYTES`] gets 413;
//! a body that is not a report gets 400 (`bad_data`) and changes nothing; a new node past
//! [`MAX_REPORTING_AGENTS`] gets 400 too, while known nodes keep reporting.

use crate::error::ApiError;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Largest report body: room for some 10,000 targets with Kubernetes label sets.
pub const MAX_REPORT_BYTES: usize = 8 << 20;
/// Most agents whose reports are kept at once: well past the largest Kubernetes clusters
/// (5,000 nodes), so the bound only stops a runaway client.
pub const MAX_REPORTING_AGENTS: usize = 10_000;
/// Reports an agent may miss before it is forgotten.
pub const MISSED_REPORTS: u32 = 3;
/// Bounds on the interval an agent announces, so a report cannot pin itself forever (or
/// vanish between two reads) by announcing an absurd one.
const MIN_REPORT_INTERVAL: Duration = Duration::from_secs(1);
const MAX_REPORT_INTERVAL: Duration = Duration::from_secs(600);
/// Longest node name: a Kubernetes node name is a DNS subdomain.
const MAX_NODE_NAME_BYTES: usize = 253;
/// The health values a Prometheus target can have.
const HEALTHS: [&str; 3] = ["up", "down", "unknown"];

type Entry = Map<String, Value>;

/// One agent's report as it arrives.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    node: String,
    interval_seconds: f64,
    active_targets: Vec<Entry>,
    #[serde(default)]
    dropped_targets: Vec<Entry>,
}

#[derive(Debug)]
struct AgentView {
    received: Instant,
    /// How long the report stays: [`MISSED_REPORTS`] announced intervals.
    keep: Duration,
    active: Vec<Entry>,
    dropped: Vec<Entry>,
}

/// What `/api/v1/targets` asks for: the `state` and `scrapePool` parameters.
#[derive(Clone, Debug, Default)]
pub struct TargetsFilter {
    pub active: bool,
    pub dropped: bool,
    /// Only this pool's targets; `None` for all.
    pub pool: Option<String>,
}

/// The merged targets: `None` for a list the filter left out (Prometheus answers `null`).
#[derive(Debug, Default, PartialEq)]
pub struct MergedTargets {
    pub active: Option<Vec<Entry>>,
    pub dropped: Option<Vec<Entry>>,
}

/// The latest report of every agent, by node name.
#[derive(Debug)]
pub struct AgentTargets {
    agents: Mutex<BTreeMap<String, AgentView>>,
    max_agents: usize,
}

impl Default for AgentTargets {
    fn default() -> Self {
        AgentTargets::new(MAX_REPORTING_AGENTS)
    }
}

impl AgentTargets {
    /// A store keeping at most `max_agents` agents' reports.
    pub fn new(max_agents: usize) -> Self {
        AgentTargets {
            agents: Mutex::default(),
            max_agents,
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, AgentView>> {
        // A panic while holding the lock leaves whole reports behind; the map stays usable.
        self.agents.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Validates a report body and keeps it as its node's latest, as of `now`.
    pub fn accept(&self, body: &[u8], now: Instant) -> Result<(), ApiError> {
        let report: Report = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_data(format!("invalid target report: {e}")))?;
        if report.node.is_empty() || report.node.len() > MAX_NODE_NAME_BYTES {
            return Err(ApiError::bad_data(format!(
                "invalid target report: node must be 1 to {MAX_NODE_NAME_BYTES} bytes"
            )));
        }
        if !report.interval_seconds.is_finite() || report.interval_seconds <= 0.0 {
            return Err(ApiError::bad_data(
                "invalid target report: intervalSeconds must be a positive number",
            ));
        }
        for (i, t) in report.active_targets.iter().enumerate() {
            check_active(t).map_err(|reason| {
                ApiError::bad_data(format!(
                    "invalid target report: activeTargets[{i}]: {reason}"
                ))
            })?;
        }
        for (i, t) in report.dropped_targets.iter().enumerate() {
            if !t.get("discoveredLabels").is_some_and(is_label_set) {
                return Err(ApiError::bad_data(format!(
                    "invalid target report: droppedTargets[{i}]: discoveredLabels must be an object of strings"
                )));
            }
        }
        let interval = Duration::from_secs_f64(report.interval_seconds)
            .clamp(MIN_REPORT_INTERVAL, MAX_REPORT_INTERVAL);
        let mut agents = self.lock();
        forget_expired(&mut agents, now);
        if !agents.contains_key(&report.node) && agents.len() >= self.max_agents {
            return Err(ApiError::bad_data(format!(
                "target reports are kept for at most {} agents; node {:?} is one too many",
                self.max_agents, report.node
            )));
        }
        agents.insert(
            report.node,
            AgentView {
                received: now,
                keep: interval * MISSED_REPORTS,
                active: report.active_targets,
                dropped: report.dropped_targets,
            },
        );
        Ok(())
    }

    /// Every live agent's targets merged, as of `now`: active ones ordered by scrape pool,
    /// then node, then as the agent listed them (Prometheus orders by pool too).
    pub fn merged(&self, filter: &TargetsFilter, now: Instant) -> MergedTargets {
        let mut agents = self.lock();
        forget_expired(&mut agents, now);
        let wanted = |t: &&Entry| {
            filter
                .pool
                .as_deref()
                .is_none_or(|p| t.get("scrapePool").and_then(Value::as_str) == Some(p))
        };
        let active = filter.active.then(|| {
            let mut all: Vec<Entry> = agents
                .values()
                .flat_map(|a| a.active.iter().filter(wanted).cloned())
                .collect();
            // Stable: within a pool the node order and each agent's own order stay.
            all.sort_by(|a, b| pool_of(a).cmp(pool_of(b)));
            all
        });
        let dropped = filter.dropped.then(|| {
            agents
                .values()
                .flat_map(|a| a.dropped.iter().filter(wanted).cloned())
                .collect()
        });
        MergedTargets { active, dropped }
    }

    /// How many agents' reports are kept (expired ones included until the next access).
    pub fn agents(&self) -> usize {
        self.lock().len()
    }
}

fn forget_expired(agents: &mut BTreeMap<String, AgentView>, now: Instant) {
    agents.retain(|_, a| now.saturating_duration_since(a.received) <= a.keep);
}

fn pool_of(t: &Entry) -> &str {
    t.get("scrapePool").and_then(Value::as_str).unwrap_or("")
}

fn is_label_set(v: &Value) -> bool {
    v.as_object()
        .is_some_and(|m| m.values().all(Value::is_string))
}

/// The fields `/api/v1/targets` and the Targets page rely on; others pass through as sent.
fn check_active(t: &Entry) -> Result<(), String> {
    if !t.get("scrapePool").is_some_and(Value::is_string) {
        return Err("scrapePool must be a string".to_string());
    }
    if !t.get("labels").is_some_and(is_label_set) {
        return Err("labels must be an object of strings".to_string());
    }
    match t.get("health").and_then(Value::as_str) {
        Some(h) if HEALTHS.contains(&h) => {}
        _ => return Err(format!("health must be one of {}", HEALTHS.join(", "))),
    }
    for field in ["lastError", "scrapeUrl", "lastScrape"] {
        if t.get(field).is_some_and(|v| !v.is_string()) {
            return Err(format!("{field} must be a string"));
        }
    }
    Ok(())
}

/// `POST /api/v1/agent/targets`: 204 once the report is kept.
pub async fn push(State(st): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    let too_large = || {
        let mut r = ApiError::bad_data(format!(
            "target report larger than {MAX_REPORT_BYTES} bytes"
        ))
        .into_response();
        *r.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
        r
    };
    // A declared length over the bound is refused before reading anything.
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_REPORT_BYTES) {
        return too_large();
    }
    let bytes = match axum::body::to_bytes(body, MAX_REPORT_BYTES).await {
        Ok(b) => b,
        Err(_) => return too_large(),
    };
    match st.agent_targets.accept(&bytes, Instant::now()) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn target(pool: &str, instance: &str, health: &str, error: &str) -> Value {
        json!({
            "discoveredLabels": {"__address__": instance},
            "labels": {"instance": instance, "job": pool},
            "scrapePool": pool,
            "scrapeUrl": format!("http://{instance}/metrics"),
            "globalUrl": format!("http://{instance}/metrics"),
            "lastError": error,
            "lastScrape": "2024-01-01T00:00:00Z",
            "lastScrapeDuration": 0.01,
            "health": health,
            "scrapeInterval": "10s",
            "scrapeTimeout": "10s",
        })
    }

    fn report(node: &str, interval: f64, active: Vec<Value>, dropped: Vec<Value>) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "node": node,
            "intervalSeconds": interval,
            "activeTargets": active,
            "droppedTargets": dropped,
        }))
        .unwrap()
    }

    fn all() -> TargetsFilter {
        TargetsFilter {
            active: true,
            dropped: true,
            pool: None,
        }
    }

    fn instances(m: &MergedTargets) -> Vec<String> {
        m.active
            .iter()
            .flatten()
            .map(|t| t["labels"]["instance"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn reports_merge_by_pool_and_a_new_report_replaces_the_nodes_old_one() {
        let store = AgentTargets::default();
        let t0 = Instant::now();
        let dropped = json!({"scrapePool": "web", "discoveredLabels": {"__address__": "x:1"}});
        store
            .accept(
                &report(
                    "b",
                    10.0,
                    vec![
                        target("web", "b:1", "up", ""),
                        target("db", "b:2", "up", ""),
                    ],
                    vec![dropped],
                ),
                t0,
            )
            .unwrap();
        store
            .accept(
                &report(
                    "a",
                    10.0,
                    vec![target("web", "a:1", "down", "refused")],
                    vec![],
                ),
                t0,
            )
            .unwrap();
        let m = store.merged(&all(), t0);
        assert_eq!(instances(&m), ["b:2", "a:1", "b:1"]);
        assert_eq!(m.dropped.as_ref().map(Vec::len), Some(1));
        // The pool filter applies to both lists; the state filter leaves a list out.
        let web = TargetsFilter {
            active: true,
            dropped: false,
            pool: Some("db".into()),
        };
        let m = store.merged(&web, t0);
        assert_eq!(instances(&m), ["b:2"]);
        assert_eq!(m.dropped, None);
        // Node b's next report drops its db target.
        store
            .accept(
                &report("b", 10.0, vec![target("web", "b:1", "up", "")], vec![]),
                t0,
            )
            .unwrap();
        assert_eq!(instances(&store.merged(&all(), t0)), ["a:1", "b:1"]);
    }

    #[test]
    fn an_agent_is_forgotten_after_three_missed_reports() {
        let store = AgentTargets::default();
        let t0 = Instant::now();
        store
            .accept(
                &report("a", 10.0, vec![target("web", "a:1", "up", "")], vec![]),
                t0,
            )
            .unwrap();
        store
            .accept(
                &report("b", 60.0, vec![target("web", "b:1", "up", "")], vec![]),
                t0,
            )
            .unwrap();
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(instances(&store.merged(&all(), at(30))), ["a:1", "b:1"]);
        assert_eq!(instances(&store.merged(&all(), at(31))), ["b:1"]);
        assert_eq!(store.agents(), 1);
        // An absurd interval is clamped, so a report cannot stay forever.
        store
            .accept(
                &report("c", 1e9, vec![target("web", "c:1", "up", "")], vec![]),
                t0,
            )
            .unwrap();
        assert_eq!(
            instances(&store.merged(&all(), at(1801))),
            Vec::<String>::new()
        );
    }

    #[test]
    fn bad_reports_are_refused_and_change_nothing() {
        let store = AgentTargets::default();
        let t0 = Instant::now();
        let bad: Vec<Vec<u8>> = vec![
            b"{not json".to_vec(),
            br#"{"node":"a","activeTargets":[]}"#.to_vec(),
            report("", 10.0, vec![], vec![]),
            report("a", 0.0, vec![], vec![]),
            report("a", 10.0, vec![target("web", "a:1", "sick", "")], vec![]),
            report("a", 10.0, vec![json!({"scrapePool": 1})], vec![]),
            report(
                "a",
                10.0,
                vec![],
                vec![json!({"discoveredLabels": {"x": 1}})],
            ),
        ];
        for body in bad {
            let e = store.accept(&body, t0).unwrap_err();
            assert_eq!(e.kind, crate::error::ErrorType::BadData, "{}", e.message);
            assert!(e.message.contains("target report"), "{}", e.message);
        }
        assert_eq!(store.agents(), 0);
    }

    #[test]
    fn new_agents_past_the_bound_are_refused_while_known_ones_keep_reporting() {
        let store = AgentTargets::new(2);
        let t0 = Instant::now();
        for node in ["a", "b"] {
            store
                .accept(&report(node, 10.0, vec![], vec![]), t0)
                .unwrap();
        }
        let e = store
            .accept(&report("c", 10.0, vec![], vec![]), t0)
            .unwrap_err();
        assert!(e.message.contains("at most 2 agents"), "{}", e.message);
        store
            .accept(&report("a", 10.0, vec![], vec![]), t0)
            .unwrap();
        // Once one expires, a new one fits.
        let later = t0 + Duration::from_secs(31);
        store
            .accept(&report("c", 10.0, vec![], vec![]), later)
            .unwrap();
        assert_eq!(store.agents(), 1);
    }
}
