//! Receivers and their integrations as Alertmanager 0.25 writes them: `webhook_configs`,
//! `slack_configs`, and the HTTP client settings both share.

use crate::duration::PromDuration;
use serde::{Deserialize, Serialize};

/// `webhook_config.send_resolved` default.
pub const DEFAULT_WEBHOOK_SEND_RESOLVED: bool = true;
/// `slack_config.send_resolved` default.
pub const DEFAULT_SLACK_SEND_RESOLVED: bool = false;

/// A named receiver and its integrations.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiverConfig {
    pub name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub webhook_configs: Vec<WebhookConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slack_configs: Vec<SlackConfig>,
    // Integrations Alertmanager has and Vigil does not: refused with a clear error at load
    // rather than as an "unknown field".
    #[serde(default, skip_serializing)]
    pub(crate) email_configs: Option<serde_yaml::Value>,
    #[serde(default, skip_serializing)]
    pub(crate) pagerduty_configs: Option<serde_yaml::Value>,
    #[serde(default, skip_serializing)]
    pub(crate) opsgenie_configs: Option<serde_yaml::Value>,
    #[serde(default, skip_serializing)]
    pub(crate) pushover_configs: Option<serde_yaml::Value>,
    #[serde(default, skip_serializing)]
    pub(crate) sns_configs: Option<serde_yaml::Value>,
    #[serde(default, skip_serializing)]
    pub(crate) victorops_configs: Option<serde_yaml::Value>,
    #[serde(default, skip_serializing)]
    pub(crate) wechat_configs: Option<serde_yaml::Value>,
    #[serde(default, skip_serializing)]
    pub(crate) telegram_configs: Option<serde_yaml::Value>,
    #[serde(default, skip_serializing)]
    pub(crate) webex_configs: Option<serde_yaml::Value>,
    #[serde(default, skip_serializing)]
    pub(crate) discord_configs: Option<serde_yaml::Value>,
    #[serde(default, skip_serializing)]
    pub(crate) msteams_configs: Option<serde_yaml::Value>,
}

impl ReceiverConfig {
    /// The first integration list present that Vigil cannot run, by its YAML key.
    pub(crate) fn first_unsupported(&self) -> Option<&'static str> {
        [
            ("email_configs", &self.email_configs),
            ("pagerduty_configs", &self.pagerduty_configs),
            ("opsgenie_configs", &self.opsgenie_configs),
            ("pushover_configs", &self.pushover_configs),
            ("sns_configs", &self.sns_configs),
            ("victorops_configs", &self.victorops_configs),
            ("wechat_configs", &self.wechat_configs),
            ("telegram_configs", &self.telegram_configs),
            ("webex_configs", &self.webex_configs),
            ("discord_configs", &self.discord_configs),
            ("msteams_configs", &self.msteams_configs),
        ]
        .into_iter()
        .find(|(_, v)| v.is_some())
        .map(|(k, _)| k)
    }
}

/// A generic webhook (payload version 4).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Whether resolved alerts are notified; default [`DEFAULT_WEBHOOK_SEND_RESOLVED`].
    pub send_resolved: Option<bool>,
    pub url: Option<String>,
    /// A file holding the URL, read at every send so it can be rotated.
    pub url_file: Option<String>,
    pub http_config: Option<HttpConfig>,
    /// Most alerts per message; the rest are counted in `truncatedAlerts`. 0 = no limit.
    #[serde(default)]
    pub max_alerts: u64,
    /// Per-request timeout (Alertmanager HEAD); default: bounded by the group interval only.
    pub timeout: Option<PromDuration>,
}

impl WebhookConfig {
    pub fn send_resolved(&self) -> bool {
        self.send_resolved.unwrap_or(DEFAULT_WEBHOOK_SEND_RESOLVED)
    }
}

/// prometheus/common's `HTTPClientConfig`. Basic auth, authorization, bearer tokens and
/// `follow_redirects` are applied; the rest is accepted and reported as not applied.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    pub basic_auth: Option<BasicAuth>,
    pub authorization: Option<Authorization>,
    pub bearer_token: Option<String>,
    pub bearer_token_file: Option<String>,
    pub follow_redirects: Option<bool>,
    pub enable_http2: Option<bool>,
    pub proxy_url: Option<String>,
    pub no_proxy: Option<String>,
    pub proxy_from_environment: Option<bool>,
    pub proxy_connect_header: Option<serde_yaml::Value>,
    pub tls_config: Option<serde_yaml::Value>,
    pub oauth2: Option<serde_yaml::Value>,
}

impl HttpConfig {
    /// The settings present that this slice does not apply, by YAML key.
    pub fn unapplied(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.proxy_url.is_some()
            || self.no_proxy.is_some()
            || self.proxy_from_environment.is_some()
        {
            out.push("http_config.proxy_*");
        }
        if self.proxy_connect_header.is_some() {
            out.push("http_config.proxy_connect_header");
        }
        if self.tls_config.is_some() {
            out.push("http_config.tls_config");
        }
        if self.oauth2.is_some() {
            out.push("http_config.oauth2");
        }
        out
    }
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    pub username: String,
    pub password: Option<String>,
    pub password_file: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Authorization {
    /// The scheme; default `Bearer`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub credentials: Option<String>,
    pub credentials_file: Option<String>,
}

/// A Slack incoming-webhook integration (Alertmanager 0.25 fields). Every string is a
/// notification template; an unset one takes Alertmanager's default (`slack.default.*`).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// Default [`DEFAULT_SLACK_SEND_RESOLVED`].
    pub send_resolved: Option<bool>,
    pub api_url: Option<String>,
    pub api_url_file: Option<String>,
    pub http_config: Option<HttpConfig>,
    pub channel: Option<String>,
    pub username: Option<String>,
    pub color: Option<String>,
    pub title: Option<String>,
    pub title_link: Option<String>,
    pub pretext: Option<String>,
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<SlackField>,
    pub short_fields: Option<bool>,
    pub footer: Option<String>,
    pub fallback: Option<String>,
    pub callback_id: Option<String>,
    pub icon_emoji: Option<String>,
    pub icon_url: Option<String>,
    pub image_url: Option<String>,
    pub thumb_url: Option<String>,
    pub link_names: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mrkdwn_in: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<SlackAction>,
}

impl SlackConfig {
    pub fn send_resolved(&self) -> bool {
        self.send_resolved.unwrap_or(DEFAULT_SLACK_SEND_RESOLVED)
    }

    /// Alertmanager's checks, with its messages: a URL from somewhere, complete fields and
    /// actions.
    pub(crate) fn validate(&self, global: &super::GlobalConfig) -> Result<(), String> {
        if self.api_url.is_some() && self.api_url_file.is_some() {
            return Err("at most one of api_url & api_url_file must be configured".into());
        }
        if self.api_url.is_none()
            && self.api_url_file.is_none()
            && global.slack_api_url.is_none()
            && global.slack_api_url_file.is_none()
        {
            return Err("no global Slack API URL set either inline or in a file".into());
        }
        if let Some(url) = self.api_url.as_ref().or(global.slack_api_url.as_ref()) {
            // The URL holds the webhook's secret, so it is not quoted.
            reqwest::Url::parse(url).map_err(|e| format!("invalid Slack API URL: {e}"))?;
        }
        for f in &self.fields {
            if f.title.is_empty() {
                return Err("missing title in Slack field configuration".into());
            }
            if f.value.is_empty() {
                return Err("missing value in Slack field configuration".into());
            }
        }
        for a in &self.actions {
            if a.kind.is_empty() {
                return Err("missing type in Slack action configuration".into());
            }
            if a.text.is_empty() {
                return Err("missing text in Slack action configuration".into());
            }
            if a.url.as_deref().unwrap_or("").is_empty()
                && a.name.as_deref().unwrap_or("").is_empty()
            {
                return Err("missing name or url in Slack action configuration".into());
            }
            if a.confirm.as_ref().is_some_and(|c| c.text.is_empty()) {
                return Err("missing text in Slack confirmation configuration".into());
            }
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SlackField {
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub value: String,
    /// Default: the config's `short_fields`.
    pub short: Option<bool>,
}

/// A message button. With a `url` it is a link button (`name`, `value` and `confirm` are
/// ignored, as in Alertmanager); otherwise `name` makes it an interactive action.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SlackAction {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub text: String,
    pub url: Option<String>,
    pub style: Option<String>,
    pub name: Option<String>,
    pub value: Option<String>,
    pub confirm: Option<SlackConfirm>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfirm {
    #[serde(default)]
    pub text: String,
    pub title: Option<String>,
    pub ok_text: Option<String>,
    pub dismiss_text: Option<String>,
}
