//! `/loki/api/v1/query` (instant metric queries) and `/loki/api/v1/query_range` (log and
//! metric queries), with Loki's response shapes (§1.3 of the logs reference): stream values as
//! `["<ns>", "<line>"]`, matrix and vector points as `[<seconds>, "<value>"]`.

use super::params::{bounds, direction, instant, limit, step};
use super::{store_error, task_failed};
use crate::error::PlainError;
use crate::params::Params;
use crate::prom::{encode, json_response};
use crate::state::AppState;
use axum::extract::State;
use axum::response::Response;
use logstore::{QueryResult, RangeParams};
use model::LogStream;
use std::fmt::Write;
use std::sync::Arc;
use std::time::Instant;

pub async fn query(State(st): State<Arc<AppState>>, p: Params) -> Result<Response, PlainError> {
    let text = p.get("query").unwrap_or_default().to_string();
    let t = instant(&p)?;
    // Checked even though instant queries return no lines, as Loki does.
    limit(&p)?;
    direction(&p)?;
    let logs = st.logs.clone();
    let began = Instant::now();
    let result = tokio::task::spawn_blocking(move || logs.instant_query(&text, t))
        .await
        .map_err(task_failed)?
        .map_err(store_error)?;
    Ok(json_response(encode_result(&result, t, began)))
}

pub async fn query_range(
    State(st): State<Arc<AppState>>,
    p: Params,
) -> Result<Response, PlainError> {
    let text = p.get("query").unwrap_or_default().to_string();
    let (start_ns, end_ns) = bounds(&p)?;
    let params = RangeParams {
        start_ns,
        end_ns,
        step_ns: step(&p, start_ns, end_ns)?,
        limit: limit(&p)?,
        direction: direction(&p)?,
    };
    let logs = st.logs.clone();
    let began = Instant::now();
    let result = tokio::task::spawn_blocking(move || logs.range_query(&text, params))
        .await
        .map_err(task_failed)?
        .map_err(store_error)?;
    Ok(json_response(encode_result(&result, end_ns, began)))
}

/// The whole response body; `t_ns` is the instant of vector and scalar results.
fn encode_result(result: &QueryResult, t_ns: i64, began: Instant) -> String {
    let mut body = String::from(r#"{"status":"success","data":{"resultType":"#);
    let mut returned = 0usize;
    match result {
        QueryResult::Streams(streams) => {
            body.push_str(r#""streams","result":["#);
            returned = write_streams(&mut body, streams);
        }
        QueryResult::Matrix(series) => {
            body.push_str(r#""matrix","result":["#);
            for (i, s) in series.iter().enumerate() {
                if i > 0 {
                    body.push(',');
                }
                body.push_str(r#"{"metric":"#);
                encode::write_labels(&mut body, &s.labels);
                body.push_str(r#","values":["#);
                for (j, &(t, v)) in s.points.iter().enumerate() {
                    if j > 0 {
                        body.push(',');
                    }
                    write_point(&mut body, t, v);
                }
                body.push_str("]}");
            }
        }
        QueryResult::Vector(samples) => {
            body.push_str(r#""vector","result":["#);
            for (i, (labels, v)) in samples.iter().enumerate() {
                if i > 0 {
                    body.push(',');
                }
                body.push_str(r#"{"metric":"#);
                encode::write_labels(&mut body, labels);
                body.push_str(r#","value":"#);
                write_point(&mut body, t_ns, *v);
                body.push('}');
            }
        }
        QueryResult::Scalar(v) => {
            body.push_str(r#""scalar","result":"#);
            write_point(&mut body, t_ns, *v);
            // Closed below with the array bracket of the other shapes.
            body.pop();
            body.push(']');
            body.push_str(r#","stats":"#);
            write_stats(&mut body, began, 0);
            body.push_str("}}");
            return body;
        }
    }
    body.push_str(r#"],"stats":"#);
    write_stats(&mut body, began, returned);
    body.push_str("}}");
    body
}

fn write_stats(body: &mut String, began: Instant, returned: usize) {
    let _ = write!(
        body,
        r#"{{"summary":{{"execTime":{},"totalEntriesReturned":{returned}}},"querier":{{}},"ingester":{{}}}}"#,
        began.elapsed().as_secs_f64()
    );
}

/// `[<seconds>, "<value>"]`, seconds with the millisecond fraction as Loki writes them.
fn write_point(body: &mut String, t_ns: i64, v: f64) {
    body.push('[');
    encode::write_timestamp(body, t_ns.div_euclid(1_000_000));
    body.push_str(",\"");
    body.push_str(&encode::format_value(v));
    body.push_str("\"]");
}

/// Streams as `{"stream":{...},"values":[["<ns>","<line>"],...]}`; returns the entry count.
fn write_streams(body: &mut String, streams: &[LogStream]) -> usize {
    let mut returned = 0;
    for (i, s) in streams.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(r#"{"stream":"#);
        encode::write_labels(body, &s.labels);
        body.push_str(r#","values":["#);
        for (j, e) in s.entries.iter().enumerate() {
            if j > 0 {
                body.push(',');
            }
            let _ = write!(body, "[\"{}\",", e.ts_ns);
            encode::write_str(body, &e.line);
            body.push(']');
        }
        returned += s.entries.len();
        body.push_str("]}");
    }
    returned
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::Labels;

    #[test]
    fn shapes() {
        let began = Instant::now();
        let v = encode_result(
            &QueryResult::Vector(vec![(Labels::from_pairs([("a", "b")]), 2.0)]),
            1_500_000_000,
            began,
        );
        let j: serde_json::Value = serde_json::from_str(&v).unwrap();
        assert_eq!(j["data"]["resultType"], "vector");
        assert_eq!(
            j["data"]["result"],
            serde_json::json!([{"metric": {"a": "b"}, "value": [1.5, "2"]}])
        );
        let s = encode_result(&QueryResult::Scalar(3.0), 2_000_000_000, began);
        let j: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(j["data"]["result"], serde_json::json!([2, "3"]));
        let m = encode_result(
            &QueryResult::Matrix(vec![logstore::MetricSeries {
                labels: Labels::empty(),
                points: vec![(1_000_000_000, 1.0), (2_000_000_000, f64::NAN)],
            }]),
            0,
            began,
        );
        let j: serde_json::Value = serde_json::from_str(&m).unwrap();
        assert_eq!(
            j["data"]["result"],
            serde_json::json!([{"metric": {}, "values": [[1, "1"], [2, "NaN"]]}])
        );
        assert!(j["data"]["stats"]["summary"]["execTime"].is_number());
    }
}
