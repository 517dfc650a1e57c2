//! Request credentials of Prometheus's `http_config`: `basic_auth` and `authorization` (or the
//! older `bearer_token`), each secret given inline or as a file that is read again for every
//! request, as Prometheus does, so a rotated token is used without a restart.

use std::fmt;
use std::path::{Path, PathBuf};

use reqwest::header::HeaderValue;
use serde::Deserialize;

use super::HttpConfigError;

/// A secret given inline or as a file read at each use. Its `Debug` never shows the inline
/// value, so a config printed in a log or an error stays safe.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    Inline(String),
    File(PathBuf),
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Secret::Inline(_) => f.write_str("Inline(<secret>)"),
            Secret::File(path) => f.debug_tuple("File").field(path).finish(),
        }
    }
}

impl Secret {
    /// The secret's current value; a file's content is trimmed of surrounding whitespace
    /// (Prometheus trims the trailing newline editors add).
    pub fn read(&self) -> Result<String, HttpConfigError> {
        match self {
            Secret::Inline(s) => Ok(s.clone()),
            Secret::File(path) => std::fs::read_to_string(path)
                .map(|s| s.trim().to_string())
                .map_err(|source| HttpConfigError::Read {
                    path: path.clone(),
                    source,
                }),
        }
    }

    /// A relative file path taken from the directory of the config file that named it.
    pub fn resolve(self, base: &Path) -> Secret {
        match self {
            Secret::File(path) => Secret::File(base.join(path)),
            inline => inline,
        }
    }
}

/// How requests authenticate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Auth {
    /// `basic_auth`: `Authorization: Basic base64(username:password)`.
    Basic { username: String, password: Secret },
    /// `authorization` (or `bearer_token`): `Authorization: <scheme> <credentials>`;
    /// Prometheus's default scheme is `Bearer`.
    Credentials { scheme: String, credentials: Secret },
}

impl Auth {
    /// The `Authorization` value, reading a secret file now; marked sensitive so it is never
    /// logged by the HTTP stack.
    pub fn header_value(&self) -> Result<HeaderValue, HttpConfigError> {
        let text = match self {
            Auth::Basic { username, password } => {
                let password = password.read()?;
                format!(
                    "Basic {}",
                    base64(format!("{username}:{password}").as_bytes())
                )
            }
            Auth::Credentials {
                scheme,
                credentials,
            } => format!("{scheme} {}", credentials.read()?),
        };
        let mut value = HeaderValue::try_from(text).map_err(|_| HttpConfigError::Invalid {
            field: "authorization",
            reason: "the credentials are not a valid HTTP header value".into(),
        })?;
        value.set_sensitive(true);
        Ok(value)
    }
}

/// `basic_auth` as written in YAML.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BasicAuthYaml {
    #[serde(default)]
    pub username: String,
    pub password: Option<SecretText>,
    pub password_file: Option<PathBuf>,
}

/// `authorization` as written in YAML.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AuthorizationYaml {
    /// Default `Bearer`.
    #[serde(rename = "type")]
    pub scheme: Option<String>,
    pub credentials: Option<SecretText>,
    pub credentials_file: Option<PathBuf>,
}

/// An inline secret in YAML: deserialized as a plain string, shown as `<secret>` by `Debug`.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct SecretText(pub String);

impl fmt::Debug for SecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

/// The authentication a `http_config` asks for, checked as Prometheus checks it: at most one
/// of `basic_auth`, `authorization` and `bearer_token`/`bearer_token_file`, and at most one
/// source per secret.
pub fn auth_from_yaml(
    basic_auth: Option<&BasicAuthYaml>,
    authorization: Option<&AuthorizationYaml>,
    bearer_token: Option<&SecretText>,
    bearer_token_file: Option<&Path>,
) -> Result<Option<Auth>, HttpConfigError> {
    let invalid = |reason: &str| HttpConfigError::Invalid {
        field: "http_config",
        reason: reason.to_string(),
    };
    if bearer_token.is_some() && bearer_token_file.is_some() {
        return Err(invalid(
            "at most one of bearer_token & bearer_token_file must be configured",
        ));
    }
    let bearer = bearer_token.is_some() || bearer_token_file.is_some();
    if basic_auth.is_some() && bearer {
        return Err(invalid(
            "at most one of basic_auth, bearer_token & bearer_token_file must be configured",
        ));
    }
    if authorization.is_some() && bearer {
        return Err(invalid(
            "authorization is not compatible with bearer_token & bearer_token_file",
        ));
    }
    if basic_auth.is_some() && authorization.is_some() {
        return Err(invalid(
            "at most one of basic_auth, oauth2 & authorization must be configured",
        ));
    }
    if let Some(b) = basic_auth {
        let password = match (&b.password, &b.password_file) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "at most one of basic_auth password & password_file must be configured",
                ))
            }
            (Some(p), None) => Secret::Inline(p.0.clone()),
            (None, Some(f)) => Secret::File(f.clone()),
            (None, None) => Secret::Inline(String::new()),
        };
        return Ok(Some(Auth::Basic {
            username: b.username.clone(),
            password,
        }));
    }
    if let Some(a) = authorization {
        let scheme = a.scheme.clone().unwrap_or_else(|| "Bearer".to_string());
        if scheme.eq_ignore_ascii_case("basic") {
            return Err(invalid(
                "authorization type cannot be set to \"basic\", use \"basic_auth\" instead",
            ));
        }
        let credentials = match (&a.credentials, &a.credentials_file) {
            (Some(_), Some(_)) => return Err(invalid(
                "at most one of authorization credentials & credentials_file must be configured",
            )),
            (Some(c), None) => Secret::Inline(c.0.clone()),
            (None, Some(f)) => Secret::File(f.clone()),
            (None, None) => Secret::Inline(String::new()),
        };
        return Ok(Some(Auth::Credentials {
            scheme,
            credentials,
        }));
    }
    let bearer = match (bearer_token, bearer_token_file) {
        (Some(t), _) => Secret::Inline(t.0.clone()),
        (None, Some(f)) => Secret::File(f.to_path_buf()),
        (None, None) => return Ok(None),
    };
    Ok(Some(Auth::Credentials {
        scheme: "Bearer".into(),
        credentials: bearer,
    }))
}

/// Standard base64 with padding (RFC 4648), for `Basic` credentials.
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_rfc_4648_vectors() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), want);
        }
    }

    #[test]
    fn basic_and_bearer_values() {
        let basic = Auth::Basic {
            username: "Aladdin".into(),
            password: Secret::Inline("open sesame".into()),
        };
        assert_eq!(
            basic.header_value().unwrap(),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        let a = auth_from_yaml(None, None, Some(&SecretText("tok".into())), None)
            .unwrap()
            .unwrap();
        assert_eq!(a.header_value().unwrap(), "Bearer tok");
        assert!(auth_from_yaml(None, None, None, None).unwrap().is_none());
    }

    #[test]
    fn prometheus_exclusions_and_redacted_debug() {
        let basic = BasicAuthYaml {
            username: "u".into(),
            password: Some(SecretText("hunter2".into())),
            password_file: Some("pw".into()),
        };
        let tok = SecretText("t".into());
        let authz = AuthorizationYaml {
            scheme: Some("basic".into()),
            ..Default::default()
        };
        for (result, want) in [
            (
                auth_from_yaml(Some(&basic), None, None, None),
                "password & password_file",
            ),
            (
                auth_from_yaml(None, None, Some(&tok), Some(Path::new("f"))),
                "bearer_token & bearer_token_file",
            ),
            (
                auth_from_yaml(Some(&basic), None, Some(&tok), None),
                "at most one of basic_auth",
            ),
            (
                auth_from_yaml(None, Some(&authz), Some(&tok), None),
                "not compatible",
            ),
            (auth_from_yaml(None, Some(&authz), None, None), "\"basic\""),
        ] {
            let msg = result.unwrap_err().to_string();
            assert!(msg.contains(want), "{msg}");
        }
        let shown = format!("{basic:?} {:?}", Secret::Inline("hunter2".into()));
        assert!(
            !shown.contains("hunter2") && shown.contains("<secret>"),
            "{shown}"
        );
    }
}
