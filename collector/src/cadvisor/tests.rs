//! The container collector over fixture cgroup trees (v2 with the systemd driver, v1 with the
//! cgroupfs driver) built from the kernel's file formats, compared with golden expositions in
//! `testdata/` (`UPDATE_GOLDEN=1` rewrites them), and once over this machine's real tree.

use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use super::*;
use crate::family::Family;

const POD_UID: &str = "6f1d2c3b-4a5e-4f60-8a7b-9c0d1e2f3a4b";
const CRIO_UID: &str = "11111111-2222-4333-8444-555555555555";
const APP_ID: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const PAUSE_ID: &str = "2222222222222222222222222222222222222222222222222222222222222222";
const CRIO_ID: &str = "3333333333333333333333333333333333333333333333333333333333333333";
/// When every fixture cgroup was "created".
const CREATED: u64 = 1_700_000_000;
const NOW_MS: i64 = 1_700_000_100_000;

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// Sets every directory's modification time under `dir`, after all files are written.
fn set_created(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            set_created(&entry.path());
        }
    }
    let f = std::fs::File::open(dir).unwrap();
    f.set_modified(UNIX_EPOCH + Duration::from_secs(CREATED))
        .unwrap();
}

/// The API server's answer for this node's pods (trimmed to the fields that matter).
fn pod_list() -> serde_json::Value {
    serde_json::json!({
        "kind": "PodList",
        "apiVersion": "v1",
        "metadata": {"resourceVersion": "1234"},
        "items": [{
            "metadata": {"name": "web-7d9f", "namespace": "shop", "uid": POD_UID},
            "spec": {"nodeName": "node-a", "containers": [{"name": "app", "image": "nginx:1.25"}]},
            "status": {
                "phase": "Running",
                "containerStatuses": [{
                    "name": "app",
                    "image": "docker.io/library/nginx:1.25",
                    "imageID": "docker.io/library/nginx@sha256:00",
                    "containerID": format!("containerd://{APP_ID}"),
                    "restartCount": 0,
                    "ready": true
                }]
            }
        }, {
            "metadata": {"name": "db-0", "namespace": "data", "uid": CRIO_UID},
            "spec": {"nodeName": "node-a"},
            "status": {"containerStatuses": [{
                "name": "pg", "image": "postgres:16",
                "containerID": format!("cri-o://{CRIO_ID}"), "restartCount": 3
            }]}
        }]
    })
}

/// `<procfs>/<pid>/fd/<n>` links to `targets`.
fn open_fds(procfs: &Path, pid: u32, targets: &[&str]) {
    let dir = procfs.join(format!("{pid}/fd"));
    std::fs::create_dir_all(&dir).unwrap();
    for (i, target) in targets.iter().enumerate() {
        std::os::unix::fs::symlink(target, dir.join(i.to_string())).unwrap();
    }
}

fn net_dev(procfs: &Path, pid: u32) {
    write(
        &procfs.join(format!("{pid}/net/dev")),
        "Inter-|   Receive                                                |  Transmit\n \
         face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
         lo:     100       1    0    0    0     0          0         0      100       1    0    0    0     0       0          0\n  \
         eth0:    5000      40    1    2    0     0          0         0     7000      50    3    4    0     0       0          0\n",
    );
}

/// cgroup v2, systemd driver: a containerd pod (app + sandbox), a CRI-O pod, a system service.
fn v2_tree(sysfs: &Path, procfs: &Path) {
    let cg = sysfs.join("fs/cgroup");
    write(
        &cg.join("cgroup.controllers"),
        "cpuset cpu io memory pids\n",
    );
    write(
        &cg.join("cpu.stat"),
        "usage_usec 9000000\nuser_usec 6000000\nsystem_usec 3000000\n",
    );
    // The root has no memory.current: usage is anon + file, swap comes from meminfo.
    write(
        &cg.join("memory.stat"),
        "anon 300000000\nfile 500000000\nactive_file 100000000\ninactive_file 200000000\nfile_mapped 7000000\npgfault 900\npgmajfault 9\n",
    );
    write(
        &procfs.join("meminfo"),
        "MemTotal:       16000000 kB\nMemFree:         8000000 kB\nSwapTotal:       2097152 kB\nSwapFree:        1048576 kB\n",
    );
    let pod = cg.join(format!(
        "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice",
        POD_UID.replace('-', "_")
    ));
    write(&pod.join("cgroup.procs"), "");
    write(
        &pod.join("cpu.stat"),
        "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n",
    );
    write(&pod.join("cpu.max"), "max 100000\n");
    write(&pod.join("cpu.weight"), "4\n");
    write(&pod.join("memory.current"), "12582912\n");
    write(
        &pod.join("memory.stat"),
        "anon 4194304\nfile 6291456\ninactive_file 2097152\n",
    );
    write(&pod.join("memory.max"), "max\n");
    write(
        &pod.join("memory.pressure"),
        "some avg10=0.00 avg60=0.00 avg300=0.00 total=1500000\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=500000\n",
    );
    let app = pod.join(format!("cri-containerd-{APP_ID}.scope"));
    write(&app.join("cgroup.procs"), "4242\n4243\n");
    write(
        &app.join("cpu.stat"),
        "usage_usec 2000000\nuser_usec 1500000\nsystem_usec 500000\nnr_periods 100\nnr_throttled 7\nthrottled_usec 350000\n",
    );
    write(&app.join("cpu.max"), "50000 100000\n");
    write(&app.join("cpu.weight"), "39\n");
    write(&app.join("memory.current"), "10485760\n");
    write(
        &app.join("memory.stat"),
        "anon 4194304\nfile 5242880\nactive_file 1048576\ninactive_file 1048576\nfile_mapped 65536\npgfault 1200\npgmajfault 3\n",
    );
    write(&app.join("memory.peak"), "20971520\n");
    write(
        &app.join("cpu.pressure"),
        "some avg10=0.00 avg60=0.00 avg300=0.00 total=250000\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=125000\n",
    );
    write(
        &app.join("io.pressure"),
        "some avg10=0.00 avg60=0.00 avg300=0.00 total=42\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=21\n",
    );
    open_fds(procfs, 4242, &["/dev/null", "socket:[100]", "socket:[101]"]);
    open_fds(procfs, 4243, &["pipe:[7]"]);
    write(&app.join("memory.swap.current"), "4096\n");
    write(&app.join("memory.max"), "268435456\n");
    write(
        &app.join("memory.events"),
        "low 0\nhigh 0\nmax 2\noom 1\noom_kill 1\n",
    );
    write(
        &app.join("io.stat"),
        "8:0 rbytes=1048576 wbytes=2097152 rios=10 wios=20 dbytes=0 dios=0\n",
    );
    write(&app.join("pids.current"), "3\n");
    write(&app.join("pids.max"), "max\n");
    let pause = pod.join(format!("cri-containerd-{PAUSE_ID}.scope"));
    write(&pause.join("cgroup.procs"), "4200\n");
    write(
        &pause.join("cpu.stat"),
        "usage_usec 10000\nuser_usec 5000\nsystem_usec 5000\n",
    );
    let crio_pod = cg.join(format!(
        "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{}.slice",
        CRIO_UID.replace('-', "_")
    ));
    write(
        &crio_pod
            .join(format!("crio-{CRIO_ID}.scope"))
            .join("cpu.stat"),
        "usage_usec 1000\nuser_usec 1000\nsystem_usec 0\n",
    );
    let svc = cg.join("system.slice/containerd.service");
    write(&svc.join("cgroup.procs"), "900\n");
    write(&svc.join("memory.current"), "50000000\n");
    write(
        &svc.join("memory.stat"),
        "anon 30000000\nfile 20000000\ninactive_file 60000000\n",
    );
    write(&svc.join("memory.max"), "max\n");
    write(
        &sysfs.join("dev/block/8:0/uevent"),
        "MAJOR=8\nMINOR=0\nDEVNAME=sda\nDEVTYPE=disk\n",
    );
    net_dev(procfs, 4200);
    set_created(&cg);
}

/// cgroup v1, cgroupfs driver, containerd: one guaranteed pod with one container.
fn v1_tree(sysfs: &Path, procfs: &Path) {
    let cg = sysfs.join("fs/cgroup");
    let pod = format!("kubepods/pod{POD_UID}");
    let app = format!("{pod}/{APP_ID}");
    for c in ["cpu", "cpuacct", "memory", "blkio", "pids"] {
        std::fs::create_dir_all(cg.join(c).join(&app)).unwrap();
    }
    let at = |c: &str, cgroup: &str, file: &str| cg.join(c).join(cgroup).join(file);
    write(&at("cpuacct", "", "cpuacct.usage"), "20000000000\n");
    write(
        &at("cpuacct", "", "cpuacct.stat"),
        "user 1500\nsystem 500\n",
    );
    write(&at("cpuacct", &app, "cpuacct.usage"), "1500000000\n");
    write(
        &at("cpuacct", &app, "cpuacct.stat"),
        "user 100\nsystem 50\n",
    );
    write(&at("cpu", &app, "cgroup.procs"), "5151\n");
    write(
        &at("cpu", &app, "cpu.stat"),
        "nr_periods 40\nnr_throttled 4\nthrottled_time 120000000\n",
    );
    write(&at("cpu", &app, "cpu.cfs_period_us"), "100000\n");
    write(&at("cpu", &app, "cpu.cfs_quota_us"), "25000\n");
    write(&at("cpu", &app, "cpu.shares"), "256\n");
    write(&at("cpu", &pod, "cpu.cfs_period_us"), "100000\n");
    write(&at("cpu", &pod, "cpu.cfs_quota_us"), "-1\n");
    write(&at("cpu", &pod, "cpu.shares"), "256\n");
    write(&at("memory", &app, "memory.usage_in_bytes"), "8388608\n");
    write(
        &at("memory", &app, "memory.stat"),
        "cache 100\nrss 200\nmapped_file 10\npgfault 50\npgmajfault 1\ntotal_cache 3145728\ntotal_rss 4194304\ntotal_swap 0\ntotal_mapped_file 524288\ntotal_active_file 2097152\ntotal_inactive_file 1048576\ntotal_pgfault 70\ntotal_pgmajfault 2\n",
    );
    write(
        &at("memory", &app, "memory.max_usage_in_bytes"),
        "16777216\n",
    );
    write(
        &at("memory", &app, "memory.kmem.usage_in_bytes"),
        "1048576\n",
    );
    write(&at("memory", &app, "memory.failcnt"), "5\n");
    write(&at("memory", &app, "memory.limit_in_bytes"), "134217728\n");
    write(
        &at("memory", &app, "memory.oom_control"),
        "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
    );
    write(
        &at("memory", &pod, "memory.limit_in_bytes"),
        "9223372036854771712\n",
    );
    write(&at("blkio", &app, "blkio.io_service_bytes_recursive"), "");
    write(
        &at("blkio", &app, "blkio.throttle.io_service_bytes_recursive"),
        "253:0 Read 4096\n253:0 Write 0\n253:0 Sync 4096\n253:0 Async 0\n253:0 Total 4096\nTotal 4096\n",
    );
    write(
        &at("blkio", &app, "blkio.throttle.io_serviced_recursive"),
        "253:0 Read 1\n253:0 Write 0\nTotal 1\n",
    );
    write(&at("pids", &app, "pids.current"), "1\n");
    write(&at("pids", &app, "pids.max"), "1024\n");
    write(
        &sysfs.join("dev/block/253:0/uevent"),
        "MAJOR=253\nMINOR=0\nDEVNAME=dm-0\n",
    );
    net_dev(procfs, 5151);
    set_created(&cg);
}

/// The text exposition of `families`, label names sorted as client_golang writes them.
fn render(families: &[Family]) -> String {
    let mut out = String::new();
    for f in families {
        let kind = match f.kind {
            crate::family::MetricType::Counter => "counter",
            crate::family::MetricType::Gauge => "gauge",
            crate::family::MetricType::Untyped => "untyped",
        };
        out.push_str(&format!(
            "# HELP {} {}\n# TYPE {} {kind}\n",
            f.name, f.help, f.name
        ));
        for p in &f.points {
            let mut labels: Vec<(&str, &str)> = p.all_labels().collect();
            labels.sort();
            let labels: Vec<String> = labels.iter().map(|(n, v)| format!("{n}=\"{v}\"")).collect();
            out.push_str(&format!("{}{{{}}} {}\n", f.name, labels.join(","), p.value));
        }
    }
    out
}

fn check_golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/cadvisor/testdata")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap();
    assert!(
        expected == actual,
        "{name} differs from the collector's output (UPDATE_GOLDEN=1 rewrites it):\n{actual}"
    );
}

/// A collector's settings reading the trees at `sysfs` and `procfs`.
fn config(sysfs: &Path, procfs: &Path) -> CadvisorConfig {
    let mut cfg = CadvisorConfig::new("node-a");
    cfg.sysfs = sysfs.to_path_buf();
    cfg.procfs = procfs.to_path_buf();
    cfg
}

fn collect(sysfs: &Path, procfs: &Path, pods: Option<serde_json::Value>) -> Vec<Family> {
    let cfg = config(sysfs, procfs);
    if let Some(list) = pods {
        *cfg.pods.write().unwrap() = PodIndex::from_pod_list(&list);
    }
    cfg.build().unwrap().families(NOW_MS as f64 / 1000.0)
}

/// A batch as it ships: its metadata, then every series (labels as Prometheus prints them)
/// with its samples, in the order the batch holds them.
fn render_batch(batch: &MetricBatch) -> String {
    let mut out = String::new();
    for m in &batch.metadata {
        out.push_str(&format!(
            "# {} {} {}\n",
            m.metric_family_name, m.r#type, m.help
        ));
    }
    for s in &batch.series {
        let samples: Vec<String> = s
            .samples
            .iter()
            .map(|x| format!("{} @{}", x.v, x.t))
            .collect();
        out.push_str(&format!("{} {}\n", s.labels, samples.join(" ")));
    }
    out
}

fn source(sysfs: &Path, procfs: &Path, pods: Option<serde_json::Value>) -> CadvisorSource {
    let cfg = config(sysfs, procfs);
    if let Some(list) = pods {
        *cfg.pods.write().unwrap() = PodIndex::from_pod_list(&list);
    }
    cfg.build().unwrap()
}

/// The series the collector ships, target labels and all, exactly as the golden batches
/// hold them: a change to any emitted series fails here.
#[test]
fn batches_match_golden_series() {
    for (name, tree) in [
        ("v2_systemd.series", v2_tree as fn(&Path, &Path)),
        ("v1_cgroupfs.series", v1_tree),
    ] {
        let (sys, proc) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        tree(sys.path(), proc.path());
        let batch = source(sys.path(), proc.path(), Some(pod_list())).collect(NOW_MS);
        check_golden(name, &render_batch(&batch));
    }
}

#[test]
fn cgroup_v2_systemd_driver_with_pods() {
    let (sys, proc) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    v2_tree(sys.path(), proc.path());
    let families = collect(sys.path(), proc.path(), Some(pod_list()));
    check_golden("v2_systemd.prom", &render(&families));
}

#[test]
fn cgroup_v1_cgroupfs_driver_with_pods() {
    let (sys, proc) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    v1_tree(sys.path(), proc.path());
    let families = collect(sys.path(), proc.path(), Some(pod_list()));
    check_golden("v1_cgroupfs.prom", &render(&families));
}

#[test]
fn without_a_pod_list_cgroups_carry_only_their_path() {
    let (sys, proc) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    v2_tree(sys.path(), proc.path());
    let families = collect(sys.path(), proc.path(), None);
    let usage = families
        .iter()
        .find(|f| f.name == "container_cpu_usage_seconds_total")
        .unwrap();
    let app = usage
        .points
        .iter()
        .find(|p| {
            p.all_labels()
                .any(|(n, v)| n == "id" && v.ends_with(&format!("{APP_ID}.scope")))
        })
        .unwrap();
    let get = |name: &str| app.all_labels().find(|(n, _)| *n == name).unwrap().1;
    assert_eq!(
        (get("pod"), get("namespace"), get("container"), get("image")),
        ("", "", "", "")
    );
    // The runtime's name is known from the path alone.
    assert_eq!(get("name"), APP_ID);
}

#[test]
fn no_cgroup_tree_gives_no_families_and_batch_carries_target_labels() {
    let (sys, proc) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    assert!(collect(sys.path(), proc.path(), None).is_empty());

    v2_tree(sys.path(), proc.path());
    let cfg = config(sys.path(), proc.path());
    let batch = cfg.build().unwrap().collect(NOW_MS);
    let root = batch
        .series
        .iter()
        .find(|s| {
            s.labels.metric_name() == Some("container_cpu_usage_seconds_total")
                && s.labels.get("id") == Some("/")
        })
        .unwrap();
    // Empty labels are absent labels in Prometheus's model, so a raw cgroup keeps only `id`.
    assert_eq!(
        root.labels.to_string(),
        r#"{__name__="container_cpu_usage_seconds_total", cpu="total", id="/", instance="node-a", job="kubelet", metrics_path="/metrics/cadvisor"}"#
    );
    assert_eq!(root.samples[0].v, 9.0);
    assert_eq!(root.samples[0].t, NOW_MS);
    let meta = batch
        .metadata
        .iter()
        .find(|m| m.metric_family_name == "container_memory_working_set_bytes")
        .unwrap();
    assert_eq!(
        (meta.r#type, meta.help.as_str()),
        (2, "Current working set in bytes.")
    );
}

/// This machine's own cgroup tree (v1 or v2): the output must be well formed — valid names,
/// the six base labels on every series, a root cgroup with CPU usage — whatever runs here.
#[test]
fn real_cgroup_tree_gives_well_formed_output() {
    let sysfs = Path::new(crate::DEFAULT_SYSFS);
    if Tree::detect(&sysfs.join("fs/cgroup"), Path::new(crate::DEFAULT_PROCFS)).is_none() {
        println!("skipped: no cgroup tree under /sys/fs/cgroup");
        return;
    }
    let mut cfg = CadvisorConfig::new("node-a");
    cfg.sysfs = sysfs.to_path_buf();
    let mut source = cfg.build().unwrap();
    let families = source.families(NOW_MS as f64 / 1000.0);
    let text = render(&families);
    let parsed = crate::expo::parse(&text, crate::expo::Format::Text).map(|_| ());
    assert!(parsed.is_ok(), "{parsed:?}");
    for f in &families {
        assert!(crate::family::is_valid_metric_name(&f.name), "{}", f.name);
        for p in &f.points {
            let names: Vec<&str> = p.all_labels().map(|(n, _)| n).collect();
            assert_eq!(
                &names[..6],
                ["container", "id", "image", "name", "namespace", "pod"]
            );
            assert!(p.value.is_finite() && p.value >= 0.0, "{} {p:?}", f.name);
        }
    }
    let usage = families
        .iter()
        .find(|f| f.name == "container_cpu_usage_seconds_total")
        .expect("cpu usage is reported");
    assert!(usage
        .points
        .iter()
        .any(|p| p.all_labels().nth(1) == Some(("id", "/"))));
    assert!(source.stats().cgroups.load(Ordering::Relaxed) >= 1);
}

/// A collector kept across collections (its spec readings kept, see `spec.rs`) emits what a
/// fresh one emits as cgroups appear, are removed and created again, and go; a limit changed
/// in place shows within `SPEC_REFRESH_COLLECTIONS` collections and stays shown.
#[test]
fn kept_collector_matches_a_fresh_one_as_cgroups_come_change_and_go() {
    let (sys, proc) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    v2_tree(sys.path(), proc.path());
    let cfg = config(sys.path(), proc.path());
    *cfg.pods.write().unwrap() = PodIndex::from_pod_list(&pod_list());
    let mut kept = cfg.build().unwrap();
    let fresh = || render(&collect(sys.path(), proc.path(), Some(pod_list())));
    let mut kept_render = || render(&kept.families(NOW_MS as f64 / 1000.0));
    let limit = |text: &str| format!("container_spec_memory_limit_bytes{{{text}}}");
    assert_eq!(kept_render(), fresh(), "first collection");

    // A cgroup appears.
    let cg = sys.path().join("fs/cgroup");
    let svc = cg.join("system.slice/new.service");
    write(&svc.join("memory.current"), "1000\n");
    write(&svc.join("memory.max"), "4096\n");
    assert_eq!(kept_render(), fresh(), "a cgroup appeared");
    assert!(fresh().contains(&limit(
        r#"container="",id="/system.slice/new.service",image="",name="",namespace="",pod="""#
    )));

    // The app's limit changes in place: the kept reading may lag, by fewer than
    // SPEC_REFRESH_COLLECTIONS collections, and once the new one shows it stays.
    let app = cg.join(format!(
        "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{APP_ID}.scope",
        POD_UID.replace('-', "_")
    ));
    std::fs::write(app.join("memory.max"), "536870912\n").unwrap();
    let want = fresh();
    assert!(want.contains("} 536870912\n"));
    let lagged = (0..spec::SPEC_REFRESH_COLLECTIONS)
        .take_while(|_| kept_render() != want)
        .count() as u64;
    assert!(lagged < spec::SPEC_REFRESH_COLLECTIONS, "lagged {lagged}");
    for _ in 0..spec::SPEC_REFRESH_COLLECTIONS {
        assert_eq!(kept_render(), want, "the new limit stays");
    }

    // The service's cgroup is removed and created again with another limit: another
    // directory (the old one is moved out of the tree, so its inode cannot be reused), read
    // at once.
    std::fs::rename(&svc, sys.path().join("old.service")).unwrap();
    write(&svc.join("memory.current"), "1000\n");
    write(&svc.join("memory.max"), "8192\n");
    let want = fresh();
    assert!(want.contains("} 8192\n"));
    assert_eq!(kept_render(), want, "a cgroup created again");

    // It goes, and so does its kept spec.
    std::fs::remove_dir_all(&svc).unwrap();
    assert_eq!(kept_render(), fresh(), "a cgroup went");
    assert!(!kept_render().contains("new.service"));
    let listed = kept.stats.cgroups.load(Ordering::Relaxed);
    assert_eq!(
        kept.specs.len() as u64,
        listed,
        "one kept spec per listed cgroup"
    );
}

/// `run` collects on one thread of its own, every interval, and stops on shutdown.
#[tokio::test]
async fn run_collects_every_interval_on_one_thread_until_shutdown() {
    let (sys, proc) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    v2_tree(sys.path(), proc.path());
    let mut cfg = config(sys.path(), proc.path());
    cfg.interval = Duration::from_millis(50);
    let source = cfg.build().unwrap();
    let stats = source.stats();
    let (tx, mut rx) = mpsc::channel(4);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(source.run(shutdown.clone(), tx));
    for _ in 0..3 {
        let batch = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(batch
            .series
            .iter()
            .any(|s| s.labels.metric_name() == Some("container_cpu_usage_seconds_total")));
    }
    assert!(stats.collections.load(Ordering::Relaxed) >= 3);
    let threads = || {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(Result::ok)
            .filter(|t| {
                std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == "cadvisor")
            })
            .count()
    };
    // Tests in this binary run in parallel, so others may have a collector thread too.
    assert!(threads() >= 1, "collections run on the named thread");
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap();
}

const SIDECAR_ID: &str = "4444444444444444444444444444444444444444444444444444444444444444";

/// What the collector's series would be labelled afresh, without its cache: the golden
/// families turned into series as every other collector's are.
fn uncached(sysfs: &Path, procfs: &Path, pods: &serde_json::Value, t_ms: i64) -> MetricBatch {
    let families = source(sysfs, procfs, Some(pods.clone())).families(t_ms as f64 / 1000.0);
    let target = [
        ("instance", "node-a"),
        ("job", DEFAULT_CADVISOR_JOB),
        ("metrics_path", CADVISOR_METRICS_PATH),
    ];
    MetricBatch {
        metadata: families
            .iter()
            .map(crate::family::Family::metadata)
            .collect(),
        series: crate::family::into_series(families, &target, t_ms),
    }
}

/// Fails naming the first line where two renderings differ (a batch is hundreds of lines).
fn assert_same(got: &str, want: &str, what: &str) {
    if let Some((i, (g, w))) = got
        .lines()
        .zip(want.lines())
        .enumerate()
        .find(|(_, (g, w))| g != w)
    {
        panic!("{what}: line {} differs:\n got  {g}\n want {w}", i + 1);
    }
    assert_eq!(
        got.lines().count(),
        want.lines().count(),
        "{what}: line count"
    );
}

/// Where a series' label pairs live: the same address in two collections means the kept
/// labels were reused, not built again.
fn pairs_at(s: &model::Series) -> *const model::Label {
    s.labels.iter().as_slice().as_ptr()
}

/// A collector kept across collections emits exactly what a fresh collector emits, and what
/// labelling every value afresh gives, as a container appears (with a device of its own),
/// stays, has its pod's metadata change (a restart with a new image), gains a device, and
/// goes; the kept labels are reused while nothing about a series changed, and a gone
/// cgroup's are forgotten.
#[test]
fn cached_series_match_a_fresh_collector_as_a_container_comes_changes_and_goes() {
    let (sys, proc) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    v2_tree(sys.path(), proc.path());
    let cfg = config(sys.path(), proc.path());
    let pods = cfg.pods.clone();
    let mut kept = cfg.build().unwrap();
    let mut list = pod_list();
    let mut t = NOW_MS;
    let mut collect = |list: &serde_json::Value, what: &str| {
        t += 15_000;
        *pods.write().unwrap() = PodIndex::from_pod_list(list);
        let got = kept.collect(t);
        let fresh = source(sys.path(), proc.path(), Some(list.clone())).collect(t);
        assert_same(
            &render_batch(&got),
            &render_batch(&fresh),
            &format!("{what}, as a fresh collector"),
        );
        let plain = uncached(sys.path(), proc.path(), list, t);
        assert_same(
            &render_batch(&got),
            &render_batch(&plain),
            &format!("{what}, as labelled afresh"),
        );
        assert!(got.series == plain.series, "{what}");
        assert_eq!(
            kept.cache.series(),
            got.series.len(),
            "{what}: one kept label set per series"
        );
        got
    };
    let first = collect(&list, "first");

    // A sidecar container appears in the containerd pod, reading one device.
    let pod = sys.path().join(format!(
        "fs/cgroup/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice",
        POD_UID.replace('-', "_")
    ));
    let side = pod.join(format!("cri-containerd-{SIDECAR_ID}.scope"));
    write(&side.join("cgroup.procs"), "4300\n");
    write(
        &side.join("cpu.stat"),
        "usage_usec 7000\nuser_usec 5000\nsystem_usec 2000\n",
    );
    write(
        &side.join("io.stat"),
        "8:0 rbytes=10 wbytes=20 rios=1 wios=2\n",
    );
    list["items"][0]["status"]["containerStatuses"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "name": "log-shipper", "image": "fluent-bit:3",
            "containerID": format!("containerd://{SIDECAR_ID}"), "restartCount": 0
        }));
    let appeared = collect(&list, "a container appeared");
    let side_series = |b: &MetricBatch| -> Vec<model::Series> {
        b.series
            .iter()
            .filter(|s| s.labels.get("container") == Some("log-shipper"))
            .cloned()
            .collect()
    };
    assert!(side_series(&appeared)
        .iter()
        .any(|s| s.labels.get("device") == Some("/dev/sda")));
    assert_eq!(
        appeared.series.len(),
        first.series.len() + side_series(&appeared).len()
    );

    // It stays and its counters move: the same series, every label set reused.
    write(
        &side.join("cpu.stat"),
        "usage_usec 9000\nuser_usec 6000\nsystem_usec 3000\n",
    );
    let stayed = collect(&list, "a container stayed");
    assert_eq!(stayed.series.len(), appeared.series.len());
    for (a, b) in appeared.series.iter().zip(&stayed.series) {
        assert_eq!(pairs_at(a), pairs_at(b), "{} rebuilt", b.labels);
    }
    assert!(stayed.series.iter().any(|s| {
        s.labels.get("container") == Some("log-shipper")
            && s.labels.metric_name() == Some("container_cpu_usage_seconds_total")
            && s.samples[0].v == 0.009
    }));

    // The app restarts with another image: its series are labelled anew, the others kept.
    list["items"][0]["status"]["containerStatuses"][0]["image"] = "nginx:1.27".into();
    let restarted = collect(&list, "pod metadata changed");
    assert!(restarted
        .series
        .iter()
        .any(|s| s.labels.get("image") == Some("nginx:1.27")));
    for (a, b) in stayed.series.iter().zip(&restarted.series) {
        let app = b.labels.get("container") == Some("app");
        assert_eq!(pairs_at(a) == pairs_at(b), !app, "{}", b.labels);
    }

    // The sidecar reads a second device, listed before the first: both series are right.
    write(
        &sys.path().join("dev/block/7:0/uevent"),
        "MAJOR=7\nMINOR=0\nDEVNAME=loop0\n",
    );
    write(
        &side.join("io.stat"),
        "7:0 rbytes=5 wbytes=0 rios=1 wios=0\n8:0 rbytes=10 wbytes=20 rios=1 wios=2\n",
    );
    let devices = collect(&list, "a device appeared");
    assert!(side_series(&devices)
        .iter()
        .any(|s| s.labels.get("device") == Some("/dev/loop0")));

    // The first device goes again: the second keeps its series, the first's is forgotten.
    write(
        &side.join("io.stat"),
        "8:0 rbytes=10 wbytes=20 rios=1 wios=2\n",
    );
    let fewer = collect(&list, "a device went");
    assert_eq!(fewer.series.len(), restarted.series.len());
    let sda = |b: &MetricBatch| -> Vec<*const model::Label> {
        side_series(b)
            .iter()
            .filter(|s| s.labels.get("device") == Some("/dev/sda"))
            .map(pairs_at)
            .collect()
    };
    assert_eq!(
        sda(&devices),
        sda(&fewer),
        "the remaining device's labels are kept"
    );

    // It goes, and so do its kept series.
    std::fs::remove_dir_all(&side).unwrap();
    let gone = collect(&list, "a container went");
    assert!(side_series(&gone).is_empty());
    assert_eq!(
        gone.series.len(),
        restarted.series.len() - side_series(&restarted).len()
    );
    let listed = kept.stats.cgroups.load(Ordering::Relaxed) as usize;
    assert_eq!(
        kept.cache.cgroups(),
        listed,
        "one kept entry per listed cgroup"
    );
}
