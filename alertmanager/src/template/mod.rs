//! A Go `text/template` engine, shared by rule labels/annotations (Prometheus's function map,
//! `missingkey=zero`) and notification templates (Alertmanager's `define`d templates and
//! data).
//!
//! Why not the `gtmpl` crate: run against Prometheus's templates, gtmpl 0.7 prints a missing
//! label as `<no value>` where Prometheus prints nothing, prints
//! `{{ $value }}` as `1234567` where Go prints `1.234567e+06`, fails `printf "%.2f"` on an
//! integral float, and takes functions as plain `fn` pointers, so `query` could not reach the
//! rule's query engine. This engine follows Go's lexer, parser and executor closely instead:
//! [`lex`], [`parse`], [`exec`], with Go's value semantics in [`value`], `fmt` in [`printf`]
//! and the predefined functions in [`builtins`].

mod builtins;
mod exec;
mod lex;
mod parse;
mod printf;
mod value;

pub(crate) use builtins::{exactly, go_title};
pub(crate) use value::{go_time_string, ListKind, MapKind, Value};

use std::collections::HashMap;
use std::sync::Arc;

/// A template function: evaluated arguments in, a value or Go's error text out.
pub(crate) type Func = Arc<dyn Fn(&[Value]) -> Result<Value, String> + Send + Sync>;

/// A function map: Go's predefined functions plus whatever the caller adds.
#[derive(Clone)]
pub(crate) struct Funcs {
    map: HashMap<String, Func>,
}

impl std::fmt::Debug for Funcs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&String> = self.map.keys().collect();
        names.sort();
        f.debug_struct("Funcs").field("names", &names).finish()
    }
}

impl Funcs {
    /// The predefined functions only.
    pub fn builtins() -> Funcs {
        let mut f = Funcs {
            map: HashMap::new(),
        };
        builtins::install(&mut f);
        f
    }

    pub fn insert(
        &mut self,
        name: &str,
        f: impl Fn(&[Value]) -> Result<Value, String> + Send + Sync + 'static,
    ) {
        self.map.insert(name.to_string(), Arc::new(f));
    }

    pub fn get(&self, name: &str) -> Option<&Func> {
        self.map.get(name)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }
}

/// A set of named templates, as Go's `*template.Template` with its associated templates.
/// Both Prometheus and Alertmanager run their templates with `missingkey=zero`, so that is the
/// only mode: a missing label reads as `""`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Templates {
    /// Trees are immutable once parsed, so cloned sets share them.
    trees: HashMap<String, Arc<parse::Tree>>,
}

impl Templates {
    pub fn new() -> Templates {
        Templates {
            trees: HashMap::new(),
        }
    }

    /// Parses `text` as template `name`, adding the templates it `define`s. Functions are
    /// checked against `is_func`, as Go checks its function map at parse time. A text that is
    /// only whitespace and defines does not replace an existing template of the same name.
    pub fn parse(
        &mut self,
        name: &str,
        text: &str,
        is_func: &dyn Fn(&str) -> bool,
    ) -> Result<(), String> {
        let items =
            lex::lex(text).map_err(|(line, msg)| format!("template: {name}:{line}: {msg}"))?;
        let (tree, defines) = parse::parse(name, text, items, is_func)?;
        let trees = &mut self.trees;
        for (n, t) in defines {
            trees.insert(n, Arc::new(t));
        }
        let blank = tree
            .root
            .iter()
            .all(|n| matches!(n, parse::Node::Text(t) if t.trim().is_empty()));
        if !(blank && trees.contains_key(name)) {
            trees.insert(name.to_string(), Arc::new(tree));
        }
        Ok(())
    }

    /// Executes template `name` with `dot` as data and `funcs` as the function map.
    pub fn execute(&self, name: &str, dot: &Value, funcs: &Funcs) -> Result<String, String> {
        let Some(tree) = self.trees.get(name) else {
            return Err(format!(
                "template: no template {name:?} associated with template"
            ));
        };
        let mut exec = exec::Exec::new(&self.trees, funcs);
        exec.run(tree, dot)?;
        Ok(exec.out)
    }
}

#[cfg(test)]
mod tests;
