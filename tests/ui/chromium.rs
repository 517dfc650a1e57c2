//! Driving Debian's headless Chromium: render a URL and hand back its DOM once the page's
//! requests have settled (`--virtual-time-budget`), or save a screenshot of it.
//!
//! Skip rule: without `/usr/bin/chromium` the browser tests print that they skipped, unless
//! `CI=true`, where a missing browser fails them.

use std::path::{Path, PathBuf};
use std::time::Duration;

const CHROMIUM: &str = "/usr/bin/chromium";
/// Virtual time the page gets to load, query and render; it runs faster than wall time when
/// the page is idle, so this bounds the page, not the test's duration.
const VIRTUAL_TIME_BUDGET_MS: u32 = 20_000;
/// Wall-clock bound on one browser run.
const RUN_TIMEOUT: Duration = Duration::from_secs(90);

/// The browser, or `None` (after saying so) when it is absent outside CI.
pub fn browser(test: &str) -> Option<Chromium> {
    if Path::new(CHROMIUM).exists() {
        return Some(Chromium);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{CHROMIUM} is missing and CI=true: install chromium (apt-get install chromium)");
    }
    eprintln!("skipped {test}: {CHROMIUM} is not installed");
    None
}

#[derive(Debug)]
pub struct Chromium;

impl Chromium {
    /// The DOM of `url` after it has loaded and run its queries.
    pub async fn dump_dom(&self, url: &str) -> String {
        let out = self.run(&["--dump-dom".to_string()], url).await;
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Saves a PNG of `url` at `path` (under the target directory, as a test artifact).
    pub async fn screenshot(&self, url: &str, path: &Path) {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("artifact dir");
        }
        self.run(&[format!("--screenshot={}", path.display())], url)
            .await;
        assert!(
            path.exists(),
            "chromium wrote no screenshot at {}",
            path.display()
        );
        report_artifact(path);
    }

    async fn run(&self, extra: &[String], url: &str) -> Vec<u8> {
        let profile = tempfile::tempdir().expect("profile dir");
        let mut cmd = tokio::process::Command::new(CHROMIUM);
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--window-size=1280,1000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--virtual-time-budget={VIRTUAL_TIME_BUDGET_MS}"))
        .args(extra)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
        let out = tokio::time::timeout(RUN_TIMEOUT, cmd.output())
            .await
            .unwrap_or_else(|_| panic!("chromium did not finish within {RUN_TIMEOUT:?} on {url}"))
            .expect("run chromium");
        assert!(
            out.status.success(),
            "chromium failed on {url}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }
}

/// Where screenshots go: `$VIGIL_TEST_ARTIFACTS` when set (CI uploads that directory), else
/// `ui-screenshots/` in the target directory's tmp.
pub fn artifact(name: &str) -> PathBuf {
    match std::env::var_os("VIGIL_TEST_ARTIFACTS") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir).join(name),
        _ => Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("ui-screenshots")
            .join(name),
    }
}

/// Says where a screenshot was written, so a test's output leads to its artifacts.
pub fn report_artifact(path: &Path) {
    println!("screenshot: {}", path.display());
}
