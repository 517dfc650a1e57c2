//! Differential test against the real node_exporter 1.5 (`/usr/bin/prometheus-node-exporter`,
//! Debian's package): both read this machine's `/proc` and `/sys`, and for every collector
//! we implement the scrape must have the same metric families with the same HELP, TYPE and
//! label names, the same series for families whose label values cannot change between two
//! scrapes, and equal values where the value cannot change either (memory and filesystem
//! totals, CPU count, boot time, uname and os-release).
//!
//! node_exporter runs with exactly our collectors and with the settings our defaults mirror:
//! upstream 1.5's mount-point exclusion (Debian patches its default to also drop `/run`,
//! `/mnt` and `/media`) and `/proc/net/dev` for netdev rather than netlink (whose extra
//! `nohandler` counter `/proc/net/dev` does not carry).
//!
//! Skipped, with a printed line, only when the binary is missing and `CI` is not "true".

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use collector::expo::{self, Format, MetricKind};
use collector::{NodeConfig, DEFAULT_MOUNT_POINTS_EXCLUDE, NODE_COLLECTORS};

const NODE_EXPORTER: &str = "/usr/bin/prometheus-node-exporter";

/// Kills the child process when the test ends, however it ends.
struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One family as either side reports it: HELP, TYPE and its series (label sets without
/// `instance`/`job`) with values.
#[derive(Debug, Default)]
struct Fam {
    help: String,
    kind: &'static str,
    series: BTreeMap<BTreeMap<String, String>, f64>,
}

fn kind_name(k: MetricKind) -> &'static str {
    match k {
        MetricKind::Counter => "counter",
        MetricKind::Gauge => "gauge",
        MetricKind::Unknown => "untyped",
        _ => "other",
    }
}

/// Which collector a family belongs to, by node_exporter's naming.
fn collector_of(name: &str) -> Option<&'static str> {
    let table: &[(&str, &str)] = &[
        ("node_cpu_", "cpu"),
        ("node_disk_", "diskstats"),
        ("node_filefd_", "filefd"),
        ("node_filesystem_", "filesystem"),
        ("node_load", "loadavg"),
        ("node_memory_", "meminfo"),
        ("node_network_", "netdev"),
        ("node_netstat_", "netstat"),
        ("node_os_", "os"),
        ("node_pressure_", "pressure"),
        ("node_sockstat_", "sockstat"),
        ("node_intr_total", "stat"),
        ("node_context_switches_total", "stat"),
        ("node_forks_total", "stat"),
        ("node_boot_time_seconds", "stat"),
        ("node_procs_", "stat"),
        ("node_time_", "time"),
        ("node_uname_", "uname"),
        ("node_vmstat_", "vmstat"),
    ];
    table
        .iter()
        .find(|(prefix, _)| name.starts_with(prefix))
        .map(|&(_, c)| c)
}

/// Starts node_exporter with our collectors and settings; `None` when it is not installed
/// (and `CI` is not "true"). The returned guard kills it.
fn start_node_exporter() -> Option<(Peer, String)> {
    if !Path::new(NODE_EXPORTER).exists() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "{NODE_EXPORTER} is missing and CI=true"
        );
        eprintln!("skipped: {NODE_EXPORTER} not installed");
        return None;
    }
    let port = free_port();
    let mut cmd = Command::new(NODE_EXPORTER);
    cmd.arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--collector.disable-defaults")
        .arg(format!(
            "--collector.filesystem.mount-points-exclude={DEFAULT_MOUNT_POINTS_EXCLUDE}"
        ))
        .arg("--no-collector.netdev.netlink")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for c in NODE_COLLECTORS {
        cmd.arg(format!("--collector.{c}"));
    }
    let peer = Peer(cmd.spawn().expect("start node_exporter"));
    Some((peer, format!("http://127.0.0.1:{port}/metrics")))
}

/// One scrape, retried until node_exporter listens (at most 15 s).
async fn scrape(url: &str) -> String {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match client.get(url).send().await {
            Ok(r) if r.status().is_success() => return r.text().await.unwrap(),
            _ if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(50)).await,
            other => panic!("node_exporter did not answer: {other:?}"),
        }
    }
}

async fn scrape_node_exporter() -> Option<BTreeMap<String, Fam>> {
    let (_peer, url) = start_node_exporter()?;
    let body = scrape(&url).await;
    Some(families_of(&body))
}

/// A node_exporter body as families.
fn families_of(body: &str) -> BTreeMap<String, Fam> {
    let parsed = expo::parse(body, Format::Text).expect("node_exporter's body parses");
    let mut out: BTreeMap<String, Fam> = BTreeMap::new();
    for s in &parsed.samples {
        let meta = &parsed.families[s.family];
        let fam = out.entry(meta.name.to_string()).or_insert_with(|| Fam {
            help: meta.help.to_string(),
            kind: kind_name(meta.kind),
            ..Fam::default()
        });
        // An empty label value is the same as no label in Prometheus's data model (ingestion
        // drops it, and so do our `Labels`), so `node_disk_info{model=""}` compares as
        // `node_disk_info{}`.
        let labels = s
            .labels
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        fam.series.insert(labels, s.value);
    }
    out
}

fn collect_ours() -> BTreeMap<String, Fam> {
    collect_families(&mut NodeConfig::new("diff").build().unwrap())
}

/// One collection of ours as families.
fn collect_families(source: &mut collector::NodeSource) -> BTreeMap<String, Fam> {
    let batch = source.collect(chrono_now_ms());
    let mut out: BTreeMap<String, Fam> = BTreeMap::new();
    for m in &batch.metadata {
        out.insert(
            m.metric_family_name.clone(),
            Fam {
                help: m.help.clone(),
                kind: match m.r#type {
                    1 => "counter",
                    2 => "gauge",
                    0 => "untyped",
                    _ => "other",
                },
                ..Fam::default()
            },
        );
    }
    for s in &batch.series {
        let name = s.labels.metric_name().unwrap().to_string();
        let labels = s
            .labels
            .iter()
            .filter(|l| !matches!(l.name.as_str(), "__name__" | "instance" | "job"))
            .map(|l| (l.name.to_string(), l.value.to_string()))
            .collect();
        out.get_mut(&name)
            .unwrap()
            .series
            .insert(labels, s.samples[0].v);
    }
    out
}

fn chrono_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn label_names(f: &Fam) -> BTreeSet<BTreeSet<String>> {
    f.series
        .keys()
        .map(|l| l.keys().cloned().collect())
        .collect()
}

#[tokio::test]
async fn node_collectors_match_node_exporter_1_5() {
    let Some(theirs) = scrape_node_exporter().await else {
        return;
    };
    let ours = collect_ours();
    let mut problems = Vec::new();

    // Every collector succeeded on both sides.
    for c in NODE_COLLECTORS {
        let key = BTreeMap::from([("collector".to_string(), c.to_string())]);
        let t = theirs["node_scrape_collector_success"].series.get(&key);
        let o = ours["node_scrape_collector_success"].series.get(&key);
        if t != o {
            problems.push(format!("collector {c}: success theirs {t:?}, ours {o:?}"));
        }
    }

    // The same families, with the same HELP, TYPE and label names.
    let relevant = |m: &BTreeMap<String, Fam>| -> BTreeSet<String> {
        m.keys()
            .filter(|n| collector_of(n).is_some())
            .cloned()
            .collect()
    };
    let (t_names, o_names) = (relevant(&theirs), relevant(&ours));
    for missing in t_names.difference(&o_names) {
        problems.push(format!("missing family {missing}"));
    }
    for extra in o_names.difference(&t_names) {
        problems.push(format!("extra family {extra}"));
    }
    for name in t_names.intersection(&o_names) {
        let (t, o) = (&theirs[name], &ours[name]);
        if t.help != o.help {
            problems.push(format!(
                "{name}: HELP theirs {:?}, ours {:?}",
                t.help, o.help
            ));
        }
        if t.kind != o.kind {
            problems.push(format!("{name}: TYPE theirs {}, ours {}", t.kind, o.kind));
        }
        if label_names(t) != label_names(o) {
            problems.push(format!(
                "{name}: label names theirs {:?}, ours {:?}",
                label_names(t),
                label_names(o)
            ));
        }
    }

    // Families whose series are fixed on a running machine: the same label values.
    let fixed_series = [
        "node_cpu_seconds_total",
        "node_disk_info",
        "node_disk_read_bytes_total",
        "node_filesystem_size_bytes",
        "node_filesystem_readonly",
        "node_network_receive_bytes_total",
        "node_os_info",
        "node_time_clocksource_current_info",
        "node_time_zone_offset_seconds",
        "node_uname_info",
    ];
    for name in fixed_series {
        let keys = |m: &BTreeMap<String, Fam>| -> Option<BTreeSet<_>> {
            m.get(name).map(|f| f.series.keys().cloned().collect())
        };
        if keys(&theirs) != keys(&ours) {
            problems.push(format!(
                "{name}: series theirs {:?}, ours {:?}",
                keys(&theirs),
                keys(&ours)
            ));
        }
    }

    // Values that cannot change between the two reads.
    let fixed_values = [
        "node_memory_MemTotal_bytes",
        "node_memory_SwapTotal_bytes",
        "node_boot_time_seconds",
        "node_filesystem_size_bytes",
        "node_filesystem_files",
        "node_filesystem_readonly",
        "node_filefd_maximum",
        "node_os_version",
        "node_os_info",
        "node_uname_info",
        "node_time_zone_offset_seconds",
    ];
    for name in fixed_values {
        let (t, o) = (theirs.get(name), ours.get(name));
        let values = |f: Option<&Fam>| f.map(|f| f.series.clone());
        if values(t) != values(o) {
            problems.push(format!(
                "{name}: values theirs {:?}, ours {:?}",
                values(t),
                values(o)
            ));
        }
    }
    // The CPU count: idle series per CPU.
    let cpus = |m: &BTreeMap<String, Fam>| {
        m["node_cpu_seconds_total"]
            .series
            .keys()
            .filter(|l| l.get("mode").map(String::as_str) == Some("idle"))
            .count()
    };
    if cpus(&theirs) != cpus(&ours) || cpus(&ours) == 0 {
        problems.push(format!(
            "cpu count theirs {}, ours {}",
            cpus(&theirs),
            cpus(&ours)
        ));
    }

    assert!(
        problems.is_empty(),
        "differences from node_exporter:\n{}",
        problems.join("\n")
    );
    // The comparison covered every collector.
    let covered: BTreeSet<&str> = t_names.iter().filter_map(|n| collector_of(n)).collect();
    assert_eq!(covered.len(), NODE_COLLECTORS.len(), "covered {covered:?}");
}

/// The work of one collection, ours against node_exporter's, from the metric both report:
/// the sum over collectors of `node_scrape_collector_duration_seconds` (node_exporter's runs
/// its collectors concurrently, so its sum is work, not latency). Averaged over 50
/// collections each, interleaved, in one run.
///
/// Run: `cargo test -p collector --release --test node_exporter_diff -- --ignored --nocapture`.
#[tokio::test]
#[ignore = "benchmark: prints figures, asserts nothing about speed"]
async fn bench_collection_work_against_node_exporter() {
    let Some((_peer, url)) = start_node_exporter() else {
        return;
    };
    let mut source = NodeConfig::new("bench").build().unwrap();
    let rounds = 50;
    // Per collector: (node_exporter, vigil) seconds summed over the rounds.
    let mut per: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for _ in 0..rounds {
        let t = families_of(&scrape(&url).await);
        for (labels, v) in &t["node_scrape_collector_duration_seconds"].series {
            per.entry(labels["collector"].clone()).or_default().0 += v;
        }
        let ours = collect_families(&mut source);
        for (labels, v) in &ours["node_scrape_collector_duration_seconds"].series {
            per.entry(labels["collector"].clone()).or_default().1 += v;
        }
    }
    let n = f64::from(rounds);
    for (c, (t, o)) in &per {
        eprintln!(
            "  {c:<11} node_exporter {:>8.1} µs  vigil {:>8.1} µs",
            t / n * 1e6,
            o / n * 1e6
        );
    }
    let (theirs, ours) = per
        .values()
        .fold((0.0, 0.0), |(a, b), (t, o)| (a + t / n, b + o / n));
    eprintln!(
        "collection work per scrape over {} collectors: node_exporter {:.3} ms, vigil {:.3} ms, ratio vigil/node_exporter {:.2}",
        NODE_COLLECTORS.len(),
        theirs * 1e3,
        ours * 1e3,
        ours / theirs
    );
}
