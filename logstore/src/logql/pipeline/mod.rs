//! Pipeline stages and how one log line goes through them.
//!
//! A [`Row`] holds the line and every label it carries: the stream's, the entry's structured
//! metadata, and what parsers extracted. Each [`Stage`] may change the line or the labels, or
//! drop the row. Errors do not stop the pipeline: a parser that fails sets `__error__` and
//! `__error_details__`, and a later label filter (`| __error__=""`) decides, as in Loki.

mod json;
mod label_filter;
mod parsers;
mod template;
mod units;

pub use label_filter::{CmpOp, LabelFilter};
pub use parsers::{JsonPath, ParserStage, Pattern};
pub use template::Template;
pub use units::{parse_bytes, parse_go_duration};

use super::line_filter::LineFilter;
use model::{Labels, Matcher};
use std::collections::BTreeMap;
use std::fmt;

/// The label parsers and filters set when something fails.
pub const ERROR_LABEL: &str = "__error__";
/// The human-readable reason next to [`ERROR_LABEL`].
pub const ERROR_DETAILS_LABEL: &str = "__error_details__";

/// Loki's `__error__` values.
pub(crate) const JSON_PARSER_ERR: &str = "JSONParserErr";
pub(crate) const LOGFMT_PARSER_ERR: &str = "LogfmtParserErr";
pub(crate) const LABEL_FILTER_ERR: &str = "LabelFilterErr";
pub(crate) const TEMPLATE_FORMAT_ERR: &str = "TemplateFormatErr";
pub(crate) const SAMPLE_EXTRACTION_ERR: &str = "SampleExtractionErr";

/// One line filter stage: `|= "a"`, or alternatives `|= "a" or "b"`. Positive alternatives
/// pass a line when any matches; negative ones (`!= "a" or "b"`) when none of the needles is
/// present, that is when every negative filter passes.
#[derive(Clone, Debug)]
pub struct LineFilterGroup {
    pub alternatives: Vec<LineFilter>,
}

impl LineFilterGroup {
    pub fn matches(&self, line: &str) -> bool {
        let negative = self
            .alternatives
            .first()
            .is_some_and(|f| f.op().is_negative());
        if negative {
            self.alternatives.iter().all(|f| f.matches(line))
        } else {
            self.alternatives.iter().any(|f| f.matches(line))
        }
    }
}

/// `name` or `name op "value"` in `drop` and `keep`.
#[derive(Clone, Debug)]
pub enum LabelSel {
    Name(String),
    Matcher(Matcher),
}

impl LabelSel {
    /// Whether the selector designates the label `name` holding `value`.
    fn selects(&self, name: &str, value: &str) -> bool {
        match self {
            LabelSel::Name(n) => n == name,
            LabelSel::Matcher(m) => m.name == name && m.matches(value),
        }
    }
}

/// One `label_format` assignment.
#[derive(Clone, Debug)]
pub enum LabelFmt {
    /// `dst=src`: the value of `src` moves to `dst`.
    Rename { dst: String, src: String },
    /// `dst="{{...}}"`: a template over the labels.
    Template { dst: String, template: Template },
}

/// A pipeline stage.
#[derive(Clone, Debug)]
pub enum Stage {
    LineFilter(LineFilterGroup),
    Parser(ParserStage),
    LabelFilter(LabelFilter),
    LineFormat(Template),
    LabelFormat(Vec<LabelFmt>),
    Drop(Vec<LabelSel>),
    Keep(Vec<LabelSel>),
    Decolorize,
}

/// A line and its labels on their way through a pipeline.
#[derive(Clone, Debug)]
pub struct Row {
    pub ts_ns: i64,
    pub line: String,
    pub labels: BTreeMap<String, String>,
    /// Names that came with the entry (stream labels, structured metadata): a parser that
    /// extracts one of these writes `<name>_extracted` instead.
    original: Vec<String>,
}

impl Row {
    /// A row for an entry of a stream; metadata that collides with a stream label is dropped,
    /// since stream labels take precedence.
    pub fn new(ts_ns: i64, line: &str, stream: &Labels, metadata: &[(String, String)]) -> Row {
        let mut labels: BTreeMap<String, String> = stream
            .iter()
            .map(|l| (l.name.clone(), l.value.clone()))
            .collect();
        for (k, v) in metadata {
            labels.entry(k.clone()).or_insert_with(|| v.clone());
        }
        let original = labels.keys().cloned().collect();
        Row {
            ts_ns,
            line: line.to_string(),
            labels,
            original,
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.labels.get(name).map(String::as_str)
    }

    pub fn has_error(&self) -> bool {
        self.labels.contains_key(ERROR_LABEL)
    }

    /// Records a failure; the first error of a row is kept.
    pub fn set_error(&mut self, kind: &str, details: impl Into<String>) {
        if !self.has_error() {
            self.labels
                .insert(ERROR_LABEL.to_string(), kind.to_string());
            self.labels
                .insert(ERROR_DETAILS_LABEL.to_string(), details.into());
        }
    }

    /// Stores a label a parser extracted, renaming it when it collides with an original label.
    pub fn set_parsed(&mut self, name: String, value: String) {
        let name = if self.original.contains(&name) {
            format!("{name}_extracted")
        } else {
            name
        };
        self.labels.insert(name, value);
    }

    /// The labels as a label set (empty values, which mean "absent", are dropped).
    pub fn label_set(&self) -> Labels {
        Labels::from_pairs(self.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }
}

impl Stage {
    /// Runs the stage on `row`; false drops the row.
    pub fn process(&self, row: &mut Row) -> bool {
        match self {
            Stage::LineFilter(g) => g.matches(&row.line),
            Stage::Parser(p) => {
                p.process(row);
                true
            }
            Stage::LabelFilter(f) => f.process(row),
            Stage::LineFormat(t) => {
                match t.render(row) {
                    Ok(line) => row.line = line,
                    Err(e) => row.set_error(TEMPLATE_FORMAT_ERR, e),
                }
                true
            }
            Stage::LabelFormat(fmts) => {
                label_format(fmts, row);
                true
            }
            Stage::Drop(sels) => {
                row.labels
                    .retain(|k, v| !sels.iter().any(|s| s.selects(k, v)));
                true
            }
            Stage::Keep(sels) => {
                row.labels
                    .retain(|k, v| sels.iter().any(|s| s.selects(k, v)));
                true
            }
            Stage::Decolorize => {
                row.line = decolorize(&row.line);
                true
            }
        }
    }
}

/// Runs every stage in order; false when a stage dropped the row.
pub fn run(stages: &[Stage], row: &mut Row) -> bool {
    stages.iter().all(|s| s.process(row))
}

/// All assignments see the labels as they were before the stage, as in Loki.
fn label_format(fmts: &[LabelFmt], row: &mut Row) {
    let mut sets = Vec::with_capacity(fmts.len());
    let mut removes = Vec::new();
    for f in fmts {
        match f {
            LabelFmt::Rename { dst, src } => {
                let v = row.get(src).unwrap_or_default().to_string();
                if src != dst {
                    removes.push(src.clone());
                }
                sets.push((dst.clone(), v));
            }
            LabelFmt::Template { dst, template } => match template.render(row) {
                Ok(v) => sets.push((dst.clone(), v)),
                Err(e) => row.set_error(TEMPLATE_FORMAT_ERR, e),
            },
        }
    }
    for r in removes {
        row.labels.remove(&r);
    }
    for (k, v) in sets {
        row.labels.insert(k, v);
    }
}

/// Removes ANSI escape sequences (CSI `ESC [ ... final`, and two-byte `ESC x`).
fn decolorize(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        if chars.next() == Some('[') {
            // Parameters and intermediates run up to a final byte in '@'..='~'.
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        }
    }
    out
}

impl fmt::Display for LineFilterGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, lf) in self.alternatives.iter().enumerate() {
            if i == 0 {
                write!(f, "{lf}")?;
            } else {
                write!(f, " or {}", lf.argument())?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for LabelSel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LabelSel::Name(n) => f.write_str(n),
            LabelSel::Matcher(m) => write!(f, "{m}"),
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |f: &mut fmt::Formatter<'_>, sels: &[LabelSel]| -> fmt::Result {
            for (i, s) in sels.iter().enumerate() {
                if i > 0 {
                    f.write_str(",")?;
                }
                write!(f, "{s}")?;
            }
            Ok(())
        };
        match self {
            Stage::LineFilter(g) => write!(f, "{g}"),
            Stage::Parser(p) => write!(f, "| {p}"),
            Stage::LabelFilter(l) => write!(f, "| {l}"),
            Stage::LineFormat(t) => write!(f, "| line_format {:?}", t.source()),
            Stage::LabelFormat(fmts) => {
                f.write_str("| label_format ")?;
                for (i, l) in fmts.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    match l {
                        LabelFmt::Rename { dst, src } => write!(f, "{dst}={src}")?,
                        LabelFmt::Template { dst, template } => {
                            write!(f, "{dst}={:?}", template.source())?
                        }
                    }
                }
                Ok(())
            }
            Stage::Drop(s) => {
                f.write_str("| drop ")?;
                list(f, s)
            }
            Stage::Keep(s) => {
                f.write_str("| keep ")?;
                list(f, s)
            }
            Stage::Decolorize => f.write_str("| decolorize"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decolorize_strips_escapes() {
        assert_eq!(decolorize("\u{1b}[31mred\u{1b}[0m plain"), "red plain");
        assert_eq!(decolorize("no colour"), "no colour");
    }

    #[test]
    fn parsed_names_do_not_overwrite_stream_labels() {
        let mut row = Row::new(0, "x", &Labels::from_pairs([("app", "a")]), &[]);
        row.set_parsed("app".into(), "b".into());
        assert_eq!(row.get("app"), Some("a"));
        assert_eq!(row.get("app_extracted"), Some("b"));
    }

    #[test]
    fn first_error_wins() {
        let mut row = Row::new(0, "x", &Labels::from_pairs([("app", "a")]), &[]);
        row.set_error("A", "one");
        row.set_error("B", "two");
        assert_eq!(row.get(ERROR_LABEL), Some("A"));
        assert_eq!(row.get(ERROR_DETAILS_LABEL), Some("one"));
    }
}
