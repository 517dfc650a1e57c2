//! `vigil check` and `vigil test rules` against the real promtool: the unit-test files in
//! `tests/e2e/check/` (named `pass_*` or `fail_*` for their verdict) run through both tools,
//! which must agree on every verdict and print the same report; rule files and configs are
//! checked with promtool's output and exit codes.

use crate::harness::BIN;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const PROMTOOL: &str = "/usr/bin/promtool";

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/check")
}

/// promtool, or `None` (after saying so) when it is not installed outside CI.
fn promtool(purpose: &str) -> Option<&'static str> {
    if Path::new(PROMTOOL).exists() {
        return Some(PROMTOOL);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{PROMTOOL} is missing and CI=true: {purpose} needs it");
    }
    eprintln!("skipped: {PROMTOOL} is not installed (set CI=true to make this fail)");
    None
}

/// Runs `program args` in `dir`, so both tools print the same relative paths.
fn run(program: &str, args: &[&str], dir: &Path) -> Output {
    Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("VIGIL_LOG", "error")
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn test_rules_agrees_with_promtool_on_every_file() {
    let Some(promtool) = promtool("the unit-test differential") else {
        return;
    };
    let dir = data_dir();
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("pass_") || n.starts_with("fail_"))
        .collect();
    files.sort();
    assert!(files.len() >= 6, "{files:?}");
    for file in &files {
        let ours = run(BIN, &["test", "rules", file], &dir);
        let theirs = run(promtool, &["test", "rules", file], &dir);
        let expect_pass = file.starts_with("pass_");
        assert_eq!(
            theirs.status.success(),
            expect_pass,
            "promtool on {file}: {}",
            text(&theirs.stderr)
        );
        assert_eq!(
            ours.status.code(),
            theirs.status.code(),
            "{file}: vigil said {}{}, promtool {}",
            text(&ours.stdout),
            text(&ours.stderr),
            text(&theirs.stderr)
        );
        assert_eq!(text(&ours.stdout), text(&theirs.stdout), "{file}: stdout");
        // Failure reports read the same, except for YAML decoder wording.
        if file != "fail_unknown_key.yml" {
            assert_eq!(text(&ours.stderr), text(&theirs.stderr), "{file}: stderr");
        }
    }
}

#[test]
fn test_rules_exit_code_counts_every_file() {
    let dir = data_dir();
    let all_pass = run(
        BIN,
        &["test", "rules", "pass_alerts.yml", "pass_expanding.yml"],
        &dir,
    );
    assert!(all_pass.status.success(), "{}", text(&all_pass.stderr));
    let one_fails = run(
        BIN,
        &["test", "rules", "fail_value.yml", "pass_alerts.yml"],
        &dir,
    );
    assert_eq!(one_fails.status.code(), Some(1));
    let out = text(&one_fails.stdout);
    assert!(
        out.ends_with("Unit Testing:  pass_alerts.yml\n  SUCCESS\n\n"),
        "later files still run: {out}"
    );
}

#[test]
fn check_rules_and_config_print_what_promtool_prints() {
    let Some(promtool) = promtool("check output comparison") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(data_dir().join("rules.yml"), tmp.path().join("a.rules.yml")).unwrap();
    std::fs::write(
        tmp.path().join("bad.yml"),
        "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up == = 0\n",
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("prometheus.yml"),
        "global:\n  evaluation_interval: 30s\nrule_files: ['*.rules.yml']\n",
    )
    .unwrap();
    for args in [
        &["check", "rules", "a.rules.yml"][..],
        &["check", "config", "prometheus.yml"],
    ] {
        let ours = run(BIN, args, tmp.path());
        let theirs = run(promtool, args, tmp.path());
        assert!(theirs.status.success(), "{}", text(&theirs.stderr));
        assert!(ours.status.success(), "{args:?}: {}", text(&ours.stderr));
        assert_eq!(text(&ours.stdout), text(&theirs.stdout), "{args:?}");
    }
    // A bad file among good ones: exit 1, the others still reported.
    let args = ["check", "rules", "bad.yml", "a.rules.yml"];
    let ours = run(BIN, &args, tmp.path());
    let theirs = run(promtool, &args, tmp.path());
    assert_eq!(ours.status.code(), Some(1));
    assert_eq!(theirs.status.code(), Some(1));
    assert_eq!(text(&ours.stdout), text(&theirs.stdout));
    // The expression's error names the file, the expression's line and column, the group and
    // the rule as promtool does; the parsers' own words after that differ.
    let prefix =
        "  FAILED:\nbad.yml: 5:11: group \"g\", rule 1, \"A\": could not parse expression: ";
    assert!(
        text(&theirs.stderr).starts_with(prefix),
        "{}",
        text(&theirs.stderr)
    );
    assert!(
        text(&ours.stderr).starts_with(prefix),
        "{}",
        text(&ours.stderr)
    );

    // Unknown keys, validation errors (with the position of the key they are about), broken
    // templates: promtool's words, exactly, except that Vigil also places a broken template
    // at its value's line, which promtool leaves out.
    let bad_files = [
        ("groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up\n        forr: 5m\n", None),
        ("groups:\n- name: g\n  rules:\n  - record: r\n    exprr: up\n", None),
        ("groups:\n  - name: g\n    rules:\n      - record: r\n        expr: up\n        for: 5m\n", None),
        ("groups:\n  - name: g\n    rules:\n      - alert: A\n        record: r\n        expr: up\n", None),
        ("groups:\n  - name: g\n    rules:\n      - record: \"bad-name\"\n        expr: up\n", None),
        ("groups:\n  - name: g\n    rules:\n      - record: r\n        expr: up\n        annotations:\n          a: b\n", None),
        ("groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up\n        labels:\n          \"bad-name\": x\n", None),
        ("groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    annotations:\n      s: '{{ $labels.x '\n", Some("7:10: ")),
        ("groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    labels:\n      t: '{{ .Nope'\n", Some("7:10: ")),
    ];
    for (i, (body, placed)) in bad_files.iter().enumerate() {
        let name = format!("bad{i}.yml");
        std::fs::write(tmp.path().join(&name), body).unwrap();
        let args = ["check", "rules", name.as_str()];
        let ours = run(BIN, &args, tmp.path());
        let theirs = run(promtool, &args, tmp.path());
        assert_eq!(theirs.status.code(), Some(1), "{body}");
        assert_eq!(ours.status.code(), Some(1), "{body}");
        assert_eq!(text(&ours.stdout), text(&theirs.stdout), "{body}");
        let mut ours = text(&ours.stderr);
        if let Some(at) = placed {
            let prefix = format!("{name}: {at}");
            assert!(ours.contains(&prefix), "{ours}");
            ours = ours.replace(&prefix, &format!("{name}: "));
        }
        assert_eq!(ours, text(&theirs.stderr), "{body}");
    }
}

#[test]
fn check_alertmanager_config_prints_what_amtool_prints() {
    let amtool = "/usr/bin/amtool";
    if !crate::peers::present(amtool, "comparing with amtool check-config") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("good.yml"),
        "route:\n  receiver: team\n  routes:\n  - matchers: ['severity=\"page\"']\n    receiver: pager\nreceivers:\n- name: team\n- name: pager\ninhibit_rules:\n- source_matchers: [severity=page]\n  target_matchers: [severity=ticket]\n  equal: [job]\n",
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("bad.yml"),
        "route:\n  receiver: nope\nreceivers:\n- name: team\n",
    )
    .unwrap();
    let ours = run(
        BIN,
        &["check", "alertmanager-config", "good.yml"],
        tmp.path(),
    );
    let theirs = run(amtool, &["check-config", "good.yml"], tmp.path());
    assert!(ours.status.success() && theirs.status.success());
    assert_eq!(text(&ours.stdout), text(&theirs.stdout));
    let ours = run(
        BIN,
        &["check", "alertmanager-config", "bad.yml", "good.yml"],
        tmp.path(),
    );
    let theirs = run(amtool, &["check-config", "bad.yml", "good.yml"], tmp.path());
    assert_eq!(ours.status.code(), Some(1));
    assert_eq!(theirs.status.code(), Some(1));
    // Vigil adds the line amtool leaves out; otherwise the same words.
    let ours = text(&ours.stdout);
    assert!(ours.contains("used in route (line 2)\n"), "{ours}");
    assert_eq!(ours.replace(" (line 2)", ""), text(&theirs.stdout));
}
