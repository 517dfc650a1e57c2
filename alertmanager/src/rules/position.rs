//! Where each rule's keys sit in its file, so a rule's errors name the line and column promtool
//! names (`rules.yml: 5:15: group "g", rule 1, "A": …`).
//!
//! The YAML parser keeps no positions after decoding, so the file is scanned again: in block
//! style (what rule files are written in), each rule is an item of a `rules:` sequence and its
//! keys start lines, after their indentation and at most one `- ` list marker. Block scalars
//! (`|`, `>`) and comments are skipped, so an `expr:` inside an annotation's text is not taken
//! for one. The positions are only used when the scan finds exactly one item per rule; a file
//! in flow style gets none and its errors still name file, group and rule.

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

/// Where one rule's keys are: the values of `record`, `alert` and `expr`, and the rule itself
/// (its first key), each when present.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RulePositions {
    pub start: Option<Position>,
    pub record: Option<Position>,
    pub alert: Option<Position>,
    pub expr: Option<Position>,
    pub templates: TemplatePositions,
}

/// Where the values of a rule's `labels` and `annotations` entries start, by key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplatePositions {
    pub labels: Vec<(String, Position)>,
    pub annotations: Vec<(String, Position)>,
}

/// The rules of `text` in file order: every item of a `rules:` sequence, with where its keys'
/// values start. A block-scalar value (`expr: |`) is placed at its indicator, as the YAML
/// decoder places the node.
pub fn rule_positions(text: &str) -> Vec<RulePositions> {
    let mut rules: Vec<RulePositions> = Vec::new();
    // While inside a block scalar: the column of the key that opened it.
    let mut block_of: Option<usize> = None;
    // Inside a `rules:` sequence: the column of the `rules` key and of the open item's keys.
    let mut rules_key: Option<usize> = None;
    let mut item_keys: Option<usize> = None;
    // Inside the open item's `labels:` or `annotations:` mapping: which, and its keys' column.
    let mut nested: Option<(bool, Option<usize>)> = None;
    for (index, line) in text.lines().enumerate() {
        let indent = line.len() - line.trim_start_matches(' ').len();
        let rest = &line[indent..];
        if let Some(key_col) = block_of {
            if rest.is_empty() || indent > key_col {
                continue;
            }
            block_of = None;
        }
        if rest.is_empty() || rest.starts_with('#') {
            continue;
        }
        // At most one list marker before the key, as in `  - expr: up`.
        let (key_col, body, item) = match rest.strip_prefix("- ") {
            Some(after) => {
                let pad = after.len() - after.trim_start_matches(' ').len();
                (indent + 2 + pad, &after[pad..], true)
            }
            None => (indent, rest, false),
        };
        // Leaving the sequence: a line left of it (a sequence may sit at its key's column).
        if let Some(rk) = rules_key {
            let in_item = item_keys.is_some_and(|c| !item && indent >= c);
            let new_item = item && indent >= rk;
            if !in_item && !new_item {
                rules_key = None;
                item_keys = None;
            }
        }
        let Some((key, value)) = split_key(body) else {
            continue;
        };
        let value_pad = value.len() - value.trim_start_matches(' ').len();
        let value_text = value[value_pad..].trim_end();
        if is_block_indicator(value_text) {
            block_of = Some(key_col);
        }
        let at = Position {
            line: index + 1,
            column: key_col + key.len() + 1 + value_pad + 1,
        };
        if rules_key.is_some() {
            if item {
                item_keys = Some(key_col);
                nested = None;
                rules.push(RulePositions {
                    start: Some(Position {
                        line: index + 1,
                        column: key_col + 1,
                    }),
                    ..RulePositions::default()
                });
            }
            if item_keys == Some(key_col) {
                nested = None;
                if let Some(rule) = rules.last_mut() {
                    match key {
                        "record" => rule.record = Some(at),
                        "alert" => rule.alert = Some(at),
                        "expr" => rule.expr = Some(at),
                        "labels" | "annotations" if value_text.is_empty() => {
                            nested = Some((key == "labels", None));
                        }
                        _ => {}
                    }
                }
            } else if let (Some((is_labels, col)), false) = (&mut nested, item) {
                if item_keys.is_some_and(|c| key_col > c) && col.is_none_or(|c| c == key_col) {
                    *col = Some(key_col);
                    if let Some(rule) = rules.last_mut() {
                        let list = if *is_labels {
                            &mut rule.templates.labels
                        } else {
                            &mut rule.templates.annotations
                        };
                        list.push((key.to_string(), at));
                    }
                }
            }
        } else if key == "rules" {
            rules_key = Some(key_col);
        }
    }
    rules
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

    fn at(line: usize, column: usize) -> Option<Position> {
        Some(Position { line, column })
    }

    #[test]
    fn finds_each_rules_keys_in_block_style() {
        let text = "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: sum(rate(x[5m])\n      - expr: up == 0\n        record: r\n      -   expr:   |\n            a\n            expr: not a key\n          for: 5m\n  - name: h\n    rules:\n    - record: s\n      expr: vector(1)\n";
        let p = rule_positions(text);
        assert_eq!(p.len(), 4);
        assert_eq!(
            (p[0].start, p[0].alert, p[0].expr),
            (at(4, 9), at(4, 16), at(5, 15))
        );
        assert_eq!((p[1].record, p[1].expr), (at(7, 17), at(6, 15)));
        assert_eq!(
            (p[2].expr, p[2].record),
            (at(8, 19), None),
            "block text is no key"
        );
        assert_eq!((p[3].start, p[3].record), (at(14, 7), at(14, 15)));
    }

    #[test]
    fn skips_comments_quoted_text_and_block_annotations() {
        let text = "groups:\n- name: g\n  rules:\n  # - expr: commented out\n  - alert: A\n    expr: up\n    annotations:\n      description: >-\n        - expr: inside folded text\n\n        still inside\n      summary: 'expr: quoted'\n";
        let p = rule_positions(text);
        assert_eq!(p.len(), 1);
        assert_eq!((p[0].alert, p[0].expr), (at(5, 12), at(6, 11)));
        let annotations: Vec<_> = p[0]
            .templates
            .annotations
            .iter()
            .map(|(k, p)| (k.as_str(), *p))
            .collect();
        assert_eq!(
            annotations,
            [
                (
                    "description",
                    Position {
                        line: 8,
                        column: 20
                    }
                ),
                (
                    "summary",
                    Position {
                        line: 12,
                        column: 16
                    }
                )
            ]
        );
    }

    #[test]
    fn flow_style_finds_nothing() {
        assert!(rule_positions("groups: [{name: g, rules: [{alert: A, expr: up}]}]\n").is_empty());
    }
}
