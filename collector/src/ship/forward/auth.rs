//! Credentials and extra headers of a remote-write queue: the configured headers (the
//! protocol's own are reserved) and `Authorization` from `httpconf`'s [`Auth`].
//!
//! A `*_file` secret is read again for every request, as Prometheus does, so a rotated
//! token is picked up without a restart; if the file becomes unreadable the last value read
//! is kept and the failure logged.

use std::sync::Mutex;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION};

use crate::httpconf::Auth;
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

/// The `Authorization` value, with a failure in the config's own terms.
fn authorization(auth: &Auth) -> Result<HeaderValue, Error> {
    auth.header_value().map_err(|e| Error::Config {
        field: "remote_write credentials",
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::httpconf::Secret;

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
