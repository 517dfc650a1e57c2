//! The agent's scrape configuration: Prometheus's `global` and `scrape_configs`, read from the
//! same YAML a Prometheus server or agent takes, so a file moves between them unchanged.
//!
//! Only keys the scraper applies are accepted (`deny_unknown_fields`): a key it would ignore
//! fails the load with its name, instead of silently scraping differently from Prometheus.
//! Defaults are Prometheus's, each a named constant.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use model::RelabelConfig;

use crate::discovery::{KubernetesSdConfig, ANNOTATED_PODS_JOB};
use crate::httpconf::{
    auth_from_yaml, AuthorizationYaml, BasicAuthYaml, HttpClientConfig, HttpConfigError,
    ProxyConfig, SecretText, TlsConfig,
};
use serde::{Deserialize, Deserializer};

use super::ScrapeError;

/// Prometheus's `global.scrape_interval` default.
pub const DEFAULT_GLOBAL_SCRAPE_INTERVAL: Duration = Duration::from_secs(60);
/// Prometheus's `global.scrape_timeout` default.
pub const DEFAULT_SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);
/// Where targets expose metrics unless `metrics_path` says otherwise.
pub const DEFAULT_METRICS_PATH: &str = "/metrics";
/// The scheme of targets unless `scheme` says otherwise.
pub const DEFAULT_SCHEME: &str = "http";
/// The body bound applied when `body_size_limit` is 0 (Prometheus's "no limit"): the agent
/// keeps a bound anyway, so one broken target cannot exhaust a node's memory.
pub const MAX_BODY_SIZE: u64 = 64 << 20;

/// A config file's top level: what the scraper reads of a Prometheus config.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScrapeFile {
    #[serde(default)]
    pub global: GlobalConfig,
    #[serde(default)]
    pub scrape_configs: Vec<ScrapeConfig>,
}

/// `global`: the defaults of every scrape config.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GlobalConfig {
    /// Default [`DEFAULT_GLOBAL_SCRAPE_INTERVAL`] (1m).
    #[serde(default = "default_interval", deserialize_with = "duration")]
    pub scrape_interval: Duration,
    /// Default [`DEFAULT_SCRAPE_TIMEOUT`] (10s), cut to `scrape_interval` when that is shorter.
    #[serde(default, deserialize_with = "opt_duration")]
    pub scrape_timeout: Option<Duration>,
}

impl Default for GlobalConfig {
    fn default() -> Self {
        GlobalConfig {
            scrape_interval: DEFAULT_GLOBAL_SCRAPE_INTERVAL,
            scrape_timeout: None,
        }
    }
}

impl GlobalConfig {
    /// The timeout jobs inherit: as written, else the default cut to the interval (only an
    /// explicit timeout longer than the interval is an error, as in Prometheus).
    pub fn timeout(&self) -> Duration {
        self.scrape_timeout
            .unwrap_or(DEFAULT_SCRAPE_TIMEOUT.min(self.scrape_interval))
    }
}

/// One `scrape_configs` entry: a job and how to scrape its targets.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScrapeConfig {
    /// The `job` label of every target; unique in the file.
    pub job_name: String,
    /// Default: `global.scrape_interval`.
    #[serde(default, deserialize_with = "opt_duration")]
    pub scrape_interval: Option<Duration>,
    /// Default: `global.scrape_timeout`, cut to the interval when longer (as Prometheus does).
    #[serde(default, deserialize_with = "opt_duration")]
    pub scrape_timeout: Option<Duration>,
    /// Default [`DEFAULT_METRICS_PATH`].
    #[serde(default = "default_metrics_path")]
    pub metrics_path: String,
    /// `http` or `https`; default [`DEFAULT_SCHEME`].
    #[serde(default = "default_scheme")]
    pub scheme: String,
    /// URL query parameters; the first value of each becomes a `__param_<name>` label that
    /// relabeling may change.
    #[serde(default)]
    pub params: BTreeMap<String, Vec<String>>,
    /// When true, scraped labels win over target labels; when false (default) a clashing
    /// scraped label is kept as `exported_<name>`.
    #[serde(default)]
    pub honor_labels: bool,
    /// When true (default), timestamps in the body are kept; when false, every sample gets
    /// the scrape's time.
    #[serde(default = "yes")]
    pub honor_timestamps: bool,
    /// Samples after metric relabeling above which the scrape fails; 0 (default) = no limit.
    #[serde(default)]
    pub sample_limit: u64,
    /// Labels per series above which the scrape fails; 0 (default) = no limit.
    #[serde(default)]
    pub label_limit: u64,
    /// Bytes of a label name above which the scrape fails; 0 (default) = no limit.
    #[serde(default)]
    pub label_name_length_limit: u64,
    /// Bytes of a label value above which the scrape fails; 0 (default) = no limit.
    #[serde(default)]
    pub label_value_length_limit: u64,
    /// Targets in this job above which none is scraped; 0 (default) = no limit.
    #[serde(default)]
    pub target_limit: u64,
    /// Uncompressed body bytes above which the scrape fails, in Prometheus's units (`10MB`,
    /// base 1024); 0 (default) = [`MAX_BODY_SIZE`].
    #[serde(default, deserialize_with = "size")]
    pub body_size_limit: u64,
    /// `http_config`: `Authorization: Basic` from a username and a password or password
    /// file (re-read at every scrape).
    #[serde(default)]
    pub basic_auth: Option<BasicAuthYaml>,
    /// `http_config`: `Authorization: <type> <credentials>`, type `Bearer` by default.
    #[serde(default)]
    pub authorization: Option<AuthorizationYaml>,
    /// `http_config`: the older spelling of `authorization` with type `Bearer`.
    #[serde(default)]
    pub bearer_token: Option<SecretText>,
    #[serde(default)]
    pub bearer_token_file: Option<PathBuf>,
    /// `http_config`: CA, client certificate and verification of `https` targets.
    #[serde(default)]
    pub tls_config: TlsConfig,
    /// `http_config`: every scrape of the job goes through this proxy.
    #[serde(default)]
    pub proxy_url: Option<String>,
    /// `http_config`: hosts reached directly despite `proxy_url`.
    #[serde(default)]
    pub no_proxy: Option<String>,
    /// `http_config`: use the proxies of `HTTP_PROXY`/`HTTPS_PROXY`/`NO_PROXY`; default false.
    #[serde(default)]
    pub proxy_from_environment: bool,
    /// `http_config`: follow redirects (up to 10); default true.
    #[serde(default = "yes")]
    pub follow_redirects: bool,
    #[serde(default)]
    pub static_configs: Vec<StaticConfig>,
    /// Pods of this node from the Kubernetes API server (`role: pod` only).
    #[serde(default)]
    pub kubernetes_sd_configs: Vec<KubernetesSdConfig>,
    /// Steps applied to each target's labels before it is scraped; a dropped target is
    /// listed under `droppedTargets`.
    #[serde(default)]
    pub relabel_configs: Vec<RelabelConfig>,
    /// Steps applied to each scraped series before it is shipped; a dropped series is not
    /// counted in `scrape_samples_post_metric_relabeling`.
    #[serde(default)]
    pub metric_relabel_configs: Vec<RelabelConfig>,
}

/// `static_configs` entry: fixed addresses sharing labels.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StaticConfig {
    /// `host:port` of each target.
    #[serde(default)]
    pub targets: Vec<String>,
    /// Labels every target of the group gets.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// A scrape config with the global defaults applied and its values checked: what a pool runs.
#[derive(Clone, Debug)]
pub struct PoolConfig {
    pub job_name: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub metrics_path: String,
    pub scheme: String,
    pub params: BTreeMap<String, Vec<String>>,
    pub honor_labels: bool,
    pub honor_timestamps: bool,
    pub sample_limit: u64,
    pub label_limit: u64,
    pub label_name_length_limit: u64,
    pub label_value_length_limit: u64,
    pub target_limit: u64,
    pub body_size_limit: u64,
    pub relabel_configs: Vec<RelabelConfig>,
    pub metric_relabel_configs: Vec<RelabelConfig>,
    pub kubernetes_sd_configs: Vec<KubernetesSdConfig>,
    /// Credentials, TLS and proxy of the job's requests.
    pub http: HttpClientConfig,
}

impl ScrapeConfig {
    /// The job's `http_config`, checked as Prometheus checks it (no file is read here).
    pub fn http_config(&self) -> Result<HttpClientConfig, HttpConfigError> {
        let http = HttpClientConfig {
            auth: auth_from_yaml(
                self.basic_auth.as_ref(),
                self.authorization.as_ref(),
                self.bearer_token.as_ref(),
                self.bearer_token_file.as_deref(),
            )?,
            tls: self.tls_config.clone(),
            proxy: ProxyConfig {
                proxy_url: self.proxy_url.clone(),
                no_proxy: self.no_proxy.clone(),
                proxy_from_environment: self.proxy_from_environment,
            },
            follow_redirects: self.follow_redirects,
        };
        http.validate()?;
        Ok(http)
    }

    /// Relative file paths of the `http_config` taken from `base`, the config file's
    /// directory, as Prometheus does.
    fn resolve_paths(&mut self, base: &Path) {
        self.tls_config = std::mem::take(&mut self.tls_config).resolve(base);
        let files = [
            self.bearer_token_file.as_mut(),
            self.basic_auth
                .as_mut()
                .and_then(|b| b.password_file.as_mut()),
            self.authorization
                .as_mut()
                .and_then(|a| a.credentials_file.as_mut()),
        ];
        for path in files.into_iter().flatten() {
            *path = base.join(&*path);
        }
    }
    /// The job scraping this node's pods annotated `prometheus.io/scrape: "true"`
    /// ([`ANNOTATED_PODS_JOB`], the Helm chart's `kubernetes-pods` job).
    pub fn annotated_pods() -> Result<ScrapeConfig, ScrapeError> {
        serde_yaml::from_str(ANNOTATED_PODS_JOB).map_err(|e| ScrapeError::Config(e.to_string()))
    }
}

impl ScrapeFile {
    /// Parses and validates a config file's text.
    pub fn parse(text: &str) -> Result<ScrapeFile, ScrapeError> {
        let file: ScrapeFile =
            serde_yaml::from_str(text).map_err(|e| ScrapeError::Config(e.to_string()))?;
        file.pools()?;
        Ok(file)
    }

    /// Relative `http_config` file paths of every job taken from `base`.
    pub fn resolve_paths(&mut self, base: &Path) {
        for sc in &mut self.scrape_configs {
            sc.resolve_paths(base);
        }
    }

    /// Every scrape config resolved against `global` and checked.
    pub fn pools(&self) -> Result<Vec<PoolConfig>, ScrapeError> {
        let bad = |job: &str, reason: String| ScrapeError::Config(format!("job {job:?}: {reason}"));
        if self.global.timeout() > self.global.scrape_interval {
            return Err(ScrapeError::Config(
                "global scrape_timeout greater than scrape_interval".into(),
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        let mut pools = Vec::with_capacity(self.scrape_configs.len());
        for sc in &self.scrape_configs {
            let job = sc.job_name.as_str();
            if job.is_empty() {
                return Err(ScrapeError::Config("job_name is empty".into()));
            }
            if !seen.insert(job) {
                return Err(bad(job, "job_name found more than once".into()));
            }
            let interval = sc.scrape_interval.unwrap_or(self.global.scrape_interval);
            if interval.is_zero() {
                return Err(bad(job, "scrape_interval must be positive".into()));
            }
            let timeout = match sc.scrape_timeout {
                Some(t) if t > interval => {
                    return Err(bad(
                        job,
                        "scrape_timeout greater than scrape_interval".into(),
                    ))
                }
                Some(t) => t,
                None => self.global.timeout().min(interval),
            };
            if timeout.is_zero() {
                return Err(bad(job, "scrape_timeout must be positive".into()));
            }
            if !matches!(sc.scheme.as_str(), "http" | "https") {
                return Err(bad(
                    job,
                    format!("scheme {:?} is not http or https", sc.scheme),
                ));
            }
            if !sc.metrics_path.starts_with('/') {
                return Err(bad(
                    job,
                    format!("metrics_path {:?} must start with /", sc.metrics_path),
                ));
            }
            for sd in &sc.kubernetes_sd_configs {
                sd.validate().map_err(|reason| bad(job, reason))?;
            }
            for group in &sc.static_configs {
                for t in &group.targets {
                    super::target::check_address(t).map_err(|reason| bad(job, reason))?;
                }
                for name in group.labels.keys() {
                    if !is_valid_label_name(name) {
                        return Err(bad(job, format!("invalid label name {name:?}")));
                    }
                }
            }
            let http = sc.http_config().map_err(|e| bad(job, e.to_string()))?;
            pools.push(PoolConfig {
                job_name: sc.job_name.clone(),
                interval,
                timeout,
                metrics_path: sc.metrics_path.clone(),
                scheme: sc.scheme.clone(),
                params: sc.params.clone(),
                honor_labels: sc.honor_labels,
                honor_timestamps: sc.honor_timestamps,
                sample_limit: sc.sample_limit,
                label_limit: sc.label_limit,
                label_name_length_limit: sc.label_name_length_limit,
                label_value_length_limit: sc.label_value_length_limit,
                target_limit: sc.target_limit,
                body_size_limit: if sc.body_size_limit == 0 {
                    MAX_BODY_SIZE
                } else {
                    sc.body_size_limit
                },
                kubernetes_sd_configs: sc.kubernetes_sd_configs.clone(),
                relabel_configs: sc.relabel_configs.clone(),
                metric_relabel_configs: sc.metric_relabel_configs.clone(),
                http,
            });
        }
        Ok(pools)
    }
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`, Prometheus's label name charset.
pub(crate) fn is_valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn default_interval() -> Duration {
    DEFAULT_GLOBAL_SCRAPE_INTERVAL
}

fn default_metrics_path() -> String {
    DEFAULT_METRICS_PATH.to_string()
}

fn default_scheme() -> String {
    DEFAULT_SCHEME.to_string()
}

fn yes() -> bool {
    true
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    model::parse_duration(&text).map_err(serde::de::Error::custom)
}

fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

fn size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Number(u64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Number(n) => Ok(n),
        Raw::Text(t) => parse_size(&t).map_err(serde::de::Error::custom),
    }
}

/// Prometheus's byte sizes (`units.Base2Bytes`): an integer and a unit among B, KB, MB, GB,
/// TB, PB, EB (also KiB…), powers of 1024.
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let invalid = || format!("invalid size {text:?}");
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().map_err(|_| invalid())?;
    let shift = match unit {
        "" | "B" => 0,
        "KB" | "KiB" => 10,
        "MB" | "MiB" => 20,
        "GB" | "GiB" => 30,
        "TB" | "TiB" => 40,
        "PB" | "PiB" => 50,
        "EB" | "EiB" => 60,
        _ => return Err(invalid()),
    };
    n.checked_mul(1u64 << shift).ok_or_else(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_file_resolves_with_global_defaults() {
        let file = ScrapeFile::parse("global:\n  scrape_interval: 15s\n  scrape_timeout: 20s\n");
        assert!(file.is_err(), "timeout above interval must fail");
        // Only an explicit one: the default timeout is cut to a short interval.
        let file =
            ScrapeFile::parse("global:\n  scrape_interval: 1s\nscrape_configs: [{job_name: a}]\n");
        assert_eq!(
            file.unwrap().pools().unwrap()[0].timeout,
            Duration::from_secs(1)
        );
        let file = ScrapeFile::parse(
            r#"
global:
  scrape_interval: 15s
scrape_configs:
  - job_name: node
    static_configs:
      - targets: ['127.0.0.1:9100']
        labels: {team: infra}
  - job_name: app
    scrape_interval: 5s
    metrics_path: /stats
    scheme: https
    params: {format: [prometheus]}
    honor_labels: true
    sample_limit: 100
    body_size_limit: 1MB
"#,
        )
        .unwrap();
        let pools = file.pools().unwrap();
        assert_eq!(pools[0].interval, Duration::from_secs(15));
        assert_eq!(pools[0].timeout, Duration::from_secs(10));
        assert_eq!(pools[0].metrics_path, "/metrics");
        assert!(pools[0].honor_timestamps && !pools[0].honor_labels);
        assert_eq!(pools[0].body_size_limit, MAX_BODY_SIZE);
        // A 10s global timeout does not fit a 5s interval: Prometheus cuts it to the interval.
        assert_eq!(pools[1].timeout, Duration::from_secs(5));
        assert_eq!(pools[1].scheme, "https");
        assert_eq!(pools[1].body_size_limit, 1 << 20);
        assert_eq!(pools[1].sample_limit, 100);
    }

    #[test]
    fn typo_and_bad_values_fail_with_their_name() {
        let typo =
            ScrapeFile::parse("scrape_configs:\n  - job_name: a\n    scrape_intervall: 5s\n");
        let msg = typo.unwrap_err().to_string();
        assert!(msg.contains("scrape_intervall"), "{msg}");
        for (text, needle) in [
            ("scrape_configs:\n  - job_name: a\n  - job_name: a\n", "more than once"),
            ("scrape_configs:\n  - job_name: a\n    scheme: ftp\n", "scheme"),
            ("scrape_configs:\n  - job_name: a\n    scrape_interval: 5s\n    scrape_timeout: 6s\n", "greater"),
            ("scrape_configs:\n  - job_name: a\n    static_configs: [{targets: ['h:1/x']}]\n", "path"),
            ("scrape_configs:\n  - job_name: a\n    static_configs: [{labels: {'1x': y}}]\n", "label name"),
            ("scrape_configs:\n  - job_name: a\n    body_size_limit: 10XB\n", "size"),
            ("scrape_configs:\n  - job_name: a\n    scrape_interval: soon\n", "duration"),
            ("scrape_configs:\n  - job_name: a\n    relabel_configs: [{action: nope}]\n", "unknown relabel action"),
        ] {
            let msg = ScrapeFile::parse(text).unwrap_err().to_string();
            assert!(msg.contains(needle), "{text}: {msg}");
        }
    }

    #[test]
    fn the_annotated_pods_job_loads() {
        let job = ScrapeConfig::annotated_pods().unwrap();
        assert_eq!(job.job_name, "kubernetes-pods");
        assert_eq!(job.kubernetes_sd_configs[0].role, "pod");
        assert_eq!(job.relabel_configs.len(), 11);
        let bad = "scrape_configs:\n  - job_name: a\n    kubernetes_sd_configs: [{role: node}]\n";
        let msg = ScrapeFile::parse(bad).unwrap_err().to_string();
        assert!(msg.contains("only pod"), "{msg}");
    }

    #[test]
    fn sizes_are_base_1024() {
        assert_eq!(parse_size("0").unwrap(), 0);
        assert_eq!(parse_size("512B").unwrap(), 512);
        assert_eq!(parse_size("10KB").unwrap(), 10 << 10);
        assert_eq!(parse_size("2GB").unwrap(), 2 << 30);
        assert!(parse_size("MB").is_err());
        assert!(parse_size("99999999999EB").is_err());
    }
}
