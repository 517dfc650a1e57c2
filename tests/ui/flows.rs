//! The flows between pages, driven by clicks through WebDriver: from a pod's series on the
//! Query page to that pod's logs, from a log line to its pod's CPU and memory graphs, and the
//! Logs page's live tail over the `/loki/api/v1/tail` websocket (new lines on top, the page
//! bounded by the limit, the server's dropped entries counted, stop).

use super::chromium::artifact;
use super::spawn::*;
use super::webdriver::Driver;
use serde_json::Value;
use std::time::Duration;

/// The `.log-line` texts in page order, as a JSON array.
const LINE_TEXTS: &str =
    "return [...document.querySelectorAll('.log-line .text')].map(e => e.textContent)";

/// A string as a JavaScript literal.
fn js(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

/// A value-axis label (`500m`, `209.8M`, `2`) as a number.
pub fn si_value(label: &str) -> f64 {
    let (num, scale) = match label.chars().last() {
        Some('m') => (&label[..label.len() - 1], 1e-3),
        Some('k') => (&label[..label.len() - 1], 1e3),
        Some('M') => (&label[..label.len() - 1], 1e6),
        Some('G') => (&label[..label.len() - 1], 1e9),
        _ => (label, 1.0),
    };
    num.parse::<f64>()
        .unwrap_or_else(|_| panic!("not an axis value: {label:?}"))
        * scale
}

async fn location(d: &Driver) -> String {
    d.script("return location.pathname + location.search")
        .await
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn clicking_a_pods_series_opens_that_pods_logs_over_the_same_range() {
    let Some(d) =
        Driver::start("clicking_a_pods_series_opens_that_pods_logs_over_the_same_range").await
    else {
        return;
    };
    let v = Vigil::server();
    let now = now_ms();
    super::seed(&v, now).await;
    let end = utc_string(now);
    d.goto(&v.url(&format!(
        "/query?g0.expr={}&g0.tab=0&g0.range_input=15m&g0.end_input={}",
        enc("rate(http_requests_total[1m])"),
        enc(&end)
    )))
    .await;
    d.wait_until(
        "a legend entry per pod",
        "return document.querySelectorAll('.legend-item .pod-logs').length === 2",
    )
    .await;
    // The legend entry of pod api-1, whichever colour it got.
    let index = d
        .script(
            r#"return [...document.querySelectorAll('.legend-item')]
                .find(e => e.textContent.includes('pod="api-1"')).dataset.series"#,
        )
        .await;
    let index = index.as_str().expect("api-1 in the legend").to_string();
    let link = d
        .wait_for(&format!(".legend-item[data-series=\"{index}\"] .pod-logs"))
        .await;
    d.click(&link).await;

    d.wait_until(
        "the Logs page answered",
        "return location.pathname === '/logs' && document.querySelector('.lines[data-state=done]') !== null",
    )
    .await;
    let here = location(&d).await;
    assert!(here.contains("range_input=15m"), "same range: {here}");
    assert!(
        here.contains(&format!(
            "end_input={}",
            end.replace(' ', "+").replace(':', "%3A")
        )),
        "same end {end}: {here}"
    );
    let streams = d
        .script("return [...document.querySelectorAll('.log-line .stream')].map(e => e.title)")
        .await;
    let streams: Vec<String> = serde_json::from_value(streams).unwrap();
    assert_eq!(streams.len(), 20, "the pod's 20 lines: {streams:?}");
    assert!(
        streams.iter().all(|s| s.contains("pod=api-1")),
        "only pod api-1: {streams:?}"
    );
    let texts: Vec<String> = serde_json::from_value(d.script(LINE_TEXTS).await).unwrap();
    assert!(
        texts[0].contains("path=/items/19 "),
        "newest first: {texts:?}"
    );
    d.screenshot(&artifact("flow-series-to-pod-logs.png")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_log_lines_metrics_link_draws_its_pods_cpu_and_memory() {
    let Some(d) = Driver::start("a_log_lines_metrics_link_draws_its_pods_cpu_and_memory").await
    else {
        return;
    };
    let v = Vigil::server();
    let now = now_ms();
    super::seed(&v, now).await;
    // The container metrics the agent's cAdvisor collector writes, for both pods.
    let start = now - 15 * 60_000;
    let samples = |f: &dyn Fn(i64) -> f64| -> Vec<(i64, f64)> {
        (0..60).map(|i| (start + i * 15_000, f(i))).collect()
    };
    let container = |name: &'static str, pod: &'static str| {
        vec![
            ("__name__", name),
            ("namespace", "shop"),
            ("pod", pod),
            ("container", "app"),
        ]
    };
    remote_write(
        &v,
        &[
            (
                container("container_cpu_usage_seconds_total", "api-1"),
                samples(&|i| i as f64 * 7.5),
            ),
            (
                container("container_memory_working_set_bytes", "api-1"),
                samples(&|i| (200 << 20) as f64 + i as f64 * 4096.0),
            ),
            (
                container("container_cpu_usage_seconds_total", "api-2"),
                samples(&|i| i as f64 * 75.0),
            ),
            (
                container("container_memory_working_set_bytes", "api-2"),
                samples(&|_| (50 << 20) as f64),
            ),
        ],
    )
    .await;
    let end = utc_string(now);
    d.goto(&v.url(&format!(
        "/logs?query={}&range_input=15m&end_input={}",
        enc(r#"{namespace="shop", pod="api-1"}"#),
        enc(&end)
    )))
    .await;
    d.click(
        &d.wait_for(".lines[data-state=done] .log-line .expand")
            .await,
    )
    .await;
    let link = d.wait_for(".log-line .line-details .pod-metrics").await;
    assert_eq!(d.text(&link).await, "metrics of pod api-1");
    d.click(&link).await;

    d.wait_until(
        "both panels drew a graph",
        "return location.pathname === '/query'
            && document.querySelectorAll('.panel .result[data-state=done] svg.graph path.series').length === 2",
    )
    .await;
    let here = location(&d).await;
    assert!(
        here.contains("g0.range_input=15m") && here.contains("g1.range_input=15m"),
        "same range: {here}"
    );
    let legends: Vec<String> = serde_json::from_value(
        d.script("return [...document.querySelectorAll('.panel')].map(p => p.querySelector('.legend-box').textContent)")
            .await,
    )
    .unwrap();
    assert_eq!(legends, [r#"{container="app"}"#, r#"{container="app"}"#]);
    // The graphs are the pod's own: 7.5 CPU-seconds per 15s is half a core and its working set
    // about 210 MB, which the value axes show (api-2 runs 5 cores in 50 MiB; both pods summed
    // would be 5.5 cores and 262 MB).
    let ticks: Vec<Vec<String>> = serde_json::from_value(
        d.script("return [...document.querySelectorAll('.panel')].map(p => [...p.querySelectorAll('svg.graph text.tick[text-anchor=end]')].map(t => t.textContent))")
            .await,
    )
    .unwrap();
    let cpu: Vec<f64> = ticks[0].iter().map(|t| si_value(t)).collect();
    assert!(
        cpu.iter().all(|&c| (0.0..1.0).contains(&c)) && cpu.len() > 2,
        "CPU axis around half a core: {ticks:?}"
    );
    let distinct: std::collections::HashSet<_> = ticks[1].iter().collect();
    assert_eq!(
        distinct.len(),
        ticks[1].len(),
        "every tick reads differently: {ticks:?}"
    );
    let memory: Vec<f64> = ticks[1].iter().map(|t| si_value(t)).collect();
    assert!(
        memory.iter().all(|&m| (190e6..230e6).contains(&m)) && memory.len() > 2,
        "memory axis around 210 MB: {ticks:?}"
    );
    d.screenshot(&artifact("flow-log-line-to-pod-metrics.png"))
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_live_tail_puts_pushed_lines_on_top_bounds_the_page_and_counts_drops() {
    let Some(d) =
        Driver::start("the_live_tail_puts_pushed_lines_on_top_bounds_the_page_and_counts_drops")
            .await
    else {
        return;
    };
    let v = Vigil::server();
    super::seed(&v, now_ms()).await;
    d.goto(&v.url(&format!(
        "/logs?query={}&limit=100",
        enc(r#"{namespace="shop"}"#)
    )))
    .await;
    d.wait_until(
        "the 25 seeded lines",
        "return document.querySelectorAll('.lines[data-state=done] .log-line').length === 25",
    )
    .await;
    d.click(&d.wait_for(".tail-toggle").await).await;
    d.wait_for(".tail-status[data-state=live]").await;

    let stream = [("namespace", "shop"), ("pod", "api-1"), ("level", "info")];
    let fresh = "fresh line pushed after the tail started";
    push_logs(&v, &stream, &[(now_ms() * 1_000_000, fresh.to_string())]).await;
    d.wait_until(
        "the pushed line on top",
        &format!(
            "return document.querySelector('.log-line .text').textContent === {}",
            js(fresh)
        ),
    )
    .await;
    let texts: Vec<String> = serde_json::from_value(d.script(LINE_TEXTS).await).unwrap();
    assert_eq!(texts.len(), 26, "{texts:?}");
    // The tail's line shows the labels its selector leaves open, as the queried lines do.
    let labels = d
        .script("return document.querySelector('.log-line .stream').textContent")
        .await;
    assert_eq!(labels, "level=info pod=api-1");
    d.screenshot(&artifact("flow-live-tail.png")).await;

    // One push of 1500 lines: the server buffers 1000 for this reader and drops the rest,
    // which the page counts; the page keeps only the newest 100 (the limit).
    let base = now_ms() * 1_000_000;
    let burst: Vec<(i64, String)> = (0..1500)
        .map(|i| (base + i * 1000, format!("burst {i}")))
        .collect();
    push_logs(&v, &stream, &burst).await;
    d.wait_until(
        "the newest buffered burst line on top",
        "return document.querySelector('.log-line .text').textContent === 'burst 999'",
    )
    .await;
    d.wait_until(
        "500 drops counted",
        "return document.querySelector('.tail-status').dataset.dropped === '500'",
    )
    .await;
    let status = d.text(&d.wait_for(".tail-status").await).await;
    assert!(
        status.contains("1001 new lines") && status.contains("500 dropped"),
        "{status}"
    );
    let texts: Vec<String> = serde_json::from_value(d.script(LINE_TEXTS).await).unwrap();
    let want: Vec<String> = (900..1000).rev().map(|i| format!("burst {i}")).collect();
    assert_eq!(texts, want, "the newest 100, newest first");
    d.screenshot(&artifact("flow-live-tail-burst.png")).await;

    // Stopped, the page takes no more lines.
    d.click(&d.wait_for(".tail-toggle").await).await;
    d.wait_for(".tail-status[data-state=stopped]").await;
    push_logs(
        &v,
        &stream,
        &[(now_ms() * 1_000_000, "after stop".to_string())],
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let top = d
        .script("return document.querySelector('.log-line .text').textContent")
        .await;
    assert_eq!(top, "burst 999");
}
