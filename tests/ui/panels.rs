//! The Query page's panels and history, through WebDriver: a second query added by a click
//! draws its own graph and legend beside the first, both held in the URL so a reload draws
//! both; and the browser's Back and Forward buttons redraw each earlier query's view.

use super::chromium::artifact;
use super::query::ENTER;
use super::webdriver::Driver;
use serde_json::Value;

/// Per panel: its editor's text, its result's state and its legend's label sets.
const PANELS: &str = "return [...document.querySelectorAll('.panel')].map(p => [
    p.querySelector('.editor-input').value,
    p.querySelector('.result').dataset.state,
    [...p.querySelectorAll('.legend-labels')].map(e => e.textContent)])";

/// One panel as `PANELS` reads it.
type Panel = (String, String, Vec<String>);

/// Per-pod request rates, 2/s and 1/s.
const BY_POD: &str = "sum by (pod) (rate(http_requests_total[1m]))";
/// Their sum, 3/s.
const TOTAL: &str = "sum(rate(http_requests_total[1m]))";

fn by_pod_legend() -> Vec<String> {
    vec![
        r#"{pod="api-1"}"#.to_string(),
        r#"{pod="api-2"}"#.to_string(),
    ]
}

async fn panels(d: &Driver) -> Vec<Panel> {
    serde_json::from_value(d.script(PANELS).await).unwrap()
}

/// Waits until the panels, in order, are done with these exprs and this many series each.
async fn wait_panels(d: &Driver, what: &str, want: &[(&str, usize)]) {
    let want = Value::from(
        want.iter()
            .map(|(e, n)| Value::from(vec![Value::from(*e), Value::from(*n)]))
            .collect::<Vec<_>>(),
    );
    d.wait_until(
        what,
        &format!(
            "const got = [...document.querySelectorAll('.panel')].map(p => [p.querySelector('.editor-input').value,
                p.querySelector('.result[data-state=done]') ? p.querySelectorAll('svg.graph path.series').length : -1]);
             return JSON.stringify(got) === {}",
            Value::String(want.to_string())
        ),
    )
    .await;
}

/// The `g<i>.expr` parameters of the page's URL, in order.
async fn url_exprs(d: &Driver) -> Vec<String> {
    serde_json::from_value(
        d.script(
            "const p = new URLSearchParams(location.search); const out = [];
             for (let i = 0; p.has(`g${i}.expr`); i++) out.push(p.get(`g${i}.expr`));
             return out",
        )
        .await,
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_query_added_by_click_draws_its_own_graph_and_the_url_reproduces_both() {
    let Some((d, v)) = super::seeded_page(
        "a_second_query_added_by_click_draws_its_own_graph_and_the_url_reproduces_both",
        "/query",
    )
    .await
    else {
        return;
    };
    let first = d.wait_for(".panel .editor-input").await;
    d.type_into(&first, &format!("{BY_POD}{ENTER}")).await;
    wait_panels(&d, "the first graph", &[(BY_POD, 2)]).await;

    d.click(&d.wait_for(".add-panel").await).await;
    d.wait_until(
        "a second panel",
        "return document.querySelectorAll('.panel .editor-input').length === 2",
    )
    .await;
    let second = d.find_all(".panel .editor-input").await.pop().unwrap();
    d.type_into(&second, &format!("{TOTAL}{ENTER}")).await;
    wait_panels(&d, "both graphs", &[(BY_POD, 2), (TOTAL, 1)]).await;
    let want: Vec<Panel> = vec![
        (BY_POD.into(), "done".into(), by_pod_legend()),
        (TOTAL.into(), "done".into(), vec!["{}".into()]),
    ];
    assert_eq!(panels(&d).await, want, "each panel its own legend");
    assert_eq!(url_exprs(&d).await, [BY_POD, TOTAL]);
    d.screenshot(&artifact("query-two-panels.png")).await;

    // A reload, and the same URL opened fresh, draw both again.
    d.refresh().await;
    wait_panels(&d, "both graphs after a reload", &[(BY_POD, 2), (TOTAL, 1)]).await;
    assert_eq!(panels(&d).await, want);
    let url = d.script("return location.href").await;
    d.goto(&v.url("/logs")).await;
    d.goto(url.as_str().expect("href")).await;
    wait_panels(&d, "both graphs from the link", &[(BY_POD, 2), (TOTAL, 1)]).await;
    assert_eq!(panels(&d).await, want);

    // Removing the first leaves the second alone, in the page and in the URL.
    d.click(&d.wait_for(".panel button[title='remove this query']").await)
        .await;
    wait_panels(&d, "the second graph alone", &[(TOTAL, 1)]).await;
    assert_eq!(url_exprs(&d).await, [TOTAL]);
}

#[tokio::test(flavor = "multi_thread")]
async fn back_and_forward_redraw_each_earlier_querys_view() {
    let Some((d, _server)) =
        super::seeded_page("back_and_forward_redraw_each_earlier_querys_view", "/query").await
    else {
        return;
    };
    let input = d.wait_for(".editor-input").await;
    d.type_into(&input, &format!("{BY_POD}{ENTER}")).await;
    wait_panels(&d, "the first query's graph", &[(BY_POD, 2)]).await;
    d.clear(&input).await;
    d.type_into(&input, &format!("{TOTAL}{ENTER}")).await;
    wait_panels(&d, "the second query's graph", &[(TOTAL, 1)]).await;
    assert_eq!(url_exprs(&d).await, [TOTAL]);

    d.back().await;
    wait_panels(&d, "the first query's graph after Back", &[(BY_POD, 2)]).await;
    assert_eq!(url_exprs(&d).await, [BY_POD]);
    let want: Vec<Panel> = vec![(BY_POD.into(), "done".into(), by_pod_legend())];
    assert_eq!(panels(&d).await, want, "the first view, legend and all");
    d.screenshot(&artifact("query-back.png")).await;

    d.forward().await;
    wait_panels(&d, "the second query's graph after Forward", &[(TOTAL, 1)]).await;
    assert_eq!(url_exprs(&d).await, [TOTAL]);

    // Across pages too: to the Logs page by its link, and Back to the query.
    d.click(&d.wait_for("#nav a[data-page=logs]").await).await;
    d.wait_for(".editor-input[data-language=logql]").await;
    d.back().await;
    wait_panels(&d, "the query again after Back from Logs", &[(TOTAL, 1)]).await;
    let active = d
        .script("return document.querySelector('#nav a.active').dataset.page")
        .await;
    assert_eq!(active, "query");
}
