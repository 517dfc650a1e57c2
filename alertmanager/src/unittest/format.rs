//! promtool's rule unit-test file, read unchanged: the YAML shape (unknown keys refused, as
//! promtool's strict decoder does), series descriptions (`up{job="a"}`) and the expanding
//! value notation of `input_series` (`1+2x3`, `_`, `_x3`, `stale`), as Prometheus's series
//! grammar defines them.

use crate::duration::PromDuration;
use model::{Labels, STALE_NAN_BITS};
use serde::Deserialize;
use std::collections::BTreeMap;

/// A whole test file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TestFile {
    #[serde(default)]
    pub rule_files: Vec<String>,
    /// Step of the rule evaluation loop; promtool's default is one minute.
    pub evaluation_interval: Option<PromDuration>,
    /// Groups named here are evaluated first, in this order.
    #[serde(default)]
    pub group_eval_order: Vec<String>,
    #[serde(default)]
    pub tests: Vec<TestGroup>,
}

/// One entry of `tests`: its own storage, input series and expectations.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TestGroup {
    /// Spacing of `input_series` values; defaults to the file's evaluation interval.
    pub interval: Option<PromDuration>,
    #[serde(default)]
    pub input_series: Vec<InputSeries>,
    #[serde(default)]
    pub alert_rule_test: Vec<AlertTestCase>,
    #[serde(default)]
    pub promql_expr_test: Vec<PromqlTestCase>,
    #[serde(default)]
    pub external_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub external_url: String,
    #[serde(default)]
    pub name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct InputSeries {
    pub series: String,
    #[serde(default)]
    pub values: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AlertTestCase {
    #[serde(default)]
    pub eval_time: PromDuration,
    #[serde(default)]
    pub alertname: String,
    #[serde(default)]
    pub exp_alerts: Vec<ExpectedAlert>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExpectedAlert {
    #[serde(default)]
    pub exp_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub exp_annotations: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PromqlTestCase {
    pub expr: String,
    #[serde(default)]
    pub eval_time: PromDuration,
    #[serde(default)]
    pub exp_samples: Vec<ExpectedSample>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExpectedSample {
    #[serde(default)]
    pub labels: String,
    pub value: f64,
}

/// One position of an expanded value sequence.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Point {
    /// `_`: no sample at this step.
    Omitted,
    Value(f64),
}

/// `metric{a="b"}`, `{__name__="m"}` or a bare metric name, as `parser.ParseMetric` reads it.
pub(crate) fn parse_series_labels(text: &str) -> Result<Labels, String> {
    let text = text.trim();
    let brace = text.find('{').unwrap_or(text.len());
    let (name, set) = text.split_at(brace);
    let name = name.trim();
    let mut labels = if set.trim().is_empty() {
        Labels::empty()
    } else {
        model::parse_label_set(set).map_err(|e| e.to_string())?
    };
    if !name.is_empty() {
        let valid = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
        if !valid {
            return Err(format!("invalid metric name {name:?} in {text:?}"));
        }
        labels = labels.with(model::METRIC_NAME, name);
    }
    Ok(labels)
}

/// Expands a `values` string: space-separated items, each a value, `_`, `stale`, `_xN` (N
/// omitted steps), `vxN` (v repeated N+1 times) or `v+dxN` / `v-dxN` (N+1 values from v,
/// stepping by d).
pub(crate) fn expand_values(text: &str) -> Result<Vec<Point>, String> {
    let mut out = Vec::new();
    for item in text.split_whitespace() {
        expand_item(item, &mut out).map_err(|e| format!("values {text:?}: {e}"))?;
    }
    Ok(out)
}

fn expand_item(item: &str, out: &mut Vec<Point>) -> Result<(), String> {
    match item {
        "_" => {
            out.push(Point::Omitted);
            return Ok(());
        }
        "stale" => {
            out.push(Point::Value(f64::from_bits(STALE_NAN_BITS)));
            return Ok(());
        }
        _ => {}
    }
    if let Some(count) = item.strip_prefix("_x") {
        // The blank form repeats exactly N times, unlike the value forms' N+1.
        out.extend(std::iter::repeat_n(
            Point::Omitted,
            parse_count(count, item)?,
        ));
        return Ok(());
    }
    let Some((head, count)) = item.rsplit_once('x') else {
        out.push(Point::Value(parse_value(item)?));
        return Ok(());
    };
    let n = parse_count(count, item)?;
    let (start, step) = match split_step(head) {
        Some((start, step)) => (parse_value(start)?, parse_value(step)?),
        None => (parse_value(head)?, 0.0),
    };
    let mut v = start;
    for _ in 0..=n {
        out.push(Point::Value(v));
        v += step;
    }
    Ok(())
}

/// Splits `a+b` / `a-b` at the sign that starts the step: not the leading sign, and not the
/// sign of an exponent (`1e+3`).
fn split_step(head: &str) -> Option<(&str, &str)> {
    let bytes = head.as_bytes();
    (1..bytes.len())
        .find(|&i| {
            matches!(bytes[i], b'+' | b'-') && !matches!(bytes[i - 1], b'e' | b'E' | b'+' | b'-')
        })
        .map(|i| (&head[..i], &head[i..]))
}

fn parse_count(text: &str, item: &str) -> Result<usize, String> {
    text.parse::<usize>()
        .map_err(|_| format!("invalid repetition {text:?} in {item:?}"))
}

/// A number as PromQL reads one, including `Inf`, `+Inf`, `-Inf` and `NaN`.
fn parse_value(text: &str) -> Result<f64, String> {
    let unsigned = text.trim_start_matches(['+', '-']);
    let negative = text.starts_with('-');
    let v = match unsigned.to_ascii_lowercase().as_str() {
        "inf" => f64::INFINITY,
        "nan" => f64::NAN,
        _ => {
            // Rust would also take "infinity"; only digits, dots and exponents are numbers here.
            let plain = unsigned
                .chars()
                .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'));
            if !plain || unsigned.is_empty() {
                return Err(format!("invalid value {text:?}"));
            }
            unsigned
                .parse::<f64>()
                .map_err(|_| format!("invalid value {text:?}"))?
        }
    };
    Ok(if negative { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(text: &str) -> Vec<Option<f64>> {
        expand_values(text)
            .unwrap()
            .into_iter()
            .map(|p| match p {
                Point::Omitted => None,
                Point::Value(v) => Some(v),
            })
            .collect()
    }

    #[test]
    fn expanding_notation_is_promtools() {
        assert_eq!(
            values("1+2x3"),
            [Some(1.0), Some(3.0), Some(5.0), Some(7.0)]
        );
        assert_eq!(values("10-2x2"), [Some(10.0), Some(8.0), Some(6.0)]);
        assert_eq!(values("-1-1x1"), [Some(-1.0), Some(-2.0)]);
        assert_eq!(values("5x2"), [Some(5.0), Some(5.0), Some(5.0)]);
        assert_eq!(values("1 _x3 2"), [Some(1.0), None, None, None, Some(2.0)]);
        assert_eq!(values("1 _ 1e+3"), [Some(1.0), None, Some(1000.0)]);
        assert_eq!(values("1e+3+1x1"), [Some(1000.0), Some(1001.0)]);
        assert_eq!(
            values("-Inf +Inf"),
            [Some(f64::NEG_INFINITY), Some(f64::INFINITY)]
        );
        assert!(values("NaN")[0].is_some_and(f64::is_nan));
        let stale = expand_values("stale").unwrap();
        assert!(matches!(stale[0], Point::Value(v) if v.to_bits() == STALE_NAN_BITS));
        assert!(values("").is_empty());
    }

    #[test]
    fn bad_values_are_errors_not_panics() {
        for bad in ["1+x3", "ax3", "1x-1", "1xx", "infinity", "1..2", "_x"] {
            assert!(expand_values(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn series_descriptions_parse_like_parse_metric() {
        let l = parse_series_labels(r#"up{job="a", instance="x:1"}"#).unwrap();
        assert_eq!(l.to_string(), r#"{__name__="up", instance="x:1", job="a"}"#);
        let l = parse_series_labels(r#"{__name__="up"}"#).unwrap();
        assert_eq!(l.metric_name(), Some("up"));
        assert_eq!(parse_series_labels("up").unwrap().len(), 1);
        assert!(parse_series_labels("{}").unwrap().is_empty());
        assert!(parse_series_labels("1up").is_err());
        assert!(parse_series_labels(r#"up{job="a""#).is_err());
    }
}
