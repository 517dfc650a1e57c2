//! The tokens of the segment being written and their documents, in the form indexing them
//! costs least: every token of every line passes through here.
//!
//! Tokens are numbered as they first appear; their bytes sit back to back in one arena and an
//! open-addressing table maps a token's XXH64 to its number (the upper half of the hash is kept
//! in the slot, so a probe compares bytes only when it matches). XXH64 is the project's hash; a
//! cheaper multiplicative one of our own measured the same within this machine's spread
//! (`cargo bench -p logstore --bench grep -- --mib 512`, runs alternated: 13.2–17.0 against
//! 14.3–16.3 MiB/s per core). Most tokens of container logs
//! occur once (ids, digits), so a token's first document is kept in its record and a list is
//! only allocated for the second.
//!
//! Lines made only of ASCII are split and lowercased here in one pass, exactly as the line
//! analyzer does (`tokens.rs`: alphanumeric runs, lowercased, 40 bytes or more marked as
//! [`LONG_TOKEN`]); any other line goes through the analyzer itself.

use crate::tokens::{LONG_TOKEN, LONG_TOKEN_BYTES};
use model::xxh64;
use tantivy::tokenizer::TextAnalyzer;
use tantivy::DocId;

/// No token in the slot.
const EMPTY: u64 = 0;
/// `more` of a token seen in one document only.
const ONE: u32 = u32::MAX;

struct Token {
    start: u32,
    len: u32,
    first: DocId,
    last: DocId,
    /// Index in `more` of the documents after the first, or [`ONE`].
    more: u32,
}

/// One segment's tokens and their postings.
pub(super) struct TokenTable {
    /// `(upper 32 bits of the hash) << 32 | (token number + 1)`, or [`EMPTY`].
    slots: Vec<u64>,
    arena: Vec<u8>,
    tokens: Vec<Token>,
    more: Vec<Vec<DocId>>,
    /// Heap bytes held, for tantivy's memory budget.
    mem: usize,
    /// A token being lowercased.
    scratch: Vec<u8>,
}

impl TokenTable {
    pub fn new() -> TokenTable {
        TokenTable {
            slots: vec![EMPTY; 1 << 12],
            arena: Vec::new(),
            tokens: Vec::new(),
            more: Vec::new(),
            mem: 8 << 12,
            scratch: Vec::with_capacity(64),
        }
    }

    pub fn mem_usage(&self) -> usize {
        self.mem
    }

    fn bytes(&self, t: &Token) -> &[u8] {
        &self.arena[t.start as usize..(t.start + t.len) as usize]
    }

    /// Adds `doc` to the postings of `token`; documents come in ascending order.
    pub fn add(&mut self, token: &[u8], doc: DocId) {
        let h = xxh64(token);
        let tag = h >> 32;
        let mask = self.slots.len() - 1;
        let mut i = h as usize & mask;
        loop {
            let slot = self.slots[i];
            if slot == EMPTY {
                break;
            }
            if slot >> 32 == tag {
                let n = (slot as u32 - 1) as usize;
                if self.bytes(&self.tokens[n]) == token {
                    self.posting(n, doc);
                    return;
                }
            }
            i = (i + 1) & mask;
        }
        let n = self.tokens.len() as u32;
        self.slots[i] = (tag << 32) | u64::from(n + 1);
        self.tokens.push(Token {
            start: self.arena.len() as u32,
            len: token.len() as u32,
            first: doc,
            last: doc,
            more: ONE,
        });
        self.arena.extend_from_slice(token);
        self.mem += token.len() + std::mem::size_of::<Token>();
        if self.tokens.len() * 2 > self.slots.len() {
            self.grow();
        }
    }

    fn posting(&mut self, n: usize, doc: DocId) {
        let t = &mut self.tokens[n];
        // A token repeated in one line counts once.
        if t.last == doc {
            return;
        }
        t.last = doc;
        if t.more == ONE {
            t.more = self.more.len() as u32;
            self.more.push(Vec::with_capacity(4));
            self.mem += 24 + 16;
        }
        let list = &mut self.more[t.more as usize];
        if list.len() == list.capacity() {
            self.mem += 4 * list.capacity();
        }
        list.push(doc);
    }

    fn grow(&mut self) {
        let size = self.slots.len() * 2;
        let mask = size - 1;
        let mut slots = vec![EMPTY; size];
        for (n, t) in self.tokens.iter().enumerate() {
            let h = xxh64(&self.arena[t.start as usize..(t.start + t.len) as usize]);
            let mut i = h as usize & mask;
            while slots[i] != EMPTY {
                i = (i + 1) & mask;
            }
            slots[i] = ((h >> 32) << 32) | (n as u64 + 1);
        }
        self.mem += 8 * (size - self.slots.len());
        self.slots = slots;
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
            if i - start >= LONG_TOKEN_BYTES {
                self.add(LONG_TOKEN.as_bytes(), doc);
                continue;
            }
            let mut scratch = std::mem::take(&mut self.scratch);
            scratch.clear();
            scratch.extend(bytes[start..i].iter().map(u8::to_ascii_lowercase));
            self.add(&scratch, doc);
            self.scratch = scratch;
        }
    }

    /// The tokens, in layout order (by length, then bytes), with their documents.
    pub fn sorted(&self) -> Vec<u32> {
        // Sorted by (length, first eight bytes as a big-endian number), which orders like the
        // bytes do, so most comparisons are of two integers; ties compare the rest.
        let mut keyed: Vec<(u32, u64, u32)> = self
            .tokens
            .iter()
            .enumerate()
            .map(|(n, t)| {
                let head = self.bytes(t).iter().take(8);
                let prefix = head
                    .fold(0u64, |p, &b| (p << 8) | u64::from(b))
                    .checked_shl(8 * (8 - t.len.min(8)))
                    .unwrap_or(0);
                (t.len, prefix, n as u32)
            })
            .collect();
        keyed.sort_unstable_by(|a, b| {
            (a.0, a.1).cmp(&(b.0, b.1)).then_with(|| {
                self.bytes(&self.tokens[a.2 as usize])
                    .cmp(self.bytes(&self.tokens[b.2 as usize]))
            })
        });
        keyed.into_iter().map(|(_, _, n)| n).collect()
    }

    /// Token `n`'s bytes.
    pub fn token(&self, n: u32) -> &[u8] {
        self.bytes(&self.tokens[n as usize])
    }

    /// Token `n`'s documents, ascending.
    pub fn docs(&self, n: u32) -> impl Iterator<Item = DocId> + '_ {
        let t = &self.tokens[n as usize];
        let more: &[DocId] = if t.more == ONE {
            &[]
        } else {
            &self.more[t.more as usize]
        };
        std::iter::once(t.first).chain(more.iter().copied())
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
        assert_eq!(order.len(), t.tokens.len());
        // Layout order: by length, then bytes, each token once.
        order.windows(2).for_each(|w| {
            let (a, b) = (t.token(w[0]), t.token(w[1]));
            assert!((a.len(), a) < (b.len(), b), "{a:?} before {b:?}");
        });
        order
            .iter()
            .map(|&n| (t.token(n).to_vec(), t.docs(n).collect()))
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
