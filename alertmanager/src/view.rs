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
/// It is shown as Alertmanager 0.25 shows its own (what `amtool config show` prints): the
/// global defaults filled in, unset fields left out, `templates` always present.
pub fn redacted_config_yaml(config: &AlertmanagerConfig) -> String {
    let mut value = match serde_yaml::to_value(config) {
        Ok(v) => v,
        Err(error) => return format!("# config could not be rendered: {error}\n"),
    };
    redact(&mut value);
    fill_defaults(&mut value);
    drop_unset(&mut value);
    serde_yaml::to_string(&value).unwrap_or_default()
}

/// Alertmanager 0.25's `DefaultGlobalConfig`, for the global fields a file leaves unset.
const GLOBAL_DEFAULTS: &[(&str, &str)] = &[
    ("resolve_timeout", "5m"),
    (
        "http_config",
        "{follow_redirects: true, enable_http2: true}",
    ),
    ("smtp_hello", "localhost"),
    ("smtp_require_tls", "true"),
    ("pagerduty_url", "https://events.pagerduty.com/v2/enqueue"),
    ("opsgenie_api_url", "https://api.opsgenie.com/"),
    ("wechat_api_url", "https://qyapi.weixin.qq.com/cgi-bin/"),
    (
        "victorops_api_url",
        "https://alert.victorops.com/integrations/generic/20131114/alert/",
    ),
    ("telegram_api_url", "https://api.telegram.org"),
    ("webex_api_url", "https://webexapis.com/v1/messages"),
];

fn fill_defaults(v: &mut serde_yaml::Value) {
    let serde_yaml::Value::Mapping(root) = v else {
        return;
    };
    let global = root
        .entry("global".into())
        .or_insert_with(|| serde_yaml::Value::Mapping(Default::default()));
    if global.is_null() {
        *global = serde_yaml::Value::Mapping(Default::default());
    }
    if let serde_yaml::Value::Mapping(global) = global {
        for (key, default) in GLOBAL_DEFAULTS {
            let slot = global
                .entry((*key).into())
                .or_insert(serde_yaml::Value::Null);
            if slot.is_null() {
                // The defaults are literals above; one that did not parse stays unset.
                *slot = serde_yaml::from_str(default).unwrap_or_default();
            }
        }
    }
    let templates = root
        .entry("templates".into())
        .or_insert(serde_yaml::Value::Null);
    if templates.is_null() {
        *templates = serde_yaml::Value::Sequence(Vec::new());
    }
}

/// Removes unset (null) fields, as Go's `omitempty` leaves them out.
fn drop_unset(v: &mut serde_yaml::Value) {
    match v {
        serde_yaml::Value::Mapping(m) => {
            m.retain(|_, val| !val.is_null());
            for (_, val) in m.iter_mut() {
                drop_unset(val);
            }
        }
        serde_yaml::Value::Sequence(s) => s.iter_mut().for_each(drop_unset),
        _ => {}
    }
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

    #[test]
    fn the_config_is_shown_with_alertmanagers_defaults_and_without_unset_fields() {
        let yaml = "route:\n  receiver: team\n  group_by: [alertname]\nreceivers:\n- name: team\n";
        let shown = redacted_config_yaml(&AlertmanagerConfig::parse(yaml).unwrap());
        // What `amtool config show` printed for this file against a real Alertmanager 0.25.
        let want = "global:\n  resolve_timeout: 5m\n  http_config:\n    follow_redirects: true\n    enable_http2: true\n  smtp_hello: localhost\n  smtp_require_tls: true\n  pagerduty_url: https://events.pagerduty.com/v2/enqueue\n  opsgenie_api_url: https://api.opsgenie.com/\n  wechat_api_url: https://qyapi.weixin.qq.com/cgi-bin/\n  victorops_api_url: https://alert.victorops.com/integrations/generic/20131114/alert/\n  telegram_api_url: https://api.telegram.org\n  webex_api_url: https://webexapis.com/v1/messages\nroute:\n  receiver: team\n  group_by:\n  - alertname\n  continue: false\nreceivers:\n- name: team\ntemplates: []\n";
        assert_eq!(shown, want);
    }
}
