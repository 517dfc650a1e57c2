//! The ConfigMaps: the server's default rules load with Vigil's rule loader, every expression
//! passes the engine's check and fires on the data it is about (and only then), every alert
//! carries a runbook, the Alertmanager config loads and reads Slack's URL from the Secret, and
//! the whole server ConfigMap passes `vigil check`; the agent's scrape config loads with the
//! agent's own loader.

use crate::{object, object_prefixed};
use alertmanager::{AlertmanagerConfig, Rule};
use model::{Appender, Labels, MemStorage, Sample, Series};
use promql::{Engine, EngineOptions, Value as PromValue};
use serde_json::{Map, Value};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The alerts the issue asks the default rules to cover.
const EXPECTED_ALERTS: &[&str] = &[
    "KubeNodeNotReady",
    "KubeNodePressure",
    "NodeMemoryHighUtilization",
    "NodeFilesystemAlmostOutOfSpace",
    "KubePodCrashLooping",
    "KubeContainerOOMKilled",
    "CPUThrottlingHigh",
    "KubePersistentVolumeFillingUp",
    "PersistentVolumeAlmostFull",
    "VigilAgentNotShipping",
];

/// The generated server ConfigMap's files, written to a temp dir as the pod sees them.
fn config_dir() -> (tempfile::TempDir, Vec<PathBuf>) {
    let cm = object_prefixed("ConfigMap", "vigil-server-config-");
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (key, text) in cm["data"].as_object().unwrap() {
        let path = dir.path().join(key);
        std::fs::write(&path, text.as_str().unwrap()).unwrap();
        files.push(path);
    }
    (dir, files)
}

fn alerting_rules() -> Vec<alertmanager::AlertingRule> {
    let (_dir, files) = config_dir();
    let rule_files: Vec<PathBuf> = files
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".rules.yml"))
        .collect();
    assert!(!rule_files.is_empty());
    let groups = alertmanager::load_rule_files(&rule_files).unwrap();
    let mut out = Vec::new();
    for g in groups {
        for rule in g.rules {
            let (name, expr) = match &rule {
                Rule::Alerting(a) => (&a.name, &a.expr),
                Rule::Recording(r) => (&r.name, &r.expr),
            };
            promql::check(expr).unwrap_or_else(|e| panic!("{name}: {expr}: {e}"));
            if let Rule::Alerting(a) = rule {
                out.push(a);
            }
        }
    }
    out
}

#[test]
fn default_rules_load_check_and_carry_runbooks() {
    let rules = alerting_rules();
    let names: BTreeSet<&str> = rules.iter().map(|r| r.name.as_str()).collect();
    for expected in EXPECTED_ALERTS {
        assert!(names.contains(expected), "no alert {expected}: {names:?}");
    }
    for r in &rules {
        for annotation in ["summary", "description", "runbook"] {
            let text = r.annotations.get(annotation).map(String::as_str);
            assert!(
                text.is_some_and(|t| !t.trim().is_empty()),
                "{} has no {annotation} annotation",
                r.name
            );
        }
        let severity = r.labels.get("severity").map(String::as_str);
        assert!(
            matches!(severity, Some("critical" | "warning" | "info")),
            "{}: severity {severity:?}",
            r.name
        );
    }
}

const NOW: i64 = 7_200_000;

/// `(labels, [(t_ms, v)])`: one series of a fixture.
type Fixture<'a> = (&'a [(&'a str, &'a str)], &'a [(i64, f64)]);

/// Loads `series` into a store and returns the label sets `alert`'s expression yields at NOW.
fn fires(rules: &[alertmanager::AlertingRule], alert: &str, series: &[Fixture]) -> Vec<String> {
    let rule = rules.iter().find(|r| r.name == alert).unwrap();
    let store = Arc::new(MemStorage::new());
    let series: Vec<Series> = series
        .iter()
        .map(|(labels, samples)| Series {
            labels: Labels::from_pairs(labels.iter().copied()),
            samples: samples.iter().map(|&(t, v)| Sample { t, v }).collect(),
        })
        .collect();
    store.append(&series).unwrap();
    let engine = Engine::new(store, EngineOptions::default());
    let result = engine.instant_query(&rule.expr, NOW).unwrap();
    let PromValue::Vector(v) = result.value else {
        panic!("{alert}: not a vector")
    };
    let mut out: Vec<String> = v.iter().map(|e| e.labels.to_string()).collect();
    out.sort();
    out
}

/// Samples every 15 s from `from` to `to` (ms) with values from `f`.
fn every_15s(from: i64, to: i64, f: impl Fn(i64) -> f64) -> Vec<(i64, f64)> {
    (from / 15_000..=to / 15_000)
        .map(|i| (i * 15_000, f(i * 15_000)))
        .collect()
}

#[test]
fn default_rules_fire_on_what_they_are_about() {
    let rules = alerting_rules();

    // Agent a stopped 20 minutes ago; agent b is shipping.
    let stopped = every_15s(0, NOW - 1_200_000, |_| 1.0);
    let shipping = every_15s(0, NOW, |_| 1.0);
    let fired = fires(
        &rules,
        "VigilAgentNotShipping",
        &[
            (
                &[
                    ("__name__", "node_load1"),
                    ("job", "node"),
                    ("instance", "a"),
                ],
                &stopped,
            ),
            (
                &[
                    ("__name__", "node_load1"),
                    ("job", "node"),
                    ("instance", "b"),
                ],
                &shipping,
            ),
        ],
    );
    assert_eq!(fired, [r#"{instance="a", job="node"}"#]);

    // Node a has 5% of its memory available, node b 50%.
    let total = every_15s(NOW - 600_000, NOW, |_| 100.0);
    let (low, fine) = (
        every_15s(NOW - 600_000, NOW, |_| 5.0),
        every_15s(NOW - 600_000, NOW, |_| 50.0),
    );
    let mem = |name: &'static str, instance: &'static str| -> [(&'static str, &'static str); 3] {
        [("__name__", name), ("job", "node"), ("instance", instance)]
    };
    let (ta, tb, la, lb) = (
        mem("node_memory_MemTotal_bytes", "a"),
        mem("node_memory_MemTotal_bytes", "b"),
        mem("node_memory_MemAvailable_bytes", "a"),
        mem("node_memory_MemAvailable_bytes", "b"),
    );
    let fired = fires(
        &rules,
        "NodeMemoryHighUtilization",
        &[(&ta, &total), (&tb, &total), (&la, &low), (&lb, &fine)],
    );
    assert_eq!(fired, [r#"{instance="a", job="node"}"#]);

    // One container throttled in half its periods, another in 1%.
    let periods = every_15s(NOW - 600_000, NOW, |t| t as f64 / 100.0);
    let (half, rare) = (
        every_15s(NOW - 600_000, NOW, |t| t as f64 / 200.0),
        every_15s(NOW - 600_000, NOW, |t| t as f64 / 10_000.0),
    );
    let c = |name: &'static str, pod: &'static str| -> [(&'static str, &'static str); 4] {
        [
            ("__name__", name),
            ("namespace", "shop"),
            ("pod", pod),
            ("container", "app"),
        ]
    };
    let (pa, pb, ha, rb) = (
        c("container_cpu_cfs_periods_total", "a"),
        c("container_cpu_cfs_periods_total", "b"),
        c("container_cpu_cfs_throttled_periods_total", "a"),
        c("container_cpu_cfs_throttled_periods_total", "b"),
    );
    let fired = fires(
        &rules,
        "CPUThrottlingHigh",
        &[(&pa, &periods), (&pb, &periods), (&ha, &half), (&rb, &rare)],
    );
    assert_eq!(fired, [r#"{container="app", namespace="shop", pod="a"}"#]);

    // A pod that was in CrashLoopBackOff within the last five minutes, one that is not.
    let waiting = every_15s(NOW - 600_000, NOW, |t| {
        if t > NOW - 120_000 {
            1.0
        } else {
            0.0
        }
    });
    let never = every_15s(NOW - 600_000, NOW, |_| 0.0);
    let w = |pod: &'static str| -> [(&'static str, &'static str); 5] {
        [
            ("__name__", "kube_pod_container_status_waiting_reason"),
            ("namespace", "shop"),
            ("pod", pod),
            ("container", "app"),
            ("reason", "CrashLoopBackOff"),
        ]
    };
    let (wa, wb) = (w("a"), w("b"));
    let fired = fires(
        &rules,
        "KubePodCrashLooping",
        &[(&wa, &waiting), (&wb, &never)],
    );
    assert_eq!(
        fired,
        [r#"{container="app", namespace="shop", pod="a", reason="CrashLoopBackOff"}"#]
    );

    // A claim with 2% left and one with 60% left.
    let capacity = every_15s(NOW - 300_000, NOW, |_| 100.0);
    let (full, roomy) = (
        every_15s(NOW - 300_000, NOW, |_| 2.0),
        every_15s(NOW - 300_000, NOW, |_| 60.0),
    );
    let v = |name: &'static str, pvc: &'static str| -> [(&'static str, &'static str); 3] {
        [
            ("__name__", name),
            ("namespace", "db"),
            ("persistentvolumeclaim", pvc),
        ]
    };
    let (ca, cb, aa, ab) = (
        v("kubelet_volume_stats_capacity_bytes", "a"),
        v("kubelet_volume_stats_capacity_bytes", "b"),
        v("kubelet_volume_stats_available_bytes", "a"),
        v("kubelet_volume_stats_available_bytes", "b"),
    );
    let fired = fires(
        &rules,
        "KubePersistentVolumeFillingUp",
        &[
            (&ca, &capacity),
            (&cb, &capacity),
            (&aa, &full),
            (&ab, &roomy),
        ],
    );
    assert_eq!(fired, [r#"{namespace="db", persistentvolumeclaim="a"}"#]);

    // Seen from the node: a nearly full root filesystem, a nearly full CSI volume mounted in
    // a pod, a roomy in-tree volume. Each alert takes its own kind of mount.
    let size = every_15s(NOW - 300_000, NOW, |_| 100.0);
    let (low, roomy) = (
        every_15s(NOW - 300_000, NOW, |_| 4.0),
        every_15s(NOW - 300_000, NOW, |_| 70.0),
    );
    let csi = "/var/lib/kubelet/pods/0b7c/volumes/kubernetes.io~csi/pvc-1f2e/mount";
    let in_tree = "/var/lib/kubelet/pods/9a1d/volumes/kubernetes.io~aws-ebs/pvc-77aa";
    let fs = |name: &'static str, mountpoint: &'static str| -> [(&'static str, &'static str); 6] {
        [
            ("__name__", name),
            ("job", "node"),
            ("instance", "n1"),
            ("device", "/dev/nvme1n1"),
            ("fstype", "ext4"),
            ("mountpoint", mountpoint),
        ]
    };
    let (root_size, root_avail) = (
        fs("node_filesystem_size_bytes", "/"),
        fs("node_filesystem_avail_bytes", "/"),
    );
    let (csi_size, csi_avail) = (
        fs("node_filesystem_size_bytes", csi),
        fs("node_filesystem_avail_bytes", csi),
    );
    let (tree_size, tree_avail) = (
        fs("node_filesystem_size_bytes", in_tree),
        fs("node_filesystem_avail_bytes", in_tree),
    );
    let node_view: [Fixture; 6] = [
        (&root_size, &size),
        (&root_avail, &low),
        (&csi_size, &size),
        (&csi_avail, &low),
        (&tree_size, &size),
        (&tree_avail, &roomy),
    ];
    let fired = fires(&rules, "NodeFilesystemAlmostOutOfSpace", &node_view);
    assert_eq!(
        fired,
        [r#"{device="/dev/nvme1n1", fstype="ext4", instance="n1", job="node", mountpoint="/"}"#]
    );
    let fired = fires(&rules, "PersistentVolumeAlmostFull", &node_view);
    assert_eq!(fired, [r#"{instance="n1", persistentvolume="pvc-1f2e"}"#]);
    // Once the kubelet's volume stats arrive, KubePersistentVolumeFillingUp speaks instead.
    let with_kubelet: Vec<Fixture> = node_view
        .iter()
        .copied()
        .chain([(&ca as &[(&str, &str)], &capacity[..])])
        .collect();
    assert!(fires(&rules, "PersistentVolumeAlmostFull", &with_kubelet).is_empty());
}

#[test]
fn alertmanager_config_loads_and_reads_slack_url_from_the_secret() {
    let cm = object_prefixed("ConfigMap", "vigil-server-config-");
    let text = cm["data"]["alertmanager.yml"].as_str().unwrap();
    let config = AlertmanagerConfig::parse(text).unwrap();
    let route = config.route.as_ref().unwrap();
    let default = route.receiver.as_deref().unwrap();
    let receiver = config.receivers.iter().find(|r| r.name == default).unwrap();
    let slack = receiver
        .slack_configs
        .first()
        .expect("the default route posts to Slack");
    assert!(slack.api_url.is_none(), "the URL is never inline");
    let url_file = slack.api_url_file.as_deref().unwrap();

    // The file is a key of the mounted Secret.
    let sts = object("StatefulSet", "vigil-server");
    let pod = &sts["spec"]["template"]["spec"];
    let secret_volume = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| !v["secret"].is_null())
        .unwrap();
    let secret = object(
        "Secret",
        secret_volume["secret"]["secretName"].as_str().unwrap(),
    );
    let mount = pod["containers"][0]["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == secret_volume["name"])
        .unwrap();
    let key = url_file
        .strip_prefix(mount["mountPath"].as_str().unwrap())
        .and_then(|k| k.strip_prefix('/'))
        .unwrap_or_else(|| panic!("{url_file} is not in the Secret's mount"));
    assert!(
        !secret["stringData"][key].is_null() || !secret["data"][key].is_null(),
        "Secret has no key {key}"
    );
}

/// Issue 11: the ConfigMap passes the binary's own checks, the way an operator runs them
/// before applying it: `vigil check config` (which also checks the rule files it globs),
/// `vigil check rules` and `vigil check alertmanager-config`.
#[test]
fn configmap_passes_vigil_check() {
    let cm = object_prefixed("ConfigMap", "vigil-server-config-");
    vigil_check_server_config(cm["data"].as_object().unwrap()).unwrap();
}

/// `vigil <args>` in `dir`: its stdout, or stdout and stderr when it fails.
fn vigil_in(dir: &Path, args: &[&str]) -> Result<String, String> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(args)
        .current_dir(dir)
        .env("VIGIL_LOG", "error")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "vigil {args:?}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Runs the server ConfigMap `data` (file name → text) through `vigil check config`,
/// `vigil check rules` and `vigil check alertmanager-config` as the pod sees the files; the
/// error is the failing command's output.
pub fn vigil_check_server_config(data: &Map<String, Value>) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    for (key, text) in data {
        std::fs::write(dir.path().join(key), text.as_str().unwrap()).unwrap();
    }
    let run = |args: &[&str]| vigil_in(dir.path(), args);
    let rule_files: Vec<&str> = data
        .keys()
        .map(String::as_str)
        .filter(|n| n.ends_with(".rules.yml"))
        .collect();
    let out = run(&["check", "config", "vigil.yml"])?;
    assert!(
        out.contains(&format!(
            "  SUCCESS: {} rule files found\n",
            rule_files.len()
        )),
        "{out}"
    );
    let mut args = vec!["check", "rules"];
    args.extend(&rule_files);
    let out = run(&args)?;
    assert_eq!(
        out.matches("  SUCCESS: ").count(),
        rule_files.len(),
        "{out}"
    );
    let out = run(&["check", "alertmanager-config", "alertmanager.yml"])?;
    assert!(out.contains("  SUCCESS\n"), "{out}");
    Ok(())
}

/// The agent's scrape config as its ConfigMap holds it, loaded with the agent's own loader
/// (`collector::ScrapeFile`, what `vigil agent --config.file` calls; unknown keys are errors).
pub fn load_agent_config(cm: &Value) -> Result<collector::ScrapeFile, String> {
    let text = cm["data"]["agent.yml"]
        .as_str()
        .ok_or("the agent ConfigMap has no agent.yml")?;
    collector::ScrapeFile::parse(text).map_err(|e| e.to_string())
}

#[test]
fn agent_config_loads_and_scrapes_annotated_pods_as_the_flag_does() {
    let cm = object_prefixed("ConfigMap", "vigil-agent-config-");
    let file = load_agent_config(cm).unwrap();
    let jobs: Vec<&str> = file
        .scrape_configs
        .iter()
        .map(|j| j.job_name.as_str())
        .collect();
    assert_eq!(jobs, ["kubernetes-pods"]);
    // Written out so operators can change it, but the same job as --scrape.kubernetes-pods.
    assert_eq!(
        file.scrape_configs[0],
        collector::ScrapeConfig::annotated_pods().unwrap()
    );
    assert!(file.pools().is_ok());

    // The loader is strict: a typo'd key in the same file is refused by name.
    let text = cm["data"]["agent.yml"]
        .as_str()
        .unwrap()
        .replace("honor_labels:", "honour_labels:");
    let err = collector::ScrapeFile::parse(&text).unwrap_err().to_string();
    assert!(err.contains("honour_labels"), "{err}");
}

/// The volume alerts' unit tests (`tests/deploy/volumes.test.yml`, promtool's format) pass
/// under `vigil test rules` and under the real `promtool test rules`: both engines read the
/// rules' `label_replace`, regexes and `unless on ()` the same way. promtool also checks every
/// rule file of the ConfigMap, so the rules move to a Prometheus unchanged.
#[test]
fn rules_pass_vigil_and_promtool_alike() {
    let (dir, files) = config_dir();
    std::fs::copy(
        crate::repo().join("tests/deploy/volumes.test.yml"),
        dir.path().join("volumes.test.yml"),
    )
    .unwrap();
    let out = vigil_in(dir.path(), &["test", "rules", "volumes.test.yml"]).unwrap();
    assert!(out.contains("  SUCCESS\n"), "{out}");

    if !crate::tool_available("promtool", &["--version"], "apt install prometheus") {
        return;
    }
    let promtool = |args: &[&str]| {
        let out = std::process::Command::new("promtool")
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    promtool(&["test", "rules", "volumes.test.yml"]);
    let mut args = vec!["check", "rules"];
    args.extend(
        files
            .iter()
            .filter_map(|p| p.file_name()?.to_str())
            .filter(|n| n.ends_with(".rules.yml")),
    );
    promtool(&args);
}
