//! The interactive pages, driven through WebDriver: typing a query, a shared URL reloaded,
//! silencing a firing alert from the Alerts page and expiring the silence; and the Rules page,
//! with healthy rules and with failing ones showing their last error.

use super::chromium::{artifact, browser};
use super::spawn::*;
use super::webdriver::Driver;

/// WebDriver's key code for Enter.
const ENTER: &str = "\u{E007}";

#[tokio::test(flavor = "multi_thread")]
async fn typing_a_query_draws_a_graph_and_its_url_reproduces_the_view() {
    let Some((d, v)) = super::seeded_page(
        "typing_a_query_draws_a_graph_and_its_url_reproduces_the_view",
        "/query",
    )
    .await
    else {
        return;
    };
    let input = d.wait_for(".editor-input").await;
    d.type_into(
        &input,
        &format!("sum by (pod) (rate(http_requests_total[5m])){ENTER}"),
    )
    .await;
    d.wait_for("svg.graph path.series").await;
    d.wait_until(
        "two legend entries, one per pod",
        "return document.querySelectorAll('.legend-item').length === 2",
    )
    .await;
    let legend = d.script("return [...document.querySelectorAll('.legend-labels')].map(e => e.textContent).join('|')").await;
    let legend = legend.as_str().unwrap_or_default().to_string();
    assert!(
        legend.contains(r#"pod="api-1""#) && legend.contains(r#"pod="api-2""#),
        "{legend}"
    );
    d.screenshot(&artifact("typed-query.png")).await;

    // The URL now holds the query: opening it fresh draws the same series.
    let url = d.script("return location.href").await;
    let url = url.as_str().expect("href").to_string();
    assert!(url.contains("g0.expr="), "{url}");
    d.goto(&v.url("/alerts")).await;
    d.goto(&url).await;
    d.wait_for("svg.graph path.series").await;
    d.wait_until(
        "the reloaded view has the same legend",
        &format!(
            "return [...document.querySelectorAll('.legend-labels')].map(e => e.textContent).join('|') === {}",
            serde_json::Value::String(legend.clone())
        ),
    )
    .await;
}

/// A server whose one rule fires at once and whose Alertmanager groups by alertname.
fn alerting_server() -> Vigil {
    Vigil::server_with(|dir| {
        let rules = dir.join("rules.yml");
        std::fs::write(
            &rules,
            "groups:\n- name: ui\n  interval: 1s\n  rules:\n  - alert: DiskFilling\n    expr: vector(1)\n    labels:\n      severity: page\n      instance: node-1\n    annotations:\n      summary: disk on node-1 fills within 4h\n  - record: job:up:sum\n    expr: vector(3)\n",
        )
        .unwrap();
        let am = dir.join("alertmanager.yml");
        std::fs::write(
            &am,
            "route:\n  receiver: oncall\n  group_by: [alertname]\n  group_wait: 0s\nreceivers:\n- name: oncall\n",
        )
        .unwrap();
        vec![
            format!("--rules.file={}", rules.display()),
            format!("--alertmanager.config.file={}", am.display()),
            "--rules.evaluation-interval=1s".into(),
        ]
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_firing_alert_is_silenced_from_the_alerts_page_and_the_silence_expired() {
    let Some(d) =
        Driver::start("a_firing_alert_is_silenced_from_the_alerts_page_and_the_silence_expired")
            .await
    else {
        return;
    };
    let v = alerting_server();
    d.goto(&v.url("/alerts")).await;
    // The rule fires within a second; the page shows what it found when loaded, so reload
    // until the group is there.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while d.find_all(".alert-groups tr.alert").await.is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "no firing alert; log:\n{}",
            v.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        d.refresh().await;
    }
    let group = d.wait_for(".alert-groups .group").await;
    let text = d.text(&group).await;
    assert!(
        text.contains("oncall") && text.contains(r#"alertname="DiskFilling""#),
        "{text}"
    );
    assert!(text.contains("disk on node-1 fills within 4h"), "{text}");

    // "Silence" prefills the matchers with the alert's labels.
    d.click(&d.wait_for(".alert-groups .silence-alert").await)
        .await;
    let prefilled = d
        .script("return document.querySelector('.silence-matchers').value")
        .await;
    let prefilled = prefilled.as_str().unwrap_or_default().to_string();
    assert!(
        prefilled.contains(r#"alertname="DiskFilling""#)
            && prefilled.contains(r#"instance="node-1""#),
        "{prefilled}"
    );
    let author = d.wait_for(".silence-author").await;
    d.clear(&author).await;
    d.type_into(&author, "ui-test").await;
    d.type_into(&d.wait_for(".silence-comment").await, "disk being replaced")
        .await;
    d.click(&d.wait_for(".silence-form button[type=submit]").await)
        .await;
    d.wait_for(".silences tr.silence-active").await;
    d.wait_for(".alert-groups tr.alert-suppressed").await;
    d.screenshot(&artifact("alerts-silenced.png")).await;

    // The API agrees: one active silence, by the author, matching the alert.
    let silences: serde_json::Value = client()
        .get(v.url("/api/v2/silences"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let s = &silences[0];
    assert_eq!(s["status"]["state"], "active", "{silences}");
    assert_eq!(s["createdBy"], "ui-test", "{silences}");
    assert_eq!(s["comment"], "disk being replaced", "{silences}");

    d.click(&d.wait_for(".silences .expire-silence").await)
        .await;
    d.wait_for(".silences tr.silence-expired").await;
    d.wait_for(".alert-groups tr.alert-active").await;
    d.screenshot(&artifact("alerts-silence-expired.png")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_rules_page_lists_each_rule_with_its_health() {
    let Some(chrome) = browser("the_rules_page_lists_each_rule_with_its_health") else {
        return;
    };
    let v = alerting_server();
    // Let the group evaluate once so health and last evaluation are filled in.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let dom = chrome.dump_dom(&v.url("/rules")).await;
    assert!(dom.contains("alert: DiskFilling"), "{dom}");
    assert!(dom.contains("record: job:up:sum"), "{dom}");
    assert_eq!(
        dom.matches(r#"<span class="badge badge-ok">ok</span>"#)
            .count(),
        2,
        "{dom}"
    );
    assert!(
        dom.contains(r#"<span class="badge badge-firing">firing</span>"#),
        "{dom}"
    );
    assert!(
        !dom.contains("never"),
        "every rule has been evaluated:\n{dom}"
    );
    chrome
        .screenshot(&v.url("/rules"), &artifact("rules.png"))
        .await;
}

/// Render time: from the browser receiving the last byte of the range query's answer to the
/// frame after the graph is drawn, for 200 series × 240 points, median of 5 loads. A
/// measurement, not a check: `cargo test --test ui -- --ignored --nocapture render_time`.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a measurement; run with --ignored --nocapture"]
async fn render_time_of_a_range_query_result() {
    let Some(d) = Driver::start("render_time_of_a_range_query_result").await else {
        return;
    };
    let v = Vigil::server();
    let now = now_ms();
    let pods: Vec<String> = (0..200).map(|i| format!("pod-{i:03}")).collect();
    let series: Vec<TestSeries> = pods
        .iter()
        .enumerate()
        .map(|(i, pod)| {
            (
                vec![("__name__", "cpu_seconds_total"), ("pod", pod.as_str())],
                (0..240)
                    .map(|k| {
                        (
                            now - 3_600_000 + k * 15_000 + 37,
                            (k * (i as i64 + 1)) as f64,
                        )
                    })
                    .collect(),
            )
        })
        .collect();
    remote_write(&v, &series).await;
    let url = v.url("/query?g0.expr=rate(cpu_seconds_total%5B1m%5D)&g0.tab=0&g0.range_input=1h");
    let mut samples = Vec::new();
    for _ in 0..5 {
        d.goto(&url).await;
        d.wait_until(
            "the result painted",
            "return performance.getEntriesByName('vigil:result-painted').length > 0",
        )
        .await;
        let ms = d
            .script(
                "const api = performance.getEntriesByType('resource').filter(e => e.name.includes('/api/v1/query_range'));
                 const mark = performance.getEntriesByName('vigil:result-painted')[0];
                 return mark.startTime - api[api.length - 1].responseEnd;",
            )
            .await;
        samples.push(ms.as_f64().expect("a number"));
    }
    samples.sort_by(f64::total_cmp);
    let paths = d.find_all("svg.graph path.series").await.len();
    assert_eq!(paths, 200, "every series drawn");
    println!(
        "render time (API answer received → graph painted), 200 series × 240 points: median {:.0} ms (min {:.0}, max {:.0})",
        samples[2], samples[0], samples[4]
    );
}

/// Two recording rules that fail at every evaluation, and one that does not: the first writes
/// two series that become one after the rule names them, the second makes the engine refuse
/// its own `label_replace` result.
fn failing_rules_server() -> Vigil {
    Vigil::server_with(|dir| {
        let rules = dir.join("rules.yml");
        std::fs::write(
            &rules,
            r#"groups:
- name: failing
  interval: 1s
  rules:
  - record: shop:requests:dup
    expr: '{__name__=~"shop_requests_a|shop_requests_b"}'
  - record: shop:relabelled
    expr: 'label_replace(vector(1) or label_replace(vector(2), "a", "b", "", ""), "a", "", "", "")'
  - record: shop:ok
    expr: vector(1)
"#,
        )
        .unwrap();
        vec![
            format!("--rules.file={}", rules.display()),
            "--rules.evaluation-interval=1s".into(),
        ]
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_rule_shows_health_err_and_its_last_error() {
    let Some(d) = Driver::start("a_failing_rule_shows_health_err_and_its_last_error").await else {
        return;
    };
    let v = failing_rules_server();
    let now = now_ms();
    let samples: Vec<(i64, f64)> = (0..4).map(|i| (now - 45_000 + i * 15_000, 1.0)).collect();
    remote_write(
        &v,
        &[
            (
                vec![("__name__", "shop_requests_a"), ("job", "shop")],
                samples.clone(),
            ),
            (
                vec![("__name__", "shop_requests_b"), ("job", "shop")],
                samples,
            ),
        ],
    )
    .await;
    d.goto(&v.url("/rules")).await;
    // The page shows what the API said when it loaded; reload until both rules have failed.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while d.find_all("tr.rule-err").await.len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the rules never failed; log:\n{}",
            v.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        d.refresh().await;
    }
    let api: serde_json::Value = client()
        .get(v.url("/api/v1/rules"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rules = api["data"]["groups"][0]["rules"].as_array().unwrap();
    let last_error = |name: &str| -> String {
        let r = rules.iter().find(|r| r["name"] == name).unwrap();
        assert_eq!(r["health"], "err", "{r}");
        r["lastError"].as_str().unwrap().to_string()
    };
    let dup = last_error("shop:requests:dup");
    assert!(
        dup.contains("same labelset after applying rule labels"),
        "{dup}"
    );
    let relabelled = last_error("shop:relabelled");
    assert!(
        relabelled.contains("vector cannot contain metrics with the same labelset"),
        "{relabelled}"
    );

    // Each row: its health badge and, for the failing ones, the API's last error word for word.
    let rows: Vec<(String, String, Option<String>)> = serde_json::from_value(
        d.script(
            "return [...document.querySelectorAll('tr.rule')].map(r => [r.dataset.rule,
                r.querySelectorAll('td')[1].textContent,
                r.querySelector('.error') ? r.querySelector('.error').textContent : null])",
        )
        .await,
    )
    .unwrap();
    assert_eq!(
        rows,
        [
            (
                "shop:requests:dup".to_string(),
                "err".to_string(),
                Some(dup)
            ),
            (
                "shop:relabelled".into(),
                "err".into(),
                Some(relabelled.clone())
            ),
            ("shop:ok".into(), "ok".into(), None),
        ]
    );
    d.screenshot(&artifact("rules-failing.png")).await;

    // The failing expression's link opens it on the Query page, which shows the engine's error
    // under the editor, as the query API words it.
    d.click(
        &d.wait_for(r#"tr[data-rule="shop:relabelled"] a.expr"#)
            .await,
    )
    .await;
    let shown = d.wait_for(".panel .editor-error:not([hidden])").await;
    let shown = d.text(&shown).await;
    let expr = rules
        .iter()
        .find(|r| r["name"] == "shop:relabelled")
        .unwrap()["query"]
        .as_str()
        .unwrap()
        .to_string();
    let answer: serde_json::Value = client()
        .get(v.url(&format!("/api/v1/query?query={}", enc(&expr))))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["status"], "error", "{answer}");
    assert_eq!(shown, answer["error"].as_str().unwrap());
    assert!(relabelled.contains(&shown), "{relabelled} vs {shown}");
}
