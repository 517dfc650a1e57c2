//! Runs a parsed template against a [`Value`] as Go's `text/template` does: pipelines pass the
//! previous result as the last argument, variables live until the end of their control
//! structure, `range` iterates lists and maps (maps in key order), `with` and `range` move dot,
//! and errors carry Go's `template: NAME:LINE:COL: executing "NAME" at <NODE>:` prefix.

use super::parse::{Arg, ArgKind, Branch, Node, Pipe, Tree};
use super::value::Value;
use super::Funcs;
use std::collections::HashMap;
use std::sync::Arc;

/// How deep `{{template}}` calls may nest before execution stops (Go allows 100000, far more
/// than any real template needs; a recursive define otherwise runs forever).
const MAX_DEPTH: usize = 100;
/// The most output one execution may produce, so a runaway template cannot exhaust memory.
pub(super) const MAX_OUTPUT: usize = 4 << 20;

pub(super) struct Exec<'a> {
    pub trees: &'a HashMap<String, Arc<Tree>>,
    pub funcs: &'a Funcs,
    pub out: String,
    vars: Vec<(String, Value)>,
    depth: usize,
}

enum Flow {
    Normal,
    Break,
    Continue,
}

type Res<T> = Result<T, String>;

impl<'a> Exec<'a> {
    pub fn new(trees: &'a HashMap<String, Arc<Tree>>, funcs: &'a Funcs) -> Self {
        Exec {
            trees,
            funcs,
            out: String::new(),
            vars: Vec::new(),
            depth: 0,
        }
    }

    pub fn run(&mut self, tree: &'a Tree, dot: &Value) -> Res<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!(
                "template: {}: exceeded maximum template depth ({MAX_DEPTH})",
                tree.name
            ));
        }
        let saved = std::mem::replace(&mut self.vars, vec![("$".to_string(), dot.clone())]);
        let result = self.list(tree, &tree.root, dot).map(|_| ());
        self.vars = saved;
        self.depth -= 1;
        result
    }

    fn list(&mut self, tree: &'a Tree, nodes: &'a [Node], dot: &Value) -> Res<Flow> {
        for node in nodes {
            match self.node(tree, node, dot)? {
                Flow::Normal => {}
                flow => return Ok(flow),
            }
        }
        Ok(Flow::Normal)
    }

    fn node(&mut self, tree: &'a Tree, node: &'a Node, dot: &Value) -> Res<Flow> {
        match node {
            Node::Text(t) => self.write(tree, t)?,
            Node::Action(pipe) => {
                let v = self.pipe(tree, pipe, dot)?;
                if pipe.decl.is_empty() {
                    self.write(tree, &v.print())?;
                }
            }
            Node::If(b) | Node::With(b) => {
                let scope = self.vars.len();
                let v = self.pipe(tree, &b.pipe, dot)?;
                let flow = if v.is_true() {
                    let inner = if matches!(node, Node::With(_)) {
                        &v
                    } else {
                        dot
                    };
                    self.list(tree, &b.list, inner)?
                } else {
                    self.list(tree, &b.else_list, dot)?
                };
                self.vars.truncate(scope);
                return Ok(flow);
            }
            Node::Range(b) => return self.range(tree, b, dot),
            Node::Template { name, pipe, pos } => {
                let Some(target) = self.trees.get(name) else {
                    return Err(self.err(
                        tree,
                        *pos,
                        &format!("template {name}"),
                        &format!("template {name:?} not defined"),
                    ));
                };
                let data = match pipe {
                    Some(p) => self.pipe(tree, p, dot)?,
                    None => Value::Nil,
                };
                self.run(target, &data)?;
            }
            Node::Break => return Ok(Flow::Break),
            Node::Continue => return Ok(Flow::Continue),
        }
        Ok(Flow::Normal)
    }

    fn write(&mut self, tree: &Tree, s: &str) -> Res<()> {
        if self.out.len() + s.len() > MAX_OUTPUT {
            return Err(format!(
                "template: {}: output exceeds {MAX_OUTPUT} bytes",
                tree.name
            ));
        }
        self.out.push_str(s);
        Ok(())
    }

    fn range(&mut self, tree: &'a Tree, b: &'a Branch, dot: &Value) -> Res<Flow> {
        let scope = self.vars.len();
        let v = self.pipe(tree, &b.pipe, dot)?;
        // The pipeline's own declaration is replaced by the per-element ones.
        self.vars.truncate(scope);
        let items: Vec<(Value, Value)> = match &v {
            Value::List(l, _) => l
                .iter()
                .enumerate()
                .map(|(i, e)| (Value::Int(i as i64), e.clone()))
                .collect(),
            Value::Map(m, _) => m
                .iter()
                .map(|(k, e)| (Value::str(k.clone()), e.clone()))
                .collect(),
            Value::Missing | Value::Nil => Vec::new(),
            other => {
                return Err(self.err(
                    tree,
                    b.pipe.pos,
                    "range",
                    &format!("range can't iterate over {}", other.print()),
                ))
            }
        };
        if items.is_empty() {
            let flow = self.list(tree, &b.else_list, dot)?;
            self.vars.truncate(scope);
            return Ok(flow);
        }
        for (key, elem) in items {
            match b.pipe.decl.as_slice() {
                [one] => self.vars.push((format!("${one}"), elem.clone())),
                [k, e] => {
                    self.vars.push((format!("${k}"), key));
                    self.vars.push((format!("${e}"), elem.clone()));
                }
                _ => {}
            }
            let flow = self.list(tree, &b.list, &elem)?;
            self.vars.truncate(scope);
            if matches!(flow, Flow::Break) {
                break;
            }
        }
        Ok(Flow::Normal)
    }

    fn pipe(&mut self, tree: &'a Tree, pipe: &'a Pipe, dot: &Value) -> Res<Value> {
        let mut last: Option<Value> = None;
        for cmd in &pipe.cmds {
            last = Some(self.cmd(tree, &cmd.args, dot, last.take())?);
        }
        let v = last.unwrap_or(Value::Missing);
        for name in &pipe.decl {
            let full = format!("${name}");
            if pipe.assign {
                if let Some(slot) = self.vars.iter_mut().rev().find(|(n, _)| *n == full) {
                    slot.1 = v.clone();
                }
            } else {
                self.vars.push((full, v.clone()));
            }
        }
        Ok(v)
    }

    /// One command; `piped` is the previous command's result, passed as the final argument.
    fn cmd(
        &mut self,
        tree: &'a Tree,
        args: &'a [Arg],
        dot: &Value,
        piped: Option<Value>,
    ) -> Res<Value> {
        let Some((first, rest)) = args.split_first() else {
            return Err(format!("template: {}: empty command", tree.name));
        };
        match &first.kind {
            ArgKind::Func(name) => {
                let mut vals = Vec::with_capacity(rest.len() + 1);
                for a in rest {
                    vals.push(self.arg(tree, a, dot)?);
                }
                vals.extend(piped);
                self.call(tree, name, first.pos, &vals)
            }
            ArgKind::Field(path) => {
                let extra = self.extra_args(tree, rest, dot, piped)?;
                self.chain(tree, first, dot.clone(), path, &extra)
            }
            ArgKind::Var(name, path) if !path.is_empty() => {
                let base = self.var(tree, first.pos, name)?;
                let extra = self.extra_args(tree, rest, dot, piped)?;
                self.chain(tree, first, base, path, &extra)
            }
            ArgKind::Sub(pipe, path) if !path.is_empty() => {
                let base = self.pipe(tree, pipe, dot)?;
                let extra = self.extra_args(tree, rest, dot, piped)?;
                self.chain(tree, first, base, path, &extra)
            }
            _ => {
                if !rest.is_empty() || piped.is_some() {
                    return Err(self.err(
                        tree,
                        first.pos,
                        &first.kind.to_string(),
                        &format!("can't give argument to non-function {}", first.kind),
                    ));
                }
                self.arg(tree, first, dot)
            }
        }
    }

    fn extra_args(
        &mut self,
        tree: &'a Tree,
        rest: &'a [Arg],
        dot: &Value,
        piped: Option<Value>,
    ) -> Res<Vec<Value>> {
        let mut vals = Vec::with_capacity(rest.len() + 1);
        for a in rest {
            vals.push(self.arg(tree, a, dot)?);
        }
        vals.extend(piped);
        Ok(vals)
    }

    /// Walks `.a.b.c` from `base`; the last step receives `args` (a method call with arguments).
    fn chain(
        &mut self,
        tree: &Tree,
        node: &Arg,
        base: Value,
        path: &[String],
        args: &[Value],
    ) -> Res<Value> {
        let mut cur = base;
        for (i, name) in path.iter().enumerate() {
            let last = i + 1 == path.len();
            if last && !args.is_empty() {
                return match cur.method(name, args) {
                    Some(r) => r.map_err(|e| {
                        self.err(
                            tree,
                            node.pos,
                            &node.kind.to_string(),
                            &format!("error calling {name}: {e}"),
                        )
                    }),
                    None => Err(self.err(
                        tree,
                        node.pos,
                        &node.kind.to_string(),
                        &format!("{name} has arguments but cannot be invoked as function"),
                    )),
                };
            }
            cur = match cur.field(name, true) {
                Some(v) => v,
                None => {
                    return Err(self.err(
                        tree,
                        node.pos,
                        &node.kind.to_string(),
                        &format!("can't evaluate field {name} in type {}", cur.type_name()),
                    ))
                }
            };
        }
        Ok(cur)
    }

    fn var(&self, tree: &Tree, pos: usize, name: &str) -> Res<Value> {
        let full = format!("${name}");
        self.vars
            .iter()
            .rev()
            .find(|(n, _)| *n == full)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| self.err(tree, pos, &full, &format!("undefined variable: {full}")))
    }

    /// An argument's value; a function name as an argument is called with no arguments.
    fn arg(&mut self, tree: &'a Tree, arg: &'a Arg, dot: &Value) -> Res<Value> {
        Ok(match &arg.kind {
            ArgKind::Dot => dot.clone(),
            ArgKind::Str(s) => Value::str(s.clone()),
            ArgKind::Int(i) => Value::Int(*i),
            ArgKind::Float(f) => Value::Float(*f),
            ArgKind::Bool(b) => Value::Bool(*b),
            ArgKind::Nil => Value::Nil,
            ArgKind::Func(name) => self.call(tree, name, arg.pos, &[])?,
            ArgKind::Field(path) => self.chain(tree, arg, dot.clone(), path, &[])?,
            ArgKind::Var(name, path) => {
                let base = self.var(tree, arg.pos, name)?;
                self.chain(tree, arg, base, path, &[])?
            }
            ArgKind::Sub(pipe, path) => {
                let base = self.pipe(tree, pipe, dot)?;
                self.chain(tree, arg, base, path, &[])?
            }
        })
    }

    fn call(&mut self, tree: &Tree, name: &str, pos: usize, args: &[Value]) -> Res<Value> {
        let Some(f) = self.funcs.get(name) else {
            return Err(self.err(tree, pos, name, &format!("function {name:?} not defined")));
        };
        f(args).map_err(|e| self.err(tree, pos, name, &format!("error calling {name}: {e}")))
    }

    /// Go's `ExecError` text: `template: NAME:LINE:COL: executing "NAME" at <NODE>: MSG`.
    fn err(&self, tree: &Tree, pos: usize, node: &str, msg: &str) -> String {
        let before = &tree.src[..pos.min(tree.src.len())];
        let line = before.matches('\n').count() + 1;
        // Go's `ErrorContext` counts the column in bytes from zero.
        let col = pos - before.rfind('\n').map_or(0, |i| i + 1);
        format!(
            "template: {}:{line}:{col}: executing {:?} at <{node}>: {msg}",
            tree.name, tree.name
        )
    }
}
