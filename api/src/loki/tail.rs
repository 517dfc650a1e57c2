//! `/loki/api/v1/tail`: a websocket streaming the lines of a log query as they are pushed
//! (§1.6 of the logs reference). Parameters as Loki reads them (`query`, `delay_for` in whole
//! seconds up to 5, `limit`, `start`), one JSON text frame per response,
//! `{"streams":[{"stream":{..},"values":[["<ns>","<line>"]]}],"dropped_entries":[..]}`, a ping
//! every second, and a close frame when the client leaves, the store closes or the tail
//! reaches its maximum duration.
//!
//! The bounded buffering lives in `logstore::Tail`; this task only waits for a wake-up (a
//! push reached the tail, a held entry is due, a ping is due, the client spoke) and writes.
//! A client that reads slowly stalls this task's writes, so the tail's queue fills and the
//! store drops entries for it, which the next frame reports as `dropped_entries`.

use super::params::{bounds, limit, now_ns};
use super::{store_error, task_failed};
use crate::error::PlainError;
use crate::params::Params;
use crate::prom::encode;
use crate::state::AppState;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use logstore::{Tail, TailResponse};
use std::fmt::Write;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Loki's `wsPingPeriod`.
const PING_PERIOD: Duration = Duration::from_secs(1);
/// Loki's `tail_max_duration` default: a tail ends after an hour.
pub const TAIL_MAX_DURATION: Duration = Duration::from_secs(3600);
/// How long the reply to a client's close may take to leave before the socket is dropped.
const CLOSE_REPLY_TIMEOUT: Duration = Duration::from_secs(1);
/// RFC 6455 close codes.
const CLOSE_NORMAL: u16 = 1000;
const CLOSE_GOING_AWAY: u16 = 1001;
const CLOSE_INTERNAL_ERROR: u16 = 1011;

pub async fn tail(
    State(st): State<Arc<AppState>>,
    ws: WebSocketUpgrade,
    p: Params,
) -> Result<Response, PlainError> {
    let text = p.get("query").unwrap_or_default().to_string();
    let limit = limit(&p)?;
    let delay_for = delay_for(&p)?;
    let (start_ns, _) = bounds(&p)?;
    let notify = Arc::new(Notify::new());
    let waker = notify.clone();
    let logs = st.logs.clone();
    // Opened before the upgrade, so a bad query is an HTTP error the client can read; the
    // backfill query runs here too, off the async threads.
    let tail = tokio::task::spawn_blocking(move || {
        logs.tail(
            &text,
            start_ns,
            limit,
            delay_for,
            Box::new(move || waker.notify_one()),
        )
    })
    .await
    .map_err(task_failed)?
    .map_err(store_error)?;
    Ok(ws.on_upgrade(move |socket| async move {
        let (code, reason) = stream(socket, tail, notify).await;
        tracing::debug!(code, reason, "loki tail ended");
    }))
}

/// `delay_for`: whole seconds, as Go's `strconv.Atoi` reads them; the maximum is the store's.
fn delay_for(p: &Params) -> Result<u32, PlainError> {
    match p.get("delay_for") {
        None | Some("") => Ok(0),
        Some(s) => s.parse::<u32>().map_err(|_| {
            PlainError::bad_request(format!(
                "strconv.Atoi: parsing {s:?}: invalid syntax (delay_for must be whole seconds)"
            ))
        }),
    }
}

/// Writes the tail's responses until the client leaves, the store closes or the time is up;
/// returns the close code and reason sent.
async fn stream(mut socket: WebSocket, mut tail: Tail, notify: Arc<Notify>) -> (u16, String) {
    let mut ping = tokio::time::interval(PING_PERIOD);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let ends = tokio::time::sleep(TAIL_MAX_DURATION);
    tokio::pin!(ends);
    loop {
        while let Some(response) = tail.next_response(now_ns()) {
            if socket
                .send(Message::Text(encode_response(&response).into()))
                .await
                .is_err()
            {
                return (CLOSE_NORMAL, "client went away".into());
            }
        }
        if tail.is_closed() {
            return close(socket, CLOSE_GOING_AWAY, "the log store is shutting down").await;
        }
        // Entries held by `delay_for` (or stamped ahead of the clock) set the next deadline.
        let release = tail.next_release_ns().map(|t| {
            let wait = u64::try_from(t.saturating_sub(now_ns())).unwrap_or(0);
            tokio::time::Instant::now() + Duration::from_nanos(wait)
        });
        tokio::select! {
            _ = notify.notified() => {}
            _ = sleep_until_some(release) => {}
            _ = ping.tick() => {
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    return (CLOSE_NORMAL, "client went away".into());
                }
            }
            msg = socket.recv() => match msg {
                None | Some(Err(_)) => return (CLOSE_NORMAL, "client went away".into()),
                Some(Ok(Message::Close(_))) => {
                    // The websocket queued the close reply; reading on sends it and then
                    // reports the connection closed.
                    let drain = async { while let Some(Ok(_)) = socket.recv().await {} };
                    let _ = tokio::time::timeout(CLOSE_REPLY_TIMEOUT, drain).await;
                    return (CLOSE_NORMAL, "client closed".into());
                }
                // Pongs and anything a client says are of no consequence to a tail.
                Some(Ok(_)) => {}
            },
            _ = &mut ends => {
                return close(socket, CLOSE_INTERNAL_ERROR, "reached tail max duration limit").await;
            }
        }
    }
}

async fn sleep_until_some(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

async fn close(mut socket: WebSocket, code: u16, reason: &str) -> (u16, String) {
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    // The client may be gone already; there is no one left to tell.
    let _ = socket.send(Message::Close(Some(frame))).await;
    (code, reason.to_string())
}

/// One frame as Loki writes it: every entry in a stream object of its own, in time order;
/// `dropped_entries` only when something was dropped (Loki's `omitempty`). `streams` is kept
/// even when empty, because Grafana's live view reads it unconditionally.
pub(crate) fn encode_response(r: &TailResponse) -> String {
    let mut body = String::from(r#"{"streams":["#);
    for (i, s) in r.streams.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(r#"{"stream":"#);
        encode::write_labels(&mut body, &s.labels);
        body.push_str(r#","values":["#);
        for (j, e) in s.entries.iter().enumerate() {
            if j > 0 {
                body.push(',');
            }
            let _ = write!(body, "[\"{}\",", e.ts_ns);
            encode::write_str(&mut body, &e.line);
            body.push(']');
        }
        body.push_str("]}");
    }
    body.push(']');
    if !r.dropped.is_empty() {
        body.push_str(r#","dropped_entries":["#);
        for (i, d) in r.dropped.iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            let _ = write!(body, r#"{{"timestamp":"{}","labels":"#, d.ts_ns);
            encode::write_labels(&mut body, &d.labels);
            body.push('}');
        }
        body.push(']');
    }
    body.push('}');
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use logstore::DroppedEntry;
    use model::{Labels, LogEntry, LogStream};

    #[test]
    fn frames_are_loki_tail_responses() {
        let labels = Labels::from_pairs([("app", "a")]);
        let r = TailResponse {
            streams: vec![LogStream {
                labels: labels.clone(),
                entries: vec![LogEntry {
                    ts_ns: 1_700_000_000_000_000_001,
                    line: "say \"hi\"".into(),
                    metadata: vec![],
                }],
            }],
            dropped: vec![],
        };
        let j: serde_json::Value = serde_json::from_str(&encode_response(&r)).unwrap();
        assert_eq!(
            j,
            serde_json::json!({"streams": [{"stream": {"app": "a"},
                "values": [["1700000000000000001", "say \"hi\""]]}]})
        );
        let r = TailResponse {
            streams: vec![],
            dropped: vec![DroppedEntry { labels, ts_ns: 5 }],
        };
        let j: serde_json::Value = serde_json::from_str(&encode_response(&r)).unwrap();
        assert_eq!(
            j,
            serde_json::json!({"streams": [],
                "dropped_entries": [{"timestamp": "5", "labels": {"app": "a"}}]})
        );
    }

    #[test]
    fn delay_for_is_whole_seconds() {
        assert_eq!(delay_for(&Params::from_query("")).unwrap(), 0);
        assert_eq!(delay_for(&Params::from_query("delay_for=3")).unwrap(), 3);
        assert!(delay_for(&Params::from_query("delay_for=1s")).is_err());
        assert!(delay_for(&Params::from_query("delay_for=-1")).is_err());
    }
}
