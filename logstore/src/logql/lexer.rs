//! The LogQL lexer: turns query text into tokens with positions, on demand.
//!
//! Tokens are produced one at a time as the parser asks for them, so a syntax error early in the
//! query is reported before a lexical error further on, as Loki's yacc-driven lexer does.
//! Strings follow Go's syntax: double-quoted with escapes, or backtick-quoted raw text.

use super::error::{Pos, QueryError};
use std::fmt;

/// One lexical token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Tok {
    OpenBrace,
    CloseBrace,
    OpenParen,
    CloseParen,
    OpenBracket,
    CloseBracket,
    Comma,
    /// `=`
    Eq,
    /// `!=`, a negative matcher in a selector and a negative line filter after it.
    Neq,
    /// `=~`
    Re,
    /// `!~`, a negative regex matcher and a negative regex line filter.
    Nre,
    /// `|=`
    PipeExact,
    /// `|~`
    PipeMatch,
    /// `|>`
    PipePattern,
    /// `!>`
    NotPipePattern,
    /// `|`
    Pipe,
    /// Arithmetic and comparison operators, which only metric queries use.
    Operator(&'static str),
    Ident(String),
    /// A string literal, already unquoted.
    Str(String),
    /// A number, a duration (`5m`, `1.5h`) or a byte size (`10KB`).
    Number(String),
    /// A parser flag such as `--strict`, without the dashes.
    Flag(String),
    End,
}

impl fmt::Display for Tok {
    /// The names Loki's parser uses in "unexpected X, expecting Y" messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Tok::OpenBrace => "{",
            Tok::CloseBrace => "}",
            Tok::OpenParen => "(",
            Tok::CloseParen => ")",
            Tok::OpenBracket => "[",
            Tok::CloseBracket => "]",
            Tok::Comma => ",",
            Tok::Eq => "=",
            Tok::Neq => "!=",
            Tok::Re => "=~",
            Tok::Nre => "!~",
            Tok::PipeExact => "|=",
            Tok::PipeMatch => "|~",
            Tok::PipePattern => "|>",
            Tok::NotPipePattern => "!>",
            Tok::Pipe => "|",
            Tok::Operator(op) => op,
            Tok::Ident(_) => "IDENTIFIER",
            Tok::Str(_) => "STRING",
            Tok::Number(_) => "NUMBER",
            Tok::Flag(_) => "PARSER_FLAG",
            Tok::End => "$end",
        };
        f.write_str(s)
    }
}

/// A token and where it starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Token {
    pub tok: Tok,
    pub pos: Pos,
}

/// Two-character operators, longest match first; checked before the one-character table.
const TWO_CHAR: &[(&str, Tok)] = &[
    ("|=", Tok::PipeExact),
    ("|~", Tok::PipeMatch),
    ("|>", Tok::PipePattern),
    ("!>", Tok::NotPipePattern),
    ("!=", Tok::Neq),
    ("!~", Tok::Nre),
    ("=~", Tok::Re),
    ("==", Tok::Operator("==")),
    ("<=", Tok::Operator("<=")),
    (">=", Tok::Operator(">=")),
];

pub(crate) struct Lexer<'a> {
    text: &'a str,
    /// Byte offset of the next unread character.
    at: usize,
    line: u32,
    col: u32,
}

impl<'a> Lexer<'a> {
    pub fn new(text: &'a str) -> Self {
        Lexer {
            text,
            at: 0,
            line: 1,
            col: 1,
        }
    }

    fn rest(&self) -> &'a str {
        &self.text[self.at..]
    }

    fn pos(&self) -> Pos {
        Pos {
            line: self.line,
            col: self.col,
        }
    }

    fn peek_char(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek_char()?;
        self.at += c.len_utf8();
        if c == '\n' {
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        Some(c)
    }

    /// Skips whitespace and `#` comments, which run to the end of the line.
    fn skip_blanks(&mut self) {
        while let Some(c) = self.peek_char() {
            if c.is_whitespace() {
                self.bump();
            } else if c == '#' {
                while self.peek_char().is_some_and(|c| c != '\n') {
                    self.bump();
                }
            } else {
                break;
            }
        }
    }

    pub fn next_token(&mut self) -> Result<Token, QueryError> {
        self.skip_blanks();
        let pos = self.pos();
        let Some(c) = self.peek_char() else {
            return Ok(Token { tok: Tok::End, pos });
        };
        if let Some(flag) = self.rest().strip_prefix("--") {
            if flag.starts_with(|c: char| c.is_ascii_alphabetic()) {
                self.bump();
                self.bump();
                let name = self.take_while(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
                return Ok(Token {
                    tok: Tok::Flag(name),
                    pos,
                });
            }
        }
        if let Some((op, tok)) = TWO_CHAR.iter().find(|(op, _)| self.rest().starts_with(op)) {
            for _ in 0..op.len() {
                self.bump();
            }
            return Ok(Token {
                tok: tok.clone(),
                pos,
            });
        }
        let tok = match c {
            '"' => Tok::Str(self.double_quoted(pos)?),
            '`' => Tok::Str(self.raw_string(pos)?),
            c if c.is_ascii_alphabetic() || c == '_' => Tok::Ident(self.take_while(is_ident_char)),
            c if c.is_ascii_digit() || c == '.' => Tok::Number(self.take_while(is_number_char)),
            _ => {
                self.bump();
                match c {
                    '{' => Tok::OpenBrace,
                    '}' => Tok::CloseBrace,
                    '(' => Tok::OpenParen,
                    ')' => Tok::CloseParen,
                    '[' => Tok::OpenBracket,
                    ']' => Tok::CloseBracket,
                    ',' => Tok::Comma,
                    '=' => Tok::Eq,
                    '|' => Tok::Pipe,
                    '+' => Tok::Operator("+"),
                    '-' => Tok::Operator("-"),
                    '*' => Tok::Operator("*"),
                    '/' => Tok::Operator("/"),
                    '%' => Tok::Operator("%"),
                    '^' => Tok::Operator("^"),
                    '<' => Tok::Operator("<"),
                    '>' => Tok::Operator(">"),
                    other => {
                        return Err(QueryError::syntax(
                            pos,
                            format!("syntax error: unexpected character {other:?}"),
                        ))
                    }
                }
            }
        };
        Ok(Token { tok, pos })
    }

    fn take_while(&mut self, keep: fn(char) -> bool) -> String {
        let start = self.at;
        while self.peek_char().is_some_and(keep) {
            self.bump();
        }
        self.text[start..self.at].to_string()
    }

    /// A backtick string: no escapes, may span lines; carriage returns are dropped as Go does.
    fn raw_string(&mut self, start: Pos) -> Result<String, QueryError> {
        self.bump();
        let mut out = String::new();
        loop {
            match self.bump() {
                Some('`') => return Ok(out),
                Some('\r') => {}
                Some(c) => out.push(c),
                None => return Err(QueryError::syntax(start, "literal not terminated")),
            }
        }
    }

    /// A double-quoted Go string. Escapes are decoded to bytes first because `\x` and octal
    /// escapes name bytes, not characters; the result must still be valid UTF-8.
    fn double_quoted(&mut self, start: Pos) -> Result<String, QueryError> {
        self.bump();
        let mut out: Vec<u8> = Vec::new();
        loop {
            let c = match self.bump() {
                None | Some('\n') => {
                    return Err(QueryError::syntax(start, "literal not terminated"))
                }
                Some(c) => c,
            };
            match c {
                '"' => break,
                '\\' => self.escape(start, &mut out)?,
                c => {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        String::from_utf8(out)
            .map_err(|_| QueryError::syntax(start, "invalid UTF-8 in string literal"))
    }

    fn escape(&mut self, start: Pos, out: &mut Vec<u8>) -> Result<(), QueryError> {
        let bad = || QueryError::syntax(start, "invalid char escape");
        let c = self.bump().ok_or_else(bad)?;
        let simple = match c {
            'a' => Some(0x07),
            'b' => Some(0x08),
            'f' => Some(0x0c),
            'n' => Some(b'\n'),
            'r' => Some(b'\r'),
            't' => Some(b'\t'),
            'v' => Some(0x0b),
            '\\' => Some(b'\\'),
            '"' => Some(b'"'),
            _ => None,
        };
        if let Some(b) = simple {
            out.push(b);
            return Ok(());
        }
        match c {
            '0'..='7' => {
                let mut v = c.to_digit(8).ok_or_else(bad)?;
                for _ in 0..2 {
                    let d = self.bump().and_then(|d| d.to_digit(8)).ok_or_else(bad)?;
                    v = v * 8 + d;
                }
                out.push(u8::try_from(v).map_err(|_| bad())?);
            }
            'x' => {
                let v = self.hex_digits(2).ok_or_else(bad)?;
                out.push(u8::try_from(v).map_err(|_| bad())?);
            }
            'u' | 'U' => {
                let n = if c == 'u' { 4 } else { 8 };
                let v = self.hex_digits(n).ok_or_else(bad)?;
                let ch = char::from_u32(v).ok_or_else(bad)?;
                let mut buf = [0u8; 4];
                out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
            }
            _ => return Err(bad()),
        }
        Ok(())
    }

    fn hex_digits(&mut self, n: usize) -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            v = v * 16 + self.bump()?.to_digit(16)?;
        }
        Some(v)
    }
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Numbers and durations (`5`, `0.5`, `1e3`, `5m`, `1h30m`) lex as one token.
fn is_number_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '.'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lex_all(text: &str) -> Result<Vec<Tok>, QueryError> {
        let mut lx = Lexer::new(text);
        let mut out = Vec::new();
        loop {
            let t = lx.next_token()?;
            if t.tok == Tok::End {
                return Ok(out);
            }
            out.push(t.tok);
        }
    }

    #[test]
    fn operators_and_positions() {
        let mut lx = Lexer::new("{a=~\"x\"}\n  |= `y` != \"z\"");
        let toks: Vec<Token> =
            std::iter::from_fn(|| lx.next_token().ok().filter(|t| t.tok != Tok::End)).collect();
        let kinds: Vec<&Tok> = toks.iter().map(|t| &t.tok).collect();
        assert_eq!(
            kinds,
            [
                &Tok::OpenBrace,
                &Tok::Ident("a".into()),
                &Tok::Re,
                &Tok::Str("x".into()),
                &Tok::CloseBrace,
                &Tok::PipeExact,
                &Tok::Str("y".into()),
                &Tok::Neq,
                &Tok::Str("z".into()),
            ]
        );
        assert_eq!(toks[5].pos, Pos { line: 2, col: 3 });
    }

    #[test]
    fn go_string_escapes() {
        let toks = lex_all(r#""a\tb\"c\\d\x41\101\u00e9\U0001F600""#).unwrap();
        assert_eq!(toks, [Tok::Str("a\tb\"c\\dAAé😀".into())]);
        assert_eq!(lex_all("`a\\nb`").unwrap(), [Tok::Str("a\\nb".into())]);
        assert_eq!(lex_all("`a\r\nb`").unwrap(), [Tok::Str("a\nb".into())]);
    }

    #[test]
    fn bad_strings() {
        let msg = |t: &str| lex_all(t).unwrap_err().to_string();
        assert_eq!(
            msg(r#"{foo="bar}"#),
            "parse error at line 1, col 6: literal not terminated"
        );
        assert_eq!(
            msg("`abc"),
            "parse error at line 1, col 1: literal not terminated"
        );
        assert_eq!(
            msg(r#""a\qb""#),
            "parse error at line 1, col 1: invalid char escape"
        );
        assert_eq!(
            msg("\"a\nb\""),
            "parse error at line 1, col 1: literal not terminated"
        );
        assert_eq!(
            msg(r#""\xff""#),
            "parse error at line 1, col 1: invalid UTF-8 in string literal"
        );
    }

    #[test]
    fn comments_are_skipped() {
        assert_eq!(
            lex_all("{a=\"b\"} # a comment |= \"x\"\n|= \"y\"")
                .unwrap()
                .len(),
            7
        );
    }
}
