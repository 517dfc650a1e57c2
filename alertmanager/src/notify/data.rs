//! Alertmanager's `template.Data`: what every notification is built from (the webhook sends it
//! as JSON; Slack and custom templates render it). Field order and formats are Alertmanager's.

use super::NotifyAlert;
use crate::alert::{fingerprint_hex, labels_map};
use crate::goformat::{quote_meta, rfc3339_nano, GO_ZERO_TIME};
use model::Labels;
use serde::Serialize;

/// `template.Data`, serialized with Alertmanager's JSON keys.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Data {
    pub receiver: String,
    pub status: &'static str,
    pub alerts: Vec<DataAlert>,
    #[serde(rename = "groupLabels", with = "labels_map")]
    pub group_labels: Labels,
    #[serde(rename = "commonLabels", with = "labels_map")]
    pub common_labels: Labels,
    #[serde(rename = "commonAnnotations", with = "labels_map")]
    pub common_annotations: Labels,
    #[serde(rename = "externalURL")]
    pub external_url: String,
}

/// `template.Alert`.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct DataAlert {
    pub status: &'static str,
    #[serde(with = "labels_map")]
    pub labels: Labels,
    #[serde(with = "labels_map")]
    pub annotations: Labels,
    #[serde(rename = "startsAt")]
    pub starts_at: String,
    #[serde(rename = "endsAt")]
    pub ends_at: String,
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
    pub fingerprint: String,
}

const FIRING: &str = "firing";
const RESOLVED: &str = "resolved";

impl Data {
    /// Builds the data for `alerts` (already sorted and, for the webhook, truncated: common
    /// labels are computed from exactly these alerts, as Alertmanager does).
    pub fn new(
        receiver: &str,
        group_labels: &Labels,
        alerts: &[NotifyAlert],
        external_url: &str,
    ) -> Data {
        let status = if alerts.iter().any(|a| !a.is_resolved()) {
            FIRING
        } else {
            RESOLVED
        };
        Data {
            // An Alertmanager quirk kept on purpose: the receiver name is regexp-quoted.
            receiver: quote_meta(receiver),
            status,
            alerts: alerts.iter().map(DataAlert::from).collect(),
            group_labels: group_labels.clone(),
            common_labels: common(alerts.iter().map(|a| &a.labels)),
            common_annotations: common(alerts.iter().map(|a| &a.annotations)),
            external_url: external_url.to_string(),
        }
    }
}

impl From<&NotifyAlert> for DataAlert {
    fn from(a: &NotifyAlert) -> Self {
        DataAlert {
            status: if a.is_resolved() { RESOLVED } else { FIRING },
            labels: a.labels.clone(),
            annotations: a.annotations.clone(),
            starts_at: rfc3339_nano(&a.starts_at),
            ends_at: a
                .ends_at
                .as_ref()
                .map_or_else(|| GO_ZERO_TIME.to_string(), rfc3339_nano),
            generator_url: a.generator_url.clone(),
            fingerprint: fingerprint_hex(a.fingerprint),
        }
    }
}

/// The pairs every set has with the same value.
fn common<'a>(mut sets: impl Iterator<Item = &'a Labels>) -> Labels {
    let Some(first) = sets.next() else {
        return Labels::empty();
    };
    let mut common = first.clone();
    for set in sets {
        let drop: Vec<&str> = common
            .iter()
            .filter(|l| set.get(&l.name) != Some(l.value.as_str()))
            .map(|l| l.name.as_str())
            .collect();
        common = common.without(&drop);
    }
    common
}
