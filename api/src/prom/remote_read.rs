//! `POST /api/v1/read`: Prometheus remote read with the `SAMPLES` response type, so a
//! Prometheus (`remote_read:`) or any remote-read tool can use Vigil as long-term storage.
//!
//! The request is a snappy block holding a `ReadRequest`; the answer a snappy block holding a
//! `ReadResponse` with one result per query. Errors are plain text, as Prometheus answers
//! them. Streamed chunks (`STREAMED_XOR_CHUNKS`) are not served; clients that accept samples
//! too (Prometheus lists both) get samples.

use crate::error::PlainError;
use crate::prom::read_wire::{
    MatcherType, Query, QueryResult, ReadRequest, ReadResponse, ResponseType,
};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use model::wire::prom::TimeSeries;
use model::wire::{snappy_compress, snappy_decompress, SnappyError};
use model::{MatchOp, Matcher, Querier};
use prost::Message;
use std::sync::Arc;

/// Most samples one remote-read request may return, as Prometheus's
/// `--storage.remote.read-sample-limit` default.
pub const DEFAULT_READ_SAMPLE_LIMIT: usize = 50_000_000;

pub async fn read(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PlainError> {
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !encoding.is_empty() && !encoding.eq_ignore_ascii_case("snappy") {
        return Err(PlainError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("unsupported Content-Encoding {encoding:?}: remote read bodies are snappy-compressed"),
        ));
    }
    let raw = snappy_decompress(&body, st.limits.max_decompressed_bytes).map_err(|e| match e {
        SnappyError::TooLarge { .. } => {
            PlainError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string())
        }
        SnappyError::Invalid(_) => PlainError::bad_request(e.to_string()),
    })?;
    let req = ReadRequest::decode(raw.as_slice())
        .map_err(|e| PlainError::bad_request(format!("decode protobuf ReadRequest: {e}")))?;
    let samples_ok = req.accepted_response_types.is_empty()
        || req
            .accepted_response_types
            .contains(&(ResponseType::Samples as i32));
    if !samples_ok {
        return Err(PlainError::bad_request(
            "none of the accepted response types is served: this server answers SAMPLES only",
        ));
    }
    let queries = req
        .queries
        .iter()
        .map(to_matchers)
        .collect::<Result<Vec<_>, _>>()?;
    let querier = st.querier.clone();
    let resp = tokio::task::spawn_blocking(move || {
        answer(querier.as_ref(), &queries, DEFAULT_READ_SAMPLE_LIMIT)
    })
    .await
    .map_err(|e| {
        PlainError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("read task failed: {e}"),
        )
    })??;
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-protobuf"),
            (header::CONTENT_ENCODING, "snappy"),
        ],
        snappy_compress(&resp.encode_to_vec()),
    )
        .into_response())
}

/// A query's time range and matchers, checked before anything is read.
struct Selection {
    start: i64,
    end: i64,
    matchers: Vec<Matcher>,
}

fn to_matchers(q: &Query) -> Result<Selection, PlainError> {
    let matchers = q
        .matchers
        .iter()
        .map(|m| {
            let op = match MatcherType::try_from(m.r#type) {
                Ok(MatcherType::Eq) => MatchOp::Equal,
                Ok(MatcherType::Neq) => MatchOp::NotEqual,
                Ok(MatcherType::Re) => MatchOp::Regex,
                Ok(MatcherType::Nre) => MatchOp::NotRegex,
                Err(_) => {
                    return Err(PlainError::bad_request(format!(
                        "invalid matcher type {} for label {:?}",
                        m.r#type, m.name
                    )))
                }
            };
            Matcher::new(op, &m.name, &m.value)
                .map_err(|e| PlainError::bad_request(format!("invalid matcher: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Selection {
        start: q.start_timestamp_ms,
        end: q.end_timestamp_ms,
        matchers,
    })
}

/// Reads every query, refusing the request once it would return more than `sample_limit`
/// samples (Prometheus's "exceeded sample limit", a 400 so the client does not retry).
fn answer(
    querier: &dyn Querier,
    queries: &[Selection],
    sample_limit: usize,
) -> Result<ReadResponse, PlainError> {
    let mut total = 0usize;
    let mut results = Vec::with_capacity(queries.len());
    for q in queries {
        let series = querier
            .select(q.start, q.end, &q.matchers)
            .map_err(|e| match e {
                model::StorageError::NotReady(_) => {
                    PlainError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
                }
                _ => PlainError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
            })?;
        total += series.iter().map(|s| s.samples.len()).sum::<usize>();
        if total > sample_limit {
            return Err(PlainError::bad_request(format!(
                "exceeded sample limit ({sample_limit})"
            )));
        }
        results.push(QueryResult {
            timeseries: series.iter().map(TimeSeries::from_series).collect(),
        });
    }
    Ok(ReadResponse { results })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prom::read_wire::LabelMatcher;
    use model::{Appender, Labels, MemStorage, Sample, Series};

    fn store() -> MemStorage {
        let s = MemStorage::new();
        let mk = |job: &str| Series {
            labels: Labels::from_pairs([("__name__", "up"), ("job", job)]),
            samples: (0..10)
                .map(|i| Sample {
                    t: i * 1000,
                    v: i as f64,
                })
                .collect(),
        };
        s.append(&[mk("a"), mk("b")]).unwrap();
        s
    }

    fn query(t: i32, value: &str, start: i64, end: i64) -> Query {
        Query {
            start_timestamp_ms: start,
            end_timestamp_ms: end,
            matchers: vec![
                LabelMatcher {
                    r#type: MatcherType::Eq as i32,
                    name: "__name__".into(),
                    value: "up".into(),
                },
                LabelMatcher {
                    r#type: t,
                    name: "job".into(),
                    value: value.into(),
                },
            ],
            hints: None,
        }
    }

    #[test]
    fn answers_each_query_in_order_within_its_range() {
        let s = store();
        let qs = [
            to_matchers(&query(MatcherType::Neq as i32, "a", 2000, 4000)).unwrap(),
            to_matchers(&query(MatcherType::Re as i32, "a|b", 0, 0)).unwrap(),
        ];
        let r = answer(&s, &qs, 100).unwrap();
        assert_eq!(r.results.len(), 2);
        let first = &r.results[0].timeseries;
        assert_eq!(first.len(), 1);
        assert!(first[0]
            .labels
            .iter()
            .any(|l| l.name == "job" && l.value == "b"));
        let ts: Vec<i64> = first[0].samples.iter().map(|x| x.timestamp).collect();
        assert_eq!(ts, vec![2000, 3000, 4000]);
        assert_eq!(r.results[1].timeseries.len(), 2);
    }

    #[test]
    fn refuses_bad_matchers_and_too_many_samples() {
        assert!(to_matchers(&query(9, "a", 0, 1)).is_err());
        assert!(to_matchers(&query(MatcherType::Re as i32, "(", 0, 1)).is_err());
        let s = store();
        let qs = [to_matchers(&query(MatcherType::Re as i32, ".*", 0, 9000)).unwrap()];
        let e = answer(&s, &qs, 19).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(e.message, "exceeded sample limit (19)");
    }
}
