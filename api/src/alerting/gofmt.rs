//! Go's text forms that the alerting APIs expose: `time.Time` as JSON (RFC 3339 with trailing
//! zeros of the fraction trimmed), go-openapi's `strfmt.DateTime` (always milliseconds),
//! `strconv.FormatFloat(v, 'e', -1, 64)` for alert values, and label sets as JSON objects.

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use model::Labels;
use serde::ser::{Serialize, SerializeMap, Serializer};

/// Go's zero `time.Time`, which Prometheus reports for a group never evaluated.
const GO_ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// A millisecond timestamp as Go marshals a `time.Time` (RFC3339Nano, UTC); `None` is Go's
/// zero time.
pub fn rfc3339_nano_ms(ms: Option<i64>) -> String {
    match ms.and_then(|ms| Utc.timestamp_millis_opt(ms).single()) {
        Some(t) => rfc3339_nano(&t),
        None => GO_ZERO_TIME.to_string(),
    }
}

/// RFC3339Nano: up to nine fractional digits, trailing zeros (and a bare dot) dropped.
pub fn rfc3339_nano(t: &DateTime<Utc>) -> String {
    let full = t.to_rfc3339_opts(SecondsFormat::Nanos, true);
    match full.strip_suffix('Z').and_then(|s| s.split_once('.')) {
        Some((secs, frac)) => {
            let frac = frac.trim_end_matches('0');
            if frac.is_empty() {
                format!("{secs}Z")
            } else {
                format!("{secs}.{frac}Z")
            }
        }
        None => full,
    }
}

/// go-openapi's `strfmt.DateTime`: always three fractional digits, `Z` for UTC.
pub fn openapi_time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `strconv.FormatFloat(v, 'e', -1, 64)`: the shortest mantissa, a signed exponent of at
/// least two digits (`1e+00`, `2.5e-07`), and Go's `NaN`, `+Inf`, `-Inf`.
pub fn format_exp(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let rust = format!("{v:e}");
    let Some((mantissa, exp)) = rust.split_once('e') else {
        return rust;
    };
    let (sign, digits) = match exp.strip_prefix('-') {
        Some(d) => ('-', d),
        None => ('+', exp),
    };
    format!("{mantissa}e{sign}{digits:0>2}")
}

/// A label set serialized as a JSON object in label order, as Prometheus's `labels.Labels`
/// and Alertmanager's `LabelSet` are.
pub struct LabelMap<'a>(pub &'a Labels);

impl Serialize for LabelMap<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        for l in self.0 {
            map.serialize_entry(&l.name, &l.value)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_follow_go_e_format() {
        assert_eq!(format_exp(1.0), "1e+00");
        assert_eq!(format_exp(0.0), "0e+00");
        assert_eq!(format_exp(-2.5e-7), "-2.5e-07");
        assert_eq!(format_exp(1234.5), "1.2345e+03");
        assert_eq!(format_exp(1e100), "1e+100");
        assert_eq!(format_exp(f64::NAN), "NaN");
        assert_eq!(format_exp(f64::NEG_INFINITY), "-Inf");
    }

    #[test]
    fn times_follow_go_marshalling() {
        assert_eq!(
            rfc3339_nano_ms(Some(1_700_000_000_000)),
            "2023-11-14T22:13:20Z"
        );
        assert_eq!(
            rfc3339_nano_ms(Some(1_700_000_000_120)),
            "2023-11-14T22:13:20.12Z"
        );
        assert_eq!(rfc3339_nano_ms(None), GO_ZERO_TIME);
        let t = Utc
            .timestamp_millis_opt(1_700_000_000_000)
            .single()
            .unwrap();
        assert_eq!(openapi_time(&t), "2023-11-14T22:13:20.000Z");
    }
}
