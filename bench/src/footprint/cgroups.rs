//! The node the agent watches: a sysfs whose `fs/cgroup` is a fake cgroup v2 tree (systemd
//! driver, containerd naming, as on a kubeadm node) holding a given number of pods of two
//! containers each (the app and its sandbox), and everything else linked to the real /sys; the
//! API server's pod list naming those pods and containers; and the ticks that move the
//! containers' CPU and memory between collections, as running containers do.
//!
//! The files follow the kernel's formats as the collector's fixtures write them
//! (`collector/src/cadvisor/tests.rs`). Each container cgroup lists a process of its own (a
//! `sleep` started for it and killed with the node), as each container on a node runs its own
//! processes: the agent's per-process reads (open files, the pod's `net/dev`) are real reads of
//! distinct pids, so nothing it keeps by pid is flattered by one pid seen 200 times.

use crate::gen::Rng;
use anyhow::Context;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Namespaces the pods are spread over.
const NAMESPACES: &[&str] = &["shop", "payments", "search", "monitoring", "default"];
/// QoS classes, by the slice the pod's cgroup sits in ("" is Guaranteed: directly under
/// `kubepods.slice`).
const QOS: &[&str] = &["burstable", "besteffort", ""];
/// System services with a cgroup of their own, as a node has them.
const SERVICES: &[&str] = &[
    "containerd.service",
    "kubelet.service",
    "ssh.service",
    "systemd-journald.service",
    "chrony.service",
];

/// One container's cgroup and what moves in it.
#[derive(Debug)]
struct Cgroup {
    dir: PathBuf,
    /// CPU microseconds used per tick.
    cpu_per_tick: u64,
    /// Memory held, bytes.
    memory: u64,
}

/// The fake node: its sysfs root, the pod list and the container cgroups that move.
#[derive(Debug)]
pub struct Node {
    pub sysfs: PathBuf,
    pub pod_list: Value,
    containers: Vec<Cgroup>,
    /// One long-lived process per container cgroup, the one its `cgroup.procs` lists.
    processes: Processes,
    ticks: u64,
    /// Set when the run is over: no more writes, so the tree can be removed.
    stopped: bool,
}

impl Node {
    /// Builds the sysfs under `root` with `pods` pods (two container cgroups each) on node
    /// `node_name`, starting one process per container cgroup to list in it.
    pub fn create(root: &Path, node_name: &str, pods: usize, seed: u64) -> anyhow::Result<Node> {
        let sysfs = root.join("sys");
        link_real_sysfs(&sysfs)?;
        let cg = sysfs.join("fs/cgroup");
        write(
            &cg.join("cgroup.controllers"),
            "cpuset cpu io memory pids\n",
        )?;
        write(
            &cg.join("cpu.stat"),
            "usage_usec 90000000000\nuser_usec 60000000000\nsystem_usec 30000000000\n",
        )?;
        write(
            &cg.join("memory.stat"),
            "anon 3000000000\nfile 5000000000\nactive_file 1000000000\ninactive_file 2000000000\nfile_mapped 70000000\npgfault 900000\npgmajfault 900\n",
        )?;
        let device = block_device();
        let mut rng = Rng::new(seed);
        for service in SERVICES {
            let dir = cg.join("system.slice").join(service);
            cgroup_files(&dir, "", rng.range(5e6, 5e8) as u64, &device, 1_000_000)?;
        }
        cgroup_files(&cg.join("init.scope"), "1\n", 20_000_000, &device, 100_000)?;
        cgroup_files(&cg.join("user.slice"), "", 80_000_000, &device, 100_000)?;
        let kubepods = cg.join("kubepods.slice");
        let mut items = Vec::with_capacity(pods);
        let mut containers = Vec::with_capacity(2 * pods);
        let mut processes = Processes(Vec::with_capacity(2 * pods));
        for i in 0..pods {
            let uid = uuid(&mut rng);
            let namespace = NAMESPACES[i % NAMESPACES.len()];
            let app = ["api", "worker", "frontend", "cache", "indexer"][i % 5];
            let name = format!("{app}-{i:03}-{:05x}", rng.below(1 << 20));
            let image = format!(
                "registry.example.com/{namespace}/{app}:1.{}.{}",
                i % 7,
                i % 3
            );
            let (app_id, pause_id) = (hex64(&mut rng), hex64(&mut rng));
            let qos = QOS[i % QOS.len()];
            let slice = match qos {
                "" => kubepods.clone(),
                q => kubepods.join(format!("kubepods-{q}.slice")),
            };
            let pod_unit = match qos {
                "" => format!("kubepods-pod{}.slice", uid.replace('-', "_")),
                q => format!("kubepods-{q}-pod{}.slice", uid.replace('-', "_")),
            };
            let pod_dir = slice.join(pod_unit);
            let limit = if qos == "besteffort" { 0 } else { 512 << 20 };
            cgroup_files(&pod_dir, "", 0, &device, limit)?;
            for (id, memory) in [(&app_id, rng.range(3e7, 4e8) as u64), (&pause_id, 700_000)] {
                let dir = pod_dir.join(format!("cri-containerd-{id}.scope"));
                let pid = processes.start()?;
                cgroup_files(&dir, &format!("{pid}\n"), memory, &device, limit)?;
                containers.push(Cgroup {
                    dir,
                    cpu_per_tick: if memory > 1_000_000 {
                        rng.range(1e5, 3e6) as u64
                    } else {
                        1_000
                    },
                    memory,
                });
            }
            items.push(json!({
                "metadata": {
                    "name": name, "namespace": namespace, "uid": uid,
                    "labels": {"app.kubernetes.io/name": app, "pod-template-hash": format!("{:010x}", rng.below(1 << 40))},
                },
                "spec": {"nodeName": node_name, "containers": [{"name": app, "image": image}]},
                "status": {
                    "phase": "Running",
                    "podIP": format!("10.244.{}.{}", i / 250, i % 250 + 2),
                    "containerStatuses": [{
                        "name": app, "image": image,
                        "imageID": format!("{image}@sha256:{}", hex64(&mut rng)),
                        "containerID": format!("containerd://{app_id}"),
                        "restartCount": i % 4, "ready": true, "started": true,
                    }],
                },
            }));
        }
        let pod_list = json!({
            "kind": "PodList", "apiVersion": "v1",
            "metadata": {"resourceVersion": "1000"},
            "items": items,
        });
        let mut node = Node {
            sysfs,
            pod_list,
            containers,
            processes,
            ticks: 0,
            stopped: false,
        };
        node.tick()?;
        Ok(node)
    }

    /// Container cgroups (two per pod).
    pub fn containers(&self) -> usize {
        self.containers.len()
    }

    /// Ends the ticks (later calls to [`Node::tick`] write nothing) and the containers'
    /// processes.
    pub fn stop(&mut self) {
        self.stopped = true;
        self.processes.end();
    }

    /// Moves every container on by one interval: CPU counters grow, memory wobbles. Files
    /// are replaced by rename, so a collection never reads half a file.
    pub fn tick(&mut self) -> anyhow::Result<()> {
        if self.stopped {
            return Ok(());
        }
        self.ticks += 1;
        let t = self.ticks;
        for (i, c) in self.containers.iter().enumerate() {
            let usage = c.cpu_per_tick * t;
            let (user, system) = (usage * 7 / 10, usage - usage * 7 / 10);
            let periods = t * 150;
            write(
                &c.dir.join("cpu.stat"),
                &format!(
                    "usage_usec {usage}\nuser_usec {user}\nsystem_usec {system}\nnr_periods {periods}\nnr_throttled {}\nthrottled_usec {}\n",
                    periods / 50,
                    periods * 40
                ),
            )?;
            // ±3 % around the container's size, a different phase per container.
            let wobble = ((t as f64 + i as f64) * 0.7).sin() * 0.03;
            let memory = (c.memory as f64 * (1.0 + wobble)) as u64;
            let inactive = memory / 8;
            write(&c.dir.join("memory.current"), &format!("{memory}\n"))?;
            write(
                &c.dir.join("memory.stat"),
                &format!(
                    "anon {}\nfile {}\nactive_file {}\ninactive_file {inactive}\nfile_mapped {}\npgfault {}\npgmajfault {}\n",
                    memory * 3 / 4,
                    memory / 4,
                    memory / 8,
                    memory / 32,
                    t * 1000,
                    t
                ),
            )?;
        }
        Ok(())
    }
}

/// The containers' processes, killed (and reaped) on drop.
#[derive(Debug)]
struct Processes(Vec<Child>);

impl Processes {
    /// Starts one more idle process and returns its pid.
    fn start(&mut self) -> anyhow::Result<u32> {
        let child = Command::new("sleep")
            .arg("100000")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start a container's process (sleep)")?;
        let pid = child.id();
        self.0.push(child);
        Ok(pid)
    }

    /// Kills and reaps every process started.
    fn end(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
        }
        for mut child in self.0.drain(..) {
            let _ = child.wait();
        }
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        self.end();
    }
}

/// Every cgroup v2 file the container collector reads, for one cgroup holding `procs`.
fn cgroup_files(
    dir: &Path,
    procs: &str,
    memory: u64,
    device: &str,
    limit: u64,
) -> anyhow::Result<()> {
    let max = |v: u64| {
        if v == 0 {
            "max".to_string()
        } else {
            v.to_string()
        }
    };
    let psi = "some avg10=0.00 avg60=0.00 avg300=0.00 total=150000\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=50000\n";
    let files: [(&str, String); 15] = [
        ("cgroup.procs", procs.to_string()),
        (
            "cpu.stat",
            "usage_usec 0\nuser_usec 0\nsystem_usec 0\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n".into(),
        ),
        ("cpu.max", if limit == 0 { "max 100000\n".into() } else { "50000 100000\n".into() }),
        ("cpu.weight", "39\n".into()),
        ("memory.current", format!("{memory}\n")),
        ("memory.stat", format!("anon {memory}\nfile 0\ninactive_file 0\n")),
        ("memory.max", format!("{}\n", max(limit))),
        ("memory.peak", format!("{}\n", memory + memory / 5)),
        ("memory.events", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n".into()),
        ("memory.swap.current", "0\n".into()),
        (
            "io.stat",
            format!("{device} rbytes=1048576 wbytes=2097152 rios=10 wios=20 dbytes=0 dios=0\n"),
        ),
        ("pids.current", format!("{}\n", procs.lines().count())),
        ("pids.max", "max\n".into()),
        ("cpu.pressure", psi.into()),
        ("memory.pressure", psi.into()),
    ];
    for (name, text) in files {
        write(&dir.join(name), &text)?;
    }
    write(&dir.join("io.pressure"), psi)
}

/// Makes `sysfs` a directory whose every entry links to the real /sys, except `fs/cgroup`,
/// which is left for the fake tree: the agent's node collectors read the real machine, as
/// node_exporter does.
fn link_real_sysfs(sysfs: &Path) -> anyhow::Result<()> {
    let fs = sysfs.join("fs");
    std::fs::create_dir_all(&fs)?;
    for (real, fake, skip) in [
        (Path::new("/sys"), sysfs, "fs"),
        (Path::new("/sys/fs"), &fs, "cgroup"),
    ] {
        let Ok(entries) = std::fs::read_dir(real) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            if entry.file_name() != skip {
                std::os::unix::fs::symlink(entry.path(), fake.join(entry.file_name()))
                    .with_context(|| format!("link {}", entry.path().display()))?;
            }
        }
    }
    Ok(())
}

/// `MAJ:MIN` of a real block device (so the agent's device lookup reads a real uevent), or
/// 8:0 on a machine without one.
fn block_device() -> String {
    std::fs::read_dir("/sys/dev/block")
        .ok()
        .and_then(|mut entries| entries.find_map(|e| e.ok()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .unwrap_or_else(|| "8:0".to_string())
}

/// Writes `text` to `path` through a temporary file and a rename.
fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    let dir = path.parent().context("file without a directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let tmp = dir.join(".tmp");
    std::fs::write(&tmp, text).with_context(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("rename to {}", path.display()))
}

fn hex64(rng: &mut Rng) -> String {
    (0..4).map(|_| format!("{:016x}", rng.next_u64())).collect()
}

fn uuid(rng: &mut Rng) -> String {
    let h = format!("{:016x}{:016x}", rng.next_u64(), rng.next_u64());
    format!(
        "{}-{}-4{}-8{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_a_v2_tree_the_collector_recognises() {
        let dir = tempfile::tempdir().unwrap();
        let mut node = Node::create(dir.path(), "n1", 6, 7).unwrap();
        assert_eq!(node.containers(), 12);
        let pids: Vec<u32> = node.processes.0.iter().map(Child::id).collect();
        assert_eq!(pids.len(), 12);
        let distinct: std::collections::BTreeSet<u32> = pids.iter().copied().collect();
        assert_eq!(distinct.len(), 12, "one process per container");
        assert!(pids
            .iter()
            .all(|p| Path::new(&format!("/proc/{p}")).exists()));
        let cg = node.sysfs.join("fs/cgroup");
        assert!(cg.join("cgroup.controllers").is_file());
        // Real sysfs entries are linked beside the fake tree.
        if Path::new("/sys/devices").is_dir() {
            assert!(node.sysfs.join("devices").exists());
        }
        let items = node.pod_list["items"].as_array().unwrap();
        assert_eq!(items.len(), 6);
        // Each pod's app container is named in its status and has a scope listing a live
        // process of its own.
        for (pod, qos) in items.iter().zip(QOS.iter().cycle()) {
            let uid = pod["metadata"]["uid"].as_str().unwrap();
            assert_eq!(uid.len(), 36);
            let id = pod["status"]["containerStatuses"][0]["containerID"]
                .as_str()
                .unwrap()
                .strip_prefix("containerd://")
                .unwrap();
            let unit = match *qos {
                "" => format!("kubepods-pod{}.slice", uid.replace('-', "_")),
                q => format!(
                    "kubepods-{q}.slice/kubepods-{q}-pod{}.slice",
                    uid.replace('-', "_")
                ),
            };
            let scope = cg
                .join("kubepods.slice")
                .join(unit)
                .join(format!("cri-containerd-{id}.scope"));
            let procs = std::fs::read_to_string(scope.join("cgroup.procs")).unwrap();
            let pid: u32 = procs.trim().parse().unwrap();
            assert!(pids.contains(&pid), "{procs}");
        }
        let stat =
            |node: &Node| std::fs::read_to_string(node.containers[0].dir.join("cpu.stat")).unwrap();
        let before = stat(&node);
        node.tick().unwrap();
        assert_ne!(stat(&node), before, "CPU moves between ticks");
        let moved = stat(&node);
        node.stop();
        node.tick().unwrap();
        assert_eq!(stat(&node), moved, "a stopped node writes nothing");
        for p in pids {
            // Killed and reaped: the pid is gone (or, rarely, already reused by another).
            let status = std::fs::read_to_string(format!("/proc/{p}/cmdline")).unwrap_or_default();
            assert!(!status.starts_with("sleep\x00100000"), "pid {p} still runs");
        }
        assert!(node.processes.0.is_empty());
    }

    #[test]
    fn uuids_have_the_api_servers_shape() {
        let u = uuid(&mut Rng::new(1));
        let lengths: Vec<usize> = u.split('-').map(str::len).collect();
        assert_eq!(lengths, [8, 4, 4, 4, 12]);
        assert_eq!(&u[14..15], "4");
        assert_eq!(hex64(&mut Rng::new(1)).len(), 64);
    }
}
