//! `amtool` 0.25 pointed at Vigil (`--alertmanager.url`): adding and querying alerts, adding,
//! listing, updating and expiring silences, showing the config and testing routes all work as
//! against an Alertmanager, and what they print says the same thing Vigil's API does.
//!
//! Needs `/usr/bin/amtool`; skips without it unless `CI=true`.

use crate::harness::*;
use crate::peers::present;
use std::process::Command;

const AMTOOL: &str = "/usr/bin/amtool";

const CONFIG: &str = "route:\n  receiver: team\n  group_by: [alertname]\n  routes:\n  - receiver: pager\n    matchers: ['severity=\"page\"']\nreceivers:\n- name: team\n- name: pager\n";

/// Runs amtool against `v`; its stdout, or a panic with both streams when it fails.
fn amtool(v: &Vigil, args: &[&str]) -> String {
    let url = format!("--alertmanager.url={}", v.url(""));
    let out = Command::new(AMTOOL)
        .arg(&url)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run amtool: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "amtool {args:?} failed\nstdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amtool_manages_alerts_and_silences_in_vigil() {
    if !present(AMTOOL, "driving Vigil with amtool") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("alertmanager.yml");
    std::fs::write(&config, CONFIG).unwrap();
    let v = Vigil::server(&[&format!("--alertmanager.config.file={}", config.display())]);

    amtool(
        &v,
        &[
            "alert",
            "add",
            "alertname=DiskFull",
            "severity=page",
            "instance=a",
            "--annotation=summary=disk a",
        ],
    );
    let alerts: serde_json::Value =
        serde_json::from_str(&amtool(&v, &["alert", "query", "-o", "json"])).unwrap();
    let alert = &alerts[0];
    assert_eq!(alert["labels"]["alertname"], "DiskFull");
    assert_eq!(alert["annotations"]["summary"], "disk a");
    assert_eq!(alert["receivers"][0]["name"], "pager", "routed by severity");
    assert_eq!(alert["status"]["state"], "active");

    let id = amtool(
        &v,
        &[
            "silence",
            "add",
            "alertname=DiskFull",
            "--comment=disk replaced",
            "--author=ci",
            "--duration=1h",
        ],
    )
    .trim()
    .to_string();
    assert_eq!(id.len(), 36, "a silence id: {id:?}");
    let silences: serde_json::Value =
        serde_json::from_str(&amtool(&v, &["silence", "query", "-o", "json"])).unwrap();
    assert_eq!(silences[0]["id"], id.as_str());
    assert_eq!(silences[0]["comment"], "disk replaced");
    let suppressed = amtool(&v, &["alert", "query", "--silenced", "-o", "simple"]);
    assert!(
        suppressed.contains("DiskFull") && suppressed.contains("suppressed"),
        "{suppressed}"
    );
    let active = amtool(&v, &["alert", "query", "-o", "simple"]);
    assert!(!active.contains("DiskFull"), "silenced: {active}");

    amtool(&v, &["silence", "update", &id, "--duration=2h"]);
    let (_, listed) = get_json(&v, &format!("/api/v2/silence/{id}")).await;
    assert_eq!(listed["status"]["state"], "active");
    amtool(&v, &["silence", "expire", &id]);
    let (_, expired) = get_json(&v, &format!("/api/v2/silence/{id}")).await;
    assert_eq!(expired["status"]["state"], "expired");
    assert!(amtool(&v, &["silence", "query", "-q"]).trim().is_empty());
    assert_eq!(
        amtool(&v, &["silence", "query", "--expired", "-q"]).trim(),
        id
    );
    let active = amtool(&v, &["alert", "query", "-o", "simple"]);
    assert!(active.contains("DiskFull"), "unsilenced again: {active}");

    let shown = amtool(&v, &["config", "show"]);
    assert!(shown.contains("resolve_timeout: 5m"), "{shown}");
    assert!(shown.contains("- name: pager"), "{shown}");
    assert!(
        !shown.contains("null"),
        "unset fields are left out: {shown}"
    );
    let routed = amtool(&v, &["config", "routes", "test", "severity=page"]);
    assert_eq!(routed.trim(), "pager");
}
