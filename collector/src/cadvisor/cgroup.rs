//! The cgroup tree and each cgroup's statistics, for cgroup v2 (one unified hierarchy) and v1
//! (one hierarchy per controller, joined by relative path), read the way runc's cgroup
//! library reads them for cAdvisor. A cgroup may vanish between listing and reading, so every
//! file is optional: what cannot be read is left out, never guessed.
//!
//! The v2 root cgroup has no `memory.current`: its usage is `anon + file` of its
//! `memory.stat` and its swap comes from `<procfs>/meminfo`, as runc emulates it for cAdvisor.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use super::spec::{Spec, Specs};

/// Cgroups listed at most, so a runaway tree cannot make the collector unbounded.
pub(crate) const MAX_CGROUPS: usize = 20_000;
/// v1 controllers whose hierarchies are listed and read.
const V1_CONTROLLERS: &[&str] = &["cpu", "cpuacct", "memory", "blkio", "pids"];
/// Linux's USER_HZ: `cpuacct.stat` counts in these ticks.
const USER_HZ: u64 = 100;
/// cAdvisor reports a memory limit above this as 0 (unlimited).
const UNLIMITED_MEMORY: u64 = 1 << 62;
/// Bytes read of one cgroup file at most; the largest (`memory.stat`, `io.stat` of a host
/// with many disks) are a few KiB.
const MAX_FILE_BYTES: u64 = 1 << 20;

/// Reads cgroup files through one path and one buffer kept across cgroups and collections,
/// so the thousands of small reads of a collection allocate nothing once warm. It also skips
/// std's size probe (`statx` + `lseek` per file), useless on pseudo-files that report a size
/// of 0 or 4096.
#[derive(Debug, Default)]
pub(crate) struct Reader {
    path: PathBuf,
    buf: Vec<u8>,
}

impl Reader {
    /// The text of `dir/name`; `None` when it cannot be opened, read, or is not UTF-8.
    fn read(&mut self, dir: &Path, name: &str) -> Option<&str> {
        self.path.clear();
        self.path.push(dir);
        self.path.push(name);
        let file = File::open(&self.path).ok()?;
        self.buf.clear();
        // `Take` has no size hint, so this is plain read(2) calls into the kept buffer.
        file.take(MAX_FILE_BYTES).read_to_end(&mut self.buf).ok()?;
        std::str::from_utf8(&self.buf).ok()
    }

    fn number(&mut self, dir: &Path, name: &str) -> Option<u64> {
        self.read(dir, name).and_then(number)
    }
}

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

    /// Reads the statistics of one cgroup through `r`; its spec files only when `specs` holds
    /// no current reading of them (see `spec.rs`).
    pub fn stats(&self, cgroup: &str, r: &mut Reader, specs: &mut Specs) -> Stats {
        let controllers: &[&str] = match self.version {
            Version::V2 => &[""],
            Version::V1 => V1_CONTROLLERS,
        };
        let mut s = Stats::default();
        // The directories are looked at first: their inodes tell whether a kept spec is
        // still this cgroup's, or belongs to one removed and created again at the same path.
        let identity = self.start_and_identity(&mut s, controllers, cgroup);
        let spec = specs.get(cgroup, identity).unwrap_or_else(|| {
            let spec = match self.version {
                Version::V2 => self.spec_v2(cgroup, r),
                Version::V1 => self.spec_v1(cgroup, r),
            };
            specs.put(cgroup, identity, spec);
            spec
        });
        s.spec_cpu_period = spec.cpu_period;
        s.spec_cpu_quota = spec.cpu_quota;
        s.spec_cpu_shares = spec.cpu_shares;
        s.spec_memory_limit = spec.memory_limit;
        match self.version {
            Version::V2 => self.stats_v2(cgroup, r, &mut s),
            Version::V1 => self.stats_v1(cgroup, r, &mut s),
        }
        // pids.max is reported only beside pids.current, as the pids controller has both.
        if s.threads.is_some() {
            s.threads_max = spec.threads_max;
        }
        self.procs(&mut s, r, controllers, cgroup);
        s
    }

    /// The v2 spec files: `cpu.max`, `cpu.weight`, `memory.max`, `pids.max`.
    fn spec_v2(&self, cgroup: &str, r: &mut Reader) -> Spec {
        let dir = self.dir("", cgroup);
        let mut spec = Spec::default();
        if let Some((quota, period)) = r.read(&dir, "cpu.max").and_then(parse_cpu_max) {
            spec.cpu_period = Some(period);
            spec.cpu_quota = quota;
        }
        spec.cpu_shares = r.number(&dir, "cpu.weight").map(weight_to_shares);
        spec.memory_limit = r.read(&dir, "memory.max").and_then(parse_limit);
        spec.threads_max = r.read(&dir, "pids.max").and_then(parse_pids_max);
        spec
    }

    /// The v1 spec files of the `cpu`, `memory` and `pids` hierarchies.
    fn spec_v1(&self, cgroup: &str, r: &mut Reader) -> Spec {
        let cpu = self.dir("cpu", cgroup);
        Spec {
            cpu_period: r.number(&cpu, "cpu.cfs_period_us"),
            // -1 means no quota; it does not parse as u64 and is left out, as cAdvisor does.
            cpu_quota: r.number(&cpu, "cpu.cfs_quota_us").filter(|q| *q > 0),
            cpu_shares: r.number(&cpu, "cpu.shares"),
            memory_limit: r
                .read(&self.dir("memory", cgroup), "memory.limit_in_bytes")
                .and_then(parse_limit),
            threads_max: r
                .read(&self.dir("pids", cgroup), "pids.max")
                .and_then(parse_pids_max),
        }
    }

    fn stats_v2(&self, cgroup: &str, r: &mut Reader, s: &mut Stats) {
        let dir = self.dir("", cgroup);
        if let Some(cpu) = r.read(&dir, "cpu.stat") {
            let [usage, user, system, periods, throttled, throttled_us] = keyed_many(
                cpu,
                [
                    "usage_usec",
                    "user_usec",
                    "system_usec",
                    "nr_periods",
                    "nr_throttled",
                    "throttled_usec",
                ],
            );
            s.cpu_usage_ns = usage.map(|v| v.saturating_mul(1000));
            s.cpu_user_ns = user.map(|v| v.saturating_mul(1000));
            s.cpu_system_ns = system.map(|v| v.saturating_mul(1000));
            if let (Some(p), Some(t), Some(us)) = (periods, throttled, throttled_us) {
                s.cfs = Some((p, t, us.saturating_mul(1000)));
            }
        }
        // One pass over memory.stat for every key used below.
        let memory_stat = r.read(&dir, "memory.stat").map(|m| {
            keyed_many(
                m,
                [
                    "anon",
                    "file",
                    "inactive_file",
                    "active_file",
                    "file_mapped",
                    "pgfault",
                    "pgmajfault",
                ],
            )
        });
        let [anon, file, inactive_file, active_file, file_mapped, pgfault, pgmajfault] =
            memory_stat.unwrap_or_default();
        s.memory_usage = r.number(&dir, "memory.current");
        if let Some(usage) = s.memory_usage {
            s.memory_working_set = Some(usage.saturating_sub(inactive_file.unwrap_or(0)));
            // runc reads swap as swap.current on top of memory.current, then cAdvisor
            // subtracts memory.current again: the result is swap.current.
            s.memory_swap = r.number(&dir, "memory.swap.current");
        }
        if s.memory_usage.is_none() && cgroup == "/" {
            if memory_stat.is_some() {
                self.root_memory_v2(s, r, (anon, file, inactive_file));
            }
        } else if s.memory_usage.is_some() {
            s.memory_max_usage = Some(r.number(&dir, "memory.peak").unwrap_or(0));
        }
        s.memory_rss = anon;
        s.memory_cache = file;
        s.memory_mapped_file = file_mapped;
        s.memory_active_file = active_file;
        s.memory_inactive_file = inactive_file;
        // v2 counts faults hierarchically only; cAdvisor reports the figure for both scopes.
        s.pgfault = pgfault.map(|v| (v, v));
        s.pgmajfault = pgmajfault.map(|v| (v, v));
        for (i, resource) in ["cpu.pressure", "memory.pressure", "io.pressure"]
            .iter()
            .enumerate()
        {
            s.pressure[i] = r.read(&dir, resource).and_then(parse_pressure);
        }
        s.oom_kills = r
            .read(&dir, "memory.events")
            .and_then(|e| keyed(e, "oom_kill"));
        s.io = r
            .read(&dir, "io.stat")
            .map(parse_io_stat)
            .unwrap_or_default();
        self.pids(s, r, "pids", cgroup);
    }

    /// The v2 root's memory, which has no `memory.current`: usage is `anon + file`, swap is
    /// the host's swap in use, the limit is none and no peak is known.
    fn root_memory_v2(
        &self,
        s: &mut Stats,
        r: &mut Reader,
        (anon, file, inactive_file): (Option<u64>, Option<u64>, Option<u64>),
    ) {
        let usage = anon.unwrap_or(0).saturating_add(file.unwrap_or(0));
        s.memory_usage = Some(usage);
        s.memory_working_set = Some(usage.saturating_sub(inactive_file.unwrap_or(0)));
        s.memory_max_usage = Some(0);
        s.spec_memory_limit = Some(0);
        s.memory_swap = r.read(&self.procfs, "meminfo").and_then(|m| {
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

    fn stats_v1(&self, cgroup: &str, r: &mut Reader, s: &mut Stats) {
        let cpuacct = self.dir("cpuacct", cgroup);
        let cpu = self.dir("cpu", cgroup);
        let memory = self.dir("memory", cgroup);
        let blkio = self.dir("blkio", cgroup);
        s.cpu_usage_ns = r.number(&cpuacct, "cpuacct.usage");
        if let Some(stat) = r.read(&cpuacct, "cpuacct.stat") {
            let tick_ns = 1_000_000_000 / USER_HZ;
            let [user, system] = keyed_many(stat, ["user", "system"]);
            s.cpu_user_ns = user.map(|t| t.saturating_mul(tick_ns));
            s.cpu_system_ns = system.map(|t| t.saturating_mul(tick_ns));
        }
        if let Some(stat) = r.read(&cpu, "cpu.stat") {
            if let [Some(p), Some(t), Some(ns)] =
                keyed_many(stat, ["nr_periods", "nr_throttled", "throttled_time"])
            {
                s.cfs = Some((p, t, ns));
            }
        }
        // `total_*` covers the cgroup's descendants (use_hierarchy, always on since 5.x).
        let m = r
            .read(&memory, "memory.stat")
            .map(|m| {
                keyed_many(
                    m,
                    [
                        "total_inactive_file",
                        "inactive_file",
                        "total_rss",
                        "rss",
                        "total_cache",
                        "cache",
                        "total_swap",
                        "swap",
                        "total_mapped_file",
                        "mapped_file",
                        "total_active_file",
                        "active_file",
                        "pgfault",
                        "total_pgfault",
                        "pgmajfault",
                        "total_pgmajfault",
                    ],
                )
            })
            .unwrap_or_default();
        let hierarchical = |i: usize| m[i].or(m[i + 1]);
        s.memory_usage = r.number(&memory, "memory.usage_in_bytes");
        if let Some(usage) = s.memory_usage {
            s.memory_working_set = Some(usage.saturating_sub(hierarchical(0).unwrap_or(0)));
        }
        s.memory_rss = hierarchical(2);
        s.memory_cache = hierarchical(4);
        s.memory_swap = hierarchical(6);
        s.memory_failcnt = r.number(&memory, "memory.failcnt");
        if s.memory_usage.is_some() {
            s.memory_max_usage = Some(r.number(&memory, "memory.max_usage_in_bytes").unwrap_or(0));
            s.memory_kernel = r.number(&memory, "memory.kmem.usage_in_bytes");
        }
        s.memory_mapped_file = hierarchical(8);
        s.memory_active_file = hierarchical(10);
        s.memory_inactive_file = hierarchical(0);
        // The cgroup's own count, and its hierarchy's where the kernel gives one.
        let faults = |own: Option<u64>, total: Option<u64>| own.map(|o| (o, total.unwrap_or(o)));
        s.pgfault = faults(m[12], m[13]);
        s.pgmajfault = faults(m[14], m[15]);
        s.oom_kills = r
            .read(&memory, "memory.oom_control")
            .and_then(|c| keyed(c, "oom_kill"));
        // The recursive file covers descendants; it is empty on kernels that only account
        // throttled I/O, which is then read instead (runc does the same).
        let mut blkio_file = |names: [&str; 3]| {
            names.iter().find_map(|name| {
                r.read(&blkio, name)
                    .filter(|t| !t.trim().is_empty())
                    .map(str::to_owned)
            })
        };
        if let Some(bytes) = blkio_file([
            "blkio.io_service_bytes_recursive",
            "blkio.throttle.io_service_bytes_recursive",
            "blkio.throttle.io_service_bytes",
        ]) {
            let ops = blkio_file([
                "blkio.io_serviced_recursive",
                "blkio.throttle.io_serviced_recursive",
                "blkio.throttle.io_serviced",
            ])
            .unwrap_or_default();
            s.io = parse_blkio(&bytes, &ops);
        }
        self.pids(s, r, "pids", cgroup);
    }

    fn pids(&self, s: &mut Stats, r: &mut Reader, controller: &str, cgroup: &str) {
        let dir = self.dir(controller, cgroup);
        s.threads = r.number(&dir, "pids.current");
    }

    /// `cgroup.procs` (processes directly in the cgroup), from the first hierarchy that has it.
    fn procs(&self, s: &mut Stats, r: &mut Reader, controllers: &[&str], cgroup: &str) {
        for c in controllers {
            if let Some(text) = r.read(&self.dir(c, cgroup), "cgroup.procs") {
                s.pids = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
                s.processes = Some(s.pids.len() as u64);
                return;
            }
        }
    }

    /// The start time, the oldest directory modification time over the hierarchies as
    /// cAdvisor takes it; returns the directories' inodes folded into one identity (0 when
    /// none exists).
    fn start_and_identity(&self, s: &mut Stats, controllers: &[&str], cgroup: &str) -> u64 {
        let mut identity = 0u64;
        for c in controllers {
            let Ok(meta) = std::fs::metadata(self.dir(c, cgroup)) else {
                continue;
            };
            identity = identity.rotate_left(17) ^ meta.ino();
            let modified = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map(|d| d.as_secs_f64());
            if let Some(t) = modified {
                s.start_time = Some(s.start_time.map_or(t, |old: f64| old.min(t)));
            }
        }
        identity
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

/// The values of `keys` in a flat-keyed file, in one pass; each as [`keyed`] finds it.
pub(crate) fn keyed_many<const N: usize>(text: &str, keys: [&str; N]) -> [Option<u64>; N] {
    let mut out = [None; N];
    for line in text.lines() {
        let Some((k, v)) = line.split_once(' ') else {
            continue;
        };
        if let Some(i) = keys.iter().position(|key| *key == k) {
            if out[i].is_none() {
                out[i] = number(v);
            }
        }
    }
    out
}

/// `pids.max`: a count, or `max` (no limit) reported as 0.
fn parse_pids_max(text: &str) -> Option<u64> {
    match text.trim() {
        "max" => Some(0),
        n => n.parse().ok(),
    }
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
    fn keyed_many_finds_what_keyed_finds() {
        let text = "anon 10\nfile x\nfile 20\ntotal_anon 30\nnoval\nanon 99\n";
        let keys = ["anon", "file", "total_anon", "missing", "noval"];
        let many = keyed_many(text, keys);
        for (key, got) in keys.iter().zip(many) {
            assert_eq!(got, keyed(text, key), "{key}");
        }
        assert_eq!(many, [Some(10), Some(20), Some(30), None, None]);
    }

    #[test]
    fn reader_reuses_its_buffer_and_reports_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), "long text here\n").unwrap();
        std::fs::write(dir.path().join("b"), "7\n").unwrap();
        let mut r = Reader::default();
        assert_eq!(r.read(dir.path(), "a"), Some("long text here\n"));
        // A shorter file after a longer one leaves nothing of the first behind.
        assert_eq!(r.number(dir.path(), "b"), Some(7));
        assert_eq!(r.read(dir.path(), "b"), Some("7\n"));
        assert_eq!(r.read(dir.path(), "missing"), None);
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
