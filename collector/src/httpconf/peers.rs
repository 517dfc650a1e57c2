//! Test helpers: the checked-in test PEMs, and real TLS peers (node_exporter 1.5 and
//! Prometheus 2.42 serving HTTPS through their `--web.config.file`) on 127.0.0.1, killed on
//! drop. A missing peer skips the test with a printed line, unless `CI` is "true".

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const NODE_EXPORTER: &str = "/usr/bin/prometheus-node-exporter";
pub const PROMETHEUS: &str = "/usr/bin/prometheus";

/// A test PEM made by `testdata/gen.sh`.
pub fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/httpconf/testdata")
        .join(name)
}

/// A running peer; its process and temp dir go away with it.
#[derive(Debug)]
pub struct Peer {
    child: Child,
    pub addr: String,
    _dir: tempfile::TempDir,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether `binary` can run here; prints the skip line when not (and fails under CI).
pub fn available(binary: &str) -> bool {
    if Path::new(binary).exists() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{binary} is required when CI=true"
    );
    eprintln!("skipped: {binary} is not installed");
    false
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

/// A `--web.config.file` serving HTTPS with the test server certificate; with
/// `client_ca` the peer also requires a client certificate signed by it.
fn web_config(dir: &Path, client_ca: bool) -> PathBuf {
    let mut yaml = format!(
        "tls_server_config:\n  cert_file: {}\n  key_file: {}\n",
        testdata("server.crt").display(),
        testdata("server.key").display()
    );
    if client_ca {
        yaml.push_str(&format!(
            "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {}\n",
            testdata("ca.crt").display()
        ));
    }
    let path = dir.join("web.yml");
    std::fs::write(&path, yaml).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    path
}

/// Starts `binary` with `args(its temp dir)` plus its listen address and web config; waits
/// until the port accepts connections.
fn spawn(binary: &str, client_ca: bool, args: impl FnOnce(&Path) -> Vec<String>) -> Peer {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
    let addr = format!("127.0.0.1:{}", free_port());
    let web = web_config(dir.path(), client_ca);
    let child = Command::new(binary)
        .args(args(dir.path()))
        .arg(format!("--web.listen-address={addr}"))
        .arg(format!("--web.config.file={}", web.display()))
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {binary}: {e}"));
    let peer = Peer {
        child,
        addr,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(&peer.addr).is_err() {
        assert!(
            Instant::now() < deadline,
            "{binary} did not listen on {}",
            peer.addr
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    peer
}

/// node_exporter 1.5 serving only its `time` collector over HTTPS.
pub fn node_exporter_tls(client_ca: bool) -> Peer {
    spawn(NODE_EXPORTER, client_ca, |_| {
        vec![
            "--collector.disable-defaults".into(),
            "--collector.time".into(),
        ]
    })
}

/// Prometheus 2.42 accepting remote write over HTTPS.
pub fn prometheus_tls() -> Peer {
    spawn(PROMETHEUS, false, |dir| {
        let config = dir.join("prometheus.yml");
        std::fs::write(&config, "global: {}\n").unwrap_or_else(|e| panic!("config: {e}"));
        vec![
            format!("--config.file={}", config.display()),
            format!("--storage.tsdb.path={}", dir.join("data").display()),
            "--web.enable-remote-write-receiver".into(),
        ]
    })
}
