//! The `line` field's analyzer, and what a `|=` needle proves about the tokens of a line that
//! contains it.
//!
//! Lines are split on non-alphanumeric characters and lowercased, one character at a time
//! (tantivy's `SimpleTokenizer` and `LowerCaser`). Tantivy's default analyzer then *drops*
//! tokens of 40 bytes or more; that loses the fact that a line held one, so a needle found
//! inside a long token could not be looked up soundly. Vigil's analyzer (`vigil_line`) indexes
//! every such token as one marker term, [`LONG_TOKEN`], instead. Partitions written before it
//! (tokenizer `default`, [`LineIndexing::Legacy`]) stay readable, with less narrowing.
//!
//! A needle's token `t` relates to the line token `T` that holds it by where `t` sits in the
//! needle ([`Fit`]): bounded by separators of the needle on both sides, `T == t`; touching the
//! needle's start only, `T` ends with `t`; its end only, `T` starts with `t`; both, `t` is
//! somewhere inside `T`. Lowercasing is per character, so these relations survive it, and a
//! token long enough to be marked in the needle is marked in the line too.

use tantivy::tokenizer::{
    LowerCaser, SimpleTokenizer, TextAnalyzer, Token, TokenFilter, TokenStream, Tokenizer,
    DEFAULT_TOKENIZER_NAME,
};

/// The schema name of Vigil's line analyzer.
pub(crate) const LINE_TOKENIZER: &str = "vigil_line";
/// Tokens this long (bytes, lowercased) or longer are indexed as [`LONG_TOKEN`].
pub(crate) const LONG_TOKEN_BYTES: usize = 40;
/// The term standing for any long token. Real tokens are alphanumeric only, so no token of a
/// line or needle is ever equal to it or contains it.
pub(crate) const LONG_TOKEN: &str = "\u{1}long";

/// How a partition's `line` field was tokenized, and where its tokens are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LineIndexing {
    /// Vigil's line index files (`line_index/`), tokens as `vigil_line` makes them.
    Own,
    /// tantivy's terms, by `vigil_line`: long tokens are marked.
    Marked,
    /// tantivy's terms, by its `default` analyzer: long tokens were dropped.
    Legacy,
}

impl LineIndexing {
    /// The tokenizer name in the schema.
    pub fn tokenizer_name(self) -> &'static str {
        match self {
            LineIndexing::Own | LineIndexing::Marked => LINE_TOKENIZER,
            LineIndexing::Legacy => DEFAULT_TOKENIZER_NAME,
        }
    }

    /// The analyzer that tokenized the partition's lines, for tokenizing needles alike.
    pub fn analyzer(self) -> TextAnalyzer {
        match self {
            LineIndexing::Own | LineIndexing::Marked => line_analyzer(),
            LineIndexing::Legacy => TextAnalyzer::builder(SimpleTokenizer::default())
                .filter(tantivy::tokenizer::RemoveLongFilter::limit(
                    LONG_TOKEN_BYTES,
                ))
                .filter(LowerCaser)
                .build(),
        }
    }
}

/// Vigil's line analyzer, registered as [`LINE_TOKENIZER`] on every partition index.
pub(crate) fn line_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(LowerCaser)
        .filter(MarkLong)
        .build()
}

/// Where a needle token sits, and so how it relates to the line token holding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Fit {
    /// Separators of the needle on both sides: the line holds exactly this token.
    Whole,
    /// Touches the needle's end only: a line token starts with it.
    Prefix,
    /// Touches the needle's start only: a line token ends with it.
    Suffix,
    /// Touches both ends (the needle has no separator): a line token contains it.
    Within,
}

/// One token of a needle and its [`Fit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NeedleToken {
    pub text: String,
    pub fit: Fit,
}

/// The tokens of `needle` as `analyzer` indexes lines, each with its [`Fit`].
pub(crate) fn needle_tokens(analyzer: &mut TextAnalyzer, needle: &str) -> Vec<NeedleToken> {
    let mut tokens = Vec::new();
    let mut stream = analyzer.token_stream(needle);
    stream.process(&mut |t| {
        let fit = match (t.offset_from == 0, t.offset_to == needle.len()) {
            (false, false) => Fit::Whole,
            (false, true) => Fit::Prefix,
            (true, false) => Fit::Suffix,
            (true, true) => Fit::Within,
        };
        tokens.push(NeedleToken {
            text: t.text.clone(),
            fit,
        });
    });
    tokens
}

/// Replaces every token of [`LONG_TOKEN_BYTES`] or more with [`LONG_TOKEN`].
#[derive(Clone, Copy)]
struct MarkLong;

impl TokenFilter for MarkLong {
    type Tokenizer<T: Tokenizer> = MarkLongTokenizer<T>;

    fn transform<T: Tokenizer>(self, inner: T) -> MarkLongTokenizer<T> {
        MarkLongTokenizer { inner }
    }
}

#[derive(Clone)]
struct MarkLongTokenizer<T> {
    inner: T,
}

impl<T: Tokenizer> Tokenizer for MarkLongTokenizer<T> {
    type TokenStream<'a> = MarkLongStream<T::TokenStream<'a>>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> Self::TokenStream<'a> {
        MarkLongStream {
            inner: self.inner.token_stream(text),
        }
    }
}

struct MarkLongStream<S> {
    inner: S,
}

impl<S: TokenStream> TokenStream for MarkLongStream<S> {
    fn advance(&mut self) -> bool {
        if !self.inner.advance() {
            return false;
        }
        let token = self.inner.token_mut();
        if token.text.len() >= LONG_TOKEN_BYTES {
            token.text.clear();
            token.text.push_str(LONG_TOKEN);
        }
        true
    }

    fn token(&self) -> &Token {
        self.inner.token()
    }

    fn token_mut(&mut self) -> &mut Token {
        self.inner.token_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(analyzer: &mut TextAnalyzer, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        analyzer
            .token_stream(text)
            .process(&mut |t| out.push(t.text.clone()));
        out
    }

    #[test]
    fn long_tokens_are_marked_not_dropped() {
        let long = "X".repeat(LONG_TOKEN_BYTES);
        let line = format!("GET /a {long} Done {}", "y".repeat(LONG_TOKEN_BYTES - 1));
        assert_eq!(
            texts(&mut line_analyzer(), &line),
            [
                "get".to_string(),
                "a".into(),
                LONG_TOKEN.into(),
                "done".into(),
                "y".repeat(LONG_TOKEN_BYTES - 1)
            ]
        );
        // The legacy analyzer drops it, as tantivy's default does.
        assert_eq!(
            texts(&mut LineIndexing::Legacy.analyzer(), &line),
            [
                "get".to_string(),
                "a".into(),
                "done".into(),
                "y".repeat(LONG_TOKEN_BYTES - 1)
            ]
        );
    }

    #[test]
    fn needle_tokens_know_where_they_sit() {
        let mut a = line_analyzer();
        let fits = |a: &mut TextAnalyzer, n: &str| -> Vec<(String, Fit)> {
            needle_tokens(a, n)
                .into_iter()
                .map(|t| (t.text, t.fit))
                .collect()
        };
        assert_eq!(fits(&mut a, "onnect"), [("onnect".into(), Fit::Within)]);
        assert_eq!(
            fits(&mut a, "Pool: Refused x"),
            [
                ("pool".into(), Fit::Suffix),
                ("refused".into(), Fit::Whole),
                ("x".into(), Fit::Prefix)
            ]
        );
        assert_eq!(fits(&mut a, " ok "), [("ok".into(), Fit::Whole)]);
        assert!(fits(&mut a, "").is_empty());
        assert!(fits(&mut a, "--").is_empty());
        let long = "a".repeat(LONG_TOKEN_BYTES + 3);
        assert_eq!(fits(&mut a, &long), [(LONG_TOKEN.into(), Fit::Within)]);
    }
}
