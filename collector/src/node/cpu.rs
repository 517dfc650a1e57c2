//! The `cpu` collector: per-CPU time from `/proc/stat`, as node_exporter's `cpu_linux.go`
//! reports it (`node_cpu_seconds_total`, `node_cpu_guest_seconds_total`).

use crate::family::{Family, MetricType};

/// The kernel reports CPU time in ticks of `USER_HZ`, which is 100 on every Linux ABI
/// (it is fixed for userspace regardless of the kernel's internal `HZ`).
const USER_HZ: f64 = 100.0;

/// The times of one CPU, in seconds.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct CpuTimes {
    /// The CPU number as the kernel writes it (`cpu3` → `"3"`).
    pub cpu: String,
    pub user: f64,
    pub nice: f64,
    pub system: f64,
    pub idle: f64,
    pub iowait: f64,
    pub irq: f64,
    pub softirq: f64,
    pub steal: f64,
    pub guest: f64,
    pub guest_nice: f64,
}

/// Parses the `cpuN` lines of `/proc/stat`. The aggregate `cpu` line and every other line are
/// ignored; a `cpuN` line with a non-numeric field or fewer than the four fields every kernel
/// has (user nice system idle) is skipped. Fields a kernel is too old to have read as zero.
pub(crate) fn parse_stat(text: &str) -> Vec<CpuTimes> {
    text.lines().filter_map(parse_cpu_line).collect()
}

fn parse_cpu_line(line: &str) -> Option<CpuTimes> {
    let mut fields = line.split_ascii_whitespace();
    let cpu = fields.next()?.strip_prefix("cpu")?;
    if cpu.is_empty() || !cpu.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let ticks: Vec<f64> = fields
        .map(|f| f.parse::<u64>().map(|t| t as f64 / USER_HZ))
        .collect::<Result<_, _>>()
        .ok()?;
    if ticks.len() < 4 {
        return None;
    }
    let at = |i: usize| ticks.get(i).copied().unwrap_or(0.0);
    Some(CpuTimes {
        cpu: cpu.to_string(),
        user: at(0),
        nice: at(1),
        system: at(2),
        idle: at(3),
        iowait: at(4),
        irq: at(5),
        softirq: at(6),
        steal: at(7),
        guest: at(8),
        guest_nice: at(9),
    })
}

/// The families node_exporter exposes for these CPUs, modes in its (alphabetical) order.
pub(crate) fn families(cpus: &[CpuTimes]) -> Vec<Family> {
    let mut seconds = Family::new(
        "node_cpu_seconds_total",
        "Seconds the CPUs spent in each mode.",
        MetricType::Counter,
    );
    let mut guest = Family::new(
        "node_cpu_guest_seconds_total",
        "Seconds the CPUs spent in guests (VMs) for each mode.",
        MetricType::Counter,
    );
    for c in cpus {
        let modes = [
            ("idle", c.idle),
            ("iowait", c.iowait),
            ("irq", c.irq),
            ("nice", c.nice),
            ("softirq", c.softirq),
            ("steal", c.steal),
            ("system", c.system),
            ("user", c.user),
        ];
        for (mode, v) in modes {
            seconds.push(vec![("cpu", c.cpu.clone()), ("mode", mode.into())], v);
        }
        for (mode, v) in [("nice", c.guest_nice), ("user", c.guest)] {
            guest.push(vec![("cpu", c.cpu.clone()), ("mode", mode.into())], v);
        }
    }
    vec![guest, seconds]
}

/// Parses `/proc/stat` text into families; an error when no CPU line could be read, since a
/// stat file without CPUs means the path is not a procfs.
pub(crate) fn collect(text: &str) -> Result<Vec<Family>, String> {
    let cpus = parse_stat(text);
    if cpus.is_empty() {
        return Err("no cpuN lines in stat".into());
    }
    Ok(families(&cpus))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "\
cpu  16241 0 2824 52894 320 0 50 73 0 0
cpu0 7799 0 1306 26923 121 0 23 35 0 0
cpu1 8442 5 1518 25971 199 1 27 38 7 2
cpu2 12x 0 0 0 0 0 0 0 0 0
cpu3 1 2
intr 1234 0 0
ctxt 98765
btime 1700000000
";

    #[test]
    fn parses_per_cpu_lines_and_skips_malformed() {
        let cpus = parse_stat(STAT);
        assert_eq!(cpus.len(), 2, "{cpus:?}");
        assert_eq!(cpus[0].cpu, "0");
        assert_eq!(cpus[0].user, 77.99);
        assert_eq!(cpus[0].idle, 269.23);
        assert_eq!(cpus[1].nice, 0.05);
        assert_eq!(cpus[1].irq, 0.01);
        assert_eq!(cpus[1].guest, 0.07);
        assert_eq!(cpus[1].guest_nice, 0.02);
    }

    #[test]
    fn old_kernels_without_steal_read_zero() {
        let cpus = parse_stat("cpu0 1 2 3 4 5\n");
        assert_eq!(cpus[0].iowait, 0.05);
        assert_eq!(cpus[0].steal, 0.0);
    }

    #[test]
    fn families_have_node_exporter_names_and_modes() {
        let fams = collect(STAT).unwrap();
        let secs = fams
            .iter()
            .find(|f| f.name == "node_cpu_seconds_total")
            .unwrap();
        assert_eq!(secs.kind, MetricType::Counter);
        assert_eq!(secs.points.len(), 16);
        let modes: Vec<&str> = secs.points[..8]
            .iter()
            .map(|p| p.labels[1].1.as_str())
            .collect();
        assert_eq!(
            modes,
            ["idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user"]
        );
        assert!(collect("intr 1\n").is_err());
    }
}
