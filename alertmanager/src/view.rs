//! What the Alertmanager API v2 shows about alerts (`GET /api/v2/alerts`): each stored alert
//! that has not ended, with the receivers its routes lead to and its processing state, plus the
//! config with its secrets hidden (`GET /api/v2/status`).

use crate::config::AlertmanagerConfig;
use chrono::{DateTime, Utc};
use model::Labels;

/// An alert's processing state, API v2's `alertStatus.state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlertViewState {
    /// Received but not yet routed.
    Unprocessed,
    Active,
    /// Silenced or inhibited.
    Suppressed,
}

impl AlertViewState {
    pub fn as_str(&self) -> &'static str {
        match self {
            AlertViewState::Unprocessed => "unprocessed",
            AlertViewState::Active => "active",
            AlertViewState::Suppressed => "suppressed",
        }
    }
}

/// One alert as API v2's `gettableAlert` describes it.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertView {
    pub labels: Labels,
    pub annotations: Labels,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub generator_url: String,
    pub fingerprint: u64,
    /// Receiver names of the routes the alert matches, in routing order, without repeats.
    pub receivers: Vec<String>,
    pub state: AlertViewState,
    /// Ids of the silences muting the alert.
    pub silenced_by: Vec<String>,
    /// Fingerprints (16 hex digits) of the alerts inhibiting it.
    pub inhibited_by: Vec<String>,
}

/// One aggregation group as API v2's `alertGroup` describes it: the route's receiver, the
/// group labels and the group's alerts.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertGroupView {
    pub labels: Labels,
    pub receiver: String,
    pub alerts: Vec<AlertView>,
}

/// Alertmanager's order of alerts within a group: by `job`, then `instance`, then fingerprint.
pub(crate) fn alert_order(a: &AlertView, b: &AlertView) -> std::cmp::Ordering {
    let key = |v: &AlertView| {
        (
            v.labels.get("job").map(str::to_string),
            v.labels.get("instance").map(str::to_string),
        )
    };
    let (ka, kb) = (key(a), key(b));
    // An alert with the label sorts before one without it, as Alertmanager's AlertSlice does.
    let by = |x: &Option<String>, y: &Option<String>| match (x, y) {
        (Some(x), Some(y)) => x.cmp(y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    };
    by(&ka.0, &kb.0)
        .then_with(|| by(&ka.1, &kb.1))
        .then_with(|| a.fingerprint.cmp(&b.fingerprint))
}

/// Alertmanager's order of group label sets (Prometheus's `LabelSet.Before`): smaller sets
/// first; then, over the names of both in order, a set missing a name the other has comes
/// first, else the smaller value.
pub(crate) fn label_set_order(a: &Labels, b: &Labels) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let by_len = a.len().cmp(&b.len());
    if by_len != Ordering::Equal {
        return by_len;
    }
    let mut names: Vec<&str> = a.iter().chain(b.iter()).map(|l| l.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    for name in names {
        match (a.get(name), b.get(name)) {
            (None, _) => return Ordering::Less,
            (_, None) => return Ordering::Greater,
            (Some(x), Some(y)) if x != y => return x.cmp(y),
            _ => {}
        }
    }
    Ordering::Equal
}

/// Config keys whose values Alertmanager 0.25 treats as secrets and shows as `<secret>`.
const SECRET_KEYS: &[&str] = &[
    "slack_api_url",
    "api_url",
    "smtp_auth_password",
    "smtp_auth_secret",
    "wechat_api_secret",
    "password",
    "credentials",
    "bearer_token",
    "api_key",
    "routing_key",
    "service_key",
    "api_secret",
    "token",
    "bot_token",
    "user_key",
];

/// The config as YAML with every secret written as `<secret>`, for `/api/v2/status`: never
/// the file as read, which holds the secrets.
pub fn redacted_config_yaml(config: &AlertmanagerConfig) -> String {
    let mut value = match serde_yaml::to_value(config) {
        Ok(v) => v,
        Err(error) => return format!("# config could not be rendered: {error}\n"),
    };
    redact(&mut value);
    serde_yaml::to_string(&value).unwrap_or_default()
}

fn redact(v: &mut serde_yaml::Value) {
    match v {
        serde_yaml::Value::Mapping(m) => {
            for (k, val) in m.iter_mut() {
                let secret = k.as_str().is_some_and(|k| SECRET_KEYS.contains(&k));
                if secret && !val.is_null() {
                    *val = serde_yaml::Value::String("<secret>".into());
                } else {
                    redact(val);
                }
            }
        }
        serde_yaml::Value::Sequence(s) => s.iter_mut().for_each(redact),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_reach_the_status_page() {
        let yaml = "global:\n  slack_api_url: https://hooks.slack.com/services/T/B/SECRET1\nroute:\n  receiver: s\nreceivers:\n- name: s\n  slack_configs:\n  - api_url: https://hooks.slack.com/services/T/B/SECRET2\n    channel: '#a'\n  webhook_configs:\n  - url: http://hook/\n    http_config:\n      basic_auth:\n        username: u\n        password: SECRET3\n";
        let config = AlertmanagerConfig::parse(yaml).unwrap();
        let shown = redacted_config_yaml(&config);
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(shown.contains("<secret>"), "{shown}");
        assert!(
            shown.contains("http://hook/"),
            "webhook urls are not secret in 0.25: {shown}"
        );
        assert!(shown.contains("username: u"), "{shown}");
    }
}
