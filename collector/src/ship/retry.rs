//! Delivery with retries, shared by remote write and Loki push: exponential backoff with
//! jitter on network errors, 5xx and 429 (honouring `Retry-After`), and no retry on any other
//! 4xx, where the receiver has rejected the batch for good (the remote-write spec's rule).

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::StatusCode;
use tokio_util::sync::CancellationToken;

/// The first retry waits about this long: Prometheus's `min_backoff`.
pub const DEFAULT_MIN_BACKOFF: Duration = Duration::from_millis(30);
/// Retries never wait longer than this by backoff alone: Prometheus's `max_backoff`.
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(5);
/// A server's `Retry-After` is honoured up to this long, so a bogus value cannot park a sink.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);
/// How much of a rejection's body is logged.
const MAX_LOGGED_BODY: usize = 512;

/// Exponential backoff between `min` and `max`, doubling per attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub min: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            min: DEFAULT_MIN_BACKOFF,
            max: DEFAULT_MAX_BACKOFF,
        }
    }
}

impl Backoff {
    /// The wait before retry number `attempt` (0 for the first retry): `min·2^attempt`, capped
    /// at `max`, then drawn uniformly from its upper half so that agents restarted together
    /// do not retry in lockstep.
    pub fn delay(&self, attempt: u32) -> Duration {
        let base = self
            .min
            .saturating_mul(2u32.saturating_pow(attempt.min(31)))
            .min(self.max);
        base.mul_f64(0.5 + 0.5 * unit_random())
    }
}

/// A number in [0, 1) that differs per call, from std's randomly keyed hasher (no RNG crate
/// needed for jitter).
fn unit_random() -> f64 {
    let bits = RandomState::new().hash_one(Instant::now());
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

/// What a response status means for the batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Delivered,
    Retry,
    Reject,
}

/// Maps a response status to a verdict; `retry_429` says whether 429 is retried (the agent's
/// sinks and Promtail always do; Prometheus's remote write only with `retry_on_http_429`).
pub(crate) fn classify(status: StatusCode, retry_429: bool) -> Verdict {
    if status.is_success() {
        Verdict::Delivered
    } else if status.is_server_error() || (retry_429 && status == StatusCode::TOO_MANY_REQUESTS) {
        Verdict::Retry
    } else {
        Verdict::Reject
    }
}

/// Parses `Retry-After`: delay-seconds or an HTTP-date, relative to `now`.
pub(crate) fn parse_retry_after(
    value: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at
        .signed_duration_since(now)
        .to_std()
        .unwrap_or(Duration::ZERO);
    Some(wait.min(MAX_RETRY_AFTER))
}

/// One request to deliver, owned so that its delivery can run as a `'static` future.
#[derive(Clone, Debug)]
pub(crate) struct Request {
    pub url: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// Whether a 429 is retried (true) or drops the request like any other 4xx (false).
    pub retry_429: bool,
}

/// How a delivery ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Delivery {
    /// A 2xx, after `attempts` tries.
    Delivered { attempts: u32 },
    /// A 4xx other than 429: the batch is dropped.
    Rejected { status: u16, body: String },
    /// `abort` fired before a 2xx; the batch is not delivered.
    Aborted,
}

/// Sends `req` until it is delivered, rejected, or `abort` fires; `on_retry` runs after each
/// attempt that failed and will be retried, so a sink can count failures while they happen.
pub(crate) async fn deliver(
    client: reqwest::Client,
    req: Request,
    backoff: Backoff,
    abort: CancellationToken,
    on_retry: impl Fn() + Send,
) -> Delivery {
    let mut attempt: u32 = 0;
    loop {
        let mut builder = client
            .post(&req.url)
            .headers(req.headers.clone())
            .body(req.body.clone());
        if attempt > 0 {
            // Prometheus's sender marks retries so receivers can tell them apart in logs.
            builder = builder.header("Retry-Attempt", HeaderValue::from(attempt));
        }
        let sent = tokio::select! {
            _ = abort.cancelled() => return Delivery::Aborted,
            sent = builder.send() => sent,
        };
        let mut wait = backoff.delay(attempt);
        match sent {
            Ok(resp) => match classify(resp.status(), req.retry_429) {
                Verdict::Delivered => {
                    return Delivery::Delivered {
                        attempts: attempt + 1,
                    }
                }
                Verdict::Reject => {
                    let status = resp.status().as_u16();
                    let body = read_bounded_body(resp).await;
                    return Delivery::Rejected { status, body };
                }
                Verdict::Retry => {
                    let after = resp
                        .headers()
                        .get(RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| parse_retry_after(v, chrono::Utc::now()));
                    if let Some(after) = after {
                        wait = wait.max(after);
                    }
                    tracing::warn!(
                        url = %req.url,
                        status = resp.status().as_u16(),
                        attempt,
                        wait_ms = wait.as_millis() as u64,
                        "push failed, will retry"
                    );
                }
            },
            Err(error) => {
                tracing::warn!(
                    url = %req.url,
                    %error,
                    attempt,
                    wait_ms = wait.as_millis() as u64,
                    "push failed, will retry"
                );
            }
        }
        on_retry();
        tokio::select! {
            _ = abort.cancelled() => return Delivery::Aborted,
            _ = tokio::time::sleep(wait) => {}
        }
        attempt = attempt.saturating_add(1);
    }
}

/// The start of a response body, for the log line of a rejection.
async fn read_bounded_body(mut resp: reqwest::Response) -> String {
    let mut body = Vec::new();
    while body.len() < MAX_LOGGED_BODY {
        match resp.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    body.truncate(MAX_LOGGED_BODY);
    String::from_utf8_lossy(&body).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let b = Backoff::default();
        for attempt in 0..40 {
            let d = b.delay(attempt);
            let base = (DEFAULT_MIN_BACKOFF * 2u32.saturating_pow(attempt.min(31)))
                .min(DEFAULT_MAX_BACKOFF);
            assert!(d >= base / 2 && d <= base, "{attempt}: {d:?}");
        }
        assert!(b.delay(1_000) <= DEFAULT_MAX_BACKOFF);
    }

    #[test]
    fn statuses_map_to_verdicts() {
        assert_eq!(classify(StatusCode::NO_CONTENT, true), Verdict::Delivered);
        assert_eq!(
            classify(StatusCode::INTERNAL_SERVER_ERROR, true),
            Verdict::Retry
        );
        assert_eq!(
            classify(StatusCode::SERVICE_UNAVAILABLE, false),
            Verdict::Retry
        );
        assert_eq!(
            classify(StatusCode::TOO_MANY_REQUESTS, true),
            Verdict::Retry
        );
        assert_eq!(
            classify(StatusCode::TOO_MANY_REQUESTS, false),
            Verdict::Reject
        );
        assert_eq!(classify(StatusCode::BAD_REQUEST, true), Verdict::Reject);
        assert_eq!(
            classify(StatusCode::UNSUPPORTED_MEDIA_TYPE, true),
            Verdict::Reject
        );
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = chrono::DateTime::parse_from_rfc2822("Wed, 21 Oct 2015 07:28:00 GMT")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("99999", now), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
