//! Pods of this node from the Kubernetes API server: list, then watch from the list's
//! `resourceVersion`, with `fieldSelector=spec.nodeName=<node>` so the API server's watch
//! cache (indexed by node name) sends only this node's pods.
//!
//! One watch per distinct API server and selector set serves every job that asks for it and,
//! for the unselected watch, the node's [`PodIndex`] the container collector and the tailer
//! read: a node's agent opens one pod watch, not one per consumer.
//!
//! Every list replaces what is known (pods gone since are removed); a watch applies
//! `ADDED`/`MODIFIED`/`DELETED` events as they come. A watch that ends is resumed from the
//! last version seen; a `410 Gone` (the version is too old) or any error relists after a
//! backoff. In a cluster, the ServiceAccount token is read on every request (kubelet rotates
//! it) and the API server is verified with the ServiceAccount CA.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::pod::pod_group;
use crate::cadvisor::{PodIndex, SharedPods};
use crate::scrape::{GroupUpdate, TargetGroup};

/// Where a pod's ServiceAccount credentials are mounted.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// Longest watch event line accepted; a pod object is a few KiB.
const MAX_EVENT_BYTES: usize = 16 << 20;
/// How long the API server keeps one watch open before the agent resumes it.
const WATCH_TIMEOUT_SECONDS: u32 = 300;
/// Wait before relisting after an error, doubled up to [`MAX_RETRY`].
const MIN_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(30);

/// One `kubernetes_sd_configs` entry, in Prometheus's keys. Only `role: pod` is served, always
/// narrowed to this node's pods.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KubernetesSdConfig {
    /// Must be `pod`.
    pub role: String,
    /// The API server's URL; default: the in-cluster address from `KUBERNETES_SERVICE_HOST`
    /// and `KUBERNETES_SERVICE_PORT`, with the ServiceAccount token and CA.
    #[serde(default)]
    pub api_server: Option<String>,
    /// Extra label and field selectors, as Prometheus's `selectors` (role `pod` only).
    #[serde(default)]
    pub selectors: Vec<Selector>,
}

/// A `selectors` entry.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Selector {
    pub role: String,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub field: Option<String>,
}

impl KubernetesSdConfig {
    /// Checks the entry; the message names what is wrong.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.role != "pod" {
            return Err(format!(
                "kubernetes_sd_configs role {:?} is not supported (only pod)",
                self.role
            ));
        }
        if let Some(url) = &self.api_server {
            let parsed =
                reqwest::Url::parse(url).map_err(|e| format!("api_server {url:?}: {e}"))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(format!("api_server {url:?}: scheme must be http or https"));
            }
        }
        if let Some(s) = self.selectors.iter().find(|s| s.role != "pod") {
            return Err(format!(
                "selector role {:?} does not match role pod",
                s.role
            ));
        }
        Ok(())
    }
}

/// One job fed by a pod watch.
pub(crate) struct Subscriber {
    pub job: String,
    /// Prefix of the job's group sources, unique in the job.
    pub prefix: String,
    pub output: mpsc::Sender<GroupUpdate>,
}

/// A running pod watch: one API server and selector set, the jobs it feeds and, when it
/// watches every pod of the node, the pod index.
pub(crate) struct PodWatcher {
    pub node_name: String,
    /// The API server and selectors; `role` is `pod`.
    pub cfg: KubernetesSdConfig,
    pub subscribers: Vec<Subscriber>,
    pub index: Option<SharedPods>,
}

/// Whether a watch with no `api_server` can find one: in a pod, Kubernetes sets
/// `KUBERNETES_SERVICE_HOST`.
pub(crate) fn in_cluster() -> bool {
    std::env::var_os("KUBERNETES_SERVICE_HOST").is_some()
}

/// Applies `f` to the index behind `shared`; a writer that panicked mid-update left a whole
/// index behind (each update is one call), so a poisoned lock is used as it is.
fn update(shared: &SharedPods, f: impl FnOnce(&mut PodIndex)) {
    let mut guard = match shared.write() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    };
    f(&mut guard);
}

/// How to reach the API server.
struct Connection {
    client: reqwest::Client,
    base: String,
    token_file: Option<PathBuf>,
}

impl PodWatcher {
    /// Lists and watches until `shutdown`; errors are logged and retried.
    pub async fn run(self, shutdown: CancellationToken) {
        let conn = match self.connect() {
            Ok(c) => c,
            Err(error) => {
                tracing::error!(jobs = %self.jobs(), %error, "kubernetes discovery cannot start");
                return;
            }
        };
        let mut known: BTreeSet<String> = BTreeSet::new();
        let mut retry = MIN_RETRY;
        loop {
            let result = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = self.list_and_watch(&conn, &mut known, &mut retry) => r,
            };
            if let Err(error) = result {
                tracing::warn!(jobs = %self.jobs(), %error, retry_in = ?retry, "kubernetes discovery failed");
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(retry) => {}
            }
            retry = (retry * 2).min(MAX_RETRY);
        }
    }

    fn connect(&self) -> Result<Connection, String> {
        let mut builder = reqwest::Client::builder().user_agent(crate::USER_AGENT);
        let (base, token_file) = match &self.cfg.api_server {
            Some(url) => (url.trim_end_matches('/').to_string(), None),
            None => {
                let host = std::env::var("KUBERNETES_SERVICE_HOST").map_err(|_| {
                    "not in a cluster (KUBERNETES_SERVICE_HOST unset) and no api_server"
                })?;
                let port =
                    std::env::var("KUBERNETES_SERVICE_PORT").unwrap_or_else(|_| "443".into());
                let host = if host.contains(':') {
                    format!("[{host}]")
                } else {
                    host
                };
                let dir = PathBuf::from(SERVICE_ACCOUNT_DIR);
                let ca = std::fs::read(dir.join("ca.crt"))
                    .map_err(|e| format!("reading the service account CA: {e}"))?;
                let cert = reqwest::Certificate::from_pem(&ca)
                    .map_err(|e| format!("service account CA: {e}"))?;
                builder = builder.add_root_certificate(cert);
                (format!("https://{host}:{port}"), Some(dir.join("token")))
            }
        };
        let client = builder
            .build()
            .map_err(|e| format!("building the http client: {e}"))?;
        Ok(Connection {
            client,
            base,
            token_file,
        })
    }

    /// `/api/v1/pods` with this node's field selector and the configured selectors.
    fn url(&self, conn: &Connection, watch_from: Option<&str>) -> Result<reqwest::Url, String> {
        let mut fields = vec![format!("spec.nodeName={}", self.node_name)];
        fields.extend(self.cfg.selectors.iter().filter_map(|s| s.field.clone()));
        let labels: Vec<String> = self
            .cfg
            .selectors
            .iter()
            .filter_map(|s| s.label.clone())
            .collect();
        let mut url = reqwest::Url::parse(&format!("{}/api/v1/pods", conn.base))
            .map_err(|e| e.to_string())?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("fieldSelector", &fields.join(","));
            if !labels.is_empty() {
                q.append_pair("labelSelector", &labels.join(","));
            }
            if let Some(rv) = watch_from {
                q.append_pair("watch", "1");
                q.append_pair("resourceVersion", rv);
                q.append_pair("allowWatchBookmarks", "true");
                q.append_pair("timeoutSeconds", &WATCH_TIMEOUT_SECONDS.to_string());
            }
        }
        Ok(url)
    }

    async fn get(&self, conn: &Connection, url: reqwest::Url) -> Result<reqwest::Response, String> {
        let mut req = conn.client.get(url.clone());
        if let Some(file) = &conn.token_file {
            let token = std::fs::read_to_string(file)
                .map_err(|e| format!("reading the service account token: {e}"))?;
            req = req.bearer_auth(token.trim());
        }
        let resp = req.send().await.map_err(|e| format!("GET {url}: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("GET {url}: {}", resp.status()));
        }
        Ok(resp)
    }

    async fn list_and_watch(
        &self,
        conn: &Connection,
        known: &mut BTreeSet<String>,
        retry: &mut Duration,
    ) -> Result<(), String> {
        let list: Value = self
            .get(conn, self.url(conn, None)?)
            .await?
            .json()
            .await
            .map_err(|e| format!("decoding the pod list: {e}"))?;
        let mut rv = list["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if let Some(index) = &self.index {
            update(index, |i| *i = PodIndex::from_pod_list(&list));
        }
        let items = list["items"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        let listed: BTreeSet<String> = items.iter().map(pod_key).collect();
        for sub in &self.subscribers {
            let mut groups: Vec<TargetGroup> = items
                .iter()
                .map(|pod| pod_group(source(&sub.prefix, &pod_key(pod)), pod))
                .collect();
            groups.extend(known.difference(&listed).map(|key| TargetGroup {
                source: source(&sub.prefix, key),
                ..TargetGroup::default()
            }));
            send(sub, groups).await?;
        }
        *known = listed;
        *retry = MIN_RETRY;
        loop {
            let mut resp = self.get(conn, self.url(conn, Some(&rv))?).await?;
            let mut buf: Vec<u8> = Vec::new();
            while let Some(chunk) = resp
                .chunk()
                .await
                .map_err(|e| format!("reading the watch: {e}"))?
            {
                buf.extend_from_slice(&chunk);
                while let Some(end) = buf.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=end).collect();
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    let event: Value = serde_json::from_slice(&line)
                        .map_err(|e| format!("decoding a watch event: {e}"))?;
                    self.apply_event(&event, known, &mut rv).await?;
                }
                if buf.len() > MAX_EVENT_BYTES {
                    return Err(format!("watch event longer than {MAX_EVENT_BYTES} bytes"));
                }
            }
            // The server closed the watch (its timeout): resume from the last version.
        }
    }

    async fn apply_event(
        &self,
        event: &Value,
        known: &mut BTreeSet<String>,
        rv: &mut String,
    ) -> Result<(), String> {
        let object = &event["object"];
        if let Some(v) = object["metadata"]["resourceVersion"].as_str() {
            *rv = v.to_string();
        }
        match event["type"].as_str().unwrap_or_default() {
            "ADDED" | "MODIFIED" => {
                if let Some(index) = &self.index {
                    update(index, |i| i.upsert(object));
                }
                let key = pod_key(object);
                for sub in &self.subscribers {
                    send(sub, vec![pod_group(source(&sub.prefix, &key), object)]).await?;
                }
                known.insert(key);
                Ok(())
            }
            "DELETED" => {
                if let Some(index) = &self.index {
                    update(index, |i| i.remove(object));
                }
                let key = pod_key(object);
                for sub in &self.subscribers {
                    let gone = TargetGroup {
                        source: source(&sub.prefix, &key),
                        ..TargetGroup::default()
                    };
                    send(sub, vec![gone]).await?;
                }
                known.remove(&key);
                Ok(())
            }
            "BOOKMARK" => Ok(()),
            // A Status object: 410 Gone means relist; anything else is an error too.
            "ERROR" => Err(format!(
                "watch error: {}",
                object["message"].as_str().unwrap_or("unknown")
            )),
            other => Err(format!("unknown watch event type {other:?}")),
        }
    }

    /// The jobs fed, for log lines.
    fn jobs(&self) -> String {
        let names: Vec<&str> = self.subscribers.iter().map(|s| s.job.as_str()).collect();
        match names.is_empty() {
            true => "(pod index)".to_string(),
            false => names.join(","),
        }
    }
}

/// `<namespace>/<name>`: a pod's identity in the watch, stable across its updates.
fn pod_key(pod: &Value) -> String {
    format!(
        "{}/{}",
        pod["metadata"]["namespace"].as_str().unwrap_or_default(),
        pod["metadata"]["name"].as_str().unwrap_or_default()
    )
}

fn source(prefix: &str, key: &str) -> String {
    format!("{prefix}/pod/{key}")
}

async fn send(sub: &Subscriber, groups: Vec<TargetGroup>) -> Result<(), String> {
    sub.output
        .send(GroupUpdate {
            job: sub.job.clone(),
            groups,
        })
        .await
        .map_err(|_| "the scraper stopped".to_string())
}
