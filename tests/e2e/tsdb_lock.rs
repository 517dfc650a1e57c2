//! The data directory lock with the real binary: a second `vigil server` on a directory a
//! running one holds exits at once with an error naming the directory, and after the first
//! is killed with SIGKILL (no clean shutdown) a new one starts on the same directory.

use crate::harness::BIN;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn server(dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args([
        "server".to_string(),
        "--web.listen-address=127.0.0.1:0".to_string(),
        format!("--storage.tsdb.path={}", dir.join("tsdb").display()),
        format!("--storage.logs.path={}", dir.join("logs").display()),
    ])
    .env("VIGIL_LOG", "info")
    .env("NO_COLOR", "1")
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    cmd
}

/// A server killed (SIGKILL) on drop.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a server on `dir` and waits for its `listening` line.
fn start(dir: &Path) -> Running {
    let mut child = server(dir).spawn().expect("start vigil");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("listening") {
                let _ = tx.send(());
            }
        }
    });
    let running = Running(child);
    rx.recv_timeout(Duration::from_secs(30))
        .expect("vigil reports listening");
    running
}

/// Starts a server on `dir` that must fail: returns its exit status and stderr. A server
/// that is still running after 30 s is killed and fails the test.
fn start_expecting_failure(dir: &Path) -> (std::process::ExitStatus, String) {
    let mut child = server(dir).spawn().expect("start vigil");
    let mut stderr = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "second server on a locked directory kept running; log:\n{}",
                reader.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (status, reader.join().unwrap_or_default())
}

#[test]
fn second_server_on_a_locked_directory_fails_naming_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let first = start(dir.path());
    let (status, log) = start_expecting_failure(dir.path());
    assert!(!status.success(), "exit status {status}; log:\n{log}");
    let tsdb_dir = dir.path().join("tsdb").display().to_string();
    assert!(
        log.contains("is locked") && log.contains(&tsdb_dir),
        "the error says the directory {tsdb_dir} is locked; log:\n{log}"
    );

    // SIGKILL leaves the lock file behind; the lock itself dies with the process.
    drop(first);
    assert!(dir.path().join("tsdb/lock").exists());
    let _again = start(dir.path());
}
