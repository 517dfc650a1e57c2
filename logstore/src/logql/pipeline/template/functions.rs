//! The functions templates may call: Go's builtins (`eq`, `and`, `len`, `printf`), the
//! sprig-style string and math functions Loki documents, and the time helpers.

use super::{truthy, Row, Val};
use regex::Regex;
use std::fmt;

/// Go's default `time.Time` format in UTC: `2006-01-02 15:04:05.999999999 +0000 UTC`.
pub(super) fn write_go_time(f: &mut fmt::Formatter<'_>, ns: i64) -> fmt::Result {
    let secs = ns.div_euclid(1_000_000_000);
    let frac = ns.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    write!(
        f,
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    )?;
    if frac > 0 {
        let digits = format!("{frac:09}");
        write!(f, ".{}", digits.trim_end_matches('0'))?;
    }
    f.write_str(" +0000 UTC")
}

pub(super) fn call(name: &str, args: Vec<Val>, row: &Row) -> Result<Val, String> {
    let n = args.len();
    let want = |k: usize| -> Result<(), String> {
        if n == k {
            Ok(())
        } else {
            Err(format!("wrong number of args for {name}: want {k} got {n}"))
        }
    };
    let s = |i: usize| args.get(i).map(Val::to_string).unwrap_or_default();
    let str_val = Val::Str;
    Ok(match name {
        "__line__" => str_val(row.line.clone()),
        "__timestamp__" => Val::Time(row.ts_ns),
        "true" => Val::Bool(true),
        "false" => Val::Bool(false),
        "ToLower" | "lower" => {
            want(1)?;
            str_val(s(0).to_lowercase())
        }
        "ToUpper" | "upper" => {
            want(1)?;
            str_val(s(0).to_uppercase())
        }
        "title" | "Title" => {
            want(1)?;
            str_val(title(&s(0)))
        }
        "TrimSpace" | "trim" => {
            want(1)?;
            str_val(s(0).trim().to_string())
        }
        "Trim" => {
            want(2)?;
            let cut = s(1);
            str_val(s(0).trim_matches(|c| cut.contains(c)).to_string())
        }
        "TrimLeft" => {
            want(2)?;
            let cut = s(1);
            str_val(s(0).trim_start_matches(|c| cut.contains(c)).to_string())
        }
        "TrimRight" => {
            want(2)?;
            let cut = s(1);
            str_val(s(0).trim_end_matches(|c| cut.contains(c)).to_string())
        }
        "trimAll" => {
            want(2)?;
            let cut = s(0);
            str_val(s(1).trim_matches(|c| cut.contains(c)).to_string())
        }
        "TrimPrefix" => {
            want(2)?;
            str_val(
                s(0).strip_prefix(&s(1))
                    .map_or_else(|| s(0), str::to_string),
            )
        }
        "TrimSuffix" => {
            want(2)?;
            str_val(
                s(0).strip_suffix(&s(1))
                    .map_or_else(|| s(0), str::to_string),
            )
        }
        "trimPrefix" => {
            want(2)?;
            str_val(
                s(1).strip_prefix(&s(0))
                    .map_or_else(|| s(1), str::to_string),
            )
        }
        "trimSuffix" => {
            want(2)?;
            str_val(
                s(1).strip_suffix(&s(0))
                    .map_or_else(|| s(1), str::to_string),
            )
        }
        "trunc" => {
            want(2)?;
            let k = args[0].as_i64();
            let text: Vec<char> = s(1).chars().collect();
            let len = text.len() as i64;
            let out: String = if k >= 0 {
                text[..k.min(len) as usize].iter().collect()
            } else {
                text[(len + k).max(0) as usize..].iter().collect()
            };
            str_val(out)
        }
        "substr" => {
            want(3)?;
            let text: Vec<char> = s(2).chars().collect();
            let len = text.len() as i64;
            let (a, b) = (args[0].as_i64(), args[1].as_i64());
            let a = a.clamp(0, len) as usize;
            let b = if b < 0 || b > len {
                len as usize
            } else {
                b as usize
            };
            str_val(text[a.min(b)..b].iter().collect())
        }
        "contains" => {
            want(2)?;
            Val::Bool(s(1).contains(&s(0)))
        }
        "hasPrefix" => {
            want(2)?;
            Val::Bool(s(1).starts_with(&s(0)))
        }
        "hasSuffix" => {
            want(2)?;
            Val::Bool(s(1).ends_with(&s(0)))
        }
        "repeat" => {
            want(2)?;
            str_val(s(1).repeat(args[0].as_i64().clamp(0, 10_000) as usize))
        }
        "replace" => {
            want(3)?;
            str_val(s(2).replace(&s(0), &s(1)))
        }
        "Replace" => {
            want(4)?;
            let k = args[3].as_i64();
            str_val(if k < 0 {
                s(0).replace(&s(1), &s(2))
            } else {
                s(0).replacen(&s(1), &s(2), k as usize)
            })
        }
        "regexReplaceAll" | "regexReplaceAllLiteral" => {
            want(3)?;
            let re = Regex::new(&s(0)).map_err(|e| e.to_string())?;
            let text = s(1);
            let repl = s(2);
            str_val(if name == "regexReplaceAll" {
                re.replace_all(&text, repl.as_str()).into_owned()
            } else {
                re.replace_all(&text, regex::NoExpand(&repl)).into_owned()
            })
        }
        "count" => {
            want(2)?;
            let re = Regex::new(&s(0)).map_err(|e| e.to_string())?;
            Val::Int(re.find_iter(&s(1)).count() as i64)
        }
        "default" => {
            want(2)?;
            if truthy(&args[1]) {
                args[1].clone()
            } else {
                args[0].clone()
            }
        }
        "len" => {
            want(1)?;
            Val::Int(s(0).chars().count() as i64)
        }
        "printf" => str_val(printf(&args)?),
        "eq" | "ne" | "lt" | "le" | "gt" | "ge" => {
            want(2)?;
            let ord = match (&args[0], &args[1]) {
                (Val::Str(a), Val::Str(b)) => a.cmp(b),
                (a, b) => a
                    .as_f64()
                    .partial_cmp(&b.as_f64())
                    .unwrap_or(std::cmp::Ordering::Equal),
            };
            use std::cmp::Ordering::*;
            Val::Bool(match name {
                "eq" => ord == Equal,
                "ne" => ord != Equal,
                "lt" => ord == Less,
                "le" => ord != Greater,
                "gt" => ord == Greater,
                _ => ord != Less,
            })
        }
        "and" => args
            .iter()
            .find(|v| !truthy(v))
            .or(args.last())
            .cloned()
            .ok_or("wrong number of args for and")?,
        "or" => args
            .iter()
            .find(|v| truthy(v))
            .or(args.last())
            .cloned()
            .ok_or("wrong number of args for or")?,
        "not" => {
            want(1)?;
            Val::Bool(!truthy(&args[0]))
        }
        "add" | "sub" | "mul" | "div" | "mod" | "max" | "min" => {
            if n < 2 {
                return Err(format!("wrong number of args for {name}"));
            }
            let mut acc = args[0].as_i64();
            for v in &args[1..] {
                let b = v.as_i64();
                acc = match name {
                    "add" => acc.wrapping_add(b),
                    "sub" => acc.wrapping_sub(b),
                    "mul" => acc.wrapping_mul(b),
                    "div" | "mod" if b == 0 => return Err("integer divide by zero".into()),
                    "div" => acc.wrapping_div(b),
                    "mod" => acc.wrapping_rem(b),
                    "max" => acc.max(b),
                    _ => acc.min(b),
                };
            }
            Val::Int(acc)
        }
        "addf" | "subf" | "mulf" | "divf" | "maxf" | "minf" => {
            if n < 2 {
                return Err(format!("wrong number of args for {name}"));
            }
            let mut acc = args[0].as_f64();
            for v in &args[1..] {
                let b = v.as_f64();
                acc = match name {
                    "addf" => acc + b,
                    "subf" => acc - b,
                    "mulf" => acc * b,
                    "divf" => acc / b,
                    "maxf" => acc.max(b),
                    _ => acc.min(b),
                };
            }
            Val::Float(acc)
        }
        "ceil" | "floor" | "float64" => {
            want(1)?;
            let x = args[0].as_f64();
            Val::Float(match name {
                "ceil" => x.ceil(),
                "floor" => x.floor(),
                _ => x,
            })
        }
        "round" => {
            if n != 2 && n != 1 {
                return Err("wrong number of args for round".into());
            }
            let x = args[0].as_f64();
            let p = 10f64.powi(args.get(1).map_or(0, Val::as_i64) as i32);
            Val::Float((x * p).round() / p)
        }
        "int" => {
            want(1)?;
            Val::Int(args[0].as_i64())
        }
        "unixEpoch" | "unixEpochMillis" | "unixEpochNanos" => {
            want(1)?;
            let Val::Time(ns) = args[0] else {
                return Err(format!("{name} expects a time"));
            };
            Val::Int(match name {
                "unixEpoch" => ns.div_euclid(1_000_000_000),
                "unixEpochMillis" => ns.div_euclid(1_000_000),
                _ => ns,
            })
        }
        _ => return Err(format!("function {name:?} not defined")),
    })
}

fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for c in s.chars() {
        if start {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        start = !c.is_alphanumeric();
    }
    out
}

/// `printf` with the verbs log lines use: `%s %v %d %f %.Nf %q %%`.
fn printf(args: &[Val]) -> Result<String, String> {
    let Some((fmtv, rest)) = args.split_first() else {
        return Err("wrong number of args for printf".into());
    };
    let fmt_s = fmtv.to_string();
    let mut out = String::new();
    let mut next = rest.iter();
    let mut chars = fmt_s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut prec: Option<usize> = None;
        if chars.peek() == Some(&'.') {
            chars.next();
            let mut d = String::new();
            while let Some(c) = chars.peek().filter(|c| c.is_ascii_digit()) {
                d.push(*c);
                chars.next();
            }
            prec = d.parse().ok();
        }
        let verb = chars.next().unwrap_or('%');
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(v) = next.next() else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        match verb {
            'd' => out.push_str(&v.as_i64().to_string()),
            'f' => out.push_str(&format!("{:.*}", prec.unwrap_or(6), v.as_f64())),
            'q' => out.push_str(&format!("{:?}", v.to_string())),
            _ => out.push_str(&v.to_string()),
        }
    }
    Ok(out)
}
