//! Go `text/template`'s predefined functions (`and or not len index slice print printf println
//! eq ne lt le gt ge html js urlquery`) with Go's comparison rules: an int never equals a
//! float (`incompatible types for comparison`), which is why `gt $value 80` fails in Prometheus.

use super::printf::sprintf;
use super::value::{MapKind, Value};
use super::Funcs;
use crate::goformat::query_escape;
use std::cmp::Ordering;
use std::sync::Arc;

pub(super) fn install(f: &mut Funcs) {
    f.insert("and", |a| {
        at_least("and", a, 1)?;
        Ok(a.iter()
            .find(|v| !v.is_true())
            .unwrap_or(&a[a.len() - 1])
            .clone())
    });
    f.insert("or", |a| {
        at_least("or", a, 1)?;
        Ok(a.iter()
            .find(|v| v.is_true())
            .unwrap_or(&a[a.len() - 1])
            .clone())
    });
    f.insert("not", |a| {
        exactly("not", a, 1)?;
        Ok(Value::Bool(!a[0].is_true()))
    });
    f.insert("len", |a| {
        exactly("len", a, 1)?;
        match &a[0] {
            Value::Str(s) => Ok(Value::Int(s.len() as i64)),
            Value::List(l, _) => Ok(Value::Int(l.len() as i64)),
            Value::Map(m, _) => Ok(Value::Int(m.len() as i64)),
            other => Err(format!("len of type {}", other.type_name())),
        }
    });
    f.insert("index", |a| {
        at_least("index", a, 1)?;
        let mut cur = a[0].clone();
        for key in &a[1..] {
            cur = index(&cur, key)?;
        }
        Ok(cur)
    });
    f.insert("slice", |a| {
        at_least("slice", a, 1)?;
        let bound = |i: usize, len: usize| -> Result<usize, String> {
            match a.get(i) {
                None => Ok(if i == 1 { 0 } else { len }),
                Some(Value::Int(n)) if *n >= 0 && (*n as usize) <= len => Ok(*n as usize),
                Some(Value::Int(n)) => Err(format!("index out of range: {n}")),
                Some(v) => Err(format!(
                    "cannot index slice/array with type {}",
                    v.type_name()
                )),
            }
        };
        match &a[0] {
            Value::Str(s) => {
                let (lo, hi) = (bound(1, s.len())?, bound(2, s.len())?);
                s.get(lo..hi.max(lo))
                    .map(Value::str)
                    .ok_or_else(|| format!("invalid slice index: {lo} > {hi}"))
            }
            Value::List(l, kind) => {
                let (lo, hi) = (bound(1, l.len())?, bound(2, l.len())?);
                if lo > hi {
                    return Err(format!("invalid slice index: {lo} > {hi}"));
                }
                Ok(Value::List(Arc::new(l[lo..hi].to_vec()), *kind))
            }
            other => Err(format!("can't slice item of type {}", other.type_name())),
        }
    });
    f.insert("print", |a| Ok(Value::str(sprint(a))));
    f.insert("println", |a| {
        let parts: Vec<String> = a.iter().map(Value::print).collect();
        Ok(Value::str(format!("{}\n", parts.join(" "))))
    });
    f.insert("printf", |a| {
        at_least("printf", a, 1)?;
        let Value::Str(format) = &a[0] else {
            return Err(format!(
                "wrong type for value; expected string; got {}",
                a[0].type_name()
            ));
        };
        Ok(Value::str(sprintf(format, &a[1..])))
    });
    f.insert("eq", |a| {
        at_least("eq", a, 2)?;
        for other in &a[1..] {
            if compare(&a[0], other, true)? == Ordering::Equal {
                return Ok(Value::Bool(true));
            }
        }
        Ok(Value::Bool(false))
    });
    f.insert("ne", |a| {
        exactly("ne", a, 2)?;
        Ok(Value::Bool(compare(&a[0], &a[1], true)? != Ordering::Equal))
    });
    f.insert("lt", |a| ordered("lt", a, |o| o == Ordering::Less));
    f.insert("le", |a| ordered("le", a, |o| o != Ordering::Greater));
    f.insert("gt", |a| ordered("gt", a, |o| o == Ordering::Greater));
    f.insert("ge", |a| ordered("ge", a, |o| o != Ordering::Less));
    f.insert("html", |a| Ok(Value::str(html_escape(&eval_args(a)))));
    f.insert("js", |a| Ok(Value::str(js_escape(&eval_args(a)))));
    f.insert("urlquery", |a| Ok(Value::str(query_escape(&eval_args(a)))));
}

fn at_least(name: &str, a: &[Value], n: usize) -> Result<(), String> {
    if a.len() < n {
        return Err(format!(
            "wrong number of args for {name}: want at least {n} got {}",
            a.len()
        ));
    }
    Ok(())
}

/// Checks the argument count, with the message Go's reflection-based call gives.
pub(crate) fn exactly(name: &str, a: &[Value], n: usize) -> Result<(), String> {
    if a.len() != n {
        return Err(format!(
            "wrong number of args for {name}: want {n} got {}",
            a.len()
        ));
    }
    Ok(())
}

fn ordered(name: &str, a: &[Value], pick: fn(Ordering) -> bool) -> Result<Value, String> {
    exactly(name, a, 2)?;
    Ok(Value::Bool(pick(compare(&a[0], &a[1], false)?)))
}

/// Go's `eq`/`lt` on basic kinds: same kind only; bools only for equality.
fn compare(a: &Value, b: &Value, equality: bool) -> Result<Ordering, String> {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Ok(x.cmp(y)),
        (Value::Float(x), Value::Float(y)) => Ok(x.partial_cmp(y).unwrap_or(Ordering::Less)),
        (Value::Str(x), Value::Str(y)) => Ok(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) if equality => Ok(x.cmp(y)),
        (Value::Bool(_), Value::Bool(_)) => Err("invalid type for comparison".into()),
        (Value::Missing | Value::Nil, _) | (_, Value::Missing | Value::Nil) => {
            Err("invalid type for comparison".into())
        }
        (
            Value::Int(_) | Value::Float(_) | Value::Str(_) | Value::Bool(_),
            Value::Int(_) | Value::Float(_) | Value::Str(_) | Value::Bool(_),
        ) => Err("incompatible types for comparison".into()),
        _ => Err("invalid type for comparison".into()),
    }
}

fn index(cur: &Value, key: &Value) -> Result<Value, String> {
    match (cur, key) {
        (Value::List(l, _), Value::Int(i)) => usize::try_from(*i)
            .ok()
            .and_then(|i| l.get(i))
            .cloned()
            .ok_or_else(|| format!("error calling index: index out of range: {i}")),
        (Value::Map(m, kind), Value::Str(k)) => Ok(match m.get(k) {
            Some(v) => v.clone(),
            // Go's index on a map returns the element type's zero value.
            None if *kind != MapKind::Any => Value::str(""),
            None => Value::Missing,
        }),
        (Value::Missing | Value::Nil, _) => Err("index of untyped nil".into()),
        (c, k) => Err(format!(
            "can't index item of type {} with {}",
            c.type_name(),
            k.type_name()
        )),
    }
}

/// `fmt.Sprint`: a space between operands when neither side is a string.
pub(crate) fn sprint(a: &[Value]) -> String {
    let mut out = String::new();
    for (i, v) in a.iter().enumerate() {
        if i > 0 && !matches!(v, Value::Str(_)) && !matches!(a[i - 1], Value::Str(_)) {
            out.push(' ');
        }
        out.push_str(&v.print());
    }
    out
}

/// The text `html`, `js` and `urlquery` work on: a single string as is, else `fmt.Sprint`.
fn eval_args(a: &[Value]) -> String {
    match a {
        [Value::Str(s)] => s.clone(),
        _ => sprint(a),
    }
}

/// `template.HTMLEscapeString`.
fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// `template.JSEscapeString`.
fn js_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// `strings.Title`: the first letter of each word upper-cased, the rest left alone (both
/// Prometheus's and Alertmanager's `title`).
pub(crate) fn go_title(s: &str) -> String {
    let is_separator = |c: char| {
        if c.is_ascii() {
            !(c.is_ascii_alphanumeric() || c == '_')
        } else {
            c.is_whitespace()
        }
    };
    let mut prev = ' ';
    s.chars()
        .map(|c| {
            let out = if is_separator(prev) {
                c.to_uppercase().next().unwrap_or(c)
            } else {
                c
            };
            prev = c;
            out
        })
        .collect()
}
