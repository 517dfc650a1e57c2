//! The HTTP/1.1 server behind the footprint benchmark's loopback peers (scrape targets, the
//! fake API server, the remote-write sink): keep-alive connections, `Content-Length` bodies,
//! and one handler per listener that maps a request to a whole response or to an idle
//! Kubernetes watch held open. Small on purpose: the peers must cost the benchmark process
//! little and the measured processes nothing.

use anyhow::{bail, Context};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// Largest request body read (a remote-write request of Prometheus's default 2,000 samples
/// is well under 1 MiB; Vigil's batches are bounded too).
const MAX_BODY: usize = 64 << 20;
/// Most header lines per request.
const MAX_HEADERS: usize = 100;

/// One request as the handlers see it.
#[derive(Debug)]
pub struct Request {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    pub body: Vec<u8>,
}

impl Request {
    /// The path without the query.
    pub fn path(&self) -> &str {
        self.target
            .split_once('?')
            .map_or(self.target.as_str(), |(p, _)| p)
    }

    /// The raw (still percent-encoded) value of query parameter `key`.
    pub fn query(&self, key: &str) -> Option<&str> {
        let (_, query) = self.target.split_once('?')?;
        query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find_map(|(k, v)| (k == key).then_some(v))
    }
}

/// What a handler answers.
#[derive(Debug)]
pub enum Response {
    Full {
        status: u16,
        content_type: &'static str,
        body: Vec<u8>,
    },
    /// A chunked 200 that sends nothing and ends after the duration: a watch on which no
    /// event happens, as an API server keeps it until its `timeoutSeconds`.
    Hold(Duration),
}

impl Response {
    pub fn ok(content_type: &'static str, body: Vec<u8>) -> Response {
        Response::Full {
            status: 200,
            content_type,
            body,
        }
    }

    pub fn status(status: u16) -> Response {
        Response::Full {
            status,
            content_type: "text/plain",
            body: Vec::new(),
        }
    }
}

pub type Handler = Arc<dyn Fn(Request) -> Response + Send + Sync>;

/// Binds 127.0.0.1 on a free port and serves `handler` there until the runtime ends;
/// returns the bound address.
pub async fn spawn(name: &'static str, handler: Handler) -> anyhow::Result<std::net::SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            let handler = handler.clone();
            tokio::spawn(async move {
                if let Err(e) = connection(conn, handler).await {
                    eprintln!("{name}: {e:#}");
                }
            });
        }
    });
    Ok(addr)
}

async fn connection(conn: TcpStream, handler: Handler) -> anyhow::Result<()> {
    conn.set_nodelay(true)?;
    let (read, mut write) = conn.into_split();
    let mut reader = BufReader::new(read);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(()); // The client closed the connection between requests.
        }
        let mut parts = line.split_whitespace();
        let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
            bail!("malformed request line {line:?}");
        };
        let (method, target) = (method.to_string(), target.to_string());
        let mut length = 0usize;
        let mut close = false;
        for i in 0.. {
            if i == MAX_HEADERS {
                bail!("more than {MAX_HEADERS} header lines");
            }
            let mut header = String::new();
            if reader.read_line(&mut header).await? == 0 {
                bail!("connection closed inside the headers");
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            let Some((name, value)) = header.split_once(':') else {
                bail!("malformed header {header:?}");
            };
            let value = value.trim();
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => {
                    length = value
                        .parse()
                        .with_context(|| format!("Content-Length {value:?}"))?
                }
                "connection" => close = value.eq_ignore_ascii_case("close"),
                "transfer-encoding" => bail!("chunked request bodies are not supported"),
                _ => {}
            }
        }
        if length > MAX_BODY {
            bail!("body of {length} bytes is over the limit of {MAX_BODY}");
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).await?;
        let request = Request {
            method,
            target,
            body,
        };
        match handler(request) {
            Response::Full {
                status,
                content_type,
                body,
            } => {
                let head = format!(
                    "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
                    reason(status),
                    body.len()
                );
                write.write_all(head.as_bytes()).await?;
                write.write_all(&body).await?;
            }
            Response::Hold(duration) => {
                write
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
                    .await?;
                write.flush().await?;
                tokio::time::sleep(duration).await;
                write.write_all(b"0\r\n\r\n").await?;
            }
        }
        write.flush().await?;
        if close {
            return Ok(());
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        404 => "Not Found",
        503 => "Service Unavailable",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_by_name() {
        let r = Request {
            method: "GET".into(),
            target: "/api/v1/pods?fieldSelector=spec.nodeName%3Dn&watch=1&timeoutSeconds=42".into(),
            body: Vec::new(),
        };
        assert_eq!(r.path(), "/api/v1/pods");
        assert_eq!(r.query("timeoutSeconds"), Some("42"));
        assert_eq!(r.query("watch"), Some("1"));
        assert_eq!(r.query("resourceVersion"), None);
    }

    #[tokio::test]
    async fn serves_keep_alive_requests_with_bodies() {
        let handler: Handler = Arc::new(|r: Request| {
            Response::ok(
                "text/plain",
                format!("{} {} {}", r.method, r.path(), r.body.len()).into(),
            )
        });
        let addr = spawn("test", handler).await.unwrap();
        let client = reqwest::Client::new();
        for n in [0usize, 5, 70_000] {
            let text = client
                .post(format!("http://{addr}/x?y=1"))
                .body(vec![b'a'; n])
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            assert_eq!(text, format!("POST /x {n}"));
        }
    }
}
