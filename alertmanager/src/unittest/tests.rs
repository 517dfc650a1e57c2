//! The unit-test runner over `MemStorage` with a selector-only query function (a bare metric
//! name, latest sample within five minutes, stale markers ending a series): enough to drive
//! `for`, annotations, recording rules and the failure messages without the PromQL engine,
//! which the binary's tests bring in (and compare with the real promtool).

use super::*;
use model::{MatchOp, Matcher, Querier};

fn selector_engine() -> RuleTestEngine {
    RuleTestEngine {
        query: Box::new(|storage: Arc<MemStorage>| {
            Arc::new(move |expr: &str, t: i64| {
                let m = Matcher::new(MatchOp::Equal, model::METRIC_NAME, expr.trim())
                    .map_err(|e| e.to_string())?;
                let series = storage
                    .select(t - 300_000, t, &[m])
                    .map_err(|e| e.to_string())?;
                Ok(series
                    .into_iter()
                    .filter_map(|s| {
                        let last = s.samples.last()?;
                        (!model::is_stale_nan(last.v)).then_some((s.labels, last.v))
                    })
                    .collect())
            })
        }),
        check_expr: Box::new(|expr| {
            if expr.contains(' ') {
                Err(format!("unsupported here: {expr}"))
            } else {
                Ok(())
            }
        }),
    }
}

const RULES: &str = "groups:
- name: g
  rules:
  - record: job:errors
    expr: errors
    labels: {recorded: 'yes'}
  - alert: Errors
    expr: errors
    for: 2m
    labels: {severity: page}
    annotations: {summary: '{{ $labels.job }} has {{ $value }} errors'}
";

fn run(test: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yml"), RULES).unwrap();
    let path = dir.path().join("test.yml");
    std::fs::write(&path, test).unwrap();
    run_rule_test_file(&path, &selector_engine())
}

const PASSING: &str = r#"rule_files: [rules.yml]
evaluation_interval: 1m
tests:
- interval: 1m
  input_series:
  - series: 'errors{job="api"}'
    values: '1+1x5 stale'
  alert_rule_test:
  - eval_time: 1m
    alertname: Errors
  - eval_time: 2m30s
    alertname: Errors
    exp_alerts:
    - exp_labels: {job: api, severity: page}
      exp_annotations: {summary: 'api has 3 errors'}
  - eval_time: 6m
    alertname: Errors
  promql_expr_test:
  - expr: job:errors
    eval_time: 4m
    exp_samples:
    - labels: 'job:errors{job="api", recorded="yes"}'
      value: 5
"#;

#[test]
fn a_test_matching_the_rules_passes() {
    assert_eq!(run(PASSING), Vec::<String>::new());
}

#[test]
fn wrong_expectations_fail_with_promtools_messages() {
    let failing = PASSING
        .replace("api has 3 errors", "api has 4 errors")
        .replace("value: 5", "value: 6");
    let errors = run(&failing);
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(
        errors[0].starts_with("    alertname: Errors, time: 2m30s, \n        exp:[\n"),
        "{}",
        errors[0]
    );
    assert!(errors[0].contains("Annotations:{summary=\"api has 4 errors\"}"));
    assert!(errors[0].contains("Annotations:{summary=\"api has 3 errors\"}"));
    assert_eq!(
        errors[1],
        "    expr: \"job:errors\", time: 4m,\n        exp: {__name__=\"job:errors\", job=\"api\", recorded=\"yes\"} 6E+00\n        got: {__name__=\"job:errors\", job=\"api\", recorded=\"yes\"} 5E+00"
    );
}

#[test]
fn an_alert_not_yet_past_for_is_not_expected() {
    // At 1m the alert is pending (for: 2m): expecting it firing must fail.
    let failing = PASSING.replacen(
        "  - eval_time: 1m\n    alertname: Errors\n",
        "  - eval_time: 1m\n    alertname: Errors\n    exp_alerts: [{exp_labels: {job: api, severity: page}}]\n",
        1,
    );
    let errors = run(&failing);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(errors[0].contains("time: 1m,"), "{}", errors[0]);
    assert!(errors[0].ends_with("got:[]"), "{}", errors[0]);
}

#[test]
fn bad_files_are_errors_not_panics() {
    let errors = run("rule_files: [rules.yml]\ntestz: []\n");
    assert!(errors[0].contains("unknown field `testz`"), "{errors:?}");
    let errors =
        run("rule_files: [rules.yml]\ntests:\n- input_series: [{series: 'x', values: '1+x'}]\n");
    assert!(errors[0].contains("invalid"), "{errors:?}");
    let errors = run("rule_files: [rules.yml]\ntests:\n- alert_rule_test: [{eval_time: 1m}]\n");
    assert_eq!(
        errors,
        ["an item under alert_rule_test misses required attribute alertname at eval_time 1m"]
    );
    let errors = run("rule_files: [rules.yml]\ngroup_eval_order: [g, g]\n");
    assert_eq!(errors, ["group name repeated in evaluation order: g"]);
    let errors = run("rule_files: [missing.yml]\ntests: [{}]\n");
    assert!(
        errors.is_empty(),
        "a pattern matching nothing only warns: {errors:?}"
    );
}

#[test]
fn a_rule_the_engine_refuses_fails_the_test_group() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("rules.yml"),
        "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up == 0\n",
    )
    .unwrap();
    let path = dir.path().join("t.yml");
    std::fs::write(&path, "rule_files: [rules.yml]\ntests: [{}]\n").unwrap();
    let errors = run_rule_test_file(&path, &selector_engine());
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].contains("rule \"A\": unsupported here"),
        "{errors:?}"
    );
}

#[test]
fn go_formats() {
    assert_eq!(go_duration(0), "0s");
    assert_eq!(go_duration(500), "500ms");
    assert_eq!(go_duration(60_000), "1m0s");
    assert_eq!(go_duration(3_723_500), "1h2m3.5s");
    assert_eq!(go_float_e(1.0), "1E+00");
    assert_eq!(go_float_e(0.0025), "2.5E-03");
    assert_eq!(go_float_e(-1e100), "-1E+100");
    assert_eq!(go_float_e(f64::INFINITY), "+Inf");
}
