//! Prometheus rule files: the YAML format read unchanged (unknown keys refused, as Prometheus's
//! strict decoder does), validated with Prometheus's rules, and turned into [`RuleGroup`]s whose
//! templates are already parsed.

use super::position::{rule_positions, Position, RulePositions};
use super::template::Template;
use crate::duration::PromDuration;
use crate::error::InvalidRule;
use crate::Error;
use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

/// A group of rules evaluated one after another at the same timestamp.
#[derive(Debug, Clone)]
pub struct RuleGroup {
    pub name: String,
    /// The file the group came from, as given to [`load_rule_files`].
    pub file: String,
    /// The group's own interval; `None` means the manager's default evaluation interval.
    pub interval: Option<Duration>,
    /// Most alerts per alerting rule / series per recording rule; 0 means no limit.
    pub limit: usize,
    /// How far in the past the group's queries look (HEAD's `query_offset`).
    pub query_offset: Duration,
    pub rules: Vec<Rule>,
}

/// One rule of a group.
#[derive(Debug, Clone)]
pub enum Rule {
    Alerting(AlertingRule),
    Recording(RecordingRule),
}

/// An `alert:` rule.
#[derive(Debug, Clone)]
pub struct AlertingRule {
    /// The `alert` name, which becomes the `alertname` label.
    pub name: String,
    pub expr: String,
    /// Where `expr`'s value starts in the file, when the file is in block style.
    pub expr_at: Option<Position>,
    /// `for`: how long the expression must hold before the alert fires.
    pub hold: Duration,
    pub keep_firing_for: Duration,
    /// Label templates, by label name (the group's `labels` merged under the rule's).
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub(crate) label_templates: Vec<(String, Template)>,
    pub(crate) annotation_templates: Vec<(String, Template)>,
}

/// A `record:` rule.
#[derive(Debug, Clone)]
pub struct RecordingRule {
    /// The metric name the result is written under.
    pub name: String,
    pub expr: String,
    /// Where `expr`'s value starts in the file, when the file is in block style.
    pub expr_at: Option<Position>,
    pub labels: BTreeMap<String, String>,
}

impl Rule {
    /// The `alert` or `record` name.
    pub fn name(&self) -> &str {
        match self {
            Rule::Alerting(r) => &r.name,
            Rule::Recording(r) => &r.name,
        }
    }

    /// The query expression.
    pub fn expr(&self) -> &str {
        match self {
            Rule::Alerting(r) => &r.expr,
            Rule::Recording(r) => &r.expr,
        }
    }

    /// The rule's labels (templates, unexpanded), by name.
    pub fn labels(&self) -> &BTreeMap<String, String> {
        match self {
            Rule::Alerting(r) => &r.labels,
            Rule::Recording(r) => &r.labels,
        }
    }

    /// Where the expression starts in its file (see [`Position`]).
    pub fn expr_at(&self) -> Option<Position> {
        match self {
            Rule::Alerting(r) => r.expr_at,
            Rule::Recording(r) => r.expr_at,
        }
    }

    fn set_expr_at(&mut self, at: Position) {
        match self {
            Rule::Alerting(r) => r.expr_at = Some(at),
            Rule::Recording(r) => r.expr_at = Some(at),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFileYaml {
    #[serde(default)]
    groups: Vec<RuleGroupYaml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleGroupYaml {
    #[serde(default)]
    name: String,
    interval: Option<PromDuration>,
    #[serde(default)]
    limit: usize,
    query_offset: Option<PromDuration>,
    /// Group labels (Prometheus 3): added to every rule, rule labels win.
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    rules: Vec<RuleYaml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleYaml {
    #[serde(default, deserialize_with = "scalar_string")]
    record: String,
    #[serde(default, deserialize_with = "scalar_string")]
    alert: String,
    #[serde(default, deserialize_with = "scalar_string")]
    expr: String,
    #[serde(rename = "for")]
    hold: Option<PromDuration>,
    keep_firing_for: Option<PromDuration>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

/// Prometheus reads `expr`, `alert` and `record` as YAML nodes, so `expr: 1` is the string "1".
fn scalar_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match serde_yaml::Value::deserialize(d)? {
        serde_yaml::Value::String(s) => Ok(s),
        serde_yaml::Value::Number(n) => Ok(n.to_string()),
        serde_yaml::Value::Bool(b) => Ok(b.to_string()),
        serde_yaml::Value::Null => Ok(String::new()),
        _ => Err(serde::de::Error::custom("expected a string")),
    }
}

/// Reads and validates rule files, in order; the first bad file is the error.
pub fn load_rule_files(paths: &[PathBuf]) -> Result<Vec<RuleGroup>, Error> {
    let mut groups = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        groups.extend(parse_rule_file(&text, &path.display().to_string())?);
    }
    Ok(groups)
}

/// Parses and validates one rule file's text; `file` names it in errors and in the groups.
pub fn parse_rule_file(text: &str, file: &str) -> Result<Vec<RuleGroup>, Error> {
    let parsed: RuleFileYaml = serde_yaml::from_str(text).map_err(|yaml| Error::RuleFileYaml {
        file: file.to_string(),
        yaml,
    })?;
    // Positions only when the scan found exactly one item per rule (see `position`).
    let mut positions = rule_positions(text);
    if positions.len() != parsed.groups.iter().map(|g| g.rules.len()).sum::<usize>() {
        positions.clear();
    }
    let mut positions = positions.into_iter();
    let mut seen = HashSet::new();
    let mut groups = Vec::with_capacity(parsed.groups.len());
    for g in parsed.groups {
        let group_err = |message: String| {
            Error::InvalidRule(Box::new(InvalidRule {
                file: file.to_string(),
                at: None,
                group: g.name.clone(),
                rule_index: None,
                rule_name: None,
                message,
            }))
        };
        if g.name.is_empty() {
            return Err(group_err("Groupname must not be empty".into()));
        }
        if !seen.insert(g.name.clone()) {
            return Err(group_err(format!(
                "groupname: {:?} is repeated in the same file",
                g.name
            )));
        }
        if g.interval.is_some_and(|d| d.0.is_zero()) {
            return Err(group_err("interval must be greater than zero".into()));
        }
        for name in g.labels.keys() {
            check_label_name(name).map_err(group_err)?;
        }
        let mut rules = Vec::with_capacity(g.rules.len());
        for (index, r) in g.rules.into_iter().enumerate() {
            let rule_name = [&r.alert, &r.record]
                .into_iter()
                .find(|n| !n.is_empty())
                .cloned();
            let at = positions.next().unwrap_or_default();
            let mut rule = build_rule(r, &g.labels).map_err(|(node, message)| {
                Error::InvalidRule(Box::new(InvalidRule {
                    file: file.to_string(),
                    at: node.place(&at),
                    group: g.name.clone(),
                    rule_index: Some(index),
                    rule_name,
                    message,
                }))
            })?;
            if let Some(expr) = at.expr {
                rule.set_expr_at(expr);
            }
            rules.push(rule);
        }
        groups.push(RuleGroup {
            name: g.name,
            file: file.to_string(),
            interval: g.interval.map(|d| d.0),
            limit: g.limit,
            query_offset: g.query_offset.map(|d| d.0).unwrap_or_default(),
            rules,
        });
    }
    Ok(groups)
}

/// The key a rule error is about, which promtool prints the position of.
#[derive(Clone, Debug)]
enum Node {
    /// promtool gives no position (label and annotation names).
    Unplaced,
    /// A label's (`true`) or an annotation's template: promtool gives no position, Vigil the
    /// line of its value.
    Template(bool, String),
    Expr,
    Record,
    RecordAndAlert,
}

impl Node {
    /// The position prefix promtool prints for this node; where promtool would print `0:0`
    /// (the key is missing), the rule's own first line instead.
    fn place(self, at: &RulePositions) -> Option<String> {
        let one = |p: Option<Position>| p.or(at.start).map(|p| p.to_string());
        match self {
            Node::Unplaced => None,
            Node::Template(is_label, key) => {
                let list = if is_label {
                    &at.templates.labels
                } else {
                    &at.templates.annotations
                };
                let found = list.iter().find(|(k, _)| *k == key).map(|(_, p)| *p);
                one(found)
            }
            Node::Expr => one(at.expr),
            Node::Record => one(at.record),
            Node::RecordAndAlert => match (at.record, at.alert) {
                (Some(r), Some(a)) => Some(format!("{r}: {a}")),
                (r, a) => one(r.or(a)),
            },
        }
    }
}

/// `RuleNode.Validate` from Prometheus's `rulefmt`, then template parsing; an error comes with
/// the key it is about.
fn build_rule(
    r: RuleYaml,
    group_labels: &BTreeMap<String, String>,
) -> Result<Rule, (Node, String)> {
    let on = |node: Node| move |message: String| (node, message);
    match (r.record.is_empty(), r.alert.is_empty()) {
        (false, false) => {
            return Err(on(Node::RecordAndAlert)(
                "only one of 'record' and 'alert' must be set".into(),
            ))
        }
        (true, true) => {
            return Err(on(Node::RecordAndAlert)(
                "one of 'record' or 'alert' must be set".into(),
            ))
        }
        _ => {}
    }
    if r.expr.trim().is_empty() {
        return Err(on(Node::Expr)("field 'expr' must be set in rule".into()));
    }
    build_checked(r, group_labels)
}

/// The rest of `build_rule`, once the rule has a name and an expression.
fn build_checked(
    r: RuleYaml,
    group_labels: &BTreeMap<String, String>,
) -> Result<Rule, (Node, String)> {
    let unplaced = |message: String| (Node::Unplaced, message);
    let record = |message: String| (Node::Record, message);
    for (name, value) in &r.labels {
        check_label_name(name).map_err(unplaced)?;
        if name == model::METRIC_NAME {
            return Err(unplaced(format!("invalid label name: {name}")));
        }
        if value.contains('\u{fffd}') {
            return Err(unplaced(format!("invalid label value: {value}")));
        }
    }
    let mut labels = group_labels.clone();
    labels.extend(r.labels);
    if !r.record.is_empty() {
        if !r.annotations.is_empty() {
            return Err(record(
                "invalid field 'annotations' in recording rule".into(),
            ));
        }
        if r.hold.is_some_and(|d| !d.0.is_zero()) {
            return Err(record("invalid field 'for' in recording rule".into()));
        }
        if r.keep_firing_for.is_some_and(|d| !d.0.is_zero()) {
            return Err(record(
                "invalid field 'keep_firing_for' in recording rule".into(),
            ));
        }
        if !is_valid_metric_name(&r.record) {
            return Err(record(format!("invalid recording rule name: {}", r.record)));
        }
        return Ok(Rule::Recording(RecordingRule {
            name: r.record,
            expr: r.expr,
            expr_at: None,
            labels,
        }));
    }
    for name in r.annotations.keys() {
        check_label_name(name).map_err(|_| unplaced(format!("invalid annotation name: {name}")))?;
    }
    // Prometheus names the template after the rule in error messages.
    let template_name = format!("__alert_{}", r.alert);
    // promtool names the label or annotation whose template is broken.
    let compile = |pairs: &BTreeMap<String, String>, is_label: bool| {
        let what = if is_label { "label" } else { "annotation" };
        pairs
            .iter()
            .map(|(k, v)| {
                Template::parse(&template_name, v)
                    .map(|t| (k.clone(), t))
                    .map_err(|e| {
                        (
                            Node::Template(is_label, k.clone()),
                            format!("{what} {k:?}: {e}"),
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()
    };
    let label_templates = compile(&labels, true)?;
    let annotation_templates = compile(&r.annotations, false)?;
    Ok(Rule::Alerting(AlertingRule {
        name: r.alert,
        expr: r.expr,
        expr_at: None,
        hold: r.hold.map(|d| d.0).unwrap_or_default(),
        keep_firing_for: r.keep_firing_for.map(|d| d.0).unwrap_or_default(),
        labels,
        annotations: r.annotations,
        label_templates,
        annotation_templates,
    }))
}

fn check_label_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!("invalid label name: {name}"))
    }
}

fn is_valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAPTURE_RULES: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/reference/alertmanager-captures/inputs/rules.yml"
    );

    #[test]
    fn loads_the_captured_prometheus_rule_file() {
        let groups = load_rule_files(&[PathBuf::from(CAPTURE_RULES)]).unwrap();
        assert_eq!(groups.len(), 1);
        let g = &groups[0];
        assert_eq!(g.name, "demo");
        assert_eq!(g.interval, Some(Duration::from_secs(1)));
        assert_eq!(g.limit, 10);
        assert_eq!(g.rules.len(), 2);
        let Rule::Recording(rec) = &g.rules[0] else {
            panic!("first rule records")
        };
        assert_eq!(rec.name, "service:demo_up:min");
        let Rule::Alerting(alert) = &g.rules[1] else {
            panic!("second rule alerts")
        };
        assert_eq!(alert.name, "DemoServiceDown");
        assert_eq!(alert.hold, Duration::from_secs(3));
        assert_eq!(alert.keep_firing_for, Duration::from_secs(2));
        assert_eq!(alert.labels["team"], "{{ $labels.service }}-team");
    }

    #[test]
    fn unknown_key_is_refused_with_the_file_name() {
        let text = "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    labelz: {}\n";
        let err = parse_rule_file(text, "bad.yml").unwrap_err().to_string();
        assert!(err.starts_with("bad.yml: "), "{err}");
        assert!(err.contains("unknown field `labelz`"), "{err}");
    }

    #[test]
    fn bad_duration_is_refused() {
        let text = "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    for: 5x\n";
        let err = parse_rule_file(text, "bad.yml").unwrap_err().to_string();
        assert!(err.contains("not a valid duration string: \"5x\""), "{err}");
    }

    #[test]
    fn validation_errors_name_group_and_rule() {
        // The position is promtool's: the key the error is about (the rule's first line where
        // promtool would print 0:0 for a missing key, and a template's value, which promtool
        // leaves unplaced).
        let cases = [
            (
                "  - alert: A\n",
                "4:5: group \"g\", rule 1, \"A\": field 'expr' must be set in rule",
            ),
            (
                "  - record: a\n    alert: b\n    expr: up\n",
                "4:13: 5:12: group \"g\", rule 1, \"b\": only one of 'record' and 'alert' must be set",
            ),
            (
                "  - expr: up\n",
                "4:5: group \"g\", rule 1: one of 'record' or 'alert' must be set",
            ),
            (
                "  - record: r\n    expr: up\n    for: 1m\n",
                "4:13: group \"g\", rule 1, \"r\": invalid field 'for' in recording rule",
            ),
            (
                "  - record: 1r\n    expr: up\n",
                "4:13: group \"g\", rule 1, \"1r\": invalid recording rule name: 1r",
            ),
            (
                "  - alert: A\n    expr: up\n    labels: {__name__: x}\n",
                "group \"g\", rule 1, \"A\": invalid label name: __name__",
            ),
            (
                "  - alert: A\n    expr: up\n    annotations:\n      s: '{{ $labels.x'\n",
                "7:10: group \"g\", rule 1, \"A\": annotation \"s\": template: __alert_A:1: unclosed action",
            ),
        ];
        for (rule, want) in cases {
            let text = format!("groups:\n- name: g\n  rules:\n{rule}");
            let err = parse_rule_file(&text, "r.yml").unwrap_err().to_string();
            assert_eq!(err, format!("r.yml: {want}"));
        }
    }

    #[test]
    fn repeated_and_empty_group_names_are_refused() {
        let text = "groups:\n- name: g\n  rules: []\n- name: g\n  rules: []\n";
        let err = parse_rule_file(text, "r.yml").unwrap_err().to_string();
        assert!(err.contains("is repeated in the same file"), "{err}");
        let err = parse_rule_file("groups:\n- rules: []\n", "r.yml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("Groupname must not be empty"), "{err}");
    }

    #[test]
    fn group_labels_are_merged_under_rule_labels() {
        let text = "groups:\n- name: g\n  labels: {team: a, env: prod}\n  rules:\n  - alert: A\n    expr: up\n    labels: {team: b}\n";
        let groups = parse_rule_file(text, "r.yml").unwrap();
        let Rule::Alerting(a) = &groups[0].rules[0] else {
            panic!()
        };
        assert_eq!(a.labels["team"], "b");
        assert_eq!(a.labels["env"], "prod");
    }
}
