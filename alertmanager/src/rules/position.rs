//! Where each rule's `expr` sits in its file, so an expression error names its line and column
//! as promtool does (`rules.yml: 5:15: group "g", rule 1, "A": …`).
//!
//! The YAML parser keeps no positions after decoding, so the file is scanned again: in block
//! style (what rule files are written in), every `expr:` key of a rule mapping starts a line,
//! after its indentation and at most one `- ` list marker. Block scalars (`|`, `>`) and comments
//! are skipped, so an `expr:` inside an annotation's text is not taken for one. The positions are
//! only used when the scan finds exactly one per rule; a file in flow style gets no positions
//! and its errors still name file, group and rule.

/// A 1-based line and column, as Go's YAML decoder reports node positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// The position of every `expr:` value in `text`, in file order. A block-scalar value
/// (`expr: |`) is placed at its indicator, as the YAML decoder places the node.
pub fn expr_positions(text: &str) -> Vec<Position> {
    let mut found = Vec::new();
    // While inside a block scalar: the indentation of the key that opened it.
    let mut block_of: Option<usize> = None;
    for (index, line) in text.lines().enumerate() {
        let indent = line.len() - line.trim_start_matches(' ').len();
        let rest = &line[indent..];
        if let Some(key_indent) = block_of {
            if rest.is_empty() || indent > key_indent {
                continue;
            }
            block_of = None;
        }
        if rest.is_empty() || rest.starts_with('#') {
            continue;
        }
        // At most one list marker before the key, as in `  - expr: up`.
        let (key_col, body) = match rest.strip_prefix("- ") {
            Some(after) => {
                let pad = after.len() - after.trim_start_matches(' ').len();
                (indent + 2 + pad, &after[pad..])
            }
            None => (indent, rest),
        };
        let Some((key, value)) = split_key(body) else {
            continue;
        };
        let value_pad = value.len() - value.trim_start_matches(' ').len();
        let value_text = value[value_pad..].trim_end();
        let opens_block = is_block_indicator(value_text);
        if opens_block {
            block_of = Some(key_col);
        }
        if key == "expr" {
            // Key, colon, then the value's first character (1-based).
            found.push(Position {
                line: index + 1,
                column: key_col + key.len() + 1 + value_pad + 1,
            });
        }
    }
    found
}

/// `key: value` (or `key:` at the end of the line) with a plain key; `None` for anything
/// else, including a quoted key or a list item that is a scalar.
fn split_key(body: &str) -> Option<(&str, &str)> {
    let colon = body.find(':')?;
    let key = &body[..colon];
    let value = &body[colon + 1..];
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    (plain && (value.is_empty() || value.starts_with(' '))).then_some((key, value))
}

/// `|`, `>`, with the optional chomping and indentation indicators and a trailing comment.
fn is_block_indicator(value: &str) -> bool {
    let head = value.split(" #").next().unwrap_or("").trim_end();
    let mut chars = head.chars();
    matches!(chars.next(), Some('|' | '>')) && chars.all(|c| matches!(c, '+' | '-' | '1'..='9'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(line: usize, column: usize) -> Position {
        Position { line, column }
    }

    #[test]
    fn finds_each_expr_value_in_block_style() {
        let text = "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: sum(rate(x[5m])\n      - expr: up == 0\n        record: r\n      -   expr:   |\n            a\n            expr: not a key\n          for: 5m\n";
        assert_eq!(
            expr_positions(text),
            [at(5, 15), at(6, 15), at(8, 19)],
            "the block scalar's text is not a key"
        );
    }

    #[test]
    fn skips_comments_quoted_text_and_block_annotations() {
        let text = "groups:\n- name: g\n  rules:\n  # expr: commented out\n  - alert: A\n    expr: up\n    annotations:\n      description: >-\n        expr: inside folded text\n\n        still inside\n      summary: 'expr: quoted'\n";
        assert_eq!(expr_positions(text), [at(6, 11)]);
    }

    #[test]
    fn flow_style_finds_nothing() {
        assert!(expr_positions("groups: [{name: g, rules: [{alert: A, expr: up}]}]\n").is_empty());
    }
}
