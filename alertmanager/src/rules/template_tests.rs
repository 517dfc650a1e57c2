//! Prometheus template tests: outputs as Prometheus documents them (`template_reference.md`,
//! `template/template_test.go`) and as Prometheus 2.42 rendered them in the captured run.

use super::*;
use crate::rules::QueryFn;

fn expand_with(text: &str, value: f64, query: Option<&QueryFn>) -> String {
    let labels = Labels::from_pairs([
        ("__name__", "up"),
        ("service", "checkout"),
        ("instance", "a:9100"),
    ]);
    let ext = Labels::from_pairs([("cluster", "research")]);
    let data = TemplateData {
        labels: &labels,
        value,
        external_labels: &ext,
        external_url: "http://vigil:9090/prefix",
        query,
        ts_ms: 1_435_065_584_128,
    };
    match Template::parse("__alert_Test", text) {
        Ok(t) => t.expand_or_error_text(&data),
        Err(e) => format!("PARSE {e}"),
    }
}

fn expand(text: &str) -> String {
    expand_with(text, 0.0, None)
}

#[test]
fn renders_the_captured_prometheus_annotation() {
    // alertmanager-captures/inputs/rules.yml, rendered by Prometheus 2.42.
    let text = "value={{ $value }} humanize={{ humanize 1234567.0 }} h1024={{ humanize1024 1048576.0 }} pct={{ humanizePercentage 0.1234 }} dur={{ humanizeDuration 3725 }} ext={{ $externalLabels.cluster }}";
    assert_eq!(
        expand(text),
        "value=0 humanize=1.235M h1024=1Mi pct=12.34% dur=1h 2m 5s ext=research"
    );
    assert_eq!(expand("{{ $labels.service }}-team"), "checkout-team");
}

#[test]
fn data_and_variables() {
    assert_eq!(
        expand("{{ .Labels.service }} {{ $labels.missing }}|{{ $labels.__name__ }}"),
        "checkout |up"
    );
    assert_eq!(
        expand_with("{{ $value }} {{ .Value }}", 1234567.0, None),
        "1.234567e+06 1.234567e+06"
    );
    assert_eq!(
        expand_with("{{ printf \"%.2f\" $value }}", 1234567.0, None),
        "1234567.00"
    );
    assert_eq!(
        expand_with("{{ if gt $value 80.0 }}hot{{ end }}", 81.0, None),
        "hot"
    );
    assert_eq!(
        expand("{{ $externalURL }} {{ externalURL }} {{ pathPrefix }}"),
        "http://vigil:9090/prefix http://vigil:9090/prefix /prefix"
    );
    assert_eq!(
        expand("{{ range $k, $v := $labels }}{{ $k }}={{ $v }} {{ end }}"),
        "__name__=up instance=a:9100 service=checkout "
    );
}

#[test]
fn humanize_family_matches_prometheus_docs() {
    let cases = [
        ("{{ humanize 0 }}", "0"),
        ("{{ humanize 1234 }}", "1.234k"),
        ("{{ humanize 12345 }}", "12.35k"),
        ("{{ humanize 123456 }}", "123.5k"),
        ("{{ humanize 0.1 }}", "100m"),
        ("{{ humanize 0.0001 }}", "100u"),
        ("{{ humanize -1500.0 }}", "-1.5k"),
        ("{{ humanize \"2048\" }}", "2.048k"),
        ("{{ humanize \"+Inf\" }}", "+Inf"),
        ("{{ humanize1024 1023 }}", "1023"),
        ("{{ humanize1024 1024 }}", "1ki"),
        ("{{ humanize1024 1152921504606846976.0 }}", "1Ei"),
        ("{{ humanizeDuration 0 }}", "0s"),
        ("{{ humanizeDuration 0.1 }}", "100ms"),
        ("{{ humanizeDuration 0.0001 }}", "100us"),
        ("{{ humanizeDuration 1.1 }}", "1.1s"),
        ("{{ humanizeDuration 60 }}", "1m 0s"),
        ("{{ humanizeDuration 3600 }}", "1h 0m 0s"),
        ("{{ humanizeDuration 86400 }}", "1d 0h 0m 0s"),
        ("{{ humanizeDuration -3725 }}", "-1h 2m 5s"),
        ("{{ humanizePercentage 0.1234567 }}", "12.35%"),
        ("{{ humanizePercentage 1 }}", "100%"),
        (
            "{{ humanizeTimestamp 1435065584.128 }}",
            "2015-06-23 13:19:44.128 +0000 UTC",
        ),
        (
            "{{ toTime 1435065584.128 }}",
            "2015-06-23 13:19:44.128 +0000 UTC",
        ),
        ("{{ now }}", "1.435065584128e+09"),
    ];
    for (text, want) in cases {
        assert_eq!(expand(text), want, "{text}");
    }
}

#[test]
fn string_functions() {
    let cases = [
        ("{{ title \"aa bb-cc CC\" }}", "Aa Bb-Cc CC"),
        ("{{ toUpper \"aBc\" }} {{ toLower \"aBc\" }}", "ABC abc"),
        ("{{ reReplaceAll \"(a)b\" \"x$1\" \"abab c\" }}", "xaxa c"),
        ("{{ match \"^a+$\" \"aaa\" }} {{ match \"b\" \"aaa\" }}", "true false"),
        ("{{ safeHtml \"<b>\" }}", "<b>"),
        ("{{ graphLink \"rate(x[5m])\" }}", "/graph?g0.expr=rate%28x%5B5m%5D%29&g0.tab=0"),
        ("{{ tableLink \"up\" }}", "/graph?g0.expr=up&g0.tab=1"),
        ("{{ stripPort \"foo.example.com:12345\" }} {{ stripPort \"[::1]:9\" }} {{ stripPort \"noport\" }}", "foo.example.com ::1 noport"),
        ("{{ stripDomain \"foo.example.com:12345\" }} {{ stripDomain \"192.0.2.1:1\" }} {{ stripDomain \"a.b\" }}", "foo:12345 192.0.2.1:1 a"),
        ("{{ printf \"%s=%d\" \"a\" 3 }}", "a=3"),
        ("{{ parseDuration \"1m30s\" }}", "90"),
        ("{{ urlQueryEscape \"a b&c\" }}", "a+b%26c"),
        ("{{ define \"x\" }}{{ .arg0 }} {{ .arg1 }}{{ end }}{{ template \"x\" (args 1 \"two\") }}", "1 two"),
    ];
    for (text, want) in cases {
        assert_eq!(expand(text), want, "{text}");
    }
}

#[test]
fn query_and_sample_functions() {
    let query: QueryFn = Arc::new(|q: &str, ts: i64| {
        assert_eq!(ts, 1_435_065_584_128, "query runs at the evaluation time");
        match q {
            "up" => Ok(vec![
                (Labels::from_pairs([("instance", "b"), ("job", "x")]), 1.0),
                (Labels::from_pairs([("instance", "a"), ("job", "x")]), 0.5),
            ]),
            "none" => Ok(vec![]),
            other => Err(format!("parse error in {other:?}")),
        }
    });
    let q = Some(&query);
    assert_eq!(
        expand_with("{{ query \"up\" | first | value }}", 0.0, q),
        "1"
    );
    assert_eq!(
        expand_with(
            "{{ with query \"up\" }}{{ . | first | label \"instance\" }}{{ end }}",
            0.0,
            q
        ),
        "b"
    );
    assert_eq!(
        expand_with("{{ range query \"up\" | sortByLabel \"instance\" }}{{ .Labels.instance }}={{ .Value }} {{ end }}", 0.0, q),
        "a=0.5 b=1 "
    );
    assert_eq!(
        expand_with(
            "{{ range query \"none\" }}x{{ else }}no data{{ end }}",
            0.0,
            q
        ),
        "no data"
    );
    let err = expand_with("{{ query \"none\" | first | value }}", 0.0, q);
    assert!(
        err.contains("error calling first: first() called on vector with no elements"),
        "{err}"
    );
    let err = expand_with("{{ query \"bad{\" }}", 0.0, q);
    assert!(err.contains("error calling query: parse error"), "{err}");
}

#[test]
fn failures_become_prometheus_error_text() {
    assert_eq!(
        expand("{{ humanize \"abc\" }}"),
        "<error expanding template: error executing template __alert_Test: template: __alert_Test:1:115: executing \"__alert_Test\" at <humanize>: error calling humanize: strconv.ParseFloat: parsing \"abc\": invalid syntax>"
    );
    let out = expand("{{ if gt $value 80 }}x{{ end }}");
    assert!(out.contains("incompatible types for comparison"), "{out}");
    let out = expand("{{ reReplaceAll \"(\" \"\" \"x\" }}");
    assert!(out.contains("regexp: Compile"), "{out}");
}

#[test]
fn parse_errors_are_refused_at_load() {
    assert_eq!(
        Template::parse("__alert_X", "{{ nosuchfunc 1 }}").unwrap_err(),
        "template: __alert_X:1: function \"nosuchfunc\" not defined"
    );
    assert_eq!(
        Template::parse("t", "line1\n{{ $labels.x ").unwrap_err(),
        "template: t:2: unclosed action"
    );
    assert!(Template::parse("t", "{{ if $value }}x").is_err());
}
