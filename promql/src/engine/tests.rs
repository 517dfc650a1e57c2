//! Whole-query tests: PromQL text in, results out, on `MemStorage` with hand-computed
//! expectations. Kernel-level edge cases live beside the kernels.

use super::*;
use model::{parse_label_set, Appender, Matcher, MemStorage, StorageError, STALE_NAN_BITS};
use std::sync::atomic::{AtomicUsize, Ordering};

const S: i64 = 1_000;
const M: i64 = 60 * S;

/// Labels from `name{a="b", ...}` text.
fn labels(text: &str) -> Labels {
    let (name, rest) = match text.find('{') {
        Some(i) => (&text[..i], &text[i..]),
        None => (text, "{}"),
    };
    parse_label_set(rest).unwrap().with("__name__", name)
}

fn store(data: &[(&str, &[(i64, f64)])]) -> Arc<MemStorage> {
    let s = MemStorage::new();
    let batch: Vec<Series> = data
        .iter()
        .map(|(l, pts)| Series {
            labels: labels(l),
            samples: pts.iter().map(|&(t, v)| Sample { t, v }).collect(),
        })
        .collect();
    s.append(&batch).unwrap();
    Arc::new(s)
}

fn engine(store: Arc<MemStorage>) -> Engine {
    Engine::new(store, EngineOptions::default())
}

fn render(v: &Value) -> Vec<String> {
    match v {
        Value::Scalar { v, .. } => vec![format!("scalar {v}")],
        Value::String { s, .. } => vec![format!("string {s}")],
        Value::Vector(v) => v.iter().map(|e| format!("{} {}", e.labels, e.v)).collect(),
        Value::Matrix(m) => m
            .iter()
            .map(|s| {
                let pts: Vec<String> = s
                    .samples
                    .iter()
                    .map(|p| format!("{}@{}", p.v, p.t))
                    .collect();
                format!("{} [{}]", s.labels, pts.join(" "))
            })
            .collect(),
    }
}

fn instant(e: &Engine, q: &str, t: i64) -> Vec<String> {
    render(
        &e.instant_query(q, t)
            .unwrap_or_else(|err| panic!("{q}: {err}"))
            .value,
    )
}

/// The single value of an instant query that must return exactly one element or a scalar.
fn one(e: &Engine, q: &str, t: i64) -> f64 {
    match e
        .instant_query(q, t)
        .unwrap_or_else(|err| panic!("{q}: {err}"))
        .value
    {
        Value::Vector(v) if v.len() == 1 => v[0].v,
        Value::Scalar { v, .. } => v,
        other => panic!("{q}: expected one value, got {other:?}"),
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

fn exec_err(e: &Engine, q: &str, t: i64) -> String {
    match e.instant_query(q, t) {
        Err(Error::Execution(m)) => m,
        other => panic!("{q}: expected an execution error, got {other:?}"),
    }
}

/// Three jobs' request and error counts, and capacity per job; all constant from t=0.
fn matching_store() -> Arc<MemStorage> {
    let at0 = |v: f64| -> Vec<(i64, f64)> { vec![(0, v)] };
    let data: Vec<(&str, Vec<(i64, f64)>)> = vec![
        (r#"req{job="api", inst="a"}"#, at0(10.0)),
        (r#"req{job="api", inst="b"}"#, at0(20.0)),
        (r#"req{job="db", inst="c"}"#, at0(30.0)),
        (r#"err{job="api", inst="a"}"#, at0(1.0)),
        (r#"err{job="api", inst="b"}"#, at0(4.0)),
        (r#"err{job="db", inst="c"}"#, at0(3.0)),
        (r#"cap{job="api"}"#, at0(100.0)),
        (r#"cap{job="db"}"#, at0(50.0)),
        (r#"lim{job="api", inst="a", src="cfg"}"#, at0(40.0)),
    ];
    let refs: Vec<(&str, &[(i64, f64)])> = data.iter().map(|(l, p)| (*l, p.as_slice())).collect();
    store(&refs)
}

#[test]
fn literals_parens_and_unary_minus() {
    let e = engine(store(&[]));
    assert_eq!(instant(&e, "1 + 2 * 3", 0), ["scalar 7"]);
    assert_eq!(instant(&e, "-(2 ^ 3) % 5", 0), ["scalar -3"]);
    assert_eq!(instant(&e, "2 > bool 1", 0), ["scalar 1"]);
    assert_eq!(instant(&e, r#""hello""#, 5), ["string hello"]);
    let r = e.instant_query("(42)", 7_000).unwrap();
    assert_eq!(r.value, Value::Scalar { t: 7_000, v: 42.0 });
}

#[test]
fn selectors_with_all_matcher_types() {
    let e = engine(store(&[
        (r#"up{job="api", instance="a"}"#, &[(0, 1.0)]),
        (r#"up{job="api", instance="b"}"#, &[(0, 0.0)]),
        (r#"up{job="db", instance="c"}"#, &[(0, 1.0)]),
        (r#"down{job="api"}"#, &[(0, 5.0)]),
    ]));
    let names = |q: &str| -> Vec<String> {
        match e.instant_query(q, 10 * S).unwrap().value {
            Value::Vector(v) => v
                .iter()
                .map(|x| x.labels.get("instance").unwrap_or("-").to_string())
                .collect(),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(names(r#"up{job="api"}"#), ["a", "b"]);
    assert_eq!(names(r#"up{job!="api"}"#), ["c"]);
    assert_eq!(names(r#"up{instance=~"a|c"}"#), ["a", "c"]);
    assert_eq!(names(r#"up{instance!~"a|b"}"#), ["c"]);
    assert_eq!(
        names(r#"up{job=~"ap"}"#),
        Vec::<String>::new(),
        "regex is anchored"
    );
    assert_eq!(
        names(r#"{__name__=~"up|down", job="api"}"#),
        ["-", "a", "b"]
    );
    assert_eq!(
        instant(&e, r#"up{instance="c"}"#, 10 * S),
        [r#"{__name__="up", instance="c", job="db"} 1"#]
    );
}

#[test]
fn lookback_excludes_a_sample_exactly_five_minutes_old() {
    let e = engine(store(&[("g", &[(0, 7.0)])]));
    assert_eq!(instant(&e, "g", 0), [r#"{__name__="g"} 7"#]);
    assert_eq!(instant(&e, "g", 5 * M - 1), [r#"{__name__="g"} 7"#]);
    assert!(instant(&e, "g", 5 * M).is_empty());
    assert!(
        instant(&e, "g", -1).is_empty(),
        "samples in the future are invisible"
    );
    let short = EngineOptions {
        lookback_delta: Duration::from_secs(60),
        ..EngineOptions::default()
    };
    let e = Engine::new(store(&[("g", &[(0, 7.0)])]), short);
    assert_eq!(instant(&e, "g", M - 1), [r#"{__name__="g"} 7"#]);
    assert!(instant(&e, "g", M).is_empty());
    let zero = EngineOptions {
        lookback_delta: Duration::ZERO,
        ..EngineOptions::default()
    };
    let e = Engine::new(store(&[("g", &[(0, 7.0)])]), zero);
    assert_eq!(
        instant(&e, "g", 5 * M - 1).len(),
        1,
        "zero means the default"
    );
}

#[test]
fn staleness_marker_ends_the_series() {
    let stale = f64::from_bits(STALE_NAN_BITS);
    let e = engine(store(&[(
        r#"c_total{job="x"}"#,
        &[(0, 0.0), (15 * S, 15.0), (30 * S, 30.0), (45 * S, stale)],
    )]));
    assert_eq!(one(&e, "c_total", 44 * S), 30.0);
    assert!(instant(&e, "c_total", 45 * S).is_empty());
    assert!(instant(&e, "c_total", 2 * M).is_empty());
    // Range selectors skip the marker: rate at 45s sees 0, 15, 30 in (-15s, 45s]. The start
    // gap (15s) is within 1.1 * 15s but the zero point is right at the first sample; the end
    // gap 15s is extrapolated: 30 * (30 + 0 + 15) / 30 / 60.
    assert!(close(one(&e, "rate(c_total[1m])", 45 * S), 0.75));
    assert_eq!(
        instant(&e, "c_total[1m]", 45 * S),
        [r#"{__name__="c_total", job="x"} [0@0 15@15000 30@30000]"#]
    );
}

#[test]
fn offset_positive_negative_and_at() {
    let pts: Vec<(i64, f64)> = (0..=3).map(|i| (i * M, i as f64)).collect();
    let e = engine(store(&[("x", &pts)]));
    assert_eq!(one(&e, "x offset 1m", 2 * M), 1.0);
    assert_eq!(one(&e, "x offset -1m", M), 2.0);
    assert_eq!(
        instant(&e, "x[2m] offset 1m", 3 * M),
        [r#"{__name__="x"} [1@60000 2@120000]"#]
    );
    assert_eq!(one(&e, "x @ 60", 3 * M), 1.0);
    assert_eq!(one(&e, "x @ 120 offset 1m", 3 * M), 1.0);
    let r = e.range_query("x @ end()", 0, 3 * M, M).unwrap();
    assert_eq!(
        render(&r.value),
        [r#"{__name__="x"} [3@0 3@60000 3@120000 3@180000]"#]
    );
}

#[test]
fn range_selector_is_left_open() {
    let pts: Vec<(i64, f64)> = (0..=4).map(|i| (i * 15 * S, i as f64)).collect();
    let e = engine(store(&[("x", &pts)]));
    let r = e.instant_query("x[1m]", M).unwrap();
    assert_eq!(
        render(&r.value),
        [r#"{__name__="x"} [1@15000 2@30000 3@45000 4@60000]"#]
    );
}

/// A counter scraped every 15s that resets between 30s and 45s.
fn counter_with_reset() -> Arc<MemStorage> {
    store(&[(
        r#"requests_total{job="api"}"#,
        &[
            (0, 10.0),
            (15 * S, 25.0),
            (30 * S, 40.0),
            (45 * S, 5.0),
            (60 * S, 20.0),
            (75 * S, 35.0),
        ],
    )])
}

#[test]
fn rate_and_increase_extrapolate_across_a_counter_reset() {
    let e = engine(counter_with_reset());
    // At 75s the window (15s, 75s] holds 40, 5, 20, 35: increase 35 - 40 + 40 (reset) = 35
    // over 45s sampled; the first sample is 15s from the start (< 1.1 * 15s), the last is at
    // the end, so it extrapolates to 60s: 35 * 60/45.
    let r = e.instant_query("rate(requests_total[1m])", 75 * S).unwrap();
    assert_eq!(r.infos, Vec::<String>::new());
    let Value::Vector(v) = &r.value else {
        panic!("{r:?}")
    };
    assert_eq!(v[0].labels.to_string(), r#"{job="api"}"#);
    assert!(close(v[0].v, 35.0 / 45.0), "{}", v[0].v);
    assert!(close(
        one(&e, "increase(requests_total[1m])", 75 * S),
        140.0 / 3.0
    ));
    // irate: the last two samples, 20 -> 35 over 15s; at 45s a reset: 5 over 15s.
    assert!(close(one(&e, "irate(requests_total[1m])", 75 * S), 1.0));
    assert!(close(
        one(&e, "irate(requests_total[1m])", 45 * S),
        5.0 / 15.0
    ));
    assert!(
        instant(&e, "rate(requests_total[10s])", 75 * S).is_empty(),
        "one sample"
    );
}

#[test]
fn delta_over_time_functions_and_non_counter_info() {
    let e = engine(store(&[(
        r#"temperature{room="a"}"#,
        &[(0, 20.0), (30 * S, 22.0), (60 * S, 21.0), (90 * S, 25.0)],
    )]));
    // Window (-30s, 90s]: +5 over 90s sampled, 30s to the start (< 33s): 5 * 120/90.
    assert!(close(
        one(&e, "delta(temperature[2m])", 90 * S),
        5.0 * 4.0 / 3.0
    ));
    // rate treats the 22 -> 21 drop as a reset: 5 + 22 = 27, extrapolated the same way.
    let r = e.instant_query("rate(temperature[2m])", 90 * S).unwrap();
    let Value::Vector(v) = &r.value else {
        panic!("{r:?}")
    };
    assert!(close(v[0].v, 27.0 / 90.0), "{}", v[0].v);
    assert_eq!(
        r.infos,
        [
            "PromQL info: metric might not be a counter, name does not end in \
          _total/_sum/_count/_bucket: \"temperature\""
        ]
    );
    assert!(r.warnings.is_empty());
    for (q, want) in [
        ("sum_over_time(temperature[2m])", 88.0),
        ("avg_over_time(temperature[2m])", 22.0),
        ("min_over_time(temperature[2m])", 20.0),
        ("max_over_time(temperature[2m])", 25.0),
        ("count_over_time(temperature[2m])", 4.0),
        ("idelta(temperature[2m])", 4.0),
    ] {
        assert_eq!(
            instant(&e, q, 90 * S),
            [format!(r#"{{room="a"}} {want}"#)],
            "{q}"
        );
    }
    assert_eq!(
        instant(&e, "last_over_time(temperature[2m])", 90 * S),
        [r#"{__name__="temperature", room="a"} 25"#],
        "last_over_time keeps the metric name"
    );
}

#[test]
fn time_vector_scalar_abs() {
    let e = engine(store(&[
        (r#"g{a="1"}"#, &[(0, -3.0)]),
        (r#"g{a="2"}"#, &[(0, 4.0)]),
    ]));
    assert_eq!(instant(&e, "time()", 90 * S), ["scalar 90"]);
    assert_eq!(instant(&e, "vector(time() * 2)", 90 * S), ["{} 180"]);
    assert_eq!(instant(&e, r#"scalar(g{a="1"})"#, S), ["scalar -3"]);
    assert_eq!(instant(&e, "scalar(g)", S), ["scalar NaN"], "two elements");
    assert_eq!(instant(&e, "abs(g)", S), [r#"{a="1"} 3"#, r#"{a="2"} 4"#]);
    assert_eq!(instant(&e, "-g", S), [r#"{a="1"} 3"#, r#"{a="2"} -4"#]);
}

#[test]
fn aggregations_by_without_and_plain() {
    let e = engine(store(&[
        (r#"mem{job="api", instance="a"}"#, &[(0, 1.0)]),
        (r#"mem{job="api", instance="b"}"#, &[(0, 2.0)]),
        (r#"mem{job="db", instance="c"}"#, &[(0, 4.0)]),
        (r#"mem{job="db", instance="d"}"#, &[(0, 8.0)]),
    ]));
    let t = S;
    assert_eq!(
        instant(&e, "sum by (job) (mem)", t),
        [r#"{job="api"} 3"#, r#"{job="db"} 12"#]
    );
    assert_eq!(
        instant(&e, "sum without (instance) (mem)", t),
        [r#"{job="api"} 3"#, r#"{job="db"} 12"#],
        "without drops the metric name too"
    );
    assert_eq!(
        instant(&e, "sum by (__name__) (mem)", t),
        [r#"{__name__="mem"} 15"#]
    );
    assert_eq!(instant(&e, "sum(mem)", t), ["{} 15"]);
    assert_eq!(
        instant(&e, "avg by (job) (mem)", t),
        [r#"{job="api"} 1.5"#, r#"{job="db"} 6"#]
    );
    assert_eq!(instant(&e, "min(mem)", t), ["{} 1"]);
    assert_eq!(
        instant(&e, "max(mem) by (job)", t),
        [r#"{job="api"} 2"#, r#"{job="db"} 8"#]
    );
    assert_eq!(
        instant(&e, "count without (job) (mem)", t),
        [
            r#"{instance="a"} 1"#,
            r#"{instance="b"} 1"#,
            r#"{instance="c"} 1"#,
            r#"{instance="d"} 1"#
        ]
    );
    assert!(instant(&e, "sum(nothing)", t).is_empty());
}

#[test]
fn vector_matching_one_to_one_with_on_and_ignoring() {
    let e = engine(matching_store());
    assert_eq!(
        instant(&e, "err / req", S),
        [
            r#"{inst="a", job="api"} 0.1"#,
            r#"{inst="b", job="api"} 0.2"#,
            r#"{inst="c", job="db"} 0.1"#
        ]
    );
    assert_eq!(
        instant(&e, "sum by (job) (req) / on(job) cap", S),
        [r#"{job="api"} 0.3"#, r#"{job="db"} 0.6"#]
    );
    assert_eq!(
        instant(&e, "err - on(inst) req", S),
        [r#"{inst="a"} -9"#, r#"{inst="b"} -16"#, r#"{inst="c"} -27"#],
        "on() keeps only the matching labels"
    );
    assert_eq!(
        instant(&e, "req / ignoring(src) lim", S),
        [r#"{inst="a", job="api"} 0.25"#]
    );
    assert!(
        instant(&e, "req / lim", S).is_empty(),
        "src differs, nothing matches"
    );
    assert_eq!(
        instant(&e, "req / ignoring(inst) group_left cap", S),
        [
            r#"{inst="a", job="api"} 0.1"#,
            r#"{inst="b", job="api"} 0.2"#,
            r#"{inst="c", job="db"} 0.6"#
        ]
    );
}

#[test]
fn many_to_many_and_implicit_many_to_one_are_errors() {
    let e = engine(matching_store());
    assert_eq!(
        exec_err(&e, "cap / ignoring(inst) req", S),
        r#"found duplicate series for the match group {job="api"} on the right hand-side of the operation: [{__name__="req", inst="a", job="api"}, {__name__="req", inst="b", job="api"}];many-to-many matching not allowed: matching labels must be unique on one side"#
    );
    assert_eq!(
        exec_err(&e, "req / on(job) cap", S),
        "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)"
    );
}

#[test]
fn comparisons_filter_or_return_bool() {
    let e = engine(matching_store());
    assert_eq!(
        instant(&e, "req > 15", S),
        [
            r#"{__name__="req", inst="b", job="api"} 20"#,
            r#"{__name__="req", inst="c", job="db"} 30"#
        ],
        "filtering keeps the metric name"
    );
    assert_eq!(
        instant(&e, "15 < req", S),
        instant(&e, "req > 15", S),
        "the vector's own value is kept when the scalar is on the left"
    );
    assert_eq!(
        instant(&e, "req > bool 15", S),
        [
            r#"{inst="a", job="api"} 0"#,
            r#"{inst="b", job="api"} 1"#,
            r#"{inst="c", job="db"} 1"#
        ]
    );
    // err * 5 is 5, 20, 15.
    assert_eq!(
        instant(&e, "req > err * 5", S),
        [
            r#"{__name__="req", inst="a", job="api"} 10"#,
            r#"{__name__="req", inst="c", job="db"} 30"#
        ]
    );
    assert_eq!(
        instant(&e, "req == bool err * 10", S),
        [
            r#"{inst="a", job="api"} 1"#,
            r#"{inst="b", job="api"} 0"#,
            r#"{inst="c", job="db"} 1"#
        ]
    );
}

#[test]
fn set_operators() {
    let e = engine(matching_store());
    let insts = |q: &str| -> Vec<String> {
        match e.instant_query(q, S).unwrap().value {
            Value::Vector(v) => v.iter().map(|x| x.labels.to_string()).collect(),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(
        insts("req and err > 2"),
        [
            r#"{__name__="req", inst="b", job="api"}"#,
            r#"{__name__="req", inst="c", job="db"}"#
        ]
    );
    assert_eq!(
        insts("req unless err > 2"),
        [r#"{__name__="req", inst="a", job="api"}"#]
    );
    assert_eq!(insts("req or cap").len(), 5);
    assert_eq!(insts("req or lim").len(), 4, "src keeps lim apart from req");
    assert_eq!(
        insts("req or ignoring(src) lim").len(),
        3,
        "lim's group is taken"
    );
    assert_eq!(
        insts("req and on(job) cap{job=\"db\"}"),
        [r#"{__name__="req", inst="c", job="db"}"#]
    );
}

#[test]
fn arithmetic_that_merges_series_is_an_error() {
    let e = engine(store(&[
        (r#"a_total{x="1"}"#, &[(0, 0.0), (30 * S, 30.0)]),
        (r#"b_total{x="1"}"#, &[(0, 0.0), (30 * S, 60.0)]),
    ]));
    assert_eq!(
        exec_err(&e, r#"rate({__name__=~"a_total|b_total"}[1m])"#, 30 * S),
        "vector cannot contain metrics with the same labelset"
    );
    assert_eq!(
        instant(&e, r#"{__name__=~"a_total|b_total"} > 40"#, 30 * S),
        [r#"{__name__="b_total", x="1"} 60"#]
    );
}

#[test]
fn range_query_returns_a_sorted_matrix() {
    let e = engine(store(&[
        (r#"a{i="2"}"#, &[(60 * S, 10.0)]),
        (
            r#"a{i="1"}"#,
            &[
                (0, 1.0),
                (30 * S, 2.0),
                (60 * S, 3.0),
                (90 * S, 4.0),
                (120 * S, 5.0),
            ],
        ),
    ]));
    let r = e.range_query("a", 0, 2 * M, M).unwrap();
    assert_eq!(
        render(&r.value),
        [
            r#"{__name__="a", i="1"} [1@0 3@60000 5@120000]"#,
            r#"{__name__="a", i="2"} [10@60000 10@120000]"#
        ]
    );
    let r = e.range_query("sum(a)", 0, 2 * M, M).unwrap();
    assert_eq!(render(&r.value), ["{} [1@0 13@60000 15@120000]"]);
    let r = e.range_query("time()", 0, 2 * M, M).unwrap();
    assert_eq!(render(&r.value), ["{} [0@0 60@60000 120@120000]"]);
    let r = e.range_query("a > 100", 0, 2 * M, M).unwrap();
    assert_eq!(r.value, Value::Matrix(Vec::new()));
}

#[test]
fn range_query_rejects_bad_parameters_and_types() {
    let e = engine(store(&[]));
    for (q, start, end, step, want) in [
        ("a[1m]", 0, 10, 1, r#""range vector" for range query"#),
        (r#""s""#, 0, 10, 1, r#""string" for range query"#),
        ("a", 0, 10, 0, "zero or negative query resolution step"),
        ("a", 10, 0, 1, "end timestamp must not be before start time"),
        (
            "a",
            0,
            11_001,
            1,
            "exceeded maximum resolution of 11,000 points",
        ),
        ("sum(", 0, 10, 1, ""),
    ] {
        match e.range_query(q, start, end, step) {
            Err(Error::Parse(m)) => assert!(m.contains(want), "{q}: {m}"),
            other => panic!("{q}: expected a parse error, got {other:?}"),
        }
    }
    assert!(e.range_query("a", 0, 11_000, 1).is_ok());
}

/// A store that counts `select` calls, to show each selector reads storage once per query.
#[derive(Debug, Default)]
struct CountingStore {
    inner: MemStorage,
    selects: AtomicUsize,
}

impl Querier for CountingStore {
    fn select(&self, mint: i64, maxt: i64, m: &[Matcher]) -> Result<Vec<Series>, StorageError> {
        self.selects.fetch_add(1, Ordering::SeqCst);
        self.inner.select(mint, maxt, m)
    }
    fn label_names(&self, a: i64, b: i64, m: &[Matcher]) -> Result<Vec<String>, StorageError> {
        self.inner.label_names(a, b, m)
    }
    fn label_values(
        &self,
        n: &str,
        a: i64,
        b: i64,
        m: &[Matcher],
    ) -> Result<Vec<String>, StorageError> {
        self.inner.label_values(n, a, b, m)
    }
}

fn counting_store() -> Arc<CountingStore> {
    let s = CountingStore::default();
    let samples: Vec<Sample> = (0..=40)
        .map(|i| Sample {
            t: i * 15 * S,
            v: i as f64,
        })
        .collect();
    s.inner
        .append(&[Series {
            labels: labels(r#"c_total{job="x"}"#),
            samples,
        }])
        .unwrap();
    Arc::new(s)
}

#[test]
fn range_query_reads_storage_once_per_selector() {
    let s = counting_store();
    let e = Engine::new(s.clone(), EngineOptions::default());
    let r = e
        .range_query("rate(c_total[1m]) * 60 + c_total", 2 * M, 10 * M, 10 * S)
        .unwrap();
    assert_eq!(s.selects.load(Ordering::SeqCst), 2);
    let Value::Matrix(m) = r.value else {
        panic!("{:?}", r.value)
    };
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].samples.len(), 49);
    // At 2m the counter is 8 and rises 1 per 15s: rate * 60 = 4, so 12.
    assert!(close(m[0].samples[0].v, 12.0), "{:?}", m[0].samples[0]);
}

#[test]
fn unsupported_features_fail_before_reading_storage() {
    let s = counting_store();
    let e = Engine::new(s.clone(), EngineOptions::default());
    for (q, name) in [
        ("info(c_total)", "info"),
        ("max_over_time(info(c_total)[5m:1m])", "info"),
        ("c_total + fill(0) c_total", "fill"),
    ] {
        let m = exec_err(&e, q, M);
        assert!(m.contains(name) && m.contains("not supported"), "{q}: {m}");
    }
    assert_eq!(s.selects.load(Ordering::SeqCst), 0);
    assert!(matches!(e.instant_query("sum(", 0), Err(Error::Parse(_))));
}

#[test]
fn sample_limit_and_timeout() {
    let s = counting_store();
    let opts = EngineOptions {
        // The instant selector loads the 20 samples of its 5m lookback, the range selector 40.
        max_samples: 25,
        ..EngineOptions::default()
    };
    let e = Engine::new(s.clone(), opts);
    assert_eq!(
        exec_err(&e, "c_total[10m]", 10 * M),
        "query processing would load too many samples into memory in query execution"
    );
    assert!(e.instant_query("c_total", 10 * M).is_ok());
    let opts = EngineOptions {
        timeout: Duration::ZERO,
        ..EngineOptions::default()
    };
    let e = Engine::new(s, opts);
    assert!(matches!(
        e.range_query("c_total", 0, M, S),
        Err(Error::Timeout(_))
    ));
}

#[test]
fn engine_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Engine>();
    let e = Arc::new(engine(store(&[("g", &[(0, 1.0)])])));
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let e = Arc::clone(&e);
            std::thread::spawn(move || e.instant_query("g", 0).map(|r| r.value))
        })
        .collect();
    for h in handles {
        assert!(matches!(h.join().unwrap(), Ok(Value::Vector(v)) if v.len() == 1));
    }
}
