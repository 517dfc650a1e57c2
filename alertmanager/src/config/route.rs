//! The routing tree as written in the config file (`route:`), with Alertmanager's defaults.

use crate::duration::PromDuration;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// `route.group_wait` default: how long a new group waits for more alerts before its first
/// notification.
pub const DEFAULT_GROUP_WAIT: Duration = Duration::from_secs(30);
/// `route.group_interval` default: the tick on which a group notifies about changes.
pub const DEFAULT_GROUP_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// `route.repeat_interval` default: how often an unchanged firing group is re-notified.
pub const DEFAULT_REPEAT_INTERVAL: Duration = Duration::from_secs(4 * 3600);

/// One node of the routing tree. Unset options are inherited from the parent (the root from
/// the defaults above).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub receiver: Option<String>,
    /// Label names to group by; `['...']` groups by every label. An empty list inherits.
    pub group_by: Option<Vec<String>>,
    /// Keep matching later siblings after this route matched.
    #[serde(default, rename = "continue")]
    pub continue_matching: bool,
    /// Deprecated equality matchers.
    #[serde(default, rename = "match", skip_serializing_if = "BTreeMap::is_empty")]
    pub match_eq: BTreeMap<String, String>,
    /// Deprecated regex matchers (fully anchored).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_re: BTreeMap<String, String>,
    /// Matcher strings, e.g. `severity=~"critical|warning"`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matchers: Vec<String>,
    pub group_wait: Option<PromDuration>,
    pub group_interval: Option<PromDuration>,
    pub repeat_interval: Option<PromDuration>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mute_time_intervals: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub active_time_intervals: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RouteConfig>,
}

impl RouteConfig {
    /// This route and all its descendants, depth first.
    pub fn walk(&self) -> Vec<&RouteConfig> {
        let mut out = vec![self];
        for child in &self.routes {
            out.extend(child.walk());
        }
        out
    }
}
