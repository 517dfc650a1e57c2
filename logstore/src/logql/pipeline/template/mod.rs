//! The Go `text/template` subset that `line_format` and `label_format` use: text, `{{.label}}`,
//! pipelines of function calls (`{{ .msg | trunc 10 | ToUpper }}`), parenthesised calls,
//! `{{if}}`/`{{else}}`/`{{else if}}`/`{{end}}`, comments and `{{-`/`-}}` trimming, with the
//! string, regex, math and time functions Loki documents. A missing label renders as the empty
//! string (Loki sets `missingkey=zero`).

mod functions;

use super::Row;
use functions::{call, write_go_time};
use std::fmt;

/// A parsed template.
#[derive(Clone, Debug)]
pub struct Template {
    source: String,
    nodes: Vec<Node>,
}

#[derive(Clone, Debug)]
enum Node {
    Text(String),
    Action(Pipeline),
    If {
        cond: Pipeline,
        then: Vec<Node>,
        otherwise: Vec<Node>,
    },
}

type Pipeline = Vec<Command>;
type Command = Vec<Arg>;

#[derive(Clone, Debug)]
enum Arg {
    Field(String),
    Str(String),
    Int(i64),
    Float(f64),
    Func(String),
    Sub(Pipeline),
}

#[derive(Clone, Debug)]
pub(super) enum Val {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// A time, in nanoseconds since the epoch (`__timestamp__`).
    Time(i64),
}

/// The functions the template may call, checked at parse time.
const FUNCTIONS: &[&str] = &[
    "__line__",
    "__timestamp__",
    "ToLower",
    "ToUpper",
    "lower",
    "upper",
    "title",
    "Title",
    "Trim",
    "TrimLeft",
    "TrimRight",
    "TrimPrefix",
    "TrimSuffix",
    "TrimSpace",
    "trim",
    "trimAll",
    "trimPrefix",
    "trimSuffix",
    "trunc",
    "substr",
    "contains",
    "hasPrefix",
    "hasSuffix",
    "repeat",
    "replace",
    "Replace",
    "regexReplaceAll",
    "regexReplaceAllLiteral",
    "count",
    "default",
    "len",
    "printf",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "and",
    "or",
    "not",
    "add",
    "sub",
    "mul",
    "div",
    "mod",
    "addf",
    "subf",
    "mulf",
    "divf",
    "max",
    "min",
    "maxf",
    "minf",
    "ceil",
    "floor",
    "round",
    "int",
    "float64",
    "unixEpoch",
    "unixEpochMillis",
    "unixEpochNanos",
    "true",
    "false",
];

impl Template {
    /// Parses a template; errors read like Go's (`template: line:1: ...`).
    pub fn parse(source: &str) -> Result<Template, String> {
        let mut items = Vec::new();
        lex_template(source, &mut items)?;
        let mut it = items.into_iter().peekable();
        let (nodes, end) = parse_nodes(&mut it)?;
        if let Some(e) = end {
            return Err(format!("template: line:1: unexpected {{{{{e}}}}}"));
        }
        Ok(Template {
            source: source.to_string(),
            nodes,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Renders the template over a row's labels and line.
    pub fn render(&self, row: &Row) -> Result<String, String> {
        let mut out = String::new();
        render_nodes(&self.nodes, row, &mut out)?;
        Ok(out)
    }
}

/// Raw pieces of a template: text, or the inside of an action.
enum Item {
    Text(String),
    Action(String),
}

fn lex_template(source: &str, items: &mut Vec<Item>) -> Result<(), String> {
    let mut rest = source;
    while let Some(open) = rest.find("{{") {
        let mut text = &rest[..open];
        let mut inner = &rest[open + 2..];
        if let Some(r) = inner.strip_prefix("- ") {
            text = text.trim_end();
            inner = r;
        }
        let close = inner
            .find("}}")
            .ok_or_else(|| "template: line:1: unclosed action".to_string())?;
        let mut body = &inner[..close];
        let mut after = &inner[close + 2..];
        if let Some(b) = body.strip_suffix(" -") {
            body = b;
            after = after.trim_start();
        }
        if !text.is_empty() {
            items.push(Item::Text(text.to_string()));
        }
        let body = body.trim();
        if !(body.starts_with("/*") && body.ends_with("*/")) {
            items.push(Item::Action(body.to_string()));
        }
        rest = after;
    }
    if !rest.is_empty() {
        items.push(Item::Text(rest.to_string()));
    }
    Ok(())
}

/// Parses nodes up to an `else`/`end` (returned) or the end of input.
fn parse_nodes(
    it: &mut std::iter::Peekable<std::vec::IntoIter<Item>>,
) -> Result<(Vec<Node>, Option<String>), String> {
    let mut nodes = Vec::new();
    while let Some(item) = it.next() {
        match item {
            Item::Text(t) => nodes.push(Node::Text(t)),
            Item::Action(a) => {
                if a == "end" || a == "else" || a.starts_with("else ") {
                    return Ok((nodes, Some(a)));
                }
                if let Some(cond) = a.strip_prefix("if ") {
                    nodes.push(parse_if(cond, it)?);
                } else if a.starts_with("range ")
                    || a.starts_with("with ")
                    || a.starts_with("define ")
                {
                    return Err(format!("template: line:1: {{{{{a}}}}} is not supported"));
                } else {
                    nodes.push(Node::Action(parse_pipeline(&a)?));
                }
            }
        }
    }
    Ok((nodes, None))
}

fn parse_if(
    cond: &str,
    it: &mut std::iter::Peekable<std::vec::IntoIter<Item>>,
) -> Result<Node, String> {
    let cond = parse_pipeline(cond)?;
    let (then, end) = parse_nodes(it)?;
    let otherwise = match end.as_deref() {
        Some("end") => Vec::new(),
        Some("else") => {
            let (otherwise, end) = parse_nodes(it)?;
            if end.as_deref() != Some("end") {
                return Err("template: line:1: missing {{end}}".to_string());
            }
            otherwise
        }
        Some(e) if e.starts_with("else if ") => vec![parse_if(&e["else if ".len()..], it)?],
        _ => return Err("template: line:1: unexpected EOF".to_string()),
    };
    Ok(Node::If {
        cond,
        then,
        otherwise,
    })
}

fn parse_pipeline(text: &str) -> Result<Pipeline, String> {
    let toks = tokenize(text)?;
    let mut pos = 0;
    let p = pipeline_from(&toks, &mut pos)?;
    if pos != toks.len() {
        return Err(format!(
            "template: line:1: unexpected {:?} in operand",
            toks[pos]
        ));
    }
    Ok(p)
}

#[derive(Clone, Debug, PartialEq)]
enum TTok {
    Field(String),
    Str(String),
    Num(String),
    Ident(String),
    Pipe,
    Open,
    Close,
}

fn tokenize(text: &str) -> Result<Vec<TTok>, String> {
    let mut out = Vec::new();
    let cs: Vec<char> = text.chars().collect();
    let mut i = 0;
    let word = |i: &mut usize| {
        let s = *i;
        while *i < cs.len() && (cs[*i].is_alphanumeric() || cs[*i] == '_') {
            *i += 1;
        }
        cs[s..*i].iter().collect::<String>()
    };
    while i < cs.len() {
        let c = cs[i];
        match c {
            _ if c.is_whitespace() => i += 1,
            '|' => {
                out.push(TTok::Pipe);
                i += 1;
            }
            '(' => {
                out.push(TTok::Open);
                i += 1;
            }
            ')' => {
                out.push(TTok::Close);
                i += 1;
            }
            '.' => {
                i += 1;
                out.push(TTok::Field(word(&mut i)));
            }
            '"' => {
                let s = i;
                i += 1;
                while i < cs.len() && cs[i] != '"' {
                    i += if cs[i] == '\\' { 2 } else { 1 };
                }
                if i >= cs.len() {
                    return Err("template: line:1: unterminated quoted string".to_string());
                }
                i += 1;
                let raw: String = cs[s..i].iter().collect();
                let v = serde_json::from_str::<String>(&raw)
                    .map_err(|_| format!("template: line:1: bad string {raw}"))?;
                out.push(TTok::Str(v));
            }
            '`' => {
                let s = i + 1;
                i += 1;
                while i < cs.len() && cs[i] != '`' {
                    i += 1;
                }
                if i >= cs.len() {
                    return Err("template: line:1: unterminated raw quoted string".to_string());
                }
                out.push(TTok::Str(cs[s..i].iter().collect()));
                i += 1;
            }
            _ if c.is_ascii_digit() || c == '-' || c == '+' => {
                let s = i;
                i += 1;
                while i < cs.len() && (cs[i].is_ascii_alphanumeric() || cs[i] == '.') {
                    i += 1;
                }
                out.push(TTok::Num(cs[s..i].iter().collect()));
            }
            _ if c.is_alphabetic() || c == '_' => out.push(TTok::Ident(word(&mut i))),
            _ => return Err(format!("template: line:1: unexpected {c:?} in command")),
        }
    }
    Ok(out)
}

fn pipeline_from(toks: &[TTok], pos: &mut usize) -> Result<Pipeline, String> {
    let mut cmds = Vec::new();
    let mut cmd = Vec::new();
    while let Some(t) = toks.get(*pos) {
        *pos += 1;
        match t {
            TTok::Pipe => {
                if cmd.is_empty() {
                    return Err("template: line:1: missing command".to_string());
                }
                cmds.push(std::mem::take(&mut cmd));
            }
            TTok::Close => {
                *pos -= 1;
                break;
            }
            TTok::Open => {
                cmd.push(Arg::Sub(pipeline_from(toks, pos)?));
                if toks.get(*pos) != Some(&TTok::Close) {
                    return Err("template: line:1: unclosed left paren".to_string());
                }
                *pos += 1;
            }
            TTok::Field(f) => cmd.push(Arg::Field(f.clone())),
            TTok::Str(s) => cmd.push(Arg::Str(s.clone())),
            TTok::Num(n) => cmd.push(match n.parse::<i64>() {
                Ok(i) => Arg::Int(i),
                Err(_) => Arg::Float(
                    n.parse()
                        .map_err(|_| format!("template: line:1: bad number syntax: {n:?}"))?,
                ),
            }),
            TTok::Ident(name) => {
                if !FUNCTIONS.contains(&name.as_str()) {
                    return Err(format!("template: line:1: function {name:?} not defined"));
                }
                cmd.push(Arg::Func(name.clone()));
            }
        }
    }
    if cmd.is_empty() {
        return Err("template: line:1: missing value for command".to_string());
    }
    cmds.push(cmd);
    Ok(cmds)
}

fn render_nodes(nodes: &[Node], row: &Row, out: &mut String) -> Result<(), String> {
    for n in nodes {
        match n {
            Node::Text(t) => out.push_str(t),
            Node::Action(p) => out.push_str(&eval_pipeline(p, row)?.to_string()),
            Node::If {
                cond,
                then,
                otherwise,
            } => {
                let branch = if truthy(&eval_pipeline(cond, row)?) {
                    then
                } else {
                    otherwise
                };
                render_nodes(branch, row, out)?;
            }
        }
    }
    Ok(())
}

fn eval_pipeline(p: &Pipeline, row: &Row) -> Result<Val, String> {
    let mut piped: Option<Val> = None;
    for cmd in p {
        piped = Some(eval_command(cmd, row, piped.take())?);
    }
    piped.ok_or_else(|| "empty pipeline".to_string())
}

fn eval_arg(a: &Arg, row: &Row) -> Result<Val, String> {
    Ok(match a {
        Arg::Field(f) => Val::Str(row.get(f).unwrap_or_default().to_string()),
        Arg::Str(s) => Val::Str(s.clone()),
        Arg::Int(i) => Val::Int(*i),
        Arg::Float(f) => Val::Float(*f),
        Arg::Func(name) => call(name, Vec::new(), row)?,
        Arg::Sub(p) => eval_pipeline(p, row)?,
    })
}

fn eval_command(cmd: &Command, row: &Row, piped: Option<Val>) -> Result<Val, String> {
    match cmd.split_first() {
        Some((Arg::Func(name), rest)) => {
            let mut args = rest
                .iter()
                .map(|a| eval_arg(a, row))
                .collect::<Result<Vec<_>, _>>()?;
            args.extend(piped);
            call(name, args, row)
        }
        Some((only, [])) if piped.is_none() => eval_arg(only, row),
        _ => Err("can't give argument to non-function".to_string()),
    }
}

pub(super) fn truthy(v: &Val) -> bool {
    match v {
        Val::Str(s) => !s.is_empty(),
        Val::Int(i) => *i != 0,
        Val::Float(f) => *f != 0.0,
        Val::Bool(b) => *b,
        Val::Time(_) => true,
    }
}

impl Val {
    pub(super) fn as_i64(&self) -> i64 {
        match self {
            Val::Str(s) => s.trim().parse().unwrap_or(0),
            Val::Int(i) => *i,
            Val::Float(f) => *f as i64,
            Val::Bool(b) => i64::from(*b),
            Val::Time(t) => *t,
        }
    }

    pub(super) fn as_f64(&self) -> f64 {
        match self {
            Val::Str(s) => s.trim().parse().unwrap_or(0.0),
            Val::Int(i) => *i as f64,
            Val::Float(f) => *f,
            Val::Bool(b) => f64::from(u8::from(*b)),
            Val::Time(t) => *t as f64,
        }
    }
}

impl fmt::Display for Val {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Val::Str(s) => f.write_str(s),
            Val::Int(i) => write!(f, "{i}"),
            Val::Float(x) => write!(f, "{x}"),
            Val::Bool(b) => write!(f, "{b}"),
            Val::Time(ns) => write_go_time(f, *ns),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::Labels;

    fn render(t: &str, labels: &[(&str, &str)]) -> String {
        let row = Row::new(
            1_500_000_000,
            "the line",
            &Labels::from_pairs(labels.to_vec()),
            &[],
        );
        Template::parse(t)
            .unwrap_or_else(|e| panic!("{t}: {e}"))
            .render(&row)
            .unwrap_or_else(|e| panic!("{t}: {e}"))
    }

    #[test]
    fn fields_and_functions() {
        let l = [("app", "api"), ("msg", "Hello World")];
        assert_eq!(
            render("{{.app}} says {{ .msg }}", &l),
            "api says Hello World"
        );
        assert_eq!(render("{{.missing}}|", &l), "|");
        assert_eq!(render("{{ .msg | ToUpper }}", &l), "HELLO WORLD");
        assert_eq!(render("{{ .msg | trunc 5 | lower }}", &l), "hello");
        assert_eq!(
            render(r#"{{ replace "World" "Vigil" .msg }}"#, &l),
            "Hello Vigil"
        );
        assert_eq!(
            render(
                r#"{{ regexReplaceAll "(\\w+) (\\w+)" .msg "${2}-${1}" }}"#,
                &l
            ),
            "World-Hello"
        );
        assert_eq!(render(r#"{{ .none | default "n/a" }}"#, &l), "n/a");
        assert_eq!(
            render("{{ __line__ }} @ {{ __timestamp__ | unixEpoch }}", &l),
            "the line @ 1"
        );
        assert_eq!(
            render("{{ __timestamp__ }}", &l),
            "1970-01-01 00:00:01.5 +0000 UTC"
        );
        assert_eq!(
            render("{{ add 1 2 3 }} {{ divf 1 4 }} {{ mul (add 1 1) 3 }}", &l),
            "6 0.25 6"
        );
        assert_eq!(render(r#"{{ printf "%s=%d" .app 7 }}"#, &l), "api=7");
    }

    #[test]
    fn conditionals_and_trimming() {
        let l = [("level", "error")];
        let t = r#"{{ if eq .level "error" }}E{{ else if eq .level "warn" }}W{{ else }}I{{ end }}"#;
        assert_eq!(render(t, &l), "E");
        assert_eq!(render(t, &[("level", "warn")]), "W");
        assert_eq!(render(t, &[("level", "info")]), "I");
        assert_eq!(render("a   {{- .level -}}   b", &l), "aerrorb");
        assert_eq!(render("{{/* note */}}x", &l), "x");
    }

    #[test]
    fn parse_errors() {
        assert!(Template::parse("{{ .a ").is_err());
        assert!(Template::parse("{{ nosuchfunc .a }}").is_err());
        assert!(Template::parse("{{ if .a }}x").is_err());
        assert!(Template::parse("{{ end }}").is_err());
    }
}
