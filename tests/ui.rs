//! The web UI against the real binary: its assets as served over HTTP, and its pages rendered
//! by Debian's headless Chromium from shareable URLs, with data pushed by remote write and the
//! Loki push API. Screenshots land in `$VIGIL_TEST_ARTIFACTS`, else in
//! `target/tmp/ui-screenshots/`; each test prints where it wrote them.

// In a test harness a panic is a failed test with its message, which is what we want; and the
// tests print where their screenshots went and what the measurement measured.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

#[path = "ui/chromium.rs"]
mod chromium;
#[path = "ui/dashboards.rs"]
mod dashboards;
#[path = "ui/flows.rs"]
mod flows;
#[path = "ui/logs.rs"]
mod logs;
#[path = "ui/pages.rs"]
mod pages;
#[path = "ui/panels.rs"]
mod panels;
#[path = "ui/query.rs"]
mod query;
#[path = "ui/query_controls.rs"]
mod query_controls;
#[path = "ui/spawn.rs"]
mod spawn;
#[path = "ui/targets.rs"]
mod targets;
#[path = "ui/webdriver.rs"]
mod webdriver;
#[path = "common/wire.rs"]
mod wire;

use chromium::{artifact, browser};
use spawn::*;

/// Fifteen minutes of two counters of pods `api-1` and `api-2`, and their log lines, ending at
/// `now`. Returns the samples' step in milliseconds.
/// A browser at `path` of a fresh server holding [`seed`]'s data, for `test`; `None` (after
/// saying so) where Chromium is missing outside CI.
async fn seeded_page(test: &str, path: &str) -> Option<(webdriver::Driver, Vigil)> {
    let d = webdriver::Driver::start(test).await?;
    let v = Vigil::server();
    seed(&v, spawn::now_ms()).await;
    d.goto(&v.url(path)).await;
    Some((d, v))
}

async fn seed(v: &Vigil, now: i64) {
    let start = now - 15 * 60_000;
    let samples = |per_step: f64| -> Vec<(i64, f64)> {
        (0..60)
            .map(|i| (start + i * 15_000, per_step * i as f64))
            .collect()
    };
    remote_write(
        v,
        &[
            (
                vec![
                    ("__name__", "http_requests_total"),
                    ("job", "api"),
                    ("instance", "a"),
                    ("namespace", "shop"),
                    ("pod", "api-1"),
                ],
                samples(30.0),
            ),
            (
                vec![
                    ("__name__", "http_requests_total"),
                    ("job", "api"),
                    ("instance", "b"),
                    ("namespace", "shop"),
                    ("pod", "api-2"),
                ],
                samples(15.0),
            ),
        ],
    )
    .await;
    let ns = |ms: i64| ms * 1_000_000;
    let api1: Vec<_> = (0..20)
        .map(|i| {
            (
                ns(now - 600_000 + i * 20_000),
                format!("method=GET path=/items/{i} status=200 duration=12ms"),
            )
        })
        .collect();
    push_logs(
        v,
        &[("namespace", "shop"), ("pod", "api-1"), ("level", "info")],
        &api1,
    )
    .await;
    let api2: Vec<_> = (0..5)
        .map(|i| {
            (
                ns(now - 300_000 + i * 30_000),
                format!(r#"{{"msg":"upstream timeout","attempt":{i}}}"#),
            )
        })
        .collect();
    push_logs(
        v,
        &[("namespace", "shop"), ("pod", "api-2"), ("level", "error")],
        &api2,
    )
    .await;
}

fn count(hay: &str, needle: &str) -> usize {
    hay.matches(needle).count()
}

/// Every value of `attr="…"` in document order.
fn attr_values(dom: &str, attr: &str) -> Vec<String> {
    let key = format!(" {attr}=\"");
    dom.match_indices(&key)
        .filter_map(|(i, _)| {
            let rest = &dom[i + key.len()..];
            rest.find('"').map(|end| rest[..end].replace("&amp;", "&"))
        })
        .collect()
}

/// The `href` of the first element whose class is `class`.
fn href_of(dom: &str, class: &str) -> Option<String> {
    let at = dom.find(&format!("class=\"{class}\" href=\""))?;
    attr_values(&dom[at..], "href").into_iter().next()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_query_link_draws_the_graph_and_table_and_its_pod_link_opens_the_pods_logs() {
    let Some(chrome) =
        browser("a_query_link_draws_the_graph_and_table_and_its_pod_link_opens_the_pods_logs")
    else {
        return;
    };
    let v = Vigil::server();
    let now = now_ms();
    seed(&v, now).await;
    // Prometheus's own link form: two panels, a graph over 15m ending now and a table.
    let end = utc_string(now);
    let url = v.url(&format!(
        "/graph?g0.expr={}&g0.tab=0&g0.range_input=15m&g0.end_input={}&g1.expr={}&g1.tab=1&g1.end_input={}",
        enc("rate(http_requests_total[1m])"),
        enc(&end),
        enc("sum by (job) (http_requests_total)"),
        enc(&end),
    ));
    let dom = chrome.dump_dom(&url).await;
    assert_eq!(
        count(&dom, r#"data-state="done""#),
        2,
        "both panels answered:\n{dom}\n{}",
        v.log()
    );
    // The graph: one line per series, each a polyline of many points, and its legend.
    assert!(dom.contains(r#"<svg class="graph""#), "{dom}");
    assert_eq!(count(&dom, r#"class="series""#), 2, "{dom}");
    for d in attr_values(&dom, "d") {
        assert!(count(&d, "L") > 50, "a series line has too few points: {d}");
    }
    // rate() drops the metric name, as in Prometheus.
    assert!(
        dom.contains(r#">{instance="a", job="api", namespace="shop", pod="api-1"}</button>"#),
        "{dom}"
    );
    assert!(dom.contains(r#"pod="api-2"}"#), "{dom}");
    // The editor highlights what it holds.
    assert!(
        dom.contains(r#"<span class="t-function">rate</span>"#),
        "{dom}"
    );
    assert!(
        dom.contains(r#"<span class="t-duration">1m</span>"#),
        "{dom}"
    );
    // The table: the instant sum at the end time, as the API formats it (both counters' last
    // samples at or before `end`, which is `now` cut to the second).
    let end_ms = now / 1000 * 1000;
    let last = (0..60)
        .rev()
        .find(|i| now - 15 * 60_000 + i * 15_000 <= end_ms)
        .unwrap();
    let sum = (30 + 15) * last;
    assert!(dom.contains(r#"class="result-table""#), "{dom}");
    assert!(
        dom.contains(&format!(r#"<td class="value">{sum}</td>"#)),
        "sum {sum} in the table:\n{dom}"
    );

    chrome.screenshot(&url, &artifact("query.png")).await;

    // One click from the series of pod api-1 to its logs over the same range.
    let link = href_of(&dom, "pod-logs").expect("a pod-logs link on the series");
    assert!(link.starts_with("/logs?query="), "{link}");
    let dom = chrome.dump_dom(&v.url(&link)).await;
    assert!(
        dom.contains(r#"class="lines" data-state="done""#)
            || dom.contains(r#"data-state="done" data-count"#),
        "{dom}"
    );
    let stamps = attr_values(&dom, "data-ts");
    assert_eq!(stamps.len(), 20, "the pod's 20 lines:\n{dom}");
    let as_num: Vec<i128> = stamps.iter().map(|s| s.parse().unwrap()).collect();
    assert!(
        as_num.windows(2).all(|w| w[0] > w[1]),
        "newest first: {as_num:?}"
    );
    assert_eq!(count(&dom, "pod=api-1</span>"), 20, "{dom}");
    assert_eq!(count(&dom, "pod=api-2"), 0, "only that pod's lines");
    assert!(
        dom.contains("method=GET path=/items/19 status=200"),
        "{dom}"
    );
    chrome
        .screenshot(&v.url(&link), &artifact("pod-logs.png"))
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_logs_page_shows_the_volume_histogram_or_the_apis_error_and_the_label_browser() {
    let Some(chrome) =
        browser("the_logs_page_shows_the_volume_histogram_or_the_apis_error_and_the_label_browser")
    else {
        return;
    };
    let v = Vigil::server();
    let now = now_ms();
    seed(&v, now).await;
    let end = utc_string(now + 1000);
    let query = r#"{namespace="shop"}"#;
    let dom = chrome
        .dump_dom(&v.url(&format!(
            "/logs?query={}&range_input=15m&end_input={}",
            enc(query),
            enc(&end)
        )))
        .await;
    assert_eq!(
        attr_values(&dom, "data-ts").len(),
        25,
        "both pods' lines:\n{dom}"
    );
    // Each line shows the labels that tell the streams apart; the shared namespace is left out.
    assert_eq!(count(&dom, ">level=error pod=api-2</span>"), 5, "{dom}");
    assert_eq!(count(&dom, ">level=info pod=api-1</span>"), 20, "{dom}");
    // The label browser lists the streams' label names.
    for name in ["level", "namespace", "pod"] {
        assert!(
            dom.contains(&format!(r#"data-label="{name}""#)),
            "label {name}:\n{dom}"
        );
    }
    // The volume histogram asks the API for the metric query; whatever the API answers is
    // what the page must show: bars by level, or the API's own error text.
    let end_ns = (now + 1000) / 1000 * 1000 * 1_000_000;
    let start_ns = end_ns - 15 * 60 * 1_000_000_000;
    let volume = format!("sum by (level) (count_over_time({query} [15s]))");
    let resp = client()
        .get(v.url(&format!(
            "/loki/api/v1/query_range?query={}&start={start_ns}&end={end_ns}&step=15",
            enc(&volume)
        )))
        .send()
        .await
        .unwrap();
    let ok = resp.status().is_success();
    let text = resp.text().await.unwrap();
    if ok {
        assert!(dom.contains(r#"class="volume" data-state="done""#), "{dom}");
        assert!(
            dom.contains(r#"data-level="info""#) && dom.contains(r#"data-level="error""#),
            "{dom}"
        );
        assert!(
            dom.contains("info (20)") && dom.contains("error (5)"),
            "level totals:\n{dom}"
        );
    } else {
        let shown = text
            .trim()
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        assert!(
            dom.contains(&format!("Log volume: {shown}")),
            "the API's error {text:?}:\n{dom}"
        );
    }
    chrome
        .screenshot(
            &v.url(&format!(
                "/logs?query={}&range_input=15m&end_input={}",
                enc(query),
                enc(&end)
            )),
            &artifact("logs.png"),
        )
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_query_shows_the_apis_error_under_the_editor() {
    let Some(chrome) = browser("a_bad_query_shows_the_apis_error_under_the_editor") else {
        return;
    };
    let v = Vigil::server();
    let expr = "sum(rate(http_requests_total[5m])";
    let resp = client()
        .get(v.url(&format!("/api/v1/query?query={}", enc(expr))))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: serde_json::Value = resp.json().await.unwrap();
    let message = body["error"].as_str().unwrap().to_string();
    let dom = chrome
        .dump_dom(&v.url(&format!("/query?g0.expr={}&g0.tab=1", enc(expr))))
        .await;
    assert!(dom.contains(r#"data-state="error""#), "{dom}");
    let shown = message
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    assert!(
        dom.contains(&format!(r#"role="alert">{shown}</div>"#)),
        "the API's text {message:?}:\n{dom}"
    );
    // The message names no position, so the editor marks the parenthesis left open.
    assert!(
        dom.contains(
            r#"<span class="t-aggregation">sum</span><span class="t-paren t-errmark">(</span>"#
        ),
        "{dom}"
    );

    // Loki's messages name the column; the mark goes there (column 18 is the end of input).
    let logql = r#"{namespace="shop""#;
    let resp = client()
        .get(v.url(&format!("/loki/api/v1/query_range?query={}", enc(logql))))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let message = resp.text().await.unwrap();
    let dom = chrome
        .dump_dom(&v.url(&format!("/logs?query={}", enc(logql))))
        .await;
    let shown = message
        .trim()
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    assert!(
        dom.contains(&format!(r#"role="alert">{shown}</div>"#)),
        "the API's text {message:?}:\n{dom}"
    );
    chrome
        .screenshot(
            &v.url(&format!("/logs?query={}", enc(logql))),
            &artifact("bad-query.png"),
        )
        .await;
    if message.contains("line 1, col 18") {
        assert!(
            dom.contains(r#"<span class="t-errmark"> </span>"#),
            "the mark at the end:\n{dom}"
        );
    } else {
        // A message without a position: the editor marks the brace left open.
        assert!(
            dom.contains(r#"<span class="t-brace t-errmark">{</span>"#),
            "{message}:\n{dom}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboards_page_lists_the_shipped_dashboards_and_draws_one() {
    let Some(chrome) = browser("the_dashboards_page_lists_the_shipped_dashboards_and_draws_one")
    else {
        return;
    };
    let v = Vigil::server();
    let now = now_ms();
    let series = |v: f64| -> Vec<(i64, f64)> {
        (0..40)
            .map(|i| (now - 600_000 + i * 15_000 + 123, v + i as f64 / 100.0))
            .collect()
    };
    remote_write(
        &v,
        &[
            (
                vec![
                    ("__name__", "node_uname_info"),
                    ("instance", "n1"),
                    ("nodename", "n1"),
                ],
                series(1.0),
            ),
            (
                vec![("__name__", "node_load1"), ("instance", "n1")],
                series(0.5),
            ),
            (
                vec![("__name__", "node_load5"), ("instance", "n1")],
                series(0.4),
            ),
            (
                vec![("__name__", "node_load15"), ("instance", "n1")],
                series(0.3),
            ),
        ],
    )
    .await;

    let index = chrome.dump_dom(&v.url("/dashboards")).await;
    for title in [
        "Cluster / USE by node",
        "Namespace / pods",
        "Node",
        "Logs / volume by namespace",
    ] {
        assert!(
            index.contains(&format!(">{title}</a>")),
            "{title} missing:\n{index}"
        );
    }

    let url = v.url("/dashboards?d=node&range_input=30m");
    let dom = chrome.dump_dom(&url).await;
    chrome
        .screenshot(&url, &artifact("dashboard-node.png"))
        .await;
    assert!(
        dom.contains(r#"<option value="n1" selected="">n1</option>"#),
        "{dom}"
    );
    let load = dom
        .split(r#"data-panel="2""#)
        .nth(1)
        .and_then(|rest| rest.split("</section>").next())
        .unwrap_or_else(|| panic!("no load panel:\n{dom}"));
    assert_eq!(
        count(load, r#"class="series""#),
        3,
        "three load averages drawn:\n{load}"
    );
    for legend in [">1m<", ">5m<", ">15m<"] {
        assert!(load.contains(legend), "legend {legend}:\n{load}");
    }
    // Panels whose metrics were not written say so instead of failing.
    assert!(dom.contains("No data in this range."), "{dom}");
    assert!(!dom.contains(r#"class="error""#), "{dom}");
}

#[tokio::test]
async fn the_ui_is_served_with_types_and_caching_and_weighs_under_a_mebibyte() {
    let v = Vigil::server();
    let c = client();
    let resp = c.get(v.url("/")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/html; charset=utf-8");
    assert_eq!(resp.headers()["cache-control"], "no-cache");
    let etag = resp.headers()["etag"].to_str().unwrap().to_string();
    let html = resp.text().await.unwrap();
    let resp = c
        .get(v.url("/graph"))
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 304);

    // Crawl every asset the page loads, following module imports, as a browser would.
    let mut total = html.len();
    let mut queue: Vec<String> = attr_values(&html, "href")
        .into_iter()
        .chain(attr_values(&html, "src"))
        .filter(|p| p.starts_with("/static/"))
        .collect();
    let mut seen = std::collections::HashSet::new();
    while let Some(path) = queue.pop() {
        if !seen.insert(path.clone()) {
            continue;
        }
        let resp = c.get(v.url(&path)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        assert!(
            resp.headers()["cache-control"]
                .to_str()
                .unwrap()
                .contains("immutable"),
            "{path}"
        );
        let kind = resp.headers()["content-type"].to_str().unwrap().to_string();
        let want = match path.rsplit('.').next().unwrap() {
            "js" => "text/javascript; charset=utf-8",
            "css" => "text/css; charset=utf-8",
            "svg" => "image/svg+xml",
            other => panic!("unexpected asset type {other}"),
        };
        assert_eq!(kind, want, "{path}");
        let body = resp.text().await.unwrap();
        total += body.len();
        if path.ends_with(".js") {
            let dir = &path[..path.rfind('/').unwrap()];
            for line in body.lines().filter(|l| l.starts_with("import ")) {
                let spec = line.split('"').nth(1).unwrap();
                queue.push(format!("{dir}/{}", spec.trim_start_matches("./")));
            }
        }
    }
    assert!(seen.len() >= 10, "crawled {seen:?}");
    assert!(total < 1 << 20, "the UI weighs {total} bytes");
}
