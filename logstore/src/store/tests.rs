//! Tests of `LogStore` against a real index in a temporary directory.

use super::*;
use crate::plan::entries_query;
use model::LogEntry;
use tantivy::collector::Count;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs.iter().copied())
}

fn entry(ts_ns: i64, line: &str) -> LogEntry {
    LogEntry {
        ts_ns,
        line: line.to_string(),
        metadata: Vec::new(),
    }
}

fn stream(pairs: &[(&str, &str)], entries: Vec<LogEntry>) -> LogStream {
    LogStream {
        labels: labels(pairs),
        entries,
    }
}

/// A store with three streams:
/// - `{app="api", env="prod"}` at 10, 30, 50 …
/// - `{app="api", env="dev"}` at 20, 40 …
/// - `{app="db"}` (no env) at 15, 35.
fn fixture() -> (tempfile::TempDir, LogStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path()).unwrap();
    let outcome = store
        .push(&[
            stream(
                &[("app", "api"), ("env", "prod")],
                vec![
                    entry(10, "GET /users 200"),
                    entry(30, "connection refused"),
                    entry(50, "GET /orders 500 Error"),
                ],
            ),
            stream(
                &[("app", "api"), ("env", "dev")],
                vec![entry(20, "debug: cache miss"), entry(40, "error: timeout")],
            ),
            stream(
                &[("app", "db")],
                vec![entry(15, "checkpoint"), entry(35, "slow query 2s")],
            ),
        ])
        .unwrap();
    assert_eq!(
        outcome,
        PushOutcome {
            entries: 7,
            duplicates: 0,
            streams: 3
        }
    );
    (dir, store)
}

/// The result flattened to `(stream, ts, line)`, in result order.
fn flat(result: &[LogStream]) -> Vec<(String, i64, String)> {
    result
        .iter()
        .flat_map(|s| {
            s.entries
                .iter()
                .map(|e| (s.labels.to_string(), e.ts_ns, e.line.clone()))
        })
        .collect()
}

fn lines(store: &LogStore, query: &str) -> Vec<String> {
    let result = store
        .query_range(query, 0, 1_000, 1_000, Direction::Forward)
        .unwrap_or_else(|e| panic!("{query}: {e}"));
    let mut all: Vec<(i64, String)> = result
        .iter()
        .flat_map(|s| s.entries.iter().map(|e| (e.ts_ns, e.line.clone())))
        .collect();
    all.sort();
    all.into_iter().map(|(_, l)| l).collect()
}

#[test]
fn push_and_query_round_trip_groups_by_stream() {
    let (_dir, store) = fixture();
    let result = store
        .query_range(r#"{app="api"}"#, 0, 100, 100, Direction::Forward)
        .unwrap();
    assert_eq!(
        flat(&result),
        [
            (
                r#"{app="api", env="dev"}"#.into(),
                20,
                "debug: cache miss".into()
            ),
            (
                r#"{app="api", env="dev"}"#.into(),
                40,
                "error: timeout".into()
            ),
            (
                r#"{app="api", env="prod"}"#.into(),
                10,
                "GET /users 200".into()
            ),
            (
                r#"{app="api", env="prod"}"#.into(),
                30,
                "connection refused".into()
            ),
            (
                r#"{app="api", env="prod"}"#.into(),
                50,
                "GET /orders 500 Error".into()
            ),
        ]
    );
}

#[test]
fn label_matchers_select_exactly() {
    let (_dir, store) = fixture();
    let cases: &[(&str, &[&str])] = &[
        (
            r#"{app="api", env!="dev"}"#,
            &[
                "GET /users 200",
                "connection refused",
                "GET /orders 500 Error",
            ],
        ),
        (r#"{app=~"d.*"}"#, &["checkpoint", "slow query 2s"]),
        // Anchored: "b" alone does not match "db".
        (r#"{app=~"b"}"#, &[]),
        // `env=""` selects the streams without env.
        (r#"{app=~".+", env=""}"#, &["checkpoint", "slow query 2s"]),
        (
            r#"{app=~".+", env!~"p.*"}"#,
            &[
                "checkpoint",
                "debug: cache miss",
                "slow query 2s",
                "error: timeout",
            ],
        ),
        (
            r#"{env!=""}"#,
            &[
                "GET /users 200",
                "debug: cache miss",
                "connection refused",
                "error: timeout",
                "GET /orders 500 Error",
            ],
        ),
        (r#"{env=~"prod|dev", app!="api"}"#, &[]),
        (r#"{app="nope"}"#, &[]),
        (r#"{missing=~".+"}"#, &[]),
    ];
    for (query, want) in cases {
        assert_eq!(lines(&store, query), *want, "{query}");
    }
}

#[test]
fn pushed_down_query_only_hits_matching_streams() {
    // The tantivy query alone (before any line filter) must already be exact for the selector:
    // no document of a non-matching stream is ever a hit, hence never loaded.
    let (_dir, store) = fixture();
    store.checkpoint().unwrap();
    let views = store.views(0, 100).unwrap();
    assert_eq!(views.len(), 1, "all entries are in the first hour");
    let searcher = &views[0].searcher;
    let cases = [
        (r#"{app="api"}"#, 5),
        (r#"{app=~"api|db", env!="prod"}"#, 4),
        (r#"{app=~".+", env=""}"#, 2),
        (r#"{env=~"de.*"}"#, 2),
    ];
    for (query, want) in cases {
        let parsed = crate::logql::parse(query).unwrap();
        let q = entries_query(
            searcher,
            &store.core.fields,
            views[0].line,
            None,
            &parsed.matchers,
            &[],
            0,
            100,
        )
        .unwrap()
        .unwrap();
        assert_eq!(searcher.search(&q, &Count).unwrap(), want, "{query}");
    }
}

#[test]
fn line_filters_are_exact() {
    let (_dir, store) = fixture();
    let cases: &[(&str, &[&str])] = &[
        // A substring inside a word: the token index cannot find it, the re-check does.
        (r#"{app="api"} |= "onnect""#, &["connection refused"]),
        // Case-sensitive although the index lowercases.
        (r#"{app="api"} |= "Error""#, &["GET /orders 500 Error"]),
        (r#"{app="api"} |= " 500 ""#, &["GET /orders 500 Error"]),
        (r#"{app="api"} |= "error""#, &["error: timeout"]),
        (
            r#"{app="api"} != "GET""#,
            &["debug: cache miss", "connection refused", "error: timeout"],
        ),
        (
            r#"{app="api"} |~ "(?i)error""#,
            &["error: timeout", "GET /orders 500 Error"],
        ),
        (r#"{app="api"} |~ "^GET /\\w+ 2""#, &["GET /users 200"]),
        (
            r#"{app=~".+"} !~ "^(GET|debug|error|check)" |= "s""#,
            &["connection refused", "slow query 2s"],
        ),
        (r#"{app="db"} |= """#, &["checkpoint", "slow query 2s"]),
        (r#"{app="db"} |= "checkpoint" |= "slow""#, &[]),
    ];
    for (query, want) in cases {
        assert_eq!(lines(&store, query), *want, "{query}");
    }
}

#[test]
fn limit_and_direction() {
    let (_dir, store) = fixture();
    let q = r#"{app=~"api|db"}"#;
    let backward = store
        .query_range(q, 0, 100, 3, Direction::Backward)
        .unwrap();
    // The three newest overall (50, 40, 35), grouped by stream, newest first in each.
    assert_eq!(
        flat(&backward),
        [
            (
                r#"{app="api", env="dev"}"#.into(),
                40,
                "error: timeout".into()
            ),
            (
                r#"{app="api", env="prod"}"#.into(),
                50,
                "GET /orders 500 Error".into()
            ),
            (r#"{app="db"}"#.into(), 35, "slow query 2s".into()),
        ]
    );
    let forward = store.query_range(q, 0, 100, 4, Direction::Forward).unwrap();
    assert_eq!(
        flat(&forward),
        [
            (
                r#"{app="api", env="dev"}"#.into(),
                20,
                "debug: cache miss".into()
            ),
            (
                r#"{app="api", env="prod"}"#.into(),
                10,
                "GET /users 200".into()
            ),
            (
                r#"{app="api", env="prod"}"#.into(),
                30,
                "connection refused".into()
            ),
            (r#"{app="db"}"#.into(), 15, "checkpoint".into()),
        ]
    );
    let prod = store
        .query_range(r#"{env="prod"}"#, 0, 100, 10, Direction::Backward)
        .unwrap();
    let ts: Vec<i64> = prod[0].entries.iter().map(|e| e.ts_ns).collect();
    assert_eq!(ts, [50, 30, 10]);
    assert!(store
        .query_range(q, 0, 100, 0, Direction::Backward)
        .unwrap()
        .is_empty());
}

#[test]
fn limit_with_selective_filter_pages_through_many_segments() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path()).unwrap();
    // Five pushes, five segments; one line in 97 matches the filter.
    for batch in 0..5 {
        let entries = (0..400)
            .map(|i| {
                let ts = batch * 400 + i;
                let line = if ts % 97 == 0 {
                    format!("needle {ts}")
                } else {
                    format!("hay {ts}")
                };
                entry(ts, &line)
            })
            .collect();
        store.push(&[stream(&[("app", "big")], entries)]).unwrap();
    }
    let newest = store
        .query_range(
            r#"{app="big"} |= "needle""#,
            0,
            2_000,
            3,
            Direction::Backward,
        )
        .unwrap();
    let ts: Vec<i64> = newest[0].entries.iter().map(|e| e.ts_ns).collect();
    assert_eq!(ts, [1940, 1843, 1746]);
    let oldest = store
        .query_range(
            r#"{app="big"} |~ "needle""#,
            0,
            2_000,
            3,
            Direction::Forward,
        )
        .unwrap();
    let ts: Vec<i64> = oldest[0].entries.iter().map(|e| e.ts_ns).collect();
    assert_eq!(ts, [0, 97, 194]);
    let all = store
        .query_range(
            r#"{app="big"} |= "needle""#,
            0,
            2_000,
            1_000,
            Direction::Forward,
        )
        .unwrap();
    assert_eq!(all[0].entries.len(), 21);
    let unfiltered = store
        .query_range(r#"{app="big"}"#, 0, 2_000, 1_500, Direction::Backward)
        .unwrap();
    assert_eq!(unfiltered[0].entries.len(), 1_500);
    assert_eq!(unfiltered[0].entries[0].ts_ns, 1_999);
    assert_eq!(unfiltered[0].entries[1_499].ts_ns, 500);
}

#[test]
fn paging_across_equal_timestamps_returns_each_entry_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path()).unwrap();
    // 1000 entries over four timestamps, pushed in two segments, so every page boundary falls
    // inside a run of equal timestamps.
    for half in 0..2 {
        let entries = (0..500)
            .map(|i| {
                let n = half * 500 + i;
                let kind = if n % 30 == 0 { "match" } else { "skip" };
                entry(n % 4, &format!("{kind} {n}"))
            })
            .collect();
        store.push(&[stream(&[("app", "ties")], entries)]).unwrap();
    }
    for direction in [Direction::Forward, Direction::Backward] {
        let r = store
            .query_range(r#"{app="ties"} |= "match""#, 0, 10, 1_000, direction)
            .unwrap();
        let mut got: Vec<String> = r[0].entries.iter().map(|e| e.line.clone()).collect();
        let ts: Vec<i64> = r[0].entries.iter().map(|e| e.ts_ns).collect();
        let mut sorted = ts.clone();
        sorted.sort();
        if direction == Direction::Backward {
            sorted.reverse();
        }
        assert_eq!(ts, sorted, "{direction:?}");
        assert_eq!(got.len(), 34, "{direction:?}");
        got.sort();
        got.dedup();
        assert_eq!(got.len(), 34, "{direction:?}");
    }
}

#[test]
fn time_range_is_start_inclusive_end_exclusive() {
    let (_dir, store) = fixture();
    let ts = |start, end| -> Vec<i64> {
        let r = store
            .query_range(
                r#"{app="api", env="prod"}"#,
                start,
                end,
                100,
                Direction::Forward,
            )
            .unwrap();
        r.iter()
            .flat_map(|s| s.entries.iter().map(|e| e.ts_ns))
            .collect()
    };
    assert_eq!(ts(10, 50), [10, 30]);
    assert_eq!(ts(11, 51), [30, 50]);
    assert_eq!(ts(30, 31), [30]);
    assert!(ts(30, 30).is_empty());
    assert!(ts(50, 10).is_empty());
    assert_eq!(ts(i64::MIN, i64::MAX), [10, 30, 50]);
}

#[test]
fn label_names_and_values_respect_the_time_range() {
    let (_dir, store) = fixture();
    assert_eq!(store.label_names(&[], 0, 100).unwrap(), ["app", "env"]);
    // Only the db stream has an entry in [15, 16).
    assert_eq!(store.label_names(&[], 15, 16).unwrap(), ["app"]);
    assert!(store.label_names(&[], 60, 100).unwrap().is_empty());
    assert_eq!(
        store.label_values("app", &[], 0, 100).unwrap(),
        ["api", "db"]
    );
    assert_eq!(
        store.label_values("env", &[], 0, 100).unwrap(),
        ["dev", "prod"]
    );
    assert_eq!(store.label_values("env", &[], 35, 45).unwrap(), ["dev"]);
    assert!(store.label_values("env", &[], 15, 16).unwrap().is_empty());
    assert!(store.label_values("nope", &[], 0, 100).unwrap().is_empty());
    assert!(store
        .label_values("app=api", &[], 0, 100)
        .unwrap()
        .is_empty());
}

#[test]
fn reopen_keeps_the_data() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = LogStore::open(dir.path()).unwrap();
        let mut e = entry(5, "persisted");
        e.metadata = vec![("trace_id".into(), "t1".into())];
        store.push(&[stream(&[("app", "x")], vec![e])]).unwrap();
    }
    let store = LogStore::open(dir.path()).unwrap();
    let r = store
        .query_range(r#"{app="x"}"#, 0, 10, 10, Direction::Backward)
        .unwrap();
    assert_eq!(r[0].entries[0].line, "persisted");
    assert_eq!(
        r[0].entries[0].metadata,
        [("trace_id".to_string(), "t1".to_string())]
    );
    store
        .push(&[stream(&[("app", "x")], vec![entry(6, "after reopen")])])
        .unwrap();
    assert_eq!(lines(&store, r#"{app="x"}"#), ["persisted", "after reopen"]);
}

#[test]
fn open_creates_nested_directories() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("a/b/logs");
    let store = LogStore::open(&nested).unwrap();
    assert!(store.label_names(&[], 0, 10).unwrap().is_empty());
    for part in ["lock", "wal", "partitions"] {
        assert!(nested.join(part).exists(), "{part}");
    }
}

#[test]
fn invalid_pushes_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path()).unwrap();
    let good = stream(&[("app", "ok")], vec![entry(1, "fine")]);
    let unlabelled = stream(&[], vec![entry(1, "orphan")]);
    let err = store.push(&[good.clone(), unlabelled]).unwrap_err();
    assert!(matches!(err, Error::Invalid(_)), "{err:?}");
    assert_eq!(err.http_status(), 400);
    let bad_name = stream(&[("bad-name", "x")], vec![entry(1, "x")]);
    assert!(matches!(
        store.push(&[good.clone(), bad_name]),
        Err(Error::Invalid(_))
    ));
    let huge = "v".repeat(70_000);
    let too_long = stream(&[("app", huge.as_str())], vec![entry(1, "x")]);
    assert!(matches!(store.push(&[too_long]), Err(Error::Invalid(_))));
    assert!(store.label_names(&[], 0, 10).unwrap().is_empty());

    // Streams without entries are skipped, even unlabelled ones; a repeated stream counts
    // once, and its repeated entry is a duplicate.
    let empty = stream(&[], Vec::new());
    let outcome = store.push(&[empty, good.clone(), good]).unwrap();
    assert_eq!(
        outcome,
        PushOutcome {
            entries: 1,
            duplicates: 1,
            streams: 1
        }
    );
    assert_eq!(store.push(&[]).unwrap(), PushOutcome::default());
}

#[test]
fn query_errors_map_to_400() {
    let (_dir, store) = fixture();
    let q = |text: &str| store.query_range(text, 0, 100, 10, Direction::Backward);
    match q(r#"{app="api""#) {
        Err(e @ Error::Parse(_)) => {
            assert_eq!(e.http_status(), 400);
            assert_eq!(
                e.to_string(),
                "parse error at line 1, col 11: syntax error: unexpected $end, expecting } or ,"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(q(r#"{app=~".*"}"#), Err(Error::Parse(_))));
    match q(r#"rate({app="api"}[5m])"#) {
        Err(e @ Error::Invalid(_)) => {
            assert_eq!(e.http_status(), 400);
            assert!(e.to_string().contains("metric query"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    // A bad query is reported even when the range or limit would make the result empty.
    assert!(matches!(
        store.query_range("{", 10, 10, 0, Direction::Forward),
        Err(Error::Parse(_))
    ));
}

#[test]
fn direction_parses_case_insensitively() {
    assert_eq!("FORWARD".parse::<Direction>().unwrap(), Direction::Forward);
    assert_eq!(
        "backward".parse::<Direction>().unwrap(),
        Direction::Backward
    );
    assert!("sideways".parse::<Direction>().is_err());
}

#[test]
fn concurrent_pushes_and_queries() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<LogStore>();
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(LogStore::open(dir.path()).unwrap());
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let store = store.clone();
            std::thread::spawn(move || {
                for i in 0..5 {
                    let app = format!("w{w}");
                    store
                        .push(&[stream(&[("app", &app)], vec![entry(i, "line")])])
                        .unwrap();
                    // Read-your-writes: the entry just pushed is visible.
                    let q = format!(r#"{{app="{app}"}}"#);
                    let got = store
                        .query_range(&q, 0, 100, 100, Direction::Forward)
                        .unwrap();
                    assert_eq!(got[0].entries.len() as i64, i + 1);
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    assert_eq!(
        store.label_values("app", &[], 0, 100).unwrap(),
        ["w0", "w1", "w2"]
    );
}
