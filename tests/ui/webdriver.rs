//! A small W3C WebDriver client over reqwest, driving Debian's headless Chromium through
//! Debian's `chromedriver`, for the UI tests that type, click and wait (the `--dump-dom` tests in
//! `chromium.rs` cannot interact), and move or drag the mouse through W3C actions.
//!
//! Skip rule: without `/usr/bin/chromedriver` the interactive tests print that they skipped,
//! unless `CI=true`, where a missing driver fails them.

use serde_json::{json, Value};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
/// The W3C key of an element reference in WebDriver answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// How long `wait_for` polls before failing the test.
const WAIT: Duration = Duration::from_secs(20);

/// A chromedriver process with one browser session; both end on drop.
pub struct Driver {
    child: Child,
    base: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
}

/// One element of the page, by its WebDriver id.
#[derive(Debug, Clone)]
pub struct Element(String);

impl Driver {
    /// Starts chromedriver on a free loopback port and opens a headless session, or `None`
    /// (after saying so) when the driver is absent outside CI.
    pub async fn start(test: &str) -> Option<Driver> {
        if !Path::new(CHROMEDRIVER).exists() {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("{CHROMEDRIVER} is missing and CI=true: apt-get install chromium-driver");
            }
            eprintln!("skipped {test}: {CHROMEDRIVER} is not installed");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        // Its own process group, so the browser it starts (and the browser's helpers) can be
        // killed with it: killing chromedriver alone leaves them running.
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start chromedriver");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("client");
        let profile = tempfile::tempdir().expect("profile dir");
        let mut d = Driver {
            child,
            base: format!("http://127.0.0.1:{port}"),
            http,
            _profile: profile,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while d
            .http
            .get(format!("{}/status", d.base))
            .send()
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "chromedriver did not come up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let args = [
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            "--window-size=1280,1000".into(),
            format!("--user-data-dir={}", d._profile.path().display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
        }}});
        let v = d.call("POST", "/session", Some(caps)).await;
        let id = v["sessionId"].as_str().expect("sessionId").to_string();
        d.base = format!("{}/session/{id}", d.base);
        Some(d)
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{}", self.base, path);
        let req = match method {
            "GET" => self.http.get(&url),
            "DELETE" => self.http.delete(&url),
            _ => self
                .http
                .post(&url)
                .json(&body.unwrap_or_else(|| json!({}))),
        };
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = resp.status();
        let v: Value = resp.json().await.expect("webdriver json");
        assert!(status.is_success(), "{method} {path}: {status} {v}");
        v["value"].clone()
    }

    pub async fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url }))).await;
    }

    /// Every element matching a CSS selector now.
    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        let v = self
            .call(
                "POST",
                "/elements",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e[ELEMENT].as_str().map(|s| Element(s.to_string())))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The first element matching `css`, waiting for it to appear; fails the test with the
    /// page's text when it does not.
    pub async fn wait_for(&self, css: &str) -> Element {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(e) = self.find_all(css).await.into_iter().next() {
                return e;
            }
            if Instant::now() > deadline {
                let body = self.script("return document.body.innerText").await;
                panic!("no element matches {css} after {WAIT:?}; the page says:\n{body}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until `script` (a function body returning a boolean) returns true.
    pub async fn wait_until(&self, what: &str, script: &str) {
        let deadline = Instant::now() + WAIT;
        while self.script(script).await != Value::Bool(true) {
            if Instant::now() > deadline {
                let body = self.script("return document.body.innerText").await;
                panic!("{what}: not true after {WAIT:?}; the page says:\n{body}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn click(&self, e: &Element) {
        self.call("POST", &format!("/element/{}/click", e.0), None)
            .await;
    }

    /// Types `text` into an element (WebDriver key codes such as `\u{E007}`, Enter, allowed).
    pub async fn type_into(&self, e: &Element, text: &str) {
        self.call(
            "POST",
            &format!("/element/{}/value", e.0),
            Some(json!({ "text": text })),
        )
        .await;
    }

    pub async fn clear(&self, e: &Element) {
        self.call("POST", &format!("/element/{}/clear", e.0), None)
            .await;
    }

    pub async fn text(&self, e: &Element) -> String {
        let v = self
            .call("GET", &format!("/element/{}/text", e.0), None)
            .await;
        v.as_str().unwrap_or_default().to_string()
    }

    /// Runs a script (a function body) in the page and returns its result.
    pub async fn script(&self, body: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({"script": body, "args": []})),
        )
        .await
    }

    /// The centre of the first element matching `css`, in viewport pixels, and its width.
    pub async fn centre_of(&self, css: &str) -> (f64, f64, f64) {
        self.wait_for(css).await;
        let v = self
            .script(&format!(
                "const r = document.querySelector({}).getBoundingClientRect(); return [r.left + r.width / 2, r.top + r.height / 2, r.width]",
                Value::String(css.to_string())
            ))
            .await;
        let n = |i: usize| {
            v[i].as_f64()
                .unwrap_or_else(|| panic!("no box for {css}: {v}"))
        };
        (n(0), n(1), n(2))
    }

    /// Moves the mouse to a viewport point, as a user's hover does.
    pub async fn mouse_move(&self, x: f64, y: f64) {
        self.pointer(vec![move_to(x, y, 0)]).await;
    }

    /// Presses the left button at `from`, moves to `to` in steps and releases it there.
    pub async fn drag(&self, from: (f64, f64), to: (f64, f64)) {
        let mut steps = vec![
            move_to(from.0, from.1, 0),
            json!({"type": "pointerDown", "button": 0}),
        ];
        for k in 1..=4 {
            let f = k as f64 / 4.0;
            steps.push(move_to(
                from.0 + (to.0 - from.0) * f,
                from.1 + (to.1 - from.1) * f,
                50,
            ));
        }
        steps.push(json!({"type": "pointerUp", "button": 0}));
        self.pointer(steps).await;
    }

    async fn pointer(&self, steps: Vec<Value>) {
        let actions = json!({"actions": [{
            "type": "pointer",
            "id": "mouse",
            "parameters": {"pointerType": "mouse"},
            "actions": steps,
        }]});
        self.call("POST", "/actions", Some(actions)).await;
    }

    pub async fn refresh(&self) {
        self.call("POST", "/refresh", None).await;
    }

    /// The browser's Back button.
    pub async fn back(&self) {
        self.call("POST", "/back", None).await;
    }

    /// The browser's Forward button.
    pub async fn forward(&self) {
        self.call("POST", "/forward", None).await;
    }

    /// Saves a PNG of the current view at `path`.
    pub async fn screenshot(&self, path: &Path) {
        let v = self.call("GET", "/screenshot", None).await;
        let png = decode_base64(v.as_str().expect("screenshot data"));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("artifact dir");
        }
        std::fs::write(path, png).expect("write screenshot");
        super::chromium::report_artifact(path);
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The whole group: chromedriver, the browser and the browser's helper processes.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A W3C pointer move to a viewport point (whole pixels, as the protocol wants).
fn move_to(x: f64, y: f64, ms: u64) -> Value {
    json!({"type": "pointerMove", "duration": ms, "origin": "viewport",
           "x": x.round() as i64, "y": y.round() as i64})
}

/// Standard base64 (with padding), as WebDriver returns screenshots.
fn decode_base64(s: &str) -> Vec<u8> {
    let val = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a' + 26) as u32,
            b'0'..=b'9' => (c - b'0' + 52) as u32,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        }
    };
    let bytes: Vec<u8> = s.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for chunk in bytes.chunks(4) {
        let data: Vec<u8> = chunk.iter().copied().filter(|&c| c != b'=').collect();
        let mut n = 0u32;
        for (i, &c) in data.iter().enumerate() {
            n |= val(c) << (18 - 6 * i);
        }
        out.extend_from_slice(&n.to_be_bytes()[1..data.len()]);
    }
    out
}
