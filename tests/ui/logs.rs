//! The Logs page under the mouse and keyboard, through WebDriver: the LogQL editor completing
//! label names and values from the Loki API, a line expanding to the fields parsed from it
//! (JSON or logfmt, none for a plain line), the label browser building the selector by
//! clicking, the volume histogram's bars adding up to the lines shown, and Back returning to the
//! previous selector.

use super::chromium::artifact;
use super::query::{editor_value, wait_options, ARROW_DOWN, ENTER, TAB};
use super::spawn::*;
use super::webdriver::Driver;
use serde_json::Value;

/// The page's current `query` URL parameter.
async fn query_param(d: &Driver) -> String {
    let v = d
        .script("return new URLSearchParams(location.search).get('query')")
        .await;
    v.as_str().unwrap_or_default().to_string()
}

/// Waits for the lines of a finished query to number `n`.
async fn wait_lines(d: &Driver, what: &str, n: usize) {
    d.wait_until(
        what,
        &format!(
            "return document.querySelectorAll('.lines[data-state=done] .log-line').length === {n}"
        ),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_logql_editor_completes_label_names_and_values_from_the_loki_api() {
    let Some((d, _server)) = super::seeded_page(
        "the_logql_editor_completes_label_names_and_values_from_the_loki_api",
        "/logs?range_input=15m",
    )
    .await
    else {
        return;
    };
    let input = d.wait_for(".editor-input[data-language=logql]").await;

    // Inside `{`: the streams' label names, which exist only in the pushed data.
    d.type_into(&input, "{").await;
    wait_options(
        &d,
        "the label names",
        &[("label", "level"), ("label", "namespace"), ("label", "pod")],
    )
    .await;
    d.screenshot(&artifact("logql-completion-names.png")).await;
    d.type_into(&input, "na").await;
    wait_options(&d, "namespace alone", &[("label", "namespace")]).await;
    d.type_into(&input, TAB).await;
    assert_eq!(editor_value(&d).await, "{namespace");

    // After a bare `=`: the label's values, inserted quoted.
    d.type_into(&input, "=").await;
    wait_options(&d, "the namespace's values", &[("value", "shop")]).await;
    d.type_into(&input, ENTER).await;
    assert_eq!(editor_value(&d).await, r#"{namespace="shop""#);

    // After a comma, names again; after `="`, the values, the second picked by the arrow key
    // and the quote closed for us.
    d.type_into(&input, ", po").await;
    wait_options(&d, "pod alone", &[("label", "pod")]).await;
    d.type_into(&input, ENTER).await;
    d.type_into(&input, "=\"").await;
    wait_options(
        &d,
        "the pod values",
        &[("value", "api-1"), ("value", "api-2")],
    )
    .await;
    d.screenshot(&artifact("logql-completion-values.png")).await;
    d.type_into(&input, &format!("{ARROW_DOWN}{ENTER}")).await;
    let typed = r#"{namespace="shop", pod="api-2""#;
    assert_eq!(editor_value(&d).await, typed);

    // With the list closed, Enter runs the completed query: pod api-2's five lines.
    d.type_into(&input, &format!("}}{ENTER}")).await;
    wait_lines(&d, "pod api-2's five lines", 5).await;
    assert_eq!(query_param(&d).await, format!("{typed}}}"));
    let streams: Vec<String> = serde_json::from_value(
        d.script("return [...document.querySelectorAll('.log-line .stream')].map(e => e.title)")
            .await,
    )
    .unwrap();
    assert!(
        streams.iter().all(|s| s.contains("pod=api-2")),
        "{streams:?}"
    );
}

/// The `[name, value]` rows of the expanded line's fields (its labels left out).
const FIELDS: &str = "return [...document.querySelectorAll('.log-line .line-details tr.field')]
    .map(r => [r.querySelector('th').textContent, r.querySelector('td').textContent])";

#[tokio::test(flavor = "multi_thread")]
async fn a_json_or_logfmt_line_expands_to_its_fields_and_a_plain_line_has_none() {
    let Some(d) =
        Driver::start("a_json_or_logfmt_line_expands_to_its_fields_and_a_plain_line_has_none")
            .await
    else {
        return;
    };
    let v = Vigil::server();
    let now_ns = now_ms() * 1_000_000;
    let lines = [
        r#"{"msg":"upstream timeout","attempt":3,"http":{"status":504,"path":"/cart"},"tags":["a","b"]}"#,
        r#"level=warn msg="slow \"cart\" query" took=1.5s db.host=pg-0"#,
        "connection reset by peer",
    ];
    // Oldest first, so the page (newest first) shows them in reverse.
    let pushed: Vec<(i64, String)> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| (now_ns - (60 - i as i64 * 10) * 1_000_000_000, l.to_string()))
        .collect();
    push_logs(&v, &[("namespace", "shop"), ("pod", "cart-0")], &pushed).await;
    d.goto(&v.url(&format!(
        "/logs?query={}&range_input=15m",
        enc(r#"{pod="cart-0"}"#)
    )))
    .await;
    wait_lines(&d, "the three lines", 3).await;
    let expand = d.find_all(".log-line .expand").await;
    assert_eq!(expand.len(), 3);

    // The JSON line, shown last: nested keys joined with `_`, as Loki's `| json` names them.
    d.click(&expand[2]).await;
    d.wait_for(".log-line .line-details").await;
    let fields: Vec<(String, String)> = serde_json::from_value(d.script(FIELDS).await).unwrap();
    let want = [
        ("msg", "upstream timeout"),
        ("attempt", "3"),
        ("http_status", "504"),
        ("http_path", "/cart"),
        ("tags", r#"["a","b"]"#),
    ];
    assert_eq!(
        fields,
        want.map(|(k, v)| (k.to_string(), v.to_string())),
        "the JSON line's fields"
    );
    // Its labels are listed beside the fields.
    let labels = d
        .script("return [...document.querySelectorAll('.log-line .line-details tr.label th')].map(e => e.textContent)")
        .await;
    assert_eq!(labels, serde_json::json!(["namespace", "pod"]));
    d.screenshot(&artifact("log-line-json-fields.png")).await;
    // A second click folds it again.
    d.click(&expand[2]).await;
    d.wait_until(
        "the details folded",
        "return document.querySelectorAll('.line-details').length === 0",
    )
    .await;

    // The logfmt line: quoted values unescaped, a dotted key as a label name.
    d.click(&expand[1]).await;
    d.wait_for(".log-line .line-details").await;
    let fields: Vec<(String, String)> = serde_json::from_value(d.script(FIELDS).await).unwrap();
    let want = [
        ("level", "warn"),
        ("msg", r#"slow "cart" query"#),
        ("took", "1.5s"),
        ("db_host", "pg-0"),
    ];
    assert_eq!(
        fields,
        want.map(|(k, v)| (k.to_string(), v.to_string())),
        "the logfmt line's fields"
    );
    d.click(&expand[1]).await;

    // The plain line: no field rows, and the page says why.
    d.click(&expand[0]).await;
    let note = d.wait_for(".log-line .line-details .no-fields").await;
    assert_eq!(d.script(FIELDS).await, Value::Array(vec![]));
    assert_eq!(
        d.text(&note).await,
        "No fields: the line is neither JSON nor logfmt."
    );
    let expanded = d
        .script("return [...document.querySelectorAll('.log-line .expand')].map(b => b.getAttribute('aria-expanded'))")
        .await;
    assert_eq!(expanded, serde_json::json!(["true", "false", "false"]));
    d.screenshot(&artifact("log-line-plain.png")).await;
}

/// The histogram's bars as `[level, count]`, read from each bar's title (`<time> · level: n`).
const BARS: &str = "return [...document.querySelectorAll('.volume[data-state=done] rect.bar')]
    .map(b => [b.dataset.level, Number(b.querySelector('title').textContent.split(': ').pop())])";

/// Total lines per level over the histogram's bars.
async fn bar_totals(d: &Driver) -> std::collections::BTreeMap<String, f64> {
    let bars: Vec<(String, f64)> = serde_json::from_value(d.script(BARS).await).unwrap();
    let mut totals = std::collections::BTreeMap::new();
    for (level, n) in bars {
        *totals.entry(level).or_insert(0.0) += n;
    }
    totals
}

#[tokio::test(flavor = "multi_thread")]
async fn the_label_browser_builds_the_selector_by_clicking_and_the_volume_bars_count_the_lines() {
    let Some((d, _server)) = super::seeded_page(
        "the_label_browser_builds_the_selector_by_clicking_and_the_volume_bars_count_the_lines",
        "/logs?range_input=15m",
    )
    .await
    else {
        return;
    };
    d.wait_for(".lines .hint").await;

    // Clicking a label lists its values; clicking a value selects it and runs the query.
    d.click(&d.wait_for(".label-group[data-label=pod] .label-name").await)
        .await;
    let chip = d
        .wait_for(".label-group[data-label=pod] .chip[data-value=api-1]")
        .await;
    let values = d
        .script("return [...document.querySelectorAll('.label-group[data-label=pod] .chip')].map(c => c.dataset.value)")
        .await;
    assert_eq!(values, serde_json::json!(["api-1", "api-2"]));
    d.click(&chip).await;
    wait_lines(&d, "pod api-1's lines", 20).await;
    assert_eq!(editor_value(&d).await, r#"{pod="api-1"}"#);
    assert_eq!(query_param(&d).await, r#"{pod="api-1"}"#);
    d.wait_for(".volume[data-state=done] rect.bar").await;
    let totals = bar_totals(&d).await;
    assert_eq!(
        totals,
        std::collections::BTreeMap::from([("info".to_string(), 20.0)]),
        "one bar per step, adding up to the 20 info lines"
    );

    // A second value of the same label widens the selector to both.
    d.click(
        &d.wait_for(".label-group[data-label=pod] .chip[data-value=api-2]")
            .await,
    )
    .await;
    wait_lines(&d, "both pods' lines", 25).await;
    assert_eq!(editor_value(&d).await, r#"{pod=~"api-1|api-2"}"#);
    d.wait_until(
        "both levels' bars",
        "return new Set([...document.querySelectorAll('.volume[data-state=done] rect.bar')].map(b => b.dataset.level)).size === 2",
    )
    .await;
    let totals = bar_totals(&d).await;
    assert_eq!(
        totals,
        std::collections::BTreeMap::from([("error".to_string(), 5.0), ("info".to_string(), 20.0)])
    );
    let selected = d
        .script("return [...document.querySelectorAll('.label-group[data-label=pod] .chip.selected')].map(c => c.dataset.value)")
        .await;
    assert_eq!(selected, serde_json::json!(["api-1", "api-2"]));
    let legend = d
        .script("return document.querySelector('.volume .legend').textContent")
        .await;
    let legend = legend.as_str().unwrap_or_default();
    assert!(
        legend.contains("info (20)") && legend.contains("error (5)"),
        "{legend}"
    );
    d.screenshot(&artifact("logs-label-browser.png")).await;

    // Back returns to the one-pod selector and its lines.
    d.back().await;
    d.wait_until(
        "pod api-1's selector again",
        r#"return document.querySelector('.editor-input').value === '{pod="api-1"}'"#,
    )
    .await;
    wait_lines(&d, "pod api-1's lines again", 20).await;
}
