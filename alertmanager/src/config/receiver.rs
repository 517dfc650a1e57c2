//! Receivers and their integrations as Alertmanager 0.25 writes them: `webhook_configs` (run),
//! `slack_configs` (accepted, run in a later slice), and the HTTP client settings both share.

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

/// A Slack incoming-webhook integration (Alertmanager 0.25 fields). Parsed and validated; sent
/// by a later slice.
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

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SlackField {
    pub title: String,
    pub value: String,
    pub short: Option<bool>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SlackAction {
    #[serde(rename = "type")]
    pub kind: String,
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
    pub text: String,
    pub title: Option<String>,
    pub ok_text: Option<String>,
    pub dismiss_text: Option<String>,
}
