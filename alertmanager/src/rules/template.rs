//! Prometheus's template expander for alert labels and annotations: the `tmplData` a template
//! sees (`.Labels`, `.ExternalLabels`, `.ExternalURL`, `.Value` and the `$labels`, `$value`,
//! … variables Prometheus predeclares), `missingkey=zero`, and Prometheus's function map
//! (`query`, `humanize*`, `graphLink`, …) over the crate's Go template engine.
//!
//! Templates are parsed at load time, so an undefined function or malformed action fails the
//! rule file; a template that fails while running yields Prometheus's
//! `<error expanding template: ...>` text and the rule keeps evaluating.

use super::QueryFn;
use crate::goformat::{format_g, query_escape};
use crate::template::{exactly, go_time_string, go_title, Funcs, MapKind, Templates, Value};
use chrono::{TimeZone, Utc};
use model::Labels;
use std::sync::Arc;

/// Prometheus's variables, prepended to every label and annotation template.
const PREAMBLE: &str = "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}";

/// Names in Prometheus's function map (beyond Go's builtins), known at parse time.
const PROMETHEUS_FUNCTIONS: &[&str] = &[
    "query",
    "first",
    "label",
    "value",
    "strvalue",
    "args",
    "reReplaceAll",
    "safeHtml",
    "match",
    "title",
    "toUpper",
    "toLower",
    "graphLink",
    "tableLink",
    "sortByLabel",
    "stripPort",
    "stripDomain",
    "humanize",
    "humanize1024",
    "humanizeDuration",
    "humanizePercentage",
    "humanizeTimestamp",
    "toTime",
    "now",
    "pathPrefix",
    "externalURL",
    "parseDuration",
    "urlQueryEscape",
];

/// What a template sees as `.`, plus what its functions need: the query engine and the
/// evaluation time for `query` and `now`.
#[derive(Clone, Copy)]
pub(crate) struct TemplateData<'a> {
    pub labels: &'a Labels,
    pub value: f64,
    pub external_labels: &'a Labels,
    pub external_url: &'a str,
    pub query: Option<&'a QueryFn>,
    pub ts_ms: i64,
}

/// A parsed label or annotation template.
#[derive(Debug, Clone)]
pub(crate) struct Template {
    name: String,
    set: Templates,
}

impl Template {
    /// Parses `text`; `name` is Prometheus's template name (`__alert_<rule>`), used in errors.
    pub fn parse(name: &str, text: &str) -> Result<Template, String> {
        let builtins = Funcs::builtins();
        let is_func = |n: &str| builtins.contains(n) || PROMETHEUS_FUNCTIONS.contains(&n);
        let mut set = Templates::new();
        set.parse(name, &format!("{PREAMBLE}{text}"), &is_func)?;
        Ok(Template {
            name: name.to_string(),
            set,
        })
    }

    /// Runs the template, with Prometheus's `error executing template NAME: ...` on failure.
    pub fn expand(&self, data: &TemplateData<'_>) -> Result<String, String> {
        let dot = Value::structure(
            "struct { Labels map[string]string; ExternalLabels map[string]string; ExternalURL string; Value interface {} }",
            vec![
                ("Labels", labels_value(data.labels)),
                ("ExternalLabels", labels_value(data.external_labels)),
                ("ExternalURL", Value::str(data.external_url)),
                ("Value", Value::Float(data.value)),
            ],
        );
        let funcs = prometheus_funcs(data);
        self.set
            .execute(&self.name, &dot, &funcs)
            .map_err(|e| format!("error executing template {}: {e}", self.name))
    }

    /// Runs the template; on failure returns Prometheus's `<error expanding template: ...>`
    /// text and logs a warning, as Prometheus does, so the rule keeps evaluating.
    pub fn expand_or_error_text(&self, data: &TemplateData<'_>) -> String {
        self.expand(data).unwrap_or_else(|err| {
            tracing::warn!(template = %self.name, error = %err, "expanding alert template failed");
            format!("<error expanding template: {err}>")
        })
    }
}

fn labels_value(labels: &Labels) -> Value {
    Value::string_map(
        labels.iter().map(|l| (l.name.as_str(), l.value.as_str())),
        MapKind::Strings,
    )
}

/// A query result element, Prometheus's `*template.sample`.
fn sample_value(labels: &Labels, v: f64) -> Value {
    Value::structure(
        "*template.sample",
        vec![("Labels", labels_value(labels)), ("Value", Value::Float(v))],
    )
}

/// Prometheus's function map for one expansion.
fn prometheus_funcs(data: &TemplateData<'_>) -> Funcs {
    let mut f = Funcs::builtins();
    let query = data.query.cloned();
    let ts_ms = data.ts_ms;
    f.insert("query", move |a| {
        exactly("query", a, 1)?;
        let q = string_arg(&a[0])?;
        let Some(query) = &query else {
            return Err("query is not available here".into());
        };
        let vector = query(&q, ts_ms)?;
        Ok(Value::list(
            vector.iter().map(|(l, v)| sample_value(l, *v)).collect(),
        ))
    });
    f.insert("first", |a| {
        exactly("first", a, 1)?;
        match &a[0] {
            Value::List(l, _) => l
                .first()
                .cloned()
                .ok_or_else(|| "first() called on vector with no elements".to_string()),
            other => Err(wrong_type("template.queryResult", other)),
        }
    });
    f.insert("label", |a| {
        exactly("label", a, 2)?;
        let name = string_arg(&a[0])?;
        sample_field(&a[1], "Labels")?
            .field(&name, true)
            .ok_or_else(|| "sample has no labels".to_string())
    });
    f.insert("value", |a| {
        exactly("value", a, 1)?;
        sample_field(&a[0], "Value")
    });
    f.insert("strvalue", |a| {
        exactly("strvalue", a, 1)?;
        sample_field(&a[0], "Labels")?
            .field("__value__", true)
            .ok_or_else(|| "sample has no labels".to_string())
    });
    f.insert("args", |a| {
        let map = a
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("arg{i}"), v.clone()))
            .collect();
        Ok(Value::Map(Arc::new(map), MapKind::Any))
    });
    f.insert("reReplaceAll", |a| {
        exactly("reReplaceAll", a, 3)?;
        let (pattern, repl, text) = (string_arg(&a[0])?, string_arg(&a[1])?, string_arg(&a[2])?);
        let re = compile(&pattern)?;
        Ok(Value::str(
            re.replace_all(&text, repl.as_str()).into_owned(),
        ))
    });
    f.insert("safeHtml", |a| {
        exactly("safeHtml", a, 1)?;
        Ok(Value::str(string_arg(&a[0])?))
    });
    f.insert("match", |a| {
        exactly("match", a, 2)?;
        let re = compile(&string_arg(&a[0])?)?;
        Ok(Value::Bool(re.is_match(&string_arg(&a[1])?)))
    });
    f.insert("title", |a| string_fn("title", a, go_title));
    f.insert("toUpper", |a| string_fn("toUpper", a, |s| s.to_uppercase()));
    f.insert("toLower", |a| string_fn("toLower", a, |s| s.to_lowercase()));
    f.insert("graphLink", |a| {
        string_fn("graphLink", a, |s| {
            format!("/graph?g0.expr={}&g0.tab=0", query_escape(s))
        })
    });
    f.insert("tableLink", |a| {
        string_fn("tableLink", a, |s| {
            format!("/graph?g0.expr={}&g0.tab=1", query_escape(s))
        })
    });
    f.insert("sortByLabel", |a| {
        exactly("sortByLabel", a, 2)?;
        let name = string_arg(&a[0])?;
        let Value::List(items, kind) = &a[1] else {
            return Err(wrong_type("template.queryResult", &a[1]));
        };
        let key = |v: &Value| match v.field("Labels", true).and_then(|l| l.field(&name, true)) {
            Some(Value::Str(s)) => s,
            _ => String::new(),
        };
        let mut sorted = (**items).clone();
        // Stable, as Go's sort.Stable.
        sorted.sort_by_key(|v| key(v));
        Ok(Value::List(Arc::new(sorted), *kind))
    });
    f.insert("stripPort", |a| {
        string_fn("stripPort", a, |s| {
            split_host_port(s).map_or(s.to_string(), |(h, _)| h)
        })
    });
    f.insert("stripDomain", |a| string_fn("stripDomain", a, strip_domain));
    f.insert("humanize", |a| float_fn("humanize", a, humanize));
    f.insert("humanize1024", |a| {
        float_fn("humanize1024", a, humanize1024)
    });
    f.insert("humanizeDuration", |a| {
        float_fn("humanizeDuration", a, humanize_duration)
    });
    f.insert("humanizePercentage", |a| {
        float_fn("humanizePercentage", a, |v| {
            format!("{}%", format_g(v * 100.0, Some(4)))
        })
    });
    f.insert("humanizeTimestamp", |a| {
        float_fn("humanizeTimestamp", a, humanize_timestamp)
    });
    f.insert("toTime", |a| {
        exactly("toTime", a, 1)?;
        let v = to_float(&a[0])?;
        float_to_time(v).map(Value::Time)
    });
    f.insert("now", move |a| {
        exactly("now", a, 0)?;
        Ok(Value::Float(ts_ms as f64 / 1000.0))
    });
    let external_url = data.external_url.to_string();
    let path = url_path(&external_url);
    f.insert("pathPrefix", move |a| {
        exactly("pathPrefix", a, 0)?;
        Ok(Value::str(path.clone()))
    });
    f.insert("externalURL", move |a| {
        exactly("externalURL", a, 0)?;
        Ok(Value::str(external_url.clone()))
    });
    f.insert("parseDuration", |a| {
        exactly("parseDuration", a, 1)?;
        let d = crate::duration::parse_duration(&string_arg(&a[0])?)?;
        Ok(Value::Float(d.as_secs_f64()))
    });
    f.insert("urlQueryEscape", |a| {
        string_fn("urlQueryEscape", a, query_escape)
    });
    f
}

fn wrong_type(want: &str, got: &Value) -> String {
    format!(
        "wrong type for value; expected {want}; got {}",
        got.type_name()
    )
}

fn string_arg(v: &Value) -> Result<String, String> {
    match v {
        Value::Str(s) => Ok(s.clone()),
        other => Err(wrong_type("string", other)),
    }
}

fn string_fn(name: &str, a: &[Value], f: impl Fn(&str) -> String) -> Result<Value, String> {
    exactly(name, a, 1)?;
    Ok(Value::str(f(&string_arg(&a[0])?)))
}

fn float_fn(name: &str, a: &[Value], f: impl Fn(f64) -> String) -> Result<Value, String> {
    exactly(name, a, 1)?;
    Ok(Value::str(f(to_float(&a[0])?)))
}

fn sample_field(v: &Value, field: &str) -> Result<Value, String> {
    match v {
        Value::Struct(s) if s.type_name == "*template.sample" => v
            .field(field, true)
            .ok_or_else(|| "sample without field".to_string()),
        Value::Missing | Value::Nil => {
            Err("runtime error: invalid memory address or nil pointer dereference".into())
        }
        other => Err(wrong_type("*template.sample", other)),
    }
}

/// Prometheus's `convertToFloat`: floats, integers and numeric strings.
fn to_float(v: &Value) -> Result<f64, String> {
    match v {
        Value::Float(f) => Ok(*f),
        Value::Int(i) => Ok(*i as f64),
        Value::Str(s) => parse_go_float(s).ok_or_else(|| {
            format!(
                "strconv.ParseFloat: parsing {}: invalid syntax",
                crate::goformat::go_quote(s)
            )
        }),
        other => Err(format!("can't convert {} to float", other.type_name())),
    }
}

/// `strconv.ParseFloat`, including Go's spellings of infinity and NaN.
fn parse_go_float(s: &str) -> Option<f64> {
    match s.to_ascii_lowercase().as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => Some(f64::INFINITY),
        "-inf" | "-infinity" => Some(f64::NEG_INFINITY),
        "nan" => Some(f64::NAN),
        _ => s
            .parse::<f64>()
            .ok()
            .filter(|_| !s.contains(char::is_whitespace)),
    }
}

fn compile(pattern: &str) -> Result<regex::Regex, String> {
    regex::Regex::new(pattern).map_err(|e| {
        format!(
            "regexp: Compile({}): {e}",
            crate::goformat::go_quote(pattern)
        )
    })
}

/// Prometheus's `humanize`: `%.4g` with an SI prefix.
pub(crate) fn humanize(v: f64) -> String {
    if v == 0.0 || v.is_nan() || v.is_infinite() {
        return format_g(v, Some(4));
    }
    let (v, prefix) = scale(v, 1000.0, &["k", "M", "G", "T", "P", "E", "Z", "Y"]);
    format!("{}{prefix}", format_g(v, Some(4)))
}

/// Multiplies `|v| < 1` up through milli…yocto prefixes, or divides `|v| >= 1` by `step`
/// through `big`.
fn scale(mut v: f64, step: f64, big: &[&'static str]) -> (f64, &'static str) {
    let mut prefix = "";
    if v.abs() >= 1.0 {
        for p in big {
            if v.abs() < step {
                break;
            }
            prefix = p;
            v /= step;
        }
    } else {
        for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
            if v.abs() >= 1.0 {
                break;
            }
            prefix = p;
            v *= 1000.0;
        }
    }
    (v, prefix)
}

fn humanize1024(v: f64) -> String {
    if v.abs() <= 1.0 || v.is_nan() || v.is_infinite() {
        return format_g(v, Some(4));
    }
    let (v, prefix) = scale(v, 1024.0, &["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"]);
    format!("{}{prefix}", format_g(v, Some(4)))
}

fn humanize_duration(v: f64) -> String {
    if v.is_nan() || v.is_infinite() {
        return format_g(v, Some(4));
    }
    if v == 0.0 {
        return format!("{}s", format_g(v, Some(4)));
    }
    if v.abs() >= 1.0 {
        let sign = if v < 0.0 { "-" } else { "" };
        let v = v.abs();
        let whole = v as i64;
        let (days, hours, minutes, seconds) = (
            whole / 86_400,
            whole / 3600 % 24,
            whole / 60 % 60,
            whole % 60,
        );
        return if days != 0 {
            format!("{sign}{days}d {hours}h {minutes}m {seconds}s")
        } else if hours != 0 {
            format!("{sign}{hours}h {minutes}m {seconds}s")
        } else if minutes != 0 {
            format!("{sign}{minutes}m {seconds}s")
        } else {
            format!("{sign}{}s", format_g(v, Some(4)))
        };
    }
    let (v, prefix) = scale(v, 1000.0, &[]);
    format!("{}{prefix}s", format_g(v, Some(4)))
}

fn float_to_time(v: f64) -> Result<chrono::DateTime<Utc>, String> {
    if v.is_nan() || v.is_infinite() {
        return Err("value is NaN or Inf".into());
    }
    let nanos = v * 1e9;
    if nanos > i64::MAX as f64 || nanos < i64::MIN as f64 {
        return Err(format!(
            "{} cannot be represented as a nanoseconds timestamp since it overflows int64",
            format_g(v, None)
        ));
    }
    // model.TimeFromUnixNano keeps millisecond precision.
    let ms = (nanos as i64).div_euclid(1_000_000);
    Utc.timestamp_millis_opt(ms)
        .single()
        .ok_or_else(|| "timestamp out of range".to_string())
}

fn humanize_timestamp(v: f64) -> String {
    if v.is_nan() || v.is_infinite() {
        return format_g(v, Some(4));
    }
    match float_to_time(v) {
        Ok(t) => go_time_string(&t),
        Err(e) => e,
    }
}

/// `net.SplitHostPort`, enough for `stripPort`/`stripDomain`: `host:port` or `[v6]:port`.
fn split_host_port(s: &str) -> Option<(String, String)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = after.strip_prefix(':')?;
        return Some((host.to_string(), port.to_string()));
    }
    let (host, port) = s.rsplit_once(':')?;
    if host.contains(':') {
        return None;
    }
    Some((host.to_string(), port.to_string()))
}

fn strip_domain(s: &str) -> String {
    if s.is_empty() {
        return String::new();
    }
    let (host, port) = split_host_port(s).unwrap_or((s.to_string(), String::new()));
    if host.parse::<std::net::IpAddr>().is_ok() {
        return s.to_string();
    }
    let short = host.split('.').next().unwrap_or_default();
    if port.is_empty() {
        short.to_string()
    } else {
        format!("{short}:{port}")
    }
}

/// The path of a URL (`pathPrefix`), without parsing more of it than that needs.
fn url_path(url: &str) -> String {
    let after_scheme = url.split_once("://").map_or(url, |(_, r)| r);
    after_scheme
        .find('/')
        .map(|i| {
            after_scheme[i..]
                .split(['?', '#'])
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .unwrap_or_default()
}

#[cfg(test)]
#[path = "template_tests.rs"]
mod tests;
