//! The storage behaviour suite: one set of checks that every store implementing both
//! [`Querier`] and [`Appender`] must pass (STYLE habit 3).
//!
//! A store's test calls [`run_all`] with a constructor; each check gets a fresh store and the
//! first failure panics naming the check, the call and what differed. Expected answers are
//! written by hand for the small fixtures and, for the large one, computed here by applying
//! [`Matcher::matches_labels`] to every label set, never by asking another store, so a bug two
//! stores share is still caught.

use crate::{
    AppendOutcome, Appender, Labels, MatchOp, Matcher, Querier, Sample, Series, STALE_NAN_BITS,
};
use std::fmt::Debug;

mod via_batch;
pub use via_batch::ViaBatch;

/// Runs every check against fresh stores from `make`; panics on the first failing one.
///
/// ```
/// model::conformance::run_all(model::MemStorage::new);
/// ```
pub fn run_all<S: Querier + Appender>(make: impl Fn() -> S) {
    let checks: &[(&'static str, CheckFn<S>)] = &[
        ("every matcher type", check_every_matcher_type),
        (
            "time range bounds are inclusive",
            check_time_range_is_inclusive,
        ),
        ("series are sorted by labels", check_sorted_by_labels),
        (
            "series without samples in range are omitted",
            check_empty_in_range_omitted,
        ),
        ("label names and values", check_label_names_and_values),
        (
            "series() agrees with select()",
            check_series_agrees_with_select,
        ),
        (
            "out-of-order and duplicate samples",
            check_out_of_order_and_duplicates,
        ),
        (
            "identical re-sent batch is stored once",
            check_identical_resend,
        ),
        ("many series with matcher intersections", check_many_series),
        (
            "concurrent appends to different series",
            check_concurrent_appends,
        ),
    ];
    for &(name, check) in checks {
        let store = make();
        check(&Store {
            inner: &store,
            check: name,
        });
    }
}

/// One check of the suite.
type CheckFn<S> = fn(&Store<'_, S>);

/// Matchers written as `(name, op, value)` triples; see [`matchers`].
type Spec<'a> = &'a [(&'a str, &'a str, &'a str)];

/// A store under test, with the name of the running check for failure messages.
struct Store<'a, S> {
    inner: &'a S,
    check: &'static str,
}

impl<S: Querier + Appender> Store<'_, S> {
    fn fail(&self, what: &str) -> ! {
        panic!("storage conformance check `{}` failed: {what}", self.check)
    }

    fn append(&self, batch: &[Series]) -> AppendOutcome {
        self.inner
            .append(batch)
            .unwrap_or_else(|e| self.fail(&format!("append returned an error: {e}")))
    }

    fn select(&self, mint: i64, maxt: i64, ms: &[Matcher]) -> Vec<Series> {
        self.inner
            .select(mint, maxt, ms)
            .unwrap_or_else(|e| self.fail(&format!("select {} [{mint}, {maxt}]: {e}", show(ms))))
    }

    fn series(&self, mint: i64, maxt: i64, ms: &[Matcher]) -> Vec<Labels> {
        self.inner
            .series(mint, maxt, ms)
            .unwrap_or_else(|e| self.fail(&format!("series {} [{mint}, {maxt}]: {e}", show(ms))))
    }

    fn label_names(&self, mint: i64, maxt: i64, ms: &[Matcher]) -> Vec<String> {
        self.inner.label_names(mint, maxt, ms).unwrap_or_else(|e| {
            self.fail(&format!("label_names {} [{mint}, {maxt}]: {e}", show(ms)))
        })
    }

    fn label_values(&self, name: &str, mint: i64, maxt: i64, ms: &[Matcher]) -> Vec<String> {
        self.inner
            .label_values(name, mint, maxt, ms)
            .unwrap_or_else(|e| {
                self.fail(&format!(
                    "label_values {name:?} {} [{mint}, {maxt}]: {e}",
                    show(ms)
                ))
            })
    }

    /// Panics unless `got` equals `want`, pointing at the first difference.
    fn same<T: PartialEq + Debug>(&self, what: &str, got: &[T], want: &[T]) {
        if got == want {
            return;
        }
        let at = got
            .iter()
            .zip(want)
            .position(|(g, w)| g != w)
            .unwrap_or(got.len().min(want.len()));
        self.fail(&format!(
            "{what}: got {} items, want {}; first difference at index {at}: got {:?}, want {:?}",
            got.len(),
            want.len(),
            got.get(at),
            want.get(at),
        ))
    }

    fn same_outcome(&self, what: &str, got: AppendOutcome, want: AppendOutcome) {
        if got != want {
            self.fail(&format!("{what}: got {got:?}, want {want:?}"));
        }
    }
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs.iter().copied())
}

fn series(pairs: &[(&str, &str)], samples: &[(i64, f64)]) -> Series {
    Series {
        labels: labels(pairs),
        samples: samples.iter().map(|&(t, v)| Sample { t, v }).collect(),
    }
}

/// Matchers from `(name, op, value)` triples, `op` written as in PromQL.
fn matchers(spec: &[(&str, &str, &str)]) -> Vec<Matcher> {
    spec.iter()
        .map(|&(name, op, value)| {
            let op = match op {
                "=" => MatchOp::Equal,
                "!=" => MatchOp::NotEqual,
                "=~" => MatchOp::Regex,
                "!~" => MatchOp::NotRegex,
                other => panic!("storage conformance: unknown matcher operator {other:?}"),
            };
            Matcher::new(op, name, value)
                .unwrap_or_else(|e| panic!("storage conformance: bad fixture matcher: {e}"))
        })
        .collect()
}

fn show(ms: &[Matcher]) -> String {
    let parts: Vec<String> = ms.iter().map(|m| m.to_string()).collect();
    format!("{{{}}}", parts.join(", "))
}

/// What a store must answer for `select` over `fixture` (every series with all its samples in
/// range): the matching series, samples trimmed to the range, sorted by labels.
fn expected(fixture: &[Series], mint: i64, maxt: i64, ms: &[Matcher]) -> Vec<Series> {
    let mut out: Vec<Series> = fixture
        .iter()
        .filter(|s| ms.iter().all(|m| m.matches_labels(&s.labels)))
        .map(|s| Series {
            labels: s.labels.clone(),
            samples: s
                .samples
                .iter()
                .filter(|x| mint <= x.t && x.t <= maxt)
                .copied()
                .collect(),
        })
        .filter(|s| !s.samples.is_empty())
        .collect();
    out.sort_by(|a, b| a.labels.cmp(&b.labels));
    out
}

/// Seven series with overlapping and absent labels and values full of regex metacharacters;
/// each is named by its `instance` label.
fn matcher_fixture() -> Vec<Series> {
    let s = |pairs: &[(&str, &str)]| series(pairs, &[(10, 1.0)]);
    vec![
        s(&[
            ("__name__", "m"),
            ("instance", "1"),
            ("job", "api"),
            ("env", "prod"),
            ("x", "a"),
        ]),
        s(&[
            ("__name__", "m"),
            ("instance", "2"),
            ("job", "api"),
            ("env", "dev"),
        ]),
        s(&[
            ("__name__", "m"),
            ("instance", "3"),
            ("job", "db"),
            ("x", "b"),
        ]),
        s(&[
            ("__name__", "m"),
            ("instance", "4"),
            ("job", "db2"),
            ("x", "ab"),
        ]),
        s(&[("__name__", "other"), ("instance", "5"), ("job", "api")]),
        s(&[
            ("__name__", "m"),
            ("instance", "6"),
            ("job", "a.b"),
            ("x", "a|b"),
        ]),
        s(&[
            ("__name__", "m"),
            ("instance", "7"),
            ("job", "axb"),
            ("x", "A"),
        ]),
    ]
}

fn check_every_matcher_type<S: Querier + Appender>(st: &Store<'_, S>) {
    let fixture = matcher_fixture();
    st.append(&fixture);
    let all = ["1", "2", "3", "4", "5", "6", "7"];
    let none: [&str; 0] = [];
    #[rustfmt::skip]
    let cases: &[(Spec<'_>, &[&str])] = &[
        (&[], &all),
        (&[("job", "=", "api")], &["1", "2", "5"]),
        (&[("job", "!=", "api")], &["3", "4", "6", "7"]),
        (&[("job", "=~", "api|db")], &["1", "2", "3", "5"]),
        (&[("job", "=~", "d.*")], &["3", "4"]),
        (&[("job", "!~", "a.*")], &["3", "4"]),
        // Regexes are anchored at both ends.
        (&[("job", "=~", "ap")], &none),
        (&[("job", "=~", "pi")], &none),
        // `.` is a metacharacter, not a literal, even where a literal value exists.
        (&[("job", "=~", "a.b")], &["6", "7"]),
        (&[("job", "=~", "a\\.b")], &["6"]),
        (&[("x", "=~", "a|b")], &["1", "3"]),
        (&[("x", "=~", "a\\|b")], &["6"]),
        (&[("x", "!~", "a|b")], &["2", "4", "5", "6", "7"]),
        (&[("x", "=~", "(?i)a")], &["1", "7"]),
        // An absent label matches as the empty value.
        (&[("x", "=", "a")], &["1"]),
        (&[("x", "=", "")], &["2", "5"]),
        (&[("x", "!=", "a")], &["2", "3", "4", "5", "6", "7"]),
        (&[("x", "!=", "")], &["1", "3", "4", "6", "7"]),
        (&[("x", "=~", "")], &["2", "5"]),
        (&[("x", "=~", ".*")], &all),
        (&[("x", "=~", ".+")], &["1", "3", "4", "6", "7"]),
        (&[("x", "!~", "")], &["1", "3", "4", "6", "7"]),
        (&[("x", "!~", ".+")], &["2", "5"]),
        (&[("x", "=~", "a|b|")], &["1", "2", "3", "5"]),
        (&[("nope", "=", "")], &all),
        (&[("nope", "=", "v")], &none),
        (&[("nope", "!=", "v")], &all),
        (&[("nope", "=~", ".+")], &none),
        (&[("nope", "=~", ".*")], &all),
        (&[("nope", "!~", ".*")], &none),
        (&[("nope", "=~", "v|w")], &none),
        // Several matchers intersect, also on one label name.
        (&[("__name__", "=", "m"), ("x", "!=", "a"), ("job", "=~", "api|db")], &["2", "3"]),
        (&[("__name__", "=", "m"), ("job", "=~", "a.*"), ("x", "=~", ".+")], &["1", "6", "7"]),
        (&[("job", "=", "api"), ("job", "!=", "api")], &none),
        (&[("x", "=~", "a|b"), ("x", "!=", "b")], &["1"]),
        (&[("x", "=", ""), ("env", "=", "")], &["5"]),
        (&[("env", "!=", "prod"), ("x", "!~", "a|b|A")], &["2", "4", "5", "6"]),
    ];
    for &(spec, want_ids) in cases {
        let ms = matchers(spec);
        let mut want: Vec<Series> = fixture
            .iter()
            .filter(|s| want_ids.contains(&s.labels.get("instance").unwrap_or("")))
            .cloned()
            .collect();
        want.sort_by(|a, b| a.labels.cmp(&b.labels));
        let got = st.select(0, 100, &ms);
        st.same(&format!("select {}", show(&ms)), &got, &want);
    }
}

fn check_time_range_is_inclusive<S: Querier + Appender>(st: &Store<'_, S>) {
    let a = series(
        &[("s", "a")],
        &[(-10, -1.0), (10, 1.0), (20, 2.0), (30, 3.0), (40, 4.0)],
    );
    let b = series(&[("s", "b")], &[(100, 5.0)]);
    st.same_outcome(
        "append",
        st.append(&[a.clone(), b.clone()]),
        AppendOutcome {
            appended: 6,
            ..AppendOutcome::default()
        },
    );
    let fixture = [a, b];
    for (mint, maxt) in [
        (20, 30),
        (10, 10),
        (40, 40),
        (-10, -10),
        (-20, 0),
        (31, 39),
        (41, 99),
        (0, 1000),
        (100, 100),
        (101, 200),
        (50, 20),
        (i64::MIN, i64::MAX),
    ] {
        let want = expected(&fixture, mint, maxt, &[]);
        st.same(
            &format!("select {{}} [{mint}, {maxt}]"),
            &st.select(mint, maxt, &[]),
            &want,
        );
    }
    // Spot-check the oracle so a shared off-by-one cannot hide.
    let got = st.select(20, 30, &[]);
    let times: Vec<i64> = got.iter().flat_map(|s| &s.samples).map(|s| s.t).collect();
    st.same("sample times in [20, 30]", &times, &[20, 30]);
}

fn check_sorted_by_labels<S: Querier + Appender>(st: &Store<'_, S>) {
    let sets: [&[(&str, &str)]; 8] = [
        &[("a", "2")],
        &[("b", "0")],
        &[("a", "1"), ("b", "1")],
        &[("__name__", "z")],
        &[("a", "10")],
        &[("__name__", "a"), ("a", "9")],
        &[("a", "1")],
        &[("__name__", "a")],
    ];
    // Half the series arrive one batch each, the rest in one batch in reverse order.
    for pairs in &sets[..4] {
        st.append(&[series(pairs, &[(1, 1.0)])]);
    }
    let rest: Vec<Series> = sets[4..]
        .iter()
        .rev()
        .map(|p| series(p, &[(1, 1.0)]))
        .collect();
    st.append(&rest);
    let mut want: Vec<Labels> = sets.iter().map(|p| labels(p)).collect();
    want.sort();
    let got: Vec<Labels> = st
        .select(0, 10, &[])
        .into_iter()
        .map(|s| s.labels)
        .collect();
    st.same("select order", &got, &want);
    st.same("series order", &st.series(0, 10, &[]), &want);
}

fn check_empty_in_range_omitted<S: Querier + Appender>(st: &Store<'_, S>) {
    let early = series(&[("job", "early"), ("only_early", "1")], &[(10, 1.0)]);
    let late = series(&[("job", "late"), ("only_late", "1")], &[(100, 1.0)]);
    // A series sent without samples must not come into being.
    let empty = series(&[("job", "ghost"), ("only_ghost", "1")], &[]);
    st.append(&[early.clone(), late, empty]);

    st.same(
        "select [0, 50]",
        &st.select(0, 50, &[]),
        std::slice::from_ref(&early),
    );
    st.same("series [0, 50]", &st.series(0, 50, &[]), &[early.labels]);
    st.same(
        "label_names [0, 50]",
        &st.label_names(0, 50, &[]),
        &["job".to_string(), "only_early".to_string()],
    );
    st.same(
        "label_values job [0, 50]",
        &st.label_values("job", 0, 50, &[]),
        &["early".to_string()],
    );
    st.same("select [200, 300]", &st.select(200, 300, &[]), &[]);
    st.same("series [200, 300]", &st.series(200, 300, &[]), &[]);
    st.same(
        "label_names [200, 300]",
        &st.label_names(200, 300, &[]),
        &[],
    );
    st.same(
        "label_values [200, 300]",
        &st.label_values("job", 200, 300, &[]),
        &[],
    );
    let all = st.label_values("job", i64::MIN, i64::MAX, &[]);
    st.same(
        "label_values job over all time (no ghost)",
        &all,
        &["early".to_string(), "late".to_string()],
    );
}

fn check_label_names_and_values<S: Querier + Appender>(st: &Store<'_, S>) {
    st.append(&matcher_fixture());
    // Instance 8 is the only one with `late`, and only after t=20.
    st.append(&[series(
        &[("__name__", "m"), ("instance", "8"), ("late", "yes")],
        &[(50, 1.0)],
    )]);
    // (label for label_values, or None for label_names; maxt; matchers; answer), mint 0.
    #[rustfmt::skip]
    let cases: &[(Option<&str>, i64, Spec<'_>, &[&str])] = &[
        (None, 20, &[], &["__name__", "env", "instance", "job", "x"]),
        (None, 100, &[], &["__name__", "env", "instance", "job", "late", "x"]),
        (None, 20, &[("job", "=", "db")], &["__name__", "instance", "job", "x"]),
        (None, 20, &[("__name__", "=", "other")], &["__name__", "instance", "job"]),
        (None, 20, &[("nope", "=", "v")], &[]),
        (Some("job"), 20, &[], &["a.b", "api", "axb", "db", "db2"]),
        (Some("__name__"), 20, &[], &["m", "other"]),
        (Some("x"), 20, &[("job", "=", "api")], &["a"]),
        (Some("job"), 20, &[("job", "=~", "a.*")], &["a.b", "api", "axb"]),
        (Some("env"), 20, &[("x", "=", "")], &["dev"]),
        (Some("late"), 20, &[], &[]),
        (Some("late"), 100, &[], &["yes"]),
        (Some("nope"), 100, &[], &[]),
    ];
    for &(label, maxt, spec, want) in cases {
        let ms = matchers(spec);
        let want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
        match label {
            None => st.same(
                &format!("label_names {} [0, {maxt}]", show(&ms)),
                &st.label_names(0, maxt, &ms),
                &want,
            ),
            Some(name) => st.same(
                &format!("label_values {name:?} {} [0, {maxt}]", show(&ms)),
                &st.label_values(name, 0, maxt, &ms),
                &want,
            ),
        }
    }
}

fn check_series_agrees_with_select<S: Querier + Appender>(st: &Store<'_, S>) {
    st.append(&matcher_fixture());
    let specs: [Spec<'_>; 5] = [
        &[],
        &[("job", "=", "api")],
        &[("x", "!=", "a")],
        &[("x", "=~", "a|b|")],
        &[("__name__", "=", "m"), ("job", "=~", "a.*")],
    ];
    for spec in specs {
        let ms = matchers(spec);
        let from_select: Vec<Labels> = st
            .select(0, 100, &ms)
            .into_iter()
            .map(|s| s.labels)
            .collect();
        st.same(
            &format!("series {}", show(&ms)),
            &st.series(0, 100, &ms),
            &from_select,
        );
    }
}

fn sample_bits(st: &Store<'_, impl Querier + Appender>, ms: &[Matcher]) -> Vec<(i64, u64)> {
    st.select(i64::MIN, i64::MAX, ms)
        .iter()
        .flat_map(|s| &s.samples)
        .map(|s| (s.t, s.v.to_bits()))
        .collect()
}

fn bits(samples: &[(i64, f64)]) -> Vec<(i64, u64)> {
    samples.iter().map(|&(t, v)| (t, v.to_bits())).collect()
}

fn check_out_of_order_and_duplicates<S: Querier + Appender>(st: &Store<'_, S>) {
    let outcome = |appended, out_of_order, duplicate_timestamp| AppendOutcome {
        appended,
        out_of_order,
        duplicate_timestamp,
        ..AppendOutcome::default()
    };
    let a = [("s", "a")];
    let sel_a = matchers(&[("s", "=", "a")]);
    st.same_outcome(
        "first append",
        st.append(&[series(&a, &[(10, 1.0), (20, 2.0)])]),
        outcome(2, 0, 0),
    );
    // Older than the newest sample: out of order, even when identical to a stored one.
    // Same timestamp as the newest: identical is accepted silently, different conflicts.
    let batch = [
        series(&a, &[(5, 0.0), (20, 2.0), (20, 9.0), (10, 1.0), (30, 3.0)]),
        series(&[("s", "other")], &[(1, 1.0)]),
    ];
    st.same_outcome("second append", st.append(&batch), outcome(2, 2, 1));
    st.same(
        "series a after refusals",
        &sample_bits(st, &sel_a),
        &bits(&[(10, 1.0), (20, 2.0), (30, 3.0)]),
    );
    st.same(
        "a refused sample does not affect another series of the batch",
        &sample_bits(st, &matchers(&[("s", "=", "other")])),
        &bits(&[(1, 1.0)]),
    );

    // Within one batch, each sample is judged against those accepted before it.
    let b = [("s", "b")];
    st.same_outcome(
        "within one batch",
        st.append(&[series(
            &b,
            &[(10, 1.0), (10, 1.0), (5, 0.0), (10, 2.0), (11, 1.0)],
        )]),
        outcome(2, 1, 1),
    );
    st.same(
        "series b",
        &sample_bits(st, &matchers(&[("s", "=", "b")])),
        &bits(&[(10, 1.0), (11, 1.0)]),
    );

    // The same labels twice in one batch append in order.
    st.same_outcome(
        "same labels twice in one batch",
        st.append(&[series(&a, &[(40, 4.0)]), series(&a, &[(50, 5.0)])]),
        outcome(2, 0, 0),
    );

    // Staleness markers are compared by bits: re-sent is fine, another NaN conflicts.
    let stale = f64::from_bits(STALE_NAN_BITS);
    let c = [("s", "c")];
    st.same_outcome(
        "stale marker",
        st.append(&[series(&c, &[(10, 1.0), (20, stale)])]),
        outcome(2, 0, 0),
    );
    st.same_outcome(
        "re-sent stale marker",
        st.append(&[series(&c, &[(20, stale)])]),
        outcome(0, 0, 0),
    );
    st.same_outcome(
        "a different NaN at the stale marker's timestamp",
        st.append(&[series(&c, &[(20, f64::NAN)])]),
        outcome(0, 0, 1),
    );
    st.same(
        "series c keeps the stale marker bits",
        &sample_bits(st, &matchers(&[("s", "=", "c")])),
        &[(10, 1.0f64.to_bits()), (20, STALE_NAN_BITS)],
    );
}

fn check_identical_resend<S: Querier + Appender>(st: &Store<'_, S>) {
    let batch = [
        series(&[("s", "a")], &[(10, 1.0)]),
        series(&[("s", "b")], &[(15, 1.5)]),
    ];
    let appended = |n| AppendOutcome {
        appended: n,
        ..AppendOutcome::default()
    };
    st.same_outcome("first send", st.append(&batch), appended(2));
    // At-least-once delivery re-sends whole batches: nothing new is stored, nothing refused.
    st.same_outcome("re-send", st.append(&batch), AppendOutcome::default());
    st.same("stored once", &st.select(0, 100, &[]), &batch);

    // Only the newest sample of a series is exempt: an older one re-sent is out of order,
    // as the AppendOutcome docs define it.
    let longer = [series(&[("s", "c")], &[(10, 1.0), (20, 2.0)])];
    st.same_outcome("first send of two samples", st.append(&longer), appended(2));
    st.same_outcome(
        "re-send of two samples",
        st.append(&longer),
        AppendOutcome {
            out_of_order: 1,
            ..AppendOutcome::default()
        },
    );
    st.same(
        "two samples stored once",
        &st.select(0, 100, &matchers(&[("s", "=", "c")])),
        &longer,
    );
}

/// 1000 series over four labels of different cardinality, one sample each at `t = i`, and a
/// `rare` label on every hundredth.
fn many_series_fixture() -> Vec<Series> {
    (0..1000)
        .map(|i: i64| {
            let name = format!("metric_{}", i % 10);
            let instance = format!("host-{i}");
            let shard = (i % 7).to_string();
            let zone = format!("z{}", i % 3);
            let rare = if i % 100 == 0 { "yes" } else { "" };
            series(
                &[
                    ("__name__", name.as_str()),
                    ("instance", instance.as_str()),
                    ("shard", shard.as_str()),
                    ("zone", zone.as_str()),
                    ("rare", rare),
                ],
                &[(i, i as f64)],
            )
        })
        .collect()
}

fn check_many_series<S: Querier + Appender>(st: &Store<'_, S>) {
    let fixture = many_series_fixture();
    let mut appended = 0;
    for chunk in fixture.chunks(100) {
        appended += st.append(chunk).appended;
    }
    if appended != fixture.len() {
        st.fail(&format!(
            "appended {appended} samples, want {}",
            fixture.len()
        ));
    }
    #[rustfmt::skip]
    let cases: &[Spec<'_>] = &[
        &[],
        &[("__name__", "=", "metric_3")],
        &[("__name__", "=", "metric_3"), ("shard", "=", "2")],
        &[("__name__", "=~", "metric_(1|3|5)"), ("shard", "=", "2"), ("zone", "=~", "z0|z1")],
        &[("__name__", "=~", "metric_1|metric_3|metric_5"), ("zone", "!=", "z1")],
        &[("zone", "!=", "z0"), ("shard", "!~", "1|2|3")],
        &[("instance", "=~", "host-1.*"), ("zone", "=", "z2")],
        &[("__name__", "=", "metric_3"), ("rare", "=", "")],
        &[("rare", "=", "yes")],
        &[("rare", "!=", "yes"), ("__name__", "=", "metric_0")],
        &[("rare", "=~", ".+"), ("zone", "=", "z1")],
        &[("instance", "=", "host-999")],
        &[("instance", "=~", "host-(1|22|333)")],
        &[("instance", "=~", "host-1|host-22|host-333"), ("shard", "!=", "1")],
        &[("__name__", "!~", "metric_.*")],
        &[("__name__", "=", "metric_1"), ("__name__", "=", "metric_2")],
    ];
    for spec in cases {
        let ms = matchers(spec);
        for (mint, maxt) in [(i64::MIN, i64::MAX), (250, 749)] {
            let want = expected(&fixture, mint, maxt, &ms);
            let what = format!("{} [{mint}, {maxt}]", show(&ms));
            st.same(
                &format!("select {what}"),
                &st.select(mint, maxt, &ms),
                &want,
            );
            let want_labels: Vec<Labels> = want.iter().map(|s| s.labels.clone()).collect();
            st.same(
                &format!("series {what}"),
                &st.series(mint, maxt, &ms),
                &want_labels,
            );

            let mut names: Vec<String> = want_labels
                .iter()
                .flat_map(|l| l.iter().map(|l| l.name.clone()))
                .collect();
            names.sort();
            names.dedup();
            st.same(
                &format!("label_names {what}"),
                &st.label_names(mint, maxt, &ms),
                &names,
            );

            for label in ["zone", "instance"] {
                let mut values: Vec<String> = want_labels
                    .iter()
                    .filter_map(|l| l.get(label).map(str::to_string))
                    .collect();
                values.sort();
                values.dedup();
                st.same(
                    &format!("label_values {label:?} {what}"),
                    &st.label_values(label, mint, maxt, &ms),
                    &values,
                );
            }
        }
    }
}

fn check_concurrent_appends<S: Querier + Appender>(st: &Store<'_, S>) {
    const THREADS: usize = 4;
    const SERIES_PER_THREAD: usize = 50;
    const ROUNDS: i64 = 20;
    let appended: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|thread| {
                scope.spawn(move || {
                    let mut appended = 0;
                    for t in 0..ROUNDS {
                        let batch: Vec<Series> = (0..SERIES_PER_THREAD)
                            .map(|i| {
                                let id = format!("{thread}-{i}");
                                series(&[("id", id.as_str())], &[(t, t as f64)])
                            })
                            .collect();
                        appended += st.append(&batch).appended;
                    }
                    appended
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| st.fail("an appending thread panicked"))
            })
            .sum()
    });
    let total = THREADS * SERIES_PER_THREAD * ROUNDS as usize;
    if appended != total {
        st.fail(&format!("appended {appended} samples, want {total}"));
    }
    let got = st.select(i64::MIN, i64::MAX, &[]);
    if got.len() != THREADS * SERIES_PER_THREAD {
        st.fail(&format!(
            "{} series, want {}",
            got.len(),
            THREADS * SERIES_PER_THREAD
        ));
    }
    for s in &got {
        let times: Vec<i64> = s.samples.iter().map(|x| x.t).collect();
        let want: Vec<i64> = (0..ROUNDS).collect();
        st.same(&format!("samples of {}", s.labels), &times, &want);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemStorage;

    #[test]
    fn memstore_passes_conformance() {
        run_all(MemStorage::new);
    }
}
