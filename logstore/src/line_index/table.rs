//! The tokens of the segment being written and their documents, in the form indexing them
//! costs least: every token of every line passes through here.
//!
//! Tokens are numbered as they first appear; their bytes sit back to back in one arena and an
//! open-addressing table of 16-byte slots maps a token's key to its number and to the last
//! document it was seen in. A token of at most 8 ASCII bytes (most words and numbers) is its
//! own key — its bytes as a number — so finding it reads its slot and nothing else; a longer
//! one is keyed by its XXH64 (top bit set, which no ASCII key has) and compared in the arena.
//! The postings are not kept per token while the segment is written: each document appends
//! the numbers of its distinct tokens to one list, and [`TokenTable::postings`] sorts that
//! list by token once, when the segment is written. (Lists per token cost an allocation for
//! every token seen twice and a cache miss for every posting; with the byte keys above, this
//! took the grep bench at 256 MiB from 18.7 / 16.8 / 18.8 to 23.6 / 19.4 / 22.9 MiB/s per core.)
//!
//! Lines made only of ASCII are split and lowercased here in one pass, exactly as the line
//! analyzer does (`tokens.rs`: alphanumeric runs, lowercased, 40 bytes or more marked as
//! [`LONG_TOKEN`]); any other line goes through the analyzer itself.

use super::layout_key;
use crate::tokens::{LONG_TOKEN, LONG_TOKEN_BYTES};
use model::xxh64;
use tantivy::tokenizer::TextAnalyzer;
use tantivy::DocId;

/// A slot of the table. `num` is the token number + 1, 0 for an empty slot.
#[derive(Clone, Copy, Default)]
struct Slot {
    key: u64,
    num: u32,
    /// The last document the token was added for.
    last: DocId,
}

/// Keys of tokens that are not their own bytes carry this bit.
const HASHED: u64 = 1 << 63;
/// Fibonacci hashing's multiplier (2^64 / φ): spreads a key's bits into the slot index.
const SPREAD: u64 = 0x9e37_79b9_7f4a_7c15;

/// A token's key: its bytes as a little-endian number when it has at most 8, all ASCII (no
/// zero byte: tokens are alphanumeric runs or the marker); otherwise its hash, marked.
fn key_of(token: &[u8]) -> u64 {
    if token.len() <= 8 && token.is_ascii() {
        let mut b = [0u8; 8];
        b[..token.len()].copy_from_slice(token);
        u64::from_le_bytes(b)
    } else {
        xxh64(token) | HASHED
    }
}

/// One segment's tokens and their postings.
pub(super) struct TokenTable {
    slots: Vec<Slot>,
    /// `64 - log2(slots.len())`: a key's slot is the top bits of its spread.
    shift: u32,
    arena: Vec<u8>,
    /// Each token's `(start, len)` in the arena.
    tokens: Vec<(u32, u32)>,
    /// The distinct tokens of each document, document after document.
    seen: Vec<u32>,
    /// Each document that has tokens, with the end of its run in `seen`.
    runs: Vec<(DocId, u32)>,
    /// The document whose tokens are being added.
    doc: Option<DocId>,
    /// Heap bytes held, for tantivy's memory budget.
    mem: usize,
    /// A token being lowercased.
    scratch: Vec<u8>,
}

/// The documents of every token, grouped by token.
pub(super) struct Postings {
    /// Token `n`'s documents are `docs[starts[n]..starts[n + 1]]`.
    starts: Vec<u32>,
    docs: Vec<DocId>,
}

impl Postings {
    /// Token `n`'s documents, ascending.
    pub fn docs(&self, n: u32) -> &[DocId] {
        &self.docs[self.starts[n as usize] as usize..self.starts[n as usize + 1] as usize]
    }
}

impl TokenTable {
    pub fn new() -> TokenTable {
        const SLOTS: usize = 1 << 12;
        TokenTable {
            slots: vec![Slot::default(); SLOTS],
            shift: 64 - SLOTS.trailing_zeros(),
            arena: Vec::new(),
            tokens: Vec::new(),
            seen: Vec::new(),
            runs: Vec::new(),
            doc: None,
            mem: std::mem::size_of::<Slot>() * SLOTS,
            scratch: Vec::with_capacity(64),
        }
    }

    pub fn mem_usage(&self) -> usize {
        self.mem + 4 * self.seen.len() + 8 * self.runs.len()
    }

    fn bytes(&self, (start, len): (u32, u32)) -> &[u8] {
        &self.arena[start as usize..(start + len) as usize]
    }

    /// Adds `doc` to the postings of `token`; documents come in ascending order.
    pub fn add(&mut self, token: &[u8], doc: DocId) {
        self.add_keyed(key_of(token), token, doc);
    }

    fn add_keyed(&mut self, key: u64, token: &[u8], doc: DocId) {
        if self.doc != Some(doc) {
            self.end_doc();
            self.doc = Some(doc);
        }
        let mask = self.slots.len() - 1;
        let mut i = (key.wrapping_mul(SPREAD) >> self.shift) as usize;
        loop {
            let slot = self.slots[i];
            if slot.num == 0 {
                break;
            }
            if slot.key == key
                && (key & HASHED == 0 || self.bytes(self.tokens[slot.num as usize - 1]) == token)
            {
                // A token repeated in one line counts once.
                if slot.last != doc {
                    self.slots[i].last = doc;
                    self.seen.push(slot.num - 1);
                }
                return;
            }
            i = (i + 1) & mask;
        }
        let n = self.tokens.len() as u32;
        self.slots[i] = Slot {
            key,
            num: n + 1,
            last: doc,
        };
        self.tokens
            .push((self.arena.len() as u32, token.len() as u32));
        self.arena.extend_from_slice(token);
        self.seen.push(n);
        self.mem += token.len() + 8;
        if self.tokens.len() * 2 > self.slots.len() {
            self.grow();
        }
    }

    /// Closes the run of the document being added.
    fn end_doc(&mut self) {
        if let Some(doc) = self.doc.take() {
            self.runs.push((doc, self.seen.len() as u32));
        }
    }

    fn grow(&mut self) {
        let size = self.slots.len() * 2;
        let shift = self.shift - 1;
        let mask = size - 1;
        let mut slots = vec![Slot::default(); size];
        for slot in self.slots.iter().filter(|s| s.num != 0) {
            let mut i = (slot.key.wrapping_mul(SPREAD) >> shift) as usize;
            while slots[i].num != 0 {
                i = (i + 1) & mask;
            }
            slots[i] = *slot;
        }
        self.mem += std::mem::size_of::<Slot>() * (size - self.slots.len());
        self.slots = slots;
        self.shift = shift;
    }

    /// Adds `doc` to the postings of every token of `line`, tokenized as `analyzer` does.
    pub fn index_line(&mut self, analyzer: &mut TextAnalyzer, line: &str, doc: DocId) {
        if !line.is_ascii() {
            analyzer
                .token_stream(line)
                .process(&mut |t| self.add(t.text.as_bytes(), doc));
            return;
        }
        let bytes = line.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if !bytes[i].is_ascii_alphanumeric() {
                i += 1;
                continue;
            }
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_alphanumeric() {
                i += 1;
            }
            let token = &bytes[start..i];
            if token.len() <= 8 {
                // The token's bytes as a number, read as one word where the line has 8 bytes
                // from its start; lowercased as a number: an ASCII letter or digit with bit 5
                // set is its lowercase form (digits have it already).
                let mask = u64::MAX >> (8 * (8 - token.len()));
                let word = match bytes[start..].first_chunk::<8>() {
                    Some(w) => u64::from_le_bytes(*w),
                    None => {
                        let mut b = [0u8; 8];
                        b[..token.len()].copy_from_slice(token);
                        u64::from_le_bytes(b)
                    }
                };
                let lower = (word | 0x2020_2020_2020_2020) & mask;
                self.add_keyed(lower, &lower.to_le_bytes()[..token.len()], doc);
            } else if token.len() >= LONG_TOKEN_BYTES {
                self.add(LONG_TOKEN.as_bytes(), doc);
            } else {
                let mut scratch = std::mem::take(&mut self.scratch);
                scratch.clear();
                scratch.extend(token.iter().map(u8::to_ascii_lowercase));
                self.add_keyed(xxh64(&scratch) | HASHED, &scratch, doc);
                self.scratch = scratch;
            }
        }
    }

    /// The tokens, in layout order (by length, then bytes).
    pub fn sorted(&self) -> Vec<u32> {
        // Sorted by `layout_key`, so most comparisons are of two integers; ties compare the
        // rest.
        let mut keyed: Vec<((usize, u64), u32)> = self
            .tokens
            .iter()
            .enumerate()
            .map(|(n, &t)| (layout_key(self.bytes(t)), n as u32))
            .collect();
        keyed.sort_unstable_by(|a, b| {
            a.0.cmp(&b.0).then_with(|| {
                self.bytes(self.tokens[a.1 as usize])
                    .cmp(self.bytes(self.tokens[b.1 as usize]))
            })
        });
        keyed.into_iter().map(|(_, n)| n).collect()
    }

    /// Token `n`'s bytes.
    pub fn token(&self, n: u32) -> &[u8] {
        self.bytes(self.tokens[n as usize])
    }

    /// Every token's documents: the documents' token lists, counted and scattered by token
    /// (documents stay ascending within each token).
    pub fn postings(&mut self) -> Postings {
        self.end_doc();
        let mut starts = vec![0u32; self.tokens.len() + 1];
        for &n in &self.seen {
            starts[n as usize + 1] += 1;
        }
        for i in 1..starts.len() {
            starts[i] += starts[i - 1];
        }
        let mut next = starts.clone();
        let mut docs = vec![0; self.seen.len()];
        let mut from = 0;
        for &(doc, end) in &self.runs {
            for &n in &self.seen[from..end as usize] {
                docs[next[n as usize] as usize] = doc;
                next[n as usize] += 1;
            }
            from = end as usize;
        }
        Postings { starts, docs }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::line_analyzer;
    use std::collections::BTreeMap;

    /// Token → documents, through the table.
    fn table_of(lines: &[String]) -> BTreeMap<Vec<u8>, Vec<DocId>> {
        let mut t = TokenTable::new();
        let mut analyzer = line_analyzer();
        for (doc, line) in lines.iter().enumerate() {
            t.index_line(&mut analyzer, line, doc as DocId);
        }
        let order = t.sorted();
        let postings = t.postings();
        assert_eq!(order.len(), t.tokens.len());
        // Layout order: by length, then bytes, each token once.
        order.windows(2).for_each(|w| {
            let (a, b) = (t.token(w[0]), t.token(w[1]));
            assert!((a.len(), a) < (b.len(), b), "{a:?} before {b:?}");
        });
        order
            .iter()
            .map(|&n| (t.token(n).to_vec(), postings.docs(n).to_vec()))
            .collect()
    }

    /// Token → documents, through the analyzer.
    fn analyzed(lines: &[String]) -> BTreeMap<Vec<u8>, Vec<DocId>> {
        let mut out: BTreeMap<Vec<u8>, Vec<DocId>> = BTreeMap::new();
        let mut analyzer = line_analyzer();
        for (doc, line) in lines.iter().enumerate() {
            analyzer.token_stream(line).process(&mut |t| {
                let docs = out.entry(t.text.as_bytes().to_vec()).or_default();
                if docs.last() != Some(&(doc as DocId)) {
                    docs.push(doc as DocId);
                }
            });
        }
        out
    }

    #[test]
    fn tokens_and_documents_are_the_analyzers_for_ascii_and_other_lines() {
        let mut rng = fastrand::Rng::with_seed(5);
        let alphabet: Vec<char> = "aZ09 -_=:/.\"{}\t\u{7f}xY".chars().collect();
        let mut lines: Vec<String> = (0..3000)
            .map(|_| {
                (0..rng.usize(0..120))
                    .map(|_| alphabet[rng.usize(..alphabet.len())])
                    .collect()
            })
            .collect();
        lines.push("A".repeat(39));
        lines.push("b".repeat(40));
        lines.push(format!("x {} y", "C9".repeat(30)));
        lines.push("Ünïcode ÉTÉ straße İstanbul ΣΑΣ 東京 x".into());
        lines.push("repeat repeat REPEAT".into());
        assert_eq!(table_of(&lines), analyzed(&lines));
    }

    #[test]
    fn the_table_grows_and_keeps_every_token() {
        let lines: Vec<String> = (0..20_000).map(|i| format!("id{i} common")).collect();
        let got = table_of(&lines);
        assert_eq!(got.len(), 20_001);
        assert_eq!(got[b"common".as_slice()].len(), 20_000);
        assert_eq!(got[b"id777".as_slice()], [777]);
    }
}
