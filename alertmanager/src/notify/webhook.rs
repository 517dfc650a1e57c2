//! The generic webhook integration: Alertmanager 0.25's payload version 4, byte for byte
//! (Go's JSON encoding, `max_alerts` truncation with `truncatedAlerts`), posted with the
//! configured HTTP client settings.

use super::data::Data;
use super::http::{check_response, read_secret_file, HttpClient};
use super::{FlushContext, NotifyAlert, NotifyError};
use crate::config::{HttpConfig, WebhookConfig};
use crate::goformat::to_json_go;
use serde::Serialize;

/// What Alertmanager sends: the template data plus version, group key and truncation count.
#[derive(Serialize)]
pub(crate) struct Message<'a> {
    #[serde(flatten)]
    pub data: Data,
    pub version: &'static str,
    #[serde(rename = "groupKey")]
    pub group_key: &'a str,
    #[serde(rename = "truncatedAlerts")]
    pub truncated_alerts: u64,
}

/// Builds the body for `alerts` (sorted, resolved ones already filtered if unwanted).
pub(crate) fn build_body(
    ctx: &FlushContext,
    alerts: &[NotifyAlert],
    max_alerts: u64,
) -> Result<Vec<u8>, serde_json::Error> {
    let keep = if max_alerts > 0 {
        alerts.len().min(max_alerts as usize)
    } else {
        alerts.len()
    };
    let message = Message {
        data: Data::new(
            &ctx.receiver,
            &ctx.group_labels,
            &alerts[..keep],
            &ctx.external_url,
        ),
        version: "4",
        group_key: &ctx.group_key,
        truncated_alerts: (alerts.len() - keep) as u64,
    };
    to_json_go(&message)
}

/// One `webhook_configs` entry, ready to send.
#[derive(Debug)]
pub(crate) struct WebhookNotifier {
    config: WebhookConfig,
    client: HttpClient,
}

impl WebhookNotifier {
    /// `global_http` is `global.http_config`, which the entry's own `http_config` replaces.
    pub fn new(config: WebhookConfig, global_http: Option<&HttpConfig>) -> WebhookNotifier {
        let client = HttpClient::new(
            config.http_config.as_ref(),
            global_http,
            config.timeout.map(|t| t.0),
        );
        WebhookNotifier { config, client }
    }

    pub fn send_resolved(&self) -> bool {
        self.config.send_resolved()
    }

    /// Posts one notification. Network errors, 5xx and 429 answers are retryable; anything
    /// else that is not 2xx is not (see [`check_response`]).
    pub async fn notify(
        &self,
        ctx: &FlushContext,
        alerts: &[NotifyAlert],
    ) -> Result<(), NotifyError> {
        let url = match (&self.config.url, &self.config.url_file) {
            (Some(url), _) => url.clone(),
            (None, Some(file)) => read_secret_file(file).await?,
            (None, None) => return Err(NotifyError::permanent("no url configured".into())),
        };
        let body = build_body(ctx, alerts, self.config.max_alerts)
            .map_err(|e| NotifyError::permanent(format!("encoding webhook message: {e}")))?;
        let response = self.client.post_json(&url, body).await?;
        check_response(response).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::fingerprint;
    use chrono::{TimeZone, Utc};
    use model::Labels;

    fn alert(
        pod: &str,
        service: &str,
        severity: &str,
        starts: chrono::DateTime<Utc>,
    ) -> NotifyAlert {
        let labels = Labels::from_pairs([
            ("alertname", "KubePodCrashLooping"),
            ("namespace", "shop"),
            ("pod", pod),
            ("service", service),
            ("severity", severity),
        ]);
        let restarts = if pod.starts_with("cart") { 2 } else { 5 };
        NotifyAlert {
            fingerprint: fingerprint(&labels),
            labels,
            annotations: Labels::from_pairs([
                (
                    "description",
                    format!("Pod shop/{pod} restarted {restarts} times in 10m"),
                ),
                (
                    "runbook_url",
                    "https://runbooks.example/KubePodCrashLooping".to_string(),
                ),
                ("summary", format!("Pod shop/{pod} is crash looping")),
            ]),
            starts_at: starts,
            ends_at: None,
            generator_url: if pod.starts_with("cart") {
                "http://127.0.0.1:19090/graph?g0.expr=up&g0.tab=1".to_string()
            } else {
                "http://127.0.0.1:19090/graph?g0.expr=rate%28kube_pod_container_status_restarts_total%5B5m%5D%29+%3E+0&g0.tab=1".to_string()
            },
        }
    }

    fn ctx() -> FlushContext {
        FlushContext {
            receiver: "webhook".into(),
            group_key: "{}/{severity=~\".+\"}:{alertname=\"KubePodCrashLooping\"}".into(),
            group_labels: Labels::from_pairs([("alertname", "KubePodCrashLooping")]),
            external_url: "http://127.0.0.1:19093".into(),
            repeat_interval: std::time::Duration::from_secs(3600),
        }
    }

    /// The same two alerts Alertmanager 0.25 sent in `raw-run/003_webhook.raw`: the bytes match.
    #[test]
    fn firing_body_is_byte_identical_to_the_capture() {
        let alerts = vec![
            alert(
                "cart-5c6b",
                "cart",
                "warning",
                Utc.timestamp_opt(1_795_803_961, 0).unwrap(),
            ),
            alert(
                "checkout-7d9f",
                "checkout",
                "critical",
                Utc.timestamp_opt(1_795_804_100, 906_887_698).unwrap(),
            ),
        ];
        let body = build_body(&ctx(), &alerts, 0).unwrap();
        let want = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/reference/alertmanager-captures/raw-run/003_webhook.raw"
        ))
        .unwrap();
        assert_eq!(
            String::from_utf8(body).unwrap().trim_end(),
            String::from_utf8(want).unwrap().trim_end()
        );
    }

    #[test]
    fn max_alerts_truncates_and_computes_common_labels_from_the_rest() {
        let alerts = vec![
            alert(
                "cart-5c6b",
                "cart",
                "warning",
                Utc.timestamp_opt(1_795_803_961, 0).unwrap(),
            ),
            alert(
                "checkout-7d9f",
                "checkout",
                "critical",
                Utc.timestamp_opt(1_795_803_961, 0).unwrap(),
            ),
        ];
        let body = build_body(&ctx(), &alerts, 1).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["truncatedAlerts"], 1);
        assert_eq!(v["alerts"].as_array().unwrap().len(), 1);
        assert_eq!(v["commonLabels"]["pod"], "cart-5c6b");
        assert_eq!(
            v["groupLabels"],
            serde_json::json!({"alertname": "KubePodCrashLooping"})
        );
    }
}
