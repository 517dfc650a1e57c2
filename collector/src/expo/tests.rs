//! Tricky exposition inputs, in both formats: escapes, separators inside quoted values,
//! special floats, duplicates, bad UTF-8, very long lines, and the error each bad line gets.

use super::*;

fn text(body: &str) -> Exposition<'_> {
    parse(body, Format::Text).unwrap()
}

fn text_err(body: &str) -> ParseError {
    parse(body, Format::Text).unwrap_err()
}

#[test]
fn escaped_quotes_backslashes_and_newlines_in_label_values() {
    let e = text("a{path=\"C:\\\\dir\\\\\",msg=\"say \\\"hi\\\"\\nbye\"} 1\n");
    let l = &e.samples[0].labels;
    assert_eq!(l[0], ("path", "C:\\dir\\".into()));
    assert_eq!(l[1], ("msg", "say \"hi\"\nbye".into()));
}

#[test]
fn commas_equals_and_braces_inside_values() {
    // The inputs prometheus-parse loses: every label survives with its exact value.
    let e = text("q{query=\"a=b,c\",x=\"}\",y=\"{,}\"} 3\n");
    let l = &e.samples[0].labels;
    assert_eq!(l.len(), 3);
    assert_eq!(l[0].1, "a=b,c");
    assert_eq!(l[1].1, "}");
    assert_eq!(l[2].1, "{,}");
    assert_eq!(e.samples[0].value, 3.0);
}

#[test]
fn nan_and_infinities() {
    let e = text("a NaN\nb +Inf\nc -Inf\nd Inf\n");
    assert!(e.samples[0].value.is_nan());
    assert_eq!(e.samples[1].value, f64::INFINITY);
    assert_eq!(e.samples[2].value, f64::NEG_INFINITY);
    assert_eq!(e.samples[3].value, f64::INFINITY);
}

#[test]
fn text_format_details() {
    let body = "# HELP http_requests_total The total.\\nSecond \\\\ line.\n# TYPE http_requests_total counter\n\
        http_requests_total{method=\"post\",code=\"200\",} 1027 1395066363000\n\
        \t  http_requests_total { method = \"get\" }\t3   -3982045  \n\
        # a plain comment\n\n\
        job:rate5m{job=\"a\"} 1.5\n\
        foo{} 1\n";
    let e = text(body);
    assert_eq!(e.families[0].kind, MetricKind::Counter);
    assert_eq!(e.families[0].help, "The total.\nSecond \\ line.");
    assert_eq!(e.samples[0].timestamp_ms, Some(1395066363000));
    assert_eq!(e.samples[1].labels, [("method", "get".into())]);
    assert_eq!(e.samples[1].timestamp_ms, Some(-3982045));
    assert_eq!(e.samples[2].name, "job:rate5m");
    assert_eq!(e.samples[3].labels, []);
    assert_eq!(
        e.samples.iter().map(|s| s.family).collect::<Vec<_>>(),
        [0, 0, 1, 2]
    );
}

#[test]
fn histograms_and_summaries_group_into_one_family() {
    let body =
        "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n\
        # TYPE s summary\ns{quantile=\"0.5\"} 1\ns_sum 1\ns_count 1\n";
    let e = text(body);
    assert_eq!(e.families.len(), 2);
    assert!(e.samples[..4].iter().all(|s| s.family == 0));
    assert!(e.samples[4..].iter().all(|s| s.family == 1));
}

#[test]
fn duplicate_series_are_kept_as_written() {
    let e = text("a{x=\"1\"} 1\na{x=\"1\"} 2\n");
    assert_eq!(e.samples.len(), 2);
    assert_eq!(e.samples[1].value, 2.0);
}

#[test]
fn bad_utf8_is_refused_with_its_line() {
    let body = b"a 1\nb{x=\"\xff\xfe\"} 2\n";
    let err = parse_bytes(body, Format::Text).unwrap_err();
    assert_eq!(err.line, 2);
    assert!(err.reason.contains("UTF-8"), "{err}");
    let err = parse_bytes(b"# EOF\xc3", Format::OpenMetrics).unwrap_err();
    assert_eq!(err.line, 1);
}

#[test]
fn one_mebibyte_lines() {
    let long = "v".repeat(1 << 20);
    let body = format!("a{{big=\"{long}\"}} 1\n");
    let e = text(&body);
    assert_eq!(e.samples[0].labels[0].1.len(), 1 << 20);
    // A long bad token is reported, clipped, without echoing a megabyte.
    let bad = format!("a {long}\n");
    let err = text_err(&bad);
    assert!(err.reason.len() < 200, "{}", err.reason.len());
    let om = format!("a{{big=\"{long}\"}} 1\n# EOF\n");
    assert_eq!(parse(&om, Format::OpenMetrics).unwrap().samples.len(), 1);
}

#[test]
fn text_errors_name_the_line_and_reason() {
    for (body, line, needle) in [
        ("a 1\nb{x=\"1\" 2\n", 2, "expected ',' or '}'"),
        ("a{x=1} 1\n", 1, "'\"'"),
        ("a{x=\"1\"}\n", 1, "value"),
        ("a 1 1.5\n", 1, "timestamp"),
        ("a 1 2 3\n", 1, "unexpected text"),
        ("1a 1\n", 1, "metric name"),
        ("a{x=\"1\",x=\"2\"} 1\n", 1, "duplicate label"),
        ("a{x=\"unterminated} 1\n", 1, "unterminated"),
        ("# TYPE a gauge\n# TYPE a gauge\n", 2, "second TYPE"),
        ("a 1\n# TYPE a gauge\n", 2, "after its samples"),
        ("# TYPE a histgram\n", 1, "invalid metric type"),
        ("# HELP 0a x\n", 1, "invalid metric name"),
        ("a{\"my.metric\"} 1\n", 1, "label name"),
    ] {
        let err = text_err(body);
        assert_eq!(err.line, line, "{body:?}: {err}");
        assert!(err.reason.contains(needle), "{body:?}: {err}");
    }
}

#[test]
fn openmetrics_timestamps_exemplars_and_created() {
    let body = "# TYPE foo_seconds counter\n# UNIT foo_seconds seconds\n# HELP foo_seconds Help.\n\
        foo_seconds_total{a=\"b\"} 17.0 1520879607.789 # {trace_id=\"KOO5S4vxi0o\"} 0.67 1520879606.5\n\
        foo_seconds_created{a=\"b\"} 1520430000.123 1520879607.789\n# EOF\n";
    let e = parse(body, Format::OpenMetrics).unwrap();
    let f = &e.families[0];
    assert_eq!(
        (f.name, f.kind, f.unit, f.help.as_ref()),
        ("foo_seconds", MetricKind::Counter, "seconds", "Help.")
    );
    let s = &e.samples[0];
    assert_eq!(s.timestamp_ms, Some(1520879607789));
    let ex = s.exemplar.as_ref().unwrap();
    assert_eq!((ex.value, ex.timestamp_ms), (0.67, Some(1520879606500)));
    assert_eq!(ex.labels, [("trace_id", "KOO5S4vxi0o".into())]);
    assert_eq!(e.samples[1].name, "foo_seconds_created");
    assert_eq!(e.samples[1].family, 0);
}

#[test]
fn content_types() {
    assert_eq!(
        Format::from_content_type("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        Format::OpenMetrics
    );
    assert_eq!(
        Format::from_content_type("text/plain; version=0.0.4"),
        Format::Text
    );
    assert_eq!(Format::from_content_type(""), Format::Text);
}

#[test]
fn garbage_never_panics() {
    // Every prefix of a rich body, in both formats: errors are fine, panics are not.
    let body = "# HELP a x\\n\n# TYPE a histogram\na_bucket{le=\"1\",x=\"\\\\\\\"\"} 1 # {t=\"é\"} 1 2\na_bucket{le=\"+Inf\"} 2\na_sum 1\na_count 2\n# EOF\n";
    for end in 0..=body.len() {
        if let Some(prefix) = body.get(..end) {
            let _ = parse(prefix, Format::Text);
            let _ = parse(prefix, Format::OpenMetrics);
        }
    }
    for b in 0u8..=255 {
        let mut bytes = body.as_bytes().to_vec();
        bytes[30] = b;
        let _ = parse_bytes(&bytes, Format::OpenMetrics);
        let _ = parse_bytes(&bytes, Format::Text);
    }
}
