//! The values a template computes with, standing in for the Go types Prometheus and
//! Alertmanager hand their templates: how each prints (`fmt.Sprint`), whether it is true, and
//! the fields and methods a `.Name` chain reaches (Alertmanager's `KV.SortedPairs`,
//! `Alerts.Firing`, …).

use crate::goformat::format_g;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A template value. Maps are keyed by string and iterate in key order, as Go's `range` and
/// `fmt` do for maps.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Value {
    /// Go's invalid `reflect.Value`: a missing map key or field, printed as `<no value>`.
    Missing,
    /// An untyped `nil`.
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Arc<Vec<Value>>, ListKind),
    Map(Arc<BTreeMap<String, Value>>, MapKind),
    Struct(Arc<Struct>),
    Time(DateTime<Utc>),
}

/// Which Go slice type a list stands for, deciding the methods it has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ListKind {
    Any,
    /// Alertmanager's `template.Alerts`: `.Firing`, `.Resolved`.
    Alerts,
    /// Alertmanager's `template.Pairs`: `.Names`, `.Values`.
    Pairs,
}

/// Which Go map type a map stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MapKind {
    /// `map[string]interface{}`: a missing key is `<no value>`.
    Any,
    /// `map[string]string`: under `missingkey=zero` a missing key is `""`.
    Strings,
    /// Alertmanager's `template.KV` (a `map[string]string` with `.SortedPairs`, `.Names`,
    /// `.Values`, `.Remove`).
    Kv,
}

/// A Go struct: its type name (for error messages) and its fields in declaration order (for
/// printing, which lists field values in that order).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Struct {
    pub type_name: &'static str,
    pub fields: Vec<(&'static str, Value)>,
}

impl Value {
    pub fn str(s: impl Into<String>) -> Value {
        Value::Str(s.into())
    }

    pub fn list(items: Vec<Value>) -> Value {
        Value::List(Arc::new(items), ListKind::Any)
    }

    /// A `map[string]string` (or `KV` with `kind`) from string pairs.
    pub fn string_map<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
        kind: MapKind,
    ) -> Value {
        let map = pairs
            .into_iter()
            .map(|(k, v)| (k.to_string(), Value::str(v)))
            .collect();
        Value::Map(Arc::new(map), kind)
    }

    pub fn structure(type_name: &'static str, fields: Vec<(&'static str, Value)>) -> Value {
        Value::Struct(Arc::new(Struct { type_name, fields }))
    }

    /// Go's type name, as `fmt` and the template engine's errors print it.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Missing | Value::Nil => "<nil>",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float64",
            Value::Str(_) => "string",
            Value::List(_, ListKind::Alerts) => "template.Alerts",
            Value::List(_, ListKind::Pairs) => "template.Pairs",
            Value::List(_, ListKind::Any) => "[]interface {}",
            Value::Map(_, MapKind::Kv) => "template.KV",
            Value::Map(_, MapKind::Strings) => "map[string]string",
            Value::Map(_, MapKind::Any) => "map[string]interface {}",
            Value::Struct(s) => s.type_name,
            Value::Time(_) => "time.Time",
        }
    }

    /// text/template's `truth`: zero values and empty collections are false.
    pub fn is_true(&self) -> bool {
        match self {
            Value::Missing | Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::List(l, _) => !l.is_empty(),
            Value::Map(m, _) => !m.is_empty(),
            Value::Struct(_) | Value::Time(_) => true,
        }
    }

    /// The value of `.name` on this value, or `None` if it has no such field or method.
    /// Methods come first, as in Go, so `KV.Names` is the method even if a label is named
    /// `Names`.
    pub fn field(&self, name: &str, missing_zero: bool) -> Option<Value> {
        if let Some(v) = self.method(name, &[]) {
            return v.ok();
        }
        match self {
            Value::Struct(s) => s
                .fields
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone()),
            Value::Map(m, kind) => Some(match m.get(name) {
                Some(v) => v.clone(),
                None if missing_zero && *kind != MapKind::Any => Value::str(""),
                None => Value::Missing,
            }),
            // A field of nothing is nothing, as Go evaluates `.a.b` on a missing `.a`.
            Value::Missing => Some(Value::Missing),
            _ => None,
        }
    }

    /// Calls the method `name` with `args`; `None` if this value has no such method.
    pub fn method(&self, name: &str, args: &[Value]) -> Option<Result<Value, String>> {
        let no_args = |v: Value| {
            if args.is_empty() {
                Ok(v)
            } else {
                Err(format!(
                    "wrong number of args for {name}: want 0 got {}",
                    args.len()
                ))
            }
        };
        match (self, name) {
            (Value::List(l, ListKind::Alerts), "Firing" | "Resolved") => {
                let want = if name == "Firing" {
                    "firing"
                } else {
                    "resolved"
                };
                let picked = l
                    .iter()
                    .filter(
                        |a| matches!(a.field("Status", false), Some(Value::Str(s)) if s == want),
                    )
                    .cloned()
                    .collect();
                Some(no_args(Value::List(Arc::new(picked), ListKind::Alerts)))
            }
            (Value::List(l, ListKind::Pairs), "Names" | "Values") => {
                let key = if name == "Names" { "Name" } else { "Value" };
                let items = l.iter().filter_map(|p| p.field(key, false)).collect();
                Some(no_args(Value::list(items)))
            }
            (Value::Map(m, MapKind::Kv), "SortedPairs") => Some(no_args(sorted_pairs(m))),
            (Value::Map(m, MapKind::Kv), "Names" | "Values") => {
                Some(no_args(sorted_pairs(m)).and_then(|p| {
                    p.method(name, &[])
                        .unwrap_or_else(|| Err("no pairs".into()))
                }))
            }
            (Value::Map(m, MapKind::Kv), "Remove") => Some(match args {
                [Value::List(keys, _)] => {
                    let mut out = (**m).clone();
                    for k in keys.iter() {
                        if let Value::Str(k) = k {
                            out.remove(k);
                        }
                    }
                    Ok(Value::Map(Arc::new(out), MapKind::Kv))
                }
                [other] => Err(format!(
                    "wrong type for value; expected []string; got {}",
                    other.type_name()
                )),
                _ => Err(format!(
                    "wrong number of args for Remove: want 1 got {}",
                    args.len()
                )),
            }),
            (Value::Time(t), "Unix") => Some(no_args(Value::Int(t.timestamp()))),
            (Value::Time(t), "UnixMilli") => Some(no_args(Value::Int(t.timestamp_millis()))),
            (Value::Time(t), "UTC") => Some(no_args(Value::Time(*t))),
            (Value::Time(t), "IsZero") => Some(no_args(Value::Bool(
                t.timestamp() == GO_ZERO_UNIX && t.timestamp_subsec_nanos() == 0,
            ))),
            _ => None,
        }
    }

    /// `fmt.Sprint` of the value (`%v`).
    pub fn print(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) {
        match self {
            Value::Missing => out.push_str("<no value>"),
            Value::Nil => out.push_str("<nil>"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Int(i) => out.push_str(&i.to_string()),
            Value::Float(f) => out.push_str(&format_g(*f, None)),
            Value::Str(s) => out.push_str(s),
            Value::List(items, _) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    v.write(out);
                }
                out.push(']');
            }
            Value::Map(m, _) => {
                out.push_str("map[");
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    out.push_str(k);
                    out.push(':');
                    v.write(out);
                }
                out.push(']');
            }
            Value::Struct(s) => {
                out.push('{');
                for (i, (_, v)) in s.fields.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    v.write(out);
                }
                out.push('}');
            }
            Value::Time(t) => out.push_str(&go_time_string(t)),
        }
    }
}

/// Go's zero `time.Time` in Unix seconds.
const GO_ZERO_UNIX: i64 = -62_135_596_800;

/// `time.Time.String()` for a UTC time: `2006-01-02 15:04:05.999999999 +0000 UTC`.
pub(crate) fn go_time_string(t: &DateTime<Utc>) -> String {
    let nanos = t.timestamp_subsec_nanos();
    let frac = if nanos == 0 {
        String::new()
    } else {
        let digits = format!("{nanos:09}");
        format!(".{}", digits.trim_end_matches('0'))
    };
    format!("{}{frac} +0000 UTC", t.format("%Y-%m-%d %H:%M:%S"))
}

/// Alertmanager's `KV.SortedPairs`: `alertname` first, the rest by name.
fn sorted_pairs(m: &BTreeMap<String, Value>) -> Value {
    let pair = |k: &str, v: &Value| {
        Value::structure(
            "template.Pair",
            vec![("Name", Value::str(k)), ("Value", v.clone())],
        )
    };
    let mut pairs = Vec::with_capacity(m.len());
    if let Some(v) = m.get("alertname") {
        pairs.push(pair("alertname", v));
    }
    pairs.extend(
        m.iter()
            .filter(|(k, _)| k.as_str() != "alertname")
            .map(|(k, v)| pair(k, v)),
    );
    Value::List(Arc::new(pairs), ListKind::Pairs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn prints_like_go_fmt() {
        assert_eq!(Value::Float(1234567.0).print(), "1.234567e+06");
        assert_eq!(Value::Float(0.5).print(), "0.5");
        assert_eq!(Value::Missing.print(), "<no value>");
        let m = Value::string_map([("b", "2"), ("a", "1")], MapKind::Strings);
        assert_eq!(m.print(), "map[a:1 b:2]");
        assert_eq!(
            Value::list(vec![Value::Int(1), Value::str("x")]).print(),
            "[1 x]"
        );
        let t = Utc.timestamp_millis_opt(1_500).unwrap();
        assert_eq!(Value::Time(t).print(), "1970-01-01 00:00:01.5 +0000 UTC");
    }

    #[test]
    fn kv_methods_follow_alertmanager() {
        let kv = Value::string_map(
            [
                ("severity", "critical"),
                ("alertname", "Down"),
                ("env", "prod"),
            ],
            MapKind::Kv,
        );
        assert_eq!(
            kv.field("Names", false).unwrap().print(),
            "[alertname env severity]"
        );
        let removed = kv
            .method("Remove", &[Value::list(vec![Value::str("env")])])
            .unwrap()
            .unwrap();
        assert_eq!(
            removed.field("Values", false).unwrap().print(),
            "[Down critical]"
        );
        assert_eq!(kv.field("missing", true), Some(Value::str("")));
        assert_eq!(kv.field("missing", false), Some(Value::Missing));
    }
}
