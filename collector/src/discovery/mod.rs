//! Service discovery: where scrape targets come from besides `static_configs`.
//!
//! - `kubernetes.rs`: `kubernetes_sd_configs` with `role: pod`, narrowed to this node's pods
//!   (list + watch on the API server), producing Prometheus's `__meta_kubernetes_pod_*`
//!   labels (`pod.rs`). Jobs with the same API server and selectors share one watch, and the
//!   unselected watch also keeps the node's [`crate::PodIndex`] current. The `prometheus.io/scrape`, `/port`, `/path`, `/scheme` annotation
//!   convention is applied by the job's `relabel_configs`, as in Prometheus; see
//!   [`ANNOTATED_PODS_JOB`].
//!
//! A discoverer sends whole target groups to the scraper ([`crate::GroupUpdate`]); a group
//! with no targets removes the group.

mod kubernetes;
mod pod;

pub(crate) use kubernetes::{in_cluster, PodWatcher, Subscriber};
pub use kubernetes::{KubernetesSdConfig, Selector, SERVICE_ACCOUNT_DIR};

/// The scrape job for pods annotated `prometheus.io/scrape: "true"`, as the
/// prometheus-community Helm chart's `kubernetes-pods` job writes it: keep annotated pods,
/// take `__scheme__`, `__metrics_path__` and the port from the annotations, copy the pod's
/// labels, add `namespace`, `pod` and `node`, and skip pods that are not running.
pub const ANNOTATED_PODS_JOB: &str = r#"
job_name: kubernetes-pods
honor_labels: true
kubernetes_sd_configs:
  - role: pod
relabel_configs:
  - source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_scrape]
    action: keep
    regex: true
  - source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_scheme]
    action: replace
    regex: (https?)
    target_label: __scheme__
  - source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_path]
    action: replace
    target_label: __metrics_path__
    regex: (.+)
  - source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_port, __meta_kubernetes_pod_ip]
    action: replace
    regex: (\d+);(([A-Fa-f0-9]{1,4}::?){1,7}[A-Fa-f0-9]{1,4})
    replacement: '[$2]:$1'
    target_label: __address__
  - source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_port, __meta_kubernetes_pod_ip]
    action: replace
    regex: (\d+);((([0-9]+?)(\.|$)){4})
    replacement: $2:$1
    target_label: __address__
  - action: labelmap
    regex: __meta_kubernetes_pod_annotation_prometheus_io_param_(.+)
    replacement: __param_$1
  - action: labelmap
    regex: __meta_kubernetes_pod_label_(.+)
  - source_labels: [__meta_kubernetes_namespace]
    action: replace
    target_label: namespace
  - source_labels: [__meta_kubernetes_pod_name]
    action: replace
    target_label: pod
  - source_labels: [__meta_kubernetes_pod_node_name]
    action: replace
    target_label: node
  - source_labels: [__meta_kubernetes_pod_phase]
    regex: Pending|Succeeded|Failed|Completed
    action: drop
"#;

#[cfg(test)]
mod tests;
