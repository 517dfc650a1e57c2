//! Reloading rules as Prometheus does: `POST /-/reload` (with `--web.enable-lifecycle`) and
//! SIGHUP read the config and rule files again; a pending alert keeps its `activeAt` across a
//! reload; a broken rule file is refused with its file and line while the old rules keep
//! running; the outcome shows in `prometheus_config_last_reload_successful`.

use crate::harness::*;
use std::time::Duration;

const RULES: &str = "groups:\n  - name: reload\n    interval: 1s\n    rules:\n      - alert: Held\n        expr: reload_trigger > 0\n        for: 1h\n";

async fn post_reload(v: &Vigil) -> (u16, String) {
    let r = client()
        .post(v.url("/-/reload"))
        .send()
        .await
        .expect("reload request");
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

/// The rule names `/api/v1/rules` lists, in order.
async fn rule_names(v: &Vigil) -> Vec<String> {
    let (_, j) = get_json(v, "/api/v1/rules").await;
    j["data"]["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .filter_map(|r| r["name"].as_str().map(str::to_string))
        .collect()
}

async fn held_active_at(v: &Vigil) -> Option<String> {
    let (_, j) = get_json(v, "/api/v1/alerts").await;
    j["data"]["alerts"]
        .as_array()?
        .iter()
        .find(|a| a["labels"]["alertname"] == "Held")
        .and_then(|a| a["activeAt"].as_str().map(str::to_string))
}

async fn reload_gauge(v: &Vigil) -> Option<String> {
    let text = client()
        .get(v.url("/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find(|l| l.starts_with("prometheus_config_last_reload_successful "))
        .map(|l| l.rsplit(' ').next().unwrap_or("").to_string())
}

#[tokio::test]
async fn rules_reload_keeps_alert_state_and_refuses_a_broken_file() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yml");
    std::fs::write(&rules, RULES).unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(&config, format!("rule_files: ['{}']\n", rules.display())).unwrap();
    let v = Vigil::server(&[
        &format!("--config.file={}", config.display()),
        "--web.enable-lifecycle",
    ]);
    let body = write_body(&[(
        &[("__name__", "reload_trigger"), ("job", "r")],
        vec![(now_ms() - 500, 1.0)],
    )]);
    assert_eq!(remote_write(&v, body).await.0, 204);
    let active_at = eventually(Duration::from_secs(10), || held_active_at(&v))
        .await
        .expect("the alert never became pending");

    // A new rule beside the old one: both listed, the pending alert keeps its activeAt.
    std::fs::write(
        &rules,
        format!("{RULES}      - record: reload:one\n        expr: vector(1)\n"),
    )
    .unwrap();
    assert_eq!(post_reload(&v).await, (200, String::new()));
    assert_eq!(rule_names(&v).await, ["Held", "reload:one"]);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        held_active_at(&v).await.as_deref(),
        Some(active_at.as_str())
    );
    assert_eq!(reload_gauge(&v).await.as_deref(), Some("1"));

    // A broken expression: 500 naming the file and line, the old rules stay in service.
    std::fs::write(
        &rules,
        format!("{RULES}      - record: reload:broken\n        expr: sum(up\n"),
    )
    .unwrap();
    let (status, text) = post_reload(&v).await;
    assert_eq!(status, 500, "{text}");
    let want = format!("failed to reload config: {}: 9:15: group \"reload\", rule 2, \"reload:broken\": could not parse expression", rules.display());
    assert!(text.starts_with(&want), "{text}");
    assert_eq!(rule_names(&v).await, ["Held", "reload:one"]);
    assert_eq!(reload_gauge(&v).await.as_deref(), Some("0"));
    assert_eq!(
        held_active_at(&v).await.as_deref(),
        Some(active_at.as_str())
    );

    // SIGHUP reloads too: back to the one rule.
    std::fs::write(&rules, RULES).unwrap();
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &v.pid().to_string()])
        .status()
        .expect("kill -HUP");
    assert!(hup.success());
    let one = eventually(Duration::from_secs(10), || async {
        (rule_names(&v).await == ["Held"]).then_some(())
    })
    .await;
    assert!(one.is_some(), "SIGHUP did not reload; log:\n{}", v.log());
    assert_eq!(reload_gauge(&v).await.as_deref(), Some("1"));
    assert_eq!(
        held_active_at(&v).await.as_deref(),
        Some(active_at.as_str())
    );
}

#[tokio::test]
async fn reload_over_http_needs_the_lifecycle_flag() {
    let v = Vigil::server(&[]);
    assert_eq!(
        post_reload(&v).await,
        (403, "Lifecycle API is not enabled.".to_string())
    );
}

/// The receiver names `/api/v2/receivers` lists.
async fn receivers(v: &Vigil) -> Vec<String> {
    let (_, j) = get_json(v, "/api/v2/receivers").await;
    j.as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["name"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn the_alertmanager_config_reloads_with_the_rules_and_a_broken_one_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let am = dir.path().join("alertmanager.yml");
    let one = "route:\n  receiver: a\nreceivers:\n- name: a\n";
    std::fs::write(&am, one).unwrap();
    let rules = dir.path().join("rules.yml");
    std::fs::write(&rules, RULES).unwrap();
    let v = Vigil::server(&[
        &format!("--alertmanager.config.file={}", am.display()),
        &format!("--rules.file={}", rules.display()),
        "--web.enable-lifecycle",
    ]);
    assert_eq!(receivers(&v).await, ["a"]);

    std::fs::write(
        &am,
        "route:\n  receiver: a\n  routes:\n  - matchers: [team=b]\n    receiver: b\nreceivers:\n- name: a\n- name: b\n",
    )
    .unwrap();
    assert_eq!(post_reload(&v).await, (200, String::new()));
    assert_eq!(receivers(&v).await, ["a", "b"]);
    let (_, status) = get_json(&v, "/api/v2/status").await;
    assert!(
        status["config"]["original"]
            .as_str()
            .is_some_and(|c| c.contains("team=b")),
        "{status}"
    );

    // A broken Alertmanager config refuses the whole reload, rules included.
    std::fs::write(&am, "route:\n  receiver: nope\nreceivers:\n- name: a\n").unwrap();
    std::fs::write(
        &rules,
        format!("{RULES}      - record: reload:one\n        expr: vector(1)\n"),
    )
    .unwrap();
    let (status, text) = post_reload(&v).await;
    assert_eq!(status, 500);
    assert!(
        text.contains("undefined receiver \"nope\" used in route (line 2)"),
        "{text}"
    );
    assert_eq!(receivers(&v).await, ["a", "b"]);
    assert_eq!(rule_names(&v).await, ["Held"]);
}
