//! The `remote_write` section of the server's config file, read as Prometheus 2.42 reads it:
//! the same fields, defaults and validation messages, into `collector::ForwardConfig`.
//!
//! `tls_config` (but `server_name`) and the proxy fields are applied through
//! `collector::TlsConfig`/`ProxyConfig`. Fields that would change where or how credentials are
//! sent and that Vigil cannot apply (`oauth2`, `sigv4`, `azuread`, `tls_config.server_name`,
//! `proxy_connect_header`) are refused rather than ignored, so a file that needs them fails at
//! start instead of sending without them. Fields that only tune what is sent
//! (`metadata_config`, exemplars, native histograms, HTTP/2, redirects) are accepted with a
//! warning: there is nothing of that kind to send yet.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use collector::{Auth, ForwardConfig, QueueConfig, Secret};
use serde_yaml::{Mapping, Value};

/// Accepted and named in a warning: nothing they describe is forwarded yet.
const UNAPPLIED: &[&str] = &[
    "metadata_config",
    "send_exemplars",
    "send_native_histograms",
    "follow_redirects",
    "enable_http2",
    "protobuf_message",
    "round_robin_dns",
];
/// Refused: ignoring them would send requests without the credentials or route they ask for.
const UNSUPPORTED: &[&str] = &[
    "oauth2",
    "sigv4",
    "azuread",
    "google_iam",
    "proxy_connect_header",
    "http_headers",
];

/// Parses the `remote_write` list; `base` resolves relative `*_file` paths.
pub(super) fn parse(value: &Value, base: &Path) -> anyhow::Result<Vec<ForwardConfig>> {
    let entries = match value {
        Value::Null => return Ok(Vec::new()),
        Value::Sequence(entries) => entries,
        _ => bail!("remote_write must be a list"),
    };
    let mut out: Vec<ForwardConfig> = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let cfg = parse_entry(entry, base).with_context(|| format!("remote_write[{i}]"))?;
        if let Some(name) = &cfg.name {
            if out.iter().any(|c| c.name.as_ref() == Some(name)) {
                bail!("found multiple remote write configs with job name {name:?}");
            }
        }
        out.push(cfg);
    }
    Ok(out)
}

fn mapping<'a>(value: &'a Value, what: &str) -> anyhow::Result<&'a Mapping> {
    value
        .as_mapping()
        .with_context(|| format!("{what} must be a mapping"))
}

fn string(value: &Value, key: &str) -> anyhow::Result<String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        _ => bail!("{key} must be a string"),
    }
}

fn duration(value: &Value, key: &str) -> anyhow::Result<Duration> {
    let s = string(value, key)?;
    let ms = api::parse_prometheus_duration(&s)
        .with_context(|| format!("{key}: not a valid duration string: {s:?}"))?;
    Ok(Duration::from_millis(ms.max(0) as u64))
}

fn count(value: &Value, key: &str) -> anyhow::Result<usize> {
    value
        .as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .with_context(|| format!("{key} must be a non-negative integer"))
}

fn file(value: &Value, key: &str, base: &Path) -> anyhow::Result<Secret> {
    Ok(Secret::File(base.join(string(value, key)?)))
}

fn parse_entry(entry: &Value, base: &Path) -> anyhow::Result<ForwardConfig> {
    let map = mapping(entry, "a remote_write entry")?;
    let mut cfg = ForwardConfig::new(String::new());
    let mut basic: Option<Auth> = None;
    let mut authorization: Option<Auth> = None;
    let mut bearer: Option<Secret> = None;
    for (key, value) in map {
        let key = key.as_str().unwrap_or_default();
        match key {
            "url" => cfg.url = string(value, key)?,
            "name" => cfg.name = Some(string(value, key)?),
            "remote_timeout" => cfg.remote_timeout = duration(value, key)?,
            "headers" => {
                for (name, v) in mapping(value, key)? {
                    let name = name.as_str().context("header names must be strings")?;
                    cfg.headers.push((name.to_string(), string(v, name)?));
                }
            }
            "basic_auth" => basic = Some(basic_auth(value, base)?),
            "authorization" => authorization = Some(authorization_section(value, base)?),
            "bearer_token" => {
                if bearer.is_some() {
                    bail!("at most one of bearer_token & bearer_token_file must be configured");
                }
                bearer = Some(Secret::Inline(string(value, key)?));
            }
            "bearer_token_file" => {
                if bearer.is_some() {
                    bail!("at most one of bearer_token & bearer_token_file must be configured");
                }
                bearer = Some(file(value, key, base)?);
            }
            "write_relabel_configs" => {
                cfg.write_relabel_configs =
                    serde_yaml::from_value(value.clone()).context("write_relabel_configs")?;
            }
            "queue_config" => cfg.queue = queue_config(value)?,
            "tls_config" => {
                let tls: collector::TlsConfig =
                    serde_yaml::from_value(value.clone()).context("tls_config")?;
                cfg.tls = tls.resolve(base);
            }
            "proxy_url" => cfg.proxy.proxy_url = Some(string(value, key)?),
            "no_proxy" => cfg.proxy.no_proxy = Some(string(value, key)?),
            "proxy_from_environment" => {
                cfg.proxy.proxy_from_environment = value
                    .as_bool()
                    .context("proxy_from_environment must be a boolean")?
            }
            k if UNAPPLIED.contains(&k) => {
                tracing::warn!(key = k, "remote_write setting accepted but not applied yet")
            }
            k if UNSUPPORTED.contains(&k) => {
                bail!("{k} is not supported yet; remove it or use a plain http(s) receiver")
            }
            other => bail!("field {other} not found in type config.RemoteWriteConfig"),
        }
    }
    if cfg.url.is_empty() {
        bail!("url for remote_write is empty");
    }
    let bearer = bearer.map(|credentials| Auth::Credentials {
        scheme: "Bearer".into(),
        credentials,
    });
    let auths: Vec<Auth> = [basic, authorization, bearer]
        .into_iter()
        .flatten()
        .collect();
    if auths.len() > 1 {
        bail!("at most one of basic_auth, oauth2, bearer_token & bearer_token_file must be configured");
    }
    cfg.auth = auths.into_iter().next();
    cfg.tls.validate()?;
    cfg.proxy.validate()?;
    Ok(cfg)
}

fn basic_auth(value: &Value, base: &Path) -> anyhow::Result<Auth> {
    let mut username = String::new();
    let mut password = None;
    for (key, v) in mapping(value, "basic_auth")? {
        let key = key.as_str().unwrap_or_default();
        let secret = match key {
            "username" => {
                username = string(v, key)?;
                continue;
            }
            "password" => Secret::Inline(string(v, key)?),
            "password_file" => file(v, key, base)?,
            other => bail!("field {other} not found in type config.BasicAuth"),
        };
        if password.is_some() {
            bail!("at most one of basic_auth password & password_file must be configured");
        }
        password = Some(secret);
    }
    Ok(Auth::Basic {
        username,
        password: password.unwrap_or(Secret::Inline(String::new())),
    })
}

fn authorization_section(value: &Value, base: &Path) -> anyhow::Result<Auth> {
    let mut scheme = "Bearer".to_string();
    let mut credentials = None;
    for (key, v) in mapping(value, "authorization")? {
        let key = key.as_str().unwrap_or_default();
        let secret = match key {
            "type" => {
                scheme = string(v, key)?;
                continue;
            }
            "credentials" => Secret::Inline(string(v, key)?),
            "credentials_file" => file(v, key, base)?,
            other => bail!("field {other} not found in type config.Authorization"),
        };
        if credentials.is_some() {
            bail!("at most one of authorization credentials & credentials_file must be configured");
        }
        credentials = Some(secret);
    }
    if scheme.eq_ignore_ascii_case("basic") {
        bail!("authorization type cannot be set to \"basic\", use \"basic_auth\" instead");
    }
    Ok(Auth::Credentials {
        scheme,
        credentials: credentials.unwrap_or(Secret::Inline(String::new())),
    })
}

fn queue_config(value: &Value) -> anyhow::Result<QueueConfig> {
    let mut q = QueueConfig::default();
    for (key, v) in mapping(value, "queue_config")? {
        let key = key.as_str().unwrap_or_default();
        match key {
            "capacity" => q.capacity = count(v, key)?,
            "max_shards" => q.max_shards = count(v, key)?,
            "min_shards" => q.min_shards = count(v, key)?,
            "max_samples_per_send" => q.max_samples_per_send = count(v, key)?,
            "batch_send_deadline" => q.batch_send_deadline = duration(v, key)?,
            "min_backoff" => q.backoff.min = duration(v, key)?,
            "max_backoff" => q.backoff.max = duration(v, key)?,
            "retry_on_http_429" => {
                q.retry_on_http_429 = v.as_bool().context("retry_on_http_429 must be a boolean")?
            }
            // Prometheus 2.42 ignores these too once set: it has no age limit and reads
            // the WAL, so no retries happen at enqueue.
            "sample_age_limit" | "max_retries" => {
                tracing::warn!(key, "queue_config setting accepted but not applied")
            }
            other => bail!("field {other} not found in type config.QueueConfig"),
        }
    }
    Ok(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_yaml(text: &str) -> anyhow::Result<Vec<ForwardConfig>> {
        let v: Value = serde_yaml::from_str(text).unwrap();
        parse(&v, Path::new("/etc/vigil"))
    }

    #[test]
    fn all_prometheus_fields_with_defaults() {
        let cfgs = parse_yaml(
            "- url: http://mimir:9009/api/v1/push\n  name: mimir\n  remote_timeout: 10s\n  headers: {X-Scope-OrgID: team-a}\n  basic_auth: {username: u, password_file: pw}\n  write_relabel_configs:\n    - {source_labels: [__name__], regex: 'go_.*', action: drop}\n  queue_config: {capacity: 100, max_shards: 4, min_shards: 2, max_samples_per_send: 50, batch_send_deadline: 1s, min_backoff: 10ms, max_backoff: 1s, retry_on_http_429: true}\n- url: http://thanos/api/v1/receive\n  authorization: {credentials: tok}\n",
        )
        .unwrap();
        let a = &cfgs[0];
        assert_eq!(a.name.as_deref(), Some("mimir"));
        assert_eq!(a.remote_timeout, Duration::from_secs(10));
        assert_eq!(
            a.headers,
            [("X-Scope-OrgID".to_string(), "team-a".to_string())]
        );
        assert_eq!(
            a.auth,
            Some(Auth::Basic {
                username: "u".into(),
                password: Secret::File("/etc/vigil/pw".into())
            })
        );
        assert_eq!(a.write_relabel_configs.len(), 1);
        assert_eq!(
            (a.queue.capacity, a.queue.max_shards, a.queue.min_shards),
            (100, 4, 2)
        );
        assert_eq!(a.queue.max_samples_per_send, 50);
        assert_eq!(a.queue.batch_send_deadline, Duration::from_secs(1));
        assert_eq!(a.queue.backoff.min, Duration::from_millis(10));
        assert!(a.queue.retry_on_http_429);
        let b = &cfgs[1];
        assert_eq!(b.queue, QueueConfig::default());
        assert_eq!(b.remote_timeout, Duration::from_secs(30));
        assert_eq!(
            b.auth,
            Some(Auth::Credentials {
                scheme: "Bearer".into(),
                credentials: Secret::Inline("tok".into())
            })
        );
    }

    #[test]
    fn prometheus_validation_errors() {
        let cases = [
            ("- name: x", "url for remote_write is empty"),
            (
                "- {url: 'http://a', basic_auth: {username: u}, bearer_token: t}",
                "at most one of basic_auth, oauth2, bearer_token & bearer_token_file",
            ),
            (
                "- {url: 'http://a', basic_auth: {username: u, password: p, password_file: f}}",
                "at most one of basic_auth password & password_file",
            ),
            (
                "- {url: 'http://a', authorization: {type: Basic, credentials: c}}",
                "authorization type cannot be set to \"basic\"",
            ),
            (
                "- {url: 'http://a', name: n}\n- {url: 'http://b', name: n}",
                "found multiple remote write configs with job name \"n\"",
            ),
            (
                "- {url: 'http://a', queue_config: {capacty: 1}}",
                "field capacty not found in type config.QueueConfig",
            ),
            (
                "- {url: 'http://a', remote_timout: 1s}",
                "field remote_timout not found in type config.RemoteWriteConfig",
            ),
            ("- {url: 'http://a', tls_config: {ca_fil: x}}", "ca_fil"),
            (
                "- {url: 'http://a', tls_config: {server_name: x}}",
                "tls_config.server_name is not supported",
            ),
            (
                "- {url: 'http://a', oauth2: {client_id: x}}",
                "oauth2 is not supported yet",
            ),
            (
                "- {url: 'http://a', write_relabel_configs: [{action: hashmod, target_label: x}]}",
                "requires non-zero modulus",
            ),
            (
                "- {url: 'http://a', remote_timeout: soon}",
                "not a valid duration string",
            ),
        ];
        for (yaml, want) in cases {
            let err = format!("{:#}", parse_yaml(yaml).unwrap_err());
            assert!(err.contains(want), "{yaml}: {err}");
        }
    }
}
