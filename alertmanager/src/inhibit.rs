//! Inhibition (`inhibit_rules`): a firing alert matching a rule's source mutes the alerts
//! matching its target whose `equal` labels have the same values, as Alertmanager 0.25's
//! inhibitor does — a missing label equals a missing label, resolved sources inhibit nothing,
//! and an alert matching both sides of a rule is never muted by itself or by another alert that
//! also matches both sides (so a rule cannot make alerts mute each other).

use crate::alert::Alert;
use crate::config::{parse_matchers, InhibitRuleConfig};
use chrono::{DateTime, Utc};
use model::{Labels, MatchOp, Matcher};

/// One rule with its matchers compiled (the old `*_match`/`*_match_re` forms and `*_matchers`
/// ANDed, as Alertmanager combines them).
#[derive(Debug)]
struct InhibitRule {
    source: Vec<Matcher>,
    target: Vec<Matcher>,
    equal: Vec<String>,
}

impl InhibitRule {
    fn compile(cfg: &InhibitRuleConfig) -> Result<InhibitRule, String> {
        let side = |eq: &std::collections::BTreeMap<String, String>,
                    re: &std::collections::BTreeMap<String, String>,
                    strings: &[String]|
         -> Result<Vec<Matcher>, String> {
            let mut out = Vec::new();
            for (name, value) in eq {
                out.push(Matcher::new(MatchOp::Equal, name, value).map_err(|e| e.to_string())?);
            }
            for (name, value) in re {
                out.push(Matcher::new(MatchOp::Regex, name, value).map_err(|e| e.to_string())?);
            }
            for s in strings {
                out.extend(parse_matchers(s)?);
            }
            Ok(out)
        };
        Ok(InhibitRule {
            source: side(
                &cfg.source_match,
                &cfg.source_match_re,
                &cfg.source_matchers,
            )?,
            target: side(
                &cfg.target_match,
                &cfg.target_match_re,
                &cfg.target_matchers,
            )?,
            equal: cfg.equal.clone(),
        })
    }
}

fn all_match(matchers: &[Matcher], labels: &Labels) -> bool {
    matchers.iter().all(|m| m.matches_labels(labels))
}

/// The compiled `inhibit_rules` of a config.
#[derive(Debug, Default)]
pub(crate) struct Inhibitor {
    rules: Vec<InhibitRule>,
}

impl Inhibitor {
    /// Compiles the rules; the config validation already checked every matcher, so an error
    /// here means a config assembled by hand.
    pub fn new(rules: &[InhibitRuleConfig]) -> Result<Inhibitor, String> {
        Ok(Inhibitor {
            rules: rules
                .iter()
                .map(InhibitRule::compile)
                .collect::<Result<_, _>>()?,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The fingerprint of the first alert among `alerts` that inhibits `labels` at `now`, by
    /// the first rule whose target `labels` match; `None` when nothing mutes it.
    pub fn inhibited_by(
        &self,
        labels: &Labels,
        alerts: &[Alert],
        now: DateTime<Utc>,
    ) -> Option<u64> {
        for rule in &self.rules {
            if !all_match(&rule.target, labels) {
                continue;
            }
            let two_sided = all_match(&rule.source, labels);
            let source = alerts.iter().find(|a| {
                !a.resolved_at(now)
                    && all_match(&rule.source, &a.labels)
                    && !(two_sided && all_match(&rule.target, &a.labels))
                    && rule.equal.iter().all(|name| {
                        a.labels.get(name).unwrap_or("") == labels.get(name).unwrap_or("")
                    })
            });
            if let Some(source) = source {
                return Some(source.fingerprint);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::fingerprint;
    use chrono::TimeZone;

    fn alert(pairs: &[(&str, &str)], ends: i64) -> Alert {
        let labels = Labels::from_pairs(pairs.iter().copied());
        Alert {
            fingerprint: fingerprint(&labels),
            labels,
            annotations: Labels::empty(),
            starts_at: Utc.timestamp_opt(0, 0).unwrap(),
            ends_at: Utc.timestamp_opt(ends, 0).unwrap(),
            generator_url: String::new(),
            updated_at: Utc.timestamp_opt(0, 0).unwrap(),
            timeout: false,
        }
    }

    fn rules(yaml: &str) -> Inhibitor {
        let cfg: Vec<InhibitRuleConfig> = serde_yaml::from_str(yaml).unwrap();
        Inhibitor::new(&cfg).unwrap()
    }

    #[test]
    fn the_captured_rule_mutes_warnings_of_the_same_service() {
        // inputs/alertmanager.yml; api_get_alerts_inhibited.json shows checkout-worker-1
        // (warning, checkout) inhibited by 650d4feaa18ae3bb (critical, checkout).
        let inh = rules("- source_matchers: ['severity=\"critical\"']\n  target_matchers: ['severity=\"warning\"']\n  equal: ['service']\n");
        let now = Utc.timestamp_opt(10, 0).unwrap();
        let crit = alert(
            &[
                ("alertname", "KubePodCrashLooping"),
                ("namespace", "shop"),
                ("pod", "checkout-7d9f"),
                ("service", "checkout"),
                ("severity", "critical"),
            ],
            100,
        );
        let cart = alert(
            &[
                ("alertname", "KubePodCrashLooping"),
                ("namespace", "shop"),
                ("pod", "cart-5c6b"),
                ("service", "cart"),
                ("severity", "warning"),
            ],
            100,
        );
        let worker = alert(
            &[
                ("alertname", "KubePodCrashLooping"),
                ("namespace", "shop"),
                ("pod", "checkout-worker-1"),
                ("service", "checkout"),
                ("severity", "warning"),
            ],
            100,
        );
        let all = [crit.clone(), cart.clone(), worker.clone()];
        assert_eq!(
            crate::alert::fingerprint_hex(crit.fingerprint),
            "650d4feaa18ae3bb"
        );
        assert_eq!(
            inh.inhibited_by(&worker.labels, &all, now),
            Some(crit.fingerprint)
        );
        assert_eq!(
            inh.inhibited_by(&cart.labels, &all, now),
            None,
            "another service"
        );
        assert_eq!(
            inh.inhibited_by(&crit.labels, &all, now),
            None,
            "not a target"
        );
        let later = Utc.timestamp_opt(200, 0).unwrap();
        assert_eq!(
            inh.inhibited_by(&worker.labels, &all, later),
            None,
            "resolved sources inhibit nothing"
        );
    }

    #[test]
    fn old_forms_missing_equal_labels_and_two_sided_rules() {
        let inh = rules("- source_match: {alertname: NodeDown}\n  target_match_re: {alertname: '.+'}\n  equal: [node, zone]\n");
        let now = Utc.timestamp_opt(10, 0).unwrap();
        let down = alert(&[("alertname", "NodeDown"), ("node", "n1")], 100);
        let disk = alert(&[("alertname", "DiskFull"), ("node", "n1")], 100);
        let other = alert(&[("alertname", "DiskFull"), ("node", "n2")], 100);
        let all = [down.clone(), disk.clone(), other.clone()];
        // `zone` is missing on both: equal.
        assert_eq!(
            inh.inhibited_by(&disk.labels, &all, now),
            Some(down.fingerprint)
        );
        assert_eq!(inh.inhibited_by(&other.labels, &all, now), None);
        // NodeDown matches both sides: it does not mute itself.
        assert_eq!(inh.inhibited_by(&down.labels, &all, now), None);
        let down2 = alert(
            &[("alertname", "NodeDown"), ("node", "n1"), ("x", "y")],
            100,
        );
        assert_eq!(
            inh.inhibited_by(&down.labels, &[down.clone(), down2], now),
            None,
            "two alerts matching both sides do not mute each other"
        );
    }
}
