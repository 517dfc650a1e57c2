//! The crate's error type: everything that can go wrong loading rule files and Alertmanager
//! configs. Runtime failures (a query that fails, a webhook that answers 500) are logged and
//! retried where they happen, never returned to the caller of `run`.

use std::path::PathBuf;

/// Why a rule file or an Alertmanager config was refused.
#[derive(thiserror::Error, Debug)]
pub enum Error {
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A rule file is not valid YAML or has a key Prometheus does not know. The YAML error is
    /// part of the message (not a `source`), so a chain printed whole says it once.
    #[error("{file}: {yaml}")]
    RuleFileYaml {
        file: String,
        yaml: serde_yaml::Error,
    },

    /// A rule group or rule breaks one of Prometheus's validation rules.
    #[error("{0}")]
    InvalidRule(Box<InvalidRule>),

    /// The Alertmanager config is not valid YAML or has a key Alertmanager does not know.
    #[error("alertmanager config: {0}")]
    ConfigYaml(#[source] serde_yaml::Error),

    /// The Alertmanager config parsed but is inconsistent (an undefined receiver, a bad matcher…).
    #[error("alertmanager config: {0}")]
    InvalidConfig(String),

    /// The Alertmanager config uses a feature this build cannot run at all.
    #[error("alertmanager config: {what} is not supported by Vigil")]
    Unsupported { what: String },
}

/// Where and why a rule file breaks a validation rule, worded as promtool words it:
/// `file: line:col: group "g", rule 1, "name": message`.
#[derive(Debug)]
pub struct InvalidRule {
    pub file: String,
    /// Where in the file, as promtool places it (`4:17`, or `5:17: 4:16` for two keys).
    pub at: Option<String>,
    pub group: String,
    /// Zero-based position of the rule in its group, when a single rule is at fault.
    pub rule_index: Option<usize>,
    /// The rule's `alert` or `record` name, when it has one.
    pub rule_name: Option<String>,
    pub message: String,
}

impl std::fmt::Display for InvalidRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: ", self.file)?;
        if let Some(at) = &self.at {
            write!(f, "{at}: ")?;
        }
        write!(f, "group {:?}", self.group)?;
        match (self.rule_index, &self.rule_name) {
            (Some(i), Some(n)) => write!(f, ", rule {}, {n:?}", i + 1)?,
            (Some(i), None) => write!(f, ", rule {}", i + 1)?,
            (None, _) => {}
        }
        write!(f, ": {}", self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_rule_names_file_group_and_rule() {
        let e = Error::InvalidRule(Box::new(InvalidRule {
            file: "rules.yml".into(),
            at: Some("7:9".into()),
            group: "demo".into(),
            rule_index: Some(1),
            rule_name: Some("Down".into()),
            message: "field 'expr' must be set in rule".into(),
        }));
        assert_eq!(
            e.to_string(),
            r#"rules.yml: 7:9: group "demo", rule 2, "Down": field 'expr' must be set in rule"#
        );
    }
}
