//! The Alertmanager configuration file, read unchanged from Alertmanager 0.25's format: serde
//! structs refusing unknown keys, Alertmanager's defaults as named constants, and the same
//! validation `amtool check-config` runs.

mod matchers;
mod mute;
mod receiver;
mod route;
mod templates;

pub use matchers::{parse_matcher, parse_matchers};
pub use mute::{InhibitRuleConfig, TimeIntervalConfig, TimeIntervalSpec, TimeRange};
pub use receiver::{
    Authorization, BasicAuth, HttpConfig, ReceiverConfig, SlackAction, SlackConfig, SlackConfirm,
    SlackField, WebhookConfig, DEFAULT_SLACK_SEND_RESOLVED, DEFAULT_WEBHOOK_SEND_RESOLVED,
};
pub use route::{RouteConfig, DEFAULT_GROUP_INTERVAL, DEFAULT_GROUP_WAIT, DEFAULT_REPEAT_INTERVAL};
pub(crate) use templates::expand_globs;

use crate::duration::PromDuration;
use crate::Error;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `global.resolve_timeout` default: the end given to posted alerts that carry none.
pub const DEFAULT_RESOLVE_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// A parsed and validated Alertmanager config.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerConfig {
    #[serde(default)]
    pub global: GlobalConfig,
    /// The routing tree; required.
    #[serde(default)]
    pub route: Option<RouteConfig>,
    #[serde(default)]
    pub receivers: Vec<ReceiverConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inhibit_rules: Vec<InhibitRuleConfig>,
    /// Template file globs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub templates: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub time_intervals: Vec<TimeIntervalConfig>,
    /// The deprecated spelling of `time_intervals`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mute_time_intervals: Vec<TimeIntervalConfig>,
    /// The file's text as read, for `/api/v2/status`.
    #[serde(skip)]
    pub original: String,
    /// The files `templates` expanded to (relative to the config file's directory), each
    /// checked to parse when the config was loaded.
    #[serde(skip)]
    pub(crate) template_files: Vec<PathBuf>,
}

/// The `global:` section (Alertmanager 0.25 keys). Only `resolve_timeout` and `http_config`
/// matter to the webhook; the rest are defaults for integrations of later slices.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalConfig {
    /// Default [`DEFAULT_RESOLVE_TIMEOUT`].
    pub resolve_timeout: Option<PromDuration>,
    /// The HTTP client settings every integration starts from.
    pub http_config: Option<HttpConfig>,
    pub smtp_from: Option<String>,
    pub smtp_hello: Option<String>,
    pub smtp_smarthost: Option<String>,
    pub smtp_auth_username: Option<String>,
    pub smtp_auth_password: Option<String>,
    pub smtp_auth_password_file: Option<String>,
    pub smtp_auth_secret: Option<String>,
    pub smtp_auth_identity: Option<String>,
    pub smtp_require_tls: Option<bool>,
    pub slack_api_url: Option<String>,
    pub slack_api_url_file: Option<String>,
    pub pagerduty_url: Option<String>,
    pub opsgenie_api_url: Option<String>,
    pub opsgenie_api_key: Option<String>,
    pub opsgenie_api_key_file: Option<String>,
    pub wechat_api_url: Option<String>,
    pub wechat_api_secret: Option<String>,
    pub wechat_api_corp_id: Option<String>,
    pub victorops_api_url: Option<String>,
    pub victorops_api_key: Option<String>,
    pub victorops_api_key_file: Option<String>,
    pub telegram_api_url: Option<String>,
    pub webex_api_url: Option<String>,
}

impl GlobalConfig {
    pub fn resolve_timeout(&self) -> Duration {
        self.resolve_timeout
            .map_or(DEFAULT_RESOLVE_TIMEOUT, |d| d.0)
    }
}

/// Adds the line of the value a validation message quotes (`undefined receiver "nope" used in
/// route (line 2)`), which amtool leaves out. Only when the value appears on exactly one line
/// outside comments: a line that might be the wrong one is worse than none.
fn with_line(e: Error, yaml: &str) -> Error {
    let Error::InvalidConfig(message) = e else {
        return e;
    };
    let quoted = message
        .split_once('"')
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(value, _)| value)
        .filter(|v| !v.is_empty() && !v.contains('\\'));
    let Some(value) = quoted else {
        return Error::InvalidConfig(message);
    };
    let mut lines = yaml
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim_start().starts_with('#') && l.contains(value));
    match (lines.next(), lines.next()) {
        (Some((index, _)), None) => Error::InvalidConfig(format!("{message} (line {})", index + 1)),
        _ => Error::InvalidConfig(message),
    }
}

impl AlertmanagerConfig {
    /// Reads and validates a config file; `templates` globs are relative to its directory.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        Self::parse_in(&text, dir)
    }

    /// Parses and validates a config from its YAML text; `templates` globs are relative to the
    /// working directory.
    pub fn parse(yaml: &str) -> Result<Self, Error> {
        Self::parse_in(yaml, Path::new("."))
    }

    fn parse_in(yaml: &str, dir: &Path) -> Result<Self, Error> {
        let mut config: AlertmanagerConfig =
            serde_yaml::from_str(yaml).map_err(Error::ConfigYaml)?;
        config.original = yaml.to_string();
        config.validate().map_err(|e| with_line(e, yaml))?;
        config.template_files =
            templates::expand_globs(dir, &config.templates).map_err(Error::InvalidConfig)?;
        // Parsed now so a broken template refuses the config, as Alertmanager does.
        config.notification_templates()?;
        Ok(config)
    }

    /// The default notification templates plus the config's template files.
    pub(crate) fn notification_templates(
        &self,
    ) -> Result<crate::notify::NotificationTemplates, Error> {
        let files: Vec<&Path> = self.template_files.iter().map(PathBuf::as_path).collect();
        crate::notify::NotificationTemplates::load(&files).map_err(Error::InvalidConfig)
    }

    /// The named time intervals of both spellings, compiled; the error is Alertmanager's
    /// message for the first bad field or unknown `location`.
    pub(crate) fn time_interval_set(&self) -> Result<crate::timeinterval::TimeIntervals, Error> {
        crate::timeinterval::TimeIntervals::compile(&self.mute_time_intervals, &self.time_intervals)
            .map_err(Error::InvalidConfig)
    }

    /// The root route; `parse` guarantees there is one.
    pub fn root_route(&self) -> Option<&RouteConfig> {
        self.route.as_ref()
    }

    /// The receiver called `name`.
    pub fn receiver(&self, name: &str) -> Option<&ReceiverConfig> {
        self.receivers.iter().find(|r| r.name == name)
    }

    /// The sections this slice accepts but does not act on yet, by YAML key.
    pub fn unapplied_sections(&self) -> Vec<String> {
        let mut out = Vec::new();
        let http_configs = self
            .global
            .http_config
            .iter()
            .chain(self.receivers.iter().flat_map(|r| {
                r.webhook_configs
                    .iter()
                    .filter_map(|w| w.http_config.as_ref())
                    .chain(
                        r.slack_configs
                            .iter()
                            .filter_map(|s| s.http_config.as_ref()),
                    )
            }));
        for h in http_configs {
            for key in h.unapplied() {
                if !out.iter().any(|o| o == key) {
                    out.push(key.to_string());
                }
            }
        }
        out
    }

    fn validate(&self) -> Result<(), Error> {
        let invalid = |m: String| Error::InvalidConfig(m);
        let mut names = HashSet::new();
        for r in &self.receivers {
            if r.name.is_empty() {
                return Err(invalid("missing name in receiver".into()));
            }
            if !names.insert(r.name.as_str()) {
                return Err(invalid(format!(
                    "notification config name {:?} is not unique",
                    r.name
                )));
            }
            if let Some(key) = r.first_unsupported() {
                return Err(Error::Unsupported {
                    what: format!("{key} (receiver {:?})", r.name),
                });
            }
            for w in &r.webhook_configs {
                if w.url.is_some() == w.url_file.is_some() {
                    return Err(invalid(format!(
                        "receiver {:?}: one of url or url_file must be configured",
                        r.name
                    )));
                }
                if let Some(url) = &w.url {
                    reqwest::Url::parse(url).map_err(|e| {
                        invalid(format!(
                            "receiver {:?}: invalid webhook url {url:?}: {e}",
                            r.name
                        ))
                    })?;
                }
            }
            for s in &r.slack_configs {
                s.validate(&self.global)
                    .map_err(|e| invalid(format!("receiver {:?}: {e}", r.name)))?;
            }
        }
        for rule in &self.inhibit_rules {
            for m in rule.source_matchers.iter().chain(&rule.target_matchers) {
                parse_matchers(m).map_err(|e| invalid(format!("inhibit rule: {e}")))?;
            }
            for re in rule
                .source_match_re
                .values()
                .chain(rule.target_match_re.values())
            {
                model::Matcher::new(model::MatchOp::Regex, "x", re)
                    .map_err(|e| invalid(format!("inhibit rule: {e}")))?;
            }
        }

        let root = self
            .route
            .as_ref()
            .ok_or_else(|| invalid("no routes provided".into()))?;
        if root.receiver.as_deref().unwrap_or("").is_empty() {
            return Err(invalid("root route must specify a default receiver".into()));
        }
        if !root.match_eq.is_empty() || !root.match_re.is_empty() || !root.matchers.is_empty() {
            return Err(invalid("root route must not have any matchers".into()));
        }
        if root.continue_matching {
            return Err(invalid("cannot have continue in root route".into()));
        }
        if !root.mute_time_intervals.is_empty() {
            return Err(invalid(
                "root route must not have any mute time intervals".into(),
            ));
        }
        if !root.active_time_intervals.is_empty() {
            return Err(invalid(
                "root route must not have any active time intervals".into(),
            ));
        }
        for route in root.walk() {
            validate_route(route, &names).map_err(invalid)?;
        }
        // Alertmanager's order: names unique (the deprecated spelling first), then every route
        // names only defined intervals. The fields were checked while decoding in Go; here
        // compiling them is the check.
        let mut intervals = HashSet::new();
        for (list, what) in [
            (&self.mute_time_intervals, "mute time interval"),
            (&self.time_intervals, "time interval"),
        ] {
            for ti in list {
                if ti.name.is_empty() {
                    return Err(invalid(format!("missing name in {what}")));
                }
                if !intervals.insert(ti.name.as_str()) {
                    return Err(invalid(format!("{what} {:?} is not unique", ti.name)));
                }
            }
        }
        self.time_interval_set()?;
        for route in root.walk() {
            for name in route
                .active_time_intervals
                .iter()
                .chain(&route.mute_time_intervals)
            {
                if !intervals.contains(name.as_str()) {
                    return Err(invalid(format!(
                        "undefined time interval {name:?} used in route"
                    )));
                }
            }
        }
        Ok(())
    }
}

fn validate_route(route: &RouteConfig, receivers: &HashSet<&str>) -> Result<(), String> {
    if let Some(name) = &route.receiver {
        if !receivers.contains(name.as_str()) {
            return Err(format!("undefined receiver {name:?} used in route"));
        }
    }
    if let Some(group_by) = &route.group_by {
        let mut seen = HashSet::new();
        for label in group_by {
            if label == "..." && group_by.len() > 1 {
                return Err(
                    "cannot have wildcard group_by (`...`) and other other labels at the same time"
                        .into(),
                );
            }
            if label != "..." && !is_label_name(label) {
                return Err(format!("invalid label name {label:?} in group_by list"));
            }
            if !seen.insert(label) {
                return Err(format!("duplicated label {label:?} in group_by"));
            }
        }
    }
    for (what, d) in [
        ("group_interval", route.group_interval),
        ("repeat_interval", route.repeat_interval),
    ] {
        if d.is_some_and(|d| d.0.is_zero()) {
            return Err(format!("{what} cannot be zero"));
        }
    }
    for m in &route.matchers {
        parse_matchers(m)?;
    }
    for (name, re) in &route.match_re {
        model::Matcher::new(model::MatchOp::Regex, name, re).map_err(|e| e.to_string())?;
    }
    for name in route.match_eq.keys().chain(route.match_re.keys()) {
        if !is_label_name(name) {
            return Err(format!("invalid label name {name:?}"));
        }
    }
    Ok(())
}

fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAPTURE_CONFIG: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/reference/alertmanager-captures/inputs/alertmanager.yml"
    );

    #[test]
    fn a_validation_error_names_the_line_of_the_value_it_quotes_when_unambiguous() {
        let err = |yaml: &str| AlertmanagerConfig::parse(yaml).unwrap_err().to_string();
        assert_eq!(
            err("route:\n  receiver: nope\nreceivers:\n- name: a\n"),
            r#"alertmanager config: undefined receiver "nope" used in route (line 2)"#
        );
        assert_eq!(
            err("route:\n  receiver: a\n  routes:\n  - matchers: ['foo=~(']\n    receiver: a\nreceivers:\n- name: a\n"),
            r#"alertmanager config: invalid regular expression "(": unclosed group (line 4)"#
        );
        // "a" is on several lines: no line rather than a guess.
        assert_eq!(
            err("route:\n  receiver: a\nreceivers:\n- name: a\n- name: a\n"),
            r#"alertmanager config: notification config name "a" is not unique"#
        );
    }

    #[test]
    fn loads_the_captured_alertmanager_config() {
        let c = AlertmanagerConfig::load(Path::new(CAPTURE_CONFIG)).unwrap();
        assert_eq!(c.global.resolve_timeout(), Duration::from_secs(300));
        let root = c.root_route().unwrap();
        assert_eq!(root.receiver.as_deref(), Some("webhook"));
        assert_eq!(
            root.group_by.as_deref(),
            Some(&["alertname".to_string()][..])
        );
        assert_eq!(root.group_wait, Some(PromDuration(Duration::from_secs(1))));
        assert_eq!(root.routes.len(), 3);
        assert!(root.routes[1].continue_matching);
        let webhook = c.receiver("webhook").unwrap();
        assert_eq!(webhook.webhook_configs.len(), 2);
        assert_eq!(webhook.webhook_configs[1].max_alerts, 1);
        assert!(webhook.webhook_configs[0].send_resolved());
        assert!(!c.receiver("errors").unwrap().webhook_configs[0].send_resolved());
        assert_eq!(
            c.receiver("slack").unwrap().slack_configs[1].fields.len(),
            2
        );
        assert_eq!(c.inhibit_rules[0].equal, vec!["service"]);
        assert!(c.unapplied_sections().is_empty());
    }

    fn parse_err(yaml: &str) -> String {
        AlertmanagerConfig::parse(yaml).unwrap_err().to_string()
    }

    #[test]
    fn refuses_what_alertmanager_refuses() {
        let ok_receivers = "receivers:\n- name: r\n  webhook_configs:\n  - url: http://x/\n";
        let cases = [
            (format!("route:\n  receiver: r\n  group_wiat: 1s\n{ok_receivers}"), "unknown field `group_wiat`"),
            (format!("route:\n  receiver: nope\n{ok_receivers}"), "undefined receiver \"nope\" used in route"),
            (
                format!("route:\n  receiver: r\n  routes:\n  - receiver: nope\n{ok_receivers}"),
                "undefined receiver \"nope\"",
            ),
            (ok_receivers.to_string(), "no routes provided"),
            (format!("route:\n  group_by: [a]\n{ok_receivers}"), "root route must specify a default receiver"),
            (format!("route:\n  receiver: r\n  matchers: ['a=b']\n{ok_receivers}"), "must not have any matchers"),
            (format!("route:\n  receiver: r\n  group_by: ['...', a]\n{ok_receivers}"), "wildcard group_by"),
            (format!("route:\n  receiver: r\n  group_wait: 5x\n{ok_receivers}"), "not a valid duration"),
            (
                format!("route:\n  receiver: r\n  routes:\n  - matchers: ['a=\"b']\n{ok_receivers}"),
                "unescaped double quote",
            ),
            (
                "route:\n  receiver: r\nreceivers:\n- name: r\n  webhook_configs:\n  - send_resolved: true\n".to_string(),
                "one of url or url_file",
            ),
            (
                "route:\n  receiver: r\nreceivers:\n- name: r\n- name: r\n".to_string(),
                "is not unique",
            ),
            (
                "route:\n  receiver: r\nreceivers:\n- name: r\n  email_configs:\n  - to: a@b\n".to_string(),
                "email_configs (receiver \"r\") is not supported",
            ),
        ];
        for (yaml, want) in cases {
            let err = parse_err(&yaml);
            assert!(err.contains(want), "{err:?} should contain {want:?}");
        }
    }

    /// `amtool check-config` 0.25's verdicts on time intervals.
    #[test]
    fn time_intervals_are_validated_as_alertmanager_does() {
        let base = "route:\n  receiver: r\n  routes:\n  - matchers: ['a=\"b\"']\n    mute_time_intervals: [m]\n    active_time_intervals: [a]\nreceivers:\n- name: r\n";
        let good = format!(
            "{base}time_intervals:\n- name: a\n  time_intervals:\n  - times: [{{start_time: '09:00', end_time: '24:00'}}]\n    weekdays: ['Monday:friday']\n    days_of_month: ['1:10', '-3:-1', 15]\n    months: ['january:3', 'may']\n    years: [2024, '2025:2030']\n    location: Local\nmute_time_intervals:\n- name: m\n  time_intervals: [{{weekdays: [saturday, sunday]}}]\n"
        );
        let c = AlertmanagerConfig::parse(&good).unwrap_or_else(|e| panic!("{e}"));
        assert!(c.unapplied_sections().is_empty());
        let one = |spec: &str| {
            format!("{base}time_intervals:\n- name: a\n  time_intervals:\n  - {spec}\n- name: m\n")
        };
        let cases = [
            (one("weekdays: ['friday:monday']"), "start day cannot be before end day"),
            (one("months: ['13']"), ""),
            (one("days_of_month: ['-1:5']"), "end day must be negative if start day is negative"),
            (one("times: [{start_time: '9:00', end_time: '10:00'}]"), "couldn't parse timestamp 9:00, invalid format"),
            (one("location: Mars/Olympus_Mons"), "unknown time zone Mars/Olympus_Mons"),
            (one("hours: ['1']"), "unknown field `hours`"),
            (
                base.replace("[a]", "[nope]") + "time_intervals:\n- name: a\n- name: m\n",
                "undefined time interval \"nope\" used in route",
            ),
            (
                base.to_string() + "time_intervals:\n- name: a\n- name: m\nmute_time_intervals:\n- name: a\n",
                "time interval \"a\" is not unique",
            ),
            (
                base.to_string() + "mute_time_intervals:\n- name: a\n- name: a\n",
                "mute time interval \"a\" is not unique",
            ),
            (base.to_string() + "time_intervals:\n- time_intervals: []\n", "missing name in time interval"),
            (
                "route:\n  receiver: r\n  mute_time_intervals: [m]\nreceivers:\n- name: r\ntime_intervals:\n- name: m\n".to_string(),
                "root route must not have any mute time intervals",
            ),
        ];
        for (yaml, want) in cases {
            if want.is_empty() {
                // 0.25 checks no month range beyond begin <= end: accepted.
                AlertmanagerConfig::parse(&yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"));
                continue;
            }
            let err = parse_err(&yaml);
            assert!(err.contains(want), "{err:?} should contain {want:?}");
        }
    }
}
