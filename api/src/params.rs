//! Request parameters as Prometheus and Loki read them: URL query and form-encoded POST body
//! merged (Go's `r.FormValue`), repeated keys such as `match[]` kept, and the time and duration
//! syntaxes both APIs accept.

use crate::error::{ApiError, PlainError};
use axum::extract::{FromRequest, Request};
use axum::http::{header, Method};
use axum::response::{IntoResponse, Response};

/// Largest form body accepted: Go's `ParseForm` bound, which Prometheus and Loki inherit, so
/// every body they accept Vigil accepts too.
const MAX_FORM_BYTES: usize = 10 << 20;

/// Go's `ParseForm` error for a body over the bound, as Prometheus reports it.
const FORM_TOO_LARGE: &str = "error parsing form values: http: POST too large";

/// All parameters of a request, URL query first, then the form body.
#[derive(Debug, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// The first value of `key`, as Go's `FormValue` returns it.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key`, in request order.
    pub fn all(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The parameters of a URL query string (`a=1&match[]=up`).
    #[cfg(test)]
    pub fn from_query(query: &str) -> Self {
        Params(Self::parse(query.as_bytes()))
    }

    fn parse(raw: &[u8]) -> Vec<(String, String)> {
        form_pairs(raw)
    }
}

/// Decodes `application/x-www-form-urlencoded` bytes into pairs; malformed escapes are kept as
/// written, as Go's parser is lenient about them too.
fn form_pairs(raw: &[u8]) -> Vec<(String, String)> {
    raw.split(|&b| b == b'&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let mut it = pair.splitn(2, |&b| b == b'=');
            let k = percent_decode(it.next().unwrap_or_default());
            let v = percent_decode(it.next().unwrap_or_default());
            (k, v)
        })
        .collect()
}

fn percent_decode(s: &[u8]) -> String {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < s.len() => match (hex(s[i + 1]), hex(s[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

impl<S: Send + Sync> FromRequest<S> for Params {
    type Rejection = Response;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let mut pairs = req
            .uri()
            .query()
            .map(|q| Params::parse(q.as_bytes()))
            .unwrap_or_default();
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
        if req.method() == Method::POST && is_form {
            // In the protocol's own form: Prometheus's `bad_data` envelope, Loki's plain text.
            let too_large = if req.uri().path().starts_with("/loki/") {
                PlainError::bad_request(FORM_TOO_LARGE).into_response()
            } else {
                ApiError::bad_data(FORM_TOO_LARGE).into_response()
            };
            // Read past axum's default body limit up to Go's; a read that fails here is either
            // over the bound or a client that went away, which reads no answer.
            let Ok(body) = axum::body::to_bytes(req.into_body(), MAX_FORM_BYTES).await else {
                return Err(too_large);
            };
            // Go's ParseForm puts body values before URL values for FormValue.
            let mut body_pairs = Params::parse(&body);
            body_pairs.append(&mut pairs);
            pairs = body_pairs;
        }
        Ok(Params(pairs))
    }
}

/// Parses a Prometheus timestamp: float Unix seconds (rounded to the millisecond) or RFC 3339.
pub fn parse_time(s: &str) -> Result<i64, String> {
    if let Ok(f) = s.parse::<f64>() {
        if f.is_finite() {
            let secs = f.trunc();
            let ms = ((f - secs) * 1000.0).round();
            let t = secs * 1000.0 + ms;
            if t >= i64::MIN as f64 && t <= i64::MAX as f64 {
                return Ok(t as i64);
            }
        }
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    Err(format!("cannot parse {s:?} to a valid timestamp"))
}

/// Parses a Prometheus duration: float seconds or `1h30m`-style units (ms s m h d w y).
/// Returns milliseconds.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    if let Ok(f) = s.parse::<f64>() {
        let ms = f * 1000.0;
        if !ms.is_finite() || ms > i64::MAX as f64 || ms < i64::MIN as f64 {
            return Err(format!(
                "cannot parse {s:?} to a valid duration. It overflows int64"
            ));
        }
        return Ok(ms as i64);
    }
    parse_prometheus_duration(s).ok_or_else(|| format!("cannot parse {s:?} to a valid duration"))
}

/// `[0-9]+(y|w|d|h|m|s|ms)` repeated with units in decreasing order, as Prometheus's
/// `model.ParseDuration` ([`model::parse_duration`]); milliseconds.
pub fn parse_prometheus_duration(s: &str) -> Option<i64> {
    model::parse_duration(s)
        .ok()
        .and_then(|d| i64::try_from(d.as_millis()).ok())
}

/// Parses Prometheus's `limit` parameter: absent or empty means no limit (`None`), so does `0`;
/// a negative or non-integer value is refused in the words Prometheus uses.
pub fn parse_limit(s: Option<&str>) -> Result<Option<usize>, String> {
    let Some(s) = s.filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let n: i64 = s
        .parse()
        .map_err(|_| format!("strconv.Atoi: parsing {s:?}: invalid syntax"))?;
    match n {
        n if n < 0 => Err("limit must be non-negative".into()),
        0 => Ok(None),
        n => Ok(Some(usize::try_from(n).unwrap_or(usize::MAX))),
    }
}

/// Undoes the `U__` escaping Grafana applies to UTF-8 label names in URL paths (Prometheus's
/// "values" escaping): `U__` prefix, `__` for `_`, `_<hex>_` for any other character. A name
/// without the prefix, or one that does not decode, is returned unchanged, as Prometheus does.
pub fn unescape_label_name(name: &str) -> String {
    let Some(body) = name.strip_prefix("U__") else {
        return name.to_string();
    };
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c != '_' {
            out.push(c);
            continue;
        }
        let mut hex = String::new();
        let mut closed = false;
        for h in chars.by_ref() {
            if h == '_' {
                closed = true;
                break;
            }
            hex.push(h);
        }
        if !closed {
            return name.to_string();
        }
        if hex.is_empty() {
            out.push('_');
            continue;
        }
        match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
            Some(decoded) => out.push(decoded),
            None => return name.to_string(),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(parse_time("1435781451.781").unwrap(), 1_435_781_451_781);
        assert_eq!(parse_time("1435781451").unwrap(), 1_435_781_451_000);
        assert_eq!(
            parse_time("2015-07-01T20:10:51.781Z").unwrap(),
            1_435_781_451_781
        );
        assert_eq!(
            parse_time("2015-07-01T22:10:51+02:00").unwrap(),
            1_435_781_451_000
        );
        assert!(parse_time("yesterday").is_err());
        assert!(parse_time("NaN").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("15").unwrap(), 15_000);
        assert_eq!(parse_duration("0.5").unwrap(), 500);
        assert_eq!(parse_duration("1m30s").unwrap(), 90_000);
        assert_eq!(parse_duration("1h").unwrap(), 3_600_000);
        assert_eq!(parse_duration("100ms").unwrap(), 100);
        assert_eq!(parse_duration("1d2h").unwrap(), 26 * 3_600_000);
        assert!(parse_duration("30s1m").is_err(), "units must decrease");
        assert!(parse_duration("1x").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn limits_follow_prometheus() {
        assert_eq!(parse_limit(None).unwrap(), None);
        assert_eq!(parse_limit(Some("")).unwrap(), None);
        assert_eq!(parse_limit(Some("0")).unwrap(), None);
        assert_eq!(parse_limit(Some("40000")).unwrap(), Some(40_000));
        assert_eq!(
            parse_limit(Some("-1")).unwrap_err(),
            "limit must be non-negative"
        );
        assert_eq!(
            parse_limit(Some("ten")).unwrap_err(),
            r#"strconv.Atoi: parsing "ten": invalid syntax"#
        );
    }

    #[test]
    fn utf8_label_names_unescape() {
        // `_` itself is written `__`: the reference's `U__http_2e_status_code` would not decode.
        assert_eq!(
            unescape_label_name("U__http_2e_status__code"),
            "http.status_code"
        );
        assert_eq!(unescape_label_name("U__a__b"), "a_b");
        assert_eq!(unescape_label_name("U___1f600_"), "\u{1f600}");
        assert_eq!(unescape_label_name("job"), "job");
        // Not decodable: kept as written.
        assert_eq!(unescape_label_name("U__a_zz_"), "U__a_zz_");
        assert_eq!(unescape_label_name("U__a_2e"), "U__a_2e");
    }

    #[test]
    fn form_pairs_keep_repeats_and_decode() {
        let p = Params(Params::parse(
            b"match%5B%5D=up&match[]=a%7Bb%3D%22c%22%7D&q=a+b&bad=%zz",
        ));
        assert_eq!(p.all("match[]"), vec!["up", "a{b=\"c\"}"]);
        assert_eq!(p.get("q"), Some("a b"));
        assert_eq!(p.get("bad"), Some("%zz"));
    }
}
