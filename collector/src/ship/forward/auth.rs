//! Credentials and extra headers of a remote-write queue: `basic_auth` and `authorization`
//! (or the older `bearer_token`), with secrets given inline or read from a file.
//!
//! A `*_file` secret is read again for every request, as Prometheus does, so a rotated
//! token is picked up without a restart; if the file becomes unreadable the last value read
//! is kept and the failure logged.

use std::path::PathBuf;
use std::sync::Mutex;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION};

use crate::Error;

/// Headers a remote-write config may not set, because the protocol or the client owns them
/// (Prometheus's `reservedHeaders`).
const RESERVED_HEADERS: &[&str] = &[
    "authorization",
    "host",
    "content-encoding",
    "content-length",
    "content-type",
    "user-agent",
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "www-authenticate",
    "accept-encoding",
    "x-prometheus-remote-write-version",
    "x-prometheus-scrape-timeout-seconds",
];

/// A secret given inline or as a file read at each use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Secret {
    Inline(String),
    File(PathBuf),
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

/// Builds each request's headers: the fixed protocol headers, the configured extra headers,
/// and `Authorization` from a secret that may be re-read.
#[derive(Debug)]
pub(crate) struct RequestHeaders {
    base: HeaderMap,
    auth: Option<Auth>,
    /// The last `Authorization` value built, reused when a secret file cannot be read.
    last_auth: Mutex<Option<HeaderValue>>,
}

impl RequestHeaders {
    /// Checks the extra headers and reads the secrets once, so a bad config fails at start.
    pub(crate) fn new(
        mut base: HeaderMap,
        extra: &[(String, String)],
        auth: Option<Auth>,
    ) -> Result<Self, Error> {
        for (name, value) in extra {
            if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                return Err(Error::Config {
                    field: "remote_write.headers",
                    reason: format!("{name} is a reserved header. It must not be changed"),
                });
            }
            let bad = |reason: String| Error::Config {
                field: "remote_write.headers",
                reason,
            };
            let name =
                HeaderName::try_from(name.as_str()).map_err(|e| bad(format!("{name:?}: {e}")))?;
            let value =
                HeaderValue::try_from(value.as_str()).map_err(|e| bad(format!("{name}: {e}")))?;
            base.insert(name, value);
        }
        let headers = RequestHeaders {
            base,
            auth,
            last_auth: Mutex::new(None),
        };
        if let Some(auth) = &headers.auth {
            let value = authorization(auth)?;
            if let Ok(mut last) = headers.last_auth.lock() {
                *last = Some(value);
            }
        }
        Ok(headers)
    }

    /// The headers of the next request.
    pub(crate) fn current(&self) -> HeaderMap {
        let mut headers = self.base.clone();
        let Some(auth) = &self.auth else {
            return headers;
        };
        let Ok(mut last) = self.last_auth.lock() else {
            return headers;
        };
        match authorization(auth) {
            Ok(value) => *last = Some(value),
            Err(error) => {
                tracing::warn!(%error, "remote write secret unreadable, using the last one read")
            }
        }
        if let Some(value) = last.clone() {
            headers.insert(AUTHORIZATION, value);
        }
        headers
    }
}

fn read_secret(secret: &Secret) -> Result<String, Error> {
    match secret {
        Secret::Inline(s) => Ok(s.clone()),
        Secret::File(path) => std::fs::read_to_string(path)
            .map(|s| s.trim().to_string())
            .map_err(|e| Error::Config {
                field: "remote_write credentials file",
                reason: format!("{}: {e}", path.display()),
            }),
    }
}

fn authorization(auth: &Auth) -> Result<HeaderValue, Error> {
    let text = match auth {
        Auth::Basic { username, password } => {
            let password = read_secret(password)?;
            format!(
                "Basic {}",
                base64(format!("{username}:{password}").as_bytes())
            )
        }
        Auth::Credentials {
            scheme,
            credentials,
        } => format!("{scheme} {}", read_secret(credentials)?),
    };
    let mut value = HeaderValue::try_from(text).map_err(|_| Error::Config {
        field: "remote_write credentials",
        reason: "not a valid HTTP header value".into(),
    })?;
    value.set_sensitive(true);
    Ok(value)
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
    fn basic_auth_and_extra_headers() {
        let h = RequestHeaders::new(
            HeaderMap::new(),
            &[("X-Scope-OrgID".into(), "tenant-1".into())],
            Some(Auth::Basic {
                username: "Aladdin".into(),
                password: Secret::Inline("open sesame".into()),
            }),
        )
        .unwrap();
        let cur = h.current();
        assert_eq!(cur["authorization"], "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
        assert_eq!(cur["x-scope-orgid"], "tenant-1");
    }

    #[test]
    fn credentials_file_is_reread_and_survives_removal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "one\n").unwrap();
        let h = RequestHeaders::new(
            HeaderMap::new(),
            &[],
            Some(Auth::Credentials {
                scheme: "Bearer".into(),
                credentials: Secret::File(path.clone()),
            }),
        )
        .unwrap();
        assert_eq!(h.current()["authorization"], "Bearer one");
        std::fs::write(&path, "two").unwrap();
        assert_eq!(h.current()["authorization"], "Bearer two");
        std::fs::remove_file(&path).unwrap();
        assert_eq!(h.current()["authorization"], "Bearer two");
    }

    #[test]
    fn reserved_headers_and_missing_files_fail_at_start() {
        let err = RequestHeaders::new(
            HeaderMap::new(),
            &[("Content-Type".into(), "x".into())],
            None,
        )
        .unwrap_err();
        assert!(err.to_string().contains("reserved header"), "{err}");
        let err = RequestHeaders::new(
            HeaderMap::new(),
            &[],
            Some(Auth::Credentials {
                scheme: "Bearer".into(),
                credentials: Secret::File("/nonexistent/token".into()),
            }),
        )
        .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/token"), "{err}");
    }
}
