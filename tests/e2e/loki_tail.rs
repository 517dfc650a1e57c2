//! `/loki/api/v1/tail` against the real binary, through a minimal RFC 6455 client written here
//! over a TCP stream (the handshake, masked client frames, unmasked server frames): the
//! backfill, live lines filtered by selector and pipeline, pings, a clean close, a bad query
//! refused before the upgrade, and a client that does not read losing entries as
//! `dropped_entries` rather than growing the server's memory.

use crate::harness::*;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const OP_TEXT: u8 = 1;
const OP_CLOSE: u8 = 8;
const OP_PING: u8 = 9;

/// The key and accept value of RFC 6455 §1.3's example, so no SHA-1 is needed here.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

struct Ws {
    tcp: TcpStream,
    buf: Vec<u8>,
}

/// Sends the upgrade request; `Ok` with the socket on `101`, else the status and body.
async fn connect(v: &Vigil, path_and_query: &str) -> Result<Ws, (u16, String)> {
    let mut tcp = TcpStream::connect(v.addr).await.unwrap();
    let req = format!(
        "GET {path_and_query} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n",
        v.addr
    );
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 4096];
        let n = tcp.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed during the handshake");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    if status != 101 {
        // Error answers are small; read what is there.
        let mut rest = buf[head_end..].to_vec();
        let mut chunk = [0u8; 4096];
        if let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(500), tcp.read(&mut chunk)).await
        {
            rest.extend_from_slice(&chunk[..n]);
        }
        return Err((status, String::from_utf8_lossy(&rest).to_string()));
    }
    let accept = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("sec-websocket-accept")
                .then(|| v.trim().to_string())
        })
        .unwrap();
    assert_eq!(accept, ACCEPT);
    Ok(Ws {
        tcp,
        buf: buf[head_end..].to_vec(),
    })
}

impl Ws {
    async fn fill(&mut self, n: usize) {
        while self.buf.len() < n {
            let mut chunk = vec![0u8; 64 << 10];
            let got = self.tcp.read(&mut chunk).await.unwrap();
            assert!(got > 0, "server closed the connection mid-frame");
            self.buf.extend_from_slice(&chunk[..got]);
        }
    }

    /// The next frame (opcode, payload); `None` after `within` without one, or at EOF.
    async fn frame(&mut self, within: Duration) -> Option<(u8, Vec<u8>)> {
        tokio::time::timeout(within, self.read_frame())
            .await
            .ok()
            .flatten()
    }

    async fn read_frame(&mut self) -> Option<(u8, Vec<u8>)> {
        if self.buf.is_empty() {
            let mut chunk = vec![0u8; 64 << 10];
            let got = self.tcp.read(&mut chunk).await.ok()?;
            if got == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..got]);
        }
        self.fill(2).await;
        let opcode = self.buf[0] & 0x0f;
        assert_eq!(
            self.buf[0] & 0x80,
            0x80,
            "fragmented frames are not expected"
        );
        assert_eq!(self.buf[1] & 0x80, 0, "server frames must not be masked");
        let (len, header) = match self.buf[1] & 0x7f {
            126 => {
                self.fill(4).await;
                (u16::from_be_bytes([self.buf[2], self.buf[3]]) as usize, 4)
            }
            127 => {
                self.fill(10).await;
                let b: [u8; 8] = self.buf[2..10].try_into().unwrap();
                (u64::from_be_bytes(b) as usize, 10)
            }
            n => (n as usize, 2),
        };
        self.fill(header + len).await;
        let payload = self.buf[header..header + len].to_vec();
        self.buf.drain(..header + len);
        Some((opcode, payload))
    }

    async fn send(&mut self, opcode: u8, payload: &[u8]) {
        assert!(payload.len() < 126);
        let mask = [0x12u8, 0x34, 0x56, 0x78];
        let mut frame = vec![0x80 | opcode, 0x80 | payload.len() as u8];
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.tcp.write_all(&frame).await.unwrap();
    }

    /// Text frames' JSON until `done` says so or `within` passes; pings are skipped.
    async fn messages_until(
        &mut self,
        within: Duration,
        mut done: impl FnMut(&[serde_json::Value]) -> bool,
    ) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + within;
        let mut out = Vec::new();
        while !done(&out) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.frame(left).await {
                Some((OP_TEXT, p)) => out.push(serde_json::from_slice(&p).unwrap()),
                Some((OP_PING, _)) => {}
                Some((op, p)) => panic!("unexpected frame {op}: {p:?}"),
                None => break,
            }
        }
        out
    }
}

/// Every `(labels, line)` of the frames, in order.
fn lines(frames: &[serde_json::Value]) -> Vec<(String, String)> {
    frames
        .iter()
        .flat_map(|f| f["streams"].as_array().unwrap().clone())
        .flat_map(|s| {
            let labels = s["stream"].to_string();
            s["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(move |v| (labels.clone(), v[1].as_str().unwrap().to_string()))
                .collect::<Vec<_>>()
        })
        .collect()
}

async fn push(v: &Vigil, labels: serde_json::Value, lines: &[(i64, String)]) {
    let values: Vec<_> = lines
        .iter()
        .map(|(t, l)| serde_json::json!([t.to_string(), l]))
        .collect();
    let r = client()
        .post(v.url("/loki/api/v1/push"))
        .json(&serde_json::json!({"streams": [{"stream": labels, "values": values}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204, "{}", r.text().await.unwrap());
}

#[tokio::test]
async fn tail_backfills_then_streams_live_lines_through_the_pipeline_and_closes_cleanly() {
    let v = Vigil::server(&[]);
    let now = now_ms() * 1_000_000;
    let s = 1_000_000_000;
    push(
        &v,
        serde_json::json!({"app": "web"}),
        &[
            (now - 20 * s, "level=error msg=old".into()),
            (now - 10 * s, "level=info msg=old".into()),
        ],
    )
    .await;

    // A query that does not parse is refused before the upgrade, with Loki's text.
    let (status, body) = connect(&v, &format!("/loki/api/v1/tail?query={}", enc("{app=")))
        .await
        .err()
        .unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("parse error"), "{body}");
    let (status, body) = connect(
        &v,
        &format!(
            "/loki/api/v1/tail?query={}&delay_for=6",
            enc("{app=\"web\"}")
        ),
    )
    .await
    .err()
    .unwrap();
    assert_eq!(status, 400);
    assert!(body.contains("delay_for can't be greater than 5"), "{body}");

    let query = enc(r#"{app="web"} |= "error" | logfmt | line_format "{{.msg}}""#);
    let start = now - 60 * s;
    let mut ws = connect(
        &v,
        &format!("/loki/api/v1/tail?query={query}&start={start}&limit=10"),
    )
    .await
    .unwrap();
    let backfill = ws
        .messages_until(Duration::from_secs(10), |f| !f.is_empty())
        .await;
    assert_eq!(
        lines(&backfill),
        [(
            r#"{"app":"web","level":"error","msg":"old"}"#.to_string(),
            "old".to_string()
        )]
    );

    let pushed_at = Instant::now();
    push(
        &v,
        serde_json::json!({"app": "web"}),
        &[
            (now_ms() * 1_000_000, "level=info msg=skipped".into()),
            (now_ms() * 1_000_000 + 1, "level=error msg=live".into()),
        ],
    )
    .await;
    push(
        &v,
        serde_json::json!({"app": "db"}),
        &[(now_ms() * 1_000_000, "level=error msg=other".into())],
    )
    .await;
    let live = ws
        .messages_until(Duration::from_secs(10), |f| !f.is_empty())
        .await;
    println!("tail: live line after {:?}", pushed_at.elapsed());
    assert_eq!(
        lines(&live),
        [(
            r#"{"app":"web","level":"error","msg":"live"}"#.to_string(),
            "live".to_string()
        )]
    );
    // Nothing else matches; meanwhile the server pings every second.
    let mut pinged = false;
    let quiet_until = Instant::now() + Duration::from_millis(2500);
    while let Some((op, p)) = ws
        .frame(quiet_until.saturating_duration_since(Instant::now()))
        .await
    {
        match op {
            OP_PING => pinged = true,
            _ => panic!("unexpected frame {op}: {}", String::from_utf8_lossy(&p)),
        }
    }
    assert!(pinged, "no ping within 2.5 s");

    // The client closes; the server answers with a normal close and hangs up.
    ws.send(OP_CLOSE, &1000u16.to_be_bytes()).await;
    let reply = loop {
        match ws.frame(Duration::from_secs(5)).await {
            Some((OP_PING, _)) => continue,
            other => break other,
        }
    };
    let (op, payload) = reply.expect("a close frame");
    assert_eq!(op, OP_CLOSE);
    assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), 1000);
    assert!(
        ws.frame(Duration::from_secs(5)).await.is_none(),
        "not hung up"
    );
}

#[tokio::test]
async fn a_client_that_does_not_read_gets_dropped_entries_not_server_memory() {
    let v = Vigil::server(&[]);
    let query = enc(r#"{app="flood"}"#);
    let mut ws = connect(&v, &format!("/loki/api/v1/tail?query={query}"))
        .await
        .unwrap();
    // 32 MiB of 32 KiB lines while the client reads nothing: more than the socket buffers
    // and the tail's 4 MiB queue can hold, and few enough that every drop is itemised.
    let line = "x".repeat(32 << 10);
    let base = now_ms() * 1_000_000 - 5_000_000_000;
    let per_push = 128;
    let pushes = 8;
    for p in 0..pushes {
        let batch: Vec<(i64, String)> = (0..per_push)
            .map(|i| (base + (p * per_push + i) as i64, line.clone()))
            .collect();
        push(&v, serde_json::json!({"app": "flood"}), &batch).await;
    }
    let total = (pushes * per_push) as usize;
    let mut delivered = Vec::new();
    let mut dropped = 0usize;
    loop {
        let frames = ws
            .messages_until(Duration::from_secs(3), |f| !f.is_empty())
            .await;
        if frames.is_empty() {
            break;
        }
        for f in &frames {
            for s in f["streams"].as_array().unwrap() {
                assert_eq!(s["stream"], serde_json::json!({"app": "flood"}));
                for e in s["values"].as_array().unwrap() {
                    delivered.push(e[0].as_str().unwrap().parse::<i64>().unwrap());
                }
            }
            if let Some(d) = f["dropped_entries"].as_array() {
                for e in d {
                    assert_eq!(e["labels"], serde_json::json!({"app": "flood"}));
                    assert!(e["timestamp"].as_str().unwrap().parse::<i64>().is_ok());
                }
                dropped += d.len();
            }
        }
    }
    println!(
        "tail: {} delivered, {dropped} reported dropped of {total}",
        delivered.len()
    );
    assert!(dropped > 0, "nothing dropped");
    assert!(delivered.len() < total);
    assert_eq!(
        delivered.len() + dropped,
        total,
        "every entry delivered or reported"
    );
    assert!(delivered.windows(2).all(|w| w[0] < w[1]), "out of order");
}

#[tokio::test]
async fn index_volume_and_volume_range_as_loki_documents_them() {
    let v = Vigil::server(&[]);
    let t0 = (now_ms() / 1000 - 120) * 1_000_000_000;
    let s = 1_000_000_000;
    for (job, env, team, len) in [
        ("foo", "prod", "alpha", 10),
        ("bar", "prod", "beta", 20),
        ("foo", "dev", "alpha", 30),
        ("bar", "dev", "beta", 40),
    ] {
        push(
            &v,
            serde_json::json!({"job": job, "env": env, "team": team}),
            &[(t0 + s, "x".repeat(len)), (t0 + 61 * s, "y".repeat(len))],
        )
        .await;
    }
    let range = format!("start={t0}&end={}", t0 + 120 * s);
    let (status, j) = get_json(
        &v,
        &format!(
            "/loki/api/v1/index/volume?query={}&{range}",
            enc(r#"{job="foo", env=~".+"}"#)
        ),
    )
    .await;
    assert_eq!(status, 200, "{j}");
    assert_eq!(j["data"]["resultType"], "vector");
    let result = &j["data"]["result"];
    assert_eq!(
        result[0]["metric"],
        serde_json::json!({"env": "dev", "job": "foo"})
    );
    assert_eq!(result[0]["value"][1], "60");
    assert_eq!(
        result[1]["metric"],
        serde_json::json!({"env": "prod", "job": "foo"})
    );
    assert_eq!(result[1]["value"][1], "20");
    assert_eq!(result.as_array().unwrap().len(), 2);

    let (status, j) = get_json(
        &v,
        &format!(
            "/loki/api/v1/index/volume?query={}&{range}&targetLabels=team,job",
            enc(r#"{team="alpha", env!="dev"}"#)
        ),
    )
    .await;
    assert_eq!(status, 200, "{j}");
    assert_eq!(
        j["data"]["result"][0]["metric"],
        serde_json::json!({"job": "foo", "team": "alpha"})
    );

    let (status, j) = get_json(
        &v,
        &format!(
            "/loki/api/v1/index/volume_range?query={}&{range}&step=60s&aggregateBy=labels",
            enc(r#"{job=~".+"}"#)
        ),
    )
    .await;
    assert_eq!(status, 200, "{j}");
    assert_eq!(j["data"]["resultType"], "matrix");
    let series = j["data"]["result"].as_array().unwrap();
    assert_eq!(series.len(), 3, "{j}");
    for s in series {
        assert_eq!(s["values"].as_array().unwrap().len(), 2, "{s}");
        assert_eq!(s["values"][0][1], "100");
        assert_eq!(s["values"][1][1], "100");
    }
    let (status, body) = {
        let r = client()
            .get(v.url(&format!(
                "/loki/api/v1/index/volume?{range}&aggregateBy=pods&query={}",
                enc(r#"{job="foo"}"#)
            )))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    };
    assert_eq!((status, body.as_str()), (400, "invalid aggregation option"));
}
