//! Finding the `line` terms a needle token sits inside, for `|=` needles with no whole token
//! (a trace id, `"onnect"`, `"e4736Y "`).
//!
//! Such a token is a substring, a suffix or a prefix of the line token that holds it
//! ([`Fit`]), so no single term lookup finds it: every term of the dictionary is a candidate.
//! Streaming tantivy's FST for each query costs a decode per term (tens of nanoseconds, and a
//! segment holds hundreds of thousands of near-unique tokens). Instead, the terms of a segment
//! are laid out once as one text, `\0term\0term\0…\0` ([`SegmentTerms`], `term_layout.rs`),
//! and a needle token becomes a literal search over it: `t` for a substring, `t\0` for a
//! suffix, `\0t` for a prefix. A literal search runs at memory speed (the `regex` crate's SIMD
//! substring search).
//!
//! The text is ordered by term length, then by ordinal (so each length's terms are sorted). A
//! term holding a token of `n` bytes is either the token itself — found by a binary search
//! among the terms of length `n` — or longer, so the literal search reads only the terms
//! longer than the token. That is what makes a trace id fast: its length's terms (every other
//! trace id of the segment) are most of the text, and the longer ones are few.
//!
//! Segments never change once written, so a segment's layout is built once, on the first
//! query that needs it, and written beside the partition (`<partition>/terms/<segment>.vlt`);
//! later queries, and later runs, map that file. The [`TermCache`] keeps the layouts in use,
//! by segment id: a mapped one costs no heap (the kernel pages it), and is dropped once unread
//! for [`IDLE_EVICTION`]; files of segments merged away are deleted when the next file is
//! written. When a file cannot be written (a full or read-only disk), the layout stays on the
//! heap within a byte budget: once it is reached, heap entries unread for [`IDLE_EVICTION`]
//! make way for new ones, and while there are none a segment that does not fit is not read at
//! all and its needles narrow nothing — walking its dictionary on every query costs more (a
//! few hundred nanoseconds a term) than reading the lines the needle would have spared.
//! (Evicting the least recently used instead would thrash when the segments every query reads
//! do not all fit: each would push out the next one needed.) Line terms never contain
//! `\0` (tokens are alphanumeric, the long-token marker is `\u{1}long`), so a match never spans
//! two terms.

use crate::term_layout::{SegmentTerms, TMP_SUFFIX};
use crate::tokens::Fit;
use crate::Error;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tantivy::index::SegmentId;
use tantivy::schema::Field;
use tantivy::SegmentReader;

/// The default heap budget of a store's [`TermCache`], for layouts that could not be written
/// to disk: about what the terms of 2 GiB of container logs take (their near-unique tokens
/// dominate).
pub(crate) const DEFAULT_TERM_CACHE_BYTES: usize = 256 << 20;

/// The directory of a partition's layout files, inside the partition's directory.
pub(crate) const TERMS_DIR: &str = "terms";

/// Where a query finds segment layouts: the store's cache, and the partition's layout files.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Terms<'a> {
    pub cache: &'a TermCache,
    /// The partition's [`TERMS_DIR`]; none keeps layouts on the heap only.
    pub dir: Option<&'a Path>,
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

    /// Calls `found` with every term of `terms` that the token fits as its [`Fit`] says
    /// (its index in the layout, and its bytes), each once; stops early when `found` returns
    /// false.
    pub fn each_fitting(&self, terms: &SegmentTerms, mut found: impl FnMut(usize, &[u8]) -> bool) {
        let len = self.token.len();
        // A term of the token's length fits only by being the token.
        let (mut lo, mut hi) = (terms.first_of_len(len), terms.first_of_len(len + 1));
        let longer = hi;
        // Terms of one length are in byte order.
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match terms.term(mid).cmp(self.token.as_slice()) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => {
                    if !found(mid, terms.term(mid)) {
                        return;
                    }
                    break;
                }
            }
        }
        let Some(pattern) = &self.pattern else {
            return;
        };
        // Longer terms: the literal search over their text, from the separator before them.
        let Some(mut at) = terms.start(longer).and_then(|s| s.checked_sub(1)) else {
            return;
        };
        let text = terms.text();
        while let Some(m) = pattern.find_at(text, at) {
            // The last byte of the token inside the match names the term holding it.
            let last = m.end() - 1 - usize::from(self.sep_after);
            let Some(i) = terms.term_at(last) else {
                return;
            };
            let term = terms.term(i);
            if !found(i, term) {
                return;
            }
            // On past this term: each term is reported once, and a `\0t` pattern may match
            // at the separator that ends it.
            match terms.start(i) {
                Some(start) => at = start + term.len(),
                None => return,
            }
        }
    }
}

/// A cached layout unread this long is dropped (mapped), or may be evicted to admit another
/// (on the heap).
pub(crate) const IDLE_EVICTION: Duration = Duration::from_secs(60);

/// The [`SegmentTerms`] of recently searched segments; see the module docs.
#[derive(Debug)]
pub(crate) struct TermCache {
    /// For layouts on the heap.
    budget: usize,
    inner: Mutex<CacheInner>,
}

#[derive(Debug, Default)]
struct CacheInner {
    /// Each segment's terms and when they were last read.
    segments: HashMap<SegmentId, (Arc<SegmentTerms>, Instant)>,
    /// Heap bytes of the layouts held.
    bytes: usize,
    /// Segments read once and found too big for the heap room left: not read again until an
    /// eviction makes room.
    refused: HashSet<SegmentId>,
    /// When mapped layouts were last checked for idleness.
    swept: Option<Instant>,
}

impl CacheInner {
    /// Whether `size` more heap bytes fit within `budget`, after evicting idle entries if
    /// needed.
    fn make_room(&mut self, size: usize, budget: usize, now: Instant) -> bool {
        if self.bytes.saturating_add(size) <= budget {
            return true;
        }
        self.evict_idle(now, false);
        self.bytes.saturating_add(size) <= budget
    }

    /// Evicts the entries unread for [`IDLE_EVICTION`], of the heap or, with `mapped`, mapped
    /// ones; whether heap ones went (then the refused segments may fit again).
    fn evict_idle(&mut self, now: Instant, mapped: bool) -> bool {
        let idle: Vec<SegmentId> = self
            .segments
            .iter()
            .filter(|(_, (terms, used))| {
                terms.is_mapped() == mapped && now.saturating_duration_since(*used) >= IDLE_EVICTION
            })
            .map(|(id, _)| *id)
            .collect();
        if idle.is_empty() {
            return false;
        }
        for id in idle {
            if let Some((gone, _)) = self.segments.remove(&id) {
                self.bytes -= gone.heap_bytes();
            }
        }
        if !mapped {
            self.refused.clear();
        }
        !mapped
    }

    /// Drops the mapped layouts unread for [`IDLE_EVICTION`] (a segment merged away is never
    /// read again, and its unlinked file lives as long as its map), at most once a period.
    fn sweep_mapped(&mut self, now: Instant) {
        if self
            .swept
            .is_some_and(|at| now.saturating_duration_since(at) < IDLE_EVICTION)
        {
            return;
        }
        self.swept = Some(now);
        self.evict_idle(now, true);
    }

    fn insert(&mut self, id: SegmentId, terms: Arc<SegmentTerms>, now: Instant) {
        let size = terms.heap_bytes();
        if let Some((old, _)) = self.segments.insert(id, (terms, now)) {
            self.bytes -= old.heap_bytes();
        }
        self.bytes += size;
    }
}

impl TermCache {
    pub fn new(budget: usize) -> TermCache {
        TermCache {
            budget,
            inner: Mutex::default(),
        }
    }

    /// The `line` terms (`field`) of `segment`: cached, mapped from `dir`'s layout file, or
    /// read from the segment (and written to `dir`); `None` when they can only be held on the
    /// heap and there is no room for them. `live` names the searcher's segments, whose files
    /// a new file's writing keeps while deleting the others'.
    pub fn get(
        &self,
        segment: &SegmentReader,
        field: Field,
        dir: Option<&Path>,
        live: &[SegmentId],
    ) -> Result<Option<Arc<SegmentTerms>>, Error> {
        self.get_at(segment, field, dir, live, Instant::now())
    }

    fn get_at(
        &self,
        segment: &SegmentReader,
        field: Field,
        dir: Option<&Path>,
        live: &[SegmentId],
        now: Instant,
    ) -> Result<Option<Arc<SegmentTerms>>, Error> {
        let id = segment.segment_id();
        {
            let mut inner = self.lock();
            inner.sweep_mapped(now);
            if let Some((terms, used)) = inner.segments.get_mut(&id) {
                *used = now;
                return Ok(Some(terms.clone()));
            }
        }
        let path = dir.map(|d| d.join(format!("{}.vlt", id.uuid_string())));
        if let Some(terms) = path.as_deref().and_then(SegmentTerms::load) {
            let terms = Arc::new(terms);
            self.lock().insert(id, terms.clone(), now);
            return Ok(Some(terms));
        }
        if path.is_none() {
            let mut inner = self.lock();
            if inner.refused.contains(&id) && !inner.evict_idle(now, false) {
                return Ok(None);
            }
            // Each term takes at least its separator and its start: no room for that, no
            // read.
            let floor = segment
                .inverted_index(field)?
                .terms()
                .num_terms()
                .saturating_mul(5);
            if !inner.make_room(floor, self.budget, now) {
                return Ok(None);
            }
        }
        // Read without the lock: other queries keep using the cache meanwhile. Two queries
        // reading the same new segment at once both read it; one copy is kept.
        let mut terms = SegmentTerms::read(segment, field)?;
        if let (Some(path), Some(dir)) = (&path, dir) {
            match terms.persist(path) {
                Ok(mapped) => {
                    terms = mapped;
                    remove_dead_files(dir, live);
                }
                Err((heap, error)) => {
                    tracing::warn!(path = %path.display(), %error, "cannot write a line term layout file; keeping the layout in memory");
                    terms = heap;
                }
            }
        }
        let terms = Arc::new(terms);
        let mut inner = self.lock();
        if terms.is_mapped() || inner.make_room(terms.heap_bytes(), self.budget, now) {
            inner.insert(id, terms.clone(), now);
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

/// Deletes the files in `dir` that are not the layout of a `live` segment: layouts of
/// segments merged away, and temporary files a crash left (an hour old: a younger one may be
/// another query's layout on its way into place).
fn remove_dead_files(dir: &Path, live: &[SegmentId]) {
    const ABANDONED: Duration = Duration::from_secs(3600);
    let keep: HashSet<String> = live
        .iter()
        .map(|id| format!("{}.vlt", id.uuid_string()))
        .collect();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        let dead = if name.ends_with(TMP_SUFFIX) {
            entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age >= ABANDONED)
        } else {
            !keep.contains(name)
        };
        if dead {
            if let Err(error) = std::fs::remove_file(entry.path()) {
                tracing::debug!(path = %entry.path().display(), %error, "cannot remove a dead line term layout file");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::term_layout::tests::layout as terms;

    /// The terms `token` fits, sorted, after checking each was reported once.
    fn fitting(t: &SegmentTerms, token: &str, fit: Fit) -> Vec<String> {
        let finder = TokenFinder::new(token, fit).unwrap();
        let mut out = Vec::new();
        finder.each_fitting(t, |_, term| {
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
        finder.each_fitting(&t, |_, _| {
            seen += 1;
            seen < 2
        });
        assert_eq!(seen, 2);
    }

    /// Two segments of one line each in a RAM index of tantivy line terms (the layout these
    /// cached layouts serve), and the field of their line terms.
    fn two_segments() -> (tantivy::Searcher, Field) {
        use crate::schema::{Fields, Layout};
        let index = tantivy::Index::create_in_ram(Fields::schema_for(Layout::V3));
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
        assert_eq!(searcher.segment_readers().len(), 2);
        (searcher, fields.line)
    }

    #[test]
    fn the_cache_reads_each_segment_once_and_keeps_to_its_heap_budget() {
        let (searcher, line) = two_segments();
        let segments = searcher.segment_readers();
        let get = |cache: &TermCache, i: usize, t: Instant| {
            cache
                .get_at(&segments[i], line, None, &[], t)
                .unwrap()
                .map(|terms| fitting(&terms, "a", Fit::Within))
        };
        let t0 = Instant::now();
        let roomy = TermCache::new(1 << 20);
        let a = get(&roomy, 0, t0).unwrap();
        let b = get(&roomy, 1, t0).unwrap();
        assert!(a == ["alpha", "beta"] || a == ["gamma"], "{a:?}");
        assert_ne!(a, b);
        let once = roomy.get(&segments[0], line, None, &[]).unwrap().unwrap();
        let twice = roomy.get(&segments[0], line, None, &[]).unwrap().unwrap();
        assert!(Arc::ptr_eq(&once, &twice), "read once, then shared");
        assert_eq!(roomy.len(), 2);
        // Room for one segment: while the first is in use the second is not even read (its
        // needles will not narrow); once the first has been idle long enough it makes way.
        let one = terms(&["alpha", "beta"])
            .heap_bytes()
            .max(terms(&["gamma"]).heap_bytes());
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

    #[test]
    fn layouts_are_written_once_mapped_after_and_dead_files_removed() {
        let (searcher, line) = two_segments();
        let segments = searcher.segment_readers();
        let live: Vec<SegmentId> = segments.iter().map(|s| s.segment_id()).collect();
        let dir = tempfile::tempdir().unwrap();
        let terms_dir = dir.path().join(TERMS_DIR);
        std::fs::create_dir_all(&terms_dir).unwrap();
        std::fs::write(terms_dir.join("0123.vlt"), b"a merged-away segment's").unwrap();
        std::fs::write(terms_dir.join("x.vlt.1-0.tmp"), b"a crash's").unwrap();
        std::fs::File::options()
            .write(true)
            .open(terms_dir.join("x.vlt.1-0.tmp"))
            .unwrap()
            .set_modified(std::time::SystemTime::now() - Duration::from_secs(7200))
            .unwrap();
        std::fs::write(
            terms_dir.join("y.vlt.2-0.tmp"),
            b"another query's, being written",
        )
        .unwrap();
        let files = || {
            let mut names: Vec<String> = std::fs::read_dir(&terms_dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            names.sort();
            names
        };
        let t0 = Instant::now();
        // Segment `i`'s layout through `cache` at time `t`.
        let read = |cache: &TermCache, i: usize, t: Instant| {
            cache
                .get_at(&segments[i], line, Some(&terms_dir), &live, t)
                .unwrap()
                .unwrap()
        };
        // A budget of nothing: mapped layouts do not count against it.
        let cache = TermCache::new(0);
        let first = read(&cache, 0, t0);
        assert!(first.is_mapped());
        let name = |i: usize| format!("{}.vlt", live[i].uuid_string());
        assert_eq!(
            files(),
            [name(0), "y.vlt.2-0.tmp".to_string()],
            "written; the dead files removed, a young temporary one kept"
        );
        std::fs::remove_file(terms_dir.join("y.vlt.2-0.tmp")).unwrap();
        // A new cache (a restart) maps the file instead of reading the segment: a file
        // changed on disk shows (here, to the other segment's layout, with other terms).
        let second = read(&cache, 1, t0);
        let other_terms = fitting(&second, "a", Fit::Within);
        // Replaced as the store replaces files, by a rename: the maps in use keep theirs.
        let replace = |with: &[u8]| {
            let tmp = terms_dir.join("replacement");
            std::fs::write(&tmp, with).unwrap();
            std::fs::rename(&tmp, terms_dir.join(name(0))).unwrap();
        };
        replace(&std::fs::read(terms_dir.join(name(1))).unwrap());
        let restarted = TermCache::new(0);
        let again = read(&restarted, 0, t0);
        assert_eq!(fitting(&again, "a", Fit::Within), other_terms);
        // A damaged file is built again from the segment.
        replace(b"VLTX damaged");
        let rebuilt = read(&TermCache::new(0), 0, t0);
        assert_eq!(
            fitting(&rebuilt, "a", Fit::Within),
            fitting(&first, "a", Fit::Within)
        );
        // Mapped layouts unread for a while are dropped.
        assert_eq!(cache.len(), 2);
        read(&cache, 1, t0 + IDLE_EVICTION / 2);
        read(&cache, 1, t0 + IDLE_EVICTION);
        assert_eq!(cache.len(), 1, "the one read since stays");
    }
}
