//! The web UI: the static files under `dashboards/web/`, embedded in the binary and served at
//! `/` (and at each page's path, so a shared link such as `/graph?g0.expr=up` opens that page).
//!
//! Assets live under `/static/<version>/…`, where the version is a hash of every embedded file:
//! a browser may keep them forever (`immutable`), and a new binary changes the prefix, so a
//! stale asset is never mixed with a new page. The page itself is served `no-cache`, so it is
//! revalidated (by its ETag) on every load and always names the current version.

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::sync::OnceLock;

/// Paths that open the app; the script picks the page from the path. `/graph` is where
/// Prometheus's UI keeps its query page, so links written for Prometheus open here too.
const PAGES: &[&str] = &[
    "/",
    "/graph",
    "/query",
    "/logs",
    "/alerts",
    "/rules",
    "/targets",
    "/dashboards",
];

/// What the page shell names in place of the asset version.
const VERSION_PLACEHOLDER: &str = "{{version}}";

/// Browsers may keep a versioned asset for a year without asking again.
const CACHE_IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// The page shell and assets asked for under an old version are revalidated on every use.
const CACHE_REVALIDATE: &str = "no-cache";

/// One embedded file: its path under `/static/<version>/`, its content type and its bytes.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $type:expr) => {
        Asset {
            path: $path,
            content_type: $type,
            body: include_bytes!(concat!("../../dashboards/web/", $path)),
        }
    };
}

/// A shipped Grafana dashboard, served at `dashboards/<name>.json` for the native renderer.
macro_rules! dashboard {
    ($name:literal) => {
        Asset {
            path: concat!("dashboards/", $name, ".json"),
            content_type: "application/json",
            body: include_bytes!(concat!("../../dashboards/grafana/", $name, ".json")),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file the UI loads besides the page shell.
static ASSETS: &[Asset] = &[
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
    asset!("js/main.js", JS),
    asset!("js/api.js", JS),
    asset!("js/dom.js", JS),
    asset!("js/time.js", JS),
    asset!("js/editor.js", JS),
    asset!("js/promql.js", JS),
    asset!("js/logql.js", JS),
    asset!("js/graph.js", JS),
    asset!("js/histogram.js", JS),
    asset!("js/rangepicker.js", JS),
    asset!("js/query.js", JS),
    asset!("js/logs.js", JS),
    asset!("js/table.js", JS),
    asset!("js/alerts.js", JS),
    asset!("js/rules.js", JS),
    asset!("js/targets.js", JS),
    asset!("js/dashboards.js", JS),
    asset!("js/tail.js", JS),
    asset!("js/podlinks.js", JS),
    dashboard!("cluster-use"),
    dashboard!("namespace-pods"),
    dashboard!("node"),
    dashboard!("logs-volume"),
];

const INDEX_TEMPLATE: &str = include_str!("../../dashboards/web/index.html");

/// The page shell with the version filled in, and its ETag.
struct Shell {
    version: String,
    html: String,
    etag: String,
}

fn shell() -> &'static Shell {
    static SHELL: OnceLock<Shell> = OnceLock::new();
    SHELL.get_or_init(|| {
        let mut h = Fnv::new();
        h.write(INDEX_TEMPLATE.as_bytes());
        for a in ASSETS {
            h.write(a.path.as_bytes());
            h.write(a.body);
        }
        let version = format!("{:016x}", h.finish());
        let html = INDEX_TEMPLATE.replace(VERSION_PLACEHOLDER, &version);
        let etag = format!("\"{version}\"");
        Shell {
            version,
            html,
            etag,
        }
    })
}

/// The UI's routes; merged into the API router, they take its state type.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let mut r = Router::new();
    for page in PAGES {
        r = r.route(page, get(index).head(index));
    }
    r.route("/static/{version}/{*path}", get(asset).head(asset))
}

async fn index(headers: HeaderMap) -> Response {
    let s = shell();
    if matches_etag(&headers, &s.etag) {
        return not_modified(&s.etag, CACHE_REVALIDATE);
    }
    respond(
        "text/html; charset=utf-8",
        &s.etag,
        CACHE_REVALIDATE,
        s.html.clone().into_bytes(),
    )
}

async fn asset(Path((version, path)): Path<(String, String)>, headers: HeaderMap) -> Response {
    let Some(a) = ASSETS.iter().find(|a| a.path == path) else {
        return (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("no such asset: {path}\n"),
        )
            .into_response();
    };
    let s = shell();
    // An old page (from before an upgrade) may ask for an old version: it gets today's file,
    // which must not be cached under the old name.
    let cache = if version == s.version {
        CACHE_IMMUTABLE
    } else {
        CACHE_REVALIDATE
    };
    if matches_etag(&headers, &s.etag) {
        return not_modified(&s.etag, cache);
    }
    respond(a.content_type, &s.etag, cache, a.body.to_vec())
}

fn respond(content_type: &'static str, etag: &str, cache: &'static str, body: Vec<u8>) -> Response {
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    resp
}

fn not_modified(etag: &str, cache: &'static str) -> Response {
    let mut resp = StatusCode::NOT_MODIFIED.into_response();
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    resp
}

/// True when `If-None-Match` names `etag` (or `*`); weak validators compare equal, as RFC 9110
/// asks for `If-None-Match`.
fn matches_etag(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim())
        .any(|t| t == "*" || t.trim_start_matches("W/") == etag)
}

/// FNV-1a, 64 bits: a stable content hash for the asset version (std's hasher is randomly
/// seeded per process, so two replicas would disagree on the version).
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn get(path: &str, if_none_match: Option<&str>) -> Response {
        let mut req = Request::get(path);
        if let Some(tag) = if_none_match {
            req = req.header(header::IF_NONE_MATCH, tag);
        }
        routes::<()>()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    fn header_of(r: &Response, name: header::HeaderName) -> String {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    }

    async fn text(r: Response) -> String {
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 22).await.unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn every_page_path_serves_the_shell_with_the_version_filled_in() {
        let version = &shell().version;
        for page in PAGES {
            let r = get(page, None).await;
            assert_eq!(r.status(), StatusCode::OK, "{page}");
            assert_eq!(
                header_of(&r, header::CONTENT_TYPE),
                "text/html; charset=utf-8"
            );
            assert_eq!(header_of(&r, header::CACHE_CONTROL), CACHE_REVALIDATE);
            let html = text(r).await;
            assert!(!html.contains(VERSION_PLACEHOLDER), "{page}");
            assert!(html.contains(&format!("/static/{version}/js/main.js")));
        }
    }

    #[tokio::test]
    async fn assets_have_their_content_type_and_current_ones_are_immutable() {
        let version = shell().version.clone();
        let r = get(&format!("/static/{version}/js/graph.js"), None).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(header_of(&r, header::CONTENT_TYPE), JS);
        assert_eq!(header_of(&r, header::CACHE_CONTROL), CACHE_IMMUTABLE);
        assert_eq!(header_of(&r, header::X_CONTENT_TYPE_OPTIONS), "nosniff");

        let r = get(&format!("/static/{version}/app.css"), None).await;
        assert_eq!(
            header_of(&r, header::CONTENT_TYPE),
            "text/css; charset=utf-8"
        );

        // An old page asking under an old version still gets the file, but not for keeps.
        let r = get("/static/0000000000000000/js/graph.js", None).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(header_of(&r, header::CACHE_CONTROL), CACHE_REVALIDATE);

        let r = get(&format!("/static/{version}/js/nope.js"), None).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        let r = get(&format!("/static/{version}/../Cargo.toml"), None).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn a_matching_etag_gets_304_and_another_gets_the_body() {
        let etag = shell().etag.clone();
        let r = get("/logs", Some(&etag)).await;
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(header_of(&r, header::ETAG), etag);
        let r = get("/logs", Some(&format!("W/{etag}, \"other\""))).await;
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
        let r = get("/logs", Some("\"other\"")).await;
        assert_eq!(r.status(), StatusCode::OK);
    }

    #[test]
    fn every_module_the_scripts_import_is_embedded() {
        // A module imported but not listed in ASSETS would 404 in the browser and blank the page.
        for a in ASSETS.iter().filter(|a| a.path.ends_with(".js")) {
            let src = std::str::from_utf8(a.body).unwrap();
            for line in src.lines().filter(|l| l.starts_with("import ")) {
                let Some(spec) = line.split('"').nth(1) else {
                    continue;
                };
                let target = spec.trim_start_matches("./");
                assert!(
                    ASSETS.iter().any(|b| b.path == format!("js/{target}")),
                    "{} imports {spec}, which is not embedded",
                    a.path
                );
            }
        }
    }

    #[test]
    fn every_file_of_the_ui_is_embedded() {
        // A file added to dashboards/web but not to ASSETS would be missing from the binary.
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../dashboards/web");
        let mut dirs = vec![root.clone()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                    continue;
                }
                let rel = path.strip_prefix(&root).unwrap().to_str().unwrap();
                assert!(
                    rel == "index.html" || ASSETS.iter().any(|a| a.path == rel),
                    "dashboards/web/{rel} is not embedded in ASSETS"
                );
            }
        }
    }

    #[test]
    fn every_shipped_dashboard_is_embedded_and_listed_by_the_page() {
        // The native Dashboards page renders the Grafana files; one missing from ASSETS or
        // from the page's list would silently not be shown.
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../dashboards/grafana");
        let page = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../dashboards/web/js/dashboards.js"),
        )
        .unwrap();
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let name = path.file_stem().unwrap().to_str().unwrap().to_string();
            let served = format!("dashboards/{name}.json");
            assert!(
                ASSETS.iter().any(|a| a.path == served),
                "{served} is not in ASSETS"
            );
            assert!(
                page.contains(&format!("\"{name}\"")),
                "dashboards.js does not list {name}"
            );
            n += 1;
        }
        assert_eq!(n, 4, "the shipped dashboards");
    }

    #[test]
    fn the_ui_weighs_under_one_mebibyte() {
        let total: usize =
            INDEX_TEMPLATE.len() + ASSETS.iter().map(|a| a.body.len()).sum::<usize>();
        assert!(total < 1 << 20, "the UI weighs {total} bytes");
    }
}
