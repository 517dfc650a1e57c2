//! Parser tests: accepted forms, Loki's error texts, and what is refused as unsupported.

use super::*;
use crate::logql::ast::{BinOp, Cardinality, Expr, MetricExpr, RangeOp, Unwrap, VectorOp};
use crate::logql::QueryError;
use crate::logql::{LineFilterOp, LogQuery};

fn ok(text: &str) -> LogQuery {
    parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn err(text: &str) -> String {
    match parse(text) {
        Ok(q) => panic!("{text} parsed as {q}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn selectors() {
    let q = ok(r#"{app="api", env!="dev", pod=~"api-.*", ns!~"kube-.+"}"#);
    assert_eq!(q.matchers.len(), 4);
    assert_eq!(q.matchers[2].op, MatchOp::Regex);
    assert_eq!(q.matchers[3].value, "kube-.+");
    assert!(q.pipeline.is_empty());
    assert_eq!(
        q.to_string(),
        r#"{app="api", env!="dev", pod=~"api-.*", ns!~"kube-.+"}"#
    );
    // Not empty-compatible: `!= ""` and `!~ ""` reject the empty value.
    ok(r#"{app!=""}"#);
    ok(r#"{app=~".+"}"#);
    ok("{app=`raw`}");
    ok("  (  {a=\"b\"} |= \"x\" )  ");
}

#[test]
fn line_filters() {
    let q = ok(r#"{app="api"} |= "error" != `debug` |~ "time(out)?" !~ "(?i)health""#);
    let ops: Vec<_> = q.leading_line_filters().iter().map(|f| f.op()).collect();
    assert_eq!(
        ops,
        [
            LineFilterOp::Contains,
            LineFilterOp::NotContains,
            LineFilterOp::Regex,
            LineFilterOp::NotRegex
        ]
    );
    assert_eq!(q.leading_line_filters()[1].pattern(), "debug");
    let q = ok("{app=\"api\"} |= \"a\\\"b\" # trailing comment");
    assert_eq!(q.leading_line_filters()[0].pattern(), "a\"b");
}

#[test]
fn syntax_errors_carry_positions() {
    let cases = [
        (
            r#"{foo="bar""#,
            "parse error at line 1, col 11: syntax error: unexpected $end, expecting } or ,",
        ),
        (
            r#"{foo="bar"} |~"#,
            "parse error at line 1, col 15: syntax error: unexpected $end, expecting STRING or ip",
        ),
        (
            r#"{foo="bar"} "foo""#,
            "parse error at line 1, col 13: syntax error: unexpected STRING",
        ),
        (
            r#"{foo="bar"} foo"#,
            "parse error at line 1, col 13: syntax error: unexpected IDENTIFIER",
        ),
        (
            r#"{foo="bar}"#,
            "parse error at line 1, col 6: literal not terminated",
        ),
        (
            r#"{a b="c"}"#,
            "parse error at line 1, col 4: syntax error: unexpected IDENTIFIER, expecting = or =~ or !~ or !=",
        ),
        (
            r#"{a=b}"#,
            "parse error at line 1, col 4: syntax error: unexpected IDENTIFIER, expecting STRING",
        ),
        (
            r#"{a="b",}"#,
            "parse error at line 1, col 8: syntax error: unexpected }, expecting IDENTIFIER",
        ),
        ("", "parse error at line 1, col 1: syntax error: unexpected $end"),
        (
            "{a=\"b\"}\n  |= 5",
            "parse error at line 2, col 6: syntax error: unexpected NUMBER, expecting STRING or ip",
        ),
        (
            r#"({a="b"}"#,
            "parse error at line 1, col 9: syntax error: unexpected $end, expecting )",
        ),
        (
            r#"{a="b"} @"#,
            "parse error at line 1, col 9: syntax error: unexpected character '@'",
        ),
    ];
    for (text, want) in cases {
        assert_eq!(err(text), want, "{text}");
    }
}

#[test]
fn empty_compatible_selectors_are_refused() {
    let want = format!("parse error : {EMPTY_COMPATIBLE_SELECTOR}");
    for text in [
        r#"{}"#,
        r#"{app=~".*"}"#,
        r#"{a!="x"}"#,
        r#"{a="", b!~"y"}"#,
    ] {
        assert_eq!(err(text), want, "{text}");
    }
}

#[test]
fn bad_regexes_are_parse_errors() {
    assert_eq!(
        err(r#"{a=~"("}"#),
        "parse error : error parsing regexp: unclosed group: `(`"
    );
    assert_eq!(
        err(r#"{a="b"} |~ "x[""#),
        "parse error : error parsing regexp: unclosed character class: `x[`"
    );
}

#[test]
fn pattern_line_filters_parse_with_or_and_print_back() {
    let q = ok(r#"{a="b"} |> "<_> x <_>" or "y <_>" !> "<_> debug""#);
    assert_eq!(
        q.to_string(),
        r#"{a="b"} |> "<_> x <_>" or "y <_>" !> "<_> debug""#
    );
    assert!(q
        .leading_line_filters()
        .iter()
        .all(|f| f.op() != LineFilterOp::Contains));
    match parse_expr(r#"{a="b"} |> "<ip> x""#) {
        Err(e) => assert!(
            e.to_string().contains("named captures are not allowed"),
            "{e}"
        ),
        Ok(q) => panic!("{q:?}"),
    }
}

#[test]
fn ip_filters_parse_in_both_forms() {
    let q = ok(
        r#"{a="b"} |= ip("10.0.0.0/8") or ip("::1") != ip("10.0.0.1") | logfmt | addr != ip("192.168.0.1-192.168.0.9")"#,
    );
    assert_eq!(
        q.to_string(),
        r#"{a="b"} |= ip("10.0.0.0/8") or ip("::1") != ip("10.0.0.1") | logfmt | addr!=ip("192.168.0.1-192.168.0.9")"#
    );
    // An ip() filter is no substring: nothing of it is pushed to the index as tokens.
    assert!(q.leading_line_filters().iter().all(|f| f.is_ip()));
    assert!(err(r#"{a="b"} |~ ip("10.0.0.0/8")"#).contains("ip: invalid operation"));
    assert!(
        err(r#"{a="b"} |= ip("10.0.0.0/99")"#).contains(r#"ip: invalid pattern: "10.0.0.0/99""#)
    );
    assert!(err(r#"{a="b"} | addr = ip("nope")"#).contains(r#"ip: invalid pattern: "nope""#));
    assert!(err(r#"{a="b"} | addr > ip("10.0.0.1")"#).contains("syntax error"));
    assert!(err(r#"{a="b"} |= ip(10)"#).contains("syntax error"));
}

#[test]
fn unsupported_constructs_are_named() {
    let cases = [(r#"approx_topk(2, rate({a="b"}[1m]))"#, "`approx_topk` is")];
    for (text, what) in cases {
        match parse_expr(text) {
            Err(QueryError::Unsupported { what: got }) => assert_eq!(got, what, "{text}"),
            other => panic!("{text}: {other:?}"),
        }
    }
}

#[test]
fn label_replace_parses_and_checks_its_arguments() {
    let m =
        metric(r#"label_replace(sum by (pod) (rate({a="b"}[1m])), "p", "$1", "pod", "api-(.*)")"#);
    let MetricExpr::LabelReplace { expr, replace } = m else {
        panic!("{m:?}")
    };
    assert!(matches!(*expr, MetricExpr::Vector { .. }));
    assert_eq!((replace.dst.as_str(), replace.src.as_str()), ("p", "pod"));
    // Anchored: the whole value must match.
    assert!(replace.regex.is_match("api-7"));
    assert!(!replace.regex.is_match("xapi-7"));
    let e = |t: &str| match parse_expr(t) {
        Err(e) => e.to_string(),
        Ok(x) => panic!("{t}: {x:?}"),
    };
    assert!(
        e(r#"label_replace(rate({a="b"}[1m]), "x", "$1", "a", "(")"#)
            .contains("invalid regex in label_replace")
    );
    assert!(
        e(r#"label_replace(rate({a="b"}[1m]), "1x", "$1", "a", "(.*)")"#)
            .contains("invalid destination label name in label_replace: 1x")
    );
    assert!(e(r#"label_replace(rate({a="b"}[1m]), "x", "$1", "a")"#).contains("syntax error"));
    assert!(e(r#"label_replace({a="b"}, "x", "$1", "a", "(.*)")"#).contains("log query"));
}

fn metric(text: &str) -> MetricExpr {
    match parse_expr(text) {
        Ok(Expr::Metric(m)) => m,
        other => panic!("{text}: {other:?}"),
    }
}

fn metric_err(text: &str) -> String {
    match parse_expr(text) {
        Ok(e) => panic!("{text} parsed as {e:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn pipelines_parse_and_print() {
    let cases = [
        (
            r#"{a="b"} |= "x" or "y" != "z""#,
            r#"{a="b"} |= "x" or "y" != "z""#,
        ),
        (r#"{a="b"} | json"#, r#"{a="b"} | json"#),
        (
            r#"{a="b"} | json first="s[0]", ua"#,
            r#"{a="b"} | json first="s[0]",ua="ua""#,
        ),
        (
            r#"{a="b"} | logfmt --strict --keep-empty"#,
            r#"{a="b"} | logfmt --strict --keep-empty"#,
        ),
        (
            r#"{a="b"} | logfmt lvl="level""#,
            r#"{a="b"} | logfmt lvl="level""#,
        ),
        (
            r#"{a="b"} | regexp `(?P<x>\d+)`"#,
            r#"{a="b"} | regexp "(?P<x>\\d+)""#,
        ),
        (
            r#"{a="b"} | pattern "<ip> <_>""#,
            r#"{a="b"} | pattern "<ip> <_>""#,
        ),
        (
            r#"{a="b"} | unpack | decolorize"#,
            r#"{a="b"} | unpack | decolorize"#,
        ),
        (
            r#"{a="b"} | x > 1 and y="z" or (d >= 1s, s < 10KB)"#,
            r#"{a="b"} | ( ( x>1 and y="z" ) or ( d>=1s and s<10KB ) )"#,
        ),
        (
            r#"{a="b"} | x="1" y!="2""#,
            r#"{a="b"} | ( x="1" and y!="2" )"#,
        ),
        (
            r#"{a="b"} | line_format "{{.x}}""#,
            r#"{a="b"} | line_format "{{.x}}""#,
        ),
        (
            r#"{a="b"} | label_format y=x, z="{{.a}}""#,
            r#"{a="b"} | label_format y=x,z="{{.a}}""#,
        ),
        (
            r#"{a="b"} | drop x, y="1" | keep a"#,
            r#"{a="b"} | drop x,y="1" | keep a"#,
        ),
    ];
    for (text, want) in cases {
        assert_eq!(ok(text).to_string(), want, "{text}");
    }
}

#[test]
fn metric_expressions() {
    match metric(r#"sum by (level) (count_over_time({a="b"} | json [5m] offset 1m))"#) {
        MetricExpr::Vector {
            op, grouping, expr, ..
        } => {
            assert_eq!(op, VectorOp::Sum);
            assert_eq!(grouping.unwrap().labels, ["level"]);
            let MetricExpr::Range { op, range, .. } = *expr else {
                panic!()
            };
            assert_eq!(op, RangeOp::CountOverTime);
            assert_eq!(range.range_ns, 300_000_000_000);
            assert_eq!(range.offset_ns, 60_000_000_000);
            assert_eq!(range.query.pipeline.len(), 1);
        }
        other => panic!("{other:?}"),
    }
    match metric(
        r#"quantile_over_time(0.99, {a="b"} | logfmt | unwrap duration(took) | __error__="" [1m]) by (x)"#,
    ) {
        MetricExpr::Range {
            param,
            range,
            grouping,
            ..
        } => {
            assert_eq!(param, Some(0.99));
            assert_eq!(range.unwrap, Some(Unwrap::Duration("took".into())));
            assert_eq!(range.post_unwrap.len(), 1);
            assert!(grouping.is_some());
        }
        other => panic!("{other:?}"),
    }
    // Range before the pipeline, and precedence: `*` binds tighter than `+`.
    match metric(r#"1 + rate({a="b"}[1m] |= "x") * 2"#) {
        MetricExpr::Binary {
            op: BinOp::Add,
            rhs,
            ..
        } => {
            assert!(matches!(*rhs, MetricExpr::Binary { op: BinOp::Mul, .. }))
        }
        other => panic!("{other:?}"),
    }
    match metric("2 ^ 3 ^ 2") {
        MetricExpr::Binary {
            op: BinOp::Pow,
            rhs,
            ..
        } => {
            assert!(
                matches!(*rhs, MetricExpr::Binary { op: BinOp::Pow, .. }),
                "right-assoc"
            )
        }
        other => panic!("{other:?}"),
    }
    match metric(r#"rate({a="b"}[1m]) > bool on (x) group_left (y) rate({a="c"}[1m])"#) {
        MetricExpr::Binary {
            op,
            bool_modifier,
            matching,
            ..
        } => {
            assert_eq!(op, BinOp::Gt);
            assert!(bool_modifier);
            assert_eq!(matching.on, Some((true, vec!["x".to_string()])));
            assert_eq!(matching.card, Cardinality::ManyToOne(vec!["y".into()]));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        metric("vector(1)+vector(1)"),
        MetricExpr::Binary { .. }
    ));
    assert!(matches!(
        metric(r#"topk(2, sum by (a) (rate({a="b"}[1m])))"#),
        MetricExpr::Vector { param: Some(_), .. }
    ));
    assert!(matches!(
        metric(r#"sum(rate({a="b"}[1m])) without (x)"#),
        MetricExpr::Vector { .. }
    ));
}

#[test]
fn metric_errors() {
    let cases = [
        (
            r#"sum_over_time({a="b"}[1m])"#,
            "invalid aggregation sum_over_time without unwrap",
        ),
        (
            r#"count_over_time({a="b"} | unwrap x [1m])"#,
            "invalid aggregation count_over_time with unwrap",
        ),
        (
            r#"count_over_time({a="b"}[1m]) by (x)"#,
            "grouping not allowed for count_over_time",
        ),
        (
            "1 > 2",
            "comparisons between scalars must use BOOL modifier",
        ),
        (r#"count_over_time({a="b"})"#, "unexpected ), expecting ["),
        (r#"{a="b"} | unwrap x"#, "unexpected unwrap"),
        (r#"sum({a="b"})"#, "needs a metric query"),
        (
            r#"{a="b"} | label_format x=a, x=b"#,
            "multiple label name 'x'",
        ),
        (r#"{a="b"} | regexp `(\d+)`"#, "named capture"),
        (r#"{a="b"} | pattern "<_>""#, "named capture"),
        (r#"{a="b"} | line_format "{{ nope }}""#, "not defined"),
        (r#"{a="b"} | x > "1""#, "unexpected STRING"),
        (r#"1 and 2"#, "set operations"),
    ];
    for (text, want) in cases {
        let got = metric_err(text);
        assert!(got.contains(want), "{text}: {got}");
    }
}
