//! `POST /loki/api/v1/push`: protobuf in a snappy block, or JSON; gzip and deflate accepted.
//!
//! The whole request is validated before anything is stored, so a 400 or 413 means nothing of
//! it was kept, and 204 means every entry is fsync'd to the log WAL (and visible to queries).
//! Entries identical to stored ones are accepted and not stored again, so a client may retry.

use super::{store_error, task_failed};
use crate::error::PlainError;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use model::wire::loki::PushRequest;
use model::wire::{snappy_decompress, SnappyError};
use model::{LogEntry, LogStream};
use prost::Message;
use std::collections::BTreeMap;
use std::io::Read;
use std::sync::atomic::Ordering;
use std::sync::Arc;

pub async fn push(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PlainError> {
    let streams = decode(&st, &headers, &body)?;
    let entries: usize = streams.iter().map(|s| s.entries.len()).sum();
    let logs = st.logs.clone();
    match tokio::task::spawn_blocking(move || logs.push(&streams)).await {
        Ok(Ok(_)) => {
            st.metrics
                .loki_entries
                .fetch_add(entries as u64, Ordering::Relaxed);
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        Ok(Err(e)) => Err(store_error(e)),
        Err(e) => Err(task_failed(e)),
    }
}

fn decode(st: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<Vec<LogStream>, PlainError> {
    let header_str = |h| headers.get(h).and_then(|v| v.to_str().ok()).unwrap_or("");
    let limit = st.limits.max_decompressed_bytes;
    let encoding = header_str(header::CONTENT_ENCODING).to_ascii_lowercase();
    let inflated;
    let body: &[u8] = match encoding.as_str() {
        // Loki ignores `snappy` here: the protobuf path is always snappy-compressed.
        "" | "snappy" => body,
        "gzip" => {
            inflated = read_bounded(flate2::read::GzDecoder::new(body), limit)?;
            &inflated
        }
        "deflate" => {
            inflated = read_bounded(flate2::read::ZlibDecoder::new(body), limit)?;
            &inflated
        }
        other => {
            // Loki answers an unknown encoding with 400, like every other unreadable body.
            return Err(PlainError::new(
                StatusCode::BAD_REQUEST,
                format!("Content-Encoding {other:?} not supported"),
            ));
        }
    };
    let content_type = header_str(header::CONTENT_TYPE);
    let streams = if content_type.starts_with("application/json") {
        decode_json(body)?
    } else {
        decode_protobuf(body, limit)?
    };
    validate(st, &streams)?;
    Ok(streams)
}

fn read_bounded(r: impl Read, limit: usize) -> Result<Vec<u8>, PlainError> {
    let mut out = Vec::new();
    r.take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| {
            PlainError::new(
                StatusCode::BAD_REQUEST,
                format!("decompress request body: {e}"),
            )
        })?;
    if out.len() > limit {
        return Err(PlainError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("decompressed request body exceeds the limit of {limit} bytes"),
        ));
    }
    Ok(out)
}

fn decode_protobuf(body: &[u8], limit: usize) -> Result<Vec<LogStream>, PlainError> {
    let raw = snappy_decompress(body, limit).map_err(|e| match e {
        SnappyError::TooLarge { .. } => {
            PlainError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string())
        }
        SnappyError::Invalid(_) => PlainError::new(StatusCode::BAD_REQUEST, e.to_string()),
    })?;
    let req = PushRequest::decode(raw.as_slice()).map_err(|e| {
        PlainError::new(
            StatusCode::BAD_REQUEST,
            format!("decode protobuf PushRequest: {e}"),
        )
    })?;
    req.streams
        .into_iter()
        .map(|s| {
            s.into_stream().map_err(|e| {
                PlainError::new(
                    StatusCode::BAD_REQUEST,
                    format!("invalid stream labels: {e}"),
                )
            })
        })
        .collect()
}

#[derive(serde::Deserialize)]
struct JsonPush {
    streams: Vec<JsonStream>,
}

#[derive(serde::Deserialize)]
struct JsonStream {
    stream: BTreeMap<String, String>,
    values: Vec<Vec<serde_json::Value>>,
}

fn decode_json(body: &[u8]) -> Result<Vec<LogStream>, PlainError> {
    let bad = |m: String| PlainError::new(StatusCode::BAD_REQUEST, m);
    let req: JsonPush =
        serde_json::from_slice(body).map_err(|e| bad(format!("decode JSON push request: {e}")))?;
    let mut out = Vec::with_capacity(req.streams.len());
    for s in req.streams {
        let labels = model::Labels::try_from_pairs(s.stream)
            .map_err(|e| bad(format!("invalid stream labels: {e}")))?;
        let mut entries = Vec::with_capacity(s.values.len());
        for v in s.values {
            entries.push(json_entry(&v).map_err(bad)?);
        }
        out.push(LogStream { labels, entries });
    }
    Ok(out)
}

/// `["<ns as a string>", "<line>"]` or with a third element of structured metadata.
fn json_entry(v: &[serde_json::Value]) -> Result<LogEntry, String> {
    if v.len() < 2 || v.len() > 3 {
        return Err(format!(
            "a value must be [timestamp, line] or [timestamp, line, metadata], got {} elements",
            v.len()
        ));
    }
    let ts = v[0]
        .as_str()
        .ok_or("the timestamp must be a string of nanoseconds")?;
    let ts_ns: i64 = ts
        .parse()
        .map_err(|_| format!("invalid timestamp {ts:?}: want nanoseconds since the epoch"))?;
    let line = v[1]
        .as_str()
        .ok_or("the line must be a string")?
        .to_string();
    let mut metadata = Vec::new();
    if let Some(m) = v.get(2) {
        let obj = m
            .as_object()
            .ok_or("structured metadata must be an object")?;
        for (k, val) in obj {
            let val = val
                .as_str()
                .ok_or("structured metadata values must be strings")?;
            metadata.push((k.clone(), val.to_string()));
        }
    }
    Ok(LogEntry {
        ts_ns,
        line,
        metadata,
    })
}

/// Loki's per-request limits, checked before anything is stored.
fn validate(st: &AppState, streams: &[LogStream]) -> Result<(), PlainError> {
    let bad = |m: String| PlainError::new(StatusCode::BAD_REQUEST, m);
    for s in streams {
        if s.labels.is_empty() {
            return Err(bad("error parsing labels: stream has no labels".into()));
        }
        if s.labels.len() > st.limits.max_labels {
            return Err(bad(format!(
                "stream '{}' has {} label names; limit {}",
                s.labels,
                s.labels.len(),
                st.limits.max_labels
            )));
        }
        for e in &s.entries {
            if e.line.len() > st.limits.max_line_bytes {
                return Err(bad(format!(
                    "Max entry size '{}' bytes exceeded for stream '{}' while adding an entry with length '{}' bytes",
                    st.limits.max_line_bytes,
                    s.labels,
                    e.line.len()
                )));
            }
        }
    }
    Ok(())
}
