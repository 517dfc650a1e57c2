//! Splits template text into text runs and actions, and each action into tokens, following Go
//! `text/template`'s lexer: `{{- ` / ` -}}` trim markers (the dash needs a space, since `{{-3}}`
//! is a number), `{{/* comments */}}`, quoted, raw and character literals, and field chains
//! (`.a.b`, `$x.a`, `(pipe).a`).

/// A piece of the source: literal text or one action's tokens.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Item {
    Text(String),
    /// An action's tokens; `pos` is the byte offset of its `{{` in the source.
    Action {
        toks: Vec<Tok>,
        pos: usize,
    },
}

/// A token with the byte offset where it starts.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Tok {
    pub kind: TokKind,
    pub pos: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum TokKind {
    /// A function name or keyword.
    Ident(String),
    /// `.a.b`.
    Field(Vec<String>),
    /// `$name.a.b` (`$` alone has name "").
    Var(String, Vec<String>),
    /// `.a.b` right after a `)`: fields of a parenthesized pipeline's result.
    Chain(Vec<String>),
    Dot,
    Str(String),
    /// A number as written (including character constants, already converted).
    Num(String),
    Bool(bool),
    Nil,
    Pipe,
    LParen,
    RParen,
    Declare,
    Assign,
    Comma,
}

/// Lexes `src`. Errors are `(line, message)` in Go's words.
pub(super) fn lex(src: &str) -> Result<Vec<Item>, (usize, String)> {
    let mut items = Vec::new();
    let mut i = 0;
    let mut trim_next = false;
    while i < src.len() {
        let Some(rel) = src[i..].find("{{") else {
            push_text(&mut items, &src[i..], trim_next, false);
            break;
        };
        let open = i + rel;
        let mut body_start = open + 2;
        let trim_left = has_left_trim(&src[body_start..]);
        push_text(&mut items, &src[i..open], trim_next, trim_left);
        if trim_left {
            body_start += 2;
        }
        let line = line_of(src, open);
        let rest = &src[body_start..];
        if rest.starts_with("/*") {
            let Some(end) = rest.find("*/") else {
                return Err((line, "unclosed comment".into()));
            };
            let after = &rest[end + 2..];
            let (trim_right, close_len) = if after.starts_with(" -}}") {
                (true, 4)
            } else if after.starts_with("}}") {
                (false, 2)
            } else {
                return Err((line, "comment ends before closing delimiter".into()));
            };
            trim_next = trim_right;
            i = body_start + end + 2 + close_len;
            continue;
        }
        let (toks, consumed, trim_right) = lex_action(src, body_start).map_err(|m| (line, m))?;
        items.push(Item::Action { toks, pos: open });
        trim_next = trim_right;
        i = consumed;
    }
    Ok(items)
}

/// The 1-based line of byte offset `pos`.
pub(super) fn line_of(src: &str, pos: usize) -> usize {
    src.as_bytes()[..pos.min(src.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn has_left_trim(after_open: &str) -> bool {
    let b = after_open.as_bytes();
    b.first() == Some(&b'-') && b.get(1).is_some_and(|c| c.is_ascii_whitespace())
}

fn push_text(items: &mut Vec<Item>, text: &str, trim_start: bool, trim_end: bool) {
    let mut t = text;
    if trim_start {
        t = t.trim_start_matches(is_go_space);
    }
    if trim_end {
        t = t.trim_end_matches(is_go_space);
    }
    if !t.is_empty() {
        items.push(Item::Text(t.to_string()));
    }
}

/// Go trims only ASCII space, tab, carriage return and newline around trim markers.
fn is_go_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_ident_char(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// Lexes one action starting at `start` (just after `{{` and any trim marker). Returns the
/// tokens, the offset after the closing `}}`, and whether it ended with ` -}}`.
fn lex_action(src: &str, start: usize) -> Result<(Vec<Tok>, usize, bool), String> {
    let mut toks: Vec<Tok> = Vec::new();
    let bytes = src.as_bytes();
    let mut i = start;
    let mut depth = 0usize;
    loop {
        let Some(&b) = bytes.get(i) else {
            return Err("unclosed action".into());
        };
        let c = src[i..].chars().next().unwrap_or('\0');
        if src[i..].starts_with(" -}}") {
            return close(toks, depth, i + 4, true);
        }
        if src[i..].starts_with("}}") {
            return close(toks, depth, i + 2, false);
        }
        let pos = i;
        let push = |kind: TokKind, len: usize, toks: &mut Vec<Tok>| {
            toks.push(Tok { kind, pos });
            pos + len
        };
        i = match b {
            // Go 1.16 and later allow newlines inside actions.
            b' ' | b'\t' | b'\r' | b'\n' => i + 1,
            b'|' => push(TokKind::Pipe, 1, &mut toks),
            b',' => push(TokKind::Comma, 1, &mut toks),
            b'(' => {
                depth += 1;
                push(TokKind::LParen, 1, &mut toks)
            }
            b')' => {
                if depth == 0 {
                    return Err("unexpected right paren".into());
                }
                depth -= 1;
                let next = push(TokKind::RParen, 1, &mut toks);
                if src[next..].starts_with('.') && src[next + 1..].starts_with(is_ident_char) {
                    let (path, end) = lex_path(src, next);
                    toks.push(Tok {
                        kind: TokKind::Chain(path),
                        pos: next,
                    });
                    end
                } else {
                    next
                }
            }
            b':' if src[i..].starts_with(":=") => push(TokKind::Declare, 2, &mut toks),
            b'=' => push(TokKind::Assign, 1, &mut toks),
            b'"' => {
                let (s, end) = lex_quoted(src, i)?;
                toks.push(Tok {
                    kind: TokKind::Str(s),
                    pos,
                });
                end
            }
            b'`' => {
                let Some(len) = src[i + 1..].find('`') else {
                    return Err("unterminated raw quoted string".into());
                };
                toks.push(Tok {
                    kind: TokKind::Str(src[i + 1..i + 1 + len].to_string()),
                    pos,
                });
                i + len + 2
            }
            b'\'' => {
                let (ch, end) = lex_char(src, i)?;
                toks.push(Tok {
                    kind: TokKind::Num((ch as u32).to_string()),
                    pos,
                });
                end
            }
            b'$' => {
                let name_end = src[i + 1..]
                    .find(|c: char| !is_ident_char(c))
                    .map_or(src.len(), |e| i + 1 + e);
                let name = src[i + 1..name_end].to_string();
                let (path, end) = lex_path(src, name_end);
                toks.push(Tok {
                    kind: TokKind::Var(name, path),
                    pos,
                });
                end
            }
            b'.' if !src[i + 1..].starts_with(|c: char| c.is_ascii_digit()) => {
                if src[i + 1..].starts_with(is_ident_char) {
                    let (path, end) = lex_path(src, i);
                    toks.push(Tok {
                        kind: TokKind::Field(path),
                        pos,
                    });
                    end
                } else {
                    push(TokKind::Dot, 1, &mut toks)
                }
            }
            b'+' | b'-' | b'.' | b'0'..=b'9' => {
                let end = scan_number(src, i);
                if end == i || (end == i + 1 && !b.is_ascii_digit()) {
                    return Err(format!("bad character {c:?}"));
                }
                toks.push(Tok {
                    kind: TokKind::Num(src[i..end].to_string()),
                    pos,
                });
                end
            }
            _ if is_ident_char(c) => {
                let end = src[i..]
                    .find(|c: char| !is_ident_char(c))
                    .map_or(src.len(), |e| i + e);
                let word = &src[i..end];
                let kind = match word {
                    "true" => TokKind::Bool(true),
                    "false" => TokKind::Bool(false),
                    "nil" => TokKind::Nil,
                    _ => TokKind::Ident(word.to_string()),
                };
                toks.push(Tok { kind, pos });
                end
            }
            _ => return Err(format!("bad character {c:?}")),
        };
    }
}

fn close(
    toks: Vec<Tok>,
    depth: usize,
    end: usize,
    trim: bool,
) -> Result<(Vec<Tok>, usize, bool), String> {
    if depth > 0 {
        return Err("unclosed left paren".into());
    }
    Ok((toks, end, trim))
}

/// Lexes `.a.b.c` starting at `i` (which may not be at a dot: then the path is empty).
fn lex_path(src: &str, mut i: usize) -> (Vec<String>, usize) {
    let mut path = Vec::new();
    while src[i..].starts_with('.') && src[i + 1..].starts_with(is_ident_char) {
        let end = src[i + 1..]
            .find(|c: char| !is_ident_char(c))
            .map_or(src.len(), |e| i + 1 + e);
        path.push(src[i + 1..end].to_string());
        i = end;
    }
    (path, i)
}

/// The end of the number starting at `i`: sign, hex/octal/binary prefixes, digits with
/// underscores, fraction and exponent, as Go's `scanNumber` accepts them.
fn scan_number(src: &str, start: usize) -> usize {
    let b = src.as_bytes();
    let mut i = start;
    if matches!(b.get(i), Some(b'+' | b'-')) {
        i += 1;
    }
    let mut digits: &[u8] = b"0123456789_";
    let mut exp: &[u8] = b"eE";
    if b.get(i) == Some(&b'0') && matches!(b.get(i + 1), Some(b'x' | b'X')) {
        i += 2;
        digits = b"0123456789abcdefABCDEF_";
        exp = b"pP";
    }
    while b.get(i).is_some_and(|c| digits.contains(c)) {
        i += 1;
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        while b.get(i).is_some_and(|c| digits.contains(c)) {
            i += 1;
        }
    }
    if b.get(i).is_some_and(|c| exp.contains(c)) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
    }
    i
}

/// Lexes a double-quoted Go string at `i`, undoing its escapes.
fn lex_quoted(src: &str, i: usize) -> Result<(String, usize), String> {
    let mut out = String::new();
    let mut chars = src[i + 1..].char_indices();
    while let Some((off, c)) = chars.next() {
        match c {
            '"' => return Ok((out, i + 1 + off + 1)),
            '\n' => break,
            '\\' => {
                let Some((_, e)) = chars.next() else { break };
                match e {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    'a' => out.push('\u{7}'),
                    'b' => out.push('\u{8}'),
                    'f' => out.push('\u{c}'),
                    'v' => out.push('\u{b}'),
                    '\\' => out.push('\\'),
                    '"' => out.push('"'),
                    '\'' => out.push('\''),
                    'x' | 'u' | 'U' => {
                        let n = match e {
                            'x' => 2,
                            'u' => 4,
                            _ => 8,
                        };
                        let hex: String = chars.by_ref().take(n).map(|(_, c)| c).collect();
                        let ch = u32::from_str_radix(&hex, 16)
                            .ok()
                            .and_then(char::from_u32)
                            .ok_or_else(|| format!("invalid syntax in escape \\{e}{hex}"))?;
                        out.push(ch);
                    }
                    other => return Err(format!("invalid syntax: unknown escape \\{other}")),
                }
            }
            c => out.push(c),
        }
    }
    Err("unterminated quoted string".into())
}

/// Lexes a character constant `'x'` (or an escape such as `'\n'`) at `i`.
fn lex_char(src: &str, i: usize) -> Result<(char, usize), String> {
    let rest = &src[i + 1..];
    let Some(end) = rest.find('\'') else {
        return Err("unterminated character constant".into());
    };
    let body = &rest[..end];
    let ch = match body {
        "\\n" => '\n',
        "\\t" => '\t',
        "\\\\" => '\\',
        "\\'" => '\'',
        _ => {
            let mut it = body.chars();
            match (it.next(), it.next()) {
                (Some(c), None) => c,
                _ => return Err(format!("malformed character constant: '{body}'")),
            }
        }
    };
    Ok((ch, i + 1 + end + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<TokKind> {
        match lex(src).unwrap().remove(0) {
            Item::Action { toks, .. } => toks.into_iter().map(|t| t.kind).collect(),
            Item::Text(t) => panic!("text {t}"),
        }
    }

    #[test]
    fn lexes_actions_like_go() {
        assert_eq!(
            kinds("{{ $labels.service | printf \"%s\" }}"),
            vec![
                TokKind::Var("labels".into(), vec!["service".into()]),
                TokKind::Pipe,
                TokKind::Ident("printf".into()),
                TokKind::Str("%s".into()),
            ]
        );
        assert_eq!(kinds("{{-3}}"), vec![TokKind::Num("-3".into())]);
        assert_eq!(
            kinds("{{ (index . 0).Name }}"),
            vec![
                TokKind::LParen,
                TokKind::Ident("index".into()),
                TokKind::Dot,
                TokKind::Num("0".into()),
                TokKind::RParen,
                TokKind::Chain(vec!["Name".into()]),
            ]
        );
        assert_eq!(kinds("{{ 'a' }}"), vec![TokKind::Num("97".into())]);
    }

    #[test]
    fn trims_and_comments() {
        let items = lex("a  {{- 1 -}}  b {{/* c */}}d {{- /* e */ -}} f").unwrap();
        let texts: Vec<_> = items
            .iter()
            .filter_map(|i| match i {
                Item::Text(t) => Some(t.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(texts, vec!["a", "b ", "d", "f"]);
    }

    #[test]
    fn unclosed_action_reports_its_line() {
        assert_eq!(
            lex("x\n{{ .a ").unwrap_err(),
            (2, "unclosed action".to_string())
        );
    }
}
