//! Builds Go `text/template` parse trees from lexed items: actions with pipelines and variable
//! declarations, `if`/`with`/`range` with `else` (and `else if`/`else with` chains),
//! `define`/`block`/`template`, `break`/`continue`. Like Go, it refuses undefined functions and
//! undeclared variables at parse time, so a bad template is caught when the file is loaded.

use super::lex::{line_of, Item, Tok, TokKind};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// One named template: its nodes and the source it came from (for error positions).
#[derive(Debug)]
pub(super) struct Tree {
    pub name: String,
    pub src: Arc<str>,
    pub root: Vec<Node>,
}

#[derive(Debug)]
pub(super) enum Node {
    Text(String),
    Action(Pipe),
    If(Branch),
    With(Branch),
    Range(Branch),
    Template {
        name: String,
        pipe: Option<Pipe>,
        pos: usize,
    },
    Break,
    Continue,
}

#[derive(Debug)]
pub(super) struct Branch {
    pub pipe: Pipe,
    pub list: Vec<Node>,
    pub else_list: Vec<Node>,
}

#[derive(Debug)]
pub(super) struct Pipe {
    pub pos: usize,
    /// Variables declared (`:=`) or assigned (`=`) by this pipeline.
    pub decl: Vec<String>,
    pub assign: bool,
    pub cmds: Vec<Cmd>,
}

#[derive(Debug)]
pub(super) struct Cmd {
    pub args: Vec<Arg>,
}

#[derive(Debug)]
pub(super) struct Arg {
    pub kind: ArgKind,
    pub pos: usize,
}

#[derive(Debug)]
pub(super) enum ArgKind {
    Field(Vec<String>),
    Var(String, Vec<String>),
    Dot,
    Func(String),
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Nil,
    /// A parenthesized pipeline and the fields taken of its result.
    Sub(Box<Pipe>, Vec<String>),
}

impl fmt::Display for ArgKind {
    /// Go's `Node.String()`, used in `executing "t" at <...>` messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = |p: &[String]| p.iter().map(|s| format!(".{s}")).collect::<String>();
        match self {
            ArgKind::Field(p) => write!(f, "{}", path(p)),
            ArgKind::Var(n, p) => write!(f, "${n}{}", path(p)),
            ArgKind::Dot => write!(f, "."),
            ArgKind::Func(n) => write!(f, "{n}"),
            ArgKind::Str(s) => write!(f, "{}", crate::goformat::go_quote(s)),
            ArgKind::Int(i) => write!(f, "{i}"),
            ArgKind::Float(x) => write!(f, "{}", crate::goformat::format_g(*x, None)),
            ArgKind::Bool(b) => write!(f, "{b}"),
            ArgKind::Nil => write!(f, "nil"),
            ArgKind::Sub(_, p) => write!(f, "(...){}", path(p)),
        }
    }
}

/// Parses `src` as template `name`: returns its own tree and the trees it `define`s.
pub(super) fn parse(
    name: &str,
    src: &str,
    items: Vec<Item>,
    is_func: &dyn Fn(&str) -> bool,
) -> Result<(Tree, HashMap<String, Tree>), String> {
    let src: Arc<str> = Arc::from(src);
    let mut p = Parser {
        name: name.to_string(),
        src: src.clone(),
        items: items.into_iter(),
        is_func,
        vars: vec!["$".to_string()],
        range_depth: 0,
        defines: HashMap::new(),
    };
    let (root, end) = p.list(true)?;
    match end {
        End::Eof => {}
        End::Close(pos) => return Err(p.err(pos, "unexpected {{end}}")),
        End::Else(_, pos) => return Err(p.err(pos, "unexpected {{else}}")),
    }
    let tree = Tree {
        name: name.to_string(),
        src,
        root,
    };
    Ok((tree, p.defines))
}

enum End {
    Eof,
    Close(usize),
    Else(Vec<Tok>, usize),
}

struct Parser<'a> {
    name: String,
    src: Arc<str>,
    items: std::vec::IntoIter<Item>,
    is_func: &'a dyn Fn(&str) -> bool,
    vars: Vec<String>,
    range_depth: usize,
    defines: HashMap<String, Tree>,
}

impl Parser<'_> {
    /// Go's parse error: `template: NAME:LINE: MSG`.
    fn err(&self, pos: usize, msg: impl fmt::Display) -> String {
        format!("template: {}:{}: {msg}", self.name, line_of(&self.src, pos))
    }

    fn list(&mut self, top: bool) -> Result<(Vec<Node>, End), String> {
        let mut nodes = Vec::new();
        while let Some(item) = self.items.next() {
            let (toks, pos) = match item {
                Item::Text(t) => {
                    nodes.push(Node::Text(t));
                    continue;
                }
                Item::Action { toks, pos } => (toks, pos),
            };
            let keyword = match toks.first().map(|t| &t.kind) {
                Some(TokKind::Ident(k)) => k.as_str(),
                None => return Err(self.err(pos, "missing value for command")),
                _ => "",
            };
            let rest = toks.get(1..).unwrap_or_default().to_vec();
            match keyword {
                "end" => {
                    return self
                        .bare(rest, pos, "end")
                        .map(|()| (nodes, End::Close(pos)))
                }
                "else" => return Ok((nodes, End::Else(rest, pos))),
                "if" | "with" | "range" => nodes.push(self.control(keyword, rest, pos)?),
                "define" if top => self.define(rest, pos)?,
                "define" => return Err(self.err(pos, "unexpected <define> in command")),
                "block" => {
                    let (name, pipe) = self.template_args(rest, pos, "block")?;
                    let (body, end) = self.list(false)?;
                    self.expect_end(end, pos, "block")?;
                    self.add_define(name.clone(), body);
                    nodes.push(Node::Template { name, pipe, pos });
                }
                "template" => {
                    let (name, pipe) = self.template_args(rest, pos, "template")?;
                    nodes.push(Node::Template { name, pipe, pos });
                }
                "break" | "continue" => {
                    if self.range_depth == 0 {
                        return Err(
                            self.err(pos, format!("{{{{{keyword}}}}} outside {{{{range}}}}"))
                        );
                    }
                    self.bare(rest, pos, keyword)?;
                    nodes.push(if keyword == "break" {
                        Node::Break
                    } else {
                        Node::Continue
                    });
                }
                _ => nodes.push(Node::Action(self.pipe(toks, pos, true)?)),
            }
        }
        Ok((nodes, End::Eof))
    }

    fn bare(&self, rest: Vec<Tok>, pos: usize, what: &str) -> Result<(), String> {
        if rest.is_empty() {
            Ok(())
        } else {
            Err(self.err(
                pos,
                format!("unexpected {} in {what}", describe(&rest[0].kind)),
            ))
        }
    }

    fn expect_end(&self, end: End, pos: usize, what: &str) -> Result<(), String> {
        match end {
            End::Close(_) => Ok(()),
            End::Else(_, p) if what == "define" || what == "block" => {
                Err(self.err(p, format!("unexpected {{{{else}}}} in {what}")))
            }
            End::Else(_, p) => Err(self.err(p, "expected end; found {{else}}")),
            End::Eof => Err(self.err(pos, format!("unexpected EOF in {what}"))),
        }
    }

    /// `if`/`with`/`range` up to and including its `{{end}}`; an `{{else if …}}` chain shares
    /// that one `{{end}}`, as in Go.
    fn control(&mut self, kind: &str, toks: Vec<Tok>, pos: usize) -> Result<Node, String> {
        let scope = self.vars.len();
        let pipe = self.pipe(toks, pos, false)?;
        if kind == "range" {
            self.range_depth += 1;
        }
        let (list, end) = self.list(false)?;
        if kind == "range" {
            self.range_depth -= 1;
        }
        let else_list = match end {
            End::Close(_) => Vec::new(),
            End::Eof => return Err(self.err(pos, format!("unexpected EOF in {kind}"))),
            End::Else(rest, else_pos) => match rest.first().map(|t| &t.kind) {
                None => {
                    let (else_list, end) = self.list(false)?;
                    self.expect_end(end, pos, kind)?;
                    else_list
                }
                Some(TokKind::Ident(k)) if (k == "if" || k == "with") && kind != "range" => {
                    let chained = k.clone();
                    vec![self.control(&chained, rest[1..].to_vec(), else_pos)?]
                }
                Some(other) => {
                    return Err(
                        self.err(else_pos, format!("unexpected {} in else", describe(other)))
                    )
                }
            },
        };
        self.vars.truncate(scope);
        let branch = Branch {
            pipe,
            list,
            else_list,
        };
        Ok(match kind {
            "if" => Node::If(branch),
            "with" => Node::With(branch),
            _ => Node::Range(branch),
        })
    }

    fn define(&mut self, rest: Vec<Tok>, pos: usize) -> Result<(), String> {
        let name = match rest.as_slice() {
            [Tok {
                kind: TokKind::Str(n),
                ..
            }] => n.clone(),
            _ => return Err(self.err(pos, "define clause needs a quoted template name")),
        };
        let saved = std::mem::replace(&mut self.vars, vec!["$".to_string()]);
        let (body, end) = self.list(false)?;
        self.vars = saved;
        self.expect_end(end, pos, "define")?;
        self.add_define(name, body);
        Ok(())
    }

    fn add_define(&mut self, name: String, root: Vec<Node>) {
        let tree = Tree {
            name: name.clone(),
            src: self.src.clone(),
            root,
        };
        self.defines.insert(name, tree);
    }

    fn template_args(
        &mut self,
        rest: Vec<Tok>,
        pos: usize,
        what: &str,
    ) -> Result<(String, Option<Pipe>), String> {
        let Some(Tok {
            kind: TokKind::Str(name),
            ..
        }) = rest.first()
        else {
            return Err(self.err(
                pos,
                format!("unexpected token in {what} clause; need a quoted template name"),
            ));
        };
        let name = name.clone();
        let pipe = if rest.len() > 1 {
            Some(self.pipe(rest[1..].to_vec(), pos, false)?)
        } else {
            None
        };
        Ok((name, pipe))
    }

    /// A pipeline with optional `$a[, $b] :=` / `$a =` in front.
    fn pipe(&mut self, toks: Vec<Tok>, pos: usize, _action: bool) -> Result<Pipe, String> {
        let mut decl = Vec::new();
        let mut assign = false;
        let mut start = 0;
        let decl_end = toks
            .iter()
            .position(|t| matches!(t.kind, TokKind::Declare | TokKind::Assign));
        if let Some(end) = decl_end {
            let names: Option<Vec<String>> = toks[..end]
                .iter()
                .filter(|t| t.kind != TokKind::Comma)
                .map(|t| match &t.kind {
                    TokKind::Var(n, p) if p.is_empty() => Some(n.clone()),
                    _ => None,
                })
                .collect();
            if let Some(names) = names.filter(|n| !n.is_empty() && n.len() <= 2) {
                assign = toks[end].kind == TokKind::Assign;
                for n in &names {
                    if assign && !self.vars.contains(&format!("${n}")) {
                        return Err(self.err(pos, format!("undefined variable \"${n}\"")));
                    }
                }
                decl = names;
                start = end + 1;
            }
        }
        let body = &toks[start..];
        if body.is_empty() {
            return Err(self.err(pos, "missing value for command"));
        }
        let mut cmds = Vec::new();
        let mut i = 0;
        while i < body.len() {
            let (cmd, next) = self.cmd(body, i, pos)?;
            cmds.push(cmd);
            i = next;
            if i < body.len() {
                // `cmd` stops only at a pipe.
                i += 1;
                if i == body.len() {
                    return Err(self.err(pos, "missing command"));
                }
            }
        }
        // Declared after the pipeline is parsed: `$x := $x` refers to an outer `$x`.
        if !assign {
            for n in &decl {
                self.vars.push(format!("${n}"));
            }
        }
        Ok(Pipe {
            pos,
            decl,
            assign,
            cmds,
        })
    }

    /// One command: operands up to a `|`, a `)` or the end. Returns the index it stopped at.
    fn cmd(&mut self, toks: &[Tok], mut i: usize, pos: usize) -> Result<(Cmd, usize), String> {
        let mut args = Vec::new();
        while let Some(t) = toks.get(i) {
            match &t.kind {
                TokKind::Pipe => break,
                TokKind::RParen => break,
                TokKind::LParen => {
                    let depth_start = i + 1;
                    let close = matching_paren(toks, i)
                        .ok_or_else(|| self.err(pos, "unclosed left paren"))?;
                    let inner = toks[depth_start..close].to_vec();
                    let sub = self.pipe(inner, t.pos, false)?;
                    let mut fields = Vec::new();
                    i = close + 1;
                    if let Some(Tok {
                        kind: TokKind::Chain(p),
                        ..
                    }) = toks.get(i)
                    {
                        fields = p.clone();
                        i += 1;
                    }
                    args.push(Arg {
                        kind: ArgKind::Sub(Box::new(sub), fields),
                        pos: t.pos,
                    });
                    continue;
                }
                kind => {
                    let arg = self.operand(kind, t.pos)?;
                    args.push(arg);
                }
            }
            i += 1;
        }
        if args.is_empty() {
            return Err(self.err(pos, "missing value for command"));
        }
        Ok((Cmd { args }, i))
    }

    fn operand(&self, kind: &TokKind, pos: usize) -> Result<Arg, String> {
        let kind = match kind {
            TokKind::Ident(name) => {
                if !(self.is_func)(name) {
                    return Err(self.err(pos, format!("function {name:?} not defined")));
                }
                ArgKind::Func(name.clone())
            }
            TokKind::Field(p) => ArgKind::Field(p.clone()),
            TokKind::Var(n, p) => {
                let full = format!("${n}");
                if !self.vars.contains(&full) {
                    return Err(self.err(pos, format!("undefined variable \"{full}\"")));
                }
                ArgKind::Var(n.clone(), p.clone())
            }
            TokKind::Dot => ArgKind::Dot,
            TokKind::Str(s) => ArgKind::Str(s.clone()),
            TokKind::Bool(b) => ArgKind::Bool(*b),
            TokKind::Nil => ArgKind::Nil,
            TokKind::Num(n) => {
                parse_number(n).ok_or_else(|| self.err(pos, format!("bad number syntax: {n:?}")))?
            }
            other => {
                return Err(self.err(pos, format!("unexpected {} in operand", describe(other))))
            }
        };
        Ok(Arg { kind, pos })
    }
}

fn matching_paren(toks: &[Tok], open: usize) -> Option<usize> {
    let mut depth = 0;
    for (i, t) in toks.iter().enumerate().skip(open) {
        match t.kind {
            TokKind::LParen => depth += 1,
            TokKind::RParen => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// A Go numeric constant: an integer if it is one, else a float.
fn parse_number(text: &str) -> Option<ArgKind> {
    let clean: String = text.chars().filter(|&c| c != '_').collect();
    let (neg, body) = match clean.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, clean.strip_prefix('+').unwrap_or(&clean)),
    };
    let int = if let Some(hex) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        i64::from_str_radix(hex, 16).ok()
    } else if body.len() > 1 && body.starts_with('0') && body.bytes().all(|b| b.is_ascii_digit()) {
        i64::from_str_radix(&body[1..], 8).ok()
    } else {
        body.parse::<i64>().ok()
    };
    if let Some(i) = int {
        return Some(ArgKind::Int(if neg { -i } else { i }));
    }
    body.parse::<f64>()
        .ok()
        .filter(|f| f.is_finite())
        .map(|f| ArgKind::Float(if neg { -f } else { f }))
}

fn describe(kind: &TokKind) -> String {
    match kind {
        TokKind::Ident(s) => format!("<{s}>"),
        TokKind::Str(s) => format!("quoted string {s:?}"),
        TokKind::Num(n) => format!("number {n}"),
        TokKind::Pipe => "\"|\"".into(),
        TokKind::LParen => "\"(\"".into(),
        TokKind::RParen => "\")\"".into(),
        TokKind::Comma => "\",\"".into(),
        TokKind::Declare => "\":=\"".into(),
        TokKind::Assign => "\"=\"".into(),
        other => format!("{other:?}"),
    }
}
