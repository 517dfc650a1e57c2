//! Endpoints that work on the query text alone: `/api/v1/format_query` (the expression
//! pretty-printed), `/api/v1/parse_query` (its syntax tree as JSON, for query editors) and
//! `/api/v1/query_exemplars`.

use crate::error::ApiError;
use crate::params::{parse_time, Params};
use crate::prom::{encode, success};
use axum::response::Response;
use promql_parser::parser::{self, Expr};

fn parse_query_param(p: &Params) -> Result<Expr, ApiError> {
    parser::parse(p.get("query").unwrap_or_default()).map_err(|e| ApiError::bad_param("query", e))
}

pub async fn format_query(p: Params) -> Result<Response, ApiError> {
    let expr = parse_query_param(&p)?;
    let mut data = String::new();
    encode::write_str(&mut data, &expr.prettify());
    Ok(success(&data, &[], &[]))
}

pub async fn parse_query(p: Params) -> Result<Response, ApiError> {
    let expr = parse_query_param(&p)?;
    let data = serde_json::to_string(&expr)
        .map_err(|e| ApiError::internal(format!("encode syntax tree: {e}")))?;
    Ok(success(&data, &[], &[]))
}

/// Exemplars are not stored yet, so every valid request has none. The parameters are still
/// checked as Prometheus checks them, so a client learns about a bad request now rather than
/// once exemplars exist. Grafana's probe sends millisecond timestamps where seconds belong;
/// they parse as times far in the future, as in Prometheus.
pub async fn query_exemplars(p: Params) -> Result<Response, ApiError> {
    let time = |name: &str| -> Result<(), ApiError> {
        match p.get(name).filter(|s| !s.is_empty()) {
            Some(s) => parse_time(s).map(drop).map_err(|e| {
                ApiError::bad_param(name, format!("Invalid time value for '{name}': {e}"))
            }),
            None => Ok(()),
        }
    };
    time("start")?;
    time("end")?;
    parser::parse(p.get("query").unwrap_or_default()).map_err(ApiError::bad_data)?;
    Ok(success("[]", &[], &[]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::to_bytes;

    async fn body(r: Response) -> serde_json::Value {
        let b = to_bytes(r.into_body(), 1 << 20).await.unwrap();
        serde_json::from_slice(&b).unwrap()
    }

    #[tokio::test]
    async fn format_query_prettifies() {
        let r = format_query(Params::from_query("query=sum(rate(x%5B5m%5D))by(a)"))
            .await
            .unwrap();
        assert_eq!(body(r).await["data"], "sum by (a) (rate(x[5m]))");
        let e = format_query(Params::from_query("query=sum("))
            .await
            .unwrap_err();
        assert!(
            e.message.starts_with("invalid parameter \"query\": "),
            "{}",
            e.message
        );
    }

    #[tokio::test]
    async fn parse_query_gives_the_tree() {
        let r = parse_query(Params::from_query("query=up%7Bjob%3D%22a%22%7D"))
            .await
            .unwrap();
        let j = body(r).await;
        assert_eq!(j["data"]["type"], "vectorSelector");
        assert_eq!(j["data"]["name"], "up");
    }

    #[tokio::test]
    async fn exemplars_accept_milliseconds_and_check_params() {
        let r = query_exemplars(Params::from_query(
            "query=test&start=1700000000000&end=1700003600000",
        ))
        .await
        .unwrap();
        assert_eq!(
            body(r).await,
            serde_json::json!({"status":"success","data":[]})
        );
        let e = query_exemplars(Params::from_query("query=up&start=abc"))
            .await
            .unwrap_err();
        assert_eq!(
            e.message,
            r#"invalid parameter "start": Invalid time value for 'start': cannot parse "abc" to a valid timestamp"#
        );
        assert!(query_exemplars(Params::from_query("query=up("))
            .await
            .is_err());
    }
}
