//! Label sets: the identity of a series or a log stream, kept sorted by name.

use std::fmt;
use std::sync::Arc;

/// The label that holds a metric's name.
pub const METRIC_NAME: &str = "__name__";

/// One label pair.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Label {
    pub name: String,
    pub value: String,
}

/// A set of labels, sorted by name with no duplicate names and no empty values.
///
/// The derived ordering compares pair by pair, which is the order Prometheus sorts series in.
///
/// The pairs are shared: a clone is a reference count, not a copy of every name and value (a
/// store hands out the same series' labels to every query that selects it).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Labels(Arc<[Label]>);

/// Why a label set was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelsError {
    #[error("invalid label name {0:?}")]
    InvalidName(String),
    #[error("duplicate label name {0:?}")]
    DuplicateName(String),
    #[error("invalid label set {text:?}: {reason}")]
    Syntax { text: String, reason: String },
}

impl Labels {
    /// An empty label set.
    pub fn empty() -> Self {
        Labels(Arc::from([]))
    }

    /// Builds a label set from pairs: sorts them, drops empty values (an empty value means
    /// "no such label" in Prometheus) and keeps the last value of a repeated name.
    pub fn from_pairs<N: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (N, V)>,
    ) -> Self {
        let mut v: Vec<Label> = pairs
            .into_iter()
            .map(|(n, v)| Label {
                name: n.into(),
                value: v.into(),
            })
            .collect();
        // A stable sort keeps input order among equal names, so dedup_by can keep the last.
        v.sort_by(|a, b| a.name.cmp(&b.name));
        let mut out: Vec<Label> = Vec::with_capacity(v.len());
        for l in v {
            match out.last_mut() {
                Some(last) if last.name == l.name => *last = l,
                _ => out.push(l),
            }
        }
        out.retain(|l| !l.value.is_empty());
        Labels(out.into())
    }

    /// A label set from labels already in its form: sorted by name, no name twice, no empty
    /// value. For producers that build their pairs in order (a collector merging sorted
    /// label groups), saving [`Labels::from_pairs`]'s copy and sort; checked in debug builds.
    pub fn from_sorted_unique(labels: Vec<Label>) -> Self {
        debug_assert!(
            labels.windows(2).all(|w| w[0].name < w[1].name),
            "labels not sorted by name or a name repeated"
        );
        debug_assert!(
            labels.iter().all(|l| !l.value.is_empty()),
            "an empty label value"
        );
        Labels(labels.into())
    }

    /// Like [`Labels::from_pairs`] but refuses invalid or repeated names, as an ingestion
    /// path must: silently merging two `job` labels would change a series' identity.
    pub fn try_from_pairs<N: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (N, V)>,
    ) -> Result<Self, LabelsError> {
        let mut v: Vec<Label> = pairs
            .into_iter()
            .map(|(n, v)| Label {
                name: n.into(),
                value: v.into(),
            })
            .collect();
        for l in &v {
            if !is_valid_label_name(&l.name) {
                return Err(LabelsError::InvalidName(l.name.clone()));
            }
        }
        v.sort_by(|a, b| a.name.cmp(&b.name));
        for w in v.windows(2) {
            if w[0].name == w[1].name {
                return Err(LabelsError::DuplicateName(w[0].name.clone()));
            }
        }
        v.retain(|l| !l.value.is_empty());
        Ok(Labels(v.into()))
    }

    /// The value of `name`, if the set has it.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|l| l.name.as_str().cmp(name))
            .ok()
            .map(|i| self.0[i].value.as_str())
    }

    /// The metric name (`__name__`), if any.
    pub fn metric_name(&self) -> Option<&str> {
        self.get(METRIC_NAME)
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Label> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A copy with `name` set to `value` (or removed when `value` is empty).
    pub fn with(&self, name: &str, value: &str) -> Labels {
        let mut v = self.0.to_vec();
        match v.binary_search_by(|l| l.name.as_str().cmp(name)) {
            Ok(i) if value.is_empty() => {
                v.remove(i);
            }
            Ok(i) => v[i].value = value.to_string(),
            Err(_) if value.is_empty() => {}
            Err(i) => v.insert(
                i,
                Label {
                    name: name.to_string(),
                    value: value.to_string(),
                },
            ),
        }
        Labels(v.into())
    }

    /// A copy without the given names.
    pub fn without(&self, names: &[&str]) -> Labels {
        Labels(
            self.0
                .iter()
                .filter(|l| !names.contains(&l.name.as_str()))
                .cloned()
                .collect(),
        )
    }

    /// A copy holding only the given names.
    pub fn only(&self, names: &[&str]) -> Labels {
        Labels(
            self.0
                .iter()
                .filter(|l| names.contains(&l.name.as_str()))
                .cloned()
                .collect(),
        )
    }

    /// A copy without `__name__`, as PromQL functions and arithmetic produce.
    pub fn without_metric_name(&self) -> Labels {
        self.without(&[METRIC_NAME])
    }
}

impl<'a> IntoIterator for &'a Labels {
    type Item = &'a Label;
    type IntoIter = std::slice::Iter<'a, Label>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// Prometheus's form: `{__name__="up", job="node"}`, values escaped as Go quotes them.
impl fmt::Display for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, l) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}=\"", l.name)?;
            write_escaped(f, &l.value)?;
            f.write_str("\"")?;
        }
        f.write_str("}")
    }
}

fn write_escaped(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    for c in s.chars() {
        match c {
            '\\' => f.write_str("\\\\")?,
            '"' => f.write_str("\\\"")?,
            '\n' => f.write_str("\\n")?,
            c => fmt::Write::write_char(f, c)?,
        }
    }
    Ok(())
}

/// True for the classic label-name charset `[a-zA-Z_][a-zA-Z0-9_]*`.
pub(crate) fn is_valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parses a label set in Prometheus's text form, `{app="x", ns="y"}`, as Loki push requests
/// carry stream labels. Values take the escapes `\\`, `\"`, `\n` and `\t`; names may be quoted.
pub fn parse_label_set(text: &str) -> Result<Labels, LabelsError> {
    let err = |reason: &str| LabelsError::Syntax {
        text: text.to_string(),
        reason: reason.to_string(),
    };
    let s = text.trim();
    let inner = s
        .strip_prefix('{')
        .and_then(|r| r.strip_suffix('}'))
        .ok_or_else(|| err("must be enclosed in braces"))?;
    let mut pairs = Vec::new();
    let mut rest = inner.trim_start();
    while !rest.is_empty() {
        let (name, after) = if let Some(r) = rest.strip_prefix('"') {
            let (n, r) = read_quoted(r).ok_or_else(|| err("unterminated quoted name"))?;
            (n, r)
        } else {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            (rest[..end].to_string(), &rest[end..])
        };
        if name.is_empty() {
            return Err(err("expected a label name"));
        }
        let after = after.trim_start();
        let after = after
            .strip_prefix('=')
            .ok_or_else(|| err("expected '=' after a label name"))?
            .trim_start();
        let after = after
            .strip_prefix('"')
            .ok_or_else(|| err("expected a quoted label value"))?;
        let (value, after) = read_quoted(after).ok_or_else(|| err("unterminated label value"))?;
        pairs.push((name, value));
        let after = after.trim_start();
        rest = match after.strip_prefix(',') {
            Some(r) => r.trim_start(),
            None if after.is_empty() => after,
            None => return Err(err("expected ',' between labels")),
        };
    }
    Labels::try_from_pairs(pairs)
}

/// Reads a double-quoted string body up to its closing quote; returns the unescaped text and
/// what follows the quote.
fn read_quoted(s: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &s[i + 1..])),
            '\\' => match chars.next()?.1 {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_pairs_sorts_drops_empty_and_keeps_last() {
        let l = Labels::from_pairs([("b", "1"), ("a", "2"), ("c", ""), ("b", "3")]);
        assert_eq!(l.to_string(), r#"{a="2", b="3"}"#);
    }

    #[test]
    fn try_from_pairs_refuses_duplicates_and_bad_names() {
        assert!(matches!(
            Labels::try_from_pairs([("a", "1"), ("a", "2")]),
            Err(LabelsError::DuplicateName(_))
        ));
        assert!(matches!(
            Labels::try_from_pairs([("1a", "1")]),
            Err(LabelsError::InvalidName(_))
        ));
    }

    #[test]
    fn with_and_without() {
        let l = Labels::from_pairs([("__name__", "up"), ("job", "x")]);
        assert_eq!(
            l.with("a", "1").to_string(),
            r#"{__name__="up", a="1", job="x"}"#
        );
        assert_eq!(l.with("job", "").to_string(), r#"{__name__="up"}"#);
        assert_eq!(l.without_metric_name().to_string(), r#"{job="x"}"#);
    }

    #[test]
    fn parse_round_trips_escapes() {
        let l = parse_label_set(r#"{app="a\"b", ns="x\\y\nz"}"#).unwrap();
        assert_eq!(l.get("app"), Some("a\"b"));
        assert_eq!(l.get("ns"), Some("x\\y\nz"));
        assert_eq!(parse_label_set(&l.to_string()).unwrap(), l);
        assert_eq!(parse_label_set("{}").unwrap(), Labels::empty());
    }

    #[test]
    fn parse_rejects_garbage() {
        for bad in [
            "",
            "app=\"x\"",
            "{app=x}",
            "{app=\"x\"",
            "{=\"x\"}",
            "{a=\"1\" b=\"2\"}",
        ] {
            assert!(parse_label_set(bad).is_err(), "{bad}");
        }
    }
}
