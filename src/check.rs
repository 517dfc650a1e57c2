//! `vigil check` and `vigil test`: offline validation of rule files, server configs and
//! Alertmanager configs, and rule unit tests, with promtool's and amtool's output and exit
//! codes (0 when every file passes, 1 otherwise), so CI scripts written for them keep working.
//!
//! - `vigil check rules FILE...` is `promtool check rules`: the rule loader the server uses,
//!   plus every expression checked against the PromQL engine.
//! - `vigil check config FILE...` is `promtool check config`: the server config, then each of
//!   its `rule_files`.
//! - `vigil check alertmanager-config FILE...` is `amtool check-config`.
//! - `vigil test rules FILE...` is `promtool test rules`.

use clap::Subcommand;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, Subcommand)]
pub enum CheckCommand {
    /// Checks Prometheus rule files (`promtool check rules`): YAML keys, Prometheus's
    /// validation, templates, and every expression against the query engine.
    Rules {
        /// Rule files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Checks server configuration files (`promtool check config`), then the rule files each
    /// one names.
    Config {
        /// Configuration files in Prometheus's format.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Checks Alertmanager configuration files (`amtool check-config`): receivers, routes,
    /// matchers, inhibition rules, time intervals and templates.
    AlertmanagerConfig {
        /// Alertmanager configuration files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TestCommand {
    /// Runs rule unit tests in promtool's format (`promtool test rules`): input series in the
    /// expanding notation, `alert_rule_test` and `promql_expr_test`.
    Rules {
        /// Unit-test files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// Runs a `vigil check` command; the result is the process exit code.
pub fn check(cmd: &CheckCommand) -> i32 {
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
    let passed = match cmd {
        CheckCommand::Rules { files } => files
            .iter()
            .map(|f| check_rule_file(f, &mut out, &mut err))
            .fold(true, |all, ok| all & ok),
        // An Alertmanager config given here is checked as one (as amtool would), since Vigil
        // takes both kinds of config.
        CheckCommand::Config { files } => files
            .iter()
            .map(|f| match is_alertmanager_config(f) {
                true => check_alertmanager_config(f, &mut out),
                false => check_config_file(f, &mut out, &mut err),
            })
            .fold(true, |all, ok| all & ok),
        CheckCommand::AlertmanagerConfig { files } => {
            let failed = files
                .iter()
                .filter(|f| !check_alertmanager_config(f, &mut out))
                .count();
            if failed > 0 {
                let _ = writeln!(err, "vigil: error: failed to validate {failed} file(s)");
            }
            failed == 0
        }
    };
    i32::from(!passed)
}

/// Runs a `vigil test` command; the result is the process exit code.
pub fn test(cmd: &TestCommand) -> i32 {
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
    let TestCommand::Rules { files } = cmd;
    let engine = alertmanager::RuleTestEngine {
        query: Box::new(|storage: Arc<model::MemStorage>| {
            crate::rules::query_fn(Arc::new(promql::Engine::new(
                storage,
                promql::EngineOptions::default(),
            )))
        }),
        check_expr: Box::new(|expr| promql::check(expr).map_err(|e| e.to_string())),
    };
    let mut passed = true;
    for file in files {
        let _ = writeln!(out, "Unit Testing:  {}", file.display());
        let failures = alertmanager::run_rule_test_file(file, &engine);
        if failures.is_empty() {
            let _ = writeln!(out, "  SUCCESS");
        } else {
            passed = false;
            let _ = writeln!(err, "  FAILED:");
            for f in failures {
                let _ = writeln!(err, "{f}");
                let _ = writeln!(out);
            }
        }
        let _ = writeln!(out);
    }
    i32::from(!passed)
}

/// The rules in one file, or the reason it is refused.
fn rule_count(path: &Path) -> anyhow::Result<usize> {
    let groups = alertmanager::load_rule_files(&[path.to_path_buf()])?;
    crate::rules::check_rule_queries(&groups)?;
    Ok(groups.iter().map(|g| g.rules.len()).sum())
}

fn check_rule_file(path: &Path, out: &mut dyn Write, err: &mut dyn Write) -> bool {
    let _ = writeln!(out, "Checking {}", path.display());
    let ok = match rule_count(path) {
        Ok(n) => {
            let _ = writeln!(out, "  SUCCESS: {n} rules found");
            true
        }
        Err(e) => {
            let message = match e.downcast_ref::<alertmanager::Error>() {
                Some(alertmanager::Error::RuleFileYaml { file, yaml }) => {
                    match go_unknown_rule_field(yaml) {
                        Some(go) => format!("{file}: {go}"),
                        None => format!("{e:#}"),
                    }
                }
                _ => format!("{e:#}"),
            };
            let _ = writeln!(err, "  FAILED:\n{message}");
            false
        }
    };
    let _ = writeln!(out);
    ok
}

fn check_config_file(path: &Path, out: &mut dyn Write, err: &mut dyn Write) -> bool {
    let _ = writeln!(out, "Checking {}", path.display());
    let config = match crate::config::ServerConfig::load(path) {
        Ok(c) => c,
        Err(e) => {
            let _ = writeln!(err, "  FAILED: {e:#}");
            let _ = writeln!(out);
            return false;
        }
    };
    let _ = writeln!(
        out,
        "  SUCCESS: {} rule files found",
        config.rule_files.len()
    );
    let _ = writeln!(
        out,
        " SUCCESS: {} is valid prometheus config file syntax",
        path.display()
    );
    let _ = writeln!(out);
    config
        .rule_files
        .iter()
        // Shown as Go's filepath.Join cleans them: `./a.yml` is `a.yml`.
        .map(|f| check_rule_file(f.strip_prefix(".").unwrap_or(f), out, err))
        .fold(true, |all, ok| all & ok)
}

/// True when `path` holds an Alertmanager config: a YAML mapping with a `route` or
/// `receivers` key, which no Prometheus config has. Anything unreadable is left to the
/// Prometheus check, which reports it.
fn is_alertmanager_config(path: &Path) -> bool {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| serde_yaml::from_str::<serde_yaml::Value>(&text).ok())
        .and_then(|doc| {
            doc.as_mapping()
                .map(|m| m.contains_key("route") || m.contains_key("receivers"))
        })
        .unwrap_or(false)
}

/// amtool writes everything, failures included, to stdout.
fn check_alertmanager_config(path: &Path, out: &mut dyn Write) -> bool {
    let _ = write!(out, "Checking '{}'", path.display());
    let ok = match alertmanager::AlertmanagerConfig::load(path) {
        Ok(cfg) => {
            let _ = writeln!(out, "  SUCCESS");
            let _ = writeln!(out, "Found:");
            let _ = writeln!(out, " - global config");
            if cfg.route.is_some() {
                let _ = writeln!(out, " - route");
            }
            let _ = writeln!(out, " - {} inhibit rules", cfg.inhibit_rules.len());
            let _ = writeln!(out, " - {} receivers", cfg.receivers.len());
            let _ = writeln!(out, " - {} templates", cfg.templates.len());
            // Loading already parsed every template file the globs match.
            if !cfg.templates.is_empty() {
                let _ = writeln!(out, "  SUCCESS");
            }
            true
        }
        Err(e) => {
            let _ = writeln!(out, "  FAILED: {}", amtool_message(&e));
            false
        }
    };
    let _ = writeln!(out);
    ok
}

/// The error as amtool words it: without the "alertmanager config:" prefix the server adds.
fn amtool_message(e: &alertmanager::Error) -> String {
    match e {
        alertmanager::Error::ConfigYaml(y) => go_unknown_field(y).unwrap_or_else(|| y.to_string()),
        alertmanager::Error::InvalidConfig(m) => m.clone(),
        other => other.to_string(),
    }
}

/// An unknown key as Go's strict YAML decoder reports it (`line N: field X not found in type
/// T`), for the places whose Go type amtool names are known: the config's own structs (all
/// decoded through a `plain` alias, hence `config.plain`) and the time-interval types. Go lists
/// every unknown key of the file; serde stops at the first, so a file with several still
/// differs after the first line.
fn go_unknown_field(e: &serde_yaml::Error) -> Option<String> {
    go_unknown(e, alertmanager_go_type)
}

/// An unknown key in a rule file as promtool reports it, naming `rulefmt`'s types.
fn go_unknown_rule_field(e: &serde_yaml::Error) -> Option<String> {
    go_unknown(e, |path| {
        let last = path.rsplit('.').next().unwrap_or("");
        if path.is_empty() {
            Some("rulefmt.RuleGroups")
        } else if last.starts_with("rules[") {
            Some("rulefmt.RuleNode")
        } else if !path.contains('.') && last.starts_with("groups[") {
            Some("rulefmt.RuleGroup")
        } else {
            None
        }
    })
}

/// Rewords serde's "unknown field" error as Go's decoder words it, with the Go type that
/// `go_type` names for the error's path (`None`: keep serde's words).
fn go_unknown(
    e: &serde_yaml::Error,
    go_type: impl Fn(&str) -> Option<&'static str>,
) -> Option<String> {
    let text = e.to_string();
    let (path, rest) = text.split_once("unknown field `")?;
    let path = path.strip_suffix(": ").unwrap_or(path);
    let field = rest.split('`').next()?;
    let line = e.location()?.line();
    let go_type = go_type(path)?;
    Some(format!(
        "yaml: unmarshal errors:\n  line {line}: field {field} not found in type {go_type}"
    ))
}

/// The Go type amtool names for an unknown key at `path` of an Alertmanager config.
fn alertmanager_go_type(path: &str) -> Option<&'static str> {
    let last = path.rsplit('.').next().unwrap_or("");
    let indexed = |name: &str| {
        last.strip_prefix(name)
            .and_then(|i| i.strip_prefix('['))
            .and_then(|i| i.strip_suffix(']'))
            .is_some_and(|i| i.parse::<usize>().is_ok())
    };
    let in_named_interval =
        path.starts_with("time_intervals[") || path.starts_with("mute_time_intervals[");
    if indexed("times") && in_named_interval {
        Some("timeinterval.yamlTimeRange")
    } else if indexed("time_intervals") && in_named_interval && path.contains('.') {
        Some("timeinterval.TimeInterval")
    } else if path.is_empty()
        || path == "route"
        || (path.starts_with("route.") && indexed("routes"))
        || (!path.contains('.')
            && (indexed("receivers")
                || indexed("time_intervals")
                || indexed("mute_time_intervals")))
    {
        Some("config.plain")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_rules(text: &str) -> (bool, String, String) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.yml");
        std::fs::write(&path, text).unwrap();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let ok = check_rule_file(&path, &mut out, &mut err);
        let shown = |b: Vec<u8>| {
            String::from_utf8(b)
                .unwrap()
                .replace(&path.display().to_string(), "r.yml")
        };
        (ok, shown(out), shown(err))
    }

    #[test]
    fn check_rules_reports_like_promtool() {
        let (ok, out, err) = run_rules(
            "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up == 0\n  - record: r\n    expr: sum(up)\n",
        );
        assert!(ok, "{err}");
        assert_eq!(out, "Checking r.yml\n  SUCCESS: 2 rules found\n\n");
        assert!(err.is_empty());
    }

    #[test]
    fn check_rules_fails_on_a_promql_error_naming_file_group_and_rule() {
        let (ok, out, err) =
            run_rules("groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up == = 0\n");
        assert!(!ok);
        assert_eq!(out, "Checking r.yml\n\n");
        assert!(
            err.starts_with(
                "  FAILED:\nr.yml: 5:11: group \"g\", rule 1, \"A\": could not parse expression: "
            ),
            "{err}"
        );
    }

    #[test]
    fn check_rules_fails_on_an_unknown_key_with_its_line() {
        let (ok, _, err) =
            run_rules("groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    labelz: {}\n");
        assert!(!ok);
        assert!(
            err.ends_with("line 6: field labelz not found in type rulefmt.RuleNode\n"),
            "{err}"
        );
    }

    #[test]
    fn check_config_checks_the_rule_files_it_names() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("good.rules.yml"),
            "groups:\n- name: g\n  rules:\n  - record: r\n    expr: sum(up)\n",
        )
        .unwrap();
        let config = dir.path().join("vigil.yml");
        std::fs::write(&config, "rule_files: ['*.rules.yml']\n").unwrap();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        assert!(check_config_file(&config, &mut out, &mut err));
        let out = String::from_utf8(out).unwrap();
        assert!(
            out.contains("  SUCCESS: 1 rule files found\n SUCCESS: "),
            "{out}"
        );
        assert!(out.ends_with("  SUCCESS: 1 rules found\n\n"), "{out}");

        std::fs::write(
            dir.path().join("bad.rules.yml"),
            "groups:\n- name: g\n  rules:\n  - record: r\n    expr: sum(\n",
        )
        .unwrap();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        assert!(!check_config_file(&config, &mut out, &mut err));
        assert!(String::from_utf8(err).unwrap().contains("bad.rules.yml"));

        std::fs::write(&config, "globl: {}\n").unwrap();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        assert!(!check_config_file(&config, &mut out, &mut err));
        let err = String::from_utf8(err).unwrap();
        assert!(
            err.starts_with("  FAILED: ") && err.contains("globl"),
            "{err}"
        );
    }

    #[test]
    fn check_alertmanager_config_reports_like_amtool() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("am.yml");
        std::fs::write(
            &path,
            "route:\n  receiver: a\nreceivers:\n- name: a\n- name: b\n",
        )
        .unwrap();
        let mut out = Vec::new();
        assert!(check_alertmanager_config(&path, &mut out));
        let out = String::from_utf8(out).unwrap();
        let name = path.display();
        assert_eq!(
            out,
            format!("Checking '{name}'  SUCCESS\nFound:\n - global config\n - route\n - 0 inhibit rules\n - 2 receivers\n - 0 templates\n\n")
        );

        std::fs::write(&path, "route:\n  receiver: nope\nreceivers:\n- name: a\n").unwrap();
        let mut out = Vec::new();
        assert!(!check_alertmanager_config(&path, &mut out));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!(
                "Checking '{name}'  FAILED: undefined receiver \"nope\" used in route (line 2)\n\n"
            )
        );
    }

    #[test]
    fn check_config_takes_an_alertmanager_config_as_one() {
        let dir = tempfile::tempdir().unwrap();
        let am = dir.path().join("alertmanager.yml");
        std::fs::write(&am, "route:\n  receiver: nope\nreceivers:\n- name: a\n").unwrap();
        let prom = dir.path().join("prometheus.yml");
        std::fs::write(&prom, "global:\n  evaluation_interval: 30s\n").unwrap();
        assert!(is_alertmanager_config(&am));
        assert!(!is_alertmanager_config(&prom));
        let mut out = Vec::new();
        assert!(!check_alertmanager_config(&am, &mut out));
        let out = String::from_utf8(out).unwrap();
        assert!(
            out.contains("undefined receiver \"nope\" used in route (line 2)"),
            "{out}"
        );
    }

    /// The Go types amtool 0.25 named for these keys (observed with `amtool check-config`).
    #[test]
    fn unknown_keys_are_reported_in_go_yaml_words() {
        let head = "route:\n  receiver: a\nreceivers:\n- name: a\n";
        let cases = [
            (format!("{head}bogus: 1\n"), "line 5: field bogus not found in type config.plain"),
            (
                "route:\n  receiver: a\n  routes:\n  - receiver: a\n    bogus: 1\nreceivers:\n- name: a\n".to_string(),
                "line 5: field bogus not found in type config.plain",
            ),
            (
                format!("{head}time_intervals:\n- name: x\n  time_intervals:\n  - weekday: [monday]\n"),
                "line 8: field weekday not found in type timeinterval.TimeInterval",
            ),
            (
                format!("{head}mute_time_intervals:\n- name: x\n  time_intervals:\n  - times:\n    - start_time: '01:00'\n      end: '02:00'\n"),
                "line 10: field end not found in type timeinterval.yamlTimeRange",
            ),
        ];
        for (yaml, want) in cases {
            let Err(e) = alertmanager::AlertmanagerConfig::parse(&yaml) else {
                panic!("accepted:\n{yaml}");
            };
            assert_eq!(
                amtool_message(&e),
                format!("yaml: unmarshal errors:\n  {want}")
            );
        }
        // Keys of types whose Go name is not known keep serde's words.
        let e = alertmanager::AlertmanagerConfig::parse(&format!("{head}global:\n  bogus: 1\n"))
            .unwrap_err();
        assert!(amtool_message(&e).contains("unknown field `bogus`"), "{e}");
    }
}
