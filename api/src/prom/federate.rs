//! `GET /federate`: the latest sample of every series matching any `match[]`, in the text
//! exposition format, so another Prometheus can scrape Vigil with `honor_labels` and
//! `metrics_path: /federate`.
//!
//! "Latest" means within the lookback delta before now, as an instant query sees it; a series
//! whose latest sample is a staleness marker is left out, as Prometheus leaves it out.

use crate::error::PlainError;
use crate::params::Params;
use crate::prom::query::now_ms;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use model::{is_stale_nan, Labels, Sample};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;

pub async fn federate(State(st): State<Arc<AppState>>, p: Params) -> Result<Response, PlainError> {
    let sets = p
        .all("match[]")
        .into_iter()
        .map(|s| promql::parse_selector(s).map_err(|e| PlainError::bad_request(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    let maxt = now_ms();
    let lookback = i64::try_from(st.engine_options.lookback_delta.as_millis()).unwrap_or(i64::MAX);
    let mint = maxt.saturating_sub(lookback);
    let querier = st.querier.clone();
    let latest = tokio::task::spawn_blocking(move || {
        let mut latest: BTreeMap<Labels, Sample> = BTreeMap::new();
        for set in &sets {
            for s in querier.select(mint, maxt, set)? {
                if let Some(last) = s.samples.last() {
                    latest.insert(s.labels, *last);
                }
            }
        }
        Ok::<_, model::StorageError>(latest)
    })
    .await
    .map_err(|e| {
        PlainError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("federate task failed: {e}"),
        )
    })?
    .map_err(|e| PlainError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        exposition(&latest),
    )
        .into_response())
}

/// Writes the samples grouped into families by metric name, each under its `# TYPE` line.
/// Federation does not know the types, so every family is `untyped`, as in Prometheus.
fn exposition(latest: &BTreeMap<Labels, Sample>) -> String {
    let mut families: BTreeMap<&str, Vec<(&Labels, &Sample)>> = BTreeMap::new();
    for (labels, sample) in latest {
        if is_stale_nan(sample.v) {
            continue;
        }
        // The exposition format cannot express a series without a name.
        if let Some(name) = labels.metric_name() {
            families.entry(name).or_default().push((labels, sample));
        }
    }
    let mut out = String::new();
    for (name, series) in families {
        let _ = writeln!(out, "# TYPE {name} untyped");
        for (labels, sample) in series {
            out.push_str(name);
            let mut first = true;
            for l in labels.iter().filter(|l| l.name != "__name__") {
                out.push(if first { '{' } else { ',' });
                first = false;
                out.push_str(&l.name);
                out.push_str("=\"");
                escape_value(&mut out, &l.value);
                out.push('"');
            }
            if !first {
                out.push('}');
            }
            let _ = writeln!(out, " {} {}", format_g(sample.v), sample.t);
        }
    }
    out
}

/// Label values escape backslash, double quote and newline.
fn escape_value(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// A value as the exposition format writes it: Go's `%g` with the shortest digits, so an
/// exponent from 1e+06 up and below 1e-04 (`1.234567e+06`, `5e-05`), `+Inf`, `-Inf`, `NaN`.
fn format_g(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if v == 0.0 {
        return format!("{v}");
    }
    let sci = format!("{v:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_format_like_go_g() {
        let cases = [
            (1.0, "1"),
            (0.5, "0.5"),
            (123456.0, "123456"),
            (1234567.0, "1.234567e+06"),
            (1e6, "1e+06"),
            (0.0001, "0.0001"),
            (0.00005, "5e-05"),
            (-2.5e-10, "-2.5e-10"),
            (1e100, "1e+100"),
            (0.0, "0"),
            (f64::INFINITY, "+Inf"),
            (f64::NAN, "NaN"),
        ];
        for (v, want) in cases {
            assert_eq!(format_g(v), want, "{v}");
        }
    }

    #[test]
    fn families_grouped_with_type_lines_and_stale_left_out() {
        let mut m = BTreeMap::new();
        m.insert(
            Labels::from_pairs([("__name__", "up"), ("job", "a\"b")]),
            Sample { t: 1000, v: 1.0 },
        );
        m.insert(
            Labels::from_pairs([("__name__", "up"), ("job", "c")]),
            Sample {
                t: 2000,
                v: f64::from_bits(model::STALE_NAN_BITS),
            },
        );
        m.insert(
            Labels::from_pairs([("__name__", "a_total")]),
            Sample { t: 5, v: 2e6 },
        );
        m.insert(
            Labels::from_pairs([("job", "nameless")]),
            Sample { t: 5, v: 1.0 },
        );
        assert_eq!(
            exposition(&m),
            "# TYPE a_total untyped\na_total 2e+06 5\n# TYPE up untyped\nup{job=\"a\\\"b\"} 1 1000\n"
        );
    }
}
