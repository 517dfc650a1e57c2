//! Runs the LogQL scripts in `tests/logql/*.test` against a real [`LogStore`] in a temp dir.
//!
//! The script format, modelled on Prometheus's promqltest:
//!
//! ```text
//! # a comment
//! clear                                   # start over with an empty store
//! load
//!   {app="a"} @10s "a line"               # one entry at 10 s
//!   {app="a"} @20s+10s x3 "x=1"           # three entries, at 20, 30 and 40 s
//! eval instant at 60s <query>             # expected samples follow, any order
//!   {app="a"} 3
//! eval instant ordered at 60s <query>     # the same, in this order
//! eval range from 0s to 60s step 20s <query>
//!   {app="a"} _ 1 2 3                     # one value per step, `_` for none
//! eval logs from 0s to 100s limit 10 backward <query>
//!   {app="a"} @10s "a line"               # streams sorted by labels, entries in order
//! eval instant at 10s 1 + 1
//!   scalar 2
//! eval instant at 10s <query>
//!   expect fail <substring of the error>
//! eval range from 0s to 10s step 5s <query>
//!   expect empty
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used)]

use logstore::logql::pipeline::parse_go_duration;
use logstore::{Direction, LogStore, QueryResult, RangeParams};
use model::{Labels, LogEntry, LogStream};
use std::path::Path;

fn dur_ns(s: &str) -> i64 {
    (parse_go_duration(s).unwrap_or_else(|e| panic!("bad duration {s:?}: {e}")) * 1e9).round()
        as i64
}

/// `{a="b"} rest` → (labels, rest).
fn split_labels(line: &str) -> (Labels, &str) {
    let end = line
        .find('}')
        .unwrap_or_else(|| panic!("no labels in {line:?}"))
        + 1;
    (
        model::parse_label_set(&line[..end]).unwrap(),
        line[end..].trim(),
    )
}

/// `"quoted line"` as a JSON string.
fn quoted(s: &str) -> String {
    serde_json::from_str(s.trim()).unwrap_or_else(|e| panic!("bad quoted line {s:?}: {e}"))
}

fn parse_value(s: &str) -> Option<f64> {
    match s {
        "_" => None,
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => Some(s.parse().unwrap_or_else(|_| panic!("bad value {s:?}"))),
    }
}

fn close(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

enum Expect {
    Samples(Vec<(Labels, Vec<Option<f64>>)>),
    Logs(Vec<(Labels, Vec<(i64, String)>)>),
    Scalar(f64),
    Fail(String),
    Empty,
}

struct Runner<'a> {
    file: &'a str,
    dir: tempfile::TempDir,
    store: LogStore,
    evals: usize,
}

impl Runner<'_> {
    fn reset(&mut self) {
        self.dir = tempfile::tempdir().unwrap();
        self.store = LogStore::open(self.dir.path()).unwrap();
    }

    fn load(&mut self, lines: &[&str]) {
        let mut streams = Vec::new();
        for line in lines {
            let (labels, rest) = split_labels(line);
            let rest = rest.strip_prefix('@').expect("@time after the labels");
            let (time, rest) = rest.split_once(' ').unwrap();
            let (first, step) = match time.split_once('+') {
                Some((f, s)) => (dur_ns(f), dur_ns(s)),
                None => (dur_ns(time), 0),
            };
            let rest = rest.trim();
            let (count, text) = match rest.strip_prefix('x') {
                Some(r) => {
                    let (n, t) = r.split_once(' ').unwrap();
                    (n.parse::<i64>().unwrap(), t)
                }
                None => (1, rest),
            };
            let line = quoted(text);
            let entries = (0..count)
                .map(|i| LogEntry {
                    ts_ns: first + i * step,
                    line: line.clone(),
                    metadata: vec![],
                })
                .collect();
            streams.push(LogStream { labels, entries });
        }
        self.store.push(&streams).unwrap();
    }

    fn eval(&mut self, header: &str, body: &[&str], line_no: usize) {
        self.evals += 1;
        let at = format!("{}:{line_no}", self.file);
        let words: Vec<&str> = header.split_whitespace().collect();
        let expect = parse_expect(words[1], body);
        let (result, ordered) = match words[1] {
            "instant" => {
                let ordered = words[2] == "ordered";
                let i = if ordered { 3 } else { 2 };
                assert_eq!(words[i], "at", "{at}");
                let t = dur_ns(words[i + 1]);
                let query = rest_after(header, i + 2);
                (self.store.instant_query(query, t), ordered)
            }
            "range" => {
                assert_eq!(
                    (words[2], words[4], words[6]),
                    ("from", "to", "step"),
                    "{at}"
                );
                let p = RangeParams {
                    start_ns: dur_ns(words[3]),
                    end_ns: dur_ns(words[5]),
                    step_ns: dur_ns(words[7]),
                    limit: 1000,
                    direction: Direction::Backward,
                };
                (self.store.range_query(rest_after(header, 8), p), false)
            }
            "logs" => {
                assert_eq!((words[2], words[4]), ("from", "to"), "{at}");
                let mut i = 6;
                let mut limit = 1000;
                let mut direction = Direction::Backward;
                loop {
                    match words[i] {
                        "limit" => {
                            limit = words[i + 1].parse().unwrap();
                            i += 2;
                        }
                        "forward" => {
                            direction = Direction::Forward;
                            i += 1;
                        }
                        "backward" => i += 1,
                        _ => break,
                    }
                }
                let p = RangeParams {
                    start_ns: dur_ns(words[3]),
                    end_ns: dur_ns(words[5]),
                    step_ns: 1,
                    limit,
                    direction,
                };
                (self.store.range_query(rest_after(header, i), p), true)
            }
            other => panic!("{at}: unknown eval kind {other}"),
        };
        check(&at, header, result, expect, ordered);
    }
}

/// The text after the first `n` whitespace-separated words.
fn rest_after(s: &str, n: usize) -> &str {
    let mut rest = s.trim_start();
    for _ in 0..n {
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        rest = rest[end..].trim_start();
    }
    rest
}

fn parse_expect(kind: &str, body: &[&str]) -> Expect {
    match body.first().map(|l| l.trim()) {
        Some(l) if l.starts_with("expect fail") => {
            return Expect::Fail(l["expect fail".len()..].trim().to_string())
        }
        Some("expect empty") => return Expect::Empty,
        Some(l) if l.starts_with("scalar ") => {
            return Expect::Scalar(parse_value(&l[7..]).unwrap())
        }
        _ => {}
    }
    if kind == "logs" {
        let mut streams: Vec<(Labels, Vec<(i64, String)>)> = Vec::new();
        for l in body {
            let (labels, rest) = split_labels(l);
            let rest = rest.strip_prefix('@').unwrap();
            let (t, text) = rest.split_once(' ').unwrap();
            let entry = (dur_ns(t), quoted(text));
            match streams.iter_mut().find(|(ls, _)| *ls == labels) {
                Some((_, e)) => e.push(entry),
                None => streams.push((labels, vec![entry])),
            }
        }
        return Expect::Logs(streams);
    }
    Expect::Samples(
        body.iter()
            .map(|l| {
                let (labels, rest) = split_labels(l);
                (labels, rest.split_whitespace().map(parse_value).collect())
            })
            .collect(),
    )
}

fn check(
    at: &str,
    header: &str,
    result: Result<QueryResult, logstore::Error>,
    expect: Expect,
    ordered: bool,
) {
    let result = match (result, &expect) {
        (Err(e), Expect::Fail(want)) => {
            assert!(
                e.to_string().contains(want.as_str()),
                "{at}: {header}\nerror {e:?} lacks {want:?}"
            );
            return;
        }
        (Err(e), _) => panic!("{at}: {header}\nunexpected error: {e}"),
        (Ok(r), Expect::Fail(want)) => panic!("{at}: {header}\nwanted failure {want:?}, got {r:?}"),
        (Ok(r), _) => r,
    };
    // Samples as (labels, values per step).
    let got: Vec<(Labels, Vec<Option<f64>>)> = match &result {
        QueryResult::Vector(v) => v.iter().map(|(l, x)| (l.clone(), vec![Some(*x)])).collect(),
        QueryResult::Matrix(m) => {
            let steps: std::collections::BTreeSet<i64> = m
                .iter()
                .flat_map(|s| s.points.iter().map(|p| p.0))
                .collect();
            let _ = steps;
            m.iter()
                .map(|s| {
                    (
                        s.labels.clone(),
                        s.points.iter().map(|p| Some(p.1)).collect(),
                    )
                })
                .collect()
        }
        _ => Vec::new(),
    };
    match expect {
        Expect::Empty => {
            let empty = match &result {
                QueryResult::Streams(s) => s.is_empty(),
                QueryResult::Scalar(_) => false,
                _ => got.is_empty(),
            };
            assert!(empty, "{at}: {header}\nwanted empty, got {result:?}");
        }
        Expect::Scalar(want) => match result {
            QueryResult::Scalar(v) => assert!(close(v, want), "{at}: {header}\n{v} != {want}"),
            other => panic!("{at}: {header}\nwanted a scalar, got {other:?}"),
        },
        Expect::Logs(want) => {
            let QueryResult::Streams(streams) = result else {
                panic!("{at}: {header}\nwanted streams, got {result:?}")
            };
            let got: Vec<(Labels, Vec<(i64, String)>)> = streams
                .into_iter()
                .map(|s| {
                    (
                        s.labels,
                        s.entries.into_iter().map(|e| (e.ts_ns, e.line)).collect(),
                    )
                })
                .collect();
            let mut want = want;
            want.sort_by(|a, b| a.0.cmp(&b.0));
            assert_eq!(got, want, "{at}: {header}");
        }
        Expect::Samples(want) => {
            if let QueryResult::Matrix(m) = &result {
                // Range results: align each series' points with the steps by timestamp.
                let words: Vec<&str> = header.split_whitespace().collect();
                let (start, end, step) = (dur_ns(words[3]), dur_ns(words[5]), dur_ns(words[7]));
                let steps: Vec<i64> = (0..)
                    .map(|i| start + i * step)
                    .take_while(|t| *t <= end)
                    .collect();
                let got: Vec<(Labels, Vec<Option<f64>>)> = m
                    .iter()
                    .map(|s| {
                        let vals = steps
                            .iter()
                            .map(|t| s.points.iter().find(|p| p.0 == *t).map(|p| p.1))
                            .collect();
                        (s.labels.clone(), vals)
                    })
                    .collect();
                compare(at, header, got, want, false);
            } else {
                compare(at, header, got, want, ordered);
            }
        }
        Expect::Fail(_) => {}
    }
}

fn compare(
    at: &str,
    header: &str,
    mut got: Vec<(Labels, Vec<Option<f64>>)>,
    mut want: Vec<(Labels, Vec<Option<f64>>)>,
    ordered: bool,
) {
    if !ordered {
        got.sort_by(|a, b| a.0.cmp(&b.0));
        want.sort_by(|a, b| a.0.cmp(&b.0));
    }
    let same = got.len() == want.len()
        && got.iter().zip(&want).all(|(g, w)| {
            g.0 == w.0
                && g.1.len() == w.1.len()
                && g.1.iter().zip(&w.1).all(|(a, b)| match (a, b) {
                    (Some(a), Some(b)) => close(*a, *b),
                    (None, None) => true,
                    _ => false,
                })
        });
    assert!(same, "{at}: {header}\n got: {got:?}\nwant: {want:?}");
}

fn run_script(path: &Path) -> usize {
    let text = std::fs::read_to_string(path).unwrap();
    let file = path.file_name().unwrap().to_string_lossy().to_string();
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path()).unwrap();
    let mut r = Runner {
        file: &file,
        dir,
        store,
        evals: 0,
    };
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim();
        let start = i;
        i += 1;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        // The indented lines (or, for load, every line up to a blank one) form the body.
        let mut body = Vec::new();
        while i < lines.len() && lines[i].starts_with([' ', '\t']) && !lines[i].trim().is_empty() {
            if !lines[i].trim().starts_with('#') {
                body.push(lines[i].trim());
            }
            i += 1;
        }
        if line == "clear" {
            r.reset();
        } else if line == "load" {
            r.load(&body);
        } else if line.starts_with("eval ") {
            r.eval(line, &body, start + 1);
        } else {
            panic!("{file}:{}: unknown command {line:?}", start + 1);
        }
    }
    r.evals
}

#[test]
fn logql_scripts() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/logql");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "test"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty());
    let mut total = 0;
    for p in &paths {
        total += run_script(p);
    }
    assert!(total > 50, "only {total} evals ran");
}
