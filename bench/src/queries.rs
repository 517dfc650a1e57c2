//! The fixed query set both benchmarks time, the timing loop (one warm-up, then runs that
//! alternate between the servers, median per server), and the comparison of the two
//! servers' answers that makes the timing a fair one.

use crate::http::Client;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

/// The expressions, over the generator's metric names: dashboard-style aggregations of
/// rates, `topk`, `*_over_time`, a classic-histogram quantile and regex selectors that
/// touch many series. Each is asked as an instant query and as range queries.
pub const EXPRESSIONS: &[&str] = &[
    "sum by (instance) (rate(node_network_receive_bytes_total[5m]))",
    "sum by (namespace) (rate(container_cpu_usage_seconds_total[5m]))",
    "topk(10, rate(container_network_transmit_bytes_total[5m]))",
    "avg_over_time(container_memory_working_set_bytes[10m])",
    "max_over_time(node_load1[15m])",
    "histogram_quantile(0.9, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))",
    r#"sum by (mode) (rate(node_cpu_seconds_total{mode=~"user|system|iowait|softirq"}[5m]))"#,
    r#"count by (namespace) (container_memory_rss{namespace=~"kube-.*|monitoring|pay.*"})"#,
    r#"1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[5m]))"#,
    r#"sum by (__name__, namespace) ({__name__=~"container_(fs|network)_.+_bytes_total"})"#,
    "sum by (instance) (node_filesystem_avail_bytes) / sum by (instance) (node_filesystem_size_bytes)",
];

/// Steps of the range queries, in seconds.
pub const RANGE_STEPS: [u64; 2] = [15, 60];
/// Span of the range queries, ending at the evaluation time: the last hour.
const RANGE_SECONDS: i64 = 3600;

/// One query to time.
#[derive(Debug, Clone)]
pub struct Query {
    pub expr: &'static str,
    /// `None` for an instant query, else the range query's step in seconds.
    pub step: Option<u64>,
}

impl Query {
    /// Every expression as range queries at each step, then as an instant query.
    pub fn all() -> Vec<Query> {
        let mut out = Vec::new();
        for step in RANGE_STEPS {
            out.extend(EXPRESSIONS.iter().map(|&expr| Query {
                expr,
                step: Some(step),
            }));
        }
        out.extend(EXPRESSIONS.iter().map(|&expr| Query { expr, step: None }));
        out
    }

    pub fn kind(&self) -> String {
        match self.step {
            Some(s) => format!("range {s}s"),
            None => "instant".to_string(),
        }
    }

    /// The API path and parameters, evaluated at `at_ms` (the end of a range query).
    fn request(&self, at_ms: i64) -> (&'static str, Vec<(&'static str, String)>) {
        let query = ("query", self.expr.to_string());
        match self.step {
            None => ("/api/v1/query", vec![query, ("time", seconds(at_ms))]),
            Some(step) => (
                "/api/v1/query_range",
                vec![
                    query,
                    ("start", seconds(at_ms - RANGE_SECONDS * 1000)),
                    ("end", seconds(at_ms)),
                    ("step", step.to_string()),
                ],
            ),
        }
    }
}

/// When the queries are evaluated for data ending (exclusively) at `end_ms`: 750 ms past
/// the whole second two seconds before, where no generated sample lies, and (with whole
/// second ranges and steps) neither does any window boundary.
pub fn eval_time(end_ms: i64) -> i64 {
    (end_ms.div_euclid(1000) - 2) * 1000 + 750
}

fn seconds(ms: i64) -> String {
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

/// One query's timing on both servers and whether their answers agreed.
#[derive(Debug, Clone)]
pub struct Timed {
    pub query: Query,
    pub vigil: Duration,
    pub prometheus: Duration,
    /// Series in Prometheus's answer, so an agreement on nothing shows.
    pub series: usize,
    /// `None` when the answers agree, else what differs.
    pub mismatch: Option<String>,
}

impl Timed {
    pub fn ratio(&self) -> f64 {
        self.vigil.as_secs_f64() / self.prometheus.as_secs_f64().max(1e-9)
    }
}

/// Runs `query` once on each server as a warm-up (comparing the answers), then `runs` more
/// times alternating between them, and keeps each server's median.
pub async fn time_query(
    client: &Client,
    vigil: &str,
    prometheus: &str,
    query: &Query,
    at_ms: i64,
    runs: usize,
) -> anyhow::Result<Timed> {
    let (path, params) = query.request(at_ms);
    let (_, v_answer) = client.query(vigil, path, &params).await?;
    let (_, p_answer) = client.query(prometheus, path, &params).await?;
    let compared = compare(&v_answer, &p_answer);
    let (mut v_times, mut p_times) = (Vec::new(), Vec::new());
    for _ in 0..runs.max(1) {
        v_times.push(client.query(vigil, path, &params).await?.0);
        p_times.push(client.query(prometheus, path, &params).await?.0);
    }
    Ok(Timed {
        query: query.clone(),
        vigil: median(&mut v_times),
        prometheus: median(&mut p_times),
        series: compared.as_ref().map_or(0, |n| *n),
        mismatch: compared.err(),
    })
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times.get(times.len() / 2).copied().unwrap_or_default()
}

/// The geometric mean of the ratios: every query weighs the same, however slow it is.
pub fn geometric_mean(ratios: impl IntoIterator<Item = f64>) -> f64 {
    let (sum, n) = ratios
        .into_iter()
        .fold((0.0, 0usize), |(s, n), r| (s + r.max(1e-12).ln(), n + 1));
    if n == 0 {
        f64::NAN
    } else {
        (sum / n as f64).exp()
    }
}

/// Points of one answer, keyed by the series' label set (`{}` for a scalar).
type Points = BTreeMap<String, Vec<(f64, f64)>>;

/// Compares two API answers: result type, the set of label sets, and each series' points
/// (timestamps exactly, values to 1e-6 relative, NaN equal to NaN), and returns the number
/// of series they agree on. Series order is not compared: both engines may order a vector
/// as they like, unless sorted, which this set does not ask for.
pub fn compare(a: &Value, b: &Value) -> Result<usize, String> {
    let (ta, pa) = points(a)?;
    let (tb, pb) = points(b)?;
    if ta != tb {
        let error = |v: &Value| {
            v["error"]
                .as_str()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default()
        };
        return Err(format!("result {ta}{} vs {tb}{}", error(a), error(b)));
    }
    if pa.len() != pb.len() {
        return Err(format!("{} series vs {}", pa.len(), pb.len()));
    }
    let mut differing = 0;
    let mut first = None;
    for (key, xs) in &pa {
        let Some(ys) = pb.get(key) else {
            return Err(format!("series {key} only in Vigil's answer"));
        };
        let same = xs.len() == ys.len()
            && xs
                .iter()
                .zip(ys)
                .all(|(x, y)| x.0 == y.0 && close(x.1, y.1));
        if !same {
            differing += 1;
            first.get_or_insert_with(|| format!("{key}: {} vs {} points", xs.len(), ys.len()));
        }
    }
    match first {
        None => Ok(pa.len()),
        Some(f) => Err(format!("{differing} series differ, first {f}")),
    }
}

fn close(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= 1e-6 * a.abs().max(b.abs())
}

fn points(answer: &Value) -> Result<(String, Points), String> {
    if answer["status"] != "success" {
        // Both failing the same way is agreement; the error text is each engine's own.
        return Ok((format!("error {}", answer["errorType"]), Points::new()));
    }
    let data = &answer["data"];
    let kind = data["resultType"].as_str().unwrap_or("?").to_string();
    let mut out = Points::new();
    match kind.as_str() {
        "scalar" => {
            out.insert("{}".to_string(), vec![point(&data["result"])?]);
        }
        "vector" | "matrix" => {
            for s in data["result"].as_array().ok_or("result is not an array")? {
                let key = s["metric"].to_string(); // serde_json's maps are sorted by key
                let pts = match s.get("values") {
                    Some(vs) => vs
                        .as_array()
                        .ok_or("values is not an array")?
                        .iter()
                        .map(point)
                        .collect::<Result<_, _>>()?,
                    None => vec![point(&s["value"])?],
                };
                out.insert(key, pts);
            }
        }
        other => return Err(format!("unexpected result type {other}")),
    }
    Ok((kind, out))
}

/// `[1700000000.75, "1.5"]` → `(1700000000.75, 1.5)`; Go's `NaN`, `+Inf`, `-Inf` included.
fn point(p: &Value) -> Result<(f64, f64), String> {
    let t = p[0]
        .as_f64()
        .ok_or_else(|| format!("bad timestamp in {p}"))?;
    let text = p[1].as_str().ok_or_else(|| format!("bad value in {p}"))?;
    let v = text
        .parse::<f64>()
        .map_err(|_| format!("bad value {text:?}"))?;
    Ok((t, v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn matrix(series: Value) -> Value {
        json!({"status": "success", "data": {"resultType": "matrix", "result": series}})
    }

    #[test]
    fn answers_compare_by_label_set_and_value_tolerance() {
        let a = matrix(json!([
            {"metric": {"a": "1", "b": "2"}, "values": [[10.75, "1.0000000001"], [25.75, "NaN"]]},
            {"metric": {"a": "2"}, "values": [[10.75, "+Inf"]]}
        ]));
        let b = matrix(json!([
            {"metric": {"a": "2"}, "values": [[10.75, "+Inf"]]},
            {"metric": {"b": "2", "a": "1"}, "values": [[10.75, "1"], [25.75, "NaN"]]}
        ]));
        assert_eq!(compare(&a, &b), Ok(2));
        let c = matrix(json!([
            {"metric": {"a": "2"}, "values": [[10.75, "+Inf"]]},
            {"metric": {"b": "2", "a": "1"}, "values": [[10.75, "1.01"], [25.75, "NaN"]]}
        ]));
        assert!(compare(&a, &c).unwrap_err().contains("1 series differ"));
        let d = matrix(json!([{"metric": {"a": "2"}, "values": [[10.75, "+Inf"]]}]));
        assert_eq!(compare(&a, &d), Err("2 series vs 1".to_string()));
        let e = json!({"status": "error", "errorType": "execution", "error": "many-to-many"});
        let f = json!({"status": "error", "errorType": "execution", "error": "other words"});
        assert_eq!(compare(&e, &f), Ok(0));
        assert_eq!(
            compare(&e, &a),
            Err(r#"result error "execution" (many-to-many) vs matrix"#.to_string())
        );
    }

    #[test]
    fn evaluation_times_avoid_sample_and_step_boundaries() {
        let t = eval_time(1_700_000_015_000);
        assert_eq!(t, 1_700_000_013_750);
        assert_eq!(seconds(t), "1700000013.750");
        assert!((geometric_mean([0.5, 2.0]) - 1.0).abs() < 1e-12);
    }
}
