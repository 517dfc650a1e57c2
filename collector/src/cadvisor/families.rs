//! One collection's cgroups → the values of the kubelet's `/metrics/cadvisor` families, with
//! their names, HELP texts (cAdvisor v0.53's), types and labels: `container, id, image, name,
//! namespace, pod` on every series, plus `cpu`, `device`, `interface` or `failure_type` and
//! `scope` where cAdvisor adds them. Pure: [`visit`] hands out each value with its extra
//! labels borrowed from the readings, and `cache.rs` turns them into series.

use crate::family::MetricType;

use super::cgroup::Stats;

/// The six labels of every series, in cAdvisor's meaning: `id` is the cgroup path, `name` the
/// runtime's name of the container, the rest from the pod list ("" where unknown).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Base {
    pub container: String,
    pub id: String,
    pub image: String,
    pub name: String,
    pub namespace: String,
    pub pod: String,
}

impl Base {
    /// The six labels, in name order.
    pub fn pairs(&self) -> [(&'static str, &str); 6] {
        [
            ("container", &self.container),
            ("id", &self.id),
            ("image", &self.image),
            ("name", &self.name),
            ("namespace", &self.namespace),
            ("pod", &self.pod),
        ]
    }
}

/// One interface's counters from the pod's network namespace.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Interface {
    pub name: String,
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
}

/// Everything reported for one cgroup.
#[derive(Clone, Debug, Default)]
pub(crate) struct Container {
    pub base: Base,
    pub stats: Stats,
    /// Block devices by `(major, minor)` → `/dev/<name>`, for the `device` label.
    pub devices: Vec<((u32, u32), String)>,
    pub interfaces: Vec<Interface>,
}

use MetricType::{Counter, Gauge};

/// The labels a family adds to the six base labels (`cpu`, `device`, ...): at most two, their
/// values borrowed from the container's readings, so a value costs no allocation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Extra<'a> {
    pairs: [(&'static str, &'a str); 2],
    len: u8,
}

impl<'a> Extra<'a> {
    const NONE: Extra<'static> = Extra {
        pairs: [("", ""); 2],
        len: 0,
    };

    fn one(name: &'static str, value: &'a str) -> Self {
        Extra {
            pairs: [(name, value), ("", "")],
            len: 1,
        }
    }

    fn two(a: (&'static str, &'a str), b: (&'static str, &'a str)) -> Self {
        Extra {
            pairs: [a, b],
            len: 2,
        }
    }

    /// The labels, in the order the family names them.
    pub fn pairs(&self) -> &[(&'static str, &'a str)] {
        &self.pairs[..usize::from(self.len)]
    }
}

/// Appends a family's values for one container to the buffer, which the caller empties and
/// reuses for every container and family: a vector returned per container per family was
/// ~12,000 allocations a collection.
type Getter = for<'c> fn(&'c Container, &mut Vec<(Extra<'c>, f64)>);

/// A family's name, HELP text and type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Meta {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: MetricType,
}

/// How many families there are; [`visit`] numbers them `0..FAMILIES`.
pub(crate) const FAMILIES: usize = METRICS.len();

/// The name, HELP and type of family `i` (as [`visit`] numbers them).
pub(crate) fn meta(i: usize) -> Meta {
    let (name, help, kind, _) = METRICS[i];
    Meta { name, help, kind }
}

/// The families, in cAdvisor's order: name, HELP, type and how to read the values.
const METRICS: &[(&str, &str, MetricType, Getter)] = &[
    (
        "container_cpu_cfs_periods_total",
        "Number of elapsed enforcement period intervals.",
        Counter,
        |c, out| cfs(c, out, |(p, _, _)| p as f64),
    ),
    (
        "container_cpu_cfs_throttled_periods_total",
        "Number of throttled period intervals.",
        Counter,
        |c, out| cfs(c, out, |(_, t, _)| t as f64),
    ),
    (
        "container_cpu_cfs_throttled_seconds_total",
        "Total time duration the container has been throttled.",
        Counter,
        |c, out| cfs(c, out, |(_, _, ns)| ns as f64 / 1e9),
    ),
    (
        "container_cpu_system_seconds_total",
        "Cumulative system cpu time consumed in seconds.",
        Counter,
        |c, out| one(out, c.stats.cpu_system_ns.map(|ns| ns as f64 / 1e9)),
    ),
    // The kubelet does not enable per-cpu usage, so the one series is `cpu="total"`.
    (
        "container_cpu_usage_seconds_total",
        "Cumulative cpu time consumed in seconds.",
        Counter,
        |c, out| {
            out.extend(
                c.stats
                    .cpu_usage_ns
                    .map(|ns| (Extra::one("cpu", "total"), ns as f64 / 1e9)),
            )
        },
    ),
    (
        "container_cpu_user_seconds_total",
        "Cumulative user cpu time consumed in seconds.",
        Counter,
        |c, out| one(out, c.stats.cpu_user_ns.map(|ns| ns as f64 / 1e9)),
    ),
    (
        "container_file_descriptors",
        "Number of open file descriptors for the container.",
        Gauge,
        |c, out| one(out, c.stats.fds.map(|v| v as f64)),
    ),
    (
        "container_fs_reads_bytes_total",
        "Cumulative count of bytes read",
        Counter,
        |c, out| io(c, out, |d| d.read_bytes),
    ),
    (
        "container_fs_reads_total",
        "Cumulative count of reads completed",
        Counter,
        |c, out| io(c, out, |d| d.reads),
    ),
    (
        "container_fs_writes_bytes_total",
        "Cumulative count of bytes written",
        Counter,
        |c, out| io(c, out, |d| d.write_bytes),
    ),
    (
        "container_fs_writes_total",
        "Cumulative count of writes completed",
        Counter,
        |c, out| io(c, out, |d| d.writes),
    ),
    (
        "container_last_seen",
        "Last time a container was seen by the exporter",
        Gauge,
        |_, _| {},
    ),
    (
        "container_memory_cache",
        "Number of bytes of page cache memory.",
        Gauge,
        |c, out| one(out, c.stats.memory_cache.map(|v| v as f64)),
    ),
    (
        "container_memory_failures_total",
        "Cumulative count of memory allocation failures.",
        Counter,
        failures,
    ),
    // cgroup v2 has no failcnt; cAdvisor still reports the family, as 0.
    (
        "container_memory_failcnt",
        "Number of memory usage hits limits",
        Counter,
        |c, out| {
            one(
                out,
                c                .stats
                .memory_usage
                .map(|_| c.stats.memory_failcnt.unwrap_or(0) as f64))
        },
    ),
    // v2 has no kernel memory figure; cAdvisor reports 0 for every cgroup with memory stats.
    (
        "container_memory_kernel_usage",
        "Size of kernel memory allocated in bytes.",
        Gauge,
        |c, out| with_memory(c, out, c.stats.memory_kernel),
    ),
    (
        "container_memory_mapped_file",
        "Size of memory mapped files in bytes.",
        Gauge,
        |c, out| with_memory(c, out, c.stats.memory_mapped_file),
    ),
    (
        "container_memory_max_usage_bytes",
        "Maximum memory usage recorded in bytes",
        Gauge,
        |c, out| with_memory(c, out, c.stats.memory_max_usage),
    ),
    (
        "container_memory_rss",
        "Size of RSS in bytes.",
        Gauge,
        |c, out| one(out, c.stats.memory_rss.map(|v| v as f64)),
    ),
    (
        "container_memory_swap",
        "Container swap usage in bytes.",
        Gauge,
        |c, out| {
            one(
                out,
                c                .stats
                .memory_usage
                .map(|_| c.stats.memory_swap.unwrap_or(0) as f64))
        },
    ),
    (
        "container_memory_total_active_file_bytes",
        "Current total active file in bytes.",
        Gauge,
        |c, out| with_memory(c, out, c.stats.memory_active_file),
    ),
    (
        "container_memory_total_inactive_file_bytes",
        "Current total inactive file in bytes.",
        Gauge,
        |c, out| with_memory(c, out, c.stats.memory_inactive_file),
    ),
    (
        "container_memory_usage_bytes",
        "Current memory usage in bytes, including all memory regardless of when it was accessed",
        Gauge,
        |c, out| one(out, c.stats.memory_usage.map(|v| v as f64)),
    ),
    (
        "container_memory_working_set_bytes",
        "Current working set in bytes.",
        Gauge,
        |c, out| one(out, c.stats.memory_working_set.map(|v| v as f64)),
    ),
    (
        "container_network_receive_bytes_total",
        "Cumulative count of bytes received",
        Counter,
        |c, out| net(c, out, |i| i.rx_bytes),
    ),
    (
        "container_network_receive_errors_total",
        "Cumulative count of errors encountered while receiving",
        Counter,
        |c, out| net(c, out, |i| i.rx_errors),
    ),
    (
        "container_network_receive_packets_dropped_total",
        "Cumulative count of packets dropped while receiving",
        Counter,
        |c, out| net(c, out, |i| i.rx_dropped),
    ),
    (
        "container_network_receive_packets_total",
        "Cumulative count of packets received",
        Counter,
        |c, out| net(c, out, |i| i.rx_packets),
    ),
    (
        "container_network_transmit_bytes_total",
        "Cumulative count of bytes transmitted",
        Counter,
        |c, out| net(c, out, |i| i.tx_bytes),
    ),
    (
        "container_network_transmit_errors_total",
        "Cumulative count of errors encountered while transmitting",
        Counter,
        |c, out| net(c, out, |i| i.tx_errors),
    ),
    (
        "container_network_transmit_packets_dropped_total",
        "Cumulative count of packets dropped while transmitting",
        Counter,
        |c, out| net(c, out, |i| i.tx_dropped),
    ),
    (
        "container_network_transmit_packets_total",
        "Cumulative count of packets transmitted",
        Counter,
        |c, out| net(c, out, |i| i.tx_packets),
    ),
    (
        "container_oom_events_total",
        "Count of out of memory events observed for the container",
        Counter,
        |c, out| one(out, c.stats.oom_kills.map(|v| v as f64)),
    ),
    (
        "container_pressure_cpu_stalled_seconds_total",
        "Total time duration no tasks in the container could make progress due to CPU congestion.",
        Counter,
        |c, out| pressure(c, out, 0, |p| p.full_us),
    ),
    (
        "container_pressure_cpu_waiting_seconds_total",
        "Total time duration tasks in the container have waited due to CPU congestion.",
        Counter,
        |c, out| pressure(c, out, 0, |p| p.some_us),
    ),
    (
        "container_pressure_io_stalled_seconds_total",
        "Total time duration no tasks in the container could make progress due to IO congestion.",
        Counter,
        |c, out| pressure(c, out, 2, |p| p.full_us),
    ),
    (
        "container_pressure_io_waiting_seconds_total",
        "Total time duration tasks in the container have waited due to IO congestion.",
        Counter,
        |c, out| pressure(c, out, 2, |p| p.some_us),
    ),
    (
        "container_pressure_memory_stalled_seconds_total",
        "Total time duration no tasks in the container could make progress due to memory congestion.",
        Counter,
        |c, out| pressure(c, out, 1, |p| p.full_us),
    ),
    (
        "container_pressure_memory_waiting_seconds_total",
        "Total time duration tasks in the container have waited due to memory congestion.",
        Counter,
        |c, out| pressure(c, out, 1, |p| p.some_us),
    ),
    (
        "container_processes",
        "Number of processes running inside the container.",
        Gauge,
        |c, out| one(out, c.stats.processes.map(|v| v as f64)),
    ),
    (
        "container_sockets",
        "Number of open sockets for the container.",
        Gauge,
        |c, out| one(out, c.stats.sockets.map(|v| v as f64)),
    ),
    (
        "container_spec_cpu_period",
        "CPU period of the container.",
        Gauge,
        |c, out| one(out, c.stats.spec_cpu_period.map(|v| v as f64)),
    ),
    (
        "container_spec_cpu_quota",
        "CPU quota of the container.",
        Gauge,
        |c, out| one(out, c.stats.spec_cpu_quota.map(|v| v as f64)),
    ),
    (
        "container_spec_cpu_shares",
        "CPU share of the container.",
        Gauge,
        |c, out| one(out, c.stats.spec_cpu_shares.map(|v| v as f64)),
    ),
    (
        "container_spec_memory_limit_bytes",
        "Memory limit for the container.",
        Gauge,
        |c, out| one(out, c.stats.spec_memory_limit.map(|v| v as f64)),
    ),
    (
        "container_start_time_seconds",
        "Start time of the container since unix epoch in seconds.",
        Gauge,
        |c, out| one(out, c.stats.start_time.map(f64::trunc)),
    ),
    (
        "container_threads",
        "Number of threads running inside the container",
        Gauge,
        |c, out| one(out, c.stats.threads.map(|v| v as f64)),
    ),
    (
        "container_threads_max",
        "Maximum number of threads allowed inside the container, infinity if value is zero",
        Gauge,
        |c, out| one(out, c.stats.threads_max.map(|v| v as f64)),
    ),
];

fn one(out: &mut Vec<(Extra<'_>, f64)>, v: Option<f64>) {
    out.extend(v.map(|v| (Extra::NONE, v)));
}

/// A memory figure cAdvisor reports (as 0 when unread) for every cgroup with memory stats.
fn with_memory(c: &Container, out: &mut Vec<(Extra<'_>, f64)>, v: Option<u64>) {
    one(out, c.stats.memory_usage.map(|_| v.unwrap_or(0) as f64))
}

/// Page faults of the cgroup (`scope="container"`) and its hierarchy, minor and major; like
/// cAdvisor, 0 where `memory.stat` lacks them, for every cgroup with memory stats.
fn failures(c: &Container, out: &mut Vec<(Extra<'_>, f64)>) {
    if c.stats.memory_usage.is_none() {
        return;
    }
    for (kind, faults) in [
        ("pgfault", c.stats.pgfault),
        ("pgmajfault", c.stats.pgmajfault),
    ] {
        let (own, hierarchy) = faults.unwrap_or((0, 0));
        for (scope, v) in [("container", own), ("hierarchy", hierarchy)] {
            let labels = Extra::two(("failure_type", kind), ("scope", scope));
            out.push((labels, v as f64));
        }
    }
}

/// One PSI total (µs) of resource `i` (cpu, memory, io) in seconds.
fn pressure(
    c: &Container,
    out: &mut Vec<(Extra<'_>, f64)>,
    i: usize,
    f: fn(&super::cgroup::Pressure) -> u64,
) {
    one(out, c.stats.pressure[i].as_ref().map(|p| f(p) as f64 / 1e6))
}

/// cAdvisor reports CFS counters only for a container with a quota: without one, the
/// periods do not advance and throttling cannot happen.
fn cfs(c: &Container, out: &mut Vec<(Extra<'_>, f64)>, f: fn((u64, u64, u64)) -> f64) {
    if let (Some(cfs), Some(_)) = (c.stats.cfs, c.stats.spec_cpu_quota) {
        one(out, Some(f(cfs)))
    }
}

fn io<'c>(
    c: &'c Container,
    out: &mut Vec<(Extra<'c>, f64)>,
    f: fn(&super::cgroup::DeviceIo) -> u64,
) {
    out.extend(c.stats.io.iter().map(|d| {
        let device = c
            .devices
            .iter()
            .find(|(dev, _)| *dev == (d.major, d.minor))
            .map_or("", |(_, name)| name.as_str());
        (Extra::one("device", device), f(d) as f64)
    }))
}

fn net<'c>(c: &'c Container, out: &mut Vec<(Extra<'c>, f64)>, f: fn(&Interface) -> u64) {
    out.extend(
        c.interfaces
            .iter()
            .map(|i| (Extra::one("interface", &i.name), f(i) as f64)),
    )
}

/// Hands every value of `containers` to `emit` as `(family, container, values)`: family by
/// family in name order (numbered as [`meta`] knows them), container by container in the
/// slice's order, each container's values of the family at once — an empty slice where it
/// has none, so a caller keeping state per container and family sees it go. `now_s` is
/// `container_last_seen`'s value.
pub(crate) fn visit<'c>(
    containers: &'c [Container],
    now_s: f64,
    mut emit: impl FnMut(usize, usize, &[(Extra<'c>, f64)]),
) {
    let mut values = Vec::new();
    for (family, (name, _, _, get)) in METRICS.iter().enumerate() {
        let last_seen = *name == "container_last_seen";
        for (i, c) in containers.iter().enumerate() {
            values.clear();
            if last_seen {
                one(&mut values, Some(now_s.trunc()));
            } else {
                get(c, &mut values);
            }
            emit(family, i, &values);
        }
    }
}

/// The families of `containers` as the exposition shows them, empty families left out: the
/// shape of the golden files, and the plain rendering `cache.rs`'s series are checked
/// against.
#[cfg(test)]
pub(crate) fn families(containers: &[Container], now_s: f64) -> Vec<crate::family::Family> {
    let mut out: Vec<crate::family::Family> = Vec::new();
    visit(containers, now_s, |family, i, values| {
        let Meta { name, help, kind } = meta(family);
        if out.last().is_none_or(|f| f.name != name) {
            out.push(crate::family::Family::new(name, help, kind));
        }
        let Some(f) = out.last_mut() else { return };
        for (extra, value) in values {
            let labels = containers[i]
                .base
                .pairs()
                .into_iter()
                .chain(extra.pairs().iter().copied())
                .map(|(n, v)| (n, v.to_string()))
                .collect();
            f.push(labels, *value);
        }
    });
    out.retain(|f| !f.points.is_empty());
    out
}

/// `<procfs>/<pid>/net/dev` → interfaces, leaving out loopback and the host ends of
/// container links (`veth*`, `docker*`), as cAdvisor does.
pub(crate) fn parse_net_dev(text: &str) -> Vec<Interface> {
    text.lines()
        .skip(2)
        .filter_map(|line| {
            let (name, values) = line.rsplit_once(':')?;
            let name = name.trim();
            if ["lo", "veth", "docker"].iter().any(|p| name.starts_with(p)) {
                return None;
            }
            let v: Vec<u64> = values
                .split_whitespace()
                .map(str::parse)
                .collect::<Result<_, _>>()
                .ok()?;
            if v.len() < 12 {
                return None;
            }
            Some(Interface {
                name: name.to_string(),
                rx_bytes: v[0],
                rx_packets: v[1],
                rx_errors: v[2],
                rx_dropped: v[3],
                tx_bytes: v[8],
                tx_packets: v[9],
                tx_errors: v[10],
                tx_dropped: v[11],
            })
        })
        .collect()
}
