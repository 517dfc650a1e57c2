//! `/loki/api/v1/index/volume` (a vector stamped at `end`) and `/index/volume_range` (a
//! matrix, one point per `step`): the bytes of the streams a selector matches, summed by
//! label set, with Loki's `targetLabels`, `aggregateBy` and `limit`.

use super::params::{bounds, selector, step};
use super::{store_error, task_failed};
use crate::error::PlainError;
use crate::params::Params;
use crate::prom::{encode, json_response};
use crate::state::AppState;
use axum::extract::State;
use axum::response::Response;
use logstore::{VolumeBy, VolumeName, VolumeRequest, DEFAULT_VOLUME_LIMIT};
use std::sync::Arc;

pub async fn volume(State(st): State<Arc<AppState>>, p: Params) -> Result<Response, PlainError> {
    let req = request(&p)?;
    let end = req.end_ns;
    let logs = st.logs.clone();
    let volumes = tokio::task::spawn_blocking(move || logs.volume(&req))
        .await
        .map_err(task_failed)?
        .map_err(store_error)?;
    let mut body = String::from(r#"{"status":"success","data":{"resultType":"vector","result":["#);
    for (i, (name, bytes)) in volumes.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(r#"{"metric":"#);
        write_name(&mut body, name);
        body.push_str(r#","value":"#);
        write_point(&mut body, end, *bytes);
        body.push('}');
    }
    body.push_str("]}}");
    Ok(json_response(body))
}

pub async fn volume_range(
    State(st): State<Arc<AppState>>,
    p: Params,
) -> Result<Response, PlainError> {
    let req = request(&p)?;
    let step_ns = step(&p, req.start_ns, req.end_ns)?;
    let logs = st.logs.clone();
    let series = tokio::task::spawn_blocking(move || logs.volume_range(&req, step_ns))
        .await
        .map_err(task_failed)?
        .map_err(store_error)?;
    let mut body = String::from(r#"{"status":"success","data":{"resultType":"matrix","result":["#);
    for (i, (name, points)) in series.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(r#"{"metric":"#);
        write_name(&mut body, name);
        body.push_str(r#","values":["#);
        for (j, (t, bytes)) in points.iter().enumerate() {
            if j > 0 {
                body.push(',');
            }
            write_point(&mut body, *t, *bytes);
        }
        body.push_str("]}");
    }
    body.push_str("]}}");
    Ok(json_response(body))
}

/// The parameters both endpoints share; `query` is required, as in Loki.
fn request(p: &Params) -> Result<VolumeRequest, PlainError> {
    let matchers = match p.get("query") {
        Some(q) if !q.trim().is_empty() => selector(q)?,
        _ => return Err(PlainError::bad_request("query parameter is required")),
    };
    let (start_ns, end_ns) = bounds(p)?;
    let limit = match p.get("limit") {
        None | Some("") => DEFAULT_VOLUME_LIMIT,
        Some(s) => match s.parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => return Err(PlainError::bad_request("limit must be a positive value")),
        },
    };
    let by = p
        .get("aggregateBy")
        .unwrap_or_default()
        .parse::<VolumeBy>()
        .map_err(|e| PlainError::bad_request(e.to_string()))?;
    let target_labels = p
        .get("targetLabels")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    Ok(VolumeRequest {
        matchers,
        start_ns,
        end_ns,
        target_labels,
        by,
        limit,
    })
}

fn write_name(body: &mut String, name: &VolumeName) {
    body.push('{');
    for (i, (k, v)) in name.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        encode::write_str(body, k);
        body.push(':');
        encode::write_str(body, v);
    }
    body.push('}');
}

/// `[<seconds>, "<bytes>"]`, as Loki writes volume points.
fn write_point(body: &mut String, t_ns: i64, bytes: u64) {
    body.push('[');
    encode::write_timestamp(body, t_ns.div_euclid(1_000_000));
    body.push_str(",\"");
    body.push_str(&bytes.to_string());
    body.push_str("\"]");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters() {
        let p = Params::from_query(
            "query=%7Bjob%3D%22foo%22%7D&start=0&end=10&targetLabels=team,%20job&aggregateBy=labels&limit=5",
        );
        let r = request(&p).unwrap();
        assert_eq!(r.target_labels, ["team", "job"]);
        assert_eq!(r.by, VolumeBy::Labels);
        assert_eq!(r.limit, 5);
        let e = request(&Params::from_query("start=0&end=10")).unwrap_err();
        assert_eq!(e.message, "query parameter is required");
        let e = request(&Params::from_query(
            "query=%7Bjob%3D%22foo%22%7D&aggregateBy=pods",
        ))
        .unwrap_err();
        assert_eq!(e.message, "invalid aggregation option");
        assert!(request(&Params::from_query("query=%7Bjob%3D%22foo%22%7D&limit=0")).is_err());
    }

    #[test]
    fn names_keep_empty_values() {
        let mut body = String::new();
        write_name(&mut body, &vec![("team".to_string(), String::new())]);
        write_point(&mut body, 1_500_000_000, 42);
        assert_eq!(body, r#"{"team":""}[1.500,"42"]"#);
    }
}
