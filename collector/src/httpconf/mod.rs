//! Prometheus's `http_config` turned into an HTTP client: the one place where scrape jobs and
//! remote-write queues get their TLS settings, proxy and credentials.
//!
//! - `auth.rs`: `basic_auth`, `authorization`, `bearer_token[_file]`; secret files are read
//!   again at every request ([`HttpClient::get`]), as Prometheus does.
//! - `tls.rs`: `tls_config` (CA, client certificate, `insecure_skip_verify`, versions).
//! - here: `proxy_url`, `no_proxy`, `proxy_from_environment`, `follow_redirects`, and the
//!   [`HttpClientConfig`] that builds a [`HttpClient`].
//!
//! Prometheus does not read `HTTP_PROXY` and friends unless `proxy_from_environment` is set,
//! so neither does a client built here.

mod auth;
#[cfg(test)]
pub(crate) mod peers;
mod tls;

use std::path::PathBuf;

use reqwest::header::AUTHORIZATION;
use reqwest::redirect::Policy;
use reqwest::{ClientBuilder, NoProxy, Proxy};

pub use auth::{auth_from_yaml, Auth, AuthorizationYaml, BasicAuthYaml, Secret, SecretText};
pub use tls::{TlsConfig, TlsVersion};

/// Why an `http_config` cannot be used, or a request's credentials cannot be read.
#[derive(thiserror::Error, Debug)]
pub enum HttpConfigError {
    /// Two settings that exclude each other, or a value out of range.
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    /// A setting this client cannot apply; refused rather than ignored.
    #[error("{field} is not supported: {reason}")]
    Unsupported {
        field: &'static str,
        reason: &'static str,
    },
    /// A file named by the config could not be read.
    #[error("unable to read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A certificate or key is not usable PEM.
    #[error("tls_config {what} ({origin}): {reason}")]
    Pem {
        what: &'static str,
        origin: String,
        reason: String,
    },
    /// The client could not be built from otherwise valid settings.
    #[error("building the http client: {}", error_chain(.0))]
    Client(#[source] reqwest::Error),
}

/// `proxy_url`, `no_proxy` and `proxy_from_environment`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProxyConfig {
    /// Every request goes through this proxy (`http://user:pass@host:port` for a proxy that
    /// wants credentials).
    pub proxy_url: Option<String>,
    /// Comma-separated hosts, domains and CIDRs reached directly despite `proxy_url`.
    pub no_proxy: Option<String>,
    /// Use `HTTP_PROXY`, `HTTPS_PROXY` and `NO_PROXY` from the environment.
    pub proxy_from_environment: bool,
}

impl ProxyConfig {
    /// Prometheus's checks on the proxy fields.
    pub fn validate(&self) -> Result<(), HttpConfigError> {
        let invalid = |reason: &str| HttpConfigError::Invalid {
            field: "proxy_url",
            reason: reason.to_string(),
        };
        if self.proxy_from_environment && self.proxy_url.is_some() {
            return Err(invalid(
                "if proxy_from_environment is configured, proxy_url must not be configured",
            ));
        }
        if self.no_proxy.is_some() && self.proxy_url.is_none() {
            return Err(invalid(
                "if no_proxy is configured, proxy_url must also be configured",
            ));
        }
        Ok(())
    }

    pub fn apply(&self, builder: ClientBuilder) -> Result<ClientBuilder, HttpConfigError> {
        self.validate()?;
        match &self.proxy_url {
            Some(url) => {
                let proxy = Proxy::all(url.as_str()).map_err(|e| HttpConfigError::Invalid {
                    field: "proxy_url",
                    reason: format!("{url:?}: {}", error_chain(&e)),
                })?;
                let no_proxy = self.no_proxy.as_deref().and_then(NoProxy::from_string);
                Ok(builder.proxy(proxy.no_proxy(no_proxy)))
            }
            // reqwest's default is the environment's proxies.
            None if self.proxy_from_environment => Ok(builder),
            None => Ok(builder.no_proxy()),
        }
    }
}

/// An `http_config` checked and resolved: what [`HttpClientConfig::build`] turns into a client.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpClientConfig {
    pub auth: Option<Auth>,
    pub tls: TlsConfig,
    pub proxy: ProxyConfig,
    /// Follow up to 10 redirects (Go's limit) when true, the default.
    pub follow_redirects: bool,
}

impl Default for HttpClientConfig {
    fn default() -> Self {
        HttpClientConfig {
            auth: None,
            tls: TlsConfig::default(),
            proxy: ProxyConfig::default(),
            follow_redirects: true,
        }
    }
}

impl HttpClientConfig {
    /// Checks every part without reading files.
    pub fn validate(&self) -> Result<(), HttpConfigError> {
        self.tls.validate()?;
        self.proxy.validate()
    }

    /// Applies TLS, proxy and redirects to `builder` (which carries the caller's user agent
    /// and timeouts), reading the PEM files now and each secret file once, so a bad file
    /// fails the config load.
    pub fn build(&self, builder: ClientBuilder) -> Result<HttpClient, HttpConfigError> {
        let builder = self.tls.apply(builder)?;
        let builder = self.proxy.apply(builder)?;
        let builder = builder.redirect(if self.follow_redirects {
            Policy::limited(10)
        } else {
            Policy::none()
        });
        if let Some(auth) = &self.auth {
            auth.header_value()?;
        }
        let client = builder.build().map_err(HttpConfigError::Client)?;
        Ok(HttpClient {
            client,
            auth: self.auth.clone(),
        })
    }
}

/// A client with its credentials: each request gets a fresh `Authorization`.
#[derive(Clone, Debug)]
pub struct HttpClient {
    client: reqwest::Client,
    auth: Option<Auth>,
}

impl HttpClient {
    /// A plain client (no credentials, no proxy), for tests and unauthenticated peers.
    pub fn plain(client: reqwest::Client) -> HttpClient {
        HttpClient { client, auth: None }
    }

    /// A GET with the current credentials; fails when a secret file cannot be read, as
    /// Prometheus fails the scrape.
    pub fn get(&self, url: reqwest::Url) -> Result<reqwest::RequestBuilder, HttpConfigError> {
        let request = self.client.get(url);
        Ok(match &self.auth {
            Some(auth) => request.header(AUTHORIZATION, auth.header_value()?),
            None => request,
        })
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }
}

/// reqwest's top-level message says little ("error sending request"); the causes say why.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_checks_follow_prometheus() {
        let both = ProxyConfig {
            proxy_url: Some("http://p:3128".into()),
            proxy_from_environment: true,
            ..ProxyConfig::default()
        };
        assert!(both
            .validate()
            .unwrap_err()
            .to_string()
            .contains("must not"));
        let lone = ProxyConfig {
            no_proxy: Some("10.0.0.0/8".into()),
            ..ProxyConfig::default()
        };
        assert!(lone
            .validate()
            .unwrap_err()
            .to_string()
            .contains("no_proxy"));
        let bad = ProxyConfig {
            proxy_url: Some("::not a url".into()),
            ..ProxyConfig::default()
        };
        assert!(bad.apply(reqwest::Client::builder()).is_err());
    }
}
