//! The routing tree compiled from the config: each node's inherited options, its sorted matchers
//! and its key (`{}/{severity=~".+"}`), and Alertmanager's depth-first match with `continue`.

use crate::config::{parse_matchers, AlertmanagerConfig, RouteConfig};
use crate::config::{DEFAULT_GROUP_INTERVAL, DEFAULT_GROUP_WAIT, DEFAULT_REPEAT_INTERVAL};
use crate::goformat::go_quote;
use crate::Error;
use model::{Labels, MatchOp, Matcher};
use std::collections::BTreeSet;
use std::time::Duration;

/// The options a route node ends up with after inheritance.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct RouteOpts {
    pub receiver: String,
    pub group_by: BTreeSet<String>,
    pub group_by_all: bool,
    pub group_wait: Duration,
    pub group_interval: Duration,
    pub repeat_interval: Duration,
    /// Interval names inside which this route sends nothing; not inherited (Alertmanager 0.25
    /// sets both lists from the route's own config).
    pub mute_time_intervals: Vec<String>,
    /// Interval names outside which this route sends nothing; empty means always active.
    pub active_time_intervals: Vec<String>,
}

#[derive(Debug)]
pub(crate) struct RouteNode {
    /// `parentKey/{matchers}`: the first half of every group key under this route.
    pub key: String,
    pub opts: RouteOpts,
    matchers: Vec<Matcher>,
    continue_matching: bool,
    children: Vec<usize>,
}

/// All route nodes, the root at index 0; a node's index identifies it in group maps.
#[derive(Debug)]
pub(crate) struct RouteTree {
    nodes: Vec<RouteNode>,
}

impl RouteTree {
    pub fn build(config: &AlertmanagerConfig) -> Result<RouteTree, Error> {
        let root = config
            .root_route()
            .ok_or_else(|| Error::InvalidConfig("no routes provided".into()))?;
        let defaults = RouteOpts {
            receiver: String::new(),
            group_by: BTreeSet::new(),
            group_by_all: false,
            group_wait: DEFAULT_GROUP_WAIT,
            group_interval: DEFAULT_GROUP_INTERVAL,
            repeat_interval: DEFAULT_REPEAT_INTERVAL,
            mute_time_intervals: Vec::new(),
            active_time_intervals: Vec::new(),
        };
        let mut tree = RouteTree { nodes: Vec::new() };
        tree.add(root, &defaults, None)?;
        Ok(tree)
    }

    /// A tree that routes nothing.
    pub fn empty() -> RouteTree {
        RouteTree { nodes: Vec::new() }
    }

    fn add(
        &mut self,
        cfg: &RouteConfig,
        parent: &RouteOpts,
        parent_key: Option<&str>,
    ) -> Result<usize, Error> {
        let mut opts = parent.clone();
        if let Some(r) = &cfg.receiver {
            opts.receiver = r.clone();
        }
        // Alertmanager treats an empty group_by list as unset, so it inherits.
        if let Some(group_by) = cfg.group_by.as_ref().filter(|g| !g.is_empty()) {
            if group_by.iter().any(|l| l == "...") {
                opts.group_by_all = true;
                opts.group_by.clear();
            } else {
                opts.group_by = group_by.iter().cloned().collect();
                opts.group_by_all = false;
            }
        }
        if let Some(d) = cfg.group_wait {
            opts.group_wait = d.0;
        }
        if let Some(d) = cfg.group_interval {
            opts.group_interval = d.0;
        }
        if let Some(d) = cfg.repeat_interval {
            opts.repeat_interval = d.0;
        }
        opts.mute_time_intervals = cfg.mute_time_intervals.clone();
        opts.active_time_intervals = cfg.active_time_intervals.clone();
        let invalid = |e: String| Error::InvalidConfig(e);
        let mut matchers = Vec::new();
        for (name, value) in &cfg.match_eq {
            matchers.push(
                Matcher::new(MatchOp::Equal, name, value).map_err(|e| invalid(e.to_string()))?,
            );
        }
        for (name, value) in &cfg.match_re {
            matchers.push(
                Matcher::new(MatchOp::Regex, name, value).map_err(|e| invalid(e.to_string()))?,
            );
        }
        for text in &cfg.matchers {
            matchers.extend(parse_matchers(text).map_err(invalid)?);
        }
        matchers.sort_by(|a, b| {
            (a.name.as_str(), a.value.as_str(), op_rank(a.op)).cmp(&(
                b.name.as_str(),
                b.value.as_str(),
                op_rank(b.op),
            ))
        });
        let own = format!(
            "{{{}}}",
            matchers
                .iter()
                .map(matcher_string)
                .collect::<Vec<_>>()
                .join(",")
        );
        let key = match parent_key {
            Some(p) => format!("{p}/{own}"),
            None => own,
        };
        let index = self.nodes.len();
        self.nodes.push(RouteNode {
            key: key.clone(),
            opts: opts.clone(),
            matchers,
            continue_matching: cfg.continue_matching,
            children: Vec::new(),
        });
        for child in &cfg.routes {
            let c = self.add(child, &opts, Some(&key))?;
            self.nodes[index].children.push(c);
        }
        Ok(index)
    }

    pub fn node(&self, index: usize) -> Option<&RouteNode> {
        self.nodes.get(index)
    }

    /// The routes an alert goes to: depth first, the first matching child wins unless it has
    /// `continue`; a node no child matches handles the alert itself.
    pub fn match_labels(&self, labels: &Labels) -> Vec<usize> {
        self.match_from(0, labels)
    }

    fn match_from(&self, index: usize, labels: &Labels) -> Vec<usize> {
        let Some(node) = self.nodes.get(index) else {
            return Vec::new();
        };
        if !node.matchers.iter().all(|m| m.matches_labels(labels)) {
            return Vec::new();
        }
        let mut all = Vec::new();
        for &child in &node.children {
            let matched = self.match_from(child, labels);
            let stop = !matched.is_empty() && !self.nodes[child].continue_matching;
            all.extend(matched);
            if stop {
                break;
            }
        }
        if all.is_empty() {
            all.push(index);
        }
        all
    }
}

impl RouteOpts {
    /// The labels an alert is grouped by on this route (absent labels are left out).
    pub fn group_labels(&self, labels: &Labels) -> Labels {
        if self.group_by_all {
            return labels.clone();
        }
        let names: Vec<&str> = self.group_by.iter().map(String::as_str).collect();
        labels.only(&names)
    }
}

/// Alertmanager 0.25's `Matcher.String()`: `name`, operator, Go-quoted value.
fn matcher_string(m: &Matcher) -> String {
    let op = match m.op {
        MatchOp::Equal => "=",
        MatchOp::NotEqual => "!=",
        MatchOp::Regex => "=~",
        MatchOp::NotRegex => "!~",
    };
    format!("{}{op}{}", m.name, go_quote(&m.value))
}

/// The order of Alertmanager's `MatchType` constants, the last sort key of route matchers.
fn op_rank(op: MatchOp) -> u8 {
    match op {
        MatchOp::Equal => 0,
        MatchOp::NotEqual => 1,
        MatchOp::Regex => 2,
        MatchOp::NotRegex => 3,
    }
}

/// `model.LabelSet.String()`: `{a="1", b="2"}` with Go quoting.
pub(crate) fn label_set_string(labels: &Labels) -> String {
    let pairs: Vec<String> = labels
        .iter()
        .map(|l| format!("{}={}", l.name, go_quote(&l.value)))
        .collect();
    format!("{{{}}}", pairs.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn captured_tree() -> RouteTree {
        let c = AlertmanagerConfig::load(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/reference/alertmanager-captures/inputs/alertmanager.yml"
        )))
        .unwrap();
        RouteTree::build(&c).unwrap()
    }

    fn receivers(tree: &RouteTree, pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        tree.match_labels(&Labels::from_pairs(pairs.iter().copied()))
            .into_iter()
            .map(|i| {
                let n = tree.node(i).unwrap();
                (n.opts.receiver.clone(), n.key.clone())
            })
            .collect()
    }

    #[test]
    fn routes_like_the_captured_alertmanager() {
        let tree = captured_tree();
        assert_eq!(
            receivers(&tree, &[("alertname", "X"), ("demo", "errors")]),
            vec![("errors".to_string(), "{}/{demo=\"errors\"}".to_string())]
        );
        // `continue: true` on the slack route lets the alert reach the webhook route too.
        assert_eq!(
            receivers(&tree, &[("alertname", "X"), ("severity", "critical")]),
            vec![
                (
                    "slack".to_string(),
                    "{}/{severity=~\"critical|warning\"}".to_string()
                ),
                ("webhook".to_string(), "{}/{severity=~\".+\"}".to_string()),
            ]
        );
        assert_eq!(
            receivers(&tree, &[("alertname", "X"), ("severity", "info")]),
            vec![("webhook".to_string(), "{}/{severity=~\".+\"}".to_string())]
        );
        // Nothing matches below the root: the root handles it.
        assert_eq!(
            receivers(&tree, &[("alertname", "X")]),
            vec![("webhook".to_string(), "{}".to_string())]
        );
    }

    #[test]
    fn options_are_inherited_and_group_by_all_works() {
        let c = AlertmanagerConfig::parse(
            "route:\n  receiver: r\n  group_by: [alertname]\n  group_wait: 1s\n  routes:\n  - match: {team: a}\n    group_by: ['...']\n    repeat_interval: 1h\n  - match_re: {team: 'b|c'}\n    group_by: []\nreceivers:\n- name: r\n",
        )
        .unwrap();
        let tree = RouteTree::build(&c).unwrap();
        let a = tree.node(1).unwrap();
        assert!(a.opts.group_by_all);
        assert_eq!(a.opts.group_wait, Duration::from_secs(1));
        assert_eq!(a.opts.group_interval, DEFAULT_GROUP_INTERVAL);
        assert_eq!(a.opts.repeat_interval, Duration::from_secs(3600));
        assert_eq!(a.key, "{}/{team=\"a\"}");
        let labels = Labels::from_pairs([("alertname", "X"), ("team", "a"), ("pod", "p")]);
        assert_eq!(a.opts.group_labels(&labels), labels);
        let b = tree.node(2).unwrap();
        assert_eq!(
            b.opts.group_by,
            BTreeSet::from(["alertname".to_string()]),
            "[] inherits"
        );
        assert_eq!(b.key, "{}/{team=~\"b|c\"}");
        assert_eq!(
            label_set_string(&b.opts.group_labels(&labels)),
            "{alertname=\"X\"}"
        );
    }
}
