//! `deploy/kubernetes` as objects: rendering, schema validation against several Kubernetes
//! versions, cross-references, and the operator-facing settings of the agent and the server.

use crate::checks::{self, describe, kind, name};
use crate::render;
use crate::{kustomization_dir, object, rendered, tool_available};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::process::Command;

/// Oldest, a middle and newest Kubernetes minor versions the manifests are validated against
/// (kubernetes-validate 1.37 bundles schemas for 1.25 to 1.37).
const KUBERNETES_VERSIONS: &[&str] = &["1.29.0", "1.33.0", "1.37.0"];

/// Objects keyed by kind, namespace and name, for order-insensitive comparison.
fn keyed(objects: &[Value]) -> BTreeMap<String, Value> {
    objects.iter().map(|o| (describe(o), o.clone())).collect()
}

#[test]
fn renderer_matches_kubectl_kustomize() {
    // kubectl is a cross-check of the renderer, not a requirement: Debian bookworm has no
    // kubectl whose kustomize can read these manifests, so CI may lack it. Say so and go on.
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(kustomization_dir())
        .output();
    let out = match out {
        Ok(out) if out.status.success() => out,
        Ok(out) => panic!(
            "kubectl kustomize failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(_) => {
            println!("skipped: kubectl is not installed; the test renderer alone renders");
            return;
        }
    };
    let theirs = render::parse_documents(&String::from_utf8_lossy(&out.stdout)).unwrap();
    let (theirs, ours) = (keyed(&theirs), keyed(rendered()));
    assert_eq!(
        theirs.keys().collect::<Vec<_>>(),
        ours.keys().collect::<Vec<_>>(),
        "kubectl and the test renderer render different objects"
    );
    for (key, obj) in &theirs {
        assert_eq!(
            obj, &ours[key],
            "{key} differs between kubectl and the renderer"
        );
    }
}

#[test]
fn config_map_hash_is_kustomizes() {
    // `kubectl kustomize` (kustomize v5.5.0) names a configMapGenerator `cm` with one file
    // `x.yml` holding "a: 1\n" `cm-6796bdbgfg`, and `cm-m8fgkc4dfm` for `r.yml` whose `<`, `>` and
    // `&` Go escapes.
    let hash = render::config_map_hash(&json!({"x.yml": "a: 1\n"})).unwrap();
    assert_eq!(hash, "6796bdbgfg");
    let hash = render::config_map_hash(&json!({"r.yml": "expr: a < 1 & b > 2\n"})).unwrap();
    assert_eq!(hash, "m8fgkc4dfm");
}

#[test]
fn renderer_refuses_what_it_does_not_apply() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("kustomization.yaml"),
        "resources: []\npatches:\n  - path: p.yaml\n",
    )
    .unwrap();
    let err = render::render(dir.path()).unwrap_err().to_string();
    assert!(err.contains("\"patches\""), "{err}");
}

#[test]
fn every_object_validates_against_three_kubernetes_versions() {
    if !tool_available(
        "kubernetes-validate",
        &["--version"],
        "pip install kubernetes-validate",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rendered.yaml");
    let stream: Vec<String> = rendered()
        .iter()
        .map(|o| serde_yaml::to_string(o).unwrap())
        .collect();
    std::fs::write(&file, stream.join("---\n")).unwrap();
    for version in KUBERNETES_VERSIONS {
        let out = Command::new("kubernetes-validate")
            .args(["--strict", "--quiet", "-k", version])
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "kubernetes-validate --strict -k {version}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn everything_lives_in_the_vigil_namespace() {
    for obj in rendered() {
        let cluster_scoped = [
            "Namespace",
            "ClusterRole",
            "ClusterRoleBinding",
            "PriorityClass",
        ]
        .contains(&kind(obj));
        let ns = checks::namespace(obj);
        if cluster_scoped {
            assert_eq!(ns, None, "{}", describe(obj));
        } else {
            assert_eq!(ns, Some("vigil"), "{}", describe(obj));
        }
    }
    object("Namespace", "vigil");
}

#[test]
fn references_resolve_and_selectors_match() {
    let problems = checks::problems(rendered());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Applies `edit` to a copy of the rendered objects and returns what the checks find.
fn problems_after(edit: impl FnOnce(&mut Vec<Value>)) -> String {
    let mut objects = rendered().to_vec();
    edit(&mut objects);
    checks::problems(&objects).join("\n")
}

/// One mistake made to the rendered objects.
type Edit = Box<dyn FnOnce(&mut Vec<Value>)>;

fn find<'a>(objects: &'a mut [Value], k: &str, n: &str) -> &'a mut Value {
    objects
        .iter_mut()
        .find(|o| kind(o) == k && name(o).starts_with(n))
        .unwrap()
}

#[test]
fn checks_catch_broken_manifests() {
    // Each edit is one mistake schema validation lets through; the checks must name it.
    let cases: Vec<(&str, Edit)> = vec![
        (
            "does not match the pod template's labels",
            Box::new(|o| {
                find(o, "DaemonSet", "vigil-agent")["spec"]["template"]["metadata"]["labels"]
                    ["app.kubernetes.io/name"] = json!("agent");
            }),
        ),
        (
            "mounts volume \"state\", which is not declared",
            Box::new(|o| {
                let pod = &mut find(o, "DaemonSet", "vigil-agent")["spec"]["template"]["spec"];
                pod["volumes"]
                    .as_array_mut()
                    .unwrap()
                    .retain(|v| v["name"] != "state");
            }),
        ),
        (
            "refers to ConfigMap",
            Box::new(|o| o.retain(|obj| kind(obj) != "ConfigMap")),
        ),
        (
            "refers to Secret \"vigil-slack\"",
            Box::new(|o| o.retain(|obj| kind(obj) != "Secret")),
        ),
        (
            "ServiceAccount \"vigil-server\" is not rendered",
            Box::new(|o| {
                o.retain(|obj| !(kind(obj) == "ServiceAccount" && name(obj) == "vigil-server"))
            }),
        ),
        (
            "readinessProbe aims at port",
            Box::new(|o| {
                find(o, "StatefulSet", "vigil-server")["spec"]["template"]["spec"]["containers"]
                    [0]["readinessProbe"]["httpGet"]["port"] = json!("web");
            }),
        ),
        (
            "which no selected container exposes",
            Box::new(|o| {
                find(o, "Service", "vigil-server")["spec"]["ports"][0]["targetPort"] = json!(9091);
            }),
        ),
        (
            "PodDisruptionBudget vigil/vigil-server: selector matches no workload",
            Box::new(|o| {
                find(o, "PodDisruptionBudget", "vigil-server")["spec"]["selector"]["matchLabels"]
                    ["app.kubernetes.io/name"] = json!("vigil");
            }),
        ),
        (
            "but is not headless",
            Box::new(|o| {
                find(o, "Service", "vigil-server-headless")["spec"]
                    .as_object_mut()
                    .unwrap()
                    .remove("clusterIP");
            }),
        ),
        (
            "PriorityClass \"vigil-agent\" is not rendered",
            Box::new(|o| o.retain(|obj| kind(obj) != "PriorityClass")),
        ),
        (
            "roleRef ClusterRole \"vigil-agent\" is not rendered",
            Box::new(|o| o.retain(|obj| kind(obj) != "ClusterRole")),
        ),
        (
            "is declared but never mounted",
            Box::new(|o| {
                let pod = &mut find(o, "StatefulSet", "vigil-server")["spec"]["template"]["spec"];
                pod["volumes"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"name": "spare", "emptyDir": {}}));
            }),
        ),
        (
            "--config.file names key \"scrape.yml\", which ConfigMap",
            Box::new(|o| {
                let c = &mut find(o, "DaemonSet", "vigil-agent")["spec"]["template"]["spec"]
                    ["containers"][0];
                for arg in c["args"].as_array_mut().unwrap() {
                    if arg.as_str().unwrap().starts_with("--config.file=") {
                        *arg = json!("--config.file=/etc/vigil/agent/scrape.yml");
                    }
                }
            }),
        ),
        (
            "store \"logs\" on claim \"data\" has no size bound",
            Box::new(|o| {
                let c = &mut find(o, "StatefulSet", "vigil-server")["spec"]["template"]["spec"]
                    ["containers"][0];
                c["args"].as_array_mut().unwrap().retain(|a| {
                    !a.as_str()
                        .unwrap()
                        .starts_with("--storage.logs.retention.size=")
                });
            }),
        ),
        (
            "retention sizes add up to",
            Box::new(|o| {
                find(o, "StatefulSet", "vigil-server")["spec"]["volumeClaimTemplates"][0]["spec"]
                    ["resources"]["requests"]["storage"] = json!("16Gi");
            }),
        ),
    ];
    for (expected, edit) in cases {
        let found = problems_after(edit);
        assert!(
            found.contains(expected),
            "expected a problem containing {expected:?}, found:\n{found}"
        );
    }
}

/// The first container of a workload's pod template.
fn container(workload: &Value) -> &Value {
    &workload["spec"]["template"]["spec"]["containers"][0]
}

/// The container's `args`.
fn args(workload: &Value) -> Vec<&str> {
    container(workload)["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect()
}

#[test]
fn agent_runs_on_every_node_with_least_privilege() {
    let ds = object("DaemonSet", "vigil-agent");
    let pod = &ds["spec"]["template"]["spec"];
    let tolerations = pod["tolerations"].as_array().unwrap();
    assert!(
        tolerations.iter().any(|t| t["operator"] == "Exists"
            && t.get("key").is_none()
            && t.get("effect").is_none()),
        "the agent must tolerate every taint: {tolerations:?}"
    );
    assert_eq!(ds["spec"]["updateStrategy"]["type"], "RollingUpdate");
    assert!(!ds["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"].is_null());

    let c = container(ds);
    let sc = &c["securityContext"];
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
    assert!(
        sc["capabilities"].get("add").is_none(),
        "no capability is added"
    );
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    for r in ["cpu", "memory"] {
        assert!(!c["resources"]["requests"][r].is_null(), "request {r}");
        assert!(!c["resources"]["limits"][r].is_null(), "limit {r}");
    }

    // Host paths are mounted read-only, except the state directory the agent writes.
    let host_paths: BTreeMap<&str, &str> = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| Some((v["name"].as_str()?, v["hostPath"]["path"].as_str()?)))
        .collect();
    let state = args(ds)
        .iter()
        .find_map(|a| a.strip_prefix("--state.path="))
        .expect("--state.path");
    for m in c["volumeMounts"].as_array().unwrap() {
        let mname = m["name"].as_str().unwrap();
        if !host_paths.contains_key(mname) {
            continue;
        }
        let writable = m["mountPath"] == state;
        assert_eq!(
            m["readOnly"].as_bool().unwrap_or(false),
            !writable,
            "hostPath mount {mname}: only the state directory is writable"
        );
    }
    assert!(host_paths.values().any(|p| *p == "/var/log/pods"));
    assert!(host_paths.values().any(|p| *p == "/proc"));

    // The node name comes from the downward API, for the --node-name flag's NODE_NAME.
    let env = c["env"].as_array().unwrap();
    let field = |n: &str| {
        env.iter()
            .find(|e| e["name"] == n)
            .map(|e| e["valueFrom"]["fieldRef"]["fieldPath"].clone())
    };
    assert_eq!(field("NODE_NAME"), Some(json!("spec.nodeName")));
    assert_eq!(field("NODE_IP"), Some(json!("status.hostIP")));

    // Probed on its own endpoint, on the host's network away from node_exporter's 9100.
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/-/healthy");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/-/ready");
    let port = &c["ports"][0];
    assert_eq!(port["name"], c["readinessProbe"]["httpGet"]["port"]);
    assert_ne!(port["containerPort"], json!(9100));
    let listen = format!("--web.listen-address=0.0.0.0:{}", port["containerPort"]);
    assert!(
        args(ds).contains(&listen.as_str()),
        "the flag and the declared port agree"
    );

    // What it scrapes besides the node comes from its ConfigMap, mounted read-only; the job
    // the flag would add is in the file instead (twice would be a duplicate job).
    let config = args(ds)
        .iter()
        .find_map(|a| a.strip_prefix("--config.file="))
        .expect("--config.file");
    let mount = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| config.starts_with(m["mountPath"].as_str().unwrap()))
        .expect("--config.file is on a mount");
    assert_eq!(mount["readOnly"], true);
    let volume = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .unwrap();
    assert!(volume["configMap"]["name"]
        .as_str()
        .unwrap()
        .starts_with("vigil-agent-config-"));
    assert!(!args(ds).contains(&"--scrape.kubernetes-pods"));

    // The ClusterRole reads and never writes.
    let role = object("ClusterRole", "vigil-agent");
    for rule in role["rules"].as_array().unwrap() {
        for verb in rule["verbs"].as_array().unwrap() {
            assert!(
                ["get", "list", "watch"].contains(&verb.as_str().unwrap()),
                "{rule}"
            );
        }
        for res in rule["resources"].as_array().unwrap() {
            assert!(
                !["secrets", "configmaps", "nodes/proxy"].contains(&res.as_str().unwrap()),
                "{rule}"
            );
        }
    }
}

#[test]
fn server_is_guaranteed_persistent_and_drains_gracefully() {
    let sts = object("StatefulSet", "vigil-server");
    let c = container(sts);
    assert_eq!(
        c["resources"]["requests"], c["resources"]["limits"],
        "requests equal limits (Guaranteed QoS)"
    );
    let claims = sts["spec"]["volumeClaimTemplates"].as_array().unwrap();
    assert_eq!(claims.len(), 1);
    let data_mount = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == claims[0]["metadata"]["name"])
        .expect("the claim is mounted");
    let data_dir = data_mount["mountPath"].as_str().unwrap();
    for flag in ["--storage.tsdb.path=", "--storage.logs.path="] {
        let path = args(sts)
            .iter()
            .find_map(|a| a.strip_prefix(flag))
            .unwrap_or_else(|| panic!("{flag} is set"));
        assert!(path.starts_with(data_dir), "{flag}{path} is on the volume");
    }
    // Both stores are bounded by age and by size (the sizes fitting the claim is a check of
    // `checks::problems`, run on these objects in references_resolve_and_selectors_match).
    for flag in [
        "--storage.tsdb.retention.time=",
        "--storage.tsdb.retention.size=",
        "--storage.logs.retention.time=",
        "--storage.logs.retention.size=",
    ] {
        let set: Vec<&str> = args(sts)
            .into_iter()
            .filter(|a| a.starts_with(flag))
            .collect();
        assert_eq!(set.len(), 1, "{flag} once: {set:?}");
    }
    let grace = sts["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        .as_u64()
        .unwrap();
    assert!(grace >= 60, "{grace}s is too short to flush");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/-/healthy");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/-/ready");
    let pod_sc = &sts["spec"]["template"]["spec"]["securityContext"];
    assert_eq!(pod_sc["runAsNonRoot"], true);
    assert!(!pod_sc["fsGroup"].is_null(), "the volume is writable");
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);

    let ports = |svc: &Value| svc["spec"]["ports"][0]["port"].clone();
    assert_eq!(ports(object("Service", "vigil-server")), json!(9090));
    let headless = object("Service", "vigil-server-headless");
    assert_eq!(headless["spec"]["clusterIP"], "None");
    assert_eq!(sts["spec"]["serviceName"], "vigil-server-headless");
    object("PodDisruptionBudget", "vigil-server");
}
