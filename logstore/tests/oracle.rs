//! The oracle test: a few hundred generated queries over generated logs, answered by the
//! [`LogStore`] (tantivy, pushed-down matchers and needles, paging, fast-field scans) and by a
//! deliberately naive evaluator here that scans every line for every query. The answers must
//! be equal.
//!
//! Queries are generated as small structs, rendered to LogQL for the store and interpreted
//! directly by the naive side, so the two share no code beyond `model::Matcher`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use logstore::{Direction, LogStore, LogStoreOptions, QueryResult, RangeParams};
use model::{Labels, LogEntry, LogStream, MatchOp, Matcher};
use std::collections::BTreeMap;

const S: i64 = 1_000_000_000;
const APPS: [&str; 3] = ["api", "web", "db"];
const PODS: [&str; 3] = ["p1", "p2", "p3"];
const LEVELS: [&str; 3] = ["info", "warn", "error"];
const WORDS: [&str; 8] = [
    "connect",
    "timeout",
    "GET",
    "POST",
    "retry",
    "Connection",
    "ok",
    "failed",
];

struct Line {
    labels: Labels,
    ts: i64,
    text: String,
}

fn generate(rng: &mut fastrand::Rng) -> Vec<Line> {
    let mut lines = Vec::new();
    for (i, _) in (0..3000).enumerate() {
        let app = APPS[rng.usize(..APPS.len())];
        let pod = PODS[rng.usize(..PODS.len())];
        // Distinct timestamps keep the order of a log query unambiguous.
        let ts = rng.i64(0..600) * S + i as i64;
        let text = format!(
            "level={} status={} msg=\"{} {}\"",
            LEVELS[rng.usize(..3)],
            [200, 404, 500][rng.usize(..3)],
            WORDS[rng.usize(..WORDS.len())],
            WORDS[rng.usize(..WORDS.len())]
        );
        lines.push(Line {
            labels: Labels::from_pairs([("app", app), ("pod", pod)]),
            ts,
            text,
        });
    }
    lines
}

#[derive(Debug)]
struct Query {
    matchers: Vec<(String, MatchOp, String)>,
    /// The same matchers compiled once, for the naive side.
    compiled: Vec<Matcher>,
    /// (negated, needle)
    needles: Vec<(bool, String)>,
    /// `| logfmt | level="x"`
    level: Option<String>,
}

impl Query {
    fn gen(rng: &mut fastrand::Rng) -> Query {
        let mut matchers: Vec<(String, MatchOp, String)> = vec![match rng.u8(..3) {
            0 => ("app".into(), MatchOp::Equal, APPS[rng.usize(..3)].into()),
            1 => (
                "app".into(),
                MatchOp::Regex,
                format!("{}|{}", APPS[rng.usize(..3)], APPS[rng.usize(..3)]),
            ),
            _ => ("pod".into(), MatchOp::Regex, "p[12]".into()),
        }];
        if rng.bool() {
            matchers.push(("pod".into(), MatchOp::NotEqual, PODS[rng.usize(..3)].into()));
        }
        let needles = (0..rng.usize(..3))
            .map(|_| {
                (
                    rng.u8(..4) == 0,
                    WORDS[rng.usize(..WORDS.len())].to_string(),
                )
            })
            .collect();
        let level = rng.bool().then(|| LEVELS[rng.usize(..3)].to_string());
        let compiled = matchers
            .iter()
            .map(|(n, op, v)| Matcher::new(*op, n, v).unwrap())
            .collect();
        Query {
            matchers,
            compiled,
            needles,
            level,
        }
    }

    fn logql(&self) -> String {
        let sel: Vec<String> = self
            .matchers
            .iter()
            .map(|(n, op, v)| {
                let op = match op {
                    MatchOp::Equal => "=",
                    MatchOp::NotEqual => "!=",
                    MatchOp::Regex => "=~",
                    MatchOp::NotRegex => "!~",
                };
                format!("{n}{op}{v:?}")
            })
            .collect();
        let mut q = format!("{{{}}}", sel.join(", "));
        for (neg, n) in &self.needles {
            q.push_str(&format!(" {} {n:?}", if *neg { "!=" } else { "|=" }));
        }
        if let Some(l) = &self.level {
            q.push_str(&format!(" | logfmt | level={l:?}"));
        }
        q
    }

    /// The naive answer for one line: its output labels if it passes.
    fn eval(&self, line: &Line) -> Option<Labels> {
        if !self.compiled.iter().all(|m| m.matches_labels(&line.labels)) {
            return None;
        }
        for (neg, n) in &self.needles {
            if line.text.contains(n.as_str()) == *neg {
                return None;
            }
        }
        let Some(level) = &self.level else {
            return Some(line.labels.clone());
        };
        // The generated lines are `level=L status=S msg="W1 W2"`.
        let mut labels = line.labels.clone();
        let (head, msg) = line.text.split_once(" msg=").unwrap();
        for kv in head.split(' ') {
            let (k, v) = kv.split_once('=').unwrap();
            labels = labels.with(k, v);
        }
        labels = labels.with("msg", msg.trim_matches('"'));
        (labels.get("level") == Some(level.as_str())).then_some(labels)
    }
}

fn naive_logs(
    lines: &[Line],
    q: &Query,
    start: i64,
    end: i64,
    limit: usize,
    dir: Direction,
) -> Vec<LogStream> {
    let mut hits: Vec<(i64, Labels, &str)> = lines
        .iter()
        .filter(|l| l.ts >= start && l.ts < end)
        .filter_map(|l| q.eval(l).map(|labels| (l.ts, labels, l.text.as_str())))
        .collect();
    hits.sort_by_key(|h| h.0);
    if dir == Direction::Backward {
        hits.reverse();
    }
    hits.truncate(limit);
    let mut streams: BTreeMap<Labels, Vec<LogEntry>> = BTreeMap::new();
    for (ts, labels, text) in hits {
        streams.entry(labels).or_default().push(LogEntry {
            ts_ns: ts,
            line: text.into(),
            metadata: vec![],
        });
    }
    streams
        .into_iter()
        .map(|(labels, entries)| LogStream { labels, entries })
        .collect()
}

#[derive(Clone, Copy, Debug)]
enum Func {
    Count,
    Rate,
    Bytes,
}

/// A metric query: `f(query [range])`, summed by app or not, over a range of steps.
struct MetricQuery<'a> {
    q: &'a Query,
    f: Func,
    range: i64,
    by_app: bool,
    start: i64,
    end: i64,
    step: i64,
}

fn naive_metric(lines: &[Line], m: &MetricQuery<'_>) -> BTreeMap<Labels, Vec<(i64, f64)>> {
    let MetricQuery {
        q,
        f,
        range,
        by_app,
        start,
        end,
        step,
    } = *m;
    let mut out: BTreeMap<Labels, Vec<(i64, f64)>> = BTreeMap::new();
    let mut t = start;
    while t <= end {
        let mut at: BTreeMap<Labels, f64> = BTreeMap::new();
        for l in lines.iter().filter(|l| l.ts > t - range && l.ts <= t) {
            if let Some(labels) = q.eval(l) {
                let key = if by_app {
                    labels.only(&["app"])
                } else {
                    labels
                };
                let v = match f {
                    Func::Count | Func::Rate => 1.0,
                    Func::Bytes => l.text.len() as f64,
                };
                *at.entry(key).or_default() += v;
            }
        }
        for (k, mut v) in at {
            if let Func::Rate = f {
                v /= range as f64 / S as f64;
            }
            out.entry(k).or_default().push((t, v));
        }
        t += step;
    }
    out
}

#[test]
fn store_agrees_with_a_naive_scan() {
    let mut rng = fastrand::Rng::with_seed(0x5eed_1095);
    let lines = generate(&mut rng);
    let dir = tempfile::tempdir().unwrap();
    // Commits only when the test asks, so that it decides which entries are pending.
    let options = LogStoreOptions {
        commit_interval: std::time::Duration::from_secs(3600),
        ..LogStoreOptions::default()
    };
    let store = LogStore::open_with(dir.path(), options).unwrap();
    // Pushed in five batches: the first three are committed in two commits (so the index has
    // several segments), the last two are left pending, so queries merge entries searched in
    // memory with committed ones, interleaved in time.
    for (i, chunk) in lines.chunks(700).enumerate() {
        let streams: Vec<LogStream> = chunk
            .iter()
            .map(|l| LogStream {
                labels: l.labels.clone(),
                entries: vec![LogEntry {
                    ts_ns: l.ts,
                    line: l.text.clone(),
                    metadata: vec![],
                }],
            })
            .collect();
        store.push(&streams).unwrap();
        if i == 0 || i == 2 {
            store.checkpoint().unwrap();
        }
    }
    assert!(store.pending_entries().unwrap() > 0);
    let seed = rng.u64(..);
    check(&store, &lines, &mut fastrand::Rng::with_seed(seed));
    // The same queries once everything is committed.
    store.checkpoint().unwrap();
    assert_eq!(store.pending_entries().unwrap(), 0);
    check(&store, &lines, &mut fastrand::Rng::with_seed(seed));
}

/// 200 log queries and 100 metric queries, each compared with the naive scan.
fn check(store: &LogStore, lines: &[Line], rng: &mut fastrand::Rng) {
    let mut checked = 0;
    for _ in 0..200 {
        let q = Query::gen(rng);
        let start = rng.i64(0..500) * S;
        let end = start + rng.i64(1..300) * S;
        let limit = [1, 7, 50, 1000][rng.usize(..4)];
        let dir = if rng.bool() {
            Direction::Forward
        } else {
            Direction::Backward
        };
        let got = store
            .query_range(&q.logql(), start, end, limit, dir)
            .unwrap();
        let want = naive_logs(lines, &q, start, end, limit, dir);
        assert_eq!(
            got,
            want,
            "{} [{start}, {end}) limit {limit} {dir:?}",
            q.logql()
        );
        checked += 1;
    }
    for _ in 0..100 {
        let q = Query::gen(rng);
        let f = [Func::Count, Func::Rate, Func::Bytes][rng.usize(..3)];
        let range = [10, 60, 300][rng.usize(..3)] * S;
        let by_app = rng.bool();
        let start = rng.i64(0..400) * S + rng.i64(0..S);
        let step = [7, 30, 60][rng.usize(..3)] * S;
        let end = start + rng.i64(0..20) * step;
        let inner = format!(
            "{}({} [{}s])",
            match f {
                Func::Count => "count_over_time",
                Func::Rate => "rate",
                Func::Bytes => "bytes_over_time",
            },
            q.logql(),
            range / S
        );
        let text = if by_app {
            format!("sum by (app) ({inner})")
        } else {
            inner
        };
        let p = RangeParams {
            start_ns: start,
            end_ns: end,
            step_ns: step,
            limit: 100,
            direction: Direction::Backward,
        };
        let QueryResult::Matrix(got) = store.range_query(&text, p).unwrap() else {
            panic!("{text}")
        };
        let got: BTreeMap<Labels, Vec<(i64, f64)>> =
            got.into_iter().map(|s| (s.labels, s.points)).collect();
        let want = naive_metric(
            lines,
            &MetricQuery {
                q: &q,
                f,
                range,
                by_app,
                start,
                end,
                step,
            },
        );
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>(),
            "{text}"
        );
        for (k, w) in &want {
            let g = &got[k];
            assert_eq!(g.len(), w.len(), "{text} {k}");
            for (a, b) in g.iter().zip(w) {
                assert!(
                    a.0 == b.0 && (a.1 - b.1).abs() < 1e-9 * b.1.abs().max(1.0),
                    "{text} {k}: {a:?} != {b:?}"
                );
            }
        }
        checked += 1;
    }
    assert_eq!(checked, 300);
}
