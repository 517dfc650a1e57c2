//! The HTTP side every integration shares: a client built from an `http_config` (the
//! integration's own, else `global.http_config`), credentials applied per request (files read at
//! each send so they can be rotated), and the classification of an answer into success,
//! retryable failure or permanent failure.

use super::NotifyError;
use crate::config::HttpConfig;
use std::time::Duration;

/// How much of an error answer's body is quoted in the error message.
const MAX_ERROR_BODY: usize = 1024;

/// A client for one integration.
#[derive(Debug)]
pub(crate) struct HttpClient {
    http: HttpConfig,
    client: reqwest::Client,
}

impl HttpClient {
    /// `own` replaces `global` entirely, as in Alertmanager; `timeout` bounds each request.
    pub fn new(
        own: Option<&HttpConfig>,
        global: Option<&HttpConfig>,
        timeout: Option<Duration>,
    ) -> HttpClient {
        let http = own.or(global).cloned().unwrap_or_default();
        let redirect = if http.follow_redirects.unwrap_or(true) {
            reqwest::redirect::Policy::limited(10)
        } else {
            reqwest::redirect::Policy::none()
        };
        let mut builder = reqwest::Client::builder()
            .redirect(redirect)
            .user_agent(concat!("Vigil-Alertmanager/", env!("CARGO_PKG_VERSION")));
        if let Some(t) = timeout {
            builder = builder.timeout(t);
        }
        let client = builder.build().unwrap_or_else(|error| {
            tracing::error!(%error, "building the notification HTTP client failed; using defaults");
            reqwest::Client::new()
        });
        HttpClient { http, client }
    }

    /// Posts a JSON body with the configured credentials. Only transport failures are errors
    /// here (retryable, and without the URL, which may carry a secret); the caller classifies
    /// the status with [`check_response`].
    pub async fn post_json(
        &self,
        url: &str,
        body: Vec<u8>,
    ) -> Result<reqwest::Response, NotifyError> {
        let request = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        let request = self.authorize(request).await?;
        request
            .send()
            .await
            .map_err(|e| NotifyError::retryable(format!("posting: {}", e.without_url())))
    }

    async fn authorize(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::RequestBuilder, NotifyError> {
        if let Some(basic) = &self.http.basic_auth {
            let password = match (&basic.password, &basic.password_file) {
                (Some(p), _) => Some(p.clone()),
                (None, Some(f)) => Some(read_secret_file(f).await?),
                (None, None) => None,
            };
            return Ok(request.basic_auth(&basic.username, password));
        }
        if let Some(auth) = &self.http.authorization {
            let credentials = match (&auth.credentials, &auth.credentials_file) {
                (Some(c), _) => c.clone(),
                (None, Some(f)) => read_secret_file(f).await?,
                (None, None) => String::new(),
            };
            let scheme = auth.kind.as_deref().unwrap_or("Bearer");
            return Ok(request.header(
                reqwest::header::AUTHORIZATION,
                format!("{scheme} {credentials}"),
            ));
        }
        match (&self.http.bearer_token, &self.http.bearer_token_file) {
            (Some(t), _) => Ok(request.bearer_auth(t)),
            (None, Some(f)) => Ok(request.bearer_auth(read_secret_file(f).await?)),
            (None, None) => Ok(request),
        }
    }
}

/// Reads a secret (a URL, a password) from a file, trimmed; the error names the file only.
pub(crate) async fn read_secret_file(path: &str) -> Result<String, NotifyError> {
    tokio::fs::read_to_string(path)
        .await
        .map(|s| s.trim().to_string())
        .map_err(|e| NotifyError::permanent(format!("reading {path:?}: {e}")))
}

/// Classifies a non-2xx answer as Alertmanager's `Retrier.Check` does — 5xx retryable, other
/// 4xx permanent, the body quoted in the message — with one deliberate departure: 429 is
/// retried after the answer's `Retry-After`. Alertmanager 0.25 gives up on a 429 until the next
/// group interval; waiting as the endpoint asks delivers sooner without hammering it.
pub(crate) async fn check_response(response: reqwest::Response) -> Result<(), NotifyError> {
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let retry_after = retry_after(response.headers());
    let body = response.bytes().await.unwrap_or_default();
    let mut message = format!("unexpected status code {}", status.as_u16());
    if !body.is_empty() {
        let shown = &body[..body.len().min(MAX_ERROR_BODY)];
        message.push_str(": ");
        message.push_str(&String::from_utf8_lossy(shown));
    }
    if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        Err(NotifyError {
            message,
            retryable: true,
            retry_after,
        })
    } else if status.is_server_error() {
        Err(NotifyError::retryable(message))
    } else {
        Err(NotifyError::permanent(message))
    }
}

/// `Retry-After` in seconds (the form Slack sends); an HTTP date is not honoured and falls back
/// to the backoff.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_only() {
        let mut h = reqwest::header::HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(reqwest::header::RETRY_AFTER, "3".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        h.insert(
            reqwest::header::RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), None);
    }
}
