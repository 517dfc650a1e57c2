//! `POST /api/v1/write`: Prometheus remote write 1.0 (protobuf in a snappy block).
//!
//! A request is validated whole before anything is appended: a malformed body or an invalid
//! label set answers 400 and stores nothing. Samples the store refuses (out of order, a
//! conflicting duplicate, a series over a configured limit, which the answer names) are
//! counted and answered 400 so the sender does not retry them, as
//! Prometheus's receiver does; the rest of the request is stored. 204 means every sample is
//! stored as durably as the store promises.

use crate::error::PlainError;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use model::wire::{decode_write_request, snappy_decompress, SnappyError};
use model::{AppendError, AppendOutcome};
use std::sync::atomic::Ordering;
use std::sync::Arc;

pub async fn write(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PlainError> {
    let raw = decompress(&st, &headers, &body)?;
    // The batch borrows its label names and values from `raw`, so decoding and appending
    // happen together on the blocking pool, which owns `raw` meanwhile.
    let task_state = Arc::clone(&st);
    let outcome =
        match tokio::task::spawn_blocking(move || decode_and_append(&task_state, &raw)).await {
            Ok(result) => result?,
            Err(e) => {
                return Err(text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("append task failed: {e}"),
                ))
            }
        };
    answer(&st, outcome)
}

fn text(status: StatusCode, msg: impl Into<String>) -> PlainError {
    PlainError::new(status, msg)
}

/// Checks the headers and decompresses the body within the configured bound.
fn decompress(st: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<Vec<u8>, PlainError> {
    let header_str = |h| headers.get(h).and_then(|v| v.to_str().ok()).unwrap_or("");
    let encoding = header_str(header::CONTENT_ENCODING);
    if !encoding.is_empty() && !encoding.eq_ignore_ascii_case("snappy") {
        return Err(text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("unsupported Content-Encoding {encoding:?}: remote write bodies are snappy-compressed"),
        ));
    }
    let content_type = header_str(header::CONTENT_TYPE);
    if content_type.contains("io.prometheus.write.v2.Request") {
        return Err(text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "remote write 2.0 (io.prometheus.write.v2.Request) is not supported; send prometheus.WriteRequest",
        ));
    }
    snappy_decompress(body, st.limits.max_decompressed_bytes).map_err(|e| match e {
        SnappyError::TooLarge { .. } => text(StatusCode::PAYLOAD_TOO_LARGE, e.to_string()),
        SnappyError::Invalid(_) => text(StatusCode::BAD_REQUEST, e.to_string()),
    })
}

/// Decodes the whole request (any invalid series refuses it, storing nothing), keeps its
/// metadata, and appends its series.
fn decode_and_append(st: &AppState, raw: &[u8]) -> Result<AppendOutcome, PlainError> {
    let (batch, metadata) = decode_write_request(raw, st.limits.max_labels)
        .map_err(|e| text(StatusCode::BAD_REQUEST, e.to_string()))?;
    // Metadata is kept once the request proved valid; it does not depend on the samples
    // being stored.
    st.metadata.record(&metadata);
    match st.appender.append_batch(&batch) {
        Ok(outcome) => Ok(outcome),
        Err(AppendError::NotReady(m)) => Err(text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("storage not ready: {m}"),
        )),
        Err(e) => {
            tracing::error!(error = %e, "remote write append failed");
            Err(text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
        }
    }
}

/// Counts what the store did and answers: 204 when every sample is stored, 400 naming what
/// was refused otherwise.
fn answer(st: &AppState, outcome: AppendOutcome) -> Result<Response, PlainError> {
    let m = &st.metrics;
    m.remote_write_samples
        .fetch_add(outcome.appended as u64, Ordering::Relaxed);
    m.remote_write_out_of_order
        .fetch_add(outcome.out_of_order as u64, Ordering::Relaxed);
    m.remote_write_duplicate
        .fetch_add(outcome.duplicate_timestamp as u64, Ordering::Relaxed);
    m.remote_write_over_limit
        .fetch_add(outcome.over_limit as u64, Ordering::Relaxed);
    if let Some((limit, max)) = outcome.limit {
        return Err(text(
            StatusCode::BAD_REQUEST,
            format!(
                "{} samples refused: their series break the limit --{limit}={max} ({} more out of order, {} duplicate timestamp with a different value); {} stored",
                outcome.over_limit,
                outcome.out_of_order,
                outcome.duplicate_timestamp,
                outcome.appended
            ),
        ));
    }
    if outcome.rejected() > 0 {
        return Err(text(
            StatusCode::BAD_REQUEST,
            format!(
                "{} samples refused ({} out of order, {} duplicate timestamp with a different value); {} stored",
                outcome.rejected(),
                outcome.out_of_order,
                outcome.duplicate_timestamp,
                outcome.appended
            ),
        ));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
