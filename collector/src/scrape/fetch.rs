//! One HTTP GET of a target: the job's credentials, Prometheus's request headers, the timeout over the whole
//! exchange, and the body bounded before and after gzip decompression.

use std::io::Read;
use std::time::Duration;

use reqwest::header::{ACCEPT, ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE};

use crate::expo::Format;
use crate::httpconf::{error_chain, HttpClient};

/// Prometheus 2.42's `Accept`: OpenMetrics 1.0 preferred, then 0.0.1, then text 0.0.4.
pub const ACCEPT_HEADER: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// A scraped body and the format its `Content-Type` announced.
#[derive(Debug)]
pub(crate) struct Scraped {
    pub body: Vec<u8>,
    pub format: Format,
}

/// Fetches `url` within `timeout`; `limit` bounds the body after decompression. The error is
/// the text `/api/v1/targets` shows as `lastError`.
pub(crate) async fn fetch(
    client: &HttpClient,
    url: &reqwest::Url,
    timeout: Duration,
    limit: u64,
) -> Result<Scraped, String> {
    let exchange = async {
        let resp = client
            .get(url.clone())
            .map_err(|e| format!("Get {:?}: {}", url.as_str(), error_chain(&e)))?
            .header(ACCEPT, ACCEPT_HEADER)
            .header(ACCEPT_ENCODING, "gzip")
            .header(
                "X-Prometheus-Scrape-Timeout-Seconds",
                format!("{}", timeout.as_secs_f64()),
            )
            .send()
            .await
            .map_err(|e| format!("Get {:?}: {}", url.as_str(), error_chain(&e)))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(format!("server returned HTTP status {status}"));
        }
        let format = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(Format::from_content_type)
            .unwrap_or(Format::Text);
        let gzip = resp
            .headers()
            .get(CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
        let raw = read_bounded(resp, limit).await?;
        let body = if gzip { gunzip(&raw, limit)? } else { raw };
        Ok(Scraped { body, format })
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(result) => result,
        Err(_) => Err(format!("Get {:?}: context deadline exceeded", url.as_str())),
    }
}

/// Reads the body chunk by chunk, failing as soon as it passes `limit` bytes.
async fn read_bounded(mut resp: reqwest::Response, limit: u64) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| format!("reading the body: {}", error_chain(&e)))?
    {
        if (body.len() + chunk.len()) as u64 > limit {
            return Err(body_limit_error(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Decompresses a gzip body, refusing more than `limit` bytes of output (a small body can
/// inflate enormously).
fn gunzip(raw: &[u8], limit: u64) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(raw)
        .take(limit.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| format!("decompressing the gzip body: {e}"))?;
    if out.len() as u64 > limit {
        return Err(body_limit_error(limit));
    }
    Ok(out)
}

fn body_limit_error(limit: u64) -> String {
    format!("body size limit exceeded ({limit} bytes)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn gunzip_is_bounded_after_decompression() {
        let big = vec![b'a'; 100_000];
        let packed = gz(&big);
        assert!(packed.len() < 1_000);
        assert_eq!(gunzip(&packed, 100_000).unwrap().len(), 100_000);
        let err = gunzip(&packed, 99_999).unwrap_err();
        assert!(err.contains("limit"), "{err}");
        assert!(gunzip(b"not gzip", 10).unwrap_err().contains("gzip"));
    }
}
