//! The template expander for alert labels and annotations: Go `text/template` syntax, limited
//! for now to the forms rules use most (`$labels.x`, `.Labels.x`, `$value`, `.Value`,
//! `$externalLabels.x`, `$externalURL`, `humanize`, pipelines, comments and trim markers).
//!
//! Parsing happens at load time and rejects only what Go would reject as malformed (an action
//! that is never closed). A well-formed action this expander cannot run yet is kept and fails
//! at expansion, so the rule still evaluates and the value becomes Prometheus's
//! `<error expanding template: ...>` text, exactly what Prometheus does for a failing template.

use crate::goformat::format_g;
use model::Labels;

/// What a template sees as `.` (Prometheus's `tmplData`) plus the variables it predeclares.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TemplateData<'a> {
    pub labels: &'a Labels,
    pub value: f64,
    pub external_labels: &'a Labels,
    pub external_url: &'a str,
}

/// A parsed template.
#[derive(Debug, Clone)]
pub(crate) struct Template {
    name: String,
    nodes: Vec<Node>,
}

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    /// An action and, if it could be parsed into what we run, its pipeline.
    Action {
        source: String,
        pipeline: Result<Vec<Command>, Unsupported>,
    },
}

/// Why a well-formed action cannot be run, with Go's stage (parse or execute) for the message.
#[derive(Debug, Clone)]
enum Unsupported {
    /// Go itself would refuse this at parse time (an unknown function).
    ParseError(String),
    /// Valid Go template syntax that this expander does not implement yet.
    NotYet(String),
}

#[derive(Debug, Clone)]
struct Command {
    args: Vec<Arg>,
}

#[derive(Debug, Clone)]
enum Arg {
    /// `.A.B` (root `None`) or `$var.A.B`.
    Field {
        var: Option<String>,
        path: Vec<String>,
    },
    Str(String),
    Int(i64),
    Float(f64),
    Function(String),
}

enum Value<'a> {
    Str(String),
    Int(i64),
    Float(f64),
    Map(&'a Labels),
}

/// Functions Prometheus's template engine defines (its own map plus Go's builtins). A name not in
/// this list is a parse error in Go; a name in it that we do not run yet fails at execution.
const KNOWN_FUNCTIONS: &[&str] = &[
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
    "toDuration",
    "now",
    "pathPrefix",
    "externalURL",
    "parseDuration",
    "urlQueryEscape",
    "and",
    "or",
    "not",
    "len",
    "index",
    "print",
    "printf",
    "println",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "html",
    "js",
    "urlquery",
    "slice",
    "call",
];

const KEYWORDS: &[&str] = &[
    "if", "else", "end", "range", "with", "define", "template", "block", "break", "continue",
    "nil", "true", "false",
];

impl Template {
    /// Parses `text`; `name` is the Go template name used in error messages.
    pub fn parse(name: &str, text: &str) -> Result<Template, String> {
        let mut nodes = Vec::new();
        let mut rest = text;
        let mut trim_next_text = false;
        while !rest.is_empty() {
            let Some(open) = rest.find("{{") else {
                push_text(&mut nodes, rest, trim_next_text);
                break;
            };
            let after_open = &rest[open + 2..];
            let trim_left = is_trim_marker_left(after_open);
            let mut before = &rest[..open];
            if trim_left {
                before = before.trim_end();
            }
            push_text(&mut nodes, before, trim_next_text);
            let body_start = if trim_left { 2 } else { 0 };
            let body_and_rest = &after_open[body_start..];
            let close = find_close(body_and_rest).ok_or_else(|| {
                let line = text[..text.len() - rest.len() + open].matches('\n').count() + 1;
                format!("template: {name}:{line}: unclosed action")
            })?;
            let mut body = &body_and_rest[..close];
            trim_next_text = false;
            if let Some(b) = body.strip_suffix('-') {
                if b.ends_with(char::is_whitespace) {
                    body = b;
                    trim_next_text = true;
                }
            }
            rest = &body_and_rest[close + 2..];
            let body = body.trim();
            if body.starts_with("/*") {
                if !body.ends_with("*/") {
                    return Err(format!("template: {name}: unclosed comment"));
                }
                continue;
            }
            nodes.push(Node::Action {
                source: body.to_string(),
                pipeline: parse_pipeline(body),
            });
        }
        Ok(Template {
            name: name.to_string(),
            nodes,
        })
    }

    /// Runs the template, returning Go's error text on failure.
    pub fn expand(&self, data: &TemplateData<'_>) -> Result<String, String> {
        let name = &self.name;
        // Go reports parse errors before running anything, so look for them first.
        for node in &self.nodes {
            if let Node::Action {
                pipeline: Err(Unsupported::ParseError(msg)),
                ..
            } = node
            {
                return Err(format!(
                    "error parsing template {name}: template: {name}:1: {msg}"
                ));
            }
        }
        let mut out = String::new();
        for node in &self.nodes {
            match node {
                Node::Text(t) => out.push_str(t),
                Node::Action { source, pipeline } => {
                    let exec_err = |msg: String| {
                        format!(
                            "error executing template {name}: template: {name}:1: executing \"{name}\" at <{source}>: {msg}"
                        )
                    };
                    let commands = match pipeline {
                        Ok(c) => c,
                        Err(Unsupported::NotYet(msg)) | Err(Unsupported::ParseError(msg)) => {
                            return Err(exec_err(msg.clone()))
                        }
                    };
                    let value = run_pipeline(commands, data).map_err(exec_err)?;
                    out.push_str(&print(&value));
                }
            }
        }
        Ok(out)
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

fn push_text(nodes: &mut Vec<Node>, text: &str, trim_start: bool) {
    let text = if trim_start { text.trim_start() } else { text };
    if !text.is_empty() {
        nodes.push(Node::Text(text.to_string()));
    }
}

/// `{{- ` trims the text before the action; Go needs whitespace after the dash, since `{{-3}}`
/// is the number -3.
fn is_trim_marker_left(after_open: &str) -> bool {
    let mut chars = after_open.chars();
    chars.next() == Some('-') && chars.next().is_some_and(char::is_whitespace)
}

/// The offset of the `}}` closing an action, skipping quoted strings.
fn find_close(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'`' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'`' {
                    i += 1;
                }
            }
            b'}' if bytes.get(i + 1) == Some(&b'}') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

fn parse_pipeline(body: &str) -> Result<Vec<Command>, Unsupported> {
    let tokens = tokenize(body)?;
    let mut commands = Vec::new();
    for group in tokens.split(|t| t == "|") {
        if group.is_empty() {
            return Err(Unsupported::ParseError("missing command".into()));
        }
        let args = group
            .iter()
            .map(|t| parse_arg(t))
            .collect::<Result<Vec<_>, _>>()?;
        commands.push(Command { args });
    }
    if commands.is_empty() {
        return Err(Unsupported::ParseError("missing value for command".into()));
    }
    Ok(commands)
}

/// Splits an action body into whitespace-separated tokens, keeping quoted strings whole.
fn tokenize(body: &str) -> Result<Vec<String>, Unsupported> {
    let mut tokens = Vec::new();
    let mut chars = body.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let mut tok = String::new();
        match c {
            '"' | '`' => {
                let quote = c;
                tok.push(chars.next().unwrap_or(quote));
                let mut closed = false;
                while let Some(ch) = chars.next() {
                    tok.push(ch);
                    if ch == '\\' && quote == '"' {
                        if let Some(esc) = chars.next() {
                            tok.push(esc);
                        }
                    } else if ch == quote {
                        closed = true;
                        break;
                    }
                }
                if !closed {
                    return Err(Unsupported::ParseError("unterminated quoted string".into()));
                }
            }
            '|' => {
                chars.next();
                tok.push('|');
            }
            '(' | ')' | ',' => {
                return Err(Unsupported::NotYet(
                    "parenthesized pipelines are not supported by Vigil yet".into(),
                ))
            }
            _ => {
                while let Some(&ch) = chars.peek() {
                    if ch.is_whitespace() || ch == '|' || ch == '(' || ch == ')' {
                        break;
                    }
                    tok.push(ch);
                    chars.next();
                }
            }
        }
        tokens.push(tok);
    }
    Ok(tokens)
}

fn parse_arg(tok: &str) -> Result<Arg, Unsupported> {
    if tok.contains(":=") || tok == "=" {
        return Err(Unsupported::NotYet(
            "variable declarations are not supported by Vigil yet".into(),
        ));
    }
    if let Some(rest) = tok.strip_prefix('$') {
        let mut parts = rest.split('.');
        let var = parts.next().unwrap_or_default().to_string();
        return Ok(Arg::Field {
            var: Some(var),
            path: parts.map(str::to_string).collect(),
        });
    }
    if tok == "." {
        return Ok(Arg::Field {
            var: None,
            path: Vec::new(),
        });
    }
    if let Some(rest) = tok.strip_prefix('.') {
        return Ok(Arg::Field {
            var: None,
            path: rest.split('.').map(str::to_string).collect(),
        });
    }
    if let Some(inner) = tok.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        return unquote(inner)
            .map(Arg::Str)
            .ok_or_else(|| Unsupported::ParseError(format!("invalid syntax in {tok}")));
    }
    if let Some(inner) = tok.strip_prefix('`').and_then(|t| t.strip_suffix('`')) {
        return Ok(Arg::Str(inner.to_string()));
    }
    if tok.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '+') {
        if let Ok(i) = tok.parse::<i64>() {
            return Ok(Arg::Int(i));
        }
        return tok
            .parse::<f64>()
            .map(Arg::Float)
            .map_err(|_| Unsupported::ParseError(format!("bad number syntax: {tok:?}")));
    }
    if KEYWORDS.contains(&tok) {
        return Err(Unsupported::NotYet(format!(
            "the {tok:?} action is not supported by Vigil yet"
        )));
    }
    if KNOWN_FUNCTIONS.contains(&tok) {
        return Ok(Arg::Function(tok.to_string()));
    }
    Err(Unsupported::ParseError(format!(
        "function {tok:?} not defined"
    )))
}

/// Undoes Go string-literal escapes (the common ones).
fn unquote(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            '\\' => out.push('\\'),
            '"' => out.push('"'),
            _ => return None,
        }
    }
    Some(out)
}

fn run_pipeline<'a>(commands: &[Command], data: &TemplateData<'a>) -> Result<Value<'a>, String> {
    let mut piped: Option<Value<'a>> = None;
    for cmd in commands {
        piped = Some(run_command(cmd, piped.take(), data)?);
    }
    piped.ok_or_else(|| "empty pipeline".to_string())
}

fn run_command<'a>(
    cmd: &Command,
    piped: Option<Value<'a>>,
    data: &TemplateData<'a>,
) -> Result<Value<'a>, String> {
    let Some((first, rest)) = cmd.args.split_first() else {
        return Err("empty command".into());
    };
    let Arg::Function(func) = first else {
        if !rest.is_empty() || piped.is_some() {
            return Err("can't give argument to non-function".into());
        }
        return eval_arg(first, data);
    };
    let mut args = rest
        .iter()
        .map(|a| eval_arg(a, data))
        .collect::<Result<Vec<_>, _>>()?;
    args.extend(piped);
    match func.as_str() {
        "humanize" => {
            let [v] = args.as_slice() else {
                return Err(format!(
                    "wrong number of args for humanize: want 1 got {}",
                    args.len()
                ));
            };
            Ok(Value::Str(humanize(to_float(v)?)))
        }
        other => Err(format!("function {other:?} is not supported by Vigil yet")),
    }
}

fn eval_arg<'a>(arg: &Arg, data: &TemplateData<'a>) -> Result<Value<'a>, String> {
    match arg {
        Arg::Str(s) => Ok(Value::Str(s.clone())),
        Arg::Int(i) => Ok(Value::Int(*i)),
        Arg::Float(f) => Ok(Value::Float(*f)),
        Arg::Function(f) => Err(format!("function {f:?} used as a value")),
        Arg::Field { var, path } => {
            // The predeclared variables are shorthands for fields of `.`.
            let (base, path): (&str, &[String]) = match var.as_deref() {
                None => match path.split_first() {
                    Some((head, tail)) => (head.as_str(), tail),
                    None => return Err("printing the template data is not supported".into()),
                },
                Some("labels") => ("Labels", path),
                Some("value") => ("Value", path),
                Some("externalLabels") => ("ExternalLabels", path),
                Some("externalURL") => ("ExternalURL", path),
                Some(other) => return Err(format!("undefined variable: ${other}")),
            };
            let value = match base {
                "Labels" => Value::Map(data.labels),
                "Value" => Value::Float(data.value),
                "ExternalLabels" => Value::Map(data.external_labels),
                "ExternalURL" => Value::Str(data.external_url.to_string()),
                other => return Err(format!("can't evaluate field {other}")),
            };
            match (value, path) {
                (v, []) => Ok(v),
                // missingkey=zero: an absent label reads as the empty string.
                (Value::Map(m), [key]) => Ok(Value::Str(m.get(key).unwrap_or("").to_string())),
                (_, [key, ..]) => Err(format!("can't evaluate field {key}")),
            }
        }
    }
}

fn to_float(v: &Value<'_>) -> Result<f64, String> {
    match v {
        Value::Float(f) => Ok(*f),
        Value::Int(i) => Ok(*i as f64),
        Value::Str(s) => s.trim().parse::<f64>().map_err(|_| {
            format!("error calling humanize: strconv.ParseFloat: parsing {s:?}: invalid syntax")
        }),
        Value::Map(_) => Err("error calling humanize: can't convert map to float".into()),
    }
}

fn print(v: &Value<'_>) -> String {
    match v {
        Value::Str(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => format_g(*f, None),
        Value::Map(m) => {
            let pairs: Vec<String> = m
                .iter()
                .map(|l| format!("{}:{}", l.name, l.value))
                .collect();
            format!("map[{}]", pairs.join(" "))
        }
    }
}

/// Prometheus's `humanize`: `%.4g` with an SI prefix.
pub(crate) fn humanize(v: f64) -> String {
    if v == 0.0 || v.is_nan() || v.is_infinite() {
        return format_g(v, Some(4));
    }
    let mut v = v;
    let mut prefix = "";
    if v.abs() >= 1.0 {
        for p in ["k", "M", "G", "T", "P", "E", "Z", "Y"] {
            if v.abs() < 1000.0 {
                break;
            }
            prefix = p;
            v /= 1000.0;
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
    format!("{}{prefix}", format_g(v, Some(4)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(text: &str, value: f64) -> String {
        let labels = Labels::from_pairs([("__name__", "up"), ("service", "checkout")]);
        let ext = Labels::from_pairs([("cluster", "research")]);
        let data = TemplateData {
            labels: &labels,
            value,
            external_labels: &ext,
            external_url: "http://vigil:9090",
        };
        Template::parse("__alert_Test", text)
            .unwrap()
            .expand_or_error_text(&data)
    }

    #[test]
    fn expands_the_common_forms() {
        assert_eq!(
            expand("Service {{ $labels.service }} is down", 0.0),
            "Service checkout is down"
        );
        assert_eq!(expand("{{ .Labels.service }}-team", 0.0), "checkout-team");
        assert_eq!(
            expand("{{$labels.__name__}} {{ $labels.missing }}|", 0.0),
            "up |"
        );
        assert_eq!(
            expand("value={{ $value }} v={{ .Value }}", 0.5),
            "value=0.5 v=0.5"
        );
        assert_eq!(expand("{{ $value }}", 1234567.0), "1.234567e+06");
        assert_eq!(
            expand("ext={{ $externalLabels.cluster }}", 0.0),
            "ext=research"
        );
        assert_eq!(expand("{{ $externalURL }}", 0.0), "http://vigil:9090");
        assert_eq!(expand("{{ humanize 1234567.0 }}", 0.0), "1.235M");
        assert_eq!(expand("{{ $value | humanize }}B", 0.0012), "1.2mB");
        assert_eq!(expand("{{ humanize \"2048\" }}", 0.0), "2.048k");
        assert_eq!(expand("{{ \"a&b\" }}", 0.0), "a&b");
    }

    #[test]
    fn trim_markers_and_comments() {
        assert_eq!(expand("a  {{- $labels.service -}}  b", 0.0), "acheckoutb");
        assert_eq!(expand("a {{/* note */}}b", 0.0), "a b");
        assert_eq!(expand("{{-3}}", 0.0), "-3");
    }

    #[test]
    fn unsupported_actions_become_prometheus_error_text() {
        let out = expand("{{ if $value }}x{{ end }}", 1.0);
        assert!(
            out.starts_with("<error expanding template: error executing template __alert_Test:"),
            "{out}"
        );
        assert!(out.ends_with('>'));
        let out = expand("{{ humanize1024 1048576.0 }}", 0.0);
        assert!(out.contains("humanize1024"), "{out}");
        let out = expand("{{ nosuchfunc 1 }}", 0.0);
        assert_eq!(
            out,
            "<error expanding template: error parsing template __alert_Test: template: __alert_Test:1: function \"nosuchfunc\" not defined>"
        );
    }

    #[test]
    fn unclosed_action_is_a_parse_error() {
        let err = Template::parse("t", "line1\n{{ $labels.x ").unwrap_err();
        assert_eq!(err, "template: t:2: unclosed action");
    }

    #[test]
    fn humanize_matches_prometheus() {
        assert_eq!(humanize(0.0), "0");
        assert_eq!(humanize(1234567.0), "1.235M");
        assert_eq!(humanize(999.0), "999");
        assert_eq!(humanize(1000.0), "1k");
        assert_eq!(humanize(0.000123), "123u");
        assert_eq!(humanize(-1500.0), "-1.5k");
        assert_eq!(humanize(f64::INFINITY), "+Inf");
    }
}
