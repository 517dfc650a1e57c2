//! The cgroup tree and each cgroup's statistics, for cgroup v2 (one unified hierarchy) and v1
//! (one hierarchy per controller, joined by relative path), read the way runc's cgroup
//! library reads them for cAdvisor. A cgroup may vanish between listing and reading, so every
//! file is optional: what cannot be read is left out, never guessed.
//!
//! The v2 root cgroup has no `memory.current`: its usage is `anon + file` of its
//! `memory.stat` and its swap comes from `<procfs>/meminfo`, as runc emulates it for cAdvisor.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

/// Cgroups listed at most, so a runaway tree cannot make the collector unbounded.
pub(crate) const MAX_CGROUPS: usize = 20_000;
/// v1 controllers whose hierarchies are listed and read.
const V1_CONTROLLERS: &[&str] = &["cpu", "cpuacct", "memory", "blkio", "pids"];
/// Linux's USER_HZ: `cpuacct.stat` counts in these ticks.
const USER_HZ: u64 = 100;
/// cAdvisor reports a memory limit above this as 0 (unlimited).
const UNLIMITED_MEMORY: u64 = 1 << 62;

/// Which cgroup layout the host has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Version {
    V1,
    V2,
}

/// The cgroup filesystem root, usually `<sysfs>/fs/cgroup`.
#[derive(Clone, Debug)]
pub(crate) struct Tree {
    pub root: PathBuf,
    pub version: Version,
    /// The procfs root, for the v2 root cgroup's swap (`meminfo`).
    pub procfs: PathBuf,
}

/// Cumulative stall times of one resource from a cgroup's `<resource>.pressure` file, in µs.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Pressure {
    /// `some total=`: time some tasks waited.
    pub some_us: u64,
    /// `full total=`: time no task could make progress (absent for CPU before 5.13).
    pub full_us: u64,
}

/// Per-device block I/O of one cgroup.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct DeviceIo {
    pub major: u32,
    pub minor: u32,
    pub read_bytes: u64,
    pub write_bytes: u64,
    pub reads: u64,
    pub writes: u64,
}

/// Everything read for one cgroup; `None` where the file was absent or unreadable.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Stats {
    pub cpu_usage_ns: Option<u64>,
    pub cpu_user_ns: Option<u64>,
    pub cpu_system_ns: Option<u64>,
    /// `nr_periods`, `nr_throttled`, throttled time in ns.
    pub cfs: Option<(u64, u64, u64)>,
    pub memory_usage: Option<u64>,
    pub memory_working_set: Option<u64>,
    pub memory_rss: Option<u64>,
    pub memory_cache: Option<u64>,
    pub memory_swap: Option<u64>,
    pub memory_failcnt: Option<u64>,
    /// `memory.peak` (v2, kernel 5.19+) or `memory.max_usage_in_bytes` (v1).
    pub memory_max_usage: Option<u64>,
    pub memory_mapped_file: Option<u64>,
    /// v1 `memory.kmem.usage_in_bytes`; v2 has no such figure.
    pub memory_kernel: Option<u64>,
    pub memory_active_file: Option<u64>,
    pub memory_inactive_file: Option<u64>,
    /// `pgfault` of the cgroup itself and of its hierarchy (equal on v2).
    pub pgfault: Option<(u64, u64)>,
    /// `pgmajfault`, the same way.
    pub pgmajfault: Option<(u64, u64)>,
    /// `cpu.pressure`, `memory.pressure`, `io.pressure` (v2 with PSI only).
    pub pressure: [Option<Pressure>; 3],
    pub oom_kills: Option<u64>,
    pub io: Vec<DeviceIo>,
    pub processes: Option<u64>,
    pub threads: Option<u64>,
    /// `pids.max`, 0 for `max`.
    pub threads_max: Option<u64>,
    pub spec_cpu_period: Option<u64>,
    /// Only when a quota is set.
    pub spec_cpu_quota: Option<u64>,
    pub spec_cpu_shares: Option<u64>,
    /// 0 when unlimited, as cAdvisor reports it.
    pub spec_memory_limit: Option<u64>,
    /// Seconds since the epoch: the oldest modification time of the cgroup's directories.
    pub start_time: Option<f64>,
    /// The processes directly in the cgroup (`cgroup.procs`), for their network namespace
    /// and open files.
    pub pids: Vec<u32>,
    /// Open file descriptors and, of those, sockets, over [`Stats::pids`].
    pub fds: Option<u64>,
    pub sockets: Option<u64>,
}

impl Stats {
    /// A process of the cgroup, for reading its network namespace.
    pub fn first_pid(&self) -> Option<u32> {
        self.pids.first().copied()
    }
}

impl Tree {
    /// Detects the layout under `root`: v2 when the root itself lists `cgroup.controllers`.
    pub fn detect(root: &Path, procfs: &Path) -> Option<Tree> {
        let version = if root.join("cgroup.controllers").is_file() {
            Version::V2
        } else if V1_CONTROLLERS.iter().any(|c| root.join(c).is_dir()) {
            Version::V1
        } else {
            return None;
        };
        Some(Tree {
            root: root.to_path_buf(),
            version,
            procfs: procfs.to_path_buf(),
        })
    }

    /// Every cgroup as an absolute cgroup path (`/`, `/system.slice`, ...), sorted; v1
    /// hierarchies are merged by path.
    pub fn list(&self) -> Vec<String> {
        let mut out = BTreeSet::new();
        match self.version {
            Version::V2 => walk(&self.root, "", &mut out),
            Version::V1 => {
                for c in V1_CONTROLLERS {
                    let dir = self.root.join(c);
                    if dir.is_dir() {
                        walk(&dir, "", &mut out);
                    }
                }
            }
        }
        out.into_iter().collect()
    }

    /// The directory of `cgroup` in `controller`'s hierarchy (the one hierarchy on v2).
    fn dir(&self, controller: &str, cgroup: &str) -> PathBuf {
        let rel = cgroup.trim_start_matches('/');
        match self.version {
            Version::V2 => self.root.join(rel),
            Version::V1 => self.root.join(controller).join(rel),
        }
    }

    /// Reads the statistics of one cgroup.
    pub fn stats(&self, cgroup: &str) -> Stats {
        match self.version {
            Version::V2 => self.stats_v2(cgroup),
            Version::V1 => self.stats_v1(cgroup),
        }
    }

    fn stats_v2(&self, cgroup: &str) -> Stats {
        let dir = self.dir("", cgroup);
        let file = |name: &str| read(&dir.join(name));
        let mut s = Stats::default();
        if let Some(cpu) = file("cpu.stat") {
            let key = |k| keyed(&cpu, k);
            s.cpu_usage_ns = key("usage_usec").map(|v| v.saturating_mul(1000));
            s.cpu_user_ns = key("user_usec").map(|v| v.saturating_mul(1000));
            s.cpu_system_ns = key("system_usec").map(|v| v.saturating_mul(1000));
            if let (Some(p), Some(t), Some(us)) = (
                key("nr_periods"),
                key("nr_throttled"),
                key("throttled_usec"),
            ) {
                s.cfs = Some((p, t, us.saturating_mul(1000)));
            }
        }
        if let Some((quota, period)) = file("cpu.max").as_deref().and_then(parse_cpu_max) {
            s.spec_cpu_period = Some(period);
            s.spec_cpu_quota = quota;
        }
        s.spec_cpu_shares = file("cpu.weight")
            .and_then(|w| number(&w))
            .map(weight_to_shares);
        let memory_stat = file("memory.stat");
        let mem_key = |k| memory_stat.as_deref().and_then(|m| keyed(m, k));
        s.memory_usage = file("memory.current").and_then(|v| number(&v));
        if let Some(usage) = s.memory_usage {
            s.memory_working_set =
                Some(usage.saturating_sub(mem_key("inactive_file").unwrap_or(0)));
            // runc reads swap as swap.current on top of memory.current, then cAdvisor
            // subtracts memory.current again: the result is swap.current.
            s.memory_swap = file("memory.swap.current").and_then(|v| number(&v));
        }
        if s.memory_usage.is_none() && cgroup == "/" {
            self.root_memory_v2(&mut s, memory_stat.as_deref());
        } else if s.memory_usage.is_some() {
            s.memory_max_usage = Some(file("memory.peak").and_then(|v| number(&v)).unwrap_or(0));
        }
        s.memory_rss = mem_key("anon");
        s.memory_cache = mem_key("file");
        s.memory_mapped_file = mem_key("file_mapped");
        s.memory_active_file = mem_key("active_file");
        s.memory_inactive_file = mem_key("inactive_file");
        // v2 counts faults hierarchically only; cAdvisor reports the figure for both scopes.
        s.pgfault = mem_key("pgfault").map(|v| (v, v));
        s.pgmajfault = mem_key("pgmajfault").map(|v| (v, v));
        for (i, resource) in ["cpu", "memory", "io"].iter().enumerate() {
            s.pressure[i] = file(&format!("{resource}.pressure")).and_then(|t| parse_pressure(&t));
        }
        if s.spec_memory_limit.is_none() {
            s.spec_memory_limit = file("memory.max").as_deref().and_then(parse_limit);
        }
        s.oom_kills = file("memory.events").and_then(|e| keyed(&e, "oom_kill"));
        s.io = file("io.stat")
            .map(|t| parse_io_stat(&t))
            .unwrap_or_default();
        self.pids(&mut s, "pids", cgroup);
        self.procs_and_start(&mut s, &["" as &str], cgroup);
        s
    }

    /// The v2 root's memory, which has no `memory.current`: usage is `anon + file`, swap is
    /// the host's swap in use, the limit is none and no peak is known.
    fn root_memory_v2(&self, s: &mut Stats, memory_stat: Option<&str>) {
        let Some(stat) = memory_stat else { return };
        let usage = keyed(stat, "anon")
            .unwrap_or(0)
            .saturating_add(keyed(stat, "file").unwrap_or(0));
        s.memory_usage = Some(usage);
        s.memory_working_set =
            Some(usage.saturating_sub(keyed(stat, "inactive_file").unwrap_or(0)));
        s.memory_max_usage = Some(0);
        s.spec_memory_limit = Some(0);
        s.memory_swap = read(&self.procfs.join("meminfo")).and_then(|m| {
            let kib = |key: &str| {
                m.lines()
                    .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
                    .and_then(|v| number(v.trim().trim_end_matches("kB")))
            };
            Some(
                kib("SwapTotal")?
                    .saturating_sub(kib("SwapFree")?)
                    .saturating_mul(1024),
            )
        });
    }

    fn stats_v1(&self, cgroup: &str) -> Stats {
        let file = |controller: &str, name: &str| read(&self.dir(controller, cgroup).join(name));
        let mut s = Stats {
            cpu_usage_ns: file("cpuacct", "cpuacct.usage").and_then(|v| number(&v)),
            ..Stats::default()
        };
        if let Some(stat) = file("cpuacct", "cpuacct.stat") {
            let tick_ns = 1_000_000_000 / USER_HZ;
            s.cpu_user_ns = keyed(&stat, "user").map(|t| t.saturating_mul(tick_ns));
            s.cpu_system_ns = keyed(&stat, "system").map(|t| t.saturating_mul(tick_ns));
        }
        if let Some(cpu) = file("cpu", "cpu.stat") {
            if let (Some(p), Some(t), Some(ns)) = (
                keyed(&cpu, "nr_periods"),
                keyed(&cpu, "nr_throttled"),
                keyed(&cpu, "throttled_time"),
            ) {
                s.cfs = Some((p, t, ns));
            }
        }
        s.spec_cpu_period = file("cpu", "cpu.cfs_period_us").and_then(|v| number(&v));
        // -1 means no quota; it does not parse as u64 and is left out, as cAdvisor does.
        s.spec_cpu_quota = file("cpu", "cpu.cfs_quota_us")
            .and_then(|v| number(&v))
            .filter(|q| *q > 0);
        s.spec_cpu_shares = file("cpu", "cpu.shares").and_then(|v| number(&v));
        let memory_stat = file("memory", "memory.stat");
        // `total_*` covers the cgroup's descendants (use_hierarchy, always on since 5.x).
        let mem_key = |k: &str| {
            memory_stat
                .as_deref()
                .and_then(|m| keyed(m, &format!("total_{k}")).or_else(|| keyed(m, k)))
        };
        s.memory_usage = file("memory", "memory.usage_in_bytes").and_then(|v| number(&v));
        if let Some(usage) = s.memory_usage {
            s.memory_working_set =
                Some(usage.saturating_sub(mem_key("inactive_file").unwrap_or(0)));
        }
        s.memory_rss = mem_key("rss");
        s.memory_cache = mem_key("cache");
        s.memory_swap = mem_key("swap");
        s.memory_failcnt = file("memory", "memory.failcnt").and_then(|v| number(&v));
        if s.memory_usage.is_some() {
            s.memory_max_usage = Some(
                file("memory", "memory.max_usage_in_bytes")
                    .and_then(|v| number(&v))
                    .unwrap_or(0),
            );
            s.memory_kernel = file("memory", "memory.kmem.usage_in_bytes").and_then(|v| number(&v));
        }
        s.memory_mapped_file = mem_key("mapped_file");
        s.memory_active_file = mem_key("active_file");
        s.memory_inactive_file = mem_key("inactive_file");
        // The cgroup's own count, and its hierarchy's where the kernel gives one.
        let faults = |k: &str| {
            let m = memory_stat.as_deref()?;
            let own = keyed(m, k)?;
            Some((own, keyed(m, &format!("total_{k}")).unwrap_or(own)))
        };
        s.pgfault = faults("pgfault");
        s.pgmajfault = faults("pgmajfault");
        s.spec_memory_limit = file("memory", "memory.limit_in_bytes")
            .as_deref()
            .and_then(parse_limit);
        s.oom_kills = file("memory", "memory.oom_control").and_then(|c| keyed(&c, "oom_kill"));
        // The recursive file covers descendants; it is empty on kernels that only account
        // throttled I/O, which is then read instead (runc does the same).
        let blkio = |name: &str| file("blkio", name).filter(|t| !t.trim().is_empty());
        if let Some(bytes) = blkio("blkio.io_service_bytes_recursive")
            .or_else(|| blkio("blkio.throttle.io_service_bytes_recursive"))
            .or_else(|| blkio("blkio.throttle.io_service_bytes"))
        {
            let ops = blkio("blkio.io_serviced_recursive")
                .or_else(|| blkio("blkio.throttle.io_serviced_recursive"))
                .or_else(|| blkio("blkio.throttle.io_serviced"))
                .unwrap_or_default();
            s.io = parse_blkio(&bytes, &ops);
        }
        self.pids(&mut s, "pids", cgroup);
        self.procs_and_start(&mut s, V1_CONTROLLERS, cgroup);
        s
    }

    fn pids(&self, s: &mut Stats, controller: &str, cgroup: &str) {
        let dir = self.dir(controller, cgroup);
        s.threads = read(&dir.join("pids.current")).and_then(|v| number(&v));
        if s.threads.is_some() {
            s.threads_max = read(&dir.join("pids.max")).and_then(|v| match v.trim() {
                "max" => Some(0),
                n => n.parse().ok(),
            });
        }
    }

    /// `cgroup.procs` (processes directly in the cgroup) and the start time: the oldest
    /// directory modification time over the hierarchies, as cAdvisor takes it.
    fn procs_and_start(&self, s: &mut Stats, controllers: &[&str], cgroup: &str) {
        for c in controllers {
            let dir = self.dir(c, cgroup);
            if s.processes.is_none() {
                if let Some(text) = read(&dir.join("cgroup.procs")) {
                    s.pids = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
                    s.processes = Some(s.pids.len() as u64);
                }
            }
            let modified = std::fs::metadata(&dir)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map(|d| d.as_secs_f64());
            if let Some(t) = modified {
                s.start_time = Some(s.start_time.map_or(t, |old: f64| old.min(t)));
            }
        }
    }
}

/// Lists `dir`'s cgroup directories recursively as `prefix`-relative cgroup paths.
fn walk(dir: &Path, prefix: &str, out: &mut BTreeSet<String>) {
    if out.len() >= MAX_CGROUPS {
        return;
    }
    out.insert(if prefix.is_empty() {
        "/".to_string()
    } else {
        prefix.to_string()
    });
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut children: Vec<(PathBuf, String)> = entries
        .filter_map(Result::ok)
        // Symlinks (v1's `cpu` → `cpu,cpuacct`) are not descended: the target is listed.
        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
        .map(|e| (e.path(), e.file_name().to_string_lossy().into_owned()))
        .collect();
    children.sort();
    for (path, name) in children {
        walk(&path, &format!("{prefix}/{name}"), out);
    }
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

fn number(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// The value of `key` in a flat-keyed file (`key value` per line).
pub(crate) fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| number(v)).flatten()
    })
}

/// `cpu.max`: `<quota|max> <period>` → (quota when set, period).
pub(crate) fn parse_cpu_max(text: &str) -> Option<(Option<u64>, u64)> {
    let mut fields = text.split_whitespace();
    let quota = fields.next()?;
    let period = number(fields.next()?)?;
    let quota = if quota == "max" {
        None
    } else {
        Some(number(quota)?)
    };
    Some((quota, period))
}

/// cgroup v2 `cpu.weight` back to v1 shares, the inverse of the kernel's conversion that
/// runc uses: `2 + (weight - 1) * 262142 / 9999`.
pub(crate) fn weight_to_shares(weight: u64) -> u64 {
    2 + weight.saturating_sub(1).saturating_mul(262_142) / 9_999
}

/// A memory limit: `max` (v2) or a huge number (v1's unlimited) is reported as 0.
pub(crate) fn parse_limit(text: &str) -> Option<u64> {
    match text.trim() {
        "max" => Some(0),
        n => n
            .parse::<u64>()
            .ok()
            .map(|v| if v > UNLIMITED_MEMORY { 0 } else { v }),
    }
}

/// v2 `io.stat`: `MAJ:MIN rbytes=.. wbytes=.. rios=.. wios=.. dbytes=.. dios=..` per line.
pub(crate) fn parse_io_stat(text: &str) -> Vec<DeviceIo> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (major, minor) = parse_dev(fields.next()?)?;
            let mut io = DeviceIo {
                major,
                minor,
                ..DeviceIo::default()
            };
            for field in fields {
                let Some((k, v)) = field.split_once('=') else {
                    continue;
                };
                let v = number(v).unwrap_or(0);
                match k {
                    "rbytes" => io.read_bytes = v,
                    "wbytes" => io.write_bytes = v,
                    "rios" => io.reads = v,
                    "wios" => io.writes = v,
                    _ => {}
                }
            }
            Some(io)
        })
        .collect()
}

/// v1 `blkio.*io_service_bytes*` and `*io_serviced*`: `MAJ:MIN Read|Write|... N` lines.
pub(crate) fn parse_blkio(bytes: &str, ops: &str) -> Vec<DeviceIo> {
    let mut out: Vec<DeviceIo> = Vec::new();
    for (text, is_bytes) in [(bytes, true), (ops, false)] {
        for line in text.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [dev, op, value] = fields[..] else {
                continue;
            };
            let (Some((major, minor)), Some(value)) = (parse_dev(dev), number(value)) else {
                continue;
            };
            let i = match out
                .iter()
                .position(|d| (d.major, d.minor) == (major, minor))
            {
                Some(i) => i,
                None => {
                    out.push(DeviceIo {
                        major,
                        minor,
                        ..DeviceIo::default()
                    });
                    out.len() - 1
                }
            };
            let d = &mut out[i];
            match (op, is_bytes) {
                ("Read", true) => d.read_bytes = value,
                ("Write", true) => d.write_bytes = value,
                ("Read", false) => d.reads = value,
                ("Write", false) => d.writes = value,
                _ => {}
            }
        }
    }
    out
}

/// A PSI file (`some avg10=.. avg60=.. avg300=.. total=<µs>` and a `full` line); a file
/// without a `some` total is not PSI.
pub(crate) fn parse_pressure(text: &str) -> Option<Pressure> {
    let total = |kind: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(kind)?.strip_prefix(' '))
            .and_then(|rest| {
                rest.split_whitespace()
                    .find_map(|f| f.strip_prefix("total="))
                    .and_then(number)
            })
    };
    Some(Pressure {
        some_us: total("some")?,
        full_us: total("full").unwrap_or(0),
    })
}

fn parse_dev(dev: &str) -> Option<(u32, u32)> {
    let (major, minor) = dev.split_once(':')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_max_and_weight() {
        assert_eq!(parse_cpu_max("max 100000\n"), Some((None, 100_000)));
        assert_eq!(
            parse_cpu_max("50000 100000\n"),
            Some((Some(50_000), 100_000))
        );
        assert_eq!(parse_cpu_max("garbage"), None);
        // The kubelet's 1024 shares become weight 39, which maps back to 998 (integer rounding).
        assert_eq!(weight_to_shares(39), 998);
        assert_eq!(weight_to_shares(1), 2);
        assert_eq!(weight_to_shares(10_000), 262_144);
    }

    #[test]
    fn pressure_files() {
        let psi = "some avg10=0.00 avg60=0.10 avg300=0.00 total=123456\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=7890\n";
        assert_eq!(
            parse_pressure(psi),
            Some(Pressure {
                some_us: 123_456,
                full_us: 7_890
            })
        );
        // CPU pressure before Linux 5.13 has no `full` line.
        assert_eq!(
            parse_pressure("some avg10=1.00 avg60=0 avg300=0 total=5\n"),
            Some(Pressure {
                some_us: 5,
                full_us: 0
            })
        );
        assert_eq!(parse_pressure("garbage\n"), None);
        assert_eq!(parse_pressure(""), None);
    }

    #[test]
    fn limits_unlimited_is_zero() {
        assert_eq!(parse_limit("max\n"), Some(0));
        assert_eq!(parse_limit("9223372036854771712\n"), Some(0));
        assert_eq!(parse_limit("268435456\n"), Some(268_435_456));
        assert_eq!(parse_limit("x"), None);
    }

    #[test]
    fn io_files_of_both_versions() {
        let v2 = parse_io_stat("8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\nbad\n");
        assert_eq!(
            v2,
            vec![DeviceIo {
                major: 8,
                minor: 0,
                read_bytes: 4096,
                write_bytes: 8192,
                reads: 1,
                writes: 2
            }]
        );
        let v1 = parse_blkio(
            "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 1\n8:0 Total 12288\nTotal 12288\n",
            "8:0 Read 1\n8:0 Write 2\nTotal 3\n",
        );
        assert_eq!(v1, v2);
    }
}
