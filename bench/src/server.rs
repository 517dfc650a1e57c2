//! The two servers under test, Vigil and Prometheus 2.42, each started as a real process on a
//! free loopback port with its data in a directory of the benchmark's own, killed on drop;
//! and the readiness wait that also times WAL replay after a `kill -9`.

use anyhow::{bail, Context};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian's `prometheus` package installs Prometheus 2.42.
pub const PROMETHEUS: &str = "/usr/bin/prometheus";

/// How long a server may take to answer `/-/ready` (WAL replay included) before the
/// benchmark gives up on it.
const READY_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Vigil,
    Prometheus,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Vigil => "Vigil",
            Kind::Prometheus => "Prometheus",
        }
    }
}

/// A running server process.
#[derive(Debug)]
pub struct Server {
    pub kind: Kind,
    bin: PathBuf,
    root: PathBuf,
    child: Child,
    pub addr: SocketAddr,
}

impl Server {
    /// Starts `kind` from `bin` with all its files under `root` (created if missing) and waits
    /// until `/-/ready` answers 200.
    pub async fn start(kind: Kind, bin: &Path, root: &Path) -> anyhow::Result<Server> {
        std::fs::create_dir_all(root).with_context(|| format!("create {}", root.display()))?;
        if kind == Kind::Prometheus {
            // Prometheus needs a config file; this one scrapes nothing, data comes by remote
            // write only.
            std::fs::write(
                root.join("prometheus.yml"),
                "global:\n  scrape_interval: 15s\n",
            )?;
        }
        let (child, addr) = spawn(kind, bin, root)?;
        let server = Server {
            kind,
            bin: bin.to_path_buf(),
            root: root.to_path_buf(),
            child,
            addr,
        };
        server.wait_ready().await?;
        Ok(server)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The TSDB directory: where the WAL and the blocks live.
    pub fn tsdb_dir(&self) -> PathBuf {
        tsdb_dir(self.kind, &self.root)
    }

    /// Kills the process with SIGKILL (no flush, no clean shutdown), then starts it again on
    /// the same data and returns how long it took until `/-/ready` answered 200.
    pub async fn kill9_and_restart(&mut self) -> anyhow::Result<Duration> {
        self.child.kill().context("kill -9")?;
        self.child.wait().context("reap killed server")?;
        let started = Instant::now();
        let (child, addr) = spawn(self.kind, &self.bin, &self.root)?;
        self.child = child;
        self.addr = addr;
        self.wait_ready().await?;
        Ok(started.elapsed())
    }

    /// Polls `/-/ready` every 10 ms until it answers 200; an exited process fails at once
    /// with the tail of its log.
    async fn wait_ready(&self) -> anyhow::Result<()> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        let url = format!("{}/-/ready", self.base());
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(r) = client.get(&url).send().await {
                if r.status().is_success() {
                    return Ok(());
                }
            }
            if !self.alive() {
                bail!(
                    "{} exited before it was ready; log tail:\n{}",
                    self.kind.name(),
                    self.log_tail()
                );
            }
            if Instant::now() > deadline {
                bail!("{} not ready after {READY_TIMEOUT:?}", self.kind.name());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn alive(&self) -> bool {
        // `try_wait` needs `&mut`; /proc is the read-only way to ask. A zombie counts as
        // exited.
        std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))
            .map(|s| {
                let state = s
                    .rfind(')')
                    .and_then(|i| s[i + 1..].split_whitespace().next());
                !matches!(state, Some("Z") | Some("X") | None)
            })
            .unwrap_or(false)
    }

    /// The last lines of the server's log, for error messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(log_path(self.kind, &self.root)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tsdb_dir(kind: Kind, root: &Path) -> PathBuf {
    match kind {
        Kind::Vigil => root.join("tsdb"),
        Kind::Prometheus => root.join("data"),
    }
}

fn log_path(kind: Kind, root: &Path) -> PathBuf {
    root.join(format!("{}.log", kind.name().to_lowercase()))
}

/// Starts the process on a port the OS just handed out (released a moment before the server
/// binds it: a race other loopback users could only lose on purpose).
fn spawn(kind: Kind, bin: &Path, root: &Path) -> anyhow::Result<(Child, SocketAddr)> {
    let addr = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path(kind, root))?;
    let mut cmd = Command::new(bin);
    let tsdb = tsdb_dir(kind, root);
    match kind {
        Kind::Vigil => {
            cmd.arg("server")
                .arg(format!("--web.listen-address={addr}"))
                .arg(format!("--storage.tsdb.path={}", tsdb.display()))
                .arg(format!(
                    "--storage.logs.path={}",
                    root.join("logs").display()
                ))
                .arg(format!(
                    "--alertmanager.storage.path={}",
                    root.join("alertmanager").display()
                ))
                .env("NO_COLOR", "1");
        }
        Kind::Prometheus => {
            cmd.arg("--web.enable-remote-write-receiver")
                .arg(format!("--storage.tsdb.path={}", tsdb.display()))
                .arg(format!("--web.listen-address={addr}"))
                .arg(format!(
                    "--config.file={}",
                    root.join("prometheus.yml").display()
                ));
        }
    }
    let child = cmd
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("start {}", bin.display()))?;
    Ok((child, addr))
}
