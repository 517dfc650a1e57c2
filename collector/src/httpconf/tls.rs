//! `tls_config` of Prometheus's `http_config`: the CA that verifies the server, the client
//! certificate, `insecure_skip_verify` and the protocol versions, applied to a reqwest client.
//!
//! Files are read when the client is built, that is at each config load; a changed file is
//! used from the next load on. `server_name` is refused: reqwest (without a direct rustls
//! dependency) cannot verify against, or send as SNI, a name other than the URL's host.

use std::path::{Path, PathBuf};

use reqwest::tls::{Certificate, Identity, Version};
use reqwest::ClientBuilder;
use serde::Deserialize;

use super::auth::SecretText;
use super::HttpConfigError;

/// `tls_config` as Prometheus reads it; relative paths are taken from the config file's
/// directory by [`TlsConfig::resolve`].
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM CA certificates, inline; replaces the system roots, as in Prometheus.
    pub ca: Option<String>,
    /// PEM CA certificates from a file; replaces the system roots.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (chain), inline.
    pub cert: Option<String>,
    pub cert_file: Option<PathBuf>,
    /// PEM private key of the client certificate, inline (shown as `<secret>`).
    pub key: Option<SecretText>,
    pub key_file: Option<PathBuf>,
    /// Refused when set: see the module documentation.
    pub server_name: Option<String>,
    /// Accept any server certificate and name; default false.
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// `TLS10` … `TLS13`; the TLS stack speaks 1.2 and 1.3 only, so lower values allow 1.2.
    pub min_version: Option<TlsVersion>,
    pub max_version: Option<TlsVersion>,
}

/// A TLS protocol version as Prometheus spells it.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
pub enum TlsVersion {
    TLS10,
    TLS11,
    TLS12,
    TLS13,
}

impl TlsVersion {
    fn reqwest(self) -> Version {
        match self {
            TlsVersion::TLS10 => Version::TLS_1_0,
            TlsVersion::TLS11 => Version::TLS_1_1,
            TlsVersion::TLS12 => Version::TLS_1_2,
            TlsVersion::TLS13 => Version::TLS_1_3,
        }
    }
}

impl TlsConfig {
    /// Relative file paths taken from `base`, the directory of the config file.
    pub fn resolve(mut self, base: &Path) -> TlsConfig {
        for path in [&mut self.ca_file, &mut self.cert_file, &mut self.key_file]
            .into_iter()
            .flatten()
        {
            *path = base.join(&*path);
        }
        self
    }

    /// Prometheus's checks: one source per item, a certificate only with its key.
    pub fn validate(&self) -> Result<(), HttpConfigError> {
        let invalid = |reason: &str| HttpConfigError::Invalid {
            field: "tls_config",
            reason: reason.to_string(),
        };
        if self.ca.is_some() && self.ca_file.is_some() {
            return Err(invalid("at most one of ca and ca_file must be configured"));
        }
        let cert = self.cert.is_some() as u8 + self.cert_file.is_some() as u8;
        let key = self.key.is_some() as u8 + self.key_file.is_some() as u8;
        if cert > 1 {
            return Err(invalid(
                "at most one of cert and cert_file must be configured",
            ));
        }
        if key > 1 {
            return Err(invalid(
                "at most one of key and key_file must be configured",
            ));
        }
        if cert == 1 && key == 0 {
            return Err(invalid(
                "exactly one of key or key_file must be configured when a client certificate is configured",
            ));
        }
        if key == 1 && cert == 0 {
            return Err(invalid(
                "exactly one of cert or cert_file must be configured when a client key is configured",
            ));
        }
        if self.server_name.is_some() {
            return Err(HttpConfigError::Unsupported {
                field: "tls_config.server_name",
                reason: "the TLS client verifies and sends the target's own host name; \
                         address the target by a name its certificate holds instead",
            });
        }
        Ok(())
    }

    /// Reads the PEM files and sets the client's roots, identity and versions.
    pub fn apply(&self, mut builder: ClientBuilder) -> Result<ClientBuilder, HttpConfigError> {
        self.validate()?;
        if let Some(pem) = pem(&self.ca, &self.ca_file)? {
            let certs = Certificate::from_pem_bundle(&pem).map_err(|e| HttpConfigError::Pem {
                what: "ca",
                origin: origin(&self.ca_file),
                reason: super::error_chain(&e),
            })?;
            if certs.is_empty() {
                return Err(HttpConfigError::Pem {
                    what: "ca",
                    origin: origin(&self.ca_file),
                    reason: "no PEM certificate found".into(),
                });
            }
            builder = builder.tls_certs_only(certs);
        }
        let key = self.key.as_ref().map(|k| k.0.clone());
        if let (Some(mut cert), Some(key)) = (
            pem(&self.cert, &self.cert_file)?,
            pem(&key, &self.key_file)?,
        ) {
            if !contains_pem(&cert, "CERTIFICATE") {
                return Err(HttpConfigError::Pem {
                    what: "cert",
                    origin: origin(&self.cert_file),
                    reason: "no PEM certificate found".into(),
                });
            }
            if !contains_pem(&key, "PRIVATE KEY") {
                return Err(HttpConfigError::Pem {
                    what: "key",
                    origin: origin(&self.key_file),
                    reason: "no PEM private key found".into(),
                });
            }
            cert.push(b'\n');
            cert.extend_from_slice(&key);
            let identity = Identity::from_pem(&cert).map_err(|e| HttpConfigError::Pem {
                what: "cert and key",
                origin: origin(&self.cert_file),
                reason: super::error_chain(&e),
            })?;
            builder = builder.identity(identity);
        }
        if self.insecure_skip_verify {
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        if let Some(v) = self.min_version {
            builder = builder.tls_version_min(v.reqwest());
        }
        if let Some(v) = self.max_version {
            builder = builder.tls_version_max(v.reqwest());
        }
        Ok(builder)
    }
}

/// The PEM bytes of an item given inline or as a file.
fn pem(
    inline: &Option<String>,
    file: &Option<PathBuf>,
) -> Result<Option<Vec<u8>>, HttpConfigError> {
    match (inline, file) {
        (Some(text), _) => Ok(Some(text.clone().into_bytes())),
        (None, Some(path)) => {
            std::fs::read(path)
                .map(Some)
                .map_err(|source| HttpConfigError::Read {
                    path: path.clone(),
                    source,
                })
        }
        (None, None) => Ok(None),
    }
}

/// `-----BEGIN <label>` with any prefix (`EC PRIVATE KEY`, `RSA PRIVATE KEY`).
fn contains_pem(pem: &[u8], label: &str) -> bool {
    let text = String::from_utf8_lossy(pem);
    text.lines()
        .any(|l| l.starts_with("-----BEGIN ") && l.trim_end().ends_with(&format!("{label}-----")))
}

fn origin(file: &Option<PathBuf>) -> String {
    match file {
        Some(path) => path.display().to_string(),
        None => "inline".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn testdata(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/httpconf/testdata")
            .join(name)
    }

    fn build(tls: &TlsConfig) -> Result<reqwest::Client, HttpConfigError> {
        tls.apply(reqwest::Client::builder())?
            .build()
            .map_err(HttpConfigError::Client)
    }

    #[test]
    fn good_pems_build_a_client() {
        let tls = TlsConfig {
            ca_file: Some(testdata("ca.crt")),
            cert_file: Some(testdata("client.crt")),
            key_file: Some(testdata("client.key")),
            min_version: Some(TlsVersion::TLS12),
            ..TlsConfig::default()
        };
        build(&tls).unwrap();
        let inline = TlsConfig {
            ca: Some(std::fs::read_to_string(testdata("ca.crt")).unwrap()),
            ..TlsConfig::default()
        };
        build(&inline).unwrap();
    }

    #[test]
    fn bad_pems_and_missing_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "not a certificate\n").unwrap();
        let cases = [
            (
                TlsConfig {
                    ca_file: Some(garbage.clone()),
                    ..TlsConfig::default()
                },
                "no PEM certificate found",
            ),
            (
                TlsConfig {
                    ca_file: Some(dir.path().join("absent.pem")),
                    ..TlsConfig::default()
                },
                "absent.pem",
            ),
            (
                TlsConfig {
                    cert_file: Some(testdata("client.crt")),
                    key_file: Some(garbage.clone()),
                    ..TlsConfig::default()
                },
                "no PEM private key found",
            ),
            (
                TlsConfig {
                    cert_file: Some(testdata("client.crt")),
                    ..TlsConfig::default()
                },
                "exactly one of key or key_file",
            ),
            (
                TlsConfig {
                    ca: Some(String::new()),
                    ca_file: Some(garbage.clone()),
                    ..TlsConfig::default()
                },
                "at most one of ca and ca_file",
            ),
            (
                TlsConfig {
                    server_name: Some("example".into()),
                    ..TlsConfig::default()
                },
                "tls_config.server_name",
            ),
        ];
        for (tls, want) in cases {
            let msg = build(&tls).unwrap_err().to_string();
            assert!(msg.contains(want), "{tls:?}: {msg}");
        }
    }

    #[test]
    fn yaml_keys_versions_and_relative_paths() {
        let tls: TlsConfig = serde_yaml::from_str(
            "{ca_file: ca.crt, insecure_skip_verify: true, min_version: TLS13}",
        )
        .unwrap();
        assert_eq!(tls.min_version, Some(TlsVersion::TLS13));
        let tls = tls.resolve(Path::new("/etc/vigil"));
        assert_eq!(tls.ca_file.as_deref(), Some(Path::new("/etc/vigil/ca.crt")));
        assert!(serde_yaml::from_str::<TlsConfig>("{ca_fil: x}").is_err());
        assert!(serde_yaml::from_str::<TlsConfig>("{min_version: TLS14}").is_err());
        let key: TlsConfig = serde_yaml::from_str("{key: very-secret}").unwrap();
        assert!(!format!("{key:?}").contains("very-secret"));
    }
}
