//! This node's pods as the container collector and the tailer need them: by pod uid, the
//! pod's name, namespace and labels, and by container id each container's name, image and
//! restart count. Built from pod objects in the API server's JSON (a `PodList` or watch
//! events' objects; the kubelet's `/pods` answers the same shape) and kept current by the
//! node's pod watch (`discovery/kubernetes.rs`). Pure: no I/O.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use serde_json::Value;

/// One container of a pod, found through its runtime id in the pod's status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ContainerMeta {
    pub name: String,
    pub image: String,
    pub restart_count: u64,
}

/// One pod of this node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodMeta {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.labels` (e.g. `app.kubernetes.io/name`), unsanitised.
    pub labels: BTreeMap<String, String>,
    /// By runtime container id (the 64 hex digits after `containerd://`, `cri-o://`, ...).
    pub(crate) containers: HashMap<String, ContainerMeta>,
}

/// This node's pods by uid.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodIndex {
    pub(crate) pods: HashMap<String, PodMeta>,
}

/// A [`PodIndex`] shared between whatever keeps it current and the container collector.
pub type SharedPods = Arc<RwLock<PodIndex>>;

impl PodIndex {
    /// The index of the pods in a `PodList` (`{"items": [...]}`); items without a uid are
    /// skipped, since no cgroup could be matched to them.
    pub fn from_pod_list(list: &Value) -> Self {
        let mut index = PodIndex::default();
        for pod in list["items"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
            index.upsert(pod);
        }
        index
    }

    /// Adds or replaces one pod object (a watch's `ADDED`/`MODIFIED`).
    pub fn upsert(&mut self, pod: &Value) {
        let meta = &pod["metadata"];
        let Some(uid) = meta["uid"].as_str().filter(|u| !u.is_empty()) else {
            return;
        };
        let mut containers = HashMap::new();
        for key in [
            "initContainerStatuses",
            "containerStatuses",
            "ephemeralContainerStatuses",
        ] {
            for status in pod["status"][key]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or(&[])
            {
                let Some(id) = status["containerID"].as_str().and_then(runtime_id) else {
                    continue;
                };
                containers.insert(
                    id.to_string(),
                    ContainerMeta {
                        name: str_of(&status["name"]),
                        image: str_of(&status["image"]),
                        restart_count: status["restartCount"].as_u64().unwrap_or(0),
                    },
                );
            }
        }
        let labels = meta["labels"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        self.pods.insert(
            uid.to_ascii_lowercase(),
            PodMeta {
                name: str_of(&meta["name"]),
                namespace: str_of(&meta["namespace"]),
                labels,
                containers,
            },
        );
    }

    /// Removes one pod object (a watch's `DELETED`).
    pub fn remove(&mut self, pod: &Value) {
        if let Some(uid) = pod["metadata"]["uid"].as_str() {
            self.pods.remove(&uid.to_ascii_lowercase());
        }
    }

    /// The pod with `uid` (as in `metadata.uid`, or the `<uid>` of a kubelet log directory
    /// `/var/log/pods/<namespace>_<name>_<uid>`); case does not matter.
    pub fn pod(&self, uid: &str) -> Option<&PodMeta> {
        match uid.bytes().any(|b| b.is_ascii_uppercase()) {
            true => self.pods.get(&uid.to_ascii_lowercase()),
            false => self.pods.get(uid),
        }
    }

    /// The pod whose kubelet log directory is `<namespace>_<name>_<uid>`: by uid, else (a
    /// static pod, whose directory holds its config hash rather than the uid of its mirror
    /// pod in the API) by namespace and name.
    pub fn pod_of_log_dir(&self, uid: &str, namespace: &str, name: &str) -> Option<&PodMeta> {
        self.pod(uid).or_else(|| {
            self.pods
                .values()
                .find(|p| p.namespace == namespace && p.name == name)
        })
    }

    /// Pods known.
    pub fn len(&self) -> usize {
        self.pods.len()
    }

    /// Whether no pod is known (outside Kubernetes, or before the first list).
    pub fn is_empty(&self) -> bool {
        self.pods.is_empty()
    }
}

/// `containerd://<id>` → `<id>`; a status without a scheme is not from a runtime.
fn runtime_id(container_id: &str) -> Option<&str> {
    container_id
        .split_once("://")
        .map(|(_, id)| id)
        .filter(|id| !id.is_empty())
}

fn str_of(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_statuses_of_every_kind_by_runtime_id() {
        let list = serde_json::json!({
            "kind": "PodList",
            "items": [{
                "metadata": {"name": "web-0", "namespace": "shop", "uid": "AB-1",
                             "labels": {"app.kubernetes.io/name": "web", "tier": "front"}},
                "status": {
                    "initContainerStatuses": [
                        {"name": "init", "image": "busybox:1.36", "containerID": "cri-o://i1", "restartCount": 0}
                    ],
                    "containerStatuses": [
                        {"name": "app", "image": "nginx:1.25", "containerID": "containerd://c1", "restartCount": 2},
                        {"name": "waiting", "image": "x", "restartCount": 0}
                    ]
                }
            }, {
                "metadata": {"name": "no-uid"}
            }]
        });
        let index = PodIndex::from_pod_list(&list);
        assert_eq!(index.pods.len(), 1);
        let pod = index.pod("ab-1").unwrap();
        assert_eq!(
            (pod.name.as_str(), pod.namespace.as_str()),
            ("web-0", "shop")
        );
        assert_eq!(
            pod.containers["c1"],
            ContainerMeta {
                name: "app".into(),
                image: "nginx:1.25".into(),
                restart_count: 2
            }
        );
        assert_eq!(pod.containers["i1"].name, "init");
        assert_eq!(pod.containers.len(), 2);
        assert_eq!(pod.labels["app.kubernetes.io/name"], "web");
        assert_eq!(pod.labels.len(), 2);
        // The uid of a log directory may be written in either case.
        assert_eq!(index.pod("AB-1"), Some(pod));
        assert_eq!(index.len(), 1);

        let mut index = index;
        index.remove(&serde_json::json!({"metadata": {"uid": "Ab-1"}}));
        assert!(index.is_empty());
    }
}
