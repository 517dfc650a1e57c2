//! Prometheus relabeling (`relabel_configs`, `metric_relabel_configs`,
//! `write_relabel_configs`): the config as Prometheus's YAML spells it, validated as
//! Prometheus validates it, and [`relabel`], which applies a list of steps to a label set.
//!
//! Defaults are Prometheus's: action `replace`, separator `;`, regex `(.*)`, replacement `$1`.
//! Regexes are fully anchored; `.` also matches a newline, as in [`crate::Matcher`].
//! Replacement templates expand `$1`, `${1}`, `$name` and `${name}` with Go's rules (which
//! the `regex` crate shares: `$1x` names the group `1x`, an unknown group expands to nothing).
//!
//! ```
//! use model::{relabel, Labels, RelabelConfig};
//!
//! let steps: Vec<RelabelConfig> = serde_yaml::from_str(
//!     "- {source_labels: [__name__], regex: 'go_.*', action: drop}\n\
//!      - {source_labels: [instance], regex: '(.*):.*', target_label: host}\n",
//! ).unwrap();
//! let up = Labels::from_pairs([("__name__", "up"), ("instance", "web:9100")]);
//! assert_eq!(relabel(&steps, up).unwrap().get("host"), Some("web"));
//! let go = Labels::from_pairs([("__name__", "go_goroutines")]);
//! assert_eq!(relabel(&steps, go), None);
//! ```

mod md5;

use std::fmt;

use regex::Regex;
use serde::Deserialize;

use crate::labels::is_valid_label_name;
use crate::Labels;

/// The default separator between joined source label values.
pub const DEFAULT_SEPARATOR: &str = ";";
/// The default regex, matching any value and capturing it as `$1`.
pub const DEFAULT_REGEX: &str = "(.*)";
/// The default replacement: the first capture group.
pub const DEFAULT_REPLACEMENT: &str = "$1";

/// What a relabel step does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Writes the expanded `replacement` to the expanded `target_label` when `regex` matches.
    Replace,
    /// Drops the label set unless `regex` matches the joined source values.
    Keep,
    /// Drops the label set when `regex` matches the joined source values.
    Drop,
    /// Drops the label set unless the joined source values equal `target_label`'s value.
    KeepEqual,
    /// Drops the label set when the joined source values equal `target_label`'s value.
    DropEqual,
    /// Sets `target_label` to the MD5 of the joined source values modulo `modulus`.
    HashMod,
    /// Copies every label whose name matches `regex` to the name `replacement` expands to.
    LabelMap,
    /// Removes every label whose name matches `regex`.
    LabelDrop,
    /// Removes every label whose name does not match `regex`.
    LabelKeep,
    /// Sets `target_label` to the joined source values in lower case.
    Lowercase,
    /// Sets `target_label` to the joined source values in upper case.
    Uppercase,
}

impl Action {
    /// Parses an action name, case-insensitively as Prometheus does.
    pub fn parse(name: &str) -> Result<Action, RelabelError> {
        Ok(match name.to_lowercase().as_str() {
            "replace" => Action::Replace,
            "keep" => Action::Keep,
            "drop" => Action::Drop,
            "keepequal" => Action::KeepEqual,
            "dropequal" => Action::DropEqual,
            "hashmod" => Action::HashMod,
            "labelmap" => Action::LabelMap,
            "labeldrop" => Action::LabelDrop,
            "labelkeep" => Action::LabelKeep,
            "lowercase" => Action::Lowercase,
            "uppercase" => Action::Uppercase,
            _ => return Err(RelabelError::UnknownAction(name.to_string())),
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Replace => "replace",
            Action::Keep => "keep",
            Action::Drop => "drop",
            Action::KeepEqual => "keepequal",
            Action::DropEqual => "dropequal",
            Action::HashMod => "hashmod",
            Action::LabelMap => "labelmap",
            Action::LabelDrop => "labeldrop",
            Action::LabelKeep => "labelkeep",
            Action::Lowercase => "lowercase",
            Action::Uppercase => "uppercase",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a relabel config was refused; the messages are Prometheus's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelabelError {
    #[error("unknown relabel action {0:?}")]
    UnknownAction(String),
    #[error("relabel action cannot be empty")]
    EmptyAction,
    #[error("relabel configuration for hashmod requires non-zero modulus")]
    ZeroModulus,
    #[error("relabel configuration for {0} action requires 'target_label' value")]
    MissingTarget(Action),
    #[error("{target:?} is invalid 'target_label' for {action} action")]
    InvalidTarget { target: String, action: Action },
    #[error("{replacement:?} is invalid 'replacement' for {action} action")]
    InvalidReplacement { replacement: String, action: Action },
    #[error("'replacement' can not be set for {0} action")]
    ReplacementNotAllowed(Action),
    #[error("{0} action requires only 'source_labels' and `target_label`, and no other fields")]
    OnlySourceAndTarget(Action),
    #[error("{0} action requires only 'regex', and no other fields")]
    OnlyRegex(Action),
    #[error("{0:?} is not a valid label name")]
    InvalidSourceLabel(String),
    #[error("invalid relabel regex {regex:?}: {reason}")]
    Regex { regex: String, reason: String },
}

/// A relabel step as written in YAML: every field optional, defaults applied by
/// [`RelabelConfig::try_from`]. Build one of these to make a config in code.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RelabelSpec {
    pub source_labels: Option<Vec<String>>,
    pub separator: Option<String>,
    pub regex: Option<String>,
    pub modulus: Option<u64>,
    pub target_label: Option<String>,
    pub replacement: Option<String>,
    pub action: Option<String>,
}

/// One validated relabel step. Deserialises from Prometheus's YAML (through [`RelabelSpec`]),
/// failing with Prometheus's validation messages.
#[derive(Clone, Debug, Deserialize)]
#[serde(try_from = "RelabelSpec")]
pub struct RelabelConfig {
    source_labels: Vec<String>,
    separator: String,
    /// The regex as written, for showing the config back.
    regex_text: String,
    /// The anchored, compiled form of `regex_text`.
    regex: Regex,
    modulus: u64,
    target_label: String,
    replacement: String,
    action: Action,
}

impl PartialEq for RelabelConfig {
    fn eq(&self, other: &Self) -> bool {
        self.source_labels == other.source_labels
            && self.separator == other.separator
            && self.regex_text == other.regex_text
            && self.modulus == other.modulus
            && self.target_label == other.target_label
            && self.replacement == other.replacement
            && self.action == other.action
    }
}

impl TryFrom<RelabelSpec> for RelabelConfig {
    type Error = RelabelError;

    fn try_from(spec: RelabelSpec) -> Result<Self, RelabelError> {
        let action = match spec.action.as_deref() {
            None => Action::Replace,
            Some("") => return Err(RelabelError::EmptyAction),
            Some(name) => Action::parse(name)?,
        };
        if let Some(names) = &spec.source_labels {
            if let Some(bad) = names.iter().find(|n| !is_valid_label_name(n)) {
                return Err(RelabelError::InvalidSourceLabel(bad.clone()));
            }
        }
        let regex_text = spec.regex.clone().unwrap_or_else(|| DEFAULT_REGEX.into());
        let regex = anchored(&regex_text)?;
        let cfg = RelabelConfig {
            source_labels: spec.source_labels.clone().unwrap_or_default(),
            separator: spec
                .separator
                .clone()
                .unwrap_or_else(|| DEFAULT_SEPARATOR.into()),
            regex_text,
            regex,
            modulus: spec.modulus.unwrap_or(0),
            target_label: spec.target_label.clone().unwrap_or_default(),
            replacement: spec
                .replacement
                .clone()
                .unwrap_or_else(|| DEFAULT_REPLACEMENT.into()),
            action,
        };
        cfg.validate(&spec)?;
        Ok(cfg)
    }
}

/// Compiles `text` fully anchored, with `.` matching newlines.
fn anchored(text: &str) -> Result<Regex, RelabelError> {
    Regex::new(&format!("^(?s:{text})$")).map_err(|e| RelabelError::Regex {
        regex: text.to_string(),
        reason: e.to_string(),
    })
}

/// True when `target` is a label name with `$1`/`${name}` references in it, Prometheus's
/// `relabelTarget` pattern: the expansion must be able to produce a valid name.
fn is_valid_target_template(target: &str) -> bool {
    Regex::new(r"^(?:(?:[a-zA-Z_]|\$(?:\{\w+\}|\w+))+\w*)+$").is_ok_and(|re| re.is_match(target))
}

impl RelabelConfig {
    pub fn action(&self) -> Action {
        self.action
    }

    pub fn source_labels(&self) -> &[String] {
        &self.source_labels
    }

    pub fn target_label(&self) -> &str {
        &self.target_label
    }

    /// The regex as written in the config (without the anchors added to it).
    pub fn regex(&self) -> &str {
        &self.regex_text
    }

    /// Prometheus's `Config.Validate`, in its order, so the first error reported is the same.
    fn validate(&self, spec: &RelabelSpec) -> Result<(), RelabelError> {
        use Action::*;
        let action = self.action;
        let target = self.target_label.as_str();
        let invalid_target = || RelabelError::InvalidTarget {
            target: target.to_string(),
            action,
        };
        if self.modulus == 0 && action == HashMod {
            return Err(RelabelError::ZeroModulus);
        }
        let needs_target = matches!(
            action,
            Replace | HashMod | Lowercase | Uppercase | KeepEqual | DropEqual
        );
        if needs_target && target.is_empty() {
            return Err(RelabelError::MissingTarget(action));
        }
        if action == Replace {
            let ok = if target.contains('$') {
                is_valid_target_template(target)
            } else {
                is_valid_label_name(target)
            };
            if !ok {
                return Err(invalid_target());
            }
        }
        let value_actions = matches!(action, Lowercase | Uppercase | KeepEqual | DropEqual);
        if value_actions && !is_valid_label_name(target) {
            return Err(invalid_target());
        }
        if value_actions && self.replacement != DEFAULT_REPLACEMENT {
            return Err(RelabelError::ReplacementNotAllowed(action));
        }
        if action == LabelMap && !is_valid_target_template(&self.replacement) {
            return Err(RelabelError::InvalidReplacement {
                replacement: self.replacement.clone(),
                action,
            });
        }
        if action == HashMod && !is_valid_label_name(target) {
            return Err(invalid_target());
        }
        // Prometheus compares the regex by identity with the default, so any regex written
        // in the file counts as set, even `(.*)`.
        if matches!(action, KeepEqual | DropEqual)
            && (spec.regex.is_some()
                || self.modulus != 0
                || self.separator != DEFAULT_SEPARATOR
                || self.replacement != DEFAULT_REPLACEMENT)
        {
            return Err(RelabelError::OnlySourceAndTarget(action));
        }
        if matches!(action, LabelDrop | LabelKeep)
            && (spec.source_labels.is_some()
                || !target.is_empty()
                || self.modulus != 0
                || self.separator != DEFAULT_SEPARATOR
                || self.replacement != DEFAULT_REPLACEMENT)
        {
            return Err(RelabelError::OnlyRegex(action));
        }
        Ok(())
    }

    /// Applies this step; `None` when it drops the label set.
    fn apply(&self, labels: Labels) -> Option<Labels> {
        // The label-name actions ignore source labels; the others read their joined values.
        let joined = match self.action {
            Action::LabelMap | Action::LabelDrop | Action::LabelKeep => String::new(),
            _ => self.join_sources(&labels),
        };
        match self.action {
            Action::Drop => (!self.regex.is_match(&joined)).then_some(labels),
            Action::Keep => self.regex.is_match(&joined).then_some(labels),
            Action::DropEqual => {
                (labels.get(&self.target_label).unwrap_or("") != joined).then_some(labels)
            }
            Action::KeepEqual => {
                (labels.get(&self.target_label).unwrap_or("") == joined).then_some(labels)
            }
            Action::Replace => Some(self.replace(labels, &joined)),
            Action::Lowercase => Some(labels.with(&self.target_label, &joined.to_lowercase())),
            Action::Uppercase => Some(labels.with(&self.target_label, &joined.to_uppercase())),
            Action::HashMod => {
                let digest = md5::digest(joined.as_bytes());
                // Prometheus keeps only the last 8 bytes, read big-endian.
                let mut tail = [0u8; 8];
                tail.copy_from_slice(&digest[8..]);
                let bucket = u64::from_be_bytes(tail) % self.modulus.max(1);
                Some(labels.with(&self.target_label, &bucket.to_string()))
            }
            Action::LabelMap => {
                let mut out = labels.clone();
                for l in labels.iter() {
                    if self.regex.is_match(&l.name) {
                        let name = self.regex.replace_all(&l.name, self.replacement.as_str());
                        out = out.with(&name, &l.value);
                    }
                }
                Some(out)
            }
            Action::LabelDrop => {
                let drop: Vec<&str> = labels
                    .iter()
                    .filter(|l| self.regex.is_match(&l.name))
                    .map(|l| l.name.as_str())
                    .collect();
                Some(labels.without(&drop))
            }
            Action::LabelKeep => {
                let keep: Vec<&str> = labels
                    .iter()
                    .filter(|l| self.regex.is_match(&l.name))
                    .map(|l| l.name.as_str())
                    .collect();
                Some(labels.only(&keep))
            }
        }
    }

    /// The values of the source labels joined by the separator; a missing label reads as "".
    fn join_sources(&self, labels: &Labels) -> String {
        let values: Vec<&str> = self
            .source_labels
            .iter()
            .map(|n| labels.get(n).unwrap_or(""))
            .collect();
        values.join(&self.separator)
    }

    /// The `replace` action: nothing happens unless the regex matches; a target that expands
    /// to an invalid name is skipped; an empty result removes the target label.
    fn replace(&self, labels: Labels, value: &str) -> Labels {
        let Some(caps) = self.regex.captures(value) else {
            return labels;
        };
        let mut target = String::new();
        caps.expand(&self.target_label, &mut target);
        if !is_valid_label_name(&target) {
            return labels;
        }
        let mut result = String::new();
        caps.expand(&self.replacement, &mut result);
        labels.with(&target, &result)
    }
}

/// Applies `configs` in order; `None` when a step drops the label set. An empty result is
/// returned as is: whether an empty label set is kept is the caller's rule (scrape and remote
/// write both drop it).
pub fn relabel(configs: &[RelabelConfig], labels: Labels) -> Option<Labels> {
    configs.iter().try_fold(labels, |labels, c| c.apply(labels))
}

#[cfg(test)]
mod tests;
