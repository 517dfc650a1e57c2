//! `for` state across a `kill -9` (issue 9), beside Prometheus 2.42 doing the same: an alert
//! pending for most of its `for` when the server is killed fires, after a restart on the same
//! data directory, once it has been pending for `for` in total while the server was up
//! (Prometheus's `RestoreForState`: the `ALERTS_FOR_STATE` value is shifted by the downtime),
//! not a whole `for` after the restart.
//!
//! What is observed, on each stack: the alert's `activeAt` before the kill, the
//! `ALERTS_FOR_STATE` samples around the outage (the last one before it is when the server
//! went down; the first one after it carries the restored `activeAt`) and the first
//! `ALERTS{alertstate="firing"}` sample. `ALERTS_FOR_STATE` holds whole seconds, hence the
//! one-second allowances.
//!
//! Needs `/usr/bin/prometheus`; skips without it unless `CI=true`.

use crate::harness::*;
use crate::peers::PROMETHEUS;
use serde_json::Value;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const EVAL_MS: i64 = 1000;
/// The rule's `for`.
const FOR_MS: i64 = 10_000;
/// How long the alert has been pending when the server is killed.
const PENDING_BEFORE_KILL_MS: i64 = 6_000;
/// `ALERTS_FOR_STATE` is in whole seconds: one second, plus scheduling slack.
const SECOND_SLACK_MS: i64 = 1_300;

const RULES: &str = "groups:
  - name: restore
    rules:
      - alert: SlowBurn
        expr: restore_cond > 0
        for: 10s
        labels:
          severity: page
";

/// A server that can be killed with SIGKILL and started again on the same data.
trait Restartable {
    fn base(&self) -> String;
    fn kill9(&mut self);
    async fn restart(&mut self);
}

/// Vigil on a directory that outlives its processes.
struct VigilNode {
    dir: tempfile::TempDir,
    flags: Vec<String>,
    process: Option<Vigil>,
}

impl VigilNode {
    fn start(rules: &std::path::Path) -> VigilNode {
        let dir = tempfile::tempdir().unwrap();
        let flags = vec![
            format!("--rules.file={}", rules.display()),
            "--rules.evaluation-interval=1s".to_string(),
            "--rules.alert.for-grace-period=1s".to_string(),
        ];
        let mut node = VigilNode {
            dir,
            flags,
            process: None,
        };
        node.spawn();
        node
    }

    fn spawn(&mut self) {
        let flags: Vec<&str> = self.flags.iter().map(String::as_str).collect();
        self.process = Some(Vigil::server_in(self.dir.path(), &flags));
    }
}

impl Restartable for VigilNode {
    fn base(&self) -> String {
        self.process.as_ref().map(|v| v.url("")).unwrap_or_default()
    }
    fn kill9(&mut self) {
        if let Some(v) = self.process.take() {
            v.kill9();
        }
    }
    async fn restart(&mut self) {
        self.spawn();
    }
}

/// Prometheus 2.42 on a directory that outlives its processes.
struct PromNode {
    dir: tempfile::TempDir,
    child: Option<Child>,
    addr: SocketAddr,
}

impl PromNode {
    /// `None` (after saying so) when Prometheus is not installed outside CI.
    async fn start(rules: &std::path::Path) -> Option<PromNode> {
        if !std::path::Path::new(PROMETHEUS).exists() {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("{PROMETHEUS} is missing and CI=true: the for-restore test needs it");
            }
            eprintln!("skipped: {PROMETHEUS} is not installed (set CI=true to make this fail)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("prometheus.yml"),
            format!(
                "global:\n  evaluation_interval: 1s\nrule_files: ['{}']\n",
                rules.display()
            ),
        )
        .unwrap();
        let mut node = PromNode {
            dir,
            child: None,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        node.spawn().await;
        Some(node)
    }

    async fn spawn(&mut self) {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        self.addr = SocketAddr::from(([127, 0, 0, 1], port));
        let child = Command::new(PROMETHEUS)
            .arg(format!(
                "--storage.tsdb.path={}",
                self.dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={}", self.addr))
            .arg(format!(
                "--config.file={}",
                self.dir.path().join("prometheus.yml").display()
            ))
            .arg("--web.enable-remote-write-receiver")
            .arg("--rules.alert.for-grace-period=1s")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus");
        self.child = Some(child);
        let base = self.base();
        let ready = eventually(Duration::from_secs(30), || async {
            let r = client().get(format!("{base}/-/ready")).send().await.ok()?;
            r.status().is_success().then_some(())
        })
        .await;
        assert!(ready.is_some(), "prometheus did not become ready");
    }
}

impl Restartable for PromNode {
    fn base(&self) -> String {
        format!("http://{}", self.addr)
    }
    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
    async fn restart(&mut self) {
        self.spawn().await;
    }
}

impl Drop for PromNode {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// What one stack did around its outage (all times in Unix milliseconds).
#[derive(Debug, Clone, Copy)]
struct Outcome {
    /// The alert's `activeAt` before the kill, as `/api/v1/alerts` reported it.
    active_at: i64,
    /// When the process was killed and when its successor was started.
    killed: i64,
    restarted: i64,
    /// The last `ALERTS_FOR_STATE` sample before the kill: when the server went down.
    down_at: i64,
    /// The first `ALERTS_FOR_STATE` sample after the restart and its value (the restored
    /// `activeAt`, whole seconds, in milliseconds).
    first_after: i64,
    restored_active_at: i64,
    /// The first `ALERTS{alertstate="firing"}` sample.
    fired: i64,
}

impl Outcome {
    /// Time the alert spent pending while the server was up: before the kill, and from the
    /// evaluation that restored it (one interval before `first_after`) until it fired.
    fn pending_while_up(&self) -> i64 {
        (self.down_at - self.active_at) + (self.fired - (self.first_after - EVAL_MS))
    }
}

/// The SlowBurn alert's state and `activeAt` (ms) from `/api/v1/alerts`.
async fn alert_state(base: &str) -> Option<(String, i64)> {
    let body: Value = client()
        .get(format!("{base}/api/v1/alerts"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    let a = body["data"]["alerts"]
        .as_array()?
        .iter()
        .find(|a| a["labels"]["alertname"] == "SlowBurn")?;
    let at = chrono::DateTime::parse_from_rfc3339(a["activeAt"].as_str()?).ok()?;
    Some((a["state"].as_str()?.to_string(), at.timestamp_millis()))
}

/// The `(t_ms, value)` samples of `selector` over the last five minutes.
async fn samples(base: &str, selector: &str) -> Vec<(i64, f64)> {
    let url = format!(
        "{base}/api/v1/query?query={}&time={}",
        enc(&format!("{selector}[5m]")),
        now_ms() as f64 / 1000.0
    );
    let body: Value = client()
        .get(url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["status"], "success", "{selector}: {body}");
    body["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["values"].as_array().cloned().unwrap_or_default())
        .map(|p| {
            let t = (p[0].as_f64().unwrap() * 1000.0).round() as i64;
            (t, p[1].as_str().unwrap().parse::<f64>().unwrap())
        })
        .collect()
}

/// Makes the alert pending, kills the server most of the way through its `for`, restarts it
/// and waits until the alert fires.
async fn scenario<S: Restartable>(node: &mut S, name: &str) -> Outcome {
    // One sample holds the condition true for the lookback window (5m), across the outage.
    let body = write_body(&[(&[("__name__", "restore_cond")], vec![(now_ms() - 500, 1.0)])]);
    let (status, text) = remote_write_to(&node.base(), body).await;
    assert_eq!(status, 204, "{name}: {text}");
    let base = node.base();
    let (state, active_at) = eventually(Duration::from_secs(15), || alert_state(&base))
        .await
        .unwrap_or_else(|| panic!("{name}: SlowBurn never became active"));
    assert_eq!(state, "pending", "{name}");
    let kill_at = active_at + PENDING_BEFORE_KILL_MS;
    tokio::time::sleep(Duration::from_millis((kill_at - now_ms()).max(0) as u64)).await;
    let (state, _) = alert_state(&base).await.unwrap();
    assert_eq!(state, "pending", "{name}: still pending before the kill");
    node.kill9();
    let killed = now_ms();
    let restarted = now_ms();
    node.restart().await;
    let base = node.base();
    let fired_seen = eventually(Duration::from_secs(30), || async {
        let (state, _) = alert_state(&base).await?;
        (state == "firing").then_some(())
    })
    .await;
    assert!(
        fired_seen.is_some(),
        "{name}: SlowBurn did not fire after the restart"
    );
    let for_state = samples(&base, "ALERTS_FOR_STATE").await;
    let firing = samples(&base, r#"ALERTS{alertstate="firing"}"#).await;
    let before: Vec<_> = for_state.iter().filter(|(t, _)| *t <= killed).collect();
    let after: Vec<_> = for_state.iter().filter(|(t, _)| *t >= restarted).collect();
    let (Some(&&(down_at, before_v)), Some(&&(first_after, restored))) =
        (before.last(), after.first())
    else {
        panic!(
            "{name}: ALERTS_FOR_STATE has no samples on both sides of the outage: {for_state:?}"
        );
    };
    assert!(
        before.iter().all(|(_, v)| *v == before_v),
        "{name}: activeAt changed while pending: {before:?}"
    );
    assert_eq!(
        before_v as i64,
        active_at.div_euclid(1000),
        "{name}: ALERTS_FOR_STATE holds activeAt in seconds"
    );
    Outcome {
        active_at,
        killed,
        restarted,
        down_at,
        first_after,
        restored_active_at: restored as i64 * 1000,
        fired: firing
            .first()
            .unwrap_or_else(|| panic!("{name}: no firing ALERTS sample"))
            .0,
    }
}

/// What must hold on each stack; every failure is named.
fn check(o: &Outcome, name: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if !(o.active_at <= o.down_at && o.down_at <= o.killed) {
        problems.push(format!(
            "{name}: the last ALERTS_FOR_STATE before the kill is at {}, active since {}, killed at {}",
            o.down_at, o.active_at, o.killed
        ));
    }
    // The restored activeAt moved by the outage: from the last sample before it to the
    // evaluation that restored (one interval before the first sample after it).
    let shift = o.restored_active_at - o.active_at.div_euclid(1000) * 1000;
    let outage = (o.first_after - EVAL_MS) - o.down_at;
    if (shift - outage).abs() > SECOND_SLACK_MS {
        problems.push(format!(
            "{name}: activeAt moved by {shift} ms over an outage of {outage} ms"
        ));
    }
    // It fired once `for` had passed since the restored activeAt.
    let since = o.fired - o.restored_active_at;
    if !(FOR_MS - SECOND_SLACK_MS..=FOR_MS + EVAL_MS + SECOND_SLACK_MS).contains(&since) {
        problems.push(format!(
            "{name}: fired {since} ms after the restored activeAt, for is {FOR_MS} ms"
        ));
    }
    // Sooner than a fresh start could: a restart that forgot would wait a whole `for`.
    if o.fired - o.restarted >= FOR_MS - 2 * EVAL_MS {
        problems.push(format!(
            "{name}: fired {} ms after the restart: the pending time was not restored",
            o.fired - o.restarted
        ));
    }
    problems
}

#[tokio::test]
async fn for_state_survives_kill9_as_in_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yml");
    std::fs::write(&rules, RULES).unwrap();
    let Some(mut prom) = PromNode::start(&rules).await else {
        return;
    };
    let mut vigil = VigilNode::start(&rules);
    // Both at once: each scenario is mostly waiting.
    let (ours, theirs) = tokio::join!(
        scenario(&mut vigil, "Vigil"),
        scenario(&mut prom, "Prometheus")
    );
    let mut problems = check(&ours, "Vigil");
    problems.extend(check(&theirs, "Prometheus"));
    let (u_ours, u_theirs) = (ours.pending_while_up(), theirs.pending_while_up());
    // Same group phase, same restore step (after the second evaluation): equal to the ms.
    if u_ours != u_theirs {
        problems.push(format!(
            "pending while up: Vigil {u_ours} ms, Prometheus {u_theirs} ms (for is {FOR_MS} ms)"
        ));
    }
    let log = vigil.process.as_ref().map(|v| v.log()).unwrap_or_default();
    assert!(
        problems.is_empty(),
        "{}\nVigil {ours:?}\nPrometheus {theirs:?}\nVigil log:\n{log}",
        problems.join("\n")
    );
    eprintln!("Vigil {ours:?}\nPrometheus {theirs:?}");
}
