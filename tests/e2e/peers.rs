//! The real peers the differential tests compare Vigil against, started on a free loopback
//! port with a temp dir and killed on drop.
//!
//! A missing peer skips the test with a printed line, unless `CI=true`, where it is a failure.

use crate::harness::{client, eventually};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const PROMETHEUS: &str = "/usr/bin/prometheus";

/// True when the peer at `path` is installed; otherwise says the test skipped, or panics
/// under `CI=true`, where a missing peer is a failure.
pub fn present(path: &str, purpose: &str) -> bool {
    if std::path::Path::new(path).exists() {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{path} is missing and CI=true: {purpose} needs it");
    }
    eprintln!("skipped: {path} is not installed (set CI=true to make this fail)");
    false
}

/// A free loopback address for a peer that takes its listen address as a flag.
fn free_addr() -> SocketAddr {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Waits until `http://addr/-/ready` answers 2xx, as Prometheus and Alertmanager do once up.
async fn wait_ready(addr: SocketAddr, what: &str) {
    let ready = eventually(Duration::from_secs(30), || async {
        let r = client()
            .get(format!("http://{addr}/-/ready"))
            .send()
            .await
            .ok()?;
        r.status().is_success().then_some(())
    })
    .await;
    assert!(ready.is_some(), "{what} did not become ready on {addr}");
}

/// A Prometheus 2.42 (Debian's package), killed on drop.
pub struct Prometheus {
    child: Child,
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// A Prometheus that accepts remote write and scrapes nothing: the peer for comparing
    /// answers on the same data. `purpose` names the test in the skip or failure message.
    pub async fn receiver(purpose: &str) -> Option<Prometheus> {
        Self::start(
            purpose,
            "global:\n  scrape_interval: 15s\n",
            &[],
            &["--web.enable-remote-write-receiver"],
        )
        .await
    }

    /// Starts Prometheus with `config` as its config file, `files` (name, content) written
    /// beside it, and `flags`; `None` (after saying so) when it is not installed outside CI.
    pub async fn start(
        purpose: &str,
        config: &str,
        files: &[(&str, &str)],
        flags: &[&str],
    ) -> Option<Prometheus> {
        if !present(PROMETHEUS, purpose) {
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).expect("write config");
        for (name, content) in files {
            std::fs::write(dir.path().join(name), content).expect("write file");
        }
        let addr = free_addr();
        let child = Command::new(PROMETHEUS)
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg(format!("--config.file={}", config_path.display()))
            .args(flags)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus");
        let p = Prometheus {
            child,
            addr,
            _dir: dir,
        };
        wait_ready(addr, "prometheus").await;
        Some(p)
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";

/// An Alertmanager 0.25 (Debian's package) without clustering, killed on drop.
pub struct Alertmanager {
    child: Child,
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Alertmanager {
    /// Starts Alertmanager with `config`; `None` (after saying so) when it is not installed
    /// outside CI.
    pub async fn start(purpose: &str, config: &str) -> Option<Alertmanager> {
        if !present(ALERTMANAGER, purpose) {
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let config_path = dir.path().join("alertmanager.yml");
        std::fs::write(&config_path, config).expect("write config");
        let addr = free_addr();
        let child = Command::new(ALERTMANAGER)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start alertmanager");
        let am = Alertmanager {
            child,
            addr,
            _dir: dir,
        };
        wait_ready(addr, "alertmanager").await;
        Some(am)
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
