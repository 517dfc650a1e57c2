//! `|=` needles narrow through the index without ever losing a line: needles with no whole
//! token (trace ids, substrings of words, prefixes and suffixes of tokens), lines with tokens
//! too long to index, and partitions written with the legacy line analyzer.

use super::*;
use crate::dedup::entry_hash;
use crate::plan::entries_query;
use crate::schema::label_terms;
use crate::tokens::LineIndexing;
use model::LogEntry;
use tantivy::collector::Count;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// Lines where the trace id and `connect` sit in every relation to the line's tokens, among
/// noise lines with other trace ids.
fn corpus() -> Vec<String> {
    let mut lines = vec![
        format!("trace {TRACE} done"),
        format!("trace=x{TRACE}Y"),
        format!("blob {}{TRACE}", "z".repeat(30)),
        format!("blob {}", "Q".repeat(50)),
        "connection refused".into(),
        "Connect later".into(),
        "preconnect".into(),
        "pool:connect".into(),
        "dial tcp: connect: refused".into(),
    ];
    let mut rng = fastrand::Rng::with_seed(7);
    for i in 0..200 {
        let hex: String = (0..32)
            .map(|_| char::from(b"0123456789abcdef"[rng.usize(..16)]))
            .collect();
        lines.push(format!("noise {i} trace {hex}"));
    }
    lines
}

const NEEDLES: [&str; 20] = [
    " QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ",
    "e4736Y ",
    "0e4736 done",
    TRACE,
    "4bf92f",
    "0e4736",
    "0e4736Y",
    "=x4bf",
    "onnect",
    "connect",
    "Connect",
    "pool:con",
    "nect ref",
    "ection",
    " refused",
    "QQQ",
    "zz4bf9",
    "noise 1",
    "trace ",
    ": connect:",
];

fn entries(lines: &[String]) -> Vec<LogEntry> {
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| LogEntry {
            ts_ns: i as i64 + 1,
            line: l.clone(),
            metadata: Vec::new(),
        })
        .collect()
}

fn found(store: &LogStore, needle: &str) -> Vec<String> {
    let query = format!("{{app=\"x\"}} |= {:?}", needle);
    let result = store
        .query_range(&query, 0, 1_000_000, 10_000, Direction::Forward)
        .unwrap_or_else(|e| panic!("{query}: {e}"));
    let mut all: Vec<(i64, String)> = result
        .iter()
        .flat_map(|s| s.entries.iter().map(|e| (e.ts_ns, e.line.clone())))
        .collect();
    all.sort();
    all.into_iter().map(|(_, l)| l).collect()
}

fn naive(lines: &[String], needle: &str) -> Vec<String> {
    lines
        .iter()
        .filter(|l| l.contains(needle))
        .cloned()
        .collect()
}

fn labels() -> Labels {
    Labels::from_pairs([("app", "x")])
}

/// An empty partition of `layout` for the first hour, which the store then writes to.
fn empty_partition(dir: &std::path::Path, layout: crate::schema::Layout) {
    let part = dir
        .join(crate::partition::PARTITIONS_DIR)
        .join(format!("0_{}", 3_600_000_000_000i64));
    std::fs::create_dir_all(&part).unwrap();
    drop(tantivy::Index::create_in_dir(&part, Fields::schema_for(layout)).unwrap());
}

#[test]
fn needles_without_whole_tokens_narrow_to_the_matching_lines_and_lose_none() {
    narrowing_without_whole_tokens(None, LineIndexing::Own);
}

#[test]
fn needles_narrow_alike_in_partitions_of_tantivy_line_terms() {
    narrowing_without_whole_tokens(Some(crate::schema::Layout::V3), LineIndexing::Marked);
}

/// Pushes the corpus into a new store (into an empty partition of `layout`, if given) and
/// checks what needles find and what the index admits, by [`LineIndexing`] `expected`.
fn narrowing_without_whole_tokens(layout: Option<crate::schema::Layout>, expected: LineIndexing) {
    let dir = tempfile::tempdir().unwrap();
    if let Some(layout) = layout {
        empty_partition(dir.path(), layout);
    }
    let store = LogStore::open(dir.path()).unwrap();
    let lines = corpus();
    store
        .push(&[LogStream {
            labels: labels(),
            entries: entries(&lines),
        }])
        .unwrap();
    for needle in NEEDLES {
        assert_eq!(
            found(&store, needle),
            naive(&lines, needle),
            "pending: {needle:?}"
        );
    }
    store.checkpoint().unwrap();
    for needle in NEEDLES {
        assert_eq!(
            found(&store, needle),
            naive(&lines, needle),
            "indexed: {needle:?}"
        );
    }
    // What the index alone narrows to: exact terms, prefix ranges and the long-token marker.
    let views = store.views(0, 1_000_000).unwrap();
    assert_eq!(views.len(), 1);
    assert_eq!(views[0].line, expected);
    let hits = |needle: &str| {
        let q = crate::logql::parse(&format!("{{app=\"x\"}} |= {needle:?}")).unwrap();
        let filters = q.leading_line_filters();
        let query = entries_query(
            &views[0].searcher,
            &store.core.fields,
            views[0].line,
            Some(store.terms_of(&views[0])),
            &q.matchers,
            &filters,
            0,
            1_000_000,
        )
        .unwrap()
        .unwrap();
        views[0].searcher.search(&query, &Count).unwrap()
    };
    let all = lines.len();
    // Besides the lines holding the token, every expansion admits the two lines with a long
    // (marked) token, which could hold anything.
    assert_eq!(
        hits(TRACE),
        3 + 1,
        "a needle without separators: the terms containing it (the trace id, `x…y`, and the \
         long `zz…` token), plus the other marked line"
    );
    assert_eq!(hits("e4736Y "), 1 + 2, "a suffix: `x…e4736y` only");
    assert_eq!(
        hits("onnect"),
        5 + 2,
        "a substring: connection, connect (3 lines), preconnect"
    );
    assert_eq!(hits("ection"), 1 + 2, "a substring: connection");
    assert!(hits("4bf92f") < all, "a short substring narrows too");
    assert_eq!(
        hits("pool:con"),
        1 + 2,
        "a term ending in `pool` and one starting with `con`"
    );
    assert_eq!(hits(" refused"), 2 + 2, "a prefix again: `refused` twice");
    let long = format!(" {}", "q".repeat(60));
    assert_eq!(hits(&long), 2, "a long token: the marked lines");
    assert_eq!(
        hits(": connect:"),
        3,
        "a whole token is one exact term, no marked line"
    );
}

#[test]
fn a_partition_written_with_the_legacy_analyzer_opens_and_answers_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let part = dir
        .path()
        .join(crate::partition::PARTITIONS_DIR)
        .join(format!("0_{}", 3_600_000_000_000i64));
    std::fs::create_dir_all(&part).unwrap();
    let lines = corpus();
    {
        let index =
            tantivy::Index::create_in_dir(&part, Fields::schema_for(crate::schema::Layout::V1))
                .unwrap();
        let fields = Fields::from_schema(&index.schema()).unwrap();
        let mut writer: tantivy::IndexWriter<tantivy::TantivyDocument> =
            index.writer_with_num_threads(1, 15_000_000).unwrap();
        let labels = labels();
        let (stream, terms) = (labels.to_string(), label_terms(&labels));
        for e in entries(&lines) {
            let hash = entry_hash(&stream, e.ts_ns, &e.line);
            writer
                .add_document(fields.document(&stream, &terms, &e, hash).unwrap())
                .unwrap();
        }
        writer.commit().unwrap();
    }
    let store = LogStore::open(dir.path()).unwrap();
    let views = store.views(0, 1_000_000).unwrap();
    assert_eq!(
        views.len(),
        1,
        "the legacy partition is served, not set aside"
    );
    assert_eq!(views[0].line, LineIndexing::Legacy);
    for needle in NEEDLES {
        assert_eq!(
            found(&store, needle),
            naive(&lines, needle),
            "legacy: {needle:?}"
        );
    }
    // New entries go to the legacy partition too, and are found.
    let more = [format!("late {TRACE}")];
    store
        .push(&[LogStream {
            labels: labels(),
            entries: vec![LogEntry {
                ts_ns: 5_000,
                line: more[0].clone(),
                metadata: Vec::new(),
            }],
        }])
        .unwrap();
    store.checkpoint().unwrap();
    assert_eq!(found(&store, TRACE).len(), naive(&lines, TRACE).len() + 1);
}

/// How many documents of the store's single partition the index admits for `{app="x"} |=
/// needle`, before the lines are re-checked.
fn candidates(store: &LogStore, needle: &str) -> usize {
    let views = store.views(0, 1_000_000).unwrap();
    let q = crate::logql::parse(&format!("{{app=\"x\"}} |= {needle:?}")).unwrap();
    let query = entries_query(
        &views[0].searcher,
        &store.core.fields,
        views[0].line,
        Some(store.terms_of(&views[0])),
        &q.matchers,
        &q.leading_line_filters(),
        0,
        1_000_000,
    )
    .unwrap()
    .unwrap();
    views[0].searcher.search(&query, &Count).unwrap()
}

#[test]
fn substring_prefix_and_suffix_needles_narrow_across_segments_and_stay_exact() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path()).unwrap();
    let mut rng = fastrand::Rng::with_seed(11);
    let noise = |rng: &mut fastrand::Rng, i: usize| {
        let hex: String = (0..32)
            .map(|_| char::from(b"0123456789abcdef"[rng.usize(..16)]))
            .collect();
        format!("GET /api/v1/orders {i} trace_id={hex}")
    };
    let mut lines: Vec<String> = (0..300).map(|i| noise(&mut rng, i)).collect();
    lines.push(format!("payment failed trace_id=q{TRACE}Retry"));
    lines.push("Deadlock detected in txn".into());
    // Two commits: the needles must find their terms in both segments (the second one read
    // after the first was cached).
    let (first, second) = lines.split_at(150);
    let mut ts = 0;
    for part in [first, second] {
        let entries = part
            .iter()
            .map(|l| {
                ts += 1;
                LogEntry {
                    ts_ns: ts,
                    line: l.clone(),
                    metadata: Vec::new(),
                }
            })
            .collect();
        store
            .push(&[LogStream {
                labels: labels(),
                entries,
            }])
            .unwrap();
        store.checkpoint().unwrap();
        let so_far = &lines[..ts as usize];
        assert_eq!(found(&store, "orders 1"), naive(so_far, "orders 1"));
    }
    // (needle, candidate documents the index admits)
    let cases = [
        // Within a token: `q4bf…736retry`.
        (&TRACE[3..29], 1),
        (TRACE, 1),
        // A suffix (`…4736Retry` ends a token) and a prefix (`Deadl` starts one).
        ("36Retry ", 1),
        (" Deadl", 1),
        // Case differs from the line: the index narrows to the same term, the line decides.
        ("DEADLOCK", 1),
        ("eadloc", 1),
    ];
    for (needle, admitted) in cases {
        assert_eq!(found(&store, needle), naive(&lines, needle), "{needle:?}");
        assert_eq!(candidates(&store, needle), admitted, "{needle:?}");
    }
    assert_eq!(naive(&lines, "DEADLOCK").len(), 0);
    assert_eq!(naive(&lines, "eadloc").len(), 1);
    assert_eq!(
        store.core.terms.len(),
        0,
        "the segments' line index files serve the needles: no term layouts are built"
    );
    // A substring in every noise line admits them all, and still answers exactly.
    assert_eq!(candidates(&store, "rders"), 300);
    // Both edge tokens narrow: a line must hold a term ending in `rders` and one starting with
    // `29`.
    let starting_29 = lines
        .iter()
        .filter(|l| {
            l.contains("orders")
                && l.split(|c: char| !c.is_alphanumeric())
                    .any(|t| t.starts_with("29"))
        })
        .count();
    assert!(starting_29 >= 11, "`29` and `290`..`299`");
    assert_eq!(candidates(&store, "rders 29"), starting_29);
    assert_eq!(found(&store, "rders 29"), naive(&lines, "rders 29"));
}
