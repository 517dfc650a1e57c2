//! What the API server would refuse or a cluster would break on, but schema validation
//! (`kubernetes-validate`) accepts: selectors that miss their pods, mounts of volumes that do
//! not exist, references to ConfigMaps, Secrets, ServiceAccounts, PriorityClasses and roles
//! that are not rendered, probes and Service ports aimed at ports no container exposes, file
//! flags naming a key their ConfigMap or Secret lacks, and stores whose retention sizes do not
//! fit the claim they live on. `problems` returns every finding as a sentence naming the
//! object, so one run shows all.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// Workload kinds whose `spec.template` is a pod template.
const WORKLOADS: &[&str] = &[
    "DaemonSet",
    "StatefulSet",
    "Deployment",
    "ReplicaSet",
    "Job",
];

/// Everything wrong with the rendered objects; empty when they hang together.
pub fn problems(objects: &[Value]) -> Vec<String> {
    let index = Index::new(objects);
    let mut out = Vec::new();
    for obj in objects {
        let id = describe(obj);
        let kind = kind(obj);
        if let Some(ns) = namespace(obj) {
            if !index.has("Namespace", "", ns) {
                out.push(format!("{id}: namespace {ns:?} is not rendered"));
            }
        }
        if WORKLOADS.contains(&kind) {
            check_workload(obj, &index, &id, &mut out);
        }
        match kind {
            "Service" => check_service(obj, &index, &id, &mut out),
            "PodDisruptionBudget" => {
                let selector = &obj["spec"]["selector"];
                if index
                    .workloads_selected(namespace(obj), selector)
                    .is_empty()
                {
                    out.push(format!("{id}: selector matches no workload's pods"));
                }
            }
            "ClusterRoleBinding" | "RoleBinding" => check_binding(obj, &index, &id, &mut out),
            _ => {}
        }
    }
    out
}

/// The rendered objects by kind, namespace and name.
struct Index<'a> {
    by_key: BTreeMap<(String, String, String), &'a Value>,
    workloads: Vec<&'a Value>,
}

impl<'a> Index<'a> {
    fn new(objects: &'a [Value]) -> Self {
        let mut by_key = BTreeMap::new();
        let mut workloads = Vec::new();
        for obj in objects {
            let key = (
                kind(obj).to_string(),
                namespace(obj).unwrap_or_default().to_string(),
                name(obj).to_string(),
            );
            by_key.insert(key, obj);
            if WORKLOADS.contains(&kind(obj)) {
                workloads.push(obj);
            }
        }
        Index { by_key, workloads }
    }

    fn get(&self, kind: &str, ns: &str, name: &str) -> Option<&'a Value> {
        self.by_key
            .get(&(kind.to_string(), ns.to_string(), name.to_string()))
            .copied()
    }

    fn has(&self, kind: &str, ns: &str, name: &str) -> bool {
        self.get(kind, ns, name).is_some()
    }

    /// Workloads in `ns` whose pod-template labels a label selector (`matchLabels` form, or a
    /// Service's plain map) selects.
    fn workloads_selected(&self, ns: Option<&str>, selector: &Value) -> Vec<&'a Value> {
        let wanted = selector.get("matchLabels").unwrap_or(selector);
        let Some(wanted) = wanted.as_object().filter(|m| !m.is_empty()) else {
            return Vec::new();
        };
        self.workloads
            .iter()
            .copied()
            .filter(|w| namespace(w) == ns)
            .filter(|w| {
                let labels = &w["spec"]["template"]["metadata"]["labels"];
                wanted.iter().all(|(k, v)| labels.get(k) == Some(v))
            })
            .collect()
    }
}

fn check_workload(obj: &Value, index: &Index, id: &str, out: &mut Vec<String>) {
    let ns = namespace(obj).unwrap_or_default();
    let spec = &obj["spec"];
    let template_labels = &spec["template"]["metadata"]["labels"];
    match spec["selector"]["matchLabels"].as_object() {
        Some(m) if !m.is_empty() => {
            for (k, v) in m {
                if template_labels.get(k) != Some(v) {
                    out.push(format!(
                        "{id}: selector {k}={v} does not match the pod template's labels"
                    ));
                }
            }
        }
        _ => out.push(format!("{id}: no spec.selector.matchLabels")),
    }
    if spec["selector"].get("matchExpressions").is_some() {
        out.push(format!(
            "{id}: matchExpressions are not checked; use matchLabels"
        ));
    }

    if kind(obj) == "StatefulSet" {
        let svc = spec["serviceName"].as_str().unwrap_or_default();
        if !index.has("Service", ns, svc) {
            out.push(format!(
                "{id}: serviceName {svc:?} names no rendered Service"
            ));
        }
    }

    let pod = &spec["template"]["spec"];
    let sa = pod["serviceAccountName"].as_str().unwrap_or("default");
    if sa != "default" && !index.has("ServiceAccount", ns, sa) {
        out.push(format!("{id}: ServiceAccount {sa:?} is not rendered"));
    }
    if let Some(pc) = pod["priorityClassName"].as_str() {
        if !pc.starts_with("system-") && !index.has("PriorityClass", "", pc) {
            out.push(format!("{id}: PriorityClass {pc:?} is not rendered"));
        }
    }

    let mut volumes: BTreeSet<String> = BTreeSet::new();
    for vol in items(&pod["volumes"]) {
        let vname = str_at(vol, "name");
        if !volumes.insert(vname.to_string()) {
            out.push(format!("{id}: volume {vname:?} is declared twice"));
        }
        check_volume_source(vol, index, ns, id, out);
    }
    for claim in items(&spec["volumeClaimTemplates"]) {
        volumes.insert(
            claim["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        );
    }

    let mut mounted: BTreeSet<String> = BTreeSet::new();
    let containers: Vec<&Value> = items(&pod["containers"])
        .chain(items(&pod["initContainers"]))
        .collect();
    for c in &containers {
        let cid = format!("{id} container {:?}", str_at(c, "name"));
        let mut paths = BTreeSet::new();
        for m in items(&c["volumeMounts"]) {
            let mname = str_at(m, "name");
            mounted.insert(mname.to_string());
            if !volumes.contains(mname) {
                out.push(format!(
                    "{cid}: mounts volume {mname:?}, which is not declared"
                ));
            }
            if !paths.insert(str_at(m, "mountPath").to_string()) {
                out.push(format!("{cid}: two mounts at {:?}", str_at(m, "mountPath")));
            }
        }
        check_env(c, index, ns, &cid, out);
        check_probes(c, &cid, out);
        check_file_args(c, pod, index, ns, &cid, out);
        check_retention_fits(c, spec, &cid, out);
    }
    for v in volumes.difference(&mounted) {
        out.push(format!("{id}: volume {v:?} is declared but never mounted"));
    }
}

/// A ConfigMap or Secret volume must name a rendered object holding every projected key,
/// unless it is marked optional.
fn check_volume_source(vol: &Value, index: &Index, ns: &str, id: &str, out: &mut Vec<String>) {
    let sources = [
        ("ConfigMap", &vol["configMap"], "name"),
        ("Secret", &vol["secret"], "secretName"),
    ];
    for (kind, src, name_key) in sources {
        if src.is_null() || src["optional"] == Value::Bool(true) {
            continue;
        }
        let target = str_at(src, name_key);
        let Some(obj) = index.get(kind, ns, target) else {
            out.push(format!(
                "{id}: volume {:?} refers to {kind} {target:?}, which is not rendered",
                str_at(vol, "name")
            ));
            continue;
        };
        for item in items(&src["items"]) {
            let key = str_at(item, "key");
            if !has_key(obj, key) {
                out.push(format!("{id}: {kind} {target:?} has no key {key:?}"));
            }
        }
    }
}

/// Share of a claim the stores on it may fill through their retention sizes: the rest is for
/// what retention does not count (the head being compacted, the Alertmanager state), and it
/// keeps the volume under the 90% at which KubePersistentVolumeFillingUp fires.
const RETENTION_SHARE_OF_CLAIM: f64 = 0.9;

/// A `--flag=<path>` whose path lies in a ConfigMap or Secret volume must name one of its
/// keys: the object exists (`check_volume_source`) but the file would not.
fn check_file_args(
    c: &Value,
    pod: &Value,
    index: &Index,
    ns: &str,
    cid: &str,
    out: &mut Vec<String>,
) {
    for m in items(&c["volumeMounts"]) {
        let Some(vol) = items(&pod["volumes"]).find(|v| v["name"] == m["name"]) else {
            continue;
        };
        let (kind, target) = if !vol["configMap"].is_null() {
            ("ConfigMap", str_at(&vol["configMap"], "name"))
        } else if !vol["secret"].is_null() {
            ("Secret", str_at(&vol["secret"], "secretName"))
        } else {
            continue;
        };
        let Some(obj) = index.get(kind, ns, target) else {
            continue;
        };
        let dir = format!("{}/", str_at(m, "mountPath").trim_end_matches('/'));
        for arg in items(&c["args"]).filter_map(Value::as_str) {
            let Some((flag, key)) = arg
                .split_once('=')
                .and_then(|(f, v)| Some((f, v.strip_prefix(&dir)?)))
            else {
                continue;
            };
            if !has_key(obj, key) {
                out.push(format!(
                    "{cid}: {flag} names key {key:?}, which {kind} {target:?} does not have"
                ));
            }
        }
    }
}

/// Every store (`--storage.<store>.path`) on a volume claim must bound its size with
/// `--storage.<store>.retention.size`, and the bounds together must stay under
/// [`RETENTION_SHARE_OF_CLAIM`] of the claim: otherwise the volume fills before retention
/// deletes anything, and a full volume stops ingestion.
fn check_retention_fits(c: &Value, spec: &Value, cid: &str, out: &mut Vec<String>) {
    let args: Vec<&str> = items(&c["args"]).filter_map(Value::as_str).collect();
    let flag = |name: &str| {
        args.iter()
            .find_map(|a| a.strip_prefix(name)?.strip_prefix('='))
    };
    for claim in items(&spec["volumeClaimTemplates"]) {
        let claim_name = claim["metadata"]["name"].as_str().unwrap_or_default();
        let Some(mount) = items(&c["volumeMounts"]).find(|m| m["name"] == claim_name) else {
            continue;
        };
        let dir = str_at(mount, "mountPath");
        let requested = str_at(&claim["spec"]["resources"]["requests"], "storage");
        let Some(capacity) = quantity_bytes(requested) else {
            out.push(format!(
                "{cid}: claim {claim_name:?} requests {requested:?}, not a size"
            ));
            continue;
        };
        let mut total = 0u64;
        for arg in &args {
            let Some((store, path)) = arg
                .strip_prefix("--storage.")
                .and_then(|a| a.split_once(".path="))
            else {
                continue;
            };
            if !path.starts_with(dir) {
                continue;
            }
            match flag(&format!("--storage.{store}.retention.size")).map(tsdb::parse_bytes) {
                Some(Ok(bytes)) if bytes > 0 => total += bytes,
                Some(Err(e)) => out.push(format!("{cid}: --storage.{store}.retention.size: {e}")),
                _ => out.push(format!(
                    "{cid}: store {store:?} on claim {claim_name:?} has no size bound \
                     (--storage.{store}.retention.size): it grows until the volume is full"
                )),
            }
        }
        if total as f64 > capacity as f64 * RETENTION_SHARE_OF_CLAIM {
            out.push(format!(
                "{cid}: retention sizes add up to {total} bytes, more than {}% of claim \
                 {claim_name:?} ({requested})",
                RETENTION_SHARE_OF_CLAIM * 100.0
            ));
        }
    }
}

/// A Kubernetes quantity in bytes: a number with an optional binary (`Ki`..`Ei`) or decimal
/// (`k`..`E`) suffix; None for anything else.
fn quantity_bytes(q: &str) -> Option<u64> {
    const SUFFIXES: &[(&str, u64)] = &[
        ("Ki", 1 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("Ti", 1 << 40),
        ("Pi", 1 << 50),
        ("Ei", 1 << 60),
        ("k", 1_000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
        ("T", 1_000_000_000_000),
        ("P", 1_000_000_000_000_000),
        ("E", 1_000_000_000_000_000_000),
    ];
    let (number, factor) = SUFFIXES
        .iter()
        .find_map(|(suffix, factor)| Some((q.strip_suffix(suffix)?, *factor)))
        .unwrap_or((q, 1));
    number.parse::<u64>().ok()?.checked_mul(factor)
}

fn check_env(c: &Value, index: &Index, ns: &str, cid: &str, out: &mut Vec<String>) {
    for env in items(&c["env"]) {
        let refs = [
            ("ConfigMap", &env["valueFrom"]["configMapKeyRef"]),
            ("Secret", &env["valueFrom"]["secretKeyRef"]),
        ];
        for (kind, r) in refs {
            if r.is_null() || r["optional"] == Value::Bool(true) {
                continue;
            }
            let (target, key) = (str_at(r, "name"), str_at(r, "key"));
            match index.get(kind, ns, target) {
                None => out.push(format!(
                    "{cid}: env {:?} refers to {kind} {target:?}, which is not rendered",
                    str_at(env, "name")
                )),
                Some(obj) if !has_key(obj, key) => {
                    out.push(format!("{cid}: {kind} {target:?} has no key {key:?}"))
                }
                Some(_) => {}
            }
        }
    }
}

/// HTTP and TCP probes must aim at a port the container declares, by name or number.
fn check_probes(c: &Value, cid: &str, out: &mut Vec<String>) {
    for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
        for action in ["httpGet", "tcpSocket", "grpc"] {
            let port = &c[probe][action]["port"];
            if port.is_null() {
                continue;
            }
            if !exposes(c, port) {
                out.push(format!(
                    "{cid}: {probe} aims at port {port}, which the container does not expose"
                ));
            }
        }
    }
}

/// True when the container declares `port` (a name or a number).
fn exposes(c: &Value, port: &Value) -> bool {
    items(&c["ports"]).any(|p| match port {
        Value::String(n) => p["name"].as_str() == Some(n.as_str()),
        Value::Number(n) => p["containerPort"].as_u64() == n.as_u64(),
        _ => false,
    })
}

fn check_service(svc: &Value, index: &Index, id: &str, out: &mut Vec<String>) {
    let selected = index.workloads_selected(namespace(svc), &svc["spec"]["selector"]);
    if selected.is_empty() {
        out.push(format!("{id}: selector matches no workload's pods"));
        return;
    }
    for port in items(&svc["spec"]["ports"]) {
        let target = if port["targetPort"].is_null() {
            &port["port"]
        } else {
            &port["targetPort"]
        };
        let served = selected.iter().any(|w| {
            items(&w["spec"]["template"]["spec"]["containers"]).any(|c| exposes(c, target))
        });
        if !served {
            out.push(format!(
                "{id}: port {:?} targets {target}, which no selected container exposes",
                str_at(port, "name")
            ));
        }
    }
    // A StatefulSet's governing Service must be headless for per-pod DNS names.
    for w in selected {
        if kind(w) == "StatefulSet"
            && w["spec"]["serviceName"].as_str() == Some(name(svc))
            && svc["spec"]["clusterIP"].as_str() != Some("None")
        {
            out.push(format!(
                "{id}: governs StatefulSet {:?} but is not headless",
                name(w)
            ));
        }
    }
}

fn check_binding(obj: &Value, index: &Index, id: &str, out: &mut Vec<String>) {
    let role_kind = str_at(&obj["roleRef"], "kind");
    let role = str_at(&obj["roleRef"], "name");
    let role_ns = if role_kind == "Role" {
        namespace(obj).unwrap_or_default()
    } else {
        ""
    };
    if !index.has(role_kind, role_ns, role) {
        out.push(format!(
            "{id}: roleRef {role_kind} {role:?} is not rendered"
        ));
    }
    for s in items(&obj["subjects"]) {
        if str_at(s, "kind") == "ServiceAccount" {
            let ns = s["namespace"]
                .as_str()
                .or(namespace(obj))
                .unwrap_or_default();
            if !index.has("ServiceAccount", ns, str_at(s, "name")) {
                out.push(format!(
                    "{id}: subject ServiceAccount {ns}/{} is not rendered",
                    str_at(s, "name")
                ));
            }
        }
    }
}

fn has_key(obj: &Value, key: &str) -> bool {
    ["data", "stringData", "binaryData"]
        .iter()
        .any(|field| obj[field].get(key).is_some())
}

fn items(v: &Value) -> impl Iterator<Item = &Value> {
    v.as_array().into_iter().flatten()
}

fn str_at<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_default()
}

pub fn kind(obj: &Value) -> &str {
    str_at(obj, "kind")
}

pub fn name(obj: &Value) -> &str {
    obj["metadata"]["name"].as_str().unwrap_or_default()
}

pub fn namespace(obj: &Value) -> Option<&str> {
    obj["metadata"]["namespace"].as_str()
}

/// `Kind namespace/name`, for messages.
pub fn describe(obj: &Value) -> String {
    match namespace(obj) {
        Some(ns) => format!("{} {ns}/{}", kind(obj), name(obj)),
        None => format!("{} {}", kind(obj), name(obj)),
    }
}
