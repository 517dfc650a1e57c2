//! The line index through tantivy: written with segments, merged with them (deleted documents
//! left out), and queried, against the lines themselves.

use super::*;
use crate::schema::{Fields, Layout};
use crate::tokens::needle_tokens;
use std::sync::Arc;
use tantivy::collector::DocSetCollector;
use tantivy::query::{Query, TermQuery};
use tantivy::schema::IndexRecordOption;
use tantivy::{Index, IndexWriter, Term};

fn index() -> (Index, Fields) {
    let index = Index::builder()
        .schema(Fields::schema_for(Layout::V4))
        .register_plugin(Arc::new(LineIndexPlugin))
        .create_in_ram()
        .unwrap();
    let fields = Fields::from_schema(&index.schema()).unwrap();
    (index, fields)
}

fn add(w: &mut IndexWriter, f: &Fields, n: usize, line: &str) {
    let mut doc = TantivyDocument::new();
    doc.add_i64(f.ts, n as i64);
    doc.add_u64(f.hash, n as u64);
    doc.add_text(f.line, line);
    w.add_document(doc).unwrap();
}

/// The number of every line `|= needle`'s index query keeps.
fn hits(index: &Index, needle: &str) -> Vec<i64> {
    hits_in(&index.reader().unwrap().searcher(), needle)
}

/// [`hits`] in the segments `searcher` has.
fn hits_in(searcher: &tantivy::Searcher, needle: &str) -> Vec<i64> {
    let mut analyzer = crate::tokens::line_analyzer();
    let tokens = needle_tokens(&mut analyzer, needle);
    let whole: Vec<String> = tokens
        .iter()
        .filter(|t| t.fit == crate::tokens::Fit::Whole)
        .map(|t| t.text.clone())
        .collect();
    let edges = tokens
        .into_iter()
        .filter(|t| t.fit != crate::tokens::Fit::Whole)
        .collect();
    let fields = Fields::from_schema(&searcher.schema().clone()).unwrap();
    let q: Box<dyn Query> = match LineTokensQuery::new(whole, edges) {
        Some(q) => Box::new(q),
        None => Box::new(tantivy::query::AllQuery),
    };
    let mut ts: Vec<i64> = searcher
        .search(&q, &DocSetCollector)
        .unwrap()
        .into_iter()
        .map(|addr| {
            // Each line starts with its number.
            let doc: TantivyDocument = searcher.doc(addr).unwrap();
            let line = doc.get_first(fields.line).and_then(|v| v.as_str()).unwrap();
            line[..4].parse::<i64>().unwrap()
        })
        .collect();
    ts.sort_unstable();
    ts
}

fn lines() -> Vec<String> {
    let mut rng = fastrand::Rng::with_seed(7);
    let words = [
        "GET", "post", "Error", "timeout", "db", "ok", "4bf92f35", "é",
    ];
    (0..600)
        .map(|i| {
            let mut l = format!("{i:04} ");
            for _ in 0..rng.usize(1..6) {
                l.push_str(words[rng.usize(..words.len())]);
                l.push(if rng.bool() { ' ' } else { '-' });
            }
            if i % 50 == 0 {
                l.push_str(&"x".repeat(45)); // a long token
            }
            l
        })
        .collect()
}

/// Every line a substring needle can match is among the hits, and for needles with a whole
/// token, exactly those holding the token are.
fn check(index: &Index, lines: &[String], alive: impl Fn(usize) -> bool) {
    for needle in [
        "Error",
        "error",
        "timeout db",
        "4bf9",
        "f35",
        "imeou",
        "GET /",
        " ok ",
        "xxxxxxxxxx",
        "0042",
        "é",
        "nothing-like-it",
    ] {
        let got = hits(index, needle);
        let want: Vec<i64> = lines
            .iter()
            .enumerate()
            .filter(|(i, l)| alive(*i) && l.to_lowercase().contains(&needle.to_lowercase()))
            .map(|(i, _)| i as i64)
            .collect();
        for w in &want {
            assert!(
                got.contains(w),
                "{needle:?}: line {w} ({:?}) missed",
                lines[*w as usize]
            );
        }
        assert!(
            got.iter().all(|g| alive(*g as usize)),
            "{needle:?}: a deleted document"
        );
        if needle == "4bf9" {
            // Inside a token: exactly the lines with a token holding it, and the lines with a
            // long token (marked, so it might hold it).
            let narrowed: Vec<i64> = (0..lines.len())
                .filter(|&i| alive(i) && (lines[i].contains("4bf92f35") || i % 50 == 0))
                .map(|i| i as i64)
                .collect();
            assert_eq!(got, narrowed, "{needle:?}");
        }
    }
}

#[test]
fn segments_written_merged_and_with_deletes_find_every_matching_line() {
    let (index, f) = index();
    let lines = lines();
    let mut w: IndexWriter = index.writer_with_num_threads(1, 15_000_000).unwrap();
    w.set_merge_policy(Box::new(tantivy::indexer::NoMergePolicy));
    // Three segments.
    for (i, l) in lines.iter().enumerate() {
        add(&mut w, &f, i, l);
        if i % 200 == 199 {
            w.commit().unwrap();
        }
    }
    w.commit().unwrap();
    let segments = index.searchable_segment_ids().unwrap();
    assert_eq!(segments.len(), 3);
    check(&index, &lines, |_| true);

    // Delete every line whose number ends in 7, then merge all segments into one.
    for i in (7..lines.len()).step_by(10) {
        w.delete_term(Term::from_field_u64(f.hash, i as u64));
    }
    w.commit().unwrap();
    check(&index, &lines, |i| i % 10 != 7);
    w.merge(&segments).wait().unwrap();
    w.commit().unwrap();
    assert_eq!(index.searchable_segment_ids().unwrap().len(), 1);
    check(&index, &lines, |i| i % 10 != 7);

    // Exactly the lines holding a whole token.
    let with_ok: Vec<i64> = lines
        .iter()
        .enumerate()
        .filter(|(i, l)| i % 10 != 7 && l.split(|c: char| !c.is_alphanumeric()).any(|t| t == "ok"))
        .map(|(i, _)| i as i64)
        .collect();
    assert_eq!(hits(&index, " ok "), with_ok);
    // The queries keep the merged segment's index open until it has been idle long enough.
    let merged = index.searchable_segment_ids().unwrap()[0];
    assert!(query::is_open(merged));
    forget_idle(std::time::Instant::now());
    assert!(query::is_open(merged), "used a moment ago");
    forget_idle(std::time::Instant::now() + 2 * query::IDLE);
    assert!(!query::is_open(merged), "idle, so unmapped");
    // The index file is the plugin's: tantivy's own `line` terms do not exist.
    let searcher = index.reader().unwrap().searcher();
    let q = TermQuery::new(
        Term::from_field_text(f.line, "ok"),
        IndexRecordOption::Basic,
    );
    assert!(
        searcher.search(&q, &DocSetCollector).is_err()
            || searcher.search(&q, &DocSetCollector).unwrap().is_empty()
    );
}

/// A searcher older than a merge still finds its segments' lines through their indexes after
/// the merge's garbage collection deleted the files: the warmer opened them as the searcher
/// loaded. Without a warmer, such a segment is searched whole rather than failing the query.
#[test]
fn a_searcher_older_than_a_merge_keeps_its_segments_line_indexes() {
    let lines = lines();
    let ok = |i: &usize| {
        lines[*i]
            .split(|c: char| !c.is_alphanumeric())
            .any(|t| t == "ok")
    };
    let with_ok: Vec<i64> = (0..lines.len()).filter(ok).map(|i| i as i64).collect();
    for warmed in [true, false] {
        let (index, f) = index();
        let warmer = Arc::new(LineIndexWarmer::default());
        let mut builder = index
            .reader_builder()
            .reload_policy(tantivy::ReloadPolicy::Manual);
        if warmed {
            builder = builder.warmers(vec![
                Arc::downgrade(&warmer) as std::sync::Weak<dyn tantivy::Warmer>
            ]);
        }
        let reader: tantivy::IndexReader = builder.try_into().unwrap();
        let mut w: IndexWriter = index.writer_with_num_threads(1, 15_000_000).unwrap();
        w.set_merge_policy(Box::new(tantivy::indexer::NoMergePolicy));
        for (i, l) in lines.iter().enumerate() {
            add(&mut w, &f, i, l);
            if i % 300 == 299 {
                w.commit().unwrap();
            }
        }
        reader.reload().unwrap();
        let old = reader.searcher();
        let segments = index.searchable_segment_ids().unwrap();
        assert_eq!(segments.len(), 2);
        w.merge(&segments).wait().unwrap();
        w.garbage_collect_files().wait().unwrap();
        let files = index.directory().list_managed_files();
        let vli = |id: &tantivy::index::SegmentId| {
            std::path::PathBuf::from(format!("{}.{EXTENSION}", id.uuid_string()))
        };
        assert!(
            segments.iter().all(|id| !files.contains(&vli(id))),
            "the merged-away segments' line indexes are deleted"
        );
        let got = hits_in(&old, " ok ");
        if warmed {
            assert_eq!(got, with_ok, "narrowed by the indexes the warmer holds");
        } else {
            let all: Vec<i64> = (0..lines.len() as i64).collect();
            assert_eq!(got, all, "searched whole: every line is a candidate");
        }
        drop(old);
        reader.reload().unwrap();
        assert_eq!(
            hits_in(&reader.searcher(), " ok "),
            with_ok,
            "the merged segment"
        );
    }
}

/// A warmer opens line indexes without reading them whole (a store opens every segment at
/// start); the first query that uses a damaged one still finds the damage.
#[test]
fn a_damaged_line_index_a_warmer_opened_fails_the_first_query() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::builder()
        .schema(Fields::schema_for(Layout::V4))
        .register_plugin(Arc::new(LineIndexPlugin))
        .create_in_dir(dir.path())
        .unwrap();
    let f = Fields::from_schema(&index.schema()).unwrap();
    let mut w: IndexWriter = index.writer_with_num_threads(1, 15_000_000).unwrap();
    for (i, l) in lines().iter().enumerate() {
        add(&mut w, &f, i, l);
    }
    w.commit().unwrap();
    drop(w);
    let vli = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == EXTENSION))
        .unwrap();
    let mut bytes = std::fs::read(&vli).unwrap();
    let at = bytes.len() / 2; // in the postings
    bytes[at] ^= 0x55;
    std::fs::write(&vli, bytes).unwrap();

    let warmer = Arc::new(LineIndexWarmer::default());
    let reader: tantivy::IndexReader = index
        .reader_builder()
        .reload_policy(tantivy::ReloadPolicy::Manual)
        .warmers(vec![
            Arc::downgrade(&warmer) as std::sync::Weak<dyn tantivy::Warmer>
        ])
        .try_into()
        .expect("opening checks no CRC");
    let searcher = reader.searcher();
    let segment = searcher.segment_readers()[0].segment_id();
    assert!(query::is_open(segment), "opened by the warmer, unchecked");
    let q = LineTokensQuery::new(vec!["ok".into()], vec![]).unwrap();
    let err = searcher.search(&q, &DocSetCollector).unwrap_err();
    assert!(err.to_string().contains("CRC"), "{err}");
}
