//! Alertmanager's notification templates: its default templates (the parts receivers use:
//! `__subject`, `slack.default.*`), the user's `templates:` files, the template data as Go
//! values (`.Alerts.Firing`, `.CommonLabels.SortedPairs`, …) and Alertmanager 0.25's function
//! map, so a config's `title: '{{ template "custom.title" . }}'` renders as Alertmanager's does.

use super::data::Data;
use super::NotifyAlert;
use crate::alert::fingerprint_hex;
use crate::template::{exactly, go_title, Funcs, ListKind, MapKind, Templates, Value};
use chrono::{TimeZone, Utc};
use model::Labels;
use std::path::Path;
use std::sync::Arc;

/// The definitions from Alertmanager 0.25's `default.tmpl` that Slack and the webhook use.
const DEFAULT_TEMPLATES: &str = concat!(
    r#"{{ define "__alertmanager" }}Alertmanager{{ end }}"#,
    r#"{{ define "__alertmanagerURL" }}{{ .ExternalURL }}/#/alerts?receiver={{ .Receiver | urlquery }}{{ end }}"#,
    r#"{{ define "__subject" }}[{{ .Status | toUpper }}{{ if eq .Status "firing" }}:{{ .Alerts.Firing | len }}{{ end }}] {{ .GroupLabels.SortedPairs.Values | join " " }} {{ if gt (len .CommonLabels) (len .GroupLabels) }}({{ with .CommonLabels.Remove .GroupLabels.Names }}{{ .Values | join " " }}{{ end }}){{ end }}{{ end }}"#,
    r#"{{ define "slack.default.title" }}{{ template "__subject" . }}{{ end }}"#,
    r#"{{ define "slack.default.username" }}{{ template "__alertmanager" . }}{{ end }}"#,
    r#"{{ define "slack.default.fallback" }}{{ template "slack.default.title" . }} | {{ template "slack.default.titlelink" . }}{{ end }}"#,
    r#"{{ define "slack.default.callbackid" }}{{ end }}"#,
    r#"{{ define "slack.default.pretext" }}{{ end }}"#,
    r#"{{ define "slack.default.titlelink" }}{{ template "__alertmanagerURL" . }}{{ end }}"#,
    r#"{{ define "slack.default.iconemoji" }}{{ end }}"#,
    r#"{{ define "slack.default.iconurl" }}{{ end }}"#,
    r#"{{ define "slack.default.text" }}{{ end }}"#,
    r#"{{ define "slack.default.footer" }}{{ end }}"#,
);

/// The default templates plus the user's template files, ready to render config strings.
#[derive(Debug, Clone)]
pub(crate) struct NotificationTemplates {
    set: Templates,
    funcs: Funcs,
}

impl NotificationTemplates {
    /// Alertmanager's default templates alone: the fallback when the config's files fail to
    /// load after the config was accepted.
    pub fn defaults() -> Self {
        let funcs = alertmanager_funcs();
        let mut set = Templates::new();
        // The constant is parsed by the tests, so this cannot fail in a release.
        if let Err(error) = set.parse("default.tmpl", DEFAULT_TEMPLATES, &|n| funcs.contains(n)) {
            tracing::error!(%error, "the default notification templates failed to parse");
        }
        NotificationTemplates { set, funcs }
    }

    /// The defaults, then each file in order (a later `define` of a name wins, as in Go).
    pub fn load(files: &[&Path]) -> Result<Self, String> {
        let funcs = alertmanager_funcs();
        let mut set = Templates::new();
        let is_func = |n: &str| funcs.contains(n);
        set.parse("default.tmpl", DEFAULT_TEMPLATES, &is_func)?;
        for path in files {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("reading template {}: {e}", path.display()))?;
            let name = path
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            set.parse(&name, &text, &is_func)?;
        }
        Ok(NotificationTemplates { set, funcs })
    }

    /// Renders a config string (`title:`, `text:`, …) against `data`, as Alertmanager's
    /// `ExecuteTextString`: an empty string stays empty.
    pub fn render(&self, text: &str, data: &Value) -> Result<String, String> {
        if text.is_empty() {
            return Ok(String::new());
        }
        let mut set = self.set.clone();
        set.parse("", text, &|n| self.funcs.contains(n))?;
        set.execute("", data, &self.funcs)
    }
}

/// `template.Data` as the Go value templates walk.
pub(crate) fn data_value(data: &Data, alerts: &[NotifyAlert]) -> Value {
    let kv = |l: &Labels| {
        Value::string_map(
            l.iter().map(|p| (p.name.as_str(), p.value.as_str())),
            MapKind::Kv,
        )
    };
    // Go's zero time, which firing alerts carry as their end.
    let zero = Utc
        .with_ymd_and_hms(1, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_default();
    let alert_values = alerts
        .iter()
        .map(|a| {
            Value::structure(
                "template.Alert",
                vec![
                    (
                        "Status",
                        Value::str(if a.is_resolved() {
                            "resolved"
                        } else {
                            "firing"
                        }),
                    ),
                    ("Labels", kv(&a.labels)),
                    ("Annotations", kv(&a.annotations)),
                    ("StartsAt", Value::Time(a.starts_at)),
                    ("EndsAt", Value::Time(a.ends_at.unwrap_or(zero))),
                    ("GeneratorURL", Value::str(a.generator_url.clone())),
                    ("Fingerprint", Value::str(fingerprint_hex(a.fingerprint))),
                ],
            )
        })
        .collect();
    Value::structure(
        "*template.Data",
        vec![
            ("Receiver", Value::str(data.receiver.clone())),
            ("Status", Value::str(data.status)),
            (
                "Alerts",
                Value::List(Arc::new(alert_values), ListKind::Alerts),
            ),
            ("GroupLabels", kv(&data.group_labels)),
            ("CommonLabels", kv(&data.common_labels)),
            ("CommonAnnotations", kv(&data.common_annotations)),
            ("ExternalURL", Value::str(data.external_url.clone())),
        ],
    )
}

fn string_arg(v: &Value) -> Result<String, String> {
    match v {
        Value::Str(s) => Ok(s.clone()),
        other => Err(format!(
            "wrong type for value; expected string; got {}",
            other.type_name()
        )),
    }
}

/// Alertmanager 0.25's `DefaultFuncs` on top of Go's builtins.
fn alertmanager_funcs() -> Funcs {
    let mut f = Funcs::builtins();
    let string_fn = |name: &'static str, op: fn(&str) -> String| {
        move |a: &[Value]| {
            exactly(name, a, 1)?;
            Ok(Value::str(op(&string_arg(&a[0])?)))
        }
    };
    f.insert("toUpper", string_fn("toUpper", |s| s.to_uppercase()));
    f.insert("toLower", string_fn("toLower", |s| s.to_lowercase()));
    f.insert("title", string_fn("title", go_title));
    f.insert("safeHtml", string_fn("safeHtml", str::to_string));
    f.insert("join", |a| {
        exactly("join", a, 2)?;
        let sep = string_arg(&a[0])?;
        let Value::List(items, _) = &a[1] else {
            return Err(format!(
                "wrong type for value; expected []string; got {}",
                a[1].type_name()
            ));
        };
        let parts = items
            .iter()
            .map(string_arg)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Value::str(parts.join(&sep)))
    });
    f.insert("match", |a| {
        exactly("match", a, 2)?;
        let re = regex::Regex::new(&string_arg(&a[0])?).map_err(|e| e.to_string())?;
        Ok(Value::Bool(re.is_match(&string_arg(&a[1])?)))
    });
    f.insert("reReplaceAll", |a| {
        exactly("reReplaceAll", a, 3)?;
        let re = regex::Regex::new(&string_arg(&a[0])?).map_err(|e| e.to_string())?;
        let repl = string_arg(&a[1])?;
        Ok(Value::str(
            re.replace_all(&string_arg(&a[2])?, repl.as_str())
                .into_owned(),
        ))
    });
    f.insert("stringSlice", |a| {
        let items = a
            .iter()
            .map(|v| string_arg(v).map(Value::str))
            .collect::<Result<_, _>>()?;
        Ok(Value::list(items))
    });
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `alertmanager-captures/inputs/custom.tmpl`, the file the captured run used.
    const CUSTOM_TMPL: &str = "{{ define \"custom.title\" }}[{{ .Status | toUpper }}{{ if eq .Status \"firing\" }}:{{ .Alerts.Firing | len }}{{ end }}] {{ .CommonLabels.alertname }}{{ end }}\n{{ define \"custom.text\" }}{{ range .Alerts }}*{{ .Labels.severity }}* {{ .Annotations.summary }}\n{{ .Annotations.description }} (<{{ .GeneratorURL }}|source>)\n{{ end }}{{ end }}\n";

    /// The two alerts of the captured run (`raw-run/003_webhook.raw`).
    fn captured_alerts() -> Vec<NotifyAlert> {
        let alert = |pod: &str, service: &str, severity: &str, restarts: u32, expr: &str| {
            let labels = Labels::from_pairs([
                ("alertname", "KubePodCrashLooping"),
                ("namespace", "shop"),
                ("pod", pod),
                ("service", service),
                ("severity", severity),
            ]);
            NotifyAlert {
                fingerprint: crate::alert::fingerprint(&labels),
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
                starts_at: Utc.timestamp_opt(1_795_803_961, 0).unwrap(),
                ends_at: None,
                generator_url: format!("http://127.0.0.1:19090/graph?g0.expr={expr}&g0.tab=1"),
            }
        };
        vec![
            alert("cart-5c6b", "cart", "warning", 2, "up"),
            alert(
                "checkout-7d9f",
                "checkout",
                "critical",
                5,
                "rate%28kube_pod_container_status_restarts_total%5B5m%5D%29+%3E+0",
            ),
        ]
    }

    fn captured_data() -> Value {
        let alerts = captured_alerts();
        let group = Labels::from_pairs([("alertname", "KubePodCrashLooping")]);
        let data = Data::new("slack", &group, &alerts, "http://127.0.0.1:19093");
        data_value(&data, &alerts)
    }

    #[test]
    fn default_slack_templates_render_the_captured_message() {
        // raw-run/002_slack_global-default.raw (firing).
        let t = NotificationTemplates::load(&[]).unwrap();
        let d = captured_data();
        let r = |text: &str| t.render(text, &d).unwrap();
        assert_eq!(
            r(r#"{{ template "slack.default.title" . }}"#),
            "[FIRING:2] KubePodCrashLooping (shop)"
        );
        assert_eq!(
            r(r#"{{ template "slack.default.fallback" . }}"#),
            "[FIRING:2] KubePodCrashLooping (shop) | http://127.0.0.1:19093/#/alerts?receiver=slack"
        );
        assert_eq!(
            r(r#"{{ template "slack.default.username" . }}"#),
            "Alertmanager"
        );
        assert_eq!(r(r#"{{ template "slack.default.text" . }}"#), "");
        assert_eq!(
            r(r#"{{ if eq .Status "firing" }}danger{{ else }}good{{ end }}"#),
            "danger"
        );
        assert_eq!(r(""), "");
    }

    #[test]
    fn custom_template_files_render_the_captured_message() {
        // inputs/custom.tmpl and the config strings of inputs/alertmanager.yml, rendered by
        // Alertmanager 0.25 into raw-run/004_slack_custom.raw.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("custom.tmpl");
        std::fs::write(&path, CUSTOM_TMPL).unwrap();
        let t = NotificationTemplates::load(&[path.as_path()]).unwrap();
        let d = captured_data();
        let r = |text: &str| t.render(text, &d).unwrap();
        assert_eq!(
            r(r#"{{ template "custom.title" . }}"#),
            "[FIRING:2] KubePodCrashLooping"
        );
        assert_eq!(
            r(r#"{{ template "custom.text" . }}"#),
            "*warning* Pod shop/cart-5c6b is crash looping\nPod shop/cart-5c6b restarted 2 times in 10m (<http://127.0.0.1:19090/graph?g0.expr=up&g0.tab=1|source>)\n*critical* Pod shop/checkout-7d9f is crash looping\nPod shop/checkout-7d9f restarted 5 times in 10m (<http://127.0.0.1:19090/graph?g0.expr=rate%28kube_pod_container_status_restarts_total%5B5m%5D%29+%3E+0&g0.tab=1|source>)\n"
        );
        assert_eq!(
            r(
                r#"{{ if eq .Status "firing" }}{{ if eq .CommonLabels.severity "critical" }}danger{{ else }}warning{{ end }}{{ else }}good{{ end }}"#
            ),
            "warning"
        );
        assert_eq!(
            r("{{ .CommonLabels.severity }}"),
            "",
            "missingkey=zero: the field is dropped"
        );
        assert_eq!(
            r("{{ (index .Alerts 0).Annotations.runbook_url }}"),
            "https://runbooks.example/KubePodCrashLooping"
        );
        assert_eq!(
            r("{{ .ExternalURL }}/#/silences/new"),
            "http://127.0.0.1:19093/#/silences/new"
        );
        assert_eq!(
            r(
                r#"{{ range .Alerts.Resolved }}x{{ end }}{{ .CommonLabels.SortedPairs.Names | join "," }} {{ title "a b" }} {{ stringSlice "p" "q" | join "+" }}"#
            ),
            "alertname,namespace A B p+q"
        );
    }

    #[test]
    fn bad_template_files_are_refused_with_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.tmpl");
        std::fs::write(&path, "{{ define \"x\" }}\n{{ nosuch }}{{ end }}").unwrap();
        let err = NotificationTemplates::load(&[path.as_path()]).unwrap_err();
        assert_eq!(err, "template: bad.tmpl:2: function \"nosuch\" not defined");
    }
}
