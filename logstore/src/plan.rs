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
//! `|=` filters add a `Must` clause on the line tokens the needle guarantees (see
//! [`crate::tokens`]): every token the needle holds whole is required as an exact term; a
//! needle with none requires, for each token at its edges or without separators (a trace id,
//! `"onnect"`), one of the dictionary's terms that token fits (a term starting with it, ending
//! with it, or containing it; see [`crate::line_terms`]), or the long-token marker. The
//! clauses only narrow the candidates, since the index cannot express case-sensitive
//! substring matching: the caller re-checks every filter on the stored line. Partitions whose
//! line tokens are in Vigil's own line index ([`LineIndexing::Own`]) get the same rules as one
//! query that reads each segment's file (`line_index/query.rs`).

use crate::line_index::LineTokensQuery;
use crate::line_terms::{Terms, TokenFinder};
use crate::logql::{LineFilter, LineFilterOp};
use crate::schema::{label_term, Fields};
use crate::term_layout::SegmentTerms;
use crate::tokens::{needle_tokens, Fit, LineIndexing, NeedleToken, LONG_TOKEN};
use crate::Error;
use model::{MatchOp, Matcher};
use std::collections::BTreeSet;
use std::ops::Bound;
use tantivy::query::{BooleanQuery, Occur, Query, RangeQuery, TermQuery, TermSetQuery};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::{Searcher, Term};

/// Builds the query selecting the entries of `[start_ns, end_ns)` in streams that satisfy every
/// matcher and whose lines contain the tokens every `|=` needle requires. `None` when no
/// document can match (a matcher that requires a label value no segment holds). `terms`
/// keeps the segments' line terms between queries; without it, needles that need them read
/// them afresh.
#[allow(clippy::too_many_arguments)]
pub(crate) fn entries_query(
    searcher: &Searcher,
    fields: &Fields,
    line: LineIndexing,
    terms: Option<Terms<'_>>,
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
    if let Some(q) = needle_clause(searcher, fields.line, line, terms, line_filters)? {
        clauses.push((Occur::Must, q));
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
        (false, false) => MatcherClause::Require(any_term(terms)),
        (true, true) => MatcherClause::EverythingMatches,
        (true, false) => MatcherClause::Exclude(any_term(terms)),
    })
}

/// Sets of at most this many terms are queried as a union of term queries.
const SMALL_TERM_SET: usize = 16;

/// The documents holding any of `terms`. A `TermSetQuery` builds an automaton of its terms,
/// and tantivy's FST builder starts with a 10,000-entry node registry: for a handful of terms
/// (a needle's expansions, a regex matcher's few values) that setup was two thirds of a
/// selective query's time, where a union of term lookups costs microseconds.
fn any_term(terms: Vec<Term>) -> Box<dyn Query> {
    if terms.len() > SMALL_TERM_SET {
        return Box::new(TermSetQuery::new(terms));
    }
    Box::new(BooleanQuery::new(
        terms
            .into_iter()
            .map(|t| {
                let q: Box<dyn Query> = Box::new(TermQuery::new(t, IndexRecordOption::Basic));
                (Occur::Should, q)
            })
            .collect(),
    ))
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

/// Most dictionary terms one needle token may expand to; a token so common narrows nothing
/// worth a term set that large, so the needle then adds no clause.
pub(crate) const MAX_EXPANSION: usize = 65_536;

/// The clause the `|=` needles of `filters` add, `None` when they prove nothing about tokens.
///
/// Whole tokens are exact terms and cost one lookup each, so when any needle has one, they
/// alone are required. Otherwise every token a needle holds at an edge or without separators
/// is expanded to the dictionary terms it fits ([`expand`]), and a line must hold a term of
/// each set: which token narrows most is only known from the dictionary (`err` in
/// `"level=err"` fits far fewer terms than `level`), and each expansion costs a range read or
/// one pass over the cached terms. Only [`LineIndexing::Marked`] and [`LineIndexing::Own`]
/// partitions can do this soundly, since a legacy index dropped long tokens instead of
/// marking them.
fn needle_clause(
    searcher: &Searcher,
    line_field: Field,
    line: LineIndexing,
    cache: Option<Terms<'_>>,
    filters: &[LineFilter],
) -> Result<Option<Box<dyn Query>>, Error> {
    let mut analyzer = line.analyzer();
    let mut whole = BTreeSet::new();
    let mut edges: BTreeSet<(String, Fit)> = BTreeSet::new();
    for lf in filters {
        // An `ip()` pattern is not text of the line: it cannot narrow by tokens.
        if lf.op() != LineFilterOp::Contains || lf.is_ip() {
            continue;
        }
        for t in needle_tokens(&mut analyzer, lf.pattern()) {
            if t.fit == Fit::Whole {
                whole.insert(t.text);
            } else if line != LineIndexing::Legacy {
                edges.insert((t.text, t.fit));
            }
        }
    }
    if line == LineIndexing::Own {
        let edges = edges
            .into_iter()
            .map(|(text, fit)| NeedleToken { text, fit })
            .collect();
        return Ok(LineTokensQuery::new(whole.into_iter().collect(), edges)
            .map(|q| -> Box<dyn Query> { Box::new(q) }));
    }
    let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
    if !whole.is_empty() {
        for t in &whole {
            let term = Term::from_field_text(line_field, t);
            clauses.push((
                Occur::Must,
                Box::new(TermQuery::new(term, IndexRecordOption::Basic)),
            ));
        }
        return Ok(Some(Box::new(BooleanQuery::new(clauses))));
    }
    for (text, fit) in edges {
        let token = NeedleToken { text, fit };
        if let Some(terms) = expand(searcher, line_field, cache, &token)? {
            clauses.push((
                Occur::Must,
                any_term(
                    terms
                        .iter()
                        .map(|t| Term::from_field_text(line_field, t))
                        .collect(),
                ),
            ));
        }
    }
    Ok((!clauses.is_empty()).then(|| {
        let q: Box<dyn Query> = Box::new(BooleanQuery::new(clauses));
        q
    }))
}

/// The dictionary terms (over all segments) that `token` fits, plus [`LONG_TOKEN`] (a long
/// line token was indexed as the marker, whatever it held). `None` past [`MAX_EXPANSION`]
/// terms, or when a segment's terms are not in `cache` and it has no room for them.
fn expand(
    searcher: &Searcher,
    line_field: Field,
    cache: Option<Terms<'_>>,
    token: &NeedleToken,
) -> Result<Option<BTreeSet<String>>, Error> {
    let mut terms = BTreeSet::from([LONG_TOKEN.to_string()]);
    if token.text == LONG_TOKEN {
        return Ok(Some(terms));
    }
    if token.fit == Fit::Prefix {
        return expand_prefix(searcher, line_field, &token.text, terms);
    }
    let finder = TokenFinder::new(&token.text, token.fit)?;
    let mut bad_utf8 = false;
    let live: Vec<_> = searcher
        .segment_readers()
        .iter()
        .map(|s| s.segment_id())
        .collect();
    for segment in searcher.segment_readers() {
        let segment_terms = match cache {
            Some(terms) => match terms.cache.get(segment, line_field, terms.dir, &live)? {
                Some(terms) => terms,
                // Not in memory and no room: walking the dictionary for every query would
                // cost more than the lines this token would spare.
                None => return Ok(None),
            },
            None => std::sync::Arc::new(SegmentTerms::read(segment, line_field)?),
        };
        finder.each_fitting(&segment_terms, |_, key| match std::str::from_utf8(key) {
            Ok(key) => {
                terms.insert(key.to_string());
                terms.len() <= MAX_EXPANSION
            }
            Err(_) => {
                bad_utf8 = true;
                false
            }
        });
        if bad_utf8 {
            return Err(Error::Index("line term is not UTF-8".to_string()));
        }
        if terms.len() > MAX_EXPANSION {
            return Ok(None);
        }
    }
    Ok(Some(terms))
}

/// [`expand`] for a prefix: the terms starting with it are one contiguous run of each sorted
/// dictionary, read straight from tantivy's.
fn expand_prefix(
    searcher: &Searcher,
    line_field: Field,
    prefix: &str,
    mut terms: BTreeSet<String>,
) -> Result<Option<BTreeSet<String>>, Error> {
    let prefix = prefix.as_bytes();
    for segment in searcher.segment_readers() {
        let inverted = segment.inverted_index(line_field)?;
        let mut stream = inverted.terms().range().ge(prefix).into_stream()?;
        while stream.advance() && stream.key().starts_with(prefix) {
            let key = std::str::from_utf8(stream.key())
                .map_err(|_| Error::Index("line term is not UTF-8".to_string()))?;
            terms.insert(key.to_string());
            if terms.len() > MAX_EXPANSION {
                return Ok(None);
            }
        }
    }
    Ok(Some(terms))
}
