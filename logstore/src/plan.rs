//! Query planning: a time range, a stream selector and line filters become one tantivy query.
//!
//! Every label matcher is pushed down exactly. A stream has at most one value per label name,
//! and its `labels` field holds the term `name=value` for each, so for a matcher on `name`:
//!
//! - if it rejects the empty value (the label must be present), a document matches iff it holds
//!   one of the `name=v` terms whose `v` the matcher accepts: a `Must` over that term set;
//! - if it accepts the empty value (an absent label passes), a document matches iff it holds
//!   none of the `name=v` terms whose `v` the matcher rejects: a `MustNot` over that set.
//!
//! The candidate values come from the term dictionaries of the segments, so regex matchers are
//! evaluated once per distinct label value, never per document, and the documents of streams
//! that cannot match are never visited, let alone loaded.
//!
//! `|=` filters add `Must` clauses on the line tokens the needle guarantees (see
//! [`required_tokens`]); they only narrow the candidates, since the index cannot express
//! case-sensitive substring matching. The caller re-checks every filter on the stored line.

use crate::logql::{LineFilter, LineFilterOp};
use crate::schema::{label_term, Fields};
use crate::Error;
use model::{MatchOp, Matcher};
use std::collections::BTreeSet;
use std::ops::Bound;
use tantivy::query::{BooleanQuery, Occur, Query, RangeQuery, TermQuery, TermSetQuery};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::tokenizer::TextAnalyzer;
use tantivy::{Searcher, Term};

/// Builds the query selecting the entries of `[start_ns, end_ns)` in streams that satisfy every
/// matcher and whose lines contain the tokens every `|=` needle requires. `None` when no
/// document can match (a matcher that requires a label value no segment holds).
pub(crate) fn entries_query(
    searcher: &Searcher,
    fields: &Fields,
    line_analyzer: &mut TextAnalyzer,
    matchers: &[Matcher],
    line_filters: &[LineFilter],
    start_ns: i64,
    end_ns: i64,
) -> Result<Option<BooleanQuery>, Error> {
    let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![(
        Occur::Must,
        Box::new(RangeQuery::new(
            Bound::Included(Term::from_field_i64(fields.ts, start_ns)),
            Bound::Excluded(Term::from_field_i64(fields.ts, end_ns)),
        )),
    )];
    for m in matchers {
        match matcher_clause(searcher, fields.labels, m)? {
            MatcherClause::Require(q) => clauses.push((Occur::Must, q)),
            MatcherClause::Exclude(q) => clauses.push((Occur::MustNot, q)),
            MatcherClause::NothingMatches => return Ok(None),
            MatcherClause::EverythingMatches => {}
        }
    }
    for lf in line_filters {
        // An `ip()` pattern is not text of the line: it cannot narrow by tokens.
        if lf.op() == LineFilterOp::Contains && !lf.is_ip() {
            for token in required_tokens(line_analyzer, lf.pattern()) {
                let term = Term::from_field_text(fields.line, &token);
                clauses.push((
                    Occur::Must,
                    Box::new(TermQuery::new(term, IndexRecordOption::Basic)),
                ));
            }
        }
    }
    Ok(Some(BooleanQuery::new(clauses)))
}

enum MatcherClause {
    Require(Box<dyn Query>),
    Exclude(Box<dyn Query>),
    NothingMatches,
    EverythingMatches,
}

fn matcher_clause(searcher: &Searcher, labels: Field, m: &Matcher) -> Result<MatcherClause, Error> {
    // The two common cases need no dictionary walk: one exact term decides.
    match m.op {
        MatchOp::Equal if !m.value.is_empty() => {
            return Ok(MatcherClause::Require(term_query(
                labels, &m.name, &m.value,
            )))
        }
        MatchOp::NotEqual if !m.value.is_empty() => {
            return Ok(MatcherClause::Exclude(term_query(
                labels, &m.name, &m.value,
            )))
        }
        _ => {}
    }
    let values = label_values(searcher, labels, &m.name)?;
    let absent_passes = m.matches_empty();
    // Keep the values whose documents must be required (if the label must be present) or
    // excluded (if an absent label passes).
    let terms: Vec<Term> = values
        .iter()
        .filter(|v| m.matches(v) != absent_passes)
        .map(|v| Term::from_field_text(labels, &label_term(&m.name, v)))
        .collect();
    Ok(match (absent_passes, terms.is_empty()) {
        (false, true) => MatcherClause::NothingMatches,
        (false, false) => MatcherClause::Require(Box::new(TermSetQuery::new(terms))),
        (true, true) => MatcherClause::EverythingMatches,
        (true, false) => MatcherClause::Exclude(Box::new(TermSetQuery::new(terms))),
    })
}

fn term_query(labels: Field, name: &str, value: &str) -> Box<dyn Query> {
    let term = Term::from_field_text(labels, &label_term(name, value));
    Box::new(TermQuery::new(term, IndexRecordOption::Basic))
}

/// The distinct values of label `name` across all segments, from the term dictionaries
/// (`name=` prefix range), without touching any document.
pub(crate) fn label_values(
    searcher: &Searcher,
    labels: Field,
    name: &str,
) -> Result<BTreeSet<String>, Error> {
    let prefix = label_term(name, "");
    // `>` follows `=` in byte order, so `[name=, name>)` is exactly the `name=` prefix.
    let upper = format!("{name}>");
    let mut values = BTreeSet::new();
    for segment in searcher.segment_readers() {
        let inverted = segment.inverted_index(labels)?;
        let mut stream = inverted
            .terms()
            .range()
            .ge(prefix.as_bytes())
            .lt(upper.as_bytes())
            .into_stream()?;
        while stream.advance() {
            let value = std::str::from_utf8(&stream.key()[prefix.len()..])
                .map_err(|_| Error::Index("label term is not UTF-8".to_string()))?;
            values.insert(value.to_string());
        }
    }
    Ok(values)
}

/// The line-field tokens that every line containing `needle` is guaranteed to hold.
///
/// The analyzer splits on non-alphanumeric characters, so a needle token bounded on both sides
/// by a separator *inside the needle* is a whole token of any line containing the needle. A
/// token touching either end of the needle may be part of a longer word in the line
/// (`"onnect"` in `"connection"`), so it proves nothing and is left out. Lowercasing and the
/// long-token filter are the analyzer's own, so needle and line tokens agree.
pub(crate) fn required_tokens(analyzer: &mut TextAnalyzer, needle: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut stream = analyzer.token_stream(needle);
    stream.process(&mut |t| {
        if t.offset_from > 0 && t.offset_to < needle.len() {
            tokens.push(t.text.clone());
        }
    });
    tokens.sort();
    tokens.dedup();
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;
    use tantivy::tokenizer::TokenizerManager;

    fn analyzer() -> TextAnalyzer {
        TokenizerManager::default()
            .get(crate::schema::LINE_TOKENIZER)
            .unwrap()
    }

    #[test]
    fn only_interior_tokens_are_required() {
        let mut a = analyzer();
        assert!(required_tokens(&mut a, "onnect").is_empty());
        assert!(required_tokens(&mut a, "connection refused").is_empty());
        assert_eq!(required_tokens(&mut a, " refused "), ["refused"]);
        assert_eq!(
            required_tokens(&mut a, "msg=\"Connection Refused\" code="),
            ["code", "connection", "refused"]
        );
        assert_eq!(required_tokens(&mut a, "a: Error: b"), ["error"]);
        assert!(required_tokens(&mut a, "").is_empty());
        // Tokens the index drops for length are not required either.
        let long = format!(" {} ", "x".repeat(50));
        assert!(required_tokens(&mut a, &long).is_empty());
    }
}
