//! The real `vigil` binary run with the arguments the StatefulSet and the DaemonSet give it.
//! Each mount is made real in a temp dir (ConfigMap and Secret keys written as files, claims
//! and emptyDirs as empty directories, read-only host paths used as they are), and paths in
//! the arguments are mapped there; addresses become loopback ones. So the server config,
//! rule files and Alertmanager config in the ConfigMap load through the binary's own flags,
//! the probes answer where the manifests aim them, and the agent's data reaches the server.

use crate::{object, object_prefixed};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_vigil");

/// A workload's first container with its mounts made real under a temp dir.
struct Pod {
    _dir: tempfile::TempDir,
    /// (mount path in the container, local directory), longest mount path first.
    mounts: Vec<(String, PathBuf)>,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

impl Pod {
    /// `overrides` gives chosen volumes a prepared local directory instead.
    fn new(workload: &Value, overrides: &[(&str, &Path)]) -> Pod {
        let dir = tempfile::tempdir().unwrap();
        let pod = &workload["spec"]["template"]["spec"];
        let c = &pod["containers"][0];
        let mut mounts = Vec::new();
        for m in c["volumeMounts"].as_array().unwrap() {
            let name = m["name"].as_str().unwrap();
            let read_only = m["readOnly"].as_bool().unwrap_or(false);
            let local = match overrides.iter().find(|(n, _)| *n == name) {
                Some((_, path)) => path.to_path_buf(),
                None => materialize(workload, name, read_only, &dir.path().join(name)),
            };
            mounts.push((m["mountPath"].as_str().unwrap().to_string(), local));
        }
        mounts.sort_by_key(|(path, _)| std::cmp::Reverse(path.len()));
        let args = c["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect();
        // The downward API's fields, as a test node would fill them.
        let env = c["env"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                let value = match e["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
                    Some("spec.nodeName") => "deploy-test-node".to_string(),
                    Some("status.hostIP") => "127.0.0.1".to_string(),
                    Some(other) => panic!("no test value for fieldRef {other}"),
                    None => e["value"].as_str().unwrap_or_default().to_string(),
                };
                (e["name"].as_str().unwrap().to_string(), value)
            })
            .collect();
        Pod {
            _dir: dir,
            mounts,
            args,
            env,
        }
    }

    /// The container's arguments with mount paths mapped to local directories and
    /// `--flag=value` replaced where `replace` gives a value for the flag.
    fn local_args(&self, replace: impl Fn(&str, &str) -> Option<String>) -> Vec<String> {
        self.args
            .iter()
            .map(|arg| {
                let Some((flag, value)) = arg.split_once('=') else {
                    return arg.clone();
                };
                if let Some(new) = replace(flag, value) {
                    return format!("{flag}={new}");
                }
                for (mount, local) in &self.mounts {
                    if let Some(rest) = value.strip_prefix(mount.as_str()) {
                        return format!("{flag}={}{rest}", local.display());
                    }
                }
                arg.clone()
            })
            .collect()
    }
}

/// Makes the volume `name` of `workload` real at `at` (or, for a read-only host path that
/// exists here, returns the host path itself).
fn materialize(workload: &Value, name: &str, read_only: bool, at: &Path) -> PathBuf {
    std::fs::create_dir_all(at).unwrap();
    let volumes = workload["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap();
    let Some(vol) = volumes.iter().find(|v| v["name"] == name) else {
        return at.to_path_buf(); // a volumeClaimTemplate: an empty volume
    };
    if let Some(host) = vol["hostPath"]["path"].as_str() {
        if read_only && Path::new(host).is_dir() {
            return PathBuf::from(host);
        }
        return at.to_path_buf();
    }
    let (kind, target) = if let Some(cm) = vol["configMap"]["name"].as_str() {
        ("ConfigMap", cm)
    } else if let Some(secret) = vol["secret"]["secretName"].as_str() {
        ("Secret", secret)
    } else {
        return at.to_path_buf(); // emptyDir
    };
    let obj = object(kind, target);
    assert!(
        obj.get("data").is_none() || kind == "ConfigMap",
        "Secret {target}: the test writes stringData only"
    );
    let data = if kind == "ConfigMap" {
        &obj["data"]
    } else {
        &obj["stringData"]
    };
    for (key, value) in data.as_object().unwrap() {
        std::fs::write(at.join(key), value.as_str().unwrap()).unwrap();
    }
    at.to_path_buf()
}

/// A running `vigil` process, killed on drop, with its stderr collected.
pub(crate) struct Process {
    child: Child,
    pub(crate) log: Arc<Mutex<String>>,
    lines: mpsc::Receiver<String>,
}

impl Process {
    pub(crate) fn start(args: &[String], env: &[(String, String)]) -> Process {
        let mut child = Command::new(BIN)
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("VIGIL_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start vigil");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, lines) = mpsc::channel();
        let log_w = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                log_w.lock().unwrap().push_str(&format!("{line}\n"));
                let _ = tx.send(line);
            }
        });
        Process { child, log, lines }
    }

    /// The first log line containing `needle`, within 30 seconds.
    pub(crate) fn wait_for_line(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        panic!("no {needle:?} line; log:\n{}", self.log.lock().unwrap());
    }
}

impl Process {
    /// The exit status once the process has exited by itself, within 30 seconds.
    pub(crate) fn wait_for_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // The reader thread ends at stderr's EOF, closing the channel: then the log
                // holds everything the process wrote.
                while self.lines.recv_timeout(Duration::from_secs(5)).is_ok() {}
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "still running after 30s; log:\n{}",
                self.log.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of `key=` in a log line.
pub(crate) fn field<'a>(line: &'a str, key: &str) -> &'a str {
    let start = line
        .find(&format!("{key}="))
        .unwrap_or_else(|| panic!("no {key} in {line:?}"))
        + key.len()
        + 1;
    line[start..].split_whitespace().next().unwrap_or_default()
}

/// Starts the server as the StatefulSet runs it, on a loopback port, and returns it with its
/// address once it reports listening.
fn start_server() -> (Pod, Process, SocketAddr, String) {
    let pod = Pod::new(object("StatefulSet", "vigil-server"), &[]);
    let args = pod
        .local_args(|flag, _| (flag == "--web.listen-address").then(|| "127.0.0.1:0".to_string()));
    let server = Process::start(&args, &pod.env);
    let line = server.wait_for_line("listening");
    let addr: SocketAddr = field(&line, "address").parse().unwrap();
    (pod, server, addr, line)
}

/// The number of rule groups in the rendered ConfigMap's rule files.
fn rule_group_count() -> usize {
    object_prefixed("ConfigMap", "vigil-server-config-")["data"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.ends_with(".rules.yml"))
        .map(|(_, text)| {
            let doc: Value = serde_yaml::from_str(text.as_str().unwrap()).unwrap();
            doc["groups"].as_array().unwrap().len()
        })
        .sum()
}

#[tokio::test]
async fn server_runs_with_the_statefulsets_config_and_answers_its_probes() {
    let (_pod, _server, addr, line) = start_server();
    assert_eq!(
        field(&line, "rule_groups").parse::<usize>().unwrap(),
        rule_group_count(),
        "--config.file's rule_files load every rule file of the ConfigMap"
    );
    let container =
        &object("StatefulSet", "vigil-server")["spec"]["template"]["spec"]["containers"][0];
    let client = reqwest::Client::new();
    for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
        let path = container[probe]["httpGet"]["path"].as_str().unwrap();
        let url = format!("http://{addr}{path}");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let status = client.get(&url).send().await.map(|r| r.status().as_u16());
            if status.as_ref().is_ok_and(|s| *s == 200) {
                break;
            }
            assert!(Instant::now() < deadline, "{probe} {path}: {status:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test]
async fn agent_ships_to_the_server_with_the_daemonsets_args() {
    let (_server_pod, server, addr, _) = start_server();

    // One container's log, as the kubelet lays it out under /var/log/pods.
    let logs = tempfile::tempdir().unwrap();
    let container_dir = logs.path().join("shop_web-0_6f1c0a52-1b2e/app");
    std::fs::create_dir_all(&container_dir).unwrap();
    std::fs::write(
        container_dir.join("0.log"),
        "2026-11-27T10:00:00.000000001Z stdout F deployed by the manifests\n",
    )
    .unwrap();

    let ds = object("DaemonSet", "vigil-agent");
    let pod = Pod::new(ds, &[("pod-logs", logs.path())]);
    let base = format!("http://{addr}");
    let args = pod.local_args(|flag, value| {
        if flag == "--web.listen-address" {
            return Some("127.0.0.1:0".to_string());
        }
        // The server's in-cluster URL becomes the loopback one, path kept.
        let rest = value.strip_prefix("http://")?;
        let path = &rest[rest.find('/')?..];
        Some(format!("{base}{path}"))
    });
    assert!(
        args.iter().any(|a| a == "--web.listen-address=127.0.0.1:0"),
        "the DaemonSet names the agent's port: {args:?}"
    );
    let agent = Process::start(&args, &pod.env);
    let agent_addr: SocketAddr = field(&agent.wait_for_line("listening"), "address")
        .parse()
        .unwrap();

    let client = reqwest::Client::new();
    let query = |path: String| {
        let client = client.clone();
        async move {
            let resp = client.get(path).send().await.ok()?;
            let j: Value = resp.json().await.ok()?;
            j["data"]["result"]
                .as_array()
                .filter(|r| !r.is_empty())
                .cloned()
        }
    };
    let deadline = Instant::now() + Duration::from_secs(45);
    let (mut metrics, mut lines) = (None, None);
    while (metrics.is_none() || lines.is_none()) && Instant::now() < deadline {
        if metrics.is_none() {
            metrics = query(format!(
                "{base}/api/v1/query?query=node_load1%7Binstance%3D%22deploy-test-node%22%7D"
            ))
            .await;
        }
        if lines.is_none() {
            lines = query(format!(
                "{base}/loki/api/v1/query_range?query=%7Bnamespace%3D%22shop%22%7D&start=1795000000000000000"
            ))
            .await;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let log = || server.log.lock().unwrap().clone();
    assert!(
        metrics.is_some(),
        "no node_load1 from the agent; server log:\n{}",
        log()
    );
    let lines =
        lines.unwrap_or_else(|| panic!("no log line from the agent; server log:\n{}", log()));
    assert_eq!(lines[0]["stream"]["node"], "deploy-test-node");
    assert_eq!(lines[0]["values"][0][1], "deployed by the manifests");

    // The agent's probes answer where the DaemonSet aims them (its sources have started, as
    // its data arrived above).
    let container = &ds["spec"]["template"]["spec"]["containers"][0];
    for probe in ["readinessProbe", "livenessProbe"] {
        let path = container[probe]["httpGet"]["path"].as_str().unwrap();
        let status = client
            .get(format!("http://{agent_addr}{path}"))
            .send()
            .await
            .map(|r| r.status().as_u16());
        assert_eq!(status.ok(), Some(200), "agent {probe} {path}");
    }
}
