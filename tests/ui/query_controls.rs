//! The Query page's remaining controls, typed and clicked through WebDriver: a syntax error
//! shown under the editor with its place marked in the query (and both gone once the query is
//! fixed), the table view against `/api/v1/query` at the panel's end time and back to the
//! graph, and the range and step inputs, held in the URL and used by the range query.

use super::chromium::artifact;
use super::spawn::*;
use super::webdriver::Driver;
use serde_json::Value;

/// The text under the editor, or null while the error box is hidden.
const SHOWN_ERROR: &str =
    "const e = document.querySelector('.editor-error'); return e.hidden ? null : e.textContent";

/// The error mark in the highlighted copy of the query as `[offset, marked text]`, where the
/// offset counts the characters before it; null when nothing is marked.
const MARK: &str = "const code = document.querySelector('.editor-hl code');
    const m = code.querySelector('.t-errmark');
    if (!m) return null;
    const r = document.createRange();
    r.setStart(code, 0);
    r.setEndBefore(m);
    return [r.toString().length, m.textContent]";

/// Per row of the table: the label set as written and the value.
const TABLE_ROWS: &str = "return [...document.querySelectorAll('.result[data-state=done] table.result-table tr')]
    .map(tr => [tr.querySelector('.labels').firstChild.textContent, tr.querySelector('.value').textContent])";

/// The points of the graph's one line, or -1 unless exactly one unbroken line is drawn.
const LINE_POINTS: &str =
    "const p = document.querySelectorAll('.result[data-state=done] svg.graph path.series');
    if (p.length !== 1) return -1;
    const d = p[0].getAttribute('d');
    return d.split('M').length === 2 ? d.split('L').length : -1";

/// The page's current `g0.<key>` URL parameter, or null.
async fn param(d: &Driver, key: &str) -> Value {
    d.script(&format!(
        "return new URLSearchParams(location.search).get('g0.{key}')"
    ))
    .await
}

/// The error `/api/v1/query` answers for `expr`, which must be refused as bad data.
async fn api_error(v: &Vigil, expr: &str) -> String {
    let resp = client()
        .get(v.url(&format!("/api/v1/query?query={}", enc(expr))))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400, "{expr} is refused");
    let body: Value = resp.json().await.unwrap();
    body["error"].as_str().unwrap().to_string()
}

/// Where the mark belongs for `message` about `expr`: the position a Prometheus-style message
/// names (`1:16: parse error: …`), else `guess`, the offset of the mistake as a reader sees it.
/// The mark past the end of the text is a space.
fn expected_mark(expr: &str, message: &str, guess: usize) -> (usize, String) {
    let named = message.find(": parse error").and_then(|at| {
        let pos = message[..at].rsplit([' ', '"']).next()?;
        match pos.split_once(':')? {
            ("1", col) => col.parse::<usize>().ok().map(|c| c.saturating_sub(1)),
            _ => None,
        }
    });
    let at = named.unwrap_or(guess).min(expr.len());
    let text = expr.get(at..at + 1).unwrap_or(" ").to_string();
    (at, text)
}

/// Types `expr` into the emptied editor and clicks Execute.
async fn run_query(d: &Driver, expr: &str) {
    let input = d.wait_for(".editor-input").await;
    d.clear(&input).await;
    d.type_into(&input, expr).await;
    d.click(&d.wait_for(".panel-head button.primary").await)
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_syntax_error_shows_the_apis_text_and_marks_the_mistake_until_the_query_is_fixed() {
    let Some((d, v)) = super::seeded_page(
        "a_syntax_error_shows_the_apis_text_and_marks_the_mistake_until_the_query_is_fixed",
        "/query",
    )
    .await
    else {
        return;
    };

    // Each mistake with the offset a reader would point at when the message names none.
    let open_paren = "sum(rate(http_requests_total[5m])";
    let open_brace = r#"http_requests_total{pod="api-1""#;
    let open_string = r#"http_requests_total{pod="api-1}"#;
    let dangling_op = "rate(http_requests_total[5m]) +";
    let cases = [
        // The outer parenthesis is the one never closed.
        (open_paren, 3, "unclosed-paren"),
        (open_brace, open_brace.find('{').unwrap(), "unclosed-brace"),
        // The quote that opens the string running to the end.
        (open_string, open_string.find('"').unwrap(), "open-string"),
        // The right operand is missing: the end of the text.
        (dangling_op, dangling_op.len(), "dangling-operator"),
    ];
    for (expr, guess, name) in cases {
        let message = api_error(&v, expr).await;
        run_query(&d, expr).await;
        d.wait_until(
            &format!("the API's error for {expr}"),
            &format!(
                "return (() => {{ {SHOWN_ERROR} }})() === {}",
                Value::String(message.clone())
            ),
        )
        .await;
        let state = d
            .script("return document.querySelector('.result').dataset.state")
            .await;
        assert_eq!(state, "error", "{expr}");
        let (at, text) = expected_mark(expr, &message, guess);
        let mark: (usize, String) = serde_json::from_value(d.script(MARK).await)
            .unwrap_or_else(|e| panic!("no mark for {expr} ({message}): {e}"));
        assert_eq!(mark, (at, text), "the mark in {expr:?} for {message:?}");
        d.screenshot(&artifact(&format!("query-error-{name}.png")))
            .await;
    }

    // Fixing the query: the stale mark goes with the first keystroke, the message with the
    // next run, which draws the graph.
    let input = d.wait_for(".editor-input").await;
    d.type_into(&input, " 0").await;
    assert_eq!(d.script(MARK).await, Value::Null, "no mark once edited");
    d.click(&d.wait_for(".panel-head button.primary").await)
        .await;
    d.wait_until(
        "the fixed query's graph",
        "return document.querySelectorAll('.result[data-state=done] svg.graph path.series').length === 2",
    )
    .await;
    assert_eq!(
        d.script(SHOWN_ERROR).await,
        Value::Null,
        "the error is gone"
    );
    assert_eq!(d.script(MARK).await, Value::Null, "and so is the mark");
    assert_eq!(
        param(&d, "expr").await,
        format!("{dangling_op} 0").as_str(),
        "the fixed query in the URL"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_table_tab_lists_each_series_at_the_panels_end_time_and_the_graph_tab_returns() {
    let Some(d) = Driver::start(
        "the_table_tab_lists_each_series_at_the_panels_end_time_and_the_graph_tab_returns",
    )
    .await
    else {
        return;
    };
    let v = Vigil::server();
    let now = now_ms();
    super::seed(&v, now).await;
    // Five minutes before the last samples, so the table must use the panel's end time, not
    // the newest values.
    let end = (now - 300_000) / 1000 * 1000;
    let expr = "http_requests_total";
    d.goto(&v.url(&format!(
        "/query?g0.expr={expr}&g0.tab=0&g0.range_input=15m&g0.end_input={}",
        enc(&utc_string(end))
    )))
    .await;
    d.wait_until(
        "the graph",
        "return document.querySelectorAll('.result[data-state=done] svg.graph path.series').length === 2",
    )
    .await;

    d.click(&d.wait_for(".tabs .tab:nth-child(2)").await).await;
    d.wait_until(
        "the table's two rows",
        "return document.querySelectorAll('.result[data-state=done] table.result-table tr').length === 2",
    )
    .await;
    d.screenshot(&artifact("query-table.png")).await;
    assert_eq!(param(&d, "tab").await, "1", "the table tab in the URL");
    let mut shown: Vec<(String, String)> =
        serde_json::from_value(d.script(TABLE_ROWS).await).unwrap();
    shown.sort();

    // What the instant query at the end time answers, written as the page writes label sets.
    let resp: Value = client()
        .get(v.url(&format!(
            "/api/v1/query?query={expr}&time={}",
            end as f64 / 1000.0
        )))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut want: Vec<(String, String)> = resp["data"]["result"]
        .as_array()
        .unwrap_or_else(|| panic!("a vector: {resp}"))
        .iter()
        .map(|s| {
            let metric = s["metric"].as_object().unwrap();
            let labels: Vec<String> = metric
                .iter()
                .filter(|(k, _)| k.as_str() != "__name__")
                .map(|(k, v)| format!("{k}=\"{}\"", v.as_str().unwrap()))
                .collect();
            let mut labels = labels;
            labels.sort();
            let name = metric["__name__"].as_str().unwrap();
            (
                format!("{name}{{{}}}", labels.join(", ")),
                s["value"][1].as_str().unwrap().to_string(),
            )
        })
        .collect();
    want.sort();
    assert_eq!(shown, want, "the table is the API's answer at {end}");
    // And that answer is the seeded counters' last samples at or before the end time.
    let last = (end - (now - 15 * 60_000)) / 15_000;
    let values: Vec<String> = shown.iter().map(|(_, v)| v.clone()).collect();
    assert_eq!(
        values,
        [(30 * last).to_string(), (15 * last).to_string()],
        "api-1 then api-2 at sample {last}: {shown:?}"
    );

    d.click(&d.wait_for(".tabs .tab:nth-child(1)").await).await;
    d.wait_until(
        "the graph again",
        "return document.querySelectorAll('.result[data-state=done] svg.graph path.series').length === 2
            && !document.querySelector('table.result-table')",
    )
    .await;
    assert_eq!(param(&d, "tab").await, "0", "the graph tab in the URL");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_range_and_step_typed_in_go_to_the_url_and_set_the_graphs_points() {
    let Some(d) =
        Driver::start("the_range_and_step_typed_in_go_to_the_url_and_set_the_graphs_points").await
    else {
        return;
    };
    let v = Vigil::server();
    // A value at every step, so the line has exactly one point per step of the range.
    d.goto(&v.url("/query?g0.expr=vector(1)")).await;
    d.wait_until(
        "the default hour's line",
        &format!("return (() => {{ {LINE_POINTS} }})() > 0"),
    )
    .await;
    // An hour at the automatic resolution (14s): 258 or 259 points.
    let auto = d.script(LINE_POINTS).await.as_i64().unwrap();
    assert!((250..=260).contains(&auto), "{auto} points over 1h");

    let enter = super::query::ENTER;
    let range = d.wait_for(".range-input").await;
    d.clear(&range).await;
    d.type_into(&range, &format!("15m{enter}")).await;
    let step = d.wait_for(".step-input").await;
    d.clear(&step).await;
    d.type_into(&step, &format!("20s{enter}")).await;
    // 15 minutes in steps of 20 seconds: 45 intervals, 46 points, both ends included.
    d.wait_until(
        "the line at a 20s step over 15m",
        &format!("return (() => {{ {LINE_POINTS} }})() === 46"),
    )
    .await;
    d.screenshot(&artifact("query-range-step.png")).await;
    assert_eq!(param(&d, "range_input").await, "15m");
    assert_eq!(param(&d, "step_input").await, "20s");
    let stats = d.text(&d.wait_for(".stats").await).await;
    assert!(stats.contains("Resolution: 20s"), "{stats}");

    // The link alone brings both back: the inputs and the same 46 points.
    d.refresh().await;
    d.wait_until(
        "the same line after a reload",
        &format!("return (() => {{ {LINE_POINTS} }})() === 46"),
    )
    .await;
    let inputs = d
        .script("return [document.querySelector('.range-input').value, document.querySelector('.step-input').value]")
        .await;
    assert_eq!(inputs, serde_json::json!(["15m", "20s"]));
}
