//! Rule groups evaluated at the same phase as in Prometheus 2.42 (issue 9): both stacks load
//! one rule file from one path, and each group's `lastEvaluation` in `/api/v1/rules` must sit
//! at the same point of its interval (Prometheus's `Group.EvalTimestamp`: the XXH64 label
//! hash of `{file, name}` modulo the interval). Prometheus reports the wall time its
//! evaluation began, a little after the slot; Vigil reports the slot itself.
//!
//! Needs `/usr/bin/prometheus`; skips without it unless `CI=true`.

use crate::harness::*;
use crate::peers::Prometheus;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

/// Two groups with different intervals, so more than the sub-second phase is compared.
const RULES: &str = "groups:
  - name: phase-every-second
    rules:
      - record: phase:one
        expr: vector(1)
  - name: phase-every-three
    interval: 3s
    rules:
      - record: phase:three
        expr: vector(3)
";

/// How late Prometheus's ticker may start an evaluation after its slot on a loaded machine.
const PROMETHEUS_LAG_MS: i64 = 250;

/// Each group's file, interval (ms) and last evaluation (Unix ms), once all have one.
async fn evaluations(base: &str) -> Option<BTreeMap<String, (String, i64, i64)>> {
    let body: Value = client()
        .get(format!("{base}/api/v1/rules"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    let mut out = BTreeMap::new();
    for g in body["data"]["groups"].as_array()? {
        let last = chrono::DateTime::parse_from_rfc3339(g["lastEvaluation"].as_str()?).ok()?;
        if last.timestamp() < 1_000_000_000 {
            return None; // Go's zero time: not evaluated yet.
        }
        let interval_ms = (g["interval"].as_f64()? * 1000.0).round() as i64;
        out.insert(
            g["name"].as_str()?.to_string(),
            (
                g["file"].as_str()?.to_string(),
                interval_ms,
                last.timestamp_millis(),
            ),
        );
    }
    (out.len() == 2).then_some(out)
}

#[tokio::test]
async fn groups_are_evaluated_at_prometheus_phase() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("phase-rules.yml");
    std::fs::write(&rules, RULES).unwrap();
    let config = format!(
        "global:\n  evaluation_interval: 1s\nrule_files: ['{}']\n",
        rules.display()
    );
    let Some(prom) = Prometheus::start("the evaluation phase test", &config, &[], &[]).await else {
        return;
    };
    let vigil = Vigil::server(&[
        &format!("--rules.file={}", rules.display()),
        "--rules.evaluation-interval=1s",
    ]);
    let theirs_base = format!("http://{}", prom.addr);
    let ours_base = vigil.url("");
    let wait = Duration::from_secs(20);
    let (Some(theirs), Some(ours)) = tokio::join!(
        eventually(wait, || evaluations(&theirs_base)),
        eventually(wait, || evaluations(&ours_base)),
    ) else {
        panic!(
            "a stack never evaluated both groups\nVigil log:\n{}",
            vigil.log()
        );
    };
    let mut problems = Vec::new();
    for (name, (file, interval, last)) in &theirs {
        let Some((our_file, our_interval, our_last)) = ours.get(name) else {
            problems.push(format!("{name}: missing from Vigil's /api/v1/rules"));
            continue;
        };
        assert_eq!((file, interval), (our_file, our_interval), "{name}");
        let (phase, our_phase) = (last.rem_euclid(*interval), our_last.rem_euclid(*interval));
        let lag = (phase - our_phase).rem_euclid(*interval);
        if lag > PROMETHEUS_LAG_MS {
            problems.push(format!(
                "{name} (every {interval} ms): Prometheus at {phase} ms into the interval, \
                 Vigil at {our_phase} ms"
            ));
        }
        eprintln!("{name}: Prometheus {phase} ms, Vigil {our_phase} ms into {interval} ms");
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
