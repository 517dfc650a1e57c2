//! Relabeling cases from Prometheus's documented behaviour (`model/relabel` tests and the
//! configuration docs), written as the YAML a user would write.

use super::*;

fn steps(yaml: &str) -> Vec<RelabelConfig> {
    serde_yaml::from_str(yaml).unwrap()
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs.iter().copied())
}

fn err(yaml: &str) -> String {
    serde_yaml::from_str::<Vec<RelabelConfig>>(yaml)
        .unwrap_err()
        .to_string()
}

/// Each case: steps, input, expected output (`None` = dropped).
fn check(yaml: &str, input: &[(&str, &str)], want: Option<&[(&str, &str)]>) {
    let got = relabel(&steps(yaml), labels(input));
    assert_eq!(got, want.map(labels), "steps:\n{yaml}");
}

#[test]
fn defaults_are_prometheus_defaults() {
    let c = &steps("- target_label: x")[0];
    assert_eq!(c.action(), Action::Replace);
    assert_eq!(c.separator, ";");
    assert_eq!(c.regex(), "(.*)");
    assert_eq!(c.replacement, "$1");
    // Default regex over no source labels matches "", so `$1` is empty and x stays absent.
    check("- target_label: x", &[("a", "1")], Some(&[("a", "1")]));
    // A literal replacement with no source labels adds a label.
    check(
        "- {target_label: env, replacement: prod}",
        &[("a", "1")],
        Some(&[("a", "1"), ("env", "prod")]),
    );
}

#[test]
fn replace_with_groups_and_separator() {
    check(
        "- {source_labels: [a], regex: 'f(.*)', target_label: d, replacement: 'ch${1}-ch${1}'}",
        &[("a", "foo"), ("b", "bar"), ("c", "baz")],
        Some(&[("a", "foo"), ("b", "bar"), ("c", "baz"), ("d", "choo-choo")]),
    );
    check(
        "- {source_labels: [a, b], regex: 'f(.*);(.*)r', target_label: a, replacement: 'b${1}${2}m'}\n\
         - {source_labels: [c, a], regex: '(b).*b(.*)ba(.*)', target_label: d, replacement: '$1$2$2$3'}",
        &[("a", "foo"), ("b", "bar"), ("c", "baz")],
        Some(&[("a", "boobam"), ("b", "bar"), ("c", "baz"), ("d", "boooom")]),
    );
    check(
        "- {source_labels: [a], regex: '.*(b).*', target_label: d}",
        &[("a", "abc")],
        Some(&[("a", "abc"), ("d", "b")]),
    );
    check(
        "- {source_labels: [a, b], separator: '|', regex: 'x\\|y', target_label: c, replacement: z}",
        &[("a", "x"), ("b", "y")],
        Some(&[("a", "x"), ("b", "y"), ("c", "z")]),
    );
}

#[test]
fn replace_without_a_match_changes_nothing() {
    check(
        "- {source_labels: [a], regex: f, target_label: b, replacement: bar}",
        &[("a", "boo")],
        Some(&[("a", "boo")]),
    );
    // The regex is anchored: `o` alone does not match "foo".
    check(
        "- {source_labels: [a], regex: 'o', target_label: b, replacement: bar}",
        &[("a", "foo")],
        Some(&[("a", "foo")]),
    );
}

#[test]
fn replace_with_templated_target_and_empty_results() {
    check(
        "- {source_labels: [a], regex: 'some-([^-]+)-([^,]+)', replacement: '${2}', target_label: '${1}'}",
        &[("a", "some-name-value")],
        Some(&[("a", "some-name-value"), ("name", "value")]),
    );
    // A replacement that expands to nothing removes the (absent) target: no change.
    check(
        "- {source_labels: [a], regex: 'some-([^-]+)-([^,]+)', replacement: '${3}', target_label: '${1}'}",
        &[("a", "some-name-value")],
        Some(&[("a", "some-name-value")]),
    );
    // A target that expands to an invalid name ("" or "0") is skipped.
    check(
        "- {source_labels: [a], regex: 'some-([^-]+)-([^,]+)', replacement: '${1}', target_label: '${3}'}\n\
         - {source_labels: [a], regex: 'some-([^-]+)-([^,]+)', replacement: '${1}', target_label: '${2}'}",
        &[("a", "some-name-0")],
        Some(&[("a", "some-name-0")]),
    );
    // An empty replacement deletes an existing target.
    check(
        "- {source_labels: [a], target_label: b, replacement: ''}",
        &[("a", "x"), ("b", "y")],
        Some(&[("a", "x")]),
    );
}

#[test]
fn real_life_service_discovery_tags() {
    check(
        "- {source_labels: [__meta_sd_tags], regex: '(?:.+,|^)path:(/[^,]+).*', target_label: __metrics_path__}\n\
         - {source_labels: [__meta_sd_tags], regex: '(?:.+,|^)job:([^,]+).*', target_label: job}\n\
         - {source_labels: [__meta_sd_tags], regex: '(?:.+,|^)label:([^=]+)=([^,]+).*', replacement: '${2}', target_label: '${1}'}",
        &[("__meta_sd_tags", "path:/secret,job:some-job,label:foo=bar")],
        Some(&[
            ("__meta_sd_tags", "path:/secret,job:some-job,label:foo=bar"),
            ("__metrics_path__", "/secret"),
            ("job", "some-job"),
            ("foo", "bar"),
        ]),
    );
}

#[test]
fn keep_and_drop() {
    check(
        "- {source_labels: [a], regex: '.*o.*', action: drop}\n- {source_labels: [a], regex: 'f(.*)', target_label: d}",
        &[("a", "foo")],
        None,
    );
    check(
        "- {source_labels: [a], regex: no-match, action: drop}",
        &[("a", "foo")],
        Some(&[("a", "foo")]),
    );
    check(
        "- {source_labels: [a], regex: 'f|o', action: drop}",
        &[("a", "foo")],
        Some(&[("a", "foo")]),
    );
    check(
        "- {source_labels: [a], regex: no-match, action: keep}",
        &[("a", "foo")],
        None,
    );
    check(
        "- {source_labels: [a], regex: 'f.*', action: KEEP}",
        &[("a", "foo")],
        Some(&[("a", "foo")]),
    );
    // A missing source label reads as "", which `(.*)` and `.*` match.
    check(
        "- {source_labels: [missing], regex: '', action: keep}",
        &[("a", "foo")],
        Some(&[("a", "foo")]),
    );
}

#[test]
fn keepequal_and_dropequal() {
    let input = [
        ("__tmp_port", "1234"),
        ("__port1", "1234"),
        ("__port2", "5678"),
    ];
    check(
        "- {source_labels: [__tmp_port], action: keepequal, target_label: __port1}",
        &input,
        Some(&input),
    );
    check(
        "- {source_labels: [__tmp_port], action: dropequal, target_label: __port1}",
        &input,
        None,
    );
    check(
        "- {source_labels: [__tmp_port], action: dropequal, target_label: __port2}",
        &input,
        Some(&input),
    );
    check(
        "- {source_labels: [__tmp_port], action: keepequal, target_label: __port2}",
        &input,
        None,
    );
}

#[test]
fn hashmod_matches_prometheus_md5_buckets() {
    check(
        "- {source_labels: [c], target_label: d, action: hashmod, modulus: 1000}",
        &[("a", "foo"), ("b", "bar"), ("c", "baz")],
        Some(&[("a", "foo"), ("b", "bar"), ("c", "baz"), ("d", "976")]),
    );
    check(
        "- {source_labels: [a], target_label: b, action: hashmod, modulus: 1000}",
        &[("a", "foo\nbar")],
        Some(&[("a", "foo\nbar"), ("b", "734")]),
    );
}

#[test]
fn labelmap_copies_matching_names() {
    check(
        "- {regex: '(b.*)', replacement: 'bar_${1}', action: labelmap}",
        &[("a", "foo"), ("b1", "bar"), ("b2", "baz")],
        Some(&[
            ("a", "foo"),
            ("b1", "bar"),
            ("b2", "baz"),
            ("bar_b1", "bar"),
            ("bar_b2", "baz"),
        ]),
    );
    check(
        "- {regex: '__meta_(my.*)', replacement: '${1}', action: labelmap}",
        &[
            ("a", "foo"),
            ("__meta_my_bar", "aaa"),
            ("__meta_my_baz", "bbb"),
            ("__meta_other", "ccc"),
        ],
        Some(&[
            ("a", "foo"),
            ("__meta_my_bar", "aaa"),
            ("__meta_my_baz", "bbb"),
            ("__meta_other", "ccc"),
            ("my_bar", "aaa"),
            ("my_baz", "bbb"),
        ]),
    );
}

#[test]
fn labeldrop_labelkeep_and_case() {
    let input = [("a", "foo"), ("b1", "bar"), ("b2", "baz")];
    check(
        "- {regex: '(b.*)', action: labelkeep}",
        &input,
        Some(&[("b1", "bar"), ("b2", "baz")]),
    );
    check(
        "- {regex: '(b.*)', action: labeldrop}",
        &input,
        Some(&[("a", "foo")]),
    );
    check(
        "- {source_labels: [foo], action: uppercase, target_label: foo_uppercase}\n\
         - {source_labels: [foo], action: lowercase, target_label: foo_lowercase}",
        &[("foo", "bAr123Foo")],
        Some(&[
            ("foo", "bAr123Foo"),
            ("foo_lowercase", "bar123foo"),
            ("foo_uppercase", "BAR123FOO"),
        ]),
    );
}

#[test]
fn steps_see_earlier_steps_changes() {
    // prometheus/prometheus#12283: a label dropped, then set again, then kept on.
    check(
        "- {regex: '__meta_kubernetes_pod_container_port_name', action: labeldrop}\n\
         - {source_labels: [__meta_kubernetes_pod_annotation_XXX_metrics_port], regex: '(.+)', replacement: metrics, target_label: __meta_kubernetes_pod_container_port_name}\n\
         - {source_labels: [__meta_kubernetes_pod_container_port_name], regex: 'metrics', action: keep}",
        &[
            ("__meta_kubernetes_pod_container_port_name", "foo"),
            ("__meta_kubernetes_pod_annotation_XXX_metrics_port", "9091"),
        ],
        Some(&[
            ("__meta_kubernetes_pod_annotation_XXX_metrics_port", "9091"),
            ("__meta_kubernetes_pod_container_port_name", "metrics"),
        ]),
    );
}

#[test]
fn validation_errors_are_prometheus_messages() {
    let cases = [
        ("- action: ''", "relabel action cannot be empty"),
        ("- action: frobnicate", "unknown relabel action \"frobnicate\""),
        ("- action: replace", "requires 'target_label' value"),
        ("- action: lowercase", "requires 'target_label' value"),
        (
            "- {action: hashmod, target_label: x}",
            "relabel configuration for hashmod requires non-zero modulus",
        ),
        (
            "- {action: lowercase, target_label: '${3}'}",
            "\"${3}\" is invalid 'target_label'",
        ),
        (
            "- {source_labels: [a], regex: 'x(.)', replacement: '$1', target_label: '0${3}'}",
            "\"0${3}\" is invalid 'target_label'",
        ),
        (
            "- {source_labels: [a], target_label: '-${3}'}",
            "\"-${3}\" is invalid 'target_label' for replace action",
        ),
        (
            "- {target_label: 'a-b'}",
            "\"a-b\" is invalid 'target_label' for replace action",
        ),
        (
            "- {action: uppercase, target_label: x, replacement: y}",
            "'replacement' can not be set for uppercase action",
        ),
        (
            "- {action: keepequal, source_labels: [a], target_label: b, regex: '(.*)'}",
            "keepequal action requires only 'source_labels' and `target_label`, and no other fields",
        ),
        (
            "- {action: labeldrop, regex: a, source_labels: [b]}",
            "labeldrop action requires only 'regex', and no other fields",
        ),
        (
            "- {action: labelmap, regex: a, replacement: '-x'}",
            "\"-x\" is invalid 'replacement' for labelmap action",
        ),
        ("- {source_labels: ['a-b'], target_label: x}", "\"a-b\" is not a valid label name"),
        ("- {regex: '(', target_label: x}", "invalid relabel regex \"(\""),
        ("- {target_label: x, sourcelabels: [a]}", "unknown field `sourcelabels`"),
    ];
    for (yaml, want) in cases {
        let got = err(yaml);
        assert!(got.contains(want), "{yaml}: {got}");
    }
}

#[test]
fn target_templates_follow_prometheus_pattern() {
    for (target, ok) in [
        ("-label", false),
        ("label", true),
        ("label${1}", true),
        ("${1}label", true),
        ("${1}", true),
        ("${", false),
        ("$", false),
        ("${}", false),
        ("foo${", false),
        ("$1", true),
        ("asd$2asd", true),
        ("-foo${1}bar-", false),
        ("_${1}_", true),
        ("foo${bar}foo", true),
    ] {
        assert_eq!(is_valid_target_template(target), ok, "{target}");
    }
}

#[test]
fn built_in_code_from_a_spec() {
    let c = RelabelConfig::try_from(RelabelSpec {
        action: Some("labeldrop".into()),
        regex: Some("tmp_.*".into()),
        ..RelabelSpec::default()
    })
    .unwrap();
    let out = relabel(&[c], labels(&[("tmp_x", "1"), ("job", "a")])).unwrap();
    assert_eq!(out, labels(&[("job", "a")]));
}
