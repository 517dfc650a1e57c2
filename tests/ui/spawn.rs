//! Starting the real `vigil server` (and `vigil agent`) on a free port with a temp dir (a small copy of
//! `tests/e2e/harness.rs`'s, so the two test binaries stay independent), and feeding it.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A running `vigil server`, killed on drop.
pub struct Vigil {
    child: Child,
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
    log: Arc<Mutex<String>>,
}

impl Vigil {
    pub fn server() -> Vigil {
        Vigil::server_with(|_| Vec::new())
    }

    /// A server with extra flags, made from its temp dir (for config files written there).
    pub fn server_with(extra: impl FnOnce(&std::path::Path) -> Vec<String>) -> Vigil {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut args = vec![
            "server".to_string(),
            "--web.listen-address=127.0.0.1:0".into(),
            format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()),
            format!("--storage.logs.path={}", dir.path().join("logs").display()),
        ];
        args.extend(extra(dir.path()));
        Vigil::start(args, dir)
    }

    /// `vigil agent` shipping to `server`, with its endpoint on a free port, no pod logs, and
    /// the flags `extra` makes from its temp dir (a scrape config written there).
    pub fn agent(server: &Vigil, extra: impl FnOnce(&std::path::Path) -> Vec<String>) -> Vigil {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut args = vec![
            "agent".to_string(),
            "--web.listen-address=127.0.0.1:0".into(),
            format!("--state.path={}", dir.path().join("agent").display()),
            format!("--remote-write.url={}", server.url("/api/v1/write")),
            format!("--logs.push-url={}", server.url("/loki/api/v1/push")),
            format!("--logs.path={}", dir.path().join("no-pods").display()),
            "--metrics.interval=1s".into(),
        ];
        args.extend(extra(dir.path()));
        Vigil::start(args, dir)
    }

    fn start(args: Vec<String>, dir: tempfile::TempDir) -> Vigil {
        let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args(&args)
            .env("VIGIL_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start vigil");
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
        let Ok(addr) = rx.recv_timeout(Duration::from_secs(30)) else {
            let _ = child.kill();
            panic!(
                "vigil did not report listening; log:\n{}",
                log.lock().unwrap()
            );
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
}

impl Drop for Vigil {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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
pub type TestSeries<'a> = (Vec<(&'a str, &'a str)>, Vec<(i64, f64)>);

/// Writes series by remote write 1.0.
pub async fn remote_write(v: &Vigil, series: &[TestSeries<'_>]) {
    let body = crate::wire::write_body(series);
    let resp = client()
        .post(v.url("/api/v1/write"))
        .header("Content-Encoding", "snappy")
        .header("Content-Type", "application/x-protobuf")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .body(body)
        .send()
        .await
        .expect("remote write");
    let status = resp.status();
    assert_eq!(
        status,
        204,
        "remote write: {}",
        resp.text().await.unwrap_or_default()
    );
}

/// Pushes log lines (`(t_ns, line)`) of one stream through Loki's JSON push API.
pub async fn push_logs(v: &Vigil, labels: &[(&str, &str)], lines: &[(i64, String)]) {
    let stream: serde_json::Map<String, serde_json::Value> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
        .collect();
    let values: Vec<_> = lines
        .iter()
        .map(|(t, l)| serde_json::json!([t.to_string(), l]))
        .collect();
    let body = serde_json::json!({"streams": [{"stream": stream, "values": values}]});
    let resp = client()
        .post(v.url("/loki/api/v1/push"))
        .json(&body)
        .send()
        .await
        .expect("loki push");
    let status = resp.status();
    assert_eq!(
        status,
        204,
        "loki push: {}",
        resp.text().await.unwrap_or_default()
    );
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// `YYYY-MM-DD HH:MM:SS` in UTC, the form of Prometheus's `g0.end_input`.
pub fn utc_string(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (the era-based algorithm for the proleptic
    // Gregorian calendar).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
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
