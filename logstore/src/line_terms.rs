//! Finding the `line` terms a needle token sits inside, for `|=` needles with no whole token
//! (a trace id, `"onnect"`, `"e4736Y "`).
//!
//! Such a token is a substring, a suffix or a prefix of the line token that holds it
//! ([`Fit`]), so no single term lookup finds it: every term of the dictionary is a candidate.
//! Streaming tantivy's FST for each query costs a decode per term (tens of nanoseconds, and a
//! segment holds hundreds of thousands of near-unique tokens). Instead, the terms of a segment
//! are laid out once as one text, `\0term\0term\0…\0` ([`SegmentTerms`]), and a needle token
//! becomes a literal search over it: `t` for a substring, `t\0` for a suffix, `\0t` for a
//! prefix. A literal search runs at memory speed (the `regex` crate's SIMD substring search).
//!
//! The text is ordered by term length, then by ordinal (so each length's terms are sorted). A
//! term holding a token of `n` bytes is either the token itself — found by a binary search
//! among the terms of length `n` — or longer, so the literal search reads only the terms
//! longer than the token. That is what makes a trace id fast: its length's terms (every other
//! trace id of the segment) are most of the text, and the longer ones are few.
//!
//! Segments never change once written, so the text of a segment is kept in a [`TermCache`]
//! keyed by its id, up to a byte budget. A segment merged away or deleted by retention simply
//! stops being asked for; once the budget is reached, entries unread for [`IDLE_EVICTION`]
//! make way for new ones. While there are none, a segment that does not fit is not read at
//! all and its needles narrow nothing: walking its dictionary on every query costs more (a
//! few hundred nanoseconds a term) than reading the lines the needle would have spared.
//! (Evicting the least recently used instead would thrash when the segments every query reads
//! do not all fit: each would push out the next one needed.) Line terms never contain
//! `\0` (tokens are alphanumeric, the long-token marker is `\u{1}long`), so a match never spans
//! two terms.

use crate::tokens::Fit;
use crate::Error;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tantivy::index::SegmentId;
use tantivy::schema::Field;
use tantivy::SegmentReader;

/// Separates terms in a [`SegmentTerms`] text.
const SEP: u8 = 0;

/// The default budget of a store's [`TermCache`]: about what the terms of 2 GiB of container
/// logs take (their near-unique tokens dominate).
pub(crate) const DEFAULT_TERM_CACHE_BYTES: usize = 256 << 20;

/// The `line` terms of one segment as one searchable text.
#[derive(Debug)]
pub(crate) struct SegmentTerms {
    /// `\0`, then every term followed by `\0`, by length, then in term ordinal order.
    text: Vec<u8>,
    /// Where each term starts in `text`.
    starts: Vec<u32>,
    /// `by_len[n]`: the index in `starts` of the first term of `n` bytes or more, for `n` up
    /// to one past the longest term.
    by_len: Vec<u32>,
}

impl SegmentTerms {
    /// Reads every term of `field` in `segment`.
    pub fn read(segment: &SegmentReader, field: Field) -> Result<SegmentTerms, Error> {
        let inverted = segment.inverted_index(field)?;
        let dict = inverted.terms();
        // In ordinal order first: the terms' bytes back to back and where each ends.
        let mut all = Vec::new();
        let mut ends = Vec::with_capacity(dict.num_terms());
        let mut stream = dict.stream()?;
        while stream.advance() {
            all.extend_from_slice(stream.key());
            ends.push(all.len());
        }
        SegmentTerms::from_sorted(&all, &ends)
    }

    /// Lays out the terms `all[ends[i - 1]..ends[i]]`, given in ordinal (byte) order.
    fn from_sorted(all: &[u8], ends: &[usize]) -> Result<Self, Error> {
        let too_big = || Error::Index("a segment's line terms exceed 4 GiB".into());
        let span = |i: usize| (if i == 0 { 0 } else { ends[i - 1] })..ends[i];
        // Counting sort by length keeps each length's terms in ordinal order.
        let mut count: Vec<u32> = Vec::new();
        for i in 0..ends.len() {
            let len = span(i).len();
            if count.len() <= len {
                count.resize(len + 1, 0);
            }
            count[len] += 1;
        }
        let mut by_len = Vec::with_capacity(count.len() + 1);
        let mut first = 0u32;
        for c in &count {
            by_len.push(first);
            first += c;
        }
        by_len.push(first);
        let mut next = by_len.clone();
        let mut order = vec![0usize; ends.len()];
        for i in 0..ends.len() {
            let slot = &mut next[span(i).len()];
            order[*slot as usize] = i;
            *slot += 1;
        }
        let mut text = Vec::with_capacity(all.len() + ends.len() + 1);
        text.push(SEP);
        let mut starts = Vec::with_capacity(ends.len());
        for i in order {
            starts.push(u32::try_from(text.len()).map_err(|_| too_big())?);
            text.extend_from_slice(&all[span(i)]);
            text.push(SEP);
        }
        u32::try_from(text.len()).map_err(|_| too_big())?;
        Ok(SegmentTerms {
            text,
            starts,
            by_len,
        })
    }

    /// Memory held, for the cache's budget.
    fn bytes(&self) -> usize {
        self.text.len() + 4 * (self.starts.len() + self.by_len.len())
    }

    /// The term at index `i` of `starts`.
    fn term(&self, i: usize) -> &[u8] {
        let start = self.starts[i] as usize;
        let end = self
            .starts
            .get(i + 1)
            .map_or(self.text.len() - 1, |next| *next as usize - 1);
        &self.text[start..end]
    }

    /// The index in `starts` of the first term of `len` bytes or more.
    fn first_of_len(&self, len: usize) -> usize {
        self.by_len
            .get(len)
            .map_or(self.starts.len(), |&i| i as usize)
    }

    /// Calls `found` with every term that `finder`'s token fits as its [`Fit`] says, each
    /// once; stops early when `found` returns false.
    pub fn each_fitting(&self, finder: &TokenFinder, mut found: impl FnMut(&[u8]) -> bool) {
        let len = finder.token.len();
        // A term of the token's length fits only by being the token.
        let (mut lo, mut hi) = (self.first_of_len(len), self.first_of_len(len + 1));
        let longer = hi;
        // Terms of one length are in byte order.
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.term(mid).cmp(finder.token.as_slice()) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => {
                    if !found(self.term(mid)) {
                        return;
                    }
                    break;
                }
            }
        }
        let Some(pattern) = &finder.pattern else {
            return;
        };
        // Longer terms: the literal search over their text, from the separator before them.
        let Some(&first) = self.starts.get(longer) else {
            return;
        };
        let mut at = first as usize - 1;
        while let Some(m) = pattern.find_at(&self.text, at) {
            // The last byte of the token inside the match names the term holding it.
            let last = m.end() - 1 - usize::from(finder.sep_after);
            let i = self.starts.partition_point(|&s| s as usize <= last);
            let Some(i) = i.checked_sub(1) else {
                return;
            };
            let term = self.term(i);
            if !found(term) {
                return;
            }
            // On past this term: each term is reported once, and a `\0t` pattern may match
            // at the separator that ends it.
            at = self.starts[i] as usize + term.len();
        }
    }
}

/// A needle token compiled to the literal search for the terms it fits.
#[derive(Debug)]
pub(crate) struct TokenFinder {
    /// The token, lowercased as indexed.
    token: Vec<u8>,
    /// The search over longer terms; none for [`Fit::Whole`], which only the token fits.
    pattern: Option<regex::bytes::Regex>,
    sep_after: bool,
}

impl TokenFinder {
    /// The finder for the terms that `token` (lowercased, as indexed) fits as `fit`.
    pub fn new(token: &str, fit: Fit) -> Result<TokenFinder, Error> {
        let (before, after) = match fit {
            Fit::Within => (false, false),
            Fit::Suffix => (false, true),
            Fit::Prefix => (true, false),
            Fit::Whole => (true, true),
        };
        let sep = "\\x00";
        let pattern = format!(
            "{}{}{}",
            if before { sep } else { "" },
            regex::escape(token),
            if after { sep } else { "" }
        );
        let pattern = if fit == Fit::Whole {
            None
        } else {
            Some(
                regex::bytes::Regex::new(&pattern)
                    .map_err(|e| Error::Index(format!("needle token search: {e}")))?,
            )
        };
        Ok(TokenFinder {
            token: token.as_bytes().to_vec(),
            pattern,
            sep_after: after,
        })
    }
}

/// A cached segment unread this long may be evicted to admit another.
pub(crate) const IDLE_EVICTION: Duration = Duration::from_secs(60);

/// The [`SegmentTerms`] of recently searched segments, within a byte budget.
#[derive(Debug)]
pub(crate) struct TermCache {
    budget: usize,
    inner: Mutex<CacheInner>,
}

#[derive(Debug, Default)]
struct CacheInner {
    /// Each segment's terms and when they were last read.
    segments: HashMap<SegmentId, (Arc<SegmentTerms>, Instant)>,
    bytes: usize,
    /// Segments read once and found too big for the room left: not read again until an
    /// eviction makes room.
    refused: HashSet<SegmentId>,
}

impl CacheInner {
    /// Whether `size` more bytes fit within `budget`, after evicting idle entries if needed.
    fn make_room(&mut self, size: usize, budget: usize, now: Instant) -> bool {
        if self.bytes.saturating_add(size) <= budget {
            return true;
        }
        self.evict_idle(now);
        self.bytes.saturating_add(size) <= budget
    }

    /// Evicts the entries unread for [`IDLE_EVICTION`]; whether there were any (then the
    /// refused segments may fit again).
    fn evict_idle(&mut self, now: Instant) -> bool {
        let idle: Vec<SegmentId> = self
            .segments
            .iter()
            .filter(|(_, (_, used))| now.saturating_duration_since(*used) >= IDLE_EVICTION)
            .map(|(id, _)| *id)
            .collect();
        if idle.is_empty() {
            return false;
        }
        self.refused.clear();
        for id in idle {
            if let Some((gone, _)) = self.segments.remove(&id) {
                self.bytes -= gone.bytes();
            }
        }
        true
    }
}

impl TermCache {
    pub fn new(budget: usize) -> TermCache {
        TermCache {
            budget,
            inner: Mutex::default(),
        }
    }

    /// The `line` terms (`field`) of `segment`, read on first use; `None` when they are not
    /// in memory and there is no room for them.
    pub fn get(
        &self,
        segment: &SegmentReader,
        field: Field,
    ) -> Result<Option<Arc<SegmentTerms>>, Error> {
        self.get_at(segment, field, Instant::now())
    }

    fn get_at(
        &self,
        segment: &SegmentReader,
        field: Field,
        now: Instant,
    ) -> Result<Option<Arc<SegmentTerms>>, Error> {
        let id = segment.segment_id();
        {
            let mut inner = self.lock();
            if let Some((terms, used)) = inner.segments.get_mut(&id) {
                *used = now;
                return Ok(Some(terms.clone()));
            }
            if inner.refused.contains(&id) && !inner.evict_idle(now) {
                return Ok(None);
            }
        }
        // Each term takes at least its separator and its start: no room for that, no read.
        let floor = segment
            .inverted_index(field)?
            .terms()
            .num_terms()
            .saturating_mul(5);
        if !self.lock().make_room(floor, self.budget, now) {
            return Ok(None);
        }
        // Read without the lock: other queries keep using the cache meanwhile. Two queries
        // reading the same new segment at once both read it; one copy is kept.
        let terms = Arc::new(SegmentTerms::read(segment, field)?);
        let size = terms.bytes();
        let mut inner = self.lock();
        if inner.make_room(size, self.budget, now) {
            if let Some((old, _)) = inner.segments.insert(id, (terms.clone(), now)) {
                inner.bytes -= old.bytes();
            }
            inner.bytes += size;
        } else {
            inner.refused.insert(id);
        }
        Ok(Some(terms))
    }

    /// Segments cached now (tests read it).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().segments.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheInner> {
        // Every update leaves the map and its byte count consistent, so a panic elsewhere
        // while the lock was held leaves nothing half-done.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The layout of `list`, a sorted dictionary.
    fn terms(list: &[&str]) -> SegmentTerms {
        let mut all = Vec::new();
        let mut ends = Vec::new();
        for t in list {
            all.extend_from_slice(t.as_bytes());
            ends.push(all.len());
        }
        SegmentTerms::from_sorted(&all, &ends).unwrap()
    }

    /// The terms `token` fits, sorted, after checking each was reported once.
    fn fitting(t: &SegmentTerms, token: &str, fit: Fit) -> Vec<String> {
        let finder = TokenFinder::new(token, fit).unwrap();
        let mut out = Vec::new();
        t.each_fitting(&finder, |term| {
            out.push(String::from_utf8(term.to_vec()).unwrap());
            true
        });
        let n = out.len();
        out.sort();
        out.dedup();
        assert_eq!(out.len(), n, "{token:?} {fit:?}: a term reported twice");
        out
    }

    #[test]
    fn each_fit_finds_exactly_the_terms_it_allows() {
        let t = terms(&[
            "\u{1}long",
            "aaaa",
            "connect",
            "connection",
            "onnect",
            "preconnect",
            "x4bf92fy",
        ]);
        assert_eq!(
            fitting(&t, "onnect", Fit::Within),
            ["connect", "connection", "onnect", "preconnect"]
        );
        assert_eq!(
            fitting(&t, "onnect", Fit::Suffix),
            ["connect", "onnect", "preconnect"]
        );
        assert_eq!(
            fitting(&t, "connect", Fit::Prefix),
            ["connect", "connection"]
        );
        assert_eq!(fitting(&t, "connect", Fit::Whole), ["connect"]);
        assert_eq!(fitting(&t, "4bf92", Fit::Within), ["x4bf92fy"]);
        // A term matching many times is reported once; first and last terms are reachable.
        assert_eq!(fitting(&t, "aa", Fit::Within), ["aaaa"]);
        assert_eq!(fitting(&t, "long", Fit::Suffix), ["\u{1}long"]);
        assert_eq!(fitting(&t, "x4bf92fy", Fit::Whole), ["x4bf92fy"]);
        assert!(fitting(&t, "zz", Fit::Within).is_empty());
        assert!(fitting(&terms(&[]), "a", Fit::Within).is_empty());
    }

    #[test]
    fn every_fit_equals_a_naive_scan_over_generated_dictionaries() {
        let mut rng = fastrand::Rng::with_seed(7);
        let word = |rng: &mut fastrand::Rng, max: usize| -> String {
            (0..rng.usize(1..=max))
                .map(|_| ['a', 'b', 'c'][rng.usize(..3)])
                .collect()
        };
        for _ in 0..300 {
            let mut list: Vec<String> = (0..rng.usize(0..40)).map(|_| word(&mut rng, 7)).collect();
            list.sort();
            list.dedup();
            let refs: Vec<&str> = list.iter().map(String::as_str).collect();
            let t = terms(&refs);
            for _ in 0..10 {
                let token = word(&mut rng, 4);
                for fit in [Fit::Whole, Fit::Prefix, Fit::Suffix, Fit::Within] {
                    let want: Vec<String> = list
                        .iter()
                        .filter(|term| match fit {
                            Fit::Whole => **term == token,
                            Fit::Prefix => term.starts_with(&token),
                            Fit::Suffix => term.ends_with(&token),
                            Fit::Within => term.contains(&token),
                        })
                        .cloned()
                        .collect();
                    assert_eq!(
                        fitting(&t, &token, fit),
                        want,
                        "{token:?} {fit:?} in {list:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_search_stops_when_told() {
        let t = terms(&["ab", "abc", "abcd", "xabx"]);
        let finder = TokenFinder::new("ab", Fit::Within).unwrap();
        let mut seen = 0;
        t.each_fitting(&finder, |_| {
            seen += 1;
            seen < 2
        });
        assert_eq!(seen, 2);
    }

    #[test]
    fn the_cache_reads_each_segment_once_and_keeps_to_its_budget() {
        use crate::schema::Fields;
        let index = tantivy::Index::create_in_ram(Fields::schema());
        index.tokenizers().register(
            crate::tokens::LINE_TOKENIZER,
            crate::tokens::line_analyzer(),
        );
        let fields = Fields::from_schema(&index.schema()).unwrap();
        let mut writer: tantivy::IndexWriter<tantivy::TantivyDocument> =
            index.writer_with_num_threads(1, 15_000_000).unwrap();
        for (ts, line) in [(1, "alpha Beta"), (2, "gamma")] {
            let entry = model::LogEntry {
                ts_ns: ts,
                line: line.into(),
                metadata: Vec::new(),
            };
            writer
                .add_document(fields.document("{}", &[], &entry, 0).unwrap())
                .unwrap();
            writer.commit().unwrap(); // one segment per line
        }
        let searcher = index.reader().unwrap().searcher();
        let segments = searcher.segment_readers();
        assert_eq!(segments.len(), 2);
        let get = |cache: &TermCache, i: usize, t: Instant| {
            cache
                .get_at(&segments[i], fields.line, t)
                .unwrap()
                .map(|terms| fitting(&terms, "a", Fit::Within))
        };
        let t0 = Instant::now();
        let roomy = TermCache::new(1 << 20);
        let a = get(&roomy, 0, t0).unwrap();
        let b = get(&roomy, 1, t0).unwrap();
        assert!(a == ["alpha", "beta"] || a == ["gamma"], "{a:?}");
        assert_ne!(a, b);
        let once = roomy.get(&segments[0], fields.line).unwrap().unwrap();
        let twice = roomy.get(&segments[0], fields.line).unwrap().unwrap();
        assert!(Arc::ptr_eq(&once, &twice), "read once, then shared");
        assert_eq!(roomy.len(), 2);
        // Room for one segment: while the first is in use the second is not even read (its
        // needles will not narrow); once the first has been idle long enough it makes way.
        let one = terms(&["alpha", "beta"])
            .bytes()
            .max(terms(&["gamma"]).bytes());
        let tight = TermCache::new(one);
        assert_eq!(get(&tight, 0, t0).as_ref(), Some(&a));
        assert_eq!(get(&tight, 1, t0), None);
        assert_eq!(get(&tight, 0, t0 + IDLE_EVICTION / 2).as_ref(), Some(&a));
        assert_eq!(
            get(&tight, 1, t0 + IDLE_EVICTION),
            None,
            "the first was read since"
        );
        let later = t0 + IDLE_EVICTION / 2 + IDLE_EVICTION;
        assert_eq!(get(&tight, 1, later).as_ref(), Some(&b));
        assert_eq!(tight.len(), 1);
        // No room at all: never read.
        let none = TermCache::new(0);
        assert_eq!(get(&none, 0, t0), None);
        assert_eq!(none.len(), 0);
    }
}
