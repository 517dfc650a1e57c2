//! The server's configuration file, in Prometheus's format so existing files load unchanged.
//!
//! Applied now: `global.evaluation_interval`, `global.external_labels`, `rule_files` (paths
//! relative to the file, `*` and `?` allowed in the last component), `remote_write` (every
//! accepted sample forwarded, see `collector::ForwardConfig`). Other sections Prometheus
//! defines are accepted and named in a warning; keys Prometheus does not know are errors.

mod remote_write;

use anyhow::{bail, Context};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Top-level sections of a Prometheus config that Vigil accepts but does not apply yet.
const UNAPPLIED_SECTIONS: &[&str] = &[
    "scrape_configs",
    "scrape_config_files",
    "alerting",
    "remote_read",
    "storage",
    "tracing",
    "otlp",
    "runtime",
];

/// `global` keys of a Prometheus config that Vigil accepts but does not apply yet.
const UNAPPLIED_GLOBAL: &[&str] = &[
    "scrape_interval",
    "scrape_timeout",
    "scrape_protocols",
    "rule_query_offset",
    "query_log_file",
    "scrape_failure_log_file",
    "body_size_limit",
    "sample_limit",
    "label_limit",
    "label_name_length_limit",
    "label_value_length_limit",
    "target_limit",
    "keep_dropped_targets",
    "metric_name_validation_scheme",
    "metric_name_escaping_scheme",
    "always_scrape_classic_histograms",
    "convert_classic_histograms_to_nhcb",
];

/// Keys whose values Prometheus's config types hold as `Secret`: shown as `<secret>` wherever
/// the configuration is shown.
const SECRET_KEYS: &[&str] = &[
    "password",
    "bearer_token",
    "credentials",
    "client_secret",
    "secret_key",
    "key",
];

/// What the server takes from its configuration file.
#[derive(Debug, Default, Clone)]
pub struct ServerConfig {
    pub evaluation_interval: Option<Duration>,
    pub external_labels: BTreeMap<String, String>,
    pub rule_files: Vec<PathBuf>,
    /// `remote_write`, with `external_labels` already attached to each entry.
    pub remote_write: Vec<collector::ForwardConfig>,
    /// The file as parsed, for showing it back with secrets redacted.
    document: Option<serde_yaml::Value>,
}

impl ServerConfig {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("read config file {}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, base).with_context(|| format!("config file {}", path.display()))
    }

    fn parse(text: &str, base: &Path) -> anyhow::Result<Self> {
        let doc: serde_yaml::Value = serde_yaml::from_str(text)?;
        let mut cfg = ServerConfig {
            document: Some(doc.clone()),
            ..ServerConfig::default()
        };
        let top = match doc {
            serde_yaml::Value::Null => return Ok(cfg),
            serde_yaml::Value::Mapping(m) => m,
            _ => bail!("the configuration must be a YAML mapping"),
        };
        for (key, value) in top {
            let key = key.as_str().unwrap_or_default().to_string();
            match key.as_str() {
                "global" => parse_global(&value, &mut cfg)?,
                "rule_files" => {
                    let patterns: Vec<String> = serde_yaml::from_value(value)
                        .context("rule_files must be a list of paths")?;
                    for p in patterns {
                        cfg.rule_files.extend(expand_glob(&base.join(p))?);
                    }
                }
                "remote_write" => {
                    cfg.remote_write = remote_write::parse(&value, base)?;
                }
                k if UNAPPLIED_SECTIONS.contains(&k) => {
                    tracing::warn!(
                        section = k,
                        "configuration section accepted but not applied yet"
                    )
                }
                other => bail!("field {other} not found in type config.plain"),
            }
        }
        let external = model::Labels::from_pairs(cfg.external_labels.clone());
        for rw in &mut cfg.remote_write {
            rw.external_labels = external.clone();
        }
        Ok(cfg)
    }
}

impl ServerConfig {
    /// The configuration as YAML with every secret written as `<secret>`, as Prometheus's
    /// `/api/v1/status/config` shows it. Empty when no file was given.
    pub fn redacted_yaml(&self) -> String {
        let Some(doc) = &self.document else {
            return String::new();
        };
        let mut doc = doc.clone();
        redact(&mut doc);
        serde_yaml::to_string(&doc).unwrap_or_default()
    }
}

fn redact(v: &mut serde_yaml::Value) {
    match v {
        serde_yaml::Value::Mapping(m) => {
            for (k, val) in m.iter_mut() {
                if k.as_str().is_some_and(|k| SECRET_KEYS.contains(&k)) && !val.is_null() {
                    *val = serde_yaml::Value::String("<secret>".into());
                } else {
                    redact(val);
                }
            }
        }
        serde_yaml::Value::Sequence(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

fn parse_global(value: &serde_yaml::Value, cfg: &mut ServerConfig) -> anyhow::Result<()> {
    let Some(map) = value.as_mapping() else {
        if value.is_null() {
            return Ok(());
        }
        bail!("global must be a mapping");
    };
    for (key, value) in map {
        let key = key.as_str().unwrap_or_default();
        match key {
            "evaluation_interval" => {
                let s = value
                    .as_str()
                    .context("evaluation_interval must be a duration")?;
                let ms = api::parse_prometheus_duration(s)
                    .with_context(|| format!("not a valid duration string: {s:?}"))?;
                cfg.evaluation_interval = Some(Duration::from_millis(ms.max(0) as u64));
            }
            "external_labels" => {
                cfg.external_labels = serde_yaml::from_value(value.clone())
                    .context("external_labels must map label names to values")?;
            }
            k if UNAPPLIED_GLOBAL.contains(&k) => {
                tracing::warn!(key = k, "global setting accepted but not applied yet")
            }
            other => bail!("field {other} not found in type config.GlobalConfig"),
        }
    }
    Ok(())
}

/// Expands `*` and `?` in the last path component, as Prometheus's `filepath.Glob` does for
/// `rule_files`; a path without wildcards is returned as is (and must exist when loaded).
fn expand_glob(path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let text = path.to_string_lossy();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    if !name.contains(['*', '?']) {
        return Ok(vec![path.to_path_buf()]);
    }
    Ok(collector::expand_glob(&text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applies_global_and_rule_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.rules.yml"), "groups: []").unwrap();
        std::fs::write(dir.path().join("b.rules.yml"), "groups: []").unwrap();
        std::fs::write(dir.path().join("c.txt"), "").unwrap();
        let cfg = ServerConfig::parse(
            "global:\n  evaluation_interval: 30s\n  scrape_interval: 15s\n  external_labels: {cluster: prod}\nrule_files: ['*.rules.yml']\nscrape_configs: []\n",
            dir.path(),
        )
        .unwrap();
        assert_eq!(cfg.evaluation_interval, Some(Duration::from_secs(30)));
        assert_eq!(
            cfg.external_labels.get("cluster").map(String::as_str),
            Some("prod")
        );
        assert_eq!(cfg.rule_files.len(), 2);
    }

    #[test]
    fn secrets_are_redacted_when_shown() {
        let cfg = ServerConfig::parse(
            "remote_write:\n  - url: http://x\n    basic_auth: {username: u, password: hunter2}\n  - url: http://y\n    authorization: {credentials: tok}\n",
            Path::new("."),
        )
        .unwrap();
        let shown = cfg.redacted_yaml();
        assert!(
            !shown.contains("hunter2") && !shown.contains("tok\n"),
            "{shown}"
        );
        assert!(shown.contains("password: <secret>"), "{shown}");
        assert!(shown.contains("username: u"), "{shown}");
        assert!(ServerConfig::default().redacted_yaml().is_empty());
    }

    #[test]
    fn remote_write_gets_external_labels_and_secrets_stay_hidden() {
        let cfg = ServerConfig::parse(
            "remote_write:\n  - url: http://r/api/v1/write\n    bearer_token: s3cret\nglobal:\n  external_labels: {cluster: eu}\n",
            Path::new("."),
        )
        .unwrap();
        assert_eq!(cfg.remote_write.len(), 1);
        assert_eq!(
            cfg.remote_write[0].external_labels.get("cluster"),
            Some("eu")
        );
        let shown = cfg.redacted_yaml();
        assert!(
            shown.contains("bearer_token: <secret>") && !shown.contains("s3cret"),
            "{shown}"
        );
    }

    #[test]
    fn typo_key_is_an_error() {
        let err = ServerConfig::parse("globl:\n  evaluation_interval: 30s\n", Path::new("."))
            .unwrap_err();
        assert!(err.to_string().contains("globl"), "{err}");
        let err = ServerConfig::parse("global:\n  evaluation_intervl: 30s\n", Path::new("."))
            .unwrap_err();
        assert!(err.to_string().contains("evaluation_intervl"), "{err}");
    }
}
