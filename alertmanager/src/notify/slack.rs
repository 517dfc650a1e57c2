//! The Slack integration (incoming webhooks): every `slack_configs` string rendered with the
//! notification templates, the one-attachment body Alertmanager 0.25 sends (its field order,
//! omissions and Go JSON escaping, so the bytes match), posted to `api_url` / `api_url_file`
//! or the global Slack URL.

use super::data::Data;
use super::http::{check_response, read_secret_file, HttpClient};
use super::tmpl::{data_value, NotificationTemplates};
use super::{FlushContext, NotifyAlert, NotifyError};
use crate::config::{GlobalConfig, SlackConfig};
use crate::goformat::to_json_go;
use serde::Serialize;
use std::sync::Arc;

/// Slack's limit on an attachment title; Alertmanager truncates to it (`maxTitleLenRunes`).
pub(crate) const MAX_TITLE_RUNES: usize = 1024;
/// Slack truncates message text above this many characters; truncating ourselves keeps the
/// visible marker at the cut (Alertmanager sends the text whole).
pub(crate) const MAX_TEXT_RUNES: usize = 40_000;
/// What replaces the cut-off end of a truncated string (Alertmanager's marker).
const TRUNCATION_MARKER: &str = "…";

/// Defaults of an unset `slack_config` string (Alertmanager 0.25's `DefaultSlackConfig`).
const DEFAULT_COLOR: &str = r#"{{ if eq .Status "firing" }}danger{{ else }}good{{ end }}"#;
const DEFAULT_USERNAME: &str = r#"{{ template "slack.default.username" . }}"#;
const DEFAULT_TITLE: &str = r#"{{ template "slack.default.title" . }}"#;
const DEFAULT_TITLE_LINK: &str = r#"{{ template "slack.default.titlelink" . }}"#;
const DEFAULT_ICON_EMOJI: &str = r#"{{ template "slack.default.iconemoji" . }}"#;
const DEFAULT_ICON_URL: &str = r#"{{ template "slack.default.iconurl" . }}"#;
const DEFAULT_PRETEXT: &str = r#"{{ template "slack.default.pretext" . }}"#;
const DEFAULT_TEXT: &str = r#"{{ template "slack.default.text" . }}"#;
const DEFAULT_FALLBACK: &str = r#"{{ template "slack.default.fallback" . }}"#;
const DEFAULT_CALLBACK_ID: &str = r#"{{ template "slack.default.callbackid" . }}"#;
const DEFAULT_FOOTER: &str = r#"{{ template "slack.default.footer" . }}"#;
/// `mrkdwn_in` when the config lists none.
const DEFAULT_MRKDWN_IN: [&str; 3] = ["fallback", "pretext", "text"];

/// The request body (`notify/slack` `request`): everything but `attachments` omitted when empty.
#[derive(Serialize, Debug)]
struct Request {
    #[serde(skip_serializing_if = "String::is_empty")]
    channel: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    username: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    icon_emoji: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    icon_url: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    link_names: bool,
    attachments: Vec<Attachment>,
}

/// One attachment: `text`, `fallback`, `callback_id` and `footer` are always sent.
#[derive(Serialize, Debug)]
struct Attachment {
    #[serde(skip_serializing_if = "String::is_empty")]
    title: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    title_link: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pretext: String,
    text: String,
    fallback: String,
    callback_id: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    fields: Vec<Field>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    actions: Vec<Action>,
    #[serde(skip_serializing_if = "String::is_empty")]
    image_url: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    thumb_url: String,
    footer: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    color: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    mrkdwn_in: Vec<String>,
}

#[derive(Serialize, Debug)]
struct Field {
    #[serde(skip_serializing_if = "String::is_empty")]
    title: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    value: String,
    short: bool,
}

#[derive(Serialize, Debug)]
struct Action {
    #[serde(rename = "type", skip_serializing_if = "String::is_empty")]
    kind: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    text: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    url: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    style: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    value: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    confirm: Option<Confirm>,
}

#[derive(Serialize, Debug)]
struct Confirm {
    #[serde(skip_serializing_if = "String::is_empty")]
    text: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    title: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    ok_text: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    dismiss_text: String,
}

/// Where the webhook URL comes from; a file is read at every send so it can be rotated.
#[derive(Debug, Clone)]
enum ApiUrl {
    Inline(String),
    File(String),
}

/// One `slack_configs` entry, ready to send.
#[derive(Debug)]
pub(crate) struct SlackNotifier {
    config: SlackConfig,
    api_url: Option<ApiUrl>,
    templates: Arc<NotificationTemplates>,
    client: HttpClient,
}

impl SlackNotifier {
    /// `global` supplies `slack_api_url(_file)` and `http_config` where the entry has none.
    pub fn new(
        config: SlackConfig,
        global: &GlobalConfig,
        templates: Arc<NotificationTemplates>,
    ) -> SlackNotifier {
        let api_url = match (&config.api_url, &config.api_url_file) {
            (Some(u), _) => Some(ApiUrl::Inline(u.clone())),
            (None, Some(f)) => Some(ApiUrl::File(f.clone())),
            (None, None) => match (&global.slack_api_url, &global.slack_api_url_file) {
                (Some(u), _) => Some(ApiUrl::Inline(u.clone())),
                (None, Some(f)) => Some(ApiUrl::File(f.clone())),
                // Refused by config validation; reported at send time if built by hand.
                (None, None) => None,
            },
        };
        let client = HttpClient::new(
            config.http_config.as_ref(),
            global.http_config.as_ref(),
            None,
        );
        SlackNotifier {
            config,
            api_url,
            templates,
            client,
        }
    }

    pub fn send_resolved(&self) -> bool {
        self.config.send_resolved()
    }

    /// Renders and posts one message. A template error is permanent; transport errors, 5xx
    /// and 429 are retryable. A 2xx JSON answer with `"ok": false` (Slack's Web API form) is
    /// a permanent error too.
    pub async fn notify(
        &self,
        ctx: &FlushContext,
        alerts: &[NotifyAlert],
    ) -> Result<(), NotifyError> {
        let (channel, body) = self
            .build_body(ctx, alerts)
            .map_err(|e| NotifyError::permanent(format!("rendering the slack message: {e}")))?;
        let url = match &self.api_url {
            Some(ApiUrl::Inline(u)) => u.clone(),
            Some(ApiUrl::File(f)) => read_secret_file(f).await?,
            None => return Err(NotifyError::permanent("no Slack API URL configured".into())),
        };
        let in_channel = |e: NotifyError| NotifyError {
            message: format!("channel {channel:?}: {}", e.message),
            ..e
        };
        let response = self
            .client
            .post_json(&url, body)
            .await
            .map_err(in_channel)?;
        let is_json = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if !response.status().is_success() || !is_json {
            return check_response(response).await.map_err(in_channel);
        }
        let answer = response.bytes().await.unwrap_or_default();
        match serde_json::from_slice::<serde_json::Value>(&answer) {
            Ok(v) if v.get("ok").and_then(serde_json::Value::as_bool) == Some(false) => {
                let error = v.get("error").and_then(|e| e.as_str()).unwrap_or_default();
                Err(in_channel(NotifyError::permanent(format!(
                    "error response from Slack: {error}"
                ))))
            }
            _ => Ok(()),
        }
    }

    /// The rendered channel (for error messages) and the JSON body.
    fn build_body(
        &self,
        ctx: &FlushContext,
        alerts: &[NotifyAlert],
    ) -> Result<(String, Vec<u8>), String> {
        let data = Data::new(&ctx.receiver, &ctx.group_labels, alerts, &ctx.external_url);
        let value = data_value(&data, alerts);
        let render = |text: &str| self.templates.render(text, &value);
        let or = |field: &Option<String>, default: &str| -> Result<String, String> {
            render(field.as_deref().unwrap_or(default))
        };
        let c = &self.config;
        let short_default = c.short_fields.unwrap_or(false);
        let fields = c
            .fields
            .iter()
            .map(|f| {
                Ok(Field {
                    title: render(&f.title)?,
                    value: render(&f.value)?,
                    short: f.short.unwrap_or(short_default),
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let actions = c
            .actions
            .iter()
            .map(|a| {
                // A link button carries no interactive parts (Alertmanager clears them).
                let link = a.url.as_deref().is_some_and(|u| !u.is_empty());
                let confirm = match a.confirm.as_ref().filter(|_| !link) {
                    Some(cf) => Some(Confirm {
                        text: render(&cf.text)?,
                        title: or(&cf.title, "")?,
                        ok_text: or(&cf.ok_text, "")?,
                        dismiss_text: or(&cf.dismiss_text, "")?,
                    }),
                    None => None,
                };
                Ok(Action {
                    kind: render(&a.kind)?,
                    text: render(&a.text)?,
                    url: or(&a.url, "")?,
                    style: or(&a.style, "")?,
                    name: if link {
                        String::new()
                    } else {
                        or(&a.name, "")?
                    },
                    value: if link {
                        String::new()
                    } else {
                        or(&a.value, "")?
                    },
                    confirm,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let mrkdwn_in = if c.mrkdwn_in.is_empty() {
            DEFAULT_MRKDWN_IN.iter().map(|s| s.to_string()).collect()
        } else {
            c.mrkdwn_in.clone()
        };
        let title = or(&c.title, DEFAULT_TITLE)?;
        let (title, cut) = truncate_runes(title, MAX_TITLE_RUNES);
        if cut {
            tracing::warn!(group_key = %ctx.group_key, max_runes = MAX_TITLE_RUNES, "truncated slack title");
        }
        let (text, cut) = truncate_runes(or(&c.text, DEFAULT_TEXT)?, MAX_TEXT_RUNES);
        if cut {
            tracing::warn!(group_key = %ctx.group_key, max_runes = MAX_TEXT_RUNES, "truncated slack text");
        }
        let attachment = Attachment {
            title,
            title_link: or(&c.title_link, DEFAULT_TITLE_LINK)?,
            pretext: or(&c.pretext, DEFAULT_PRETEXT)?,
            text,
            fallback: or(&c.fallback, DEFAULT_FALLBACK)?,
            callback_id: or(&c.callback_id, DEFAULT_CALLBACK_ID)?,
            fields,
            actions,
            image_url: or(&c.image_url, "")?,
            thumb_url: or(&c.thumb_url, "")?,
            footer: or(&c.footer, DEFAULT_FOOTER)?,
            color: or(&c.color, DEFAULT_COLOR)?,
            mrkdwn_in,
        };
        let request = Request {
            channel: or(&c.channel, "")?,
            username: or(&c.username, DEFAULT_USERNAME)?,
            icon_emoji: or(&c.icon_emoji, DEFAULT_ICON_EMOJI)?,
            icon_url: or(&c.icon_url, DEFAULT_ICON_URL)?,
            link_names: c.link_names.unwrap_or(false),
            attachments: vec![attachment],
        };
        let body = to_json_go(&request).map_err(|e| e.to_string())?;
        Ok((request.channel, body))
    }
}

/// Cuts `s` to `max` characters, the last one being the marker; true when it was cut.
fn truncate_runes(s: String, max: usize) -> (String, bool) {
    if s.chars().count() <= max {
        return (s, false);
    }
    let kept: String = s.chars().take(max.saturating_sub(1)).collect();
    (kept + TRUNCATION_MARKER, true)
}

#[cfg(test)]
#[path = "slack_tests.rs"]
mod tests;
