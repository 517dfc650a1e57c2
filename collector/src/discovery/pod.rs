//! A pod (the API server's JSON) to a target group with Prometheus's `pod` role labels:
//! pod-level `__meta_kubernetes_pod_*` labels on the group, one target per declared container
//! port (`__address__` = `<pod IP>:<port>`), and one port-less target for a container that
//! declares none. Pure: no I/O.

use model::Labels;
use serde_json::Value;

use crate::scrape::TargetGroup;

const META: &str = "__meta_kubernetes_";

/// The group of `pod`, with `source` as its identity; a pod without an IP yet (pending,
/// unscheduled) has no targets, which removes any group it had.
pub(crate) fn pod_group(source: String, pod: &Value) -> TargetGroup {
    let mut group = TargetGroup {
        source,
        targets: Vec::new(),
        labels: Labels::empty(),
    };
    let str_at = |v: &Value, path: &[&str]| -> String {
        path.iter()
            .try_fold(v, |v, k| v.get(k))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let ip = str_at(pod, &["status", "podIP"]);
    if ip.is_empty() {
        return group;
    }
    let mut labels: Vec<(String, String)> = vec![
        (
            format!("{META}namespace"),
            str_at(pod, &["metadata", "namespace"]),
        ),
        (
            format!("{META}pod_name"),
            str_at(pod, &["metadata", "name"]),
        ),
        (format!("{META}pod_ip"), ip.clone()),
        (format!("{META}pod_uid"), str_at(pod, &["metadata", "uid"])),
        (
            format!("{META}pod_node_name"),
            str_at(pod, &["spec", "nodeName"]),
        ),
        (
            format!("{META}pod_host_ip"),
            str_at(pod, &["status", "hostIP"]),
        ),
        (
            format!("{META}pod_phase"),
            str_at(pod, &["status", "phase"]),
        ),
        (format!("{META}pod_ready"), ready(pod)),
    ];
    for (kind, key) in [("label", "labels"), ("annotation", "annotations")] {
        if let Some(map) = pod
            .get("metadata")
            .and_then(|m| m.get(key))
            .and_then(Value::as_object)
        {
            for (name, value) in map {
                let name = sanitize(name);
                labels.push((
                    format!("{META}pod_{kind}_{name}"),
                    value.as_str().unwrap_or_default().to_string(),
                ));
                labels.push((
                    format!("{META}pod_{kind}present_{name}"),
                    "true".to_string(),
                ));
            }
        }
    }
    let owners = pod
        .get("metadata")
        .and_then(|m| m.get("ownerReferences"))
        .and_then(Value::as_array);
    if let Some(controller) = owners.and_then(|o| {
        o.iter()
            .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
    }) {
        labels.push((
            format!("{META}pod_controller_kind"),
            str_at(controller, &["kind"]),
        ));
        labels.push((
            format!("{META}pod_controller_name"),
            str_at(controller, &["name"]),
        ));
    }
    group.labels = Labels::from_pairs(labels);

    let list = |key: &str| {
        pod.get("spec")
            .and_then(|s| s.get(key))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let containers = list("containers").into_iter().map(|c| (c, false));
    let init = list("initContainers").into_iter().map(|c| (c, true));
    for (c, is_init) in containers.chain(init) {
        let name = str_at(&c, &["name"]);
        let base = vec![
            (format!("{META}pod_container_name"), name.clone()),
            (format!("{META}pod_container_image"), str_at(&c, &["image"])),
            (format!("{META}pod_container_init"), is_init.to_string()),
            (
                format!("{META}pod_container_id"),
                container_id(pod, &name, is_init),
            ),
        ];
        let ports = c
            .get("ports")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if ports.is_empty() {
            let mut t = base;
            t.push(("__address__".to_string(), ip.clone()));
            group.targets.push(Labels::from_pairs(t));
            continue;
        }
        for p in ports {
            let Some(number) = p.get("containerPort").and_then(Value::as_u64) else {
                continue;
            };
            let mut t = base.clone();
            t.push(("__address__".to_string(), join_host_port(&ip, number)));
            t.push((
                format!("{META}pod_container_port_name"),
                str_at(&p, &["name"]),
            ));
            t.push((
                format!("{META}pod_container_port_number"),
                number.to_string(),
            ));
            let protocol = str_at(&p, &["protocol"]);
            t.push((
                format!("{META}pod_container_port_protocol"),
                if protocol.is_empty() {
                    "TCP".to_string()
                } else {
                    protocol
                },
            ));
            group.targets.push(Labels::from_pairs(t));
        }
    }
    group
}

/// `true`, `false` or `unknown` from the pod's `Ready` condition, lower-cased as Prometheus
/// writes it.
fn ready(pod: &Value) -> String {
    pod.get("status")
        .and_then(|s| s.get("conditions"))
        .and_then(Value::as_array)
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
        })
        .and_then(|c| c.get("status").and_then(Value::as_str))
        .unwrap_or("unknown")
        .to_lowercase()
}

fn container_id(pod: &Value, name: &str, is_init: bool) -> String {
    let key = if is_init {
        "initContainerStatuses"
    } else {
        "containerStatuses"
    };
    pod.get("status")
        .and_then(|s| s.get(key))
        .and_then(Value::as_array)
        .and_then(|ss| {
            ss.iter()
                .find(|s| s.get("name").and_then(Value::as_str) == Some(name))
        })
        .and_then(|s| s.get("containerID").and_then(Value::as_str))
        .unwrap_or_default()
        .to_string()
}

/// `host:port`, with brackets around an IPv6 address (Go's `net.JoinHostPort`).
fn join_host_port(host: &str, port: u64) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// A Kubernetes label or annotation name as a Prometheus label name: every character outside
/// `[a-zA-Z0-9_]` becomes `_` (Prometheus's `strutil.SanitizeLabelName`).
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn pod_json() -> Value {
        json!({
            "metadata": {
                "name": "web-1", "namespace": "shop", "uid": "u-1",
                "labels": {"app.kubernetes.io/name": "web"},
                "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "8080"},
                "ownerReferences": [{"kind": "ReplicaSet", "name": "web-5d", "controller": true}]
            },
            "spec": {
                "nodeName": "node-1",
                "containers": [
                    {"name": "app", "image": "web:1", "ports": [
                        {"name": "http", "containerPort": 8080, "protocol": "TCP"},
                        {"containerPort": 9000, "protocol": "UDP"}
                    ]},
                    {"name": "sidecar", "image": "proxy:2"}
                ],
                "initContainers": [{"name": "init", "image": "busybox"}]
            },
            "status": {
                "phase": "Running", "podIP": "10.1.2.3", "hostIP": "192.168.0.5",
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [{"name": "app", "containerID": "containerd://abc"}]
            }
        })
    }

    #[test]
    fn pod_labels_follow_prometheus_pod_role() {
        let g = pod_group("pod/shop/web-1".into(), &pod_json());
        let l = &g.labels;
        assert_eq!(l.get("__meta_kubernetes_namespace"), Some("shop"));
        assert_eq!(l.get("__meta_kubernetes_pod_name"), Some("web-1"));
        assert_eq!(l.get("__meta_kubernetes_pod_ready"), Some("true"));
        assert_eq!(l.get("__meta_kubernetes_pod_phase"), Some("Running"));
        assert_eq!(l.get("__meta_kubernetes_pod_node_name"), Some("node-1"));
        assert_eq!(l.get("__meta_kubernetes_pod_host_ip"), Some("192.168.0.5"));
        assert_eq!(
            l.get("__meta_kubernetes_pod_label_app_kubernetes_io_name"),
            Some("web")
        );
        assert_eq!(
            l.get("__meta_kubernetes_pod_labelpresent_app_kubernetes_io_name"),
            Some("true")
        );
        assert_eq!(
            l.get("__meta_kubernetes_pod_annotation_prometheus_io_port"),
            Some("8080")
        );
        assert_eq!(
            l.get("__meta_kubernetes_pod_controller_kind"),
            Some("ReplicaSet")
        );
        assert_eq!(
            l.get("__meta_kubernetes_pod_controller_name"),
            Some("web-5d")
        );

        // Two ports of `app`, one port-less target each for `sidecar` and `init`.
        assert_eq!(g.targets.len(), 4);
        let http = &g.targets[0];
        assert_eq!(http.get("__address__"), Some("10.1.2.3:8080"));
        assert_eq!(
            http.get("__meta_kubernetes_pod_container_port_name"),
            Some("http")
        );
        assert_eq!(
            http.get("__meta_kubernetes_pod_container_id"),
            Some("containerd://abc")
        );
        assert_eq!(
            g.targets[1].get("__meta_kubernetes_pod_container_port_protocol"),
            Some("UDP")
        );
        assert_eq!(g.targets[2].get("__address__"), Some("10.1.2.3"));
        assert_eq!(
            g.targets[3].get("__meta_kubernetes_pod_container_init"),
            Some("true")
        );
    }

    #[test]
    fn a_pod_without_ip_has_no_targets() {
        let mut p = pod_json();
        p["status"]["podIP"] = json!(null);
        assert!(pod_group("x".into(), &p).targets.is_empty());
        assert_eq!(join_host_port("fd00::1", 80), "[fd00::1]:80");
    }
}
