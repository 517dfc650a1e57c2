//! Engine tests: Go `text/template` behaviour on the constructs Prometheus and Alertmanager
//! templates use, with expected outputs as Go produces them.

use super::*;

fn run_with(text: &str, dot: &Value) -> Result<String, String> {
    let funcs = Funcs::builtins();
    let mut t = Templates::new();
    t.parse("t", text, &|n| funcs.contains(n))?;
    t.execute("t", dot, &funcs)
}

fn run(text: &str) -> String {
    let dot = Value::Map(
        std::sync::Arc::new(
            [
                (
                    "Labels".to_string(),
                    Value::string_map([("job", "api"), ("instance", "a:1")], MapKind::Strings),
                ),
                ("Value".to_string(), Value::Float(0.75)),
                (
                    "Items".to_string(),
                    Value::list(vec![Value::str("x"), Value::str("y"), Value::str("z")]),
                ),
            ]
            .into_iter()
            .collect(),
        ),
        MapKind::Any,
    );
    run_with(text, &dot).unwrap_or_else(|e| format!("ERR {e}"))
}

#[test]
fn control_structures() {
    assert_eq!(
        run("{{ if gt .Value 0.5 }}high{{ else }}low{{ end }}"),
        "high"
    );
    assert_eq!(
        run("{{ if eq .Labels.job \"db\" }}db{{ else if eq .Labels.job \"api\" }}api{{ else }}?{{ end }}"),
        "api"
    );
    assert_eq!(
        run("{{ with .Labels.instance }}on {{ . }}{{ end }}"),
        "on a:1"
    );
    assert_eq!(
        run("{{ with .Labels.none }}x{{ else }}none{{ end }}"),
        "none"
    );
    assert_eq!(
        run("{{ range $i, $e := .Items }}{{ if $i }},{{ end }}{{ $i }}={{ $e }}{{ end }}"),
        "0=x,1=y,2=z"
    );
    assert_eq!(
        run("{{ range $k, $v := .Labels }}{{ $k }}:{{ $v }};{{ end }}"),
        "instance:a:1;job:api;"
    );
    assert_eq!(
        run("{{ range .Items }}{{ if eq . \"y\" }}{{ break }}{{ end }}{{ . }}{{ end }}"),
        "x"
    );
    assert_eq!(
        run("{{ range .Items }}{{ if eq . \"y\" }}{{ continue }}{{ end }}{{ . }}{{ end }}"),
        "xz"
    );
    assert_eq!(
        run("{{ range .Nothing }}x{{ else }}empty{{ end }}"),
        "empty"
    );
    // As in Go, a missing label under missingkey=zero is "", and a string cannot be ranged.
    assert!(run("{{ range .Labels.none }}{{ end }}").contains("range can't iterate over"));
}

#[test]
fn variables_pipelines_and_parentheses() {
    assert_eq!(
        run("{{ $x := .Labels.job }}{{ $x }}-{{ $x | printf \"%q\" }}"),
        "api-\"api\""
    );
    assert_eq!(
        run("{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ end }}{{ $x }}"),
        "2"
    );
    assert_eq!(
        run("{{ printf \"%.1f%%\" (len .Items) }}|{{ printf \"%.1f%%\" .Value }}"),
        "%!f(int=3)%|0.8%"
    );
    assert_eq!(run("{{ (index .Items 2 | printf \"%s!\") }}"), "z!");
    assert_eq!(
        run("{{ (index .Items 1) }}{{ index .Labels \"job\" }}{{ index .Labels \"zzz\" }}|"),
        "yapi|"
    );
    assert_eq!(
        run("{{ len (slice .Items 1) }} {{ slice \"abcdef\" 1 3 }}"),
        "2 bc"
    );
    assert_eq!(
        run("{{ and 1 0 }} {{ or 0 \"\" \"x\" }} {{ not .Items }}"),
        "0 x false"
    );
    assert_eq!(
        run("{{ print 1 2 \"a\" \"b\" 3 }}|{{ println \"a\" 1 }}|"),
        "1 2ab3|a 1\n|"
    );
    assert_eq!(
        run("{{ html \"<a href='x'>&</a>\" }} {{ urlquery \"a b&c\" }} {{ js \"a'b\" }}"),
        "&lt;a href=&#39;x&#39;&gt;&amp;&lt;/a&gt; a+b%26c a\\'b"
    );
    assert_eq!(run("{{- /* comment */ -}}  x"), "x");
    assert_eq!(
        run("{{ .Value }} {{ 1e6 }} {{ 0x10 }} {{ -3 }} {{ 'a' }}"),
        "0.75 1e+06 16 -3 97"
    );
}

#[test]
fn missing_keys_read_as_zero_values() {
    // missingkey=zero: "" for a string map, Go's nil interface (printed <no value>) otherwise.
    let dot = Value::string_map([("a", "1")], MapKind::Strings);
    assert_eq!(run_with("[{{ .b }}]", &dot).unwrap(), "[]");
    assert_eq!(run("[{{ .Nothing }}]"), "[<no value>]");
}

#[test]
fn define_template_and_block() {
    let funcs = Funcs::builtins();
    let mut t = Templates::new();
    let is_func = |n: &str| funcs.contains(n);
    t.parse(
        "lib.tmpl",
        "{{ define \"greet\" }}hello {{ . }}{{ end }}\n",
        &is_func,
    )
    .unwrap();
    t.parse(
        "",
        "{{ template \"greet\" \"bob\" }}, {{ block \"sig\" . }}[{{ . }}]{{ end }}",
        &is_func,
    )
    .unwrap();
    assert_eq!(
        t.execute("", &Value::str("x"), &funcs).unwrap(),
        "hello bob, [x]"
    );
}

#[test]
fn go_comparison_rules() {
    let err = run("{{ if gt .Value 1 }}x{{ end }}");
    assert!(err.contains("incompatible types for comparison"), "{err}");
    let err = run("{{ lt true false }}");
    assert!(err.contains("invalid type for comparison"), "{err}");
    assert_eq!(run("{{ eq .Labels.job \"x\" \"api\" }}"), "true");
}

#[test]
fn parse_errors_name_template_and_line() {
    let funcs = Funcs::builtins();
    let mut t = Templates::new();
    let is_func = |n: &str| funcs.contains(n);
    let cases = [
        (
            "a\n{{ nosuch 1 }}",
            "template: t:2: function \"nosuch\" not defined",
        ),
        ("{{ if 1 }}x", "template: t:1: unexpected EOF in if"),
        ("{{ end }}", "template: t:1: unexpected {{end}}"),
        ("{{ $x }}", "template: t:1: undefined variable \"$x\""),
        ("{{ break }}", "template: t:1: {{break}} outside {{range}}"),
        ("x\n\n{{ .a ", "template: t:3: unclosed action"),
        ("{{ \"abc }}", "template: t:1: unterminated quoted string"),
    ];
    for (text, want) in cases {
        assert_eq!(t.parse("t", text, &is_func).unwrap_err(), want, "{text}");
    }
}

#[test]
fn exec_errors_carry_go_context() {
    let err = run("x {{ .Labels.job.x.y }}");
    assert_eq!(
        err,
        "ERR template: t:1:5: executing \"t\" at <.Labels.job.x.y>: can't evaluate field x in type string"
    );
    let err = run("{{ range 3 }}{{ end }}");
    assert!(err.contains("range can't iterate over 3"), "{err}");
}

#[test]
fn recursion_and_output_are_bounded() {
    let funcs = Funcs::builtins();
    let mut t = Templates::new();
    t.parse(
        "t",
        "{{ define \"r\" }}{{ template \"r\" . }}{{ end }}{{ template \"r\" . }}",
        &|n| funcs.contains(n),
    )
    .unwrap();
    let err = t.execute("t", &Value::Nil, &funcs).unwrap_err();
    assert!(err.contains("exceeded maximum template depth"), "{err}");
    let mut t = Templates::new();
    t.parse("t", "{{ printf \"%1000000d\" 1 }}", &|n| funcs.contains(n))
        .unwrap();
    assert_eq!(
        t.execute("t", &Value::Nil, &funcs).unwrap().len(),
        1_000_000
    );
}
