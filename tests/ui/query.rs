//! The Query page's editor and graph under the mouse and keyboard, through WebDriver:
//! completion of metric names, label names, label values and functions from the API; the
//! hover tooltip with each series' label set and value; the stacked/lines toggle; and zoom by
//! dragging across the plot, which shrinks the range in the URL and in the range inputs.

use super::chromium::artifact;
use super::spawn::*;
use super::webdriver::Driver;
use serde_json::Value;

pub const TAB: &str = "\u{E004}";
pub const ENTER: &str = "\u{E007}";
pub const ARROW_DOWN: &str = "\u{E015}";

/// The open completion list as `[kind, text]` pairs, or null while it is hidden.
pub const OPTIONS: &str = "const l = document.querySelector('.completions');
    return l.hidden ? null : [...l.querySelectorAll('li')].map(li => [li.firstChild.className.replace('kind kind-', ''), li.lastChild.textContent])";

/// The graph over the seeded counters' per-second rates: 2/s for pod api-1, 1/s for api-2.
const RATE: &str = "rate(http_requests_total[1m])";

pub async fn editor_value(d: &Driver) -> String {
    let v = d
        .script("return document.querySelector('.editor-input').value")
        .await;
    v.as_str().unwrap_or_default().to_string()
}

/// Waits until the completion list offers exactly `want` (as `[kind, text]`), and returns it.
pub async fn wait_options(d: &Driver, what: &str, want: &[(&str, &str)]) {
    let want: Vec<Value> = want
        .iter()
        .map(|(k, t)| Value::from(vec![*k, *t]))
        .collect();
    d.wait_until(
        what,
        &format!(
            "const got = (() => {{ {OPTIONS} }})(); return JSON.stringify(got) === {}",
            Value::String(Value::from(want).to_string())
        ),
    )
    .await;
}

/// The page's current `g0.<key>` URL parameter.
async fn param(d: &Driver, key: &str) -> String {
    let v = d
        .script(&format!(
            "return new URLSearchParams(location.search).get('g0.{key}')"
        ))
        .await;
    v.as_str().unwrap_or_default().to_string()
}

/// Milliseconds in a duration the UI writes ("7m30s", "1h", "250ms").
pub fn duration_ms(s: &str) -> i64 {
    let mut total = 0;
    let mut num = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit = if c == 'm' && chars.peek() == Some(&'s') {
            chars.next();
            1
        } else {
            match c {
                'w' => 604_800_000,
                'd' => 86_400_000,
                'h' => 3_600_000,
                'm' => 60_000,
                's' => 1000,
                _ => panic!("not a duration: {s:?}"),
            }
        };
        total += num.parse::<i64>().unwrap() * unit;
        num.clear();
    }
    assert!(num.is_empty(), "not a duration: {s:?}");
    total
}

/// A seeded server and the Query page graphing `RATE` over the 15 minutes ending `end`.
async fn rate_graph(d: &Driver) -> (Vigil, i64) {
    let v = Vigil::server();
    let now = now_ms();
    super::seed(&v, now).await;
    let end = now / 1000 * 1000;
    d.goto(&v.url(&format!(
        "/query?g0.expr={}&g0.tab=0&g0.range_input=15m&g0.end_input={}",
        enc(RATE),
        enc(&utc_string(end))
    )))
    .await;
    d.wait_until(
        "two series drawn",
        "return document.querySelectorAll('.result[data-state=done] svg.graph path.series').length === 2",
    )
    .await;
    (v, end)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_editor_completes_metric_names_label_names_values_and_functions_from_the_api() {
    let Some((d, _server)) = super::seeded_page(
        "the_editor_completes_metric_names_label_names_values_and_functions_from_the_api",
        "/query",
    )
    .await
    else {
        return;
    };
    let input = d.wait_for(".editor-input").await;

    // A metric name prefix: the written metric is offered (it exists only in the API's data);
    // Tab takes it.
    d.type_into(&input, "http_re").await;
    wait_options(
        &d,
        "the metric offered",
        &[("metric", "http_requests_total")],
    )
    .await;
    d.screenshot(&artifact("completion-metric.png")).await;
    d.type_into(&input, TAB).await;
    assert_eq!(editor_value(&d).await, "http_requests_total");

    // Inside `{`: the metric's label names, narrowed by what is typed; Enter takes one.
    d.type_into(&input, "{").await;
    wait_options(
        &d,
        "the metric's label names",
        &[
            ("label", "instance"),
            ("label", "job"),
            ("label", "namespace"),
            ("label", "pod"),
        ],
    )
    .await;
    d.type_into(&input, "po").await;
    wait_options(&d, "pod alone", &[("label", "pod")]).await;
    d.type_into(&input, ENTER).await;
    assert_eq!(editor_value(&d).await, "http_requests_total{pod");

    // After `="`: the label's values; the second is picked with the arrow key and the quote
    // is closed for us.
    d.type_into(&input, "=\"").await;
    wait_options(
        &d,
        "the pod values",
        &[("value", "api-1"), ("value", "api-2")],
    )
    .await;
    d.type_into(&input, &format!("{ARROW_DOWN}{ENTER}")).await;
    assert_eq!(editor_value(&d).await, r#"http_requests_total{pod="api-2""#);

    // With the list closed, Enter runs the completed query: one series, pod api-2's.
    d.type_into(&input, &format!("}}{ENTER}")).await;
    d.wait_until(
        "the completed query's one series",
        "return document.querySelectorAll('.result[data-state=done] svg.graph path.series').length === 1",
    )
    .await;
    let legend = d.text(&d.wait_for(".legend-labels").await).await;
    assert!(legend.contains(r#"pod="api-2""#), "{legend}");

    // A function, taken by a click; its parenthesis opens and the list offers metrics again.
    d.clear(&input).await;
    d.type_into(&input, "rat").await;
    d.wait_until(
        "rate offered",
        &format!("return ((() => {{ {OPTIONS} }})() || []).some(([k, t]) => k === 'function' && t === 'rate')"),
    )
    .await;
    let index = d
        .script(&format!(
            "return (() => {{ {OPTIONS} }})().findIndex(([k, t]) => k === 'function' && t === 'rate')"
        ))
        .await;
    let index = index.as_i64().expect("an index");
    d.click(
        &d.wait_for(&format!(".completions li:nth-child({})", index + 1))
            .await,
    )
    .await;
    assert_eq!(editor_value(&d).await, "rate(");
    d.wait_until(
        "metrics offered inside rate(",
        &format!("return ((() => {{ {OPTIONS} }})() || []).some(([k, t]) => k === 'metric' && t === 'http_requests_total')"),
    )
    .await;
    d.type_into(&input, &format!("http_req{TAB}")).await;
    assert_eq!(editor_value(&d).await, "rate(http_requests_total");
}

#[tokio::test(flavor = "multi_thread")]
async fn hovering_the_graph_shows_each_series_value_and_stacking_redraws_it() {
    let Some(d) =
        Driver::start("hovering_the_graph_shows_each_series_value_and_stacking_redraws_it").await
    else {
        return;
    };
    let (_v, end) = rate_graph(&d).await;
    let (cx, cy, _) = d.centre_of("svg.graph .overlay").await;
    d.mouse_move(cx, cy).await;
    d.wait_until(
        "the tooltip shows",
        "const t = document.querySelector('.graph-tooltip'); return !t.hidden && t.querySelectorAll('.tip-row').length === 2",
    )
    .await;
    d.screenshot(&artifact("graph-hover.png")).await;
    let rows: Vec<(String, String)> = serde_json::from_value(
        d.script("return [...document.querySelectorAll('.graph-tooltip .tip-row')].map(r => [r.querySelector('.tip-labels').textContent, r.querySelector('b').textContent])")
            .await,
    )
    .unwrap();
    let mut legend: Vec<String> = serde_json::from_value(
        d.script("return [...document.querySelectorAll('.legend-labels')].map(e => e.textContent)")
            .await,
    )
    .unwrap();
    let mut shown: Vec<String> = rows.iter().map(|(l, _)| l.clone()).collect();
    legend.sort();
    shown.sort();
    assert_eq!(shown, legend, "the tooltip names the legend's label sets");
    // Highest first: api-1 counts 30 per 15s (2/s), api-2 15 per 15s (1/s).
    assert!(rows[0].0.contains(r#"pod="api-1""#), "{rows:?}");
    assert_eq!(rows[0].1, "2", "{rows:?}");
    assert!(rows[1].0.contains(r#"pod="api-2""#), "{rows:?}");
    assert_eq!(rows[1].1, "1", "{rows:?}");
    // The time is the step under the cursor: the plot's middle, 7.5 minutes before the end.
    let at = d
        .script("return document.querySelector('.graph-tooltip .tip-time').textContent")
        .await;
    let at = at.as_str().unwrap_or_default().to_string();
    let (lo, hi) = (
        utc_string(end - 7 * 60_000 - 45_000),
        utc_string(end - 7 * 60_000 - 15_000),
    );
    assert!(
        at.as_str() >= format!("{lo} UTC").as_str() && at.as_str() <= format!("{hi} UTC").as_str(),
        "hover time {at} not between {lo} and {hi}"
    );

    // Stacked: the top series (the last drawn) rises to the sum, 3/s, as a closed area; the
    // value axis grows to cover it. Unstacked again, the lines are what they were.
    let draw_state = "return [...document.querySelectorAll('svg.graph path.series')].map(p => [p.getAttribute('d'), p.getAttribute('fill')])
        .concat([[[...document.querySelectorAll('svg.graph text.tick[text-anchor=end]')].map(t => t.textContent).pop(), location.search]]);";
    let lines: Vec<(String, String)> = serde_json::from_value(d.script(draw_state).await).unwrap();
    assert_eq!(lines[0].1, "none", "lines are not filled");
    d.click(&d.wait_for("input.stacked").await).await;
    d.wait_until(
        "the stacked areas",
        "return document.querySelectorAll('.result[data-state=done] svg.graph path.series[fill-opacity]').length === 2",
    )
    .await;
    let stacked: Vec<(String, String)> =
        serde_json::from_value(d.script(draw_state).await).unwrap();
    d.screenshot(&artifact("graph-stacked.png")).await;
    assert!(stacked[2].1.contains("g0.stacked=1"), "{stacked:?}");
    assert_ne!(stacked[1].0, lines[1].0, "the top series' path changed");
    assert!(
        stacked[0].0.ends_with('Z') && stacked[1].0.ends_with('Z'),
        "areas are closed: {stacked:?}"
    );
    assert_ne!(stacked[1].1, "none", "areas are filled");
    let top = |s: &str| super::flows::si_value(s);
    assert!(
        top(&lines[2].0) < 3.0 && top(&stacked[2].0) >= 3.0,
        "the axis grows from {} to cover the sum 3: {}",
        lines[2].0,
        stacked[2].0
    );
    d.click(&d.wait_for("input.stacked").await).await;
    d.wait_until(
        "lines again",
        "return document.querySelectorAll('.result[data-state=done] svg.graph path.series[fill=none]').length === 2",
    )
    .await;
    let again: Vec<(String, String)> = serde_json::from_value(d.script(draw_state).await).unwrap();
    assert_eq!(again[..2], lines[..2], "the same lines as before stacking");
}

#[tokio::test(flavor = "multi_thread")]
async fn dragging_across_the_graph_zooms_the_range_in_the_url_and_the_inputs() {
    let Some(d) =
        Driver::start("dragging_across_the_graph_zooms_the_range_in_the_url_and_the_inputs").await
    else {
        return;
    };
    let (_v, end) = rate_graph(&d).await;
    let (cx, cy, w) = d.centre_of("svg.graph .overlay").await;
    // From a quarter of the plot left of its centre to a quarter right: the middle half.
    d.drag((cx - w / 4.0, cy), (cx + w / 4.0, cy)).await;
    d.wait_until(
        "the zoomed graph",
        "return new URLSearchParams(location.search).get('g0.range_input') !== '15m'
            && document.querySelectorAll('.result[data-state=done] svg.graph path.series').length === 2",
    )
    .await;
    d.screenshot(&artifact("graph-zoomed.png")).await;
    let range = param(&d, "range_input").await;
    let end_input = param(&d, "end_input").await;
    let span = duration_ms(&range);
    assert!(
        (span - 450_000).abs() <= 10_000,
        "the middle half of 15m, not {range}"
    );
    let zoomed_end = d
        .script(&format!(
            "return Date.parse({}.replace(' ', 'T') + 'Z')",
            Value::String(end_input.clone())
        ))
        .await
        .as_i64()
        .expect("an end time");
    assert!(
        (zoomed_end - (end - 225_000)).abs() <= 10_000,
        "ends a quarter of 15m before {}: {end_input}",
        utc_string(end)
    );
    // The inputs show the zoomed range, so editing them continues from it.
    let inputs: Vec<String> = serde_json::from_value(
        d.script("return [document.querySelector('.range-input').value, document.querySelector('.end-input').value]")
            .await,
    )
    .unwrap();
    assert_eq!(inputs, [range, end_input]);
}
