//! The benchmark's HTTP client: remote write 1.0 (protobuf in a snappy block, the headers
//! Prometheus sends) and the Prometheus query API, timed from request to last body byte.

use anyhow::{bail, Context};
use bytes::Bytes;
use model::wire::prom::{TimeSeries, WriteRequest};
use prost::Message;
use std::time::{Duration, Instant};

/// Longest a single write or query may take before the benchmark reports it as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, Clone)]
pub struct Client {
    inner: reqwest::Client,
}

impl Client {
    pub fn new() -> anyhow::Result<Client> {
        let inner = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .pool_max_idle_per_host(16)
            .build()?;
        Ok(Client { inner })
    }

    /// POSTs one remote-write body to `base`; anything but 2xx is an error naming the
    /// server's answer.
    pub async fn write(&self, base: &str, body: Bytes) -> anyhow::Result<()> {
        let resp = self
            .inner
            .post(format!("{base}/api/v1/write"))
            .header("Content-Encoding", "snappy")
            .header("Content-Type", "application/x-protobuf")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0")
            .body(body)
            .send()
            .await
            .with_context(|| format!("remote write to {base}"))?;
        let status = resp.status();
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            bail!("remote write to {base}: {status}: {}", text.trim());
        }
        Ok(())
    }

    /// GETs `path` with `params` from `base`, returning the time until the whole body arrived
    /// and the parsed JSON: an error answer in the API's envelope is an answer too (the
    /// comparison reports it); a body that is not JSON is an error.
    pub async fn query(
        &self,
        base: &str,
        path: &str,
        params: &[(&str, String)],
    ) -> anyhow::Result<(Duration, serde_json::Value)> {
        let query: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        let url = format!("{base}{path}?{}", query.join("&"));
        let started = Instant::now();
        let resp = self
            .inner
            .get(&url)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        let status = resp.status();
        let body = resp.bytes().await.with_context(|| format!("GET {url}"))?;
        let took = started.elapsed();
        let json = serde_json::from_slice(&body)
            .with_context(|| format!("GET {url}: {status}: {}", String::from_utf8_lossy(&body)))?;
        Ok((took, json))
    }
}

/// A remote-write body: the protobuf of `series`, snappy-compressed as one block.
pub fn write_body(series: Vec<TimeSeries>) -> Bytes {
    let req = WriteRequest {
        timeseries: series,
        metadata: Vec::new(),
    };
    Bytes::from(model::wire::snappy_compress(&req.encode_to_vec()))
}

/// Percent-encodes a query-string component (everything but RFC 3986's unreserved set).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3 / 2);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_components_are_percent_encoded() {
        assert_eq!(
            encode(r#"sum by (le) (rate(x{a=~"b|c"}[5m]))"#),
            "sum%20by%20%28le%29%20%28rate%28x%7Ba%3D~%22b%7Cc%22%7D%5B5m%5D%29%29"
        );
        assert_eq!(encode("1700000000.750"), "1700000000.750");
    }
}
