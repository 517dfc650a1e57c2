//! Starting the real binary and talking to it.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_vigil");

/// A running `vigil` process, killed on drop; its log is kept for failure messages.
pub struct Vigil {
    child: Child,
    pub addr: SocketAddr,
    /// Kept so the data directory lives as long as the process (none for `server_in`, whose
    /// directory outlives the process so a restart finds it).
    _dir: Option<tempfile::TempDir>,
    log: Arc<Mutex<String>>,
}

impl Vigil {
    /// Starts `vigil server` on a free port with storage in a fresh temp dir, plus `extra`
    /// flags, and waits until it listens.
    pub fn server(extra: &[&str]) -> Vigil {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut args: Vec<String> = vec![
            "server".into(),
            "--web.listen-address=127.0.0.1:0".into(),
            format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()),
            format!("--storage.logs.path={}", dir.path().join("logs").display()),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        Self::spawn(args, dir)
    }

    /// Starts `vigil server` with its storage under `dir`, which outlives the process: crash
    /// tests kill it (drop sends SIGKILL) and start another on the same directory.
    pub fn server_in(dir: &std::path::Path, extra: &[&str]) -> Vigil {
        Self::server_in_under(&[], dir, extra)
    }

    /// [`Vigil::server_in`], run through `wrapper` (a command and its arguments that execs
    /// the binary it is given last, e.g. `prlimit --fsize=N --`); none runs it directly.
    pub fn server_in_under(wrapper: &[&str], dir: &std::path::Path, extra: &[&str]) -> Vigil {
        let mut args: Vec<String> = wrapper.iter().map(|s| s.to_string()).collect();
        args.push(BIN.to_string());
        args.extend([
            "server".into(),
            "--web.listen-address=127.0.0.1:0".into(),
            format!("--storage.tsdb.path={}", dir.join("tsdb").display()),
            format!("--storage.logs.path={}", dir.join("logs").display()),
        ]);
        args.extend(extra.iter().map(|s| s.to_string()));
        let program = args.remove(0);
        Self::spawn_program(&program, args, None)
    }

    /// Starts `vigil up` with all data under a fresh temp dir, plus `extra` flags.
    pub fn up(dir: tempfile::TempDir, extra: &[&str]) -> Vigil {
        let mut args: Vec<String> = vec![
            "up".into(),
            "--web.listen-address=127.0.0.1:0".into(),
            format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()),
            format!("--storage.logs.path={}", dir.path().join("logs").display()),
            format!("--state.path={}", dir.path().join("agent").display()),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        Self::spawn(args, dir)
    }

    /// Starts `vigil agent` with its endpoint on a free port and its state under `dir`, plus
    /// `extra` flags; `addr` is the agent's own endpoint.
    pub fn agent(dir: tempfile::TempDir, extra: &[&str]) -> Vigil {
        let mut args: Vec<String> = vec![
            "agent".into(),
            "--web.listen-address=127.0.0.1:0".into(),
            format!("--state.path={}", dir.path().join("agent").display()),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        Self::spawn(args, dir)
    }

    fn spawn(args: Vec<String>, dir: tempfile::TempDir) -> Vigil {
        Self::spawn_with(args, Some(dir))
    }

    fn spawn_with(args: Vec<String>, dir: Option<tempfile::TempDir>) -> Vigil {
        Self::spawn_program(BIN, args, dir)
    }

    fn spawn_program(program: &str, args: Vec<String>, dir: Option<tempfile::TempDir>) -> Vigil {
        let mut child = Command::new(program)
            .args(&args)
            .env("VIGIL_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {program}: {e}"));
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let log_w = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = listening_address(&line) {
                    let _ = tx.send(addr);
                }
                let mut l = log_w.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "vigil did not report listening; args {args:?}; log:\n{}",
                    log.lock().unwrap()
                );
            }
        };
        Vigil {
            child,
            addr,
            _dir: dir,
            log,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The text of its `/metrics`.
    pub async fn metrics(&self) -> String {
        client()
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// SIGKILL, as `kill -9`: no shutdown code runs (dropping the handle does the same).
    pub fn kill9(self) {
        drop(self);
    }

    /// True while the process is running.
    /// The process id, for sending it signals.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Vigil {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The address in the server's `listening` log line (`... listening address=127.0.0.1:4321`).
fn listening_address(line: &str) -> Option<SocketAddr> {
    if !line.contains("listening") {
        return None;
    }
    let rest = &line[line.find("address=")? + "address=".len()..];
    rest.split_whitespace().next()?.parse().ok()
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// One series to write: its label pairs and its `(t_ms, value)` samples.
pub type TestSeries<'a> = (&'a [(&'a str, &'a str)], Vec<(i64, f64)>);

/// Builds a remote-write body (protobuf, snappy block) from series.
pub fn write_body(series: &[TestSeries]) -> Vec<u8> {
    crate::wire::write_body(series)
}

/// POSTs a remote-write body and returns the status and response text.
pub async fn remote_write(v: &Vigil, body: Vec<u8>) -> (u16, String) {
    remote_write_to(&v.url(""), body).await
}

/// POSTs a remote-write body to the server at `base` (`http://host:port`, Vigil or a peer)
/// with the headers Prometheus sends, and returns the status and response text.
pub async fn remote_write_to(base: &str, body: Vec<u8>) -> (u16, String) {
    let resp = client()
        .post(format!("{base}/api/v1/write"))
        .header("Content-Encoding", "snappy")
        .header("Content-Type", "application/x-protobuf")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .body(body)
        .send()
        .await
        .expect("remote write request");
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

/// GETs `path` and returns the status and parsed JSON body.
pub async fn get_json(v: &Vigil, path: &str) -> (u16, serde_json::Value) {
    let resp = client().get(v.url(path)).send().await.expect("GET");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    let json = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("GET {path}: body is not JSON ({e}): {text}"));
    (status, json)
}

/// Polls `f` until it returns `Some`, for at most `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(t) = f().await {
            return Some(t);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// URL-encodes a query parameter value.
pub fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A local webhook receiver: every JSON body posted to its `/hook` arrives on the channel.
pub async fn webhook_sink() -> (
    String,
    tokio::sync::mpsc::UnboundedReceiver<serde_json::Value>,
) {
    use axum::routing::post;
    use axum::Json;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/hook",
        post(move |Json(body): Json<serde_json::Value>| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(body);
                ""
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, rx)
}
