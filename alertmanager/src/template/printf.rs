//! Go's `fmt.Sprintf` for template values: the verbs templates use (`%v %s %q %d %f %e %g %x
//! %t %c %%`) with flags, width and precision, and Go's in-band error forms (`%!d(string=x)`,
//! `%!s(MISSING)`, `%!(EXTRA …)`) instead of failing, as Go does.

use super::value::Value;
use crate::goformat::{format_g, go_quote};

#[derive(Default, Clone, Copy)]
struct Spec {
    minus: bool,
    plus: bool,
    zero: bool,
    space: bool,
    sharp: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

/// `fmt.Sprintf(format, args...)`.
pub(crate) fn sprintf(format: &str, args: &[Value]) -> String {
    let mut out = String::with_capacity(format.len() + 16);
    let mut chars = format.chars().peekable();
    let mut next_arg = 0;
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = Spec::default();
        while let Some(&f) = chars.peek() {
            match f {
                '-' => spec.minus = true,
                '+' => spec.plus = true,
                '0' => spec.zero = true,
                ' ' => spec.space = true,
                '#' => spec.sharp = true,
                _ => break,
            }
            chars.next();
        }
        spec.width = read_num(&mut chars);
        if chars.peek() == Some(&'.') {
            chars.next();
            spec.prec = Some(read_num(&mut chars).unwrap_or(0));
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(next_arg) else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        next_arg += 1;
        let body = format_one(verb, &spec, arg);
        out.push_str(&pad(
            &spec,
            body,
            matches!(arg, Value::Int(_) | Value::Float(_)),
        ));
    }
    if next_arg < args.len() {
        let extra: Vec<String> = args[next_arg..]
            .iter()
            .map(|a| format!("{}={}", a.type_name(), a.print()))
            .collect();
        out.push_str(&format!("%!(EXTRA {})", extra.join(", ")));
    }
    out
}

fn read_num(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<usize> {
    let mut n: Option<usize> = None;
    while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
        // Go caps widths at 1e6; so do we, so a format cannot ask for gigabytes of padding.
        n = Some((n.unwrap_or(0) * 10 + d as usize).min(1_000_000));
        chars.next();
    }
    n
}

fn bad(verb: char, arg: &Value) -> String {
    match arg {
        Value::Missing | Value::Nil => format!("%!{verb}(<nil>)"),
        _ => format!("%!{verb}({}={})", arg.type_name(), arg.print()),
    }
}

fn format_one(verb: char, spec: &Spec, arg: &Value) -> String {
    match (verb, arg) {
        ('v', Value::Float(f)) => float_fmt('g', spec, *f),
        ('v', Value::Int(i)) => int_fmt(spec, *i, 10, false),
        ('v', v) => v.print(),
        ('s', Value::Str(s)) => truncate(s, spec.prec),
        ('s', v @ (Value::List(..) | Value::Map(..) | Value::Struct(_) | Value::Time(_))) => {
            v.print()
        }
        ('q', Value::Str(s)) => go_quote(s),
        ('q', Value::Int(i)) => char::from_u32(*i as u32)
            .map(|c| format!("'{c}'"))
            .unwrap_or_else(|| bad(verb, arg)),
        ('d', Value::Int(i)) => int_fmt(spec, *i, 10, false),
        ('x', Value::Int(i)) => int_fmt(spec, *i, 16, false),
        ('X', Value::Int(i)) => int_fmt(spec, *i, 16, true),
        ('o', Value::Int(i)) => int_fmt(spec, *i, 8, false),
        ('b', Value::Int(i)) => int_fmt(spec, *i, 2, false),
        ('c', Value::Int(i)) => char::from_u32(*i as u32)
            .map(String::from)
            .unwrap_or_else(|| bad(verb, arg)),
        ('x', Value::Str(s)) => s.bytes().map(|b| format!("{b:02x}")).collect(),
        ('X', Value::Str(s)) => s.bytes().map(|b| format!("{b:02X}")).collect(),
        ('t', Value::Bool(b)) => b.to_string(),
        ('f' | 'F' | 'e' | 'E' | 'g' | 'G', Value::Float(f)) => float_fmt(verb, spec, *f),
        _ => bad(verb, arg),
    }
}

fn truncate(s: &str, prec: Option<usize>) -> String {
    match prec {
        Some(p) => s.chars().take(p).collect(),
        None => s.to_string(),
    }
}

fn sign_prefix(spec: &Spec, negative: bool) -> &'static str {
    if negative {
        "-"
    } else if spec.plus {
        "+"
    } else if spec.space {
        " "
    } else {
        ""
    }
}

fn int_fmt(spec: &Spec, i: i64, radix: u32, upper: bool) -> String {
    let mag = i.unsigned_abs();
    let mut digits = match radix {
        16 if upper => format!("{mag:X}"),
        16 => format!("{mag:x}"),
        8 => format!("{mag:o}"),
        2 => format!("{mag:b}"),
        _ => mag.to_string(),
    };
    if let Some(p) = spec.prec {
        while digits.len() < p {
            digits.insert(0, '0');
        }
    }
    let prefix = if spec.sharp {
        match radix {
            16 if upper => "0X",
            16 => "0x",
            8 => "0",
            _ => "",
        }
    } else {
        ""
    };
    format!("{}{prefix}{digits}", sign_prefix(spec, i < 0))
}

fn float_fmt(verb: char, spec: &Spec, f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let sign = sign_prefix(
        spec,
        f.is_sign_negative() && f != 0.0 || (f == 0.0 && f.is_sign_negative()),
    );
    let a = f.abs();
    let body = match verb {
        'f' | 'F' => format!("{:.*}", spec.prec.unwrap_or(6), a),
        'e' | 'E' => {
            let s = go_exp(&format!("{:.*e}", spec.prec.unwrap_or(6), a));
            if verb == 'E' {
                s.to_uppercase()
            } else {
                s
            }
        }
        _ => {
            let s = format_g(a, spec.prec.map(|p| p.max(1)));
            if verb == 'G' {
                s.to_uppercase()
            } else {
                s
            }
        }
    };
    format!("{sign}{body}")
}

/// Rust writes `1.5e6`; Go writes `1.5e+06`.
fn go_exp(rust: &str) -> String {
    let Some((m, e)) = rust.split_once('e') else {
        return rust.to_string();
    };
    let (esign, digits) = match e.strip_prefix('-') {
        Some(d) => ('-', d),
        None => ('+', e),
    };
    format!("{m}e{esign}{digits:0>2}")
}

fn pad(spec: &Spec, body: String, numeric: bool) -> String {
    let Some(width) = spec.width else { return body };
    let len = body.chars().count();
    if len >= width {
        return body;
    }
    let fill = width - len;
    if spec.minus {
        return format!("{body}{}", " ".repeat(fill));
    }
    if spec.zero && numeric {
        let (sign, rest) = match body.chars().next() {
            Some(c @ ('-' | '+' | ' ')) => (c.to_string(), body[1..].to_string()),
            _ => (String::new(), body),
        };
        return format!("{sign}{}{rest}", "0".repeat(fill));
    }
    format!("{}{body}", " ".repeat(fill))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_go() {
        let f = |fmt: &str, args: &[Value]| sprintf(fmt, args);
        assert_eq!(f("%.2f", &[Value::Float(1234567.0)]), "1234567.00");
        assert_eq!(f("%.1f%%", &[Value::Float(12.345)]), "12.3%");
        assert_eq!(
            f(
                "%5.1f|%-6s|%03d",
                &[Value::Float(9.87654), Value::str("ab"), Value::Int(7)]
            ),
            "  9.9|ab    |007"
        );
        assert_eq!(f("%d", &[Value::Float(1.5)]), "%!d(float64=1.5)");
        assert_eq!(f("%s", &[Value::Int(3)]), "%!s(int=3)");
        assert_eq!(f("%s %s", &[Value::str("a")]), "a %!s(MISSING)");
        assert_eq!(
            f("%s", &[Value::str("a"), Value::Int(2)]),
            "a%!(EXTRA int=2)"
        );
        assert_eq!(f("%q", &[Value::str("x\"y")]), "\"x\\\"y\"");
        assert_eq!(f("%e", &[Value::Float(1234.5)]), "1.234500e+03");
        assert_eq!(
            f("%g %v", &[Value::Float(1e21), Value::Float(0.25)]),
            "1e+21 0.25"
        );
        assert_eq!(
            f(
                "%+d %x %t",
                &[Value::Int(5), Value::Int(255), Value::Bool(true)]
            ),
            "+5 ff true"
        );
        assert_eq!(f("%v", &[Value::Missing]), "<no value>");
    }
}
