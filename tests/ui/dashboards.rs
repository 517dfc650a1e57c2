//! The Dashboards page through WebDriver: every shipped dashboard, opened by its link on the
//! index, draws every panel with data from node_exporter-style and cAdvisor-style series (as
//! the agent writes them, here by remote write) and pod log lines, none showing an error or an
//! empty panel; each panel's legend names what its query groups by, and a dashboard variable
//! picked from its list redraws the panels for that value.

use super::chromium::artifact;
use super::spawn::*;
use super::webdriver::Driver;
use std::collections::BTreeMap;

/// Half an hour of samples every 15 s, ending now.
const SAMPLES: i64 = 120;

/// A gauge at `v`, or a counter growing `v` per second.
enum Shape {
    Gauge(f64),
    Counter(f64),
}

/// One series to write: its name, the labels beside the node's or pod's, and its shape.
type Spec = (&'static str, Vec<(&'static str, &'static str)>, Shape);

fn samples(now: i64, shape: &Shape) -> Vec<(i64, f64)> {
    (0..SAMPLES)
        .map(|i| {
            let t = now - (SAMPLES - 1 - i) * 15_000;
            let v = match shape {
                Shape::Gauge(v) => *v,
                Shape::Counter(per_s) => per_s * 15.0 * i as f64,
            };
            (t, v)
        })
        .collect()
}

/// The series node_exporter reports for one node, as `(name, extra labels, shape)`.
fn node_series() -> Vec<Spec> {
    use Shape::*;
    let mut out = vec![
        ("node_load1", vec![], Gauge(0.5)),
        ("node_load5", vec![], Gauge(0.4)),
        ("node_load15", vec![], Gauge(0.3)),
        ("node_memory_MemTotal_bytes", vec![], Gauge(8e9)),
        ("node_memory_MemAvailable_bytes", vec![], Gauge(5e9)),
        ("node_memory_Cached_bytes", vec![], Gauge(1e9)),
        ("node_vmstat_pgmajfault", vec![], Counter(2.0)),
    ];
    for cpu in ["0", "1"] {
        for (mode, share) in [("idle", 0.7), ("user", 0.2), ("system", 0.1)] {
            out.push((
                "node_cpu_seconds_total",
                vec![("cpu", cpu), ("mode", mode)],
                Counter(share),
            ));
        }
    }
    let sda = || vec![("device", "sda")];
    out.extend([
        ("node_disk_io_time_seconds_total", sda(), Counter(0.05)),
        ("node_disk_read_bytes_total", sda(), Counter(1e5)),
        ("node_disk_written_bytes_total", sda(), Counter(2e5)),
    ]);
    // A real filesystem and a tmpfs, which the panels leave out.
    for (fstype, mountpoint, avail, size) in
        [("ext4", "/", 4e10, 1e11), ("tmpfs", "/run", 1e8, 2e8)]
    {
        let labels = vec![
            ("device", "/dev/sda1"),
            ("fstype", fstype),
            ("mountpoint", mountpoint),
        ];
        out.push(("node_filesystem_avail_bytes", labels.clone(), Gauge(avail)));
        out.push(("node_filesystem_size_bytes", labels, Gauge(size)));
    }
    // eth0 and the loopback device, which the panels leave out.
    for device in ["eth0", "lo"] {
        for (name, per_s) in [
            ("node_network_receive_bytes_total", 1e4),
            ("node_network_transmit_bytes_total", 5e3),
            ("node_network_receive_errs_total", 0.01),
            ("node_network_transmit_errs_total", 0.01),
        ] {
            out.push((name, vec![("device", device)], Counter(per_s)));
        }
    }
    out
}

/// The series the kubelet's cAdvisor reports for one pod's container (and its network, at the
/// pod level, where cAdvisor leaves `container` empty).
fn container_series() -> Vec<Spec> {
    use Shape::*;
    let app = || vec![("container", "app")];
    let pod = || vec![("container", ""), ("interface", "eth0")];
    vec![
        ("container_cpu_usage_seconds_total", app(), Counter(0.25)),
        ("container_memory_working_set_bytes", app(), Gauge(2e8)),
        ("container_spec_memory_limit_bytes", app(), Gauge(5e8)),
        // A throttled share of 1/10 at every step is a flat line whose computed values differ
        // in their last bits; its value axis once took a tick step below those bits, looped
        // until the tick array overflowed, and the panel showed "Invalid array length".
        ("container_cpu_cfs_periods_total", app(), Counter(10.0)),
        (
            "container_cpu_cfs_throttled_periods_total",
            app(),
            Counter(1.0),
        ),
        ("container_network_receive_bytes_total", pod(), Counter(2e3)),
        (
            "container_network_transmit_bytes_total",
            pod(),
            Counter(1e3),
        ),
    ]
}

/// Two nodes, three pods in two namespaces, and their log lines.
async fn seed_cluster(v: &Vigil) {
    let now = now_ms();
    let mut series: Vec<TestSeries> = Vec::new();
    for node in ["n1", "n2"] {
        series.push((
            vec![
                ("__name__", "node_uname_info"),
                ("instance", node),
                ("job", "node"),
                ("nodename", node),
            ],
            samples(now, &Shape::Gauge(1.0)),
        ));
        for (name, extra, shape) in node_series() {
            let mut labels = vec![("__name__", name), ("instance", node), ("job", "node")];
            labels.extend(extra);
            series.push((labels, samples(now, &shape)));
        }
    }
    for (namespace, pod) in [
        ("shop", "api-1"),
        ("shop", "api-2"),
        ("kube-system", "coredns-0"),
    ] {
        for (name, extra, shape) in container_series() {
            let mut labels = vec![("__name__", name), ("namespace", namespace), ("pod", pod)];
            labels.extend(extra);
            series.push((labels, samples(now, &shape)));
        }
    }
    remote_write(v, &series).await;

    let ns = |ms: i64| ms * 1_000_000;
    let api: Vec<(i64, String)> = (0..30)
        .map(|i| {
            let line = if i % 5 == 0 {
                format!("level=error msg=\"order {i} failed\"")
            } else {
                format!("level=info msg=\"order {i}\"")
            };
            (ns(now - 600_000 + i * 20_000), line)
        })
        .collect();
    push_logs(
        v,
        &[
            ("namespace", "shop"),
            ("pod", "api-1"),
            ("container", "app"),
            ("stream", "stdout"),
        ],
        &api,
    )
    .await;
    let dns: Vec<(i64, String)> = (0..20)
        .map(|i| {
            (
                ns(now - 600_000 + i * 30_000),
                format!("query {i} answered in 1ms"),
            )
        })
        .collect();
    push_logs(
        v,
        &[
            ("namespace", "kube-system"),
            ("pod", "coredns-0"),
            ("container", "coredns"),
            ("stream", "stderr"),
        ],
        &dns,
    )
    .await;
}

/// Per panel, once every panel has answered: title, series drawn, sorted legend, and any
/// error or no-data text.
const PANELS: &str = "const ps = [...document.querySelectorAll('.dash-panel')];
    if (!ps.length || ps.some(p => !p.querySelector('svg.graph, .no-data, .error'))) return null;
    return ps.map(p => [p.querySelector('h3').textContent,
        p.querySelectorAll('svg.graph path.series').length,
        [...p.querySelectorAll('.legend-labels')].map(e => e.textContent).sort(),
        [...p.querySelectorAll('.error, .no-data')].map(e => e.textContent).join(' ')])";

type Panel = (String, usize, Vec<String>, String);

/// Waits until every panel of the page has answered, and returns what each shows.
async fn drawn_panels(d: &Driver, what: &str) -> Vec<Panel> {
    d.wait_until(what, &format!("return (() => {{ {PANELS} }})() !== null"))
        .await;
    serde_json::from_value(d.script(PANELS).await).unwrap()
}

/// Asserts that every panel drew series, without error, with the legend `want` gives for it
/// (panels `want` does not name must still draw).
fn check(dashboard: &str, panels: &[Panel], want: &BTreeMap<&str, Vec<&str>>) {
    assert!(!panels.is_empty(), "{dashboard}: no panels");
    for (title, series, legend, problem) in panels {
        assert!(
            problem.is_empty() && *series > 0,
            "{dashboard} / {title}: {series} series, {problem:?}"
        );
        if let Some(w) = want.get(title.as_str()) {
            assert_eq!(legend, w, "{dashboard} / {title}");
        }
    }
    for title in want.keys() {
        assert!(
            panels.iter().any(|p| p.0 == *title),
            "{dashboard}: no panel {title}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_shipped_dashboard_draws_all_its_panels_from_node_container_and_log_data() {
    let Some(d) = Driver::start(
        "every_shipped_dashboard_draws_all_its_panels_from_node_container_and_log_data",
    )
    .await
    else {
        return;
    };
    let v = Vigil::server();
    seed_cluster(&v).await;
    d.goto(&v.url("/dashboards")).await;
    let links = "return [...document.querySelectorAll('.dash-index a.dash-link')].map(a => [a.textContent, a.getAttribute('href')])";
    d.wait_until(
        "the four dashboards listed",
        "return document.querySelectorAll('.dash-index a.dash-link').length === 4",
    )
    .await;
    let listed: Vec<(String, String)> = serde_json::from_value(d.script(links).await).unwrap();

    let nodes = || vec!["n1", "n2"];
    let expected: BTreeMap<&str, BTreeMap<&str, Vec<&str>>> = [
        (
            "cluster-use",
            [
                "CPU utilisation",
                "CPU saturation (load1 per CPU)",
                "Memory utilisation",
                "Memory saturation (major page faults)",
                "Disk IO utilisation",
                "Disk space used",
                "Network received",
                "Network transmitted",
                "Network errors",
            ]
            .into_iter()
            .map(|t| (t, nodes()))
            .collect(),
        ),
        (
            // The namespace variable starts at its first value.
            "namespace-pods",
            [
                "CPU by pod",
                "Memory working set by pod",
                "CPU throttled share",
                "Memory against limit",
                "Network received by pod",
                "Network transmitted by pod",
            ]
            .into_iter()
            .map(|t| (t, vec!["coredns-0"]))
            .collect(),
        ),
        (
            "node",
            BTreeMap::from([
                ("CPU by mode", vec!["system", "user"]),
                ("Load average", vec!["15m", "1m", "5m"]),
                ("Memory", vec!["available", "cached", "used"]),
                ("Disk throughput", vec!["sda read", "sda written"]),
                ("Filesystem space available", vec!["/"]),
                ("Network by device", vec!["eth0 in", "eth0 out"]),
            ]),
        ),
        (
            "logs-volume",
            BTreeMap::from([
                ("Lines per second by namespace", vec!["kube-system", "shop"]),
                ("Bytes per second by namespace", vec!["kube-system", "shop"]),
                ("Error lines per second by pod", vec!["shop/api-1"]),
                ("Lines by stream", vec!["stderr", "stdout"]),
            ]),
        ),
    ]
    .into();
    let mut names: Vec<&str> = listed
        .iter()
        .map(|(_, href)| href.trim_start_matches("/dashboards?d="))
        .collect();
    names.sort();
    assert_eq!(
        names,
        expected.keys().copied().collect::<Vec<_>>(),
        "{listed:?}"
    );
    for (title, href) in &listed {
        let name = href.trim_start_matches("/dashboards?d=");
        let want = expected
            .get(name)
            .unwrap_or_else(|| panic!("an unexpected dashboard {name} ({title})"));
        d.click(&d.wait_for(&format!("a.dash-link[href='{href}']")).await)
            .await;
        d.wait_for(&format!(".dashboard[data-dashboard={name}]"))
            .await;
        let panels = drawn_panels(&d, &format!("{name}'s panels answered")).await;
        check(name, &panels, want);
        d.screenshot(&artifact(&format!("dashboard-{name}.png")))
            .await;

        if name == "namespace-pods" {
            // Picking the other namespace from the variable's list redraws every panel for it.
            let options = d
                .script("return [...document.querySelectorAll('select.dash-var[data-var=namespace] option')].map(o => o.value)")
                .await;
            assert_eq!(options, serde_json::json!(["kube-system", "shop"]));
            d.click(&d.wait_for("select.dash-var[data-var=namespace]").await)
                .await;
            d.click(
                &d.wait_for("select.dash-var[data-var=namespace] option[value=shop]")
                    .await,
            )
            .await;
            d.wait_until(
                "the shop namespace in the URL",
                "return new URLSearchParams(location.search).get('var-namespace') === 'shop'",
            )
            .await;
            d.wait_until(
                "the shop pods drawn",
                "return [...document.querySelectorAll('.dash-panel')].every(p => [...p.querySelectorAll('.legend-labels')].map(e => e.textContent).sort().join() === 'api-1,api-2')",
            )
            .await;
            let panels = drawn_panels(&d, "the shop namespace's panels").await;
            let shop: BTreeMap<&str, Vec<&str>> =
                want.keys().map(|t| (*t, vec!["api-1", "api-2"])).collect();
            check("namespace-pods (shop)", &panels, &shop);
            d.screenshot(&artifact("dashboard-namespace-pods-shop.png"))
                .await;
        }
        d.back().await;
        d.wait_for(".dash-index a.dash-link").await;
    }
}
